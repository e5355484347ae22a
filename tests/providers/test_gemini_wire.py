"""The real `google-genai` SDK against a local server speaking the Gemini API's SSE wire format.

Unlike the other two SDKs, google-genai ignores `Retry-After` (and Google's RetryInfo): its tenacity-based
retry waits `initial_delay * 2**n` plus random jitter, so these tests check that schedule instead.
"""

from __future__ import annotations

import pytest

from backend.providers import gemini_provider
from backend.providers.base import ErrorKind
from backend.providers.gemini_provider import RETRY_OPTIONS, GeminiProvider
from tests.providers.wire_servers import Cut, WireServer, collect, make_request
from tests.providers.wire_servers import GeminiScript as S

MODEL = "gemini-test"
JITTER = RETRY_OPTIONS.jitter or 1.0


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GEMINI_BASE_URL", "GOOGLE_GEMINI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    for name in ("GOOGLE_GENAI_USE_VERTEXAI", "GOOGLE_GENAI_USE_ENTERPRISE", "GOOGLE_GENAI_API_VERSION"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def short_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the production attempt count and status codes, but not the seconds of waiting between them
    (`test_429_waits_as_long_as_retry_after_asks_then_succeeds` checks the real schedule)."""
    fast = RETRY_OPTIONS.model_copy(update={"initial_delay": 0.05, "jitter": 0.0})
    monkeypatch.setattr(gemini_provider, "RETRY_OPTIONS", fast)


def provider(server: WireServer, timeout: float = 2.0) -> GeminiProvider:
    return GeminiProvider(api_key="test-key", base_url=server.url, timeout=timeout)


async def test_streams_deltas_then_completion_with_usage() -> None:
    reply = S.ok(["Hel", "lo, ", "team."], prompt_tokens=30, candidates_tokens=8, cached_tokens=16, thoughts_tokens=5)
    with WireServer(S.route, [reply]) as server:
        deltas, completion, error = await collect(provider(server).stream(make_request(MODEL)))

    assert error is None and completion is not None
    assert deltas == ["Hel", "lo, ", "team."]
    assert completion.text == "".join(deltas)
    assert completion.usage.input_tokens == 30 and completion.usage.cached_tokens == 16
    assert completion.usage.output_tokens == 8 + 5  # thinking is billed as output
    assert (completion.finish_reason, completion.model) == ("stop", "gemini-test-001")
    [sent] = server.requests
    assert sent.path == f"/v1beta/models/{MODEL}:streamGenerateContent?alt=sse"
    assert sent.headers["x-goog-api-key"] == "test-key"


async def test_request_puts_system_apart_and_attributes_authors() -> None:
    with WireServer(S.route, [S.ok(["ok"])]) as server:
        await collect(provider(server).stream(make_request(MODEL, max_tokens=50, temperature=0.2)))

    body = server.requests[0].body
    assert body["systemInstruction"]["parts"] == [{"text": "You are Critic. Be brief."}]
    assert body["generationConfig"] == {"maxOutputTokens": 50, "temperature": 0.2}
    assert body["contents"] == [
        {
            "role": "user",
            "parts": [
                {"text": "[Alex]: Should we ship on Friday?\n\n[Architect]: Only if the migration is reversible."}
            ],
        },
        {"role": "model", "parts": [{"text": "Fridays are risky."}]},
        {"role": "user", "parts": [{"text": "[Alex]: What would make it safe?\n\n[Architect]: A rollback rehearsal."}]},
    ]


async def test_429_waits_as_long_as_retry_after_asks_then_succeeds() -> None:
    """The SDK alone would retry after ~1 s whatever the server asks; the hook makes it wait the 3 s asked."""
    with WireServer(S.route, [S.rate_limit(retry_after=3), S.ok(["fine"])]) as server:
        _, completion, error = await collect(provider(server).stream(make_request(MODEL)))

    assert error is None and completion is not None and completion.text == "fine"
    first, second = server.requests
    waited = second.at - first.at
    assert 3 - 0.05 <= waited < 3 + JITTER + 0.5


async def test_429_asking_for_longer_than_60_s_fails_at_once_and_says_so() -> None:
    with WireServer(S.route, [S.rate_limit(retry_after=120), S.ok(["never"])]) as server:
        _, _, error = await collect(provider(server).stream(make_request(MODEL)))

    assert error is not None and error.kind is ErrorKind.RATE_LIMITED and error.retry_after == 120
    assert "asked to wait 120 s, longer than the 60 s Maestro waits" in error.message
    assert len(server.requests) == 1


@pytest.mark.usefixtures("short_backoff")
async def test_persistent_429_gives_up_after_two_retries_and_keeps_the_advice() -> None:
    with WireServer(S.route, [S.rate_limit(retry_after=1)] * 3 + [S.ok(["never"])]) as server:
        _, _, error = await collect(provider(server).stream(make_request(MODEL)))

    assert error is not None and error.kind is ErrorKind.RATE_LIMITED
    assert error.retry_after == 1 and error.status == 429
    assert error.message == "Gemini is rate-limiting requests (429). Try again in 1 s."
    assert len(server.requests) == 3


@pytest.mark.usefixtures("short_backoff")
async def test_500_is_retried_then_succeeds() -> None:
    with WireServer(S.route, [S.server_error(500), S.ok(["fine"])]) as server:
        _, completion, error = await collect(provider(server).stream(make_request(MODEL)))

    assert error is None and completion is not None
    assert len(server.requests) == 2


async def test_401_is_not_retried_and_reads_well() -> None:
    with WireServer(S.route, [S.auth_error(), S.ok(["never"])]) as server:
        deltas, _, error = await collect(provider(server).stream(make_request(MODEL)))

    assert deltas == [] and error is not None
    assert error.kind is ErrorKind.AUTH and error.status == 401 and error.provider == "gemini"
    assert error.message == "Gemini rejected the API key (401). Check GEMINI_API_KEY."
    assert len(server.requests) == 1


async def test_google_style_invalid_key_400_is_auth() -> None:
    with WireServer(S.route, [S.invalid_key(), S.ok(["never"])]) as server:
        _, _, error = await collect(provider(server).stream(make_request(MODEL)))

    assert error is not None and error.kind is ErrorKind.AUTH
    assert error.message == "Gemini rejected the API key (400). Check GEMINI_API_KEY."
    assert len(server.requests) == 1


async def test_unknown_model_is_a_bad_request() -> None:
    with WireServer(S.route, [S.not_found("gemini-nope")]) as server:
        _, _, error = await collect(provider(server).stream(make_request("gemini-nope")))

    assert error is not None and error.kind is ErrorKind.BAD_REQUEST
    assert error.message == "Gemini does not know the model 'gemini-nope' (404). Check the model name."
    assert len(server.requests) == 1


@pytest.mark.parametrize("how", ["fin", "rst", "eof"])
async def test_stream_cut_midway_is_a_connection_error_after_the_partial_text(how: Cut) -> None:
    with WireServer(S.route, [S.cut(["par", "tial"], how=how), S.ok(["never"])]) as server:
        deltas, completion, error = await collect(provider(server).stream(make_request(MODEL)))

    assert deltas == ["par", "tial"] and completion is None
    assert error is not None and error.kind is ErrorKind.CONNECTION
    assert error.message == "The connection to Gemini dropped before the reply was complete."
    assert len(server.requests) == 1


async def test_error_event_inside_the_stream() -> None:
    with WireServer(S.route, [S.error_midway(["Hal"])]) as server:
        deltas, _, error = await collect(provider(server).stream(make_request(MODEL)))

    assert deltas == ["Hal"]
    assert error is not None and error.kind is ErrorKind.SERVER and error.status == 503


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


async def test_max_tokens_finish_is_length() -> None:
    with WireServer(S.route, [S.ok(["Cut sho"], finish_reason="MAX_TOKENS")]) as server:
        _, completion, _ = await collect(provider(server).stream(make_request(MODEL)))

    assert completion is not None and completion.finish_reason == "length"


@pytest.mark.parametrize("reason", ["SAFETY", "PROHIBITED_CONTENT", "BLOCKLIST"])
async def test_safety_finish_is_content_filtered(reason: str) -> None:
    with WireServer(S.route, [S.ok(["Well, "], finish_reason=reason)]) as server:
        deltas, completion, error = await collect(provider(server).stream(make_request(MODEL)))

    assert deltas == ["Well, "] and completion is None
    assert error is not None and error.kind is ErrorKind.CONTENT_FILTERED


async def test_blocked_prompt_is_content_filtered() -> None:
    with WireServer(S.route, [S.blocked_prompt("PROHIBITED_CONTENT")]) as server:
        _, _, error = await collect(provider(server).stream(make_request(MODEL)))

    assert error is not None and error.kind is ErrorKind.CONTENT_FILTERED
    assert error.message == "Gemini declined to answer (safety filter): prohibited content"


async def test_multibyte_character_split_across_writes() -> None:
    texts = ["Grüße ", "🎵 ", "日本語"]
    with WireServer(S.route, [S.ok(texts, split=True)], gap=0.02) as server:
        deltas, completion, _ = await collect(provider(server).stream(make_request(MODEL)))

    assert deltas == texts
    assert completion is not None and completion.text == "Grüße 🎵 日本語"


async def test_missing_key_fails_before_any_network() -> None:
    with WireServer(S.route, [S.ok(["never"])]) as server:
        missing = GeminiProvider(base_url=server.url)
        _, _, error = await collect(missing.stream(make_request(MODEL)))

    assert error is not None and error.kind is ErrorKind.AUTH
    assert error.message == "No Gemini API key: set GEMINI_API_KEY (or GOOGLE_API_KEY) in the environment."
    assert server.requests == []


@pytest.mark.parametrize("key_env", ["GEMINI_API_KEY", "GOOGLE_API_KEY"])
async def test_key_and_base_url_from_the_environment(monkeypatch: pytest.MonkeyPatch, key_env: str) -> None:
    with WireServer(S.route, [S.ok(["hi"])]) as server:
        monkeypatch.setenv(key_env, "env-key")
        monkeypatch.setenv("GEMINI_BASE_URL", server.url)
        _, completion, _ = await collect(GeminiProvider().stream(make_request(MODEL)))

    assert completion is not None
    assert server.requests[0].headers["x-goog-api-key"] == "env-key"
