"""Discussion: one question, its protocol settings, its status and the head of its event log."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from backend.models.base import timestamp_field


class DiscussionStatus(StrEnum):
    """Where a discussion is in its life."""

    DRAFT = "draft"  # created, agents not run yet
    RUNNING = "running"  # a runner owns it (or will resume it after a restart)
    PAUSED = "paused"  # stopped by a budget or a human; Run Agents continues it
    AWAITING_APPROVAL = "awaiting_approval"  # a decision is drafted; the must-approve person has the last word
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
    # Humans in the loop: a feedback prompt to contributors after each agent round, and protocol checkpoints
    # (typed prompts asked after a given round; see backend.humans.checkpoints).
    human_turns: bool = Field(default=False)
    checkpoints: list[dict] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # Deciding: after the rounds, a poll over `vote_options` (or the proposals consensus detection found) counted
    # with `vote_rule`; None means the discussion ends without a vote. Humans have `vote_deadline_s` to vote.
    vote_rule: str | None = Field(default=None, max_length=20)
    vote_options: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    exclude_own_vote: bool = Field(default=False)
    vote_deadline_s: int = Field(default=300)
    stop_on_consensus: bool = Field(default=False)  # end the rounds once consensus is detected (then vote, if any)
    # Consensus detection after every round (one extra model call a round); always on with a vote.
    track_consensus: bool = Field(default=False)
    # The context the question was asked in (backend.memory.context, canonical form): memory matches it exactly.
    context: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # Created from memory: the entry whose stored result this discussion shows (no agent ran).
    memory_entry_id: int | None = Field(default=None)
    owner_user_id: int | None = Field(default=None, foreign_key="user.id")
    created_by: str = Field(default="", max_length=120)
    created_at: datetime = timestamp_field()
    updated_at: datetime = timestamp_field()
