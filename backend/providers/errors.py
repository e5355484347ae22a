"""Turn SDK and HTTP failures into `ProviderError`s whose messages a non-engineer can act on.

Every cloud provider funnels its exceptions through `from_exception`, so the same failure reads the same way
whichever vendor caused it. The SDKs' exception classes are looked up in `sys.modules` instead of imported:
an SDK's exception can only exist once that SDK is loaded, and importing all three here would cost seconds
to anyone who only needs these helpers.
"""

from __future__ import annotations

import email.utils
import json
import math
import re
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from backend.providers.base import ErrorKind, ProviderError

_DETAIL_LIMIT = 160

# Error "type"/"code" strings that arrive without a useful HTTP status (an error event inside a 200 stream),
# translated to the status they stand for.
_STATUS_BY_ERROR_TYPE = {
    "authentication_error": 401,
    "invalid_api_key": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "model_not_found": 404,
    "rate_limit_error": 429,
    "rate_limit_exceeded": 429,
    "insufficient_quota": 429,
    "invalid_request_error": 400,
    "request_too_large": 413,
    "overloaded_error": 529,
    "api_error": 500,
    "server_error": 500,
    "timeout_error": 504,
}

# Gemini answers 400 INVALID_ARGUMENT for a wrong key; ErrorInfo.reason is how to tell it from a bad request.
_KEY_REJECTED_REASONS = {"API_KEY_INVALID", "API_KEY_EXPIRED", "API_KEY_SERVICE_BLOCKED"}


@dataclass(frozen=True, slots=True)
class Vendor:
    """Who a provider talks to, as it should appear in error messages."""

    name: str  # ProviderError.provider, e.g. "anthropic"
    label: str  # shown to people, e.g. "Anthropic"
    key_envs: tuple[str, ...] = ()  # where the API key comes from, first one preferred

    @property
    def title(self) -> str:
        """The label at the start of a sentence."""
        return self.label[:1].upper() + self.label[1:]

    @property
    def key_hint(self) -> str:
        return f"Check {self.key_envs[0]}." if self.key_envs else "Check its API key setting."


def missing_key(vendor: Vendor) -> ProviderError:
    """No key configured: said before any network call, so the room can tell the user what to set."""
    where = " (or ".join(vendor.key_envs) + (")" if len(vendor.key_envs) > 1 else "")
    return ProviderError(
        ErrorKind.AUTH,
        f"No {vendor.label} API key: set {where} in the environment.",
        provider=vendor.name,
    )


def stream_cut(vendor: Vendor) -> ProviderError:
    """The reply stopped before the vendor said it was finished."""
    return ProviderError(
        ErrorKind.CONNECTION,
        f"The connection to {vendor.label} dropped before the reply was complete.",
        provider=vendor.name,
    )


def empty_reply(vendor: Vendor, finish_reason: str = "stop") -> ProviderError:
    """A normal finish with no text at all: there is nothing to show, so it counts as a failure."""
    message = "The model returned an empty reply."
    if finish_reason == "length":
        message = "The model returned an empty reply (it used its whole token budget before writing)."
    return ProviderError(ErrorKind.EMPTY, message, provider=vendor.name)


def content_filtered(vendor: Vendor, detail: str | None = None) -> ProviderError:
    """The vendor's safety system refused or stopped the reply."""
    message = f"{vendor.title} declined to answer (safety filter)."
    if detail:
        message = f"{message[:-1]}: {_short(detail)}"
    return ProviderError(ErrorKind.CONTENT_FILTERED, message, provider=vendor.name)


def from_status(
    vendor: Vendor,
    status: int,
    *,
    detail: str | None = None,
    retry_after: float | None = None,
    model: str | None = None,
    error_code: str | None = None,
) -> ProviderError:
    """Map an HTTP error status (after the SDK gave up retrying) to a kind and a readable message."""
    label = vendor.title

    def error(kind: ErrorKind, message: str) -> ProviderError:
        return ProviderError(kind, message, provider=vendor.name, status=status, retry_after=retry_after)

    if status == 401 or error_code in _KEY_REJECTED_REASONS:
        return error(ErrorKind.AUTH, f"{label} rejected the API key ({status}). {vendor.key_hint}")
    if status == 403:
        return error(
            ErrorKind.AUTH,
            f"{label} refused access ({status}): the key may not be allowed to use this model. {vendor.key_hint}",
        )
    if status == 429:
        if error_code == "insufficient_quota":
            return error(ErrorKind.RATE_LIMITED, f"{label} says the account is out of credit (429).")
        if retry_after and retry_after > 60:
            return error(
                ErrorKind.RATE_LIMITED,
                f"{label} is rate-limiting requests and asked to wait {math.ceil(retry_after)} s, longer than the "
                "60 s Maestro waits (429). Try again later or use another model.",
            )
        wait = f"in {math.ceil(retry_after)} s" if retry_after else "shortly"
        return error(ErrorKind.RATE_LIMITED, f"{label} is rate-limiting requests (429). Try again {wait}.")
    if status == 408:
        return error(ErrorKind.TIMEOUT, f"{label} took too long to answer ({status}).")
    if status >= 500:
        if status in (503, 529) or error_code == "overloaded_error":
            return error(ErrorKind.SERVER, f"{label} is overloaded ({status}). Try again shortly.")
        return error(ErrorKind.SERVER, f"{label} had a server error ({status}). Try again shortly.")
    if status == 404:
        what = f"the model '{model}'" if model else "what was asked for"
        return error(ErrorKind.BAD_REQUEST, f"{label} does not know {what} (404). Check the model name.")
    suffix = f": {_short(detail)}" if detail else "."
    return error(ErrorKind.BAD_REQUEST, f"{label} rejected the request ({status}){suffix}")


def from_transport(vendor: Vendor, exc: BaseException | None) -> ProviderError:
    """Map a network-level failure (httpx/httpx2 or OS error) to timeout or connection."""
    if isinstance(exc, (*_classes("TimeoutException"), TimeoutError)):
        return ProviderError(ErrorKind.TIMEOUT, f"{vendor.title} did not answer in time.", provider=vendor.name)
    if isinstance(exc, (*_classes("ConnectError", "ConnectTimeout"), ConnectionRefusedError)):
        return ProviderError(
            ErrorKind.CONNECTION,
            f"Could not reach {vendor.label}. Check the network connection or the base URL.",
            provider=vendor.name,
        )
    return stream_cut(vendor)


def from_exception(vendor: Vendor, exc: BaseException, *, model: str | None = None) -> ProviderError | None:
    """Translate any failure from an SDK call into a `ProviderError`.

    Returns None for exceptions that are not a vendor or network failure (bugs), so callers re-raise those.
    """
    if isinstance(exc, ProviderError):
        return exc
    for sdk in ("anthropic", "openai"):
        mapped = _from_stainless(vendor, exc, sdk, model)
        if mapped is not None:
            return mapped
    genai_errors = sys.modules.get("google.genai.errors")
    if genai_errors is not None and isinstance(exc, genai_errors.APIError):
        return _from_genai(vendor, exc, model)
    if isinstance(exc, (*_classes("TransportError"), OSError, TimeoutError)):
        return from_transport(vendor, exc)
    if isinstance(exc, _unreadable_classes()):
        return _unreadable(vendor)
    return None


def retry_after_seconds(headers: Mapping[str, str] | None) -> float | None:
    """Read `retry-after-ms` / `retry-after` (seconds or HTTP date) the way the SDKs do."""
    if not headers:
        return None
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) / scale
        except ValueError:
            parsed = email.utils.parsedate_tz(value)
            if parsed is None:
                continue
            seconds = email.utils.mktime_tz(parsed) - time.time()
        if math.isfinite(seconds) and seconds > 0:
            return seconds
    return None


def _from_stainless(vendor: Vendor, exc: BaseException, sdk: str, model: str | None) -> ProviderError | None:
    """Anthropic's and OpenAI's SDKs share one generated exception hierarchy."""
    module = sys.modules.get(sdk)
    if module is None or not isinstance(exc, module.APIError):
        return None
    if isinstance(exc, module.APITimeoutError):
        return from_transport(vendor, TimeoutError())
    if isinstance(exc, module.APIConnectionError):
        cause = exc.__cause__
        return from_transport(vendor, cause) if cause is not None else stream_cut(vendor)
    if isinstance(exc, module.APIResponseValidationError):
        return _unreadable(vendor)
    body = exc.body
    error = _error_object(body)
    error_type = _first_str(error, "type")
    error_code = _first_str(error, "code") or error_type
    status = getattr(exc, "status_code", None)
    if not isinstance(status, int) or status < 400:
        # An error event inside a 200 stream: its type says what happened.
        status = _STATUS_BY_ERROR_TYPE.get(error_code or "", _STATUS_BY_ERROR_TYPE.get(error_type or "", 500))
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    return from_status(
        vendor,
        status,
        detail=_first_str(error, "message") or (body if isinstance(body, str) else None),
        retry_after=retry_after_seconds(headers),
        model=model,
        error_code=error_code,
    )


def _from_genai(vendor: Vendor, exc: Any, model: str | None) -> ProviderError:
    """google-genai raises one APIError with the HTTP code and Google's error JSON."""
    error = _error_object(exc.details)
    reason = None
    retry_after = None  # Google puts its advice in a RetryInfo detail rather than a header
    for item in error.get("details") or ():
        if not isinstance(item, dict):
            continue
        reason = reason or item.get("reason")
        delay = item.get("retryDelay")
        if isinstance(delay, str) and (match := re.fullmatch(r"(\d+(?:\.\d+)?)s", delay.strip())):
            retry_after = float(match.group(1))
    response = getattr(exc, "response", None)
    retry_after = retry_after_seconds(getattr(response, "headers", None)) or retry_after
    code = exc.code if isinstance(exc.code, int) else 500
    return from_status(vendor, code, detail=exc.message, retry_after=retry_after, model=model, error_code=reason)


def _unreadable(vendor: Vendor) -> ProviderError:
    return ProviderError(ErrorKind.SERVER, f"{vendor.title} sent a reply that could not be read.", provider=vendor.name)


def _error_object(body: object) -> dict[str, Any]:
    """The `{"type", "code", "message"}` object of an error body, wherever the vendor nests it."""
    if not isinstance(body, dict):
        return {}
    inner = body.get("error")
    return inner if isinstance(inner, dict) else body


def _first_str(mapping: dict[str, Any], key: str) -> str | None:
    value = mapping.get(key)
    return value if isinstance(value, str) and value else None


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _DETAIL_LIMIT else text[: _DETAIL_LIMIT - 1].rstrip() + "…"


def _classes(*names: str) -> tuple[type[BaseException], ...]:
    """The named exception classes from httpx and httpx2 (the SDKs use httpx2; others may use httpx)."""
    found: list[type[BaseException]] = []
    for module_name in ("httpx2", "httpx"):
        module = sys.modules.get(module_name)
        found.extend(getattr(module, name) for name in names if module is not None and hasattr(module, name))
    return tuple(found)


def _unreadable_classes() -> tuple[type[BaseException], ...]:
    found: list[type[BaseException]] = [json.JSONDecodeError]
    pydantic_core = sys.modules.get("pydantic_core")
    if pydantic_core is not None:
        found.append(pydantic_core.ValidationError)
    genai_errors = sys.modules.get("google.genai.errors")
    if genai_errors is not None:
        found.append(genai_errors.UnknownApiResponseError)
    return tuple(found)
