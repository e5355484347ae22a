"""Deadlines, live statuses, budgets and retrying a failed agent alone, through the real engine."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from sqlmodel import select

from backend.config import get_settings
from backend.db import session_scope
from backend.events.schema import DiscussionPaused, TurnCompleted, TurnFailed, TurnStatus
from backend.models import Discussion, Message
from backend.orchestrator.runner import Runner
from backend.providers import registry
from backend.providers.base import ErrorKind, ProviderError
from backend.providers.openai_provider import OpenAICompatibleProvider
from backend.providers.scripted import ScriptedProvider
from backend.services import room
from backend.services.discussions import AgentSpec, create_discussion, set_budget
from tests.people import person
from tests.providers.wire_servers import OpenAIScript, WireServer


@pytest.fixture
def scripted():
    registry.register_provider("scripted", ScriptedProvider(["unused"]))
    yield
    registry.unregister_provider("scripted")


@pytest.fixture
def deadlines(monkeypatch):
    def set_(soft: float, hard: float) -> None:
        monkeypatch.setenv("MAESTRO_SOFT_DEADLINE_S", str(soft))
        monkeypatch.setenv("MAESTRO_HARD_DEADLINE_S", str(hard))
        get_settings.cache_clear()

    yield set_
    get_settings.cache_clear()


def _discussion(n_agents=1, rounds=1, **kw) -> int:
    personas = ["architect", "security", "product"][:n_agents]
    d = create_discussion(
        topic="Choose a database for Apollo",
        agents=[AgentSpec(p, "scripted", "m") for p in personas],
        rounds=rounds,
        **kw,
    )
    return d.id


async def _run(bus, did, lookup) -> list:
    sub = await bus.subscribe(did)
    runner = Runner(bus=bus, provider_lookup=lookup, lease_seconds=5)
    await runner.start(did)
    await runner.wait(did)
    seen = []
    while True:
        try:
            seen.append(await asyncio.wait_for(sub.__aiter__().__anext__(), 0.05))
        except TimeoutError:
            break
    await sub.close()
    return seen


async def test_a_stalled_stream_is_cancelled_at_the_hard_deadline_after_showing_slow(
    sqlite_db, bus, scripted, deadlines
):
    # The hard deadline leaves a loaded CI machine ample time for the first chunk (the SDK's first connection).
    deadlines(soft=0.3, hard=2.0)
    did = _discussion(n_agents=2)
    with WireServer(OpenAIScript.route, [OpenAIScript.stall(["Thinking about "], seconds=6)]) as server:
        stalled = OpenAICompatibleProvider(base_url=f"{server.url}/v1", timeout=30)
        fine = ScriptedProvider(["Postgres."])
        seen = await _run(bus, did, lambda a: stalled if a.name == "Architect" else fine)
    statuses = [e for e in seen if isinstance(e, TurnStatus)]
    assert [s.status for s in statuses] == ["slow"]
    failed = next(e for e in seen if isinstance(e, TurnFailed))
    assert failed.error_kind == "timeout"
    assert failed.error_message == "No complete reply within 2 s, so the call was cancelled."
    assert failed.partial_content == "Thinking about "
    with session_scope() as s:
        assert s.get(Discussion, did).status == "completed"  # the other agent still spoke
        assert [
            m.status for m in s.exec(select(Message).where(Message.turn_key.is_not(None)).order_by(Message.id))
        ] == [
            "failed",
            "complete",
        ]


async def test_the_room_sees_retrying_while_the_sdk_retries(sqlite_db, bus, scripted):
    did = _discussion()
    replies = [OpenAIScript.server_error(503), OpenAIScript.ok(["Fine ", "now."])]
    with WireServer(OpenAIScript.route, replies) as server:
        provider = OpenAICompatibleProvider(base_url=f"{server.url}/v1", timeout=10)
        seen = await _run(bus, did, lambda a: provider)
    statuses = [e for e in seen if isinstance(e, TurnStatus)]
    assert [s.status for s in statuses] == ["retrying"] and "503" in statuses[0].detail
    assert len(server.requests) == 2
    with session_scope() as s:
        msg = s.exec(select(Message).where(Message.turn_key.is_not(None))).one()
        assert (msg.status, msg.content) == ("complete", "Fine now.")


async def test_a_token_budget_pauses_before_the_next_call_and_run_agents_continues(sqlite_db, bus, scripted):
    # Room for the first turn's worst case (about 930 tokens: its prompt and 300 reply tokens), not the second's.
    did = _discussion(n_agents=2, rounds=2, budget_tokens=1000)
    provider = ScriptedProvider(["one two three"])
    seen = await _run(bus, did, lambda a: provider)
    paused = [e for e in seen if isinstance(e, DiscussionPaused)]
    assert len(paused) == 1 and "the next turn could use up to" in paused[0].reason
    assert provider.calls == 1  # no call may pass the budget: each is checked at its worst case
    with session_scope() as s:
        d = s.get(Discussion, did)
        assert d.status == "paused" and "Raise the budget" in d.pause_reason

    set_budget(discussion_id=did, budget_tokens=None, budget_usd=None)
    await _run(bus, did, lambda a: provider)
    assert provider.calls == 4
    with session_scope() as s:
        assert s.get(Discussion, did).status == "completed"


async def test_a_failed_agent_can_be_retried_alone_after_the_discussion_ended(sqlite_db, bus, scripted, monkeypatch):
    alex = person("alex", "Alex")
    did = _discussion(n_agents=2, owner=alex)
    flaky = ScriptedProvider(["Recovered answer."], fail_with=ProviderError(ErrorKind.SERVER, "Overloaded."))
    steady = ScriptedProvider(["Steady answer."])
    providers = {"Architect": flaky, "Security": steady}
    runner = Runner(bus=bus, provider_lookup=lambda a: providers[a.name], lease_seconds=5)
    monkeypatch.setattr("backend.services.room.get_runner", lambda: runner)
    await runner.start(did)
    await runner.wait(did)
    with session_scope() as s:
        failed = s.exec(select(Message).where(Message.status == "failed")).one()
        assert s.get(Discussion, did).status == "completed"

    flaky.fail_with = None
    await room.retry_turn(discussion_id=did, message_id=failed.id, actor=alex)
    await runner.wait(did)
    with session_scope() as s:
        rows = list(s.exec(select(Message).where(Message.turn_key.is_not(None)).order_by(Message.seq)))
        assert [(m.author_name, m.status, m.content) for m in rows] == [
            ("Security", "complete", "Steady answer."),
            ("Architect", "complete", "Recovered answer."),
        ]
        assert s.get(Discussion, did).status == "completed"
    assert steady.calls == 1 and flaky.calls == 2


async def test_retrying_a_finished_discussion_is_the_owner_s_call_and_never_under_a_decision(
    sqlite_db, bus, scripted, monkeypatch
):
    """A retry reopens an ended discussion only by its owner, never while a decision awaits sign-off or after one
    was made, and every retry is in the audit trail."""
    from backend.errors import Forbidden
    from backend.humans import audit, membership
    from backend.models import Decision

    alex, bea = person("alex", "Alex"), person("bea", "Bea")
    did = _discussion(n_agents=2, owner=alex)
    membership.invite(did, alex, "bea", "contributor")
    flaky = ScriptedProvider(["Recovered."], fail_with=ProviderError(ErrorKind.SERVER, "Overloaded."))
    steady = ScriptedProvider(["Steady."])
    runner = Runner(bus=bus, provider_lookup=lambda a: {"Architect": flaky, "Security": steady}[a.name])
    monkeypatch.setattr("backend.services.room.get_runner", lambda: runner)
    await runner.start(did)
    await runner.wait(did)
    with session_scope() as s:
        failed = s.exec(select(Message).where(Message.status == "failed")).one()

    with pytest.raises(Forbidden, match="only its owner can"):
        await room.retry_turn(discussion_id=did, message_id=failed.id, actor=bea)

    def set_status(status: str) -> None:
        with session_scope() as s:
            d = s.get(Discussion, did)
            d.status = status
            s.add(d)

    set_status("awaiting_approval")
    with pytest.raises(Forbidden, match="waiting for sign-off"):
        await room.retry_turn(discussion_id=did, message_id=failed.id, actor=alex)
    with session_scope() as s:
        s.add(Decision(discussion_id=did, title="Postgres"))
    set_status("completed")
    with pytest.raises(Forbidden, match="ended in a decision"):
        await room.retry_turn(discussion_id=did, message_id=failed.id, actor=alex)
    with session_scope() as s:
        assert s.get(Message, failed.id).status == "failed"
        assert s.get(Discussion, did).status == "completed"
    assert [e.action for e in audit.trail(did) if e.action == "turn.retry"] == []

    with session_scope() as s:
        s.delete(s.exec(select(Decision)).one())
    flaky.fail_with = None
    await room.retry_turn(discussion_id=did, message_id=failed.id, actor=alex)
    await runner.wait(did)
    entries = [e for e in audit.trail(did) if e.action == "turn.retry"]
    assert [(e.actor_name, e.previous_value, e.new_value) for e in entries] == [
        ("Alex", f"failed (discussion {did} had ended)", "queued")
    ]
    with session_scope() as s:
        assert s.get(Message, failed.id).status == "complete"


async def test_a_transcript_over_the_context_window_is_summarised_once_and_reused(
    sqlite_db, bus, scripted, monkeypatch
):
    from backend.events.schema import ContextSummarised
    from backend.providers.context_budget import _SUMMARY_SYSTEM, estimate_tokens

    monkeypatch.setenv("MAESTRO_CONTEXT_TOKENS", "1200")
    did = _discussion(n_agents=2, rounds=4, max_tokens_per_turn=100)
    long_reply = "Postgres handles Apollo's write load; " * 20  # ~200 tokens a turn
    summaries = []

    def reply(request):
        if request.system == _SUMMARY_SYSTEM:
            summaries.append(request)
            return "Summary: Architect and Security both favour Postgres."
        return long_reply

    provider = ScriptedProvider(reply, chunk_size=50)
    seen = await _run(bus, did, lambda a: provider)
    events = [e for e in seen if isinstance(e, ContextSummarised)]
    assert events, "the transcript outgrew 1,200 tokens but nothing was summarised"
    assert len(summaries) == len(events) < 8  # not one summary call per turn
    for request in provider.requests:
        size = estimate_tokens(request.system) + sum(estimate_tokens(e.content) + 8 for e in request.transcript)
        assert size + request.max_tokens <= 1200  # no prompt over the window was ever sent
    later = [
        r for r in provider.requests if any(e.content.startswith("Summary of earlier discussion") for e in r.transcript)
    ]
    assert later, "later turns should carry the summary instead of the old turns"
    with session_scope() as s:
        assert s.get(Discussion, did).status == "completed"


async def test_opening_statements_run_concurrently_unseen_and_report_a_partial_council(database, bus, scripted):
    from backend.events.schema import StepReport

    did = _discussion(n_agents=3, rounds=2, parallel_openings=True)
    seen_by: dict[str, list[list[str]]] = {}
    asked_at: dict[str, datetime] = {}

    def reply_as(name: str):
        def reply(request):
            seen_by.setdefault(name, []).append([e.author for e in request.transcript if e.author_kind != "system"])
            asked_at.setdefault(name, datetime.now(UTC))
            return f"{name} speaks."

        return reply

    providers = {
        "Architect": ScriptedProvider(reply_as("Architect"), token_delay=0.3),
        "Security": ScriptedProvider(
            reply_as("Security"),
            fail_with=ProviderError(ErrorKind.RATE_LIMITED, "Too many requests."),
            fail_after_tokens=0,
        ),
        "Product": ScriptedProvider(reply_as("Product"), token_delay=0.3),
    }
    seen = await _run(bus, did, lambda a: providers[a.name])
    report = next(e for e in seen if isinstance(e, StepReport))
    assert report.succeeded == ["Architect", "Product"]
    assert report.failed == [{"participant": "Security", "error": "Too many requests."}]
    assert "partial council" in report.warning
    # The two 0.6 s openings (2 words x 0.3 s each) ran side by side: both were asked before either finished.
    # (An overlap, not a wall-clock limit: a loaded machine slows both, it cannot make sequential calls overlap.)
    first_done = min(e.at for e in seen if isinstance(e, TurnCompleted))
    assert max(asked_at.values()) < first_done
    # Openings saw only the question; round 2 saw every opening that succeeded (in the order they finished).
    assert seen_by["Architect"][0] == ["Host"] and seen_by["Product"][0] == ["Host"]
    assert seen_by["Product"][1][0] == "Host" and set(seen_by["Product"][1][1:3]) == {"Architect", "Product"}
    with session_scope() as s:
        assert s.get(Discussion, did).status == "completed"


async def test_every_opening_failing_stops_the_discussion_as_failed(database, bus, scripted):
    from backend.events.schema import StepReport

    did = _discussion(n_agents=2, rounds=2, parallel_openings=True)
    broken = ScriptedProvider(["x"], fail_with=ProviderError(ErrorKind.AUTH, "Bad key."))
    seen = await _run(bus, did, lambda a: broken)
    report = next(e for e in seen if isinstance(e, StepReport))
    assert report.succeeded == [] and len(report.failed) == 2
    assert "Every agent failed" in report.warning
    assert broken.calls == 2  # round 2 never ran
    with session_scope() as s:
        assert s.get(Discussion, did).status == "failed"


async def test_opening_statements_under_a_budget_go_one_at_a_time_each_checked(sqlite_db, bus, scripted):
    did = _discussion(n_agents=3, rounds=1, parallel_openings=True, budget_tokens=1000)  # room for one opening
    provider = ScriptedProvider(["one two three"], token_delay=0.01)
    seen = await _run(bus, did, lambda a: provider)
    assert provider.calls == 1  # the second opening could have passed the budget: it never started
    assert any(isinstance(e, DiscussionPaused) for e in seen)
    with session_scope() as s:
        assert s.get(Discussion, did).status == "paused"


async def test_resumed_openings_still_do_not_see_each_other(sqlite_db, bus, scripted):
    did = _discussion(n_agents=2, rounds=1, parallel_openings=True, budget_tokens=1000)
    provider = ScriptedProvider(["An opening."])
    await _run(bus, did, lambda a: provider)  # pauses after the first opening
    set_budget(discussion_id=did, budget_tokens=None, budget_usd=None)
    await _run(bus, did, lambda a: provider)
    assert provider.calls == 2
    second = provider.requests[1]
    assert [e.author for e in second.transcript if e.author_kind != "system"] == ["Host"]
    with session_scope() as s:
        assert s.get(Discussion, did).status == "completed"
