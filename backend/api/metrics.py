"""GET /metrics: Maestro's Prometheus metrics (backend/observability.py) in the text exposition format."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from backend import observability


async def metrics(request: Request) -> Response:
    """The current metrics; OpenMetrics when the scraper's Accept header asks for it."""
    body, content_type = observability.render(request.headers.get("accept"))
    return Response(body, media_type=content_type, headers={"Cache-Control": "no-store"})


def metrics_route(path: str = "/metrics") -> Route:
    """The route, for mounting on any Starlette app."""
    return Route(path, metrics, methods=["GET"], name="metrics")
