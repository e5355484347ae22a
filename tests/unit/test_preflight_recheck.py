"""Live preflight: which room events make the checklist check again, the debounce, and when a check is stale.

The rule lives in backend/services/preflight.py (plain Python); the room's tab only schedules the check. These tests
drive the rule with plain events and a clock moved by hand, the way the tab's follower does."""

from __future__ import annotations

import typing

import pytest

from backend.events.schema import (
    BudgetChanged,
    DiscussionCreated,
    DiscussionPaused,
    HumanMessagePosted,
    MemberChanged,
    Presence,
    RoomEvent,
    RunStarted,
    TokenDelta,
    TurnCompleted,
    TurnStarted,
    Typing,
    VoteCast,
)
from backend.services.preflight import RECHECK_DEBOUNCE_S, Recheck, recheck_seq, stale
from maestro_ui.projection.room import RoomView, project

D = 7

# Written out here, not imported: a change to the rule must change this test too.
CHANGE_THE_CHECKLIST = {DiscussionCreated, MemberChanged, BudgetChanged, DiscussionPaused}
EVERY_EVENT = typing.get_args(typing.get_args(RoomEvent)[0])


def joined(seq: int, pid: int = 12, role: str = "must_approve") -> MemberChanged:
    return MemberChanged(discussion_id=D, seq=seq, participant_id=pid, name="Cto", username="cto", role=role)


def chatter(seq: int) -> list:
    """What a busy room sends most: streamed text, presence, typing, a message, a turn."""
    return [
        TokenDelta(discussion_id=D, start_seq=seq, participant_id=1, offset=0, text="Postgres"),
        Presence(discussion_id=D, participant_id=12, state="online"),
        Typing(discussion_id=D, participant_id=12, name="Cto"),
        HumanMessagePosted(discussion_id=D, seq=seq, message_id=seq, author_name="Sam", content="hello"),
    ]


@pytest.mark.parametrize("cls", EVERY_EVENT, ids=lambda c: c.__name__)
def test_each_event_type_either_changes_the_checklist_or_not(cls):
    event = cls.model_construct(discussion_id=D, seq=5)
    assert recheck_seq([event]) == (5 if cls in CHANGE_THE_CHECKLIST else 0)


def test_tokens_messages_votes_and_turns_never_trigger_a_check():
    events = [
        *chatter(3),
        TurnStarted(discussion_id=D, seq=4, message_id=1, participant_id=1, author_name="Architect", round=1),
        TurnCompleted(discussion_id=D, seq=5, message_id=1, participant_id=1, start_seq=4, content="Postgres."),
        VoteCast(discussion_id=D, seq=6, poll_id=1, participant_id=12, voter_name="Cto", voter_kind="human"),
        RunStarted(discussion_id=D, seq=7),
    ]
    assert recheck_seq(events) == 0


def test_the_last_event_that_matters_gives_the_seq_to_catch_up_with():
    budget = BudgetChanged(discussion_id=D, seq=9, budget_tokens=50_000, changed_by="Sam")
    events = [joined(4), *chatter(5), budget, *chatter(10)]
    assert recheck_seq(events) == 9


@pytest.mark.parametrize(
    ("status", "changed", "checked", "expected"),
    [
        ("draft", 5, 4, True),  # a person joined after the check read the room
        ("paused", 5, 4, True),
        ("draft", 5, 5, False),  # the check already saw it
        ("draft", 4, 9, False),
        ("draft", 0, 0, False),  # nothing changed
        ("running", 5, 4, False),  # no checklist shown while the agents run
        ("completed", 5, 4, False),
    ],
)
def test_stale(status, changed, checked, expected):
    assert stale(status, changed, checked) is expected


def test_several_changes_within_a_second_cause_one_check():
    recheck = Recheck()
    recheck.changed(100.0)
    recheck.changed(100.3)
    assert not recheck.due(100.5)
    recheck.changed(100.9)
    assert recheck.due(100.0 + RECHECK_DEBOUNCE_S)
    assert not recheck.due(101.5)  # once per wait
    assert not recheck.due(500.0)


def test_nothing_is_due_without_a_change_and_a_later_change_waits_again():
    recheck = Recheck(debounce_s=1.0)
    assert not recheck.due(0.0) and not recheck.due(60.0)
    recheck.changed(61.0)
    assert not recheck.due(61.9)
    assert recheck.due(62.0)
    recheck.changed(70.0)
    assert not recheck.due(70.5) and recheck.due(71.2)


class Tab:
    """A room tab as the follower drives it: batches in, checks out (one at a time; a check in flight that ends
    stale runs once more), with time moved by hand."""

    def __init__(self, status: str = "draft", checked_seq: int = 1) -> None:
        self.view = RoomView(status=status, last_seq=checked_seq)
        self.recheck = Recheck()
        self.changed_seq, self.checked_seq = 0, checked_seq
        self.checks: list[float] = []  # when each check started
        self.in_flight: float | None = None

    def batch(self, now: float, events: list) -> None:
        persisted = [e for e in events if not isinstance(e, TokenDelta | Presence | Typing)]
        self.view = project(self.view, persisted).view
        if seq := recheck_seq(events):
            self.changed_seq = max(self.changed_seq, seq)
            self.recheck.changed(now)
        self.tick(now)

    def tick(self, now: float) -> None:
        due = self.recheck.due(now)
        if due and self.in_flight is None and stale(self.view.status, self.changed_seq, self.checked_seq):
            self.start(now)

    def start(self, now: float) -> None:
        self.in_flight = now
        self.checks.append(now)
        self.reads = self.view.last_seq  # what this check sees

    def finish(self, now: float) -> None:
        self.checked_seq, self.in_flight = self.reads, None
        if stale(self.view.status, self.changed_seq, self.checked_seq):
            self.start(now)


def test_a_streaming_room_never_checks_and_three_joins_in_a_second_check_once():
    tab = Tab()
    t, seq = 0.0, 1
    for _ in range(50):  # five seconds of chatter: messages, streamed text, presence
        t, seq = t + 0.1, seq + 1
        tab.batch(t, chatter(seq))
    assert tab.checks == []
    for pid in (12, 13, 14):
        t, seq = t + 0.3, seq + 1
        tab.batch(t, [joined(seq, pid)])
    for _ in range(20):
        t += 0.1
        tab.tick(t)
    assert len(tab.checks) == 1
    tab.finish(t)
    assert tab.in_flight is None and tab.checked_seq == seq
    for _ in range(30):
        t, seq = t + 0.1, seq + 1
        tab.batch(t, chatter(seq))
    assert len(tab.checks) == 1


def test_a_change_while_a_check_runs_checks_once_more_when_it_ends():
    tab = Tab()
    tab.batch(0.0, [joined(2)])
    tab.tick(1.0)
    assert tab.checks == [1.0]
    tab.batch(1.2, [BudgetChanged(discussion_id=D, seq=3, budget_tokens=1000)])
    tab.tick(2.5)  # due, but a check is in flight: no second one
    assert tab.checks == [1.0]
    tab.finish(3.0)  # it read seq 2; the budget came at 3
    assert tab.checks == [1.0, 3.0]
    tab.finish(3.5)
    assert tab.in_flight is None and tab.checked_seq == 3


def test_a_running_room_does_not_check_until_it_pauses():
    tab = Tab(status="running")
    tab.batch(0.0, [joined(2)])
    tab.tick(2.0)
    assert tab.checks == []
    tab.batch(3.0, [DiscussionPaused(discussion_id=D, seq=3, reason="Token budget reached.")])
    tab.tick(4.0)
    assert tab.checks == [4.0]


def test_a_budget_change_shows_in_every_tab_budget_form():
    view = project(
        RoomView(status="paused"), [BudgetChanged(discussion_id=D, seq=4, budget_tokens=50_000, budget_usd=2.5)]
    )
    assert (view.view.budget_tokens, view.view.budget_usd) == ("50000", "2.5")
    cleared = project(view.view, [BudgetChanged(discussion_id=D, seq=5)]).view
    assert (cleared.budget_tokens, cleared.budget_usd, cleared.last_seq) == ("", "", 5)
