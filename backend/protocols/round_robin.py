"""Round-robin: the question opens, then every agent speaks in turn, for R rounds."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

A = TypeVar("A")


@dataclass(frozen=True, slots=True)
class Turn:
    """One scheduled agent turn; its key identifies the model call across restarts."""

    round: int
    speaker: object
    tag: str = ""  # set for an extra turn (an @mention, a synthesis): keyed by the request, not the round
    cue: str = ""  # what this turn is asked to do, when the protocol decides it per turn
    stance: str | None = None  # debate: the side this agent argues

    @property
    def key(self) -> str:
        if self.speaker is None:  # an open slot: the protocol picks its speaker when it comes up
            return self.tag
        if self.tag:
            return f"{self.tag}:{self.speaker.id}"  # type: ignore[attr-defined]
        return f"{self.round}:{self.speaker.id}"  # type: ignore[attr-defined]


class RoundRobin:
    """Agents speak in their configured order, each once per round."""

    name = "round_robin"
    label = "Round-robin"
    summary = "Every agent speaks in turn, once per round."

    def schedule(self, agents: Sequence[A], rounds: int) -> Iterator[Turn]:
        """Every turn of the discussion, in speaking order."""
        for r in range(1, rounds + 1):
            for agent in agents:
                yield Turn(round=r, speaker=agent)

    def mention_cue(self, name: str, asked_by: str) -> str:
        """The cue for an extra turn a person asked for with @name."""
        return (
            f"You are {name}. {asked_by} addressed you directly in the room: answer them now, briefly. "
            "Write only your own contribution."
        )

    def speaker_cue(self, name: str, round_no: int, rounds: int) -> str:
        """The short instruction appended after the transcript for the agent about to speak."""
        if round_no == 1:
            return (
                f"You are {name}. Give your view on the question above in your own voice (round 1 of {rounds}). "
                "Write only your own contribution."
            )
        return (
            f"You are {name}. Round {round_no} of {rounds}: respond to what the others said — agree, disagree or "
            "refine, naming who you answer. Write only your own contribution."
        )
