"""The room's rows as the page shows them (agents, people, prompts, streams, transcript messages), and the one
place each is built."""

from __future__ import annotations

from typing import TypedDict

from backend.humans.roles import ROLE_LABELS, Role
from backend.providers.registry import PROVIDERS


class AgentRow(TypedDict):
    id: int
    name: str
    provider: str
    model: str
    offline: bool
    status: str  # idle | queued | thinking | streaming | slow | retrying | done | failed
    elapsed: int  # seconds the current turn had run when this row was sent; the page's clock ticks on
    turn: int  # the current turn's start seq
    tokens: int
    tokens_in: int  # input and output tokens of its calls so far
    tokens_out: int
    tokens_estimated: bool  # some of them are estimates (the server reported no usage, or the call broke)
    streamed_chars: int  # characters the turn in flight has streamed so far (its output is estimated from them)
    tokens_label: str  # what the sidebar shows, e.g. "1,204 in · 240 out" or "≈120 tokens out"
    cost: str
    latency: str
    error: str
    detail: str


class MessageRow(TypedDict):
    id: int
    author: str
    kind: str  # agent | human | answer | report | summary
    provider_label: str
    model: str
    round: int
    content: str
    status: str  # complete | failed | queued (a retry was asked for)
    error: str
    meta: str
    label: str  # the protocol's ask of this turn: a debate stance or "synthesis"
    cut: str  # a reply that stopped at the token cap: the marker shown after its text; otherwise ""
    # A finished turn this tab watched stream: its first `skip` characters are already on the page, in the
    # stream `stream`, and `content` holds only the rest (see assets/transcript.jsx). Otherwise "" and 0.
    stream: str
    skip: int


class HumanRow(TypedDict):
    id: int
    name: str
    username: str
    role: str
    role_label: str
    owner: bool
    online: bool
    typing: bool


class PromptRow(TypedDict):
    id: int
    kind: str
    prompt: str
    options: list[str]
    targets: str
    deadline: str  # ISO time, counted down on the page
    default: str
    blocking: bool
    status: str  # open | answered | expired
    answer: str
    answered_by: str
    mine: bool  # this person may answer it


class StreamRow(TypedDict):
    key: str
    author: str
    provider_label: str
    model: str
    round: int
    label: str


def money(x: float) -> str:
    return f"${x:.4f}" if x < 1 else f"${x:.2f}"


def provider_label(provider: str) -> str:
    if provider == "offline":
        return "Offline"
    info = PROVIDERS.get(provider)
    return info.label if info else provider


def role_label(role: str | None) -> str:
    return ROLE_LABELS[Role(role)] if role in Role._value2member_map_ else ""


def agent_row(participant_id: int, name: str, provider: str, model: str) -> AgentRow:
    """An agent as the room lists it before its first turn."""
    return AgentRow(
        id=participant_id,
        name=name,
        provider=provider,
        model=model,
        offline=provider == "offline",
        status="idle",
        elapsed=0,
        turn=0,
        tokens=0,
        tokens_in=0,
        tokens_out=0,
        tokens_estimated=False,
        streamed_chars=0,
        tokens_label="0 tokens",
        cost=money(0),
        latency="",
        error="",
        detail="",
    )


def human_row(participant_id: int, name: str, username: str, role: str, *, owner: bool, online: bool) -> HumanRow:
    return HumanRow(
        id=participant_id,
        name=name,
        username=username,
        role=role,
        role_label=role_label(role),
        owner=owner,
        online=online,
        typing=False,
    )


def message_row(row_id: int, author: str, kind: str, content: str, **rest) -> MessageRow:
    """The one place a transcript row is built: a message, an answer, a step report or a summary. Rows that are not
    messages are keyed by minus their event's seq, so they never collide with a message id."""
    row = MessageRow(
        id=row_id,
        author=author,
        kind=kind,
        provider_label="",
        model="",
        round=0,
        content=content,
        status="complete",
        error="",
        meta="",
        label="",
        cut="",
        stream="",
        skip=0,
    )
    row.update(rest)  # type: ignore[typeddict-item]
    return row
