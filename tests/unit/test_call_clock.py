"""CallClock: soft and hard deadlines that stand still while a call waits for a shared model (real asyncio time)."""

from __future__ import annotations

import asyncio

import pytest

from backend.providers import call_clock
from backend.providers.call_clock import CallClock


async def test_the_hard_deadline_cancels_a_call_that_never_waited() -> None:
    with pytest.raises(TimeoutError):
        async with CallClock(0.1):
            await asyncio.sleep(1)


async def test_time_in_the_queue_does_not_count() -> None:
    events: list[object] = []
    async with CallClock(0.2, soft_s=0.1, on_slow=lambda: events.append("slow"), on_queue=events.append):
        call_clock.waiting()
        await asyncio.sleep(0.5)  # queued far past both deadlines
        call_clock.started()
        await asyncio.sleep(0.05)  # the model answers quickly once it has the call
    assert events == [True, False], "queued time counted as slow, or the queue was not reported"


async def test_both_deadlines_start_afresh_when_the_model_takes_the_call() -> None:
    events: list[object] = []
    with pytest.raises(TimeoutError):
        async with CallClock(0.2, soft_s=0.1, on_slow=lambda: events.append("slow"), on_queue=events.append):
            call_clock.waiting()
            await asyncio.sleep(0.3)
            call_clock.started()
            await asyncio.sleep(1)  # the model itself is too slow: cancelled 0.2 s after it started
    assert events == [True, False, "slow"]


async def test_without_a_clock_the_provider_signals_are_harmless_and_clocks_do_not_leak() -> None:
    call_clock.waiting()
    call_clock.started()
    async with CallClock(1) as clock:
        call_clock.waiting()
        assert clock.queued
        call_clock.started()
        call_clock.started()  # twice: still one restart
        assert not clock.queued
    call_clock.waiting()  # after the block, this no longer touches that clock
    assert not clock.queued
