"""What every protocol answers for the engine: who speaks when (the schedule), what each turn is asked (cues), who
fills an open slot, and whether its plan is fixed by the rounds the discussion was created with.

The engine asks only these questions, so a new protocol is one module implementing `Protocol`; it never probes a
protocol for optional attributes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, TypeVar

if TYPE_CHECKING:
    from backend.providers.base import ModelProvider, TranscriptEntry, Usage

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


class Protocol(ABC):
    """A discussion protocol: the schedule of turns and the cue each turn gets."""

    name: ClassVar[str]
    label: ClassVar[str]
    summary: ClassVar[str]
    # Whether the schedule follows the rounds the discussion was created with (staged: its stages), not only the
    # rounds it has now ("more discussion" adds rounds). The engine sets `planned` before scheduling when True.
    follows_plan: ClassVar[bool] = False
    planned: int | None = None

    @abstractmethod
    def schedule(self, agents: Sequence[A], rounds: int) -> Iterator[Turn]:
        """Every turn of the discussion, in speaking order; a turn whose speaker is None is an open slot."""

    def speaker_cue(self, name: str, round_no: int, rounds: int) -> str:
        """The short instruction appended after the transcript for the agent about to speak (when its turn has no
        cue of its own)."""
        if round_no == 1:
            return (
                f"You are {name}. Give your view on the question above in your own voice (round 1 of {rounds}). "
                "Write only your own contribution."
            )
        return (
            f"You are {name}. Round {round_no} of {rounds}: respond to what the others said — agree, disagree or "
            "refine, naming who you answer. Write only your own contribution."
        )

    def mention_cue(self, name: str, asked_by: str) -> str:
        """The cue for an extra turn a person asked for with @name."""
        return (
            f"You are {name}. {asked_by} addressed you directly in the room: answer them now, briefly. "
            "Write only your own contribution."
        )

    def next_cue(self, name: str, round_no: int, rounds: int, reason: str) -> str:
        """The cue for the agent chosen to fill an open slot (`reason`: why it was chosen, maybe empty)."""
        return self.speaker_cue(name, round_no, rounds)

    async def choose(
        self, provider: ModelProvider, model: str, transcript: list[TranscriptEntry], names: list[str]
    ) -> tuple[str, str, Usage | None, int]:
        """(speaker, reason, usage, latency ms) for an open slot. Only protocols that schedule open slots are
        asked; the others never are."""
        raise NotImplementedError(f"The {self.name} protocol schedules no open slots.")
