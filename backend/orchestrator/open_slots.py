"""Open slots (the open floor): the protocol's facilitator picks who speaks when a slot comes up.

A slot keeps the speaker it had before a restart (stored with its message's turn key). With no facilitator model,
or when the budget would not cover its call, the quietest agent speaks: a missing facilitator never stalls the room
or loops on a crash.
"""

from __future__ import annotations

import logging

from sqlmodel import select

from backend.db import session_scope
from backend.models import Message, MessageStatus, Participant
from backend.orchestrator.run_context import RunContext
from backend.protocols.base import Protocol, Turn
from backend.protocols.open_floor import fallback_pick

log = logging.getLogger(__name__)

FACILITATOR_MAX_TOKENS = 120  # what the open floor's facilitator asks for (protocols/open_floor.py)


def _slot_speaker(discussion_id: int, tag: str) -> tuple[int, str] | None:
    """The agent an open slot already went to (and its message's status), from its turn key."""
    with session_scope() as s:
        row = s.execute(
            select(Message.participant_id, Message.status).where(
                Message.discussion_id == discussion_id,
                Message.turn_key.like(f"{tag}:%"),  # type: ignore[union-attr]
            )
        ).first()
        return (row[0], row[1]) if row else None


async def fill_slot(
    ctx: RunContext, protocol: Protocol, agents: list[Participant], turn: Turn, rounds: int
) -> Turn | None:
    """Give an open slot its speaker (None when the slot's turn is already done)."""
    by_id = {a.id: a for a in agents}
    taken = await ctx.db.run(_slot_speaker, ctx.discussion_id, turn.tag)
    reason = ""
    if taken is not None:
        participant_id, status = taken
        if status in (MessageStatus.COMPLETE, MessageStatus.FAILED):
            return None
        agent = by_id.get(participant_id)
    else:
        agent = None
    if agent is None:
        await ctx.db.run(ctx.transcript.refresh)
        transcript = ctx.transcript.entries()
        facilitator, names = agents[0], [a.name for a in agents]
        try:
            call = ctx.step_call(facilitator, "facilitator's pick", FACILITATOR_MAX_TOKENS)
            if await ctx.db.run(ctx.over_budget_now, call):
                raise RuntimeError("the budget is used up")  # no facilitator call; the turn will pause
            provider = await ctx.provider_for(facilitator)
        except Exception as exc:  # no facilitator model: the quietest agent speaks (never a crash loop)
            log.warning("discussion %s: no facilitator (%s); the quietest agent speaks", ctx.discussion_id, exc)
            spoken = [e.author for e in transcript if e.author_kind == "agent"]
            name, reason = fallback_pick([n for n in names if not spoken or n != spoken[-1]] or names, spoken), ""
        else:
            name, reason, usage, latency_ms = await protocol.choose(
                provider, facilitator.model or "", transcript, names
            )
            await ctx.record_call(facilitator, "facilitator", usage, latency_ms)
        agent = next((a for a in agents if a.name == name), agents[0])
    cue = protocol.next_cue(agent.name, turn.round, rounds, reason)
    return Turn(round=turn.round, speaker=agent, tag=turn.tag, cue=cue)
