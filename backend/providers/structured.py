"""Structured output: ask a model for JSON that fits a pydantic model, and never hand back garbage.

Consensus reports, ballots and decision cards are data the room acts on, so a model's reply is parsed and validated
before anyone sees it. Vendors' JSON modes make valid output likely, not certain (a reply can be cut off at the
token limit, wrapped in a code fence, or come from a server that ignores the schema), so a failure goes through
three steps, cheapest first:

1. a deterministic repair of the text (code fences and prose around the object, trailing commas, a Python-style
   dict with single quotes), which costs nothing and needs no second call;
2. one more call (by default) with the validation error appended to the transcript as a correction cue;
3. a `StructuredOutputError` with the raw text and a readable message, so the room shows a clear error instead
   of crashing or showing an empty panel.

A `ProviderError` from the call itself (auth, rate limit, timeout...) is not a malformed reply: it propagates
unchanged, and the SDKs' own retries have already been spent on it (DESIGN decision 6: no second retry layer).
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar

import pydantic

from backend.config import get_settings
from backend.providers.base import (
    Completion,
    ErrorKind,
    GenerationRequest,
    ModelProvider,
    ProviderError,
    TokenDelta,
    TranscriptEntry,
    Usage,
)
from backend.providers.call_clock import CallClock
from backend.providers.context_budget import fit_request

M = TypeVar("M", bound=pydantic.BaseModel)

CORRECTION_AUTHOR = "Maestro"
_MAX_ERRORS_SHOWN = 3
_MAX_INPUT_SHOWN = 60


class StructuredOutputError(Exception):
    """The model's reply could not be turned into the expected data, even after repair and a retry.

    `raw` is the last reply's text (for the log, never for display as data); `problems` holds one readable
    summary per attempt; `attempts` is how many calls were made; `usage` and `latency_ms` what they cost (the
    calls were billed even though their output is unusable).
    """

    def __init__(
        self,
        message: str,
        *,
        raw: str,
        problems: list[str],
        attempts: int,
        usage: Usage | None = None,
        latency_ms: int = 0,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.raw = raw
        self.problems = problems
        self.attempts = attempts
        self.usage = usage or Usage()
        self.latency_ms = latency_ms

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True, slots=True)
class StructuredResult(Generic[M]):
    """A validated reply and what it took to get it."""

    value: M
    raw: str  # the text the value was parsed from (after repair)
    usage: Usage  # summed over every attempt: all of them are billed
    latency_ms: int  # wall time over every attempt
    attempts: int  # model calls made: 1, or 2 after a retry
    repaired: bool  # the text needed the deterministic repair
    model: str = ""
    finish_reason: str = "stop"


@dataclass(frozen=True, slots=True)
class ParseOutcome(Generic[M]):
    """What one reply gave: the value, or the problem to report or to cue the retry with."""

    value: M | None
    text: str
    repaired: bool
    problem: str = ""


async def generate_structured(
    provider: ModelProvider,
    request: GenerationRequest,
    model_cls: type[M],
    *,
    retries: int = 1,
    context: dict[str, Any] | None = None,
    label: str = "model",
) -> StructuredResult[M]:
    """Stream one call and return its reply parsed into `model_cls`.

    The request carries `model_cls.model_json_schema()` unless it already has a `json_schema` (a caller may send a
    narrower schema, e.g. with the participants' names as an enum). `context` is passed to pydantic validation.
    `label` names the caller in the error message ("The consensus detector returned malformed output twice").
    Raises `StructuredOutputError` after `retries` extra calls, and lets `ProviderError` through unchanged.
    """
    if request.json_schema is None:
        request = replace(request, json_schema=model_cls.model_json_schema())
    request = await fit_request(provider, request)  # a long discussion must not overflow the model's window
    started = time.perf_counter()
    usage = Usage()
    problems: list[str] = []
    raw = ""
    for attempt in range(1, max(0, retries) + 2):
        completion = await _complete(provider, request)
        usage = _add_usage(usage, completion.usage)
        raw = completion.text
        parsed = parse_structured(raw, model_cls, context=context)
        if parsed.value is not None:
            return StructuredResult(
                value=parsed.value,
                raw=parsed.text,
                usage=usage,
                latency_ms=round((time.perf_counter() - started) * 1000),
                attempts=attempt,
                repaired=parsed.repaired,
                model=completion.model or request.model,
                finish_reason=completion.finish_reason,
            )
        problem = parsed.problem
        if completion.finish_reason == "length":
            problem = f"the reply was cut off at the {request.max_tokens}-token limit ({problem})"
        problems.append(problem)
        request = replace(request, transcript=[*request.transcript, correction_cue(problem)])
    times = {1: "once", 2: "twice"}.get(len(problems), f"{len(problems)} times")
    message = f"The {label} returned malformed output {times}: {problems[-1]}"
    raise StructuredOutputError(
        message,
        raw=raw,
        problems=problems,
        attempts=len(problems),
        usage=usage,
        latency_ms=round((time.perf_counter() - started) * 1000),
    )


def spent_on(exc: BaseException) -> tuple[Usage | None, int]:
    """What a failed structured call cost (usage, latency ms), for the caller to record; nothing for other
    failures (a provider error before any usable reply)."""
    if isinstance(exc, StructuredOutputError):
        return exc.usage, exc.latency_ms
    return None, 0


def correction_cue(problem: str) -> TranscriptEntry:
    """The note appended to the transcript before a retry: what was wrong and what to send instead."""
    return TranscriptEntry(
        author=CORRECTION_AUTHOR,
        author_kind="system",
        content=(
            f"(Your previous answer could not be used: {problem}. Answer again with one JSON object that follows "
            "the schema exactly, with every text short, and nothing before or after it.)"
        ),
    )


async def _complete(provider: ModelProvider, request: GenerationRequest) -> Completion:
    """Drain one stream; the caller only needs the finished text. The agents' hard deadline applies here too: a
    stalled ballot or report must not hold the room for ever."""
    completion: Completion | None = None
    stream = provider.stream(request)
    closing = contextlib.aclosing(stream) if hasattr(stream, "aclose") else contextlib.nullcontext(stream)
    clock = CallClock(get_settings().hard_deadline_s)  # stands still while the call waits for a shared model
    try:
        async with closing, clock:
            async for item in stream:
                if isinstance(item, TokenDelta):
                    continue
                completion = item
    except TimeoutError:
        raise ProviderError(
            ErrorKind.TIMEOUT,
            clock.timeout_message(),
            provider=getattr(provider, "name", ""),
        ) from None
    if completion is None:  # every provider ends with a Completion or raises; guard the contract anyway
        raise ProviderError(
            ErrorKind.CONNECTION, "The reply ended without finishing.", provider=getattr(provider, "name", "")
        )
    return completion


def _add_usage(a: Usage, b: Usage) -> Usage:
    return Usage(
        input_tokens=a.input_tokens + b.input_tokens,
        output_tokens=a.output_tokens + b.output_tokens,
        cached_tokens=a.cached_tokens + b.cached_tokens,
        estimated=a.estimated or b.estimated,
    )


# -- parsing and repair ------------------------------------------------------------------------------------------


def parse_structured(text: str, model_cls: type[M], *, context: dict[str, Any] | None = None) -> ParseOutcome[M]:
    """Validate `text` as `model_cls`, trying the deterministic repair when it is not valid JSON as it stands.

    A reply that is valid JSON but breaks the schema is not "repaired": guessing at missing data is the model's
    job, so that goes to the retry with the validation error as the cue.
    """
    try:
        return ParseOutcome(model_cls.model_validate_json(text, context=context), text, repaired=False)
    except pydantic.ValidationError as exc:
        if not _is_json_error(exc):
            return ParseOutcome(None, text, repaired=False, problem=summarize_validation_error(exc))
        first_problem = summarize_validation_error(exc)
    candidate = repair_json(text)
    if candidate is None:
        problem = "no JSON object found in the reply" if "{" not in text else first_problem
        return ParseOutcome(None, text, repaired=False, problem=problem)
    try:
        return ParseOutcome(model_cls.model_validate_json(candidate, context=context), candidate, repaired=True)
    except pydantic.ValidationError as exc:
        return ParseOutcome(None, text, repaired=False, problem=summarize_validation_error(exc))


def _is_json_error(exc: pydantic.ValidationError) -> bool:
    return any(error["type"] == "json_invalid" for error in exc.errors())


def summarize_validation_error(exc: pydantic.ValidationError) -> str:
    """A one-line, human-readable digest of a pydantic error: where and what, for the first few problems."""
    errors = exc.errors(include_url=False)
    parts: list[str] = []
    for error in errors[:_MAX_ERRORS_SHOWN]:
        if error["type"] == "json_invalid":
            parts.append(f"not valid JSON ({error.get('ctx', {}).get('error', error['msg'])})")
            continue
        where = ".".join(str(p) for p in error["loc"]) or "the object"
        message = error["msg"]
        if error["type"] in ("model_type", "model_attributes_type", "dict_type", "list_type", "string_type"):
            got = repr(error.get("input"))
            if len(got) > _MAX_INPUT_SHOWN:
                got = got[: _MAX_INPUT_SHOWN - 1] + "…"
            message = f"{message}, got {got}"
        parts.append(f"{where}: {message}")
    if len(errors) > _MAX_ERRORS_SHOWN:
        parts.append(f"and {len(errors) - _MAX_ERRORS_SHOWN} more")
    return "; ".join(parts)


_FENCE = re.compile(r"```[ \t]*(?:json|JSON|javascript|js)?[ \t]*\r?\n?(.*?)```", re.DOTALL)
_PY_LITERALS = {"True": "true", "False": "false", "None": "null"}
_PY_WORD = re.compile(r"(?:True|False|None)\b")


def repair_json(text: str) -> str | None:
    """The first JSON object in `text`, made parseable by deterministic fixes; None when none can be found.

    Fixes, in order: take the content of a Markdown code fence; cut the first balanced {...} that parses out of any
    prose around it; drop trailing commas before } and ]; escape raw line breaks and tabs inside strings; and, only
    when that still does not parse, read it as a
    Python-style dict (single-quoted strings, True/False/None), keeping the change only if it then parses. A reply
    cut off mid-object is not completed: inventing its end would invent data.
    """
    fenced = _FENCE.search(text)
    body = fenced.group(1) if fenced and "{" in fenced.group(1) else text
    first: str | None = None
    for block in _objects(body):
        candidate = _drop_trailing_commas(block)
        if _parses(candidate):
            return candidate
        unescaped = _escape_control_characters(candidate)
        if unescaped is not None:
            return unescaped
        pythonic = _python_dict_to_json(block)
        if pythonic is not None:
            pythonic = _drop_trailing_commas(pythonic)
            if _parses(pythonic):
                return pythonic
        first = first or candidate
    return first  # still invalid: validation reports where


def _escape_control_characters(text: str) -> str | None:
    """`text` with raw newlines and tabs inside its strings escaped, when that is all that keeps it from parsing.

    Small models write a line break inside a JSON string even under a grammar (the offline model does, now and
    then, in a ballot's reason); JSON forbids it, but the meaning is unambiguous.
    """
    try:
        return json.dumps(json.loads(text, strict=False), ensure_ascii=False)
    except ValueError:
        return None


def _parses(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _objects(text: str) -> Iterator[str]:
    """Every top-level balanced {...} block, in order, skipping braces inside strings (either quote style)."""
    start = text.find("{")
    while start != -1:
        depth = 0
        quote: str | None = None
        escaped = False
        end = -1
        for i in range(start, len(text)):
            ch = text[i]
            if quote:
                if escaped:
                    escaped = False
                elif ch == "\\":
                    escaped = True
                elif ch == quote:
                    quote = None
            elif ch == '"' or (ch == "'" and _prev_significant(text, i) in "{[:,"):
                # An apostrophe is a quote only where a Python dict would open a key or value with it.
                quote = ch
            elif ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    end = i
                    break
        if end == -1:
            return  # unbalanced from here on: nothing complete left
        yield text[start : end + 1]
        start = text.find("{", end + 1)


def _prev_significant(text: str, i: int) -> str:
    j = i - 1
    while j >= 0 and text[j].isspace():
        j -= 1
    return text[j] if j >= 0 else ""


def _drop_trailing_commas(text: str) -> str:
    """Remove commas that directly precede } or ] outside strings."""
    out: list[str] = []
    in_string = escaped = False
    for i, ch in enumerate(text):
        if in_string:
            out.append(ch)
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
            continue
        if ch == '"':
            in_string = True
        elif ch == ",":
            rest = text[i + 1 :].lstrip()
            if rest[:1] in ("}", "]"):
                continue
        out.append(ch)
    return "".join(out)


def _python_dict_to_json(text: str) -> str | None:
    """Rewrite a Python-style dict literal as JSON; None when it does not look like one.

    Only strings opened by a single quote in a key or value position are converted (their inner double quotes
    escaped), so an apostrophe inside a double-quoted string is never touched.
    """
    out: list[str] = []
    quote: str | None = None
    escaped = False
    changed = False
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            if escaped:
                escaped = False
                out.append(ch)
            elif ch == "\\" and quote == "'" and text[i + 1 : i + 2] == "'":
                out.append("'")  # \' needs no escape inside a double-quoted string
                i += 1
            elif ch == "\\":
                escaped = True
                out.append(ch)
            elif ch == quote:
                quote = None
                out.append('"')
            elif ch == '"' and quote == "'":
                out.append('\\"')
            else:
                out.append(ch)
            i += 1
            continue
        if ch == '"':
            quote = '"'
            out.append(ch)
        elif ch == "'" and _prev_significant(text, i) in "{[:,":
            quote = "'"
            changed = True
            out.append('"')
        else:
            word = _PY_WORD.match(text, i)
            if word and _prev_significant(text, i) in "{[:,":
                out.append(_PY_LITERALS[word.group(0)])
                i += len(word.group(0))
                changed = True
                continue
            out.append(ch)
        i += 1
    if quote is not None or not changed:
        return None
    return "".join(out)
