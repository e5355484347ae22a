"""The time the service layer reads: one place to swap for a controllable clock in tests (no sleeps)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from backend.models.base import utcnow

_now: Callable[[], datetime] = utcnow


def now() -> datetime:
    """The current UTC time, or the test's clock."""
    return _now()


def set_clock(fn: Callable[[], datetime] | None) -> None:
    """Use `fn` as the clock (None restores the real one)."""
    global _now
    _now = fn or utcnow
