"""Mentions: `@agent` asks that agent to speak next; `@person` shows a badge in that person's discussions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from backend.models.base import timestamp_field


class Mention(SQLModel, table=True):
    """One @mention in one message, of an agent or a person (participant)."""

    __table_args__ = (UniqueConstraint("message_id", "participant_id", name="uq_mention"),)

    id: int | None = Field(default=None, primary_key=True)
    discussion_id: int = Field(foreign_key="discussion.id", index=True)
    message_id: int = Field(foreign_key="message.id")
    participant_id: int = Field(foreign_key="participant.id", index=True)
    # Agents: handled once the extra turn ran. People: handled once they opened the room after it.
    handled: bool = Field(default=False, index=True)
    created_at: datetime = timestamp_field()
