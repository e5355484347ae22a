"""Accounts: a person who signs in, and the server-side sessions that say who a browser belongs to."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column, DateTime
from sqlmodel import Field, SQLModel

from backend.models.base import timestamp_field


class User(SQLModel, table=True):
    """A person with an account; their password is stored only as an argon2 hash."""

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=40, unique=True, index=True)  # lower-case handle, used for @mentions
    display_name: str = Field(max_length=120)
    password_hash: str = Field(max_length=200)
    is_admin: bool = Field(default=False)  # owns what everyone shares: personas, sign-up policy, spend caps
    # The context the New discussion form starts from (backend.memory.context), so a person does not retype it.
    default_context: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = timestamp_field()


class AuthSession(SQLModel, table=True):
    """A signed-in browser. Only a SHA-256 of the token is stored, so a database leak signs nobody in."""

    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True, index=True)
    user_id: int = Field(foreign_key="user.id", index=True)
    created_at: datetime = timestamp_field()
    expires_at: datetime = Field(sa_type=DateTime(timezone=True), nullable=False)  # type: ignore[call-overload]
    # A one-time grant a signed-in web form hands the browser, which swaps it (within a minute) for the real
    # session in an HttpOnly cookie; a pending row signs nobody in.
    pending: bool = Field(default=False)
