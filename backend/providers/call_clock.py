"""A model call's soft and hard deadlines, which stand still while the call waits its turn for a shared model.

The deadlines measure how long a model takes to answer. Agents on the one embedded model queue for it (one
generation at a time); minutes spent in that queue are not the model being slow, so they must neither show
"slow" nor cancel the call. A provider that queues says when it starts waiting and when the model takes the
call (`waiting()`, `started()`); the caller's clock, found through a context variable, stops both deadlines and
starts them afresh.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextvars import ContextVar, Token
from types import TracebackType

_current: ContextVar[CallClock | None] = ContextVar("maestro_call_clock", default=None)
# A queued call still gives up in the end: a model that never comes free must not hold its callers for ever.
QUEUE_LIMIT_FACTOR = 10


class CallClock:
    """`async with CallClock(hard_s, ...)`: raises TimeoutError past the hard deadline, like `asyncio.timeout`.

    `on_slow()` runs once the soft deadline passes; `on_queue(True)` when the call starts waiting for a shared
    model and `on_queue(False)` when the model takes it. Both run on the event loop and must not block. A wait
    is itself limited to QUEUE_LIMIT_FACTOR hard deadlines; `queued` says whether the call timed out waiting.
    """

    def __init__(
        self,
        hard_s: float,
        *,
        soft_s: float | None = None,
        on_slow: Callable[[], None] | None = None,
        on_queue: Callable[[bool], None] | None = None,
    ) -> None:
        self.hard_s = hard_s
        self.soft_s = soft_s
        self._on_slow = on_slow
        self._on_queue = on_queue
        self._timeout: asyncio.Timeout | None = None
        self._soft: asyncio.TimerHandle | None = None
        self._token: Token[CallClock | None] | None = None
        self.queued = False
        self._done = False

    async def __aenter__(self) -> CallClock:
        self._timeout = asyncio.timeout(self.hard_s)
        await self._timeout.__aenter__()
        self._token = _current.set(self)
        self._arm_soft()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        self._done = True
        if self._token is not None:
            _current.reset(self._token)
        self._disarm_soft()
        assert self._timeout is not None
        return await self._timeout.__aexit__(exc_type, exc, tb)

    def timeout_message(self) -> str:
        """What to tell people when this clock cancelled the call."""
        if self.queued:
            return f"Waited {self.hard_s * QUEUE_LIMIT_FACTOR:g} s for the shared model to come free, so the call was cancelled."
        return f"No complete reply within {self.hard_s:g} s, so the call was cancelled."

    def _arm_soft(self) -> None:
        if self.soft_s is not None and self._on_slow is not None:
            self._soft = asyncio.get_running_loop().call_later(self.soft_s, self._on_slow)

    def _disarm_soft(self) -> None:
        if self._soft is not None:
            self._soft.cancel()
            self._soft = None

    def _live(self) -> bool:
        """Still timing a call (tasks started inside the block inherit the clock and may outlive it)."""
        return self._timeout is not None and not self._done and not self._timeout.expired()

    def _wait(self) -> None:
        if self.queued or not self._live():
            return
        self.queued = True
        assert self._timeout is not None
        self._timeout.reschedule(asyncio.get_running_loop().time() + self.hard_s * QUEUE_LIMIT_FACTOR)
        self._disarm_soft()
        if self._on_queue:
            self._on_queue(True)

    def _start(self) -> None:
        if not self.queued or not self._live():
            return
        self.queued = False
        assert self._timeout is not None
        self._timeout.reschedule(asyncio.get_running_loop().time() + self.hard_s)
        self._arm_soft()
        if self._on_queue:
            self._on_queue(False)


def waiting() -> None:
    """Called by a provider whose call must wait for a shared model: the caller's deadlines stop."""
    clock = _current.get()
    if clock is not None:
        clock._wait()


def started() -> None:
    """Called by that provider when the model takes the call: both deadlines start afresh."""
    clock = _current.get()
    if clock is not None:
        clock._start()
