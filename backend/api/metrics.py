"""GET /metrics: Maestro's Prometheus metrics (backend/observability.py) in the text exposition format.

The numbers say how busy the instance is and which models it spends on, so they are the operator's: with
MAESTRO_METRICS_TOKEN set, a scraper must send `Authorization: Bearer <token>`; without it, only a client on this
machine (a loopback address, not relayed by a proxy) is answered. Everyone else gets a 401/403 that says how to
enable scraping. A request that carries X-Forwarded-For, Forwarded or X-Real-IP came through a proxy and is not
local whatever its address: a reverse proxy on the same machine does not open the metrics to the internet.
"""

from __future__ import annotations

import hmac
import ipaddress

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from backend import observability
from backend.config import get_settings

from .http import bearer_token

_RELAYED = ("x-forwarded-for", "forwarded", "x-real-ip")


def _loopback(request: Request) -> bool:
    """Whether the caller is on this machine itself (127.0.0.0/8 or ::1) and no proxy relayed the request."""
    if any(name in request.headers for name in _RELAYED):
        return False
    host = request.client.host if request.client else ""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1 from a dual-stack socket
    return (mapped or address).is_loopback


def _refusal(request: Request) -> Response | None:
    """Why this caller may not read the metrics, as an answer; None when they may."""
    expected = get_settings().metrics_token
    if expected:
        given = bearer_token(request) or ""
        if hmac.compare_digest(given.encode(), expected.encode()):
            return None
        return JSONResponse(
            {
                "error": "The metrics need 'Authorization: Bearer <MAESTRO_METRICS_TOKEN>'; this request has no valid token."
            },
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer realm="metrics"', "Cache-Control": "no-store"},
        )
    if _loopback(request):
        return None
    return JSONResponse(
        {
            "error": "The metrics are served only to this machine. To scrape from elsewhere, set "
            "MAESTRO_METRICS_TOKEN on the server and send 'Authorization: Bearer <that token>'."
        },
        status_code=403,
        headers={"Cache-Control": "no-store"},
    )


async def metrics(request: Request) -> Response:
    """The current metrics, to the operator only; OpenMetrics when the scraper's Accept header asks for it."""
    refused = _refusal(request)
    if refused is not None:
        return refused
    body, content_type = observability.render(request.headers.get("accept"))
    return Response(body, media_type=content_type, headers={"Cache-Control": "no-store"})


def metrics_route(path: str = "/metrics") -> Route:
    """The route, for mounting on any Starlette app."""
    return Route(path, metrics, methods=["GET"], name="metrics")
