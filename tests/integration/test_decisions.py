"""From discussion to decision: polls, votes over humans and agents, the decision card and the approval gate.

The engine runs for real on SQLite and Postgres with a scripted provider that answers each structured step (the
consensus report, each agent's ballot, the synthesis) the way a model would, in JSON.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json

import pytest
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from backend.db import session_scope
from backend.deliberation import decisions
from backend.errors import Forbidden, InputError
from backend.events.log import read_events
from backend.humans import approval, audit, membership, polls
from backend.models import Discussion, Message, Participant, Poll, SignOff, Vote
from backend.orchestrator.runner import Runner, set_runner
from backend.providers import registry
from backend.providers.base import GenerationRequest
from backend.providers.scripted import ScriptedProvider
from backend.services import room as room_service
from backend.services.discussions import AgentSpec, create_discussion
from tests.apollo_model import OPTIONS, PREFERENCES, model_reply
from tests.people import person

AGENTS = [
    AgentSpec("architect", "scripted", "m"),
    AgentSpec("backend_engineer", "scripted", "m"),
    AgentSpec("security", "scripted", "m"),
]


@pytest.fixture(autouse=True)
def _quick_change_of_mind(monkeypatch):
    """A poll closes 0.5 s after the last vote once everyone has voted (3 s in the app): tests stay quick."""
    monkeypatch.setattr(polls, "CHANGE_OF_MIND_S", 0.5)


@pytest.fixture
def scripted():
    provider = ScriptedProvider(model_reply)
    registry.register_provider("scripted", provider)
    yield provider
    registry.unregister_provider("scripted")


@pytest.fixture
def apollo(database, scripted):
    """Sam owns it; Pat is the decision maker; the CTO must approve; Olive observes. A plurality vote at the end."""
    sam, pat, cto, olive = person("sam"), person("pat", "Pat"), person("cto", "CTO"), person("olive")
    d = create_discussion(
        topic="Choose a database for Apollo",
        agents=AGENTS,
        rounds=1,
        owner=sam,
        owner_role="observer",
        vote_rule="plurality",
        vote_options=OPTIONS,
        vote_deadline_s=600,
    )
    membership.invite(d.id, sam, "pat", "decision_maker")
    membership.invite(d.id, sam, "cto", "must_approve")
    membership.invite(d.id, sam, "olive", "observer")
    return d.id, {"sam": sam, "pat": pat, "cto": cto, "olive": olive}


async def _wait_for_poll(did: int, wait_s: float = 20) -> Poll:
    for _ in range(int(wait_s / 0.05)):
        open_now = await asyncio.to_thread(polls.open_polls, did)
        if open_now:
            voted = await asyncio.to_thread(_current_voters, open_now[0].id)
            if len(voted) >= 3:  # the agents have voted: only people are left
                return open_now[0]
        await asyncio.sleep(0.05)
    raise AssertionError("no poll with the agents' votes opened")


def _current_voters(poll_id: int) -> list[str]:
    with session_scope() as s:
        return [v.voter_name for v in polls.current_votes(s, poll_id)]


def _option_id(poll: Poll, text: str) -> str:
    return next(o["id"] for o in poll.options if o["text"] == text)


async def _run_to_vote(did: int, actor) -> tuple[Runner, Poll]:
    runner = Runner()
    assert await runner.start(did)
    poll = await _wait_for_poll(did)
    return runner, poll


async def test_the_apollo_story_ends_in_an_approved_decision(apollo, bus):
    did, p = apollo
    runner, poll = await _run_to_vote(did, p["sam"])
    # The PM votes (the engine waits for every voter), first for MongoDB, then changes their mind.
    await room_service.cast_vote(
        discussion_id=did, poll_id=poll.id, actor=p["pat"], ranking=[_option_id(poll, "MongoDB")], client_id="c1"
    )
    await room_service.cast_vote(
        discussion_id=did, poll_id=poll.id, actor=p["pat"], ranking=[_option_id(poll, "PostgreSQL")], client_id="c2"
    )
    await asyncio.wait_for(runner.tasks[did], 20)
    assert (await asyncio.to_thread(_status, did)) == "awaiting_approval"

    card = decisions.latest(did)
    assert card["status"] == "decided" and card["chosen_option"] == "PostgreSQL"
    assert card["support"] == "3 of 4 ranked PostgreSQL first"
    assert card["title"] == "Apollo runs on PostgreSQL"
    assert [d["who"] for d in card["dissent"]] == ["Security"]
    assert card["dissent"][0]["preferred"] == "DynamoDB" and "DynamoDB" in card["dissent"][0]["why"]
    assert {v["voter"] for v in card["breakdown"]} == {"Architect", "Backend Engineer", "Security", "Pat"}
    assert [s["owner"] for s in card["action_plan"]] == ["DevOps", "Backend engineer"]
    assert card["concerns"] == ["Migration effort from the prototype"]

    # Agents saw the options shuffled and anonymised: numbered, no authors, and never the same letters.
    ballots = [r for r in runner_requests(apollo_provider()) if (r.json_schema or {}).get("title") == "AgentBallot"]
    assert len(ballots) == 3
    assert all("A." not in r.transcript[-1].content for r in ballots)

    # Only the must-approve person can sign off; they approve with conditions, exactly once.
    with pytest.raises(Forbidden, match="decision maker you cannot approve"):
        approval.sign_off(did, card["id"], p["pat"], "approved")
    await room_service.sign_off(
        discussion_id=did,
        decision_id=card["id"],
        actor=p["cto"],
        outcome="approved",
        conditions="Budget review after 3 months",
        client_id="ok-1",
    )
    await room_service.sign_off(  # the same click again: nothing new
        discussion_id=did, decision_id=card["id"], actor=p["cto"], outcome="approved", client_id="ok-1"
    )
    card = decisions.latest(did)
    assert card["signoff"]["outcome"] == "approved" and card["signoff"]["by"] == "CTO"
    assert card["signoff"]["conditions"] == "Budget review after 3 months"
    assert (await asyncio.to_thread(_status, did)) == "completed"
    with pytest.raises(InputError, match="Already approved by CTO"):
        approval.sign_off(did, card["id"], p["cto"], "overridden", override_option="MongoDB", reason="x")

    # The history of Pat's vote is kept; the events tell the story in order; the audit trail has every action.
    history = polls.vote_history(poll.id)
    assert [(v.voter_name, v.current) for v in history if v.voter_name == "Pat"] == [("Pat", False), ("Pat", True)]
    with session_scope() as s:
        types = [e.type for e in read_events(s, did)]
    for kind in ("consensus_updated", "poll_opened", "vote_cast", "poll_closed", "decision_proposed"):
        assert kind in types
    assert types[-1] == "decision_signed_off"
    actions = [a.action for a in audit.trail(did)]
    assert {"vote.cast", "vote.change", "decision.approved"} <= set(actions)
    md = decisions.to_markdown(decisions.get_card(card["id"]))
    assert "# Apollo runs on PostgreSQL" in md and "Security** preferred DynamoDB" in md
    assert "Approved by CTO" in md and "Budget review after 3 months" in md


_PROVIDER: list[ScriptedProvider] = []


def apollo_provider() -> ScriptedProvider:
    return _PROVIDER[0]


def runner_requests(provider: ScriptedProvider) -> list[GenerationRequest]:
    return provider.requests


@pytest.fixture(autouse=True)
def _remember_provider(request):
    if "scripted" in request.fixturenames:
        _PROVIDER[:] = [request.getfixturevalue("scripted")]
    yield
    _PROVIDER.clear()


def _status(did: int) -> str:
    with session_scope() as s:
        return s.get(Discussion, did).status


async def test_more_discussion_reopens_the_room_and_the_next_decision_is_a_new_version(apollo, bus):
    did, p = apollo
    runner, poll = await _run_to_vote(did, p["sam"])
    await room_service.cast_vote(
        discussion_id=did, poll_id=poll.id, actor=p["pat"], ranking=[_option_id(poll, "PostgreSQL")], client_id="v"
    )
    await asyncio.wait_for(runner.tasks[did], 20)
    first = decisions.latest(did)
    with pytest.raises(InputError, match="Write the question"):
        approval.sign_off(did, first["id"], p["cto"], "more_discussion", extra_rounds=1)
    # The CTO sends it back with a question: one more round, which the agents see, then a second vote.
    set_runner(runner)  # the service starts the agents again through the process's runner
    await room_service.sign_off(
        discussion_id=did,
        decision_id=first["id"],
        actor=p["cto"],
        outcome="more_discussion",
        question="What does each option cost at 10x load?",
        extra_rounds=1,
    )
    second_poll = await _wait_for_poll_key(did, "decision-2")
    await room_service.cast_vote(
        discussion_id=did,
        poll_id=second_poll.id,
        actor=p["pat"],
        ranking=[_option_id(second_poll, "DynamoDB")],
        client_id="v2",
    )
    await asyncio.wait_for(runner.tasks[did], 20)
    set_runner(None)
    second = decisions.latest(did)
    assert second["version"] == 2 and second["id"] != first["id"]
    sent_back = decisions.get_card(first["id"])
    assert sent_back["signoff"]["outcome"] == "more_discussion"
    # What the room chose stays on record, but nothing stands: the question is being discussed again.
    assert (sent_back["chosen_option"], sent_back["final_option"], sent_back["final_status"]) == (
        "PostgreSQL",
        None,
        "in_progress",
    )
    exported = decisions.to_markdown(sent_back)
    assert "**Status:** in_progress" in exported and "the room had chosen PostgreSQL" in exported
    prompts_seen = [r.transcript for r in apollo_provider().requests if not r.json_schema]
    assert any("10x load" in e.content for t in prompts_seen for e in t)  # the question reached the agents
    with session_scope() as s:
        assert s.get(Discussion, did).rounds == 2
        events = read_events(s, did)
    assert len([e for e in events if e.type == "turn_completed"]) == 6  # the extra round really ran
    # Version 2 looked only at the new round: no second report for round 1.
    assert [e.round for e in events if e.type == "consensus_updated"] == [1001, 2002]


async def _wait_for_poll_key(did: int, key: str) -> Poll:
    for _ in range(400):
        poll = await asyncio.to_thread(polls.poll_by_key, did, key)
        if poll is not None and len(await asyncio.to_thread(_current_voters, poll.id)) >= 3:
            return poll
        await asyncio.sleep(0.05)
    raise AssertionError(f"no poll {key}")


# --- votes, directly through the service -------------------------------------------------------------------


def _open(did: int, rule: str = "plurality", **extra) -> Poll:
    with session_scope() as s:
        polls.open_poll(
            s, did, key=extra.pop("key", "k"), question="Which database?", options=OPTIONS, rule=rule, **extra
        )
        return s.exec(select(Poll).where(Poll.discussion_id == did)).first()


def test_an_observer_cannot_vote_and_a_forged_ballot_is_refused(apollo):
    did, p = apollo
    poll = _open(did)
    with pytest.raises(Forbidden, match="observer you cannot vote"):
        polls.cast_vote(did, poll.id, p["olive"], ["A"], "x")
    with pytest.raises(Forbidden, match="not a member"):
        polls.cast_vote(did, poll.id, person("mallory"), ["A"], "x")
    with pytest.raises(InputError, match="Unknown option Z"):
        polls.cast_vote(did, poll.id, p["pat"], ["Z"], "x")
    with pytest.raises(InputError, match="once"):
        _open_ranked = _open(did, "borda", key="b")
        polls.cast_vote(did, _open_ranked.id, p["pat"], ["A", "A"], "y")


def test_one_current_vote_per_participant_is_a_database_rule(apollo):
    did, p = apollo
    poll = _open(did)
    polls.cast_vote(did, poll.id, p["pat"], ["A"], "first")
    assert polls.cast_vote(did, poll.id, p["pat"], ["A"], "first") is None  # the same click twice: one vote
    polls.cast_vote(did, poll.id, p["pat"], ["B"], "second")
    with session_scope() as s:
        pat = membership.member(s, did, p["pat"])
        rows = s.exec(select(Vote).where(Vote.poll_id == poll.id)).all()
    assert [(v.ranking, v.current) for v in rows] == [(["A"], False), (["B"], True)]
    with pytest.raises(IntegrityError), session_scope() as s:  # even code that skips the service cannot add one
        s.add(
            Vote(
                poll_id=poll.id,
                participant_id=pat.id,
                voter_name="Pat",
                voter_kind="human",
                ranking=["C"],
                client_id="z",
            )
        )
        s.flush()


def test_two_votes_from_two_tabs_at_once_leave_one_current_ballot(apollo):
    did, p = apollo
    poll = _open(did, "borda")

    def vote(i: int):
        try:
            return polls.cast_vote(did, poll.id, p["pat"], ["ABC"[i % 3], "ABC"[(i + 1) % 3]], f"tab{i}")
        except InputError as err:
            return err

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(vote, range(8)))
    with session_scope() as s:
        assert len(polls.current_votes(s, poll.id)) == 1


def test_a_tie_is_deadlocked_never_a_silent_pick(apollo):
    did, _ = apollo
    poll = _open(did)
    with session_scope() as s:
        agents = s.exec(select(Participant).where(Participant.discussion_id == did, Participant.kind == "agent")).all()
        polls.record_vote(s, s.get(Poll, poll.id), agents[0], ["A"], client_id="a0")
        polls.record_vote(s, s.get(Poll, poll.id), agents[1], ["B"], client_id="a1")
        closed = polls.close(s, s.get(Poll, poll.id))
        assert polls.close(s, s.get(Poll, poll.id)) is None  # closes exactly once
    assert closed.result["status"] == "tie" and closed.result["winner"] is None
    draft = decisions.draft_from("Choose a database for Apollo", closed.result)
    assert draft.status == "deadlocked" and draft.chosen_option is None
    assert draft.support == "Tie between PostgreSQL and MongoDB"


def test_schulze_results_carry_the_pairwise_matrix(apollo):
    did, p = apollo
    poll = _open(did, "schulze")
    polls.cast_vote(did, poll.id, p["pat"], ["B", "A", "C"], "s1")
    with session_scope() as s:
        closed = polls.close(s, s.get(Poll, poll.id))
    assert closed.result["winner"] == "B"
    assert closed.result["pairwise"]["B"]["A"] == 1 and closed.result["pairwise"]["A"]["B"] == 0


def test_no_vote_on_your_own_proposal(apollo):
    did, _ = apollo
    with session_scope() as s:
        polls.open_poll(
            s,
            did,
            key="own",
            question="Which proposal?",
            options=[
                {"text": "Shard by tenant", "author": "Architect"},
                {"text": "One big cluster", "author": "Security"},
            ],
            rule="plurality",
            exclude_own=True,
        )
        poll = s.exec(select(Poll).where(Poll.key == "own")).one()
        architect = s.exec(select(Participant).where(Participant.name == "Architect")).one()
        with pytest.raises(InputError, match="nobody votes for an option they proposed"):
            polls.record_vote(s, poll, architect, ["A"], client_id="own-1")


def test_sign_off_exactly_once_even_when_two_tabs_click_together(apollo):
    did, p = apollo
    with session_scope() as s:
        draft = decisions.DecisionDraft("Choose a database for Apollo", "PostgreSQL", "decided", "3 of 4", [], [])
        event = decisions.record(s, did, None, draft, decisions.fallback_text(draft), version=1)
        s.get(Discussion, did).status = "awaiting_approval"
    outcomes = []

    def click(i: int):
        try:
            return approval.sign_off(did, event.decision_id, p["cto"], "approved", client_id=f"tab{i}")
        except (InputError, Forbidden) as err:
            outcomes.append(str(err))
            return None

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        won = [r for r in pool.map(click, range(4)) if r is not None]
    assert len(won) == 1
    with session_scope() as s:
        assert len(s.exec(select(SignOff)).all()) == 1
    assert all("Already approved" in o or "same moment" in o or "not waiting" in o for o in outcomes)


def _awaiting_sign_off(did: int, p: dict):
    """Pat votes PostgreSQL, the poll closes and its decision (version 1) waits for the CTO's sign-off."""
    poll = _open(did)
    polls.cast_vote(did, poll.id, p["pat"], ["A"], "o1")
    with session_scope() as s:
        closed = polls.close(s, s.get(Poll, poll.id))
        draft = decisions.draft_from("Choose a database for Apollo", closed.result)
        event = decisions.record(s, did, s.get(Poll, poll.id), draft, decisions.fallback_text(draft), version=1)
        s.get(Discussion, did).status = "awaiting_approval"
    return event


def test_an_override_needs_another_option_and_a_reason(apollo):
    did, p = apollo
    event = _awaiting_sign_off(did, p)
    with pytest.raises(InputError, match="needs a reason"):
        approval.sign_off(did, event.decision_id, p["cto"], "overridden", override_option="MongoDB")
    with pytest.raises(InputError, match="already the decision"):
        approval.sign_off(did, event.decision_id, p["cto"], "overridden", override_option="PostgreSQL", reason="r")
    approval.sign_off(did, event.decision_id, p["cto"], "overridden", override_option="MongoDB", reason="Team knows it")
    card = decisions.latest(did)
    assert card["signoff"]["override_option"] == "MongoDB" and card["signoff"]["reason"] == "Team knows it"
    # What stands is the override; the room's own result stays on record beside it.
    assert (card["final_option"], card["final_status"]) == ("MongoDB", "decided")
    assert card["chosen_option"] == "PostgreSQL"
    assert "**Outcome:** MongoDB (overridden; the room chose PostgreSQL" in decisions.to_markdown(card)


async def test_a_synthesis_that_fails_still_gives_a_card_that_says_so(apollo, bus, scripted):
    did, p = apollo

    def broken(request: GenerationRequest) -> str:
        if (request.json_schema or {}).get("title") == "DecisionText":
            return "I refuse to write JSON."
        return model_reply(request)

    scripted.replies = broken
    runner, poll = await _run_to_vote(did, p["sam"])
    await room_service.cast_vote(
        discussion_id=did, poll_id=poll.id, actor=p["pat"], ranking=[_option_id(poll, "PostgreSQL")], client_id="v"
    )
    await asyncio.wait_for(runner.tasks[did], 20)
    card = decisions.latest(did)
    assert card["chosen_option"] == "PostgreSQL" and card["support"] == "3 of 4 ranked PostgreSQL first"
    assert "assembled without a model" in card["note"] and "malformed output twice" in card["note"]
    assert card["title"].endswith(": PostgreSQL")
    # Every agent tried twice and was billed each time: the unusable replies count (estimated by the script).
    from backend.models import ModelCall

    with session_scope() as s:
        tries = s.exec(select(ModelCall).where(ModelCall.discussion_id == did, ModelCall.purpose == "synthesis")).all()
    assert len(tries) == 3 and all(t.input_tokens > 0 and t.output_tokens > 0 for t in tries)


def test_decisions_can_be_searched_and_exported(apollo):
    did, _ = apollo
    with session_scope() as s:
        draft = decisions.DecisionDraft("Choose a database for Apollo", "PostgreSQL", "decided", "1 of 1", [], [])
        decisions.record(
            s, did, None, draft, decisions.DecisionText(title="Apollo on PostgreSQL", rationale="Because."), version=1
        )
    assert [c["title"] for c in decisions.search("postgres")] == ["Apollo on PostgreSQL"]
    assert [c["title"] for c in decisions.search("apollo")] == ["Apollo on PostgreSQL"]
    assert decisions.search("cassandra") == []
    exported = json.loads(json.dumps(decisions.search("")[0]))
    assert exported["chosen_option"] == "PostgreSQL" and exported["topic"] == "Choose a database for Apollo"


async def test_consensus_is_detected_after_every_round_and_can_end_the_rounds_early(database, bus, scripted):
    sam, pat = person("sam"), person("pat", "Pat")
    d = create_discussion(
        topic="Choose a database for Apollo",
        agents=AGENTS,
        rounds=3,
        owner=sam,
        owner_role="observer",
        vote_rule="plurality",
        vote_options=OPTIONS,
        stop_on_consensus=True,
    )
    membership.invite(d.id, sam, "pat", "decision_maker")
    agreed = {
        "agreements": ["PostgreSQL"],
        "proposals": [{"id": "P1", "text": "Use PostgreSQL", "author": "Architect", "supporters": []}],
        "stances": [
            {"participant": n, "position": "support", "proposal_id": "P1", "summary": "yes"} for n in PREFERENCES
        ],
        "agreement_ratio": 0.1,  # the model's own figure is not trusted: Maestro derives it from the stances
    }

    def replies(request: GenerationRequest) -> str:
        if (request.json_schema or {}).get("title") == "ConsensusReport":
            return json.dumps(agreed)
        return model_reply(request)

    scripted.replies = replies
    runner = Runner()
    assert await runner.start(d.id)
    poll = await _wait_for_poll(d.id)
    await room_service.cast_vote(
        discussion_id=d.id, poll_id=poll.id, actor=pat, ranking=[_option_id(poll, "PostgreSQL")], client_id="v"
    )
    await asyncio.wait_for(runner.tasks[d.id], 20)
    with session_scope() as s:
        events = read_events(s, d.id)
    turns = [e for e in events if e.type == "turn_completed"]
    reports = [e for e in events if e.type == "consensus_updated"]
    assert len(turns) == 3  # one round of three agents: consensus was reached after round 1
    assert [r.round % 1000 for r in reports] == [1]  # detected once, reused for the vote
    assert reports[0].report["agreement_ratio"] == 1.0  # all 3 agents; asking the question is not a stance
    assert decisions.latest(d.id)["chosen_option"] == "PostgreSQL"


async def test_without_early_stop_every_round_gets_its_own_consensus_report(apollo, bus):
    did, p = apollo
    with session_scope() as s:
        s.get(Discussion, did).rounds = 2
    runner, poll = await _run_to_vote(did, p["sam"])
    await room_service.cast_vote(
        discussion_id=did, poll_id=poll.id, actor=p["pat"], ranking=[_option_id(poll, "MongoDB")], client_id="v"
    )
    await asyncio.wait_for(runner.tasks[did], 20)
    with session_scope() as s:
        events = read_events(s, did)
    assert [e.round % 1000 for e in events if e.type == "consensus_updated"] == [1, 2]
    assert len([e for e in events if e.type == "turn_completed"]) == 6


async def test_a_majority_vote_without_a_majority_goes_to_a_runoff(apollo, bus):
    did, p = apollo
    with session_scope() as s:
        s.get(Discussion, did).vote_rule = "majority"
    runner, poll = await _run_to_vote(did, p["sam"])
    await room_service.cast_vote(
        discussion_id=did, poll_id=poll.id, actor=p["pat"], ranking=[_option_id(poll, "DynamoDB")], client_id="v1"
    )
    runoff = await _wait_for_poll_key(did, "decision-1-runoff")  # 2 of 4 each: no option has more than half
    assert polls.get(poll.id).result["status"] == "no_majority"
    assert [o["text"] for o in runoff.options] == ["PostgreSQL", "DynamoDB"]
    assert runoff.question.endswith("(runoff)")
    await room_service.cast_vote(
        discussion_id=did, poll_id=runoff.id, actor=p["pat"], ranking=[_option_id(runoff, "PostgreSQL")], client_id="v2"
    )
    await asyncio.wait_for(runner.tasks[did], 20)
    card = decisions.latest(did)
    assert card["status"] == "decided" and card["chosen_option"] == "PostgreSQL"
    assert card["support"] == "3 of 4 ranked PostgreSQL first"


def test_the_last_voter_can_change_their_mind_before_the_poll_closes(apollo, monkeypatch):
    from datetime import timedelta

    from backend import clock

    did, p = apollo
    poll = _open(did)
    with session_scope() as s:
        for agent in s.exec(select(Participant).where(Participant.discussion_id == did, Participant.kind == "agent")):
            polls.record_vote(s, s.get(Poll, poll.id), agent, ["A"], client_id=f"a{agent.id}")
    polls.cast_vote(did, poll.id, p["pat"], ["B"], "first")
    assert polls.close_if_done(poll.id, grace_s=60) is None  # everyone voted, but just now
    polls.cast_vote(did, poll.id, p["pat"], ["C"], "second")
    later = clock.now() + timedelta(seconds=61)
    monkeypatch.setattr(clock, "_now", lambda: later)
    closed = polls.close_if_done(poll.id, grace_s=60)
    assert closed is not None and [v["first"] for v in closed.result["voters"]][-1] == "DynamoDB"


def test_the_gate_is_fixed_while_a_decision_is_being_made(apollo):
    did, p = apollo
    _open(did)
    with pytest.raises(Forbidden, match="who approves it cannot change now"):
        membership.invite(did, p["sam"], "olive", "must_approve")
    with pytest.raises(Forbidden, match="who approves it cannot change now"):
        membership.invite(did, p["sam"], "cto", "observer")
    membership.invite(did, p["sam"], "olive", "contributor")  # other roles may still change


def test_a_deadlocked_decision_cannot_be_approved(apollo):
    did, p = apollo
    with session_scope() as s:
        draft = decisions.DecisionDraft("Choose a database for Apollo", None, "deadlocked", "Tie", [], [])
        event = decisions.record(s, did, None, draft, decisions.fallback_text(draft), version=1)
        s.get(Discussion, did).status = "awaiting_approval"
    with pytest.raises(InputError, match="Nothing was decided"):
        approval.sign_off(did, event.decision_id, p["cto"], "approved")


def test_a_ballot_racing_the_close_is_refused_not_lost(apollo):
    did, p = apollo
    poll = _open(did)
    with session_scope() as s:
        stale = s.get(Poll, poll.id)  # read before the close
    with session_scope() as s:
        polls.close(s, s.get(Poll, poll.id))
    with session_scope() as s, pytest.raises(InputError, match="This vote is closed"):
        pat = membership.member(s, did, p["pat"])
        polls.record_vote(s, stale, pat, ["A"], client_id="late")


def test_approval_voting_counts_support_and_dissent_by_approval(apollo):
    result = {
        "rule": "approval",
        "status": "winner",
        "winner": "B",
        "winner_text": "MongoDB",
        "options": [{"id": "A", "text": "PostgreSQL"}, {"id": "B", "text": "MongoDB", "author": "Security"}],
        "voters": [
            {"voter": "Pat", "weight": 1, "ranking": ["A", "B"], "first": "PostgreSQL", "reason": ""},
            {"voter": "Architect", "weight": 1, "ranking": ["A"], "first": "PostgreSQL", "reason": "Integrity."},
            {"voter": "Security", "weight": 1, "ranking": ["A"], "first": "PostgreSQL", "reason": ""},
        ],
    }
    draft = decisions.draft_from("Choose a database for Apollo", result)
    assert draft.support == "1 of 3 approved MongoDB"  # Pat approved it, though listed second
    assert [d["who"] for d in draft.dissent] == ["Architect"]  # Security proposed it and could not vote for it


def test_with_no_vote_on_your_own_proposal_a_ranking_just_leaves_it_out(apollo):
    did, _ = apollo
    with session_scope() as s:
        polls.open_poll(
            s,
            did,
            key="own-ranked",
            question="Which proposal?",
            options=[{"text": "Shard by tenant", "author": "Architect"}, {"text": "One cluster", "author": "Security"}],
            rule="borda",
            exclude_own=True,
        )
        poll = s.exec(select(Poll).where(Poll.key == "own-ranked")).one()
        architect = s.exec(select(Participant).where(Participant.name == "Architect")).one()
        polls.record_vote(s, poll, architect, ["A", "B"], client_id="own-r")
        assert [v.ranking for v in polls.current_votes(s, poll.id)] == [["B"]]


async def test_a_failed_agent_ballot_does_not_hold_the_vote_until_its_deadline(apollo, bus, scripted):
    did, p = apollo

    def replies(request: GenerationRequest) -> str:
        if (request.json_schema or {}).get("title") == "AgentBallot" and "You are Security" in request.system:
            return "no ballot from me"
        return model_reply(request)

    scripted.replies = replies
    runner = Runner()
    assert await runner.start(did)
    for _ in range(400):
        open_now = polls.open_polls(did)
        if open_now and len(_current_voters(open_now[0].id)) == 2:
            break
        await asyncio.sleep(0.05)
    poll = polls.open_polls(did)[0]
    await asyncio.sleep(0.5)
    await room_service.cast_vote(
        discussion_id=did, poll_id=poll.id, actor=p["pat"], ranking=[_option_id(poll, "PostgreSQL")], client_id="v"
    )
    await asyncio.wait_for(runner.tasks[did], 20)  # closed at once, not after the 10-minute deadline
    card = decisions.latest(did)
    assert card["support"] == "3 of 3 ranked PostgreSQL first"
    with session_scope() as s:
        reports = [e for e in read_events(s, did) if e.type == "step_report" and e.step == "agents' votes"]
    assert reports[0].failed[0]["participant"] == "Security"


async def test_stop_during_the_vote_pauses_and_run_agents_continues_it(apollo, bus):
    did, p = apollo
    runner, poll = await _run_to_vote(did, p["sam"])
    await room_service.stop(discussion_id=did, actor=p["sam"])
    await asyncio.wait_for(runner.tasks[did], 20)
    assert (await asyncio.to_thread(_status, did)) == "paused"
    assert decisions.latest(did) is None
    assert await runner.start(did)  # Run Agents: the same poll, nobody asked twice
    await room_service.cast_vote(
        discussion_id=did, poll_id=poll.id, actor=p["pat"], ranking=[_option_id(poll, "PostgreSQL")], client_id="v"
    )
    await asyncio.wait_for(runner.tasks[did], 20)
    assert decisions.latest(did)["support"] == "3 of 4 ranked PostgreSQL first"
    assert len(polls.vote_history(poll.id)) == 4


async def test_every_call_of_the_decision_phase_is_counted_and_budgeted(apollo, bus):
    from backend.models import ModelCall
    from backend.services.discussions import set_budget

    did, p = apollo
    runner, poll = await _run_to_vote(did, p["sam"])
    with session_scope() as s:
        purposes = sorted(c.purpose for c in s.exec(select(ModelCall).where(ModelCall.discussion_id == did)))
    assert purposes == ["ballot", "ballot", "ballot", "consensus"]
    # The budget runs out before the synthesis: the discussion pauses instead of making the call.
    set_budget(discussion_id=did, budget_tokens=1, budget_usd=None, actor=p["sam"])
    await room_service.cast_vote(
        discussion_id=did, poll_id=poll.id, actor=p["pat"], ranking=[_option_id(poll, "PostgreSQL")], client_id="v"
    )
    await asyncio.wait_for(runner.tasks[did], 20)
    assert (await asyncio.to_thread(_status, did)) == "paused" and decisions.latest(did) is None
    set_budget(discussion_id=did, budget_tokens=None, budget_usd=None, actor=p["sam"])
    assert await runner.start(did)
    await asyncio.wait_for(runner.tasks[did], 20)
    assert decisions.latest(did)["title"] == "Apollo runs on PostgreSQL"
    with session_scope() as s:
        events = read_events(s, did)
        calls = s.exec(select(ModelCall).where(ModelCall.discussion_id == did)).all()
        turns = s.exec(select(Message).where(Message.discussion_id == did, Message.turn_key.is_not(None))).all()
    assert sorted(c.purpose for c in calls) == ["ballot", "ballot", "ballot", "consensus", "synthesis"]
    assert [e.purpose for e in events if e.type == "call_recorded"] == [c.purpose for c in calls]
    finished = [e for e in events if e.type == "discussion_finished"][-1]
    spent = sum(m.input_tokens + m.output_tokens for m in turns) + sum(c.input_tokens + c.output_tokens for c in calls)
    assert finished.total_tokens == spent  # the closing totals include every call


async def test_consensus_is_tracked_without_a_vote_and_can_end_the_rounds(database, bus, scripted):
    """Tracking where the room stands needs no vote: a report after each round, the last one the outcome; with an
    early stop the rounds end once everyone agrees. No poll, no decision card, the discussion completes."""
    agreed = {
        "agreements": ["PostgreSQL"],
        "proposals": [{"id": "P1", "text": "Use PostgreSQL", "author": "Architect", "supporters": []}],
        "stances": [
            {"participant": n, "position": "support", "proposal_id": "P1", "summary": "yes"} for n in PREFERENCES
        ],
    }

    def replies(request: GenerationRequest) -> str:
        if (request.json_schema or {}).get("title") == "ConsensusReport":
            return json.dumps(agreed)
        return model_reply(request)

    scripted.replies = replies
    for stop_early, expected_rounds in ((False, [1, 2, 3]), (True, [1])):
        d = create_discussion(
            topic="Choose a database for Apollo",
            agents=AGENTS,
            rounds=3,
            track_consensus=True,
            stop_on_consensus=stop_early,
        )
        assert d.track_consensus and d.vote_rule is None
        runner = Runner()
        assert await runner.start(d.id)
        await asyncio.wait_for(runner.tasks[d.id], 20)
        with session_scope() as s:
            events = read_events(s, d.id)
            assert s.get(Discussion, d.id).status == "completed"
        reports = [e for e in events if e.type == "consensus_updated"]
        assert [r.round % 1000 for r in reports] == expected_rounds
        assert all(r.report["agreement_ratio"] == 1.0 for r in reports)
        assert len([e for e in events if e.type == "turn_completed"]) == 3 * expected_rounds[-1]
        assert not [e for e in events if e.type in ("poll_opened", "decision_proposed")]
        assert decisions.latest(d.id) is None


def test_no_consensus_tracking_unless_asked_or_voting(database, scripted):
    plain = create_discussion(topic="Choose a database for Apollo", agents=AGENTS, rounds=1)
    voting = create_discussion(
        topic="Choose a database for Apollo", agents=AGENTS, rounds=1, vote_rule="plurality", vote_options=OPTIONS
    )
    assert (plain.track_consensus, voting.track_consensus) == (False, True)


async def test_under_a_money_budget_no_call_of_the_decision_phase_can_pass_it(
    database, bus, scripted, monkeypatch, tmp_path
):
    """Every call is checked at its worst case (a turn's whole prompt and reply limit; the consensus report's two
    tries of the transcript and 1,500 reply tokens): under a budget half a dollar above what an unbudgeted run spent
    before its vote ($1 a token here), the room pauses before the call that could pass it, and never spends more."""
    from backend.models import ModelCall

    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"scripted/*": {"input": 1_000_000, "output": 1_000_000}}))
    monkeypatch.setenv("MAESTRO_PRICE_TABLE", str(prices))

    def run(budget_usd: float | None) -> int:
        return create_discussion(
            topic="Choose a database for Apollo",
            agents=AGENTS,
            rounds=1,
            vote_rule="plurality",
            vote_options=OPTIONS,
            budget_usd=budget_usd,
        ).id

    def spent(did: int, purposes: tuple[str, ...]) -> tuple[float, int]:
        with session_scope() as s:
            turns = sum(m.cost_usd for m in s.exec(select(Message).where(Message.discussion_id == did)))
            calls = s.exec(select(ModelCall).where(ModelCall.discussion_id == did)).all()
            before = sum(c.cost_usd for c in calls if c.purpose in purposes)
            return turns + before, sum(1 for c in calls if c.purpose == "ballot")

    free = run(None)
    runner = Runner()
    assert await runner.start(free)
    await asyncio.wait_for(runner.tasks[free], 20)
    before_vote, ballots = spent(free, ("consensus",))
    assert ballots == 3 and before_vote > 0

    capped = run(before_vote + 0.5)
    assert await runner.start(capped)
    await asyncio.wait_for(runner.tasks[capped], 20)
    total, ballots = spent(capped, ("consensus", "ballot", "synthesis"))
    assert total <= before_vote + 0.5 and ballots == 0  # paused before a call that could pass the budget
    with session_scope() as s:
        d = s.get(Discussion, capped)
        assert d.status == "paused" and "could cost up to" in d.pause_reason


def test_an_override_is_a_veto_and_needs_that_permission(apollo, monkeypatch):
    """Approving needs must_approve; setting the vote aside also needs can_veto (both are the must-approve role's
    today: taking can_veto away leaves approve working and refuses the override)."""
    from backend.errors import Forbidden
    from backend.humans import roles

    did, p = apollo
    event = _awaiting_sign_off(did, p)
    grants = dict(roles._GRANTS)
    grants[roles.Role.MUST_APPROVE] = grants[roles.Role.MUST_APPROVE] - {roles.Permission.VETO}
    monkeypatch.setattr(roles, "_GRANTS", grants)
    with pytest.raises(Forbidden, match="veto"):
        approval.sign_off(did, event.decision_id, p["cto"], "overridden", override_option="MongoDB", reason="r")
    approval.sign_off(did, event.decision_id, p["cto"], "approved")
    assert decisions.latest(did)["signoff"]["outcome"] == "approved"
