"""The context a question is asked in: the plan's "medium" granularity, normalised so equal contexts are equal.

Memory never treats contexts as "similar": two contexts match only when their canonical forms are identical, so the
canonical form sorts, lower-cases and de-duplicates, and maps a few common spellings onto one name.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from backend.errors import InputError

SECURITY_LEVELS = ("standard", "high", "enterprise")
TEAM_SIZES = ("small", "medium", "large")
MAX_ITEMS = 12
MAX_VALUE_CHARS = 40
MAX_CONTEXT_CHARS = 2000  # the whole context as JSON; a larger one is refused, never truncated

# Spellings of the same thing; the canonical name is the value.
_ALIASES = {
    "postgres": "postgresql",
    "pg": "postgresql",
    "psql": "postgresql",
    "js": "javascript",
    "ts": "typescript",
    "k8s": "kubernetes",
    "golang": "go",
    "py": "python",
    "node": "node.js",
    "nodejs": "node.js",
    "mongo": "mongodb",
}
# Short names a person may type for the keys (CLI `--context stack=postgres,redis`).
KEY_ALIASES = {
    "language": "preferred_language",
    "lang": "preferred_language",
    "security": "security_level",
    "team": "team_size",
    "stack": "existing_stack",
    "framework": "frameworks",
}
LIST_KEYS = ("frameworks", "existing_stack")


def _clean(value: str) -> str:
    text = unicodedata.normalize("NFKC", value)
    text = "".join(ch for ch in text if unicodedata.category(ch) not in ("Cf", "Cc")).strip().lower()
    if len(text) > MAX_VALUE_CHARS:
        raise ValueError(f"'{text[:20]}…' is {len(text)} characters; a context value has at most {MAX_VALUE_CHARS}")
    return _ALIASES.get(text, text)


class DiscussionContext(BaseModel):
    """Where a question is asked: language, frameworks, security level, team size, existing stack."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    preferred_language: str | None = None
    frameworks: tuple[str, ...] = ()
    security_level: Literal["standard", "high", "enterprise"] | None = None
    team_size: Literal["small", "medium", "large"] | None = None
    existing_stack: tuple[str, ...] = ()

    @field_validator("preferred_language", mode="before")
    @classmethod
    def _one(cls, value: object) -> object:
        if value is None:
            return None
        if not isinstance(value, str):
            raise ValueError("a language is one name, e.g. python")
        return _clean(value) or None

    @field_validator("security_level", "team_size", mode="before")
    @classmethod
    def _level(cls, value: object) -> object:
        return (_clean(value) or None) if isinstance(value, str) else value

    @field_validator("frameworks", "existing_stack", mode="before")
    @classmethod
    def _many(cls, value: object) -> object:
        if value is None:
            return ()
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            raise ValueError("a list of names, e.g. fastapi,sqlalchemy")
        if any(not isinstance(item, str) for item in items):
            raise ValueError("every entry is a name")
        cleaned = sorted({c for c in (_clean(item) for item in items) if c})
        if len(cleaned) > MAX_ITEMS:
            raise ValueError(f"{len(cleaned)} entries; at most {MAX_ITEMS}")
        return tuple(cleaned)

    def as_dict(self) -> dict:
        """Only what was given, lists as lists: what is stored and shown."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.model_dump().items() if v not in (None, ())}

    def canonical(self) -> str:
        return json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"))

    def key(self) -> str:
        """Equal contexts, equal keys: what memory filters on, exactly."""
        return hashlib.sha256(self.canonical().encode()).hexdigest()[:32]

    def describe(self) -> str:
        """One line for people: "python · fastapi, sqlalchemy · high security · small team · postgresql"."""
        parts = []
        if self.preferred_language:
            parts.append(self.preferred_language)
        if self.frameworks:
            parts.append(", ".join(self.frameworks))
        if self.security_level:
            parts.append(f"{self.security_level} security")
        if self.team_size:
            parts.append(f"{self.team_size} team")
        if self.existing_stack:
            parts.append("stack: " + ", ".join(self.existing_stack))
        return " · ".join(parts) or "no context"


def _message(err: ValidationError) -> str:
    problems = []
    for item in err.errors():
        where = ".".join(str(p) for p in item["loc"] if not isinstance(p, int)) or "context"
        if item["type"] == "extra_forbidden":
            known = ", ".join(DiscussionContext.model_fields)
            problems.append(f"unknown context key '{where}' (known: {known})")
        elif item["type"] == "literal_error":
            allowed = SECURITY_LEVELS if where == "security_level" else TEAM_SIZES
            problems.append(f"{where} is one of {', '.join(allowed)}")
        else:
            problems.append(f"{where}: {str(item['msg']).removeprefix('Value error, ')}")
    return "; ".join(problems)


def parse_context(raw: dict | None) -> DiscussionContext:
    """A context from a form, the API or a file; InputError({"context": ...}) for anything it cannot take."""
    if not raw:
        return DiscussionContext()
    if not isinstance(raw, dict):
        raise InputError({"context": "The context is a set of key: value pairs."})
    size = len(json.dumps(raw, default=str))
    if size > MAX_CONTEXT_CHARS:
        raise InputError({"context": f"The context is {size:,} characters; the limit is {MAX_CONTEXT_CHARS:,}."})
    data = {KEY_ALIASES.get(str(k).strip().lower(), str(k).strip().lower()): v for k, v in raw.items()}
    data = {k: v for k, v in data.items() if v not in ("", None, [], ())}
    try:
        return DiscussionContext.model_validate(data)
    except ValidationError as err:
        raise InputError({"context": _message(err)}) from None


def parse_pairs(pairs: list[str]) -> DiscussionContext:
    """`key=value` pairs (the CLI's repeated --context); list keys take comma-separated values."""
    raw: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InputError({"context": f"'{pair[:60]}' is not key=value, e.g. security=high."})
        raw[key.strip()] = value.strip()
    return parse_context(raw)
