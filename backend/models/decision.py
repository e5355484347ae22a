"""Decision and its sign-off: the outcome of a deliberation as data (DESIGN decision 10).

A decision is versioned per discussion: "request more discussion" reopens the room and the next synthesis is a new
version. The must-approve gate records exactly one outcome per decision, backed by a unique constraint.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from backend.models.base import timestamp_field


class DecisionStatus(StrEnum):
    IN_PROGRESS = "in_progress"
    DECIDED = "decided"
    DEADLOCKED = "deadlocked"


class SignOffOutcome(StrEnum):
    APPROVED = "approved"  # optionally with conditions
    OVERRIDDEN = "overridden"  # another option chosen, reason required
    MORE_DISCUSSION = "more_discussion"  # a question reopens the discussion for some rounds


class Decision(SQLModel, table=True):
    """What the room decided, why, who disagreed and what happens next."""

    __table_args__ = (UniqueConstraint("discussion_id", "version", name="uq_decision_version"),)

    id: int | None = Field(default=None, primary_key=True)
    discussion_id: int = Field(foreign_key="discussion.id", index=True)
    version: int = Field(default=1)
    poll_id: int | None = Field(default=None, foreign_key="poll.id")
    title: str = Field(max_length=300)
    chosen_option: str | None = Field(default=None, max_length=500)
    rationale: str = Field(default="", max_length=8000)
    status: str = Field(default=DecisionStatus.IN_PROGRESS, max_length=20, index=True)
    # [{"voter", "kind", "weight", "ranking": [...], "first": "..."}], "4 of 5" style summary in `tally`
    breakdown: list[dict] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    tally: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    dissent: list[dict] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))  # {"who", "why"}
    concerns: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    action_plan: list[dict] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))  # {"step", "owner"}
    synthesis_note: str = Field(default="", max_length=1000)  # e.g. "rationale written without a model: ..."
    # A settled decision sent back later (backend.humans.approval.revisit): the next run drafts a new version.
    reopened: bool = Field(default=False)
    created_at: datetime = timestamp_field()


class SignOff(SQLModel, table=True):
    """The must-approve person's one answer to a decision."""

    __table_args__ = (UniqueConstraint("decision_id", name="uq_signoff_decision"),)

    id: int | None = Field(default=None, primary_key=True)
    decision_id: int = Field(foreign_key="decision.id", index=True)
    discussion_id: int = Field(foreign_key="discussion.id", index=True)
    outcome: str = Field(max_length=20)
    actor_user_id: int = Field(foreign_key="user.id")
    actor_name: str = Field(max_length=120)
    conditions: str = Field(default="", max_length=4000)
    override_option: str | None = Field(default=None, max_length=500)
    reason: str = Field(default="", max_length=4000)
    question: str = Field(default="", max_length=2000)
    extra_rounds: int = Field(default=0)
    client_id: str = Field(default="", max_length=80)
    created_at: datetime = timestamp_field()
