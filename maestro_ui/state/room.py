"""RoomState: one tab's view of a discussion, built only from the event log (DESIGN decision 3).

On load the tab starts a background follower that replays persisted events (from seq 0, or after the last one
it applied when it reconnects), then applies live ones; events apply idempotently, so the state after a
reconnect equals a fresh load. Reflex cancels the follower when the tab closes, reloads or navigates away.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from typing import TypedDict

import reflex as rx

from backend import preflight
from backend.db import run_db
from backend.events.bus import get_bus
from backend.events.follower import Batch, Follower
from backend.events.schema import (
    CallRecorded,
    ContextSummarised,
    DecisionSignedOff,
    DiscussionCreated,
    DiscussionFinished,
    DiscussionPaused,
    HumanInputAnswered,
    HumanInputRequested,
    HumanMessagePosted,
    MemberChanged,
    Presence,
    RoomEvent,
    RunStarted,
    StepReport,
    TurnCompleted,
    TurnFailed,
    TurnRetryRequested,
    TurnStarted,
    TurnStatus,
    Typing,
)
from backend.humans import accounts, membership, mentions, presence
from backend.humans.prompts import prompt_targets_me
from backend.humans.roles import ROLE_LABELS, Permission, Role, permissions
from backend.models.base import utcnow
from backend.observability import viewer_active
from backend.orchestrator.runner import get_runner
from backend.protocols import get_protocol
from backend.providers.offline import OFFLINE_HINT
from backend.providers.registry import PROVIDERS
from backend.services import discussions, room
from backend.services.errors import Forbidden, InputError, NotFound
from maestro_ui import routes
from maestro_ui.state.auth import AuthState, cookie_token
from maestro_ui.state.deliberation import DELIBERATION_EVENTS, DeliberationState
from maestro_ui.state.live import LiveState

TYPING_SHOWN_S = 4.0
TYPING_SIGNAL_EVERY_S = 2.0

# One follower per tab (client token), so a gap reported by the page can reach it.
_FOLLOWERS: dict[str, Follower] = {}


def _ask_targets(to: str) -> dict[str, list[str]]:
    """The ask form's "to": "@username" routes to that person, anything else names a role."""
    if to.startswith("@"):
        return {"target_roles": [], "target_users": [to[1:]]}
    return {"target_roles": [to], "target_users": []}


def _answer_key(prompt_id: int, participant_id: int, value: str) -> str:
    """The same answer from the same person to the same prompt is one answer, however often it is sent."""
    return f"answer:{prompt_id}:{participant_id}:{hashlib.sha256(value.encode()).hexdigest()[:16]}"


class AgentRow(TypedDict):
    id: int
    name: str
    provider: str
    model: str
    offline: bool
    status: str  # idle | queued | thinking | streaming | slow | retrying | done | failed
    elapsed: int  # seconds the current turn had run when this row was sent; the page's clock ticks on
    turn: int  # the current turn's start seq
    tokens: int
    cost: str
    latency: str
    error: str
    detail: str


class MessageRow(TypedDict):
    id: int
    author: str
    kind: str  # agent | human
    provider_label: str
    model: str
    round: int
    content: str
    status: str  # complete | failed | queued (a retry was asked for)
    error: str
    meta: str
    label: str  # the protocol's ask of this turn: a debate stance or "synthesis"
    # A finished turn this tab watched stream: its first `skip` characters are already on the page, in the
    # stream `stream`, and `content` holds only the rest (see assets/transcript.jsx). Otherwise "" and 0.
    stream: str
    skip: int


class HumanRow(TypedDict):
    id: int
    name: str
    username: str
    role: str
    role_label: str
    owner: bool
    online: bool
    typing: bool


class JoinLinkRow(TypedDict):
    """A join link as its owner sees it: never the token."""

    id: int
    role_label: str
    uses: str
    expires: str


class PromptRow(TypedDict):
    id: int
    kind: str
    prompt: str
    options: list[str]
    targets: str
    deadline: str  # ISO time, counted down on the page
    default: str
    blocking: bool
    status: str  # open | answered | expired
    answer: str
    answered_by: str
    mine: bool  # this person may answer it


class CheckRow(TypedDict):
    key: str
    label: str
    required: bool
    status: str  # pass | fail | skip | running
    detail: str


class StreamRow(TypedDict):
    key: str
    author: str
    provider_label: str
    model: str
    round: int
    label: str


def _label(provider: str) -> str:
    if provider == "offline":
        return "Offline"
    info = PROVIDERS.get(provider)
    return info.label if info else provider


def _still_member(session_token: str | None, discussion_id: int, participant_id: int) -> bool:
    """Whether the tab's session still signs in the person who is this participant."""
    user = accounts.resolve(session_token)
    member = membership.member_of(discussion_id, user) if user else None
    return member is not None and member.id == participant_id


def _check_row(item) -> CheckRow:
    return CheckRow(key=item.key, label=item.label, required=item.required, status=item.status, detail=item.detail)


def _money(x: float) -> str:
    return f"${x:.4f}" if x < 1 else f"${x:.2f}"


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

    _did: int = 0
    _last_seq: int = 0  # the last persisted event applied to this view
    _rows: dict[int, MessageRow] = {}
    _changed: dict[int, MessageRow] = {}  # rows (as sent) changed since `tx` was last set
    _tx_gen: int = 0  # the gen of the last `tx`
    _row_gen: dict[int, int] = {}  # row id -> the gen of the delta that last carried it
    _cost: dict[int, float] = {}
    _me: int = 0  # my participant id
    _seen: dict[int, float] = {}  # participant id -> wall time of the last presence beat
    _typing: dict[int, float] = {}  # participant id -> monotonic time until which "typing" shows
    _typed_at: float = 0.0
    _draft_key: str = ""  # one per message being written: a post retried after a lost reply is stored once

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
        self.my_role_label = ROLE_LABELS[Role(me.role)] if me.role in Role._value2member_map_ else ""
        self.can_message = Permission.MESSAGE in permissions(me.role, is_owner=me.is_owner)
        self.can_vote = Permission.VOTE in permissions(me.role)
        self.can_approve = Permission.APPROVE in permissions(me.role)
        await run_db(mentions.mark_seen, did, self._me)
        if self._did == did and self._last_seq > 0:
            self._send_all_rows()  # a reloaded page has none of them
            if self.status in ("draft", "paused"):
                return [RoomState.follow, RoomState.run_checks(False)]
            return RoomState.follow
        self._last_seq = 0
        participants = await run_db(discussions.list_participants, did)
        self.found = True
        self._did = did
        self.topic = discussion.topic
        self.status = discussion.status
        self.rounds = discussion.rounds
        self.vote_rule = discussion.vote_rule or ""
        self.protocol_label = get_protocol(discussion.protocol).label
        self.agents = [
            AgentRow(
                id=p.id or 0,
                name=p.name,
                provider=p.provider or "",
                model=p.model or "",
                offline=p.provider == "offline",
                status="idle",
                elapsed=0,
                turn=0,
                tokens=0,
                cost=_money(0),
                latency="",
                error="",
                detail="",
            )
            for p in participants
            if p.kind == "agent"
        ]
        self.has_offline_agent = any(a["offline"] for a in self.agents)
        people = await run_db(membership.people, did)
        self._seen = {p.id or 0: p.last_seen_at.timestamp() for p, _u in people if p.last_seen_at}
        self._typing = {}
        self.humans = [
            HumanRow(
                id=p.id or 0,
                name=p.name,
                username=u,
                role=p.role or "",
                role_label=ROLE_LABELS[Role(p.role)] if p.role in Role._value2member_map_ else "",
                owner=p.is_owner,
                online=p.id == self._me or presence.is_online(p.last_seen_at),
                typing=False,
            )
            for p, u in people
        ]
        self.prompts, self._prompt_roles = [], {}
        self.join_link, self.join_links, self.people_notice = "", [], ""
        self.pause_reason = discussion.pause_reason or ""
        self.budget_tokens = str(discussion.budget_tokens or "")
        self.budget_usd = f"{discussion.budget_usd:g}" if discussion.budget_usd else ""
        self._rows, self.streams = {}, []
        self._send_all_rows()
        self.total_tokens, self.total_cost, self.notice = 0, _money(0), ""
        self._cost = {}
        (await self.get_state(LiveState))._clear()
        (await self.get_state(DeliberationState))._reset(did)
        self.checks, self.check_score, self.check_ready = [], 0, False
        if discussion.status in ("draft", "paused"):
            return [RoomState.follow, RoomState.run_checks(False)]
        return RoomState.follow

    @rx.event(background=True)
    async def run_checks(self, fresh: bool):
        """Run the preflight checklist; items appear as they are decided; Run Agents waits for it."""
        async with self:
            if self.checking or not self._did:
                return
            self.checking, did = True, self._did
            self.checks = []

        async def show(item) -> None:
            async with self:
                self.checks = [*[c for c in self.checks if c["key"] != item.key], _check_row(item)]

        try:
            result = await preflight.run_preflight(did, fresh=fresh, on_item=show)
        except NotFound:
            async with self:
                self.checking = False
            return
        async with self:
            self.checks = [_check_row(i) for i in result.items]
            self.check_score, self.check_ready, self.checking = result.score, result.ready, False

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
        try:
            with viewer_active():
                async with follower:
                    async for batch in follower.batches():
                        if me and time.monotonic() >= next_beat:  # this tab is here: the person is online
                            next_beat = time.monotonic() + presence.BEAT_S
                            if not await run_db(_still_member, session, did, me):
                                return  # signed out (perhaps everywhere) or removed: the room stops coming
                            await room.heartbeat(discussion_id=did, participant_id=me)
                        if not batch and not self._typing:
                            continue
                        async with self:
                            if self._did != did:
                                return  # the tab moved to another room
                            await self._apply(batch)
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
        live = await self.get_state(LiveState)
        deliberation: DeliberationState | None = None
        for event in batch.events:
            if event.seq <= self._last_seq:
                continue  # applied already (a replay overlapping live events): counters must not count twice
            self._last_seq = event.seq
            if isinstance(event, DiscussionCreated):
                self.rounds = event.rounds  # a replay from the start: each sign-off below adds its extra rounds
            elif isinstance(event, DELIBERATION_EVENTS):
                deliberation = deliberation or await self.get_state(DeliberationState)
                deliberation._apply(event)
                if isinstance(event, DecisionSignedOff):  # the gate moves the room on: reopened or closed
                    reopened = event.outcome == "more_discussion"
                    self.status = "running" if reopened else "completed"
                    self.rounds += event.extra_rounds
            else:
                self._apply_event(event, live, batch.streamed)
        for signal in batch.signals:
            if isinstance(signal, Presence):
                self._seen[signal.participant_id] = time.time()
            elif isinstance(signal, Typing) and signal.participant_id != self._me:
                self._typing[signal.participant_id] = time.monotonic() + TYPING_SHOWN_S
        self._refresh_presence()
        self._send_changed_rows()
        for start_seq, (start, text) in batch.deltas.items():
            key = f"t{start_seq}"
            if self.verbosity == "tokens":  # other viewers skip streamed text: nothing crosses the wire for it
                live._put(key, start, text)
            for agent in self.agents:
                if agent["status"] in ("thinking", "retrying") and any(
                    s["key"] == key and s["author"] == agent["name"] for s in self.streams
                ):
                    agent["status"] = "streaming"

    def _refresh_presence(self) -> None:
        """Online = a beat within the last few seconds (or it is me); typing shows for a few seconds."""
        now, mono = time.time(), time.monotonic()
        self._typing = {pid: until for pid, until in self._typing.items() if until > mono}
        for human in self.humans:
            online = human["id"] == self._me or now - self._seen.get(human["id"], 0) < presence.ONLINE_FOR_S
            typing = human["id"] in self._typing
            if human["online"] != online or human["typing"] != typing:  # write only on change: rows resend whole
                human["online"], human["typing"] = online, typing

    def _agent(self, participant_id: int) -> AgentRow | None:
        return next((a for a in self.agents if a["id"] == participant_id), None)

    def _apply_event(self, event: RoomEvent, live: LiveState, streamed: dict[int, int] | None = None) -> None:
        if isinstance(event, RunStarted):
            self.status = "running"
            self.pause_reason = ""
            for agent in self.agents:
                if agent["status"] == "idle":
                    agent["status"] = "queued"
        elif isinstance(event, TurnStatus):
            agent = self._agent(event.participant_id)
            if agent and any(s["key"] == f"t{event.start_seq}" for s in self.streams):
                # "thinking" after a wait for the model: its first tokens may have got here first
                if not (event.status == "thinking" and agent["status"] == "streaming"):
                    agent["status"], agent["detail"] = event.status, event.detail
        elif isinstance(event, TurnRetryRequested):
            row = self._rows.get(event.message_id)
            if row is not None:
                self._upsert({**row, "status": "queued"})
            agent = self._agent(event.participant_id)
            if agent:
                agent["status"], agent["error"] = "queued", ""
        elif isinstance(event, DiscussionPaused):
            self.status = "paused"
            self.pause_reason = event.reason
            self.streams = []
            live._clear()
        elif isinstance(event, TurnStarted):
            agent = self._agent(event.participant_id)
            if agent:
                # How long it has run already (a replay after a reconnect, a viewer joining mid-turn); the page's
                # clock counts on from there, so the server never sends a tick per second.
                ran = int((utcnow() - event.at).total_seconds()) if event.at else 0
                agent["status"], agent["error"], agent["detail"] = "thinking", "", ""
                agent["elapsed"], agent["turn"] = max(0, ran), event.seq
            self.streams = [s for s in self.streams if s["author"] != event.author_name] + [
                StreamRow(
                    key=f"t{event.seq}",
                    author=event.author_name,
                    provider_label=_label(agent["provider"]) if agent else "",
                    model=agent["model"] if agent else "",
                    round=event.round,
                    label=event.label,
                )
            ]
        elif isinstance(event, TurnCompleted | TurnFailed):
            key = f"t{event.start_seq}"
            stream = next((s for s in self.streams if s["key"] == key), None)
            self.streams = [s for s in self.streams if s["key"] != key]
            live._finish(key)
            agent = self._agent(event.participant_id)
            row = MessageRow(
                id=event.message_id,
                author=stream["author"] if stream else (agent["name"] if agent else "?"),
                kind="agent",
                provider_label=_label(agent["provider"]) if agent else "",
                model=agent["model"] if agent else "",
                round=stream["round"] if stream else 0,
                content="",
                status="complete",
                error="",
                meta="",
                label=stream["label"] if stream else "",
                stream="",
                skip=0,
            )
            if isinstance(event, TurnCompleted):
                row["content"] = event.content
                approx = "≈" if event.tokens_estimated else ""
                cached = f" ({event.cached_tokens} cached)" if event.cached_tokens else ""
                row["meta"] = (
                    f"{approx}{event.input_tokens} in{cached} / {approx}{event.output_tokens} out tokens"
                    f"{' (estimated: the server sent no usage)' if approx else ''} · {event.latency_ms / 1000:.1f}s"
                    f" · {_money(event.cost_usd)}"
                )
                if agent:
                    agent["status"], agent["detail"] = "done", ""
                    agent["tokens"] += event.input_tokens + event.output_tokens
                    self._cost[agent["id"]] = self._cost.get(agent["id"], 0.0) + event.cost_usd
                    agent["cost"] = _money(self._cost[agent["id"]])
                    agent["latency"] = f"{event.latency_ms / 1000:.1f}s"
                self.total_tokens += event.input_tokens + event.output_tokens
                self.total_cost = _money(sum(self._cost.values()))
            else:
                row["content"] = event.partial_content
                row["status"] = "failed"
                row["error"] = f"{event.error_kind}: {event.error_message}"
                if event.input_tokens or event.output_tokens:  # billed before it broke
                    row["meta"] = (
                        f"≈{event.input_tokens} in / ≈{event.output_tokens} out tokens (estimated: the call broke)"
                        f" · {_money(event.cost_usd)}"
                    )
                if agent:
                    agent["status"], agent["detail"] = "failed", ""
                    agent["error"] = event.error_message
                    agent["tokens"] += event.input_tokens + event.output_tokens
                    self._cost[agent["id"]] = self._cost.get(agent["id"], 0.0) + event.cost_usd
                    agent["cost"] = _money(self._cost[agent["id"]])
                self.total_tokens += event.input_tokens + event.output_tokens
                self.total_cost = _money(sum(self._cost.values()))
            shown = (streamed or {}).get(event.start_seq, 0) if self.verbosity == "tokens" else 0
            self._upsert(row, streamed=(key, shown) if stream else None)
        elif isinstance(event, CallRecorded):  # consensus, a ballot, the synthesis, a summary: it costs too
            agent = self._agent(event.participant_id) if event.participant_id else None
            tokens = event.input_tokens + event.output_tokens
            if agent:
                agent["tokens"] += tokens
                self._cost[agent["id"]] = self._cost.get(agent["id"], 0.0) + event.cost_usd
                agent["cost"] = _money(self._cost[agent["id"]])
            self.total_tokens += tokens
            self.total_cost = _money(sum(self._cost.values()))
        elif isinstance(event, StepReport):
            if event.failed or event.warning:
                failures = "\n".join(f"- **{f['participant']}**: {f['error']}" for f in event.failed)
                self._upsert(
                    MessageRow(
                        id=-event.seq,
                        author=f"Maestro · {event.step}",
                        kind="report",
                        provider_label="",
                        model="",
                        round=0,
                        content=f"{event.warning or ''}\n\n{failures}".strip(),
                        status="complete",
                        error="",
                        meta=f"{len(event.succeeded)} of {len(event.succeeded) + len(event.failed)} agents answered",
                        label="",
                        stream="",
                        skip=0,
                    )
                )
        elif isinstance(event, ContextSummarised):
            self._upsert(
                MessageRow(
                    id=-event.seq,  # not a message: keyed by its event so it never collides with one
                    author=f"Earlier turns summarised for {event.author_name}",
                    kind="summary",
                    provider_label="",
                    model="",
                    round=0,
                    content=event.summary,
                    status="complete",
                    error="",
                    meta=f"{event.covered} messages no longer fitted {event.author_name}'s context window",
                    label="",
                    stream="",
                    skip=0,
                )
            )
        elif isinstance(event, MemberChanged):
            row = HumanRow(
                id=event.participant_id,
                name=event.name,
                username=event.username,
                role=event.role,
                role_label=ROLE_LABELS[Role(event.role)] if event.role in Role._value2member_map_ else "",
                owner=event.is_owner,
                online=event.participant_id == self._me,
                typing=False,
            )
            others = [h for h in self.humans if h["id"] != event.participant_id]
            self.humans = [*others, row]
            if event.participant_id == self._me and event.role != self.my_role:
                self.my_role, self.my_role_label = event.role, row["role_label"]
                self.can_message = Permission.MESSAGE in permissions(event.role, is_owner=self.is_owner)
                self.can_vote = Permission.VOTE in permissions(event.role)
                self.can_approve = Permission.APPROVE in permissions(event.role)
                self.prompts = [{**p, "mine": self._targets_me(p)} for p in self.prompts]  # type: ignore[misc]
        elif isinstance(event, HumanInputRequested):
            row = PromptRow(
                id=event.prompt_id,
                kind=event.kind,
                prompt=event.prompt,
                options=event.options,
                targets=event.targets_label,
                deadline=event.deadline_at.isoformat(),
                default=event.default_answer,
                blocking=event.blocking,
                status="open",
                answer="",
                answered_by="",
                mine=False,
            )
            self._prompt_roles[event.prompt_id] = (event.target_roles, event.target_users)
            row["mine"] = self._targets_me(row)
            self.prompts = [*[p for p in self.prompts if p["id"] != event.prompt_id], row]
        elif isinstance(event, HumanInputAnswered):
            for prompt in self.prompts:
                if prompt["id"] == event.prompt_id:
                    prompt["status"] = "expired" if event.defaulted else "answered"
                    prompt["answer"], prompt["answered_by"] = event.answer, event.answered_by
                    self._upsert(
                        MessageRow(
                            id=-event.seq,
                            author=event.answered_by if not event.defaulted else "Maestro",
                            kind="answer",
                            provider_label="",
                            model="",
                            round=0,
                            content=event.answer,
                            status="complete",
                            error="",
                            meta=(
                                f"default applied: nobody answered “{prompt['prompt']}” in time"
                                if event.defaulted
                                else f"answered “{prompt['prompt']}”"
                            ),
                            label="",
                            stream="",
                            skip=0,
                        )
                    )
        elif isinstance(event, HumanMessagePosted):
            self._upsert(
                MessageRow(
                    id=event.message_id,
                    author=event.author_name,
                    kind="human",
                    provider_label="",
                    model="",
                    round=0,
                    content=event.content,
                    status="complete",
                    error="",
                    meta="",
                    label="",
                    stream="",
                    skip=0,
                )
            )
        elif isinstance(event, DiscussionFinished):
            self.status = event.status
            self.streams = []
            live._clear()
            for agent in self.agents:
                if agent["status"] in ("queued", "thinking", "streaming", "slow", "retrying"):
                    agent["status"] = "idle"

    _prompt_roles: dict[int, tuple[list[str], list[str]]] = {}

    def _targets_me(self, row: PromptRow) -> bool:
        roles, users = self._prompt_roles.get(row["id"], ([], []))
        me = next((h for h in self.humans if h["id"] == self._me), None)
        return prompt_targets_me(roles, users, self.my_role, me["username"] if me else "")

    def _upsert(self, row: MessageRow, *, streamed: tuple[str, int] | None = None) -> None:
        """Add or replace a row; `streamed` = (stream key, characters of it this page already shows)."""
        self._rows[row["id"]] = row
        self._row_gen[row["id"]] = self._tx_gen + 1  # the delta that will carry it
        if streamed and streamed[1] > 0:
            key, skip = streamed
            row = {**row, "content": row["content"][skip:], "stream": key, "skip": skip}  # type: ignore[typeddict-item]
        self._changed[row["id"]] = row

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

    # --- actions ---------------------------------------------------------------------------------------

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
            self.checks = [_check_row(i) for i in err.result.items]
            self.check_score, self.check_ready = err.result.score, err.result.ready
            return
        if problem:
            self.notice = problem

    @rx.event
    def set_verbosity(self, value: str):
        """Follow every token, finished messages only, or syntheses only (this tab only)."""
        if value in ("tokens", "messages", "syntheses"):
            self.verbosity = value

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

    async def _actor(self):
        """Who is acting: resolved from this browser's session token on the server, for every action."""
        return await (await self.get_state(AuthState)).current_user()

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
            token = await run_db(
                membership.create_join_link,
                self._did,
                actor,
                str(form.get("role", "contributor")),
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
            await run_db(membership.revoke_join_link, self._did, int(link_id), actor)
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
            links = await run_db(membership.list_join_links, self._did, actor)
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
