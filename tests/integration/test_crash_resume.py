"""SIGKILL the engine worker mid-discussion, start another: the discussion resumes from its log with no lost or
duplicated message, repeating only the model call that was in flight. For real: worker subprocesses
(`python -m backend.worker`), a local OpenAI-compatible server speaking the wire format, SQLite and Postgres."""

from __future__ import annotations

import os
import time
import uuid

import pytest
from sqlmodel import select

from backend.db import session_scope
from backend.models import RunnerLease
from tests.integration.crash_harness import (
    CrashDrillServer,
    WorkerProcess,
    audit,
    complete_turns,
    count_events,
    create_drill_discussion,
    mark_running,
    statuses,
    streaming_turns,
    wait_for,
    worker_env,
)

CHUNKS, GAP = 20, 0.05  # about 1.2 s per turn
LEASE = 2.0


@pytest.fixture
def workers(tmp_path):
    """Start worker processes on the test's database; any still alive are killed at the end.

    Request a database fixture before this one, so the workers are gone before the database is dropped.
    """
    started: list[WorkerProcess] = []

    def start(lease: float = LEASE, interval: float = 0.3) -> WorkerProcess:
        env = worker_env(os.environ["DATABASE_URL"], lease_seconds=lease, interval=interval)
        proc = WorkerProcess(env, tmp_path / f"worker{len(started) + 1}.log")
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill()


def _mid_stream(server: CrashDrillServer, did: int, *, after_turns: int, into: float):
    """The turn streaming now, once `after_turns` turns are complete and its reply is `into` seconds along."""
    done = complete_turns([did])
    if len(done) < after_turns:
        return None
    in_db = set(streaming_turns([did]))
    now = time.monotonic()
    return next((c.key for c in server.streaming() if c.key in in_db and now - c.started >= into), None)


def _assert_resumed_cleanly(did: int, server: CrashDrillServer, in_flight: set) -> None:
    result = audit(did)
    assert result.status == "completed"
    assert len(result.turns) == 6
    assert result.lost == [] and result.duplicated == []
    assert all(result.rows[k] == 1 for k in result.turns), result.rows  # one message row per (round, agent)
    assert result.wrong_content(CHUNKS) == []  # complete, exactly the streamed reply, nothing mixed in
    assert sum(result.completed_events.values()) == len(result.turns)
    assert result.seqs_gapless, result.seqs
    assert result.finished_events == 1
    calls = server.counts()
    assert set(calls) == set(result.turns.values())
    # One call per turn, plus one for the call in flight at the kill; every other turn was called once.
    assert sum(calls.values()) == len(result.turns) + len(in_flight)
    assert {k for k, n in calls.items() if n > 1} == in_flight


def test_sigkill_mid_stream_then_a_new_worker_resumes_without_loss_or_duplicates(database, workers, tmp_path):
    with CrashDrillServer(chunks=CHUNKS, gap=GAP) as server:
        did = create_drill_discussion(server.base_url, f"Crash drill {uuid.uuid4().hex[:6]}: which database?")
        mark_running(did)

        first = workers()
        # Kill during the second turn, half a second into its reply: one turn complete, one in flight.
        key = wait_for(lambda: _mid_stream(server, did, after_turns=1, into=0.5), 30, "the second turn mid-stream")
        first.kill()
        wait_for(server.idle, 10, "the server to count every request the dead worker sent")
        assert statuses([did])[did] == "running"
        in_flight = {k for k in server.counts() if k not in complete_turns([did])}
        assert in_flight == {key}  # exactly one call in flight for round-robin
        assert streaming_turns([did]) == [key]  # left "streaming" by the dead engine

        second = workers()
        wait_for(lambda: statuses([did])[did] == "completed", 30, "the resumed discussion to complete")
        assert second.terminate() == 0  # SIGTERM: a graceful exit

    _assert_resumed_cleanly(did, server, in_flight)
    log = second.log_text()
    assert f"discussion {did}: resumed from its log" in log
    assert "stopped" in log


def test_sigkill_during_parallel_opening_statements_repeats_exactly_the_calls_in_flight(sqlite_db, workers):
    """With round 1 as a concurrent fan-out, every opening statement is in flight at once: all are repeated once."""
    with CrashDrillServer(chunks=CHUNKS, gap=GAP) as server:
        did = create_drill_discussion(
            server.base_url, f"Fan-out drill {uuid.uuid4().hex[:6]}: which cache?", parallel_openings=True
        )
        mark_running(did)

        first = workers()

        def all_openings_mid_stream():
            now = time.monotonic()
            return len([c for c in server.streaming() if c.key.round == 1 and now - c.started >= 0.4]) == 3

        wait_for(all_openings_mid_stream, 30, "the three opening statements mid-stream")
        first.kill()
        wait_for(server.idle, 10, "the server to count every request the dead worker sent")
        in_flight = {k for k in server.counts() if k not in complete_turns([did])}
        assert len(in_flight) == 3 and {k.round for k in in_flight} == {1}
        assert sorted(streaming_turns([did])) == sorted(in_flight)

        second = workers()
        wait_for(lambda: statuses([did])[did] == "completed", 30, "the resumed discussion to complete")
        assert second.terminate() == 0

    _assert_resumed_cleanly(did, server, in_flight)


def test_sigterm_hands_the_discussion_back_at_once(sqlite_db, workers):
    """A graceful stop releases the lease: the next worker resumes without waiting for it to expire."""
    with CrashDrillServer(chunks=CHUNKS, gap=GAP) as server:
        did = create_drill_discussion(server.base_url, f"Graceful drill {uuid.uuid4().hex[:6]}: which queue?")
        mark_running(did)
        first = workers(lease=60)
        key = wait_for(lambda: _mid_stream(server, did, after_turns=1, into=0.3), 30, "a turn mid-stream")
        t0 = time.monotonic()
        assert first.terminate(timeout=10) == 0
        assert time.monotonic() - t0 < 10  # no waiting for anything but the engine to stop
        assert f"discussions handed back: {did}" in first.log_text()
        with session_scope() as s:
            assert s.exec(select(RunnerLease).where(RunnerLease.discussion_id == did)).first() is None
        assert streaming_turns([did]) == [key]
        in_flight = {k for k in server.counts() if k not in complete_turns([did])}

        second = workers(lease=60)  # the lease is gone, so a 60 s lease does not delay it
        wait_for(lambda: statuses([did])[did] == "completed", 30, "the handed-back discussion to complete")
        assert second.terminate() == 0
    _assert_resumed_cleanly(did, server, in_flight)
    assert count_events([did], "run_started") == 2
