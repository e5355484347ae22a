"""HumanInputRequest: typed prompts (approval, choice, feedback, clarification) routed to people or roles.

A blocking prompt holds the agents until it is answered or its deadline passes (then its default applies and is
marked as a default). The first answer wins exactly once: a conditional UPDATE on the open row decides it, so two
answers arriving together cannot both win. Every answer is an event and a transcript entry the agents see.
Prompts are rows with an absolute deadline, so an open prompt survives a restart unchanged.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import insert, update
from sqlmodel import Session, select

from backend import clock
from backend.db import session_scope
from backend.errors import Forbidden, InputError, NotFound
from backend.events.log import append_event, next_seq
from backend.events.schema import HumanInputAnswered, HumanInputRequested
from backend.humans import audit
from backend.humans.membership import authorize, load_open, role_label
from backend.humans.roles import Permission, Role, parse_role
from backend.models import (
    HumanInputRequest,
    Message,
    MessageStatus,
    Participant,
    ParticipantKind,
    PromptKind,
    PromptStatus,
    User,
)
from backend.models.base import as_utc

APPROVAL_OPTIONS = ["approve", "reject"]
MAX_ANSWER = 4000
MIN_DEADLINE_S, MAX_DEADLINE_S = 10, 7 * 24 * 3600


def _validate(kind: str, prompt: str, options: list[str], default: str, deadline_s: float, roles: list[str]) -> None:
    errors: dict[str, str] = {}
    if kind not in PromptKind._value2member_map_:
        errors["kind"] = f"Unknown prompt kind '{kind}'; use approval, choice, feedback or clarification."
    if not prompt.strip():
        errors["prompt"] = "Write the question to ask."
    elif len(prompt) > 2000:
        errors["prompt"] = "A prompt is at most 2,000 characters."
    if kind == PromptKind.CHOICE:
        if len(options) < 2:
            errors["options"] = "A choice needs at least two options."
        elif default and default not in options:
            errors["default"] = "The default must be one of the options."
    if kind == PromptKind.APPROVAL and default and default not in APPROVAL_OPTIONS:
        errors["default"] = "An approval's default is 'approve' or 'reject'."
    if not MIN_DEADLINE_S <= deadline_s <= MAX_DEADLINE_S:
        errors["deadline"] = f"A deadline is between {MIN_DEADLINE_S} seconds and 7 days away."
    for role in roles:
        try:
            parse_role(role)
        except ValueError as err:
            errors["targets"] = str(err)
    if errors:
        raise InputError(errors)


def _validate_people(session: Session, discussion_id: int, roles: list[str], users: list[str]) -> None:
    """A prompt is for somebody, and a person it names is in the room and may answer (an observer may not)."""
    if not roles and not users:
        raise InputError({"targets": "Say who the question is for: a role or a person."})
    if not users:
        return
    found = dict(
        session.exec(
            select(User.username, Participant.role)
            .join(Participant, Participant.user_id == User.id)  # type: ignore[arg-type]
            .where(Participant.discussion_id == discussion_id, User.username.in_(users))  # type: ignore[attr-defined]
        ).all()
    )
    for username in users:
        if username not in found:
            raise InputError({"targets": f"@{username} is not in this discussion."})
        if found[username] == Role.OBSERVER:
            raise InputError({"targets": f"@{username} observes this discussion and cannot answer."})


def targets_label(session: Session, discussion_id: int, roles: list[str], usernames: list[str]) -> str:
    """Who a prompt waits for, as people read it: "Alex (decision maker)", or the role when nobody holds it."""
    people = session.exec(
        select(Participant.name, Participant.role, User.username)
        .join(User, User.id == Participant.user_id)  # type: ignore[arg-type]
        .where(Participant.discussion_id == discussion_id, Participant.kind == ParticipantKind.HUMAN)
    ).all()
    named = [
        f"{name} ({role_label(role).lower()})"
        for name, role, username in people
        if role in roles or username in usernames
    ]
    missing = [role_label(r).lower() for r in roles if not any(role == r for _n, role, _u in people)]
    return ", ".join(named + [f"the {m}" for m in missing]) or "nobody yet"


def create(
    session: Session,
    discussion_id: int,
    *,
    key: str,
    kind: str,
    prompt: str,
    options: list[str] | None = None,
    target_roles: list[str] | None = None,
    target_users: list[str] | None = None,
    deadline_s: float = 300,
    default: str = "",
    blocking: bool = True,
    created_by: str = "protocol",
) -> HumanInputRequested | None:
    """Open a prompt in the caller's transaction; None if a prompt with this key exists (a resumed checkpoint)."""
    options = [o.strip() for o in (options or []) if o.strip()]
    if kind == PromptKind.APPROVAL:
        options = APPROVAL_OPTIONS
    roles, users = list(target_roles or []), [u.lower().lstrip("@") for u in (target_users or [])]
    _validate(kind, prompt, options, default, deadline_s, roles)
    _validate_people(session, discussion_id, roles, users)
    if session.exec(
        select(HumanInputRequest.id).where(
            HumanInputRequest.discussion_id == discussion_id, HumanInputRequest.key == key
        )
    ).first():
        return None
    row = HumanInputRequest(
        discussion_id=discussion_id,
        key=key,
        kind=kind,
        prompt=prompt.strip(),
        options=options,
        target_roles=roles,
        target_users=users,
        deadline_at=clock.now() + timedelta(seconds=deadline_s),
        default_answer=default,
        blocking=blocking,
        created_by=created_by[:120],
    )
    session.add(row)
    session.flush()
    assert row.id is not None
    return append_event(
        session,
        HumanInputRequested(
            discussion_id=discussion_id,
            prompt_id=row.id,
            kind=kind,
            prompt=row.prompt,
            options=options,
            target_roles=roles,
            target_users=users,
            targets_label=targets_label(session, discussion_id, roles, users),
            deadline_at=row.deadline_at,
            default_answer=default,
            blocking=blocking,
            created_by=row.created_by,
        ),
    )  # type: ignore[return-value]


def ask(discussion_id: int, actor: User | None, **fields) -> HumanInputRequested:
    """A human facilitator (the owner) asks the room a typed question."""
    with session_scope() as s:
        load_open(s, discussion_id, lock=True)
        asker = authorize(s, discussion_id, actor, Permission.MANAGE)
        count = len(s.exec(select(HumanInputRequest.id).where(HumanInputRequest.discussion_id == discussion_id)).all())
        event = create(s, discussion_id, key=f"asked:{count + 1}", created_by=asker.name, **fields)
        assert event is not None
        audit.record(s, actor=actor, action="prompt.ask", discussion_id=discussion_id, new=event.prompt)
        return event


def _may_answer(prompt: HumanInputRequest, participant: Participant, username: str) -> bool:
    return participant.role in prompt.target_roles or username in prompt.target_users


def _transcript_entry(
    session: Session, prompt: HumanInputRequest, author: str, participant_id: int | None, text: str, seq: int
) -> int:
    """The answer as a message the agents read on their next turn."""
    return session.execute(
        insert(Message)
        .values(
            discussion_id=prompt.discussion_id,
            participant_id=participant_id,
            author_name=author,
            author_kind=ParticipantKind.HUMAN,
            content=text,
            status=MessageStatus.COMPLETE,
            seq=seq,
        )
        .returning(Message.id)
    ).scalar_one()


def answer(
    discussion_id: int, prompt_id: int, actor: User | None, value: str, client_id: str | None = None
) -> HumanInputAnswered | None:
    """Answer a prompt; the first authorised answer wins. The same click twice returns None the second time."""
    value = value.strip()
    with session_scope() as s:
        load_open(s, discussion_id)
        participant = authorize(s, discussion_id, actor, Permission.ANSWER)
        assert actor is not None
        prompt = s.get(HumanInputRequest, prompt_id)
        if prompt is None or prompt.discussion_id != discussion_id:
            raise NotFound(f"No prompt {prompt_id} in this discussion.")
        if not _may_answer(prompt, participant, actor.username):
            raise Forbidden(
                f"This question is for {targets_label(s, discussion_id, prompt.target_roles, prompt.target_users)}."
            )
        if prompt.status != PromptStatus.OPEN:
            if client_id and prompt.answer_client_id == client_id:
                return None  # the same click, delivered twice
            raise InputError({"answer": f"Already answered by {prompt.answered_by}: {prompt.answer}"})
        if as_utc(prompt.deadline_at) <= clock.now():
            raise InputError({"answer": "The deadline has passed; the default answer applies."})
        if prompt.options and value not in prompt.options:
            raise InputError({"answer": f"Choose one of: {', '.join(prompt.options)}."})
        if not value:
            raise InputError({"answer": "Write an answer."})
        if len(value) > MAX_ANSWER:
            raise InputError({"answer": f"An answer is at most {MAX_ANSWER:,} characters."})
        won = s.execute(
            update(HumanInputRequest)
            .where(HumanInputRequest.id == prompt_id, HumanInputRequest.status == PromptStatus.OPEN)  # type: ignore[arg-type]
            .values(
                status=PromptStatus.ANSWERED,
                answer=value,
                answered_by=participant.name,
                answered_by_user_id=actor.id,
                answered_at=clock.now(),
                answer_client_id=client_id,
            )
        ).rowcount
        if won != 1:
            s.rollback()
            s.refresh(prompt)
            if client_id and prompt.answer_client_id == client_id:
                return None
            raise InputError({"answer": f"Already answered by {prompt.answered_by}: {prompt.answer}"})
        seq = next_seq(s, discussion_id)
        role = role_label(participant.role).lower()
        message_id = _transcript_entry(
            s, prompt, participant.name, participant.id, f"(answering “{prompt.prompt}”, as {role}) {value}", seq
        )
        audit.record(
            s,
            actor=actor,
            action="prompt.answer",
            discussion_id=discussion_id,
            target=prompt.prompt,
            previous="open",
            new=value,
        )
        return append_event(
            s,
            HumanInputAnswered(
                discussion_id=discussion_id,
                prompt_id=prompt_id,
                answer=value,
                answered_by=participant.name,
                message_id=message_id,
            ),
            seq=seq,
        )  # type: ignore[return-value]


def due_discussions() -> list[int]:
    """Discussions holding an open prompt past its deadline (few prompts are ever open, so they are filtered here,
    where the controllable clock is)."""
    with session_scope() as s:
        rows = s.exec(
            select(HumanInputRequest.discussion_id, HumanInputRequest.deadline_at).where(
                HumanInputRequest.status == PromptStatus.OPEN
            )
        ).all()
    now = clock.now()
    return sorted({discussion_id for discussion_id, deadline in rows if as_utc(deadline) <= now})


def expire_due(discussion_id: int) -> list[HumanInputAnswered]:
    """Apply the default to every open prompt past its deadline (exactly once each, even if two callers race)."""
    events: list[HumanInputAnswered] = []
    with session_scope() as s:
        due = s.exec(
            select(HumanInputRequest).where(
                HumanInputRequest.discussion_id == discussion_id, HumanInputRequest.status == PromptStatus.OPEN
            )
        ).all()
        for prompt in due:
            if as_utc(prompt.deadline_at) > clock.now():
                continue
            default = prompt.default_answer or "(no answer)"
            won = s.execute(
                update(HumanInputRequest)
                .where(HumanInputRequest.id == prompt.id, HumanInputRequest.status == PromptStatus.OPEN)  # type: ignore[arg-type]
                .values(status=PromptStatus.EXPIRED, answer=default, answered_by="default", answered_at=clock.now())
            ).rowcount
            if won != 1:
                continue
            seq = next_seq(s, discussion_id)
            message_id = _transcript_entry(
                s,
                prompt,
                "Maestro",
                None,
                f"Nobody answered “{prompt.prompt}” by the deadline, so the default applies: {default}",
                seq,
            )
            audit.record(
                s,
                actor=None,
                action="prompt.default_applied",
                discussion_id=discussion_id,
                target=prompt.prompt,
                previous="open",
                new=default,
            )
            assert prompt.id is not None
            events.append(
                append_event(
                    s,
                    HumanInputAnswered(
                        discussion_id=discussion_id,
                        prompt_id=prompt.id,
                        answer=default,
                        answered_by="default",
                        defaulted=True,
                        message_id=message_id,
                    ),
                    seq=seq,
                )  # type: ignore[arg-type]
            )
    return events


def open_prompts(discussion_id: int, *, blocking_only: bool = False) -> list[HumanInputRequest]:
    """Prompts still waiting for an answer, oldest first (the API lists them so a client can answer)."""
    with session_scope() as s:
        query = select(HumanInputRequest).where(
            HumanInputRequest.discussion_id == discussion_id, HumanInputRequest.status == PromptStatus.OPEN
        )
        if blocking_only:
            query = query.where(HumanInputRequest.blocking == True)  # noqa: E712
        return list(s.exec(query.order_by(HumanInputRequest.id)))  # type: ignore[arg-type]


def open_blocking(discussion_id: int) -> list[HumanInputRequest]:
    """Open blocking prompts: while any exists the agents wait."""
    return open_prompts(discussion_id, blocking_only=True)


def sweep(discussion_id: int) -> tuple[list[HumanInputAnswered], bool, bool]:
    """Apply the defaults past their deadline; then (those answers, does a prompt block the agents, is any open)."""
    expired = expire_due(discussion_id)
    with session_scope() as s:
        blocking = s.exec(
            select(HumanInputRequest.blocking).where(
                HumanInputRequest.discussion_id == discussion_id, HumanInputRequest.status == PromptStatus.OPEN
            )
        ).all()
    return expired, any(blocking), bool(blocking)


def prompt_targets_me(prompt_roles: list[str], prompt_users: list[str], role: str | None, username: str) -> bool:
    """Whether a person with `role` and `username` may answer (the UI shows the prompt to them prominently)."""
    return role not in (None, Role.OBSERVER) and (role in prompt_roles or username in prompt_users)
