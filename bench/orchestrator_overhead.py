"""Orchestrator overhead per agent message, against a plain asyncio loop making the same provider calls.

A "0 ms model" (ScriptedProvider, token_delay=0, ~50-word replies streamed word by word) makes the model free,
so what is left is Maestro's own cost: the database step of a turn (one transaction closes it and opens the
next: message rows, TurnCompleted + TurnStarted, the transcript read; see backend/orchestrator/turn_log.py),
the thread hop of `run_db`, the streamed text and the runner's lease. The text is ~50 words, one provider delta
each, which the engine publishes as one `TokenDelta` per event-loop turn (backend/orchestrator/streamed_text.py):
here, where the model yields a reply at once, one per message; with `--token-by-token` the model yields to the
loop after every word, as a network stream that delivers one token per read does, and every word is a TokenDelta.
The baseline is a plain asyncio loop making the same calls (same count, same replies, same growing transcript,
stream consumed) with no persistence and no bus.

Both are measured in the same process and run, alternating, `--repeat` times; medians are printed. Then an
instrumented run splits the engine's time (DB work in the worker thread / thread-hop wait / bus publish /
the rest) and a cProfile run (DB steps inlined on the event loop thread so the profiler sees them) names
the top costs.

A benchmark, not a test: it prints figures and is not run in CI.

    . .venv/bin/activate
    python bench/orchestrator_overhead.py                   # SQLite: 10 x (3 agents x 10 rounds), 1 x (3 x 100)
    python bench/orchestrator_overhead.py --postgres        # also Postgres on 127.0.0.1:5432 (temp database)
    python bench/orchestrator_overhead.py --subscribers 10  # with 10 bus subscribers draining (10 open tabs)
    python bench/orchestrator_overhead.py --rev HEAD        # the last commit, not the (busy) working tree

Discussions are created through `create_discussion` (which caps rounds at 10); for longer runs the bench
raises `discussion.rounds` in the database afterwards, so one discussion holds all the turns and the
transcript each agent receives grows to hundreds of messages as it would in a long debate. Use
`--discussions D --rounds 10` for several validated discussions instead.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import logging
import os
import pstats
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("REFLEX_TELEMETRY_ENABLED", "false")
# The baseline never summarises, so neither may the engine: a window no transcript here fills (the "long" shape
# outgrows the default 8k window of an unknown model, which would add summary calls to the engine's side only).
os.environ.setdefault("MAESTRO_CONTEXT_TOKENS", "10000000")

import _source  # noqa: E402

PERSONAS = ("architect", "security", "product", "critic", "pragmatist", "skeptic", "optimist", "researcher")
PG_ADMIN_URL = os.environ.get("MAESTRO_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")

_VOCAB = (
    "the a we should consider database latency cost migration rollback risk team users schema index "
    "postgres sqlite replication backup encryption audit trade-off deadline budget throughput queue cache "
    "consistency availability partition review design proposal agree disagree because however therefore "
    "although simply carefully measured production staging monitoring alerting on-call incident"
).split()


def make_replies(agents: int, per_agent: int, words: int, seed: int = 7) -> list[list[str]]:
    """Deterministic, varied ~`words`-word replies, `per_agent` distinct ones per agent."""
    rng = random.Random(seed)
    out = []
    for _ in range(agents):
        replies = []
        for _ in range(per_agent):
            text = " ".join(rng.choice(_VOCAB) for _ in range(words))
            replies.append(text[0].upper() + text[1:] + ".")
        out.append(replies)
    return out


# --- database setup --------------------------------------------------------------------------------------


def use_database(url: str) -> None:
    """Point the app at `url` (fresh settings and engine), migrate and seed it."""
    from backend.bootstrap import prepare_database
    from backend.config import get_settings
    from backend.db import reset_engine

    os.environ["DATABASE_URL"] = url
    get_settings.cache_clear()
    reset_engine()
    prepare_database(url)
    logging.getLogger("alembic").setLevel(logging.WARNING)


@contextlib.contextmanager
def temp_sqlite():
    with tempfile.TemporaryDirectory(prefix="maestro-bench-") as tmp:
        yield f"sqlite:///{tmp}/bench.db"


@contextlib.contextmanager
def temp_postgres():
    import psycopg

    name = f"maestro_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        from backend.db import reset_engine

        reset_engine()
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def create(agents: int, rounds: int, max_tokens: int) -> int:
    from sqlmodel import update

    from backend.db import session_scope
    from backend.models import Discussion
    from backend.services.discussions import MAX_ROUNDS, AgentSpec, create_discussion

    d = create_discussion(
        topic="Should Apollo move its event store from SQLite to Postgres this quarter?",
        agents=[AgentSpec(persona_key=PERSONAS[i], provider="scripted", model="m") for i in range(agents)],
        rounds=min(rounds, MAX_ROUNDS),
        max_tokens_per_turn=max_tokens,
    )
    if rounds > MAX_ROUNDS:
        with session_scope() as s:
            s.exec(update(Discussion).where(Discussion.id == d.id).values(rounds=rounds))  # type: ignore[call-overload]
    assert d.id is not None
    return d.id


# --- the two loops ---------------------------------------------------------------------------------------


def model_class(args):
    """The 0 ms model: a reply at once, or with `--token-by-token` one word per event-loop turn."""
    from backend.providers.scripted import ScriptedProvider

    if not args.token_by_token:
        return ScriptedProvider

    class TokenByToken(ScriptedProvider):
        async def stream(self, request):
            async for item in super().stream(request):
                yield item
                await asyncio.sleep(0)

    return TokenByToken


async def run_engine(
    args, replies, *, bus=None, profiler: cProfile.Profile | None = None
) -> tuple[int, float, float, list[int]]:
    """Create the discussions (untimed), then run them one after another through the Runner (timed).

    With `args.subscribers`, that many tasks subscribe to the bus and drain it (like open tabs' followers,
    without their flushing), so the fan-out is part of the engine's time.
    """
    from backend.events.bus import InProcessBus
    from backend.events.schema import DiscussionFinished
    from backend.orchestrator.runner import Runner
    from backend.providers.scripted import ScriptedProvider

    dids = [create(args.agents, args.rounds, args.max_tokens) for _ in range(args.discussions)]
    model = model_class(args)  # made before the clock starts, as the baseline's
    bus = bus or InProcessBus()
    providers: dict[str, ScriptedProvider] = {}

    def lookup(agent):
        p = providers.get(agent.name)
        if p is None:
            p = providers[agent.name] = model(replies[agent.position], token_delay=0)
        return p

    runner = Runner(bus=bus, provider_lookup=lookup, lease_seconds=15)

    async def drain(did: int) -> None:
        sub = await bus.subscribe(did)
        async for event in sub:
            if isinstance(event, DiscussionFinished):
                break
        await sub.close()

    messages = 0
    if profiler:
        profiler.enable()
    t0, c0 = time.perf_counter(), time.process_time()
    for did in dids:
        providers.clear()
        tabs = [asyncio.create_task(drain(did)) for _ in range(args.subscribers)]
        await asyncio.sleep(0)
        assert await runner.start(did)
        await runner.wait(did)
        if tabs:
            _done, pending = await asyncio.wait(tabs, timeout=5)
            for t in pending:  # the engine died before DiscussionFinished: reported below
                t.cancel()
        messages += sum(p.calls for p in providers.values())
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    if profiler:
        profiler.disable()
    check_completed(dids)
    return messages, wall, cpu, dids


def check_completed(dids: list[int]) -> None:
    """Stop with a clear message when the engine did not finish a discussion (e.g. code mid-edit)."""
    from sqlmodel import select

    from backend.db import session_scope
    from backend.models import Discussion

    with session_scope() as s:
        bad = [
            (d.id, d.status)
            for d in s.exec(select(Discussion).where(Discussion.id.in_(dids)))
            if d.status != "completed"
        ]  # type: ignore[union-attr]
    if bad:
        raise SystemExit(
            f"the engine did not complete {len(bad)} discussion(s) {bad[:5]}; see the log above. "
            "If others are editing backend/, benchmark a commit instead: --rev HEAD"
        )


async def run_baseline(args, replies) -> tuple[int, float, float]:
    """The same provider calls from a plain asyncio loop: same count, replies and growing transcript."""
    from backend.providers.base import Completion, GenerationRequest, TokenDelta, TranscriptEntry

    names = [f"Agent{i}" for i in range(args.agents)]
    model = model_class(args)
    messages = 0
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(args.discussions):
        providers = [model(replies[i], token_delay=0) for i in range(args.agents)]
        transcript = [TranscriptEntry(author="Host", content="Should Apollo move ...?", author_kind="human")]
        for r in range(1, args.rounds + 1):
            for i, name in enumerate(names):
                request = GenerationRequest(
                    model="m",
                    system=f"You are {name}, one participant in a live discussion.",
                    transcript=[
                        *transcript,
                        TranscriptEntry(author="Moderator", content=f"Round {r}", author_kind="system"),
                    ],
                    max_tokens=args.max_tokens,
                )
                text, final = "", None
                async for item in providers[i].stream(request):
                    if isinstance(item, TokenDelta):
                        text += item.text
                    elif isinstance(item, Completion):
                        final = item
                assert final is not None and final.text == text
                transcript.append(TranscriptEntry(author=name, content=text))
                messages += 1
    return messages, time.perf_counter() - t0, time.process_time() - c0


# --- breakdowns ------------------------------------------------------------------------------------------


async def instrumented_run(args, replies) -> dict[str, float]:
    """One engine run with timers around its database steps (thread side and await side) and bus.publish.

    The engine's steps go through its `DbLane`, the runner's through `run_db`: both are wrapped.
    """
    from sqlalchemy import event as sa_event

    import backend.orchestrator.runner as runner_mod
    from backend.db import DbLane, get_engine
    from backend.events.bus import InProcessBus

    inside: dict[str, float] = defaultdict(float)
    inside_cpu: dict[str, float] = defaultdict(float)
    awaited: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    original_run_db, original_lane_run = runner_mod.run_db, DbLane.run

    def timed(hand_off):
        async def run(*call):
            fn, a = (call[1], call[2:]) if isinstance(call[0], DbLane) else (call[0], call[1:])
            name = getattr(fn, "__name__", str(fn))

            def body():
                t, c = time.perf_counter(), time.thread_time()
                try:
                    return fn(*a)
                finally:
                    inside[name] += time.perf_counter() - t
                    inside_cpu[name] += time.thread_time() - c

            t = time.perf_counter()
            try:
                return await (hand_off(call[0], body) if isinstance(call[0], DbLane) else hand_off(body))
            finally:
                awaited[name] += time.perf_counter() - t
                counts[name] += 1

        return run

    class TimedBus(InProcessBus):
        publish_s = 0.0
        publish_n = 0

        def publish_nowait(self, event):  # `publish` calls it too: every event is counted once
            t = time.perf_counter()
            super().publish_nowait(event)
            TimedBus.publish_s += time.perf_counter() - t
            TimedBus.publish_n += 1

    sql = {"statements": 0, "commits": 0, "counting": False}

    def on_execute(*_a, **_k):
        if sql["counting"]:
            sql["statements"] += 1

    def on_commit(*_a, **_k):
        if sql["counting"]:
            sql["commits"] += 1

    class CountingProfiler:  # run_engine enables/disables it around the timed part
        def enable(self):
            sql["counting"] = True
            inside.clear(), inside_cpu.clear(), awaited.clear(), counts.clear()

        def disable(self):
            sql["counting"] = False

    engine = get_engine()
    sa_event.listen(engine, "before_cursor_execute", on_execute)
    sa_event.listen(engine, "commit", on_commit)
    runner_mod.run_db = timed(original_run_db)  # type: ignore[assignment]
    DbLane.run = timed(original_lane_run)  # type: ignore[method-assign]
    try:
        messages, wall, cpu, _ = await run_engine(args, replies, bus=TimedBus(), profiler=CountingProfiler())  # type: ignore[arg-type]
    finally:
        runner_mod.run_db = original_run_db
        DbLane.run = original_lane_run  # type: ignore[method-assign]
        sa_event.remove(engine, "before_cursor_execute", on_execute)
        sa_event.remove(engine, "commit", on_commit)
    out = {
        "messages": messages,
        "wall": wall,
        "cpu": cpu,
        "publish": TimedBus.publish_s,
        "publish_n": TimedBus.publish_n,
    }
    out.update(statements=sql["statements"], commits=sql["commits"], db_inside_cpu=sum(inside_cpu.values()))
    out["db_inside"] = sum(inside.values())
    out["db_await"] = sum(awaited.values())
    out["per_step"] = {n: (counts[n], inside[n], awaited[n]) for n in counts}  # type: ignore[assignment]
    return out


def _category(key: tuple[str, int, str]) -> str:
    filename, _line, func = key
    f = filename.replace("\\", "/")
    if "sqlite3" in func or "sqlite3" in f:
        return "sqlite3 driver (C)"
    if "psycopg" in f or "psycopg" in func:
        return "psycopg driver"
    if "/sqlalchemy/orm/" in f:
        return "SQLAlchemy ORM"
    if "/sqlalchemy/" in f:
        return "SQLAlchemy core/engine/pool"
    if "/sqlmodel/" in f:
        return "SQLModel"
    if "/pydantic" in f or "pydantic_core" in func:
        return "pydantic (events/models)"
    if "/asyncio/" in f or "_asyncio" in func or "select.epoll" in func:
        return "asyncio loop"
    if "/backend/" in f:
        return "Maestro code (engine, bus, scripted provider)"
    if "/bench/" in f:
        return "bench harness"
    if "datetime" in func or "/json/" in f or "typing" in f or "enum" in f:
        return "stdlib (datetime/json/enum/typing)"
    return "other (stdlib, builtins)"


def profile_run(args, replies) -> tuple[cProfile.Profile, int, float]:
    """cProfile one engine run with its database steps inlined (the profiler only sees the thread it runs in)."""
    import backend.orchestrator.runner as runner_mod
    from backend.db import DbLane

    original_run_db, original_lane_run = runner_mod.run_db, DbLane.run

    async def inline_run_db(fn, *a, **k):
        return fn(*a, **k)

    async def inline_lane_run(_lane, fn, *a, **k):
        return fn(*a, **k)

    runner_mod.run_db = inline_run_db
    DbLane.run = inline_lane_run  # type: ignore[method-assign]
    profiler = cProfile.Profile()
    try:
        loop = asyncio.new_event_loop()
        try:
            messages, wall, _cpu, _ = loop.run_until_complete(run_engine(args, replies, profiler=profiler))
        finally:
            loop.close()
    finally:
        runner_mod.run_db = original_run_db
        DbLane.run = original_lane_run  # type: ignore[method-assign]
    return profiler, messages, wall


def print_profile(profiler: cProfile.Profile, messages: int, top: int, engine_ms: float) -> None:
    """Self time by layer, inclusive time of Maestro's steps, the top functions, and the top 3 costs.

    cProfile's timer is wall-clock; `engine_ms` (the unprofiled engine wall ms/message) turns shares into ms.
    """
    buf = io.StringIO()
    stats = pstats.Stats(profiler, stream=buf)
    raw = stats.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in raw.values())  # tottime
    cats: dict[str, float] = defaultdict(float)
    for key, (_cc, _nc, tt, _ct, _callers) in raw.items():
        cats[_category(key)] += tt
    print(
        f"  cProfile (wall-clock timer): {total * 1000 / messages:.3f} ms/message profiled (the profiler inflates it);"
    )
    print(f"  'est.' = share x the unprofiled engine wall time of {engine_ms:.3f} ms/message")
    print("  self time by layer:")
    for name, tt in sorted(cats.items(), key=lambda kv: -kv[1]):
        share = tt / total
        print(f"    {share * 100:5.1f}%  est. {share * engine_ms:7.3f} ms/msg  {name}")

    def cum(pred) -> tuple[float, int]:
        """Cumulative time and primitive calls of the outermost function matching `pred`."""
        hits = sorted((v[3], v[1]) for k, v in raw.items() if pred(k))
        return hits[-1] if hits else (0.0, 0)

    def in_engine(k):
        return k[0].endswith(("orchestrator/engine.py", "orchestrator/turn.py"))

    start, n_start = cum(lambda k: k[2] == "_start" and in_engine(k))
    finish, _ = cum(lambda k: k[2] == "_finish" and in_engine(k))
    transcript, _ = cum(lambda k: k[2] == "completed_after")
    append, n_append = cum(lambda k: k[2] == "append_event")
    commit, n_commit = cum(lambda k: k[2] == "commit" and k[0].endswith("orm/session.py"))
    turn, _ = cum(lambda k: k[2] == "run" and k[0].endswith("orchestrator/turn.py"))
    provider, _ = cum(lambda k: k[2] == "stream" and k[0].endswith("providers/scripted.py"))
    publish, n_publish = cum(lambda k: k[2] == "publish_nowait" and k[0].endswith("events/bus.py"))
    pyd, n_pyd = cum(lambda k: k[2] == "__init__" and k[0].endswith("pydantic/main.py"))
    steps = [
        (start, n_start, "Turn._start: a turn nothing opened (the first of a run, after people acted)"),
        (transcript, n_start, "  the transcript reads (new completed messages only), in both steps"),
        (finish, n_start, "Turn._finish: close this turn and open the next, 1 transaction"),
        (append, n_append, "  append_event (both steps): UPDATE discussion .. RETURNING + event row + model_dump"),
        (commit, n_commit, "  session commit (both steps): ORM flush + COMMIT"),
        (provider, n_start, "ScriptedProvider.stream (the 0 ms model, also paid by the baseline)"),
        (pyd, n_pyd, "pydantic BaseModel.__init__ (TokenDelta and other events)"),
        (publish, n_publish, "InProcessBus.publish_nowait (every event, TokenDeltas included)"),
        (turn - start - finish - provider, n_start, "rest of Turn.run on the loop (deltas, bookkeeping)"),
    ]
    print("  inclusive time of Maestro steps:")
    for ct, n, label in steps:
        share = ct / total
        print(f"    {share * 100:5.1f}%  est. {share * engine_ms:7.3f} ms/msg  calls={n:<6} {label}")
    stats.sort_stats("tottime").print_stats(top)
    lines = [ln for ln in buf.getvalue().splitlines() if ln.strip()]
    first = next((i for i, ln in enumerate(lines) if ln.lstrip().startswith("ncalls")), 0)
    print(f"  top {top} functions by self time:")
    for ln in lines[first : first + top + 1]:
        print("    " + ln.replace(str(ROOT) + "/", "").replace(sys.prefix + "/lib/python3.11/site-packages/", "")[:140])
    buckets = {
        "transcript read in _start_turn": transcript,
        "append_event x2 per message (UPDATE..RETURNING, event INSERT, pydantic dump)": append,
        "session commits x2 per message (ORM unit-of-work flush + COMMIT)": commit,
        "other database work in _start_turn/_finish_turn (statements, commit)": start
        + finish
        - transcript
        - append
        - commit,
        "token path (TokenDelta objects + bus publish + engine loop)": turn - start - finish - provider,
    }
    ranked = sorted(buckets.items(), key=lambda kv: -kv[1])[:3]
    print(
        "  TOP 3 COSTS: "
        + "; ".join(f"{i + 1}) {k} ~{v / total * engine_ms:.2f} ms/msg" for i, (k, v) in enumerate(ranked))
    )


async def measure(args, replies, label: str) -> dict[str, float]:
    engine_runs, base_runs = [], []
    # Warm up both paths (imports, SQLAlchemy statement caches, connection pool).
    warm = argparse.Namespace(**{**vars(args), "rounds": 2, "discussions": 1})
    await run_engine(warm, replies)
    await run_baseline(warm, replies)
    for i in range(args.repeat):
        order = (run_baseline, run_engine) if i % 2 == 0 else (run_engine, run_baseline)
        for fn in order:
            res = await fn(args, replies)
            (base_runs if fn is run_baseline else engine_runs).append(res[:3])
    n = engine_runs[0][0]
    counts = [r[0] for r in engine_runs + base_runs]
    assert all(c == n for c in counts), f"engine and baseline made different numbers of calls: {counts}"
    e_wall = statistics.median(r[1] for r in engine_runs) / n * 1000
    b_wall = statistics.median(r[1] for r in base_runs) / n * 1000
    e_cpu = statistics.median(r[2] for r in engine_runs) / n * 1000
    b_cpu = statistics.median(r[2] for r in base_runs) / n * 1000
    subs = f", {args.subscribers} bus subscribers" if args.subscribers else ""
    subs += ", token by token" if args.token_by_token else ""
    print(
        f"\n== {label} | {args.shape}: {args.discussions} discussion(s) x {args.agents} agents x {args.rounds} rounds"
        f"{subs}; {args.repeat} alternating repeats, medians =="
    )
    print(f"  messages per run              : {n}")
    print(f"  engine   ms/message  wall {e_wall:8.3f}   cpu {e_cpu:8.3f}")
    print(f"  baseline ms/message  wall {b_wall:8.3f}   cpu {b_cpu:8.3f}")
    print(
        f"  overhead ms/message  wall {e_wall - b_wall:8.3f}   cpu {e_cpu - b_cpu:8.3f}   (target < 1 ms: "
        f"{'OK' if e_cpu - b_cpu < 1 else 'OVER'} on cpu, {'OK' if e_wall - b_wall < 1 else 'OVER'} on wall)"
    )
    print(f"  engine/baseline      wall {e_wall / b_wall:7.0f}x   cpu {e_cpu / b_cpu:7.0f}x")
    print(
        "  runs, wall s (engine | baseline): "
        + ", ".join(f"{e[1]:.2f}" for e in engine_runs)
        + " | "
        + ", ".join(f"{b[1]:.3f}" for b in base_runs)
    )
    return {"engine_wall": e_wall, "baseline_wall": b_wall, "engine_cpu": e_cpu, "baseline_cpu": b_cpu}


async def breakdown(args, replies) -> None:
    inst = await instrumented_run(args, replies)
    n = inst["messages"]

    def per(s: float) -> float:
        return s * 1000 / n

    wall = inst["wall"]
    rest = wall - inst["db_await"] - inst["publish"]
    print(
        f"  instrumented run: {per(wall):.3f} ms/message wall, {per(inst['cpu']):.3f} cpu; "
        f"{inst['statements'] / n:.1f} SQL statements and {inst['commits'] / n:.1f} commits per message"
    )
    print(
        f"    {per(inst['db_inside']):7.3f} ms/msg  DB steps inside worker threads, wall "
        f"({per(inst['db_inside_cpu']):.3f} of it on-CPU in that thread)"
    )
    print(
        f"    {per(inst['db_await'] - inst['db_inside']):7.3f} ms/msg  run_db hand-off (to_thread + loop wake-up; "
        "grows with CPU contention)"
    )
    print(f"    {per(inst['publish']):7.3f} ms/msg  bus.publish ({inst['publish_n'] / n:.0f} events/msg)")
    print(f"    {per(rest):7.3f} ms/msg  the rest on the loop (provider stream, TokenDelta objects, engine code)")
    steps = sorted(inst["per_step"].items(), key=lambda kv: -kv[1][2])  # type: ignore[union-attr]
    print(
        "    per DB step (in thread / awaited, ms per call): "
        + "; ".join(f"{name} x{c} {i * 1000 / c:.2f}/{a * 1000 / c:.2f}" for name, (c, i, a) in steps)
    )


SHAPES = {
    # The longest discussion create_discussion accepts is 10 rounds; 10 of them make 300 messages.
    "validated": {"discussions": 10, "rounds": 10},
    # One long debate (rounds raised in the DB): each turn's transcript grows to ~300 messages.
    "long": {"discussions": 1, "rounds": 100},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--shape",
        choices=[*SHAPES, "both"],
        default="both",
        help="validated: 10 discussions x 3 agents x 10 rounds; long: 1 x 3 x 100 (default both)",
    )
    ap.add_argument("--agents", type=int, default=3)
    ap.add_argument("--rounds", type=int, help="rounds per discussion (>10 is set in the DB); overrides --shape")
    ap.add_argument("--discussions", type=int, help="discussions run one after another; overrides --shape")
    ap.add_argument("--words", type=int, default=50, help="words per reply (one provider delta per word)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument(
        "--token-by-token", action="store_true", help="the model yields to the loop after every word (both loops)"
    )
    ap.add_argument("--subscribers", type=int, default=0, help="bus subscribers draining events (open tabs)")
    ap.add_argument("--postgres", action="store_true", help="also run on Postgres (temp database on 127.0.0.1)")
    ap.add_argument("--no-profile", action="store_true")
    ap.add_argument("--top", type=int, default=10)
    ap.add_argument("--rev", help="benchmark this git revision (exported to a temp dir) instead of the working tree")
    args = ap.parse_args()
    source_dir = None
    if args.rev:
        source_dir = Path(tempfile.mkdtemp(prefix="maestro-bench-src-"))
        source = _source.export_rev(args.rev, source_dir)
        _source.use_code(source_dir)
    else:
        source = _source.describe_tree()
    args.max_tokens = args.words * 4
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("backend.providers.pricing").setLevel(logging.ERROR)  # "no price for scripted/m"

    if args.rounds or args.discussions:
        shapes = [("custom", {"discussions": args.discussions or 1, "rounds": args.rounds or 10})]
    elif args.shape == "both":
        shapes = list(SHAPES.items())
    else:
        shapes = [(args.shape, SHAPES[args.shape])]

    from backend.providers import registry
    from backend.providers.scripted import ScriptedProvider

    registry.register_provider("scripted", ScriptedProvider(["unused"]))
    replies = make_replies(args.agents, 7, args.words)
    avg_bytes = statistics.mean(len(r.encode()) for rs in replies for r in rs)
    load = os.getloadavg()
    print(
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} "
        f"{load[2]:.2f}; replies ~{args.words} words / {avg_bytes:.0f} bytes, one provider delta per word"
    )
    print(f"code: {source}")
    if load[0] > (os.cpu_count() or 1):
        print(
            "NOTE: the machine is busy (load > CPUs): wall-clock figures include waiting for a CPU; "
            "CPU-time figures are the reliable ones."
        )

    backends = [("SQLite (temp file, WAL)", temp_sqlite)]
    if args.postgres:
        backends.append(("Postgres 127.0.0.1 (temp database)", temp_postgres))
    try:
        for label, ctx in backends:
            with ctx() as url:
                use_database(url)
                for shape, values in shapes:
                    run_args = argparse.Namespace(**{**vars(args), **values, "shape": shape})
                    res = asyncio.run(measure(run_args, replies, label))
                    asyncio.run(breakdown(run_args, replies))
                    if not args.no_profile:
                        profiler, messages, _wall = profile_run(run_args, replies)
                        print_profile(profiler, messages, args.top, res["engine_wall"])
    finally:
        registry.unregister_provider("scripted")
        if source_dir:
            shutil.rmtree(source_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
