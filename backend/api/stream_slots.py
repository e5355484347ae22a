"""How many live event streams (SSE) each person holds open, so one account cannot tie up a server with them.

Counted in this process, and also in Redis when REDIS_URL is set, so the cap holds across workers: each stream is
an entry with an expiry that the stream pushes back as it runs, so a worker that dies without closing its streams
frees their slots within SLOT_TTL_S. If Redis cannot be reached the stream is counted in this process only.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
import weakref
from collections.abc import AsyncIterator

from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from backend.config import get_settings

log = logging.getLogger(__name__)

KEEP_ALIVE_S = 15.0  # how often a stream pushes its entry back at most (the SSE keep-alive interval)
SLOT_TTL_S = 60  # a stream entry in Redis not pushed back for this long belongs to a dead worker
RETRY_AFTER_S = 10

# Drop the expired entries, then take a slot if fewer than the cap are held: one atomic step for every worker.
_TAKE_SLOT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


class StreamSlots:
    """The live streams each person holds open: counted in this process, and in Redis when REDIS_URL is set."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[int, int] = {}
        self._clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # a Redis client per event loop

    def held(self, user_id: int) -> int:
        """Streams `user_id` holds open in this process."""
        with self._lock:
            return self._open.get(user_id, 0)

    async def take(self, user_id: int, cap: int) -> StreamSlot | None:
        """A slot for one more stream, or None when `user_id` already holds `cap` of them."""
        with self._lock:
            if self._open.get(user_id, 0) >= cap:
                return None
            self._open[user_id] = self._open.get(user_id, 0) + 1
        slot = StreamSlot(self, user_id)
        try:
            shared = await self._take_shared(slot, cap)
        except BaseException:
            self._give_back(user_id)
            raise
        if not shared:
            self._give_back(user_id)
            return None
        return slot

    def _give_back(self, user_id: int) -> None:
        with self._lock:
            left = self._open.get(user_id, 0) - 1
            if left > 0:
                self._open[user_id] = left
            else:
                self._open.pop(user_id, None)

    def _redis(self):
        """This event loop's Redis client, or None without REDIS_URL (async clients are bound to their loop)."""
        url = get_settings().redis_url
        if not url:
            return None
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            import redis.asyncio as redis

            client = self._clients[loop] = redis.from_url(url)
        return client

    async def _take_shared(self, slot: StreamSlot, cap: int) -> bool:
        client = self._redis()
        if client is None:
            return True
        now = time.time()
        try:
            taken = await client.eval(_TAKE_SLOT, 1, slot.key, now, now + SLOT_TTL_S, cap, slot.member, SLOT_TTL_S)
        except Exception as exc:  # Redis down: the cap still holds in this process
            log.warning("live streams are counted in this process only: Redis refused the count (%s)", exc)
            return True
        slot.client = client
        return bool(taken)


class StreamSlot:
    """One stream's place in its person's count; released once, however the stream ends."""

    def __init__(self, slots: StreamSlots, user_id: int) -> None:
        self.slots, self.user_id = slots, user_id
        self.key, self.member = f"maestro:streams:{user_id}", uuid.uuid4().hex
        self.client = None  # the Redis client it is also counted in, if any
        self.released = False
        self._pushed = time.monotonic()

    async def keep(self) -> None:
        """Push the Redis entry's expiry back (at most once per keep-alive interval): this stream is still open."""
        if self.client is None or self.released or time.monotonic() - self._pushed < KEEP_ALIVE_S:
            return
        self._pushed = time.monotonic()
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.zadd(self.key, {self.member: time.time() + SLOT_TTL_S}, xx=True)
                pipe.expire(self.key, SLOT_TTL_S)
                await pipe.execute()
        except Exception as exc:
            log.warning("could not keep a live stream's slot in Redis: %s", exc)

    async def release(self) -> None:
        if self.released:
            return
        self.released = True
        self.slots._give_back(self.user_id)
        if self.client is not None:
            try:
                await self.client.zrem(self.key, self.member)
            except Exception as exc:  # its expiry frees it
                log.warning("could not free a live stream's slot in Redis: %s", exc)


STREAM_SLOTS = StreamSlots()


class SlotStream(StreamingResponse):
    """A stream that gives its slot back however it ends: finished, failed, or the client went away."""

    def __init__(self, content: AsyncIterator[bytes], slot: StreamSlot, **kwargs) -> None:
        super().__init__(content, **kwargs)
        self.slot = slot

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.slot.release()
            aclose = getattr(self.body_iterator, "aclose", None)
            if aclose is not None:
                try:
                    await aclose()
                except Exception:
                    log.debug("closing a live stream failed", exc_info=True)
