"""GET /api/discussions/{id}/events: the room as Server-Sent Events, for tools that follow a discussion live.

It runs the same Follower as every browser tab (DESIGN decision 3), so it has the same guarantees:
- persisted events in seq order with no gap or duplicate, each sent as `id: <seq>`, `event: <type>` and
  `data: <the event as JSON>`; a client that reconnects with `Last-Event-ID` (or `?after=<seq>`) resumes exactly
  after the last event it saw;
- the text of turns in flight as `event: text` with `{"start_seq", "start", "text"}`: the text of the turn whose
  `turn_started` event has seq `start_seq`, from character `start` on (replace from there; a reconnect resends a
  turn whole, from 0);
- presence and typing as they happen, and a comment line every 15 s so proxies keep an idle stream open.

`?until=finished` ends the stream once the agents stop: after `discussion_finished` or `discussion_paused`.

A person holds at most MAESTRO_MAX_STREAMS_PER_USER streams (8) at once; past that the answer is 429 with
Retry-After, and a slot frees as soon as a stream ends or its client goes away. The streams are counted in this
process, and also in Redis when REDIS_URL is set, so the cap holds across workers: each stream is an entry with
an expiry that the stream pushes back as it runs, so a worker that dies without closing its streams frees their
slots within SLOT_TTL_S. If Redis cannot be reached the stream is counted in this process only.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Header, Query
from starlette.responses import Response

from backend.config import get_settings
from backend.db import run_db
from backend.errors import TooManyAttempts
from backend.events.bus import get_bus
from backend.events.follower import Batch, Follower
from backend.events.schema import DiscussionFinished, DiscussionPaused
from backend.observability import viewer_active
from backend.orchestrator.runner import get_runner
from backend.services import discussions

from .http import ApiError, InDiscussion, api_router, errors
from .stream_slots import RETRY_AFTER_S, STREAM_SLOTS, SlotStream

log = logging.getLogger(__name__)

KEEP_ALIVE_S = 15.0
STOPPED = ("completed", "failed", "paused", "awaiting_approval")  # the agents are not running


router = api_router(tags=["discussions"])


def _after(last_event_id: str | None, after: str | None) -> int:
    raw = last_event_id or after or "0"
    if not raw.isdigit() or len(raw) > 18:
        raise ApiError(422, "Last-Event-ID and ?after= must be the seq of an event (a whole number, 0 for all).")
    return int(raw)


def _frames(batch: Batch) -> list[bytes]:
    out = [f"id: {e.seq}\nevent: {e.type}\ndata: {e.model_dump_json()}\n\n".encode() for e in batch.events]
    for start_seq, (start, text) in batch.deltas.items():
        if text:
            live = {"start_seq": start_seq, "start": start, "text": text}
            out.append(f"event: text\ndata: {json.dumps(live, ensure_ascii=False)}\n\n".encode())
    out += [f"event: {s.type}\ndata: {s.model_dump_json()}\n\n".encode() for s in batch.signals]
    return out


@router.get(
    "/api/discussions/{discussion_id:int}/events",
    response_class=Response,
    summary="Follow a discussion live (Server-Sent Events)",
    responses={
        200: {
            "description": "The event stream: `id: <seq>`, `event: <type>`, `data: <the event as JSON>` per event.",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        204: {"description": "`?until=finished` and the agents have stopped with nothing newer to send."},
        **errors(401, 404, 422, 429),
    },
)
async def events(
    the: InDiscussion,
    after: Annotated[str | None, Query(description="resume after this event seq")] = None,
    until: Annotated[str | None, Query(description="`finished`: end once the agents stop")] = None,
    last_event_id: Annotated[str | None, Header(description="resume after this event seq (wins over ?after=)")] = None,
) -> Response:
    """The room as Server-Sent Events, from the event after `Last-Event-ID` (or `?after=`) on."""
    discussion_id, user = the.discussion_id, the.user
    after_seq = _after(last_event_id, after)
    until_stopped = until == "finished"
    discussion = await run_db(discussions.get_discussion, discussion_id)
    if until_stopped and discussion.status in STOPPED and after_seq >= discussion.last_seq:
        return Response(status_code=204)  # nothing more will come until someone runs the agents again
    assert user.id is not None
    cap = get_settings().max_streams_per_user
    slot = await STREAM_SLOTS.take(user.id, cap)
    if slot is None:
        message = (
            f"You already hold {cap} live event streams open, the most one person may (MAESTRO_MAX_STREAMS_PER_USER)."
            " Close one (each tool following a discussion holds one) and try again."
        )
        raise TooManyAttempts({"streams": message}, retry_after=RETRY_AFTER_S)

    try:
        # Livelier pacing than a browser tab's: no React render to protect, and tools like small, prompt pieces.
        follower = Follower(
            discussion_id,
            after_seq=after_seq,
            bus=get_bus(),
            live_source=get_runner().live_text,
            min_interval=0.05,
            max_wait=0.1,
            min_flush_chars=64,
        )
    except BaseException:
        await slot.release()
        raise

    async def stream() -> AsyncIterator[bytes]:
        with viewer_active():
            async with follower:
                async for batch in follower.batches(idle=KEEP_ALIVE_S):
                    await slot.keep()
                    if not batch:
                        yield b": keep-alive\n\n"
                        continue
                    for frame in _frames(batch):
                        yield frame
                    if until_stopped and any(
                        isinstance(e, DiscussionFinished | DiscussionPaused) for e in batch.events
                    ):
                        return

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return SlotStream(stream(), slot, media_type="text/event-stream", headers=headers)
