"""Agents asking people: a turn that ends with `{"clarification": "..."}` opens a blocking clarification prompt.

The speaker cue tells agents they may end a message with that one line of JSON when they cannot go on without a
fact only the people in the room can give. The line is read with the structured-output parser (a schema, not a
regex guess); the prompt goes to the people who write, holds the next turns until someone answers or three
minutes pass (then "carry on with your best assumption" applies), and its answer enters every agent's context.
Keyed by the message, so a resumed engine never asks twice; one agent asks at most `MAX_PER_AGENT` times.
"""

from __future__ import annotations

from pydantic import BaseModel, Field
from sqlmodel import Session, func, select

from backend.events.schema import HumanInputRequested
from backend.humans import prompts
from backend.humans.checkpoints import WRITERS
from backend.models import HumanInputRequest, PromptKind
from backend.providers.structured import parse_structured

CUE = (
    "If you cannot go on without a fact only the people in the room can give, end your message with one line of "
    'JSON: {"clarification": "your question"}. Do this rarely.'
)
DEADLINE_S = 180
DEFAULT = "(no answer: carry on with your best assumption)"
MAX_PER_AGENT = 2


class ClarificationRequest(BaseModel):
    """The one line an agent may end its message with."""

    clarification: str = Field(min_length=3, max_length=500)


def requested(text: str) -> str | None:
    """The question in the message's last line, if that line is a valid clarification request."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines or not lines[-1].startswith("{") or "clarification" not in lines[-1]:
        return None
    parsed = parse_structured(lines[-1], ClarificationRequest)
    return parsed.value.clarification.strip() if parsed.value else None


def open_for(
    session: Session, discussion_id: int, agent_name: str, message_id: int, text: str
) -> HumanInputRequested | None:
    """Open the agent's clarification prompt in the caller's transaction; None when it asked nothing (or enough)."""
    question = requested(text)
    if question is None:
        return None
    asked = session.exec(
        select(func.count()).where(
            HumanInputRequest.discussion_id == discussion_id,
            HumanInputRequest.kind == PromptKind.CLARIFICATION,
            HumanInputRequest.created_by == agent_name,
        )
    ).one()
    if asked >= MAX_PER_AGENT:
        return None
    return prompts.create(
        session,
        discussion_id,
        key=f"clarify:{message_id}",
        kind=PromptKind.CLARIFICATION,
        prompt=f"{agent_name} asks: {question}",
        target_roles=list(WRITERS),
        deadline_s=DEADLINE_S,
        default=DEFAULT,
        blocking=True,
        created_by=agent_name,
    )
