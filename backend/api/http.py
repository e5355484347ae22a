"""What every REST route shares: who is asking, a bounded JSON body, and errors as JSON with the right status.

Identity comes only from the server: a bearer token from POST /api/session, and nothing else. The API ignores the
browser's session cookie, so another site can neither make a signed-in browser act (no CSRF) nor read what it sees,
whatever CORS allows. Service errors keep their readable messages: a field error is
422, a role that may not act is 403, an unknown or hidden discussion is 404, a body over the limit is 413.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from backend.db import run_db
from backend.humans import accounts, membership
from backend.models import User
from backend.services.errors import Forbidden, InputError, NotFound, TooManyAttempts

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 256 * 1024  # far above any valid request; a message itself is limited to max_message_chars
M = TypeVar("M", bound=BaseModel)


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


def bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


async def actor(request: Request) -> User:
    """The signed-in person named by the bearer token; 401 otherwise."""
    user = await run_db(accounts.resolve, bearer_token(request))
    if user is None:
        raise ApiError(401, "Sign in first: POST /api/session, then send 'Authorization: Bearer <token>'.")
    return user


async def read_json(request: Request, model: type[M]) -> M:
    """The body as `model`, read no further than MAX_BODY_BYTES (a 413 with the limit past that)."""
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
        return model.model_validate_json(bytes(body) or b"{}")
    except ValidationError as err:
        fields = {".".join(str(p) for p in e["loc"]) or "body": e["msg"] for e in err.errors(include_url=False)}
        raise ApiError(
            422, "The request body is not valid: " + "; ".join(f"{k}: {v}" for k, v in fields.items()), fields
        ) from None


def endpoint(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """Turn what the services raise into JSON answers; anything unexpected is a logged 500, never a traceback."""

    @functools.wraps(handler)
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except ApiError as err:
            return err.response()
        except TooManyAttempts as err:
            response = ApiError(429, str(err), err.errors).response()
            response.headers["Retry-After"] = str(err.retry_after)
            return response
        except InputError as err:
            return ApiError(422, str(err), err.errors).response()
        except Forbidden as err:
            return ApiError(403, str(err)).response()
        except NotFound as err:
            return ApiError(404, str(err) or "Not found.").response()
        except Exception:
            log.exception("API %s %s failed", request.method, request.url.path)
            return ApiError(500, "Something went wrong on the server; it is logged.").response()

    return wrapped


async def member_request(request: Request) -> tuple[int, User]:
    """The discussion in the path and the person asking, who must be in it (404 otherwise, as for no such one:
    which discussions exist is not leaked)."""
    user = await actor(request)
    discussion_id = path_int(request, "discussion_id")
    if await run_db(membership.member_of, discussion_id, user) is None:
        raise ApiError(404, f"No discussion {discussion_id} that you are in.")
    return discussion_id, user


def path_int(request: Request, name: str) -> int:
    return int(request.path_params[name])  # the route's `:int` converter already refused anything else
