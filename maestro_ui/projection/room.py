"""The room's view projected from its event log: header, agents with live status, people, prompts, streams in
flight, the transcript's rows and the running totals.

`project(view, events)` returns the new view and what the page must be sent; it never changes the view it is given.
Events apply once each (a replay overlapping live events skips what it already applied), so the view after a
reconnect's replay equals the one built live. The time a turn has run is measured against `now`, passed in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from backend.events.schema import (
    BudgetChanged,
    CallRecorded,
    ConsensusUpdated,
    ContextSummarised,
    DecisionProposed,
    DecisionSignedOff,
    DiscussionCreated,
    DiscussionFinished,
    DiscussionPaused,
    HumanInputAnswered,
    HumanInputRequested,
    HumanMessagePosted,
    MemberChanged,
    PollClosed,
    PollOpened,
    RoomEvent,
    RunStarted,
    StepReport,
    TurnCompleted,
    TurnFailed,
    TurnRetryRequested,
    TurnStarted,
    TurnStatus,
    VoteCast,
)
from backend.humans.prompts import prompt_targets_me
from backend.humans.roles import Permission, permissions
from backend.models.base import utcnow
from maestro_ui.projection.rows import (
    AgentRow,
    HumanRow,
    MessageRow,
    PromptRow,
    StreamRow,
    agent_row,
    human_row,
    message_row,
    money,
    provider_label,
    role_label,
)

__all__ = [
    "AgentRow",
    "HumanRow",
    "MessageRow",
    "Projected",
    "PromptRow",
    "RoomView",
    "StreamRow",
    "agent_row",
    "agent_tokens_label",
    "human_row",
    "money",
    "presence",
    "project",
    "role_label",
]

# The consensus panel, the vote and the decision card: projected apart (projection/deliberation.py), so a vote
# does not resend the transcript.
DELIBERATION_EVENTS = (ConsensusUpdated, PollOpened, VoteCast, PollClosed, DecisionProposed, DecisionSignedOff)
BUSY = ("queued", "thinking", "streaming", "slow", "retrying")  # an agent's turn is in flight


def agent_tokens_label(tokens_in: int, tokens_out: int, *, estimated: bool = False, streamed_chars: int = 0) -> str:
    """An agent's tokens as the sidebar shows them: "1,204 in · 240 out" ("≈" on each when `estimated`), and
    "writing…" while a turn streams (never "0 tokens" then). No running count: the row would be re-sent to every
    viewer with every batch of text (bench/stream_bytes.py measured 5.4x the reply's bytes with one, 1.9x without)."""
    approx = "≈" if estimated else ""
    spent = f"{approx}{tokens_in:,} in · {approx}{tokens_out:,} out" if tokens_in or tokens_out else ""
    if streamed_chars > 0:
        return f"{spent} · writing…" if spent else "writing…"
    return spent or "0 tokens"


@dataclass
class RoomView:
    """The fields RoomState holds for one viewer (`me`, a participant id, and `is_owner` are set when the room loads)."""

    me: int = 0
    is_owner: bool = False
    status: str = ""
    rounds: int = 0
    pause_reason: str = ""
    agents: list[AgentRow] = field(default_factory=list)
    humans: list[HumanRow] = field(default_factory=list)
    prompts: list[PromptRow] = field(default_factory=list)
    streams: list[StreamRow] = field(default_factory=list)
    total_tokens: int = 0
    total_cost: str = money(0)
    my_role: str = ""
    my_role_label: str = ""
    can_message: bool = False
    can_vote: bool = False
    can_approve: bool = False
    rows: dict[int, MessageRow] = field(default_factory=dict)  # the whole transcript, by row id
    costs: dict[int, float] = field(default_factory=dict)  # agent id -> dollars spent
    prompt_targets: dict[int, tuple[list[str], list[str]]] = field(default_factory=dict)  # roles, usernames
    last_seq: int = 0  # the last persisted event applied
    budget_tokens: str = ""  # the budgets as the owner's form shows them ("" = no limit)
    budget_usd: str = ""


@dataclass
class Projected:
    """The new view, and what the page must be sent besides its fields."""

    view: RoomView
    sent: dict[int, MessageRow] = field(default_factory=dict)  # changed rows as sent (watched stream text cut)
    live: list[tuple[str, str]] = field(default_factory=list)  # in order: ("finish", stream key) or ("clear", "")
    deliberation: list[RoomEvent] = field(default_factory=list)  # for the deliberation panel, in order


def project(
    view: RoomView,
    events: Iterable[RoomEvent],
    *,
    streamed: dict[int, int] | None = None,
    streaming: Iterable[int] | Mapping[int, tuple[int, str]] = (),
    tokens_shown: bool = True,
    now: datetime | None = None,
) -> Projected:
    """Apply `events` to a copy of `view`.

    `streamed`: for turns that finished, how many characters this viewer was sent while they streamed (not sent
    again when `tokens_shown`, i.e. the viewer follows every token); `streaming`: start seqs of turns whose text
    arrived in this batch (their agents are streaming now), or the batch's deltas (start seq -> (start, text)), whose
    length so far gives an estimate of the tokens the agent has written."""
    step = _Step(_copy(view), streamed or {}, tokens_shown, now or utcnow())
    for event in events:
        if event.seq <= step.view.last_seq:
            continue  # applied already (a replay overlapping live events): counters must not count twice
        step.view.last_seq = event.seq
        if isinstance(event, DELIBERATION_EVENTS):
            step.deliberating(event)
        elif (apply := _APPLY.get(type(event))) is not None:
            apply(step, event)
    for start_seq in streaming:
        step.streaming(f"t{start_seq}")
    if isinstance(streaming, Mapping):
        for start_seq, (start, text) in streaming.items():
            step.streamed_chars(start_seq, start + len(text))
    return step.out


def presence(
    humans: list[HumanRow], *, me: int, seen: dict[int, float], typing: set[int], now: float, online_for: float
) -> list[HumanRow]:
    """Online = a beat within `online_for` seconds of `now` (or it is me); typing = in `typing`. A row is replaced
    only when it changes (rows are resent whole)."""
    out = []
    for human in humans:
        online = human["id"] == me or now - seen.get(human["id"], 0) < online_for
        is_typing = human["id"] in typing
        changed = human["online"] != online or human["typing"] != is_typing
        out.append(HumanRow(**{**human, "online": online, "typing": is_typing}) if changed else human)
    return out


def _copy(view: RoomView) -> RoomView:
    """A copy the projection may change: rows are replaced whole, never changed in place, so they are shared."""
    return replace(
        view,
        agents=[AgentRow(**a) for a in view.agents],
        humans=[HumanRow(**h) for h in view.humans],
        prompts=[PromptRow(**p) for p in view.prompts],
        streams=list(view.streams),
        rows=dict(view.rows),
        costs=dict(view.costs),
        prompt_targets=dict(view.prompt_targets),
    )


def label_tokens(agent: AgentRow) -> None:
    """Set the agent row's `tokens_label` from its token fields."""
    agent["tokens_label"] = agent_tokens_label(
        agent["tokens_in"],
        agent["tokens_out"],
        estimated=agent["tokens_estimated"],
        streamed_chars=agent["streamed_chars"],
    )


class _Step:
    """One batch being applied: the view under change and what it sends."""

    def __init__(self, view: RoomView, streamed: dict[int, int], tokens_shown: bool, now: datetime) -> None:
        self.view, self.streamed, self.tokens_shown, self.now = view, streamed, tokens_shown, now
        self.out = Projected(view)

    def agent(self, participant_id: int | None) -> AgentRow | None:
        return next((a for a in self.view.agents if a["id"] == participant_id), None) if participant_id else None

    def upsert(self, row: MessageRow, *, shown: tuple[str, int] | None = None) -> None:
        """Add or replace a row; `shown` = (stream key, characters of it this page already shows)."""
        self.view.rows[row["id"]] = row
        if shown and shown[1] > 0:
            key, skip = shown
            row = MessageRow(**{**row, "content": row["content"][skip:], "stream": key, "skip": skip})
        self.out.sent[row["id"]] = row

    def spend(self, agent: AgentRow | None, tokens_in: int, tokens_out: int, estimated: bool, cost_usd: float) -> None:
        """Count a call's tokens and cost toward its agent (if any) and the room's totals."""
        view = self.view
        tokens = tokens_in + tokens_out
        if agent:
            agent["tokens"] += tokens
            agent["tokens_in"] += tokens_in
            agent["tokens_out"] += tokens_out
            agent["tokens_estimated"] = agent["tokens_estimated"] or (estimated and tokens > 0)
            label_tokens(agent)
            view.costs[agent["id"]] = view.costs.get(agent["id"], 0.0) + cost_usd
            agent["cost"] = money(view.costs[agent["id"]])
        view.total_tokens += tokens
        view.total_cost = money(sum(view.costs.values()))

    def targets_me(self, prompt_id: int) -> bool:
        roles, users = self.view.prompt_targets.get(prompt_id, ([], []))
        me = next((h for h in self.view.humans if h["id"] == self.view.me), None)
        return prompt_targets_me(roles, users, self.view.my_role, me["username"] if me else "")

    def streaming(self, key: str) -> None:
        """The turn's first text arrived: its agent is streaming (a "thinking" or "retrying" one)."""
        for agent in self.view.agents:
            if agent["status"] in ("thinking", "retrying") and any(
                s["key"] == key and s["author"] == agent["name"] for s in self.view.streams
            ):
                agent["status"] = "streaming"

    def streamed_chars(self, start_seq: int, chars: int) -> None:
        """The turn started at `start_seq` has streamed `chars` characters so far: its agent's estimate follows."""
        key = f"t{start_seq}"
        for agent in self.view.agents:
            if (
                agent["turn"] == start_seq
                and agent["status"] in BUSY
                and any(s["key"] == key for s in self.view.streams)
            ):
                if not agent["streamed_chars"]:  # the first text only: later batches leave the row alone
                    agent["streamed_chars"] = chars
                    label_tokens(agent)

    def end_streams(self) -> None:
        self.view.streams = []
        for agent in self.view.agents:
            if agent["streamed_chars"]:  # no turn streams now: no estimate of one
                agent["streamed_chars"] = 0
                label_tokens(agent)
        self.out.live.append(("clear", ""))

    # --- one method per event type ------------------------------------------------------------------------------

    def deliberating(self, event: RoomEvent) -> None:
        self.out.deliberation.append(event)
        if isinstance(event, DecisionSignedOff):  # the gate moves the room on: reopened or closed
            self.view.status = "running" if event.outcome == "more_discussion" else "completed"
            self.view.rounds += event.extra_rounds

    def created(self, event: DiscussionCreated) -> None:
        self.view.rounds = event.rounds  # a replay from the start: each sign-off adds its extra rounds

    def run_started(self, event: RunStarted) -> None:
        self.view.status, self.view.pause_reason = "running", ""
        for agent in self.view.agents:
            if agent["status"] == "idle":
                agent["status"] = "queued"

    def turn_status(self, event: TurnStatus) -> None:
        agent = self.agent(event.participant_id)
        if agent and any(s["key"] == f"t{event.start_seq}" for s in self.view.streams):
            # "thinking" after a wait for the model: its first tokens may have got here first
            if not (event.status == "thinking" and agent["status"] == "streaming"):
                agent["status"], agent["detail"] = event.status, event.detail

    def retry_requested(self, event: TurnRetryRequested) -> None:
        row = self.view.rows.get(event.message_id)
        if row is not None:
            self.upsert(MessageRow(**{**row, "status": "queued"}))
        if agent := self.agent(event.participant_id):
            agent["status"], agent["error"] = "queued", ""

    def paused(self, event: DiscussionPaused) -> None:
        self.view.status, self.view.pause_reason = "paused", event.reason
        self.end_streams()

    def turn_started(self, event: TurnStarted) -> None:
        agent = self.agent(event.participant_id)
        if agent:
            # How long it has run already (a replay after a reconnect, a viewer joining mid-turn); the page's
            # clock counts on from there, so the server never sends a tick per second.
            ran = int((self.now - event.at).total_seconds()) if event.at else 0
            agent["status"], agent["error"], agent["detail"] = "thinking", "", ""
            agent["elapsed"], agent["turn"] = max(0, ran), event.seq
            agent["streamed_chars"] = 0
            label_tokens(agent)
        stream = StreamRow(
            key=f"t{event.seq}",
            author=event.author_name,
            provider_label=provider_label(agent["provider"]) if agent else "",
            model=agent["model"] if agent else "",
            round=event.round,
            label=event.label,
        )
        self.view.streams = [s for s in self.view.streams if s["author"] != event.author_name] + [stream]

    def turn_ended(self, event: TurnCompleted | TurnFailed) -> None:
        key = f"t{event.start_seq}"
        stream = next((s for s in self.view.streams if s["key"] == key), None)
        self.view.streams = [s for s in self.view.streams if s["key"] != key]
        self.out.live.append(("finish", key))
        agent = self.agent(event.participant_id)
        tokens = event.input_tokens + event.output_tokens
        if agent:
            agent["streamed_chars"] = 0  # the reported (or estimated) figures replace the estimate from its text
        row = message_row(
            event.message_id,
            stream["author"] if stream else (agent["name"] if agent else "?"),
            "agent",
            "",
            provider_label=provider_label(agent["provider"]) if agent else "",
            model=agent["model"] if agent else "",
            round=stream["round"] if stream else 0,
            label=stream["label"] if stream else "",
        )
        if isinstance(event, TurnCompleted):
            approx = "≈" if event.tokens_estimated else ""
            cached = f" ({event.cached_tokens} cached)" if event.cached_tokens else ""
            row["content"] = event.content
            if event.finish_reason == "length":  # the model hit the reply cap mid-thought: say so, keep the text
                row["cut"] = f"… (cut off at the {approx}{event.output_tokens}-token reply limit)"
            row["meta"] = (
                f"{approx}{event.input_tokens} in{cached} / {approx}{event.output_tokens} out tokens"
                f"{' (estimated: the server sent no usage)' if approx else ''} · {event.latency_ms / 1000:.1f}s"
                f" · {money(event.cost_usd)}"
            )
            if agent:
                agent["status"], agent["detail"] = "done", ""
                agent["latency"] = f"{event.latency_ms / 1000:.1f}s"
        else:
            row["content"], row["status"] = event.partial_content, "failed"
            row["error"] = f"{event.error_kind}: {event.error_message}"
            if tokens:  # billed before it broke
                row["meta"] = (
                    f"≈{event.input_tokens} in / ≈{event.output_tokens} out tokens (estimated: the call broke)"
                    f" · {money(event.cost_usd)}"
                )
            if agent:
                agent["status"], agent["detail"], agent["error"] = "failed", "", event.error_message
        estimated = event.tokens_estimated if isinstance(event, TurnCompleted) else True  # a broken call: estimated
        self.spend(agent, event.input_tokens, event.output_tokens, estimated, event.cost_usd)
        shown = self.streamed.get(event.start_seq, 0) if self.tokens_shown else 0
        self.upsert(row, shown=(key, shown) if stream else None)

    def call_recorded(self, event: CallRecorded) -> None:  # consensus, a ballot, the synthesis, a summary: it costs
        agent = self.agent(event.participant_id)
        self.spend(agent, event.input_tokens, event.output_tokens, event.tokens_estimated, event.cost_usd)

    def step_report(self, event: StepReport) -> None:
        if event.failed or event.warning:
            failures = "\n".join(f"- **{f['participant']}**: {f['error']}" for f in event.failed)
            answered = f"{len(event.succeeded)} of {len(event.succeeded) + len(event.failed)} agents answered"
            content = f"{event.warning or ''}\n\n{failures}".strip()
            self.upsert(message_row(-event.seq, f"Maestro · {event.step}", "report", content, meta=answered))

    def summarised(self, event: ContextSummarised) -> None:
        meta = f"{event.covered} messages no longer fitted {event.author_name}'s context window"
        author = f"Earlier turns summarised for {event.author_name}"
        self.upsert(message_row(-event.seq, author, "summary", event.summary, meta=meta))

    def member_changed(self, event: MemberChanged) -> None:
        view = self.view
        row = human_row(
            event.participant_id,
            event.name,
            event.username,
            event.role,
            owner=event.is_owner,
            online=event.participant_id == view.me,
        )
        view.humans = [*[h for h in view.humans if h["id"] != event.participant_id], row]
        if event.participant_id == view.me and event.role != view.my_role:
            view.my_role, view.my_role_label = event.role, row["role_label"]
            view.can_message = Permission.MESSAGE in permissions(event.role, is_owner=view.is_owner)
            view.can_vote = Permission.VOTE in permissions(event.role)
            view.can_approve = Permission.APPROVE in permissions(event.role)
            view.prompts = [PromptRow(**{**p, "mine": self.targets_me(p["id"])}) for p in view.prompts]

    def budget_changed(self, event: BudgetChanged) -> None:
        self.view.budget_tokens = str(event.budget_tokens or "")
        self.view.budget_usd = f"{event.budget_usd:g}" if event.budget_usd else ""

    def prompt_asked(self, event: HumanInputRequested) -> None:
        self.view.prompt_targets[event.prompt_id] = (event.target_roles, event.target_users)
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
            mine=self.targets_me(event.prompt_id),
        )
        self.view.prompts = [*[p for p in self.view.prompts if p["id"] != event.prompt_id], row]

    def prompt_answered(self, event: HumanInputAnswered) -> None:
        for prompt in self.view.prompts:
            if prompt["id"] == event.prompt_id:
                prompt["status"] = "expired" if event.defaulted else "answered"
                prompt["answer"], prompt["answered_by"] = event.answer, event.answered_by
                meta = (
                    f"default applied: nobody answered “{prompt['prompt']}” in time"
                    if event.defaulted
                    else f"answered “{prompt['prompt']}”"
                )
                author = event.answered_by if not event.defaulted else "Maestro"
                self.upsert(message_row(-event.seq, author, "answer", event.answer, meta=meta))

    def message_posted(self, event: HumanMessagePosted) -> None:
        self.upsert(message_row(event.message_id, event.author_name, "human", event.content))

    def finished(self, event: DiscussionFinished) -> None:
        self.view.status = event.status
        self.end_streams()
        for agent in self.view.agents:
            if agent["status"] in BUSY:
                agent["status"] = "idle"


_APPLY: dict[type, Callable[[_Step, RoomEvent], None]] = {  # type: ignore[dict-item]
    DiscussionCreated: _Step.created,
    RunStarted: _Step.run_started,
    TurnStatus: _Step.turn_status,
    TurnRetryRequested: _Step.retry_requested,
    DiscussionPaused: _Step.paused,
    TurnStarted: _Step.turn_started,
    TurnCompleted: _Step.turn_ended,
    TurnFailed: _Step.turn_ended,
    CallRecorded: _Step.call_recorded,
    StepReport: _Step.step_report,
    ContextSummarised: _Step.summarised,
    MemberChanged: _Step.member_changed,
    BudgetChanged: _Step.budget_changed,
    HumanInputRequested: _Step.prompt_asked,
    HumanInputAnswered: _Step.prompt_answered,
    HumanMessagePosted: _Step.message_posted,
    DiscussionFinished: _Step.finished,
}
