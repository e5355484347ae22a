"""RoomState: one tab's view of a discussion, built only from the event log (DESIGN decision 3).

On load the tab starts a background follower that replays persisted events (from seq 0, or after the last one
it applied when it reconnects), then applies live ones. What the events mean for the page is decided in
maestro_ui/projection/room.py (plain Python, unit-tested); this state stores the projected view and sends it:
the transcript as deltas, streamed text through LiveState, the deliberation panel through DeliberationState.
Reflex cancels the follower when the tab closes, reloads or navigates away.
"""

from __future__ import annotations

import time
from typing import TypedDict

import reflex as rx

from backend.db import run_db
from backend.errors import NotFound
from backend.events.bus import get_bus
from backend.events.follower import Batch, Follower
from backend.events.schema import Presence, Typing
from backend.humans import accounts, membership, mentions, presence
from backend.humans.roles import Permission, permissions
from backend.observability import viewer_active
from backend.orchestrator.runner import get_runner
from backend.protocols import get_protocol
from backend.providers.offline import OFFLINE_HINT
from backend.services import discussions, memory, preflight, room
from maestro_ui import routes
from maestro_ui.projection import memory as memory_view
from maestro_ui.projection import room as room_view
from maestro_ui.projection.room import AgentRow, HumanRow, MessageRow, PromptRow, RoomView, StreamRow
from maestro_ui.state.auth import AuthState, cookie_token
from maestro_ui.state.deliberation import DeliberationState
from maestro_ui.state.live import LiveState

__all__ = ["AgentRow", "CheckRow", "HumanRow", "JoinLinkRow", "MessageRow", "PromptRow", "RoomState", "StreamRow"]

TYPING_SHOWN_S = 4.0

# One follower per tab (client token), so a gap reported by the page can reach it.
_FOLLOWERS: dict[str, Follower] = {}

# RoomView's fields -> the RoomState vars that hold them.
_VIEW_VARS = {
    **{name: name for name in RoomView.__dataclass_fields__},
    "me": "_me",
    "rows": "_rows",
    "costs": "_cost",
    "prompt_targets": "_prompt_roles",
    "last_seq": "_last_seq",
}


class JoinLinkRow(TypedDict):
    """A join link as its owner sees it: never the token."""

    id: int
    role_label: str
    uses: str
    expires: str


class CheckRow(TypedDict):
    key: str
    label: str
    required: bool
    status: str  # pass | fail | skip | running
    detail: str


def _still_member(session_token: str | None, discussion_id: int, participant_id: int) -> bool:
    """Whether the tab's session still signs in the person who is this participant."""
    user = accounts.resolve(session_token)
    member = membership.member_of(discussion_id, user) if user else None
    return member is not None and member.id == participant_id


def _memory_source(discussion_id: int, user) -> tuple[str, str]:
    """The link to the discussion a reused result comes from, and its label, as this person may see it ("" when
    they are not in that discussion, or it is no longer listed)."""
    row = memory.source_of(discussion_id, user)
    return (routes.room(row.discussion_id), memory_view.source_label(row)) if row else ("", "")


def check_row(item) -> CheckRow:
    return CheckRow(key=item.key, label=item.label, required=item.required, status=item.status, detail=item.detail)


class RoomState(rx.State):
    """The room: discussion header, agents with live status, transcript, streams in flight, composer."""

    found: bool = True
    topic: str = ""
    status: str = ""
    rounds: int = 0
    vote_rule: str = ""
    protocol_label: str = ""
    # What this viewer follows: every token as it streams, finished messages only, or syntheses only.
    verbosity: str = "tokens"
    agents: list[AgentRow] = []
    humans: list[HumanRow] = []
    prompts: list[PromptRow] = []
    # The transcript is kept on the page: `tx` carries only rows changed since the last delta (see
    # components/transcript.py); `_rows` is the whole of it, for a page that needs a reset.
    tx: dict = {}
    streams: list[StreamRow] = []
    total_tokens: int = 0
    total_cost: str = "$0.0000"
    draft: str = ""
    notice: str = ""
    posting: bool = False
    pause_reason: str = ""
    checks: list[CheckRow] = []
    check_score: int = 0
    check_ready: bool = False
    checking: bool = False
    budget_tokens: str = ""
    budget_usd: str = ""
    offline_hint: str = OFFLINE_HINT
    has_offline_agent: bool = False  # set once on load (a computed var would be resent with every agent row change)
    # This person in this room, from the server's session (never from what the page sends).
    member: bool = True
    my_role: str = ""
    my_role_label: str = ""
    is_owner: bool = False
    can_message: bool = False
    can_vote: bool = False
    can_approve: bool = False
    join_link: str = ""
    join_links: list[JoinLinkRow] = []  # the room's links that still let someone in (the owner's view)
    people_notice: str = ""
    answering: bool = False
    audit_href: str = ""
    # Answered from memory: the stored result of an earlier discussion, no agent ran (discussion.memory_entry_id).
    from_memory: bool = False
    memory_source_href: str = ""
    memory_source_label: str = ""

    _did: int = 0
    _last_seq: int = 0  # the last persisted event applied to this view
    _rows: dict[int, MessageRow] = {}
    _changed: dict[int, MessageRow] = {}  # rows (as sent) changed since `tx` was last set
    _tx_gen: int = 0  # the gen of the last `tx`
    _row_gen: dict[int, int] = {}  # row id -> the gen of the delta that last carried it
    _cost: dict[int, float] = {}
    _prompt_roles: dict[int, tuple[list[str], list[str]]] = {}  # prompt id -> the roles and usernames it asks
    _me: int = 0  # my participant id
    _seen: dict[int, float] = {}  # participant id -> wall time of the last presence beat
    _typing: dict[int, float] = {}  # participant id -> monotonic time until which "typing" shows
    _typed_at: float = 0.0
    _draft_key: str = ""  # one per message being written: a post retried after a lost reply is stored once
    _checked_seq: int = 0  # the last event the latest checklist had seen (preflight.Preflight.seq)
    _recheck_seq: int = 0  # the last applied event that can change the checklist's answer (preflight.recheck_seq)

    @rx.var
    def my_prompts(self) -> list[PromptRow]:
        return [p for p in self.prompts if p["status"] == "open" and p["mine"]]

    @rx.var
    def waiting_for(self) -> list[PromptRow]:
        """Blocking prompts for somebody else: the room shows whom it is waiting for."""
        return [p for p in self.prompts if p["status"] == "open" and p["blocking"] and not p["mine"]]

    @rx.var
    def typing_names(self) -> str:
        names = [h["name"] for h in self.humans if h["typing"]]
        return "" if not names else f"{', '.join(names)} {'is' if len(names) == 1 else 'are'} typing…"

    @rx.var
    def can_run(self) -> bool:
        return self.is_owner and self.status in ("draft", "paused") and self.check_ready and not self.checking

    @rx.var
    def show_checklist(self) -> bool:
        return self.status in ("draft", "paused")

    @rx.var
    def is_running(self) -> bool:
        return self.status == "running"

    @rx.var
    def is_paused(self) -> bool:
        return self.status == "paused"

    # --- loading and following ---------------------------------------------------------------------

    @rx.event
    async def on_load(self):
        """Start following this discussion's log: from the beginning, or from the last seen event on a reconnect.

        Reflex runs on_load again when a tab reconnects or reloads; the view it already has stays on screen
        and only what happened meanwhile is applied (turns in flight are resent whole), so nothing flashes.
        """
        auth = await self.get_state(AuthState)
        user = await auth.current_user()
        if user is None:
            return rx.redirect(f"{routes.LOGIN}?next={self.router.url.path}")
        try:
            did = int(self.discussion_id)  # type: ignore[attr-defined]
            discussion = await run_db(discussions.get_discussion, did)
        except (ValueError, NotFound):
            self.found = False
            return
        me = await run_db(membership.member_of, did, user)
        self.member = me is not None
        if me is None:
            self._did = 0
            return
        self._me = me.id or 0
        self.audit_href = routes.audit(did)
        self.my_role, self.is_owner = me.role or "", me.is_owner
        self.my_role_label = room_view.role_label(me.role)
        self.can_message = Permission.MESSAGE in permissions(me.role, is_owner=me.is_owner)
        self.can_vote = Permission.VOTE in permissions(me.role)
        self.can_approve = Permission.APPROVE in permissions(me.role)
        await run_db(mentions.mark_seen, did, self._me)
        if self._did == did and self._last_seq > 0:
            self._send_all_rows()  # a reloaded page has none of them
            if self.status in ("draft", "paused"):
                return [RoomState.follow, RoomState.run_checks(False)]
            return RoomState.follow
        participants = await run_db(discussions.list_participants, did)
        people = await run_db(membership.people, did)
        self.found = True
        self._did = did
        self.topic = discussion.topic
        self.from_memory = discussion.memory_entry_id is not None
        self.memory_source_href, self.memory_source_label = (
            await run_db(_memory_source, discussion.id, user) if self.from_memory else ("", "")
        )
        self.vote_rule = discussion.vote_rule or ""
        self.protocol_label = get_protocol(discussion.protocol).label
        self._seen = {p.id or 0: p.last_seen_at.timestamp() for p, _u in people if p.last_seen_at}
        self._typing = {}
        view = self._view()
        self._store(
            RoomView(
                me=view.me,
                is_owner=view.is_owner,
                my_role=view.my_role,
                my_role_label=view.my_role_label,
                can_message=view.can_message,
                can_vote=view.can_vote,
                can_approve=view.can_approve,
                status=discussion.status,
                rounds=discussion.rounds,
                pause_reason=discussion.pause_reason or "",
                agents=[
                    room_view.agent_row(p.id or 0, p.name, p.provider or "", p.model or "")
                    for p in participants
                    if p.kind == "agent"
                ],
                humans=[
                    room_view.human_row(
                        p.id or 0,
                        p.name,
                        u,
                        p.role or "",
                        owner=p.is_owner,
                        online=p.id == self._me or presence.is_online(p.last_seen_at),
                    )
                    for p, u in people
                ],
            )
        )
        self.has_offline_agent = any(a["offline"] for a in self.agents)
        self.join_link, self.join_links, self.people_notice = "", [], ""
        self.budget_tokens = str(discussion.budget_tokens or "")
        self.budget_usd = f"{discussion.budget_usd:g}" if discussion.budget_usd else ""
        self._send_all_rows()
        self.notice = ""
        (await self.get_state(LiveState))._clear()
        (await self.get_state(DeliberationState))._reset(did)
        self.checks, self.check_score, self.check_ready = [], 0, False
        self._checked_seq = self._recheck_seq = 0
        if discussion.status in ("draft", "paused"):
            return [RoomState.follow, RoomState.run_checks(False)]
        return RoomState.follow

    @rx.event(background=True)
    async def run_checks(self, fresh: bool):
        """Run the preflight checklist; items appear as they are decided; Run Agents waits for it.

        One check at a time per tab: asked again while one runs, nothing starts; the one running checks again
        when it ends if an event that can change the answer came after what it read (see `follow`). A re-check
        updates the items in place; only "check again" (`fresh`, which also skips cached provider results)
        clears them first."""
        async with self:
            if self.checking or not self._did:
                return
            self.checking, did = True, self._did
            if fresh:
                self.checks = []

        async def show(item) -> None:
            async with self:
                if self._did == did:
                    row, rows = check_row(item), list(self.checks)
                    at = next((i for i, c in enumerate(rows) if c["key"] == item.key), None)
                    self.checks = [*rows, row] if at is None else [*rows[:at], row, *rows[at + 1 :]]

        while True:
            try:
                result = await preflight.run_preflight(did, fresh=fresh, on_item=show)
            except NotFound:
                result = None
            async with self:
                if self._did != did and self._did:  # the tab moved to another room meanwhile: check that one
                    did, fresh = self._did, False
                    continue
                if result is None or not self._did:
                    self.checking = False
                    return
                self._checked_seq = max(self._checked_seq, result.seq)
                if preflight.stale(self.status, self._recheck_seq, result.seq):
                    fresh = False  # something changed while it ran: once more, with what was just cached
                    continue
                self.checks = [check_row(i) for i in result.items]
                self.check_score, self.check_ready, self.checking = result.score, result.ready, False
                return

    @rx.event(background=True)
    async def follow(self):
        """Apply the log, then live events, until Reflex cancels this task (tab closed or navigated)."""
        async with self:
            did, token, after, me = self._did, self.router.session.client_token, self._last_seq, self._me
            session = cookie_token(self.router.headers.cookie)
        if not did:
            return
        follower = Follower(did, after_seq=after, bus=get_bus(), live_source=get_runner().live_text)
        _FOLLOWERS[token] = follower
        next_beat = 0.0
        recheck = preflight.Recheck()  # people, roles, the budget or a pause changed: the checklist checks again
        try:
            with viewer_active():
                async with follower:
                    async for batch in follower.batches():
                        if me and time.monotonic() >= next_beat:  # this tab is here: the person is online
                            next_beat = time.monotonic() + presence.BEAT_S
                            if not await run_db(_still_member, session, did, me):
                                return  # signed out (perhaps everywhere) or removed: the room stops coming
                            await room.heartbeat(discussion_id=did, participant_id=me)
                        if batch or self._typing:
                            async with self:
                                if self._did != did:
                                    return  # the tab moved to another room
                                await self._apply(batch)
                                if changed := preflight.recheck_seq(batch.events):
                                    self._recheck_seq = max(self._recheck_seq, changed)
                                    recheck.changed(time.monotonic())
                        # Debounced (one check for several changes), and only if the last check did not see them;
                        # a check in flight checks again by itself when it ends (see run_checks).
                        if recheck.due(time.monotonic()):
                            async with self:
                                go = self._did == did and not self.checking
                                go = go and preflight.stale(self.status, self._recheck_seq, self._checked_seq)
                            if go:
                                yield RoomState.run_checks(False)
        finally:
            if _FOLLOWERS.get(token) is follower:
                _FOLLOWERS.pop(token, None)

    @rx.event
    def resync(self, key: str, have: int):
        """The page holds only `have` characters of stream `key` (some went missing): send it the rest."""
        follower = _FOLLOWERS.get(self.router.session.client_token)
        if follower and key.startswith("t") and key[1:].isdigit():
            follower.resync(int(key[1:]), max(0, int(have)))

    async def _apply(self, batch: Batch) -> None:
        """Project the batch onto the view, then send what changed: rows, streamed text, the deliberation panel."""
        tokens_shown = self.verbosity == "tokens"  # other viewers skip streamed text: nothing crosses the wire for it
        result = room_view.project(
            self._view(), batch.events, streamed=batch.streamed, streaming=batch.deltas, tokens_shown=tokens_shown
        )
        for signal in batch.signals:
            if isinstance(signal, Presence):
                self._seen[signal.participant_id] = time.time()
            elif isinstance(signal, Typing) and signal.participant_id != self._me:
                self._typing[signal.participant_id] = time.monotonic() + TYPING_SHOWN_S
        mono = time.monotonic()
        self._typing = {pid: until for pid, until in self._typing.items() if until > mono}
        result.view.humans = room_view.presence(
            result.view.humans,
            me=self._me,
            seen=self._seen,
            typing=set(self._typing),
            now=time.time(),
            online_for=presence.ONLINE_FOR_S,
        )
        self._store(result.view)
        live = await self.get_state(LiveState)
        for op, key in result.live:
            if op == "finish":
                live._finish(key)
            else:
                live._clear()
        if result.deliberation:
            (await self.get_state(DeliberationState))._apply_all(result.deliberation)
        for row_id, row in result.sent.items():
            self._row_gen[row_id] = self._tx_gen + 1  # the delta that will carry it
            self._changed[row_id] = row
        self._send_changed_rows()
        if tokens_shown:
            for start_seq, (start, text) in batch.deltas.items():
                live._put(f"t{start_seq}", start, text)

    def _view(self) -> RoomView:
        """The projected part of this state, as plain data (not Reflex's tracking proxies)."""
        return RoomView(**{name: self.get_value(var) for name, var in _VIEW_VARS.items()})

    def _store(self, view: RoomView) -> None:
        """Keep a projected view; only the vars that changed are written (each write resends the whole var)."""
        for name, var in _VIEW_VARS.items():
            value = getattr(view, name)
            if value != self.get_value(var):
                setattr(self, var, value)

    def _send_changed_rows(self) -> None:
        """Send the rows changed since the last delta, if any (one delta per batch of events)."""
        if self._changed:
            self._tx_gen += 1
            self.tx = {
                "room": self._did,
                "gen": self._tx_gen,
                "base": self._tx_gen - 1,
                "rows": list(self._changed.values()),
            }
            self._changed = {}

    def _send_all_rows(self) -> None:
        """Send the whole transcript (page load or reconnect: the page may have none of it)."""
        self._tx_gen += 1
        self._row_gen = dict.fromkeys(self._rows, self._tx_gen)
        self.tx = {"room": self._did, "gen": self._tx_gen, "reset": True, "rows": list(self._rows.values())}
        self._changed = {}

    @rx.event
    def resend_transcript(self, since: int):
        """The page could not apply a delta from `since` on (it missed one, or some streamed text): send every
        row changed after that, whole. Only a page that knows nothing gets the whole transcript again."""
        if since <= 0 or since > self._tx_gen:
            self._send_all_rows()
            return
        self._tx_gen += 1
        rows = [row for rid, row in self._rows.items() if self._row_gen.get(rid, 0) > since]
        self.tx = {"room": self._did, "gen": self._tx_gen, "resend": True, "rows": rows}

    @rx.event
    def set_verbosity(self, value: str):
        """Follow every token, finished messages only, or syntheses only (this tab only)."""
        if value in ("tokens", "messages", "syntheses"):
            self.verbosity = value
