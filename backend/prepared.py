"""Statements written once as SQLAlchemy Core and run on the driver's own cursor: for the few every agent turn runs.

Even with its compiled cache, SQLAlchemy spends ~40 µs of Python on each execution (an execution context,
parameter processing, a result wrapper); the driver runs the same SQL in ~8 µs. An agent turn runs five such
statements, so that is a fifth of Maestro's cost per message (bench/orchestrator_overhead.py). Everything but the
execution still comes from SQLAlchemy: the SQL is its compilation for the connection's dialect, the parameter order
its `positiontup`, the conversions (timestamps on SQLite, JSON) its types' bind processors, omitted columns its
scalar defaults. The cursor is the caller's `Connection`'s own, so these statements share its transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Enum, Float, Integer, String
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import Executable
from sqlalchemy.types import TypeDecorator, TypeEngine


@dataclass(frozen=True, slots=True)
class _Plan:
    """One statement compiled for one dialect and one set of parameter names."""

    sql: str
    order: tuple[str, ...] | None  # positional paramstyles: the names in placeholder order; None for named ones
    process: tuple[tuple[str, Callable[[Any], Any]], ...]  # bind processors, for the names that have one
    defaults: tuple[tuple[str, Any], ...]  # omitted columns' scalar defaults, and the statement's own literals
    returns_rows: bool  # a SELECT, or DML with an explicit RETURNING


def _as_the_driver_gives(type_: TypeEngine) -> bool:
    """Integer, text and (non-decimal) float columns come back from every supported driver as Python's own."""
    if isinstance(type_, TypeDecorator):  # e.g. SQLModel's AutoString: fine unless it converts what it reads
        overridden = type(type_).process_result_value is not TypeDecorator.process_result_value
        return not overridden and _as_the_driver_gives(type_.impl_instance)
    if isinstance(type_, Enum):  # a String whose result processor makes enum members
        return False
    return isinstance(type_, Integer | String) or (isinstance(type_, Float) and not type_.asdecimal)


class Prepared:
    """A Core statement, compiled per (dialect, parameter names) on first use and run on the DBAPI cursor."""

    def __init__(self, statement: Executable) -> None:
        self.statement = statement
        self._plans: dict[tuple[str, str, str, frozenset[str]], _Plan] = {}

    def _plan(self, dialect: Dialect, keys: Iterable[str]) -> _Plan:
        key = (dialect.name, dialect.driver, dialect.paramstyle, frozenset(keys))
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = _compile(self.statement, dialect, sorted(key[3]))
        return plan

    def execute(self, conn: Connection, params: Mapping[str, Any]) -> list[tuple]:
        """Run the statement in `conn`'s transaction; returns its rows (RETURNING or SELECT), or [] when none.

        Rows are the driver's own tuples, so only integer, text and float columns may be read (checked when the
        statement is compiled): SQLite returns timestamps as text, which SQLAlchemy would have parsed."""
        plan = self._plan(conn.dialect, params)
        bound = _bind(plan, params)
        with _driver_cursor(conn, plan.sql, bound) as cursor:
            cursor.execute(plan.sql, bound)
            return cursor.fetchall() if plan.returns_rows else []

    def execute_many(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run the statement once per parameter set (an INSERT of several rows), in `conn`'s transaction."""
        if not rows:
            return
        plan = self._plan(conn.dialect, rows[0])
        bound = [_bind(plan, params) for params in rows]
        with _driver_cursor(conn, plan.sql, bound) as cursor:
            cursor.executemany(plan.sql, bound)


@contextmanager
def _driver_cursor(conn: Connection, sql: str, params: Any) -> Iterator[Any]:
    """A cursor in `conn`'s transaction (begun here if the connection has none, as `conn.execute` would), whose
    driver errors come out as SQLAlchemy's (an IntegrityError is `sqlalchemy.exc.IntegrityError`, as callers
    catch it)."""
    if not conn.in_transaction():
        conn.begin()
    dbapi = conn.dialect.loaded_dbapi
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        yield cursor
    except dbapi.Error as exc:
        raise DBAPIError.instance(sql, params, exc, dbapi.Error, dialect=conn.dialect) from exc
    finally:
        cursor.close()


def _bind(plan: _Plan, params: Mapping[str, Any]) -> Sequence[Any] | dict[str, Any]:
    values = dict(params)
    for name, default in plan.defaults:
        values.setdefault(name, default)
    for name, process in plan.process:
        values[name] = process(values[name])
    return values if plan.order is None else [values[name] for name in plan.order]


def _compile(statement: Executable, dialect: Dialect, keys: list[str]) -> _Plan:
    # for_executemany: no implicit RETURNING of the primary key (Postgres would add it to a plain INSERT).
    compiled = statement.compile(dialect=dialect, column_keys=keys, for_executemany=True)  # type: ignore[call-arg]
    if compiled.post_compile_params or compiled.literal_execute_params:  # e.g. IN (...) expanded per execution
        raise ValueError(f"{statement!r}: a bind expanded at execution time needs SQLAlchemy's execution")
    if getattr(compiled, "update_prefetch", None):
        raise ValueError(f"{statement!r}: an onupdate default needs SQLAlchemy's execution; pass the column's value")
    defaults: list[tuple[str, Any]] = []
    for column in getattr(compiled, "insert_prefetch", ()):  # columns the INSERT omits that have a Python default
        if not column.default.is_scalar:
            raise ValueError(f"{statement!r}: {column.key}'s default needs SQLAlchemy's execution; pass a value")
        defaults.append((column.key, column.default.arg))
    process = []
    for name, bind in compiled.binds.items():
        if bind.callable is not None:
            raise ValueError(f"{statement!r}: bind {name} takes its value from a callable; pass it instead")
        if name not in keys and not bind.required:  # a literal in the statement (None too)
            defaults.append((name, bind.value))
        processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if processor is not None:
            process.append((name, processor))
    for column in statement.exported_columns:  # type: ignore[attr-defined]
        if not _as_the_driver_gives(column.type):
            raise ValueError(f"{statement!r}: {column} would need SQLAlchemy's result processing")
    order = tuple(compiled.positiontup) if dialect.positional else None  # type: ignore[arg-type]
    returns_rows = statement.is_select or bool(getattr(statement, "_returning", ()))  # type: ignore[attr-defined]
    return _Plan(compiled.string, order, tuple(process), tuple(defaults), returns_rows)
