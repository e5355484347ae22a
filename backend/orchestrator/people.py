"""People in the loop: prompts due after a round, holds while a blocking one is open, @mentions that give an agent
the floor, and an agent's question to the room.

People act through the bus: the run looks for prompts and @mentions only after one of their events, so a
discussion nobody interrupts pays nothing for it per turn (and never asks the database).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from sqlalchemy import Connection, bindparam, exists, select

from backend.db import session_scope
from backend.events.schema import (
    DiscussionPaused,
    HumanInputAnswered,
    HumanInputRequested,
    HumanMessagePosted,
    PersistedEvent,
)
from backend.humans import checkpoints, clarifications, mentions, prompts
from backend.models import Discussion, HumanInputRequest, Mention, Participant, PromptStatus
from backend.orchestrator.run_context import RunContext
from backend.protocols.base import Protocol, Turn

# What people left before this run (a pause, a restart): mentions not yet answered, prompts still open.
_LEFT_BY_PEOPLE = select(
    exists().where(Mention.discussion_id == bindparam("did"), Mention.handled.is_(False)),  # type: ignore[attr-defined]
    exists().where(
        HumanInputRequest.discussion_id == bindparam("did"),  # type: ignore[arg-type]
        HumanInputRequest.status == PromptStatus.OPEN,
    ),
)

# Runs one agent turn and says how it ended (a pause stops the caller).
Speak = Callable[[Participant, Turn], Awaitable[object]]


class People:
    """What people did in the room that the run must serve, and the serving."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.acted = asyncio.Event()
        self.acted.set()  # a resume may find prompts or mentions left from before
        self.events = 0  # people's events seen, to tell whether anyone acted while the log was read
        self.watch_lost = False
        # Prompts may be open while `prompt_gen` (bumped by every prompt anyone opens) is ahead of the last
        # generation a check found none open.
        self.prompt_gen = 1  # a resume may find prompts left from before
        self.prompts_checked_gen = 0

    @contextlib.asynccontextmanager
    async def watching(self) -> AsyncIterator[None]:
        """Follow people's events on the bus for as long as the run lasts."""
        subscription = await self.ctx.bus.subscribe(self.ctx.discussion_id, text=False)
        watcher = asyncio.create_task(self._watch(subscription))
        try:
            yield
        finally:
            watcher.cancel()
            await subscription.close()

    async def _watch(self, subscription) -> None:
        try:
            async for event in subscription:
                if isinstance(event, HumanMessagePosted | HumanInputRequested | HumanInputAnswered):
                    self.events += 1
                    self.acted.set()
                if isinstance(event, HumanInputRequested):
                    self.prompt_gen += 1
        finally:
            self.watch_lost = True  # lagged or closed: look before every turn from now on

    def left_before(self, c: Connection) -> tuple[bool, bool]:
        """(mentions left unanswered, prompts left open) before this run, in the caller's transaction."""
        mentions_left, prompts_left = c.execute(_LEFT_BY_PEOPLE, {"did": self.ctx.discussion_id}).one()
        return bool(mentions_left), bool(prompts_left)

    def snapshot(self) -> tuple[int, int]:
        """What the watcher has seen so far, taken before the log is read (see `settle`)."""
        return self.events, self.prompt_gen

    def settle(self, seen: tuple[int, int], left: tuple[bool, bool]) -> None:
        """Forget the "maybe something was left" flags when the log shows nothing was and nobody acted since."""
        events, prompt_gen = seen
        mentions_left, prompts_left = left
        if not mentions_left and self.events == events:
            self.acted.clear()
        if not prompts_left:
            self.prompts_checked_gen = prompt_gen

    @property
    def quiet(self) -> bool:
        """Nobody acted since the last look (and the watch still works)."""
        return not (self.acted.is_set() or self.watch_lost)

    @property
    def prompts_may_be_open(self) -> bool:
        return self.prompt_gen != self.prompts_checked_gen

    # --- prompts and holds ------------------------------------------------------------------------------------

    def _open_asks(self, discussion: Discussion, round_no: int) -> list[PersistedEvent]:
        with session_scope() as s:
            opened = [
                prompts.create(s, self.ctx.discussion_id, key=ask.key, **ask.fields)
                for ask in checkpoints.due_after(discussion, round_no)
            ]
        return [e for e in opened if e is not None]

    async def ask(self, discussion: Discussion, round_no: int) -> None:
        """Open the prompts due after `round_no` (once, even across a resume), then hold for blocking ones."""
        if checkpoints.due_after(discussion, round_no):
            for event in await self.ctx.db.run(self._open_asks, discussion, round_no):
                self.prompt_gen += 1
                await self.ctx.bus.publish(event)
        await self.hold()

    async def hold(self, poll_s: float = 0.5) -> None:
        """Wait while a blocking prompt is open; on its deadline the default applies (and the agents see it)."""
        while self.prompts_may_be_open or self.watch_lost:
            gen = self.prompt_gen
            expired, blocking, still_open = await self.ctx.db.run(prompts.sweep, self.ctx.discussion_id)
            for event in expired:
                await self.ctx.bus.publish(event)
            if not blocking:
                if not still_open:
                    self.prompts_checked_gen = gen  # nothing open: no need to look again until someone asks
                return
            await asyncio.sleep(poll_s)

    # --- @mentions and an agent's questions ---------------------------------------------------------------------

    async def answer_mentions(
        self, protocol: Protocol, agents: list[Participant], finished: set[str], round_no: int, speak: Speak
    ) -> DiscussionPaused | None:
        """Give the floor to every agent a person @mentioned, before the next scheduled turn."""
        if self.quiet:
            return None
        self.acted.clear()
        await self.hold()
        by_id = {a.id: a for a in agents}
        while request := await self.ctx.db.run(mentions.next_agent_request, self.ctx.discussion_id):
            mention_id, agent_id, asked_by = request
            agent = by_id.get(agent_id)
            if agent is not None:
                turn = Turn(
                    round=round_no, speaker=agent, tag=f"m{mention_id}", cue=protocol.mention_cue(agent.name, asked_by)
                )
                if turn.key not in finished:
                    outcome = await speak(agent, turn)
                    if isinstance(outcome, DiscussionPaused):
                        return outcome
                    finished.add(turn.key)
            await self.ctx.db.run(mentions.mark_handled, [mention_id])
        return None

    def _open_question(self, agent: Participant, message_id: int, text: str) -> PersistedEvent | None:
        with session_scope() as s:
            return clarifications.open_for(s, self.ctx.discussion_id, agent.name, message_id, text)

    async def take_question(self, agent: Participant, message_id: int, text: str) -> None:
        """An agent asked people something: open the prompt; the next turn waits for the answer."""
        asked = await self.ctx.db.run(self._open_question, agent, message_id, text)
        if asked is not None:
            await self.ctx.bus.publish(asked)
            self.prompt_gen += 1
            self.acted.set()
