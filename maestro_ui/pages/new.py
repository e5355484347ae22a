"""The "new discussion" form: topic, agents (persona + provider + model), rounds."""

from __future__ import annotations

from typing import TypedDict

import reflex as rx

from backend.db import run_db
from backend.deliberation import voting
from backend.protocols import PROTOCOLS
from backend.protocols.templates import TEMPLATES
from backend.providers import registry
from backend.services.discussions import AgentSpec, create_discussion
from backend.services.errors import InputError
from backend.services.personas import defaults_by_key, list_personas
from maestro_ui import routes
from maestro_ui.components.layout import page
from maestro_ui.state.auth import AuthState

DEFAULT_TEAM = ("architect", "backend_engineer", "security")


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
    _defaults: dict[str, dict[str, str]] = {}  # persona key -> provider, model, base_url, fallback

    @rx.event
    async def load(self):
        """Offer the persona library and the providers this server can reach."""
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

    @rx.event
    async def create(self):
        """Validate and create; on success open the room."""
        if self.creating:
            return
        try:
            rounds = int(self.rounds)
        except ValueError:
            self.errors = {"rounds": "Rounds must be a whole number."}
            return
        try:
            budget_tokens = int(self.budget_tokens) if self.budget_tokens.strip() else None
            budget_usd = float(self.budget_usd) if self.budget_usd.strip() else None
        except ValueError:
            self.errors = {"budget_tokens": "Budgets must be numbers: tokens as a whole number, cost in dollars."}
            return
        specs = [
            AgentSpec(
                persona_key=a["persona"],
                provider=a["provider"],
                model=a["model"].strip(),
                base_url=a["base_url"].strip() or None,
            )
            for a in self.agents
        ]
        checkpoints = []
        if self.ask_question.strip():
            try:
                after, minutes = int(self.ask_after), float(self.ask_minutes)
            except ValueError:
                self.errors = {"checkpoints": "The round and the minutes to wait must be numbers."}
                return
            checkpoints.append(
                {
                    "after_round": after,
                    "kind": "choice",
                    "prompt": self.ask_question,
                    "options": [o.strip() for o in self.ask_options.split(",")],
                    "target_roles": ["decision_maker"],
                    "deadline_s": minutes * 60,
                }
            )
        try:
            vote_deadline_s = int(float(self.vote_minutes or 5) * 60)
        except ValueError:
            self.errors = {"vote_deadline": "The minutes to vote must be a number."}
            return
        vote_rule = None if self.vote_rule == "none" else self.vote_rule
        vote_options = [o.strip() for o in self.vote_options.split(",") if o.strip()]
        owner = await (await self.get_state(AuthState)).current_user()
        if owner is None:
            yield rx.redirect(f"{routes.LOGIN}?next={routes.NEW}")
            return
        self.creating = True
        yield
        try:
            discussion = await run_db(
                lambda: create_discussion(
                    topic=self.topic,
                    agents=specs,
                    rounds=rounds,
                    budget_tokens=budget_tokens,
                    budget_usd=budget_usd,
                    parallel_openings=self.parallel_openings,
                    owner=owner,
                    owner_role=self.owner_role,
                    human_turns=self.human_turns,
                    checkpoints=checkpoints,
                    vote_rule=vote_rule,
                    vote_options=vote_options,
                    exclude_own_vote=self.exclude_own_vote,
                    vote_deadline_s=vote_deadline_s,
                    stop_on_consensus=self.stop_on_consensus,
                    track_consensus=self.track_consensus,
                    protocol=self.protocol,
                )
            )
        except InputError as err:
            self.errors = err.errors
            return
        finally:
            self.creating = False
        self.errors = {}
        self.topic = ""
        self.agents = []
        yield rx.redirect(routes.room(discussion.id or 0))


ROLE_OPTIONS = [
    ("contributor", "Contributor"),
    ("decision_maker", "Decision maker"),
    ("must_approve", "Must approve"),
    ("observer", "Observer"),
]


def _people_section() -> rx.Component:
    """People in the loop: the creator's own role, human turns, and a question for the decision maker."""
    field = NewDiscussionState.set_form_field
    return rx.vstack(
        rx.text("People", weight="bold", size="2"),
        rx.flex(
            rx.text("Your role", size="2"),
            rx.select.root(
                rx.select.trigger(id="owner-role"),
                rx.select.content(*[rx.select.item(label, value=value) for value, label in ROLE_OPTIONS]),
                value=NewDiscussionState.owner_role,
                on_change=lambda v: field("owner_role", v),
            ),
            rx.text("You invite the others from the room.", size="1", color_scheme="gray"),
            spacing="2",
            align="center",
            wrap="wrap",
        ),
        _error("owner_role"),
        rx.checkbox(
            "Human turns: after each agent round, wait up to 2 minutes for the people who write",
            checked=NewDiscussionState.human_turns,
            on_change=lambda v: field("human_turns", v),
            id="human-turns",
            size="2",
        ),
        rx.text("Ask the decision maker (optional; the agents wait for the answer)", size="2"),
        rx.input(
            value=NewDiscussionState.ask_question,
            on_change=lambda v: field("ask_question", v),
            placeholder="e.g. Which factor matters most?",
            id="ask-question",
            width="100%",
        ),
        rx.flex(
            rx.input(
                value=NewDiscussionState.ask_options,
                on_change=lambda v: field("ask_options", v),
                placeholder="options, comma-separated",
                id="ask-options",
                flex="1",
                min_width="200px",
            ),
            rx.text("after round", size="2"),
            rx.input(
                value=NewDiscussionState.ask_after,
                on_change=lambda v: field("ask_after", v),
                type="number",
                min="1",
                width="64px",
                id="ask-after",
            ),
            rx.text("wait", size="2"),
            rx.input(
                value=NewDiscussionState.ask_minutes,
                on_change=lambda v: field("ask_minutes", v),
                type="number",
                min="1",
                width="64px",
                id="ask-minutes",
            ),
            rx.text("min", size="2"),
            spacing="2",
            align="center",
            wrap="wrap",
            width="100%",
        ),
        _error("checkpoints"),
        width="100%",
        spacing="2",
    )


VOTE_RULES = [("none", "No vote"), *((r.value, r.label) for r in voting.RULES)]


def _templates() -> rx.Component:
    """Presets for common deliberations; everything they fill in stays editable."""
    return rx.vstack(
        rx.text("Start from a template (optional)", weight="bold", size="2"),
        rx.flex(
            *[
                rx.button(
                    t.label,
                    on_click=NewDiscussionState.use_template(t.key),
                    variant=rx.cond(NewDiscussionState.template == t.key, "solid", "soft"),
                    size="2",
                    title=t.summary,
                    id=f"template-{t.key}",
                )
                for t in TEMPLATES.values()
            ],
            spacing="2",
            wrap="wrap",
        ),
        width="100%",
        spacing="1",
    )


def _protocol_select() -> rx.Component:
    return rx.vstack(
        rx.flex(
            rx.text("Protocol", weight="bold", size="2"),
            rx.select.root(
                rx.select.trigger(id="protocol"),
                rx.select.content(*[rx.select.item(p.label, value=p.name) for p in PROTOCOLS.values()]),
                value=NewDiscussionState.protocol,
                on_change=lambda v: NewDiscussionState.set_form_field("protocol", v),
            ),
            spacing="2",
            align="center",
            wrap="wrap",
        ),
        rx.match(
            NewDiscussionState.protocol,
            *[(p.name, rx.text(p.summary, size="1", color_scheme="gray")) for p in PROTOCOLS.values()],
            rx.fragment(),
        ),
        _error("protocol"),
        spacing="1",
        width="100%",
    )


def _decision_section() -> rx.Component:
    """Deciding: a vote over humans and agents after the last round, then a decision card to sign off."""
    field = NewDiscussionState.set_form_field
    return rx.vstack(
        rx.text("Decision", weight="bold", size="2"),
        rx.flex(
            rx.text("After the last round, vote by", size="2"),
            rx.select.root(
                rx.select.trigger(id="vote-rule"),
                rx.select.content(*[rx.select.item(label, value=value) for value, label in VOTE_RULES]),
                value=NewDiscussionState.vote_rule,
                on_change=lambda v: field("vote_rule", v),
            ),
            rx.text("people have", size="2"),
            rx.input(
                value=NewDiscussionState.vote_minutes,
                on_change=lambda v: field("vote_minutes", v),
                type="number",
                min="1",
                width="64px",
                id="vote-minutes",
            ),
            rx.text("min to vote", size="2"),
            spacing="2",
            align="center",
            wrap="wrap",
        ),
        rx.input(
            value=NewDiscussionState.vote_options,
            on_change=lambda v: field("vote_options", v),
            placeholder="options, comma-separated (empty: vote on the proposals the room made)",
            id="vote-options",
            width="100%",
        ),
        rx.checkbox(
            "No vote on your own proposal",
            checked=NewDiscussionState.exclude_own_vote,
            on_change=lambda v: field("exclude_own_vote", v),
            id="exclude-own",
            size="2",
        ),
        rx.checkbox(
            "Track consensus after every round (one more model call a round; always on with a vote)",
            checked=NewDiscussionState.track_consensus | (NewDiscussionState.vote_rule != "none"),
            on_change=lambda v: field("track_consensus", v),
            id="track-consensus",
            size="2",
        ),
        rx.checkbox(
            "Stop the rounds early once consensus is detected (where the room stands is checked after every round)",
            checked=NewDiscussionState.stop_on_consensus,
            on_change=lambda v: field("stop_on_consensus", v),
            id="stop-on-consensus",
            size="2",
        ),
        rx.text(
            "Agents and people vote in the same poll; the must-approve person signs off the decision.",
            size="1",
            color_scheme="gray",
        ),
        _error("vote_rule"),
        _error("vote_options"),
        _error("vote_deadline"),
        width="100%",
        spacing="2",
    )


def _error(key: str) -> rx.Component:
    return rx.cond(
        NewDiscussionState.errors.contains(key),
        rx.text(NewDiscussionState.errors[key], color_scheme="red", size="2", class_name="field-error"),
    )


def _agent_row(a: AgentDraft, i: rx.Var[int]) -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.flex(
                rx.text("Agent ", i + 1, weight="bold", size="2"),
                rx.spacer(),
                rx.icon_button(
                    rx.icon("x", size=14),
                    on_click=NewDiscussionState.remove_agent(i),
                    variant="ghost",
                    color_scheme="gray",
                    size="1",
                    aria_label="Remove agent",
                ),
                width="100%",
                align="center",
            ),
            rx.flex(
                rx.select.root(
                    rx.select.trigger(placeholder="Persona", width="100%"),
                    rx.select.content(
                        rx.foreach(NewDiscussionState.personas, lambda p: rx.select.item(p["label"], value=p["value"]))
                    ),
                    value=a["persona"],
                    on_change=lambda v: NewDiscussionState.set_agent_field(i, "persona", v),
                ),
                rx.select.root(
                    rx.select.trigger(placeholder="Provider", width="100%"),
                    rx.select.content(
                        rx.foreach(NewDiscussionState.providers, lambda p: rx.select.item(p["label"], value=p["value"]))
                    ),
                    value=a["provider"],
                    on_change=lambda v: NewDiscussionState.set_agent_field(i, "provider", v),
                ),
                rx.input(
                    value=a["model"],
                    placeholder="Model",
                    on_change=lambda v: NewDiscussionState.set_agent_field(i, "model", v),
                    class_name="agent-model",
                ),
                rx.cond(
                    a["provider"] == "openai_compatible",
                    rx.input(
                        value=a["base_url"],
                        placeholder="http://localhost:11434/v1",
                        on_change=lambda v: NewDiscussionState.set_agent_field(i, "base_url", v),
                        class_name="agent-base-url",
                    ),
                ),
                direction=rx.breakpoints(initial="column", sm="row"),
                spacing="2",
                width="100%",
                wrap="wrap",
            ),
            _error("agent_" + i.to_string()),
            width="100%",
            spacing="2",
        ),
        width="100%",
        class_name="agent-draft",
    )


def new_page() -> rx.Component:
    """Write the question, pick the agents, create the room."""
    return page(
        rx.vstack(
            rx.heading("New discussion", size="6"),
            _templates(),
            rx.text("The question", weight="bold", size="2"),
            rx.text_area(
                value=NewDiscussionState.topic,
                on_change=NewDiscussionState.set_topic,
                placeholder="e.g. Choose a database for Apollo",
                id="topic-input",
                rows="3",
                width="100%",
            ),
            _error("topic"),
            rx.flex(
                rx.text("Agents", weight="bold", size="2"),
                rx.spacer(),
                rx.button(
                    rx.icon("plus", size=14),
                    "Add agent",
                    on_click=NewDiscussionState.add_agent,
                    variant="soft",
                    size="1",
                    id="add-agent",
                ),
                width="100%",
                align="center",
            ),
            rx.foreach(NewDiscussionState.agents, _agent_row),
            _error("agents"),
            rx.foreach(
                NewDiscussionState.provider_notes, lambda n: rx.callout(n, icon="info", size="1", color_scheme="amber")
            ),
            rx.hstack(
                rx.text("Rounds", weight="bold", size="2"),
                rx.input(
                    value=NewDiscussionState.rounds,
                    on_change=NewDiscussionState.set_rounds,
                    type="number",
                    min="1",
                    max="10",
                    width="80px",
                    id="rounds-input",
                ),
                align="center",
            ),
            _error("rounds"),
            _protocol_select(),
            rx.checkbox(
                "Independent opening statements: in round 1 every agent answers at once, without seeing the others",
                checked=NewDiscussionState.parallel_openings,
                on_change=NewDiscussionState.set_parallel_openings,
                id="parallel-openings",
                size="2",
            ),
            rx.flex(
                rx.text("Budget", weight="bold", size="2"),
                rx.input(
                    value=NewDiscussionState.budget_tokens,
                    on_change=NewDiscussionState.set_budget_tokens,
                    placeholder="max tokens",
                    type="number",
                    min="1",
                    width="140px",
                    id="budget-tokens-input",
                ),
                rx.input(
                    value=NewDiscussionState.budget_usd,
                    on_change=NewDiscussionState.set_budget_usd,
                    placeholder="max $",
                    type="number",
                    step="0.01",
                    min="0",
                    width="110px",
                    id="budget-usd-input",
                ),
                rx.text("The discussion pauses itself when one is used up.", size="1", color_scheme="gray"),
                spacing="2",
                align="center",
                wrap="wrap",
            ),
            _error("budget_tokens"),
            _error("budget_usd"),
            _people_section(),
            _decision_section(),
            rx.button(
                "Create discussion",
                on_click=NewDiscussionState.create,
                loading=NewDiscussionState.creating,
                size="3",
                id="create-btn",
            ),
            width="100%",
            max_width="760px",
            spacing="3",
        )
    )
