"""Start-up work shared by the app, the CLI and the tests: migrate the schema, seed the persona library."""

from __future__ import annotations

from backend.db import migrate, session_scope
from backend.services.personas import seed_personas


def prepare_database(url: str | None = None) -> None:
    """Migrate to the latest revision and add any missing default personas (safe to run on every start)."""
    migrate(url)
    with session_scope() as session:
        seed_personas(session)
