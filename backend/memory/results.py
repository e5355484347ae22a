"""What a memory lookup answers, as plain data: kept apart from the lookup itself so the pages, routes and the CLI
can name these types without loading numpy and the vector index at start-up (the first lookup loads them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class Remembered:
    """A remembered result as a person is shown it: what, when, by whom, how close, what reuse saves."""

    entry_id: int
    discussion_id: int
    question: str
    context: dict
    outcome: str
    kind: str
    decided_by: str
    decided_at: datetime
    similarity: float
    saves_usd: float
    saves_tokens: int
    saves_seconds: float
    reasons: tuple[str, ...] = ()

    @property
    def match_percent(self) -> int:
        return int(self.similarity * 100)


@dataclass(frozen=True)
class Recall:
    """What memory has for a question: a hit to reuse (or None), related decisions, and near-misses it refused."""

    hit: Remembered | None = None
    related: list[Remembered] = field(default_factory=list)
    refused: list[Remembered] = field(default_factory=list)
    unavailable: str | None = None  # why memory could not look (model did not load, switched off)
    seconds: float = 0.0
