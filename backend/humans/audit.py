"""The audit trail: record every human action in the same transaction as the action itself."""

from __future__ import annotations

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
