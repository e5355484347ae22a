"""The durable event log: append with a gapless seq, read after a seq."""

from __future__ import annotations

from sqlalchemy import insert, update
from sqlmodel import Session, select

from backend.events.schema import PersistedEvent, RoomEvent, parse_event
from backend.models import Discussion, EventRecord
from backend.models.base import as_utc, utcnow


def next_seq(session: Session, discussion_id: int) -> int:
    """Take the discussion's next seq in the caller's transaction.

    `last_seq` is bumped with an UPDATE ... RETURNING: the row lock (Postgres) or the write lock (SQLite)
    serialises writers and a rollback undoes it together with the event, so seqs never have gaps; the unique
    (discussion_id, seq) constraint backs it.
    """
    return session.execute(
        update(Discussion)
        .where(Discussion.id == discussion_id)  # type: ignore[arg-type]
        .values(last_seq=Discussion.last_seq + 1)
        .returning(Discussion.last_seq)
    ).scalar_one()


def append_event(session: Session, event: PersistedEvent, *, seq: int | None = None) -> PersistedEvent:
    """Persist `event` in the caller's transaction and return it with its seq (taken now unless given)."""
    if seq is None:
        seq = next_seq(session, event.discussion_id)
    stored = event.model_copy(update={"seq": seq, "at": utcnow()})
    payload = stored.model_dump(mode="json", exclude={"discussion_id", "seq", "at", "type"})
    session.execute(
        insert(EventRecord).values(
            discussion_id=event.discussion_id, seq=seq, type=stored.type, payload=payload, created_at=stored.at
        )
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
