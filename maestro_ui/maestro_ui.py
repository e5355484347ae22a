"""The Reflex app: pages, plus a lifespan task that migrates the database and starts the runner."""

from __future__ import annotations

import contextlib

import reflex as rx
from starlette.applications import Starlette

from backend.api import api_routes
from backend.bootstrap import prepare_database
from backend.db import run_db
from backend.observability import configure_logging
from backend.orchestrator.runner import get_runner
from maestro_ui import routes
from maestro_ui.pages.index import DiscussionsState, index_page
from maestro_ui.pages.new import NewDiscussionState, new_page
from maestro_ui.pages.personas import PersonasState, personas_page
from maestro_ui.pages.room import room_page
from maestro_ui.state.room import RoomState

configure_logging()  # one JSON object per line; MAESTRO_LOG_FORMAT=text / MAESTRO_LOG_LEVEL to change


@contextlib.asynccontextmanager
async def maestro_lifespan():
    """Migrate on start (never at import), resume unfinished discussions, stop engines on shutdown."""
    await run_db(prepare_database)
    runner = get_runner()
    runner.start_background()
    try:
        yield
    finally:
        await runner.shutdown()


# /metrics and any other plain HTTP routes win over Reflex's own (Reflex is mounted at "" beneath them).
app = rx.App(theme=rx.theme(accent_color="indigo", radius="medium"), api_transformer=Starlette(routes=api_routes()))
app.register_lifespan_task(maestro_lifespan)
app.add_page(index_page, route=routes.INDEX, title="Maestro", on_load=DiscussionsState.load)
app.add_page(new_page, route=routes.NEW, title="New discussion · Maestro", on_load=NewDiscussionState.load)
app.add_page(room_page, route=routes.ROOM, title="Room · Maestro", on_load=RoomState.on_load)
app.add_page(personas_page, route=routes.PERSONAS, title="Personas · Maestro", on_load=PersonasState.load)
