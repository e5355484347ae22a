"""Accounts and sign-in: argon2 password hashes, and opaque session tokens the server resolves to a person.

The browser only holds a random token; every action's identity is what the server finds for it, never a name or
id the browser sends.
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from backend import clock
from backend.db import session_scope
from backend.humans import audit, sign_in_limit
from backend.models import AuthSession, User
from backend.models.base import as_utc
from backend.services.errors import InputError, TooManyAttempts

SESSION_DAYS = 30
USERNAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{1,39}$")
MIN_PASSWORD = 8
MAX_PASSWORD = 200
_hasher = PasswordHasher()
# Verifying against this when the username is unknown keeps both paths equally slow (no user enumeration).
_DUMMY_HASH = _hasher.hash("not-a-real-password")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def normalise_username(username: str) -> str:
    return username.strip().lstrip("@").lower()


def sign_up(username: str, password: str, display_name: str = "") -> tuple[User, str]:
    """Create an account and sign it in; returns the user and the session token for the browser."""
    name = normalise_username(username)
    errors: dict[str, str] = {}
    if not USERNAME.match(name):
        errors["username"] = "Usernames are 2-40 characters: letters, digits, '.', '_' or '-'."
    if len(password) < MIN_PASSWORD:
        errors["password"] = f"Use a password of at least {MIN_PASSWORD} characters."
    elif len(password) > MAX_PASSWORD:
        errors["password"] = f"Passwords are at most {MAX_PASSWORD} characters."
    display = " ".join(display_name.split())[:120] or name
    if errors:
        raise InputError(errors)
    try:
        with session_scope() as s:
            user = User(username=name, display_name=display, password_hash=_hasher.hash(password))
            s.add(user)
            s.flush()
            audit.record(s, actor=user, action="account.sign_up", target=f"@{name}")
    except IntegrityError:
        raise InputError({"username": f"The username '{name}' is taken."}) from None
    return user, _new_session(user)


def log_in(username: str, password: str) -> tuple[User, str]:
    """Check the password; returns the user and a new session token, or a single vague error.

    After too many failures for one username (see `sign_in_limit`) every attempt is refused for a while, unknown
    usernames alike (no user enumeration), without checking the password.
    """
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
    token = secrets.token_urlsafe(32)
    with session_scope() as s:
        s.add(
            AuthSession(
                token_hash=_digest(token), user_id=user.id, expires_at=clock.now() + timedelta(days=SESSION_DAYS)
            )
        )
    return token


def resolve(token: str | None) -> User | None:
    """The signed-in person for a browser's token, or None (unknown, forged or expired)."""
    if not token or len(token) > 200:
        return None
    with session_scope() as s:
        row = s.exec(select(AuthSession).where(AuthSession.token_hash == _digest(token))).first()
        if row is None or as_utc(row.expires_at) <= clock.now():
            return None
        return s.get(User, row.user_id)


def log_out(token: str | None) -> None:
    """End the session this token names."""
    if token:
        with session_scope() as s:
            s.execute(delete(AuthSession).where(AuthSession.token_hash == _digest(token)))  # type: ignore[arg-type]


def find_user(username: str) -> User | None:
    with session_scope() as s:
        return s.exec(select(User).where(User.username == normalise_username(username))).first()
