"""Participant: an agent (persona on a provider + model) or a human in one discussion."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import DateTime, UniqueConstraint
from sqlmodel import Field, SQLModel

from backend.models.base import timestamp_field


class ParticipantKind(StrEnum):
    """Agents speak through a model; humans type."""

    AGENT = "agent"
    HUMAN = "human"


class Participant(SQLModel, table=True):
    """Someone in a discussion."""

    __table_args__ = (
        UniqueConstraint("discussion_id", "name", name="uq_participant_name"),
        # One person is one participant, however many tabs they open.
        UniqueConstraint("discussion_id", "user_id", name="uq_participant_user"),
    )

    id: int | None = Field(default=None, primary_key=True)
    discussion_id: int = Field(foreign_key="discussion.id", index=True)
    kind: str = Field(max_length=10)
    name: str = Field(max_length=120)
    position: int = Field(default=0)  # speaking order for agents
    # Agents only: the persona it was built from and a snapshot of its prompt at creation time.
    persona_key: str | None = Field(default=None, max_length=64)
    provider: str | None = Field(default=None, max_length=40)
    model: str | None = Field(default=None, max_length=200)
    base_url: str | None = Field(default=None, max_length=500)
    system_prompt: str | None = None
    # Humans only: the account, the role in this discussion (backend.humans.roles) and the vote weight.
    user_id: int | None = Field(default=None, foreign_key="user.id", index=True)
    role: str | None = Field(default=None, max_length=20)
    vote_weight: float = Field(default=1.0)
    is_owner: bool = Field(default=False)  # created the discussion: invites, runs agents, asks questions
    last_seen_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]
    created_at: datetime = timestamp_field()
