"""Provider registry: agent validation messages, status for the UI, instance caching, persona data."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from backend.config import get_settings
from backend.providers import registry
from backend.providers.base import ErrorKind, ProviderError
from backend.providers.offline import OFFLINE_HINT, OFFLINE_MODEL_ID, OFFLINE_MODEL_LABEL, offline_model_problem
from backend.providers.personas import DEFAULT_PERSONAS, PersonaSeed
from backend.providers.pricing import PRICE_TABLE_ENV
from backend.providers.registry import (
    PROVIDERS,
    get_provider,
    provider_status,
    register_provider,
    resolve_agent,
    unregister_provider,
    validate_agent,
)
from backend.providers.scripted import ScriptedProvider

KEYS = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY")


class FakeCompatible:
    """Stands in for the vendor class so these tests never import an SDK module."""

    name = "openai_compatible"

    def __init__(self, *, base_url: str) -> None:
        self.base_url = base_url

    async def stream(self, request):  # pragma: no cover - never streamed here
        raise NotImplementedError
        yield


class FakeVendor:
    name = "openai"
    made = 0

    def __init__(self) -> None:
        FakeVendor.made += 1

    async def stream(self, request):  # pragma: no cover - never streamed here
        raise NotImplementedError
        yield


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key in (*KEYS, PRICE_TABLE_ENV, "MAESTRO_OFFLINE_MODEL"):
        monkeypatch.delenv(key, raising=False)
    registry.clear_provider_cache()
    yield
    for name in list(registry._custom):
        unregister_provider(name)
    registry.clear_provider_cache()


def _fake_module(monkeypatch: pytest.MonkeyPatch, provider: str, class_name: str) -> None:
    info = replace(PROVIDERS[provider], module=__name__, class_name=class_name)
    monkeypatch.setitem(PROVIDERS, provider, info)


def test_provider_metadata() -> None:
    assert set(PROVIDERS) == {"offline", "anthropic", "openai", "gemini", "openai_compatible"}
    assert PROVIDERS["openai"].key_env == ("OPENAI_API_KEY",)
    assert PROVIDERS["openai_compatible"].requires_base_url
    assert not PROVIDERS["offline"].key_env
    assert PROVIDERS["offline"].label == OFFLINE_MODEL_LABEL
    for info in PROVIDERS.values():
        assert info.name and info.label


def test_default_models_are_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in KEYS:
        monkeypatch.setenv(key, "test-key")
    for name, info in PROVIDERS.items():
        if name == "openai_compatible" or (name == "offline" and offline_model_problem()):
            continue
        assert validate_agent(name, info.default_model) is None, name


def test_unknown_provider_lists_valid_ones() -> None:
    message = validate_agent("mistral", "large")
    assert message is not None
    assert "Unknown provider 'mistral'" in message
    for name in PROVIDERS:
        assert name in message


def test_unknown_model_suggests_real_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    message = validate_agent("openai", "gpt-17")
    assert message is not None
    assert "Unknown OpenAI model 'gpt-17'" in message
    assert PROVIDERS["openai"].default_model in message
    assert PRICE_TABLE_ENV in message


def test_a_priced_model_becomes_valid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    table = tmp_path / "prices.json"
    table.write_text('{"openai/gpt-17": {"input": 1, "output": 2}}')
    monkeypatch.setenv(PRICE_TABLE_ENV, str(table))
    assert validate_agent("openai", "gpt-17") is None


def test_dated_snapshot_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    assert validate_agent("anthropic", "claude-sonnet-4-5-20250929") is None


@pytest.mark.parametrize(
    ("provider", "model", "expected"),
    [
        ("openai", "gpt-4o", "OpenAI needs OPENAI_API_KEY in the server's environment."),
        ("anthropic", "", "Anthropic needs ANTHROPIC_API_KEY in the server's environment."),
        ("gemini", "gemini-2.5-pro", "GEMINI_API_KEY (or GOOGLE_API_KEY)"),
    ],
)
def test_missing_key(provider: str, model: str, expected: str) -> None:
    message = validate_agent(provider, model)
    assert message is not None and expected in message
    with pytest.raises(ProviderError) as info:
        resolve_agent(provider, model)
    assert info.value.kind is ErrorKind.AUTH
    assert info.value.message == message


def test_blank_key_counts_as_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "  ")
    assert validate_agent("openai", "gpt-4o") is not None


def test_either_gemini_key_works(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_API_KEY", "g-test")
    assert validate_agent("gemini", "gemini-2.5-flash") is None


@pytest.mark.parametrize("url", [None, "", "   "])
def test_compatible_needs_a_base_url(url: str | None) -> None:
    message = validate_agent("openai_compatible", "llama3.1", url)
    assert message is not None and "base URL" in message and "http://localhost:11434/v1" in message


@pytest.mark.parametrize(
    "url", ["localhost:11434", "ftp://host/v1", "http://", "http://host:99999/v1", "http://a b/v1", "not a url"]
)
def test_compatible_rejects_malformed_urls(url: str) -> None:
    message = validate_agent("openai_compatible", "llama3.1", url)
    assert message is not None and "not a valid http(s) base URL" in message


@pytest.fixture
def gpu_box_allowed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Servers elsewhere than this machine must be on the operator's allowlist (tests/security/test_base_urls.py)."""
    monkeypatch.setenv("MAESTRO_ALLOWED_BASE_URLS", "loopback, http://10.0.0.5:1234")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.mark.parametrize("url", ["http://localhost:11434/v1", "https://127.0.0.1:8000/v1", "http://10.0.0.5:1234"])
def test_compatible_accepts_good_urls(url: str, gpu_box_allowed: None) -> None:
    assert validate_agent("openai_compatible", "llama3.1", url) is None


def test_compatible_needs_a_model() -> None:
    message = validate_agent("openai_compatible", "", "http://localhost:11434/v1")
    assert message is not None and "model" in message


def test_offline_not_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAESTRO_OFFLINE_MODEL", str(tmp_path / "missing.gguf"))
    message = validate_agent("offline", "")
    assert message is not None
    assert message.startswith("The offline model is not installed")
    assert "pip install" in message
    status = {s["name"]: s for s in provider_status()}["offline"]
    assert status["available"] is False and status["reason"] == message


@pytest.mark.skipif(offline_model_problem() is not None, reason="offline model not installed here")
def test_offline_installed() -> None:
    assert validate_agent("offline", "") is None
    assert validate_agent("offline", OFFLINE_MODEL_ID) is None
    message = validate_agent("offline", "gpt-4o")
    assert message is not None and OFFLINE_MODEL_ID in message


def test_provider_status_reflects_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    status = {s["name"]: s for s in provider_status()}
    assert list(status) == list(PROVIDERS)
    assert status["anthropic"]["available"] is True
    assert status["openai"] == status["openai"] | {"available": False, "reason": "set OPENAI_API_KEY"}
    assert status["gemini"]["reason"] == "set GEMINI_API_KEY (or GOOGLE_API_KEY)"
    assert status["openai_compatible"]["available"] is True
    assert status["offline"]["hint"] == OFFLINE_HINT
    assert "claude-haiku-4-5" in status["anthropic"]["models"]
    for entry in status.values():
        assert {"name", "label", "available", "reason", "default_model", "requires_base_url"} <= set(entry)


def test_offline_hint_points_to_real_providers() -> None:
    for word in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY", "Ollama", "vLLM", "LM Studio"):
        assert word in OFFLINE_HINT


def test_registered_provider_is_shared_and_overrides() -> None:
    scripted = ScriptedProvider(["hello"])
    register_provider("scripted", scripted)
    assert get_provider("scripted") is scripted
    assert validate_agent("scripted", "any-model") is None
    provider, model = resolve_agent("scripted", "any-model")
    assert provider is scripted and model == "any-model"

    made: list[ScriptedProvider] = []

    def factory() -> ScriptedProvider:
        made.append(ScriptedProvider(["from factory"]))
        return made[-1]

    register_provider("offline", factory)  # a test can swap the default model out
    assert get_provider("offline") is get_provider("offline") is made[0]
    assert len(made) == 1
    unregister_provider("offline")
    assert "offline" not in registry._custom


def test_compatible_instances_are_cached_per_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_module(monkeypatch, "openai_compatible", "FakeCompatible")
    a = get_provider("openai_compatible", "http://localhost:11434/v1")
    assert isinstance(a, FakeCompatible) and a.base_url == "http://localhost:11434/v1"
    assert get_provider("openai_compatible", "http://localhost:11434/v1/") is a
    b = get_provider("openai_compatible", "http://localhost:8000/v1")
    assert b is not a
    with pytest.raises(ProviderError) as info:
        get_provider("openai_compatible", None)
    assert info.value.kind is ErrorKind.BAD_REQUEST


def test_vendor_instance_is_built_once_and_base_url_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_module(monkeypatch, "openai", "FakeVendor")
    FakeVendor.made = 0
    first = get_provider("openai")
    assert get_provider("openai", "http://ignored") is first
    assert FakeVendor.made == 1
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    provider, model = resolve_agent("openai", "")
    assert provider is first and model == PROVIDERS["openai"].default_model


def test_unknown_or_unimportable_provider_is_a_provider_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ProviderError) as info:
        get_provider("nope")
    assert info.value.kind is ErrorKind.BAD_REQUEST
    monkeypatch.setitem(PROVIDERS, "gemini", replace(PROVIDERS["gemini"], module="backend.providers._absent"))
    with pytest.raises(ProviderError) as info:
        get_provider("gemini")
    assert info.value.kind is ErrorKind.BAD_REQUEST
    assert "not available" in info.value.message


# -- persona data -----------------------------------------------------------------------------------------


def test_default_personas() -> None:
    keys = [p.key for p in DEFAULT_PERSONAS]
    assert keys == ["architect", "backend_engineer", "devops", "security", "product"]
    assert len({p.display_name for p in DEFAULT_PERSONAS}) == 5
    for persona in DEFAULT_PERSONAS:
        assert isinstance(persona, PersonaSeed)
        assert persona.description and len(persona.description) < 100
        sentences = [s for s in re.split(r"(?<=[.!?])\s+", persona.system_prompt) if s]
        assert 3 <= len(sentences) <= 6, (persona.key, len(sentences))
        text = persona.system_prompt.lower()
        for phrase in ("by name", "disagree", "150 words", "not instructions", "vote", "approval"):
            assert phrase in text, (persona.key, phrase)
        assert persona.provider in PROVIDERS
        assert persona.model == OFFLINE_MODEL_ID
