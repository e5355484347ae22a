"""SQLModel tables. Importing this package registers every table on SQLModel.metadata (Alembic reads it)."""

from backend.models.discussion import Discussion, DiscussionStatus
from backend.models.event import EventRecord
from backend.models.lease import RunnerLease
from backend.models.message import Message, MessageStatus
from backend.models.participant import Participant, ParticipantKind
from backend.models.persona import Persona

__all__ = [
    "Discussion",
    "DiscussionStatus",
    "EventRecord",
    "Message",
    "MessageStatus",
    "Participant",
    "ParticipantKind",
    "Persona",
    "RunnerLease",
]
