"""What the instance's admin decides for everyone: who may sign up, and how much the team's keys may spend a day."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime
from sqlmodel import Field, SQLModel

from backend.models.base import timestamp_field


class InstancePolicy(SQLModel, table=True):
    """One row (id 1): the admin's settings; a missing row means the environment's defaults."""

    id: int | None = Field(default=None, primary_key=True)
    signup_policy: str = Field(default="invite_only", max_length=20)  # open | invite_only | closed
    user_daily_usd: float | None = Field(default=None)  # what one person's discussions may spend a UTC day
    instance_daily_usd: float | None = Field(default=None)  # what every discussion together may spend a UTC day
    updated_at: datetime = timestamp_field()


class SignupInvite(SQLModel, table=True):
    """A sign-up link the admin hands out while sign-up is invite-only; only its token's SHA-256 is kept."""

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True, index=True)
    created_by: int = Field(foreign_key="user.id")
    note: str = Field(default="", max_length=120)  # who it is for, as the admin wrote it
    expires_at: datetime = Field(sa_type=DateTime(timezone=True), nullable=False)  # type: ignore[call-overload]
    max_uses: int = Field(default=1)
    uses: int = Field(default=0)
    revoked: bool = Field(default=False)
    created_at: datetime = timestamp_field()
