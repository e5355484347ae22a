"""Poll and Vote: one rule over humans and agents together (DESIGN decision 9).

"One current vote per participant per poll" is a partial unique index, so the database refuses a second current
ballot however two requests interleave; changing a vote retires the old row instead of overwriting it, which keeps
the history.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, Column, DateTime, Index, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from backend.models.base import timestamp_field


class PollStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class Poll(SQLModel, table=True):
    """A question with options, a counting rule and a deadline; `key` makes protocol polls idempotent on resume."""

    __table_args__ = (UniqueConstraint("discussion_id", "key", name="uq_poll_key"),)

    id: int | None = Field(default=None, primary_key=True)
    discussion_id: int = Field(foreign_key="discussion.id", index=True)
    key: str = Field(max_length=80)
    question: str = Field(max_length=2000)
    rule: str = Field(max_length=20)
    # [{"id": "A", "text": "PostgreSQL", "author": "Architect" | ""}]
    options: list[dict] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    exclude_own: bool = Field(default=False)  # nobody ranks an option they authored
    status: str = Field(default=PollStatus.OPEN, max_length=12, index=True)
    deadline_at: datetime = Field(sa_type=DateTime(timezone=True), nullable=False)  # type: ignore[call-overload]
    result: dict | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    created_by: str = Field(default="protocol", max_length=120)
    created_at: datetime = timestamp_field()
    closed_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]


class Vote(SQLModel, table=True):
    """One ballot. `current` is true for the latest ballot of a participant; earlier ones stay as history."""

    __table_args__ = (
        Index(
            "uq_vote_current",
            "poll_id",
            "participant_id",
            unique=True,
            sqlite_where=text("current"),
            postgresql_where=text("current"),
        ),
        UniqueConstraint("poll_id", "client_id", name="uq_vote_client"),
    )

    id: int | None = Field(default=None, primary_key=True)
    poll_id: int = Field(foreign_key="poll.id", index=True)
    participant_id: int = Field(foreign_key="participant.id", index=True)
    voter_name: str = Field(max_length=120)
    voter_kind: str = Field(max_length=10)  # agent | human
    ranking: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))  # best first / approved
    weight: float = Field(default=1.0)
    reason: str = Field(default="", max_length=2000)
    current: bool = Field(default=True)
    client_id: str = Field(max_length=80)  # idempotency: the same click twice is one vote
    created_at: datetime = timestamp_field()
