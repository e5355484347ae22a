"""Price table: cost arithmetic, aliases, free providers and the MAESTRO_PRICE_TABLE override."""

from __future__ import annotations

import json
import os
import typing
from pathlib import Path

import pytest

from backend.providers import pricing
from backend.providers.base import Usage
from backend.providers.pricing import (
    DEFAULT_PRICES,
    PRICE_TABLE_ENV,
    Price,
    canonical_model,
    cost_usd,
    is_known_model,
    known_models,
    price_for,
)


@pytest.fixture(autouse=True)
def _no_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PRICE_TABLE_ENV, raising=False)


def _write(path: Path, data: object) -> str:
    path.write_text(json.dumps(data) if not isinstance(data, str) else data, encoding="utf-8")
    return str(path)


def test_cost_splits_cached_and_uncached_input() -> None:
    price = price_for("openai", "gpt-4o-mini")
    assert price == Price(0.15, 0.60, 0.075)
    usage = Usage(input_tokens=1_000_000, cached_tokens=200_000, output_tokens=500_000)
    expected = 800_000 * 0.15 / 1e6 + 200_000 * 0.075 / 1e6 + 500_000 * 0.60 / 1e6
    assert cost_usd("openai", "gpt-4o-mini", usage) == pytest.approx(expected)


def test_cached_tokens_never_exceed_input() -> None:
    usage = Usage(input_tokens=100, cached_tokens=500, output_tokens=0)
    assert cost_usd("anthropic", "claude-haiku-4-5", usage) == pytest.approx(100 * 0.10 / 1e6)


def test_zero_usage_costs_nothing() -> None:
    assert cost_usd("anthropic", "claude-opus-4-6", Usage()) == 0.0


@pytest.mark.parametrize(
    ("provider", "dated", "alias"),
    [
        ("anthropic", "claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("anthropic", "claude-haiku-4-5-20251001", "claude-haiku-4-5"),
        ("openai", "gpt-4.1-mini-2025-04-14", "gpt-4.1-mini"),
        ("openai", "gpt-5.4-nano-2026-03-17", "gpt-5.4-nano"),
    ],
)
def test_snapshot_dates_share_the_alias_price(provider: str, dated: str, alias: str) -> None:
    assert canonical_model(dated) == alias
    assert price_for(provider, dated) == price_for(provider, alias)
    assert is_known_model(provider, dated)


def test_local_providers_are_free() -> None:
    usage = Usage(input_tokens=10_000, output_tokens=5_000)
    assert cost_usd("offline", "smollm2-135m-instruct", usage) == 0.0
    assert cost_usd("openai_compatible", "llama3.1:8b", usage) == 0.0


def test_unknown_model_costs_zero_without_raising() -> None:
    assert price_for("openai", "gpt-nonexistent") is None
    assert cost_usd("openai", "gpt-nonexistent", Usage(input_tokens=10, output_tokens=10)) == 0.0


def test_known_models_lists_real_ids_only() -> None:
    anthropic = known_models("anthropic")
    assert "claude-haiku-4-5" in anthropic and "claude-sonnet-4-6" in anthropic
    assert all("*" not in m for m in anthropic)
    assert "gpt-4o" in known_models("openai")
    assert "gemini-2.5-flash" in known_models("gemini")
    assert known_models("offline") == []
    assert known_models("nope") == []


def test_defaults_are_sane() -> None:
    for key, price in DEFAULT_PRICES.items():
        assert key.count("/") == 1, key
        assert 0 <= price.cached_input <= price.input <= price.output or price.output == 0, key


def _sdk_literals(annotation: object) -> set[str]:
    found: set[str] = set()
    for arg in typing.get_args(annotation):
        if isinstance(arg, str):
            found.add(arg)
        else:
            found |= _sdk_literals(arg)
    return found


def test_default_ids_exist_in_the_installed_sdks() -> None:
    """Guards against typos: every priced Anthropic/OpenAI id is one the vendor SDK knows."""
    from anthropic.types.model_param import ModelParam
    from openai.types.shared.chat_model import ChatModel

    sdk = {"anthropic": _sdk_literals(ModelParam), "openai": _sdk_literals(ChatModel)}
    for provider, ids in sdk.items():
        missing = [m for m in known_models(provider) if m not in ids]
        assert not missing, f"{provider}: {missing}"


def test_override_file_adds_and_patches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(
        tmp_path / "prices.json",
        {
            "openai/gpt-9-test": {"input": 1, "output": 2},
            "openai/gpt-4o": {"output": 99},
            "openai_compatible/*": {"input": 0.5, "output": 1.5, "cached_input": 0.1},
            "anthropic/claude-new-2030-01-01": {"input": 3, "output": 4, "cached_input": 0.3},
        },
    )
    monkeypatch.setenv(PRICE_TABLE_ENV, path)
    assert price_for("openai", "gpt-9-test") == Price(1, 2, 1)  # cached defaults to the input rate
    assert price_for("openai", "gpt-4o") == Price(2.5, 99, 1.25)  # only output patched
    assert price_for("openai_compatible", "anything") == Price(0.5, 1.5, 0.1)
    assert is_known_model("anthropic", "claude-new")  # stored under its undated alias
    assert "gpt-9-test" in known_models("openai")
    assert cost_usd("openai", "gpt-9-test", Usage(input_tokens=1_000_000, output_tokens=1_000_000)) == 3.0


def test_bad_entries_are_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(
        tmp_path / "prices.json",
        {
            "no-slash": {"input": 1, "output": 1},
            "openai/negative": {"input": -1, "output": 1},
            "openai/text": {"input": "cheap", "output": 1},
            "openai/half": {"input": 1},
            "openai/not-a-dict": 5,
            "openai/good": {"input": 1, "output": 1},
        },
    )
    monkeypatch.setenv(PRICE_TABLE_ENV, path)
    assert known_models("openai")[-1] == "good"
    for model in ("negative", "text", "half", "not-a-dict"):
        assert price_for("openai", model) is None


@pytest.mark.parametrize("content", ["{not json", "[1, 2]"])
def test_malformed_file_falls_back_to_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str) -> None:
    monkeypatch.setenv(PRICE_TABLE_ENV, _write(tmp_path / "prices.json", content))
    assert price_for("openai", "gpt-4o") == DEFAULT_PRICES["openai/gpt-4o"]


def test_missing_file_falls_back_to_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PRICE_TABLE_ENV, str(tmp_path / "absent.json"))
    assert price_for("gemini", "gemini-2.5-flash") == DEFAULT_PRICES["gemini/gemini-2.5-flash"]


def test_edited_file_is_reloaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "prices.json"
    monkeypatch.setenv(PRICE_TABLE_ENV, _write(target, {"openai/gpt-x": {"input": 1, "output": 1}}))
    assert price_for("openai", "gpt-x") == Price(1, 1, 1)
    _write(target, {"openai/gpt-x": {"input": 2, "output": 2}})
    stat = target.stat()
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert price_for("openai", "gpt-x") == Price(2, 2, 2)
    monkeypatch.delenv(PRICE_TABLE_ENV)
    assert price_for("openai", "gpt-x") is None
    assert pricing.price_table() == DEFAULT_PRICES
