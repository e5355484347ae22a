"""NewDiscussionState: the "new discussion" form's fields and its create action (the page is pages/new.py).

The form is parsed by DiscussionIn, the API's request body for the same thing, and created as the API's create
route does (backend/api/discussions.py), so the page and the API accept and refuse the same things."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TypedDict

import reflex as rx
from pydantic import ValidationError

from backend.db import run_db
from backend.errors import Forbidden, InputError, NotFound
from backend.memory.results import Recall
from backend.protocols.templates import TEMPLATES
from backend.providers import registry
from backend.services import memory
from backend.services.discussion_input import DiscussionIn, agent_specs
from backend.services.discussions import create_discussion
from backend.services.personas import defaults_by_key, list_personas
from maestro_ui import routes
from maestro_ui.projection import memory as memory_view
from maestro_ui.projection.memory import MemoryHit, RelatedRow
from maestro_ui.state.auth import AuthState

log = logging.getLogger(__name__)

DEFAULT_TEAM = ("architect", "backend_engineer", "security")
MIN_CHECK_CHARS = 8  # a question shorter than this is still being written: memory is not asked yet
NO_HIT = MemoryHit(line="", question="", context="", href="")


class AgentDraft(TypedDict):
    persona: str
    provider: str
    model: str
    base_url: str


class Option(TypedDict):
    value: str
    label: str


class NewDiscussionState(rx.State):
    """The form; nothing is created until every field is valid."""

    topic: str = ""
    rounds: str = "2"
    budget_tokens: str = ""
    budget_usd: str = ""
    parallel_openings: bool = False
    agents: list[AgentDraft] = []
    personas: list[Option] = []
    providers: list[Option] = []
    provider_notes: list[str] = []
    errors: dict[str, str] = {}
    creating: bool = False
    owner_role: str = "contributor"
    human_turns: bool = False
    # One optional checkpoint: after a round, ask the decision maker a choice (blocking).
    ask_question: str = ""
    ask_options: str = ""
    ask_after: str = "1"
    ask_minutes: str = "5"
    # Deciding: a vote at the end over these options (or the proposals the room made), counted with this rule.
    vote_rule: str = "none"
    vote_options: str = ""
    vote_minutes: str = "5"
    exclude_own_vote: bool = False
    stop_on_consensus: bool = False
    track_consensus: bool = False
    protocol: str = "round_robin"
    template: str = ""
    # The context the question is asked in (memory matches it exactly): the form's text, the service parses it.
    context: dict[str, str] = memory_view.form_fields({})
    context_note: str = ""  # "Saved as your default."
    _context_user: int = 0  # whose default the context was prefilled from (once; then it is theirs to edit)
    # Deliberation memory, as the topic is typed: a hit (Open, Reuse, Run fresh), related decisions, or why not.
    memory_hit: MemoryHit = NO_HIT
    memory_related: list[RelatedRow] = []
    memory_unavailable: str = ""
    memory_notice: str = ""
    memory_checking: bool = False
    reusing: bool = False
    _hit_entry_id: int = 0  # the hit's entry: kept on the server, never taken from the page
    _hit_for: str = ""  # the question and context the hit was found for
    _dismissed: int = 0  # the entry "Run fresh" dismissed
    _checked: str = ""  # the question and context last looked up
    _check_gen: int = 0  # a lookup's answer is shown only if no newer lookup started meanwhile
    _defaults: dict[str, dict[str, str]] = {}  # persona key -> provider, model, base_url, fallback

    @rx.var
    def has_hit(self) -> bool:
        return self.memory_hit["line"] != ""

    @rx.event
    async def load(self):
        """Offer the persona library and the providers this server can reach."""
        memory.prepare()
        self.personas = [Option(value=p.key, label=p.name) for p in await run_db(list_personas)]
        status = registry.provider_status()
        self.providers = [
            Option(value=p["name"], label=p["label"] + ("" if p["available"] else f" — {p['reason']}")) for p in status
        ]
        self.provider_notes = [p["hint"] for p in status if p["hint"]]
        self._defaults = {
            key: {"provider": d.provider, "model": d.model, "base_url": d.base_url or "", "fallback": d.fallback}
            for key, d in (await run_db(defaults_by_key)).items()
        }
        self.provider_notes += [
            f"{d['fallback']} — its agents run on the offline model until then."
            for d in self._defaults.values()
            if d["fallback"]
        ]
        if not self.agents:
            self.agents = [self._draft(k) for k in DEFAULT_TEAM]
        self.errors = {}
        user = await (await self.get_state(AuthState)).current_user()
        if user is not None and user.id != self._context_user:
            self.context = memory_view.form_fields(await run_db(memory.default_context, user))
            self._context_user = user.id or 0
        self._checked, self._dismissed, self.context_note, self.memory_notice = "", 0, "", ""
        if self.topic.strip():
            return NewDiscussionState.check_memory

    def _draft(self, persona: str) -> AgentDraft:
        """A new agent of `persona` on the provider and model the persona maps to (personas page)."""
        d = self._defaults.get(persona) or {"provider": "offline", "model": registry.default_model("offline")}
        return AgentDraft(persona=persona, provider=d["provider"], model=d["model"], base_url=d.get("base_url", ""))

    @rx.event
    def set_form_field(self, field: str, value: str | bool):
        """Keep one of the people-in-the-loop fields."""
        if field in (
            "owner_role",
            "ask_question",
            "ask_options",
            "ask_after",
            "ask_minutes",
            "vote_rule",
            "vote_options",
            "vote_minutes",
        ):
            setattr(self, field, str(value))
        elif field in ("human_turns", "exclude_own_vote", "stop_on_consensus", "track_consensus"):
            setattr(self, field, bool(value))

    @rx.event
    def use_template(self, key: str):
        """Fill the form from a template (protocol, rounds, the team, my role, vote, a question for the decision
        maker); each agent runs on the provider and model its persona maps to."""
        t = TEMPLATES.get(key)
        if t is None:
            return
        self.template, self.protocol, self.rounds = key, t.protocol, str(t.rounds)
        self.vote_rule, self.vote_options = t.vote_rule or "none", ", ".join(t.vote_options)
        self.stop_on_consensus, self.parallel_openings = t.stop_on_consensus, t.parallel_openings
        self.track_consensus, self.owner_role = t.track_consensus, t.owner_role
        self.agents = [self._draft(persona) for persona in t.team]
        self.ask_question, self.ask_options, self.ask_after = t.ask_question, ", ".join(t.ask_options), str(t.ask_after)

    @rx.event
    def set_topic(self, value: str):
        """Keep the question."""
        self.topic = value

    @rx.event
    def set_rounds(self, value: str):
        """Keep the number of rounds."""
        self.rounds = value

    @rx.event
    def set_parallel_openings(self, value: bool):
        """Choose independent opening statements for round 1."""
        self.parallel_openings = value

    @rx.event
    def set_budget_tokens(self, value: str):
        """Keep the token budget."""
        self.budget_tokens = value

    @rx.event
    def set_budget_usd(self, value: str):
        """Keep the cost budget."""
        self.budget_usd = value

    @rx.event
    def set_agent_field(self, index: int, field: str, value: str):
        """Change one agent's persona, provider, model or base URL."""
        if field not in ("persona", "provider", "model", "base_url") or not 0 <= index < len(self.agents):
            return
        if field == "persona":  # a persona brings the provider and model it maps to
            self.agents[index] = self._draft(value)
            return
        self.agents[index][field] = value  # type: ignore[literal-required]
        if field == "provider":
            self.agents[index]["model"] = registry.default_model(value) if value in registry.PROVIDERS else ""

    @rx.event
    def add_agent(self):
        """Add another agent (a persona not yet in the team, on the provider and model it maps to)."""
        used = {a["persona"] for a in self.agents}
        persona = next((p["value"] for p in self.personas if p["value"] not in used), "architect")
        self.agents.append(self._draft(persona))

    @rx.event
    def remove_agent(self, index: int):
        """Drop an agent from the team."""
        if 0 <= index < len(self.agents):
            self.agents.pop(index)

    def _form(self) -> dict:
        """The form's fields as the API's request body (DiscussionIn): the same model parses both."""
        checkpoints = []
        if self.ask_question.strip():
            checkpoints.append(
                {
                    "after_round": self.ask_after,
                    "kind": "choice",
                    "prompt": self.ask_question,
                    "options": [o.strip() for o in self.ask_options.split(",")],
                    "target_roles": ["decision_maker"],
                    "deadline_s": _seconds(self.ask_minutes),
                }
            )
        return {
            "topic": self.topic,
            "agents": [
                {
                    "persona": a["persona"],
                    "provider": a["provider"] or None,
                    "model": a["model"],
                    "base_url": a["base_url"].strip() or None,
                }
                for a in self.agents
            ],
            "rounds": self.rounds,
            "protocol": self.protocol,
            "role": self.owner_role,
            "budget_tokens": self.budget_tokens.strip() or None,
            "budget_usd": self.budget_usd.strip() or None,
            "parallel_openings": self.parallel_openings,
            "human_turns": self.human_turns,
            "vote_rule": None if self.vote_rule == "none" else self.vote_rule,
            "vote_options": [o.strip() for o in self.vote_options.split(",") if o.strip()],
            "exclude_own_vote": self.exclude_own_vote,
            "vote_deadline_s": _seconds(self.vote_minutes or "5", whole=True),
            "stop_on_consensus": self.stop_on_consensus,
            "track_consensus": self.track_consensus,
            "checkpoints": checkpoints,
        }

    @rx.event
    async def create(self):
        """Validate and create, as the API's create route does; on success open the room."""
        if self.creating:
            return
        try:
            body = DiscussionIn.model_validate(self._form())
        except ValidationError as err:
            self.errors = form_errors(err)
            return
        owner = await (await self.get_state(AuthState)).current_user()
        if owner is None:
            yield rx.redirect(f"{routes.LOGIN}?next={routes.NEW}")
            return
        self.creating = True
        yield
        try:
            specs = await run_db(agent_specs, body.agents)
            fields = body.model_dump(exclude={"agents", "role", "checkpoints"})
            fields["checkpoints"] = [c.model_dump(exclude_none=True) for c in body.checkpoints]
            context = memory_view.raw_context(self.context)
            discussion = await run_db(
                lambda: create_discussion(agents=specs, owner=owner, owner_role=body.role, context=context, **fields)
            )
        except InputError as err:
            self.errors = err.errors
            return
        finally:
            self.creating = False
        self.errors = {}
        self.topic = ""
        self.agents = []
        self._forget_lookup()
        yield rx.redirect(routes.room(discussion.id or 0))

    # --- the context -----------------------------------------------------------------------------------------

    @rx.event
    def set_context_field(self, field: str, value: str):
        """Keep one context field as typed (the service parses it; memory is asked again, see check_memory)."""
        if field in memory_view.CONTEXT_FIELDS:
            self.context[field] = str(value)[:400]
            self.context_note = ""

    @rx.event
    async def save_default_context(self):
        """Keep this context as the signed-in person's own default (their account only)."""
        user = await (await self.get_state(AuthState)).current_user()
        if user is None:
            return rx.redirect(f"{routes.LOGIN}?next={routes.NEW}")
        raw = memory_view.raw_context(self.context)
        try:
            saved = await run_db(memory.set_default_context, user, raw)
        except InputError as err:
            self.errors = {**self.errors, **err.errors}
            self.context_note = ""
            return
        except (Forbidden, NotFound) as err:
            self.context_note = str(err)
            return
        self.errors = {k: v for k, v in self.errors.items() if k != "context"}
        self.context = memory_view.form_fields(saved.as_dict())
        self.context_note = "Saved: your new discussions start from this context."

    # --- deliberation memory -------------------------------------------------------------------------------

    def _clear_memory(self) -> None:
        self.memory_hit, self.memory_related, self.memory_unavailable = NO_HIT, [], ""
        self.memory_checking = False
        self._hit_entry_id, self._hit_for = 0, ""

    def _forget_lookup(self) -> None:
        """The form was used: drop what memory said, and any lookup still running."""
        self._clear_memory()
        self._check_gen += 1
        self._checked, self._dismissed = "", 0

    def _asked(self) -> tuple[str, dict[str, str], str]:
        """The question and context as they stand, and one key for both."""
        topic, raw = self.topic.strip(), memory_view.raw_context(self.context)
        return topic, raw, json.dumps([topic, raw], sort_keys=True)

    @rx.event(background=True)
    async def check_memory(self):
        """Ask memory about the question as typed, in this context (debounced by the page; the lookup runs in a
        thread, so typing never waits for it, nor for the model's one-time load)."""
        async with self:
            topic, raw, key = self._asked()
            if key == self._checked:
                return
            self._checked = key
            self._check_gen += 1
            gen = self._check_gen
            user = await (await self.get_state(AuthState)).current_user() if len(topic) >= MIN_CHECK_CHARS else None
            if user is None:
                self._clear_memory()
                return
            self.memory_checking = True
        problems: dict[str, str] = {}
        try:
            found = await asyncio.to_thread(memory.check, topic, raw, user)
        except InputError as err:  # a context the service refuses, or a question too long: the form says so
            found, problems = Recall(), err.errors
        except Exception:  # memory is a convenience: the discussion runs fresh
            log.exception("memory lookup failed")
            found = Recall(unavailable="Memory is unavailable: the lookup failed")
        async with self:
            if gen != self._check_gen:
                return  # a newer lookup (or a create) came meanwhile
            self._clear_memory()
            if "context" in problems:
                self.errors = {**self.errors, "context": problems["context"]}
                return
            self.errors = {k: v for k, v in self.errors.items() if k != "context"}
            self.memory_unavailable = memory_view.unavailable_line(found.unavailable or "")
            if found.hit is not None and found.hit.entry_id != self._dismissed:
                self.memory_hit = memory_view.memory_hit(found.hit)
                self._hit_entry_id, self._hit_for = found.hit.entry_id, key
            self.memory_related = [memory_view.related_row(r) for r in found.related]

    @rx.event
    def run_fresh(self):
        """Dismiss the hit: Create discussion runs the agents as usual."""
        self._dismissed = self._hit_entry_id
        self.memory_hit, self._hit_entry_id, self._hit_for = NO_HIT, 0, ""

    @rx.event
    async def reuse_memory(self):
        """Answer this question from the remembered result (no agent runs), then open the new room. The service
        checks again that the entry is live, in this context, and that this person may open its source."""
        if self.reusing or not self._hit_entry_id:
            return
        owner = await (await self.get_state(AuthState)).current_user()
        if owner is None:
            yield rx.redirect(f"{routes.LOGIN}?next={routes.NEW}")
            return
        topic, raw, key = self._asked()
        entry_id, role = self._hit_entry_id, self.owner_role
        self.reusing, self.memory_notice = True, ""
        yield
        try:
            if key != self._hit_for:  # typed on since the hit was found: it must still be the hit for the question now
                found = await asyncio.to_thread(memory.check, topic, raw, owner)
                if found.hit is None or found.hit.entry_id != entry_id:
                    self._clear_memory()
                    self._checked = ""
                    self.memory_notice = "The question changed, and that result does not answer it as it is now."
                    yield NewDiscussionState.check_memory
                    return
            discussion = await run_db(
                lambda: memory.reuse(entry_id, question=topic, context=raw, actor=owner, owner_role=role)
            )
        except InputError as err:
            self.memory_notice = "; ".join(err.errors.values())
            return
        except (NotFound, Forbidden) as err:
            self._clear_memory()
            self.memory_notice = str(err)
            return
        finally:
            self.reusing = False
        self.errors, self.topic, self.agents = {}, "", []
        self._forget_lookup()
        yield rx.redirect(routes.room(discussion.id or 0))


def _seconds(minutes: str, *, whole: bool = False) -> float | int | str:
    """Minutes typed in the form as seconds; what is not a number goes on as typed, for DiscussionIn to refuse."""
    try:
        seconds = float(minutes) * 60
    except ValueError:
        return minutes
    return int(seconds) if whole else seconds


# DiscussionIn's field -> the key the form shows its error under (agents: "agent_<index>", on the agent's card).
_ERROR_KEYS = {"role": "owner_role", "vote_deadline_s": "vote_deadline"}
_BUDGETS = "Budgets must be numbers: tokens as a whole number, cost in dollars."
_NOT_A_NUMBER = {
    "rounds": "Rounds must be a whole number.",
    "budget_tokens": _BUDGETS,
    "budget_usd": _BUDGETS,
    "checkpoints": "The round and the minutes to wait must be numbers.",
    "vote_deadline": "The minutes to vote must be a number.",
}
_LABELS = {
    "topic": "The question",
    "checkpoints": "The question for the decision maker",
    "vote_options": "The vote's options",
    "owner_role": "Your role",
}


def form_errors(err: ValidationError) -> dict[str, str]:
    """DiscussionIn's errors as the form's field errors, one readable sentence per field (its first problem)."""
    errors: dict[str, str] = {}
    for e in err.errors(include_url=False):
        loc = e["loc"]
        key = _ERROR_KEYS.get(str(loc[0]), str(loc[0]))
        label = _LABELS.get(key, key.replace("_", " ").capitalize())
        if key == "agents" and len(loc) > 1:
            key, label = f"agent_{loc[1]}", f"Agent {int(loc[1]) + 1}"
        if key in errors:
            continue
        limit = (e.get("ctx") or {}).get("max_length")
        if e["type"] in ("int_parsing", "float_parsing", "int_from_float", "int_type", "float_type") and key in (
            _NOT_A_NUMBER
        ):
            errors[key] = _NOT_A_NUMBER[key]
        elif e["type"] == "string_too_long":
            errors[key] = f"{label} is too long: at most {limit} characters."
        elif e["type"] == "too_long":
            errors[key] = f"{label}: at most {limit}."
        else:
            errors[key] = f"{label}: {e['msg']}."
    return errors
