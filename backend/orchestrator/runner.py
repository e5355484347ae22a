"""The runner: owns the running engines of this process (DESIGN decision 1).

"Run Agents" asks the runner to start a discussion; the engine then belongs to the server, not to the tab that
clicked. A lease row per discussion (renewed by heartbeat, taken over once expired) keeps it to one runner across
workers, and a janitor loop resumes discussions that are marked running but have no live runner: after a crash
or restart they continue from their log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from datetime import timedelta

from sqlalchemy import bindparam, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from backend.config import get_settings
from backend.db import get_engine, run_db
from backend.events.bus import Bus, get_bus
from backend.events.follower import LiveText
from backend.humans import prompts
from backend.models import Discussion, DiscussionStatus, RunnerLease
from backend.models.base import utcnow
from backend.observability import bind_discussion, discussion_active
from backend.orchestrator.engine import Engine, LiveTurn, ProviderLookup, default_provider_lookup

log = logging.getLogger(__name__)

# The lease statements, built once (Core, no ORM session: they run for every discussion started).
_LEASE = RunnerLease.__table__  # type: ignore[attr-defined]
_TAKE = (
    update(_LEASE)
    .where(
        _LEASE.c.discussion_id == bindparam("did"),
        or_(_LEASE.c.owner == bindparam("me"), _LEASE.c.expires_at <= bindparam("now")),
    )
    .values(owner=bindparam("me"), expires_at=bindparam("until"))
)
_HELD = select(_LEASE.c.owner).where(_LEASE.c.discussion_id == bindparam("did"))
_NEW = insert(_LEASE).values(discussion_id=bindparam("did"), owner=bindparam("me"), expires_at=bindparam("until"))
_RENEW = (
    update(_LEASE)
    .where(_LEASE.c.discussion_id == bindparam("did"), _LEASE.c.owner == bindparam("me"))
    .values(expires_at=bindparam("until"))
)
_RELEASE = delete(_LEASE).where(_LEASE.c.discussion_id == bindparam("did"), _LEASE.c.owner == bindparam("me"))
_STATUS = select(Discussion.status).where(Discussion.id == bindparam("did"))  # type: ignore[arg-type]


class Runner:
    """Starts, resumes and tracks discussion engines in this process."""

    def __init__(
        self,
        *,
        bus: Bus | None = None,
        provider_lookup: ProviderLookup = default_provider_lookup,
        lease_seconds: float | None = None,
    ) -> None:
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._bus = bus
        self.provider_lookup = provider_lookup
        self.lease_seconds = lease_seconds or get_settings().lease_seconds
        self.engines: dict[int, Engine] = {}
        self.tasks: dict[int, asyncio.Task] = {}
        self._janitor: asyncio.Task | None = None
        self._prompt_clock: asyncio.Task | None = None
        self._start_lock = asyncio.Lock()

    @property
    def bus(self) -> Bus:
        return self._bus or get_bus()

    # --- leases --------------------------------------------------------------------------------------

    def _acquire(self, discussion_id: int) -> bool:
        """Take the lease when it is free, expired or already ours, in one conditional UPDATE (or the first
        INSERT), so two runners can never both win: on SQLite, FOR UPDATE is ignored and the SELECT runs outside
        the transaction, so a read-then-write lets two runners both take the same expired lease."""
        now = utcnow()
        lease = {
            "did": discussion_id,
            "me": self.owner,
            "now": now,
            "until": now + timedelta(seconds=self.lease_seconds),
        }
        try:
            with get_engine().begin() as c:
                if c.execute(_TAKE, lease).rowcount:
                    return True
                if c.execute(_HELD, lease).first() is not None:
                    return False  # a live runner holds it
                c.execute(_NEW, lease)
                return True
        except IntegrityError:
            return False  # another runner inserted it first

    def _renew(self, discussion_id: int) -> bool:
        until = utcnow() + timedelta(seconds=self.lease_seconds)
        with get_engine().begin() as c:
            return bool(c.execute(_RENEW, {"did": discussion_id, "me": self.owner, "until": until}).rowcount)

    def _release(self, discussion_id: int) -> None:
        with get_engine().begin() as c:
            c.execute(_RELEASE, {"did": discussion_id, "me": self.owner})

    # --- lifecycle -----------------------------------------------------------------------------------

    def is_running(self, discussion_id: int) -> bool:
        """Whether this process is driving the discussion right now."""
        task = self.tasks.get(discussion_id)
        return task is not None and not task.done()

    async def start(self, discussion_id: int) -> bool:
        """Start (or resume) a discussion; False when it is already running here or elsewhere.

        Idempotent: a double click, or two tabs clicking together, starts one engine.
        """
        async with self._start_lock:
            if self.is_running(discussion_id):
                return False
            status = await run_db(self._status, discussion_id)
            if status in (DiscussionStatus.COMPLETED, DiscussionStatus.FAILED):
                return False
            if not await run_db(self._acquire, discussion_id):
                return False
            engine = Engine(discussion_id, bus=self.bus, provider_lookup=self.provider_lookup)
            self.engines[discussion_id] = engine
            self.tasks[discussion_id] = asyncio.create_task(self._drive(engine), name=f"discussion-{discussion_id}")
            return True

    @staticmethod
    def _status(discussion_id: int) -> str | None:
        with get_engine().connect() as c:
            return c.execute(_STATUS, {"did": discussion_id}).scalar_one_or_none()

    async def _drive(self, engine: Engine) -> None:
        bind_discussion(engine.discussion_id)  # every log line of this task names its discussion
        heartbeat = asyncio.create_task(self._heartbeat(engine.discussion_id))
        try:
            with discussion_active():
                await engine.run()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("discussion %s: engine crashed; it will be resumed", engine.discussion_id)
        finally:
            heartbeat.cancel()
            with contextlib.suppress(BaseException):
                await heartbeat
            self.engines.pop(engine.discussion_id, None)
            self.tasks.pop(engine.discussion_id, None)
            with contextlib.suppress(Exception):
                await run_db(self._release, engine.discussion_id)

    async def _heartbeat(self, discussion_id: int) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                if not await run_db(self._renew, discussion_id):
                    log.error("discussion %s: lost its lease; stopping here", discussion_id)
                    task = self.tasks.get(discussion_id)
                    if task:
                        task.cancel()
                    return
            except Exception:
                log.exception("discussion %s: lease heartbeat failed", discussion_id)

    def live_turns(self, discussion_id: int) -> list[LiveTurn]:
        """Text streamed so far for turns in flight, for a viewer joining mid-stream."""
        engine = self.engines.get(discussion_id)
        return list(engine.live.values()) if engine else []

    def live_text(self, discussion_id: int) -> list[LiveText]:
        """The same, as the follower's `LiveSource`."""
        return [LiveText(t.start_seq, t.participant_id, t.text) for t in self.live_turns(discussion_id)]

    @staticmethod
    def _unfinished() -> list[int]:
        with get_engine().connect() as c:
            return list(c.execute(select(Discussion.id).where(Discussion.status == DiscussionStatus.RUNNING)).scalars())  # type: ignore[arg-type]

    async def resume_unfinished(self) -> list[int]:
        """Start every discussion marked running that no live runner holds; returns those started."""
        started = []
        for discussion_id in await run_db(self._unfinished):
            if not self.is_running(discussion_id) and await self.start(discussion_id):
                log.info("discussion %s: resumed from its log", discussion_id)
                started.append(discussion_id)
        return started

    async def run_janitor(self, interval: float | None = None) -> None:
        """Resume orphaned discussions now and every `interval` seconds (their leases expire when a runner dies)."""
        interval = interval or self.lease_seconds / 2
        while True:
            try:
                await self.resume_unfinished()
            except Exception:
                log.exception("runner janitor failed")
            await asyncio.sleep(interval)

    async def expire_prompts(self) -> int:
        """Apply the default to every prompt past its deadline, in any discussion (one that is a draft, paused or
        waiting for sign-off has no engine to do it); publishes the answers and returns how many there were."""
        expired = 0
        for discussion_id in await run_db(prompts.due_discussions):
            for event in await run_db(prompts.expire_due, discussion_id):
                await self.bus.publish(event)
                expired += 1
        return expired

    async def run_prompt_clock(self, interval: float = 1.0) -> None:
        """`expire_prompts` every `interval` seconds, so a deadline is kept to within a second."""
        while True:
            try:
                await self.expire_prompts()
            except Exception:
                log.exception("prompt deadlines: sweep failed")
            await asyncio.sleep(interval)

    def start_background(self) -> None:
        """Start the janitor and the prompt clock in the running event loop (called at app start)."""
        if self._janitor is None or self._janitor.done():
            self._janitor = asyncio.create_task(self.run_janitor(), name="runner-janitor")
        if self._prompt_clock is None or self._prompt_clock.done():
            self._prompt_clock = asyncio.create_task(self.run_prompt_clock(), name="prompt-clock")

    async def shutdown(self) -> None:
        """Stop engines and release their leases, so another process resumes them at once."""
        for loop_task in (self._janitor, self._prompt_clock):
            if loop_task:
                loop_task.cancel()
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task

    async def wait(self, discussion_id: int) -> None:
        """Wait until this process's engine for the discussion finishes (tests, CLI)."""
        task = self.tasks.get(discussion_id)
        if task:
            with contextlib.suppress(asyncio.CancelledError):
                await task


_runner: Runner | None = None


def get_runner() -> Runner:
    """The process-wide runner."""
    global _runner
    if _runner is None:
        _runner = Runner()
    return _runner


def set_runner(runner: Runner | None) -> None:
    """Replace the process-wide runner (tests)."""
    global _runner
    _runner = runner
