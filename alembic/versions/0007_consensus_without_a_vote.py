"""consensus tracked without a vote

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 23:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("discussion", schema=None) as batch_op:
        batch_op.add_column(sa.Column("track_consensus", sa.Boolean(), nullable=False, server_default=sa.false()))
    # Every discussion with a vote already tracked consensus after each round.
    op.execute("UPDATE discussion SET track_consensus = true WHERE vote_rule IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table("discussion", schema=None) as batch_op:
        batch_op.drop_column("track_consensus")
