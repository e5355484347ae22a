"""@mentions in human messages: `@agent` asks that agent to speak next, `@person` notifies that person."""

from __future__ import annotations

import re

from sqlalchemy import update
from sqlmodel import Session, func, select

from backend.db import session_scope
from backend.humans.membership import handle
from backend.models import Mention, Participant, ParticipantKind, User

MENTION = re.compile(r"(?<![\w@])@([A-Za-z0-9][A-Za-z0-9_.-]*)")


def record(session: Session, discussion_id: int, message_id: int, author_id: int | None, text: str) -> list[str]:
    """Store a Mention per participant named in `text` (never the author); returns the names mentioned."""
    wanted = {m.group(1).lower().rstrip(".-") for m in MENTION.finditer(text)}
    if not wanted:
        return []
    rows = session.exec(
        select(Participant, User.username)
        .join(User, User.id == Participant.user_id, isouter=True)  # type: ignore[arg-type]
        .where(Participant.discussion_id == discussion_id)
    ).all()
    named = []
    for participant, username in rows:
        if participant.id == author_id or handle(participant, username) not in wanted:
            continue
        session.add(Mention(discussion_id=discussion_id, message_id=message_id, participant_id=participant.id))
        named.append(participant.name)
    return named


def next_agent_request(discussion_id: int) -> tuple[int, int, str] | None:
    """The oldest unhandled @agent mention: (mention id, agent participant id, who asked), or None."""
    from backend.models import Message

    with session_scope() as s:
        row = s.exec(
            select(Mention.id, Mention.participant_id, Message.author_name)
            .join(Participant, Participant.id == Mention.participant_id)  # type: ignore[arg-type]
            .join(Message, Message.id == Mention.message_id)  # type: ignore[arg-type]
            .where(
                Mention.discussion_id == discussion_id,
                Mention.handled == False,  # noqa: E712
                Participant.kind == ParticipantKind.AGENT,
            )
            .order_by(Mention.id)  # type: ignore[arg-type]
        ).first()
        return (row[0], row[1], row[2]) if row else None


def mark_handled(mention_ids: list[int]) -> None:
    if mention_ids:
        with session_scope() as s:
            s.execute(update(Mention).where(Mention.id.in_(mention_ids)).values(handled=True))  # type: ignore[union-attr]


def unseen_for(user_id: int) -> dict[int, int]:
    """Per discussion, how many times this person was @mentioned since they last opened the room."""
    with session_scope() as s:
        return dict(
            s.exec(
                select(Mention.discussion_id, func.count())
                .join(Participant, Participant.id == Mention.participant_id)  # type: ignore[arg-type]
                .where(Participant.user_id == user_id, Mention.handled == False)  # noqa: E712
                .group_by(Mention.discussion_id)
            ).all()
        )


def mark_seen(discussion_id: int, participant_id: int) -> None:
    """The person opened the room: their mention badge clears."""
    with session_scope() as s:
        s.execute(
            update(Mention)
            .where(Mention.discussion_id == discussion_id, Mention.participant_id == participant_id)  # type: ignore[arg-type]
            .values(handled=True)
        )
