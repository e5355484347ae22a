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


async def test_a_call_arriving_at_the_hand_off_knows_it_waits() -> None:
    """Just after the model is released its next waiter has not run yet, so the lock looks free; a call arriving
    then still queues behind that waiter, and must stop its clock like any other waiting call."""
    from backend.providers.offline import _ModelQueue

    model = _ModelQueue()
    holding, release = asyncio.Event(), asyncio.Event()
    events: list[object] = []
    order: list[str] = []

    async def waiter() -> None:
        async with model.turn():
            order.append("waiter")

    async def holder_then_newcomer() -> None:
        async with model.turn():
            holding.set()
            await release.wait()
        assert not model.lock.locked()  # released; the waiter is woken but has not run
        async with CallClock(5, on_queue=events.append), model.turn():
            order.append("newcomer")

    first = asyncio.create_task(holder_then_newcomer())
    await holding.wait()
    second = asyncio.create_task(waiter())
    await asyncio.sleep(0)
    assert model.inside == 2
    release.set()
    await asyncio.gather(first, second)
    assert order == ["waiter", "newcomer"]
    assert events == [True, False]
    assert model.inside == 0


async def test_a_wait_for_the_model_is_limited_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(call_clock, "QUEUE_LIMIT_FACTOR", 3)
    clock = CallClock(0.1)
    with pytest.raises(TimeoutError):
        async with clock:
            call_clock.waiting()
            await asyncio.sleep(1)  # the model never comes free
    assert clock.queued
    assert clock.timeout_message().startswith("Waited 0.3 s for the shared model")


async def test_a_task_that_outlives_the_clock_cannot_touch_it() -> None:
    async with CallClock(1) as clock:
        late = asyncio.create_task(asyncio.sleep(0.05))  # inherits the context, clock included

        async def after_exit() -> None:
            await late
            call_clock.waiting()  # the block has ended: nothing to reschedule, no error
            call_clock.started()

        straggler = asyncio.create_task(after_exit())
    await straggler
    assert not clock.queued
