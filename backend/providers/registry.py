"""Which vendor and model an agent runs on, whether that can work here, and the provider instances.

The room stores an agent as (provider, model, base_url). This module turns that into a `ModelProvider`,
explains in plain words why it cannot run (no key, unknown model, a bad base URL or one the operator does not
allow, see `egress`, offline model missing) before a discussion starts, and reports per-vendor availability for
the settings UI. Vendor modules are imported only when first used, so a broken or absent SDK affects only the
agents that need it.
"""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from backend.providers import egress
from backend.providers.base import ErrorKind, ModelProvider, ProviderError
from backend.providers.offline import (
    OFFLINE_HINT,
    OFFLINE_MODEL_ID,
    OFFLINE_MODEL_LABEL,
    offline_model_problem,
)
from backend.providers.pricing import PRICE_TABLE_ENV, is_known_model, known_models


@dataclass(frozen=True, slots=True)
class ProviderInfo:
    """Static facts about one vendor integration."""

    name: str
    label: str
    key_env: tuple[str, ...]  # any one of them set is enough; empty = no key needed
    default_model: str
    requires_base_url: bool
    module: str
    class_name: str
    checks_model: bool  # model must be in the price table (the vendor's catalogue is known)


PROVIDERS: dict[str, ProviderInfo] = {
    "offline": ProviderInfo(
        name="offline",
        label=OFFLINE_MODEL_LABEL,
        key_env=(),
        default_model=OFFLINE_MODEL_ID,
        requires_base_url=False,
        module="backend.providers.offline",
        class_name="OfflineProvider",
        checks_model=False,
    ),
    "anthropic": ProviderInfo(
        name="anthropic",
        label="Anthropic",
        key_env=("ANTHROPIC_API_KEY",),
        default_model="claude-sonnet-4-6",
        requires_base_url=False,
        module="backend.providers.anthropic_provider",
        class_name="AnthropicProvider",
        checks_model=True,
    ),
    "openai": ProviderInfo(
        name="openai",
        label="OpenAI",
        key_env=("OPENAI_API_KEY",),
        default_model="gpt-5.4-mini",
        requires_base_url=False,
        module="backend.providers.openai_provider",
        class_name="OpenAIProvider",
        checks_model=True,
    ),
    "gemini": ProviderInfo(
        name="gemini",
        label="Google Gemini",
        key_env=("GEMINI_API_KEY", "GOOGLE_API_KEY"),
        default_model="gemini-2.5-flash",
        requires_base_url=False,
        module="backend.providers.gemini_provider",
        class_name="GeminiProvider",
        checks_model=True,
    ),
    "openai_compatible": ProviderInfo(
        name="openai_compatible",
        label="OpenAI-compatible server (Ollama, vLLM, llama.cpp, LM Studio)",
        key_env=(),
        default_model="",
        requires_base_url=True,
        module="backend.providers.openai_provider",
        class_name="OpenAICompatibleProvider",
        checks_model=False,
    ),
}

BASE_URL_EXAMPLE = "http://localhost:11434/v1"
ProviderFactory = Callable[[], ModelProvider]

_lock = threading.Lock()
_instances: dict[tuple[str, str | None], ModelProvider] = {}
_custom: dict[str, ProviderFactory | ModelProvider] = {}


def _has_key(info: ProviderInfo) -> bool:
    return not info.key_env or any(os.environ.get(name, "").strip() for name in info.key_env)


def _key_names(info: ProviderInfo) -> str:
    first, *rest = info.key_env
    return f"{first} (or {', '.join(rest)})" if rest else first


def _check_base_url(base_url: str | None) -> str | None:
    """A user-facing complaint about `base_url`, or None when it is a usable http(s) URL the operator lets the
    server call (see `egress`: this resolves the host, so it may block on DNS)."""
    url = (base_url or "").strip()
    if not url:
        return f"An OpenAI-compatible agent needs the server's base URL, e.g. {BASE_URL_EXAMPLE} (Ollama)."
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname or any(ch.isspace() for ch in url):
        return f"'{egress.display_url(url)}' is not a valid http(s) base URL; use something like {BASE_URL_EXAMPLE}."
    return egress.refusal(url)


def _problem(provider: str, model: str, base_url: str | None) -> tuple[ErrorKind, str] | None:
    if provider in _custom:
        return None
    info = PROVIDERS.get(provider)
    if info is None:
        valid = ", ".join(PROVIDERS)
        return ErrorKind.BAD_REQUEST, f"Unknown provider '{provider}'. Choose one of: {valid}."
    model = model.strip()
    if provider == "offline":
        problem = offline_model_problem()
        if problem:
            return ErrorKind.BAD_REQUEST, problem
        if model and model != OFFLINE_MODEL_ID:
            return ErrorKind.BAD_REQUEST, f"The offline provider only runs '{OFFLINE_MODEL_ID}'."
        return None
    if provider == "openai_compatible":
        if not model:
            return ErrorKind.BAD_REQUEST, (
                "Name the model the OpenAI-compatible server should run (e.g. 'llama3.1' for Ollama)."
            )
        url_problem = _check_base_url(base_url)
        return (ErrorKind.BAD_REQUEST, url_problem) if url_problem else None
    if info.checks_model and model and not is_known_model(provider, model):
        choices = [info.default_model] + [m for m in known_models(provider) if m != info.default_model]
        return ErrorKind.BAD_REQUEST, (
            f"Unknown {info.label} model '{model}'. Try one of: {', '.join(choices[:5])}. "
            f"To use another model, add it to the JSON price table named by {PRICE_TABLE_ENV}."
        )
    if not _has_key(info):
        return ErrorKind.AUTH, f"{info.label} needs {_key_names(info)} in the server's environment."
    return None


def validate_agent(
    provider: str, model: str, base_url: str | None = None, *, allow_missing_key: bool = False
) -> str | None:
    """Why an agent with these settings cannot run here (one user-facing sentence or two), or None.

    An empty model means "the provider's default" except for openai_compatible, which has none. With
    `allow_missing_key`, settings that are right but wait for a key in the environment pass (a persona may name a
    provider before its key is set)."""
    problem = _problem(provider, model or "", base_url)
    if problem and allow_missing_key and problem[0] == ErrorKind.AUTH:
        return None
    return problem[1] if problem else None


def provider_status() -> list[dict[str, Any]]:
    """Availability of each built-in provider, for the settings UI."""
    out: list[dict[str, Any]] = []
    for info in PROVIDERS.values():
        hint = ""
        if info.name == "offline":
            problem = offline_model_problem()
            available, reason, hint = problem is None, problem or "ready, no key needed", OFFLINE_HINT
        elif info.requires_base_url:
            allowed = egress.describe_allowlist()
            available, reason = True, f"set a base URL on the agent, e.g. {BASE_URL_EXAMPLE}; allowed: {allowed}"
        elif _has_key(info):
            available, reason = True, "ready"
        else:
            available, reason = False, f"set {_key_names(info)}"
        out.append(
            {
                "name": info.name,
                "label": info.label,
                "available": available,
                "reason": reason,
                "hint": hint,
                "key_env": list(info.key_env),
                "default_model": info.default_model,
                "requires_base_url": info.requires_base_url,
                "models": known_models(info.name) if info.checks_model else [],
            }
        )
    return out


def default_model(provider: str) -> str:
    """The model an agent of `provider` uses when none is given ("" when there is no sensible default)."""
    info = PROVIDERS.get(provider)
    return info.default_model if info else ""


def _build(provider: str, base_url: str | None) -> ModelProvider:
    custom = _custom.get(provider)
    if custom is not None:
        return custom if isinstance(custom, ModelProvider) else custom()
    info = PROVIDERS.get(provider)
    if info is None:
        raise ProviderError(
            ErrorKind.BAD_REQUEST,
            f"Unknown provider '{provider}'. Choose one of: {', '.join(PROVIDERS)}.",
            provider=provider,
        )
    if info.requires_base_url:
        url_problem = _check_base_url(base_url)
        if url_problem:
            raise ProviderError(ErrorKind.BAD_REQUEST, url_problem, provider=provider)
    try:
        cls = getattr(importlib.import_module(info.module), info.class_name)
    except (ImportError, AttributeError) as exc:
        raise ProviderError(
            ErrorKind.BAD_REQUEST,
            f"The {info.label} provider is not available on this server ({exc}).",
            provider=provider,
        ) from exc
    return cls(base_url=(base_url or "").strip()) if info.requires_base_url else cls()


def get_provider(provider: str, base_url: str | None = None) -> ModelProvider:
    """The shared provider instance for (provider, base_url), created on first use.

    `base_url` only matters for providers that need one; registered providers take precedence over the
    built-ins of the same name. Raises `ProviderError(BAD_REQUEST)` for an unknown or unusable provider.
    """
    needs_url = provider not in _custom and provider in PROVIDERS and PROVIDERS[provider].requires_base_url
    key = (provider, (base_url or "").strip().rstrip("/") if needs_url else None)
    with _lock:
        instance = _instances.get(key)
        if instance is None:
            instance = _instances[key] = _build(provider, base_url)
        return instance


def resolve_agent(provider: str, model: str, base_url: str | None = None) -> tuple[ModelProvider, str]:
    """Check an agent's settings and return its provider plus the model to request.

    Raises `ProviderError` (AUTH for a missing key, BAD_REQUEST otherwise) with the same message that
    `validate_agent` returns.
    """
    problem = _problem(provider, model or "", base_url)
    if problem:
        raise ProviderError(problem[0], problem[1], provider=provider)
    return get_provider(provider, base_url), (model or "").strip() or default_model(provider)


def register_provider(name: str, factory: ProviderFactory | ModelProvider) -> None:
    """Plug a provider in under `name` (tests, benchmarks): an instance or a no-argument factory.

    It replaces any built-in of the same name and accepts every model and base URL.
    """
    with _lock:
        _custom[name] = factory
        for key in [k for k in _instances if k[0] == name]:
            del _instances[key]


def is_registered(name: str) -> bool:
    """Whether `name` is served by a provider plugged in with `register_provider` (in-process, no vendor)."""
    with _lock:
        return name in _custom


def unregister_provider(name: str) -> None:
    """Undo `register_provider` (the built-in of that name, if any, is used again)."""
    with _lock:
        _custom.pop(name, None)
        for key in [k for k in _instances if k[0] == name]:
            del _instances[key]


def clear_provider_cache() -> None:
    """Forget the cached instances, e.g. after API keys changed."""
    with _lock:
        _instances.clear()
