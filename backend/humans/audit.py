"""The audit trail: record every human action in the same transaction as the action itself; read it a page at a
time (`trail_page`), since a long discussion's trail is too much for one page or one request."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, select

from backend.db import session_scope
from backend.models import AuditEntry, User


def record(
    session: Session,
    *,
    actor: User | None,
    action: str,
    discussion_id: int | None = None,
    target: str = "",
    previous: str | None = None,
    new: str | None = None,
) -> None:
    """Append one entry (who, what, when, previous value); rolled back with the action if it fails."""
    session.add(
        AuditEntry(
            discussion_id=discussion_id,
            actor_user_id=actor.id if actor else None,
            actor_name=actor.display_name if actor else "system",
            action=action,
            target=target[:200],
            previous_value=previous[:4000] if previous is not None else None,
            new_value=new[:4000] if new is not None else None,
        )
    )


def trail(discussion_id: int) -> list[AuditEntry]:
    """A discussion's audit entries, oldest first."""
    with session_scope() as s:
        return list(
            s.exec(
                select(AuditEntry).where(AuditEntry.discussion_id == discussion_id).order_by(AuditEntry.id)  # type: ignore[arg-type]
            )
        )


PAGE_SIZE = 100


@dataclass(frozen=True)
class TrailPage:
    """A page of the trail, newest first, and the cursors to the pages beside it (None: nothing that way)."""

    entries: list[AuditEntry]
    older: int | None  # pass as `before` for the next older page
    newer: int | None  # pass as `after` for the next newer page


def trail_page(
    discussion_id: int, *, before: int | None = None, after: int | None = None, limit: int = PAGE_SIZE
) -> TrailPage:
    """At most `limit` entries of a discussion's trail, newest first: the newest ones (older than the entry id
    `before`, when given), or with `after` the oldest ones newer than that id. Cut on the id, never an offset, so
    entries added meanwhile shift nothing."""
    limit = max(1, min(limit, 500))
    with session_scope() as s:
        mine = AuditEntry.discussion_id == discussion_id
        if after is not None:
            query = select(AuditEntry).where(mine, AuditEntry.id > after).order_by(AuditEntry.id.asc())  # type: ignore[operator,union-attr]
            rows = list(s.exec(query.limit(limit + 1)))
            entries, has_newer = rows[:limit][::-1], len(rows) > limit
            has_older = _any(s, mine, AuditEntry.id <= after)  # type: ignore[operator]
        else:
            query = select(AuditEntry).where(mine)
            if before is not None:
                query = query.where(AuditEntry.id < before)  # type: ignore[operator]
            rows = list(s.exec(query.order_by(AuditEntry.id.desc()).limit(limit + 1)))  # type: ignore[union-attr]
            entries, has_older = rows[:limit], len(rows) > limit
            has_newer = before is not None and _any(s, mine, AuditEntry.id >= before)  # type: ignore[operator]
    return TrailPage(
        entries,
        older=(entries[-1].id if entries else (after or 0) + 1) if has_older else None,
        newer=(entries[0].id if entries else (before or 1) - 1) if has_newer else None,
    )


def _any(session: Session, *where) -> bool:
    return session.exec(select(AuditEntry.id).where(*where).limit(1)).first() is not None


def instance_trail(limit: int = 50) -> list[AuditEntry]:
    """The newest entries about the instance itself (admin, policy, personas, sign-up links, accounts)."""
    with session_scope() as s:
        return list(
            s.exec(
                select(AuditEntry)
                .where(AuditEntry.discussion_id.is_(None))  # type: ignore[union-attr]
                .order_by(AuditEntry.id.desc())  # type: ignore[union-attr]
                .limit(limit)
            )
        )
