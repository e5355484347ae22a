"""The Reflex app: pages, plus a lifespan task that migrates the database and starts the runner."""

from __future__ import annotations

import contextlib

import reflex as rx

from backend.api import api_app
from backend.api.origins import websocket_origin_allowed
from backend.api.security_headers import security_headers
from backend.bootstrap import prepare_database
from backend.db import run_db
from backend.observability import configure_logging
from backend.orchestrator.runner import get_runner
from maestro_ui import routes
from maestro_ui.pages.account import AccountState, account_page
from maestro_ui.pages.admin import AdminState, admin_page
from maestro_ui.pages.audit import AuditState, audit_page
from maestro_ui.pages.decisions import DecisionPageState, DecisionsState, decision_page, decisions_page
from maestro_ui.pages.index import DiscussionsState, index_page
from maestro_ui.pages.join import JoinState, join_page
from maestro_ui.pages.login import login_page, signup_page
from maestro_ui.pages.memory import MemoryState, memory_page
from maestro_ui.pages.new import NewDiscussionState, new_page
from maestro_ui.pages.personas import PersonasState, personas_page
from maestro_ui.pages.room import room_page
from maestro_ui.state.auth import AuthState
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


# /metrics and any other plain HTTP routes win over Reflex's own (Reflex is mounted at "" beneath them); every
# response, pages included, then gets the security headers.
app = rx.App(
    theme=rx.theme(accent_color="indigo", radius="medium"),
    api_transformer=[api_app(), security_headers],
)
# The room's websocket opens only from this server's own origin (or one the operator lists): its handshake carries
# the session cookie, so another site must not be able to open it (cross-site websocket hijacking).
if app.sio is not None:
    app.sio.eio.cors_allowed_origins = websocket_origin_allowed
app.register_lifespan_task(maestro_lifespan)
# Pages for people only check the session first and send a signed-out browser to sign in (then back).
app.add_page(index_page, route=routes.INDEX, title="Maestro", on_load=[AuthState.require, DiscussionsState.load])
app.add_page(
    new_page, route=routes.NEW, title="New discussion · Maestro", on_load=[AuthState.require, NewDiscussionState.load]
)
app.add_page(room_page, route=routes.ROOM, title="Room · Maestro", on_load=RoomState.on_load)
app.add_page(audit_page, route=routes.AUDIT, title="Audit trail · Maestro", on_load=AuditState.load)
app.add_page(join_page, route=routes.JOIN, title="Join · Maestro", on_load=JoinState.join)
app.add_page(login_page, route=routes.LOGIN, title="Sign in · Maestro", on_load=AuthState.check)
app.add_page(signup_page, route=routes.SIGNUP, title="Sign up · Maestro", on_load=AuthState.check)
app.add_page(
    personas_page, route=routes.PERSONAS, title="Personas · Maestro", on_load=[AuthState.require, PersonasState.load]
)
app.add_page(
    decisions_page,
    route=routes.DECISIONS,
    title="Decisions · Maestro",
    on_load=[AuthState.require, DecisionsState.load],
)
app.add_page(decision_page, route=routes.DECISION, title="Decision · Maestro", on_load=DecisionPageState.load)
app.add_page(memory_page, route=routes.MEMORY, title="Memory · Maestro", on_load=[AuthState.require, MemoryState.load])
app.add_page(
    admin_page, route=routes.ADMIN, title="Instance admin · Maestro", on_load=[AuthState.require, AdminState.load]
)
app.add_page(
    account_page, route=routes.ACCOUNT, title="Your account · Maestro", on_load=[AuthState.require, AccountState.load]
)
