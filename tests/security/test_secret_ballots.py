"""Secret ballots (issue 12, point 4): while a poll is open nobody but the voter can learn how they voted.

A decision maker votes and changes their vote in an open ranked poll; an observer of the same discussion reads
everything a member can read while it is open: the audit trail (as the audit page shows it) and the event log (what
the room's follower and the SSE stream send, as JSON). Neither carries the ranking or the reason. Once the poll closes, the breakdown is published and the ballots appear in the audit trail.
Runs on SQLite and Postgres.
"""

from __future__ import annotations

import pytest
from sqlmodel import select

from backend.db import session_scope
from backend.events.log import read_events
from backend.humans import audit, membership, polls
from backend.models import Participant, Poll
from backend.providers import registry
from backend.providers.scripted import ScriptedProvider
from backend.services.discussions import AgentSpec, create_discussion
from tests.people import person

OPTIONS = ["PostgreSQL", "MongoDB", "DynamoDB"]
REASON = "Dynamo-scaling-matters-most"  # a reason no other text in the room contains


@pytest.fixture
def room(database):
    """Sam owns it (observer); Pat is the decision maker; Olive observes. A Borda (ranked) poll is open."""
    registry.register_provider("scripted", ScriptedProvider(["unused"]))
    sam, pat, olive = person("sam"), person("pat", "Pat"), person("olive", "Olive")
    d = create_discussion(
        topic="Choose a database for Apollo",
        agents=[AgentSpec("architect", "scripted", "m")],
        rounds=1,
        owner=sam,
        owner_role="observer",
        vote_rule="borda",
        vote_options=OPTIONS,
    )
    membership.invite(d.id, sam, "pat", "decision_maker")
    membership.invite(d.id, sam, "olive", "observer")
    with session_scope() as s:
        polls.open_poll(s, d.id, key="k", question="Which database?", options=OPTIONS, rule="borda")
        poll = s.exec(select(Poll).where(Poll.discussion_id == d.id)).one()
    yield d.id, poll, {"sam": sam, "pat": pat, "olive": olive}
    registry.unregister_provider("scripted")


def _audit_page_rows(discussion_id: int, reader) -> list[dict[str, str]]:
    """What the audit page shows a member: AuditState.load's columns, from the same read functions."""
    assert membership.member_of(discussion_id, reader) is not None
    return [
        {
            "actor": e.actor_name,
            "action": e.action,
            "target": e.target,
            "previous": e.previous_value or "",
            "new": e.new_value or "",
        }
        for e in audit.trail(discussion_id)
    ]


def _event_stream(discussion_id: int) -> list[str]:
    """Every persisted event as the follower and GET /api/discussions/{id}/events send it."""
    with session_scope() as s:
        return [e.model_dump_json() for e in read_events(s, discussion_id)]


def test_an_open_poll_shows_who_voted_never_how(room):
    did, poll, p = room
    polls.cast_vote(did, poll.id, p["pat"], ["B", "A", "C"], "first", reason="first thoughts")
    polls.cast_vote(did, poll.id, p["pat"], ["C", "A", "B"], "second", reason=REASON)

    rows = _audit_page_rows(did, p["olive"])
    votes = [r for r in rows if r["action"].startswith("vote.")]
    assert [(r["actor"], r["action"]) for r in votes] == [("Pat", "vote.cast"), ("Pat", "vote.change")]
    assert all(r["target"] == "Which database?" for r in votes)
    for r in votes:  # that Pat voted and changed their mind is public; the ballots are not
        assert r["previous"] == "" and r["new"] == "", r
    for r in rows:
        shown = " ".join(r.values())
        assert "C > A > B" not in shown and "B > A > C" not in shown and REASON not in shown

    stream = _event_stream(did)
    cast = [e for e in stream if '"type":"vote_cast"' in e]
    assert len(cast) == 2
    for e in cast:
        assert '"ranking"' not in e and '"reason"' not in e
    assert not any(REASON in e or "first thoughts" in e for e in stream)
    assert not any('"type":"poll_closed"' in e for e in stream)
    with session_scope() as s:  # nor is the count stored anywhere a reader could reach before the close
        assert s.get(Poll, poll.id).result is None


def test_the_ballots_are_published_when_the_poll_closes(room):
    did, poll, p = room
    polls.cast_vote(did, poll.id, p["pat"], ["B", "A", "C"], "first")
    polls.cast_vote(did, poll.id, p["pat"], ["C", "A", "B"], "second", reason=REASON)
    with session_scope() as s:
        architect = s.exec(
            select(Participant).where(Participant.discussion_id == did, Participant.kind == "agent")
        ).one()
        polls.record_vote(s, s.get(Poll, poll.id), architect, ["A", "B", "C"], client_id="agent", reason="joins")
    with session_scope() as s:
        closed = polls.close(s, s.get(Poll, poll.id))
    assert closed is not None

    # The breakdown, as today: every current ballot with its ranking and reason, in the event and on the poll.
    breakdown = {v["voter"]: (v["ranking"], v["reason"]) for v in closed.result["voters"]}
    assert breakdown == {"Pat": (["C", "A", "B"], REASON), "Architect": (["A", "B", "C"], "joins")}
    assert any('"type":"poll_closed"' in e and REASON in e for e in _event_stream(did))
    assert polls.get(poll.id).result["voters"] == closed.result["voters"]

    # The people's ballots are unsealed in the audit trail, each change with the ballot it replaced.
    revealed = [r for r in _audit_page_rows(did, p["olive"]) if r["action"] == "vote.revealed"]
    assert [(r["actor"], r["target"]) for r in revealed] == [("Pat", "Which database?")] * 2
    assert revealed[0]["previous"] == "" and revealed[0]["new"] == "MongoDB > PostgreSQL > DynamoDB"
    assert revealed[1]["previous"] == revealed[0]["new"]
    assert revealed[1]["new"] == f"DynamoDB > PostgreSQL > MongoDB ({REASON})"


def test_a_poll_closed_twice_reveals_each_ballot_once(room):
    did, poll, p = room
    polls.cast_vote(did, poll.id, p["pat"], ["A", "B", "C"], "only")
    with session_scope() as s:
        assert polls.close(s, s.get(Poll, poll.id)) is not None
    with session_scope() as s:
        assert polls.close(s, s.get(Poll, poll.id)) is None
    assert [r["action"] for r in _audit_page_rows(did, p["sam"])].count("vote.revealed") == 1
