"""The bus that carries room events to followers: in-process by default, Redis pub/sub across workers.

The bus is not durable; the log is. A follower that falls behind is told it `lagged` and re-reads the log,
so a slow tab can never make the bus grow without bound or lose a persisted event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Protocol

from backend.events.schema import RoomEvent, TokenDelta, parse_event

QUEUE_LIMIT = 5_000
log = logging.getLogger(__name__)


class Lagged(Exception):
    """The subscriber missed events; re-read the log from its last seq."""


class Subscription(Protocol):
    """Events for one discussion, in publish order, until closed."""

    def __aiter__(self) -> AsyncIterator[RoomEvent]: ...

    async def close(self) -> None: ...


class Bus(Protocol):
    """Publish/subscribe per discussion."""

    async def publish(self, event: RoomEvent) -> None: ...

    async def subscribe(self, discussion_id: int, *, text: bool = True) -> Subscription:
        """Events for `discussion_id`; with `text=False`, no token deltas (the engine watches people, not text)."""
        ...

    async def close(self) -> None: ...


class _QueueSubscription:
    def __init__(self, bus: InProcessBus, discussion_id: int, text: bool) -> None:
        self._bus = bus
        self.discussion_id = discussion_id
        self.text = text
        self.queue: asyncio.Queue[RoomEvent | None] = asyncio.Queue(QUEUE_LIMIT)
        self.lagged = False

    def offer(self, event: RoomEvent) -> None:
        if self.lagged or (not self.text and type(event) is TokenDelta):
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.lagged = True
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
            self.queue.put_nowait(None)  # wakes the reader, which raises Lagged

    async def __aiter__(self) -> AsyncIterator[RoomEvent]:
        while True:
            event = await self.queue.get()
            if event is None:
                raise Lagged(f"discussion {self.discussion_id}: subscriber fell {QUEUE_LIMIT} events behind")
            yield event

    async def close(self) -> None:
        self._bus._unsubscribe(self)


class InProcessBus:
    """Fan-out to asyncio queues in this process (the embedded default)."""

    def __init__(self) -> None:
        self._subs: dict[int, set[_QueueSubscription]] = defaultdict(set)

    async def publish(self, event: RoomEvent) -> None:
        self.publish_nowait(event)

    def publish_nowait(self, event: RoomEvent) -> None:
        """`publish` from a callback, which cannot await: fan-out here never waits (see `StreamedText`)."""
        subs = self._subs.get(event.discussion_id)
        if subs:
            for sub in tuple(subs):
                sub.offer(event)

    async def subscribe(self, discussion_id: int, *, text: bool = True) -> Subscription:
        sub = _QueueSubscription(self, discussion_id, text)
        self._subs[discussion_id].add(sub)
        return sub

    def _unsubscribe(self, sub: _QueueSubscription) -> None:
        """Drop a closed subscription, and the discussion's entry with its last one (ids only ever grow)."""
        subs = self._subs.get(sub.discussion_id)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.discussion_id]

    def subscriber_count(self, discussion_id: int) -> int:
        return len(self._subs.get(discussion_id, ()))

    async def close(self) -> None:
        self._subs.clear()


def _channel(discussion_id: int) -> str:
    return f"maestro:discussion:{discussion_id}"


class _RedisSubscription:
    def __init__(self, pubsub, discussion_id: int, text: bool) -> None:
        self._pubsub = pubsub
        self.discussion_id = discussion_id
        self.text = text

    async def __aiter__(self) -> AsyncIterator[RoomEvent]:
        async for message in self._pubsub.listen():
            if message.get("type") == "message":
                event = parse_event(message["data"])
                if self.text or type(event) is not TokenDelta:
                    yield event

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._pubsub.unsubscribe()
            await self._pubsub.aclose()


class RedisBus:
    """Redis pub/sub, so a runner on one worker reaches followers on every worker.

    Events leave through one outbox, in the order they were given: one sender task sends whatever has queued in
    a single pipeline (one round trip however many), `publish` returns once its event is sent (a Redis error is
    raised there), and `publish_nowait` queues without waiting (for streamed text; an error is logged).
    """

    def __init__(self, url: str) -> None:
        import redis.asyncio as redis

        self._redis = redis.from_url(url)
        self._outbox: list[tuple[str, str, asyncio.Future | None]] = []
        self._sender: asyncio.Task | None = None

    async def publish(self, event: RoomEvent) -> None:
        sent = asyncio.get_running_loop().create_future()
        self._queue(event, sent)
        await sent

    def publish_nowait(self, event: RoomEvent) -> None:
        self._queue(event, None)

    def _queue(self, event: RoomEvent, sent: asyncio.Future | None) -> None:
        self._outbox.append((_channel(event.discussion_id), event.model_dump_json(), sent))
        loop = asyncio.get_running_loop()
        if self._sender is None or self._sender.done() or self._sender.get_loop() is not loop:
            self._sender = loop.create_task(self._send())

    async def _send(self) -> None:
        while self._outbox:
            batch, self._outbox = self._outbox, []
            error: BaseException | None = None
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for channel, payload, _ in batch:
                        pipe.publish(channel, payload)
                    await pipe.execute()
            except Exception as exc:  # Redis unreachable: whoever awaits learns it; streamed text is only logged
                error = exc
                if not any(sent is not None for *_, sent in batch):
                    log.warning("could not publish %d event(s) to Redis: %s", len(batch), exc)
            except BaseException as exc:  # the sender itself is cancelled (shutdown): nobody may wait for ever
                error = exc
                raise
            finally:
                for *_, sent in batch:
                    _settle(sent, error)

    async def subscribe(self, discussion_id: int, *, text: bool = True) -> Subscription:
        pubsub = self._redis.pubsub()
        await pubsub.subscribe(_channel(discussion_id))
        # Wait for the subscribe confirmation so nothing published after this call is missed.
        while True:
            msg = await pubsub.get_message(timeout=1.0)
            if msg and msg.get("type") == "subscribe":
                break
        return _RedisSubscription(pubsub, discussion_id, text)

    async def close(self) -> None:
        if self._sender is not None and self._sender.get_loop() is asyncio.get_running_loop():
            await asyncio.wait([self._sender])  # what was queued goes out first (its failure was reported there)
        await self._redis.aclose()


def _settle(sent: asyncio.Future | None, error: BaseException | None) -> None:
    """Tell whoever awaits an event in the outbox how its sending ended."""
    if sent is None or sent.done():
        return
    with contextlib.suppress(RuntimeError):  # its loop has closed: nobody is waiting
        if error is None:
            sent.set_result(None)
        elif isinstance(error, asyncio.CancelledError):
            sent.cancel()
        else:
            sent.set_exception(error)


_bus: Bus | None = None


def get_bus() -> Bus:
    """The process-wide bus: Redis when REDIS_URL is set, otherwise in-process."""
    global _bus
    if _bus is None:
        from backend.config import get_settings

        url = get_settings().redis_url
        _bus = RedisBus(url) if url else InProcessBus()
    return _bus


def set_bus(bus: Bus | None) -> None:
    """Replace the process-wide bus (tests)."""
    global _bus
    _bus = bus
