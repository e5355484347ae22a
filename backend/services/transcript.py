"""A discussion's transcript a page at a time, so no request reads a long discussion whole.

Pages are cut on `Message.seq` (the seq of the event that finished the message: unique, ordered, indexed with
the discussion id), never on an offset, so messages that arrive between two requests shift nothing: paging with
`before=` the first seq of a page, or `after=` the last one, meets every message once, with no gap.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import select

from backend.db import session_scope
from backend.errors import InputError
from backend.models import Message

DEFAULT_LIMIT = 200
MAX_LIMIT = 500


@dataclass(frozen=True)
class MessagePage:
    """Finished messages in log order, and whether older or newer ones exist outside the page."""

    messages: list[Message]
    has_more_before: bool
    has_more_after: bool


def check_page(*, before: int | None, after: int | None, limit: int) -> None:
    """Refuse a page that cannot be read, with a message per field."""
    errors: dict[str, str] = {}
    if not 1 <= limit <= MAX_LIMIT:
        errors["limit"] = f"limit must be between 1 and {MAX_LIMIT} messages."
    if before is not None and after is not None:
        errors["before"] = "Give before= (older messages) or after= (newer ones), not both."
    for name, value in (("before", before), ("after", after)):
        if value is not None and value < 0:
            errors.setdefault(name, f"{name} must be the seq of a message (a whole number, 0 or more).")
    if errors:
        raise InputError(errors)


def list_messages_page(
    discussion_id: int, *, before: int | None = None, after: int | None = None, limit: int = DEFAULT_LIMIT
) -> MessagePage:
    """At most `limit` finished messages, in log order: the newest ones (before the seq `before`, when given),
    or with `after` the oldest ones after that seq."""
    check_page(before=before, after=after, limit=limit)
    finished = (Message.discussion_id == discussion_id, Message.seq.is_not(None))  # type: ignore[union-attr]
    seq = Message.seq
    with session_scope() as session:
        if after is not None:
            query = select(Message).where(*finished, seq > after).order_by(seq.asc()).limit(limit + 1)  # type: ignore[operator,union-attr]
            rows = list(session.exec(query))
            messages, has_after = rows[:limit], len(rows) > limit
            has_before = _exists(session, *finished, seq <= after)  # type: ignore[operator]
        else:
            query = select(Message).where(*finished)
            if before is not None:
                query = query.where(seq < before)  # type: ignore[operator]
            rows = list(session.exec(query.order_by(seq.desc()).limit(limit + 1)))  # type: ignore[union-attr]
            messages, has_before = rows[:limit][::-1], len(rows) > limit
            has_after = before is not None and _exists(session, *finished, seq >= before)  # type: ignore[operator]
        return MessagePage(messages, has_more_before=has_before, has_more_after=has_after)


def _exists(session, *where) -> bool:
    return session.exec(select(Message.id).where(*where).limit(1)).first() is not None
