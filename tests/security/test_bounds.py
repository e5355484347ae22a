"""Bounded work (issue 12, point 8): no request reads a long transcript or audit trail whole, one person cannot hold
event streams open without limit, /metrics is the operator's, and a typed model name cannot grow the metrics.

Over real HTTP (uvicorn serving Maestro's routes, as tests/integration/test_api.py does), a real database, and a
real Redis for the cap shared across workers.
"""

from __future__ import annotations

import contextlib
import socket
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlmodel import select

from backend import observability as obs
from backend.api import stream_slots
from backend.config import get_settings
from backend.db import session_scope
from backend.humans import audit
from backend.humans.posts import append_post
from backend.models import Participant, User
from backend.providers import registry
from backend.providers.offline import OFFLINE_MODEL_ID
from backend.providers.scripted import ScriptedProvider
from backend.services.discussions import AgentSpec, create_discussion
from backend.services.discussions import list_messages as all_messages
from tests.api_server import login, serve_api
from tests.conftest import REDIS_TEST_URL
from tests.people import person

PASSWORD = "correct horse"


@pytest.fixture
def api(sqlite_db) -> Iterator[str]:
    registry.register_provider("scripted", ScriptedProvider(["Fine."]))
    with serve_api() as url:
        yield url
    registry.unregister_provider("scripted")


def _create(client: httpx.Client, headers: dict) -> int:
    body = {"topic": "Choose a database for Apollo", "agents": [{"persona": "architect", "provider": "scripted"}]}
    r = client.post("/api/discussions", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _post_many(discussion_id: int, count: int) -> None:
    """`count` posts by the discussion's owner, written as the room writes them (each with its event and seq)."""
    with session_scope() as session:
        owner = session.exec(
            select(Participant).where(Participant.discussion_id == discussion_id, Participant.is_owner)
        ).one()
        for i in range(count):
            append_post(session, discussion_id, owner, f"Point {i} about Apollo's database.", client_id=None)


# --- the transcript a page at a time ---------------------------------------------------------------------------


def test_a_long_discussion_comes_200_messages_at_a_time_and_pages_to_the_rest_with_no_gap_or_duplicate(api):
    with httpx.Client(base_url=api, timeout=30) as client:
        alex = login(client, "alex")
        did = _create(client, alex)
        _post_many(did, 250)
        every = [m.seq for m in all_messages(did)]
        assert len(every) >= 251  # the topic, then the 250 posts

        first = client.get(f"/api/discussions/{did}", headers=alex).json()
        assert [m["seq"] for m in first["messages"]] == every[-200:]  # the newest 200, in log order
        page = first["messages_page"]
        assert page["limit"] == 200 and page["has_more_before"] and not page["has_more_after"]
        assert page["next_before"] == every[-200] and page["next_after"] is None

        seen, cursor = [m["seq"] for m in first["messages"]], page["next_before"]
        while cursor is not None:
            older = client.get(f"/api/discussions/{did}?before={cursor}&limit=30", headers=alex).json()
            seen = [m["seq"] for m in older["messages"]] + seen
            assert older["messages_page"]["has_more_after"]
            cursor = older["messages_page"]["next_before"]
        assert seen == every  # back to the first message: every one once, in order

        forward, cursor = [], 0
        while cursor is not None:
            newer = client.get(f"/api/discussions/{did}?after={cursor}&limit=500", headers=alex).json()
            forward += [m["seq"] for m in newer["messages"]]
            cursor = newer["messages_page"]["next_after"]
        assert forward == every  # catching up from the start with after= meets the same messages

        for query, field in (
            ("limit=501", "limit"),
            ("limit=0", "limit"),
            ("before=x", "before"),
            ("after=-1", "after"),
        ):
            bad = client.get(f"/api/discussions/{did}?{query}", headers=alex)
            assert bad.status_code == 422, query
            assert field in bad.json()["fields"] and bad.json()["error"]
        both = client.get(f"/api/discussions/{did}?before=9&after=2", headers=alex)
        assert both.status_code == 422 and "not both" in both.json()["error"]


def _discussion(owner: User) -> int:
    """A discussion owned by `owner`, with one agent on an in-process provider (it never runs here)."""
    registry.register_provider("scripted", ScriptedProvider(["Fine."]))
    try:
        discussion = create_discussion(
            topic="Choose a database for Apollo",
            agents=[AgentSpec(persona_key="architect", provider="scripted", model="m")],
            owner=owner,
        )
    finally:
        registry.unregister_provider("scripted")
    assert discussion.id is not None
    return discussion.id


def test_the_transcript_pages_are_cut_on_seq_on_every_database(database):
    from backend.services import transcript  # new with the paging: imported here so the other tests run without it

    did = _discussion(person("alex"))
    _post_many(did, 12)
    every = [m.seq for m in all_messages(did)]

    newest = transcript.list_messages_page(did, limit=5)
    assert [m.seq for m in newest.messages] == every[-5:] and newest.has_more_before and not newest.has_more_after
    middle = transcript.list_messages_page(did, before=every[-5], limit=5)
    assert [m.seq for m in middle.messages] == every[-10:-5] and middle.has_more_before and middle.has_more_after
    caught_up = transcript.list_messages_page(did, after=every[-3], limit=5)
    assert [m.seq for m in caught_up.messages] == every[-2:] and caught_up.has_more_before
    assert not caught_up.has_more_after
    assert transcript.list_messages_page(did, after=every[-1]).messages == []


# --- the audit trail a page at a time --------------------------------------------------------------------------


def test_the_audit_trail_pages_newest_first_100_at_a_time(database):
    alex = person("alex")
    mine, other = _discussion(alex), _discussion(alex)
    with session_scope() as session:
        actor = session.get(User, alex.id)
        for i in range(250):
            audit.record(session, actor=actor, action="test.step", discussion_id=mine, new=str(i))
            if i % 50 == 0:
                audit.record(session, actor=actor, action="test.elsewhere", discussion_id=other, new=str(i))
    every = [e.id for e in audit.trail(mine)][::-1]  # newest first
    assert len(every) >= 250

    pages, page = [], audit.trail_page(mine)
    assert page.newer is None and len(page.entries) == audit.PAGE_SIZE == 100
    while True:
        pages.append([e.id for e in page.entries])
        assert all(e.discussion_id == mine for e in page.entries)
        if page.older is None:
            break
        page = audit.trail_page(mine, before=page.older)
        assert page.newer is not None
    assert [len(p) for p in pages][:2] == [100, 100]
    assert [i for p in pages for i in p] == every  # newest to oldest, each entry once

    back = [pages[-1]]
    page = audit.trail_page(mine, before=pages[-2][-1])  # the oldest page, reached again
    while page.newer is not None:
        page = audit.trail_page(mine, after=page.newer)
        back.append([e.id for e in page.entries])
    assert [i for p in reversed(back) for i in p] == every  # and Newer climbs back to the newest page


# --- live streams per person -----------------------------------------------------------------------------------


def _stream(client: httpx.Client, did: int, headers: dict):
    return client.stream("GET", f"/api/discussions/{did}/events", headers=headers)


def _until(check, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _ninth_is_refused_then_admitted_once_one_closes(api: str) -> None:
    cap = get_settings().max_streams_per_user
    assert cap == 8
    with httpx.Client(base_url=api, timeout=10, limits=httpx.Limits(max_connections=40)) as client:
        alex, sam = login(client, "alex"), login(client, "sam")
        did = _create(client, alex)
        assert (
            client.post(
                f"/api/discussions/{did}/people", json={"username": "sam", "role": "observer"}, headers=alex
            ).status_code
            == 201
        )
        with contextlib.ExitStack() as held:
            opened = [held.enter_context(_stream(client, did, alex)) for _ in range(cap)]
            assert [r.status_code for r in opened] == [200] * cap
            with _stream(client, did, alex) as ninth:
                assert ninth.status_code == 429
                assert int(ninth.headers["retry-after"]) > 0
                ninth.read()
                assert "8 live event streams" in ninth.json()["error"]
            with _stream(client, did, sam) as someone_else:  # the cap is per person
                assert someone_else.status_code == 200
            opened[0].close()  # one stream ends: the client goes away

            def admitted() -> bool:
                with _stream(client, did, alex) as again:
                    return again.status_code == 200

            _until(admitted)


def test_the_ninth_live_stream_of_one_person_gets_429_and_a_slot_frees_when_one_closes(api):
    _ninth_is_refused_then_admitted_once_one_closes(api)
    alex = _user_id("alex")
    _until(lambda: stream_slots.STREAM_SLOTS.held(alex) == 0)  # every slot came back when the streams ended


def _user_id(username: str) -> int:
    with session_scope() as session:
        user = session.exec(select(User).where(User.username == username)).one()
        assert user.id is not None
        return user.id


@pytest.fixture
def shared_redis(monkeypatch) -> Iterator[object]:
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS_TEST_URL)
    try:
        client.ping()
    except redis.RedisError as exc:  # pragma: no cover - Redis runs on every dev and CI machine
        pytest.fail(f"Redis is not reachable at {REDIS_TEST_URL}: {exc}")
    client.flushdb()
    monkeypatch.setenv("REDIS_URL", REDIS_TEST_URL)
    get_settings.cache_clear()
    yield client
    client.flushdb()
    client.close()
    get_settings.cache_clear()


def test_with_redis_the_cap_counts_streams_other_workers_hold(shared_redis, api):
    with httpx.Client(base_url=api, timeout=10) as client:
        alex = login(client, "alex")
        did = _create(client, alex)
        key = f"maestro:streams:{_user_id('alex')}"
        now = time.time()
        # Another worker holds 8 of Alex's streams; two more entries are from a worker that died (expired).
        shared_redis.zadd(key, {f"w2-{i}": now + 60 for i in range(8)} | {"dead-1": now - 5, "dead-2": now - 1})
        with _stream(client, did, alex) as refused:
            assert refused.status_code == 429
        shared_redis.zrem(key, "w2-0")  # that worker's stream ended
        with _stream(client, did, alex) as admitted:
            assert admitted.status_code == 200
            members = {m.decode() for m in shared_redis.zrange(key, 0, -1)}
            assert len(members) == 8 and not {"dead-1", "dead-2"} & members  # its own entry, the dead ones gone
            assert 0 < shared_redis.ttl(key) <= stream_slots.SLOT_TTL_S
        _until(lambda: shared_redis.zcard(key) == 7)  # closing gave the slot back in Redis too


# --- /metrics is the operator's ---------------------------------------------------------------------------------


def _outward_address() -> str | None:
    """This machine's address on its network (not loopback), if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing interface
        except OSError:
            return None
        address = s.getsockname()[0]
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def test_metrics_with_a_token_set_need_it_and_without_one_answer_this_machine_only(sqlite_db, monkeypatch):
    with serve_api() as url, httpx.Client(base_url=url, timeout=10) as client:
        local = client.get("/metrics")
        assert local.status_code == 200 and "maestro_model_calls_total" in local.text
        relayed = client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})  # a proxy on this machine
        assert relayed.status_code == 403 and "MAESTRO_METRICS_TOKEN" in relayed.json()["error"]

        monkeypatch.setenv("MAESTRO_METRICS_TOKEN", "scrape-secret-123")
        get_settings.cache_clear()
        assert client.get("/metrics").status_code == 401  # even from this machine
        wrong = client.get("/metrics", headers={"Authorization": "Bearer scrape-secret-124"})
        assert wrong.status_code == 401 and "MAESTRO_METRICS_TOKEN" in wrong.json()["error"]
        right = client.get("/metrics", headers={"Authorization": "Bearer scrape-secret-123"})
        assert right.status_code == 200 and "maestro_model_calls_total" in right.text
        monkeypatch.delenv("MAESTRO_METRICS_TOKEN")
        get_settings.cache_clear()

    address = _outward_address()
    if address is None:
        pytest.skip("no network address besides loopback to call from")
    with serve_api(address) as url, httpx.Client(base_url=url, timeout=10) as client:
        remote = client.get("/metrics")
        assert remote.status_code == 403 and "MAESTRO_METRICS_TOKEN" in remote.json()["error"]


# --- metric labels ------------------------------------------------------------------------------------------------


def _model_labels() -> set[str]:
    body, _ = obs.render()
    return {
        s.labels["model"]
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
        if s.name == "maestro_model_calls_total"
    }


def test_a_model_name_nobody_priced_is_labelled_other_so_labels_stay_bounded():
    invented = f"my-model-{uuid.uuid4().hex}"
    before = (
        obs.REGISTRY.get_sample_value(
            "maestro_model_calls_total", {"provider": "openai_compatible", "model": "other", "status": "ok"}
        )
        or 0.0
    )
    obs.record_call("openai_compatible", invented, status="ok", latency_s=0.1)
    obs.record_call("openai", invented, status="failed", error_kind=f"kind-{invented}", latency_s=0.1)
    obs.record_call(f"vendor-{invented}", "gpt-5.4-mini", status="ok", latency_s=0.1)

    labels = _model_labels()
    assert not any(invented in label for label in labels)
    after = obs.REGISTRY.get_sample_value(
        "maestro_model_calls_total", {"provider": "openai_compatible", "model": "other", "status": "ok"}
    )
    assert after == before + 1
    assert obs.REGISTRY.get_sample_value("maestro_model_errors_total", {"provider": "openai", "kind": "other"})
    assert obs.REGISTRY.get_sample_value(
        "maestro_model_calls_total", {"provider": "other", "model": "other", "status": "ok"}
    )

    # Models the price table knows (a snapshot date counts as its alias) and the offline model keep their names.
    assert obs.model_label("openai", "gpt-5.4-mini") == "gpt-5.4-mini"
    assert obs.model_label("anthropic", "claude-sonnet-4-5-20250929") == "claude-sonnet-4-5"
    assert obs.model_label("offline", OFFLINE_MODEL_ID) == OFFLINE_MODEL_ID
    assert obs.model_label("anthropic", "gpt-5.4-mini") == "other"  # known elsewhere, not for this provider
    assert obs.model_label("openai_compatible", "*") == "other"
    assert obs.provider_label("gemini") == "gemini" and obs.provider_label("Gemini ") == "other"
