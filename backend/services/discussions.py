"""Discussions as the room sees them: create (validated), list, read, and humans posting into them."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlmodel import func, select

from backend.config import get_settings
from backend.db import session_scope
from backend.deliberation import voting
from backend.errors import Forbidden, InputError, NotFound
from backend.events.log import append_event
from backend.events.schema import (
    BudgetChanged,
    DiscussionCreated,
    DiscussionPaused,
    HumanMessagePosted,
    MemberChanged,
    TurnRetryRequested,
)
from backend.humans import audit, rate_limits
from backend.humans.checkpoints import validate_checkpoints
from backend.humans.membership import add_owner, authorize, load_open, unique_name
from backend.humans.polls import MAX_OPTIONS, normalise_options
from backend.humans.posts import append_post
from backend.humans.roles import Permission, parse_role
from backend.humans.text import clean_topic
from backend.memory.context import DiscussionContext, parse_context
from backend.models import (
    Decision,
    Discussion,
    DiscussionStatus,
    Message,
    MessageStatus,
    Participant,
    ParticipantKind,
    Persona,
    User,
)
from backend.models.base import utcnow
from backend.protocols import PROTOCOLS
from backend.protocols.consensus_building import DEFAULT_RULE as CONSENSUS_RULE
from backend.protocols.consensus_building import ConsensusBuilding
from backend.protocols.round_robin import RoundRobin
from backend.protocols.staged import MAX_STAGES, MIN_STAGES, Staged
from backend.providers import registry

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


def normalised_topic(topic: str) -> str:
    """The topic as it is stored (NFC, no bidi controls or zero-width characters); one far over the limit is only
    stripped: it is refused anyway, and cleaning a megabyte costs ~0.3 s."""
    return clean_topic(topic) if len(topic) <= 2 * MAX_TOPIC_CHARS else topic.strip()


def topic_problem(topic: str) -> str | None:
    """Why a (normalised) topic cannot be asked, or None: the rule for a new discussion and a memory lookup alike."""
    if not topic.strip():
        return "Write the question the room should discuss."
    if len(topic) > MAX_TOPIC_CHARS:
        return f"The question is {len(topic):,} characters; the limit is {MAX_TOPIC_CHARS:,}."
    return None


def _validate(topic: str, agents: list[AgentSpec], rounds: int, personas: dict[str, Persona]) -> dict[str, str]:
    errors: dict[str, str] = {}
    if problem := topic_problem(topic):
        errors["topic"] = problem
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


def _validate_max_tokens(max_tokens_per_turn: int | None) -> dict[str, str]:
    """A turn's reply limit is bounded by the operator: every token of it may be billed to their keys."""
    limit = get_settings().max_tokens_per_turn_limit
    if max_tokens_per_turn is not None and not 0 < max_tokens_per_turn <= limit:
        return {"max_tokens_per_turn": f"A turn's reply limit is between 1 and {limit:,} tokens on this server."}
    return {}


def _validate_vote(rule: str | None, options: list[str], deadline_s: int) -> dict[str, str]:
    """A vote at the end is optional; when asked for, its rule and options must make sense."""
    if not rule:
        return {"vote_options": "Choose a voting rule to vote on these options."} if options else {}
    if rule not in voting.RULES:
        return {"vote_rule": f"Unknown voting rule '{rule}'; choose one of: {', '.join(voting.RULES)}."}
    if options and len(normalise_options(options)) < 2:
        return {"vote_options": "Give at least two different options, or none to vote on the proposals."}
    if len(options) > MAX_OPTIONS:
        return {"vote_options": f"A vote has at most {MAX_OPTIONS} options."}
    if not 10 <= deadline_s <= 7 * 24 * 3600:
        return {"vote_deadline": "People get between 10 seconds and 7 days to vote."}
    return {}


def set_budget(
    *, discussion_id: int, budget_tokens: int | None, budget_usd: float | None, actor: User | None = None
) -> Discussion:
    """Change a discussion's budgets (None = no limit); a paused discussion can then be run again."""
    discussion, _event = change_budget(
        discussion_id=discussion_id, budget_tokens=budget_tokens, budget_usd=budget_usd, actor=actor
    )
    return discussion


def change_budget(
    *, discussion_id: int, budget_tokens: int | None, budget_usd: float | None, actor: User | None = None
) -> tuple[Discussion, BudgetChanged | None]:
    """`set_budget`, and the `BudgetChanged` event it logged for the room to publish (None: nothing changed)."""
    errors = _validate_budget(budget_tokens, budget_usd)
    if errors:
        raise InputError(errors)
    with session_scope() as session:
        discussion = session.get(Discussion, discussion_id)
        if discussion is None:
            raise NotFound(f"No discussion {discussion_id}.")
        changed = (discussion.budget_tokens, discussion.budget_usd) != (budget_tokens, budget_usd)
        previous = f"tokens={discussion.budget_tokens} usd={discussion.budget_usd}"
        discussion.budget_tokens, discussion.budget_usd = budget_tokens, budget_usd
        discussion.updated_at = utcnow()
        if actor is not None:
            audit.record(
                session,
                actor=actor,
                action="discussion.budget",
                discussion_id=discussion_id,
                previous=previous,
                new=f"tokens={budget_tokens} usd={budget_usd}",
            )
        session.add(discussion)
        event = None
        if changed:  # every open tab hears of it: the checklist's budget item may change
            event = BudgetChanged(
                discussion_id=discussion_id,
                budget_tokens=budget_tokens,
                budget_usd=budget_usd,
                changed_by=actor.display_name if actor is not None else "",
            )
            event = append_event(session, event)  # type: ignore[assignment]
        return discussion, event  # type: ignore[return-value]


def stop(*, discussion_id: int, actor: User | None) -> DiscussionPaused:
    """The owner stops the agents: the turn in flight finishes, no new one starts; Run Agents continues."""
    with session_scope() as session:
        discussion = load_open(session, discussion_id, lock=True)
        who = authorize(session, discussion_id, actor, Permission.MANAGE)
        if discussion.status != DiscussionStatus.RUNNING:
            raise InputError({"stop": "The agents are not running."})
        reason = f"Stopped by {who.name}. Press Run Agents to continue."
        discussion.status, discussion.pause_reason, discussion.updated_at = DiscussionStatus.PAUSED, reason, utcnow()
        session.add(discussion)
        audit.record(session, actor=actor, action="discussion.stop", discussion_id=discussion_id, previous="running")
        return append_event(session, DiscussionPaused(discussion_id=discussion_id, reason=reason))  # type: ignore[return-value]


def request_retry(
    *, discussion_id: int, message_id: int, requested_by: str = "", actor: User | None = None
) -> TurnRetryRequested:
    """Queue a failed agent turn to be run again (alone).

    A finished discussion reopens for it only by its owner's hand, and never once a decision is waiting for or has
    had its sign-off: a retry must not slip new text under what the must-approve person is judging or signed."""
    with session_scope() as session:
        discussion = session.get(Discussion, discussion_id, with_for_update=True)
        message = session.get(Message, message_id)
        if discussion is None or message is None or message.discussion_id != discussion_id:
            raise NotFound(f"No message {message_id} in discussion {discussion_id}.")
        if message.author_kind != ParticipantKind.AGENT or message.status != MessageStatus.FAILED:
            raise InputError({"message": "Only a failed agent turn can be retried."})
        if discussion.status == DiscussionStatus.AWAITING_APPROVAL:
            raise Forbidden("The decision is waiting for sign-off; a turn cannot be retried under it.")
        reopening = discussion.status in (DiscussionStatus.COMPLETED, DiscussionStatus.FAILED)
        if reopening:
            if session.exec(select(Decision.id).where(Decision.discussion_id == discussion_id)).first():
                raise Forbidden("This discussion ended in a decision; it is closed.")
            if actor is not None:
                authorize(session, discussion_id, actor, Permission.MANAGE)
            discussion.status = DiscussionStatus.RUNNING
            discussion.updated_at = utcnow()
            session.add(discussion)
        message.status = MessageStatus.QUEUED
        session.add(message)
        if actor is not None:
            audit.record(
                session,
                actor=actor,
                action="turn.retry",
                discussion_id=discussion_id,
                target=f"{message.author_name}, round {message.round}",
                previous="failed" + (f" (discussion {discussion_id} had ended)" if reopening else ""),
                new="queued",
            )
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
    owner: User | None = None,
    owner_role: str = "contributor",
    human_turns: bool = False,
    checkpoints: list[dict] | None = None,
    vote_rule: str | None = None,
    vote_options: list[str] | None = None,
    exclude_own_vote: bool = False,
    vote_deadline_s: int = 300,
    stop_on_consensus: bool = False,
    track_consensus: bool = False,
    protocol: str = "round_robin",
    context: DiscussionContext | dict | None = None,
) -> Discussion:
    """Validate everything first, then create the discussion, its agents and its opening question at once.

    With an `owner` (a signed-in person) they join as the discussion's owner with `owner_role`; without one (the
    CLI, benchmarks) a plain host participant asks the question.
    """
    topic = normalised_topic(topic)
    asked_in = context if isinstance(context, DiscussionContext) else parse_context(context)
    created_by = (owner.display_name if owner else (created_by or "Host").strip()[:120]) or "Host"
    with session_scope() as session:
        personas = {p.key: p for p in session.exec(select(Persona))}
        errors = _validate(topic, agents, rounds, personas)
        errors.update(_validate_budget(budget_tokens, budget_usd))
        errors.update(_validate_max_tokens(max_tokens_per_turn))
        try:
            role = parse_role(owner_role)
        except ValueError as err:
            errors["owner_role"] = str(err)
        plan, problem = validate_checkpoints(checkpoints or [], rounds)
        if problem:
            errors["checkpoints"] = problem
        if protocol not in PROTOCOLS:
            errors["protocol"] = f"Unknown protocol '{protocol}'; choose one of: {', '.join(PROTOCOLS)}."
        elif parallel_openings and protocol not in (RoundRobin.name, ConsensusBuilding.name):
            errors["protocol"] = "Independent opening statements work with round-robin or consensus building."
        elif protocol == Staged.name and not MIN_STAGES <= rounds <= MAX_STAGES:
            errors["rounds"] = f"A staged deliberation has {MIN_STAGES} to {MAX_STAGES} stages (its rounds)."
        elif protocol == ConsensusBuilding.name:  # consensus building always ends in a vote, early on agreement
            vote_rule, stop_on_consensus = vote_rule or CONSENSUS_RULE, True
        errors.update(_validate_vote(vote_rule, vote_options or [], vote_deadline_s))
        if errors:
            raise InputError(errors)
        if owner is not None:  # only what would be created counts toward the person's limit
            rate_limits.hit("create", owner.id)
        discussion = Discussion(
            topic=topic,
            protocol=protocol,
            rounds=rounds,
            context=asked_in.as_dict(),
            created_by=created_by,
            max_tokens_per_turn=max_tokens_per_turn
            or min(get_settings().max_tokens_per_turn, get_settings().max_tokens_per_turn_limit),
            budget_tokens=budget_tokens,
            budget_usd=budget_usd,
            parallel_openings=parallel_openings,
            human_turns=human_turns,
            checkpoints=plan,
            owner_user_id=owner.id if owner else None,
            vote_rule=vote_rule or None,
            vote_options=[o["text"] for o in normalise_options(vote_options or [])],
            exclude_own_vote=exclude_own_vote,
            vote_deadline_s=vote_deadline_s,
            stop_on_consensus=stop_on_consensus,
            # A vote needs to know where the room stands, and so does stopping on consensus.
            track_consensus=track_consensus or stop_on_consensus or bool(vote_rule),
        )
        session.add(discussion)
        session.flush()
        assert discussion.id is not None
        append_event(
            session,
            DiscussionCreated(discussion_id=discussion.id, topic=topic, rounds=rounds, protocol=discussion.protocol),
        )
        if owner is not None:
            joined: MemberChanged = add_owner(session, discussion, owner, role)
            host = session.get(Participant, joined.participant_id)
            assert host is not None
            audit.record(session, actor=owner, action="discussion.create", discussion_id=discussion.id, new=topic)
        else:
            host = Participant(discussion_id=discussion.id, kind=ParticipantKind.HUMAN, name=created_by, position=-1)
            session.add(host)
        taken = {host.name}
        for position, spec in enumerate(agents):
            persona = personas[spec.persona_key]
            session.add(
                Participant(
                    discussion_id=discussion.id,
                    kind=ParticipantKind.AGENT,
                    name=unique_name(persona.name, taken),
                    position=position,
                    persona_key=persona.key,
                    provider=spec.provider,
                    model=spec.model,
                    base_url=spec.base_url or None,
                    system_prompt=persona.system_prompt,
                )
            )
        session.flush()
        append_post(session, discussion.id, host, topic, client_id=None)
        return discussion


def post_human_message(
    *, discussion_id: int, actor: User | None, content: str, client_id: str | None = None
) -> tuple[Message, HumanMessagePosted | None]:
    """Post a person's message; agents see it on their next turn. `@name` mentions an agent or a person.

    The author is the signed-in `actor`'s participant; their role must allow writing and the discussion must be
    open. Refuses empty and oversized messages with a clear limit. The same `client_id` sent twice (a double
    click, a retried request) stores one message: the second call returns the first and no new event.
    """
    text = content.strip()
    limit = get_settings().max_message_chars
    if not text:
        raise InputError({"content": "Write something first."})
    if len(content) > limit:
        raise InputError({"content": f"That message is {len(content):,} characters; the limit is {limit:,}."})
    try:
        with session_scope() as session:
            if client_id:
                prior = session.exec(
                    select(Message).where(Message.discussion_id == discussion_id, Message.client_id == client_id)
                ).first()
                if prior is not None:
                    return prior, None
            load_open(session, discussion_id)
            author = authorize(session, discussion_id, actor, Permission.MESSAGE)
            if actor is not None:  # after the duplicate check: a retried request is not a second message
                rate_limits.hit("post", actor.id)
            message, event = append_post(session, discussion_id, author, text, client_id)
            audit.record(session, actor=actor, action="message.post", discussion_id=discussion_id, new=text[:200])
            return message, event
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


def list_discussions(limit: int = 100, user_id: int | None = None) -> list[DiscussionSummary]:
    """Newest discussions first (only those `user_id` is in, when given), with agent and message counts."""
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
        query = select(Discussion).order_by(Discussion.id.desc()).limit(limit)  # type: ignore[union-attr]
        if user_id is not None:
            mine = select(Participant.discussion_id).where(Participant.user_id == user_id)
            query = query.where(Discussion.id.in_(mine))  # type: ignore[union-attr]
        rows = session.exec(query)
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
