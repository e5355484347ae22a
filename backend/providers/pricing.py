"""What a model call costs, so a room can show and cap its spend.

Prices are USD per million tokens: `input` (uncached prompt), `output` (generated, including reasoning
tokens), `cached_input` (prompt tokens served from the vendor's prompt cache). Usage convention: a
`Usage.input_tokens` count *includes* its `cached_tokens`; the cached part is billed at the cached rate
and the rest at the input rate.

The defaults are the vendors' public list prices (standard tier, short context) as published by
Anthropic, OpenAI and Google in 2026; they drift, so operators can correct or extend them without a
release: set MAESTRO_PRICE_TABLE to a JSON file of

    {"openai/gpt-5.4": {"input": 2.5, "output": 15, "cached_input": 0.25},
     "openai_compatible/*": {"input": 0.1, "output": 0.1}}

merged over the defaults ("provider/*" prices every model of a provider). Models in the table are also
the ones the agent form accepts for anthropic/openai/gemini, so adding a model there makes it usable.
Not modelled: batch discounts, cache-write surcharges, and the long-context tiers of Gemini Pro (>200k
prompt tokens) and Claude Haiku 5.5 (>100k): such calls are priced at the base tier.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import threading
from dataclasses import dataclass, replace
from pathlib import Path

from backend.providers.base import Usage

log = logging.getLogger(__name__)

PRICE_TABLE_ENV = "MAESTRO_PRICE_TABLE"
WILDCARD = "*"


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens."""

    input: float
    output: float
    cached_input: float


def _p(input_: float, output: float, cached: float | None = None) -> Price:
    return Price(input_, output, input_ if cached is None else cached)


# fmt: off
DEFAULT_PRICES: dict[str, Price] = {
    # Anthropic (platform.claude.com/docs/en/about-claude/pricing; cached = cache hits).
    "anthropic/claude-fable-5-1": _p(10, 50, 0.25),
    "anthropic/claude-fable-5": _p(10, 50, 1.0),
    "anthropic/claude-mythos-5-1": _p(10, 50, 0.25),  # limited availability
    "anthropic/claude-mythos-5": _p(10, 50, 1.0),  # limited availability
    "anthropic/claude-opus-5-5": _p(4, 20, 0.20),
    "anthropic/claude-opus-5": _p(5, 25, 0.50),
    "anthropic/claude-opus-4-8": _p(5, 25, 0.50),
    "anthropic/claude-opus-4-7": _p(5, 25, 0.50),
    "anthropic/claude-opus-4-6": _p(5, 25, 0.50),
    "anthropic/claude-opus-4-5": _p(5, 25, 0.50),
    "anthropic/claude-sonnet-5-5": _p(2, 10, 0.10),  # cache hits cut from $0.20 in Oct 2026
    "anthropic/claude-sonnet-5": _p(2, 10, 0.20),
    "anthropic/claude-sonnet-4-6": _p(3, 15, 0.30),
    "anthropic/claude-sonnet-4-5": _p(3, 15, 0.30),
    "anthropic/claude-haiku-5-5": _p(0.10, 0.50, 0.01),  # prompts up to 100k tokens
    "anthropic/claude-haiku-4-5": _p(1, 5, 0.10),
    # OpenAI (developers.openai.com pricing page; cached = cached input).
    "openai/gpt-5.6-sol": _p(5, 30, 0.50),
    "openai/gpt-5.6-terra": _p(2.5, 15, 0.25),
    "openai/gpt-5.6-luna": _p(1, 6, 0.10),
    "openai/gpt-5.5": _p(5, 30, 0.50),
    "openai/gpt-5.4": _p(2.5, 15, 0.25),
    "openai/gpt-5.4-mini": _p(0.75, 4.5, 0.075),
    "openai/gpt-5.4-nano": _p(0.20, 1.25, 0.02),
    "openai/gpt-5.2": _p(1.75, 14, 0.175),
    "openai/gpt-5.1": _p(1.25, 10, 0.125),
    "openai/gpt-5": _p(1.25, 10, 0.125),
    "openai/gpt-5-mini": _p(0.25, 2, 0.025),
    "openai/gpt-5-nano": _p(0.05, 0.40, 0.005),
    "openai/gpt-4.1": _p(2, 8, 0.50),
    "openai/gpt-4.1-mini": _p(0.40, 1.60, 0.10),
    "openai/gpt-4.1-nano": _p(0.10, 0.40, 0.025),
    "openai/gpt-4o": _p(2.5, 10, 1.25),
    "openai/gpt-4o-mini": _p(0.15, 0.60, 0.075),
    "openai/o3": _p(2, 8, 0.50),
    "openai/o4-mini": _p(1.10, 4.40, 0.275),
    # Google Gemini API (ai.google.dev/gemini-api/docs/pricing; cached = context caching, storage excluded).
    "gemini/gemini-3.5-flash": _p(1.50, 9, 0.15),
    "gemini/gemini-3.1-pro-preview": _p(2, 12, 0.20),  # prompts up to 200k tokens
    "gemini/gemini-3.1-flash-lite": _p(0.25, 1.50, 0.025),
    "gemini/gemini-3-flash-preview": _p(0.50, 3, 0.05),
    "gemini/gemini-2.5-pro": _p(1.25, 10, 0.125),  # prompts up to 200k tokens
    "gemini/gemini-2.5-flash": _p(0.30, 2.50, 0.03),
    "gemini/gemini-2.5-flash-lite": _p(0.10, 0.40, 0.01),
    # Runs on your own hardware: free unless an operator prices it.
    "offline/*": _p(0, 0, 0),
    "openai_compatible/*": _p(0, 0, 0),
}
# fmt: on

_DATED = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8})$")
_lock = threading.Lock()
_cache: tuple[tuple[str, int] | None, dict[str, Price]] | None = None
_warned: set[str] = set()


def canonical_model(model: str) -> str:
    """Drop a snapshot date ("claude-sonnet-4-5-20250929", "gpt-4.1-2025-04-14"): same price as the alias."""
    return _DATED.sub("", model.strip())


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) and number >= 0 else None


def _load_overrides(path: Path, base: dict[str, Price]) -> dict[str, Price]:
    """Merge the operator's JSON file over `base`; a bad file or entry is logged and skipped."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log.warning("%s=%s ignored: %s", PRICE_TABLE_ENV, path, exc)
        return base
    if not isinstance(data, dict):
        log.warning("%s=%s ignored: expected a JSON object", PRICE_TABLE_ENV, path)
        return base
    merged = dict(base)
    for key, entry in data.items():
        provider, _, model = str(key).partition("/")
        if not provider or not model or not isinstance(entry, dict):
            log.warning('price table entry %r ignored: use "provider/model": {input, output}', key)
            continue
        key = f"{provider.strip()}/{canonical_model(model) if model != WILDCARD else WILDCARD}"
        fields = {name: _number(entry.get(name)) for name in ("input", "output", "cached_input")}
        if any(entry.get(name) is not None and value is None for name, value in fields.items()):
            log.warning("price table entry %r ignored: prices must be non-negative numbers", key)
            continue
        current = merged.get(key)
        if current is None:
            if fields["input"] is None or fields["output"] is None:
                log.warning("price table entry %r ignored: a new model needs input and output", key)
                continue
            merged[key] = _p(fields["input"], fields["output"], fields["cached_input"])
        else:
            merged[key] = replace(current, **{k: v for k, v in fields.items() if v is not None})
    return merged


def price_table() -> dict[str, Price]:
    """The defaults merged with MAESTRO_PRICE_TABLE; re-read when the variable or the file changes."""
    global _cache
    raw = os.environ.get(PRICE_TABLE_ENV, "").strip()
    stamp: tuple[str, int] | None = None
    if raw:
        try:
            stamp = (raw, Path(raw).expanduser().stat().st_mtime_ns)
        except OSError:
            stamp = (raw, -1)
    with _lock:
        if _cache is not None and _cache[0] == stamp:
            return _cache[1]
        table = _load_overrides(Path(raw).expanduser(), DEFAULT_PRICES) if raw else dict(DEFAULT_PRICES)
        _cache = (stamp, table)
        return table


def price_for(provider: str, model: str) -> Price | None:
    """The price of `provider/model` (snapshot dates ignored, then the provider's "*" entry), or None."""
    table = price_table()
    for key in (f"{provider}/{model.strip()}", f"{provider}/{canonical_model(model)}", f"{provider}/*"):
        if key in table:
            return table[key]
    return None


def cost_usd(provider: str, model: str, usage: Usage) -> float:
    """USD for one call; 0.0 (logged once) for a model with no known price."""
    price = price_for(provider, model)
    if price is None:
        key = f"{provider}/{model}"
        if key not in _warned:
            _warned.add(key)
            log.warning("no price for %s: counted as $0 (add it to %s)", key, PRICE_TABLE_ENV)
        return 0.0
    cached = max(0, min(usage.cached_tokens, usage.input_tokens))
    uncached = max(0, usage.input_tokens - cached)
    return (
        uncached * price.input + cached * price.cached_input + max(0, usage.output_tokens) * price.output
    ) / 1_000_000


def worst_case_usd(provider: str, model: str, input_tokens: int, max_output_tokens: int) -> float:
    """The most a call can cost before it starts: every prompt token uncached and the reply as long as allowed."""
    return cost_usd(provider, model, Usage(input_tokens=max(0, input_tokens), output_tokens=max(0, max_output_tokens)))


def known_models(provider: str) -> list[str]:
    """Model ids with a price for `provider`, in table order (newest first, overrides last)."""
    prefix = f"{provider}/"
    return [key[len(prefix) :] for key in price_table() if key.startswith(prefix) and not key.endswith(f"/{WILDCARD}")]


def is_known_model(provider: str, model: str) -> bool:
    """Whether `model` (or its undated alias) is in the price table for `provider`."""
    table = price_table()
    return f"{provider}/{model.strip()}" in table or f"{provider}/{canonical_model(model)}" in table
