"""Sign-up links: while sign-up is invite-only, the admin hands out links that let a set number of people make an
account before they expire. Only a SHA-256 of each link's token is stored; the admin sees the link once."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlmodel import Session, select

from backend import clock
from backend.db import session_scope
from backend.errors import Forbidden, InputError, NotFound
from backend.humans import audit, tokens
from backend.humans.instance import require_admin
from backend.models import SignupInvite, User
from backend.models.base import as_utc

MAX_DAYS = 30
MAX_USES = 100


def create(actor: User | None, *, note: str = "", days: int = 7, max_uses: int = 1) -> str:
    """A new sign-up token (admin only); the page turns it into a link and shows it once."""
    admin = require_admin(actor, "make sign-up links")
    errors: dict[str, str] = {}
    if not 1 <= days <= MAX_DAYS:
        errors["days"] = f"A sign-up link lasts 1 to {MAX_DAYS} days."
    if not 1 <= max_uses <= MAX_USES:
        errors["max_uses"] = f"A sign-up link makes 1 to {MAX_USES} accounts."
    if errors:
        raise InputError(errors)
    token = secrets.token_urlsafe(24)
    with session_scope() as s:
        assert admin.id is not None
        s.add(
            SignupInvite(
                token_hash=tokens.digest(token),
                created_by=admin.id,
                note=" ".join(note.split())[:120],
                expires_at=clock.now() + timedelta(days=days),
                max_uses=max_uses,
            )
        )
        audit.record(s, actor=admin, action="signup.link_created", target=note[:120], new=f"{max_uses} uses, {days} d")
    return token


def use(session: Session, token: str) -> None:
    """Use up one account of a sign-up link, in the sign-up's own transaction (refused when not valid)."""
    if not token:
        raise Forbidden("Sign-up on this server is by invitation: open the sign-up link the admin sent you.")
    row = session.exec(select(SignupInvite).where(SignupInvite.token_hash == tokens.digest(token[:200]))).first()
    if row is None or row.revoked:
        raise Forbidden("This sign-up link is not valid (it may have been revoked). Ask the admin for a new one.")
    if as_utc(row.expires_at) <= clock.now():
        raise Forbidden("This sign-up link has expired. Ask the admin for a new one.")
    # One atomic step, so two people racing for a link's last account cannot both get in.
    taken = session.execute(
        update(SignupInvite)
        .where(SignupInvite.id == row.id, SignupInvite.uses < SignupInvite.max_uses)  # type: ignore[arg-type]
        .values(uses=SignupInvite.uses + 1)
    ).rowcount
    if not taken:
        raise Forbidden("This sign-up link has been used up. Ask the admin for a new one.")


@dataclass(frozen=True, slots=True)
class SignupLink:
    """A sign-up link as the admin page lists it (never its token)."""

    id: int
    note: str
    uses: int
    max_uses: int
    expires_at: datetime
    revoked: bool

    @property
    def active(self) -> bool:
        return not self.revoked and self.uses < self.max_uses and as_utc(self.expires_at) > clock.now()


def list_links(actor: User | None) -> list[SignupLink]:
    """Every sign-up link, newest first (admin only)."""
    require_admin(actor, "see sign-up links")
    with session_scope() as s:
        rows = s.exec(select(SignupInvite).order_by(SignupInvite.id.desc())).all()  # type: ignore[union-attr]
        return [SignupLink(r.id or 0, r.note, r.uses, r.max_uses, r.expires_at, r.revoked) for r in rows]


def revoke(actor: User | None, link_id: int) -> None:
    """Stop a sign-up link from making more accounts (admin only)."""
    admin = require_admin(actor, "revoke sign-up links")
    with session_scope() as s:
        row = s.get(SignupInvite, link_id, with_for_update=True)
        if row is None:
            raise NotFound(f"No sign-up link {link_id}.")
        if not row.revoked:
            row.revoked = True
            s.add(row)
            audit.record(s, actor=admin, action="signup.link_revoked", target=row.note, previous=f"{row.uses} used")
