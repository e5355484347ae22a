"""The preflight checklist that gates "Run Agents".

`run_preflight` looks at a discussion and answers, item by item, whether it is ready to run: a topic, at least
two agents, every provider the agents use reachable with a valid key, a budget (a warning only), and, when a vote
ends the discussion, a person who votes and the must-approve person who signs the decision off. Every failing item says in one sentence how to fix it.

Reachability is a real but cheap call per distinct (provider, base URL): list one page of models. A missing
key, a malformed setting or a base URL the operator does not allow (see `providers.egress`) is reported without
calling the server, and a redirect is reported, not followed. Checks run concurrently, each call
bounded by `timeout_s` with `asyncio.timeout` and made with SDK retries off, so a hanging server costs at
most `timeout_s` and the whole checklist finishes in about that long. (The first check of a vendor in a
process also imports its SDK, about a second, in a worker thread and outside that deadline, so a slow
import is never mistaken for a dead server.) Results are cached in-process per (provider, base URL, key
fingerprint) for 5 minutes after a success and 30 seconds after a failure; the fingerprint is a truncated
SHA-256, the key itself is never stored. The cache is a small dict with expiry times, not a dependency.

A room's checklist re-checks itself: `recheck_seq` says which of the room's events can change its answer (a person
joined or changed role, the budget changed, the run paused; never a message, a vote or streamed text), `Recheck`
debounces them (several changes within `RECHECK_DEBOUNCE_S` cause one check) and `stale` says whether the last
check already saw them (`Preflight.seq`). The tab runs at most one check at a time; cached reachability is reused.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import inspect
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from backend.db import run_db
from backend.events.schema import BudgetChanged, DiscussionCreated, DiscussionPaused, MemberChanged
from backend.humans.roles import Role
from backend.models import Discussion, Participant, ParticipantKind
from backend.providers import egress, errors, pricing, registry
from backend.providers.base import ErrorKind
from backend.providers.offline import offline_model_problem
from backend.services.discussions import get_discussion, list_participants

log = logging.getLogger(__name__)

Status = Literal["pass", "fail", "skip"]

DEFAULT_TIMEOUT_S = 4.0
MIN_AGENTS = 2
SUCCESS_TTL_S = 300.0
FAILURE_TTL_S = 30.0
BUDGET_HINT = "Set a token or cost budget so a runaway discussion pauses itself."
RECHECK_DEBOUNCE_S = 1.0
# The room events that can change the checklist's answer: the topic and agents (set when the discussion is created;
# nothing changes them later), a person joining or changing role (the decision maker and approver items), the budget,
# and a pause (the checklist shows again, for Run Agents to continue). Messages, votes, turns and streamed text never do.
RECHECK_ON: tuple[type, ...] = (DiscussionCreated, MemberChanged, BudgetChanged, DiscussionPaused)
CHECKLIST_SHOWN = ("draft", "paused")  # the statuses in which the room shows the checklist (and Run Agents)


@dataclass(frozen=True, slots=True)
class CheckItem:
    """One line of the checklist."""

    key: str  # stable id: "topic", "agents", "provider:<name>" or "provider:<name>@<url>", "decision_maker", ...
    label: str  # what is checked, for people
    required: bool  # Run Agents stays disabled while a required item does not pass
    status: Status
    detail: str  # for a failure: how to fix it, in one sentence; otherwise what was found
    cached: bool = False  # a reachability result reused from an earlier check (see the TTLs above)


@dataclass(frozen=True, slots=True)
class Preflight:
    """The whole checklist for one discussion."""

    items: list[CheckItem]
    score: int  # 0-100: the share of applicable (not skipped) items that pass, rounded
    ready: bool  # every required item passes
    seq: int = 0  # the discussion's last event when it was read: the checklist reflects every event up to this one

    def item(self, key: str) -> CheckItem:
        """The item with this key (KeyError if there is none)."""
        for item in self.items:
            if item.key == key:
                return item
        raise KeyError(key)


OnItem = Callable[[CheckItem], Awaitable[None] | None]


class NotReady(Exception):
    """Run Agents was asked for while a required item of the checklist fails; `result` is the checklist."""

    def __init__(self, result: Preflight) -> None:
        failing = [f"{i.label}: {i.detail}" for i in result.items if i.required and i.status != "pass"]
        super().__init__("The preflight checklist does not pass: " + " ".join(failing))
        self.result = result


async def run_preflight(
    discussion_id: int,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    fresh: bool = False,
    on_item: OnItem | None = None,
) -> Preflight:
    """Check whether discussion `discussion_id` can run, in about `timeout_s` at most (see the module doc).

    `fresh` ignores cached reachability results (a "check again" button). `on_item`, if given, is called
    (and awaited, if it returns an awaitable) with each item as soon as it is decided, for a progress display;
    the returned `Preflight` lists the items in a fixed order whatever order they finished in.
    Raises `NotFound` for an unknown discussion.
    """
    discussion, agents, humans = await run_db(_load, discussion_id)

    async def decided(item: CheckItem) -> CheckItem:
        if on_item is not None:
            result = on_item(item)
            if inspect.isawaitable(result):
                await result
        return item

    head = [_topic_item(discussion), _agents_item(agents)]
    tail = [
        _decision_maker_item(discussion, humans),
        _approver_item(discussion, humans),
        _budget_item(discussion, agents),
    ]
    for item in head + tail:
        await decided(item)

    async def check(target: _Target) -> CheckItem:
        return await decided(await _check_target(target, timeout_s, fresh))

    providers = list(await asyncio.gather(*(check(t) for t in _targets(agents))))
    return replace(summarize(head + providers + tail), seq=discussion.last_seq)


def summarize(items: list[CheckItem]) -> Preflight:
    """Score and readiness of a list of items."""
    applicable = [i for i in items if i.status != "skip"]
    passed = sum(i.status == "pass" for i in applicable)
    score = int(100 * passed / len(applicable) + 0.5) if applicable else 100
    ready = all(i.status == "pass" for i in items if i.required)
    return Preflight(items=items, score=score, ready=ready)


def recheck_seq(events: Iterable[object]) -> int:
    """The seq of the last of `events` that can change the checklist's answer (`RECHECK_ON`); 0 when none can."""
    return max((e.seq for e in events if isinstance(e, RECHECK_ON)), default=0)  # type: ignore[attr-defined]


def stale(status: str, changed_seq: int, checked_seq: int) -> bool:
    """Whether a room showing the checklist (`status`) must check again: an event that can change the answer
    (`changed_seq`) came after what the last check read (`checked_seq`, its `Preflight.seq`)."""
    return status in CHECKLIST_SHOWN and changed_seq > checked_seq


@dataclass
class Recheck:
    """Debounces a tab's automatic re-checks: the first change starts the wait, later ones within it join it, and
    `due` says once, when the wait is over, that the check should run (the clock is passed in: tests move it)."""

    debounce_s: float = RECHECK_DEBOUNCE_S
    due_at: float | None = None

    def changed(self, now: float) -> None:
        """A change that can alter the checklist was applied at `now`."""
        if self.due_at is None:
            self.due_at = now + self.debounce_s

    def due(self, now: float) -> bool:
        """True once per wait, when it is over; the wait then ends."""
        if self.due_at is None or now < self.due_at:
            return False
        self.due_at = None
        return True


def clear_preflight_cache() -> None:
    """Forget every cached reachability result (after keys or servers changed)."""
    _cache.clear()


# -- the discussion's own items ------------------------------------------------------------------------------


def _load(discussion_id: int) -> tuple[Discussion, list[Participant], list[Participant]]:
    discussion = get_discussion(discussion_id)
    everyone = list_participants(discussion_id)
    agents = [p for p in everyone if p.kind == ParticipantKind.AGENT]
    return discussion, agents, [p for p in everyone if p.kind == ParticipantKind.HUMAN]


def _decision_maker_item(discussion: Discussion, humans: list[Participant]) -> CheckItem:
    label = "A decision maker, if a vote is configured"
    if not discussion.vote_rule:
        return CheckItem("decision_maker", label, False, "skip", "No vote configured.")
    names = [h.name for h in humans if h.role in (Role.DECISION_MAKER, Role.MUST_APPROVE)]
    if names:
        return CheckItem("decision_maker", label, True, "pass", f"Voting: {', '.join(names)} and the agents.")
    return CheckItem(
        "decision_maker", label, True, "fail", "Invite a decision maker (People, below) so a person votes too."
    )


def _approver_item(discussion: Discussion, humans: list[Participant]) -> CheckItem:
    label = "The must-approve person invited"
    if not discussion.vote_rule:
        return CheckItem("approver", label, False, "skip", "No decision to approve: no vote configured.")
    names = [h.name for h in humans if h.role == Role.MUST_APPROVE]
    if names:
        return CheckItem("approver", label, True, "pass", f"{', '.join(names)} signs the decision off.")
    return CheckItem(
        "approver", label, True, "fail", "Invite the person who must approve the decision, with the Must approve role."
    )


def _topic_item(discussion: Discussion) -> CheckItem:
    topic = " ".join((discussion.topic or "").split())
    if not topic:
        return CheckItem("topic", "Topic set", True, "fail", "Write the question the room should discuss.")
    shown = topic if len(topic) <= 80 else topic[:79].rstrip() + "…"
    return CheckItem("topic", "Topic set", True, "pass", f"“{shown}”")


def _agents_item(agents: list[Participant]) -> CheckItem:
    label = "At least two agents"
    n = len(agents)
    if n >= MIN_AGENTS:
        return CheckItem("agents", label, True, "pass", f"{n} agents: {', '.join(a.name for a in agents)}.")
    missing = MIN_AGENTS - n
    more = "one more agent" if missing == 1 else f"{missing} agents"
    return CheckItem(
        "agents", label, True, "fail", f"Add {more}: a discussion needs at least {MIN_AGENTS} to disagree."
    )


def _paid(agents: list[Participant]) -> list[str]:
    """The agents whose provider bills per token (the price table has a non-zero price for their model)."""
    out = []
    for a in agents:
        price = pricing.price_for(a.provider or "", a.model or "")
        if price is not None and (price.input > 0 or price.output > 0):
            out.append(a.name)
    return out


def _budget_item(discussion: Discussion, agents: list[Participant]) -> CheckItem:
    """Required once any agent costs money (a runaway discussion then costs real money); a warning otherwise."""
    label = "A budget set"
    paid = _paid(agents)
    parts = []
    if discussion.budget_tokens:
        parts.append(f"{discussion.budget_tokens:,} tokens")
    if discussion.budget_usd:
        parts.append(f"${discussion.budget_usd:,.2f}")
    if not parts:
        why = f" {', '.join(paid)} bill{'s' * (len(paid) == 1)} per token." if paid else ""
        return CheckItem("budget", label, bool(paid), "fail", BUDGET_HINT + why)
    return CheckItem("budget", label, bool(paid), "pass", f"Pauses itself at {' or '.join(parts)}.")


# -- provider reachability -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Target:
    """One distinct provider endpoint the agents use, and the models they ask it for."""

    provider: str
    base_url: str | None  # only for providers that take one per agent (openai_compatible)
    models: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _Cloud:
    base_url_env: tuple[str, ...]  # the same variables the provider (or its SDK) reads
    default_url: str
    sdk: str


_CLOUD = {
    "anthropic": _Cloud(("ANTHROPIC_BASE_URL",), "https://api.anthropic.com", "anthropic"),
    "openai": _Cloud(("OPENAI_BASE_URL",), "https://api.openai.com/v1", "openai"),
    "gemini": _Cloud(
        ("GEMINI_BASE_URL", "GOOGLE_GEMINI_BASE_URL"), "https://generativelanguage.googleapis.com", "google.genai"
    ),
}


def _targets(agents: list[Participant]) -> list[_Target]:
    """Distinct (provider, base URL) pairs in the agents' speaking order."""
    found: dict[tuple[str, str | None], _Target] = {}
    for agent in agents:
        provider = agent.provider or ""
        info = registry.PROVIDERS.get(provider)
        per_agent_url = info is not None and info.requires_base_url and not registry.is_registered(provider)
        base_url = (agent.base_url or "").strip().rstrip("/") if per_agent_url else None
        target = found.setdefault((provider, base_url), _Target(provider, base_url))
        target.models.append(agent.model or "")
    return list(found.values())


def _env(*names: str) -> str | None:
    """The first of these environment variables that holds something (its raw value), or None."""
    for name in names:
        value = os.environ.get(name, "")
        if value.strip():
            return value
    return None


def _fingerprint(api_key: str | None) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()[:16] if api_key else ""


async def _check_target(target: _Target, timeout_s: float, fresh: bool) -> CheckItem:
    provider = target.provider
    info = registry.PROVIDERS.get(provider)
    shown_base = egress.display_url(target.base_url) if target.base_url else None
    key = f"provider:{provider}" + (f"@{shown_base}" if shown_base else "")
    if registry.is_registered(provider):
        return CheckItem(key, f"Provider '{provider}' available", True, "pass", "Runs in this process.")
    if info is None:
        problem = registry.validate_agent(provider, "", None) or f"Unknown provider '{provider}'."
        return CheckItem(key, f"Provider '{provider}' available", True, "fail", problem)

    if provider == "offline":
        label = "Offline model installed"
    elif info.requires_base_url:
        label = f"Model server at {shown_base or '(no URL)'} reachable"
    else:
        label = f"{info.label} reachable with a valid key"

    def item(status: Status, detail: str, cached: bool = False) -> CheckItem:
        return CheckItem(key, label, True, status, detail, cached)

    # Settings problems first: said without any network call.
    if provider == "offline" and (problem := offline_model_problem()):
        return item("fail", problem)
    api_key = _env(*info.key_env) if info.key_env else None
    if info.key_env and api_key is None:
        return item("fail", errors.missing_key(_vendor(provider, shown_base)).message)
    # Off the loop: a base URL's check resolves its host. A URL the operator does not allow fails here, unfetched.
    if problem := await asyncio.to_thread(_settings_problem, provider, target):
        return item("fail", problem)
    if provider == "offline":
        return item("pass", "Installed; runs on this server with no key.")

    cloud = _CLOUD.get(provider)
    url_override = _env(*cloud.base_url_env) if cloud else target.base_url
    url = (url_override or (cloud.default_url if cloud else "")).rstrip("/")
    shown = egress.display_url(url)
    cache_key = (provider, url, _fingerprint(api_key))
    if not fresh and (hit := _cache.get(cache_key)) is not None:
        return item(*hit, cached=True)
    # Single flight: viewers opening the room together share one probe instead of each calling the server.
    probe = _inflight.get(cache_key)
    if probe is None:
        probe = asyncio.ensure_future(_probe(provider, url_override, shown, api_key, timeout_s))
        _inflight[cache_key] = probe
        probe.add_done_callback(lambda _f: _inflight.pop(cache_key, None))
    status, detail = await asyncio.shield(probe)
    _cache.put(cache_key, (status, detail), SUCCESS_TTL_S if status == "pass" else FAILURE_TTL_S)
    log.info("preflight %s at %s: %s (%s)", provider, shown, status, detail)
    return item(status, detail)


def _settings_problem(provider: str, target: _Target) -> str | None:
    """The first agent setting of `target` that cannot work (the base URL included: see `egress`), or None."""
    for model in target.models:
        if problem := registry.validate_agent(provider, model, target.base_url):
            return problem
    return None


def _vendor(provider: str, url: str | None) -> errors.Vendor:
    if provider == "openai_compatible":
        return errors.Vendor(provider, f"the model server at {url}")
    info = registry.PROVIDERS[provider]
    return errors.Vendor(provider, info.label, info.key_env)


async def _probe(
    provider: str, base_url: str | None, url: str, api_key: str | None, timeout_s: float
) -> tuple[Status, str]:
    """One cheap authenticated call; (status, detail). `base_url` is what the SDK is given (None = its own), `url`
    how the endpoint is named in messages (no credentials)."""
    sdk_name = _CLOUD[provider].sdk if provider in _CLOUD else "openai"
    try:
        # The first use of an SDK in this process imports it (about a second, more on a busy host): off the
        # event loop, and outside the network deadline, so a slow import is never reported as a dead server.
        sdk = await asyncio.to_thread(importlib.import_module, sdk_name)
    except ImportError as exc:
        return "fail", f"The {sdk_name} SDK is not installed on this server ({_short(str(exc))}); reinstall Maestro."
    started = time.monotonic()
    try:
        async with asyncio.timeout(timeout_s):
            await _list_models(provider, sdk, base_url, api_key or "not-needed", timeout_s)
    except TimeoutError:
        return "fail", _unreachable(url, f"no answer within {timeout_s:g} s")
    except Exception as exc:
        return "fail", _failure(provider, url, exc, timeout_s)
    ms = round((time.monotonic() - started) * 1000)
    if provider == "openai_compatible":
        return "pass", f"The server answered in {ms} ms."
    return "pass", f"{registry.PROVIDERS[provider].label} accepted the key ({ms} ms)."


def _unreachable(url: str, why: str) -> str:
    return f"Cannot reach {url}: {why}; check that it is running and the URL is right."


async def _list_models(provider: str, sdk: Any, base_url: str | None, api_key: str, timeout_s: float) -> None:
    """List one page of models with retries off: the cheapest call each API has that needs a valid key."""
    if provider == "anthropic":
        async with sdk.AsyncAnthropic(api_key=api_key, base_url=base_url, timeout=timeout_s, max_retries=0) as client:
            await client.models.list(limit=1)
    elif provider == "gemini":
        http_options = sdk.types.HttpOptions(base_url=base_url, api_version="v1beta", timeout=round(timeout_s * 1000))
        client = sdk.Client(api_key=api_key, vertexai=False, http_options=http_options)  # no retry_options: no retries
        try:
            await client.aio.models.list(config={"page_size": 1})
        finally:
            await client.aio.aclose()
    else:  # openai, openai_compatible: GET {base_url}/models, redirects not followed (to a host nobody checked)
        http_client = sdk.DefaultAsyncHttpxClient(follow_redirects=False)
        async with sdk.AsyncOpenAI(
            api_key=api_key, base_url=base_url, timeout=timeout_s, max_retries=0, http_client=http_client
        ) as client:
            await client.models.list()


def _failure(provider: str, url: str, exc: Exception, timeout_s: float) -> str:
    """How to fix a failed check, in one sentence."""
    redirect = getattr(exc, "status_code", None)
    if isinstance(redirect, int) and 300 <= redirect < 400:  # not followed: it could lead to a host nobody checked
        return (
            f"{url} answered with a redirect ({redirect}), which Maestro does not follow: set the base URL to where "
            "the server really is."
        )
    mapped = errors.from_exception(_vendor(provider, url), exc)
    if mapped is None:
        log.exception("preflight check of %s at %s failed unexpectedly", provider, url)
        return f"The check failed unexpectedly ({type(exc).__name__}: {_short(str(exc))}); see the server log."
    status = f" ({mapped.status})" if mapped.status else ""
    if mapped.kind == ErrorKind.AUTH:
        if provider == "openai_compatible":
            return (
                f"The server at {url} rejected the request{status}: Maestro sends it no API key, "
                "so allow unauthenticated requests there."
            )
        info = registry.PROVIDERS[provider]
        return f"{info.label} rejected the API key{status}: set a valid {info.key_env[0]} in the server's environment."
    if mapped.kind == ErrorKind.TIMEOUT:
        return _unreachable(url, f"no answer within {timeout_s:g} s")
    if mapped.kind == ErrorKind.CONNECTION:
        return _unreachable(url, _root_cause(exc))
    if mapped.status == 404:
        hint = " (it usually ends in /v1)" if provider == "openai_compatible" else ""
        return f"{url} has no model list (404): check the base URL{hint}."
    return mapped.message


def _root_cause(exc: BaseException) -> str:
    """The innermost cause's text, e.g. "[Errno 111] Connection refused" -> "connection refused"."""
    seen: set[int] = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        inner = exc.__cause__ or exc.__context__
        if inner is None:
            break
        exc = inner
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    text = str(exc).strip()
    if text.startswith("[Errno") and "] " in text:
        text = text.split("] ", 1)[1]
    text = text or type(exc).__name__
    return _short(text[:1].lower() + text[1:])


def _short(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


class _TTLCache:
    """A thread-safe dict whose entries expire; expired entries are dropped on every write."""

    def __init__(self) -> None:
        self._data: dict[tuple[str, str, str], tuple[float, tuple[Status, str]]] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str, str]) -> tuple[Status, str] | None:
        with self._lock:
            entry = self._data.get(key)
            if entry is None or entry[0] <= _clock():
                return None
            return entry[1]

    def put(self, key: tuple[str, str, str], value: tuple[Status, str], ttl: float) -> None:
        now = _clock()
        with self._lock:
            for stale in [k for k, (expires, _) in self._data.items() if expires <= now]:
                del self._data[stale]
            self._data[key] = (now + ttl, value)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


_clock = time.monotonic  # tests move time forward by replacing this
_cache = _TTLCache()
_inflight: dict[tuple, asyncio.Future] = {}
