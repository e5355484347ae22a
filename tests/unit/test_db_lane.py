"""An engine's database lane: steps run in order on one thread, with the caller's context; failures and
cancellations come back to the awaiting coroutine."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time

import pytest

from backend.db import DbLane

who: contextvars.ContextVar[str] = contextvars.ContextVar("who", default="nobody")


async def test_steps_run_in_order_on_one_thread_other_than_the_loop_with_the_caller_context() -> None:
    lane = DbLane("test-lane")
    who.set("discussion 7")
    try:
        seen = [await lane.run(lambda i=i: (i, threading.get_ident(), who.get())) for i in range(5)]
    finally:
        lane.close()
    assert [s[0] for s in seen] == list(range(5))
    assert len({s[1] for s in seen}) == 1 and seen[0][1] != threading.get_ident()
    assert {s[2] for s in seen} == {"discussion 7"}


async def test_a_failing_step_raises_in_the_caller_and_the_lane_goes_on() -> None:
    lane = DbLane("test-lane")

    def boom():
        raise ValueError("locked")

    try:
        with pytest.raises(ValueError, match="locked"):
            await lane.run(boom)
        with pytest.raises(RuntimeError, match="StopIteration"):  # a future cannot carry StopIteration itself
            await asyncio.wait_for(lane.run(next, iter(())), 5)
        assert await lane.run(lambda: 42) == 42
    finally:
        lane.close()


async def test_a_cancelled_caller_does_not_break_the_lane_and_the_loop_keeps_running_meanwhile() -> None:
    lane = DbLane("test-lane")
    ticks = 0

    async def tick():
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    ticker = asyncio.create_task(tick())
    try:
        slow = asyncio.create_task(lane.run(time.sleep, 0.3))
        await asyncio.sleep(0.05)
        slow.cancel()
        with pytest.raises(asyncio.CancelledError):
            await slow
        assert await lane.run(lambda: "next") == "next"  # ran after the cancelled step finished
        assert ticks >= 5  # the loop was free while the thread slept
    finally:
        ticker.cancel()
        lane.close()
