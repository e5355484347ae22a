"""ModelCall: a model call that is not an agent's turn (consensus, ballots, synthesis, facilitator, summaries).

Turns keep their usage on their message; every other call is a row here, so budgets and totals count every call.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from backend.models.base import timestamp_field


class ModelCall(SQLModel, table=True):
    """Tokens, cost and latency of one call made for the discussion outside the agents' turns."""

    __table_args__ = (Index("ix_modelcall_created_at", "created_at"),)  # today's spend, for the daily caps

    id: int | None = Field(default=None, primary_key=True)
    discussion_id: int = Field(foreign_key="discussion.id", index=True)
    participant_id: int | None = Field(default=None, foreign_key="participant.id")
    purpose: str = Field(max_length=20)  # consensus | ballot | synthesis | facilitator | summary
    provider: str = Field(default="", max_length=40)
    model: str = Field(default="", max_length=200)
    input_tokens: int = Field(default=0)
    output_tokens: int = Field(default=0)
    cached_tokens: int = Field(default=0)
    tokens_estimated: bool = Field(default=False)
    cost_usd: float = Field(default=0.0)
    latency_ms: int = Field(default=0)
    created_at: datetime = timestamp_field()
