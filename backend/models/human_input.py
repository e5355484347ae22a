"""HumanInputRequest: a typed question to people in the room, which may hold the discussion until answered."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, Column, DateTime, UniqueConstraint
from sqlmodel import Field, SQLModel

from backend.models.base import timestamp_field


class PromptKind(StrEnum):
    """What kind of answer is wanted."""

    APPROVAL = "approval"  # approve / reject
    CHOICE = "choice"  # one of the options
    FEEDBACK = "feedback"  # free text
    CLARIFICATION = "clarification"  # free text


class PromptStatus(StrEnum):
    OPEN = "open"
    ANSWERED = "answered"
    EXPIRED = "expired"  # the deadline passed; the default was applied


class HumanInputRequest(SQLModel, table=True):
    """A prompt routed to people (by username) or roles, with a deadline and a default.

    "First answer wins, exactly once" is a conditional UPDATE on `status = 'open'`; `key` makes prompts the
    protocol creates idempotent across a resume (one per checkpoint).
    """

    __table_args__ = (UniqueConstraint("discussion_id", "key", name="uq_prompt_key"),)

    id: int | None = Field(default=None, primary_key=True)
    discussion_id: int = Field(foreign_key="discussion.id", index=True)
    key: str = Field(max_length=80)
    kind: str = Field(max_length=20)
    prompt: str = Field(max_length=2000)
    options: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # Routing: roles ("decision_maker") and usernames; anyone matching either may answer.
    target_roles: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    target_users: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    deadline_at: datetime = Field(sa_type=DateTime(timezone=True), nullable=False)  # type: ignore[call-overload]
    default_answer: str = Field(default="", max_length=2000)
    blocking: bool = Field(default=True)
    created_by: str = Field(default="", max_length=120)  # "protocol", an agent's name or a person's name
    status: str = Field(default=PromptStatus.OPEN, max_length=12, index=True)
    answer: str | None = Field(default=None, max_length=4000)
    answered_by: str | None = Field(default=None, max_length=120)
    answered_by_user_id: int | None = Field(default=None, foreign_key="user.id")
    answered_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]
    answer_client_id: str | None = Field(default=None, max_length=80)
    created_at: datetime = timestamp_field()
