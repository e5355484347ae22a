"""SQLModel tables. Importing this package registers every table on SQLModel.metadata (Alembic reads it)."""

from backend.models.audit import AuditEntry
from backend.models.decision import Decision, DecisionStatus, SignOff, SignOffOutcome
from backend.models.discussion import Discussion, DiscussionStatus
from backend.models.event import EventRecord
from backend.models.human_input import HumanInputRequest, PromptKind, PromptStatus
from backend.models.instance import InstancePolicy, SignupInvite
from backend.models.invite import Invite
from backend.models.lease import RunnerLease
from backend.models.memory import MemoryEntry
from backend.models.mention import Mention
from backend.models.message import Message, MessageStatus
from backend.models.participant import Participant, ParticipantKind
from backend.models.persona import Persona
from backend.models.poll import Poll, PollStatus, Vote
from backend.models.usage import ModelCall
from backend.models.user import AuthSession, User

__all__ = [
    "AuditEntry",
    "AuthSession",
    "Decision",
    "DecisionStatus",
    "Discussion",
    "DiscussionStatus",
    "EventRecord",
    "HumanInputRequest",
    "InstancePolicy",
    "Invite",
    "MemoryEntry",
    "Mention",
    "Message",
    "MessageStatus",
    "ModelCall",
    "Participant",
    "ParticipantKind",
    "Persona",
    "Poll",
    "PollStatus",
    "PromptKind",
    "PromptStatus",
    "RunnerLease",
    "SignOff",
    "SignOffOutcome",
    "SignupInvite",
    "User",
    "Vote",
]
