"""Crash drill: SIGKILL the engine worker at random moments, restart it, and count what survived.

Worker processes (`python -m backend.worker`) run discussions whose agents talk to a local OpenAI-compatible
server (real wire format, each reply streamed in --chunks pieces --gap s apart; every call counted per
(discussion, agent, round)). The drill starts a worker, waits for a moment picked at random, kills it with
SIGKILL, and starts the next one, --kills times; it keeps --discussions discussions unfinished all along,
creating a new one (marked running, as Run Agents leaves it) whenever one completes; about half of them open
with round 1 as a concurrent fan-out (parallel opening statements), so several calls are in flight at once.
Kill moments:

    at start     a random instant in the first 1.5 s: importing, migrating, taking leases, loading
    mid-stream   a random instant inside a reply being streamed
    between      right after a turn was committed, before or just as the next call goes out
    random       anywhere in the first 4 s

After the last kill one more worker runs every discussion to the end (and is stopped with SIGTERM). The audit
then reads the database and prints: kills (and where they landed), resumed (discussions unfinished at some
kill that completed), lost turns (no complete message), duplicated turns (more than one message row or
TurnCompleted event), wrong contents, seq gaps, repeated model calls (calls beyond one per turn) against the
calls in flight at the kills (a call the server received for a turn not complete when its worker died), and
the wall time. Exit status 1 unless it is 100 % resumed, 0 lost, 0 duplicated and repeated == in flight.

    . .venv/bin/activate
    python bench/crash_resume.py                 # 50 kills on SQLite, 1.5-3 minutes
    python bench/crash_resume.py --postgres      # the same on a temp Postgres database (127.0.0.1:5432)
    python bench/crash_resume.py --kills 10 -v   # fewer kills, one line per kill
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import random
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("REFLEX_TELEMETRY_ENABLED", "false")

PERSONAS = ("architect", "security", "product", "critic", "pragmatist", "skeptic", "optimist", "researcher")
PG_ADMIN_URL = os.environ.get("MAESTRO_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
MODES = ("at start", "mid-stream", "between", "random")


def use_database(url: str) -> None:
    from backend.bootstrap import prepare_database
    from backend.config import get_settings
    from backend.db import reset_engine

    os.environ["DATABASE_URL"] = url
    get_settings.cache_clear()
    reset_engine()
    prepare_database(url)
    logging.getLogger("alembic").setLevel(logging.WARNING)


@contextlib.contextmanager
def temp_postgres():
    import psycopg

    name = f"maestro_crash_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        from backend.db import reset_engine

        reset_engine()
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Drill:
    def __init__(self, args: argparse.Namespace, url: str, workdir: Path) -> None:
        from tests.integration.crash_harness import CrashDrillServer, worker_env

        self.args = args
        self.rng = random.Random(args.seed)
        self.workdir = workdir
        self.env = worker_env(url, lease_seconds=args.lease, interval=args.interval)
        self.server = CrashDrillServer(chunks=args.chunks, gap=args.gap)
        self.reply_s = (args.chunks + 4) * args.gap  # how long one reply takes to stream
        self.discussions: list[int] = []
        self.parallel: set[int] = set()  # those with parallel opening statements
        self.killed_unfinished: set[int] = set()  # discussions that were unfinished at some kill
        self.kills: Counter[str] = Counter()  # by mode
        self.landed: Counter[str] = Counter()  # by where the kill landed
        self.spawned_at: list[float] = []  # when each worker was started
        self.after_kill: list[tuple[float, set]] = []  # per kill: when, and the turns complete right after it
        self.workers = 0

    # --- pieces -----------------------------------------------------------------------------------------

    def top_up(self) -> None:
        """Keep --discussions discussions unfinished: create (and mark running) new ones as others complete."""
        from tests.integration.crash_harness import create_drill_discussion, mark_running, statuses

        state = statuses(self.discussions) if self.discussions else {}
        unfinished = [d for d in self.discussions if state[d] not in ("completed", "failed")]
        personas = PERSONAS[: self.args.agents]
        for _ in range(self.args.discussions - len(unfinished)):
            topic = f"Drill {len(self.discussions) + 1} ({uuid.uuid4().hex[:6]}): which queue for Apollo?"
            parallel = self.rng.random() < self.args.parallel_openings
            did = create_drill_discussion(
                self.server.base_url, topic, personas, self.args.rounds, parallel_openings=parallel
            )
            mark_running(did)
            self.discussions.append(did)
            if parallel:
                self.parallel.add(did)

    def spawn(self):
        from tests.integration.crash_harness import WorkerProcess

        self.workers += 1
        worker = WorkerProcess(self.env, self.workdir / f"worker{self.workers:03d}.log")
        self.spawned_at.append(worker.started)
        return worker

    def wait_for_moment(self, worker, mode: str) -> str:
        """Sleep until the kill moment of `mode`; returns what was waited for (or 'timeout')."""
        from tests.integration.crash_harness import count_events, wait_for

        spawned = time.monotonic()
        try:
            if mode == "at start":
                time.sleep(self.rng.uniform(0, 1.5))
            elif mode == "random":
                time.sleep(self.rng.uniform(0, 4.0))
            elif mode == "mid-stream":
                into = self.rng.uniform(0, self.reply_s)
                wait_for(
                    lambda: any(
                        c.started > spawned and time.monotonic() - c.started >= into for c in self.server.streaming()
                    ),
                    self.args.wait_timeout,
                    "a reply mid-stream",
                    every=0.005,
                )
            else:  # between: right after a TurnCompleted committed by this worker
                before = count_events(self.discussions, "turn_completed")
                wait_for(
                    lambda: count_events(self.discussions, "turn_completed") > before,
                    self.args.wait_timeout,
                    "a turn to complete",
                    every=0.005,
                )
        except TimeoutError:
            return "timeout"
        return mode

    def account_kill(self, spawned_runs: int, killed_at: float) -> tuple[int, str]:
        """After a kill: the calls that worker left in flight (so far), and where the kill landed."""
        from tests.integration.crash_harness import complete_turns, count_events, statuses, wait_for

        # Every request the dead worker sent is counted once the server has accepted and read them all.
        wait_for(self.server.idle, 10, "the server to drain the dead worker's connections", every=0.01)
        complete = complete_turns(self.discussions)  # fixed until the next worker runs
        self.after_kill.append((killed_at, complete))
        in_flight = {c.key for c in self.server.snapshot() if c.started >= self.spawned_at[-1]} - complete
        state = statuses(self.discussions)
        self.killed_unfinished |= {d for d, s in state.items() if s not in ("completed", "failed")}
        if in_flight:
            landed = "with a call in flight"
        elif count_events(self.discussions, "run_started") == spawned_runs:
            landed = "before any engine ran"
        else:
            landed = "between calls"
        self.landed[landed] += 1
        return len(in_flight), landed

    # --- the drill --------------------------------------------------------------------------------------

    def run(self) -> bool:
        from tests.integration.crash_harness import audit, count_events, statuses, wait_for

        args = self.args
        t0 = time.monotonic()
        with self.server:
            for k in range(1, args.kills + 1):
                self.top_up()
                runs_before = count_events(self.discussions, "run_started")
                worker = self.spawn()
                mode = self.rng.choice(MODES)
                waited = self.wait_for_moment(worker, mode)
                alive, lived = worker.alive(), time.monotonic() - worker.started
                killed_at = time.monotonic()
                worker.kill()
                in_flight, landed = self.account_kill(runs_before, killed_at)
                self.kills[mode if waited != "timeout" else f"{mode} (timed out)"] += 1
                if args.verbose:
                    print(
                        f"kill {k:3d} at {time.monotonic() - t0:6.1f}s  {waited:10s} after {lived:4.1f}s  pid {worker.pid}"
                        f"{'' if alive else ' (already dead!)'}  {landed}, {in_flight} in flight",
                        flush=True,
                    )
                elif k % 10 == 0:
                    print(f"  {k} kills, {time.monotonic() - t0:.0f} s", flush=True)
            # The last worker finishes everything, then stops gracefully.
            final = self.spawn()
            try:
                wait_for(
                    lambda: all(s == "completed" for s in statuses(self.discussions).values()),
                    args.finish_timeout,
                    "every discussion to complete",
                    every=0.1,
                )
            except TimeoutError as exc:
                print(f"!! {exc}")
            rc = final.terminate()
            calls = self.server.counts()
            per_kill, late = self.in_flight_at_kills()
            self.explain_mismatches(per_kill, t0)
        wall = time.monotonic() - t0
        in_flight = sum(len(keys) for keys in per_kill)
        return self.report([audit(d) for d in self.discussions], calls, rc, wall, (in_flight, late))

    def in_flight_at_kills(self) -> tuple[list[set], int]:
        """Per kill, the turns whose call the dead worker had made and not completed (each worker's calls are
        those the server received between its start and the next worker's: the drill waits for the server to
        drain a dead worker's connections before starting the next); also how many of those calls reached the
        server only after the kill."""
        calls = self.server.snapshot()
        bounds = [*self.spawned_at, float("inf")]
        per_kill = []
        late = 0
        for k, (killed_at, complete) in enumerate(self.after_kill):
            mine = [c for c in calls if bounds[k] <= c.started < bounds[k + 1]]
            per_kill.append({c.key for c in mine} - complete)
            late += sum(c.started > killed_at for c in mine)
        return per_kill, late

    def explain_mismatches(self, per_kill: list[set], t0: float) -> None:
        """Print every turn called a different number of times than 1 + the kills that caught it in flight."""
        caught = Counter(k for keys in per_kill for k in keys)
        for key, n in self.server.counts().items():
            if n - 1 != caught[key]:
                starts = [f"{c.started - t0:.2f}" for c in self.server.snapshot() if c.key == key]
                kills = [
                    f"{at - t0:.2f}" for (at, _), keys in zip(self.after_kill, per_kill, strict=True) if key in keys
                ]
                spawns = [f"{t - t0:.2f}" for t in self.spawned_at]
                print(f"!! {key}: {n} calls at {starts}; in flight at the kills at {kills}; workers started {spawns}")

    def report(self, audits, calls, final_rc: int, wall: float, flights: tuple[int, int]) -> bool:
        args = self.args
        in_flight, late = flights
        turns = {t for a in audits for t in a.turns.values()}
        lost = sum(len(a.lost) for a in audits)
        duplicated = sum(len(a.duplicated) for a in audits)
        wrong = sum(len(a.wrong_content(args.chunks)) for a in audits)
        gaps = sum(not a.seqs_gapless for a in audits)
        bad_finish = sum(a.finished_events != 1 for a in audits)
        completed = {a.discussion_id for a in audits if a.status == "completed"}
        resumed = self.killed_unfinished & completed
        total_calls = sum(calls.values())
        repeated = sum(n - 1 for n in calls.values() if n > 1)
        uncalled = len(turns - set(calls))
        db = "Postgres" if args.postgres else "SQLite"
        print()
        print(
            f"crash drill on {db}: lease {args.lease:g} s, janitor {args.interval:g} s, {args.agents} agents x "
            f"{args.rounds} rounds, replies of {args.chunks} chunks x {args.gap * 1000:g} ms, seed {args.seed}"
        )
        print(f"kills:        {sum(self.kills.values())}  by moment: {dict(sorted(self.kills.items()))}")
        print(f"              landed: {dict(sorted(self.landed.items()))}")
        pct = 100 * len(resumed) / len(self.killed_unfinished) if self.killed_unfinished else 100.0
        print(
            f"resumed:      {len(resumed)}/{len(self.killed_unfinished)} discussions unfinished at a kill ({pct:.0f} %);"
            f" completed {len(completed)}/{len(audits)} discussions ({len(self.parallel)} with parallel openings)"
        )
        print(f"turns:        {len(turns)}")
        print(f"lost:         {lost}")
        print(f"duplicated:   {duplicated}")
        print(f"also:         wrong content {wrong}, seq gaps {gaps}, discussion_finished != 1: {bad_finish}")
        print(
            f"model calls:  {total_calls} = {len(turns) - uncalled} turns + {repeated} repeated;"
            f" in flight at the kills: {in_flight}"
        )
        print(f"              ({late} of the calls in flight reached the server only after their worker was killed)")
        print(f"workers:      {self.workers} started, the last one stopped by SIGTERM with exit code {final_rc}")
        print(f"wall time:    {wall:.1f} s")
        ok = (
            len(resumed) == len(self.killed_unfinished)
            and len(completed) == len(audits)
            and lost == duplicated == wrong == gaps == bad_finish == uncalled == 0
            and repeated == in_flight
            and final_rc == 0
        )
        print("RESULT:       " + ("OK" if ok else "PROBLEMS (see above)"))
        return ok


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=50)
    ap.add_argument("--discussions", type=int, default=3, help="unfinished discussions kept going at once")
    ap.add_argument("--agents", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--parallel-openings",
        type=float,
        default=0.5,
        help="share of discussions whose round 1 is a concurrent fan-out of opening statements",
    )
    ap.add_argument("--chunks", type=int, default=12, help="streamed pieces per reply")
    ap.add_argument("--gap", type=float, default=0.02, help="seconds between pieces")
    ap.add_argument("--lease", type=float, default=1.0, help="MAESTRO_LEASE_SECONDS for the workers")
    ap.add_argument("--interval", type=float, default=0.3, help="janitor interval of the workers, seconds")
    ap.add_argument("--seed", type=int, default=None, help="random seed (default: random, printed)")
    ap.add_argument("--wait-timeout", type=float, default=15.0, help="longest wait for a kill moment")
    ap.add_argument("--finish-timeout", type=float, default=120.0, help="longest wait for the final worker")
    ap.add_argument("--postgres", action="store_true", help="a temp Postgres database instead of SQLite")
    ap.add_argument("--keep", action="store_true", help="keep the work dir (database, worker logs)")
    ap.add_argument("-v", "--verbose", action="store_true", help="one line per kill")
    args = ap.parse_args()
    if args.seed is None:
        args.seed = random.randrange(1_000_000)

    workdir = Path(tempfile.mkdtemp(prefix="maestro-crash-"))
    with temp_postgres() if args.postgres else contextlib.nullcontext(f"sqlite:///{workdir}/drill.db") as url:
        use_database(url)
        print(f"work dir {workdir} (worker logs{', database' if not args.postgres else ''})", flush=True)
        ok = Drill(args, url, workdir).run()
    if not args.keep and ok:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
