"""OpenAI Chat Completions, and any server that imitates it, behind the streaming interface.

Both classes share one code path on the official `openai` SDK, which does the retrying (429, 408/409, 5xx
and connection errors; it waits as long as `Retry-After` asks, up to two minutes, and does not retry at all
when asked to wait longer). Local servers (Ollama, vLLM, llama.cpp, LM Studio) often report no usage, so
their token counts are estimated, and the reply counts as finished only once a `finish_reason` arrived.
A request with a JSON schema is sent as `response_format={"type": "json_schema", ...}`, which OpenAI and most
compatible servers (vLLM, llama.cpp, LM Studio, Ollama) enforce natively.

A compatible server's base URL comes from users, so before every call it is checked against the operator's
allowlist and its host's current addresses (`egress`), and its redirects are not followed: the server calls the
host that was checked and nothing else.
"""

from __future__ import annotations

import asyncio
import math
import os
from collections.abc import AsyncIterator
from typing import Any

import openai
from openai.types import CompletionUsage
from openai.types.chat import ChatCompletionChunk

from backend.providers import egress, errors, retry_policy
from backend.providers.base import (
    Completion,
    ErrorKind,
    GenerationRequest,
    ProviderError,
    StreamItem,
    TokenDelta,
    Usage,
    json_schema_name,
    to_chat_messages,
)


class OpenAIProvider:
    """Streams replies from OpenAI's Chat Completions API; key and base URL may come from the environment."""

    name: str
    # Newer OpenAI models reject `max_tokens`; compatible servers mostly only know `max_tokens`.
    _max_tokens_field = "max_completion_tokens"
    _follow_redirects = True

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        timeout: float = 60.0,
        name: str = "openai",
    ) -> None:
        self.name = name
        self._api_key = api_key
        self._base_url = base_url
        self._timeout = timeout
        self._vendor = errors.Vendor(name, "OpenAI", ("OPENAI_API_KEY",))
        self._send_stream_options = True
        # One SDK client per event loop: its connection pool cannot be shared across loops.
        self._client: openai.AsyncOpenAI | None = None
        self._client_key: tuple[object, ...] = ()

    def _credentials(self) -> tuple[str, str | None]:
        api_key = self._api_key or os.environ.get("OPENAI_API_KEY")
        if not api_key:
            raise errors.missing_key(self._vendor)
        return api_key, self._base_url or os.environ.get("OPENAI_BASE_URL") or None

    def _get_client(self) -> openai.AsyncOpenAI:
        api_key, base_url = self._credentials()
        key = (asyncio.get_running_loop(), api_key, base_url)
        if self._client is None or self._client_key != key:
            http_client = retry_policy.http_client(openai)
            http_client.follow_redirects = self._follow_redirects  # type: ignore[attr-defined]
            self._client = openai.AsyncOpenAI(
                api_key=api_key,
                base_url=base_url,
                timeout=self._timeout,
                max_retries=retry_policy.MAX_RETRIES,
                http_client=http_client,  # type: ignore[arg-type]
            )
            self._client_key = key
        return self._client

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamItem]:
        """Stream one reply: text deltas, then a Completion with usage, or a ProviderError."""
        client = self._get_client()
        vendor = self._vendor
        messages: list[dict[str, str]] = []
        if request.system:
            messages.append({"role": "system", "content": request.system})
        messages += [{"role": m.role, "content": m.content} for m in to_chat_messages(request.transcript)]
        parts: list[str] = []
        refusal: list[str] = []
        model = request.model
        finish: str | None = None
        reported: CompletionUsage | None = None
        try:
            chunks = await self._open_stream(client, request, messages)
            async with chunks:
                async for chunk in chunks:
                    model = chunk.model or model
                    if chunk.usage is not None:
                        reported = chunk.usage
                    for choice in (chunk.choices or ())[:1]:
                        if choice.delta.content:
                            parts.append(choice.delta.content)
                            yield TokenDelta(choice.delta.content)
                        if choice.delta.refusal:
                            refusal.append(choice.delta.refusal)
                        finish = choice.finish_reason or finish
        except Exception as exc:
            mapped = _redirected(vendor, exc) or errors.from_exception(vendor, exc, model=request.model)
            if mapped is None:
                raise
            raise mapped from exc

        if finish is None:
            raise errors.stream_cut(vendor)
        if finish == "content_filter" or (refusal and not parts):
            raise errors.content_filtered(vendor, "".join(refusal) or None)
        text = "".join(parts)
        if not text:
            raise errors.empty_reply(vendor, finish)
        usage = _usage(reported) if reported is not None else _estimate(messages, text)
        yield Completion(text=text, usage=usage, finish_reason=finish, model=model)

    async def _open_stream(
        self, client: openai.AsyncOpenAI, request: GenerationRequest, messages: list[dict[str, str]]
    ) -> openai.AsyncStream[ChatCompletionChunk]:
        """Start the stream. A server that rejects `stream_options` is asked once more without them, and
        not sent them again by this provider."""
        params: dict[str, Any] = {
            "model": request.model,
            "messages": messages,
            "temperature": request.temperature,
            self._max_tokens_field: request.max_tokens,
            "stream": True,
        }
        if request.json_schema is not None:
            # Structured output. Not `strict`: strict mode rejects common schema features (defaults, bounds)
            # and many compatible servers do not implement it; the caller validates the reply anyway.
            params["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": json_schema_name(request.json_schema),
                    "schema": request.json_schema,
                    "strict": False,
                },
            }
        if self._send_stream_options:
            try:
                return await client.chat.completions.create(**params, stream_options={"include_usage": True})
            except openai.BadRequestError as exc:
                if "stream_options" not in str(exc):
                    raise
                self._send_stream_options = False
        return await client.chat.completions.create(**params)


class OpenAICompatibleProvider(OpenAIProvider):
    """A local or self-hosted server speaking the OpenAI Chat Completions protocol, at a base URL the operator
    allows (checked before every call, see `egress`)."""

    _max_tokens_field = "max_tokens"
    _follow_redirects = False  # a redirect would reach a host nobody checked

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        timeout: float = 60.0,
        name: str = "openai_compatible",
    ) -> None:
        # Most local servers ignore the key, but the SDK refuses to start without one.
        super().__init__(api_key=api_key or "not-needed", base_url=base_url, timeout=timeout, name=name)
        self._vendor = errors.Vendor(name, f"the model server at {egress.display_url(base_url)}")

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamItem]:
        """Refuse a base URL the operator no longer allows, or whose host now resolves somewhere it must not,
        without calling it; then stream as `OpenAIProvider` does (a redirect fails the call, it is not followed)."""
        if problem := await asyncio.to_thread(egress.refusal, self._base_url or ""):
            raise ProviderError(ErrorKind.BAD_REQUEST, problem, provider=self.name)
        async for item in super().stream(request):
            yield item


def _redirected(vendor: errors.Vendor, exc: BaseException) -> ProviderError | None:
    """A redirect the client did not follow, said as such (the SDK reports it as a failed status)."""
    status = getattr(exc, "status_code", None) if isinstance(exc, openai.APIStatusError) else None
    if status is None or not 300 <= status < 400:
        return None
    return ProviderError(
        ErrorKind.BAD_REQUEST,
        f"{vendor.title} answered with a redirect ({status}), which Maestro does not follow: set the agent's base "
        "URL to where the server really is.",
        provider=vendor.name,
        status=status,
    )


def _usage(reported: CompletionUsage) -> Usage:
    details = reported.prompt_tokens_details
    return Usage(
        input_tokens=reported.prompt_tokens or 0,
        output_tokens=reported.completion_tokens or 0,
        cached_tokens=(details.cached_tokens or 0) if details is not None else 0,
    )


def _estimate(messages: list[dict[str, str]], text: str) -> Usage:
    """About four characters per token: rough, but enough to keep cost and context budgets honest."""
    prompt_chars = sum(len(m["content"]) for m in messages)
    return Usage(
        input_tokens=math.ceil(prompt_chars / 4),
        output_tokens=math.ceil(len(text) / 4),
        estimated=True,
    )
