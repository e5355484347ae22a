"""Failed sign-ins per account: after MAX_FAILURES attempts within WINDOW without a success, that account's
sign-in is refused until the oldest attempt leaves the window, even with the right password, so guessing a
password online stays slow.

Counted by the `limits` library in a moving window, in the limiter `rate_limits` keeps: in this process by
default, in Redis when REDIS_URL is set (every worker then shares one count). An attempt is counted before its
password is checked, in one atomic step, so parallel guesses cannot all slip in before the first failure is
recorded; a successful sign-in clears the count. The cost: a stranger can lock an account out for WINDOW by failing on purpose; a person who is locked out
is told how long. If the count cannot be reached (Redis down), sign-in goes on without it and the error is logged.
"""

from __future__ import annotations

import logging
import math
import time

from limits import RateLimitItemPerMinute

from backend.humans import rate_limits

log = logging.getLogger(__name__)
MAX_FAILURES = 10
WINDOW_MINUTES = 15
_MAX_KEY = 200
_LIMIT = RateLimitItemPerMinute(MAX_FAILURES, WINDOW_MINUTES)
_NAMESPACE = "sign-in"


def attempt(username: str) -> int:
    """Count a sign-in attempt for `username`: 0 when it may go ahead, else the seconds until one may."""
    key = username[:_MAX_KEY]
    try:
        with rate_limits.counting:  # the shared limiter is made under the lock too (see rate_limits)
            limiter = rate_limits.limiter()
            if limiter.hit(_LIMIT, _NAMESPACE, key):
                return 0
            reset_at = limiter.get_window_stats(_LIMIT, _NAMESPACE, key).reset_time
    except Exception:
        log.exception("the sign-in limit could not be checked; the attempt goes ahead")
        return 0
    return max(1, math.ceil(reset_at - time.time()))


def succeeded(username: str) -> None:
    """The password was right: the attempts before it no longer count."""
    try:
        rate_limits.limiter().clear(_LIMIT, _NAMESPACE, username[:_MAX_KEY])
    except Exception:
        log.exception("the sign-in limit could not be cleared")


def reset() -> None:
    """Forget every count and the storage (tests switch REDIS_URL); the limiter is shared with `rate_limits`."""
    rate_limits.reset()
