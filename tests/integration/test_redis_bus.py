"""The Redis bus carries room events between workers: a runner on one, viewers on another."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from backend.events.bus import RedisBus
from backend.events.follower import Follower
from backend.events.schema import DiscussionFinished, HumanMessagePosted, TokenDelta, TurnCompleted
from backend.orchestrator.runner import Runner
from backend.providers import registry
from backend.providers.scripted import ScriptedProvider
from backend.services.discussions import AgentSpec, create_discussion
from tests.conftest import REDIS_TEST_URL

pytestmark = pytest.mark.redis


@pytest.fixture
async def two_workers():
    """Two independent Redis buses, as two app workers would have."""
    a, b = RedisBus(REDIS_TEST_URL), RedisBus(REDIS_TEST_URL)
    try:
        await a._redis.ping()
    except Exception as exc:  # pragma: no cover - Redis runs on every dev and CI machine
        pytest.fail(f"Redis is not reachable at {REDIS_TEST_URL}: {exc}")
    yield a, b
    await a.close()
    await b.close()


async def _receive(sub, count: int) -> list:
    """The next `count` events of `sub` (within 5 s), then the subscription closed."""
    got = []
    async with asyncio.timeout(5):
        async for event in sub:
            got.append(event)
            if len(got) == count:
                break
    await sub.close()
    return got


async def test_events_cross_workers_in_order(two_workers):
    worker_a, worker_b = two_workers
    did = int(uuid.uuid4().int % 1_000_000) + 1_000_000
    sub = await worker_b.subscribe(did)
    for i in range(20):
        await worker_a.publish(
            HumanMessagePosted(discussion_id=did, seq=i + 1, message_id=i, author_name="A", content=str(i))
        )
    got = await _receive(sub, 20)
    assert [e.seq for e in got] == list(range(1, 21))
    assert all(isinstance(e, HumanMessagePosted) for e in got)


async def test_text_queued_without_waiting_and_awaited_events_keep_their_order(two_workers):
    worker_a, worker_b = two_workers
    did = int(uuid.uuid4().int % 1_000_000) + 2_000_000
    sub = await worker_b.subscribe(did)
    offset = 0
    for i in range(5):
        for word in ("Postgres ", "for ", "Apollo. "):  # streamed text: queued, sent with what follows
            worker_a.publish_nowait(
                TokenDelta(discussion_id=did, start_seq=i + 1, participant_id=1, offset=offset, text=word)
            )
            offset += len(word)
        await worker_a.publish(  # a persisted event: returns once sent, after the text queued before it
            HumanMessagePosted(discussion_id=did, seq=i + 1, message_id=i, author_name="A", content=str(i))
        )
    got = await _receive(sub, 20)
    assert [type(e).__name__ for e in got[:4]] == ["TokenDelta"] * 3 + ["HumanMessagePosted"]
    assert [e.offset for e in got if isinstance(e, TokenDelta)] == sorted(
        e.offset for e in got if isinstance(e, TokenDelta)
    )
    assert [e.seq for e in got if isinstance(e, HumanMessagePosted)] == [1, 2, 3, 4, 5]


async def test_an_unreachable_redis_is_an_error_for_whoever_awaits_and_a_log_line_for_text(caplog):
    bus = RedisBus("redis://127.0.0.1:1/0")  # nothing listens there
    text = TokenDelta(discussion_id=1, start_seq=1, participant_id=1, offset=0, text="hi")
    bus.publish_nowait(text)
    with pytest.raises(Exception, match=r"(?i)connect"):
        await bus.publish(HumanMessagePosted(discussion_id=1, seq=1, message_id=1, author_name="A", content="x"))
    bus.publish_nowait(text)
    await bus.close()
    assert "could not publish 1 event(s) to Redis" in caplog.text


async def test_a_discussion_run_on_one_worker_streams_to_a_viewer_on_another(database, two_workers):
    worker_a, worker_b = two_workers
    registry.register_provider("scripted", ScriptedProvider(["unused"]))
    try:
        d = create_discussion(
            topic="Choose a database for Apollo",
            agents=[AgentSpec(persona_key="architect", provider="scripted", model="m")],
            rounds=1,
        )
        provider = ScriptedProvider(["Postgres, with logical replication for the analytics side."], token_delay=0.02)
        runner = Runner(bus=worker_a, provider_lookup=lambda _agent: provider, lease_seconds=5)
        async with Follower(d.id, after_seq=0, bus=worker_b, min_interval=0.01, max_wait=0.01) as viewer:
            await runner.start(d.id)
            streamed, final = "", None
            async with asyncio.timeout(10):
                async for batch in viewer.batches(idle=0.2):
                    for start, text in batch.deltas.values():
                        assert start == len(streamed)
                        streamed += text
                    for event in batch.events:
                        if isinstance(event, TurnCompleted):
                            final = event.content
                        if isinstance(event, DiscussionFinished):
                            break
                    else:
                        continue
                    break
        await runner.wait(d.id)
    finally:
        registry.unregister_provider("scripted")
    assert final == "Postgres, with logical replication for the analytics side."
    # Deltas travelled over Redis before the final message (a last partial flush may be superseded by it).
    assert len(streamed) > 10 and final.startswith(streamed)
