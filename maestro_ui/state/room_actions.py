"""RoomActions: what a person does in the room (post, answer, ask, invite, join links, budgets, run, stop, retry).

A substate of RoomState, so RoomState holds only the view and its following. Every handler resolves the actor
from this browser's session on the server (AuthState.current_user), never from what the page sends, and acts
through backend.services, which authorises it; a refusal becomes a notice on the page.
"""

from __future__ import annotations

import hashlib
import time
import uuid

import reflex as rx

from backend.errors import Forbidden, InputError, NotFound
from backend.humans.roles import ROLE_LABELS, Role
from backend.models.base import utcnow
from backend.services import preflight, room
from maestro_ui import routes
from maestro_ui.state.auth import AuthState
from maestro_ui.state.room import JoinLinkRow, RoomState, check_row

TYPING_SIGNAL_EVERY_S = 2.0


def _ask_targets(to: str) -> dict[str, list[str]]:
    """The ask form's "to": "@username" routes to that person, anything else names a role."""
    if to.startswith("@"):
        return {"target_roles": [], "target_users": [to[1:]]}
    return {"target_roles": [to], "target_users": []}


def _answer_key(prompt_id: int, participant_id: int, value: str) -> str:
    """The same answer from the same person to the same prompt is one answer, however often it is sent."""
    return f"answer:{prompt_id}:{participant_id}:{hashlib.sha256(value.encode()).hexdigest()[:16]}"


class RoomActions(RoomState):
    """The room's event handlers; the vars they set (notices, the draft, the owner's join links) are RoomState's."""

    async def _actor(self):
        """Who is acting: resolved from this browser's session token on the server, for every action."""
        return await (await self.get_state(AuthState)).current_user()

    @rx.event
    async def run_agents(self):
        """Start (or resume) the discussion on the server; it keeps going if this tab closes."""
        self.notice = ""
        try:  # the service checks the role and the preflight checklist, whatever this page shows
            problem = await room.run_agents(self._did, await self._actor())
        except NotFound:
            self.found = False
            return
        except Forbidden as err:
            self.notice = str(err)
            return
        except preflight.NotReady as err:
            self.notice = "Finish the preflight checklist first: every required item must pass."
            self.checks = [check_row(i) for i in err.result.items]
            self.check_score, self.check_ready = err.result.score, err.result.ready
            return
        if problem:
            self.notice = problem

    @rx.event
    async def stop_agents(self):
        """Stop the agents after the turn in flight (owner only); Run Agents continues later."""
        self.notice = ""
        try:
            await room.stop(discussion_id=self._did, actor=await self._actor())
        except (InputError, Forbidden, NotFound) as err:
            self.notice = str(err)

    @rx.event
    async def retry_message(self, message_id: int):
        """Run one failed agent turn again, alone."""
        self.notice = ""
        try:
            await room.retry_turn(discussion_id=self._did, message_id=message_id, actor=await self._actor())
        except (InputError, NotFound, Forbidden) as err:
            self.notice = str(err)

    @rx.event
    async def save_budget(self, form: dict):
        """Set the token and cost budgets (empty = no limit)."""
        self.notice = ""
        try:
            tokens = int(form["budget_tokens"]) if str(form.get("budget_tokens", "")).strip() else None
            usd = float(form["budget_usd"]) if str(form.get("budget_usd", "")).strip() else None
        except ValueError:
            self.notice = "Budgets must be numbers: tokens as a whole number, cost in dollars."
            return
        try:
            await room.set_budget(
                discussion_id=self._did, actor=await self._actor(), budget_tokens=tokens, budget_usd=usd
            )
        except Forbidden as err:
            self.notice = str(err)
            return
        except InputError as err:
            self.notice = "; ".join(err.errors.values())
            return
        self.budget_tokens = str(tokens or "")
        self.budget_usd = f"{usd:g}" if usd else ""
        return RoomState.run_checks(False)

    @rx.event
    async def set_draft(self, value: str):
        """Keep the composer's text, and tell the room (at most every 2 s) that this person is typing."""
        self.draft = value
        if not self._draft_key:
            self._draft_key = uuid.uuid4().hex
        if self._me and self.can_message and value and time.monotonic() - self._typed_at > TYPING_SIGNAL_EVERY_S:
            self._typed_at = time.monotonic()
            if await self._actor() is None:
                return  # a tab whose session ended tells the room nothing
            me = next((h["name"] for h in self.humans if h["id"] == self._me), "")
            await room.typing(discussion_id=self._did, participant_id=self._me, name=me)

    @rx.event
    async def answer_prompt(self, prompt_id: int, value: str):
        """Answer a prompt routed to me; a second click while the first is in flight sends nothing."""
        if self.answering:
            return
        self.answering, self.notice = True, ""
        yield
        try:
            await room.answer_prompt(
                discussion_id=self._did,
                prompt_id=int(prompt_id),
                actor=await self._actor(),
                value=str(value)[:5000],
                client_id=_answer_key(int(prompt_id), self._me, str(value)[:5000]),
            )
        except (InputError, NotFound, Forbidden) as err:
            self.notice = str(err)
        finally:
            self.answering = False

    @rx.event
    async def answer_text(self, form: dict):
        """A free-text answer (feedback, clarification) from the prompt card's form."""
        async for update in self.answer_prompt(int(form.get("prompt_id", 0)), str(form.get("answer", ""))):
            yield update

    @rx.event
    async def invite(self, form: dict):
        """The owner adds a person by username with a role."""
        self.people_notice = ""
        try:
            weight = float(form["weight"]) if str(form.get("weight") or "").strip() else None
        except ValueError:
            self.people_notice = "A vote weight is a number, e.g. 2."
            return
        try:
            await room.invite(
                discussion_id=self._did,
                actor=await self._actor(),
                username=str(form.get("username", "")),
                role=str(form.get("role", "contributor")),
                weight=weight,
            )
            self.people_notice = f"Added @{str(form.get('username', '')).strip().lstrip('@').lower()}."
        except (InputError, Forbidden, NotFound) as err:
            self.people_notice = str(err)

    @rx.event
    async def ask_room(self, form: dict):
        """The owner asks the room a typed question (a blocking one holds the agents until answered)."""
        self.people_notice = ""
        kind = str(form.get("kind", "choice"))
        try:
            minutes = float(form.get("minutes") or 5)
        except ValueError:
            self.people_notice = "The time to answer must be a number of minutes."
            return
        options = [o.strip() for o in str(form.get("options", "")).split(",") if o.strip()]
        try:
            await room.ask(
                discussion_id=self._did,
                actor=await self._actor(),
                kind=kind,
                prompt=str(form.get("prompt", "")),
                options=options,
                **_ask_targets(str(form.get("to", "decision_maker"))),
                deadline_s=minutes * 60,
                default=options[0] if options and kind == "choice" else "",
                blocking=bool(form.get("blocking")),
            )
        except (InputError, Forbidden, NotFound) as err:
            self.people_notice = str(err)

    @rx.event
    async def post(self, _form: dict):
        """Post the composer's text; a second click while the first is in flight posts nothing."""
        if self.posting or not self.draft.strip():
            return
        self.posting = True
        self.notice = ""
        text = self.draft
        # The same text sent again under this draft (a click repeated after a lost reply) is one message; an
        # edited text is a new one.
        client_id = f"{self._draft_key or uuid.uuid4().hex}:{hashlib.sha256(text.encode()).hexdigest()[:16]}"
        yield
        try:
            await room.post_message(
                discussion_id=self._did, actor=await self._actor(), content=text, client_id=client_id
            )
            self.draft, self._draft_key = "", ""
        except InputError as err:
            self.notice = "; ".join(err.errors.values())
        except (Forbidden, NotFound) as err:
            self.notice = str(err)
        finally:
            self.posting = False

    # --- join links (the owner's) ------------------------------------------------------------------------------

    @rx.event
    async def make_join_link(self, form: dict):
        """The owner makes a join link: a role that does not decide, how long it lasts, how many people it lets in."""
        self.people_notice = ""
        try:
            hours = float(form.get("hours") or 168)
            uses = int(str(form["uses"])) if str(form.get("uses") or "").strip() else None
        except ValueError:
            self.people_notice = "Choose how long the link lasts and how many people it lets in from the lists."
            return
        actor = await self._actor()
        try:
            token = await room.create_join_link(
                discussion_id=self._did,
                actor=actor,
                role=str(form.get("role", "contributor")),
                expires_in_days=hours / 24,
                max_uses=uses,
            )
        except (InputError, Forbidden, NotFound) as err:
            self.people_notice = str(err)
            return
        self.join_link = f"{self.router.url.origin}{routes.join(token)}"
        await self._refresh_join_links(actor)

    @rx.event
    async def load_join_links(self):
        """Show the owner the room's links that still let someone in."""
        await self._refresh_join_links(await self._actor())

    @rx.event
    async def revoke_join_link(self, link_id: int):
        """The owner stops a join link letting anyone else in."""
        self.people_notice = ""
        actor = await self._actor()
        try:
            await room.revoke_join_link(discussion_id=self._did, link_id=int(link_id), actor=actor)
        except (InputError, Forbidden, NotFound, ValueError) as err:
            self.people_notice = str(err)
            return
        self.people_notice = "The link is revoked: it lets nobody else in."
        await self._refresh_join_links(actor)

    async def _refresh_join_links(self, actor) -> None:
        if not self._did:
            self.join_links = []
            return
        try:
            links = await room.list_join_links(discussion_id=self._did, actor=actor)
        except (Forbidden, NotFound):
            self.join_links = []
            return
        self.join_links = [
            JoinLinkRow(
                id=link.id,
                role_label=ROLE_LABELS[Role(link.role)] if link.role in Role._value2member_map_ else link.role,
                uses=f"{link.uses} of {link.max_uses} used" if link.max_uses is not None else f"{link.uses} used",
                expires=_expires_in(link.expires_at),
            )
            for link in links
            if link.active
        ]


def _expires_in(at) -> str:
    """'expires in 6 d' / '5 h' / '40 min': how long a join link has left, as the owner reads it."""
    left = (at - utcnow()).total_seconds()
    if left >= 86400:
        return f"expires in {round(left / 86400)} d"
    if left >= 3600:
        return f"expires in {round(left / 3600)} h"
    return f"expires in {max(1, round(left / 60))} min"
