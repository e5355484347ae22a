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

from sqlalchemy import or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from backend.config import get_settings
from backend.db import run_db, session_scope
from backend.events.bus import Bus, get_bus
from backend.events.follower import LiveText
from backend.models import Discussion, DiscussionStatus, RunnerLease
from backend.models.base import utcnow
from backend.observability import bind_discussion, discussion_active
from backend.orchestrator.engine import Engine, LiveTurn, ProviderLookup, default_provider_lookup

log = logging.getLogger(__name__)


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
        expires = now + timedelta(seconds=self.lease_seconds)
        try:
            with session_scope() as s:
                taken = s.execute(
                    update(RunnerLease)
                    .where(
                        RunnerLease.discussion_id == discussion_id,  # type: ignore[arg-type]
                        or_(RunnerLease.owner == self.owner, RunnerLease.expires_at <= now),  # type: ignore[arg-type]
                    )
                    .values(owner=self.owner, expires_at=expires)
                ).rowcount
                if taken:
                    return True
                if s.get(RunnerLease, discussion_id) is not None:
                    return False  # a live runner holds it
                s.add(RunnerLease(discussion_id=discussion_id, owner=self.owner, expires_at=expires))
                return True
        except IntegrityError:
            return False  # another runner inserted it first

    def _renew(self, discussion_id: int) -> bool:
        with session_scope() as s:
            renewed = s.execute(
                update(RunnerLease)
                .where(RunnerLease.discussion_id == discussion_id, RunnerLease.owner == self.owner)  # type: ignore[arg-type]
                .values(expires_at=utcnow() + timedelta(seconds=self.lease_seconds))
            ).rowcount
            return bool(renewed)

    def _release(self, discussion_id: int) -> None:
        with session_scope() as s:
            lease = s.get(RunnerLease, discussion_id)
            if lease is not None and lease.owner == self.owner:
                s.delete(lease)

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
        with session_scope() as s:
            d = s.get(Discussion, discussion_id)
            return d.status if d else None

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
        with session_scope() as s:
            return list(s.exec(select(Discussion.id).where(Discussion.status == DiscussionStatus.RUNNING)))  # type: ignore[arg-type]

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

    def start_background(self) -> None:
        """Start the janitor loop in the running event loop (called at app start)."""
        if self._janitor is None or self._janitor.done():
            self._janitor = asyncio.create_task(self.run_janitor(), name="runner-janitor")

    async def shutdown(self) -> None:
        """Stop engines and release their leases, so another process resumes them at once."""
        if self._janitor:
            self._janitor.cancel()
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
