"""Structured output through the real SDKs: the schema travels in each vendor's native field, and the JSON that
streams back (split across SSE events, as real servers split it) parses into a grounded ConsensusReport."""

from __future__ import annotations

import json
from typing import Any

import pytest

from backend.deliberation.consensus import ConsensusReport, consensus_schema, detect_consensus
from backend.providers.anthropic_provider import AnthropicProvider
from backend.providers.base import ErrorKind, ProviderError, TranscriptEntry, json_schema_instruction
from backend.providers.gemini_provider import GeminiProvider
from backend.providers.openai_provider import OpenAICompatibleProvider, OpenAIProvider
from backend.providers.structured import StructuredOutputError
from tests.providers.wire_servers import AnthropicScript, GeminiScript, OpenAIScript, WireServer, collect, make_request

PEOPLE = ["Alex", "Architect", "Critic"]
TRANSCRIPT = [
    TranscriptEntry("Alex", "Should we ship on Friday?", author_kind="human"),
    TranscriptEntry("Architect", "I propose shipping Friday with a rollback rehearsal on Thursday."),
    TranscriptEntry("Critic", "Agreed, if the rehearsal passes."),
]
REPORT = {
    "agreements": ["A rollback rehearsal is needed"],
    "disagreements": [],
    "proposals": [
        {"id": "P1", "text": "Ship Friday after a rehearsal", "author": "Architect", "supporters": ["Architect"]},
    ],
    "concerns": ["Friday releases are risky"],
    "trade_offs": ["Shipping sooner against weekend risk"],
    "stances": [
        {"participant": "Alex", "position": "undecided", "proposal_id": None, "summary": "Asked"},
        {"participant": "Architect", "position": "support", "proposal_id": "P1", "summary": "Proposed it"},
        {"participant": "Critic", "position": "support", "proposal_id": "P1", "summary": "If it passes"},
    ],
    "agreement_ratio": 0.9,
}


def pieces(value: dict[str, Any], size: int = 40) -> list[str]:
    """The JSON text split into SSE-sized pieces, cutting through keys and strings as a real stream does."""
    text = json.dumps(value, ensure_ascii=False)
    return [text[i : i + size] for i in range(0, len(text), size)]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    for name in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GEMINI_BASE_URL", "GOOGLE_GEMINI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    for name in ("GOOGLE_GENAI_USE_VERTEXAI", "GOOGLE_GENAI_USE_ENTERPRISE", "GOOGLE_GENAI_API_VERSION"):
        monkeypatch.delenv(name, raising=False)


def assert_grounded(report: ConsensusReport) -> None:
    assert report.proposals[0].supporters == ["Architect", "Critic"]
    assert report.agreement_ratio == pytest.approx(2 / 3, abs=1e-3)  # derived, not the 0.9 the model sent
    assert [s.participant for s in report.stances] == PEOPLE


# -- OpenAI and compatible servers: response_format -----------------------------------------------------------------


async def test_openai_sends_response_format_json_schema() -> None:
    with WireServer(OpenAIScript.route, [OpenAIScript.ok(pieces(REPORT))]) as server:
        provider = OpenAIProvider(api_key="test-key", base_url=f"{server.url}/v1", timeout=2.0)
        report = await detect_consensus(provider, "gpt-test", TRANSCRIPT, PEOPLE, round=1)

    assert_grounded(report)
    [sent] = server.requests
    assert sent.body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "ConsensusReport", "schema": consensus_schema(PEOPLE), "strict": False},
    }
    assert sent.body["stream"] is True and sent.body["temperature"] == 0.0
    assert "untrusted" in sent.body["messages"][0]["content"]


async def test_openai_compatible_server_gets_the_same_field() -> None:
    reply = OpenAIScript.ok(pieces(REPORT), usage=False)  # a local server that reports no usage
    with WireServer(OpenAIScript.route, [reply]) as server:
        provider = OpenAICompatibleProvider(base_url=f"{server.url}/v1", timeout=2.0)
        report = await detect_consensus(provider, "llama", TRANSCRIPT, PEOPLE, round=1)

    assert_grounded(report)
    body = server.requests[0].body
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["schema"] == consensus_schema(PEOPLE)
    assert body["max_tokens"] == 1500


async def test_openai_malformed_reply_is_retried_once_through_the_sdk() -> None:
    replies = [OpenAIScript.ok(["The group ", "mostly agrees."]), OpenAIScript.ok(pieces(REPORT))]
    with WireServer(OpenAIScript.route, replies) as server:
        provider = OpenAIProvider(api_key="test-key", base_url=f"{server.url}/v1", timeout=2.0)
        report = await detect_consensus(provider, "gpt-test", TRANSCRIPT, PEOPLE, round=1)

    assert_grounded(report)
    first, second = server.requests
    assert "could not be used: no JSON object found" in second.body["messages"][-1]["content"]
    assert second.body["response_format"] == first.body["response_format"]


async def test_openai_malformed_twice_is_a_structured_output_error() -> None:
    replies = [OpenAIScript.ok(['{"agreements": [']), OpenAIScript.ok(['{"agreements": [}'])]
    with WireServer(OpenAIScript.route, replies) as server:
        provider = OpenAIProvider(api_key="test-key", base_url=f"{server.url}/v1", timeout=2.0)
        with pytest.raises(StructuredOutputError) as caught:
            await detect_consensus(provider, "gpt-test", TRANSCRIPT, PEOPLE, round=1)
    assert len(server.requests) == 2
    assert caught.value.message.startswith("The consensus detector returned malformed output twice: not valid JSON")
    assert caught.value.raw == '{"agreements": [}'


async def test_openai_plain_request_carries_no_response_format() -> None:
    with WireServer(OpenAIScript.route, [OpenAIScript.ok(["ok"])]) as server:
        provider = OpenAIProvider(api_key="test-key", base_url=f"{server.url}/v1", timeout=2.0)
        await collect(provider.stream(make_request("gpt-test")))
    assert "response_format" not in server.requests[0].body


# -- Gemini: responseMimeType + responseJsonSchema ------------------------------------------------------------------


async def test_gemini_sends_response_json_schema() -> None:
    with WireServer(GeminiScript.route, [GeminiScript.ok(pieces(REPORT))]) as server:
        provider = GeminiProvider(api_key="test-key", base_url=server.url, timeout=2.0)
        report = await detect_consensus(provider, "gemini-test", TRANSCRIPT, PEOPLE, round=1)

    assert_grounded(report)
    config = server.requests[0].body["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert config["responseJsonSchema"] == consensus_schema(PEOPLE)
    assert "responseSchema" not in config
    assert "untrusted" in server.requests[0].body["systemInstruction"]["parts"][0]["text"]


async def test_gemini_plain_request_asks_for_no_json() -> None:
    with WireServer(GeminiScript.route, [GeminiScript.ok(["ok"])]) as server:
        provider = GeminiProvider(api_key="test-key", base_url=server.url, timeout=2.0)
        await collect(provider.stream(make_request("gemini-test")))
    config = server.requests[0].body["generationConfig"]
    assert "responseMimeType" not in config and "responseJsonSchema" not in config


# -- Anthropic: output_config.format, or the system prompt for models without it ------------------------------------


async def test_anthropic_sends_output_config_format() -> None:
    with WireServer(AnthropicScript.route, [AnthropicScript.ok(pieces(REPORT))]) as server:
        provider = AnthropicProvider(api_key="test-key", base_url=server.url, timeout=2.0)
        report = await detect_consensus(provider, "claude-test", TRANSCRIPT, PEOPLE, round=1)

    assert_grounded(report)
    body = server.requests[0].body
    fmt = body["output_config"]["format"]
    assert fmt["type"] == "json_schema"
    stance = fmt["schema"]["$defs"]["Stance"]
    assert stance["additionalProperties"] is False  # the SDK's transform_schema made it fit the API
    assert stance["properties"]["participant"]["enum"] == PEOPLE
    assert "JSON Schema" not in body["system"]  # native: no need to spell the schema out


async def test_anthropic_model_without_structured_outputs_gets_the_schema_in_the_system_prompt() -> None:
    rejected = AnthropicScript.error(
        400, "invalid_request_error", "output_config.format: Extra inputs are not permitted"
    )
    replies = [rejected, AnthropicScript.ok(pieces(REPORT)), AnthropicScript.ok(pieces(REPORT))]
    with WireServer(AnthropicScript.route, replies) as server:
        provider = AnthropicProvider(api_key="test-key", base_url=server.url, timeout=2.0)
        report = await detect_consensus(provider, "claude-old", TRANSCRIPT, PEOPLE, round=1)
        await detect_consensus(provider, "claude-old", TRANSCRIPT, PEOPLE, round=2)

    assert_grounded(report)
    native, fallback, later = (r.body for r in server.requests)
    assert "output_config" in native
    assert "output_config" not in fallback and "output_config" not in later  # remembered for this model
    instruction = json_schema_instruction(consensus_schema(PEOPLE))
    assert fallback["system"].endswith(instruction) and "untrusted" in fallback["system"]


async def test_anthropic_other_bad_requests_are_not_retried() -> None:
    replies = [AnthropicScript.error(400, "invalid_request_error", "max_tokens: too large"), AnthropicScript.ok(["x"])]
    with WireServer(AnthropicScript.route, replies) as server:
        provider = AnthropicProvider(api_key="test-key", base_url=server.url, timeout=2.0)
        with pytest.raises(ProviderError) as caught:
            await detect_consensus(provider, "claude-test", TRANSCRIPT, PEOPLE, round=1)
    assert caught.value.kind is ErrorKind.BAD_REQUEST
    assert len(server.requests) == 1


async def test_anthropic_plain_request_carries_no_output_config() -> None:
    with WireServer(AnthropicScript.route, [AnthropicScript.ok(["ok"])]) as server:
        provider = AnthropicProvider(api_key="test-key", base_url=server.url, timeout=2.0)
        await collect(provider.stream(make_request("claude-test")))
    body = server.requests[0].body
    assert "output_config" not in body and body["system"] == "You are Critic. Be brief."
