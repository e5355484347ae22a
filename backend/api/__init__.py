"""Maestro's HTTP API as one FastAPI app, mounted ahead of the Reflex app (`rx.App(api_transformer=...)`).

The REST + streaming API (sessions, discussions and their actions, the live event stream, decision exports) is
described at /api/openapi.json, with docs at /api/docs. Beside it, as plain routes outside the schema: GET
/metrics (the operator's), the browser's session cookie (/auth/...) and the browser's decision download
(/export/...). Paths that match none of these fall through to Reflex, mounted beneath.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from backend.api import decisions, discussions, events_stream, memory, session
from backend.api.browser_session import browser_session_routes
from backend.api.docs import OPENAPI_URL, docs_routes
from backend.api.http import ApiError, error_response
from backend.api.metrics import metrics_route

DESCRIPTION = """\
A live room where LLM agents and people deliberate to an approved decision.

Log in with `POST /api/session` (accounts are made in the browser), then send `Authorization: Bearer <token>`.
Every error is `{"error": "<message>", "fields": {"<field>": "<what is wrong>"}}`.
"""


ROUTERS: tuple[APIRouter, ...] = (
    decisions.router,
    session.router,
    discussions.router,
    events_stream.router,
    memory.router,
)


def plain_routes() -> list[Route]:
    """The routes beside the API, outside its schema: metrics, the browser's cookie and download, the docs page."""
    return [metrics_route(), decisions.download_route(), *browser_session_routes(), *docs_routes()]


def listed_routes(app: FastAPI) -> list[BaseRoute]:
    """Every route `app` answers (the schema's own included), each router's routes in place of its inclusion: for
    tests and tools that go through them all."""
    return [r for r in app.routes if isinstance(r, Route)] + [route for router in ROUTERS for route in router.routes]


def api_app() -> FastAPI:
    """The app: the API's routers, its schema and docs, its error shape, and the plain routes beside it."""
    app = FastAPI(
        title="Maestro API",
        version="1",
        description=DESCRIPTION,
        openapi_url=OPENAPI_URL,
        docs_url=None,  # FastAPI's own pages load from a CDN; backend/api/docs.py serves them from here
        redoc_url=None,
        strict_content_type=False,  # a JSON body without a Content-Type is still read as JSON, as it always was
    )
    app.router.routes.extend(plain_routes())
    for router in ROUTERS:
        app.include_router(router)
    # The routes answer their own errors (backend/api/http.py ApiRoute); these are the router's: no such path or
    # method (in the app, Reflex beneath answers unknown paths first), in the same shape.
    for exc in (HTTPException, RequestValidationError, ApiError):
        app.add_exception_handler(exc, _answer)
    return app


async def _answer(request: Request, exc: Exception) -> Response:
    return error_response(request, exc)
