"""The durable event log: append with a gapless seq, read after a seq."""

from __future__ import annotations

from sqlalchemy import Connection, bindparam, insert, update
from sqlmodel import Session, select

from backend.events.schema import PersistedEvent, RoomEvent, parse_event
from backend.models import Discussion, EventRecord
from backend.models.base import as_utc, utcnow
from backend.prepared import Prepared

# Built once: every agent turn appends two events, and building a statement costs more than running it.
_NEXT_SEQ = Prepared(
    update(Discussion)
    .where(Discussion.id == bindparam("did"))  # type: ignore[arg-type]
    .values(last_seq=Discussion.last_seq + 1)
    .returning(Discussion.last_seq)
)
_INSERT_EVENT = Prepared(insert(EventRecord))


def next_seq(session: Session | Connection, discussion_id: int) -> int:
    """Take the discussion's next seq in the caller's transaction.

    `last_seq` is bumped with an UPDATE ... RETURNING: the row lock (Postgres) or the write lock (SQLite)
    serialises writers and a rollback undoes it together with the event, so seqs never have gaps; the unique
    (discussion_id, seq) constraint backs it.
    """
    ((seq,),) = _NEXT_SEQ.execute(_core(session), {"did": discussion_id})
    return seq


def _core(session: Session | Connection) -> Connection:
    """The connection under `session`, pending ORM changes flushed first: the log's statements are Core, and
    through an ORM session they would take its much slower ORM-enabled DML path."""
    if isinstance(session, Connection):
        return session
    session.flush()
    return session.connection()


def append_event(session: Session | Connection, event: PersistedEvent, *, seq: int | None = None) -> PersistedEvent:
    """Persist `event` in the caller's transaction and return it with its seq (taken now unless given)."""
    if seq is None:
        seq = next_seq(session, event.discussion_id)
    return append_events(session, [(event, seq)])[0]


def append_events(session: Session | Connection, events: list[tuple[PersistedEvent, int]]) -> list[PersistedEvent]:
    """Persist events with the seqs the caller took, in one statement; returns them stamped with seq and time."""
    now = utcnow()
    stored = [event.model_copy(update={"seq": seq, "at": now}) for event, seq in events]
    _INSERT_EVENT.execute_many(
        _core(session),
        [
            {
                "discussion_id": e.discussion_id,
                "seq": e.seq,
                "type": e.type,
                "payload": e.model_dump(mode="json", exclude={"discussion_id", "seq", "at", "type"}),
                "created_at": now,
            }
            for e in stored
        ],
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
