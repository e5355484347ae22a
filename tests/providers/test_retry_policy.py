"""Retry-After is honoured up to 60 s by every Stainless SDK; a longer wait is a clear rate-limit failure at once."""

from __future__ import annotations

import time

import pytest

from backend.providers.anthropic_provider import AnthropicProvider
from backend.providers.base import ErrorKind
from backend.providers.openai_provider import OpenAIProvider
from tests.providers.wire_servers import AnthropicScript, OpenAIScript, WireServer, collect, make_request

CASES = [
    pytest.param(
        AnthropicScript,
        lambda url: AnthropicProvider(api_key="k", base_url=url, timeout=5),
        "claude-sonnet-4-6",
        id="anthropic",
    ),
    pytest.param(
        OpenAIScript,
        lambda url: OpenAIProvider(api_key="k", base_url=f"{url}/v1", timeout=5),
        "gpt-5.4-mini",
        id="openai",
    ),
]


@pytest.mark.parametrize(("script", "make", "model"), CASES)
async def test_a_retry_after_of_120_s_fails_at_once_and_says_why(script, make, model):
    with WireServer(script.route, [script.rate_limit(retry_after=120), script.ok(["never"])]) as server:
        t0 = time.monotonic()
        _, completion, error = await collect(make(server.url).stream(make_request(model)))
    assert completion is None and error is not None
    assert error.kind is ErrorKind.RATE_LIMITED
    assert "asked to wait 120 s" in error.message and "60 s" in error.message
    assert len(server.requests) == 1  # no retry, no two-minute wait
    assert time.monotonic() - t0 < 5


@pytest.mark.parametrize(("script", "make", "model"), CASES)
async def test_a_retry_after_within_the_cap_is_still_honoured(script, make, model):
    with WireServer(script.route, [script.rate_limit(retry_after=1), script.ok(["fine"])]) as server:
        _, completion, error = await collect(make(server.url).stream(make_request(model)))
    assert error is None and completion is not None and completion.text == "fine"
    assert server.requests[1].at - server.requests[0].at >= 0.95
