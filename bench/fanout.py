"""Fan-out wall time: four agents answering at 100/200/300/400 ms should take about 400 ms, not 1 s.

Each agent is a ScriptedProvider that streams a single chunk after its delay (`token_delay`), called through
`backend.orchestrator.fanout.fan_out` exactly as a fan-out step calls it (a `FanoutTask` whose coroutine
consumes the stream and returns the text). The figure is wall time / the slowest agent (400 ms): 1.00x is
perfect concurrency; the target is at most 1.03x. The same four calls made one after another (the sum,
1000 ms) are the baseline, measured in the same run; so is the same fan-out over plain `asyncio.sleep`
coroutines, which shows what asyncio itself costs.

A benchmark, not a test: it prints figures and is not run in CI.

    . .venv/bin/activate
    python bench/fanout.py                 # 50 fan-outs, 10 sequential baselines (~35 s)
    python bench/fanout.py --repeat 200 --delays 50,100,150,200
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backend.orchestrator.fanout import FanoutTask, fan_out
from backend.providers.base import Completion, GenerationRequest, TokenDelta, TranscriptEntry
from backend.providers.scripted import ScriptedProvider

TARGET = 1.03


def scripted_call(provider: ScriptedProvider) -> Callable[[], Awaitable[str]]:
    """One agent's call: stream the provider's reply to the end and return its text."""

    async def call() -> str:
        request = GenerationRequest(
            model="m",
            system="You are one agent of a council.",
            transcript=[TranscriptEntry(author="Host", content="Which database?", author_kind="human")],
        )
        text = ""
        async for item in provider.stream(request):
            if isinstance(item, TokenDelta):
                text += item.text
            elif isinstance(item, Completion):
                return item.text
        return text

    return call


def sleep_call(delay: float) -> Callable[[], Awaitable[str]]:
    async def call() -> str:
        await asyncio.sleep(delay)
        return "ok"

    return call


def make_tasks(delays: list[float], kind: str) -> list[FanoutTask]:
    tasks = []
    for i, delay in enumerate(delays):
        if kind == "scripted":
            # One word = one chunk, sent after `delay`: the whole reply arrives at `delay`.
            call = scripted_call(ScriptedProvider([f"Answer{i}."], token_delay=delay))
        else:
            call = sleep_call(delay)
        tasks.append(FanoutTask(participant=f"Agent{i}", model="m", call=call))
    return tasks


async def one_fanout(delays: list[float], kind: str) -> float:
    tasks = make_tasks(delays, kind)
    t0 = time.perf_counter()
    outcome = await fan_out(tasks)
    wall = time.perf_counter() - t0
    assert [r.status for r in outcome.results] == ["ok"] * len(delays), outcome.results
    assert [r.participant for r in outcome.results] == [t.participant for t in tasks]  # input order kept
    return wall


async def one_sequential(delays: list[float]) -> float:
    tasks = make_tasks(delays, "scripted")
    t0 = time.perf_counter()
    for task in tasks:
        await task.call()
    return time.perf_counter() - t0


def p95(xs: list[float]) -> float:
    return statistics.quantiles(xs, n=100, method="inclusive")[94] if len(xs) > 1 else xs[0]


def summary(label: str, walls: list[float], reference: float) -> str:
    ratios = [w / reference for w in walls]
    return (
        f"{label:<34} n={len(walls):<4} median {statistics.median(walls) * 1000:7.1f} ms "
        f"({statistics.median(ratios):.3f}x)  p95 {p95(walls) * 1000:7.1f} ms ({p95(ratios):.3f}x)  "
        f"max {max(walls) * 1000:7.1f} ms ({max(ratios):.3f}x)"
    )


async def main(args: argparse.Namespace) -> int:
    delays = [float(x) / 1000 for x in args.delays.split(",")]
    slowest, total = max(delays), sum(delays)
    print(
        f"{len(delays)} agents at {', '.join(f'{d * 1000:.0f}' for d in delays)} ms; "
        f"ideal fan-out = slowest = {slowest * 1000:.0f} ms, sequential sum = {total * 1000:.0f} ms; "
        f"ratios are wall / {slowest * 1000:.0f} ms"
    )
    await one_fanout(delays, "scripted")  # warm-up (imports, first task creation)
    scripted, plain, sequential = [], [], []
    for i in range(args.repeat):  # interleaved, so drift on the machine hits both alike
        scripted.append(await one_fanout(delays, "scripted"))
        plain.append(await one_fanout(delays, "sleep"))
        if i < args.baseline_repeat:
            sequential.append(await one_sequential(delays))
    print(summary("fan_out, ScriptedProvider", scripted, slowest))
    print(summary("fan_out, plain asyncio.sleep", plain, slowest))
    print(summary("sequential baseline (sum)", sequential, slowest))
    med, tail = statistics.median(scripted) / slowest, p95(scripted) / slowest
    speedup = statistics.median(sequential) / statistics.median(scripted)
    print(f"speed-up over sequential: {speedup:.2f}x (ideal {total / slowest:.2f}x)")
    ok = tail <= TARGET
    print(
        f"target: fan-out wall <= {TARGET:.2f}x the slowest agent -> median {med:.3f}x, p95 {tail:.3f}x: "
        f"{'PASS' if ok else 'FAIL'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=50, help="fan-outs of each kind (default 50)")
    parser.add_argument("--baseline-repeat", type=int, default=10, help="sequential baselines (default 10)")
    parser.add_argument("--delays", default="100,200,300,400", help="per-agent delays in ms (default 100,200,300,400)")
    sys.exit(asyncio.run(main(parser.parse_args())))
