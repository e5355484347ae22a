"""The API's request bodies and answers as models: FastAPI checks each request against them and each answer leaves
through them, and they are what /api/openapi.json describes. A discussion's creation body is the services' own
input model (backend/services/discussion_input.py), shared with the New discussion form."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .http import ErrorOut

# --- requests -----------------------------------------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is an error, not silently ignored


class Credentials(_Body):
    username: str = Field(max_length=200)
    password: str = Field(max_length=1000)


class MessageIn(_Body):
    content: str
    client_id: str | None = Field(default=None, max_length=80, description="send the same id again: posted once")


class AnswerIn(_Body):
    value: str
    client_id: str | None = Field(default=None, max_length=80)


class VoteIn(_Body):
    ranking: list[str] = Field(max_length=50, description="option ids, best first (approval: the approved ones)")
    reason: str = Field(default="", max_length=2000)
    client_id: str = Field(default="api", max_length=80)


class InviteIn(_Body):
    username: str = Field(max_length=200)
    role: str = Field(description="observer | contributor | decision_maker | must_approve")
    weight: float | None = Field(default=None, description="a decision maker's vote weight")


class SignOffIn(_Body):
    outcome: str = Field(description="approved | overridden | more_discussion")
    conditions: str = ""
    override_option: str | None = None
    reason: str = ""
    question: str = ""
    extra_rounds: int = 1
    client_id: str = Field(default="", max_length=80)


# --- answers ------------------------------------------------------------------------------------------------------


class SessionOut(BaseModel):
    token: str = Field(description="send as `Authorization: Bearer <token>`")
    username: str
    display_name: str


class DiscussionSummaryOut(BaseModel):
    id: int
    topic: str
    status: str
    rounds: int
    agents: int
    messages: int
    created_at: str = Field(description="ISO 8601")


class DiscussionListOut(BaseModel):
    discussions: list[DiscussionSummaryOut] = Field(description="the newest 100 you are in, newest first")


class AgentOut(BaseModel):
    id: int
    kind: Literal["agent"]
    name: str
    persona: str | None
    provider: str | None
    model: str | None


class PersonOut(BaseModel):
    id: int
    kind: Literal["human"]
    name: str
    role: str | None
    vote_weight: float
    is_owner: bool


ParticipantOut = Annotated[AgentOut | PersonOut, Field(discriminator="kind")]


class MessageErrorOut(BaseModel):
    kind: str | None
    message: str | None


class MessageOut(BaseModel):
    id: int
    seq: int | None
    author: str
    author_kind: str
    participant_id: int | None
    round: int
    status: str
    content: str
    error: MessageErrorOut | None = Field(description="why the turn failed, for a failed one")
    provider: str | None
    model: str | None
    input_tokens: int
    output_tokens: int
    tokens_estimated: bool
    cost_usd: float
    latency_ms: int | None


class MessagesPageOut(BaseModel):
    limit: int
    has_more_before: bool
    has_more_after: bool
    next_before: int | None = Field(description="the `before=` of the page of older messages")
    next_after: int | None = Field(description="the `after=` of the page of newer messages")


class PromptOut(BaseModel):
    id: int
    kind: str
    prompt: str
    options: list[str]
    target_roles: list[str]
    target_users: list[str]
    blocking: bool
    deadline_at: str = Field(description="ISO 8601")


class PollOut(BaseModel):
    id: int
    question: str
    rule: str
    options: list[dict[str, Any]] = Field(description='each {"id", "text", "author"}')
    deadline_at: str = Field(description="ISO 8601")


class DiscussionOut(BaseModel):
    """Everything a client needs to follow and act: people, a page of messages, what waits for an answer, the
    decision."""

    id: int
    topic: str
    status: str
    pause_reason: str | None
    protocol: str
    rounds: int
    last_seq: int
    participants: list[ParticipantOut]
    messages: list[MessageOut]
    messages_page: MessagesPageOut
    prompts: list[PromptOut] = Field(description="open prompts")
    polls: list[PollOut] = Field(description="open polls")
    decision: dict[str, Any] | None = Field(description="the latest decision card, if any")


class ChecklistItemOut(BaseModel):
    key: str
    label: str
    required: bool
    status: str
    detail: str


class ChecklistOut(BaseModel):
    ready: bool = Field(description="every required item passes: the agents may run")
    score: int = Field(description="0-100: the share of applicable items that pass")
    items: list[ChecklistItemOut]


class NotReadyOut(ErrorOut):
    """Why the agents may not run: a message, and the checklist when preflight is what failed."""

    ready: bool | None = None
    score: int | None = None
    items: list[ChecklistItemOut] | None = None


class RunOut(BaseModel):
    status: Literal["running"]
    events: str = Field(description="the path of the discussion's live event stream")


class StatusOut(BaseModel):
    status: str
