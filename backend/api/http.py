"""What every API route shares: who is asking, a bounded JSON body, and errors as JSON with the right status.

Identity comes only from the server: a bearer token from POST /api/session, and nothing else. The API ignores the
browser's session cookie, so another site can neither make a signed-in browser act (no CSRF) nor read what it sees,
whatever CORS allows. Every error is `{"error": "<readable message>", "fields": {"<field>": "<what is wrong>"}}`
(`fields` only when fields are at fault): a bad field is 422, a role that may not act is 403, an unknown or hidden
discussion is 404, a body over the limit is 413, too many tries is 429 with Retry-After, anything unexpected is a
logged 500 that shows no traceback. Routes get all this by being an `ApiRoute` (see `api_router`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Security
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from backend.db import run_db
from backend.errors import Forbidden, InputError, NotFound, TooManyAttempts
from backend.humans import accounts, membership
from backend.models import User

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 256 * 1024  # far above any valid request; a message itself is limited to max_message_chars
MAX_ID = 2**63 - 1  # the largest id a database row can have; a larger one is a 422, not an overflow


class ApiError(Exception):
    """An error answer: a status and a readable message (and, for bad fields, which field says what)."""

    def __init__(self, status: int, message: str, fields: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.fields = status, message, fields or {}

    def response(self) -> JSONResponse:
        body: dict = {"error": self.message}
        if self.fields:
            body["fields"] = self.fields
        return JSONResponse(body, status_code=self.status)


class ErrorOut(BaseModel):
    """Every error answer: a message for people, and for bad input which field says what."""

    error: str
    fields: dict[str, str] | None = Field(default=None, description="present when input fields are at fault")


_MEANINGS = {
    401: "Not signed in: no bearer token, or one that has expired or was logged out.",
    403: "Signed in, but your role may not do this here.",
    404: "No such discussion (or item) that you are in.",
    409: "Not now: the discussion is not in a state that allows it.",
    413: f"The request body is over {MAX_BODY_BYTES // 1024} KB.",
    422: "The request is not valid; `fields` says which field is wrong and why.",
    429: "Too many tries for now; Retry-After says how many seconds to wait.",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The error answers a route may give, for its OpenAPI description."""
    return {status: {"model": ErrorOut, "description": _MEANINGS[status]} for status in statuses}


def bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


BEARER = HTTPBearer(
    auto_error=False,  # the answer to a missing token is ours (401 with how to sign in), not FastAPI's
    scheme_name="session token",
    description="POST /api/session gives the token; send it as `Authorization: Bearer <token>`.",
)


async def actor(
    request: Request, _documented: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)]
) -> User:
    """The signed-in person named by the bearer token; 401 otherwise."""
    user = await run_db(accounts.resolve, bearer_token(request))
    if user is None:
        raise ApiError(401, "Sign in first: POST /api/session, then send 'Authorization: Bearer <token>'.")
    return user


Actor = Annotated[User, Depends(actor)]
DiscussionId = Annotated[int, Path(ge=0, le=MAX_ID, description="the discussion's id")]
ItemId = Annotated[int, Path(ge=0, le=MAX_ID)]


@dataclass(frozen=True)
class Member:
    """The discussion in the path and the person asking, who is in it."""

    discussion_id: int
    user: User


async def member(discussion_id: DiscussionId, user: Actor) -> Member:
    """The caller as a member of the path's discussion; 404 otherwise, as for no such one (which discussions exist
    is not leaked)."""
    if await run_db(membership.member_of, discussion_id, user) is None:
        raise ApiError(404, f"No discussion {discussion_id} that you are in.")
    return Member(discussion_id, user)


InDiscussion = Annotated[Member, Depends(member)]


def _field(loc: tuple | list) -> str:
    """`("body", "agents", 0, "persona")` -> `agents.0.persona`; a body that is not JSON at all is `body`."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    if parts and isinstance(parts[-1], int) and len(parts) == 1:
        parts = []  # the position of a JSON syntax error, not a field
    return ".".join(str(p) for p in parts) or "body"


def validation_failed(err: RequestValidationError) -> JSONResponse:
    """A 422 that names each bad field, in the API's error shape (not FastAPI's `detail` list)."""
    fields: dict[str, str] = {}
    in_body = True
    for e in err.errors():
        fields.setdefault(_field(e.get("loc", ())), e.get("msg", "Not valid."))
        in_body = in_body and bool(e.get("loc")) and e["loc"][0] == "body"
    where = "The request body is not valid: " if in_body else "The request is not valid: "
    return ApiError(422, where + "; ".join(f"{k}: {v}" for k, v in fields.items()), fields).response()


def error_response(request: Request, exc: Exception) -> Response:
    """What the services raise, as JSON answers; anything unexpected is a logged 500, never a traceback."""
    if isinstance(exc, ApiError):
        return exc.response()
    if isinstance(exc, RequestValidationError):
        return validation_failed(exc)
    if isinstance(exc, TooManyAttempts):
        response = ApiError(429, str(exc), exc.errors).response()
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    if isinstance(exc, InputError):
        return ApiError(422, str(exc), exc.errors).response()
    if isinstance(exc, Forbidden):
        return ApiError(403, str(exc)).response()
    if isinstance(exc, NotFound):
        return ApiError(404, str(exc) or "Not found.").response()
    if isinstance(exc, HTTPException):  # the router's own: no such path, or not this method
        response = ApiError(exc.status_code, str(exc.detail)).response()
        response.headers.update(exc.headers or {})
        return response
    log.exception("API %s %s failed", request.method, request.url.path, exc_info=exc)
    return ApiError(500, "Something went wrong on the server; it is logged.").response()


async def _read_bounded(request: Request) -> None:
    """Read the body no further than MAX_BODY_BYTES (a 413 with the limit past that) and keep it for FastAPI to
    parse; an empty body reads as `{}`, so a missing field is named as such."""
    too_big = ApiError(
        413, f"The request body is over {MAX_BODY_BYTES // 1024} KB; a message may be at most 20,000 characters."
    )
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise too_big
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise too_big
    try:
        body.decode()
    except UnicodeDecodeError:
        message = "The body is not JSON: it is not UTF-8 text."
        raise ApiError(422, f"The request body is not valid: body: {message}", {"body": message}) from None
    request._body = bytes(body) or b"{}"


class ApiRoute(APIRoute):
    """A route whose body is read bounded and whose every failure is answered in the API's error shape."""

    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        handle = super().get_route_handler()
        reads_body = self.body_field is not None

        async def answer(request: Request) -> Response:
            try:
                if reads_body:
                    await _read_bounded(request)
                return await handle(request)
            except Exception as exc:
                return error_response(request, exc)

        return answer


def api_router(**kwargs: Any) -> APIRouter:
    """An APIRouter whose routes are ApiRoutes."""
    return APIRouter(route_class=ApiRoute, **kwargs)
