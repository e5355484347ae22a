"""ScriptedProvider: the deterministic stand-in model used by engine tests and benchmarks."""

from __future__ import annotations

import asyncio
import time

import pytest

from backend.providers.base import (
    Completion,
    ErrorKind,
    GenerationRequest,
    ModelProvider,
    ProviderError,
    TokenDelta,
    TranscriptEntry,
)
from backend.providers.scripted import ScriptedProvider, split_words


def _request(max_tokens: int = 400, model: str = "script-1") -> GenerationRequest:
    return GenerationRequest(
        model=model,
        system="You are the Architect.",
        transcript=[TranscriptEntry("Alex", "Postgres or MongoDB?", "human")],
        max_tokens=max_tokens,
    )


async def _collect(provider: ScriptedProvider, request: GenerationRequest) -> tuple[list[str], Completion]:
    deltas: list[str] = []
    completion: Completion | None = None
    async for item in provider.stream(request):
        assert completion is None, "nothing may follow the Completion"
        if isinstance(item, TokenDelta):
            deltas.append(item.text)
        else:
            completion = item
    assert completion is not None
    return deltas, completion


def test_is_a_model_provider() -> None:
    assert isinstance(ScriptedProvider(["hi"]), ModelProvider)
    assert ScriptedProvider(["hi"], name="bench").name == "bench"


@pytest.mark.parametrize(
    "text", ["Use Postgres.", "  leading and trailing  ", "two\n\nparagraphs here\n", "one", "a  b\tc"]
)
@pytest.mark.parametrize("size", [1, 2, 5])
def test_split_words_joins_back_exactly(text: str, size: int) -> None:
    chunks = split_words(text, size)
    assert "".join(chunks) == text
    assert all(chunk.strip() for chunk in chunks)


def test_split_words_of_blank_text_is_empty() -> None:
    assert split_words("") == []
    assert split_words(" \n ") == []


async def test_streams_words_then_one_completion() -> None:
    provider = ScriptedProvider(["Postgres fits: we need transactions."])
    deltas, completion = await _collect(provider, _request())
    assert deltas == ["Postgres ", "fits: ", "we ", "need ", "transactions."]
    assert completion.text == "".join(deltas)
    assert completion.finish_reason == "stop"
    assert completion.model == "script-1"
    assert completion.usage.output_tokens == 5
    assert completion.usage.input_tokens > 0
    assert completion.usage.estimated is True


async def test_chunk_size_groups_words() -> None:
    provider = ScriptedProvider(["one two three four five"], chunk_size=2)
    deltas, completion = await _collect(provider, _request())
    assert deltas == ["one two ", "three four ", "five"]
    assert completion.usage.output_tokens == 3


async def test_replies_are_used_in_turn_and_requests_recorded() -> None:
    provider = ScriptedProvider(["first", "second"])
    texts = [(await _collect(provider, _request(model=f"m{i}")))[1].text for i in range(3)]
    assert texts == ["first", "second", "first"]
    assert provider.calls == 3
    assert [r.model for r in provider.requests] == ["m0", "m1", "m2"]


async def test_callable_replies_see_the_request() -> None:
    provider = ScriptedProvider(lambda req: f"I read {len(req.transcript)} message(s).")
    _, completion = await _collect(provider, _request())
    assert completion.text == "I read 1 message(s)."


async def test_max_tokens_cuts_with_length() -> None:
    provider = ScriptedProvider(["a b c d e f"])
    deltas, completion = await _collect(provider, _request(max_tokens=3))
    assert deltas == ["a ", "b ", "c "]
    assert completion.text == "a b c "
    assert completion.finish_reason == "length"


async def test_fail_at_once() -> None:
    error = ProviderError(ErrorKind.RATE_LIMITED, "slow down", provider="scripted", retry_after=2.0)
    provider = ScriptedProvider(["never seen"], fail_with=error)
    seen: list[object] = []
    with pytest.raises(ProviderError) as info:
        async for item in provider.stream(_request()):
            seen.append(item)
    assert info.value is error
    assert seen == []
    assert provider.calls == 1


async def test_fail_after_some_tokens_then_recover() -> None:
    provider = ScriptedProvider(
        ["one two three four"],
        fail_with=ProviderError(ErrorKind.CONNECTION, "stream cut"),
        fail_after_tokens=2,
    )
    seen: list[str] = []
    with pytest.raises(ProviderError) as info:
        async for item in provider.stream(_request()):
            assert isinstance(item, TokenDelta)
            seen.append(item.text)
    assert info.value.kind is ErrorKind.CONNECTION
    assert seen == ["one ", "two "]
    provider.fail_with = None
    _, completion = await _collect(provider, _request())
    assert completion.text == "one two three four"


async def test_fail_after_more_tokens_than_the_reply_has_still_fails() -> None:
    provider = ScriptedProvider(["short"], fail_with=ProviderError(ErrorKind.SERVER, "x"), fail_after_tokens=9)
    with pytest.raises(ProviderError):
        await _collect(provider, _request())


async def test_empty_reply_is_an_empty_error() -> None:
    provider = ScriptedProvider(["   "])
    with pytest.raises(ProviderError) as info:
        await _collect(provider, _request())
    assert info.value.kind is ErrorKind.EMPTY


def test_needs_a_reply() -> None:
    with pytest.raises(ValueError):
        ScriptedProvider([])


async def test_zero_delay_still_yields_to_the_loop() -> None:
    ran: list[bool] = []

    async def other() -> None:
        ran.append(True)

    task = asyncio.create_task(other())
    provider = ScriptedProvider(["x"])
    agen = provider.stream(_request())
    await agen.__anext__()
    assert ran == [True]
    await agen.aclose()
    await task


async def test_token_delay_paces_the_stream() -> None:
    provider = ScriptedProvider(["a b c d e"], token_delay=0.02)
    start = time.perf_counter()
    await _collect(provider, _request())
    assert time.perf_counter() - start >= 5 * 0.02 * 0.9


async def test_zero_delay_overhead_is_small() -> None:
    provider = ScriptedProvider([" ".join(["word"] * 50)])
    start = time.perf_counter()
    for _ in range(200):
        await _collect(provider, _request())
    assert time.perf_counter() - start < 1.0  # 10,000 deltas; typically ~50 ms


async def test_consumer_may_stop_early() -> None:
    provider = ScriptedProvider(["a b c d"])
    agen = provider.stream(_request())
    assert (await agen.__anext__()) == TokenDelta("a ")
    await agen.aclose()
    _, completion = await _collect(provider, _request())
    assert completion.text == "a b c d"
