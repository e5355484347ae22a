"""Plain HTTP routes served beside the Reflex app (mounted ahead of it through `rx.App(api_transformer=...)`)."""

from __future__ import annotations

from starlette.routing import Route

from backend.api.decisions import decision_routes
from backend.api.metrics import metrics_route


def api_routes() -> list[Route]:
    """Every HTTP route Maestro adds to the backend: GET /metrics, decision exports."""
    return [metrics_route(), *decision_routes()]
