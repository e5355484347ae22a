"""Round 1 as independent opening statements: every agent answers at once, seeing only what came before.

Honest fan-out (DESIGN decision 7): the calls run concurrently, a failure does not stop the others, the room is told
who failed and that a partial council may lack its strongest members, and if every agent fails the discussion stops
as failed rather than carrying on with nothing.
"""

from __future__ import annotations

from backend.events.schema import DiscussionFinished, DiscussionPaused, TurnFailed
from backend.models import Discussion, Participant
from backend.orchestrator import run_log
from backend.orchestrator.fanout import FanoutTask, fan_out_gated, step_report
from backend.orchestrator.run_context import RunContext, system_prompt
from backend.orchestrator.turn import Turns
from backend.protocols.base import Protocol, Turn
from backend.providers.base import ErrorKind, ProviderError

NOT_STARTED = "Not started: the budget is used up."
EVERY_AGENT_FAILED = "Every agent failed the opening statements, so the discussion stops here."


async def opening_statements(
    ctx: RunContext, turns: Turns, protocol: Protocol, discussion: Discussion, openings: list[Turn], names: list[str]
) -> DiscussionPaused | DiscussionFinished | None:
    """Run the openings not finished yet; the pause or the failed close when the run must stop, else None."""
    await ctx.db.run(ctx.transcript.refresh)
    # What the openings may see: the question and human posts, never another agent's opening (round 1 has no other
    # agent messages), even when resuming a step that was half done.
    before = [row for row in ctx.transcript.rows if row[3] != "agent"]
    paused: list[DiscussionPaused] = []

    def call(agent: Participant, turn: Turn):
        others = [n for n in names if n != agent.name]
        cue = turn.cue or protocol.speaker_cue(agent.name, turn.round, discussion.rounds)

        async def run() -> str:
            outcome = await turns.run(discussion, turn, system_prompt(agent, discussion, others), cue, before=before)
            if isinstance(outcome, TurnFailed):
                raise ProviderError(ErrorKind(outcome.error_kind), outcome.error_message)
            if isinstance(outcome, DiscussionPaused):
                paused.append(outcome)
                raise ProviderError(ErrorKind.BAD_REQUEST, NOT_STARTED)
            return outcome.content

        return run

    tasks = [FanoutTask(t.speaker.name, t.speaker.model or "", call(t.speaker, t)) for t in openings]  # type: ignore[attr-defined]
    # With limited spend, the openings go one at a time (still unseen by each other), each after the check of its
    # worst case, as in the sequential rounds.
    outcome = await fan_out_gated(tasks, one_at_a_time=ctx.spend_limited)
    none_answered = None if paused else EVERY_AGENT_FAILED
    await ctx.log(
        step_report(ctx.discussion_id, "opening statements", outcome, none_answered=none_answered, unlisted=NOT_STARTED)
    )
    if paused:
        return paused[0]
    if not outcome.successes:
        done = await ctx.db.run(run_log.finish, ctx, [t.speaker for t in openings])  # type: ignore[misc]
        assert done is not None
        await ctx.bus.publish(done)
        return done
    return None
