"""Deliberation memory for people: check a question, reuse a remembered result, forget one, list what is kept.

Every call takes the signed-in actor: a person sees only results from discussions they are a member of; the CLI
(actor None) acts as the operator and sees every result. Memory being unavailable is an answer, not an error:
the caller runs the discussion fresh.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import col, select

from backend import observability
from backend.config import get_settings
from backend.db import session_scope
from backend.errors import Forbidden, InputError, NotFound
from backend.events.log import append_event
from backend.events.schema import DiscussionCreated, DiscussionFinished
from backend.humans import audit, membership, rate_limits
from backend.humans.membership import add_owner, authorize
from backend.humans.posts import append_post
from backend.humans.roles import Permission, parse_role
from backend.memory import store
from backend.memory.context import DiscussionContext, parse_context
from backend.memory.results import Recall, Remembered
from backend.models import Discussion, DiscussionStatus, MemoryEntry, Participant, ParticipantKind, User
from backend.models.base import as_utc, utcnow
from backend.services.discussions import normalised_topic, topic_problem

MEMORY_AUTHOR = "Memory"


def prepare() -> None:
    """A page that will look questions up soon (the New discussion form) starts loading the model in a background
    thread, so the first banner does not wait for it; the app's start-up never does."""
    from backend.memory import embedder  # its own imports are light; the model loads in the thread

    if get_settings().memory_enabled:
        embedder.warm_up()


def recall(question: str, context: DiscussionContext, **how) -> Recall:
    """The lookup, imported on first use: numpy, the index and the model stay out of the app's start-up."""
    from backend.memory.recall import recall as look_up

    return look_up(question, context, **how)


def _checked_question(question: str) -> str:
    """The question as create_discussion stores it, refused as create_discussion refuses it."""
    text = normalised_topic(question)
    if problem := topic_problem(text):
        raise InputError({"topic": problem})
    return text


def check(question: str, context: DiscussionContext | dict | None, actor: User | None) -> Recall:
    """What memory holds for this question in this context, as this person may see it (blocking: off the loop)."""
    text = _checked_question(question)
    ctx = context if isinstance(context, DiscussionContext) else parse_context(context)
    if actor is not None:
        rate_limits.hit("memory_check", actor.id)
    return recall(text, ctx, user_id=actor.id if actor is not None else None)


def reuse(
    entry_id: int,
    *,
    question: str,
    context: DiscussionContext | dict | None,
    actor: User | None,
    owner_role: str = "contributor",
) -> Discussion:
    """A new discussion answered from memory: the stored result, with its source, and no agent (no provider call).

    The entry is checked again here, in one transaction: still live, same context, and the actor may open its
    source; so a result sent back or forgotten a moment ago is never served."""
    text = _checked_question(question)
    ctx = context if isinstance(context, DiscussionContext) else parse_context(context)
    with session_scope() as s:
        entry = s.get(MemoryEntry, entry_id)
        if entry is None or entry.invalidated_at is not None or as_utc(entry.expires_at) <= utcnow():
            raise NotFound("That remembered result is no longer available; run the discussion fresh.")
        if entry.context_key != ctx.key():
            raise InputError({"context": "That result was reached in another context; run the discussion fresh."})
        if actor is not None:
            _may_open(s, entry, actor)
            rate_limits.hit("create", actor.id)
        source = s.get(Discussion, entry.discussion_id)
        assert source is not None and entry.id is not None
        discussion = Discussion(
            topic=text,
            protocol=source.protocol,
            rounds=source.rounds,
            status=DiscussionStatus.COMPLETED,
            context=ctx.as_dict(),
            memory_entry_id=entry.id,
            owner_user_id=actor.id if actor else None,
            created_by=actor.display_name if actor else "Host",
        )
        s.add(discussion)
        s.flush()
        assert discussion.id is not None
        append_event(s, DiscussionCreated(discussion_id=discussion.id, topic=text, rounds=0, protocol=source.protocol))
        if actor is not None:
            try:
                role = parse_role(owner_role)
            except ValueError as err:
                raise InputError({"owner_role": str(err)}) from None
            joined = add_owner(s, discussion, actor, role)
            host = s.get(Participant, joined.participant_id)
            audit.record(
                s, actor=actor, action="discussion.reuse", discussion_id=discussion.id, new=f"memory entry {entry.id}"
            )
        else:
            host = Participant(discussion_id=discussion.id, kind=ParticipantKind.HUMAN, name="Host", position=-1)
            s.add(host)
        memory = Participant(discussion_id=discussion.id, kind=ParticipantKind.HUMAN, name=MEMORY_AUTHOR, position=-2)
        s.add(memory)
        s.flush()
        assert host is not None
        append_post(s, discussion.id, host, text, client_id=None)
        append_post(s, discussion.id, memory, result_text(entry), client_id=None)
        append_event(s, DiscussionFinished(discussion_id=discussion.id, status=DiscussionStatus.COMPLETED))
        store.count_hit(s, entry.id)
        observability.record_memory_reuse(tokens=entry.tokens, cost_usd=entry.cost_usd)
        return discussion


def result_text(entry: MemoryEntry) -> str:
    """The stored result as the room shows it: a memory line naming its source, then the result."""
    when = as_utc(entry.decided_at).strftime("%-d %b %Y")
    by = f" by {entry.decided_by}" if entry.decided_by else ""
    return (
        f"[MEMORY] From discussion #{entry.discussion_id} ({entry.question[:200]}), settled {when}{by}. "
        f"No agent ran: this result is reused.\n\n{entry.result}"
    )


def _may_open(s, entry: MemoryEntry, actor: User) -> None:
    if membership.member(s, entry.discussion_id, actor) is None:  # a non-member learns nothing, not even that it exists
        raise NotFound("That remembered result is no longer available; run the discussion fresh.")


def forget(entry_id: int, actor: User | None, *, operator: bool = False) -> None:
    """The owner of the source discussion (or an instance admin) stops a result from being served; `operator` is
    the `maestro` command on the server itself, which no page or route passes."""
    with session_scope() as s:
        entry = s.get(MemoryEntry, entry_id)
        if operator:
            if entry is None:
                raise NotFound(f"No remembered result {entry_id}.")
            store.forget_entry(s, entry_id, "forgotten by the operator")
            return
        if actor is None:
            raise Forbidden("Sign in first.")
        if entry is None or not (actor.is_admin or membership.member(s, entry.discussion_id, actor)):
            raise NotFound(f"No remembered result {entry_id}.")  # a non-member learns nothing, not even that it exists
        if not actor.is_admin:
            authorize(s, entry.discussion_id, actor, Permission.MANAGE)
        if store.forget_entry(s, entry_id, f"forgotten by {actor.display_name}"):
            audit.record(
                s, actor=actor, action="memory.forget", discussion_id=entry.discussion_id, target=entry.outcome[:200]
            )


@dataclass(frozen=True)
class MemoryRow:
    """A row of the memory page."""

    id: int
    discussion_id: int
    question: str
    context: str
    outcome: str
    kind: str
    decided_by: str
    decided_at: datetime
    hits: int
    last_hit_at: datetime | None
    saved_usd: float
    saved_tokens: int
    saved_seconds: float
    each_usd: float  # what one reuse saves: what the source cost
    each_tokens: int
    each_seconds: float
    live: bool
    status: str
    can_forget: bool


def entries(actor: User | None, limit: int = 200, *, entry_id: int | None = None) -> list[MemoryRow]:
    """Remembered results from discussions the actor is in (the operator: all), newest first."""
    now = utcnow()
    with session_scope() as s:
        query = select(MemoryEntry).order_by(col(MemoryEntry.id).desc()).limit(limit)
        if entry_id is not None:
            query = query.where(col(MemoryEntry.id) == entry_id)
        owned: set[int] = set()
        if actor is not None:
            mine = select(Participant.discussion_id).where(Participant.user_id == actor.id)
            query = query.where(col(MemoryEntry.discussion_id).in_(mine))
            owned = set(
                s.exec(
                    select(Participant.discussion_id).where(Participant.user_id == actor.id, Participant.is_owner)
                ).all()
            )
        rows = []
        for e in s.exec(query).all():
            expired = as_utc(e.expires_at) <= now
            status = e.invalidated_reason or ("expired" if expired else "served")
            rows.append(
                MemoryRow(
                    id=e.id or 0,
                    discussion_id=e.discussion_id,
                    question=e.question,
                    context=parse_context(e.context).describe(),
                    outcome=e.outcome,
                    kind=e.kind,
                    decided_by=e.decided_by,
                    decided_at=as_utc(e.decided_at),
                    hits=e.hits,
                    last_hit_at=as_utc(e.last_hit_at) if e.last_hit_at else None,
                    saved_usd=e.saved_usd,
                    saved_tokens=e.saved_tokens,
                    saved_seconds=e.saved_seconds,
                    each_usd=e.cost_usd,
                    each_tokens=e.tokens,
                    each_seconds=e.model_seconds,
                    live=e.invalidated_at is None and not expired,
                    status=status,
                    can_forget=e.invalidated_at is None
                    and actor is not None
                    and (actor.is_admin or e.discussion_id in owned),
                )
            )
        return rows


def source_of(discussion_id: int, actor: User | None) -> MemoryRow | None:
    """For a discussion answered from memory: the entry it reused, if the person may see its source."""
    with session_scope() as s:
        discussion = s.get(Discussion, discussion_id)
        if discussion is None or discussion.memory_entry_id is None:
            return None
        if actor is not None and membership.member(s, discussion_id, actor) is None:
            raise NotFound(f"No discussion {discussion_id}.")
        entry_id = discussion.memory_entry_id
    found = entries(actor, limit=1, entry_id=entry_id)
    return found[0] if found else None


def related_to(discussion_id: int, actor: User | None) -> list[Remembered]:
    """Earlier results related to a discussion's question (any context), for its decision page (members only)."""
    with session_scope() as s:
        discussion = s.get(Discussion, discussion_id)
        if discussion is None or (actor is not None and membership.member(s, discussion_id, actor) is None):
            raise NotFound(f"No discussion {discussion_id}.")
        topic, context = discussion.topic, parse_context(discussion.context)
    found = recall(topic, context, user_id=actor.id if actor else None, exclude=discussion_id)
    return ([found.hit] if found.hit else []) + found.related


def default_context(actor: User | None) -> dict:
    if actor is None:
        return {}
    with session_scope() as s:
        user = s.get(User, actor.id)
        return dict(user.default_context) if user else {}


def set_default_context(actor: User | None, raw: dict | None) -> DiscussionContext:
    """A person keeps their own default context, so the New discussion form starts from it."""
    if actor is None:
        raise Forbidden("Sign in first.")
    ctx = parse_context(raw)
    with session_scope() as s:
        user = s.get(User, actor.id)
        if user is None:
            raise NotFound("No such account.")
        user.default_context = ctx.as_dict()
        s.add(user)
    return ctx
