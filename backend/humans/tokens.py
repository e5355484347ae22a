"""Secrets handed to a browser (session tokens, sign-in grants, sign-up and join links) are stored only as their
SHA-256, so a copy of the database signs nobody in and lets nobody join."""

from __future__ import annotations

import hashlib


def digest(token: str) -> str:
    """What the database keeps of a token."""
    return hashlib.sha256(token.encode()).hexdigest()
