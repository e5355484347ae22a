"""A person's message in the room: stored, its @mentions recorded, and its event appended, in the caller's
transaction (posting, the opening question, a sign-off's question to the room all write one this way)."""

from __future__ import annotations

from sqlmodel import Session

from backend.events.log import append_event
from backend.events.schema import HumanMessagePosted
from backend.humans import mentions
from backend.models import Message, MessageStatus, Participant, ParticipantKind
from backend.models.base import utcnow


def append_post(
    session: Session, discussion_id: int, author: Participant, content: str, client_id: str | None
) -> tuple[Message, HumanMessagePosted]:
    """A person's message and its event, in the caller's transaction (its @mentions recorded too)."""
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
    mentions.record(session, discussion_id, message.id, author.id, content)
    event = append_event(
        session,
        HumanMessagePosted(
            discussion_id=discussion_id,
            message_id=message.id,
            author_name=author.name,
            content=content,
            participant_id=author.id,
        ),
    )
    message.seq = event.seq
    session.add(message)
    return message, event  # type: ignore[return-value]
