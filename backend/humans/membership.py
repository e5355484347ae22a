"""Who is in a discussion and with what role: the owner, people invited by username, people who used a join link.

Every action is authorised here, in the service layer, from the server's idea of who is asking (a User resolved
from the session token), never from a role or participant id a browser sent.
"""

from __future__ import annotations

import math
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from backend import clock
from backend.db import session_scope
from backend.errors import Forbidden, InputError, NotFound
from backend.events.log import append_event
from backend.events.schema import MemberChanged
from backend.humans import audit, rate_limits, tokens
from backend.humans.roles import ROLE_LABELS, Permission, Role, parse_role, permissions, refusal
from backend.humans.text import NAME_CHARS, clean_name
from backend.models import Discussion, DiscussionStatus, Invite, Participant, ParticipantKind, Poll, PollStatus, User
from backend.models.base import as_utc

CLOSED = (DiscussionStatus.COMPLETED, DiscussionStatus.FAILED)
MAX_WEIGHT = 10.0
# A join link lets in whoever holds it, so it never carries a role that decides; those people are invited by name.
LINK_ROLES = (Role.OBSERVER, Role.CONTRIBUTOR)
LINK_MIN_DAYS, LINK_MAX_DAYS = 1 / 24, 30.0  # an hour to a month
LINK_MAX_USES = 1000


def unique_name(base: str, taken: set[str]) -> str:
    """`base` as people will see it (`clean_name`: an account made before names were normalised is shown without
    its bidi or zero-width characters too), or `base 2`, `base 3`... so names stay unique within a discussion."""
    base = clean_name(base)[:NAME_CHARS] or "Someone"
    name, n = base, 2
    while name in taken:
        suffix = f" {n}"
        name, n = f"{base[: NAME_CHARS - len(suffix)]}{suffix}", n + 1
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


def check_gate(session: Session, discussion_id: int, new_role: str, previous_role: str | None = None) -> None:
    """Who approves a decision stays fixed while it is voted on or awaits sign-off: the one check every way into a
    discussion (an invitation by name, a join link) makes before it gives or takes a role."""
    if Role.MUST_APPROVE in (new_role, previous_role) and _deciding(session, discussion_id):
        raise Forbidden("A decision is being voted on or awaits approval: who approves it cannot change now.")


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
        check_gate(s, discussion_id, new_role, participant.role if participant else None)
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


@dataclass(frozen=True, slots=True)
class JoinLink:
    """What the owner sees of a join link: never its token, which only the person who made it was shown."""

    id: int
    role: str
    created_at: datetime
    expires_at: datetime
    uses: int
    max_uses: int | None
    revoked: bool

    @property
    def active(self) -> bool:
        """Whether it still lets somebody in."""
        return (
            not self.revoked and self.expires_at > clock.now() and (self.max_uses is None or self.uses < self.max_uses)
        )


def _view(link: Invite) -> JoinLink:
    assert link.id is not None
    return JoinLink(
        id=link.id,
        role=link.role,
        created_at=as_utc(link.created_at),
        expires_at=as_utc(link.expires_at),
        uses=link.uses,
        max_uses=link.max_uses,
        revoked=link.revoked,
    )


def _describe(link: Invite) -> str:
    uses = f"{link.uses} of {link.max_uses}" if link.max_uses is not None else f"{link.uses} of any number"
    return f"{link.role}, {uses} uses, until {as_utc(link.expires_at):%Y-%m-%d %H:%M} UTC"


def _link_terms(role: str, expires_in_days: float, max_uses: int | None) -> tuple[Role, float, int | None]:
    """The link's role, lifetime and use limit, or an InputError saying what is allowed."""
    errors: dict[str, str] = {}
    link_role: Role | None = None
    try:
        link_role = parse_role(role)
    except ValueError as err:
        errors["role"] = str(err)
    if link_role is not None and link_role not in LINK_ROLES:
        errors["role"] = (
            f"A join link cannot make someone {ROLE_LABELS[link_role].lower()}: invite them by name. "
            "A link is for observers and contributors."
        )
    try:
        days = float(expires_in_days)
    except (TypeError, ValueError):
        days = math.nan
    if isinstance(expires_in_days, bool) or not LINK_MIN_DAYS <= days <= LINK_MAX_DAYS:
        errors["expires_in_days"] = "A join link lasts from one hour to 30 days."
    if max_uses is not None and (
        isinstance(max_uses, bool) or not isinstance(max_uses, int) or not 1 <= max_uses <= LINK_MAX_USES
    ):
        errors["max_uses"] = f"A join link lets in 1 to {LINK_MAX_USES} people (leave it empty for no limit)."
    if errors:
        raise InputError(errors)
    assert link_role is not None
    return link_role, days, max_uses


def create_join_link(
    discussion_id: int, actor: User | None, role: str, *, expires_in_days: float = 7, max_uses: int | None = None
) -> str:
    """A new secret join token for `role` (owner only); the page turns it into a link. Only its hash is kept, so
    this is the one time anybody sees it."""
    token = secrets.token_urlsafe(24)
    with session_scope() as s:
        load_open(s, discussion_id)
        authorize(s, discussion_id, actor, Permission.MANAGE)
        link_role, days, uses = _link_terms(role, expires_in_days, max_uses)
        assert actor is not None and actor.id is not None
        link = Invite(
            discussion_id=discussion_id,
            token_hash=tokens.digest(token),
            role=link_role,
            created_by=actor.id,
            expires_at=clock.now() + timedelta(days=days),
            max_uses=uses,
        )
        s.add(link)
        s.flush()
        audit.record(
            s,
            actor=actor,
            action="invite.link_created",
            discussion_id=discussion_id,
            target=f"link {link.id}",
            new=_describe(link),
        )
    return token


def list_join_links(discussion_id: int, actor: User | None) -> list[JoinLink]:
    """The discussion's join links, newest first, with their use counts (owner only)."""
    with session_scope() as s:
        authorize(s, discussion_id, actor, Permission.MANAGE)
        links = s.exec(
            select(Invite).where(Invite.discussion_id == discussion_id).order_by(col(Invite.id).desc())
        ).all()
        return [_view(link) for link in links]


def revoke_join_link(discussion_id: int, link_id: int, actor: User | None) -> JoinLink:
    """Stop a join link letting anyone else in (owner only); people it already let in stay."""
    with session_scope() as s:
        authorize(s, discussion_id, actor, Permission.MANAGE)
        link = s.get(Invite, link_id, with_for_update=True)
        if link is None or link.discussion_id != discussion_id:
            raise NotFound(f"This discussion has no join link {link_id}.")
        if not link.revoked:
            previous = _describe(link)
            link.revoked = True
            s.add(link)
            audit.record(
                s,
                actor=actor,
                action="invite.link_revoked",
                discussion_id=discussion_id,
                target=f"link {link.id}",
                previous=previous,
                new="revoked",
            )
        return _view(link)


def _refuse_link(link: Invite, session: Session) -> None:
    """Why this link lets nobody in any more, or nothing: the same checks `invite()` makes, from the authority of
    whoever made the link."""
    if link.revoked:
        raise NotFound("This join link has been revoked. Ask the discussion's owner for a new one.")
    if as_utc(link.expires_at) <= clock.now():
        raise NotFound("This join link has expired. Ask the discussion's owner for a new one.")
    if link.max_uses is not None and link.uses >= link.max_uses:
        raise NotFound("This join link has been used up. Ask the discussion's owner for a new one.")
    maker = session.get(User, link.created_by)
    maker_seat = member(session, link.discussion_id, maker)
    if maker_seat is None or Permission.MANAGE not in permissions(maker_seat.role, is_owner=maker_seat.is_owner):
        raise NotFound("This join link is no longer valid: whoever made it cannot invite people any more.")
    check_gate(session, link.discussion_id, link.role)
    if link.role not in LINK_ROLES:  # made before links were limited to observers and contributors
        raise NotFound("This join link is no longer valid: people who decide are invited by name. Ask the owner.")


def join(token: str, user: User | None) -> tuple[Participant, MemberChanged | None]:
    """Join with a link's role; someone already in keeps their role (a link never demotes or promotes) and uses
    nothing up. Each new member takes one use, counted under a row lock, so a link's last use lets in one person."""
    if user is None:
        raise Forbidden("Sign in first.")
    rate_limits.hit("join", user.id)  # guessing links is slow, whatever the account
    with session_scope() as s:
        link = s.exec(select(Invite).where(Invite.token_hash == tokens.digest(token[:200]))).first()
        if link is None:
            raise NotFound("This join link is not valid: check that it was copied whole, or ask for a new one.")
        assert link.id is not None
        load_open(s, link.discussion_id, lock=True)
        existing = member(s, link.discussion_id, user)
        if existing is not None:
            return existing, None
        _refuse_link(link, s)
        # The use is taken only if it is still there: a conditional update waits for any other join holding the row
        # and then sees its count, on SQLite and Postgres alike.
        taken = s.execute(
            update(Invite)
            .where(
                col(Invite.id) == link.id,
                col(Invite.revoked).is_(False),
                (col(Invite.max_uses).is_(None)) | (col(Invite.uses) < col(Invite.max_uses)),
            )
            .values(uses=col(Invite.uses) + 1)
            .execution_options(synchronize_session=False)
        ).rowcount
        if taken != 1:
            raise NotFound("This join link has been used up. Ask the discussion's owner for a new one.")
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
        audit.record(
            s,
            actor=user,
            action="member.join_link",
            discussion_id=link.discussion_id,
            target=f"@{user.username} (link {link.id})",
            new=link.role,
        )
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
