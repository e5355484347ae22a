"""Bounded spend (issue 12, point 3): whoever signs up spends the operator's keys, so every model call is checked at
its worst case against the discussion's budgets and today's spend caps, a turn's reply limit is bounded, and
creating, posting and running are rate limited per person.

Real engine, runner, SQLite (and Postgres where the query differs), agents on the in-process scripted provider
priced through MAESTRO_PRICE_TABLE; the rate limits over real HTTP (uvicorn serving the API, httpx as the client).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from limits import parse
from sqlmodel import func, select

from backend.config import get_settings
from backend.db import session_scope
from backend.errors import InputError
from backend.humans import rate_limits
from backend.models import Discussion, InstancePolicy, Message, ModelCall
from backend.models.base import utcnow
from backend.orchestrator.runner import Runner, get_runner
from backend.providers import registry
from backend.providers.scripted import ScriptedProvider
from backend.services.discussions import AgentSpec, create_discussion, set_budget
from tests.api_server import login, serve_api
from tests.people import person

TOPIC = "Choose a database for Apollo"
REPLY = "PostgreSQL: the team already runs it."
PASSWORD = "correct horse"


@pytest.fixture
def priced(monkeypatch, tmp_path):
    """Scripted models cost $1,000 per million tokens ($0.001 a token), except "free" (a local model)."""
    prices = tmp_path / "prices.json"
    prices.write_text(
        json.dumps({"scripted/*": {"input": 1000, "output": 1000}, "scripted/free": {"input": 0, "output": 0}})
    )
    monkeypatch.setenv("MAESTRO_PRICE_TABLE", str(prices))
    registry.register_provider("scripted", ScriptedProvider([REPLY]))
    yield
    registry.unregister_provider("scripted")


def _discussion(model: str = "m", **kw) -> int:
    return create_discussion(topic=TOPIC, agents=[AgentSpec("architect", "scripted", model)], rounds=1, **kw).id


async def _run(bus, did: int, provider: ScriptedProvider) -> Discussion:
    runner = Runner(bus=bus, provider_lookup=lambda a: provider, lease_seconds=5)
    await runner.start(did)
    await runner.wait(did)
    with session_scope() as s:
        return s.get(Discussion, did)


def _seed_spend(did: int, usd: float, *, days_ago: int = 0) -> None:
    """A call that cost `usd`, made `days_ago` days ago (UTC), in discussion `did`."""
    with session_scope() as s:
        s.add(
            ModelCall(
                discussion_id=did,
                purpose="consensus",
                provider="scripted",
                model="m",
                input_tokens=1000,
                output_tokens=100,
                cost_usd=usd,
                created_at=utcnow() - timedelta(days=days_ago),
            )
        )


def _set_caps(user_daily_usd: float | None, instance_daily_usd: float | None) -> None:
    """The admin's policy row, as the admin page writes it."""
    with session_scope() as s:
        row = s.get(InstancePolicy, 1) or InstancePolicy(id=1, signup_policy="open")
        row.user_daily_usd, row.instance_daily_usd = user_daily_usd, instance_daily_usd
        s.add(row)


def _spent_today() -> float:
    with session_scope() as s:
        turns = s.exec(select(func.coalesce(func.sum(Message.cost_usd), 0.0))).one()
        calls = s.exec(select(func.coalesce(func.sum(ModelCall.cost_usd), 0.0))).one()
        return float(turns) + float(calls)


# --- the check before a call counts its worst case -------------------------------------------------------


async def test_a_cost_budget_smaller_than_one_calls_worst_case_pauses_before_calling(sqlite_db, bus, priced):
    """300 reply tokens alone could cost $0.30 here: a $0.20 budget must not let the call start (the old check,
    "spent < budget", let it run and overshoot)."""
    did = _discussion(max_tokens_per_turn=300, budget_usd=0.20)
    provider = ScriptedProvider([REPLY])
    discussion = await _run(bus, did, provider)
    assert provider.calls == 0
    assert discussion.status == "paused"
    assert discussion.pause_reason.startswith("Paused: the next turn could cost up to $")
    assert "$0.20 budget is left" in discussion.pause_reason and "Raise the budget" in discussion.pause_reason

    set_budget(discussion_id=did, budget_tokens=None, budget_usd=5.0)  # room for the worst case: it runs
    assert (await _run(bus, did, provider)).status == "completed"
    assert provider.calls == 1


async def test_a_token_budget_counts_the_prompt_and_the_reply_limit(sqlite_db, bus, priced):
    did = _discussion(max_tokens_per_turn=300, budget_tokens=250)
    provider = ScriptedProvider([REPLY])
    discussion = await _run(bus, did, provider)
    assert provider.calls == 0 and discussion.status == "paused"
    assert "could use up to" in discussion.pause_reason and "250-token budget" in discussion.pause_reason


# --- a turn's reply limit is bounded -------------------------------------------------------------------------


def test_a_reply_limit_above_the_operators_limit_or_not_positive_is_refused(sqlite_db, priced):
    for value in (10**6, get_settings().max_tokens_per_turn_limit + 1, 0, -5):
        with pytest.raises(InputError) as refused:
            _discussion(max_tokens_per_turn=value)
        assert refused.value.errors == {
            "max_tokens_per_turn": "A turn's reply limit is between 1 and 4,000 tokens on this server."
        }
    with session_scope() as s:
        assert s.exec(select(Discussion)).all() == []  # nothing half-written
    assert _discussion(max_tokens_per_turn=4000)


async def test_the_engine_clamps_a_stored_reply_limit_to_the_operators_limit(sqlite_db, bus, priced, monkeypatch):
    """Rows written before the limit existed may ask for anything: the call never asks for more than the limit."""
    monkeypatch.setenv("MAESTRO_MAX_TOKENS_PER_TURN_LIMIT", "200")
    get_settings.cache_clear()
    did = _discussion(model="free")
    with session_scope() as s:
        s.get(Discussion, did).max_tokens_per_turn = 10**6
    provider = ScriptedProvider([REPLY])
    assert (await _run(bus, did, provider)).status == "completed"
    assert [r.max_tokens for r in provider.requests] == [200]


# --- daily spend caps --------------------------------------------------------------------------------------


async def test_a_persons_daily_cap_pauses_their_discussions_only(database, bus, priced):
    """Alice spent $1.50 today in another discussion of hers; a turn could cost about $1 more, over her $2 cap.
    Bob spent $100 yesterday, which does not count today: his discussion runs."""
    alice, bob = person("alice"), person("bob")
    _seed_spend(_discussion(owner=alice), 1.50)
    _seed_spend(_discussion(owner=bob), 100.0, days_ago=1)
    _set_caps(user_daily_usd=2.0, instance_daily_usd=None)

    provider = ScriptedProvider([REPLY])
    hers = await _run(bus, _discussion(owner=alice, max_tokens_per_turn=300), provider)
    assert provider.calls == 0 and hers.status == "paused"
    assert hers.pause_reason.startswith("Paused: today's spend cap per person ($2.00) would be passed")
    assert "$1.50 today" in hers.pause_reason

    his = await _run(bus, _discussion(owner=bob, max_tokens_per_turn=300), provider)
    assert his.status == "completed" and provider.calls == 1


async def test_the_instance_cap_counts_every_discussion_and_free_calls_never_meet_it(database, bus, priced):
    """A discussion without an owner (the CLI) counts toward the instance cap only; a free model never pauses."""
    alice = person("alice")
    _seed_spend(_discussion(owner=alice), 4.50)
    _set_caps(user_daily_usd=0.01, instance_daily_usd=None)  # alice is far over her own cap
    provider = ScriptedProvider([REPLY])
    assert (await _run(bus, _discussion(max_tokens_per_turn=300), provider)).status == "completed"
    assert provider.calls == 1

    cap = round(_spent_today() + 0.5, 2)  # half a dollar left: a turn could cost about $1
    _set_caps(user_daily_usd=0.01, instance_daily_usd=cap)
    cli = await _run(bus, _discussion(max_tokens_per_turn=300), provider)
    assert provider.calls == 1 and cli.status == "paused"
    assert cli.pause_reason.startswith(f"Paused: today's spend cap for this instance (${cap:,.2f}) would be passed")

    free = await _run(bus, _discussion(model="free", owner=alice), provider)
    assert free.status == "completed" and provider.calls == 2


# --- rate limits over HTTP -----------------------------------------------------------------------------------


@pytest.fixture
def api(sqlite_db, monkeypatch) -> Iterator[str]:
    """The API on a real port; agents on the free scripted model; two of each limited action a minute."""
    for action in ("create", "post", "run"):
        monkeypatch.setitem(rate_limits.LIMITS, action, (parse("2/minute"), rate_limits.LIMITS[action][1]))
    registry.register_provider("scripted", ScriptedProvider([REPLY]))
    with serve_api() as url:
        yield url
    registry.unregister_provider("scripted")


def _create(client: httpx.Client, headers: dict, **extra) -> httpx.Response:
    agents = [{"persona": p, "provider": "scripted", "model": "free"} for p in ("architect", "security")]
    return client.post(
        "/api/discussions", json={"topic": TOPIC, "agents": agents, "rounds": 3, **extra}, headers=headers
    )


def _too_many(r: httpx.Response, action: str) -> None:
    assert r.status_code == 429, r.text
    assert int(r.headers["Retry-After"]) > 0
    assert r.json()["fields"][action].startswith("Too many ")


def test_a_reply_limit_over_the_api_is_refused_with_the_field(api):
    with httpx.Client(base_url=api, timeout=30) as client:
        alex = login(client, "alex")
        r = _create(client, alex, max_tokens_per_turn=10**6)
        assert r.status_code == 422, r.text
        assert r.json()["fields"] == {
            "max_tokens_per_turn": "A turn's reply limit is between 1 and 4,000 tokens on this server."
        }


def test_creating_and_posting_are_rate_limited_per_person(api):
    with httpx.Client(base_url=api, timeout=30) as client:
        alex, sam = login(client, "alex"), login(client, "sam")
        first = _create(client, alex).json()["id"]
        assert _create(client, alex).status_code == 201
        _too_many(_create(client, alex), "create")
        assert _create(client, sam).status_code == 201  # counted per person
        with session_scope() as s:
            assert s.exec(select(func.count()).select_from(Discussion)).one() == 3  # the refused one wrote nothing

        url = f"/api/discussions/{first}/messages"
        assert client.post(url, json={"content": "One", "client_id": "a"}, headers=alex).status_code == 201
        retried = client.post(url, json={"content": "One", "client_id": "a"}, headers=alex)
        assert retried.status_code == 201  # the same message sent again is not a second one
        assert client.post(url, json={"content": "Two", "client_id": "b"}, headers=alex).status_code == 201
        _too_many(client.post(url, json={"content": "Three", "client_id": "c"}, headers=alex), "post")
        with session_scope() as s:
            posted = s.exec(select(Message.content).where(Message.discussion_id == first)).all()
        assert sorted(posted) == sorted([TOPIC, "One", "Two"])


def test_running_the_agents_is_rate_limited_per_person(api):
    """Each run pauses at once (a 1-token budget), so every Run Agents starts the engine again."""
    with httpx.Client(base_url=api, timeout=30) as client:
        alex = login(client, "alex")
        did = _create(client, alex, budget_tokens=1).json()["id"]
        for _ in range(2):
            r = client.post(f"/api/discussions/{did}/run", headers=alex)
            assert r.status_code == 202, r.text
            deadline = time.monotonic() + 10
            while get_runner().is_running(did):  # until the engine has paused and let go
                assert time.monotonic() < deadline, "the run did not pause"
                time.sleep(0.05)
            assert client.get(f"/api/discussions/{did}", headers=alex).json()["status"] == "paused"
        _too_many(client.post(f"/api/discussions/{did}/run", headers=alex), "run")
