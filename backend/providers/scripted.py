"""A deterministic in-process provider for tests and benchmarks.

It streams canned replies word by word through the same contract as the real vendors, so the engine,
the room and the UI can be exercised without a network or a model. With `token_delay=0` it is a "0 ms
model": it still yields control to the event loop once per call (a real provider always awaits), but
adds nothing else, so a benchmark measures Maestro's own overhead.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable, Sequence

from backend.providers.base import (
    Completion,
    ErrorKind,
    GenerationRequest,
    ProviderError,
    StreamItem,
    TokenDelta,
    Usage,
)

_WORD = re.compile(r"\S+\s*")


def split_words(text: str, chunk_size: int = 1) -> list[str]:
    """Split `text` into chunks of `chunk_size` words that join back to exactly `text`."""
    words = _WORD.findall(text)
    if not words:
        return []
    words[0] = text[: len(text) - len(text.lstrip())] + words[0]
    size = max(1, chunk_size)
    return ["".join(words[i : i + size]) for i in range(0, len(words), size)]


def rough_token_count(request: GenerationRequest) -> int:
    """About four characters a token: good enough for a provider whose usage is marked estimated."""
    chars = len(request.system) + sum(len(e.author) + len(e.content) + 4 for e in request.transcript)
    return max(1, chars // 4)


class ScriptedProvider:
    """Streams scripted replies; records every request it receives in `requests`.

    `replies` is either a list used in turn (cycling when exhausted) or a function of the request. With
    `fail_with` set, the call raises that error: at once when `fail_after_tokens` is None, otherwise after
    that many chunks. A reply longer than `request.max_tokens` chunks is cut with finish reason "length".
    All attributes may be changed between calls (e.g. clear `fail_with` to let a retry succeed).
    A request's `json_schema` is recorded with it but not enforced: the script is what the test wants the model to
    have said, malformed JSON included.
    """

    def __init__(
        self,
        replies: Sequence[str] | Callable[[GenerationRequest], str],
        *,
        token_delay: float = 0.0,
        chunk_size: int = 1,
        fail_with: ProviderError | None = None,
        fail_after_tokens: int | None = None,
        name: str = "scripted",
    ) -> None:
        if not callable(replies):
            replies = list(replies)
            if not replies:
                raise ValueError("ScriptedProvider needs at least one reply")
        self.replies = replies
        self.token_delay = token_delay
        self.chunk_size = chunk_size
        self.fail_with = fail_with
        self.fail_after_tokens = fail_after_tokens
        self.name = name
        self.requests: list[GenerationRequest] = []

    @property
    def calls(self) -> int:
        """How many times `stream` was called."""
        return len(self.requests)

    def _reply_for(self, request: GenerationRequest, index: int) -> str:
        if callable(self.replies):
            return self.replies(request)
        return self.replies[index % len(self.replies)]

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamItem]:
        """Stream the next scripted reply to `request`."""
        index = len(self.requests)
        self.requests.append(request)
        fail_with, fail_after = self.fail_with, self.fail_after_tokens
        await asyncio.sleep(0)  # every real provider awaits at least once; so does this one
        if fail_with is not None and fail_after is None:
            raise fail_with
        chunks = split_words(self._reply_for(request, index), self.chunk_size)
        finish = "stop"
        if len(chunks) > max(1, request.max_tokens):
            chunks, finish = chunks[: max(1, request.max_tokens)], "length"
        for i, chunk in enumerate(chunks):
            if fail_with is not None and fail_after is not None and i >= fail_after:
                raise fail_with
            if self.token_delay > 0:
                await asyncio.sleep(self.token_delay)
            yield TokenDelta(chunk)
        if fail_with is not None:  # asked to fail after more chunks than the reply has
            raise fail_with
        if not chunks:
            raise ProviderError(ErrorKind.EMPTY, "The scripted reply is empty.", provider=self.name)
        yield Completion(
            text="".join(chunks),
            usage=Usage(input_tokens=rough_token_count(request), output_tokens=len(chunks), estimated=True),
            finish_reason=finish,
            model=request.model,
        )
