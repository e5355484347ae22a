"""POST /api/session: log in for the API (a bearer token, the same kind of session as the browser's); DELETE
/api/session: log that token out. Accounts are made in the browser (sign up), not here."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from backend.db import run_db
from backend.humans import accounts

from .http import bearer_token, endpoint, read_json


class Credentials(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(max_length=200)
    password: str = Field(max_length=1000)


@endpoint
async def log_in(request: Request) -> Response:
    """A token for `Authorization: Bearer`; a wrong name or password is one vague 422, as in the browser."""
    body = await read_json(request, Credentials)
    address = request.client.host if request.client else None
    user, token = await accounts.run_auth(accounts.log_in, body.username, body.password, address=address)
    return JSONResponse({"token": token, "username": user.username, "display_name": user.display_name}, status_code=201)


@endpoint
async def log_out(request: Request) -> Response:
    await run_db(accounts.log_out, bearer_token(request))
    return Response(status_code=204)


def session_routes() -> list[Route]:
    return [Route("/api/session", log_in, methods=["POST"]), Route("/api/session", log_out, methods=["DELETE"])]
