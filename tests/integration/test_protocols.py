"""Protocols in the real engine: structured debate (stances, then a synthesis) and consensus building (propose,
critique, revise, stop on consensus, vote over the proposals)."""

from __future__ import annotations

import asyncio
import json

import pytest

from backend.db import session_scope
from backend.deliberation import decisions
from backend.events.log import read_events
from backend.humans import membership, polls
from backend.orchestrator.runner import Runner
from backend.protocols.debate import stances
from backend.providers import registry
from backend.providers.base import GenerationRequest
from backend.providers.scripted import ScriptedProvider
from backend.services import room as room_service
from backend.services.discussions import create_discussion
from tests.integration.test_decisions import AGENTS, _wait_for_poll, model_reply
from tests.people import person


@pytest.fixture(autouse=True)
def _quick_change_of_mind(monkeypatch):
    monkeypatch.setattr(polls, "CHANGE_OF_MIND_S", 0.5)


@pytest.fixture
def use():
    """Register a scripted provider as "scripted" for this test."""
    yield lambda provider: registry.register_provider("scripted", provider)
    registry.unregister_provider("scripted")


def _cue(request: GenerationRequest) -> str:
    return request.transcript[-1].content


async def test_a_debate_deals_unique_stances_and_ends_with_a_synthesis(database, bus, use):
    provider = ScriptedProvider(model_reply)
    use(provider)
    d = create_discussion(topic="Choose a database for Apollo", agents=AGENTS, rounds=2, protocol="debate")
    runner = Runner()
    assert await runner.start(d.id)
    await asyncio.wait_for(runner.tasks[d.id], 20)
    cues = [_cue(r) for r in provider.requests]
    assert len(cues) == 7  # 2 rounds x 3 agents, then one synthesis
    assert "argue FOR" in cues[0] and "argue AGAINST" in cues[1] and "neutral judge" in cues[2]
    assert all("fatal flaw" in c for c in cues[:6])
    assert "write its synthesis" in cues[6] and "You are Security" in cues[6]  # the neutral agent synthesises
    with session_scope() as s:
        started = [e for e in read_events(s, d.id) if e.type == "turn_started"]
    assert [e.label for e in started] == ["for", "against", "neutral"] * 2 + ["synthesis"]
    pairs = [(a, st) for a, st in stances(["A", "B", "C", "D"])]
    assert len(set(pairs)) == 4 and [st for _, st in pairs] == ["for", "against", "neutral", "for"]
    # A finished debate does not start again: the synthesis is a keyed turn, run once.
    use(provider)
    await Runner().start(d.id)
    assert provider.calls == 7


async def test_consensus_building_votes_on_the_room_s_own_proposals(database, bus, use):
    sam, pat = person("sam"), person("pat", "Pat")

    def replies(request: GenerationRequest) -> str:
        if (request.json_schema or {}).get("title") == "ConsensusReport":
            return json.dumps(
                {
                    "proposals": [
                        {"id": "P1", "text": "PostgreSQL with read replicas", "author": "Architect", "supporters": []},
                        {"id": "P2", "text": "DynamoDB on demand", "author": "Security", "supporters": []},
                    ],
                    "stances": [
                        {"participant": "Architect", "position": "support", "proposal_id": "P1", "summary": "."},
                        {"participant": "Security", "position": "support", "proposal_id": "P2", "summary": "."},
                    ],
                }
            )
        if (request.json_schema or {}).get("title") == "AgentBallot":
            lines = _cue(request).splitlines()
            postgres = next(int(line[0]) for line in lines if "PostgreSQL with read replicas" in line)
            return json.dumps({"ranking": [postgres], "reason": "Integrity."})
        return model_reply(request)

    provider = ScriptedProvider(replies)
    use(provider)
    d = create_discussion(
        topic="Choose a database for Apollo",
        agents=AGENTS,
        rounds=3,
        owner=sam,
        owner_role="observer",
        protocol="consensus",
    )
    membership.invite(d.id, sam, "pat", "decision_maker")
    assert (d.vote_rule, d.stop_on_consensus) == ("schulze", True)
    runner = Runner()
    assert await runner.start(d.id)
    poll = await _wait_for_poll(d.id)
    assert [o["text"] for o in poll.options] == ["PostgreSQL with read replicas", "DynamoDB on demand"]
    assert [o["author"] for o in poll.options] == ["Architect", "Security"]
    await room_service.cast_vote(discussion_id=d.id, poll_id=poll.id, actor=pat, ranking=["B", "A"], client_id="v")
    await asyncio.wait_for(runner.tasks[d.id], 20)
    cues = [_cue(r) for r in provider.requests if not r.json_schema]
    assert "Proposal:" in cues[0] and "critique the proposals" in cues[3] and "revise" in cues[6]
    assert len(cues) == 9  # no agreement (2 of 5 at most), so all three rounds ran
    card = decisions.latest(d.id)
    assert card["chosen_option"] == "PostgreSQL with read replicas" and card["rule"] == "schulze"
    assert card["pairwise"]["A"]["B"] == 3 and card["pairwise"]["B"]["A"] == 1
    assert [v["voter"] for v in polls.get(poll.id).result["voters"]][-1] == "Pat"


async def test_a_person_stops_the_agents_and_run_agents_continues_without_repeats(database, bus, use):
    from sqlmodel import select

    from backend.errors import Forbidden
    from backend.models import AuditEntry, Discussion, Message

    sam, olive = person("sam"), person("olive")
    provider = ScriptedProvider(model_reply, token_delay=0.02)
    use(provider)
    d = create_discussion(topic="Choose a database for Apollo", agents=AGENTS, rounds=2, owner=sam)
    membership.invite(d.id, sam, "olive", "observer")
    runner = Runner()
    assert await runner.start(d.id)
    for _ in range(2000):  # stop while the second turn streams
        if provider.calls >= 2:
            break
        await asyncio.sleep(0.01)
    with pytest.raises(Forbidden, match="only its owner"):
        await room_service.stop(discussion_id=d.id, actor=olive)
    await room_service.stop(discussion_id=d.id, actor=sam)
    await asyncio.wait_for(runner.tasks[d.id], 20)  # ends once the turn in flight is done
    with session_scope() as s:
        status = s.get(Discussion, d.id).status
        done = len(s.exec(select(Message).where(Message.discussion_id == d.id, Message.status == "complete")).all())
        assert s.exec(select(AuditEntry.action).where(AuditEntry.action == "discussion.stop")).one()
    assert status == "paused" and done == 3  # the question and the two turns begun before the stop
    assert await runner.start(d.id)
    await asyncio.wait_for(runner.tasks[d.id], 20)
    with session_scope() as s:
        keys = [m.turn_key for m in s.exec(select(Message).where(Message.discussion_id == d.id)) if m.turn_key]
        assert s.get(Discussion, d.id).status == "completed"
    assert len(keys) == len(set(keys)) == 6 and provider.calls == 6


async def test_open_discussion_lets_the_facilitator_pick_and_falls_back_when_it_cannot(database, bus, use):
    picks = iter(
        [
            json.dumps({"speaker": "Security", "reason": "was challenged"}),
            json.dumps({"speaker": "Architect", "reason": "owns the design"}),
            "not json at all",  # the third pick fails twice: the fallback decides
            "still not json",
        ]
    )

    def replies(request: GenerationRequest) -> str:
        if (request.json_schema or {}).get("title") == "SpeakerPick":
            return next(picks)
        return model_reply(request)

    provider = ScriptedProvider(replies)
    use(provider)
    d = create_discussion(topic="Choose a database for Apollo", agents=AGENTS, rounds=1, protocol="open")
    runner = Runner()
    assert await runner.start(d.id)
    await asyncio.wait_for(runner.tasks[d.id], 20)
    with session_scope() as s:
        speakers = [e.author_name for e in read_events(s, d.id) if e.type == "turn_started"]
    # Slots 1 and 2 went to the facilitator's picks; for slot 3 it failed twice, so the quietest agent who did not
    # speak last got the floor: Backend Engineer.
    assert speakers == ["Security", "Architect", "Backend Engineer"]
    cues = [_cue(r) for r in provider.requests if not r.json_schema]
    assert "The facilitator gave you the floor: was challenged" in cues[0] and "gave you the floor" not in cues[2]
    asked = [_cue(r) for r in provider.requests if (r.json_schema or {}).get("title") == "SpeakerPick"]
    assert "Choose one of: Architect, Backend Engineer." in asked[1]  # never whoever spoke last


async def test_staged_deliberation_closes_every_stage_with_a_synthesis_the_next_stage_sees(database, bus, use):
    from backend.errors import InputError

    provider = ScriptedProvider(lambda r: f"{_cue(r)[:40]} -> said")
    use(provider)
    with pytest.raises(InputError, match="2 to 4 stages"):
        create_discussion(topic="Choose a database for Apollo", agents=AGENTS, rounds=5, protocol="staged")
    d = create_discussion(topic="Choose a database for Apollo", agents=AGENTS, rounds=3, protocol="staged")
    runner = Runner()
    assert await runner.start(d.id)
    await asyncio.wait_for(runner.tasks[d.id], 20)
    with session_scope() as s:
        started = [(e.author_name, e.label) for e in read_events(s, d.id) if e.type == "turn_started"]
    assert started == [
        *[(a, "Requirements") for a in ("Architect", "Backend Engineer", "Security")],
        ("Architect", "synthesis"),
        *[(a, "Options") for a in ("Architect", "Backend Engineer", "Security")],
        ("Backend Engineer", "synthesis"),
        *[(a, "Recommendation") for a in ("Architect", "Backend Engineer", "Security")],
        ("Security", "synthesis"),
    ]
    cues = [_cue(r) for r in provider.requests]
    assert "Stage 1 of 3: Requirements" in cues[0] and "do not propose solutions" in cues[0]
    assert "Close stage 1 of 3 (Requirements)" in cues[3]
    # The first turn of stage 2 sees stage 1's synthesis in its transcript.
    seen = "\n".join(e.content for e in provider.requests[4].transcript)
    assert "Close stage 1 of 3" in seen
