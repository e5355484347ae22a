"""Deliberation memory over the REST API, over real HTTP: a uvicorn server on 127.0.0.1, the real runner, engine,
services, SQLite and embedding model (all-MiniLM-L6-v2), and agents on a scripted provider that counts its calls.

A discussion is created, run and finished for real (a round-robin without a vote: its final synthesis is what is
remembered). Asked again in the same context, creating it answers from memory with no provider call; another
context, `fresh`, a stranger and a forgotten result all run fresh.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from sqlmodel import col, select

from backend.db import session_scope
from backend.memory import embedder, recall
from backend.models import MemoryEntry
from backend.providers import registry
from backend.providers.scripted import ScriptedProvider
from backend.services import memory as memory_service
from tests.api_server import login, serve_api

REPLY = "PostgreSQL fits Apollo: relational data and a team that already runs it."
TOPIC = "Choose a database for Apollo"
CONTEXT = {"preferred_language": "Python", "security_level": "high", "existing_stack": ["postgres", "redis"]}


@pytest.fixture
def provider() -> Iterator[ScriptedProvider]:
    scripted = ScriptedProvider([REPLY])
    registry.register_provider("scripted", scripted)
    yield scripted
    registry.unregister_provider("scripted")


@pytest.fixture
def api(sqlite_db, provider) -> Iterator[str]:
    """The API's base URL over a fresh database; this process's hot memory tier starts empty with it."""
    recall.reset_for_tests()
    with serve_api() as url:
        yield url
    recall.reset_for_tests()


def _create(client: httpx.Client, headers: dict, topic: str = TOPIC, status: int = 201, **extra) -> dict:
    body = {
        "topic": topic,
        "agents": [
            {"persona": "architect", "provider": "scripted", "model": "m"},
            {"persona": "security", "provider": "scripted", "model": "m"},
        ],
        "rounds": 1,
        **extra,
    }
    r = client.post("/api/discussions", json=body, headers=headers)
    assert r.status_code == status, r.text
    return r.json()


def remembered(discussion_id: int) -> int:
    """The id of the live entry memory keeps for a finished discussion: the end of its run remembered the result."""
    with session_scope() as s:
        live = select(MemoryEntry.id).where(
            MemoryEntry.discussion_id == discussion_id, col(MemoryEntry.invalidated_at).is_(None)
        )
        entry_id = s.exec(live).first()
    assert entry_id is not None, f"discussion {discussion_id} finished, but memory kept nothing"
    return entry_id


def _run_to_the_end(client: httpx.Client, headers: dict, did: int) -> None:
    assert client.post(f"/api/discussions/{did}/run", headers=headers).status_code == 202
    with client.stream("GET", f"/api/discussions/{did}/events?until=finished", headers=headers) as r:
        assert r.status_code == 200
        for _ in r.iter_lines():
            pass
    assert client.get(f"/api/discussions/{did}", headers=headers).json()["status"] == "completed"
    remembered(did)


def _settled(client: httpx.Client, headers: dict, **extra) -> int:
    """A discussion of TOPIC in CONTEXT, run and finished for real: memory keeps its final synthesis."""
    created = _create(client, headers, context=CONTEXT, **extra)
    assert created["memory"]["reused"] is False
    _run_to_the_end(client, headers, created["id"])
    return created["id"]


def test_the_same_question_in_the_same_context_is_answered_from_memory_with_no_provider_call(api, provider):
    with httpx.Client(base_url=api, timeout=60) as client:
        alex = login(client, "alex")
        first = _create(client, alex, context=CONTEXT)
        assert first["memory"] == {
            "reused": False,
            "checked": True,
            "refused_near_misses": 0,
            "unavailable": None,
            "related": [],
        }
        assert first["context"]["security_level"] == "high"
        assert first["context"]["existing_stack"] == ["postgresql", "redis"]  # normalised as memory compares it
        assert first["memory_entry_id"] is None
        _run_to_the_end(client, alex, first["id"])
        calls = provider.calls
        assert calls == 2

        # The check says what a create would do: a hit, from the discussion just finished.
        same_context = {**CONTEXT, "preferred_language": "python", "existing_stack": ["redis", "postgresql"]}
        check = client.post("/api/memory/check", json={"question": TOPIC, "context": same_context}, headers=alex)
        assert check.status_code == 200, check.text
        hit = check.json()["hit"]
        assert hit is not None and hit["source_discussion_id"] == first["id"]
        assert hit["match_percent"] >= 99 and hit["kind"] == "synthesis" and "PostgreSQL" in hit["outcome"]
        assert check.json()["unavailable"] is None

        again = _create(client, alex, context=same_context)
        memory = again["memory"]
        assert memory["reused"] is True
        assert memory["entry_id"] == hit["entry_id"] and memory["source_discussion_id"] == first["id"]
        assert set(memory) == {
            "reused",
            "entry_id",
            "source_discussion_id",
            "match_percent",
            "saves_usd",
            "saves_tokens",
            "saves_seconds",
            "decided_at",
            "decided_by",
            "outcome",
        }
        assert memory["saves_tokens"] > 0  # the source's two turns
        assert again["id"] != first["id"] and again["status"] == "completed"
        assert again["memory_entry_id"] == hit["entry_id"]
        assert not [p for p in again["participants"] if p["kind"] == "agent"]
        shown = "\n".join(m["content"] for m in again["messages"])
        assert f"[MEMORY] From discussion #{first['id']}" in shown and REPLY in shown
        assert provider.calls == calls  # no provider was called for the reuse

        listed = client.get("/api/memory", headers=alex)
        assert listed.status_code == 200, listed.text
        [entry] = listed.json()["entries"]
        assert entry["id"] == hit["entry_id"] and entry["hits"] == 1 and entry["live"] is True
        assert entry["can_forget"] is True and entry["last_hit_at"] is not None
        assert entry["saved_tokens"] == memory["saves_tokens"]
        # A discussion answered from memory has nothing to run: the reuse is the whole of it.
        shown_again = client.get(f"/api/discussions/{again['id']}", headers=alex).json()
        assert shown_again["memory_entry_id"] == hit["entry_id"] and shown_again["status"] == "completed"


def test_another_context_fresh_or_a_near_miss_runs_fresh(api, provider):
    with httpx.Client(base_url=api, timeout=60) as client:
        alex = login(client, "alex")
        did = _settled(client, alex)
        calls = provider.calls

        other = _create(client, alex, context={**CONTEXT, "security_level": "standard"})
        assert other["memory"]["reused"] is False and other["memory"]["checked"] is True
        assert [r["source_discussion_id"] for r in other["memory"]["related"]] == [did]  # related, not the same

        no_context = _create(client, alex)
        assert no_context["memory"]["reused"] is False

        fresh = _create(client, alex, context=CONTEXT, fresh=True)
        assert fresh["memory"] == {
            "reused": False,
            "checked": False,
            "refused_near_misses": 0,
            "unavailable": None,
            "related": [],
        }
        assert [p["name"] for p in fresh["participants"] if p["kind"] == "agent"] == ["Architect", "Security"]

        near = client.post(
            "/api/memory/check", json={"question": "Choose a database for Hermes", "context": CONTEXT}, headers=alex
        )
        assert near.status_code == 200 and near.json()["hit"] is None
        assert provider.calls == calls  # creating runs nothing by itself


def test_a_stranger_is_never_shown_a_result_from_a_discussion_they_are_not_in(api):
    with httpx.Client(base_url=api, timeout=60) as client:
        alex = login(client, "alex")
        _settled(client, alex)
        bob = login(client, "bob")
        check = client.post("/api/memory/check", json={"question": TOPIC, "context": CONTEXT}, headers=bob)
        assert check.status_code == 200
        assert check.json() == {"hit": None, "related": [], "refused_near_misses": 0, "unavailable": None}
        created = _create(client, bob, context=CONTEXT)
        assert created["memory"]["reused"] is False and created["memory"]["related"] == []
        assert client.get("/api/memory", headers=bob).json() == {"entries": []}


def test_the_owner_forgets_a_result_and_it_is_never_served_again(api):
    with httpx.Client(base_url=api, timeout=60) as client:
        alex = login(client, "alex")
        _settled(client, alex)
        [entry] = client.get("/api/memory", headers=alex).json()["entries"]
        bob = login(client, "bob")
        refused = client.delete(f"/api/memory/{entry['id']}", headers=bob)  # not a member: not even told it exists
        assert refused.status_code == 404, refused.text
        assert client.delete("/api/memory/999999", headers=alex).status_code == 404
        assert client.delete(f"/api/memory/{entry['id']}").status_code == 401

        forgotten = client.delete(f"/api/memory/{entry['id']}", headers=alex)
        assert forgotten.status_code == 204, forgotten.text
        [after] = client.get("/api/memory", headers=alex).json()["entries"]
        assert after["live"] is False and after["can_forget"] is False and "forgotten" in after["status"]
        check = client.post("/api/memory/check", json={"question": TOPIC, "context": CONTEXT}, headers=alex)
        assert check.json()["hit"] is None
        assert _create(client, alex, context=CONTEXT)["memory"]["reused"] is False


def test_a_person_keeps_a_default_context(api):
    with httpx.Client(base_url=api, timeout=30) as client:
        alex = login(client, "alex")
        empty = client.get("/api/me/context", headers=alex)
        assert empty.status_code == 200, empty.text
        assert empty.json()["summary"] == "no context"
        saved = client.put(
            "/api/me/context", json={"security_level": "HIGH", "existing_stack": ["Postgres"]}, headers=alex
        )
        assert saved.status_code == 200, saved.text
        assert saved.json()["context"]["security_level"] == "high"
        assert saved.json()["context"]["existing_stack"] == ["postgresql"]
        assert client.get("/api/me/context", headers=alex).json() == saved.json()
        bob = login(client, "bob")
        assert client.get("/api/me/context", headers=bob).json()["summary"] == "no context"  # one's own only

        bad = client.put("/api/me/context", json={"team_size": "huge"}, headers=alex)
        assert bad.status_code == 422 and "team_size is one of small, medium, large" in bad.json()["fields"]["context"]
        unknown = client.put("/api/me/context", json={"budget": "high"}, headers=alex)
        assert unknown.status_code == 422 and "budget" in unknown.json()["fields"]
        assert client.get("/api/me/context", headers=alex).json() == saved.json()  # a refused change changes nothing
        cleared = client.put("/api/me/context", json={}, headers=alex)
        assert cleared.status_code == 200 and cleared.json()["summary"] == "no context"
        assert client.get("/api/me/context").status_code == 401


def test_bad_input_is_refused_with_the_field_named(api):
    with httpx.Client(base_url=api, timeout=30) as client:
        alex = login(client, "alex")
        bad = _create(client, alex, status=422, context={"security_level": "extreme"})
        assert "security_level is one of standard, high, enterprise" in bad["fields"]["context"]
        too_long = _create(client, alex, status=422, context={"preferred_language": "x" * 41})
        assert "at most 40" in too_long["fields"]["context"]
        unknown = _create(client, alex, status=422, context={"budget": 3})
        assert "context.budget" in unknown["fields"]
        blank = client.post("/api/memory/check", json={"question": "  "}, headers=alex)
        assert blank.status_code == 422 and "topic" in blank.json()["fields"]
        missing = client.post("/api/memory/check", json={}, headers=alex)
        assert missing.status_code == 422 and "question" in missing.json()["fields"]
        assert client.post("/api/memory/check", json={"question": TOPIC}).status_code == 401
        assert client.get("/api/discussions", headers=alex).json() == {"discussions": []}  # nothing was created


def test_when_memory_is_unavailable_the_discussion_still_runs_fresh_and_says_why(api, monkeypatch):
    with httpx.Client(base_url=api, timeout=60) as client:
        alex = login(client, "alex")
        _settled(client, alex)
        monkeypatch.setattr(embedder, "_model", None)  # as if the model had failed to load in this process
        monkeypatch.setattr(embedder, "_failure", "OSError: no weights here")
        created = _create(client, alex, context=CONTEXT)
        assert created["memory"]["reused"] is False and created["memory"]["checked"] is False
        assert "no weights here" in created["memory"]["unavailable"]
        check = client.post("/api/memory/check", json={"question": TOPIC, "context": CONTEXT}, headers=alex)
        assert check.status_code == 200 and "no weights here" in check.json()["unavailable"]

        def broken(*args, **kwargs):
            raise RuntimeError("the index is corrupt")

        monkeypatch.setattr(memory_service, "check", broken)  # a failure inside memory never fails a create
        created = _create(client, alex, context=CONTEXT)
        assert created["memory"]["reused"] is False and "lookup failed" in created["memory"]["unavailable"]
        assert [p["name"] for p in created["participants"] if p["kind"] == "agent"] == ["Architect", "Security"]
