"""The API's request bodies and answers as models: FastAPI checks each request against them and each answer leaves
through them, and they are what /api/openapi.json describes. A discussion's creation body is the services' own
input model (backend/services/discussion_input.py), shared with the New discussion form."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from backend.memory.context import MAX_ITEMS, MAX_VALUE_CHARS
from backend.services.discussion_input import DiscussionIn

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


class ContextIn(_Body):
    """The context a question is asked in; every key may be left out. Values are compared exactly (after
    normalising case and common spellings, e.g. postgres = postgresql): another context is never a hit."""

    preferred_language: str | None = Field(
        default=None,
        max_length=200,
        description=f"one name of at most {MAX_VALUE_CHARS} characters",
        examples=["python"],
    )
    frameworks: list[Annotated[str, Field(max_length=200)]] = Field(
        default_factory=list,
        max_length=50,
        description=f"at most {MAX_ITEMS} names of at most {MAX_VALUE_CHARS} characters",
        examples=[["fastapi"]],
    )
    security_level: str | None = Field(default=None, max_length=40, description="standard | high | enterprise")
    team_size: str | None = Field(default=None, max_length=40, description="small | medium | large")
    existing_stack: list[Annotated[str, Field(max_length=200)]] = Field(
        default_factory=list,
        max_length=50,
        description=f"at most {MAX_ITEMS} names of at most {MAX_VALUE_CHARS} characters",
        examples=[["postgresql"]],
    )

    def raw(self) -> dict:
        """What was given, for backend.memory.context.parse_context (which refuses bad values by name)."""
        return self.model_dump(exclude_defaults=True)


class NewDiscussionIn(DiscussionIn):
    """The New discussion form's fields, and the context the question is asked in. Unless `fresh`, memory is
    checked first: the same question in the same context is answered from a trusted earlier result (no agent runs)."""

    context: ContextIn | None = None
    fresh: bool = Field(default=False, description="skip memory: always run the agents")


class MemoryCheckIn(_Body):
    question: str = Field(max_length=2000)
    context: ContextIn | None = None


class SignOffIn(_Body):
    outcome: str = Field(description="approved | overridden | more_discussion")
    conditions: str = ""
    override_option: str | None = None
    reason: str = ""
    question: str = ""
    extra_rounds: int = 1
    client_id: str = Field(default="", max_length=80)


class RevisitIn(_Body):
    question: str = Field(description="what the room should discuss again", max_length=2000)
    extra_rounds: int = Field(default=1, description="1 to 5 more rounds")


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


class ContextOut(BaseModel):
    preferred_language: str | None = None
    frameworks: list[str] = Field(default_factory=list)
    security_level: Literal["standard", "high", "enterprise"] | None = None
    team_size: Literal["small", "medium", "large"] | None = None
    existing_stack: list[str] = Field(default_factory=list)


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
    context: ContextOut = Field(description="the context the question was asked in")
    memory_entry_id: int | None = Field(description="answered from this remembered result (no agent ran), if so")


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


# --- memory -------------------------------------------------------------------------------------------------------


class DefaultContextOut(BaseModel):
    context: ContextOut = Field(description="what the New discussion form starts from")
    summary: str = Field(description='one line for people, e.g. "python · high security · small team"')


class RememberedOut(BaseModel):
    """A remembered result: the question it answered, where, when and by whom it was settled, how close it is, and
    what reusing it saves (what reaching it cost)."""

    entry_id: int
    source_discussion_id: int
    question: str
    context: ContextOut
    outcome: str
    kind: str = Field(description="decision | synthesis")
    decided_by: str
    decided_at: str = Field(description="ISO 8601")
    match_percent: int
    saves_usd: float
    saves_tokens: int
    saves_seconds: float


class MemoryCheckOut(BaseModel):
    hit: RememberedOut | None = Field(description="a result to reuse: the same question in the same context")
    related: list[RememberedOut] = Field(description="related earlier decisions, not the same question")
    refused_near_misses: int = Field(description="close questions refused: a number, date, negation or name differs")
    unavailable: str | None = Field(description="why memory could not look (the discussion then runs fresh)")


class MemoryReusedOut(BaseModel):
    """The discussion was answered from memory: no agent ran."""

    reused: Literal[True]
    entry_id: int
    source_discussion_id: int
    match_percent: int
    saves_usd: float
    saves_tokens: int
    saves_seconds: float
    decided_at: str = Field(description="ISO 8601")
    decided_by: str
    outcome: str


class MemoryFreshOut(BaseModel):
    """The discussion runs fresh: no hit, `fresh` was asked for, or memory is unavailable."""

    reused: Literal[False]
    checked: bool = Field(description="memory was looked in (false with `fresh`, or when it is unavailable)")
    refused_near_misses: int
    unavailable: str | None
    related: list[RememberedOut]


MemoryOut = MemoryReusedOut | MemoryFreshOut  # told apart by `reused`


class CreatedDiscussionOut(DiscussionOut):
    memory: MemoryOut = Field(description="whether the discussion was answered from memory, and what memory found")


class MemoryEntryOut(BaseModel):
    id: int
    source_discussion_id: int
    question: str
    context: str = Field(description="the context, in one line")
    outcome: str
    kind: str
    decided_by: str
    decided_at: str = Field(description="ISO 8601")
    hits: int
    last_hit_at: str | None = Field(description="ISO 8601")
    saved_usd: float
    saved_tokens: int
    saved_seconds: float
    live: bool = Field(description="still served")
    status: str = Field(description="served, expired, or why it stopped being served")
    can_forget: bool


class MemoryListOut(BaseModel):
    entries: list[MemoryEntryOut] = Field(description="results remembered from discussions you are in, newest first")
