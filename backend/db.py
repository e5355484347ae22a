"""Database engine and sessions: SQLite (WAL) by default, Postgres when DATABASE_URL says so."""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import lru_cache
from typing import TypeVar

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session, create_engine

from backend.config import PROJECT_ROOT, get_settings

T = TypeVar("T")


def _normalise_url(url: str) -> str:
    """Use psycopg 3 for plain postgres URLs (psycopg2 is not installed)."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str) -> Engine:
    """Create a pooled engine; SQLite gets WAL, a busy timeout and foreign keys on every connection."""
    url = _normalise_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


@lru_cache
def get_engine() -> Engine:
    """The process-wide engine for the configured DATABASE_URL."""
    return make_engine(get_settings().database_url)


def reset_engine() -> None:
    """Forget the cached engine (tests switch databases)."""
    if get_engine.cache_info().currsize:
        get_engine().dispose()
    get_engine.cache_clear()


@contextmanager
def session_scope() -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    with Session(get_engine(), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


async def run_db(fn: Callable[..., T], *args, **kwargs) -> T:
    """Run blocking database work off the event loop, so a locked SQLite file never stalls streaming."""
    return await asyncio.to_thread(fn, *args, **kwargs)


class DbLane:
    """One thread of its own for one owner's database steps (an engine's), taken one after another.

    Like `run_db`, it keeps blocking work off the event loop. Handing every step to the same thread is cheaper
    than the shared pool, whose idle threads take turns (bench/orchestrator_overhead.py: ~0.15 ms CPU per
    message less); an engine awaits its steps one at a time anyway. The thread starts on first use.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._executor: ThreadPoolExecutor | None = None

    async def run(self, fn: Callable[..., T], *args, **kwargs) -> T:
        """`run_db` on this lane (the caller's context vars, e.g. the log's discussion id, go along)."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self.name)
        call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    def close(self) -> None:
        """Let the thread end once its last step is done."""
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None


def migrate(url: str | None = None) -> None:
    """Bring the schema to the latest Alembic revision (called at app start, by the CLI and by tests)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config(str(PROJECT_ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(PROJECT_ROOT / "alembic"))
    cfg.set_main_option("sqlalchemy.url", _normalise_url(url or get_settings().database_url))
    # alembic/env.py would otherwise fileConfig() alembic.ini's logging over the process's own (JSON) handlers.
    cfg.attributes["skip_logging"] = True
    command.upgrade(cfg, "head")
