"""deliberation memory: remembered results, the context a question was asked in, a person's default context, a settled decision sent back

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 04:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "memoryentry",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("discussion_id", sa.Integer(), nullable=False),
        sa.Column("decision_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("question", sa.String(length=2000), nullable=False),
        sa.Column("context", sa.JSON(), nullable=False),
        sa.Column("context_key", sa.String(length=32), nullable=False),
        sa.Column("outcome", sa.String(length=500), nullable=False),
        sa.Column("result", sa.String(length=20000), nullable=False),
        sa.Column("decided_by", sa.String(length=120), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=True),
        sa.Column("vector_version", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("tokens", sa.Integer(), nullable=False),
        sa.Column("model_seconds", sa.Float(), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.Column("last_hit_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("saved_usd", sa.Float(), nullable=False),
        sa.Column("saved_tokens", sa.Integer(), nullable=False),
        sa.Column("saved_seconds", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("invalidated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("invalidated_reason", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(["discussion_id"], ["discussion.id"]),
        sa.ForeignKeyConstraint(["decision_id"], ["decision.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_memoryentry_discussion_id", "memoryentry", ["discussion_id"])
    op.create_index("ix_memoryentry_context_live", "memoryentry", ["context_key", "invalidated_at"])
    # Plain ADD COLUMN (no batch copy): on SQLite a copy of `user` would have to drop a table others refer to.
    op.add_column("discussion", sa.Column("context", sa.JSON(), nullable=False, server_default="{}"))
    op.add_column("discussion", sa.Column("memory_entry_id", sa.Integer(), nullable=True))
    op.add_column("decision", sa.Column("reopened", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column("user", sa.Column("default_context", sa.JSON(), nullable=False, server_default="{}"))


def downgrade() -> None:
    op.drop_column("user", "default_context")
    op.drop_column("decision", "reopened")
    op.drop_column("discussion", "memory_entry_id")
    op.drop_column("discussion", "context")
    op.drop_index("ix_memoryentry_context_live", table_name="memoryentry")
    op.drop_index("ix_memoryentry_discussion_id", table_name="memoryentry")
    op.drop_table("memoryentry")
