"""each persona names the provider and model its agents run on by default

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 23:45:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("persona", schema=None) as batch_op:
        batch_op.add_column(sa.Column("provider", sa.String(length=40), nullable=False, server_default="offline"))
        batch_op.add_column(sa.Column("model", sa.String(length=200), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("base_url", sa.String(length=500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("persona", schema=None) as batch_op:
        batch_op.drop_column("base_url")
        batch_op.drop_column("model")
        batch_op.drop_column("provider")
