"""The instance admin and what they decide for everyone: the sign-up policy and the daily spend caps.

The admin is the first account (so a fresh install is never locked out) and anyone `MAESTRO_ADMINS` names. The
policy lives in one database row the admin edits; until they do, the environment's defaults apply. Every change is
in the audit trail.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session

from backend.config import get_settings
from backend.db import session_scope
from backend.errors import Forbidden, InputError
from backend.humans import audit
from backend.models import AuditEntry, InstancePolicy, User
from backend.models.base import utcnow

SIGNUP_POLICIES = {
    "open": "Open: anyone who can reach this server may sign up",
    "invite_only": "Invite-only: sign up with a link the admin made",
    "closed": "Closed: nobody new may sign up",
}
POLICY_ROW = 1


@dataclass(frozen=True, slots=True)
class Policy:
    """What applies now: the admin's row, else the environment's defaults."""

    signup_policy: str
    user_daily_usd: float | None
    instance_daily_usd: float | None


def is_admin(user: User | None) -> bool:
    """Whether this person administers the instance (their account flag, or named by MAESTRO_ADMINS)."""
    if user is None or user.id is None:
        return False
    named = {n.strip().lstrip("@").lower() for n in get_settings().admins.split(",") if n.strip()}
    return bool(user.is_admin) or user.username in named


def require_admin(user: User | None, what: str) -> User:
    """The admin, or a Forbidden naming what only the admin may do."""
    if user is None:
        raise Forbidden("Sign in first.")
    if not is_admin(user):
        raise Forbidden(f"Only the instance admin can {what}.")
    return user


def _defaults() -> Policy:
    s = get_settings()
    policy = s.signup_policy if s.signup_policy in SIGNUP_POLICIES else "invite_only"
    return Policy(policy, s.user_daily_usd, s.instance_daily_usd)


def read_policy(session: Session) -> Policy:
    """The policy in force, in the caller's transaction."""
    row = session.get(InstancePolicy, POLICY_ROW)
    if row is None:
        return _defaults()
    return Policy(row.signup_policy, row.user_daily_usd, row.instance_daily_usd)


def current_policy() -> Policy:
    """`read_policy` in its own transaction."""
    with session_scope() as s:
        return read_policy(s)


def _cap(field: str, value: float | None, errors: dict[str, str]) -> float | None:
    if value is None:
        return None
    if not 0 < value <= 1_000_000:
        errors[field] = "A daily cap is a positive number of dollars (leave it empty for no cap)."
    return value


def set_policy(
    actor: User | None, *, signup_policy: str, user_daily_usd: float | None, instance_daily_usd: float | None
) -> Policy:
    """The admin changes the sign-up policy and the daily caps; the audit trail keeps the previous values."""
    require_admin(actor, "change the sign-up policy and spend caps")
    errors: dict[str, str] = {}
    if signup_policy not in SIGNUP_POLICIES:
        errors["signup_policy"] = f"Choose one of: {', '.join(SIGNUP_POLICIES)}."
    user_cap = _cap("user_daily_usd", user_daily_usd, errors)
    instance_cap = _cap("instance_daily_usd", instance_daily_usd, errors)
    if errors:
        raise InputError(errors)
    with session_scope() as s:
        before = read_policy(s)
        row = s.get(InstancePolicy, POLICY_ROW, with_for_update=True) or InstancePolicy(id=POLICY_ROW)
        row.signup_policy, row.user_daily_usd, row.instance_daily_usd = signup_policy, user_cap, instance_cap
        row.updated_at = utcnow()
        s.add(row)
        after = Policy(signup_policy, user_cap, instance_cap)
        audit.record(s, actor=actor, action="instance.policy", previous=_describe(before), new=_describe(after))
        return after


def _describe(p: Policy) -> str:
    def usd(v: float | None) -> str:
        return "no cap" if v is None else f"${v:g}"

    return (
        f"sign-up {p.signup_policy}; per person {usd(p.user_daily_usd)}/day; instance {usd(p.instance_daily_usd)}/day"
    )


def instance_audit(actor: User | None, limit: int = 50) -> list[AuditEntry]:
    """What was done to the instance itself, newest first (admin only): policy, personas, sign-up links, accounts."""
    require_admin(actor, "read the instance's audit trail")
    return audit.instance_trail(limit)
