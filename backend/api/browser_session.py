"""The browser's session cookie, set and cleared by the server, so page script never holds it.

A web form that signs someone in (maestro_ui/state/auth.py) gets a one-time grant and sends the browser to
GET /auth/session?grant=...&next=/room/3; this route swaps the grant for a session and sets it as an HttpOnly,
SameSite=Lax cookie (Secure behind HTTPS), then sends the browser on. GET /auth/signed-out clears it. Neither is
part of the REST API, which takes only the bearer header.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from backend.config import get_settings
from backend.db import run_db
from backend.humans import accounts

SESSION_COOKIE = "maestro_session"
LOGIN_PATH = "/login"


def safe_next(target: str | None, fallback: str = "/") -> str:
    """A path on this site to go on to; anything else (another host, `//evil`, a scheme) is the fallback."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return fallback
    parts = urlsplit(target)
    return fallback if parts.scheme or parts.netloc else target


def _secure(request: Request) -> bool:
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return get_settings().secure_cookies or request.url.scheme == "https" or forwarded == "https"


def set_session_cookie(response: Response, request: Request, token: str) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=accounts.SESSION_DAYS * 86400,
        path="/",
        httponly=True,
        secure=_secure(request),
        samesite="lax",
    )


async def start(request: Request) -> Response:
    """Swap the grant for a session cookie and go on; an expired or reused grant goes back to sign-in."""
    token = await run_db(accounts.redeem, request.query_params.get("grant"))
    target = safe_next(request.query_params.get("next"))
    if token is None:
        return RedirectResponse(f"{LOGIN_PATH}?expired=1", status_code=303, headers={"Cache-Control": "no-store"})
    response = RedirectResponse(target, status_code=303, headers={"Cache-Control": "no-store"})
    set_session_cookie(response, request, token)
    return response


async def signed_out(request: Request) -> Response:
    """Clear the cookie (the session itself was ended by the page that sent the browser here)."""
    response = RedirectResponse(safe_next(request.query_params.get("next"), LOGIN_PATH), status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, secure=_secure(request), samesite="lax")
    return response


def browser_session_routes() -> list[Route]:
    return [Route("/auth/session", start, methods=["GET"]), Route("/auth/signed-out", signed_out, methods=["GET"])]
