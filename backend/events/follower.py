"""Follow one discussion's log for one viewer: replay persisted events after a seq, then live ones.

This is what every open tab runs (DESIGN decision 3), kept free of Reflex so it can be tested directly.
It yields `Batch`es: persisted events in seq order with no gap, duplicate or reordering (a gap is filled
from the database; a duplicate is dropped), plus the streamed text of turns in flight coalesced per turn
as (start offset, new text) since the previous batch, so a viewer receives each character once. A viewer
that joins mid-stream, or that missed deltas, gets the turn's full text so far with start 0.

Pacing (per turn in flight): its first text goes at once (time to first token matters); after that a frame
goes when `min_flush_chars` are waiting or the oldest waited `max_wait`, and never sooner than
`min_interval` after the turn's previous frame. Each frame costs the page an envelope of ~100 bytes, and two
frames that reach a browser together are merged by React into one render, losing the first one's text.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from backend.db import run_db, session_scope
from backend.events.bus import Bus, Lagged, Subscription
from backend.events.log import read_events
from backend.events.schema import (
    EPHEMERAL_SIGNALS,
    RoomEvent,
    TokenDelta,
    TurnCompleted,
    TurnFailed,
    TurnStarted,
)


@dataclass(frozen=True, slots=True)
class LiveText:
    """Text streamed so far for a turn in flight."""

    start_seq: int
    participant_id: int
    text: str


LiveSource = Callable[[int], list[LiveText]]


def no_live_text(_discussion_id: int) -> list[LiveText]:
    """A live source for processes that run no engine."""
    return []


@dataclass
class Batch:
    """What a viewer must apply, in this order: `events`, then `deltas` (start_seq -> (start, text)), then
    `signals` (ephemeral presence and typing, which have no seq and are never replayed)."""

    events: list[RoomEvent] = field(default_factory=list)
    deltas: dict[int, tuple[int, str]] = field(default_factory=dict)
    signals: list[RoomEvent] = field(default_factory=list)
    # For turns that finished in this batch: how many characters of their text this viewer was sent while
    # they streamed, so the finished message need not carry them again (start_seq -> characters).
    streamed: dict[int, int] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.events or self.deltas or self.signals)


class Follower:
    """One viewer's ordered, gap-free view of a discussion."""

    def __init__(
        self,
        discussion_id: int,
        *,
        after_seq: int,
        bus: Bus,
        live_source: LiveSource = no_live_text,
        min_interval: float = 0.25,
        max_wait: float = 1.0,
        min_flush_chars: int = 200,
    ) -> None:
        self.discussion_id = discussion_id
        self.last_seq = after_seq
        self.bus = bus
        self.live_source = live_source
        self.min_interval = min_interval
        self.max_wait = max(max_wait, min_interval)
        self.min_flush_chars = min_flush_chars
        self._sub: Subscription | None = None
        self._queue: asyncio.Queue[RoomEvent | BaseException] = asyncio.Queue()
        self._pump: asyncio.Task | None = None
        self._received: dict[int, int] = {}  # start_seq -> characters received
        self._sent: dict[int, int] = {}  # start_seq -> characters handed to the viewer
        self._last_frame_at: dict[int, float] = {}  # start_seq -> monotonic time its last frame went
        self._waiting_since: dict[int, float] = {}  # start_seq -> when its oldest unsent text arrived
        self._pending: Batch = Batch()

    async def __aenter__(self) -> Follower:
        await self._subscribe()
        return self

    async def __aexit__(self, *exc) -> None:
        await self._unsubscribe()

    async def _subscribe(self) -> None:
        self._sub = await self.bus.subscribe(self.discussion_id)
        self._queue = asyncio.Queue()
        self._pump = asyncio.create_task(self._pump_bus(self._sub, self._queue))
        # Subscribed first, then read the log: anything persisted in between arrives twice and is dropped.
        await self._catch_up()
        self._reset_live()

    async def _unsubscribe(self) -> None:
        if self._pump:
            self._pump.cancel()
            with contextlib.suppress(BaseException):
                await self._pump
        if self._sub:
            await self._sub.close()
        self._sub = self._pump = None

    @staticmethod
    async def _pump_bus(sub: Subscription, queue: asyncio.Queue) -> None:
        try:
            async for event in sub:
                queue.put_nowait(event)
        except Lagged as exc:
            queue.put_nowait(exc)

    def _read_after(self, seq: int) -> list[RoomEvent]:
        with session_scope() as s:
            return read_events(s, self.discussion_id, after_seq=seq)

    async def _catch_up(self) -> None:
        for event in await run_db(self._read_after, self.last_seq):
            self._accept(event)

    def _reset_live(self, have: dict[int, int] | None = None) -> None:
        """Send every turn in flight again: whole (start 0) for a viewer joining mid-stream or after text went
        missing here, or from `have` (start_seq -> characters the page holds) when the page lost some."""
        for live in self.live_source(self.discussion_id):
            if live.start_seq > self.last_seq:
                continue  # its TurnStarted has not reached this viewer yet; deltas will follow
            start = min((have or {}).get(live.start_seq, 0), len(live.text))
            self._received[live.start_seq] = len(live.text)
            self._sent[live.start_seq] = start
            self._last_frame_at.pop(live.start_seq, None)  # due at once, like a first text
            self._waiting_since[live.start_seq] = time.monotonic()
            self._pending.deltas[live.start_seq] = (start, live.text[start:])

    async def _handle(self, event: RoomEvent) -> None:
        """Accept an event from the bus, first filling any gap in persisted seqs from the log."""
        if not isinstance(event, (TokenDelta, *EPHEMERAL_SIGNALS)) and event.seq > self.last_seq + 1:
            await self._catch_up()
        self._accept(event)

    def _accept(self, event: RoomEvent) -> None:
        if isinstance(event, TokenDelta):
            self._accept_delta(event)
            return
        if isinstance(event, EPHEMERAL_SIGNALS):
            self._pending.signals.append(event)
            return
        if event.seq <= self.last_seq:
            return  # already applied
        self.last_seq = event.seq
        self._pending.events.append(event)
        if isinstance(event, TurnStarted):
            self._received[event.seq] = self._sent[event.seq] = 0
        elif isinstance(event, TurnCompleted | TurnFailed):
            self._received.pop(event.start_seq, None)
            sent = self._sent.pop(event.start_seq, 0)
            self._waiting_since.pop(event.start_seq, None)
            # The page holds what it was sent (the last frame stays in LiveState for the finished message to
            # pick up even when React merges it with this event); a page that lost some asks for the message.
            self._last_frame_at.pop(event.start_seq, None)
            if sent:
                self._pending.streamed[event.start_seq] = sent
            self._pending.deltas.pop(event.start_seq, None)

    def _accept_delta(self, delta: TokenDelta) -> None:
        received = self._received.get(delta.start_seq)
        if received is None:
            return  # a turn this viewer has not seen start, or has seen finish
        if delta.offset > received:
            self._reset_live()  # missed some text: resend the whole turn
            return
        tail = delta.text[received - delta.offset :]
        if not tail:
            return
        self._received[delta.start_seq] = received + len(tail)
        start, text = self._pending.deltas.get(delta.start_seq, (self._sent[delta.start_seq], ""))
        self._pending.deltas[delta.start_seq] = (start, text + tail)
        self._waiting_since.setdefault(delta.start_seq, time.monotonic())

    def _due_at(self, start_seq: int, text: str, now: float) -> float:
        """When the turn's waiting `text` may go (see the module docstring)."""
        last = self._last_frame_at.get(start_seq)
        if last is None:
            return now  # its first text, or a whole resend
        waited = self._waiting_since.get(start_seq, now)
        ready = now if len(text) >= self.min_flush_chars else waited + self.max_wait
        return max(ready, last + self.min_interval)

    def _next_due(self) -> float | None:
        """Seconds until some waiting text is due (0: now), or None when no text waits."""
        now = time.monotonic()
        due = [self._due_at(seq, text, now) for seq, (_start, text) in self._pending.deltas.items() if text]
        return max(0.0, min(due) - now) if due else None

    def _take(self) -> Batch:
        """Everything due: persisted events and signals always, streamed text per its pacing."""
        batch, self._pending = self._pending, Batch()
        now = time.monotonic()
        for start_seq, (start, text) in list(batch.deltas.items()):
            if text and self._due_at(start_seq, text, now) > now:
                self._pending.deltas[start_seq] = batch.deltas.pop(start_seq)  # not yet: it waits for its turn
                continue
            self._sent[start_seq] = start + len(text)
            if text:
                self._last_frame_at[start_seq] = now
            self._waiting_since.pop(start_seq, None)
        return batch

    def resync(self, start_seq: int, have: int) -> None:
        """The page holds only `have` characters of that turn's text: the next batch sends it the rest."""
        self._reset_live({start_seq: have})

    async def batches(self, idle: float = 1.0) -> AsyncIterator[Batch]:
        """Yield batches as things happen; an empty batch every `idle` seconds lets the viewer tick clocks."""
        if self._pending:
            yield self._take()
        while True:
            due = self._next_due()
            try:
                item = await asyncio.wait_for(self._queue.get(), timeout=idle if due is None else due)
            except TimeoutError:
                yield self._take()  # text that came due, or an idle tick
                continue
            if isinstance(item, BaseException):
                await self._unsubscribe()
                await self._subscribe()  # lagged: re-read the log, resend turns in flight
            else:
                await self._handle(item)
            # Drain whatever else is already here, so one flush carries it.
            while not self._queue.empty():
                extra = self._queue.get_nowait()
                if isinstance(extra, BaseException):
                    self._queue.put_nowait(extra)
                    break
                await self._handle(extra)
            if self._pending.events or self._pending.signals or self._next_due() == 0:
                yield self._take()
