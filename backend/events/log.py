"""The durable event log: append with a gapless seq, read after a seq."""

from __future__ import annotations

from sqlalchemy import update
from sqlmodel import Session, select

from backend.events.schema import PersistedEvent, RoomEvent, parse_event
from backend.models import Discussion, EventRecord
from backend.models.base import as_utc, utcnow


def append_event(session: Session, event: PersistedEvent) -> PersistedEvent:
    """Persist `event` in the caller's transaction and return it with its seq.

    The discussion's `last_seq` is bumped with an UPDATE ... RETURNING in the same transaction: the row lock
    (Postgres) or the write lock (SQLite) serialises writers, a rollback undoes both, so seqs never have gaps,
    and the unique (discussion_id, seq) constraint backs it.
    """
    seq = session.execute(
        update(Discussion)
        .where(Discussion.id == event.discussion_id)  # type: ignore[arg-type]
        .values(last_seq=Discussion.last_seq + 1)
        .returning(Discussion.last_seq)
    ).scalar_one()
    stored = event.model_copy(update={"seq": seq, "at": utcnow()})
    payload = stored.model_dump(mode="json", exclude={"discussion_id", "seq", "at", "type"})
    session.add(
        EventRecord(discussion_id=event.discussion_id, seq=seq, type=stored.type, payload=payload, created_at=stored.at)
    )
    return stored


def _to_event(record: EventRecord) -> RoomEvent:
    return parse_event(
        {
            **record.payload,
            "type": record.type,
            "discussion_id": record.discussion_id,
            "seq": record.seq,
            "at": as_utc(record.created_at),
        }
    )


def read_events(session: Session, discussion_id: int, after_seq: int = 0, limit: int | None = None) -> list[RoomEvent]:
    """Persisted events with seq > after_seq, in order."""
    query = (
        select(EventRecord)
        .where(EventRecord.discussion_id == discussion_id, EventRecord.seq > after_seq)
        .order_by(EventRecord.seq)  # type: ignore[arg-type]
    )
    if limit:
        query = query.limit(limit)
    return [_to_event(r) for r in session.exec(query)]
