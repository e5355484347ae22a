"""The audit trail: every human action, append-only (a database trigger refuses UPDATE and DELETE)."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from backend.models.base import timestamp_field


class AuditEntry(SQLModel, table=True):
    """Who did what, when, and what the value was before."""

    id: int | None = Field(default=None, primary_key=True)
    discussion_id: int | None = Field(default=None, foreign_key="discussion.id", index=True)
    actor_user_id: int | None = Field(default=None, foreign_key="user.id")
    actor_name: str = Field(max_length=120)
    action: str = Field(max_length=60)
    target: str = Field(default="", max_length=200)
    previous_value: str | None = Field(default=None, max_length=4000)
    new_value: str | None = Field(default=None, max_length=4000)
    at: datetime = timestamp_field()
