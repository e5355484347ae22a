"""Shared fixtures: a fresh database per test on SQLite, and on Postgres for tests that ask for both."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

os.environ.setdefault("REFLEX_TELEMETRY_ENABLED", "false")
# Tests sign many people up; the invite-only default (and the admin's sign-up links) are tested in tests/security.
os.environ.setdefault("MAESTRO_SIGNUP_POLICY", "open")

PG_ADMIN_URL = os.environ.get("MAESTRO_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_TEST_URL = os.environ.get("MAESTRO_TEST_REDIS", "redis://127.0.0.1:6379/15")


def _use_database(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    from backend.bootstrap import prepare_database
    from backend.config import get_settings
    from backend.db import reset_engine
    from backend.memory import recall

    monkeypatch.setenv("DATABASE_URL", url)
    get_settings.cache_clear()
    reset_engine()
    recall.reset_for_tests()  # memory's hot tier indexes entry ids of one database
    prepare_database(url)


@pytest.fixture
def sqlite_db(tmp_path, monkeypatch) -> Iterator[str]:
    """A fresh, migrated SQLite database file."""
    from backend.config import get_settings
    from backend.db import reset_engine

    url = f"sqlite:///{tmp_path / 'maestro.db'}"
    _use_database(monkeypatch, url)
    yield url
    reset_engine()
    get_settings.cache_clear()


@pytest.fixture
def postgres_db(monkeypatch) -> Iterator[str]:
    """A fresh, migrated Postgres database, dropped afterwards."""
    psycopg = pytest.importorskip("psycopg")
    from backend.config import get_settings
    from backend.db import reset_engine

    name = f"maestro_test_{uuid.uuid4().hex[:10]}"
    admin_dsn = PG_ADMIN_URL
    try:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:  # pragma: no cover - the server runs on every dev and CI machine
        pytest.fail(f"PostgreSQL is not reachable at {admin_dsn}: {exc}")
    url = admin_dsn.rsplit("/", 1)[0] + f"/{name}"
    _use_database(monkeypatch, url)
    yield url
    reset_engine()
    get_settings.cache_clear()
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request) -> str:
    """Run the test once on SQLite and once on Postgres."""
    return request.getfixturevalue(f"{request.param}_db")


@pytest.fixture(autouse=True)
def _fresh_sign_in_counts() -> Iterator[None]:
    """Failed sign-ins and rate limits are counted per process (or in Redis): no test inherits another's."""
    from backend.humans import rate_limits, sign_in_limit

    sign_in_limit.reset()
    rate_limits.reset()
    yield
    sign_in_limit.reset()
    rate_limits.reset()


@pytest.fixture
def bus():
    """A fresh in-process bus installed as the process-wide bus."""
    from backend.events.bus import InProcessBus, set_bus

    b = InProcessBus()
    set_bus(b)
    yield b
    set_bus(None)


def pytest_collection_modifyitems(config, items):
    """Run the browser tests last.

    Playwright's sync API keeps an event loop running in the main thread while its browser is open; any
    pytest-asyncio test scheduled after that would fail with "cannot be called from a running event loop".
    """
    for item in items:  # every test under tests/e2e is a browser test, marked or not
        if item.nodeid.startswith("tests/e2e/") and item.get_closest_marker("e2e") is None:
            item.add_marker(pytest.mark.e2e)
    items.sort(key=lambda item: item.get_closest_marker("e2e") is not None)
