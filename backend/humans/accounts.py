"""Accounts and sign-in: argon2 password hashes, and opaque session tokens the server resolves to a person.

The browser only holds a random token (in an HttpOnly cookie, or an API client's bearer header); every action's
identity is what the server finds for it, never a name or id the browser sends.

Who may sign up is the instance's policy (backend/humans/instance.py): the first account always may, and becomes
the admin; after that sign-up is open, needs an admin's sign-up link, or is closed. Password hashing is slow on
purpose (argon2), so it runs in a small pool of its own (`run_auth`): a burst of sign-ins queues there instead of
taking every thread the database calls use.
"""

from __future__ import annotations

import asyncio
import math
import re
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from backend import clock
from backend.db import session_scope
from backend.errors import Forbidden, InputError, TooManyAttempts
from backend.humans import audit, rate_limits, sign_in_limit, signup_invites, tokens
from backend.humans.instance import read_policy
from backend.humans.text import NAME_CHARS, clean_name
from backend.models import AuthSession, User
from backend.models.base import as_utc

T = TypeVar("T")

SESSION_DAYS = 30
GRANT_SECONDS = 60
USERNAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{1,39}$")
MIN_PASSWORD = 8
MAX_PASSWORD = 200
_hasher = PasswordHasher()
# Argon2 takes ~50 ms of a core and 64 MiB per hash: two at a time is what two cores can give without starving the
# rest of the server; more sign-ins wait their turn here.
_auth_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="argon2")
# Verifying against this when the username is unknown keeps both paths equally slow (no user enumeration).
_DUMMY_HASH = _hasher.hash("not-a-real-password")


async def run_auth(fn: Callable[..., T], *args, **kwargs) -> T:
    """Run a sign-up, sign-in or password change in the hashing pool, off the event loop and off the pool that
    database calls use (`run_db`)."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_auth_pool, lambda: fn(*args, **kwargs))


def normalise_username(username: str) -> str:
    return username.strip().lstrip("@").lower()


def _check_password(password: str, errors: dict[str, str], field: str = "password") -> None:
    if len(password) < MIN_PASSWORD:
        errors[field] = f"Use a password of at least {MIN_PASSWORD} characters."
    elif len(password) > MAX_PASSWORD:
        errors[field] = f"Passwords are at most {MAX_PASSWORD} characters."


def sign_up(
    username: str, password: str, display_name: str = "", *, invite_token: str = "", address: str | None = None
) -> tuple[User, str]:
    """Create an account and sign it in; returns the user and the session token for the browser.

    The first account is the instance admin. After it, the sign-up policy decides: open, invite-only (a valid
    `invite_token` from the admin's sign-up link is used up by one account) or closed. `address` is the client's,
    for the per-address rate limit.
    """
    if address:
        rate_limits.hit("sign_up", address)
    name = normalise_username(username)
    errors: dict[str, str] = {}
    if not USERNAME.match(name):
        errors["username"] = "Usernames are 2-40 characters: letters, digits, '.', '_' or '-'."
    _check_password(password, errors)
    display = display_name_of(display_name)
    if display_name.strip() and not display:
        errors["display_name"] = "Your name has no visible characters: write it with letters or leave it empty."
    display = display or name
    if errors:
        raise InputError(errors)
    password_hash = _hasher.hash(password)
    try:
        with session_scope() as s:
            first = s.exec(select(func.count()).select_from(User)).one() == 0
            if not first:
                policy = read_policy(s).signup_policy
                if policy == "closed":
                    raise Forbidden("Sign-up is closed on this server. Ask its admin for an account.")
                if policy == "invite_only":
                    signup_invites.use(s, invite_token)
            user = User(username=name, display_name=display, password_hash=password_hash, is_admin=first)
            s.add(user)
            s.flush()
            audit.record(
                s, actor=user, action="account.sign_up", target=f"@{name}", new="instance admin" if first else None
            )
    except IntegrityError:
        raise InputError({"username": f"The username '{name}' is taken."}) from None
    return user, _new_session(user)


def log_in(username: str, password: str, *, address: str | None = None) -> tuple[User, str]:
    """Check the password; returns the user and a new session token, or a single vague error.

    After too many failures for one username (see `sign_in_limit`) every attempt is refused for a while, unknown
    usernames alike (no user enumeration), without checking the password; one client address is also limited in
    how many sign-ins it tries, whatever the accounts (`rate_limits`).
    """
    if address:
        rate_limits.hit("sign_in", address)
    name = normalise_username(username)
    wait = sign_in_limit.attempt(name)
    if wait:
        minutes = math.ceil(wait / 60)
        raise TooManyAttempts(
            {"password": f"Too many failed sign-ins for this account. Try again in {minutes} min."}, retry_after=wait
        )
    with session_scope() as s:
        user = s.exec(select(User).where(User.username == name)).first()
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password[:MAX_PASSWORD])
    except (VerificationError, InvalidHashError):
        user = None
    if user is None:
        raise InputError({"password": "Wrong username or password."})
    sign_in_limit.succeeded(name)
    return user, _new_session(user)


def _new_session(user: User) -> str:
    """A new session token (a web form then swaps it for a one-time grant: `grant_for`)."""
    token = secrets.token_urlsafe(32)
    expires = clock.now() + timedelta(days=SESSION_DAYS)
    with session_scope() as s:
        s.add(AuthSession(token_hash=tokens.digest(token), user_id=user.id, expires_at=expires))
    return token


def grant_for(token: str) -> str:
    """Swap a session token just made by a web form for a one-time grant: the browser's own request redeems it, so
    the session reaches the browser only in an HttpOnly cookie, never through page script."""
    grant = secrets.token_urlsafe(32)
    with session_scope() as s:
        row = s.exec(select(AuthSession).where(AuthSession.token_hash == tokens.digest(token))).first()
        if row is None:
            raise Forbidden("Sign in first.")
        row.token_hash, row.pending = tokens.digest(grant), True
        row.expires_at = clock.now() + timedelta(seconds=GRANT_SECONDS)
        s.add(row)
    return grant


def redeem(grant: str | None) -> str | None:
    """The session token for a one-time grant (the grant is used up), or None when it is unknown or expired."""
    if not grant or len(grant) > 200:
        return None
    with session_scope() as s:
        row = s.exec(
            select(AuthSession).where(AuthSession.token_hash == tokens.digest(grant), AuthSession.pending == True)  # noqa: E712
        ).first()
        if row is None:
            return None
        s.delete(row)
        if as_utc(row.expires_at) <= clock.now():
            return None
        user = s.get(User, row.user_id)
    return _new_session(user) if user is not None else None


def resolve(token: str | None) -> User | None:
    """The signed-in person for a browser's token, or None (unknown, forged or expired)."""
    if not token or len(token) > 200:
        return None
    with session_scope() as s:
        row = s.exec(select(AuthSession).where(AuthSession.token_hash == tokens.digest(token))).first()
        if row is None or row.pending or as_utc(row.expires_at) <= clock.now():
            return None
        return s.get(User, row.user_id)


def log_out(token: str | None) -> None:
    """End the session this token names."""
    if token:
        with session_scope() as s:
            s.execute(delete(AuthSession).where(AuthSession.token_hash == tokens.digest(token)))  # type: ignore[arg-type]


def log_out_everywhere(user: User | None) -> int:
    """End every session of this person (every browser and API token); returns how many."""
    if user is None or user.id is None:
        raise Forbidden("Sign in first.")
    with session_scope() as s:
        ended = s.execute(delete(AuthSession).where(AuthSession.user_id == user.id)).rowcount  # type: ignore[arg-type]
        audit.record(s, actor=user, action="account.sign_out_everywhere", new=f"{ended} sessions ended")
    return ended or 0


def change_password(user: User | None, current: str, new: str) -> str:
    """Change the password after checking the current one; every other session ends. Returns a new session token
    for the browser that asked."""
    if user is None or user.id is None:
        raise Forbidden("Sign in first.")
    errors: dict[str, str] = {}
    _check_password(new, errors, "new_password")
    if errors:
        raise InputError(errors)
    wait = sign_in_limit.attempt(user.username)  # a stolen session must not be a way to guess the password
    if wait:
        raise TooManyAttempts({"current_password": "Too many wrong passwords. Try again later."}, retry_after=wait)
    with session_scope() as s:
        row = s.get(User, user.id)
        if row is None:
            raise Forbidden("Sign in first.")
        stored = row.password_hash
    try:
        _hasher.verify(stored, current[:MAX_PASSWORD])
    except (VerificationError, InvalidHashError):
        raise InputError({"current_password": "That is not your current password."}) from None
    sign_in_limit.succeeded(user.username)
    new_hash = _hasher.hash(new)
    with session_scope() as s:
        row = s.get(User, user.id, with_for_update=True)
        assert row is not None
        row.password_hash = new_hash
        s.add(row)
        s.execute(delete(AuthSession).where(AuthSession.user_id == user.id))  # type: ignore[arg-type]
        audit.record(s, actor=user, action="account.password_change", target=f"@{user.username}")
    return _new_session(user)


def display_name_of(text: str) -> str:
    """A display name as people will see it (`backend.humans.text.clean_name`): NFC, one line, no control,
    bidi or zero-width characters (they make "Approved by the CTO" + RLO + "fdp.exe" read as something else), at
    most 120 characters. Empty when nothing visible is left; the caller decides what that means."""
    return clean_name(text)[:NAME_CHARS].strip()


def find_user(username: str) -> User | None:
    with session_scope() as s:
        return s.exec(select(User).where(User.username == normalise_username(username))).first()
