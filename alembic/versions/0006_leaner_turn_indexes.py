"""leaner indexes on the two tables every agent turn writes

Every turn inserts an event and writes a message row, so each index on them is paid per message. The
single-column discussion_id indexes duplicate the leading column of the unique constraints (uq_event_seq,
uq_message_turn), and the transcript is read by (discussion_id, seq), not by seq alone.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 20:10:00
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_event_discussion_id", table_name="event")
    op.drop_index("ix_message_discussion_id", table_name="message")
    op.drop_index("ix_message_seq", table_name="message")
    op.create_index("ix_message_discussion_seq", "message", ["discussion_id", "seq"])


def downgrade() -> None:
    op.drop_index("ix_message_discussion_seq", table_name="message")
    op.create_index("ix_message_seq", "message", ["seq"])
    op.create_index("ix_message_discussion_id", "message", ["discussion_id"])
    op.create_index("ix_event_discussion_id", "event", ["discussion_id"])
