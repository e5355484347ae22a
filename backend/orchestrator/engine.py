"""The engine: runs one discussion from its log to the end, streaming agent turns to the bus.

Read `run` top to bottom: load the discussion, the opening statements (when independent), then the protocol's
schedule turn by turn, with people served between turns and the round-end steps (prompts, where the room stands)
between rounds, until the stop rule says the rounds are over or the run must pause; then the decision phase and the
close. One turn end to end is `turn.py`; what every step shares is `run_context.py`; people in the loop are
`people.py`; the decision phase is `deciding.py`; when to stop is `stop_rules.py`.

Progress is derived from the database, never held only in memory: each agent turn is a message row keyed by
(round, participant), so a resumed engine skips finished turns and repeats at most the one that was in flight
(DESIGN decision 5).
"""

from __future__ import annotations

from backend.events.bus import Bus
from backend.events.schema import DiscussionFinished, DiscussionPaused
from backend.humans import checkpoints
from backend.models import Discussion, Participant
from backend.orchestrator import run_log
from backend.orchestrator.deciding import DecisionPhase
from backend.orchestrator.open_slots import fill_slot
from backend.orchestrator.openings import opening_statements
from backend.orchestrator.people import People
from backend.orchestrator.run_context import (
    ProviderLookup,
    RunContext,
    RunTotals,
    default_provider_lookup,
    system_prompt,
)
from backend.orchestrator.stop_rules import Progress, Stop, StopRule, default_rule
from backend.orchestrator.turn import LiveTurn, Outcome, Turns, failed_call_usage
from backend.protocols import get_protocol
from backend.protocols.base import Protocol, Turn

__all__ = ["Engine", "LiveTurn", "ProviderLookup", "RunTotals", "default_provider_lookup", "failed_call_usage"]


class Engine:
    """Runs one discussion's protocol, resuming from whatever the log already holds."""

    def __init__(
        self,
        discussion_id: int,
        *,
        bus: Bus,
        provider_lookup: ProviderLookup = default_provider_lookup,
        protocol: Protocol | None = None,
    ) -> None:
        self.discussion_id = discussion_id
        self.ctx = RunContext(discussion_id, bus=bus, provider_lookup=provider_lookup)
        self.people = People(self.ctx)
        self.turns = Turns(self.ctx, self.people)
        self._fixed_protocol = protocol
        self.protocol: Protocol = protocol or get_protocol(None)

    @property
    def live(self) -> dict[int, LiveTurn]:
        """Text streamed so far for each turn in flight, by its start seq (for viewers that join mid-stream)."""
        return self.turns.live

    @property
    def totals(self) -> RunTotals:
        return self.ctx.totals

    async def run(self) -> DiscussionFinished | DiscussionPaused:
        """Run every remaining turn (and any retried ones), then close the discussion, or pause on a budget."""
        try:
            async with self.people.watching():
                return await self._run()
        finally:
            self.ctx.db.close()

    async def _run(self) -> DiscussionFinished | DiscussionPaused:
        ctx = self.ctx
        seen = self.people.snapshot()  # what the watcher saw before the log was read
        loaded = await ctx.db.run(run_log.load, ctx, self.people)
        self.people.settle(seen, loaded.left_by_people)
        discussion, agents, finished = loaded.discussion, loaded.agents, loaded.finished
        if self._fixed_protocol is None:
            self.protocol = get_protocol(discussion.protocol)
            if self.protocol.follows_plan:  # staged: its stages are the rounds it was created with
                self.protocol.planned = await ctx.db.run(run_log.created_rounds, self.discussion_id)
        await ctx.bus.publish(loaded.started)
        if discussion.parallel_openings:
            openings = [t for t in self.protocol.schedule(agents, 1) if t.key not in finished]
            if openings:
                names = [a.name for a in agents]
                stopped = await opening_statements(ctx, self.turns, self.protocol, discussion, openings, names)
                if stopped is not None:
                    return stopped
                finished |= {t.key for t in openings}
        # With a vote at the end (or when asked), where the room stands is detected after every round;
        # `stop_on_consensus` ends the rounds early once enough agree (a resume finds that in the log and stops at
        # the same round).
        deciding = (
            DecisionPhase(ctx, discussion, agents) if discussion.vote_rule or discussion.track_consensus else None
        )
        stop_rule = default_rule(discussion.rounds)
        while True:
            progress = Progress(consensus_round=await deciding.agreed_round() if deciding else None)
            final_round = progress.consensus_round or discussion.rounds
            ended = await self._rounds(discussion, agents, finished, deciding, stop_rule, progress, final_round)
            if isinstance(ended, DiscussionPaused):
                return ended
            final_round = ended  # earlier than planned when consensus ended the rounds
            if final_round == discussion.rounds:
                await self.people.ask(discussion, final_round)
            paused = await self._serve_mentions(discussion, agents, finished, final_round, stop_rule, progress)
            if paused is not None:
                return paused
            if deciding:
                await deciding.run(final_round)
                progress.stopped_by = await ctx.db.run(ctx.stopped_reason)
                stop = stop_rule.check(progress)
                if stop is not None and stop.pauses:  # a person pressed Stop during the vote: Run Agents continues
                    return DiscussionPaused(discussion_id=self.discussion_id, reason=stop.reason)
            done = await ctx.db.run(run_log.finish, ctx, agents)
            if done is not None:
                await ctx.bus.publish(done)
                return done
            finished = await ctx.db.run(run_log.finished_keys, self.discussion_id)  # a retry was queued meanwhile

    async def _rounds(
        self,
        discussion: Discussion,
        agents: list[Participant],
        finished: set[str],
        deciding: DecisionPhase | None,
        stop_rule: StopRule,
        progress: Progress,
        final_round: int,
    ) -> DiscussionPaused | int:
        """The protocol's schedule up to `final_round`, turn by turn: the round the rounds ended after, or the
        pause when the run must stop."""
        schedule = list(self.protocol.schedule(agents, final_round))
        last_round = 0
        for i, turn in enumerate(schedule):
            opened = turn.key in self.turns.opened  # by the previous turn: it goes first (see `_next_to_open`)
            if turn.round != last_round and last_round and not opened:
                stop = await self._end_round(discussion, deciding, stop_rule, progress, last_round)
                if stop is not None:
                    return last_round  # the rounds are over early (consensus): the decision phase follows
            last_round = turn.round
            if not opened:
                paused = await self._serve_mentions(discussion, agents, finished, turn.round, stop_rule, progress)
                if paused is not None:
                    return paused
            if turn.speaker is None:  # an open slot: the protocol's facilitator picks who speaks
                filled = await fill_slot(self.ctx, self.protocol, agents, turn, final_round)
                if filled is None:
                    continue
                turn = filled
            if turn.key in finished:
                continue
            following = self._next_to_open(schedule, i, finished, discussion, deciding)
            outcome = await self._speak(discussion, agents, turn, following=following)
            if self._pauses(outcome, stop_rule, progress):
                return outcome  # type: ignore[return-value]
            finished.add(turn.key)
        progress.rounds_done = final_round
        return final_round

    async def _end_round(
        self,
        discussion: Discussion,
        deciding: DecisionPhase | None,
        stop_rule: StopRule,
        progress: Progress,
        round_no: int,
    ) -> Stop | None:
        """Between rounds: the prompts due, then where the room stands; the stop when the rounds end here."""
        await self.people.ask(discussion, round_no)
        progress.rounds_done = round_no
        if deciding and await deciding.after_round(round_no):
            progress.consensus_round = round_no
        return stop_rule.check(progress)

    async def _speak(
        self, discussion: Discussion, agents: list[Participant], turn: Turn, *, following: Turn | None = None
    ) -> Outcome:
        """Run one agent's turn under its system prompt, with its turn's cue or the protocol's."""
        agent: Participant = turn.speaker  # type: ignore[assignment]
        others = [a.name for a in agents if a.name != agent.name]
        cue = turn.cue or self.protocol.speaker_cue(agent.name, turn.round, discussion.rounds)
        return await self.turns.run(
            discussion, turn, system_prompt(agent, discussion, others), cue, following=following
        )

    async def _serve_mentions(
        self,
        discussion: Discussion,
        agents: list[Participant],
        finished: set[str],
        round_no: int,
        stop_rule: StopRule,
        progress: Progress,
    ) -> DiscussionPaused | None:
        """Give the floor to the agents people @mentioned; the pause when one of those turns could not start."""

        async def speak(agent: Participant, turn: Turn) -> Outcome:
            return await self._speak(discussion, agents, turn)

        paused = await self.people.answer_mentions(self.protocol, agents, finished, round_no, speak)
        return paused if self._pauses(paused, stop_rule, progress) else None

    @staticmethod
    def _pauses(outcome: Outcome | None, stop_rule: StopRule, progress: Progress) -> bool:
        """Whether a turn's outcome pauses the run: a person's stop (logged when they pressed it, so it has no seq
        here) or a budget the turn could pass (the engine logged that pause)."""
        if not isinstance(outcome, DiscussionPaused):
            return False
        if outcome.seq:
            progress.budget_reason = outcome.reason
        else:
            progress.stopped_by = outcome.reason
        stop = stop_rule.check(progress)
        return stop is not None and stop.pauses

    def _next_to_open(
        self, schedule: list[Turn], i: int, finished: set[str], discussion: Discussion, deciding: DecisionPhase | None
    ) -> Turn | None:
        """The turn that may open as turn `i` closes (one transaction for both), or None when something must
        happen in between: a facilitator's pick, a vote's round-end steps, prompts due or possibly open.

        A person who posts, @mentions or opens a prompt during that instant is served right after the opened turn,
        as if they had acted a moment later (`Turns.run` skips the handover once they have acted).
        """
        if i + 1 >= len(schedule):
            return None
        turn, following = schedule[i], schedule[i + 1]
        if following.speaker is None or following.key in finished:
            return None
        if following.round != turn.round and (
            deciding is not None or checkpoints.due_after(discussion, turn.round) or self.people.prompts_may_be_open
        ):
            return None
        return following
