"""The round-robin engine with the database and the bus, on SQLite and Postgres."""

from __future__ import annotations

import asyncio
from itertools import pairwise

import pytest
from sqlmodel import func, select

from backend.db import session_scope
from backend.events.log import read_events
from backend.events.schema import DiscussionFinished, TokenDelta, TurnCompleted, TurnFailed, TurnStarted
from backend.models import Discussion, EventRecord, Message, Participant
from backend.orchestrator.engine import failed_call_usage
from backend.orchestrator.runner import Runner
from backend.providers import registry
from backend.providers.base import ErrorKind, ProviderError
from backend.providers.context_budget import estimate_tokens
from backend.providers.scripted import ScriptedProvider
from backend.services.discussions import AgentSpec, create_discussion, post_human_message
from tests.people import person


@pytest.fixture
def scripted():
    """Agents named by persona get their own scripted provider; returns the name -> provider map."""
    providers: dict[str, ScriptedProvider] = {}
    registry.register_provider("scripted", ScriptedProvider(["unused"]))
    yield providers
    registry.unregister_provider("scripted")


def _create(agents=("architect", "security"), rounds=2, topic="Choose a database for Apollo", owner=None) -> int:
    d = create_discussion(
        topic=topic,
        agents=[AgentSpec(persona_key=a, provider="scripted", model="m") for a in agents],
        rounds=rounds,
        owner=owner,
    )
    assert d.id is not None
    return d.id


def _runner(bus, providers: dict[str, ScriptedProvider]) -> Runner:
    return Runner(bus=bus, provider_lookup=lambda agent: providers[agent.name], lease_seconds=5)


async def _collect(bus, discussion_id: int) -> list:
    sub = await bus.subscribe(discussion_id)
    seen = []
    async for event in sub:
        seen.append(event)
        if isinstance(event, DiscussionFinished):
            break
    await sub.close()
    return seen


async def test_round_robin_streams_every_turn_in_order_and_persists_once(database, bus, scripted):
    did = _create()
    scripted["Architect"] = ScriptedProvider(["Use Postgres for Apollo.", "Agreed with the caveat on backups."])
    scripted["Security"] = ScriptedProvider(["Encrypt at rest please.", "Fine by me."])
    runner = _runner(bus, scripted)
    collector = asyncio.create_task(_collect(bus, did))
    await asyncio.sleep(0)
    assert await runner.start(did)
    seen = await asyncio.wait_for(collector, 10)

    done = [e for e in seen if isinstance(e, TurnCompleted)]
    assert [e.content for e in done] == [
        "Use Postgres for Apollo.",
        "Encrypt at rest please.",
        "Agreed with the caveat on backups.",
        "Fine by me.",
    ]
    # Deltas for each turn carry its start seq and contiguous offsets that rebuild the final text exactly.
    for completed in done:
        deltas = [e for e in seen if isinstance(e, TokenDelta) and e.start_seq == completed.start_seq]
        assert [d.offset for d in deltas] == [sum(len(x.text) for x in deltas[:i]) for i in range(len(deltas))]
        assert "".join(d.text for d in deltas) == completed.content
    finished = seen[-1]
    assert finished.status == "completed"
    # The scripted model reports no real usage: every count is marked as an estimate for the room.
    assert all(e.tokens_estimated and e.output_tokens > 0 for e in done)

    with session_scope() as s:
        messages = list(s.exec(select(Message).where(Message.discussion_id == did).order_by(Message.seq)))
        assert [m.author_kind for m in messages] == ["human", "agent", "agent", "agent", "agent"]
        assert all(m.status == "complete" for m in messages)
        assert all(m.latency_ms is not None and m.output_tokens > 0 for m in messages[1:])
        assert s.get(Discussion, did).status == "completed"
        # Deltas are never persisted; seqs are gapless and match what the bus carried.
        persisted = read_events(s, did)
        assert [e.seq for e in persisted] == list(range(1, len(persisted) + 1))
        assert [e.seq for e in seen if not isinstance(e, TokenDelta)] == [e.seq for e in persisted][2:]


async def test_one_transaction_closes_a_turn_and_opens_the_next(database, bus, scripted):
    """Between two plain turns nothing else happens, so one commit hands over: the closing TurnCompleted and the
    next TurnStarted have consecutive seqs and one timestamp, and the engine commits about once per message."""
    from sqlalchemy import event as sa_event

    from backend.db import get_engine

    did = _create(agents=("architect", "security", "product"), rounds=3)
    for name in ("Architect", "Security", "Product"):
        scripted[name] = ScriptedProvider([f"{name} speaks."])
    commits = []
    count = commits.append  # one bound method object, so it can be removed again
    sa_event.listen(get_engine(), "commit", count)
    try:
        runner = _runner(bus, scripted)
        collector = asyncio.create_task(_collect(bus, did))
        await asyncio.sleep(0)
        assert await runner.start(did)
        seen = await asyncio.wait_for(collector, 10)
    finally:
        sa_event.remove(get_engine(), "commit", count)
    persisted = [e for e in seen if not isinstance(e, TokenDelta)]
    pairs = [(a, b) for a, b in pairwise(persisted) if isinstance(a, TurnCompleted)]
    handed_over = [(a, b) for a, b in pairs if isinstance(b, TurnStarted)]
    assert len(handed_over) == 8  # 9 turns: every one but the last opens the next
    assert all(b.seq == a.seq + 1 and b.at == a.at for a, b in handed_over)
    # 9 messages: the run's start, the first turn, 8 handovers, the last close and the finish, give or take the
    # lease; two commits per message (open, then close) would be 18 or more.
    assert len(commits) <= 9 + 5, len(commits)


async def test_each_agent_sees_the_attributed_transcript_under_its_persona(database, bus, scripted):
    did = _create(rounds=2)
    scripted["Architect"] = ScriptedProvider(["A1", "A2"])
    scripted["Security"] = ScriptedProvider(["S1", "S2"])
    runner = _runner(bus, scripted)
    await runner.start(did)
    await runner.wait(did)

    second_arch = scripted["Architect"].requests[1]
    entries = [(e.author, e.content, e.is_self) for e in second_arch.transcript if e.author_kind != "system"]
    assert entries == [
        ("Host", "Choose a database for Apollo", False),
        ("Architect", "A1", True),
        ("Security", "S1", False),
    ]
    assert "Architect" in second_arch.system and "Choose a database for Apollo" in second_arch.system
    assert second_arch.transcript[-1].author_kind == "system"  # the speaker cue comes last


async def test_a_human_message_during_a_run_reaches_the_next_agent(database, bus, scripted):
    alex = person("alex", "Alex")
    did = _create(rounds=1, owner=alex)
    gate = asyncio.Event()

    class Gated(ScriptedProvider):
        async def stream(self, request):
            await gate.wait()
            async for item in super().stream(request):
                yield item

    scripted["Architect"] = Gated(["Postgres."])
    scripted["Security"] = ScriptedProvider(["Noted."])
    runner = _runner(bus, scripted)
    await runner.start(did)
    await asyncio.sleep(0.05)
    post_human_message(discussion_id=did, actor=alex, content="We must run on-prem.")
    gate.set()
    await runner.wait(did)
    seen_by_security = [(e.author, e.content) for e in scripted["Security"].requests[0].transcript]
    assert ("Alex", "We must run on-prem.") in seen_by_security


async def test_a_provider_failing_mid_stream_marks_that_message_failed_and_the_rest_go_on(database, bus, scripted):
    did = _create(agents=("architect", "security", "product"), rounds=1)
    scripted["Architect"] = ScriptedProvider(["Fine reply."])
    scripted["Security"] = ScriptedProvider(
        ["This will be cut off half way through"],
        fail_with=ProviderError(ErrorKind.CONNECTION, "The connection dropped mid-reply."),
        fail_after_tokens=3,
    )
    scripted["Product"] = ScriptedProvider(["Ship it."])
    runner = _runner(bus, scripted)
    collector = asyncio.create_task(_collect(bus, did))
    await asyncio.sleep(0)
    await runner.start(did)
    seen = await asyncio.wait_for(collector, 10)

    failed = [e for e in seen if isinstance(e, TurnFailed)]
    assert len(failed) == 1
    assert failed[0].error_kind == "connection"
    assert failed[0].error_message == "The connection dropped mid-reply."
    assert failed[0].partial_content == "This will be "
    assert [e.content for e in seen if isinstance(e, TurnCompleted)] == ["Fine reply.", "Ship it."]
    assert seen[-1].status == "completed"
    with session_scope() as s:
        bad = s.exec(select(Message).where(Message.status == "failed")).one()
        assert bad.error_kind == "connection" and bad.author_name == "Security"
        # It was billed for its prompt and the words it wrote: estimated, marked so, and counted in the totals.
        prompt = scripted["Security"].requests[0]
        assert bad.input_tokens == failed_call_usage(prompt, "This will be ").input_tokens > 0
        assert bad.output_tokens == estimate_tokens("This will be ") and bad.tokens_estimated
        assert (failed[0].input_tokens, failed[0].output_tokens) == (bad.input_tokens, bad.output_tokens)
        ok = s.exec(select(Message).where(Message.status == "complete")).all()
        assert seen[-1].total_tokens == sum(m.input_tokens + m.output_tokens for m in [*ok, bad])
    # Later agents do not see the failed partial text.
    assert all("cut off" not in e.content for e in scripted["Product"].requests[0].transcript)


async def test_every_turn_failing_fails_the_discussion(database, bus, scripted):
    did = _create(rounds=1)
    for name in ("Architect", "Security"):
        scripted[name] = ScriptedProvider(["x"], fail_with=ProviderError(ErrorKind.AUTH, "Bad key."))
    runner = _runner(bus, scripted)
    await runner.start(did)
    await runner.wait(did)
    with session_scope() as s:
        assert s.get(Discussion, did).status == "failed"
        # Refused before a word was written: nothing was billed, nothing is counted.
        assert {(m.input_tokens, m.output_tokens, m.cost_usd) for m in s.exec(select(Message)).all()} == {(0, 0, 0.0)}


async def test_start_is_idempotent_under_duplicate_clicks(database, bus, scripted):
    did = _create(rounds=1)
    scripted["Architect"] = ScriptedProvider(["a"], token_delay=0.01)
    scripted["Security"] = ScriptedProvider(["b"])
    runner = _runner(bus, scripted)
    results = await asyncio.gather(*(runner.start(did) for _ in range(5)))
    assert results.count(True) == 1
    await runner.wait(did)
    assert scripted["Architect"].calls == 1
    assert not await runner.start(did)  # completed discussions don't restart


async def test_a_second_runner_cannot_take_a_live_lease(database, bus, scripted):
    did = _create(rounds=1)
    scripted["Architect"] = ScriptedProvider(["a b c d e f"], token_delay=0.05)
    scripted["Security"] = ScriptedProvider(["b"])
    first, second = _runner(bus, scripted), _runner(bus, scripted)
    assert await first.start(did)
    assert not await second.start(did)
    await first.wait(did)


async def test_resume_after_a_crash_repeats_only_the_call_in_flight(database, bus, scripted):
    did = _create(agents=("architect", "security"), rounds=2)
    scripted["Architect"] = ScriptedProvider(["A1", "A2"])
    scripted["Security"] = ScriptedProvider(["S1 is a long reply streaming slowly"], token_delay=0.05)
    crashed = _runner(bus, scripted)
    await crashed.start(did)
    # Wait until Security's first turn is streaming, then kill the engine as a crash would.
    while not any(t.text and t.author_name == "Security" for t in crashed.live_turns(did)):  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    crashed.tasks[did].cancel()
    await crashed.wait(did)
    with session_scope() as s:
        assert s.get(Discussion, did).status == "running"
        assert s.exec(select(Message).where(Message.status == "streaming")).one().author_name == "Security"

    scripted["Security"].token_delay = 0
    fresh = _runner(bus, scripted)
    assert await fresh.resume_unfinished() == [did]
    await fresh.wait(did)
    with session_scope() as s:
        agent_msgs = list(s.exec(select(Message).where(Message.turn_key.is_not(None)).order_by(Message.seq)))
        assert [(m.turn_key.split(":")[0], m.author_name, m.status) for m in agent_msgs] == [
            ("1", "Architect", "complete"),
            ("1", "Security", "complete"),
            ("2", "Architect", "complete"),
            ("2", "Security", "complete"),
        ]
        assert s.get(Discussion, did).status == "completed"
        completed_events = s.exec(
            select(func.count()).select_from(EventRecord).where(EventRecord.type == "turn_completed")
        ).one()
        assert completed_events == 4
    assert scripted["Architect"].calls == 2  # never repeated
    assert scripted["Security"].calls == 3  # the in-flight call, repeated once


async def test_token_deltas_reach_every_subscriber(database, bus, scripted):
    did = _create(rounds=1)
    scripted["Architect"] = ScriptedProvider(["one two three"])
    scripted["Security"] = ScriptedProvider(["four"])
    runner = _runner(bus, scripted)
    tabs = [asyncio.create_task(_collect(bus, did)) for _ in range(3)]
    await asyncio.sleep(0)
    await runner.start(did)
    views = await asyncio.wait_for(asyncio.gather(*tabs), 10)
    texts = [[(type(e).__name__, getattr(e, "text", "")) for e in v] for v in views]
    assert texts[0] == texts[1] == texts[2]
    assert any(isinstance(e, TurnStarted) for e in views[0])
    with session_scope() as s:
        assert len(list(s.exec(select(Participant).where(Participant.discussion_id == did)))) == 3


async def test_every_call_is_counted_in_the_metrics(database, bus, scripted):
    from backend.observability import REGISTRY

    def value(name: str, **labels) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    ok_before = value("maestro_model_calls_total", provider="scripted", model="m", status="ok")
    failed_before = value("maestro_model_errors_total", provider="scripted", kind="rate_limited")
    did = _create(rounds=1)
    scripted["Architect"] = ScriptedProvider(["fine"])
    scripted["Security"] = ScriptedProvider(["x"], fail_with=ProviderError(ErrorKind.RATE_LIMITED, "429"))
    runner = _runner(bus, scripted)
    await runner.start(did)
    await runner.wait(did)
    assert value("maestro_model_calls_total", provider="scripted", model="m", status="ok") == ok_before + 1
    assert value("maestro_model_errors_total", provider="scripted", kind="rate_limited") == failed_before + 1
    assert value("maestro_active_discussions") == 0


def test_two_runners_racing_for_an_expired_lease_never_both_win(database, scripted):
    import threading
    from datetime import timedelta

    from backend.models import RunnerLease
    from backend.models.base import utcnow

    did = _create(rounds=1)
    for attempt in range(20):
        with session_scope() as s:
            lease = s.get(RunnerLease, did) or RunnerLease(discussion_id=did, owner="dead", expires_at=utcnow())
            lease.owner, lease.expires_at = "dead", utcnow() - timedelta(seconds=1)
            s.add(lease)
        runners = [Runner(bus=None, lease_seconds=30) for _ in range(4)]
        results: list[bool] = []
        barrier = threading.Barrier(len(runners))

        def take(r: Runner, barrier: threading.Barrier = barrier, results: list[bool] = results) -> None:
            barrier.wait()
            results.append(r._acquire(did))

        threads = [threading.Thread(target=take, args=(r,)) for r in runners]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results.count(True) == 1, f"attempt {attempt}: {results}"
