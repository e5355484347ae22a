"""Export a decision card as Markdown or JSON, for members of its discussion only.

GET /api/decisions/{id}.md and .json take the API's bearer token; GET /export/decisions/{id}.md and .json are the
same download for a signed-in browser (its HttpOnly session cookie). A stranger and an unknown id both get 403.
"""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from backend.api.browser_session import SESSION_COOKIE
from backend.api.http import bearer_token
from backend.db import run_db
from backend.deliberation import decisions
from backend.humans import accounts, membership
from backend.services.errors import NotFound


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


def decision_routes() -> list[Route]:
    return [
        Route("/api/decisions/{decision_id:int}.{fmt:str}", export, methods=["GET"], name="decision-export"),
        Route("/export/decisions/{decision_id:int}.{fmt:str}", export, methods=["GET"], name="decision-download"),
    ]
