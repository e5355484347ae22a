"""Shared column helpers: UTC-aware timestamps."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import DateTime
from sqlmodel import Field


def utcnow() -> datetime:
    """Now, timezone-aware in UTC."""
    return datetime.now(UTC)


def timestamp_field() -> datetime:
    """A timezone-aware timestamp column defaulting to now."""
    return Field(default_factory=utcnow, sa_type=DateTime(timezone=True), nullable=False)  # type: ignore[return-value]


def as_utc(value: datetime) -> datetime:
    """SQLite drops tzinfo on the way back; treat naive values as UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)
