"""Deliberation memory over the API: check a question, list what is remembered, forget a result, and keep one's own
default context.

POST /api/memory/check says what memory holds for a question in a context, as the caller may see it (results from
discussions they are in only): a hit to reuse, related earlier decisions, how many near-misses were refused, or why
memory is unavailable. Creating a discussion (POST /api/discussions) checks the same way unless `fresh` is set.
The lookup embeds the question and reads the database: it runs off the event loop, as every service call here does.
"""

from __future__ import annotations

import logging

from starlette.responses import Response

from backend.db import run_db
from backend.errors import Forbidden, InputError, NotFound, TooManyAttempts
from backend.memory.context import DiscussionContext, parse_context
from backend.memory.results import Recall, Remembered
from backend.models import User
from backend.services import memory

from .http import Actor, ItemId, api_router, errors
from .schemas import ContextIn, DefaultContextOut, MemoryCheckIn, MemoryCheckOut, MemoryListOut

log = logging.getLogger(__name__)

router = api_router(tags=["memory"], responses=errors(401, 422, 429))


def remembered(r: Remembered) -> dict:
    return {
        "entry_id": r.entry_id,
        "source_discussion_id": r.discussion_id,
        "question": r.question,
        "context": r.context,
        "outcome": r.outcome,
        "kind": r.kind,
        "decided_by": r.decided_by,
        "decided_at": r.decided_at.isoformat(),
        "match_percent": r.match_percent,
        "saves_usd": r.saves_usd,
        "saves_tokens": r.saves_tokens,
        "saves_seconds": r.saves_seconds,
    }


def look_up(question: str, context: DiscussionContext | dict | None, actor: User | None) -> Recall:
    """services.memory.check (blocking); a failure inside memory itself is logged and answered as memory being
    unavailable, so the discussion still runs. Bad input, a refusal and a rate limit are raised as they are."""
    try:
        return memory.check(question, context, actor)
    except (InputError, Forbidden, NotFound, TooManyAttempts):
        raise
    except Exception as err:
        log.exception("memory: the lookup failed")
        return Recall(unavailable=f"Memory is unavailable: the lookup failed ({type(err).__name__}).")


def checked(found: Recall) -> dict:
    return {
        "hit": remembered(found.hit) if found.hit else None,
        "related": [remembered(r) for r in found.related],
        "refused_near_misses": len(found.refused),
        "unavailable": found.unavailable,
    }


def _context_out(raw: dict | None) -> dict:
    ctx = parse_context(raw)
    return {"context": ctx.as_dict(), "summary": ctx.describe()}


@router.post(
    "/api/memory/check",
    response_model=MemoryCheckOut,
    responses=errors(413),
    summary="What memory holds for a question",
)
async def check(body: MemoryCheckIn, user: Actor) -> dict:
    """A hit (the same question in the same context, settled in a discussion you are in), related earlier decisions,
    how many close questions were refused as near-misses, or why memory is unavailable. Reads only."""
    context = body.context.raw() if body.context else None
    return checked(await run_db(look_up, body.question, context, user))


@router.get("/api/memory", response_model=MemoryListOut, summary="Remembered results from discussions you are in")
async def list_entries(user: Actor) -> dict:
    """Each remembered result with its source, hits, last use, savings, and whether it is still served."""
    rows = await run_db(memory.entries, user)
    return {
        "entries": [
            {
                "id": r.id,
                "source_discussion_id": r.discussion_id,
                "question": r.question,
                "context": r.context,
                "outcome": r.outcome,
                "kind": r.kind,
                "decided_by": r.decided_by,
                "decided_at": r.decided_at.isoformat(),
                "hits": r.hits,
                "last_hit_at": r.last_hit_at.isoformat() if r.last_hit_at else None,
                "saved_usd": r.saved_usd,
                "saved_tokens": r.saved_tokens,
                "saved_seconds": r.saved_seconds,
                "live": r.live,
                "status": r.status,
                "can_forget": r.can_forget,
            }
            for r in rows
        ]
    }


@router.delete(
    "/api/memory/{entry_id:int}",
    status_code=204,
    response_class=Response,
    responses=errors(403, 404),
    summary="Forget a remembered result",
)
async def forget(entry_id: ItemId, user: Actor) -> Response:
    """Stop serving a result: the owner of its source discussion (or the instance admin) only."""
    await run_db(memory.forget, entry_id, user)
    return Response(status_code=204)


@router.get("/api/me/context", response_model=DefaultContextOut, summary="Your default context")
async def my_context(user: Actor) -> dict:
    """The context your New discussion form starts from."""
    return await run_db(lambda: _context_out(memory.default_context(user)))


@router.put(
    "/api/me/context", response_model=DefaultContextOut, responses=errors(413), summary="Set your default context"
)
async def set_my_context(body: ContextIn, user: Actor) -> dict:
    """Keep a default context, so you do not retype it (send `{}` to clear it); 422 naming a bad value."""
    ctx = await run_db(memory.set_default_context, user, body.raw())
    return {"context": ctx.as_dict(), "summary": ctx.describe()}
