"""Plain HTTP routes served beside the Reflex app (mounted ahead of it through `rx.App(api_transformer=...)`)."""

from __future__ import annotations

from starlette.routing import Route

from backend.api.browser_session import browser_session_routes
from backend.api.decisions import decision_routes
from backend.api.discussions import discussion_routes
from backend.api.events_stream import events_route
from backend.api.metrics import metrics_route
from backend.api.session import session_routes


def api_routes() -> list[Route]:
    """Every HTTP route Maestro adds to the backend: GET /metrics, decision exports, the browser's session cookie
    (/auth/...), and the REST + streaming API (sessions, discussions and their actions, the live event stream)."""
    return [
        metrics_route(),
        *decision_routes(),
        *browser_session_routes(),
        *session_routes(),
        *discussion_routes(),
        events_route(),
    ]
