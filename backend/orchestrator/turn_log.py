"""What every agent turn writes: its message row and its start and end events, one transaction each.

These run for every message, so they are Core statements built once and run on the driver's cursor
(`backend.prepared`) on a plain connection. Building a statement and going through the ORM session cost several
times more than running it: bench/orchestrator_overhead.py measured ~4 ms of CPU per message that way.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from backend.events.log import append_event, append_events, next_seq
from backend.events.schema import TurnCompleted, TurnFailed, TurnStarted
from backend.models import Discussion, Message, MessageStatus, ModelCall, ParticipantKind
from backend.models.base import utcnow
from backend.prepared import Prepared

# Take the next seq and read what decides whether the turn may start: stopped by a person? which budgets?
_CLAIM = Prepared(
    update(Discussion)
    .where(Discussion.id == bindparam("did"))  # type: ignore[arg-type]
    .values(last_seq=Discussion.last_seq + bindparam("n"))
    .returning(
        Discussion.last_seq, Discussion.status, Discussion.pause_reason, Discussion.budget_tokens, Discussion.budget_usd
    )
)
_OPENED = ("status", "content", "start_seq", "created_at", "provider", "model")


def _upsert(insert_for_dialect):
    """Insert the turn's row, or reopen it when it exists (resumed after a crash, or retried): one statement."""
    stmt = insert_for_dialect(Message)
    return stmt.on_conflict_do_update(
        index_elements=["discussion_id", "turn_key"], set_={name: stmt.excluded[name] for name in _OPENED}
    ).returning(Message.id)


_OPEN = {"sqlite": Prepared(_upsert(sqlite.insert)), "postgresql": Prepared(_upsert(postgresql.insert))}
_CLOSE = Prepared(update(Message).where(Message.id == bindparam("mid")))  # type: ignore[arg-type]
# Completed messages after a seq, only the columns an agent's transcript needs.
_COMPLETED_AFTER = Prepared(
    select(Message.seq, Message.author_name, Message.content, Message.author_kind, Message.participant_id)
    .where(
        Message.discussion_id == bindparam("did"),
        Message.status == MessageStatus.COMPLETE,
        Message.seq > bindparam("after"),  # type: ignore[operator]
    )
    .order_by(Message.seq)  # type: ignore[arg-type]
)

# Tokens and cost spent so far: the agents' turns, and every other call (ModelCall rows). Checked before every
# turn when the discussion has a budget.
_SPENT_IN_TURNS = select(
    func.coalesce(func.sum(Message.input_tokens + Message.output_tokens), 0),
    func.coalesce(func.sum(Message.cost_usd), 0.0),
).where(Message.discussion_id == bindparam("did"))  # type: ignore[arg-type]
_SPENT_ON_CALLS = select(
    func.coalesce(func.sum(ModelCall.input_tokens + ModelCall.output_tokens), 0),
    func.coalesce(func.sum(ModelCall.cost_usd), 0.0),
).where(ModelCall.discussion_id == bindparam("did"))  # type: ignore[arg-type]

Row = tuple[int, str, str, str, int | None]  # (seq, author, content, "agent" | "human", participant id)


class NotNow(Exception):
    """The turn must not start: a person stopped the discussion (`logged`: their stop is in the log already),
    or a budget is used up."""

    def __init__(self, reason: str, *, logged: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.logged = logged


def open_turn(
    conn: Connection,
    started: TurnStarted,
    *,
    turn_key: str,
    provider: str | None,
    model: str | None,
    may_start: Callable[[str, str | None, int | None, float | None], None],
    closing: tuple[int, TurnCompleted, dict] | None = None,
) -> tuple[int, TurnStarted, TurnCompleted | None]:
    """Mark the turn's message streaming (creating the row on a first attempt) and log `started`.

    `may_start(status, pause reason, token budget, cost budget)` raises to refuse the turn, which rolls back the
    seqs taken with them. With `closing` (message id, TurnCompleted, row values), the turn before closes first,
    in the same transaction and with both seqs taken by one UPDATE.
    Returns (message id, the logged TurnStarted, the logged TurnCompleted of `closing` or None).
    """
    ((seq, status, reason, budget_tokens, budget_usd),) = _CLAIM.execute(
        conn, {"did": started.discussion_id, "n": 2 if closing else 1}
    )
    if closing:  # first, so the budget check counts the turn that just ended
        _write_outcome(conn, closing[0], seq - 1, closing[2])
    may_start(status, reason, budget_tokens, budget_usd)
    ((message_id,),) = _OPEN[conn.dialect.name].execute(
        conn,
        {
            "discussion_id": started.discussion_id,
            "participant_id": started.participant_id,
            "author_name": started.author_name,
            "author_kind": ParticipantKind.AGENT,
            "round": started.round,
            "turn_key": turn_key,
            "status": MessageStatus.STREAMING,
            "content": "",
            "start_seq": seq,
            "created_at": utcnow(),
            "provider": provider,
            "model": model,
        },
    )
    started = started.model_copy(update={"message_id": message_id})
    if closing:  # both events in one statement
        closed, event = append_events(conn, [(closing[1], seq - 1), (started, seq)])
        return message_id, event, closed  # type: ignore[return-value]
    return message_id, append_event(conn, started, seq=seq), None  # type: ignore[return-value]


def close_turn(conn: Connection, message_id: int, event: TurnCompleted | TurnFailed, **values):
    """Write the turn's outcome on its row and log `event`, with one seq for both."""
    seq = next_seq(conn, event.discussion_id)
    _write_outcome(conn, message_id, seq, values)
    return append_event(conn, event, seq=seq)


def _write_outcome(conn: Connection, message_id: int, seq: int, values: dict) -> None:
    """A finished turn's row: its outcome `values`, the seq of the event that closed it, and when."""
    _CLOSE.execute(conn, {"mid": message_id, "seq": seq, "completed_at": utcnow(), **values})


def completed_after(conn: Connection, discussion_id: int, after_seq: int) -> list[Row]:
    """Messages completed after `after_seq`, oldest first, as transcript rows."""
    return [
        (seq, author, content, "agent" if kind == ParticipantKind.AGENT else "human", pid)
        for seq, author, content, kind, pid in _COMPLETED_AFTER.execute(
            conn, {"did": discussion_id, "after": after_seq}
        )
    ]


def spent(conn: Connection, discussion_id: int) -> tuple[int, float]:
    """Tokens and cost of every call in the discussion so far."""
    turns = conn.execute(_SPENT_IN_TURNS, {"did": discussion_id}).one()
    others = conn.execute(_SPENT_ON_CALLS, {"did": discussion_id}).one()
    return int(turns[0]) + int(others[0]), float(turns[1]) + float(others[1])
