"""Export a decision card as Markdown or JSON, for members of its discussion only.

GET /api/decisions/{id}.md and .json take the API's bearer token; GET /export/decisions/{id}.md and .json are the
same download for a signed-in browser (its HttpOnly session cookie), a plain route outside the API's schema. A
stranger and an unknown id both get 403.
"""

from __future__ import annotations

import json

from fastapi import Security
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from backend.api.browser_session import SESSION_COOKIE
from backend.api.http import BEARER, ErrorOut, ItemId, api_router, bearer_token
from backend.db import run_db
from backend.deliberation import decisions
from backend.errors import NotFound
from backend.humans import accounts, membership

router = api_router(tags=["decisions"])


async def export(request: Request) -> Response:
    """The decision as Markdown or JSON (by the path's extension), as a download."""
    denied = JSONResponse({"error": "Only people in its discussion can export a decision."}, status_code=403)
    browser = request.url.path.startswith("/export/")
    user = await run_db(accounts.resolve, request.cookies.get(SESSION_COOKIE) if browser else bearer_token(request))
    if user is None:
        return denied
    try:
        decision_id = int(request.path_params["decision_id"])
        card = await run_db(decisions.get_card, decision_id)
    except (ValueError, NotFound):
        return denied  # the same answer as for a stranger: which decisions exist is not leaked
    if await run_db(membership.member_of, card["discussion_id"], user) is None:
        return denied
    fmt = request.path_params["fmt"]
    if fmt not in ("md", "json"):
        return JSONResponse({"error": "Export as .md or .json."}, status_code=404)
    name = f"decision-{decision_id}-v{card['version']}.{fmt}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"}
    if fmt == "json":
        return Response(json.dumps(card, indent=2, ensure_ascii=False), media_type="application/json", headers=headers)
    return PlainTextResponse(decisions.to_markdown(card), media_type="text/markdown; charset=utf-8", headers=headers)


@router.get(
    "/api/decisions/{decision_id:int}.{fmt:str}",
    name="decision-export",
    response_class=Response,
    dependencies=[Security(BEARER)],
    summary="Export a decision card",
    responses={
        200: {
            "description": "The card as a download: Markdown for `.md`, JSON for `.json`.",
            "content": {"text/markdown": {"schema": {"type": "string"}}, "application/json": {"schema": {}}},
        },
        403: {"model": ErrorOut, "description": "Not signed in, not in its discussion, or no such decision."},
        404: {"model": ErrorOut, "description": "An extension other than .md or .json."},
        422: {"model": ErrorOut, "description": "An id out of range."},
    },
)
async def export_api(request: Request, decision_id: ItemId, fmt: str) -> Response:
    """The decision as Markdown (`.md`) or JSON (`.json`), to people in its discussion (403 for anyone else)."""
    return await export(request)


def download_route() -> Route:
    """The same download for a signed-in browser, by its session cookie (not part of the API)."""
    return Route("/export/decisions/{decision_id:int}.{fmt:str}", export, methods=["GET"], name="decision-download")
