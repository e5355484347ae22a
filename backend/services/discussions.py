"""Discussions as the room sees them: create (validated), list, read, and humans posting into them."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, func, select

from backend.config import get_settings
from backend.db import session_scope
from backend.events.log import append_event
from backend.events.schema import DiscussionCreated, HumanMessagePosted, TurnRetryRequested
from backend.models import (
    Discussion,
    DiscussionStatus,
    Message,
    MessageStatus,
    Participant,
    ParticipantKind,
    Persona,
)
from backend.models.base import utcnow
from backend.providers import registry
from backend.services.errors import InputError, NotFound

MAX_ROUNDS = 10
MAX_AGENTS = 8
MAX_TOPIC_CHARS = 2000


@dataclass(frozen=True)
class AgentSpec:
    """One agent to add to a new discussion: a persona on a provider + model."""

    persona_key: str
    provider: str
    model: str
    base_url: str | None = None


def _validate(topic: str, agents: list[AgentSpec], rounds: int, personas: dict[str, Persona]) -> dict[str, str]:
    errors: dict[str, str] = {}
    if not topic.strip():
        errors["topic"] = "Write the question the room should discuss."
    elif len(topic) > MAX_TOPIC_CHARS:
        errors["topic"] = f"The question is {len(topic):,} characters; the limit is {MAX_TOPIC_CHARS:,}."
    if not agents:
        errors["agents"] = "Add at least one agent."
    elif len(agents) > MAX_AGENTS:
        errors["agents"] = f"At most {MAX_AGENTS} agents per discussion."
    if not 1 <= rounds <= MAX_ROUNDS:
        errors["rounds"] = f"Rounds must be between 1 and {MAX_ROUNDS}."
    for i, spec in enumerate(agents):
        if spec.persona_key not in personas:
            errors[f"agent_{i}"] = f"Agent {i + 1}: unknown persona '{spec.persona_key}'."
            continue
        problem = registry.validate_agent(spec.provider, spec.model, spec.base_url or None)
        if problem:
            errors[f"agent_{i}"] = f"Agent {i + 1} ({personas[spec.persona_key].name}): {problem}"
    return errors


def _validate_budget(tokens: int | None, usd: float | None) -> dict[str, str]:
    errors = {}
    if tokens is not None and tokens <= 0:
        errors["budget_tokens"] = "A token budget must be a positive number of tokens."
    if usd is not None and usd <= 0:
        errors["budget_usd"] = "A cost budget must be a positive amount of dollars."
    return errors


def set_budget(*, discussion_id: int, budget_tokens: int | None, budget_usd: float | None) -> Discussion:
    """Change a discussion's budgets (None = no limit); a paused discussion can then be run again."""
    errors = _validate_budget(budget_tokens, budget_usd)
    if errors:
        raise InputError(errors)
    with session_scope() as session:
        discussion = session.get(Discussion, discussion_id)
        if discussion is None:
            raise NotFound(f"No discussion {discussion_id}.")
        discussion.budget_tokens, discussion.budget_usd = budget_tokens, budget_usd
        discussion.updated_at = utcnow()
        session.add(discussion)
        return discussion


def request_retry(*, discussion_id: int, message_id: int, requested_by: str = "") -> TurnRetryRequested:
    """Queue a failed agent turn to be run again (alone); the discussion reopens if it had finished."""
    with session_scope() as session:
        discussion = session.get(Discussion, discussion_id, with_for_update=True)
        message = session.get(Message, message_id)
        if discussion is None or message is None or message.discussion_id != discussion_id:
            raise NotFound(f"No message {message_id} in discussion {discussion_id}.")
        if message.author_kind != ParticipantKind.AGENT or message.status != MessageStatus.FAILED:
            raise InputError({"message": "Only a failed agent turn can be retried."})
        message.status = MessageStatus.QUEUED
        session.add(message)
        if discussion.status in (DiscussionStatus.COMPLETED, DiscussionStatus.FAILED):
            discussion.status = DiscussionStatus.RUNNING
            discussion.updated_at = utcnow()
            session.add(discussion)
        assert message.participant_id is not None
        return append_event(
            session,
            TurnRetryRequested(
                discussion_id=discussion_id,
                message_id=message_id,
                participant_id=message.participant_id,
                requested_by=requested_by[:120],
            ),
        )


def _unique_name(base: str, taken: set[str]) -> str:
    name, n = base, 2
    while name in taken:
        name, n = f"{base} {n}", n + 1
    taken.add(name)
    return name


def create_discussion(
    *,
    topic: str,
    agents: list[AgentSpec],
    rounds: int = 2,
    created_by: str = "Host",
    max_tokens_per_turn: int | None = None,
    budget_tokens: int | None = None,
    budget_usd: float | None = None,
    parallel_openings: bool = False,
) -> Discussion:
    """Validate everything first, then create the discussion, its agents and its opening question at once."""
    topic = topic.strip()
    created_by = (created_by or "Host").strip()[:120] or "Host"
    with session_scope() as session:
        personas = {p.key: p for p in session.exec(select(Persona))}
        errors = _validate(topic, agents, rounds, personas)
        errors.update(_validate_budget(budget_tokens, budget_usd))
        if errors:
            raise InputError(errors)
        discussion = Discussion(
            topic=topic,
            rounds=rounds,
            created_by=created_by,
            max_tokens_per_turn=max_tokens_per_turn or get_settings().max_tokens_per_turn,
            budget_tokens=budget_tokens,
            budget_usd=budget_usd,
            parallel_openings=parallel_openings,
        )
        session.add(discussion)
        session.flush()
        assert discussion.id is not None
        taken = {created_by}
        host = Participant(discussion_id=discussion.id, kind=ParticipantKind.HUMAN, name=created_by, position=-1)
        session.add(host)
        for position, spec in enumerate(agents):
            persona = personas[spec.persona_key]
            session.add(
                Participant(
                    discussion_id=discussion.id,
                    kind=ParticipantKind.AGENT,
                    name=_unique_name(persona.name, taken),
                    position=position,
                    persona_key=persona.key,
                    provider=spec.provider,
                    model=spec.model,
                    base_url=spec.base_url or None,
                    system_prompt=persona.system_prompt,
                )
            )
        session.flush()
        append_event(
            session,
            DiscussionCreated(discussion_id=discussion.id, topic=topic, rounds=rounds, protocol=discussion.protocol),
        )
        _post(session, discussion.id, host, topic, client_id=None)
        return discussion


def _post(
    session: Session, discussion_id: int, author: Participant, content: str, client_id: str | None
) -> tuple[Message, HumanMessagePosted]:
    message = Message(
        discussion_id=discussion_id,
        participant_id=author.id,
        author_name=author.name,
        author_kind=ParticipantKind.HUMAN,
        content=content,
        status=MessageStatus.COMPLETE,
        client_id=client_id,
        completed_at=utcnow(),
    )
    session.add(message)
    session.flush()
    assert message.id is not None
    event = append_event(
        session,
        HumanMessagePosted(
            discussion_id=discussion_id, message_id=message.id, author_name=author.name, content=content
        ),
    )
    message.seq = event.seq
    session.add(message)
    return message, event  # type: ignore[return-value]


def post_human_message(
    *, discussion_id: int, author_name: str, content: str, client_id: str | None = None
) -> tuple[Message, HumanMessagePosted | None]:
    """Post a human message; agents see it on their next turn.

    Refuses empty and oversized messages with a clear limit. The same `client_id` sent twice (a double click,
    a retried request) stores one message: the second call returns the first and no new event.
    """
    text = content.strip()
    limit = get_settings().max_message_chars
    if not text:
        raise InputError({"content": "Write something first."})
    if len(content) > limit:
        raise InputError({"content": f"That message is {len(content):,} characters; the limit is {limit:,}."})
    name = (author_name or "").strip()[:120]
    if not name:
        raise InputError({"author_name": "Say who you are before posting."})
    try:
        with session_scope() as session:
            if session.get(Discussion, discussion_id) is None:
                raise NotFound(f"No discussion {discussion_id}.")
            if client_id:
                prior = session.exec(
                    select(Message).where(Message.discussion_id == discussion_id, Message.client_id == client_id)
                ).first()
                if prior is not None:
                    return prior, None
            author = session.exec(
                select(Participant).where(Participant.discussion_id == discussion_id, Participant.name == name)
            ).first()
            if author is None:
                author = Participant(discussion_id=discussion_id, kind=ParticipantKind.HUMAN, name=name)
                session.add(author)
                session.flush()
            elif author.kind != ParticipantKind.HUMAN:
                raise InputError({"author_name": f"'{name}' is an agent's name in this room; pick another."})
            return _post(session, discussion_id, author, text, client_id)
    except IntegrityError:
        # Two identical requests raced; the other one stored it.
        with session_scope() as session:
            prior = session.exec(
                select(Message).where(Message.discussion_id == discussion_id, Message.client_id == client_id)
            ).first()
            if prior is None:
                raise
            return prior, None


def get_discussion(discussion_id: int) -> Discussion:
    """One discussion or NotFound."""
    with session_scope() as session:
        discussion = session.get(Discussion, discussion_id)
        if discussion is None:
            raise NotFound(f"No discussion {discussion_id}.")
        return discussion


def list_participants(discussion_id: int) -> list[Participant]:
    """Participants, agents in speaking order first, then humans."""
    with session_scope() as session:
        rows = session.exec(select(Participant).where(Participant.discussion_id == discussion_id))
        return sorted(rows, key=lambda p: (p.kind != ParticipantKind.AGENT, p.position, p.id or 0))


def list_messages(discussion_id: int) -> list[Message]:
    """Finished messages (complete or failed) in log order."""
    with session_scope() as session:
        rows = session.exec(
            select(Message)
            .where(Message.discussion_id == discussion_id, Message.seq.is_not(None))  # type: ignore[union-attr]
            .order_by(Message.seq)  # type: ignore[arg-type]
        )
        return list(rows)


@dataclass(frozen=True)
class DiscussionSummary:
    """A row of the discussions list."""

    id: int
    topic: str
    status: str
    rounds: int
    agents: int
    messages: int
    created_at: str


def list_discussions(limit: int = 100) -> list[DiscussionSummary]:
    """Newest discussions first, with agent and message counts."""
    with session_scope() as session:
        agents = dict(
            session.exec(
                select(Participant.discussion_id, func.count())
                .where(Participant.kind == ParticipantKind.AGENT)
                .group_by(Participant.discussion_id)
            ).all()
        )
        messages = dict(
            session.exec(
                select(Message.discussion_id, func.count())
                .where(Message.status == MessageStatus.COMPLETE)
                .group_by(Message.discussion_id)
            ).all()
        )
        rows = session.exec(select(Discussion).order_by(Discussion.id.desc()).limit(limit))  # type: ignore[union-attr]
        return [
            DiscussionSummary(
                id=d.id or 0,
                topic=d.topic,
                status=d.status,
                rounds=d.rounds,
                agents=agents.get(d.id, 0),
                messages=messages.get(d.id, 0),
                created_at=d.created_at.isoformat(),
            )
            for d in rows
        ]
