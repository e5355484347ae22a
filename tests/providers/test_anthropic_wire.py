"""The real `anthropic` SDK against a local server speaking Anthropic's streaming wire format."""

from __future__ import annotations

import pytest

from backend.providers.anthropic_provider import AnthropicProvider
from backend.providers.base import ErrorKind, TranscriptEntry
from tests.providers.wire_servers import AnthropicScript as S
from tests.providers.wire_servers import Cut, WireServer, collect, make_request

MODEL = "claude-test"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL", "ANTHROPIC_CUSTOM_HEADERS"):
        monkeypatch.delenv(name, raising=False)


def provider(server: WireServer, timeout: float = 2.0) -> AnthropicProvider:
    return AnthropicProvider(api_key="test-key", base_url=server.url, timeout=timeout)


async def test_streams_deltas_then_completion_with_usage() -> None:
    reply = S.ok(["Hel", "lo, ", "team."], input_tokens=12, cache_read=30, output_tokens=7)
    with WireServer(S.route, [reply]) as server:
        deltas, completion, error = await collect(provider(server).stream(make_request(MODEL)))

    assert error is None and completion is not None
    assert deltas == ["Hel", "lo, ", "team."]
    assert completion.text == "".join(deltas)
    # input_tokens counts the whole prompt, cached part included, as OpenAI and Gemini report it.
    assert (completion.usage.input_tokens, completion.usage.cached_tokens) == (42, 30)
    assert completion.usage.output_tokens == 7 and not completion.usage.estimated
    assert (completion.finish_reason, completion.model) == ("stop", MODEL)
    [sent] = server.requests
    assert sent.headers["authorization"] == "Bearer test-key"
    assert "anthropic-version" in sent.headers


async def test_request_puts_system_apart_and_attributes_authors() -> None:
    with WireServer(S.route, [S.ok(["ok"])]) as server:
        await collect(provider(server).stream(make_request(MODEL, max_tokens=50)))

    body = server.requests[0].body
    assert body["system"] == "You are Critic. Be brief."
    assert body["stream"] is True and body["max_tokens"] == 50 and body["model"] == MODEL
    assert "temperature" not in body  # this SDK's Messages API has no sampling parameters
    assert body["messages"] == [
        {
            "role": "user",
            "content": "[Alex]: Should we ship on Friday?\n\n[Architect]: Only if the migration is reversible.",
        },
        {"role": "assistant", "content": "Fridays are risky."},
        {"role": "user", "content": "[Alex]: What would make it safe?\n\n[Architect]: A rollback rehearsal."},
    ]


async def test_transcript_opened_by_the_agent_still_starts_with_a_user_turn() -> None:
    transcript = [TranscriptEntry("Critic", "I'll start.", is_self=True), TranscriptEntry("Alex", "Go on.")]
    with WireServer(S.route, [S.ok(["ok"])]) as server:
        await collect(provider(server).stream(make_request(MODEL, transcript=transcript, system="")))

    body = server.requests[0].body
    assert "system" not in body
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert body["messages"][0]["content"] == "(The discussion begins.)"


async def test_429_waits_for_retry_after_then_succeeds() -> None:
    with WireServer(S.route, [S.rate_limit(retry_after=1), S.ok(["fine"])]) as server:
        _, completion, error = await collect(provider(server).stream(make_request(MODEL)))

    assert error is None and completion is not None and completion.text == "fine"
    first, second = server.requests
    assert second.at - first.at >= 0.95  # the SDK waited as long as Retry-After asked
    assert second.headers["x-stainless-retry-count"] == "1"


async def test_500_is_retried_then_succeeds() -> None:
    with WireServer(S.route, [S.server_error(500), S.ok(["fine"])]) as server:
        _, completion, error = await collect(provider(server).stream(make_request(MODEL)))

    assert error is None and completion is not None
    assert len(server.requests) == 2


async def test_persistent_overload_gives_up_after_two_retries() -> None:
    with WireServer(S.route, [S.server_error(529, retry_after=0.1)] * 3 + [S.ok(["never"])]) as server:
        _, _, error = await collect(provider(server).stream(make_request(MODEL)))

    assert error is not None and error.kind is ErrorKind.SERVER and error.status == 529
    assert error.message == "Anthropic is overloaded (529). Try again shortly."
    assert len(server.requests) == 3


async def test_401_is_not_retried_and_reads_well() -> None:
    with WireServer(S.route, [S.auth_error(), S.ok(["never"])]) as server:
        deltas, _, error = await collect(provider(server).stream(make_request(MODEL)))

    assert deltas == [] and error is not None
    assert error.kind is ErrorKind.AUTH and error.status == 401 and error.provider == "anthropic"
    assert error.message == "Anthropic rejected the API key (401). Check ANTHROPIC_API_KEY."
    assert len(server.requests) == 1


async def test_unknown_model_is_a_bad_request() -> None:
    with WireServer(S.route, [S.not_found("claude-nope")]) as server:
        _, _, error = await collect(provider(server).stream(make_request("claude-nope")))

    assert error is not None and error.kind is ErrorKind.BAD_REQUEST
    assert error.message == "Anthropic does not know the model 'claude-nope' (404). Check the model name."


async def test_400_carries_the_vendor_reason() -> None:
    reply = S.error(400, "invalid_request_error", "prompt is too long: 250000 tokens > 200000 maximum")
    with WireServer(S.route, [reply]) as server:
        _, _, error = await collect(provider(server).stream(make_request(MODEL)))

    assert error is not None and error.kind is ErrorKind.BAD_REQUEST
    assert error.message == "Anthropic rejected the request (400): prompt is too long: 250000 tokens > 200000 maximum"
    assert len(server.requests) == 1


@pytest.mark.parametrize("how", ["fin", "rst", "eof"])
async def test_stream_cut_midway_is_a_connection_error_after_the_partial_text(how: Cut) -> None:
    with WireServer(S.route, [S.cut(["par", "tial"], how=how), S.ok(["never"])]) as server:
        deltas, completion, error = await collect(provider(server).stream(make_request(MODEL)))

    assert deltas == ["par", "tial"] and completion is None
    assert error is not None and error.kind is ErrorKind.CONNECTION
    assert error.message == "The connection to Anthropic dropped before the reply was complete."
    assert len(server.requests) == 1  # a started stream is never retried


async def test_error_event_inside_the_stream() -> None:
    with WireServer(S.route, [S.error_midway(["Hal"])]) as server:
        deltas, _, error = await collect(provider(server).stream(make_request(MODEL)))

    assert deltas == ["Hal"]
    assert error is not None and error.kind is ErrorKind.SERVER and "overloaded" in error.message


async def test_stalled_stream_times_out() -> None:
    with WireServer(S.route, [S.stall(["slow"], seconds=2.0)]) as server:
        deltas, _, error = await collect(provider(server, timeout=0.6).stream(make_request(MODEL)))

    assert deltas == ["slow"]
    assert error is not None and error.kind is ErrorKind.TIMEOUT


async def test_empty_completion() -> None:
    with WireServer(S.route, [S.ok([])]) as server:
        deltas, _, error = await collect(provider(server).stream(make_request(MODEL)))

    assert deltas == []
    assert error is not None and error.kind is ErrorKind.EMPTY
    assert error.message == "The model returned an empty reply."


async def test_max_tokens_finish_is_length() -> None:
    with WireServer(S.route, [S.ok(["Cut sho"], stop_reason="max_tokens")]) as server:
        _, completion, _ = await collect(provider(server).stream(make_request(MODEL)))

    assert completion is not None and completion.finish_reason == "length"


async def test_refusal_is_content_filtered() -> None:
    details = {"type": "refusal", "category": "cyber", "explanation": "This could help build malware."}
    with WireServer(S.route, [S.ok(["I can"], stop_reason="refusal", stop_details=details)]) as server:
        deltas, completion, error = await collect(provider(server).stream(make_request(MODEL)))

    assert deltas == ["I can"] and completion is None
    assert error is not None and error.kind is ErrorKind.CONTENT_FILTERED
    assert error.message == "Anthropic declined to answer (safety filter): This could help build malware."


async def test_multibyte_character_split_across_writes() -> None:
    texts = ["Grüße ", "🎵 ", "日本語"]
    with WireServer(S.route, [S.ok(texts, split=True)], gap=0.02) as server:
        deltas, completion, _ = await collect(provider(server).stream(make_request(MODEL)))

    assert deltas == texts
    assert completion is not None and completion.text == "Grüße 🎵 日本語"


async def test_missing_key_fails_before_any_network() -> None:
    with WireServer(S.route, [S.ok(["never"])]) as server:
        missing = AnthropicProvider(base_url=server.url)  # constructing never fails
        _, _, error = await collect(missing.stream(make_request(MODEL)))

    assert error is not None and error.kind is ErrorKind.AUTH
    assert error.message == "No Anthropic API key: set ANTHROPIC_API_KEY in the environment."
    assert server.requests == []


async def test_key_and_base_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    with WireServer(S.route, [S.ok(["hi"])]) as server:
        monkeypatch.setenv("ANTHROPIC_API_KEY", "env-key")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
        _, completion, _ = await collect(AnthropicProvider().stream(make_request(MODEL)))

    assert completion is not None
    assert server.requests[0].headers["authorization"] == "Bearer env-key"
