"""A turn's streamed text leaves the engine as it arrives, in one TokenDelta per event-loop turn, not per token.

Tokens often arrive together: an SDK parses several from one network read, and the 0 ms model of
bench/orchestrator_overhead.py yields a whole reply at once. Every TokenDelta costs the engine ~2 µs and every
follower a frame, so the pieces that arrive before the engine next waits are joined. The first piece schedules
the flush with `call_soon`, which runs as soon as the engine yields to the loop: no timer, and no piece waits
for a later one. Both buses queue without waiting (`publish_nowait`; Redis sends its outbox in order); a bus that
can only publish by awaiting gets each piece as it comes.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from backend.events.bus import Bus
from backend.events.schema import TokenDelta


class _Live(Protocol):
    text: str


class StreamedText:
    """Accumulates a turn's text in `live.text` and publishes what is new as TokenDeltas."""

    def __init__(self, bus: Bus, live: _Live, discussion_id: int, start_seq: int, participant_id: int) -> None:
        self._live = live
        self._offer = getattr(bus, "publish_nowait", None)
        self._publish = bus.publish
        self._ids = (discussion_id, start_seq, participant_id)
        self._sent = len(live.text)
        self._flush: asyncio.Handle | None = None

    async def add(self, piece: str) -> None:
        """Append `piece`; it is published before the engine next waits (at once on a bus that must await)."""
        self._live.text += piece
        if self._offer is None:
            delta = self._delta()
            await self._publish(delta)
            self._sent = delta.offset + len(delta.text)
        elif self._flush is None:
            self._flush = asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        """Publish what is not yet published, now: before the turn's outcome, which must come after its text."""
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        if self._offer is not None and len(self._live.text) > self._sent:
            delta = self._delta()
            self._offer(delta)
            self._sent = delta.offset + len(delta.text)  # only once it is out: a failed offer is offered again

    def _delta(self) -> TokenDelta:
        """What is not yet published, from where the published text ends."""
        did, seq, pid = self._ids
        text = self._live.text[self._sent :]
        return TokenDelta(discussion_id=did, start_seq=seq, participant_id=pid, offset=self._sent, text=text)
