"""A run's first and last steps in the database: load the discussion and mark it running, find the turns already
finished (a resume skips them), and close the discussion (completed, failed, or awaiting approval).

These run in the run's database lane. Progress lives in the log, never only in memory (DESIGN decision 5).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, update
from sqlmodel import Session, func, select

from backend.db import get_engine, session_scope
from backend.events.log import append_event, read_events
from backend.events.schema import DiscussionCreated, DiscussionFinished, PersistedEvent, RunStarted
from backend.humans.instance import read_policy
from backend.memory import store as memory
from backend.models import Discussion, DiscussionStatus, Message, MessageStatus, Participant, ParticipantKind
from backend.models.base import utcnow
from backend.orchestrator import turn_log
from backend.orchestrator.deciding import needs_approval
from backend.orchestrator.people import People
from backend.orchestrator.run_context import RunContext

log = logging.getLogger(__name__)

_VOTE_RULE_LOCKED = select(Discussion.vote_rule).where(Discussion.id == bindparam("did")).with_for_update()  # type: ignore[arg-type]
_TURN_STATUSES = (
    select(Message.status, func.count())
    .where(Message.discussion_id == bindparam("did"), Message.turn_key.is_not(None))  # type: ignore[union-attr]
    .group_by(Message.status)
)
_SET_STATUS = (
    update(Discussion)
    .where(Discussion.id == bindparam("did"))  # type: ignore[arg-type]
    .values(status=bindparam("to"), updated_at=bindparam("now"))
)


@dataclass
class Loaded:
    """What a run starts from: the discussion, its agents in speaking order, the turns that need no call, what
    people left before this run (mentions, prompts), and the RunStarted event to publish."""

    discussion: Discussion
    agents: list[Participant]
    finished: set[str]
    left_by_people: tuple[bool, bool]
    started: PersistedEvent


def load(ctx: RunContext, people: People) -> Loaded:
    """Read the discussion, take its limits into `ctx`, and mark it running, in one transaction."""
    with session_scope() as s:
        discussion = s.get(Discussion, ctx.discussion_id)
        if discussion is None:
            raise LookupError(f"No discussion {ctx.discussion_id}")
        agents = sorted(
            s.exec(
                select(Participant).where(
                    Participant.discussion_id == ctx.discussion_id, Participant.kind == ParticipantKind.AGENT
                )
            ),
            key=lambda p: p.position,
        )
        finished = _finished_in(s, ctx.discussion_id)
        left = people.left_before(s)  # type: ignore[arg-type]
        ctx.configure(discussion, read_policy(s))
        resumed = discussion.status == DiscussionStatus.RUNNING
        discussion.status = DiscussionStatus.RUNNING
        discussion.pause_reason = None
        discussion.updated_at = utcnow()
        s.add(discussion)
        event = append_event(s, RunStarted(discussion_id=ctx.discussion_id, resumed=resumed))
    return Loaded(discussion, agents, finished, left, event)


def _finished_in(s, discussion_id: int) -> set[str]:
    """Turn keys that need no call: complete or failed (streaming = in flight at a crash; queued = retry)."""
    return {
        key
        for key in s.exec(
            select(Message.turn_key).where(
                Message.discussion_id == discussion_id,
                Message.turn_key.is_not(None),  # type: ignore[union-attr]
                Message.status.in_([MessageStatus.COMPLETE, MessageStatus.FAILED]),  # type: ignore[attr-defined]
            )
        )
        if key
    }


def finished_keys(discussion_id: int) -> set[str]:
    with session_scope() as s:
        return _finished_in(s, discussion_id)


def created_rounds(discussion_id: int) -> int:
    """The rounds the discussion was created with (a staged discussion's stages)."""
    with session_scope() as s:
        created = read_events(s, discussion_id, 0, limit=1)
        return created[0].rounds if created and isinstance(created[0], DiscussionCreated) else 0


def _remember(c: Connection, discussion_id: int) -> None:
    """Memory keeps the result; a failure there is logged and never fails the run (a savepoint contains it: the
    session's commit releases it into the caller's transaction, an error rolls it back)."""
    try:
        with Session(bind=c, join_transaction_mode="create_savepoint") as s:
            memory.remember(s, discussion_id, decided_by="")
            s.commit()
    except Exception:
        log.exception("memory: could not remember discussion %s", discussion_id)


def finish(ctx: RunContext, agents: list[Participant]) -> DiscussionFinished | None:
    """Close the discussion (completed, failed, or awaiting approval) unless a retry was queued meanwhile."""
    did = ctx.discussion_id
    with get_engine().begin() as c:
        vote_rule = c.execute(_VOTE_RULE_LOCKED, {"did": did}).scalar_one()
        turns = dict(c.execute(_TURN_STATUSES, {"did": did}).all())
        if turns.get(MessageStatus.QUEUED):
            return None  # a retry was requested while we ran: go round again
        ok = turns.get(MessageStatus.COMPLETE, 0)
        status = DiscussionStatus.COMPLETED if ok or not agents else DiscussionStatus.FAILED
        if status == DiscussionStatus.COMPLETED and vote_rule:
            with Session(bind=c) as s:  # the decision tables are read through the ORM, in this transaction
                if needs_approval(s, did):
                    status = DiscussionStatus.AWAITING_APPROVAL
        c.execute(_SET_STATUS, {"did": did, "to": status, "now": utcnow()})
        if status == DiscussionStatus.COMPLETED:  # nobody has to sign off: the result stands now
            _remember(c, did)
        spent_tokens, spent_usd = turn_log.spent(c, did)
        return append_event(  # type: ignore[return-value]
            c,
            DiscussionFinished(
                discussion_id=did,
                status=status,
                elapsed_s=round(time.monotonic() - ctx.totals.started, 2),
                total_cost_usd=round(spent_usd, 6),
                total_tokens=spent_tokens,
            ),
        )
