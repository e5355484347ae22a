"""Follow one discussion's log for one viewer: replay persisted events after a seq, then live ones.

This is what every open tab runs (DESIGN decision 3), kept free of Reflex so it can be tested directly.
It yields `Batch`es: persisted events in seq order with no gap, duplicate or reordering (a gap is filled
from the database; a duplicate is dropped), plus the streamed text of turns in flight coalesced per turn
as (start offset, new text) since the previous batch, so a viewer receives each character once. Text is
flushed when a frame's worth has arrived or 200 ms after it came, whichever is first. A viewer
that joins mid-stream, or that missed deltas, gets the turn's full text so far with start 0.
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
from backend.events.schema import RoomEvent, TokenDelta, TurnCompleted, TurnFailed, TurnStarted


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
    """What a viewer must apply, in this order: `events`, then `deltas` (start_seq -> (start, text))."""

    events: list[RoomEvent] = field(default_factory=list)
    deltas: dict[int, tuple[int, str]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.events or self.deltas)


class Follower:
    """One viewer's ordered, gap-free view of a discussion."""

    def __init__(
        self,
        discussion_id: int,
        *,
        after_seq: int,
        bus: Bus,
        live_source: LiveSource = no_live_text,
        flush_interval: float = 0.2,
        min_flush_chars: int = 256,
    ) -> None:
        self.discussion_id = discussion_id
        self.last_seq = after_seq
        self.bus = bus
        self.live_source = live_source
        self.flush_interval = flush_interval
        self.min_flush_chars = min_flush_chars
        self._sub: Subscription | None = None
        self._queue: asyncio.Queue[RoomEvent | BaseException] = asyncio.Queue()
        self._pump: asyncio.Task | None = None
        self._received: dict[int, int] = {}  # start_seq -> characters received
        self._sent: dict[int, int] = {}  # start_seq -> characters handed to the viewer
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

    def _reset_live(self) -> None:
        """Send every turn in flight whole (start 0): for a viewer joining mid-stream or after a gap."""
        for live in self.live_source(self.discussion_id):
            if live.start_seq > self.last_seq:
                continue  # its TurnStarted has not reached this viewer yet; deltas will follow
            self._received[live.start_seq] = len(live.text)
            self._sent[live.start_seq] = 0
            self._pending.deltas[live.start_seq] = (0, live.text)

    async def _handle(self, event: RoomEvent) -> None:
        """Accept an event from the bus, first filling any gap in persisted seqs from the log."""
        if not isinstance(event, TokenDelta) and event.seq > self.last_seq + 1:
            await self._catch_up()
        self._accept(event)

    def _accept(self, event: RoomEvent) -> None:
        if isinstance(event, TokenDelta):
            self._accept_delta(event)
            return
        if event.seq <= self.last_seq:
            return  # already applied
        self.last_seq = event.seq
        self._pending.events.append(event)
        if isinstance(event, TurnStarted):
            self._received[event.seq] = self._sent[event.seq] = 0
        elif isinstance(event, TurnCompleted | TurnFailed):
            self._received.pop(event.start_seq, None)
            self._sent.pop(event.start_seq, None)
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

    def _worth_flushing(self) -> bool:
        """Whether buffered text should go now rather than wait for the flush interval.

        Each flush costs the page a frame of a few hundred bytes of envelope, so text is sent when there is
        enough of it to be worth a frame, or when it is a turn's first text (time to first token matters),
        and otherwise at most `flush_interval` after it arrived.
        """
        for start_seq, (start, text) in self._pending.deltas.items():
            if start == 0 and self._sent.get(start_seq, 0) == 0 and text:
                return True
            if len(text) >= self.min_flush_chars:
                return True
        return False

    def _take(self) -> Batch:
        batch, self._pending = self._pending, Batch()
        for start_seq, (start, text) in batch.deltas.items():
            self._sent[start_seq] = start + len(text)
        return batch

    def resync(self) -> None:
        """The viewer lost track of streamed text: the next batch resends turns in flight whole."""
        self._reset_live()

    async def batches(self, idle: float = 1.0) -> AsyncIterator[Batch]:
        """Yield batches as things happen; an empty batch every `idle` seconds lets the viewer tick clocks."""
        if self._pending:
            yield self._take()
        while True:
            try:
                item = await asyncio.wait_for(self._queue.get(), timeout=idle)
            except TimeoutError:
                yield self._take()
                continue
            deadline = time.monotonic() + self.flush_interval
            while True:
                if isinstance(item, BaseException):
                    await self._unsubscribe()
                    await self._subscribe()  # lagged: re-read the log, resend turns in flight
                else:
                    await self._handle(item)
                if self._pending.events or self._worth_flushing():
                    break  # persisted events, a turn's first text, or a frame's worth of text go out at once
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self._queue.get(), timeout=remaining)
                except TimeoutError:
                    break
            # Drain whatever else is already here, so one flush carries it.
            while not self._queue.empty():
                extra = self._queue.get_nowait()
                if isinstance(extra, BaseException):
                    self._queue.put_nowait(extra)
                    break
                await self._handle(extra)
            if self._pending:
                yield self._take()
