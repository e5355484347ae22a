"""People for tests: real accounts (argon2 hashes, session tokens) made through the accounts service."""

from __future__ import annotations

from backend.humans import accounts
from backend.models import User


def person(username: str, display_name: str = "") -> User:
    """Sign up `username` (password 'correct horse') and return the account."""
    user, _token = accounts.sign_up(username, "correct horse", display_name or username.title())
    return user
