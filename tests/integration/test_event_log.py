"""The event log: gapless, unique seqs per discussion under concurrent writers, on SQLite and Postgres."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy.exc import IntegrityError

from backend.db import session_scope
from backend.events.log import append_event, read_events
from backend.events.schema import HumanMessagePosted, RunStarted
from backend.models import Discussion, EventRecord


def _new_discussion() -> int:
    with session_scope() as s:
        d = Discussion(topic="t")
        s.add(d)
        s.flush()
        assert d.id is not None
        return d.id


def test_seqs_are_gapless_under_concurrent_writers(database):
    a, b = _new_discussion(), _new_discussion()
    errors: list[BaseException] = []

    def writer(discussion_id: int, n: int) -> None:
        try:
            for i in range(n):
                with session_scope() as s:
                    append_event(
                        s,
                        HumanMessagePosted(discussion_id=discussion_id, message_id=i, author_name="x", content=str(i)),
                    )
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(d, 25)) for d in (a, b, a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with session_scope() as s:
        for d in (a, b):
            seqs = [e.seq for e in read_events(s, d)]
            assert seqs == list(range(1, 51))
            assert s.get(Discussion, d).last_seq == 50


def test_a_rolled_back_append_leaves_no_gap(database):
    d = _new_discussion()
    with pytest.raises(RuntimeError), session_scope() as s:
        append_event(s, RunStarted(discussion_id=d))
        raise RuntimeError("boom")
    with session_scope() as s:
        event = append_event(s, RunStarted(discussion_id=d))
    assert event.seq == 1


def test_duplicate_seq_is_refused_by_the_database(database):
    d = _new_discussion()
    with session_scope() as s:
        append_event(s, RunStarted(discussion_id=d))
    with pytest.raises(IntegrityError), session_scope() as s:
        s.add(EventRecord(discussion_id=d, seq=1, type="run_started", payload={}))


def test_read_after_seq_returns_typed_events_in_order(database):
    d = _new_discussion()
    with session_scope() as s:
        for i in range(5):
            append_event(s, HumanMessagePosted(discussion_id=d, message_id=i, author_name="Ann", content=f"m{i}"))
    with session_scope() as s:
        events = read_events(s, d, after_seq=2)
    assert [e.seq for e in events] == [3, 4, 5]
    assert all(isinstance(e, HumanMessagePosted) for e in events)
    assert events[0].content == "m2" and events[0].at is not None
