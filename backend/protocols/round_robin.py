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

    @property
    def key(self) -> str:
        return f"{self.round}:{self.speaker.id}"  # type: ignore[attr-defined]


class RoundRobin:
    """Agents speak in their configured order, each once per round."""

    name = "round_robin"

    def schedule(self, agents: Sequence[A], rounds: int) -> Iterator[Turn]:
        """Every turn of the discussion, in speaking order."""
        for r in range(1, rounds + 1):
            for agent in agents:
                yield Turn(round=r, speaker=agent)

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
