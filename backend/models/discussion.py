"""Discussion: one question, its protocol settings, its status and the head of its event log."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlmodel import Field, SQLModel

from backend.models.base import timestamp_field


class DiscussionStatus(StrEnum):
    """Where a discussion is in its life."""

    DRAFT = "draft"  # created, agents not run yet
    RUNNING = "running"  # a runner owns it (or will resume it after a restart)
    PAUSED = "paused"  # stopped by a budget or a human; Run Agents continues it
    COMPLETED = "completed"
    FAILED = "failed"  # every agent turn failed


class Discussion(SQLModel, table=True):
    """A discussion room."""

    id: int | None = Field(default=None, primary_key=True)
    topic: str = Field(max_length=2000)
    protocol: str = Field(default="round_robin", max_length=40)
    rounds: int = Field(default=2)
    # Round 1 as independent opening statements: every agent answers the question at once, unseen by the others.
    parallel_openings: bool = Field(default=False)
    max_tokens_per_turn: int = Field(default=300)
    # Budgets are checked before every model call, so the overshoot is at most one call's max_tokens.
    budget_tokens: int | None = Field(default=None)
    budget_usd: float | None = Field(default=None)
    pause_reason: str | None = Field(default=None, max_length=500)
    status: str = Field(default=DiscussionStatus.DRAFT, max_length=20, index=True)
    # Highest event seq appended so far; bumped in the same transaction as the insert, so seqs are gapless.
    last_seq: int = Field(default=0)
    created_by: str = Field(default="", max_length=120)
    created_at: datetime = timestamp_field()
    updated_at: datetime = timestamp_field()
