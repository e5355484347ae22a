"""Google's Gemini API behind the streaming interface, on the official `google-genai` SDK.

Retries are the SDK's (tenacity inside `HttpOptions.retry_options`). Without retry options the SDK never
retries, so they are set explicitly: three attempts in all, on 429/5xx. The SDK itself ignores `Retry-After`
and backs off exponentially (about 1 s, then 2 s, plus up to 0.5 s jitter); a response hook on its HTTP client
(`retry_policy.GeminiRetryAfter`) makes it honour Retry-After up to 60 s and fail at once beyond, as the other
SDKs do. It also retries connect errors and timeouts under the same budget, which cannot be switched off
separately.
The API version is pinned to v1beta, where system instructions and every generation option are available.
A request with a JSON schema sets `response_mime_type="application/json"` and `response_json_schema`, Gemini's
native structured output; the JSON still streams as text parts.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import AsyncIterator

from google import genai
from google.genai import types

from backend.providers import errors, retry_policy
from backend.providers.base import (
    Completion,
    GenerationRequest,
    StreamItem,
    TokenDelta,
    Usage,
    to_chat_messages,
)

VENDOR = errors.Vendor("gemini", "Gemini", ("GEMINI_API_KEY", "GOOGLE_API_KEY"))

RETRY_OPTIONS = types.HttpRetryOptions(
    attempts=3,  # the first try plus at most two retries
    initial_delay=1.0,
    max_delay=8.0,
    exp_base=2.0,
    jitter=0.5,
    http_status_codes=[429, 500, 502, 503, 504],
)
RETRY_AFTER = retry_policy.GeminiRetryAfter(VENDOR, sdk_backoff_s=RETRY_OPTIONS.initial_delay or 1.0)

_FINISH_REASONS = {types.FinishReason.STOP: "stop", types.FinishReason.MAX_TOKENS: "length"}
_FILTERED = {
    types.FinishReason.SAFETY,
    types.FinishReason.PROHIBITED_CONTENT,
    types.FinishReason.BLOCKLIST,
    types.FinishReason.SPII,
    types.FinishReason.RECITATION,
    types.FinishReason.IMAGE_SAFETY,
    types.FinishReason.IMAGE_PROHIBITED_CONTENT,
    types.FinishReason.IMAGE_RECITATION,
    types.FinishReason.MODEL_ARMOR,
}


class GeminiProvider:
    """Streams Gemini replies; the key and base URL may come from the environment at call time."""

    name = "gemini"

    def __init__(self, api_key: str | None = None, base_url: str | None = None, timeout: float = 60.0) -> None:
        self._api_key = api_key
        self._base_url = base_url
        self._timeout = timeout
        # The SDK keeps one connection pool per event loop itself, so one client per key/URL is enough.
        self._client: genai.Client | None = None
        self._client_key: tuple[object, ...] = ()

    def _get_client(self) -> genai.Client:
        api_key = self._api_key or os.environ.get("GEMINI_API_KEY") or os.environ.get("GOOGLE_API_KEY")
        if not api_key:
            raise errors.missing_key(VENDOR)
        base_url = self._base_url or os.environ.get("GEMINI_BASE_URL") or None
        if self._client is None or self._client_key != (api_key, base_url):
            self._client = genai.Client(
                api_key=api_key,
                vertexai=False,
                http_options=types.HttpOptions(
                    base_url=base_url,
                    api_version="v1beta",
                    timeout=round(self._timeout * 1000),  # milliseconds
                    retry_options=RETRY_OPTIONS,
                    async_client_args={"event_hooks": {"response": [RETRY_AFTER]}},
                ),
            )
            self._client_key = (api_key, base_url)
        return self._client

    async def stream(self, request: GenerationRequest) -> AsyncIterator[StreamItem]:
        """Stream one reply: text deltas, then a Completion with usage, or a ProviderError."""
        client = self._get_client()
        chat = to_chat_messages(request.transcript)
        contents = [
            types.Content(role="user" if m.role == "user" else "model", parts=[types.Part(text=m.content)])
            for m in chat
        ]
        config = types.GenerateContentConfig(
            system_instruction=request.system or None,
            max_output_tokens=request.max_tokens,
            temperature=request.temperature,
        )
        if request.json_schema is not None:
            # `response_json_schema` takes plain JSON Schema ($defs, $ref, anyOf), unlike `response_schema`'s
            # OpenAPI subset, so a pydantic model's schema goes through as it is.
            config.response_mime_type = "application/json"
            config.response_json_schema = request.json_schema
        parts: list[str] = []
        model = request.model
        finish: types.FinishReason | None = None
        blocked: str | None = None
        metadata: types.GenerateContentResponseUsageMetadata | None = None
        RETRY_AFTER.begin()
        try:
            chunks = await client.aio.models.generate_content_stream(
                model=request.model, contents=contents, config=config
            )
            async with contextlib.aclosing(chunks):
                async for chunk in chunks:
                    model = chunk.model_version or model
                    metadata = chunk.usage_metadata or metadata
                    if chunk.prompt_feedback and chunk.prompt_feedback.block_reason:
                        feedback = chunk.prompt_feedback
                        reason = str(getattr(feedback.block_reason, "value", "")).replace("_", " ").lower()
                        blocked = feedback.block_reason_message or reason
                    if not chunk.candidates:
                        continue
                    candidate = chunk.candidates[0]
                    for part in (candidate.content.parts if candidate.content else None) or ():
                        if part.text and not part.thought:
                            parts.append(part.text)
                            yield TokenDelta(part.text)
                    finish = candidate.finish_reason or finish
        except Exception as exc:
            mapped = errors.from_exception(VENDOR, exc, model=request.model)
            if mapped is None:
                raise
            raise mapped from exc

        if blocked is not None:
            raise errors.content_filtered(VENDOR, blocked)
        if finish is None:
            raise errors.stream_cut(VENDOR)
        if finish in _FILTERED:
            raise errors.content_filtered(VENDOR)
        finish_reason = _FINISH_REASONS.get(finish, str(getattr(finish, "value", finish)).lower())
        text = "".join(parts)
        if not text:
            raise errors.empty_reply(VENDOR, finish_reason)
        if metadata is None:  # never seen from Google itself, but proxies may drop it
            prompt_chars = len(request.system) + sum(len(m.content) for m in chat)
            usage = Usage(math.ceil(prompt_chars / 4), math.ceil(len(text) / 4), estimated=True)
        else:
            usage = _usage(metadata)
        yield Completion(text=text, usage=usage, finish_reason=finish_reason, model=model)


def _usage(metadata: types.GenerateContentResponseUsageMetadata) -> Usage:
    """Thinking tokens are billed as output, so they count as output here, as they do for the other vendors."""
    return Usage(
        input_tokens=metadata.prompt_token_count or 0,
        output_tokens=(metadata.candidates_token_count or 0) + (metadata.thoughts_token_count or 0),
        cached_tokens=metadata.cached_content_token_count or 0,
    )
