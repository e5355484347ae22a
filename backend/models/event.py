"""EventRecord: the durable, gapless, per-discussion event log (DESIGN decision 2)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from backend.models.base import timestamp_field


class EventRecord(SQLModel, table=True):
    """One persisted event; (discussion_id, seq) is unique and seqs have no gaps."""

    __tablename__ = "event"
    __table_args__ = (UniqueConstraint("discussion_id", "seq", name="uq_event_seq"),)

    id: int | None = Field(default=None, primary_key=True)
    discussion_id: int = Field(foreign_key="discussion.id")  # indexed as uq_event_seq's leading column
    seq: int
    type: str = Field(max_length=40)
    payload: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = timestamp_field()
