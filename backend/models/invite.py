"""Join links: a secret link that lets whoever signs in with it join a discussion with the link's role.

Only a SHA-256 of the link's token is stored (a database leak joins nobody); a link expires, may be limited to a
number of uses, and its owner can revoke it. A link never carries a role that decides (decision maker, must
approve): those people are invited by name.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime
from sqlmodel import Field, SQLModel

from backend.models.base import timestamp_field


class Invite(SQLModel, table=True):
    """A join link for one discussion and one role."""

    id: int | None = Field(default=None, primary_key=True)
    discussion_id: int = Field(foreign_key="discussion.id", index=True)
    token_hash: str = Field(max_length=64, unique=True, index=True)
    role: str = Field(max_length=20)
    created_by: int = Field(foreign_key="user.id")
    revoked: bool = Field(default=False)
    expires_at: datetime = Field(sa_type=DateTime(timezone=True), nullable=False)  # type: ignore[call-overload]
    max_uses: int | None = Field(default=None)  # None: any number of people until it expires
    uses: int = Field(default=0)
    created_at: datetime = timestamp_field()
