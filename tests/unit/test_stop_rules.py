"""Stop rules compose like autogen's termination conditions: `|` stops when either does, `&` when both do; each
answers with the reason the room is shown and whether the run pauses (to be continued) or its rounds end."""

from __future__ import annotations

from backend.orchestrator.stop_rules import (
    AllOf,
    AnyOf,
    BudgetSpent,
    ConsensusReached,
    MaxRounds,
    Progress,
    Stop,
    StoppedByPerson,
    default_rule,
)


def test_max_rounds_stops_once_the_last_round_is_done():
    rule = MaxRounds(3)
    assert rule.check(Progress(rounds_done=2)) is None
    assert rule.check(Progress(rounds_done=3)) == Stop("All 3 rounds are done.")


def test_consensus_stops_the_rounds_only_once_the_round_it_was_reached_after_is_done():
    rule = ConsensusReached()
    assert rule.check(Progress(rounds_done=2)) is None
    assert rule.check(Progress(rounds_done=1, consensus_round=2)) is None  # a resume still owes round 2
    stop = rule.check(Progress(rounds_done=2, consensus_round=2))
    assert stop is not None and not stop.pauses and "round 2" in stop.reason


def test_a_budget_or_a_person_pauses_the_run_with_their_reason():
    assert BudgetSpent().check(Progress()) is None
    assert BudgetSpent().check(Progress(budget_reason="Budget of $1 reached.")) == Stop("Budget of $1 reached.", True)
    assert StoppedByPerson().check(Progress()) is None
    assert StoppedByPerson().check(Progress(stopped_by="Stopped by Ada.")) == Stop("Stopped by Ada.", pauses=True)


def test_or_stops_when_either_does_with_the_first_reason_in_the_order_written():
    rule = StoppedByPerson() | MaxRounds(2)
    assert isinstance(rule, AnyOf)
    assert rule.check(Progress(rounds_done=1)) is None
    assert rule.check(Progress(rounds_done=2)) == Stop("All 2 rounds are done.")
    both = rule.check(Progress(rounds_done=2, stopped_by="Stopped."))
    assert both == Stop("Stopped.", pauses=True)


def test_and_stops_only_when_both_do_and_joins_their_reasons():
    rule = MaxRounds(2) & ConsensusReached()
    assert isinstance(rule, AllOf)
    assert rule.check(Progress(rounds_done=2)) is None
    assert rule.check(Progress(rounds_done=1, consensus_round=1)) is None
    stop = rule.check(Progress(rounds_done=2, consensus_round=2))
    assert stop is not None and stop.reason == "All 2 rounds are done.; Consensus was reached after round 2."
    paused = (MaxRounds(1) & BudgetSpent()).check(Progress(rounds_done=1, budget_reason="Cap reached."))
    assert paused is not None and paused.pauses


def test_compositions_flatten_and_nest():
    rule = StoppedByPerson() | BudgetSpent() | (MaxRounds(3) & ConsensusReached())
    assert isinstance(rule, AnyOf) and len(rule.rules) == 3
    assert rule.check(Progress(rounds_done=3)) is None  # max rounds alone is not enough for the & branch
    assert rule.check(Progress(rounds_done=3, consensus_round=2)) is not None


def test_the_default_rule_puts_a_person_before_the_budget_before_the_rounds():
    rule = default_rule(3)
    assert rule.check(Progress(rounds_done=2)) is None
    assert rule.check(Progress(rounds_done=3)) == Stop("All 3 rounds are done.")
    assert rule.check(Progress(rounds_done=1, consensus_round=1)).reason.startswith("Consensus")  # type: ignore[union-attr]
    everything = Progress(rounds_done=3, consensus_round=3, budget_reason="Budget.", stopped_by="Stopped.")
    assert rule.check(everything) == Stop("Stopped.", pauses=True)
    assert rule.check(Progress(budget_reason="Budget.")) == Stop("Budget.", pauses=True)
