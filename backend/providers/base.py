"""One streaming interface for every model vendor.

The engine never talks to an SDK directly: it hands a provider the agent's system prompt and the shared
transcript, and reads back `TokenDelta`s followed by exactly one `Completion` (usage + finish reason).
Every failure is raised as a `ProviderError` with one of a few kinds, so the room can say what went wrong
without knowing which vendor it was.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal, Protocol, runtime_checkable

from backend.providers.framing import author_line, escape_body, frame


class ErrorKind(StrEnum):
    """What went wrong with a model call, vendor-neutral."""

    AUTH = "auth"  # missing/invalid key, permission denied: never retried
    RATE_LIMITED = "rate_limited"  # 429 after the SDK's own retries
    TIMEOUT = "timeout"  # deadline passed or the SDK timed out
    SERVER = "server"  # 5xx after the SDK's own retries
    BAD_REQUEST = "bad_request"  # 400/404/422: unknown model, bad parameters
    CONTENT_FILTERED = "content_filtered"  # the vendor refused or filtered the output
    CONNECTION = "connection"  # refused, reset, or the stream was cut mid-way
    EMPTY = "empty"  # the model returned no text at all


class ProviderError(Exception):
    """A failed model call with a readable message and a vendor-neutral kind."""

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        provider: str = "",
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.provider = provider
        self.status = status
        self.retry_after = retry_after

    def __str__(self) -> str:
        where = f"{self.provider}: " if self.provider else ""
        return f"{where}{self.kind.value}: {self.message}"


@dataclass(frozen=True, slots=True)
class TranscriptEntry:
    """One message of the shared discussion, attributed to its author."""

    author: str  # display name, e.g. "Architect" or "Alex"
    content: str
    author_kind: Literal["agent", "human", "system"] = "agent"
    is_self: bool = False  # written by the agent that is about to speak
    # The content is already framed by Maestro (a quoted excerpt whose messages went through framing.frame), so
    # its author lines are real and it is sent as is; never set for text a participant or a model wrote.
    framed: bool = False


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """A role/content pair in the shape chat APIs expect."""

    role: Literal["user", "assistant"]
    content: str


@dataclass(frozen=True, slots=True)
class TokenDelta:
    """A piece of streamed text."""

    text: str


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts for one call; `estimated` when the server did not report them."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    estimated: bool = False


@dataclass(frozen=True, slots=True)
class Completion:
    """The end of a stream: the full text, usage and why it stopped."""

    text: str
    usage: Usage = field(default_factory=Usage)
    finish_reason: str = "stop"  # "stop" | "length" | "content_filter" | vendor value
    model: str = ""


StreamItem = TokenDelta | Completion


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    """Everything a provider needs for one turn."""

    model: str
    system: str
    transcript: list[TranscriptEntry]
    max_tokens: int = 400
    temperature: float = 0.7
    # A JSON Schema the reply must follow (structured output), or None for free text. Each provider uses its
    # vendor's native mechanism where there is one; the reply still streams as text, and the caller parses
    # and validates it (see backend/providers/structured.py), because no vendor guarantees validity.
    json_schema: dict[str, Any] | None = None


def json_schema_name(schema: dict[str, Any], default: str = "reply") -> str:
    """A name for `schema` in the form vendors accept (letters, digits, _ and -, at most 64 characters)."""
    title = str(schema.get("title") or default)
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", title).strip("_")[:64]
    return name or default


def json_schema_instruction(schema: dict[str, Any]) -> str:
    """The system-prompt text that asks for JSON when a vendor has no native way to enforce a schema."""
    return (
        "Answer with one JSON object and nothing else: no prose before or after it and no Markdown code fence. "
        "It must validate against this JSON Schema:\n" + json.dumps(schema, ensure_ascii=False, separators=(",", ":"))
    )


@runtime_checkable
class ModelProvider(Protocol):
    """A vendor behind the streaming interface.

    `stream` yields zero or more `TokenDelta` and then exactly one `Completion`, or raises `ProviderError`.
    """

    name: str

    def stream(self, request: GenerationRequest) -> AsyncIterator[StreamItem]:
        """Stream one reply to `request`."""
        ...


def to_chat_messages(transcript: list[TranscriptEntry], *, speaker_cue: str | None = None) -> list[ChatMessage]:
    """Turn the shared transcript into alternating user/assistant turns for one agent.

    The speaking agent's own earlier messages become `assistant` turns; everyone else's are `user` turns
    prefixed with their author's name, so the model knows who said what. Every body goes through the framing
    (backend/providers/framing.py), so a line inside a message can never pass for another author's. Consecutive
    user turns are merged because some vendors (Anthropic, Gemini) require strict alternation. The result always
    starts and ends with a user turn, ending with `speaker_cue` when given.
    """
    out: list[ChatMessage] = []
    for entry in transcript:
        if entry.is_self:
            role: Literal["user", "assistant"] = "assistant"
            text = escape_body(entry.content)
        else:
            role = "user"
            text = author_line(entry.author) + entry.content if entry.framed else frame(entry.author, entry.content)
        if out and out[-1].role == role:
            out[-1] = ChatMessage(role, f"{out[-1].content}\n\n{text}")
        else:
            out.append(ChatMessage(role, text))
    if speaker_cue:
        if out and out[-1].role == "user":
            out[-1] = ChatMessage("user", f"{out[-1].content}\n\n{speaker_cue}")
        else:
            out.append(ChatMessage("user", speaker_cue))
    if not out or out[0].role != "user":
        out.insert(0, ChatMessage("user", "(The discussion begins.)"))
    return out
