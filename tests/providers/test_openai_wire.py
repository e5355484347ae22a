"""The real `openai` SDK against a local server speaking OpenAI's Chat Completions streaming wire format."""

from __future__ import annotations

import pytest

from backend.providers.base import ErrorKind
from backend.providers.openai_provider import OpenAIProvider
from tests.providers.wire_servers import Cut, WireServer, collect, make_request
from tests.providers.wire_servers import OpenAIScript as S

MODEL = "gpt-test"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID"):
        monkeypatch.delenv(name, raising=False)


def provider(server: WireServer, timeout: float = 2.0) -> OpenAIProvider:
    return OpenAIProvider(api_key="test-key", base_url=f"{server.url}/v1", timeout=timeout)


async def test_streams_deltas_then_completion_with_usage() -> None:
    reply = S.ok(["Hel", "lo, ", "team."], prompt_tokens=40, completion_tokens=5, cached_tokens=32)
    with WireServer(S.route, [reply]) as server:
        deltas, completion, error = await collect(provider(server).stream(make_request(MODEL)))

    assert error is None and completion is not None
    assert deltas == ["Hel", "lo, ", "team."]
    assert completion.text == "".join(deltas)
    assert completion.usage.input_tokens == 40 and completion.usage.output_tokens == 5
    assert completion.usage.cached_tokens == 32 and not completion.usage.estimated
    assert (completion.finish_reason, completion.model) == ("stop", MODEL)
    [sent] = server.requests
    assert sent.headers["authorization"] == "Bearer test-key"


async def test_request_puts_system_first_and_attributes_authors() -> None:
    with WireServer(S.route, [S.ok(["ok"])]) as server:
        await collect(provider(server).stream(make_request(MODEL, max_tokens=50, temperature=0.2)))

    body = server.requests[0].body
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["max_completion_tokens"] == 50 and "max_tokens" not in body
    assert body["temperature"] == 0.2
    assert body["messages"] == [
        {"role": "system", "content": "You are Critic. Be brief."},
        {
            "role": "user",
            "content": "[Alex]: Should we ship on Friday?\n\n[Architect]: Only if the migration is reversible.",
        },
        {"role": "assistant", "content": "Fridays are risky."},
        {"role": "user", "content": "[Alex]: What would make it safe?\n\n[Architect]: A rollback rehearsal."},
    ]


async def test_429_waits_for_retry_after_then_succeeds() -> None:
    with WireServer(S.route, [S.rate_limit(retry_after=1), S.ok(["fine"])]) as server:
        _, completion, error = await collect(provider(server).stream(make_request(MODEL)))

    assert error is None and completion is not None and completion.text == "fine"
    first, second = server.requests
    assert second.at - first.at >= 0.95  # the SDK waited as long as Retry-After asked


async def test_429_asking_for_more_than_two_minutes_is_not_retried() -> None:
    """The SDK honours Retry-After only up to 120 s; beyond that it gives up at once instead of waiting."""
    with WireServer(S.route, [S.rate_limit(retry_after=121), S.ok(["never"])]) as server:
        _, _, error = await collect(provider(server).stream(make_request(MODEL)))

    assert error is not None and error.kind is ErrorKind.RATE_LIMITED and error.retry_after == 121
    assert error.message == (
        "OpenAI is rate-limiting requests and asked to wait 121 s, longer than the 60 s Maestro waits (429). "
        "Try again later or use another model."
    )
    assert len(server.requests) == 1


async def test_500_is_retried_then_succeeds() -> None:
    with WireServer(S.route, [S.server_error(500), S.ok(["fine"])]) as server:
        _, completion, error = await collect(provider(server).stream(make_request(MODEL)))

    assert error is None and completion is not None
    assert len(server.requests) == 2


async def test_persistent_5xx_gives_up_after_two_retries() -> None:
    with WireServer(S.route, [S.server_error(502, retry_after=0.1)] * 3 + [S.ok(["never"])]) as server:
        _, _, error = await collect(provider(server).stream(make_request(MODEL)))

    assert error is not None and error.kind is ErrorKind.SERVER and error.status == 502
    assert error.message == "OpenAI had a server error (502). Try again shortly."
    assert len(server.requests) == 3


async def test_401_is_not_retried_and_reads_well() -> None:
    with WireServer(S.route, [S.auth_error(), S.ok(["never"])]) as server:
        deltas, _, error = await collect(provider(server).stream(make_request(MODEL)))

    assert deltas == [] and error is not None
    assert error.kind is ErrorKind.AUTH and error.status == 401 and error.provider == "openai"
    assert error.message == "OpenAI rejected the API key (401). Check OPENAI_API_KEY."
    assert len(server.requests) == 1


async def test_unknown_model_is_a_bad_request() -> None:
    with WireServer(S.route, [S.not_found("gpt-nope")]) as server:
        _, _, error = await collect(provider(server).stream(make_request("gpt-nope")))

    assert error is not None and error.kind is ErrorKind.BAD_REQUEST
    assert error.message == "OpenAI does not know the model 'gpt-nope' (404). Check the model name."


async def test_out_of_quota_says_so() -> None:
    reply = S.error(
        429, "You exceeded your current quota.", type_="insufficient_quota", code="insufficient_quota", retry_after=0.1
    )
    with WireServer(S.route, [reply] * 3) as server:
        _, _, error = await collect(provider(server).stream(make_request(MODEL)))

    assert error is not None and error.kind is ErrorKind.RATE_LIMITED
    assert error.message == "OpenAI says the account is out of credit (429)."
    assert len(server.requests) == 3  # the SDK retries every 429, even one that waiting cannot fix


@pytest.mark.parametrize("how", ["fin", "rst", "eof"])
async def test_stream_cut_midway_is_a_connection_error_after_the_partial_text(how: Cut) -> None:
    with WireServer(S.route, [S.cut(["par", "tial"], how=how), S.ok(["never"])]) as server:
        deltas, completion, error = await collect(provider(server).stream(make_request(MODEL)))

    assert deltas == ["par", "tial"] and completion is None
    assert error is not None and error.kind is ErrorKind.CONNECTION
    assert error.message == "The connection to OpenAI dropped before the reply was complete."
    assert len(server.requests) == 1


async def test_error_event_inside_the_stream() -> None:
    with WireServer(S.route, [S.error_midway(["Hal"])]) as server:
        deltas, _, error = await collect(provider(server).stream(make_request(MODEL)))

    assert deltas == ["Hal"]
    assert error is not None and error.kind is ErrorKind.SERVER


async def test_stalled_stream_times_out() -> None:
    with WireServer(S.route, [S.stall(["slow"], seconds=2.0)]) as server:
        deltas, _, error = await collect(provider(server, timeout=0.6).stream(make_request(MODEL)))

    assert deltas == ["slow"]
    assert error is not None and error.kind is ErrorKind.TIMEOUT


async def test_empty_completion() -> None:
    with WireServer(S.route, [S.ok([])]) as server:
        _, _, error = await collect(provider(server).stream(make_request(MODEL)))

    assert error is not None and error.kind is ErrorKind.EMPTY


async def test_max_tokens_finish_is_length() -> None:
    with WireServer(S.route, [S.ok(["Cut sho"], finish_reason="length")]) as server:
        _, completion, _ = await collect(provider(server).stream(make_request(MODEL)))

    assert completion is not None and completion.finish_reason == "length"


async def test_content_filter_finish() -> None:
    with WireServer(S.route, [S.ok(["Well"], finish_reason="content_filter")]) as server:
        _, _, error = await collect(provider(server).stream(make_request(MODEL)))

    assert error is not None and error.kind is ErrorKind.CONTENT_FILTERED


async def test_refusal_without_text_is_content_filtered() -> None:
    with WireServer(S.route, [S.ok([], refusal="I can't help with that.")]) as server:
        _, _, error = await collect(provider(server).stream(make_request(MODEL)))

    assert error is not None and error.kind is ErrorKind.CONTENT_FILTERED
    assert error.message == "OpenAI declined to answer (safety filter): I can't help with that."


async def test_multibyte_character_split_across_writes() -> None:
    texts = ["Grüße ", "🎵 ", "日本語"]
    with WireServer(S.route, [S.ok(texts, split=True)], gap=0.02) as server:
        deltas, completion, _ = await collect(provider(server).stream(make_request(MODEL)))

    assert deltas == texts
    assert completion is not None and completion.text == "Grüße 🎵 日本語"


async def test_missing_key_fails_before_any_network() -> None:
    with WireServer(S.route, [S.ok(["never"])]) as server:
        missing = OpenAIProvider(base_url=f"{server.url}/v1")
        _, _, error = await collect(missing.stream(make_request(MODEL)))

    assert error is not None and error.kind is ErrorKind.AUTH
    assert error.message == "No OpenAI API key: set OPENAI_API_KEY in the environment."
    assert server.requests == []


async def test_key_and_base_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    with WireServer(S.route, [S.ok(["hi"])]) as server:
        monkeypatch.setenv("OPENAI_API_KEY", "env-key")
        monkeypatch.setenv("OPENAI_BASE_URL", f"{server.url}/v1")
        _, completion, _ = await collect(OpenAIProvider().stream(make_request(MODEL)))

    assert completion is not None
    assert server.requests[0].headers["authorization"] == "Bearer env-key"
