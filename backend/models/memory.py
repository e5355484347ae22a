"""MemoryEntry: a finished result a person trusted, kept so the same question in the same context can reuse it.

The database is memory's shared cold tier: every worker sees the same entries, and whether an entry may still be
served (not sent back, superseded, forgotten or expired) is always read from here, never from a process's copy.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column, DateTime, Index, LargeBinary
from sqlmodel import Field, SQLModel

from backend.models.base import timestamp_field


class MemoryEntry(SQLModel, table=True):
    """The result of one discussion (its standing decision, or its final synthesis) and what it cost to reach."""

    __table_args__ = (Index("ix_memoryentry_context_live", "context_key", "invalidated_at"),)

    id: int | None = Field(default=None, primary_key=True)
    discussion_id: int = Field(foreign_key="discussion.id", index=True)
    decision_id: int | None = Field(default=None, foreign_key="decision.id")
    kind: str = Field(max_length=12)  # decision | synthesis
    question: str = Field(max_length=2000)
    context: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    context_key: str = Field(max_length=32)  # the canonical context's hash: contexts match exactly or not at all
    outcome: str = Field(max_length=500)  # one line: "PostgreSQL only", or the synthesis' first sentence
    result: str = Field(default="", max_length=20_000)  # the stored result as Markdown text (never HTML)
    decided_by: str = Field(default="", max_length=120)
    decided_at: datetime = timestamp_field()
    # The question's embedding (float32 unit vector); filled lazily by the first lookup that needs it.
    vector: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    # How the embedded text was prepared (backend.memory.match.QUESTION_TEXT_VERSION): another version re-embeds.
    vector_version: int = Field(default=0)
    # What reaching the result cost: what a reuse saves.
    cost_usd: float = Field(default=0.0)
    tokens: int = Field(default=0)
    model_seconds: float = Field(default=0.0)
    hits: int = Field(default=0)
    last_hit_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]
    saved_usd: float = Field(default=0.0)
    saved_tokens: int = Field(default=0)
    saved_seconds: float = Field(default=0.0)
    created_at: datetime = timestamp_field()
    expires_at: datetime = Field(sa_type=DateTime(timezone=True), nullable=False)  # type: ignore[call-overload]
    # Set when the result stops being served: sent back, superseded, forgotten by the owner.
    invalidated_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))  # type: ignore[call-overload]
    invalidated_reason: str = Field(default="", max_length=200)
