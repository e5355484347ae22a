"""votes and decisions: polls with one current vote per participant, versioned decisions, one sign-off each,
and the model calls made outside agents' turns

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 17:00:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
STR = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table(
        "poll",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("discussion_id", sa.Integer(), sa.ForeignKey("discussion.id"), nullable=False),
        sa.Column("key", STR(length=80), nullable=False),
        sa.Column("question", STR(length=2000), nullable=False),
        sa.Column("rule", STR(length=20), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("exclude_own", sa.Boolean(), nullable=False),
        sa.Column("status", STR(length=12), nullable=False),
        sa.Column("deadline_at", TS, nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("created_by", STR(length=120), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("closed_at", TS, nullable=True),
        sa.UniqueConstraint("discussion_id", "key", name="uq_poll_key"),
    )
    op.create_index("ix_poll_discussion_id", "poll", ["discussion_id"])
    op.create_index("ix_poll_status", "poll", ["status"])
    op.create_table(
        "vote",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("poll_id", sa.Integer(), sa.ForeignKey("poll.id"), nullable=False),
        sa.Column("participant_id", sa.Integer(), sa.ForeignKey("participant.id"), nullable=False),
        sa.Column("voter_name", STR(length=120), nullable=False),
        sa.Column("voter_kind", STR(length=10), nullable=False),
        sa.Column("ranking", sa.JSON(), nullable=False),
        sa.Column("weight", sa.Float(), nullable=False),
        sa.Column("reason", STR(length=2000), nullable=False),
        sa.Column("current", sa.Boolean(), nullable=False),
        sa.Column("client_id", STR(length=80), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("poll_id", "client_id", name="uq_vote_client"),
    )
    op.create_index("ix_vote_poll_id", "vote", ["poll_id"])
    op.create_index("ix_vote_participant_id", "vote", ["participant_id"])
    # One current vote per participant per poll: a partial unique index (history rows have current = false).
    op.create_index(
        "uq_vote_current",
        "vote",
        ["poll_id", "participant_id"],
        unique=True,
        sqlite_where=sa.text("current"),
        postgresql_where=sa.text("current"),
    )
    op.create_table(
        "decision",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("discussion_id", sa.Integer(), sa.ForeignKey("discussion.id"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("poll_id", sa.Integer(), sa.ForeignKey("poll.id"), nullable=True),
        sa.Column("title", STR(length=300), nullable=False),
        sa.Column("chosen_option", STR(length=500), nullable=True),
        sa.Column("rationale", STR(length=8000), nullable=False),
        sa.Column("status", STR(length=20), nullable=False),
        sa.Column("breakdown", sa.JSON(), nullable=False),
        sa.Column("tally", sa.JSON(), nullable=False),
        sa.Column("dissent", sa.JSON(), nullable=False),
        sa.Column("concerns", sa.JSON(), nullable=False),
        sa.Column("action_plan", sa.JSON(), nullable=False),
        sa.Column("synthesis_note", STR(length=1000), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("discussion_id", "version", name="uq_decision_version"),
    )
    op.create_index("ix_decision_discussion_id", "decision", ["discussion_id"])
    op.create_index("ix_decision_status", "decision", ["status"])
    op.create_table(
        "signoff",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("decision_id", sa.Integer(), sa.ForeignKey("decision.id"), nullable=False),
        sa.Column("discussion_id", sa.Integer(), sa.ForeignKey("discussion.id"), nullable=False),
        sa.Column("outcome", STR(length=20), nullable=False),
        sa.Column("actor_user_id", sa.Integer(), sa.ForeignKey("user.id"), nullable=False),
        sa.Column("actor_name", STR(length=120), nullable=False),
        sa.Column("conditions", STR(length=4000), nullable=False),
        sa.Column("override_option", STR(length=500), nullable=True),
        sa.Column("reason", STR(length=4000), nullable=False),
        sa.Column("question", STR(length=2000), nullable=False),
        sa.Column("extra_rounds", sa.Integer(), nullable=False),
        sa.Column("client_id", STR(length=80), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("decision_id", name="uq_signoff_decision"),
    )
    op.create_index("ix_signoff_decision_id", "signoff", ["decision_id"])
    op.create_index("ix_signoff_discussion_id", "signoff", ["discussion_id"])
    op.create_table(
        "modelcall",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("discussion_id", sa.Integer(), sa.ForeignKey("discussion.id"), nullable=False),
        sa.Column("participant_id", sa.Integer(), sa.ForeignKey("participant.id"), nullable=True),
        sa.Column("purpose", STR(length=20), nullable=False),
        sa.Column("provider", STR(length=40), nullable=False),
        sa.Column("model", STR(length=200), nullable=False),
        sa.Column("input_tokens", sa.Integer(), nullable=False),
        sa.Column("output_tokens", sa.Integer(), nullable=False),
        sa.Column("cached_tokens", sa.Integer(), nullable=False),
        sa.Column("tokens_estimated", sa.Boolean(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("latency_ms", sa.Integer(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_modelcall_discussion_id", "modelcall", ["discussion_id"])
    with op.batch_alter_table("discussion") as batch:
        batch.add_column(sa.Column("vote_rule", STR(length=20), nullable=True))
        batch.add_column(sa.Column("vote_options", sa.JSON(), nullable=False, server_default="[]"))
        batch.add_column(sa.Column("exclude_own_vote", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("vote_deadline_s", sa.Integer(), nullable=False, server_default="300"))
        batch.add_column(sa.Column("stop_on_consensus", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("discussion") as batch:
        for col in ("stop_on_consensus", "vote_deadline_s", "exclude_own_vote", "vote_options", "vote_rule"):
            batch.drop_column(col)
    for table in ("modelcall", "signoff", "decision", "vote", "poll"):
        op.drop_table(table)
