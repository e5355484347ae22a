"""Errors the service layer raises for bad input: a clear message per field, and nothing written."""

from __future__ import annotations


class InputError(ValueError):
    """Bad input from a user; `errors` maps a field name to a readable message."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(errors.values()))
        self.errors = errors


class TooManyAttempts(InputError):
    """Bad input repeated too often (failed sign-ins): refused for `retry_after` seconds, whatever is sent."""

    def __init__(self, errors: dict[str, str], retry_after: int) -> None:
        super().__init__(errors)
        self.retry_after = retry_after


class NotFound(LookupError):
    """The thing asked for does not exist."""


class Forbidden(PermissionError):
    """The signed-in person may not do this (their role, or the discussion is closed); the message says why."""
