"""RoomState: one tab's view of a discussion, built only from the event log (DESIGN decision 3).

On load the tab starts a background follower that replays persisted events (from seq 0, or after the last one
it applied when it reconnects), then applies live ones; events apply idempotently, so the state after a
reconnect equals a fresh load. Reflex cancels the follower when the tab closes, reloads or navigates away.
"""

from __future__ import annotations

import time
import uuid
from typing import TypedDict

import reflex as rx

from backend import preflight
from backend.db import run_db
from backend.events.bus import get_bus
from backend.events.follower import Batch, Follower
from backend.events.schema import (
    ContextSummarised,
    DiscussionFinished,
    DiscussionPaused,
    HumanMessagePosted,
    RoomEvent,
    RunStarted,
    StepReport,
    TurnCompleted,
    TurnFailed,
    TurnRetryRequested,
    TurnStarted,
    TurnStatus,
)
from backend.observability import viewer_active
from backend.orchestrator.runner import get_runner
from backend.providers.offline import OFFLINE_HINT
from backend.providers.registry import PROVIDERS
from backend.services import discussions, room
from backend.services.errors import InputError, NotFound
from maestro_ui.state.live import LiveState

# One follower per tab (client token), so a gap reported by the page can reach it.
_FOLLOWERS: dict[str, Follower] = {}


class AgentRow(TypedDict):
    id: int
    name: str
    provider: str
    provider_label: str
    model: str
    offline: bool
    status: str  # idle | queued | thinking | streaming | slow | retrying | done | failed
    elapsed: int
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


def _label(provider: str) -> str:
    if provider == "offline":
        return "Offline"
    info = PROVIDERS.get(provider)
    return info.label if info else provider


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
    agents: list[AgentRow] = []
    humans: list[str] = []
    messages: list[MessageRow] = []
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
    my_name: str = rx.LocalStorage("", name="maestro_name")
    offline_hint: str = OFFLINE_HINT

    _did: int = 0
    _last_seq: int = 0  # the last persisted event applied to this view
    _started_at: dict[int, float] = {}  # participant id -> monotonic start of its current turn
    _cost: dict[int, float] = {}

    @rx.var
    def has_offline_agent(self) -> bool:
        return any(a["offline"] for a in self.agents)

    @rx.var
    def can_run(self) -> bool:
        return self.status in ("draft", "paused") and self.check_ready and not self.checking

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
        try:
            did = int(self.discussion_id)  # type: ignore[attr-defined]
            discussion = await run_db(discussions.get_discussion, did)
        except (ValueError, NotFound):
            self.found = False
            return
        if self._did == did and self._last_seq > 0:
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
        self.agents = [
            AgentRow(
                id=p.id or 0,
                name=p.name,
                provider=p.provider or "",
                provider_label=_label(p.provider or ""),
                model=p.model or "",
                offline=p.provider == "offline",
                status="idle",
                elapsed=0,
                tokens=0,
                cost=_money(0),
                latency="",
                error="",
                detail="",
            )
            for p in participants
            if p.kind == "agent"
        ]
        self.humans = [p.name for p in participants if p.kind == "human"]
        self.pause_reason = discussion.pause_reason or ""
        self.budget_tokens = str(discussion.budget_tokens or "")
        self.budget_usd = f"{discussion.budget_usd:g}" if discussion.budget_usd else ""
        self.messages, self.streams = [], []
        self.total_tokens, self.total_cost, self.notice = 0, _money(0), ""
        self._started_at, self._cost = {}, {}
        (await self.get_state(LiveState))._clear()
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
            did, token, after = self._did, self.router.session.client_token, self._last_seq
        if not did:
            return
        follower = Follower(did, after_seq=after, bus=get_bus(), live_source=get_runner().live_text)
        _FOLLOWERS[token] = follower
        try:
            with viewer_active():
                async with follower:
                    async for batch in follower.batches():
                        if not batch and not self._started_at:
                            continue
                        async with self:
                            if self._did != did:
                                return  # the tab moved to another room
                            await self._apply(batch)
        finally:
            if _FOLLOWERS.get(token) is follower:
                _FOLLOWERS.pop(token, None)

    @rx.event
    def resync(self, _have: int):
        """The page saw a gap in streamed text: resend turns in flight whole."""
        follower = _FOLLOWERS.get(self.router.session.client_token)
        if follower:
            follower.resync()

    async def _apply(self, batch: Batch) -> None:
        live = await self.get_state(LiveState)
        for event in batch.events:
            self._last_seq = max(self._last_seq, event.seq)
            self._apply_event(event, live)
        for start_seq, (start, text) in batch.deltas.items():
            key = f"t{start_seq}"
            live._put(key, start, text)
            for agent in self.agents:
                if agent["status"] in ("thinking", "retrying") and any(
                    s["key"] == key and s["author"] == agent["name"] for s in self.streams
                ):
                    agent["status"] = "streaming"
        now = time.monotonic()
        for agent in self.agents:
            started = self._started_at.get(agent["id"])
            # Write only when the second changes: any write re-sends every agent row to the page.
            if started is not None and agent["elapsed"] != int(now - started):
                agent["elapsed"] = int(now - started)

    def _agent(self, participant_id: int) -> AgentRow | None:
        return next((a for a in self.agents if a["id"] == participant_id), None)

    def _apply_event(self, event: RoomEvent, live: LiveState) -> None:
        if isinstance(event, RunStarted):
            self.status = "running"
            self.pause_reason = ""
            for agent in self.agents:
                if agent["status"] == "idle":
                    agent["status"] = "queued"
        elif isinstance(event, TurnStatus):
            agent = self._agent(event.participant_id)
            if agent and any(s["key"] == f"t{event.start_seq}" for s in self.streams):
                agent["status"], agent["detail"] = event.status, event.detail
        elif isinstance(event, TurnRetryRequested):
            for row in self.messages:
                if row["id"] == event.message_id:
                    row["status"] = "queued"
            agent = self._agent(event.participant_id)
            if agent:
                agent["status"], agent["error"] = "queued", ""
        elif isinstance(event, DiscussionPaused):
            self.status = "paused"
            self.pause_reason = event.reason
            self.streams = []
            live._clear()
            self._started_at = {}
        elif isinstance(event, TurnStarted):
            agent = self._agent(event.participant_id)
            if agent:
                agent["status"], agent["error"], agent["elapsed"], agent["detail"] = "thinking", "", 0, ""
                self._started_at[event.participant_id] = time.monotonic()
            self.streams = [s for s in self.streams if s["author"] != event.author_name] + [
                StreamRow(
                    key=f"t{event.seq}",
                    author=event.author_name,
                    provider_label=agent["provider_label"] if agent else "",
                    model=agent["model"] if agent else "",
                    round=event.round,
                )
            ]
        elif isinstance(event, TurnCompleted | TurnFailed):
            key = f"t{event.start_seq}"
            stream = next((s for s in self.streams if s["key"] == key), None)
            self.streams = [s for s in self.streams if s["key"] != key]
            live._drop(key)
            self._started_at.pop(event.participant_id, None)
            agent = self._agent(event.participant_id)
            row = MessageRow(
                id=event.message_id,
                author=stream["author"] if stream else (agent["name"] if agent else "?"),
                kind="agent",
                provider_label=agent["provider_label"] if agent else "",
                model=agent["model"] if agent else "",
                round=stream["round"] if stream else 0,
                content="",
                status="complete",
                error="",
                meta="",
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
                if agent:
                    agent["status"], agent["detail"] = "failed", ""
                    agent["error"] = event.error_message
            self._upsert(row)
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
                )
            )
        elif isinstance(event, HumanMessagePosted):
            if event.author_name not in self.humans:
                self.humans.append(event.author_name)
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
                )
            )
        elif isinstance(event, DiscussionFinished):
            self.status = event.status
            self.streams = []
            live._clear()
            self._started_at = {}
            for agent in self.agents:
                if agent["status"] in ("queued", "thinking", "streaming", "slow", "retrying"):
                    agent["status"] = "idle"

    def _upsert(self, row: MessageRow) -> None:
        for i, existing in enumerate(self.messages):
            if existing["id"] == row["id"]:
                self.messages[i] = row
                return
        self.messages.append(row)

    # --- actions ---------------------------------------------------------------------------------------

    @rx.event
    async def run_agents(self):
        """Start (or resume) the discussion on the server; it keeps going if this tab closes."""
        self.notice = ""
        if not self.check_ready:
            self.notice = "Finish the preflight checklist first: every required item must pass."
            return
        try:
            problem = await room.run_agents(self._did)
        except NotFound:
            self.found = False
            return
        if problem:
            self.notice = problem

    @rx.event
    async def retry_message(self, message_id: int):
        """Run one failed agent turn again, alone."""
        self.notice = ""
        try:
            await room.retry_turn(discussion_id=self._did, message_id=message_id, requested_by=self.my_name)
        except (InputError, NotFound) as err:
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
            await room.set_budget(discussion_id=self._did, budget_tokens=tokens, budget_usd=usd)
        except InputError as err:
            self.notice = "; ".join(err.errors.values())
            return
        self.budget_tokens = str(tokens or "")
        self.budget_usd = f"{usd:g}" if usd else ""
        return RoomState.run_checks(False)

    @rx.event
    def set_draft(self, value: str):
        """Keep the composer's text."""
        self.draft = value

    @rx.event
    def set_my_name(self, value: str):
        """Remember who is typing (kept in this browser)."""
        self.my_name = value.strip()[:120]

    @rx.event
    async def post(self, _form: dict):
        """Post the composer's text; a second click while the first is in flight posts nothing."""
        if self.posting or not self.draft.strip():
            return
        self.posting = True
        self.notice = ""
        text, client_id = self.draft, uuid.uuid4().hex
        yield
        try:
            await room.post_message(
                discussion_id=self._did, author_name=self.my_name, content=text, client_id=client_id
            )
            self.draft = ""
        except InputError as err:
            self.notice = "; ".join(err.errors.values())
        finally:
            self.posting = False
