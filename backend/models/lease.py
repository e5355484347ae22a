"""RunnerLease: at most one runner drives a discussion, across processes (DESIGN decision 1)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime
from sqlmodel import Field, SQLModel


class RunnerLease(SQLModel, table=True):
    """Who runs a discussion, until when; renewed by heartbeat, taken over once expired."""

    discussion_id: int = Field(foreign_key="discussion.id", primary_key=True)
    owner: str = Field(max_length=120)
    expires_at: datetime = Field(sa_type=DateTime(timezone=True), nullable=False)  # type: ignore[call-overload]
