"""Prepared statements: SQLAlchemy's SQL, parameter order, conversions and defaults, run on the driver's cursor."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    create_engine,
    insert,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from backend.prepared import Prepared

metadata = MetaData()
things = Table(
    "things",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(20), nullable=False),
    Column("status", String(10), nullable=False, default="new"),
    Column("count", Integer, nullable=False, default=0),
    Column("payload", JSON),
    Column("at", DateTime(timezone=True)),
)


@pytest.fixture
def engine():
    engine = create_engine("sqlite://")
    metadata.create_all(engine)
    yield engine
    engine.dispose()


def test_insert_fills_scalar_defaults_converts_values_and_shares_the_transaction(engine) -> None:
    add = Prepared(insert(things).returning(things.c.id))
    at = datetime(2026, 12, 1, 10, 30, tzinfo=UTC)
    with engine.begin() as conn:
        [(first,)] = add.execute(conn, {"name": "apollo", "payload": {"k": [1, 2]}, "at": at})
        Prepared(insert(things)).execute_many(conn, [{"name": "a", "count": 2}, {"name": "b", "count": 3}])
        row = conn.execute(select(things).where(things.c.id == first)).one()  # the same transaction sees it
    assert (row.name, row.status, row.count, row.payload) == ("apollo", "new", 0, {"k": [1, 2]})
    assert row.at.replace(tzinfo=UTC) == at  # stored as SQLAlchemy stores it: SQLAlchemy reads it back
    with engine.connect() as conn:
        assert conn.execute(select(things.c.name, things.c.count).order_by(things.c.id)).all() == [
            ("apollo", 0),
            ("a", 2),
            ("b", 3),
        ]


def test_literals_in_the_statement_are_bound_and_rows_come_back(engine) -> None:
    with engine.begin() as conn:
        Prepared(insert(things)).execute_many(
            conn, [{"name": n, "status": s} for n, s in [("a", "done"), ("b", "new")]]
        )
        done = Prepared(select(things.c.name).where(things.c.status == "done", things.c.id > bindparam("after")))
        assert done.execute(conn, {"after": 0}) == [("a",)]
        bump = Prepared(update(things).where(things.c.name == bindparam("n")).values(count=things.c.count + 1))
        assert bump.execute(conn, {"n": "b"}) == []
        assert conn.execute(select(things.c.count).where(things.c.name == "b")).scalar_one() == 1


def test_a_rolled_back_transaction_takes_the_prepared_writes_with_it(engine) -> None:
    add = Prepared(insert(things))
    with pytest.raises(RuntimeError), engine.begin() as conn:
        add.execute(conn, {"name": "gone"})
        raise RuntimeError("a budget is used up")
    with engine.connect() as conn:
        assert conn.execute(select(things)).all() == []


def test_columns_the_driver_would_return_raw_are_refused_when_compiled(engine) -> None:
    with engine.begin() as conn, pytest.raises(ValueError, match="result processing"):
        Prepared(select(things.c.at)).execute(conn, {})


def test_a_constraint_broken_by_a_prepared_statement_is_sqlalchemy_s_integrity_error(engine) -> None:
    add = Prepared(insert(things))
    with pytest.raises(IntegrityError), engine.begin() as conn:  # as callers of append_event catch it
        add.execute(conn, {"id": 1, "name": "a"})
        add.execute(conn, {"id": 1, "name": "b"})


def test_a_connection_without_a_transaction_gets_one_so_its_commit_keeps_the_write(engine) -> None:
    with engine.connect() as conn:
        Prepared(insert(things)).execute(conn, {"name": "kept"})
        conn.commit()
    with engine.connect() as conn:
        assert conn.execute(select(things.c.name)).scalars().all() == ["kept"]


def test_binds_expanded_at_execution_time_are_refused_when_compiled(engine) -> None:
    with engine.begin() as conn, pytest.raises(ValueError, match="expanded at execution time"):
        Prepared(select(things.c.name).where(things.c.id.in_(bindparam("ids", expanding=True)))).execute(
            conn, {"ids": [1, 2]}
        )
