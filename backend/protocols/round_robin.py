"""Round-robin: the question opens, then every agent speaks in turn, for R rounds."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

from backend.protocols.base import Protocol, Turn

__all__ = ["RoundRobin", "Turn"]

A = TypeVar("A")


class RoundRobin(Protocol):
    """Agents speak in their configured order, each once per round."""

    name = "round_robin"
    label = "Round-robin"
    summary = "Every agent speaks in turn, once per round."

    def schedule(self, agents: Sequence[A], rounds: int) -> Iterator[Turn]:
        """Every turn of the discussion, in speaking order."""
        for r in range(1, rounds + 1):
            for agent in agents:
                yield Turn(round=r, speaker=agent)
