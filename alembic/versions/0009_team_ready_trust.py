"""team-ready trust: an instance admin and policy, sign-up invites, join links hashed with expiry and uses,
one-time sign-in grants

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 00:30:00
"""

import hashlib
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

LINK_DAYS = 7


def upgrade() -> None:
    # Plain ADD COLUMN (no batch copy): on SQLite a copy of `user` would have to drop a table others refer to.
    op.add_column("user", sa.Column("is_admin", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column("authsession", sa.Column("pending", sa.Boolean(), nullable=False, server_default=sa.false()))
    # The first account of an existing install is its admin, as on a new one.
    op.execute('UPDATE "user" SET is_admin = true WHERE id = (SELECT MIN(id) FROM "user")')

    op.create_table(
        "instancepolicy",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("signup_policy", sa.String(length=20), nullable=False),
        sa.Column("user_daily_usd", sa.Float(), nullable=True),
        sa.Column("instance_daily_usd", sa.Float(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "signupinvite",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=False),
        sa.Column("note", sa.String(length=120), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("max_uses", sa.Integer(), nullable=False),
        sa.Column("uses", sa.Integer(), nullable=False),
        sa.Column("revoked", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["created_by"], ["user.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_signupinvite_token_hash", "signupinvite", ["token_hash"], unique=True)

    # Today's spend (the daily caps) is summed over these before every priced call.
    op.create_index("ix_message_created_at", "message", ["created_at"])
    op.create_index("ix_modelcall_created_at", "modelcall", ["created_at"])

    # Join links: the plain token becomes its SHA-256 (links already handed out keep working), with an expiry.
    with op.batch_alter_table("invite", schema=None) as batch_op:
        batch_op.add_column(sa.Column("token_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("max_uses", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("uses", sa.Integer(), nullable=False, server_default="0"))
    conn = op.get_bind()
    invite = sa.table(
        "invite",
        sa.column("id", sa.Integer),
        sa.column("token", sa.String),
        sa.column("role", sa.String),
        sa.column("revoked", sa.Boolean),
        sa.column("token_hash", sa.String),
        sa.column("expires_at", sa.DateTime(timezone=True)),
    )
    expires = datetime.now(UTC) + timedelta(days=LINK_DAYS)
    for row in conn.execute(sa.select(invite.c.id, invite.c.token, invite.c.role)).all():
        conn.execute(
            invite.update()
            .where(invite.c.id == row.id)
            .values(
                token_hash=hashlib.sha256(row.token.encode()).hexdigest(),
                expires_at=expires,
                # A link may no longer carry a deciding role: such old links stop working.
                revoked=sa.true() if row.role in ("decision_maker", "must_approve") else invite.c.revoked,
            )
        )
    with op.batch_alter_table("invite", schema=None) as batch_op:
        batch_op.drop_index("ix_invite_token")
        batch_op.drop_column("token")
        batch_op.alter_column("token_hash", existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column("expires_at", existing_type=sa.DateTime(timezone=True), nullable=False)
        batch_op.create_index("ix_invite_token_hash", ["token_hash"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("invite", schema=None) as batch_op:
        batch_op.drop_index("ix_invite_token_hash")
        batch_op.add_column(sa.Column("token", sa.String(length=64), nullable=True))
    op.execute("UPDATE invite SET token = token_hash, revoked = true")  # plain tokens cannot be recovered
    with op.batch_alter_table("invite", schema=None) as batch_op:
        batch_op.drop_column("uses")
        batch_op.drop_column("max_uses")
        batch_op.drop_column("expires_at")
        batch_op.drop_column("token_hash")
        batch_op.alter_column("token", existing_type=sa.String(length=64), nullable=False)
        batch_op.create_index("ix_invite_token", ["token"], unique=True)
    op.drop_index("ix_modelcall_created_at", table_name="modelcall")
    op.drop_index("ix_message_created_at", table_name="message")
    op.drop_index("ix_signupinvite_token_hash", table_name="signupinvite")
    op.drop_table("signupinvite")
    op.drop_table("instancepolicy")
    op.drop_column("authsession", "pending")
    op.drop_column("user", "is_admin")
