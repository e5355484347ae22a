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


class TurnStatus(_Event):
    """A turn in flight changed status: "slow" (past its soft deadline) or "retrying" (the SDK is retrying)."""

    type: Literal["turn_status"] = "turn_status"
    start_seq: int
    participant_id: int
    status: Literal["slow", "retrying"]
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
    | DiscussionPaused
    | DiscussionFinished
    | TokenDelta,
    Field(discriminator="type"),
]
room_event_adapter: TypeAdapter[RoomEvent] = TypeAdapter(RoomEvent)


def parse_event(data: dict | str | bytes) -> RoomEvent:
    """Validate a dict or JSON text into its typed event."""
    if isinstance(data, dict):
        return room_event_adapter.validate_python(data)
    return room_event_adapter.validate_json(data)
