"""The real `openai` SDK against a local server imitating Ollama / vLLM / llama.cpp / LM Studio."""

from __future__ import annotations

import math
import socket

import pytest

from backend.providers.base import ErrorKind, to_chat_messages
from backend.providers.openai_provider import OpenAICompatibleProvider
from tests.providers.wire_servers import TRANSCRIPT, Cut, WireServer, collect, make_request
from tests.providers.wire_servers import OpenAIScript as S

MODEL = "llama3.2:3b"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


def provider(server: WireServer, api_key: str | None = None) -> OpenAICompatibleProvider:
    return OpenAICompatibleProvider(f"{server.url}/v1", api_key=api_key, timeout=2.0)


async def test_no_usage_from_the_server_is_estimated() -> None:
    with WireServer(S.route, [S.ok(["Local ", "models ", "rock."], model=MODEL, usage=False)]) as server:
        deltas, completion, error = await collect(provider(server).stream(make_request(MODEL)))

    assert error is None and completion is not None
    assert completion.text == "".join(deltas) == "Local models rock."
    prompt_chars = len("You are Critic. Be brief.") + sum(len(m.content) for m in to_chat_messages(TRANSCRIPT))
    assert completion.usage.estimated
    assert completion.usage.output_tokens == math.ceil(len("Local models rock.") / 4)
    assert completion.usage.input_tokens == math.ceil(prompt_chars / 4)
    assert completion.finish_reason == "stop" and completion.model == MODEL


async def test_reported_usage_is_used_when_sent() -> None:
    with WireServer(S.route, [S.ok(["hi"], prompt_tokens=11, completion_tokens=2)]) as server:
        _, completion, _ = await collect(provider(server).stream(make_request(MODEL)))

    assert completion is not None and not completion.usage.estimated
    assert (completion.usage.input_tokens, completion.usage.output_tokens) == (11, 2)


async def test_request_shape_for_local_servers() -> None:
    with WireServer(S.route, [S.ok(["ok"])]) as server:
        compatible = provider(server)
        await collect(compatible.stream(make_request(MODEL, max_tokens=50)))

    assert compatible.name == "openai_compatible"
    [sent] = server.requests
    assert sent.headers["authorization"] == "Bearer not-needed"
    assert sent.body["max_tokens"] == 50 and "max_completion_tokens" not in sent.body
    assert [m["role"] for m in sent.body["messages"]] == ["system", "user", "assistant", "user"]
    assert sent.body["messages"][1]["content"].startswith("[Alex]: Should we ship on Friday?")


async def test_server_rejecting_stream_options_is_asked_again_without_them() -> None:
    rejection = S.error(400, "Unrecognized request argument supplied: stream_options")
    with WireServer(S.route, [rejection, S.ok(["one"], usage=False), S.ok(["two"], usage=False)]) as server:
        compatible = provider(server)
        _, first, _ = await collect(compatible.stream(make_request(MODEL)))
        _, second, _ = await collect(compatible.stream(make_request(MODEL)))

    assert first is not None and first.text == "one" and first.usage.estimated
    assert second is not None and second.text == "two"
    assert ["stream_options" in r.body for r in server.requests] == [True, False, False]  # remembered


async def test_other_400s_are_not_asked_again() -> None:
    with WireServer(S.route, [S.error(400, "max_tokens is too large"), S.ok(["never"])]) as server:
        _, _, error = await collect(provider(server).stream(make_request(MODEL)))

    assert error is not None and error.kind is ErrorKind.BAD_REQUEST
    assert len(server.requests) == 1


async def test_429_waits_for_retry_after_then_succeeds() -> None:
    with WireServer(S.route, [S.rate_limit(retry_after=1), S.ok(["fine"], usage=False)]) as server:
        _, completion, error = await collect(provider(server).stream(make_request(MODEL)))

    assert error is None and completion is not None
    first, second = server.requests
    assert second.at - first.at >= 0.95


async def test_500_is_retried_then_succeeds() -> None:
    with WireServer(S.route, [S.server_error(503), S.ok(["fine"], usage=False)]) as server:
        _, completion, error = await collect(provider(server).stream(make_request(MODEL)))

    assert error is None and completion is not None
    assert len(server.requests) == 2


async def test_401_names_the_server() -> None:
    with WireServer(S.route, [S.auth_error(), S.ok(["never"])]) as server:
        _, _, error = await collect(provider(server, api_key="wrong").stream(make_request(MODEL)))

    assert error is not None and error.kind is ErrorKind.AUTH and error.provider == "openai_compatible"
    assert (
        error.message == f"The model server at {server.url}/v1 rejected the API key (401). Check its API key setting."
    )
    assert len(server.requests) == 1
    assert server.requests[0].headers["authorization"] == "Bearer wrong"


async def test_unreachable_server_is_a_connection_error() -> None:
    with socket.socket() as reserved:  # bound but not listening: connecting is refused
        reserved.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{reserved.getsockname()[1]}/v1"
        # The SDK retries refused connects twice (about 1.3 s of backoff) before giving up.
        _, _, error = await collect(OpenAICompatibleProvider(url, timeout=1.0).stream(make_request(MODEL)))

    assert error is not None and error.kind is ErrorKind.CONNECTION
    assert error.message == f"Could not reach the model server at {url}. Check the network connection or the base URL."


@pytest.mark.parametrize("how", ["fin", "eof"])
async def test_stream_cut_midway(how: Cut) -> None:
    with WireServer(S.route, [S.cut(["par", "tial"], how=how)]) as server:
        deltas, _, error = await collect(provider(server).stream(make_request(MODEL)))

    assert deltas == ["par", "tial"]
    assert error is not None and error.kind is ErrorKind.CONNECTION


async def test_empty_completion() -> None:
    with WireServer(S.route, [S.ok([], usage=False)]) as server:
        _, _, error = await collect(provider(server).stream(make_request(MODEL)))

    assert error is not None and error.kind is ErrorKind.EMPTY


async def test_max_tokens_finish_is_length() -> None:
    with WireServer(S.route, [S.ok(["Cut"], finish_reason="length", usage=False)]) as server:
        _, completion, _ = await collect(provider(server).stream(make_request(MODEL)))

    assert completion is not None and completion.finish_reason == "length"


async def test_multibyte_character_split_across_writes() -> None:
    texts = ["Ça ", "va ", "🙂"]
    with WireServer(S.route, [S.ok(texts, split=True, usage=False)], gap=0.02) as server:
        deltas, completion, _ = await collect(provider(server).stream(make_request(MODEL)))

    assert deltas == texts
    assert completion is not None and completion.text == "Ça va 🙂"
