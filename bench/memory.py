"""Memory under load: RSS of one process running 50 discussions at once, streaming from a 0 ms model.

The real engine does the work: discussions are created with `create_discussion` (3 agents; rounds raised in
the database past the UI's cap of 10 so each keeps streaming for a while) on a temporary SQLite file, and run
by `backend.orchestrator.runner.Runner` with its default provider lookup, which finds a ScriptedProvider
registered as "bench0ms" through `register_provider` (`token_delay=0`, ~50-word replies streamed word by
word). Each discussion has one viewer, a real `Follower` draining its batches like an open tab. A slot whose
discussion finishes starts a new one at once, so `--concurrency` discussions stream all the time.

Every `--sample-seconds` it prints RSS (VmRSS from /proc/self/status), the SQLite file and its WAL, and the
turn rate; at the end: start RSS, peak (VmHWM), end, and the growth slope (least squares) over the whole run
and over its second half, when warm-up is over. Targets: peak under 2 GB, and flat (second-half slope under
2 MB/min, i.e. < 120 MB an hour).

A benchmark, not a test: it prints figures and is not run in CI.

    . .venv/bin/activate
    python bench/memory.py                 # the default run: 10 minutes, 50 concurrent discussions
    python bench/memory.py --minutes 2     # a quicker look
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import gc
import logging
import os
import random
import statistics
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("REFLEX_TELEMETRY_ENABLED", "false")

PROVIDER = "bench0ms"
PERSONAS = ("architect", "security", "product", "critic", "pragmatist", "skeptic", "optimist", "researcher")
FLAT_MB_PER_MIN = 2.0
LIMIT_MB = 2048

_VOCAB = (
    "the a we should consider database latency cost migration rollback risk team users schema index "
    "postgres sqlite replication backup encryption audit trade-off deadline budget throughput queue cache "
    "consistency availability partition review design proposal agree disagree because however therefore "
    "although simply carefully measured production staging monitoring alerting on-call incident"
).split()


def proc_status_mb(field_name: str) -> float:
    """A memory field of /proc/self/status (VmRSS, VmHWM, ...) in MB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def c_heap_mb() -> tuple[float, float]:
    """glibc's heap: (MB in use, MB free but kept), from mallinfo2; (0, 0) where there is no glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _MallInfo2
    except (OSError, AttributeError):
        return 0.0, 0.0
    info = libc.mallinfo2()
    return (info.uordblks + info.hblkhd) / 1e6, info.fordblks / 1e6


def sqlite_mb() -> float:
    """What SQLite itself holds (sqlite3_memory_used of the library Python's sqlite3 module runs on), in MB."""
    try:
        lib = ctypes.CDLL("libsqlite3.so.0")
        lib.sqlite3_memory_used.restype = ctypes.c_int64
    except (OSError, AttributeError):
        return 0.0
    return lib.sqlite3_memory_used() / 1e6


def file_mb(path: Path) -> float:
    try:
        return path.stat().st_size / 1e6
    except FileNotFoundError:
        return 0.0


def slope_mb_per_min(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MB) points, in MB per minute."""
    if len(points) < 2:
        return 0.0
    return statistics.linear_regression([t for t, _ in points], [mb for _, mb in points]).slope * 60


def make_model(words: int):
    """The 0 ms model: varied ~`words`-word replies; keeps no request history (so it cannot grow RSS itself)."""
    from backend.providers.scripted import ScriptedProvider

    rng = random.Random(7)
    replies = []
    for _ in range(64):
        text = " ".join(rng.choice(_VOCAB) for _ in range(words))
        replies.append(text[0].upper() + text[1:] + ".")

    class ZeroMsModel(ScriptedProvider):
        def __init__(self) -> None:
            super().__init__(self._reply, token_delay=0, name=PROVIDER)
            self.requests = deque(maxlen=1)  # type: ignore[assignment]
            self.turns = 0

        def _reply(self, _request) -> str:
            self.turns += 1
            return replies[self.turns % len(replies)]

    return ZeroMsModel()


def use_database(url: str) -> None:
    from backend.bootstrap import prepare_database
    from backend.config import get_settings
    from backend.db import reset_engine

    os.environ["DATABASE_URL"] = url
    get_settings.cache_clear()
    reset_engine()
    prepare_database(url)


def create(agents: int, rounds: int) -> int:
    from sqlmodel import update

    from backend.db import session_scope
    from backend.models import Discussion
    from backend.services.discussions import MAX_ROUNDS, AgentSpec, create_discussion

    d = create_discussion(
        topic="Should Apollo move its event store from SQLite to Postgres this quarter?",
        agents=[AgentSpec(persona_key=PERSONAS[i], provider=PROVIDER, model="zero-ms") for i in range(agents)],
        rounds=min(rounds, MAX_ROUNDS),
    )
    assert d.id is not None
    if rounds > MAX_ROUNDS:
        with session_scope() as s:
            s.exec(update(Discussion).where(Discussion.id == d.id).values(rounds=rounds))  # type: ignore[call-overload]
    return d.id


def discussion_statuses() -> dict[str, int]:
    from sqlmodel import func, select

    from backend.db import session_scope
    from backend.models import Discussion

    with session_scope() as s:
        rows = s.exec(select(Discussion.status, func.count()).group_by(Discussion.status))  # type: ignore[call-overload]
        return {str(status): n for status, n in rows}


@dataclass
class Stats:
    started: int = 0
    finished: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    batches: int = 0


async def run(args: argparse.Namespace, db_path: Path) -> int:
    from backend.db import run_db
    from backend.events.bus import InProcessBus, set_bus
    from backend.events.follower import Follower
    from backend.events.schema import DiscussionFinished, DiscussionPaused
    from backend.orchestrator.runner import Runner
    from backend.providers import registry

    model = make_model(args.words)
    registry.register_provider(PROVIDER, model)
    bus = InProcessBus()
    set_bus(bus)
    runner = Runner(bus=bus, lease_seconds=15)
    stats = Stats()
    deadline = time.monotonic() + args.minutes * 60

    async def view(did: int, started: asyncio.Event) -> None:
        """One open tab: follow the discussion until it ends."""
        async with Follower(did, after_seq=0, bus=bus, live_source=runner.live_text) as follower:
            async for batch in follower.batches(idle=1.0):
                stats.batches += 1
                for event in batch.events:
                    if isinstance(event, DiscussionFinished | DiscussionPaused):
                        status = event.status if isinstance(event, DiscussionFinished) else "paused"
                        stats.statuses[status] = stats.statuses.get(status, 0) + 1
                        stats.finished += 1
                        return
                if not batch and started.is_set() and not runner.is_running(did):
                    return  # ended without a closing event reaching this viewer (not expected)

    async def slot() -> None:
        while time.monotonic() < deadline:
            did = await run_db(create, args.agents, args.rounds)
            started = asyncio.Event()
            viewers = [asyncio.create_task(view(did, started)) for _ in range(args.viewers)]
            await asyncio.sleep(0)
            if not await runner.start(did):
                raise RuntimeError(f"discussion {did} did not start")
            started.set()
            stats.started += 1
            await runner.wait(did)
            await asyncio.gather(*viewers)

    gc.collect()
    t0 = time.monotonic()
    rss0 = proc_status_mb("VmRSS")
    samples: list[tuple[float, float]] = [(0.0, rss0)]
    wal_max = 0.0
    print(
        f"{args.concurrency} concurrent discussions x {args.agents} agents x {args.rounds} rounds "
        f"({args.agents * args.rounds} turns each, ~{args.words}-word replies streamed word by word, 0 ms model), "
        f"{args.viewers} viewer(s) each, for {args.minutes:g} min; SQLite at {db_path}"
    )
    print(f"start RSS {rss0:.1f} MB (after imports, migration and seeding)")
    print(
        f"{'t':>6} {'RSS MB':>8} {'anon':>7} {'file':>7} {'shmem':>6} {'running':>8} {'done':>6} {'turns':>8} "
        f"{'turns/s':>8} {'DB MB':>7} {'WAL MB':>7} {'C used':>7} {'C free':>7} {'SQLite':>7} {'py blocks':>10}"
    )
    slots = [asyncio.create_task(slot(), name=f"slot-{i}") for i in range(args.concurrency)]
    last_t, last_turns = 0.0, 0
    try:
        while time.monotonic() < deadline:
            await asyncio.sleep(min(args.sample_seconds, max(0.0, deadline - time.monotonic())))
            failed = [s for s in slots if s.done() and s.exception()]
            if failed:
                raise failed[0].exception()  # type: ignore[misc]
            t, rss = time.monotonic() - t0, proc_status_mb("VmRSS")
            wal = file_mb(db_path.with_name(db_path.name + "-wal"))
            wal_max = max(wal_max, wal)
            samples.append((t, rss))
            rate = (model.turns - last_turns) / max(1e-9, t - last_t)
            c_used, c_free = c_heap_mb()
            last_t, last_turns = t, model.turns
            print(
                f"{t:6.0f} {rss:8.1f} {proc_status_mb('RssAnon'):7.1f} {proc_status_mb('RssFile'):7.1f} "
                f"{proc_status_mb('RssShmem'):6.1f} {len(runner.engines):8d} {stats.finished:6d} {model.turns:8d} "
                f"{rate:8.0f} {file_mb(db_path):7.1f} {wal:7.1f} {c_used:7.1f} {c_free:7.1f} {sqlite_mb():7.1f} "
                f"{sys.getallocatedblocks():10d}",
                flush=True,
            )
    finally:
        elapsed = time.monotonic() - t0
        for s in slots:
            s.cancel()
        await runner.shutdown()
        for s in slots:
            with contextlib.suppress(BaseException):
                await s
        registry.unregister_provider(PROVIDER)
        set_bus(None)

    by_status = await run_db(discussion_statuses)
    gc.collect()
    peak = proc_status_mb("VmHWM")
    end = samples[-1][1]
    whole = slope_mb_per_min(samples)
    half = slope_mb_per_min([p for p in samples if p[0] >= elapsed / 2])
    print()
    print(
        f"ran {elapsed / 60:.1f} min: {stats.started} discussions started, {stats.finished} ended "
        f"({', '.join(f'{n} {k}' for k, n in sorted(stats.statuses.items())) or 'none'}; the rest cut at the end), "
        f"{model.turns} turns ({model.turns / elapsed:.0f}/s), {stats.batches} viewer batches"
    )
    print(f"discussions in the database by status: {by_status}")
    print(f"RSS: start {rss0:.1f} MB, peak {peak:.1f} MB (VmHWM), end {end:.1f} MB, growth {end - rss0:+.1f} MB")
    print(f"     after shutdown + gc: {proc_status_mb('VmRSS'):.1f} MB; engines left {len(runner.engines)}")
    print(
        f"RSS slope: whole run {whole:+.2f} MB/min; second half {half:+.2f} MB/min "
        f"(= {half * 60:+.0f} MB/h; flat means under {FLAT_MB_PER_MIN:g} MB/min)"
    )
    print(
        f"SQLite: {file_mb(db_path):.1f} MB database, WAL now "
        f"{file_mb(db_path.with_name(db_path.name + '-wal')):.1f} MB, WAL max sampled {wal_max:.1f} MB"
    )
    ok = peak < LIMIT_MB and half < FLAT_MB_PER_MIN
    print(f"targets: peak < {LIMIT_MB} MB and flat -> {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long to keep streaming (default 10)")
    parser.add_argument("--concurrency", type=int, default=50, help="discussions streaming at once (default 50)")
    parser.add_argument("--agents", type=int, default=3, help="agents per discussion (default 3)")
    parser.add_argument("--rounds", type=int, default=20, help="rounds per discussion (default 20)")
    parser.add_argument("--words", type=int, default=50, help="words per reply (default 50)")
    parser.add_argument("--viewers", type=int, default=1, help="followers (open tabs) per discussion (default 1)")
    parser.add_argument("--sample-seconds", type=float, default=5.0, help="RSS sampling interval (default 5)")
    parser.add_argument("--keep-db", action="store_true", help="keep the temporary SQLite file and print its path")
    args = parser.parse_args()

    from backend.observability import configure_logging

    configure_logging(json=True, level=logging.WARNING)
    tmp = tempfile.mkdtemp(prefix="maestro-memory-")
    db_path = Path(tmp) / "bench.db"
    try:
        use_database(f"sqlite:///{db_path}")
        return asyncio.run(run(args, db_path))
    finally:
        from backend.db import reset_engine

        reset_engine()
        if args.keep_db:
            print(f"kept {db_path}")
        else:
            for p in Path(tmp).iterdir():
                p.unlink()
            os.rmdir(tmp)


if __name__ == "__main__":
    sys.exit(main())
