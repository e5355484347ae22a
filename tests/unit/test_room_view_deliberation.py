"""The deliberation panel's projection (maestro_ui/projection/deliberation.py): consensus, the vote, the decision
card and its sign-off, as plain data; a replayed log equals the same events applied one at a time."""

from __future__ import annotations

from dataclasses import replace

from backend.events.schema import (
    ConsensusUpdated,
    DecisionProposed,
    DecisionSignedOff,
    PollClosed,
    PollOpened,
    VoteCast,
)
from backend.models.base import utcnow
from maestro_ui.projection.deliberation import DeliberationView, project_deliberation

NOW = utcnow()
D = 7
OPTIONS = [{"id": "a", "text": "PostgreSQL"}, {"id": "b", "text": "MongoDB"}]


def report(arch: str, sec: str, ratio: float) -> dict:
    return {
        "agreements": ["ACID matters"],
        "disagreements": ["cost"],
        "proposals": [{"id": "p1", "text": "Use PostgreSQL", "author": "Architect", "supporters": ["Security"]}],
        "concerns": ["ops"],
        "trade_offs": [],
        "agreement_ratio": ratio,
        "stances": [
            {"participant": "Architect", "position": arch, "proposal_id": "p1", "summary": "fits"},
            {"participant": "Security", "position": sec},
        ],
    }


def poll_opened(seq: int = 4, rule: str = "plurality") -> PollOpened:
    return PollOpened(
        discussion_id=D,
        seq=seq,
        poll_id=1,
        question="Which?",
        rule=rule,
        options=OPTIONS,
        voters=["Sam", "Ann"],
        deadline_at=NOW,
    )


CARD = {
    "id": 3,
    "title": "Use PostgreSQL",
    "status": "decided",
    "chosen_option": "PostgreSQL",
    "support": "2 of 2 chose PostgreSQL",
    "rationale": "ACID.",
    "dissent": [{"who": "Ann", "preferred": "MongoDB", "why": "schema"}],
    "concerns": ["ops"],
    "breakdown": [{"voter": "Sam", "kind": "human", "weight": 2, "ranking_text": ["PostgreSQL"], "reason": ""}],
    "action_plan": [{"step": "Provision", "owner": "Ops"}],
    "options": OPTIONS,
    "signoff": None,
}


def test_consensus_reports_show_where_each_stands_and_who_moved():
    view = project_deliberation(
        DeliberationView(),
        [
            ConsensusUpdated(discussion_id=D, seq=1, round=1, report=report("support", "oppose", 0.5)),
            ConsensusUpdated(discussion_id=D, seq=2, round=2, report=report("support", "support", 1.0)),
        ],
    )
    assert view.has_consensus and view.agreement_pct == 100
    assert view.proposals == ["Use PostgreSQL — Architect (supported by Security)"]
    assert view.stances[0]["about"] == "Use PostgreSQL" and view.stances[1]["was"] == "oppose"
    assert view.consensus_history == [
        "round 1: 50 % · 1 agreed, 1 disputed",
        "round 2: 100 % · 1 agreed, 1 disputed · Security: oppose → support",
    ]
    failed = project_deliberation(view, [ConsensusUpdated(discussion_id=D, seq=3, round=3, error="bad JSON")])
    assert failed.consensus_error == "Consensus detection failed: bad JSON" and failed.has_consensus


def test_poll_opened_votes_counted_and_closed_with_the_result():
    view = project_deliberation(DeliberationView(), [poll_opened()])
    assert (view.poll_id, view.poll_open, view.poll_ranked) == (1, True, False)
    assert [o["text"] for o in view.ballot] == ["PostgreSQL", "MongoDB"] and view.voters == ["Sam", "Ann"]
    vote = VoteCast(discussion_id=D, seq=5, poll_id=1, participant_id=9, voter_name="Sam", voter_kind="human")
    view = project_deliberation(view, [vote, vote.model_copy(update={"seq": 6, "changed": True})])
    assert view.voted == ["Sam"]
    other_poll = VoteCast(discussion_id=D, seq=7, poll_id=2, participant_id=8, voter_name="Ann", voter_kind="human")
    assert project_deliberation(view, [other_poll]).voted == ["Sam"]
    result = {
        "status": "tie",
        "tied": ["a", "b"],
        "rule": "plurality",
        "options": OPTIONS,
        "voters": [{"voter": "Sam", "kind": "human", "ranking": ["a"]}],
    }
    closed = project_deliberation(view, [PollClosed(discussion_id=D, seq=8, poll_id=1, result=result)])
    assert not closed.poll_open and closed.result_line == "Tie: PostgreSQL, MongoDB"
    assert closed.result_rows == [{"voter": "Sam", "kind": "human", "weight": "1", "ballot": "a", "reason": ""}]


def test_a_schulze_count_shows_its_pairwise_matrix():
    view = project_deliberation(DeliberationView(), [poll_opened(rule="schulze")])
    assert view.poll_ranked
    result = {
        "status": "winner",
        "winner": "a",
        "rule": "schulze",
        "options": OPTIONS,
        "voters": [],
        "pairwise": {"a": {"a": 0, "b": 2}, "b": {"a": 1, "b": 0}},
    }
    view = project_deliberation(view, [PollClosed(discussion_id=D, seq=5, poll_id=1, result=result)])
    assert view.result_line == "PostgreSQL wins (schulze)"
    assert view.matrix_header == ["PostgreSQL", "MongoDB"]
    assert view.matrix == [{"option": "PostgreSQL", "cells": ["—", "2"]}, {"option": "MongoDB", "cells": ["1", "—"]}]


def test_a_decision_card_and_each_sign_off():
    view = project_deliberation(
        DeliberationView(), [DecisionProposed(discussion_id=D, seq=9, decision_id=3, decision=CARD)]
    )
    assert (view.decision_id, view.decision_title, view.decision_option) == (3, "Use PostgreSQL", "PostgreSQL")
    assert view.ballots_on_card and view.decision_votes[0]["weight"] == "2"
    assert view.dissent == [{"who": "Ann", "preferred": "MongoDB", "why": "schema"}]
    assert view.action_plan == [{"step": "Provision", "owner": "Ops"}] and view.signoff == ""

    def signed(outcome: str, **kw) -> DeliberationView:
        event = DecisionSignedOff(discussion_id=D, seq=10, decision_id=3, outcome=outcome, actor_name="CTO", **kw)
        return project_deliberation(view, [event])

    approved = signed("approved", conditions="load test first")
    assert (approved.signoff, approved.signoff_detail) == ("Approved by CTO", "Conditions: load test first")
    overridden = signed("overridden", override_option="MongoDB", reason="the team knows it")
    assert overridden.signoff_detail == "Chose MongoDB instead of PostgreSQL: the team knows it"
    assert overridden.decision_status == "decided"
    more = signed("more_discussion", question="What about cost?")
    assert (more.signoff_outcome, more.decision_status) == ("more_discussion", "in_progress")
    other = DecisionSignedOff(discussion_id=D, seq=10, decision_id=4, outcome="approved", actor_name="CTO")
    assert project_deliberation(view, [other]).signoff == ""  # not this card's


def test_a_card_that_was_signed_already_shows_its_sign_off():
    card = {
        **CARD,
        "signoff": {
            "outcome": "approved",
            "by": "CTO",
            "conditions": "",
            "override_option": None,
            "reason": "",
            "question": "",
        },
    }
    view = project_deliberation(
        DeliberationView(), [DecisionProposed(discussion_id=D, seq=9, decision_id=3, decision=card)]
    )
    assert (view.signoff, view.signoff_detail) == ("Approved by CTO", "")


def test_a_new_poll_after_more_discussion_starts_clean():
    view = project_deliberation(
        DeliberationView(), [poll_opened(), DecisionProposed(discussion_id=D, seq=5, decision_id=3, decision=CARD)]
    )
    view = project_deliberation(replace(view, my_vote="PostgreSQL"), [poll_opened(seq=6)])
    assert (view.my_vote, view.voted, view.result_line, view.ballots_on_card) == ("", [], "", False)


def test_a_replayed_log_equals_the_same_events_applied_live_and_leaves_its_input_alone():
    log = [
        ConsensusUpdated(discussion_id=D, seq=1, round=1, report=report("support", "oppose", 0.5)),
        ConsensusUpdated(discussion_id=D, seq=2, round=2, report=report("support", "support", 1.0)),
        poll_opened(3),
        VoteCast(discussion_id=D, seq=4, poll_id=1, participant_id=9, voter_name="Sam", voter_kind="human"),
        DecisionProposed(discussion_id=D, seq=5, decision_id=3, decision=CARD),
        DecisionSignedOff(discussion_id=D, seq=6, decision_id=3, outcome="approved", actor_name="CTO"),
    ]
    start = DeliberationView()
    replayed = project_deliberation(start, log)
    live = start
    for event in log:
        live = project_deliberation(live, [event])
    assert replayed == live
    assert start == DeliberationView()
