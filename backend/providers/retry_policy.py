"""One retry policy for every SDK: their own retries (at most 2), Retry-After honoured up to 60 s.

The Anthropic SDK waits as long as any Retry-After says (an hour, if asked) and the OpenAI SDK up to 120 s.
Rather than stacking a second retry layer, a response hook marks a 429/503 whose Retry-After exceeds our cap
with `x-should-retry: false`, a header both Stainless SDKs obey: the call then fails at once as a clear
rate-limit error that names the wait. Gemini's SDK ignores Retry-After (its tenacity backoff is ~1 s, 2 s):
`GeminiRetryAfter`, a hook on its own HTTP client, fails a longer wait at once and waits out a shorter one before
the SDK's retry goes, so the SDK still does the retrying.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextvars import ContextVar

from backend.providers import errors
from backend.providers.errors import retry_after_seconds

MAX_RETRIES = 2
MAX_RETRY_AFTER_S = 60.0
RETRYABLE_STATUS = {408, 409, 429}

# Set by the engine around a call so the room can show "retrying" while the SDK retries.
on_retry: ContextVar[Callable[[str], Awaitable[None]] | None] = ContextVar("maestro_on_retry", default=None)


async def cap_retry_after(response) -> None:
    """httpx response hook: refuse SDK retries that would wait longer than MAX_RETRY_AFTER_S."""
    wait = retry_after_seconds(response.headers)
    if wait is not None and wait > MAX_RETRY_AFTER_S:
        response.headers["x-should-retry"] = "false"
        return
    status = response.status_code
    observer = on_retry.get()
    if observer and (status in RETRYABLE_STATUS or status >= 500) and response.headers.get("x-should-retry") != "false":
        pause = f", waiting {wait:.0f} s" if wait else ""
        await observer(f"HTTP {status}{pause}")


def http_client(sdk) -> object:
    """The SDK's own default async HTTP client, with the Retry-After cap hooked in."""
    return sdk.DefaultAsyncHttpxClient(event_hooks={"response": [cap_retry_after]})


class GeminiRetryAfter:
    """httpx response hook for Gemini's SDK: Retry-After over MAX_RETRY_AFTER_S fails the call at once (a
    ProviderError is not retryable for the SDK's tenacity); a shorter one is waited out, less the backoff the SDK
    adds itself, unless no retry is left. Attempts are counted per call (`begin` in the provider)."""

    def __init__(self, vendor: errors.Vendor, sdk_backoff_s: float) -> None:
        self.vendor = vendor
        self.sdk_backoff_s = sdk_backoff_s
        self._attempts: ContextVar[list[int] | None] = ContextVar("gemini_attempts", default=None)

    def begin(self) -> None:
        """Start counting a new call's attempts (set in the task that makes the call)."""
        self._attempts.set([0])

    async def __call__(self, response) -> None:
        status = response.status_code
        if status not in RETRYABLE_STATUS and status < 500:
            return
        counter = self._attempts.get()
        if counter is not None:
            counter[0] += 1
        wait = retry_after_seconds(response.headers)
        if wait is not None and wait > MAX_RETRY_AFTER_S:
            raise errors.from_status(self.vendor, status, retry_after=wait)
        if counter is not None and counter[0] > MAX_RETRIES:
            return  # the last attempt: the SDK gives up now, nothing to wait for
        observer = on_retry.get()
        if observer:
            await observer(f"HTTP {status}" + (f", waiting {wait:.0f} s" if wait else ""))
        if wait:
            await asyncio.sleep(max(0.0, wait - self.sdk_backoff_s))
