"""humans in the room: accounts, sessions, roles, join links, prompts, mentions, audit

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 09:00:00
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
STR = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table(
        "user",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("username", STR(length=40), nullable=False),
        sa.Column("display_name", STR(length=120), nullable=False),
        sa.Column("password_hash", STR(length=200), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_user_username", "user", ["username"], unique=True)
    op.create_table(
        "authsession",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("token_hash", STR(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("user.id"), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
    )
    op.create_index("ix_authsession_token_hash", "authsession", ["token_hash"], unique=True)
    op.create_index("ix_authsession_user_id", "authsession", ["user_id"])
    op.create_table(
        "invite",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("discussion_id", sa.Integer(), sa.ForeignKey("discussion.id"), nullable=False),
        sa.Column("token", STR(length=64), nullable=False),
        sa.Column("role", STR(length=20), nullable=False),
        sa.Column("created_by", sa.Integer(), sa.ForeignKey("user.id"), nullable=False),
        sa.Column("revoked", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_index("ix_invite_discussion_id", "invite", ["discussion_id"])
    op.create_index("ix_invite_token", "invite", ["token"], unique=True)
    op.create_table(
        "humaninputrequest",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("discussion_id", sa.Integer(), sa.ForeignKey("discussion.id"), nullable=False),
        sa.Column("key", STR(length=80), nullable=False),
        sa.Column("kind", STR(length=20), nullable=False),
        sa.Column("prompt", STR(length=2000), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("target_roles", sa.JSON(), nullable=False),
        sa.Column("target_users", sa.JSON(), nullable=False),
        sa.Column("deadline_at", TS, nullable=False),
        sa.Column("default_answer", STR(length=2000), nullable=False),
        sa.Column("blocking", sa.Boolean(), nullable=False),
        sa.Column("created_by", STR(length=120), nullable=False),
        sa.Column("status", STR(length=12), nullable=False),
        sa.Column("answer", STR(length=4000), nullable=True),
        sa.Column("answered_by", STR(length=120), nullable=True),
        sa.Column("answered_by_user_id", sa.Integer(), sa.ForeignKey("user.id"), nullable=True),
        sa.Column("answered_at", TS, nullable=True),
        sa.Column("answer_client_id", STR(length=80), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("discussion_id", "key", name="uq_prompt_key"),
    )
    op.create_index("ix_humaninputrequest_discussion_id", "humaninputrequest", ["discussion_id"])
    op.create_index("ix_humaninputrequest_status", "humaninputrequest", ["status"])
    op.create_table(
        "mention",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("discussion_id", sa.Integer(), sa.ForeignKey("discussion.id"), nullable=False),
        sa.Column("message_id", sa.Integer(), sa.ForeignKey("message.id"), nullable=False),
        sa.Column("participant_id", sa.Integer(), sa.ForeignKey("participant.id"), nullable=False),
        sa.Column("handled", sa.Boolean(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.UniqueConstraint("message_id", "participant_id", name="uq_mention"),
    )
    op.create_index("ix_mention_discussion_id", "mention", ["discussion_id"])
    op.create_index("ix_mention_participant_id", "mention", ["participant_id"])
    op.create_index("ix_mention_handled", "mention", ["handled"])
    op.create_table(
        "auditentry",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("discussion_id", sa.Integer(), sa.ForeignKey("discussion.id"), nullable=True),
        sa.Column("actor_user_id", sa.Integer(), sa.ForeignKey("user.id"), nullable=True),
        sa.Column("actor_name", STR(length=120), nullable=False),
        sa.Column("action", STR(length=60), nullable=False),
        sa.Column("target", STR(length=200), nullable=False),
        sa.Column("previous_value", STR(length=4000), nullable=True),
        sa.Column("new_value", STR(length=4000), nullable=True),
        sa.Column("at", TS, nullable=False),
    )
    op.create_index("ix_auditentry_discussion_id", "auditentry", ["discussion_id"])
    with op.batch_alter_table("participant") as batch:
        batch.add_column(sa.Column("user_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("role", STR(length=20), nullable=True))
        batch.add_column(sa.Column("vote_weight", sa.Float(), nullable=False, server_default="1.0"))
        batch.add_column(sa.Column("is_owner", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("last_seen_at", TS, nullable=True))
        batch.create_foreign_key("fk_participant_user", "user", ["user_id"], ["id"])
        batch.create_index("ix_participant_user_id", ["user_id"])
        batch.create_unique_constraint("uq_participant_user", ["discussion_id", "user_id"])
    with op.batch_alter_table("discussion") as batch:
        batch.add_column(sa.Column("human_turns", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("checkpoints", sa.JSON(), nullable=False, server_default="[]"))
        batch.add_column(sa.Column("owner_user_id", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_discussion_owner", "user", ["owner_user_id"], ["id"])
    # The audit trail is append-only in the database itself, not only by convention in the code.
    if op.get_bind().dialect.name == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER auditentry_no_{verb.lower()} BEFORE {verb} ON auditentry "
                "BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END"
            )
    else:
        op.execute(
            "CREATE FUNCTION auditentry_append_only() RETURNS trigger AS $$ "
            "BEGIN RAISE EXCEPTION 'the audit trail is append-only'; END $$ LANGUAGE plpgsql"
        )
        op.execute(
            "CREATE TRIGGER auditentry_append_only BEFORE UPDATE OR DELETE ON auditentry "
            "FOR EACH ROW EXECUTE FUNCTION auditentry_append_only()"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS auditentry_no_update")
        op.execute("DROP TRIGGER IF EXISTS auditentry_no_delete")
    else:
        op.execute("DROP TRIGGER IF EXISTS auditentry_append_only ON auditentry")
        op.execute("DROP FUNCTION IF EXISTS auditentry_append_only()")
    with op.batch_alter_table("discussion") as batch:
        batch.drop_constraint("fk_discussion_owner", type_="foreignkey")
        batch.drop_column("owner_user_id")
        batch.drop_column("checkpoints")
        batch.drop_column("human_turns")
    with op.batch_alter_table("participant") as batch:
        batch.drop_constraint("uq_participant_user", type_="unique")
        batch.drop_index("ix_participant_user_id")
        batch.drop_constraint("fk_participant_user", type_="foreignkey")
        for col in ("last_seen_at", "is_owner", "vote_weight", "role", "user_id"):
            batch.drop_column(col)
    for table in ("auditentry", "mention", "humaninputrequest", "invite", "authsession", "user"):
        op.drop_table(table)
