"""Live preflight: a budget change is an event every open tab hears (and a reconnecting one replays), and what a tab
follows tells it when its checklist is stale, so Run Agents follows people, roles and budgets without "check again".

Real database, the room service, the in-process bus and one `Follower` per open tab (what each tab runs)."""

from __future__ import annotations

import asyncio

import pytest

from backend.db import session_scope
from backend.errors import Forbidden
from backend.events.follower import Follower
from backend.events.log import read_events
from backend.events.schema import BudgetChanged, MemberChanged
from backend.humans import membership
from backend.providers import registry
from backend.providers.scripted import ScriptedProvider
from backend.services import preflight, room
from backend.services.discussions import AgentSpec, create_discussion
from maestro_ui.projection.room import RoomView, project
from tests.people import person


@pytest.fixture
def fake_provider():
    registry.register_provider("fake", ScriptedProvider(["unused"]))
    yield "fake"
    registry.unregister_provider("fake")


@pytest.fixture
def apollo(sqlite_db, fake_provider):
    """A draft with a vote: Sam owns it, Olive observes; nobody must approve yet."""
    sam, olive = person("sam", "Sam"), person("olive", "Olive")
    person("cto", "CTO")
    did = create_discussion(
        topic="Choose a database for Apollo",
        agents=[AgentSpec("architect", fake_provider, "m"), AgentSpec("security", fake_provider, "m")],
        owner=sam,
        vote_rule="plurality",
        vote_options=["PostgreSQL", "MongoDB"],
    ).id
    membership.invite(did, sam, "olive", "observer")
    return did, sam, olive


async def _next_events(gen) -> list:
    """The next batch's persisted events (idle ticks skipped)."""
    async with asyncio.timeout(5):
        while True:
            batch = await anext(gen)
            if batch.events:
                return batch.events


def _logged(did: int, after: int) -> list:
    with session_scope() as s:
        return read_events(s, did, after_seq=after)


async def test_a_budget_change_reaches_every_open_tab_and_makes_its_checklist_stale(apollo, bus):
    did, sam, _olive = apollo
    checked = await preflight.run_preflight(did)
    assert checked.item("budget").status == "fail" and checked.seq == _logged(did, 0)[-1].seq
    tabs = [Follower(did, after_seq=checked.seq, bus=bus) for _ in range(2)]
    async with tabs[0], tabs[1]:
        gens = [tab.batches() for tab in tabs]
        await room.set_budget(discussion_id=did, actor=sam, budget_tokens=50_000, budget_usd=2.5)
        for gen in gens:
            events = await _next_events(gen)
            assert [(type(e), e.budget_tokens, e.budget_usd, e.changed_by) for e in events] == [
                (BudgetChanged, 50_000, 2.5, "Sam")
            ]
            assert preflight.stale("draft", preflight.recheck_seq(events), checked.seq)
            view = project(RoomView(status="draft", last_seq=checked.seq), events).view
            assert (view.budget_tokens, view.budget_usd) == ("50000", "2.5")
    again = await preflight.run_preflight(did)
    assert again.item("budget").status == "pass" and again.seq == events[0].seq
    assert not preflight.stale("draft", events[0].seq, again.seq)
    # Logged too: a tab that reconnects replays it.
    assert [type(e) for e in _logged(did, checked.seq)] == [BudgetChanged]


async def test_the_same_budget_again_or_a_refused_change_tells_nobody(apollo, bus):
    did, sam, olive = apollo
    await room.set_budget(discussion_id=did, actor=sam, budget_tokens=1000, budget_usd=None)
    seen = _logged(did, 0)[-1].seq
    sub = await bus.subscribe(did)
    await room.set_budget(discussion_id=did, actor=sam, budget_tokens=1000, budget_usd=None)
    with pytest.raises(Forbidden):
        await room.set_budget(discussion_id=did, actor=olive, budget_tokens=5, budget_usd=None)
    await bus.publish(MemberChanged(discussion_id=did, participant_id=0, name="-", username="-", role="observer"))
    async with asyncio.timeout(5):
        first = await anext(aiter(sub))
    await sub.close()
    assert isinstance(first, MemberChanged)  # nothing was published before this marker
    assert _logged(did, seen) == []


async def test_the_must_approve_person_joining_makes_the_checklist_ready_after_one_recheck(apollo, bus):
    did, sam, _olive = apollo
    await room.set_budget(discussion_id=did, actor=sam, budget_tokens=50_000, budget_usd=None)
    checked = await preflight.run_preflight(did)
    assert not checked.ready and checked.item("approver").status == "fail"
    tab = Follower(did, after_seq=checked.seq, bus=bus)
    async with tab:
        gen = tab.batches()
        await room.post_message(discussion_id=did, actor=sam, content="Who signs this off?")
        chat = await _next_events(gen)
        assert not preflight.stale("draft", preflight.recheck_seq(chat), checked.seq)  # a message: no check
        await room.invite(discussion_id=did, actor=sam, username="cto", role="must_approve")
        events = await _next_events(gen)
    changed = preflight.recheck_seq(events)
    assert [type(e) for e in events] == [MemberChanged] and preflight.stale("draft", changed, checked.seq)
    again = await preflight.run_preflight(did)
    assert again.ready and again.item("approver").detail == "CTO signs the decision off."
    assert not preflight.stale("draft", changed, again.seq)
