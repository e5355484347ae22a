"""When a discussion's run stops, as small rules that compose with `|` (either) and `&` (both), like autogen's
termination conditions.

The engine keeps one `Progress` of the run and asks one composed rule after each step; the rule answers with a
`Stop` (the reason to show) or None. A stop either ends the rounds (the decision phase and the close follow) or
pauses the run (Run Agents continues it later): `Stop.pauses` says which.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass


@dataclass
class Progress:
    """What the run knows when it asks whether to stop."""

    rounds_done: int = 0  # the last round whose turns (and round-end steps) are done
    consensus_round: int | None = None  # the round after which enough agreed to end the rounds early
    budget_reason: str | None = None  # why the next call could pass a budget or a daily cap
    stopped_by: str | None = None  # the reason a person gave (or "Stopped.") when they pressed Stop


@dataclass(frozen=True, slots=True)
class Stop:
    """A rule's answer: why the run stops, and whether it pauses (to be continued) rather than ends its rounds."""

    reason: str
    pauses: bool = False


class StopRule(ABC):
    """A condition over the run's progress; `a | b` stops when either does, `a & b` when both do."""

    @abstractmethod
    def check(self, progress: Progress) -> Stop | None:
        """The stop this rule calls for now, or None."""

    def __or__(self, other: StopRule) -> StopRule:
        return AnyOf(self, other)

    def __and__(self, other: StopRule) -> StopRule:
        return AllOf(self, other)


class AnyOf(StopRule):
    """Stops when any of its rules does, with the first one's reason (in the order written)."""

    def __init__(self, *rules: StopRule) -> None:
        self.rules = [r for rule in rules for r in (rule.rules if isinstance(rule, AnyOf) else [rule])]

    def check(self, progress: Progress) -> Stop | None:
        return next((stop for rule in self.rules if (stop := rule.check(progress)) is not None), None)


class AllOf(StopRule):
    """Stops only when every one of its rules does; the reasons are joined, and it pauses if any would."""

    def __init__(self, *rules: StopRule) -> None:
        self.rules = [r for rule in rules for r in (rule.rules if isinstance(rule, AllOf) else [rule])]

    def check(self, progress: Progress) -> Stop | None:
        stops = [rule.check(progress) for rule in self.rules]
        if not stops or any(stop is None for stop in stops):
            return None
        return Stop("; ".join(s.reason for s in stops if s), pauses=any(s.pauses for s in stops if s))


class MaxRounds(StopRule):
    """The rounds are over once the last planned round is done."""

    def __init__(self, rounds: int) -> None:
        self.rounds = rounds

    def check(self, progress: Progress) -> Stop | None:
        if progress.rounds_done >= self.rounds:
            return Stop(f"All {self.rounds} rounds are done.")
        return None


class ConsensusReached(StopRule):
    """The rounds end early once enough participants back one proposal (a discussion that stops on consensus) and
    the round they agreed after is done (a resume may still owe a retried turn of it)."""

    def check(self, progress: Progress) -> Stop | None:
        agreed = progress.consensus_round
        if agreed is not None and progress.rounds_done >= agreed:
            return Stop(f"Consensus was reached after round {progress.consensus_round}.")
        return None


class BudgetSpent(StopRule):
    """The run pauses before a call that could pass a budget or a daily cap; raising it and Run Agents continue."""

    def check(self, progress: Progress) -> Stop | None:
        return Stop(progress.budget_reason, pauses=True) if progress.budget_reason else None


class StoppedByPerson(StopRule):
    """The run pauses when a person pressed Stop; Run Agents continues it."""

    def check(self, progress: Progress) -> Stop | None:
        return Stop(progress.stopped_by, pauses=True) if progress.stopped_by else None


def default_rule(rounds: int) -> StopRule:
    """What stops every discussion: a person, the budget, consensus (when it stops on it), or the last round."""
    return StoppedByPerson() | BudgetSpent() | ConsensusReached() | MaxRounds(rounds)
