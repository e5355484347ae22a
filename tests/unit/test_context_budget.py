"""Context budget: a turn's prompt always fits its model's window, by summary or, failing that, truncation."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backend.providers.base import ErrorKind, ProviderError, TranscriptEntry
from backend.providers.context_budget import (
    CONTEXT_TOKENS_ENV,
    DEFAULT_WINDOW,
    MIN_WINDOW,
    SUMMARY_PREFIX,
    TRUNCATED,
    apply_summary,
    context_window,
    estimate_tokens,
    fit_transcript,
    fits,
    plan,
    summary_entry,
    summary_request,
    transcript_tokens,
)
from backend.providers.scripted import ScriptedProvider

SYSTEM = "You are the Architect. Argue for simple, boring technology."
QUESTION = TranscriptEntry("Alex", "Should the ledger live in Postgres or MongoDB?", "human")
SUMMARY = "Alex asked about the ledger store. Architect argued for Postgres; Critic doubted it. Open: sharding."


def _discussion(n: int, size: int = 400) -> list[TranscriptEntry]:
    """The question plus `n` numbered messages of about `size` characters from three authors."""
    authors = ["Architect", "Critic", "Sam"]
    return [QUESTION] + [
        TranscriptEntry(authors[i % 3], f"MSG-{i:03d} " + ("lorem ipsum " * (size // 12)), "agent")
        for i in range(1, n + 1)
    ]


def _fits_window(system: str, entries: list[TranscriptEntry], window: int, max_tokens: int) -> bool:
    return fits(system, entries, window=window, max_tokens=max_tokens) and (
        transcript_tokens(system, entries, max_tokens) <= window
    )


# --- window table ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "model", "window"),
    [
        ("anthropic", "claude-sonnet-4-6", 200_000),
        ("anthropic", "claude-haiku-4-5", 200_000),
        ("openai", "gpt-4.1-mini", 1_047_576),
        ("openai", "gpt-4o", 128_000),
        ("openai", "gpt-4o-mini", 128_000),
        ("openai", "gpt-5.4-mini", 272_000),
        ("openai", "gpt-5", 272_000),
        ("openai", "o3", 200_000),
        ("openai", "o4-mini", 200_000),
        ("openai", "some-new-model", 128_000),
        ("gemini", "gemini-2.5-flash", 1_048_576),
        ("gemini", "models/gemini-2.5-pro", 1_048_576),
        ("offline", "smollm2-135m-instruct", 4_096),
        ("openai_compatible", "llama3.2:3b", 8_192),
        ("scripted", "script-1", DEFAULT_WINDOW),
    ],
)
def test_context_window_table(monkeypatch, provider, model, window):
    monkeypatch.delenv(CONTEXT_TOKENS_ENV, raising=False)
    assert context_window(provider, model) == window


def test_context_window_env_override(monkeypatch):
    monkeypatch.setenv(CONTEXT_TOKENS_ENV, "32000")
    assert context_window("anthropic", "claude-sonnet-4-6") == 32_000
    assert context_window("offline", "smollm2-135m-instruct") == 32_000
    monkeypatch.setenv(CONTEXT_TOKENS_ENV, "10")
    assert context_window("openai", "gpt-4o") == MIN_WINDOW
    monkeypatch.setenv(CONTEXT_TOKENS_ENV, "lots")
    assert context_window("openai", "gpt-4o") == 128_000


# --- estimates, plan, summary pieces -----------------------------------------------------------------


def test_estimate_is_conservative():
    assert estimate_tokens("") == 0
    assert estimate_tokens("a" * 4000) >= 1000  # at least chars / 4 for English
    assert estimate_tokens("中" * 300) == 300  # CJK is about a token a character
    assert transcript_tokens("", [], 300) > 300  # overhead and reply budget are counted


def test_plan_keeps_question_and_recent_entries():
    entries = _discussion(60)
    p = plan(SYSTEM, entries, window=4_096, max_tokens=300)
    assert not p.fits
    assert p.kept_head + p.to_summarise + p.kept_tail == entries
    assert p.kept_head == [QUESTION]
    assert p.kept_tail[-1] == entries[-1] and p.to_summarise[0] == entries[1]
    assert 0 < p.summary_tokens

    small = plan(SYSTEM, _discussion(3), window=4_096, max_tokens=300)
    assert small.fits and small.to_summarise == []


def test_summary_request_and_apply_summary():
    span = _discussion(4)[1:]
    request = summary_request("m", span, max_tokens=300)
    text = request.transcript[0].content
    assert request.model == "m" and request.max_tokens == 300
    assert all(f"[{e.author}]: {e.content}" in text for e in span)
    assert "200 words" in text and "not" in request.system  # a word budget; content, not instructions
    tail = [TranscriptEntry("Sam", "latest")]
    out = apply_summary([QUESTION], "  Short summary.  ", tail)
    assert out == [QUESTION, summary_entry("Short summary."), *tail]
    assert out[1].author_kind == "system" and out[1].content == SUMMARY_PREFIX + "Short summary."


# --- fit_transcript ----------------------------------------------------------------------------------


async def test_fitting_transcript_is_unchanged_and_makes_no_call():
    provider = ScriptedProvider([SUMMARY])
    entries = _discussion(5)
    fitted = await fit_transcript(provider, "m", SYSTEM, entries, window=200_000, max_tokens=300)
    assert provider.calls == 0
    assert fitted.entries == entries and fitted.system == SYSTEM and fitted.max_tokens == 300
    assert fitted.summary is None and fitted.covered == 0 and fitted.dropped == 0


async def test_overflow_makes_one_summary_call_over_the_old_span():
    provider = ScriptedProvider([SUMMARY])
    entries = _discussion(60)
    window = 8_192
    p = plan(SYSTEM, entries, window=window, max_tokens=300)
    fitted = await fit_transcript(provider, "m", SYSTEM, entries, window=window, max_tokens=300)

    assert provider.calls == 1
    request = provider.requests[0]
    excerpt = request.transcript[0].content
    assert all(f"[{e.author}]: {e.content}" in excerpt for e in p.to_summarise)  # attributed by author
    assert not any(e.content in excerpt for e in p.kept_tail)
    assert QUESTION.content not in excerpt
    assert _fits_window(request.system, request.transcript, window, request.max_tokens)

    assert fitted.entries[0] == QUESTION  # verbatim
    assert fitted.entries[1] == summary_entry(SUMMARY)
    assert fitted.entries[2:] == p.kept_tail == entries[-len(p.kept_tail) :]  # latest entries verbatim
    assert fitted.summary == SUMMARY and fitted.covered == len(p.to_summarise) and fitted.dropped == 0
    assert fitted.summary_usage is not None and fitted.summary_usage.output_tokens > 0
    assert fitted.tokens == transcript_tokens(fitted.system, fitted.entries, fitted.max_tokens) <= window
    assert _fits_window(fitted.system, fitted.entries, window, fitted.max_tokens)


async def test_span_larger_than_the_window_is_cut_to_fit_the_summary_call():
    provider = ScriptedProvider([SUMMARY])
    entries = _discussion(120)
    p = plan(SYSTEM, entries, window=4_096, max_tokens=300)
    fitted = await fit_transcript(provider, "m", SYSTEM, entries, window=4_096, max_tokens=300)
    request = provider.requests[0]
    assert _fits_window(request.system, request.transcript, 4_096, request.max_tokens)
    excerpt = request.transcript[0].content
    assert all(f"[{e.author}]: {e.content[:7]}" in excerpt for e in p.to_summarise[-10:])  # the latest part
    assert fitted.summary == SUMMARY and _fits_window(fitted.system, fitted.entries, 4_096, fitted.max_tokens)


async def test_rolling_summary_folds_the_previous_summary_in():
    provider = ScriptedProvider(["New summary."])
    entries = [QUESTION, summary_entry("Old summary: Critic doubted Postgres."), *_discussion(60)[1:]]
    fitted = await fit_transcript(provider, "m", SYSTEM, entries, window=4_096, max_tokens=300)
    assert "Old summary: Critic doubted Postgres." in provider.requests[0].transcript[0].content
    assert fitted.entries[1] == summary_entry("New summary.")


@pytest.mark.parametrize(
    "provider",
    [
        ScriptedProvider(["unused"], fail_with=ProviderError(ErrorKind.SERVER, "boom")),
        ScriptedProvider(["unused"], fail_with=ProviderError(ErrorKind.RATE_LIMITED, "429"), fail_after_tokens=0),
        ScriptedProvider(["slow summary " * 50], token_delay=0.05),  # times out
    ],
    ids=["fails", "fails-mid-stream", "times-out"],
)
async def test_failing_summariser_falls_back_to_truncation(provider):
    entries = _discussion(60)
    window = 4_096
    p = plan(SYSTEM, entries, window=window, max_tokens=300)
    fitted = await fit_transcript(provider, "m", SYSTEM, entries, window=window, max_tokens=300, timeout_s=0.2)
    assert provider.calls == 1
    assert fitted.summary is None and fitted.covered == 0 and fitted.dropped == len(p.to_summarise)
    assert fitted.entries[0] == QUESTION and fitted.entries[-1] == entries[-1]
    assert "earlier messages are left out" in fitted.entries[1].content
    assert _fits_window(fitted.system, fitted.entries, window, fitted.max_tokens)


async def test_summarise_false_truncates_without_a_call():
    provider = ScriptedProvider([SUMMARY])
    fitted = await fit_transcript(provider, "m", SYSTEM, _discussion(60), window=4_096, max_tokens=300, summarise=False)
    assert provider.calls == 0 and fitted.summary is None and fitted.dropped > 0
    assert _fits_window(fitted.system, fitted.entries, 4_096, fitted.max_tokens)


MEGABYTE = "All work and no play makes Jack a dull boy. " * (1_000_000 // 44)


@pytest.mark.parametrize("where", ["latest", "question", "middle", "system"])
async def test_one_enormous_message_is_truncated_within_window(where):
    provider = ScriptedProvider([SUMMARY])
    window = 8_192
    entries, system = _discussion(4, size=200), SYSTEM
    huge = TranscriptEntry("Sam", MEGABYTE, "human")
    if where == "latest":
        entries.append(huge)
    elif where == "question":
        entries[0] = huge
    elif where == "middle":
        entries.insert(2, huge)
    else:
        system = MEGABYTE
    fitted = await fit_transcript(provider, "m", system, entries, window=window, max_tokens=300)

    assert _fits_window(fitted.system, fitted.entries, window, fitted.max_tokens)
    for request in provider.requests:  # the summary call must not overflow either
        assert _fits_window(request.system, request.transcript, window, request.max_tokens)
    if where == "latest":
        assert fitted.entries[-1].content.endswith(TRUNCATED)
        assert fitted.entries[-1].content.startswith(MEGABYTE[:1000])
        assert fitted.entries[0] == entries[0]
    elif where == "question":
        assert fitted.entries[0].content.endswith(TRUNCATED) and fitted.entries[-1] == entries[-1]
    elif where == "middle":
        assert provider.calls == 1 and fitted.summary == SUMMARY
        assert TRUNCATED in provider.requests[0].transcript[0].content
        assert fitted.entries[-1] == entries[-1]
    else:
        assert fitted.system.endswith(TRUNCATED) and fitted.system.startswith(MEGABYTE[:1000])


# --- property: never over the window -----------------------------------------------------------------

_TEXTS = {"ascii": "lorem ipsum dolor ", "latin": "déjà vu naïve ", "cjk": "上下文窗口", "emoji": "🙂🚀 "}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sizes=st.lists(st.integers(0, 8_000), max_size=40),
    authors=st.lists(st.sampled_from(["Alex", "Critic", "A" * 200, ""]), min_size=1, max_size=4),
    alphabet=st.sampled_from(sorted(_TEXTS)),
    system_size=st.integers(0, 30_000),
    window=st.integers(MIN_WINDOW, 40_000),
    max_tokens=st.integers(1, 8_000),
    summary_words=st.integers(1, 3_000),
    fail=st.booleans(),
)
def test_output_never_exceeds_window(sizes, authors, alphabet, system_size, window, max_tokens, summary_words, fail):
    unit = _TEXTS[alphabet]
    text = lambda n: (unit * (n // len(unit) + 1))[:n]  # noqa: E731
    entries = [TranscriptEntry(authors[i % len(authors)], text(n)) for i, n in enumerate(sizes)]
    system = text(system_size)
    provider = ScriptedProvider(
        ["summary " * summary_words], fail_with=ProviderError(ErrorKind.SERVER, "down") if fail else None
    )
    fitted = asyncio.run(fit_transcript(provider, "m", system, entries, window=window, max_tokens=max_tokens))

    assert provider.calls <= 1
    assert 1 <= fitted.max_tokens <= max_tokens
    assert _fits_window(fitted.system, fitted.entries, window, fitted.max_tokens)
    for request in provider.requests:
        assert _fits_window(request.system, request.transcript, window, request.max_tokens)
    if fits(system, entries, window=window, max_tokens=fitted.max_tokens):
        assert fitted.entries == entries and provider.calls == 0
    elif entries:
        last, original = fitted.entries[-1], entries[-1]  # the latest message is never dropped, maybe cut
        assert original.author.startswith(last.author)
        assert original.content.startswith(last.content.removesuffix(TRUNCATED))


async def test_a_structured_call_over_a_long_transcript_is_cut_to_fit_keeping_question_and_instruction(monkeypatch):
    """Ballots, consensus reports and syntheses read the whole discussion: past the window, older turns are left
    out (no summary call), the question and the step's instruction stay, and the model is asked once."""
    from pydantic import BaseModel

    from backend.providers.base import GenerationRequest
    from backend.providers.context_budget import safety_margin, transcript_tokens
    from backend.providers.structured import generate_structured

    class Pick(BaseModel):
        choice: int

    monkeypatch.setenv(CONTEXT_TOKENS_ENV, "2000")
    provider = ScriptedProvider(['{"choice": 1}'])
    question = TranscriptEntry("Alex", "Choose a database for Apollo.", "human")
    turns = [TranscriptEntry(f"Agent {i % 3}", "Postgres has transactions and joins. " * 20) for i in range(60)]
    cue = TranscriptEntry("Moderator", "Vote now: 1. PostgreSQL 2. MongoDB", "system")
    request = GenerationRequest(model="m", system="You vote.", transcript=[question, *turns, cue], max_tokens=200)
    assert transcript_tokens(request.system, request.transcript, 200) > 2000 * 5  # far over the window

    result = await generate_structured(provider, request, Pick)

    assert result.value.choice == 1 and provider.calls == 1
    sent = provider.requests[0]
    assert sent.transcript[0] == question and sent.transcript[-1] == cue
    assert transcript_tokens(sent.system, sent.transcript, sent.max_tokens) + safety_margin(2000) <= 2000


@pytest.mark.parametrize("text", ["", "a", "abcd", "Postgres " * 50, "é", "naïve café ☕", "🙂" * 7])
def test_the_estimate_is_utf8_bytes_over_three_rounded_up(text: str) -> None:
    assert estimate_tokens(text) == -(-len(text.encode("utf-8")) // 3)
