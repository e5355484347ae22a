"""POST /api/session: log in for the API (a bearer token, the same kind of session as the browser's); DELETE
/api/session: log that token out. Accounts are made in the browser (sign up), not here."""

from __future__ import annotations

from fastapi import Security
from starlette.requests import Request
from starlette.responses import Response

from backend.db import run_db
from backend.humans import accounts

from .http import BEARER, api_router, bearer_token, errors
from .schemas import Credentials, SessionOut

router = api_router(prefix="/api/session", tags=["session"])


@router.post("", status_code=201, response_model=SessionOut, responses=errors(413, 422, 429), summary="Log in")
async def log_in(body: Credentials, request: Request) -> dict:
    """A token for `Authorization: Bearer`; a wrong name or password is one vague 422, as in the browser."""
    address = request.client.host if request.client else None
    user, token = await accounts.run_auth(accounts.log_in, body.username, body.password, address=address)
    return {"token": token, "username": user.username, "display_name": user.display_name}


@router.delete("", status_code=204, response_class=Response, dependencies=[Security(BEARER)], summary="Log out")
async def log_out(request: Request) -> Response:
    """End the session of the bearer token sent (nothing to do without one)."""
    await run_db(accounts.log_out, bearer_token(request))
    return Response(status_code=204)
