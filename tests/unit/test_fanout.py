"""Fan-out: concurrent, ordered, partial failures reported, all-fail is an error."""

from __future__ import annotations

import asyncio
import time

import pytest

from backend.orchestrator.fanout import AllFailed, FanoutTask, fan_out
from backend.providers.base import ErrorKind, ProviderError


def _after(seconds: float, text: str | None = None, error: ProviderError | None = None):
    async def call() -> str:
        await asyncio.sleep(seconds)
        if error:
            raise error
        return text or f"done in {seconds}"

    return call


async def test_wall_time_is_close_to_the_slowest_call_not_the_sum():
    delays = [0.1, 0.2, 0.3, 0.4]
    t0 = time.monotonic()
    outcome = await fan_out([FanoutTask(f"a{i}", "m", _after(d)) for i, d in enumerate(delays)])
    elapsed = time.monotonic() - t0
    assert elapsed < 0.4 * 1.25  # sum would be 1.0 s
    assert [r.status for r in outcome.results] == ["ok"] * 4


async def test_results_keep_input_order_when_completion_order_is_inverted():
    outcome = await fan_out(
        [FanoutTask(name, "m", _after(d, name)) for name, d in [("slow", 0.2), ("mid", 0.1), ("fast", 0.0)]]
    )
    assert [r.participant for r in outcome.results] == ["slow", "mid", "fast"]
    assert [r.content for r in outcome.results] == ["slow", "mid", "fast"]
    assert outcome.results[0].latency_ms >= outcome.results[2].latency_ms


async def test_one_failure_does_not_abort_the_step_and_is_reported():
    outcome = await fan_out(
        [
            FanoutTask("Architect", "m1", _after(0.05, "Postgres"), stance="for"),
            FanoutTask("Security", "m2", _after(0.01, error=ProviderError(ErrorKind.RATE_LIMITED, "429"))),
            FanoutTask("Product", "m3", _after(0.02, "Ship")),
        ]
    )
    assert [r.participant for r in outcome.successes] == ["Architect", "Product"]
    failed = outcome.failures[0]
    assert (failed.participant, failed.status, failed.error_message, failed.error_kind) == (
        "Security",
        "failed",
        "429",
        "rate_limited",
    )
    assert outcome.results[0].stance == "for"
    assert "partial council" in outcome.warning


async def test_every_call_failing_is_an_error_not_an_empty_success():
    with pytest.raises(AllFailed) as err:
        await fan_out([FanoutTask(n, "m", _after(0, error=ProviderError(ErrorKind.AUTH, "bad key"))) for n in "AB"])
    assert len(err.value.results) == 2 and "Every agent failed" in err.value.message


async def test_an_unexpected_exception_is_a_failed_result():
    async def boom() -> str:
        raise KeyError("x")

    outcome = await fan_out([FanoutTask("A", "m", boom), FanoutTask("B", "m", _after(0, "ok"))])
    assert outcome.results[0].status == "failed" and "KeyError" in outcome.results[0].error_message


async def test_the_gated_fan_out_goes_one_at_a_time_under_a_budget_and_reports_when_all_fail():
    from backend.orchestrator.fanout import fan_out_gated, step_report

    running, most = 0, 0

    def tracked(text: str | None = None, error: ProviderError | None = None):
        async def call() -> str:
            nonlocal running, most
            running += 1
            most = max(most, running)
            await asyncio.sleep(0.02)
            running -= 1
            if error:
                raise error
            return text or "ok"

        return call

    tasks = [FanoutTask(f"a{i}", "m", tracked()) for i in range(3)]
    assert len((await fan_out_gated(tasks, one_at_a_time=True)).successes) == 3
    assert most == 1
    most = 0
    await fan_out_gated([FanoutTask(f"a{i}", "m", tracked()) for i in range(3)], one_at_a_time=False)
    assert most == 3
    failing = [FanoutTask(f"a{i}", "m", tracked(error=ProviderError(ErrorKind.SERVER, "down"))) for i in range(2)]
    outcome = await fan_out_gated(failing, one_at_a_time=False)  # no AllFailed: the room is told instead
    report = step_report(7, "votes", outcome, none_answered="Nobody answered.", unlisted="skipped")
    assert report.warning == "Nobody answered." and [f["participant"] for f in report.failed] == ["a0", "a1"]
