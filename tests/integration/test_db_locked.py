"""The database briefly locked: another connection holds SQLite's write lock for a second mid-discussion.

The engine's writes wait (busy_timeout) instead of failing, nothing is lost, and because every database step
runs in a worker thread (run_db) the event loop goes on meanwhile: tokens keep streaming, a ticker keeps ticking.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from datetime import UTC, datetime
from itertools import pairwise

import pytest
from sqlmodel import select

from backend.db import session_scope
from backend.events.log import read_events
from backend.events.schema import DiscussionFinished, TokenDelta, TurnCompleted, TurnStarted
from backend.models import Discussion, Message
from backend.orchestrator.runner import Runner
from backend.providers import registry
from backend.providers.scripted import ScriptedProvider
from backend.services.discussions import AgentSpec, create_discussion

LOCK_S = 1.0
TICK_S = 0.01

REPLIES = {
    "Architect": [
        "Postgres fits Apollo because the team already runs it well.",
        "Agreed on encryption; backups need a restore drill too.",
    ],
    "Security": [
        "Encrypt at rest and in transit, rotate the keys every quarter, and keep audit logs for a full year please.",
        "Fine by me once the restore drill is on the calendar.",
    ],
}


@pytest.fixture
def scripted():
    registry.register_provider("scripted", ScriptedProvider(["unused"]))
    yield
    registry.unregister_provider("scripted")


def _hold_write_lock(path: str, seconds: float) -> tuple[float, float, datetime, datetime]:
    """Hold SQLite's write lock from a raw connection for `seconds`; returns when it was held (monotonic, UTC)."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=10)
    try:
        conn.execute("BEGIN EXCLUSIVE")
        locked, locked_wall = time.monotonic(), datetime.now(UTC)
        time.sleep(seconds)
        released_wall = datetime.now(UTC)
        conn.execute("COMMIT")
        return locked, time.monotonic(), locked_wall, released_wall
    finally:
        conn.close()


async def test_a_briefly_locked_database_delays_writes_without_blocking_the_loop_or_losing_messages(
    sqlite_db, bus, scripted
):
    did = create_discussion(
        topic="Choose a database for Apollo",
        agents=[AgentSpec(p, "scripted", "m") for p in ("architect", "security")],
        rounds=2,
    ).id
    providers = {
        "Architect": ScriptedProvider(REPLIES["Architect"], token_delay=0.005),
        "Security": ScriptedProvider(REPLIES["Security"], token_delay=0.02),  # ~0.4 s: streams inside the lock
    }
    runner = Runner(bus=bus, provider_lookup=lambda agent: providers[agent.name], lease_seconds=5)

    received: list[tuple[float, object]] = []
    sub = await bus.subscribe(did)

    async def collect() -> None:
        async for event in sub:
            received.append((time.monotonic(), event))
            if isinstance(event, DiscussionFinished):
                return

    ticks: list[float] = []

    async def tick() -> None:
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(TICK_S)

    collector = asyncio.create_task(collect())
    ticker = asyncio.create_task(tick())
    try:
        assert await runner.start(did)

        async def second_turn_streaming() -> TurnStarted:
            while True:
                starts = [e for _, e in received if isinstance(e, TurnStarted)]
                if len(starts) >= 2 and any(
                    isinstance(e, TokenDelta) and e.start_seq == starts[1].seq for _, e in received
                ):
                    return starts[1]
                await asyncio.sleep(0.002)

        # Security's first turn has begun streaming; now another process takes the write lock for a second.
        turn = await asyncio.wait_for(second_turn_streaming(), 10)
        locked, released, locked_wall, released_wall = await asyncio.to_thread(
            _hold_write_lock, sqlite_db.removeprefix("sqlite:///"), LOCK_S
        )
        await asyncio.wait_for(collector, 20)
        await runner.wait(did)
    finally:
        ticker.cancel()
        collector.cancel()
        await sub.close()

    # The loop was never blocked: the ticker kept ticking all through the lock...
    during = [t for t in ticks if locked <= t <= released]
    gaps = [b - a for a, b in pairwise(during)]
    assert max(gaps) < 0.25, f"the event loop stalled for {max(gaps):.3f} s"
    assert len(during) >= 0.4 * LOCK_S / TICK_S, f"only {len(during)} ticks while the database was locked"
    # ...and Security's reply kept streaming while its completion had to wait for the lock.
    deltas_during = [e for t, e in received if isinstance(e, TokenDelta) and e.start_seq == turn.seq and t > locked]
    assert len(deltas_during) >= 3
    completed_at = next(t for t, e in received if isinstance(e, TurnCompleted) and e.start_seq == turn.seq)
    assert completed_at >= released

    with session_scope() as s:
        assert s.get(Discussion, did).status == "completed"
        agent_msgs = list(s.exec(select(Message).where(Message.turn_key.is_not(None)).order_by(Message.seq)))
        assert [(m.author_name, m.status, m.content) for m in agent_msgs] == [
            ("Architect", "complete", REPLIES["Architect"][0]),
            ("Security", "complete", REPLIES["Security"][0]),
            ("Architect", "complete", REPLIES["Architect"][1]),
            ("Security", "complete", REPLIES["Security"][1]),
        ]
        events = read_events(s, did)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert sum(isinstance(e, TurnCompleted) for e in events) == 4
    assert sum(isinstance(e, DiscussionFinished) for e in events) == 1
    # No write got through while the lock was held; the one that waited went through right after.
    assert not [e for e in events if locked_wall < e.at < released_wall]
    assert any(released_wall <= e.at for e in events)
    assert providers["Architect"].calls == providers["Security"].calls == 2  # nothing was retried
