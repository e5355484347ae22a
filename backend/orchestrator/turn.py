"""One agent turn, end to end: open it (the check before the call, in the same transaction), stream the reply to the
room, close it with what it cost, or record why it failed; the discussion goes on either way.

Each turn is a message row keyed by (round, participant), so a resumed run skips finished turns and repeats at most
the one that was in flight (DESIGN decision 5). Completed messages and status changes are persisted events; token
deltas go on the bus only.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from functools import partial

from sqlalchemy import Connection

from backend import observability
from backend.config import get_settings
from backend.db import get_engine
from backend.events.schema import DiscussionPaused, TurnCompleted, TurnFailed, TurnStarted, TurnStatus
from backend.humans import clarifications
from backend.models import Discussion, DiscussionStatus, MessageStatus, Participant
from backend.orchestrator import turn_log
from backend.orchestrator.fitting import ContextFitter
from backend.orchestrator.people import People
from backend.orchestrator.run_context import RunContext, usage_values
from backend.orchestrator.streamed_text import StreamedText
from backend.orchestrator.transcript_cache import Row
from backend.protocols.base import Turn
from backend.providers import pricing, retry_policy
from backend.providers.base import Completion, ErrorKind, GenerationRequest, ProviderError, TranscriptEntry, Usage
from backend.providers.base import TokenDelta as ProviderDelta
from backend.providers.call_clock import CallClock
from backend.providers.context_budget import entry_tokens, estimate_tokens

log = logging.getLogger(__name__)

# A turn opened (message id, its TurnStarted, the transcript its agent sees) or refused (the pause).
Opened = tuple[int, TurnStarted, list[TranscriptEntry]] | DiscussionPaused
Outcome = DiscussionPaused | TurnCompleted | TurnFailed


@dataclass
class LiveTurn:
    """Text streamed so far for a turn in flight (for viewers that join mid-stream)."""

    start_seq: int
    participant_id: int
    author_name: str
    text: str = ""


def failed_call_usage(request: GenerationRequest | None, partial: str) -> Usage | None:
    """What a call that failed after its model began writing was probably billed: the prompt and the text written
    so far, estimated high and marked estimated (no provider reports usage for a broken stream). None when nothing
    was written: a call refused before generating costs nothing."""
    if request is None or not partial:
        return None
    prompt = estimate_tokens(request.system) + sum(entry_tokens(e) for e in request.transcript)
    return Usage(input_tokens=prompt, output_tokens=estimate_tokens(partial), estimated=True)


class Turns:
    """Runs the agents' turns of one run, and holds what viewers joining mid-stream need (`live`)."""

    def __init__(self, ctx: RunContext, people: People) -> None:
        self.ctx = ctx
        self.people = people
        self.fitter = ContextFitter(ctx)
        self.live: dict[int, LiveTurn] = {}
        self.opened: dict[str, Opened] = {}  # turns opened by the previous turn's `_finish`, by turn key
        self._background: set[asyncio.Task] = set()

    async def run(
        self,
        discussion: Discussion,
        turn: Turn,
        system: str,
        cue: str,
        *,
        before: list[Row] | None = None,
        following: Turn | None = None,
    ) -> Outcome:
        """Run one agent turn and return how it ended (or the pause event when a budget stops it first).

        `before` freezes what the agent sees (opening statements must not see each other). `following` is the
        turn that comes straight after this one: when nothing else needs to happen in between, finishing this
        turn opens that one in the same transaction (see `_finish`).
        """
        ctx = self.ctx
        agent: Participant = turn.speaker  # type: ignore[assignment]
        started_turn = self.opened.pop(turn.key, None) or await ctx.db.run(self._start, turn)
        if isinstance(started_turn, DiscussionPaused):
            if started_turn.seq:  # a budget paused it now (a person's stop was published when they pressed it)
                await ctx.bus.publish(started_turn)
            return started_turn
        message_id, started, transcript = started_turn
        if before is not None:
            transcript = ctx.transcript.entries(before, speaker_id=agent.id)
        assert agent.id is not None
        await ctx.bus.publish(started)
        live = LiveTurn(start_seq=started.seq, participant_id=agent.id, author_name=agent.name)
        self.live[started.seq] = live
        transcript = [*transcript, TranscriptEntry(author="Moderator", content=cue, author_kind="system")]
        settings = get_settings()
        t0 = time.monotonic()
        completion: Completion | None = None
        request: GenerationRequest | None = None
        first_token: float | None = None
        # Timers, not sleeping tasks: most turns end before them and cancelling a handle costs next to nothing.
        # Both stand still while the call waits its turn for a shared model (see call_clock).
        clock = CallClock(
            settings.hard_deadline_s,
            soft_s=settings.soft_deadline_s,
            on_slow=partial(self._mark_slow, started.seq, agent.id, settings.soft_deadline_s),
            on_queue=partial(self._mark_queued, started.seq, agent.id),
        )
        token = retry_policy.on_retry.set(partial(self._mark_status, started.seq, agent.id, "retrying"))
        try:
            provider = await ctx.provider_for(agent)
            request = await self.fitter.fit(provider, agent, system, transcript, ctx.max_tokens)
            text = StreamedText(ctx.bus, live, ctx.discussion_id, live.start_seq, agent.id)
            try:
                async with clock:
                    async for item in provider.stream(request):
                        if isinstance(item, ProviderDelta):
                            if not item.text:
                                continue
                            if first_token is None:
                                first_token = time.monotonic() - t0
                            await text.add(item.text)
                        else:
                            completion = item
            finally:  # the text streamed so far goes out before the turn's outcome (or failure)
                text.flush()
            if completion is None:
                raise ProviderError(ErrorKind.CONNECTION, "The stream ended without a final message.")
            if not completion.text.strip():
                raise ProviderError(ErrorKind.EMPTY, "The model returned an empty reply.")
        except TimeoutError:
            error = ProviderError(ErrorKind.TIMEOUT, clock.timeout_message())
            return await self._record_failure(message_id, started.seq, agent, error, live, t0, request)
        except ProviderError as error:
            return await self._record_failure(message_id, started.seq, agent, error, live, t0, request)
        except Exception as exc:  # a bug or an SDK surprise must not kill the discussion
            log.exception("discussion %s: unexpected error in %s's turn", ctx.discussion_id, agent.name)
            error = ProviderError(ErrorKind.SERVER, f"Unexpected error: {type(exc).__name__}: {exc}")
            return await self._record_failure(message_id, started.seq, agent, error, live, t0, request)
        finally:
            retry_policy.on_retry.reset(token)
        latency = int((time.monotonic() - t0) * 1000)
        asks = clarifications.requested(completion.text)
        hand_over = following is not None and not asks and self.people.quiet
        done, opened = await ctx.db.run(
            self._finish, message_id, started.seq, agent, completion, latency, following if hand_over else None
        )
        usage = completion.usage
        observability.record_call(
            agent.provider or "",
            agent.model or "",
            status="ok",
            latency_s=latency / 1000,
            first_token_s=first_token,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cached_tokens=usage.cached_tokens,
            cost_usd=done.cost_usd,
        )
        self.live.pop(started.seq, None)
        ctx.totals.turns += 1
        ctx.totals.add(usage.input_tokens + usage.output_tokens, done.cost_usd)
        await ctx.bus.publish(done)
        if opened is not None:  # the next turn is open: its own `run` publishes its start
            assert following is not None
            self.opened[following.key] = opened
        if asks:  # the agent needs people: the next turn waits for the answer (see People.answer_mentions)
            await self.people.take_question(agent, message_id, completion.text)
        return done

    async def _record_failure(
        self,
        message_id: int,
        start_seq: int,
        agent: Participant,
        error: ProviderError,
        live: LiveTurn,
        t0: float,
        request: GenerationRequest | None,
    ) -> TurnFailed:
        """Mark the turn failed with its reason (visible to every viewer) and what it probably cost; the
        discussion goes on."""
        latency = int((time.monotonic() - t0) * 1000)
        usage = failed_call_usage(request, live.text)
        failed = await self.ctx.db.run(self._fail, message_id, start_seq, agent, error, live.text, latency, usage)
        observability.record_call(
            agent.provider or "",
            agent.model or "",
            status="failed",
            error_kind=error.kind.value,
            latency_s=latency / 1000,
            input_tokens=failed.input_tokens,
            output_tokens=failed.output_tokens,
            cost_usd=failed.cost_usd,
        )
        self.live.pop(start_seq, None)
        self.ctx.totals.failed += 1
        self.ctx.totals.add(failed.input_tokens + failed.output_tokens, failed.cost_usd)
        log.warning("discussion %s: %s's turn failed: %s", self.ctx.discussion_id, agent.name, error)
        await self.ctx.bus.publish(failed)
        return failed

    # --- a turn's status while in flight (slow, queued, retrying) ----------------------------------------------

    def _mark_slow(self, start_seq: int, participant_id: int, after_s: float) -> None:
        """The soft deadline passed: the room sees "slow" (the call goes on until the hard deadline)."""
        self._mark_later(start_seq, participant_id, "slow", f"no complete reply after {after_s:.0f} s")

    def _mark_queued(self, start_seq: int, participant_id: int, waiting: bool) -> None:
        """The call waits for a shared model ("queued"), or the model has taken it ("thinking" again)."""
        if waiting:
            self._mark_later(start_seq, participant_id, "queued", "waiting for the model to finish another call")
        else:
            self._mark_later(start_seq, participant_id, "thinking", "")

    def _mark_later(self, start_seq: int, participant_id: int, status: str, detail: str) -> None:
        """Mark a status from a timer or callback, which cannot await: a task, appended in call order."""
        task = asyncio.create_task(self._mark_status(start_seq, participant_id, status, detail))
        self._background.add(task)  # held until done: the loop keeps only weak references to tasks
        task.add_done_callback(self._background.discard)

    async def _mark_status(self, start_seq: int, participant_id: int, status: str, detail: str) -> None:
        """Persist and publish a status change of a turn in flight (slow, retrying)."""
        await self.ctx.log(
            TurnStatus(
                discussion_id=self.ctx.discussion_id,
                start_seq=start_seq,
                participant_id=participant_id,
                status=status,  # type: ignore[arg-type]
                detail=detail,
            )
        )

    # --- the turn's row and events (these run in the database lane) ----------------------------------------------

    def _start(self, turn: Turn) -> Opened:
        """Check the budget, mark the turn streaming and read what the agent has not seen yet, in one transaction."""
        try:
            with get_engine().begin() as c:
                return self._open(c, turn)[0]
        except turn_log.NotNow as refused:
            return self._refused(refused)

    def _open(
        self, c: Connection, turn: Turn, closing: tuple[int, TurnCompleted, dict] | None = None
    ) -> tuple[tuple[int, TurnStarted, list[TranscriptEntry]], TurnCompleted | None]:
        """Open `turn` in the caller's transaction, closing the turn before first when given `closing` (see
        `turn_log.open_turn`); raises NotNow when it must not start."""
        agent: Participant = turn.speaker  # type: ignore[assignment]
        assert agent.id is not None
        message_id, event, closed = turn_log.open_turn(
            c,
            TurnStarted(
                discussion_id=self.ctx.discussion_id,
                message_id=0,
                participant_id=agent.id,
                author_name=agent.name,
                round=turn.round,
                label="synthesis" if turn.tag.startswith(("synthesis", "stage")) else (turn.stance or ""),
            ),
            turn_key=turn.key,
            provider=agent.provider,
            model=agent.model,
            may_start=partial(self._may_start, c, agent),
            closing=closing,
        )
        return (message_id, event, self.ctx.transcript.entries(speaker_id=agent.id)), closed

    def _refused(self, refused: turn_log.NotNow) -> DiscussionPaused:
        """The pause for a turn that must not start: a person's stop (logged already) or a used-up budget."""
        if refused.logged:
            return DiscussionPaused(discussion_id=self.ctx.discussion_id, reason=refused.reason)
        with get_engine().begin() as c:
            return self.ctx.pause(c, refused.reason)

    def _may_start(
        self,
        c: Connection,
        agent: Participant,
        status: str,
        stopped_why: str | None,
        budget_tokens: int | None,
        budget_usd: float | None,
    ) -> None:
        """Refuse a turn when a person stopped the discussion or its call could pass a budget or a daily cap.

        Reads what the agent has not seen yet first: the prompt is part of the call's worst case. A refusal rolls
        the transaction back, so the run forgets what it read too."""
        if status == DiscussionStatus.PAUSED:  # a person stopped it: the stop event is already in the log
            raise turn_log.NotNow(stopped_why or "Stopped.", logged=True)
        transcript = self.ctx.transcript
        read = transcript.mark()
        transcript.read_new(c)
        reason = self.ctx.refusal(c, self.ctx.turn_call(agent), budget_tokens, budget_usd)
        if reason:
            transcript.forget_since(read)
            raise turn_log.NotNow(reason, logged=False)

    def _close(self, message_id: int, event: TurnCompleted | TurnFailed, **values) -> TurnCompleted | TurnFailed:
        """Write the turn's outcome and its event in one transaction (one seq bump, one row update)."""
        with get_engine().begin() as c:
            return turn_log.close_turn(c, message_id, event, **values)  # type: ignore[return-value]

    def _completed(
        self, message_id: int, start_seq: int, agent: Participant, completion: Completion, latency_ms: int
    ) -> tuple[TurnCompleted, dict]:
        """The TurnCompleted event of a successful turn and the values its message row takes."""
        assert agent.id is not None
        cost = pricing.cost_usd(agent.provider or "", agent.model or "", completion.usage)
        outcome = {**usage_values(completion.usage, cost, latency_ms), "finish_reason": completion.finish_reason}
        event = TurnCompleted(
            discussion_id=self.ctx.discussion_id,
            message_id=message_id,
            participant_id=agent.id,
            start_seq=start_seq,
            content=completion.text,
            **outcome,
        )
        return event, {"content": completion.text, "status": MessageStatus.COMPLETE, **outcome}

    def _finish(
        self,
        message_id: int,
        start_seq: int,
        agent: Participant,
        completion: Completion,
        latency_ms: int,
        following: Turn | None,
    ) -> tuple[TurnCompleted, Opened | None]:
        """Close this turn; with `following`, open that turn in the same transaction (one commit and one thread hop
        per message instead of two). When the next turn must not start, this one still closes."""
        event, values = self._completed(message_id, start_seq, agent, completion, latency_ms)
        if following is None:
            return self._close(message_id, event, **values), None  # type: ignore[return-value]
        try:
            with get_engine().begin() as c:
                opened, done = self._open(c, following, closing=(message_id, event, values))
                return done, opened  # type: ignore[return-value]
        except turn_log.NotNow as refused:
            return self._close(message_id, event, **values), self._refused(refused)  # type: ignore[return-value]

    def _fail(
        self,
        message_id: int,
        start_seq: int,
        agent: Participant,
        error: ProviderError,
        partial: str,
        latency_ms: int,
        usage: Usage | None,
    ) -> TurnFailed:
        assert agent.id is not None
        usage = usage or Usage()
        cost = pricing.cost_usd(agent.provider or "", agent.model or "", usage)
        spent = usage_values(usage, cost, latency_ms)
        event = TurnFailed(
            discussion_id=self.ctx.discussion_id,
            message_id=message_id,
            participant_id=agent.id,
            start_seq=start_seq,
            error_kind=error.kind.value,
            error_message=error.message,
            partial_content=partial,
            input_tokens=spent["input_tokens"],
            output_tokens=spent["output_tokens"],
            cost_usd=cost,
            tokens_estimated=spent["tokens_estimated"],
        )
        return self._close(  # type: ignore[return-value]
            message_id,
            event,
            content=partial,
            status=MessageStatus.FAILED,
            error_kind=error.kind.value,
            error_message=error.message,
            **spent,
        )
