"""Observability: Prometheus metrics for model calls, discussions and viewers, and JSON logs per discussion.

Metrics live on a dedicated `CollectorRegistry` (`REGISTRY`), so they are exactly Maestro's, never the
process/platform collectors of the default registry, and tests can read them with `REGISTRY.get_sample_value`.
`render()` gives the Prometheus text exposition for the `/metrics` route (backend/api/metrics.py).

The engine reports each model call once it has ended (`record_call`), the runner brackets each running
discussion (`discussion_active()`), and every open tab's follower brackets its viewer (`viewer_active()`).
All are cheap (a lock and an add) and safe from any thread or task. Label values are bounded: a provider, model
or error kind this instance does not know (a name a user typed) is counted as "other".

Logging: `configure_logging()` installs one root handler that writes one JSON object per line (time, level,
logger, message, discussion_id when known, exception, plus any `extra=` fields). The discussion id comes from
a context variable set by `discussion_context(id)` or `bind_discussion(id)`: asyncio tasks copy context
variables when they are created, and `asyncio.to_thread` (hence `run_db`) carries them into the worker thread,
so every line logged by an engine task, its child tasks and its database steps names its discussion.

The numbers are per process: with several backend workers each worker counts its own calls, discussions and
viewers, and a scrape sees the worker that answered it.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import functools
import json as _json
import logging
import os
import sys
from collections.abc import Iterator
from contextvars import ContextVar, Token
from typing import Any, Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.exposition import choose_encoder

from backend.providers.base import ErrorKind

__all__ = [
    "REGISTRY",
    "JsonFormatter",
    "bind_discussion",
    "configure_logging",
    "current_discussion",
    "discussion_active",
    "discussion_context",
    "discussion_started",
    "discussion_stopped",
    "model_label",
    "provider_label",
    "record_call",
    "record_memory_lookup",
    "record_memory_reuse",
    "render",
    "serve_metrics",
    "unbind_discussion",
    "viewer_active",
    "viewer_connected",
    "viewer_disconnected",
]

# --- metrics -------------------------------------------------------------------------------------------------

REGISTRY = CollectorRegistry(auto_describe=True)

# LLM calls run from well under a second (a cached short reply) to the 180 s hard deadline.
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 45, 60, 90, 120, 180, float("inf"))
FIRST_TOKEN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 7.5, 10, 15, 20, 30, 60, float("inf"))

MAX_LABEL_CHARS = 100  # a model name is free text for OpenAI-compatible servers; keep label values bounded
# A provider or model a user typed that this instance does not know: counted under one label, so nobody can
# grow the metrics (and every scrape) without bound by inventing names.
OTHER = "other"

MODEL_CALLS = Counter(
    "maestro_model_calls_total",
    "Model calls (agent turns) that ended, by provider, model and outcome.",
    ["provider", "model", "status"],
    registry=REGISTRY,
)
MODEL_ERRORS = Counter(
    "maestro_model_errors_total",
    "Failed model calls by provider and error kind (auth, rate_limited, timeout, server, ...).",
    ["provider", "kind"],
    registry=REGISTRY,
)
MODEL_LATENCY = Histogram(
    "maestro_model_latency_seconds",
    "Wall time of a model call from request to its last token (or its failure), including SDK retries.",
    ["provider"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
TIME_TO_FIRST_TOKEN = Histogram(
    "maestro_time_to_first_token_seconds",
    "Time from request to the first streamed text of a model call (calls that streamed some text).",
    ["provider"],
    buckets=FIRST_TOKEN_BUCKETS,
    registry=REGISTRY,
)
TOKENS = Counter(
    "maestro_tokens_total",
    "Tokens by provider and direction: input (the whole prompt, cached part included), output, "
    "and cached (the part of input served from the vendor's prompt cache).",
    ["provider", "direction"],
    registry=REGISTRY,
)
COST = Counter(
    "maestro_cost_usd_total",
    "Estimated spend in US dollars from the price table, by provider.",
    ["provider"],
    registry=REGISTRY,
)
ACTIVE_DISCUSSIONS = Gauge(
    "maestro_active_discussions",
    "Discussions whose engine is running in this process.",
    registry=REGISTRY,
)
CONNECTED_VIEWERS = Gauge(
    "maestro_connected_viewers",
    "Open room tabs following a discussion in this process.",
    registry=REGISTRY,
)
MEMORY_LOOKUPS = Counter(
    "maestro_memory_lookups_total",
    "Memory lookups by result: hit (a remembered result matched), miss.",
    ["result"],
    registry=REGISTRY,
)
MEMORY_REFUSED = Counter(
    "maestro_memory_near_misses_refused_total",
    "Remembered questions close enough to match that the guard refused (a number, date, negation or name differs).",
    registry=REGISTRY,
)
MEMORY_REUSES = Counter(
    "maestro_memory_reuses_total",
    "Discussions answered from memory instead of running the agents.",
    registry=REGISTRY,
)
MEMORY_SAVED_TOKENS = Counter(
    "maestro_memory_saved_tokens_total",
    "Tokens the reused results had cost to reach.",
    registry=REGISTRY,
)
MEMORY_SAVED_COST = Counter(
    "maestro_memory_saved_usd_total",
    "Estimated dollars the reused results had cost to reach.",
    registry=REGISTRY,
)

CallStatus = Literal["ok", "failed"]


def _label(value: str | None, default: str = "unknown") -> str:
    text = (value or "").strip()
    return text[:MAX_LABEL_CHARS] if text else default


def provider_label(provider: str | None) -> str:
    """The provider as a label: a built-in vendor or one plugged in by code (tests, benchmarks), else "other"."""
    from backend.providers import registry

    name = (provider or "").strip()
    if not name:
        return "unknown"
    return name[:MAX_LABEL_CHARS] if name in registry.PROVIDERS or registry.is_registered(name) else OTHER


def model_label(provider: str | None, model: str | None) -> str:
    """The model as a label: one the price table knows for its provider (snapshot date dropped when only the alias
    is listed), the bundled offline model, or any model of a provider plugged in by code; else "other".

    An OpenAI-compatible server's models are free text, so they count as "other" until the operator prices them
    in MAESTRO_PRICE_TABLE (backend/providers/pricing.py)."""
    from backend.providers import pricing, registry
    from backend.providers.offline import OFFLINE_MODEL_ID

    name, vendor = (model or "").strip(), (provider or "").strip()
    if not name:
        return "unknown"
    if provider_label(vendor) == OTHER:
        return OTHER
    if registry.is_registered(vendor):
        return name[:MAX_LABEL_CHARS]
    if vendor == "offline" and name == OFFLINE_MODEL_ID:
        return name
    table = pricing.price_table()
    for candidate in (name, pricing.canonical_model(name)):
        if f"{vendor}/{candidate}" in table and candidate != pricing.WILDCARD:
            return candidate[:MAX_LABEL_CHARS]
    return OTHER


_ERROR_KINDS = frozenset({kind.value for kind in ErrorKind} | {"unknown"})


def _kind_label(kind: str | None) -> str:
    label = _label(kind)
    return label if label in _ERROR_KINDS else OTHER


def _nonneg(value: float | int | None) -> float:
    return max(0.0, float(value or 0))


def record_call(
    provider: str,
    model: str,
    *,
    status: CallStatus,
    error_kind: str | None = None,
    latency_s: float,
    first_token_s: float | None = None,
    input_tokens: int = 0,
    output_tokens: int = 0,
    cached_tokens: int = 0,
    cost_usd: float = 0.0,
) -> None:
    """Count one model call that has ended, successfully or not.

    `latency_s` is the whole call; `first_token_s` the wait for its first streamed text (None when no text
    came). Token counts follow `Usage`: `input_tokens` includes `cached_tokens`. A failed call counts under
    `maestro_model_errors_total{kind=error_kind}` ("unknown" when no kind is given) as well. Providers, models
    and error kinds this instance does not know are labelled "other" (`provider_label`, `model_label`). Negative
    numbers count as 0. Raises ValueError only for a `status` other than "ok" or "failed".
    """
    if status not in ("ok", "failed"):
        raise ValueError(f"status must be 'ok' or 'failed', not {status!r}")
    p = provider_label(provider)
    _child(MODEL_CALLS, p, model_label(provider, model), status).inc()
    if status == "failed":
        _child(MODEL_ERRORS, p, _kind_label(error_kind)).inc()
    _child(MODEL_LATENCY, p).observe(_nonneg(latency_s))
    if first_token_s is not None:
        _child(TIME_TO_FIRST_TOKEN, p).observe(_nonneg(first_token_s))
    for direction, count in (("input", input_tokens), ("output", output_tokens), ("cached", cached_tokens)):
        _child(TOKENS, p, direction).inc(_nonneg(count))
    _child(COST, p).inc(_nonneg(cost_usd))


@functools.lru_cache(maxsize=4096)
def _child(metric, *values: str):
    """`metric.labels(*values)`, remembered: every message counts a call, and `labels` takes a lock each time."""
    return metric.labels(*values)


def discussion_started() -> None:
    """One more discussion engine runs here (pair with `discussion_stopped`, or use `discussion_active`)."""
    ACTIVE_DISCUSSIONS.inc()


def discussion_stopped() -> None:
    """A discussion engine here finished, paused, crashed or was cancelled."""
    ACTIVE_DISCUSSIONS.dec()


@contextlib.contextmanager
def discussion_active() -> Iterator[None]:
    """Count a running discussion for the duration of the block, however it ends (works in async code too)."""
    discussion_started()
    try:
        yield
    finally:
        discussion_stopped()


def viewer_connected() -> None:
    """One more tab follows a discussion here (pair with `viewer_disconnected`, or use `viewer_active`)."""
    CONNECTED_VIEWERS.inc()


def viewer_disconnected() -> None:
    """A tab stopped following (closed, reloaded, navigated away)."""
    CONNECTED_VIEWERS.dec()


@contextlib.contextmanager
def viewer_active() -> Iterator[None]:
    """Count a connected viewer for the duration of the block, however it ends."""
    viewer_connected()
    try:
        yield
    finally:
        viewer_disconnected()


def record_memory_lookup(*, hit: bool, refused: int) -> None:
    MEMORY_LOOKUPS.labels("hit" if hit else "miss").inc()
    if refused:
        MEMORY_REFUSED.inc(refused)


def record_memory_reuse(*, tokens: int, cost_usd: float) -> None:
    MEMORY_REUSES.inc()
    MEMORY_SAVED_TOKENS.inc(_nonneg(tokens))
    MEMORY_SAVED_COST.inc(_nonneg(cost_usd))


def render(accept: str | None = None) -> tuple[bytes, str]:
    """The metrics as (body, content type): Prometheus text format, or OpenMetrics when `accept` asks for it."""
    encoder, content_type = choose_encoder(accept or "")
    return encoder(REGISTRY), content_type


def serve_metrics(port: int, addr: str = "127.0.0.1") -> None:
    """Serve GET /metrics from a daemon thread: for a process without the Reflex backend (backend/worker.py)."""
    start_http_server(port, addr=addr, registry=REGISTRY)


# --- logging -------------------------------------------------------------------------------------------------

_discussion_id: ContextVar[int | None] = ContextVar("maestro_discussion_id", default=None)


def current_discussion() -> int | None:
    """The discussion id bound in the current context, if any."""
    return _discussion_id.get()


def bind_discussion(discussion_id: int | None) -> Token:
    """Tag every log line from here on in this context (this task, and tasks/threads it starts) with the id.

    Inside an asyncio task the binding stays in that task. Returns a token for `unbind_discussion`.
    """
    return _discussion_id.set(discussion_id)


def unbind_discussion(token: Token) -> None:
    """Undo a `bind_discussion`."""
    _discussion_id.reset(token)


@contextlib.contextmanager
def discussion_context(discussion_id: int | None) -> Iterator[None]:
    """Tag every log line emitted inside the block (and in tasks created inside it) with the discussion id."""
    token = _discussion_id.set(discussion_id)
    try:
        yield
    finally:
        _discussion_id.reset(token)


# Attributes every LogRecord has; anything else on a record came from `extra=` and is emitted as a field.
_STANDARD_ATTRS = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


class DiscussionFilter(logging.Filter):
    """Puts the bound discussion id on each record (unless `extra=` already gave one). Never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "discussion_id", None) is None:
            record.discussion_id = _discussion_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": _dt.datetime.fromtimestamp(record.created, _dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        discussion_id = getattr(record, "discussion_id", None)
        if discussion_id is None:
            discussion_id = _discussion_id.get()
        if discussion_id is not None:
            out["discussion_id"] = discussion_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and key not in out and key != "discussion_id":
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return _json.dumps(out, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """The classic one-line format, with `[discussion N]` when a discussion is bound."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s%(where)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        discussion_id = getattr(record, "discussion_id", None)
        if discussion_id is None:
            discussion_id = _discussion_id.get()
        record.where = f" [discussion {discussion_id}]" if discussion_id is not None else ""
        return super().format(record)


# Libraries that log a line per request or per migration step at INFO: kept at WARNING unless set otherwise.
QUIET_LOGGERS = ("httpx", "httpx2", "httpcore", "alembic.runtime.plugins")


def configure_logging(json: bool | None = None, level: int | str | None = None) -> logging.Handler:
    """Send every log record to stderr, one JSON object per line (or classic text with `json=False`).

    `json` defaults to MAESTRO_LOG_FORMAT (json | text; json when unset); `level` to MAESTRO_LOG_LEVEL (INFO).
    Idempotent: calling it again replaces the handler it installed before. Returns the handler.
    """
    if json is None:
        json = os.environ.get("MAESTRO_LOG_FORMAT", "json").strip().lower() != "text"
    if level is None:
        level = os.environ.get("MAESTRO_LOG_LEVEL", "INFO").strip().upper() or "INFO"
    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, "_maestro", False):
            root.removeHandler(existing)
    handler = logging.StreamHandler(sys.stderr)
    handler._maestro = True  # type: ignore[attr-defined]
    handler.addFilter(DiscussionFilter())
    handler.setFormatter(JsonFormatter() if json else TextFormatter())
    root.addHandler(handler)
    root.setLevel(level)
    for name in QUIET_LOGGERS:
        quiet = logging.getLogger(name)
        if quiet.level == logging.NOTSET:
            quiet.setLevel(logging.WARNING)
    return handler
