"""Anthropic's Messages API behind the streaming interface, on the official `anthropic` SDK.

The SDK does the retrying (429, 408/409 and 5xx; it waits as long as `Retry-After` asks). This module only
reads the raw event stream, so it can tell a finished reply (`message_stop`) from one that was cut off.
`temperature` is not sent: this SDK version's Messages API has no sampling parameters.
A request with a JSON schema uses Anthropic's structured outputs (`output_config.format`, the schema passed through
the SDK's `transform_schema`, which moves constraints the API does not enforce into descriptions); older models
that reject it get the schema as an instruction in the system prompt instead. The reply streams as text either way.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

import anthropic

from backend.providers import errors, retry_policy
from backend.providers.base import (
    Completion,
    GenerationRequest,
    StreamItem,
    TokenDelta,
    Usage,
    json_schema_instruction,
    to_chat_messages,
)

VENDOR = errors.Vendor("anthropic", "Anthropic", ("ANTHROPIC_API_KEY",))

_FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
}


class AnthropicProvider:
    """Streams Claude replies; the key and base URL may come from the environment at call time."""

    name = "anthropic"

    def __init__(self, api_key: str | None = None, base_url: str | None = None, timeout: float = 60.0) -> None:
        self._api_key = api_key
        self._base_url = base_url
        self._timeout = timeout
        # One SDK client per event loop: its connection pool cannot be shared across loops.
        self._client: anthropic.AsyncAnthropic | None = None
        self._client_key: tuple[object, ...] = ()
        self._no_native_json: set[str] = set()  # models that rejected `output_config.format`

    def _get_client(self) -> anthropic.AsyncAnthropic:
        api_key = self._api_key or os.environ.get("ANTHROPIC_API_KEY")
        if not api_key:
            raise errors.missing_key(VENDOR)
        base_url = self._base_url or os.environ.get("ANTHROPIC_BASE_URL") or None
        key = (asyncio.get_running_loop(), api_key, base_url)
        if self._client is None or self._client_key != key:
            self._client = anthropic.AsyncAnthropic(
                api_key=api_key,
                base_url=base_url,
                timeout=self._timeout,
                max_retries=retry_policy.MAX_RETRIES,
                http_client=retry_policy.http_client(anthropic),  # type: ignore[arg-type]
            )
            self._client_key = key
        return self._client

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamItem]:
        """Stream one reply: text deltas, then a Completion with usage, or a ProviderError."""
        client = self._get_client()
        messages = [{"role": m.role, "content": m.content} for m in to_chat_messages(request.transcript)]
        parts: list[str] = []
        model = request.model
        input_tokens = output_tokens = cached_tokens = 0
        stop_reason: str | None = None
        refusal_detail: str | None = None
        finished = False
        try:
            events = await self._open_stream(client, request, messages)
            async with events:
                async for event in events:
                    if event.type == "message_start":
                        model = event.message.model or model
                        input_tokens, cached_tokens = _prompt_tokens(event.message.usage)
                        output_tokens = event.message.usage.output_tokens
                    elif event.type == "content_block_delta":
                        if event.delta.type == "text_delta" and event.delta.text:
                            parts.append(event.delta.text)
                            yield TokenDelta(event.delta.text)
                    elif event.type == "message_delta":
                        stop_reason = event.delta.stop_reason or stop_reason
                        if event.delta.stop_details is not None:
                            refusal_detail = event.delta.stop_details.explanation
                        output_tokens = event.usage.output_tokens
                        if event.usage.input_tokens is not None:  # cumulative totals, when sent
                            input_tokens, cached_tokens = _prompt_tokens(event.usage)
                    elif event.type == "message_stop":
                        finished = True
        except Exception as exc:
            mapped = errors.from_exception(VENDOR, exc, model=request.model)
            if mapped is None:
                raise
            raise mapped from exc

        if not finished:
            raise errors.stream_cut(VENDOR)
        if stop_reason == "refusal":
            raise errors.content_filtered(VENDOR, refusal_detail)
        finish_reason = _FINISH_REASONS.get(stop_reason or "end_turn", stop_reason or "stop")
        text = "".join(parts)
        if not text:
            raise errors.empty_reply(VENDOR, finish_reason)
        usage = Usage(input_tokens=input_tokens, output_tokens=output_tokens, cached_tokens=cached_tokens)
        yield Completion(text=text, usage=usage, finish_reason=finish_reason, model=model)

    async def _open_stream(
        self, client: anthropic.AsyncAnthropic, request: GenerationRequest, messages: list[dict[str, str]]
    ) -> anthropic.AsyncStream[anthropic.types.RawMessageStreamEvent]:
        """Start the stream. With a JSON schema, ask for structured output natively (`output_config.format`);
        a model that rejects it is asked once more with the schema in the system prompt instead, and is not sent
        the native field again by this provider."""
        schema = request.json_schema
        system = request.system
        output_config: anthropic.types.OutputConfigParam | anthropic.Omit = anthropic.omit
        if schema is not None and request.model not in self._no_native_json:
            try:
                output_config = {"format": {"type": "json_schema", "schema": anthropic.transform_schema(schema)}}
            except (TypeError, ValueError):  # a schema the API cannot take natively: ask in the prompt instead
                self._no_native_json.add(request.model)
        if schema is not None and output_config is anthropic.omit:
            system = "\n\n".join(part for part in (system, json_schema_instruction(schema)) if part)
        params: dict[str, Any] = {
            "model": request.model,
            "max_tokens": request.max_tokens,
            "system": system or anthropic.omit,
            "messages": messages,
            "stream": True,
        }
        if output_config is anthropic.omit:
            return await client.messages.create(**params)
        try:
            return await client.messages.create(**params, output_config=output_config)
        except anthropic.BadRequestError as exc:
            if not _native_json_rejected(exc):
                raise
            self._no_native_json.add(request.model)
        return await self._open_stream(client, request, messages)


def _native_json_rejected(exc: anthropic.BadRequestError) -> bool:
    """A 400 that says this model (or an Anthropic-compatible server) does not take `output_config.format`."""
    text = str(exc).lower()
    return any(word in text for word in ("output_config", "output_format", "structured output", "json_schema"))


def _prompt_tokens(usage: anthropic.types.Usage | anthropic.types.MessageDeltaUsage) -> tuple[int, int]:
    """The whole prompt (fresh, cache writes and cache reads) and the cached part, as OpenAI and Gemini count."""
    cached = usage.cache_read_input_tokens or 0
    return (usage.input_tokens or 0) + cached + (usage.cache_creation_input_tokens or 0), cached
