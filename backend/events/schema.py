"""Room events: what happens in a discussion, as typed data (DESIGN decision 2).

Persisted events carry a gapless per-discussion `seq`. `TokenDelta` is ephemeral: it travels on the bus only,
carrying the seq of the `TurnStarted` event of the message it belongs to plus its character offset, so a viewer
can place every piece exactly once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, TypeAdapter


class _Event(BaseModel):
    discussion_id: int
    seq: int = 0  # 0 until persisted; ephemeral events keep 0
    at: datetime | None = None


class DiscussionCreated(_Event):
    type: Literal["discussion_created"] = "discussion_created"
    topic: str
    rounds: int
    protocol: str


class RunStarted(_Event):
    type: Literal["run_started"] = "run_started"
    resumed: bool = False


class TurnStarted(_Event):
    """An agent began a turn (status: thinking)."""

    type: Literal["turn_started"] = "turn_started"
    message_id: int
    participant_id: int
    author_name: str
    round: int
    label: str = ""  # what the protocol asked of this turn: a debate stance ("for", "against"...) or "synthesis"


class TurnCompleted(_Event):
    """An agent's message finished; the content is final."""

    type: Literal["turn_completed"] = "turn_completed"
    message_id: int
    participant_id: int
    start_seq: int
    content: str
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    tokens_estimated: bool = False  # the server reported no usage: counts are estimates
    cost_usd: float = 0.0
    latency_ms: int = 0
    finish_reason: str = "stop"


class TurnFailed(_Event):
    """An agent's turn failed; the discussion goes on with the others."""

    type: Literal["turn_failed"] = "turn_failed"
    message_id: int
    participant_id: int
    start_seq: int
    error_kind: str
    error_message: str
    partial_content: str = ""
    # A call that failed after the model began writing was billed: its estimated tokens and cost count too.
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    tokens_estimated: bool = False


class TurnStatus(_Event):
    """A turn in flight changed status: "slow" (past its soft deadline), "retrying" (the SDK is retrying),
    "queued" (waiting for a shared model) or "thinking" (the model took it after the wait)."""

    type: Literal["turn_status"] = "turn_status"
    start_seq: int
    participant_id: int
    status: Literal["slow", "retrying", "queued", "thinking"]
    detail: str = ""


class TurnRetryRequested(_Event):
    """A human asked to run a failed turn again."""

    type: Literal["turn_retry_requested"] = "turn_retry_requested"
    message_id: int
    participant_id: int
    requested_by: str = ""


class DiscussionPaused(_Event):
    """The discussion stopped before its end (a budget was reached); Run Agents continues it."""

    type: Literal["discussion_paused"] = "discussion_paused"
    reason: str


class ContextSummarised(_Event):
    """An agent's transcript no longer fitted its context window: older turns were summarised for it."""

    type: Literal["context_summarised"] = "context_summarised"
    participant_id: int
    author_name: str
    summary: str
    covered_through_seq: int
    covered: int


class StepReport(_Event):
    """The outcome of a step several agents answered at once: who failed, and the partial-council warning."""

    type: Literal["step_report"] = "step_report"
    step: str
    succeeded: list[str]
    failed: list[dict[str, str]]  # {"participant", "error"}
    warning: str | None = None


class HumanMessagePosted(_Event):
    type: Literal["human_message"] = "human_message"
    message_id: int
    author_name: str
    content: str
    participant_id: int | None = None


class MemberChanged(_Event):
    """A person joined the discussion or their role changed (the owner invited them or they used a join link)."""

    type: Literal["member_changed"] = "member_changed"
    participant_id: int
    name: str
    username: str
    role: str
    is_owner: bool = False
    vote_weight: float = 1.0


class BudgetChanged(_Event):
    """The owner changed the token or cost budget (None: no limit); every open tab re-checks its checklist."""

    type: Literal["budget_changed"] = "budget_changed"
    budget_tokens: int | None = None
    budget_usd: float | None = None
    changed_by: str = ""


class HumanInputRequested(_Event):
    """A typed prompt to people in the room; a blocking one holds the agents until it is answered or expires."""

    type: Literal["human_input_requested"] = "human_input_requested"
    prompt_id: int
    kind: str
    prompt: str
    options: list[str] = []
    target_roles: list[str] = []
    target_users: list[str] = []
    targets_label: str = ""  # "Alex (decision maker)"
    deadline_at: datetime
    default_answer: str = ""
    blocking: bool = True
    created_by: str = ""


class HumanInputAnswered(_Event):
    """A prompt was answered (first answer wins) or its deadline applied the default (`defaulted`)."""

    type: Literal["human_input_answered"] = "human_input_answered"
    prompt_id: int
    answer: str
    answered_by: str
    defaulted: bool = False
    message_id: int | None = None  # the transcript entry agents see


class ConsensusUpdated(_Event):
    """Where the room agrees and disagrees after a round, as data; `error` says why detection failed instead."""

    type: Literal["consensus_updated"] = "consensus_updated"
    round: int
    report: dict | None = None  # backend.deliberation.consensus.ConsensusReport as JSON
    error: str | None = None


class PollOpened(_Event):
    """A vote began over `options` ({"id", "text"}) with one counting rule; the count waits for `voters` until the
    deadline (the must-approve person may vote too, but is not waited for)."""

    type: Literal["poll_opened"] = "poll_opened"
    poll_id: int
    question: str
    rule: str
    options: list[dict]
    voters: list[str] = []
    deadline_at: datetime
    exclude_own: bool = False


class VoteCast(_Event):
    """Someone voted (or changed their vote). How they voted stays hidden until the poll closes."""

    type: Literal["vote_cast"] = "vote_cast"
    poll_id: int
    participant_id: int
    voter_name: str
    voter_kind: str
    changed: bool = False


class PollClosed(_Event):
    """The count: winner or an explicit tie / no majority, the per-voter breakdown, and matrices for Schulze."""

    type: Literal["poll_closed"] = "poll_closed"
    poll_id: int
    result: dict


class DecisionProposed(_Event):
    """The synthesis: the decision card as data (title, rationale, breakdown, dissent, concerns, action plan)."""

    type: Literal["decision_proposed"] = "decision_proposed"
    decision_id: int
    decision: dict


class DecisionSignedOff(_Event):
    """The must-approve person's answer: approved (with conditions), overridden, or more discussion requested."""

    type: Literal["decision_signed_off"] = "decision_signed_off"
    decision_id: int
    outcome: str
    actor_name: str
    conditions: str = ""
    override_option: str | None = None
    reason: str = ""
    question: str = ""
    extra_rounds: int = 0


class CallRecorded(_Event):
    """A model call outside the agents' turns (consensus, a ballot, the synthesis, the facilitator, a summary)
    and what it cost, for the room's live totals; budgets count it too."""

    type: Literal["call_recorded"] = "call_recorded"
    participant_id: int | None = None
    purpose: str
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    tokens_estimated: bool = False
    cost_usd: float = 0.0
    latency_ms: int = 0


class DiscussionFinished(_Event):
    type: Literal["discussion_finished"] = "discussion_finished"
    status: str  # completed | failed
    elapsed_s: float = 0.0
    total_cost_usd: float = 0.0
    total_tokens: int = 0


class TokenDelta(_Event):
    """Ephemeral streamed text for the message started at `start_seq`, beginning at character `offset`."""

    type: Literal["token_delta"] = "token_delta"
    start_seq: int
    participant_id: int
    offset: int
    text: str


class Presence(_Event):
    """Ephemeral: a person's tab is in the room (`online`), or stopped beating (`away`)."""

    type: Literal["presence"] = "presence"
    participant_id: int
    state: Literal["online", "away"]


class Typing(_Event):
    """Ephemeral: a person is typing in the composer (shown for a few seconds)."""

    type: Literal["typing"] = "typing"
    participant_id: int
    name: str


EPHEMERAL_SIGNALS = (Presence, Typing)

PersistedEvent = Annotated[
    DiscussionCreated
    | RunStarted
    | TurnStarted
    | TurnStatus
    | TurnCompleted
    | TurnFailed
    | TurnRetryRequested
    | ContextSummarised
    | StepReport
    | HumanMessagePosted
    | MemberChanged
    | BudgetChanged
    | HumanInputRequested
    | HumanInputAnswered
    | ConsensusUpdated
    | PollOpened
    | VoteCast
    | PollClosed
    | DecisionProposed
    | DecisionSignedOff
    | CallRecorded
    | DiscussionPaused
    | DiscussionFinished,
    Field(discriminator="type"),
]
RoomEvent = Annotated[
    DiscussionCreated
    | RunStarted
    | TurnStarted
    | TurnStatus
    | TurnCompleted
    | TurnFailed
    | TurnRetryRequested
    | ContextSummarised
    | StepReport
    | HumanMessagePosted
    | MemberChanged
    | BudgetChanged
    | HumanInputRequested
    | HumanInputAnswered
    | ConsensusUpdated
    | PollOpened
    | VoteCast
    | PollClosed
    | DecisionProposed
    | DecisionSignedOff
    | CallRecorded
    | DiscussionPaused
    | DiscussionFinished
    | TokenDelta
    | Presence
    | Typing,
    Field(discriminator="type"),
]
room_event_adapter: TypeAdapter[RoomEvent] = TypeAdapter(RoomEvent)


def parse_event(data: dict | str | bytes) -> RoomEvent:
    """Validate a dict or JSON text into its typed event."""
    if isinstance(data, dict):
        return room_event_adapter.validate_python(data)
    return room_event_adapter.validate_json(data)
