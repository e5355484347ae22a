"""Failed sign-ins per account: after MAX_FAILURES within WINDOW, that account's sign-in is refused until the
oldest failure leaves the window, even with the right password, so guessing a password online stays slow.

Counted by the `limits` library in a moving window: in this process by default, in Redis when REDIS_URL is set
(every worker then shares one count). Only failures count, and a successful sign-in clears them. The cost: a
stranger can lock an account out for WINDOW by failing on purpose; a person who is locked out is told how long.
"""

from __future__ import annotations

import math
import time
from functools import lru_cache

from limits import RateLimitItemPerMinute, storage, strategies

from backend.config import get_settings

MAX_FAILURES = 10
WINDOW_MINUTES = 15


@lru_cache
def _limiter() -> strategies.MovingWindowRateLimiter:
    url = get_settings().redis_url
    return strategies.MovingWindowRateLimiter(storage.storage_from_string(url or "memory://"))


def _item() -> RateLimitItemPerMinute:
    return RateLimitItemPerMinute(MAX_FAILURES, WINDOW_MINUTES)


def wait_seconds(username: str) -> int:
    """0 when `username` may try to sign in now; otherwise how many seconds until it may."""
    limiter, item = _limiter(), _item()
    if limiter.test(item, "sign-in", username):
        return 0
    reset_at = limiter.get_window_stats(item, "sign-in", username).reset_time
    return max(1, math.ceil(reset_at - time.time()))


def failed(username: str) -> None:
    _limiter().hit(_item(), "sign-in", username)


def succeeded(username: str) -> None:
    _limiter().clear(_item(), "sign-in", username)


def reset() -> None:
    """Forget every count and the storage (tests switch REDIS_URL)."""
    if _limiter.cache_info().currsize:
        _limiter().storage.reset()
    _limiter.cache_clear()
