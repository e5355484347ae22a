"""Rate limits on the actions that cost the operator something: signing up, signing in (per address), creating a
discussion, running agents, posting. One moving window per action and key (a user id or a client address).

Counted by the `limits` library: in this process by default, in Redis when REDIS_URL is set, so every worker
shares one count. A limit that cannot be counted (Redis down) lets the action through and logs the error: a
broken counter must not lock a team out of its own room.

`MAESTRO_RATE_LIMITS` overrides any of them, e.g. `sign_up=100/hour,post=60/minute` (the limits library's
notation). Behind a reverse proxy, per-address limits need the client's own address: set Reflex's
`REFLEX_TRUSTED_PROXY_HOPS` (e.g. 1), or every client counts as the proxy.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from functools import lru_cache

from limits import RateLimitItem, parse, storage, strategies

from backend.config import get_settings
from backend.errors import TooManyAttempts

log = logging.getLogger(__name__)
_MAX_KEY = 200
_NAMESPACE = "rate"

# What each action allows per key, and what a person who hits the limit is told they were doing.
LIMITS: dict[str, tuple[RateLimitItem, str]] = {
    "sign_up": (parse("10/hour"), "sign-ups from this address"),
    "sign_in": (parse("60/15minutes"), "sign-in attempts from this address"),
    "create": (parse("30/hour"), "new discussions"),
    "run": (parse("120/hour"), "runs of the agents"),
    "post": (parse("30/minute"), "messages"),
    "join": (parse("60/hour"), "join attempts"),
    "memory_check": (parse("120/minute"), "memory lookups"),  # each one runs an embedding
}
# Counts are taken one at a time in this process (a hit takes microseconds): on first use two threads would each
# make their own limiter, and with it their own in-memory count (lru_cache does not stop that).
counting = threading.Lock()


@lru_cache
def limiter() -> strategies.MovingWindowRateLimiter:
    """The one moving-window limiter of this process (its storage in Redis when REDIS_URL is set); failed sign-ins
    per account (`sign_in_limit`) are counted in it too, under their own namespace."""
    return strategies.MovingWindowRateLimiter(storage.storage_from_string(get_settings().redis_url or "memory://"))


def _limit(action: str) -> tuple[RateLimitItem, str]:
    limit, what = LIMITS[action]
    for entry in get_settings().rate_limits.split(","):
        name, _, value = entry.partition("=")
        if name.strip() == action and value.strip():
            try:
                return parse(value.strip()), what
            except ValueError:
                log.error("MAESTRO_RATE_LIMITS: '%s' is not a limit such as 10/hour; keeping %s", value, limit)
    return limit, what


def hit(action: str, key: object) -> None:
    """Count one `action` by `key`; raise TooManyAttempts (with the wait) once its limit is reached."""
    limit, what = _limit(action)
    name = str(key)[:_MAX_KEY]
    try:
        with counting:
            shared = limiter()
            if shared.hit(limit, _NAMESPACE, action, name):
                return
            reset_at = shared.get_window_stats(limit, _NAMESPACE, action, name).reset_time
    except Exception:
        log.exception("the %s rate limit could not be checked; the action goes ahead", action)
        return
    wait = max(1, math.ceil(reset_at - time.time()))
    when = f"{math.ceil(wait / 60)} min" if wait >= 60 else f"{wait} s"
    raise TooManyAttempts({action: f"Too many {what} for now. Try again in {when}."}, retry_after=wait)


def reset() -> None:
    """Forget every count and the storage (tests)."""
    if limiter.cache_info().currsize:
        limiter().storage.reset()
    limiter.cache_clear()
