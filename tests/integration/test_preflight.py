"""The preflight checklist: real SDK calls against local wire servers, timeouts, caching, score and readiness."""

from __future__ import annotations

import time
from contextlib import ExitStack

# The SDKs are imported here so that timing assertions measure the checks, not a first import.
import anthropic  # noqa: F401
import google.genai  # noqa: F401
import openai  # noqa: F401
import pytest

from backend.db import session_scope
from backend.errors import NotFound
from backend.models import Discussion
from backend.providers import registry
from backend.providers.scripted import ScriptedProvider
from backend.services import preflight
from backend.services.discussions import AgentSpec, create_discussion
from backend.services.preflight import BUDGET_HINT, CheckItem, run_preflight, summarize
from tests.providers.wire_servers import AnthropicScript, GeminiScript, Reply, WireServer
from tests.providers.wire_servers import OpenAIScript as S

TIMEOUT = 1.0
NOTHING_LISTENING = "http://127.0.0.1:9/v1"  # the discard port: connection refused
ENV = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "GEMINI_BASE_URL",
    "GOOGLE_GEMINI_BASE_URL",
    "GOOGLE_GENAI_USE_VERTEXAI",
)


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch):
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    preflight.clear_preflight_cache()
    yield
    preflight.clear_preflight_cache()


@pytest.fixture
def fake_provider():
    registry.register_provider("fake", ScriptedProvider(["unused"]))
    yield "fake"
    registry.unregister_provider("fake")


def compatible(url: str, persona: str = "architect", model: str = "llama3.2:3b") -> AgentSpec:
    return AgentSpec(persona_key=persona, provider="openai_compatible", model=model, base_url=url)


def cloud(provider: str, persona: str = "architect") -> AgentSpec:
    return AgentSpec(persona_key=persona, provider=provider, model=registry.default_model(provider))


def create(*agents: AgentSpec, **kwargs) -> int:
    d = create_discussion(topic="Choose a database for Apollo", agents=list(agents), **kwargs)
    assert d.id is not None
    return d.id


def hang() -> Reply:
    return S.hang(TIMEOUT + 2)


# -- reachability ---------------------------------------------------------------------------------------------


async def test_a_compatible_server_that_lists_its_models_passes(sqlite_db):
    with WireServer(S.models_route, [S.models()]) as server:
        url = f"{server.url}/v1"
        pf = await run_preflight(create(compatible(url), compatible(url, "security")), timeout_s=TIMEOUT)

    # Two agents on one server: one item, one request.
    [item] = [i for i in pf.items if i.key.startswith("provider:")]
    assert (item.key, item.status, item.required) == (f"provider:openai_compatible@{url}", "pass", True)
    assert [(r.method, r.path) for r in server.requests] == [("GET", "/v1/models")]
    assert pf.ready


async def test_a_key_the_server_refuses_fails_as_rejected(sqlite_db):
    with WireServer(S.models_route, [S.auth_error()]) as server:
        url = f"{server.url}/v1"
        pf = await run_preflight(create(compatible(url), compatible(url, "security")), timeout_s=TIMEOUT)

    item = pf.item(f"provider:openai_compatible@{url}")
    assert item.status == "fail" and "rejected" in item.detail
    assert not pf.ready


async def test_nothing_listening_fails_as_unreachable_within_the_timeout(sqlite_db):
    d = create(compatible(NOTHING_LISTENING), compatible(NOTHING_LISTENING, "security"))
    started = time.monotonic()
    pf = await run_preflight(d, timeout_s=TIMEOUT)

    assert time.monotonic() - started < TIMEOUT
    item = pf.item(f"provider:openai_compatible@{NOTHING_LISTENING}")
    assert item.status == "fail"
    assert item.detail.startswith(f"Cannot reach {NOTHING_LISTENING}: connection refused")


async def test_a_hanging_server_fails_within_the_timeout(sqlite_db):
    with WireServer(S.models_route, [hang()]) as server:
        url = f"{server.url}/v1"
        d = create(compatible(url), compatible(url, "security"))
        started = time.monotonic()
        pf = await run_preflight(d, timeout_s=TIMEOUT)
        elapsed = time.monotonic() - started

    assert TIMEOUT * 0.9 <= elapsed < TIMEOUT + 0.5
    item = pf.item(f"provider:openai_compatible@{url}")
    assert item.status == "fail" and item.detail.startswith(f"Cannot reach {url}: no answer within 1 s")
    assert len(server.requests) == 1  # no SDK retries


async def test_several_hanging_providers_are_checked_at_once(sqlite_db, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "ak-test")
    monkeypatch.setenv("GEMINI_API_KEY", "gk-test")
    with ExitStack() as stack:
        a, b, oai, ant, gem = (
            stack.enter_context(WireServer(route, [hang()]))
            for route in (
                S.models_route,
                S.models_route,
                S.models_route,
                AnthropicScript.models_route,
                GeminiScript.models_route,
            )
        )
        monkeypatch.setenv("OPENAI_BASE_URL", f"{oai.url}/v1")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", ant.url)
        monkeypatch.setenv("GEMINI_BASE_URL", gem.url)
        d = create(
            compatible(f"{a.url}/v1"),
            compatible(f"{b.url}/v1", "security"),
            cloud("openai", "devops"),
            cloud("anthropic", "product"),
            cloud("gemini", "backend_engineer"),
        )
        started = time.monotonic()
        pf = await run_preflight(d, timeout_s=TIMEOUT)
        elapsed = time.monotonic() - started

    providers = [i for i in pf.items if i.key.startswith("provider:")]
    assert len(providers) == 5
    assert all(i.status == "fail" and i.detail.startswith("Cannot reach") for i in providers), providers
    assert all(len(s.requests) == 1 for s in (a, b, oai, ant, gem))
    assert elapsed < TIMEOUT + 1.0  # concurrently; one after another would take five times as long


@pytest.mark.parametrize(
    ("provider", "script", "env", "path", "auth_header"),
    [
        ("openai", S, "OPENAI", "/v1/models", "authorization"),
        ("anthropic", AnthropicScript, "ANTHROPIC", "/v1/models?limit=1", "authorization"),
        ("gemini", GeminiScript, "GEMINI", "/v1beta/models?pageSize=1", "x-goog-api-key"),
    ],
)
async def test_each_cloud_sdk_lists_one_page_of_models_with_the_key(
    sqlite_db, monkeypatch, provider, script, env, path, auth_header
):
    monkeypatch.setenv(f"{env}_API_KEY", "key-123")
    d = create(cloud(provider), cloud(provider, "security"))
    with WireServer(script.models_route, [script.models()]) as server:
        monkeypatch.setenv(f"{env}_BASE_URL", f"{server.url}/v1" if provider == "openai" else server.url)
        pf = await run_preflight(d, timeout_s=TIMEOUT)

    item = pf.item(f"provider:{provider}")
    assert item.status == "pass", item.detail
    [sent] = server.requests
    assert (sent.method, sent.path) == ("GET", path)
    assert "key-123" in sent.headers[auth_header]


@pytest.mark.parametrize(
    ("provider", "script", "env"), [("openai", S, "OPENAI"), ("anthropic", AnthropicScript, "ANTHROPIC")]
)
async def test_a_server_error_is_not_retried(sqlite_db, monkeypatch, provider, script, env):
    monkeypatch.setenv(f"{env}_API_KEY", "key-123")
    d = create(cloud(provider), cloud(provider, "security"))
    with WireServer(script.models_route, [script.server_error(), script.models()]) as server:
        monkeypatch.setenv(f"{env}_BASE_URL", f"{server.url}/v1" if provider == "openai" else server.url)
        pf = await run_preflight(d, timeout_s=TIMEOUT)

    assert pf.item(f"provider:{provider}").status == "fail"
    assert len(server.requests) == 1


async def test_a_rejected_cloud_key_names_the_variable_to_fix(sqlite_db, monkeypatch):
    monkeypatch.setenv("GEMINI_API_KEY", "wrong")
    d = create(cloud("gemini"), cloud("gemini", "security"))
    with WireServer(GeminiScript.models_route, [GeminiScript.invalid_key()]) as server:
        monkeypatch.setenv("GEMINI_BASE_URL", server.url)
        pf = await run_preflight(d, timeout_s=TIMEOUT)

    item = pf.item("provider:gemini")
    assert item.status == "fail"
    assert "rejected the API key" in item.detail and "GEMINI_API_KEY" in item.detail


async def test_a_missing_key_fails_with_its_variable_and_no_request(sqlite_db, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "ak-test")  # agents can only be created with a key
    d = create(cloud("anthropic"), cloud("anthropic", "security"))
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    with WireServer(AnthropicScript.models_route, [AnthropicScript.models()]) as server:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
        pf = await run_preflight(d, timeout_s=TIMEOUT)

    item = pf.item("provider:anthropic")
    assert item.status == "fail" and "set ANTHROPIC_API_KEY" in item.detail
    assert server.requests == []
    assert not pf.ready


async def test_the_offline_model_passes_without_any_request(sqlite_db):
    offline = AgentSpec(persona_key="architect", provider="offline", model="smollm2-135m-instruct")
    pf = await run_preflight(create(offline, offline, budget_tokens=50_000), timeout_s=TIMEOUT)

    item = pf.item("provider:offline")
    assert (item.status, item.label) == ("pass", "Offline model installed")
    assert pf.ready and pf.score == 100


async def test_an_in_process_provider_passes(sqlite_db, fake_provider):
    pf = await run_preflight(create(AgentSpec("architect", fake_provider, "m"), AgentSpec("security", "fake", "m")))

    assert pf.item("provider:fake").status == "pass"


# -- cache ----------------------------------------------------------------------------------------------------


async def test_a_success_is_reused_for_five_minutes(sqlite_db, monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(preflight, "_clock", lambda: now[0])
    with WireServer(S.models_route, [S.models(), S.models(), S.models()]) as server:
        url = f"{server.url}/v1"
        d = create(compatible(url), compatible(url, "security"))
        first = await run_preflight(d, timeout_s=TIMEOUT)
        now[0] += 299
        second = await run_preflight(d, timeout_s=TIMEOUT)
        assert len(server.requests) == 1
        forced = await run_preflight(d, timeout_s=TIMEOUT, fresh=True)
        assert len(server.requests) == 2
        now[0] += 301
        expired = await run_preflight(d, timeout_s=TIMEOUT)
        assert len(server.requests) == 3

    key = f"provider:openai_compatible@{url}"
    assert [p.item(key).cached for p in (first, second, forced, expired)] == [False, True, False, False]
    assert second.item(key).status == "pass" and second.item(key).detail == first.item(key).detail


async def test_a_failure_is_reused_for_thirty_seconds(sqlite_db, monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(preflight, "_clock", lambda: now[0])
    with WireServer(S.models_route, [S.auth_error(), S.models()]) as server:
        url = f"{server.url}/v1"
        d = create(compatible(url), compatible(url, "security"))
        assert (await run_preflight(d, timeout_s=TIMEOUT)).item(f"provider:openai_compatible@{url}").status == "fail"
        now[0] += 29
        await run_preflight(d, timeout_s=TIMEOUT)
        assert len(server.requests) == 1
        now[0] += 2
        again = await run_preflight(d, timeout_s=TIMEOUT)

    assert len(server.requests) == 2
    assert again.item(f"provider:openai_compatible@{url}").status == "pass"


async def test_the_cache_is_per_key_and_never_holds_the_key(sqlite_db, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-first-secret")
    d = create(cloud("openai"), cloud("openai", "security"))
    with WireServer(S.models_route, [S.models(), S.models()]) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", f"{server.url}/v1")
        await run_preflight(d, timeout_s=TIMEOUT)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-second-secret")
        await run_preflight(d, timeout_s=TIMEOUT)
        await run_preflight(d, timeout_s=TIMEOUT)

    assert [r.headers["authorization"] for r in server.requests] == [
        "Bearer sk-first-secret",
        "Bearer sk-second-secret",
    ]
    assert "secret" not in repr(preflight._cache._data)


# -- the discussion's own items, score and readiness ----------------------------------------------------------


async def test_one_agent_is_not_enough(sqlite_db, fake_provider):
    pf = await run_preflight(create(AgentSpec("architect", fake_provider, "m"), budget_usd=2.0))

    item = pf.item("agents")
    assert item.status == "fail" and item.required and "one more agent" in item.detail
    assert not pf.ready
    assert pf.score == 75  # topic, provider and budget pass; agents fails; the two skipped items don't count


async def test_an_empty_topic_fails(sqlite_db, fake_provider):
    d = create(AgentSpec("architect", fake_provider, "m"), AgentSpec("security", fake_provider, "m"))
    with session_scope() as session:
        row = session.get(Discussion, d)
        assert row is not None
        row.topic = "  "
        session.add(row)
    pf = await run_preflight(d)

    assert pf.item("topic").status == "fail" and "question" in pf.item("topic").detail
    assert not pf.ready


async def test_a_budget_is_required_once_an_agent_bills_per_token(sqlite_db, fake_provider, monkeypatch, tmp_path):
    """Free agents (offline, local servers): a budget is advice. Once one agent's model has a price, Run Agents
    waits for a budget, and the item names who bills."""
    import json

    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"fake/paid": {"input": 3, "output": 15}}))
    monkeypatch.setenv("MAESTRO_PRICE_TABLE", str(prices))
    free = await run_preflight(create(AgentSpec("architect", fake_provider, "m"), AgentSpec("security", "fake", "m")))
    assert (free.item("budget").required, free.ready) == (False, True)

    paid = await run_preflight(
        create(AgentSpec("architect", fake_provider, "paid"), AgentSpec("security", fake_provider, "m"))
    )
    budget = paid.item("budget")
    assert (budget.required, budget.status, paid.ready) == (True, "fail", False)
    assert budget.detail == BUDGET_HINT + " Architect bills per token."

    capped = await run_preflight(
        create(AgentSpec("architect", fake_provider, "paid"), AgentSpec("security", fake_provider, "m"), budget_usd=1.0)
    )
    assert (capped.item("budget").status, capped.ready) == ("pass", True)


async def test_the_full_checklist_in_order_with_budget_as_a_warning(sqlite_db, fake_provider):
    seen: list[str] = []

    async def on_item(item: CheckItem) -> None:
        seen.append(item.key)

    d = create(AgentSpec("architect", fake_provider, "m"), AgentSpec("security", fake_provider, "m"))
    pf = await run_preflight(d, on_item=on_item)

    assert [(i.key, i.required, i.status) for i in pf.items] == [
        ("topic", True, "pass"),
        ("agents", True, "pass"),
        ("provider:fake", True, "pass"),
        ("decision_maker", False, "skip"),
        ("approver", False, "skip"),
        ("budget", False, "fail"),
    ]
    assert pf.item("decision_maker").detail == "No vote configured."
    assert pf.item("approver").detail == "No decision to approve: no vote configured."
    assert pf.item("budget").detail == BUDGET_HINT
    assert pf.ready  # the budget is only a warning
    assert pf.score == 75
    assert sorted(seen) == sorted(i.key for i in pf.items)


def test_score_is_the_share_of_applicable_items_passing():
    def item(key: str, status: str, required: bool = True) -> CheckItem:
        return CheckItem(key, key, required and status != "skip", status, "")  # type: ignore[arg-type]

    assert summarize([item("a", "pass"), item("b", "pass")]).score == 100
    two_of_three = summarize([item("a", "pass"), item("b", "pass", False), item("c", "fail", False), item("d", "skip")])
    assert (two_of_three.score, two_of_three.ready) == (67, True)
    one_of_three = summarize([item("a", "pass"), item("b", "fail"), item("c", "fail", False)])
    assert (one_of_three.score, one_of_three.ready) == (33, False)
    assert summarize([item("a", "fail"), item("b", "skip", False)]).score == 0
    assert summarize([]).score == 100


async def test_an_unknown_discussion_is_not_found(sqlite_db):
    with pytest.raises(NotFound):
        await run_preflight(999_999)


async def test_viewers_checking_at_once_share_one_probe(sqlite_db) -> None:
    import asyncio

    with WireServer(S.models_route, [S.models()]) as server:
        url = f"{server.url}/v1"
        did = create(compatible(url), compatible(url, "security"))
        results = await asyncio.gather(*(run_preflight(did, timeout_s=TIMEOUT) for _ in range(4)))
    assert all(r.ready for r in results)
    assert len(server.requests) == 1


async def test_a_vote_needs_a_person_who_votes_and_the_must_approve_person(sqlite_db, fake_provider):
    from backend.humans import membership
    from tests.people import person

    sam = person("sam")
    d = create_discussion(
        topic="Choose a database for Apollo",
        agents=[AgentSpec("architect", fake_provider, "m"), AgentSpec("security", fake_provider, "m")],
        owner=sam,
        vote_rule="plurality",
        vote_options=["PostgreSQL", "MongoDB"],
    ).id
    pf = await run_preflight(d)
    assert (pf.item("decision_maker").status, pf.item("approver").status) == ("fail", "fail")
    assert "Invite a decision maker" in pf.item("decision_maker").detail
    assert "Must approve" in pf.item("approver").detail
    assert not pf.ready

    person("pat", "Pat"), person("cto", "CTO")
    membership.invite(d, sam, "pat", "decision_maker")
    membership.invite(d, sam, "cto", "must_approve")
    pf = await run_preflight(d)
    assert pf.item("decision_maker").detail == "Voting: Pat, CTO and the agents."
    assert pf.item("approver").detail == "CTO signs the decision off."
    assert pf.ready
