"""Who is in a discussion and with what role: the owner, people invited by username, people who used a join link.

Every action is authorised here, in the service layer, from the server's idea of who is asking (a User resolved
from the session token), never from a role or participant id a browser sent.
"""

from __future__ import annotations

import re
import secrets

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from backend.db import session_scope
from backend.events.log import append_event
from backend.events.schema import MemberChanged
from backend.humans import audit
from backend.humans.roles import ROLE_LABELS, Permission, Role, parse_role, permissions, refusal
from backend.models import Discussion, DiscussionStatus, Invite, Participant, ParticipantKind, Poll, PollStatus, User
from backend.services.errors import Forbidden, InputError, NotFound

CLOSED = (DiscussionStatus.COMPLETED, DiscussionStatus.FAILED)
MAX_WEIGHT = 10.0


def unique_name(base: str, taken: set[str]) -> str:
    """`base`, or `base 2`, `base 3`... so names stay unique within a discussion."""
    name, n = base, 2
    while name in taken:
        name, n = f"{base} {n}", n + 1
    taken.add(name)
    return name


def handle(participant: Participant, username: str | None = None) -> str:
    """The @handle that mentions a participant: a person's username, an agent's name in lower-kebab-case."""
    if participant.kind == ParticipantKind.HUMAN and username:
        return username
    return re.sub(r"[^a-z0-9]+", "-", participant.name.lower()).strip("-")


def member(session: Session, discussion_id: int, user: User | None) -> Participant | None:
    """The participant this person is in the discussion, or None."""
    if user is None or user.id is None:
        return None
    return session.exec(
        select(Participant).where(Participant.discussion_id == discussion_id, Participant.user_id == user.id)
    ).first()


def member_of(discussion_id: int, user: User | None) -> Participant | None:
    """`member` in its own transaction, for callers outside one."""
    with session_scope() as s:
        return member(s, discussion_id, user)


def require(discussion_id: int, user: User | None, permission: Permission) -> Participant:
    """`authorize` in its own transaction."""
    with session_scope() as s:
        return authorize(s, discussion_id, user, permission)


def load_open(session: Session, discussion_id: int, *, lock: bool = False) -> Discussion:
    """The discussion, refusing with a clear message once it is closed."""
    discussion = session.get(Discussion, discussion_id, with_for_update=lock)
    if discussion is None:
        raise NotFound(f"No discussion {discussion_id}.")
    if discussion.status in CLOSED:
        raise Forbidden("This discussion is closed: nothing more can be added to it.")
    return discussion


def authorize(session: Session, discussion_id: int, user: User | None, permission: Permission) -> Participant:
    """The actor's participant row if their role grants `permission`; otherwise a Forbidden with the reason."""
    if user is None:
        raise Forbidden("Sign in first.")
    participant = member(session, discussion_id, user)
    role = participant.role if participant else None
    if participant is None or permission not in permissions(role, is_owner=participant.is_owner):
        raise Forbidden(refusal(role, permission))
    return participant


def _event(participant: Participant, user: User) -> MemberChanged:
    assert participant.id is not None
    return MemberChanged(
        discussion_id=participant.discussion_id,
        participant_id=participant.id,
        name=participant.name,
        username=user.username,
        role=participant.role or "",
        is_owner=participant.is_owner,
        vote_weight=participant.vote_weight,
    )


def _taken(session: Session, discussion_id: int) -> set[str]:
    return set(session.exec(select(Participant.name).where(Participant.discussion_id == discussion_id)))


def add_owner(session: Session, discussion: Discussion, user: User, role: Role) -> MemberChanged:
    """The creator joins their new discussion as its owner, in the creating transaction."""
    assert discussion.id is not None
    participant = Participant(
        discussion_id=discussion.id,
        kind=ParticipantKind.HUMAN,
        name=unique_name(user.display_name, _taken(session, discussion.id)),
        user_id=user.id,
        role=role,
        is_owner=True,
        position=1000,
    )
    session.add(participant)
    session.flush()
    return append_event(session, _event(participant, user))  # type: ignore[return-value]


def _deciding(session: Session, discussion_id: int) -> bool:
    """A vote is open or a decision waits for its sign-off: the approval gate is fixed until it is answered."""
    discussion = session.get(Discussion, discussion_id)
    if discussion is not None and discussion.status == DiscussionStatus.AWAITING_APPROVAL:
        return True
    return (
        session.exec(select(Poll.id).where(Poll.discussion_id == discussion_id, Poll.status == PollStatus.OPEN)).first()
        is not None
    )


def _weight(value: float | None) -> float:
    if value is None:
        return 1.0
    if not 0 < value <= MAX_WEIGHT:
        raise InputError({"weight": f"A vote weight is more than 0 and at most {MAX_WEIGHT:g}."})
    return float(value)


def invite(
    discussion_id: int, actor: User | None, username: str, role: str, weight: float | None = None
) -> tuple[Participant, MemberChanged]:
    """Add a person by username with a role, or change the role of someone already in (owner only)."""
    try:
        new_role = parse_role(role)
    except ValueError as err:
        raise InputError({"role": str(err)}) from None
    vote_weight = _weight(weight)
    with session_scope() as s:
        load_open(s, discussion_id, lock=True)
        authorize(s, discussion_id, actor, Permission.MANAGE)
        invitee = s.exec(select(User).where(User.username == username.strip().lstrip("@").lower())).first()
        if invitee is None:
            raise InputError({"username": f"Nobody has the username '{username.strip()}'. Ask them to sign up."})
        participant = member(s, discussion_id, invitee)
        previous = f"{participant.role} (weight {participant.vote_weight:g})" if participant else None
        gate_change = new_role == Role.MUST_APPROVE or (
            participant is not None and participant.role == Role.MUST_APPROVE
        )
        if gate_change and _deciding(s, discussion_id):
            raise Forbidden("A decision is being voted on or awaits approval: who approves it cannot change now.")
        if participant is None:
            participant = Participant(
                discussion_id=discussion_id,
                kind=ParticipantKind.HUMAN,
                name=unique_name(invitee.display_name, _taken(s, discussion_id)),
                user_id=invitee.id,
                position=1000,
            )
        participant.role, participant.vote_weight = new_role, vote_weight
        s.add(participant)
        s.flush()
        audit.record(
            s,
            actor=actor,
            action="member.invite" if previous is None else "member.role_change",
            discussion_id=discussion_id,
            target=f"@{invitee.username}",
            previous=previous,
            new=f"{new_role} (weight {vote_weight:g})",
        )
        return participant, append_event(s, _event(participant, invitee))  # type: ignore[return-value]


def create_join_link(discussion_id: int, actor: User | None, role: str) -> str:
    """A new secret join token for `role` (owner only); the page turns it into a link."""
    try:
        link_role = parse_role(role)
    except ValueError as err:
        raise InputError({"role": str(err)}) from None
    token = secrets.token_urlsafe(16)
    with session_scope() as s:
        load_open(s, discussion_id)
        authorize(s, discussion_id, actor, Permission.MANAGE)
        assert actor is not None and actor.id is not None
        s.add(Invite(discussion_id=discussion_id, token=token, role=link_role, created_by=actor.id))
        audit.record(s, actor=actor, action="invite.link_created", discussion_id=discussion_id, new=link_role)
    return token


def join(token: str, user: User | None) -> tuple[Participant, MemberChanged | None]:
    """Join with a link's role; someone already in keeps their role (a link never demotes or promotes)."""
    if user is None:
        raise Forbidden("Sign in first.")
    with session_scope() as s:
        link = s.exec(select(Invite).where(Invite.token == token[:64], Invite.revoked == False)).first()  # noqa: E712
        if link is None:
            raise NotFound("This join link is not valid (it may have been revoked).")
        load_open(s, link.discussion_id, lock=True)
        existing = member(s, link.discussion_id, user)
        if existing is not None:
            return existing, None
        participant = Participant(
            discussion_id=link.discussion_id,
            kind=ParticipantKind.HUMAN,
            name=unique_name(user.display_name, _taken(s, link.discussion_id)),
            user_id=user.id,
            role=link.role,
            position=1000,
        )
        s.add(participant)
        try:
            s.flush()
        except IntegrityError:  # the same person joined from another tab at the same moment
            s.rollback()
            raise InputError({"join": "You have just joined from another tab; reload the room."}) from None
        audit.record(s, actor=user, action="member.join_link", discussion_id=link.discussion_id, new=link.role)
        return participant, append_event(s, _event(participant, user))  # type: ignore[return-value]


def role_label(role: str | None) -> str:
    return ROLE_LABELS[Role(role)] if role in Role._value2member_map_ else ""


def people(discussion_id: int) -> list[tuple[Participant, str]]:
    """The humans in a discussion with their usernames."""
    with session_scope() as s:
        rows = s.exec(
            select(Participant, User.username)
            .join(User, User.id == Participant.user_id)  # type: ignore[arg-type]
            .where(Participant.discussion_id == discussion_id, Participant.kind == ParticipantKind.HUMAN)
            .order_by(Participant.id)  # type: ignore[arg-type]
        ).all()
        return [(p, u) for p, u in rows]
