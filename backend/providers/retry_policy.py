"""One retry policy for every SDK: their own retries (at most 2), Retry-After honoured up to 60 s.

The Anthropic SDK waits as long as any Retry-After says (an hour, if asked) and the OpenAI SDK up to 120 s.
Rather than stacking a second retry layer, a response hook marks a 429/503 whose Retry-After exceeds our cap
with `x-should-retry: false`, a header both Stainless SDKs obey: the call then fails at once as a clear
rate-limit error that names the wait. Gemini's SDK ignores Retry-After and uses its own short backoff.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar

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
