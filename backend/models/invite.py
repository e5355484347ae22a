"""Join links: a secret link that lets whoever signs in with it join a discussion with the link's role."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from backend.models.base import timestamp_field


class Invite(SQLModel, table=True):
    """A join link for one discussion and one role."""

    id: int | None = Field(default=None, primary_key=True)
    discussion_id: int = Field(foreign_key="discussion.id", index=True)
    token: str = Field(max_length=64, unique=True, index=True)
    role: str = Field(max_length=20)
    created_by: int = Field(foreign_key="user.id")
    revoked: bool = Field(default=False)
    created_at: datetime = timestamp_field()
