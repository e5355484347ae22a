"""Message: a turn by an agent or a post by a human, with its status, usage and latency."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Index, UniqueConstraint
from sqlmodel import Field, SQLModel

from backend.models.base import timestamp_field


class MessageStatus(StrEnum):
    """An agent message streams, then completes or fails; human messages are complete at once."""

    QUEUED = "queued"  # a failed turn a human asked to retry
    STREAMING = "streaming"
    COMPLETE = "complete"
    FAILED = "failed"


class Message(SQLModel, table=True):
    """One message in a discussion."""

    __table_args__ = (
        UniqueConstraint("discussion_id", "turn_key", name="uq_message_turn"),
        UniqueConstraint("discussion_id", "client_id", name="uq_message_client_id"),
        Index("ix_message_discussion_seq", "discussion_id", "seq"),
        Index("ix_message_created_at", "created_at"),  # today's spend, for the daily caps
    )

    id: int | None = Field(default=None, primary_key=True)
    discussion_id: int = Field(foreign_key="discussion.id")  # indexed by uq_message_turn and ix_message_discussion_seq
    participant_id: int | None = Field(default=None, foreign_key="participant.id")
    author_name: str = Field(max_length=120)
    author_kind: str = Field(max_length=10)
    round: int = Field(default=0)
    # "round:participant" for agent turns: each model call is keyed, so a resume repeats at most in-flight calls.
    turn_key: str | None = Field(default=None, max_length=60)
    content: str = ""
    status: str = Field(default=MessageStatus.COMPLETE, max_length=12)
    error_kind: str | None = Field(default=None, max_length=40)
    error_message: str | None = None
    provider: str | None = Field(default=None, max_length=40)
    model: str | None = Field(default=None, max_length=200)
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    tokens_estimated: bool = False
    cost_usd: float = 0.0
    latency_ms: int | None = None
    finish_reason: str | None = Field(default=None, max_length=40)
    # Seq of the event that started the turn (token deltas carry it) and of the event that finished it.
    start_seq: int | None = None
    seq: int | None = None
    # Idempotency for human posts: the client's id for this message.
    client_id: str | None = Field(default=None, max_length=80)
    created_at: datetime = timestamp_field()
    completed_at: datetime | None = None
