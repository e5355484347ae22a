"""Structured debate: agents argue for / against / neutral, then one synthesises.

Stances are dealt in speaking order (for, against, neutral, for, ...), so each (agent, stance) pair is unique and a
resumed debate deals the same stances. A stance never forces an agent to defend a fatal flaw: the cue tells it to
say so plainly when it finds one. After the last round the first neutral agent (or the first agent) writes the
synthesis, a turn keyed by its tag (and the last round) so a resume runs it once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

from backend.protocols.base import Protocol, Turn

A = TypeVar("A")

STANCES = ("for", "against", "neutral")
SIDE = {
    "for": "argue FOR the strongest answer to the question",
    "against": "argue AGAINST the leading answer: find its weaknesses and a better alternative",
    "neutral": "weigh both sides as a neutral judge",
}


def stances(agents: Sequence[A]) -> list[tuple[A, str]]:
    """Each agent with its stance, dealt in speaking order."""
    return [(agent, STANCES[i % len(STANCES)]) for i, agent in enumerate(agents)]


class Debate(Protocol):
    """For / against / neutral rounds, then a synthesis."""

    name = "debate"
    label = "Structured debate"
    summary = "Agents argue for, against or as neutral judges; then one synthesises the debate."

    def schedule(self, agents: Sequence[A], rounds: int) -> Iterator[Turn]:
        dealt = stances(agents)
        for r in range(1, rounds + 1):
            for agent, stance in dealt:
                name = agent.name  # type: ignore[attr-defined]
                yield Turn(round=r, speaker=agent, cue=self.stance_cue(name, stance, r, rounds), stance=stance)
        if dealt:
            judge = next((a for a, s in dealt if s == "neutral"), dealt[0][0])
            # Keyed by the last round, so rounds added later ("more discussion") end in a synthesis of their own.
            yield Turn(round=rounds, speaker=judge, tag=f"synthesis{rounds}", cue=self.synthesis_cue(judge.name))  # type: ignore[attr-defined]

    def stance_cue(self, name: str, stance: str, round_no: int, rounds: int) -> str:
        return (
            f"You are {name}. This is a structured debate, round {round_no} of {rounds}: {SIDE[stance]}. "
            "Answer the others by name. Argue your side honestly: if you find a fatal flaw in it, say so plainly "
            "instead of defending it. Write only your own contribution."
        )

    def synthesis_cue(self, name: str) -> str:
        return (
            f"You are {name}. The debate is over: write its synthesis. Give the strongest argument of each side, "
            "what everyone agrees on, what is still open, and your recommendation. Be brief."
        )
