"""Deliberation memory end to end on the real engine, database and embedding model (SQLite and Postgres).

The Apollo discussion runs for real with a scripted provider that counts its calls; once the CTO approves, the
same question asked again (worded differently, in the same context) is answered from memory with no provider call,
while another context, a near-miss and a result sent back for more discussion all run fresh.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlmodel import select

from backend.config import get_settings
from backend.db import session_scope
from backend.deliberation import decisions
from backend.errors import Forbidden, InputError, NotFound
from backend.humans import membership, polls
from backend.memory import embedder, recall
from backend.memory.context import parse_context, parse_pairs
from backend.models import Discussion, MemoryEntry, Message
from backend.observability import REGISTRY
from backend.orchestrator.runner import Runner, set_runner
from backend.providers import registry
from backend.providers.scripted import ScriptedProvider
from backend.services import memory as memory_service
from backend.services import room as room_service
from backend.services.discussions import AgentSpec, create_discussion
from tests.apollo_model import OPTIONS, model_reply
from tests.people import person

AGENTS = [
    AgentSpec("architect", "scripted", "m"),
    AgentSpec("backend_engineer", "scripted", "m"),
    AgentSpec("security", "scripted", "m"),
]
APOLLO_CONTEXT = {"preferred_language": "Python", "security_level": "high", "team_size": "small"}


@pytest.fixture(autouse=True)
def _quick(monkeypatch):
    monkeypatch.setattr(polls, "CHANGE_OF_MIND_S", 0.5)
    recall.reset_for_tests()
    yield
    recall.reset_for_tests()


@pytest.fixture
def scripted():
    provider = ScriptedProvider(model_reply)
    registry.register_provider("scripted", provider)
    yield provider
    registry.unregister_provider("scripted")


def _apollo(topic: str = "Choose a database for Apollo", context: dict | None = None):
    sam, pat, cto = person("sam"), person("pat", "Pat"), person("cto", "CTO")
    d = create_discussion(
        topic=topic,
        agents=AGENTS,
        rounds=1,
        owner=sam,
        owner_role="observer",
        vote_rule="plurality",
        vote_options=OPTIONS,
        vote_deadline_s=600,
        context=APOLLO_CONTEXT if context is None else context,
    )
    membership.invite(d.id, sam, "pat", "decision_maker")
    membership.invite(d.id, sam, "cto", "must_approve")
    return d.id, {"sam": sam, "pat": pat, "cto": cto}


async def _decide(did: int, people: dict) -> dict:
    """Run the agents, Pat votes PostgreSQL, the vote closes: the card waits for the CTO."""
    runner = Runner()
    assert await runner.start(did)
    for _ in range(400):
        open_now = await asyncio.to_thread(polls.open_polls, did)
        if open_now and len(await asyncio.to_thread(_voters, open_now[0].id)) >= 3:
            break
        await asyncio.sleep(0.05)
    poll = open_now[0]
    option = next(o["id"] for o in poll.options if o["text"] == "PostgreSQL")
    await room_service.cast_vote(
        discussion_id=did, poll_id=poll.id, actor=people["pat"], ranking=[option], client_id="v1"
    )
    await asyncio.wait_for(runner.tasks[did], 20)
    return decisions.latest(did)


def _voters(poll_id: int) -> list[str]:
    with session_scope() as s:
        return [v.voter_name for v in polls.current_votes(s, poll_id)]


def _live_entries() -> list[MemoryEntry]:
    with session_scope() as s:
        return list(s.exec(select(MemoryEntry).where(MemoryEntry.invalidated_at.is_(None))).all())  # type: ignore[union-attr]


async def test_an_approved_decision_is_reused_for_the_same_question_in_the_same_context(database, bus, scripted):
    did, p = _apollo()
    card = await _decide(did, p)
    assert memory_service.check("Choose a database for Apollo", APOLLO_CONTEXT, p["sam"]).hit is None  # not yet
    await room_service.sign_off(discussion_id=did, decision_id=card["id"], actor=p["cto"], outcome="approved")
    [entry] = _live_entries()
    assert (entry.kind, entry.outcome, entry.decided_by) == ("decision", "PostgreSQL", "CTO")
    assert entry.tokens > 0 and entry.cost_usd >= 0

    # Pat asks again next quarter, worded differently, in the same context (spelled differently too): a hit.
    asked = "Which database should we use for Apollo?"
    same_context = {"language": "python", "security": "High", "team_size": "small"}
    found = memory_service.check(asked, same_context, p["pat"])
    assert found.hit is not None and found.hit.discussion_id == did, found
    assert found.hit.match_percent >= 80 and found.hit.outcome == "PostgreSQL"
    calls_before = len(scripted.requests)
    reused = memory_service.reuse(found.hit.entry_id, question=asked, context=same_context, actor=p["pat"])
    assert len(scripted.requests) == calls_before  # no provider was called
    with session_scope() as s:
        fresh = s.get(Discussion, reused.id)
        posts = s.exec(select(Message).where(Message.discussion_id == reused.id).order_by(Message.seq)).all()
    assert fresh.status == "completed" and fresh.memory_entry_id == entry.id
    assert [m.author_name for m in posts] == ["Pat", "Memory"]
    assert posts[1].content.startswith(f"[MEMORY] From discussion #{did}") and "PostgreSQL" in posts[1].content
    with session_scope() as s:
        counted = s.get(MemoryEntry, entry.id)
    assert counted.hits == 1 and counted.saved_tokens == entry.tokens and counted.last_hit_at is not None
    assert REGISTRY.get_sample_value("maestro_memory_reuses_total") >= 1

    # The same question in another context is a miss, always; so is a near-miss, which is refused and counted.
    assert memory_service.check(asked, {**APOLLO_CONTEXT, "security_level": "enterprise"}, p["pat"]).hit is None
    assert memory_service.check(asked, {}, p["pat"]).hit is None
    near = memory_service.check("Choose a database for Hermes", APOLLO_CONTEXT, p["pat"])
    assert near.hit is None
    # Nobody outside the source discussion is shown its result.
    outsider = person("olive")
    assert memory_service.check(asked, same_context, outsider).hit is None
    with pytest.raises(NotFound):  # not even told that it exists
        memory_service.reuse(entry.id, question=asked, context=same_context, actor=outsider)
    with pytest.raises(NotFound):
        memory_service.forget(entry.id, outsider)
    # A reuse in another context is refused even with the entry's id.
    with pytest.raises(InputError, match="another context"):
        memory_service.reuse(entry.id, question=asked, context={}, actor=p["pat"])
    # Another question on the same subject is related, never a hit: backing up Apollo's database is not choosing it.
    other = memory_service.check("How should Apollo back up its database?", APOLLO_CONTEXT, p["sam"])
    assert other.hit is None and did in [r.discussion_id for r in other.related]
    assert did in [r.discussion_id for r in near.related]


async def test_sending_the_decision_back_stops_serving_it_at_once(database, bus, scripted):
    did, p = _apollo()
    card = await _decide(did, p)
    await room_service.sign_off(discussion_id=did, decision_id=card["id"], actor=p["cto"], outcome="approved")
    asked = "What database should Apollo run on?"
    assert memory_service.check(asked, APOLLO_CONTEXT, p["sam"]).hit is not None

    # The source's owner forgets it: no longer served; the memory page says why.
    entry = _live_entries()[0]
    with pytest.raises(Forbidden):
        memory_service.forget(entry.id, p["pat"])  # not the owner
    memory_service.forget(entry.id, p["sam"])
    assert memory_service.check(asked, APOLLO_CONTEXT, p["sam"]).hit is None
    [row] = memory_service.entries(p["sam"])
    assert not row.live and row.status.startswith("forgotten by")
    with pytest.raises(NotFound):
        memory_service.reuse(entry.id, question=asked, context=APOLLO_CONTEXT, actor=p["sam"])


async def test_an_override_is_what_memory_serves_and_sending_it_back_removes_the_hit(database, bus, scripted):
    did, p = _apollo()
    runner = Runner()
    set_runner(runner)
    try:
        card = await _decide(did, p)
        await room_service.sign_off(
            discussion_id=did,
            decision_id=card["id"],
            actor=p["cto"],
            outcome="overridden",
            override_option="MongoDB",
            reason="The team knows it",
        )
        hit = memory_service.check("Pick Apollo's database", APOLLO_CONTEXT, p["sam"]).hit
        assert hit is not None and hit.outcome == "MongoDB"  # the option that stands, not the room's

        # Next quarter the CTO sends the settled decision back: the hit is gone at once, before any agent runs.
        with pytest.raises(Forbidden):
            await room_service.revisit(discussion_id=did, actor=p["pat"], question="Still right?")
        await room_service.revisit(discussion_id=did, actor=p["cto"], question="Does MongoDB still fit at 10x?")
        assert memory_service.check("Pick Apollo's database", APOLLO_CONTEXT, p["sam"]).hit is None
        # The room runs another round and votes again: version 2 waits for the CTO; approved, it is remembered.
        for _ in range(400):
            open_now = await asyncio.to_thread(polls.open_polls, did)
            if open_now and len(await asyncio.to_thread(_voters, open_now[0].id)) >= 3:
                break
            await asyncio.sleep(0.05)
        option = next(o["id"] for o in open_now[0].options if o["text"] == "PostgreSQL")
        await room_service.cast_vote(
            discussion_id=did, poll_id=open_now[0].id, actor=p["pat"], ranking=[option], client_id="v2"
        )
        await asyncio.wait_for(runner.tasks[did], 20)
        second = decisions.latest(did)
        assert second["version"] == 2
        await room_service.sign_off(discussion_id=did, decision_id=second["id"], actor=p["cto"], outcome="approved")
    finally:
        set_runner(None)
    hit = memory_service.check("Pick Apollo's database", APOLLO_CONTEXT, p["sam"]).hit
    assert hit is not None and hit.outcome == "PostgreSQL"
    assert [e.decision_id for e in _live_entries()] == [second["id"]]


async def test_a_discussion_without_a_vote_is_remembered_by_its_final_synthesis(database, bus, scripted):
    sam = person("sam")
    d = create_discussion(
        topic="Should Apollo adopt GraphQL?", agents=AGENTS, rounds=1, owner=sam, context=APOLLO_CONTEXT
    )
    runner = Runner()
    assert await runner.start(d.id)
    await asyncio.wait_for(runner.tasks[d.id], 20)
    [entry] = _live_entries()
    assert entry.kind == "synthesis" and entry.result.count("**") >= 6  # every agent's last word, by name
    assert memory_service.check("Should Apollo adopt GraphQL?", APOLLO_CONTEXT, sam).hit is not None
    assert memory_service.check("Should Apollo stop using GraphQL?", APOLLO_CONTEXT, sam).hit is None


def test_expired_entries_are_not_served(database, scripted):
    sam = person("sam")
    d = create_discussion(topic="Choose a queue for Apollo", agents=AGENTS, rounds=1, owner=sam)
    with session_scope() as s:
        s.add(
            Message(
                discussion_id=d.id,
                author_name="Architect",
                author_kind="agent",
                content="Use Redis streams.",
                seq=9,
                round=1,
            )
        )
        from backend.memory import store

        entry = store.remember(s, d.id, decided_by="")
        entry.expires_at = entry.expires_at - timedelta(days=get_settings().memory_ttl_days + 1)
        s.add(entry)
    assert memory_service.check("Choose a queue for Apollo", {}, sam).hit is None


def test_bad_context_and_oversized_questions_are_refused_clearly(database, scripted):
    sam = person("sam")
    with pytest.raises(InputError, match="unknown context key 'colour'"):
        memory_service.check("Choose a database", {"colour": "blue"}, sam)
    with pytest.raises(InputError, match="security_level is one of standard, high, enterprise"):
        memory_service.check("Choose a database", {"security_level": "max"}, sam)
    with pytest.raises(InputError, match="the limit is 2,000"):
        memory_service.check("x" * 1_000_000, {}, sam)
    with pytest.raises(InputError, match="is not key=value"):
        parse_pairs(["security"])
    assert (
        parse_pairs(["stack=Postgres, redis", "team=small"]).key()
        == parse_context({"existing_stack": ["redis", "postgresql"], "team_size": "small"}).key()
    )
    with pytest.raises(InputError, match="unknown context key"):
        create_discussion(topic="q", agents=AGENTS, owner=sam, context={"budget": "1"})


def test_a_person_keeps_a_default_context(database):
    sam = person("sam")
    assert memory_service.default_context(sam) == {}
    memory_service.set_default_context(sam, {"language": "Go", "frameworks": "gin, gorm"})
    assert memory_service.default_context(sam) == {"preferred_language": "go", "frameworks": ["gin", "gorm"]}


def test_without_the_model_memory_says_so_and_discussions_still_run(database, scripted, monkeypatch):
    monkeypatch.setenv("MAESTRO_EMBEDDING_MODEL", "/nonexistent/model")
    embedder.reset_for_tests()
    try:
        sam = person("sam")
        found = memory_service.check("Choose a database for Apollo", {}, sam)
        assert found.hit is None and "Memory is unavailable" in (found.unavailable or "")
        create_discussion(topic="Choose a database for Apollo", agents=AGENTS, owner=sam)
    finally:
        monkeypatch.delenv("MAESTRO_EMBEDDING_MODEL")
        embedder.reset_for_tests()
