"""The REST + streaming API, over real HTTP: a uvicorn server on 127.0.0.1 serving Maestro's routes, the real
runner, engine, services and SQLite, and agents on the in-process scripted provider (a model that streams words
with a small delay). The client is httpx, as another tool driving Maestro would be."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest

from backend.humans import polls
from backend.providers import registry
from backend.providers.scripted import ScriptedProvider
from tests.api_server import login, serve_api
from tests.apollo_model import OPTIONS, model_reply
from tests.people import person

REPLY = "PostgreSQL fits Apollo: relational data, strong consistency and a team that already runs it well."
PASSWORD = "correct horse"


@pytest.fixture
def api(sqlite_db) -> Iterator[str]:
    """The API's base URL; agents on "scripted" stream REPLY word by word, 20 ms apart."""
    registry.register_provider("scripted", ScriptedProvider([REPLY], token_delay=0.02))
    with serve_api() as url:
        yield url
    registry.unregister_provider("scripted")


def _create(client: httpx.Client, headers: dict, **extra) -> dict:
    body = {
        "topic": "Choose a database for Apollo",
        "agents": [
            {"persona": "architect", "provider": "scripted", "model": "m"},
            {"persona": "security", "provider": "scripted", "model": "m"},
        ],
        "rounds": 1,
        **extra,
    }
    r = client.post("/api/discussions", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


def _sse(lines: Iterator[str]) -> Iterator[dict]:
    """Parse a Server-Sent Events stream into {"id", "event", "data"} dicts (comments kept as event ":")."""
    frame: dict = {}
    for line in lines:
        if line == "":
            if frame:
                yield frame
            frame = {}
        elif line.startswith(":"):
            yield {"event": ":", "data": line}
        else:
            key, _, value = line.partition(": ")
            frame[key] = json.loads(value) if key == "data" else value


def test_a_tool_creates_runs_and_follows_a_discussion_token_by_token(api):
    with httpx.Client(base_url=api, timeout=30) as client:
        alex = login(client, "alex")
        created = _create(client, alex)
        did = created["id"]
        assert [p["name"] for p in created["participants"] if p["kind"] == "agent"] == ["Architect", "Security"]
        assert client.get(f"/api/discussions/{did}/preflight", headers=alex).json()["ready"] is True

        run = client.post(f"/api/discussions/{did}/run", headers=alex)
        assert run.status_code == 202, run.text
        frames = []
        arrived: list[float] = []
        with client.stream("GET", f"/api/discussions/{did}/events?until=finished", headers=alex) as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            for frame in _sse(r.iter_lines()):
                frames.append(frame)
                arrived.append(time.monotonic())

    persisted = [f for f in frames if "id" in f]
    seqs = [int(f["id"]) for f in persisted]
    assert seqs == list(range(1, len(seqs) + 1))  # the whole log from the start, in order, no gap or duplicate
    assert persisted[-1]["event"] == "discussion_finished" and persisted[-1]["data"]["status"] == "completed"
    completed = [f["data"] for f in persisted if f["event"] == "turn_completed"]
    assert [c["content"] for c in completed] == [REPLY, REPLY]
    # Text arrived in pieces while each turn streamed, before that turn completed, and adds up to the reply.
    for turn in completed:
        pieces = [
            (i, f["data"])
            for i, f in enumerate(frames)
            if f["event"] == "text" and f["data"]["start_seq"] == turn["start_seq"]
        ]
        done_at = next(
            i
            for i, f in enumerate(frames)
            if f.get("event") == "turn_completed" and f["data"]["start_seq"] == turn["start_seq"]
        )
        assert len(pieces) >= 2 and all(i < done_at for i, _ in pieces)
        text = ""
        for _, piece in pieces:
            text = text[: piece["start"]] + piece["text"]
        assert REPLY.startswith(text) and len(text) > len(REPLY) // 2


def test_a_client_that_reconnects_with_last_event_id_misses_nothing_and_sees_nothing_twice(api):
    with httpx.Client(base_url=api, timeout=30) as client:
        alex = login(client, "alex")
        did = _create(client, alex, rounds=2)["id"]
        assert client.post(f"/api/discussions/{did}/run", headers=alex).status_code == 202
        seen: list[int] = []
        with client.stream("GET", f"/api/discussions/{did}/events", headers=alex) as r:
            for frame in _sse(r.iter_lines()):
                if "id" in frame:
                    seen.append(int(frame["id"]))
                if frame["event"] == "turn_completed":
                    break  # the connection drops mid-discussion
        with client.stream(
            "GET", f"/api/discussions/{did}/events?until=finished", headers={**alex, "Last-Event-ID": str(seen[-1])}
        ) as r:
            seen += [int(f["id"]) for f in _sse(r.iter_lines()) if "id" in f]
        detail = client.get(f"/api/discussions/{did}", headers=alex).json()
    assert seen == list(range(1, detail["last_seq"] + 1))
    assert detail["status"] == "completed" and len([m for m in detail["messages"] if m["author_kind"] == "agent"]) == 4
    # A finished discussion followed from its end has nothing more to send: the stream ends at once.
    with httpx.Client(base_url=api, timeout=5) as client:
        r = client.get(
            f"/api/discussions/{did}/events?until=finished", headers={**alex, "Last-Event-ID": str(seen[-1])}
        )
        assert r.status_code == 204


def test_people_post_and_the_same_client_id_twice_posts_once(api):
    with httpx.Client(base_url=api, timeout=30) as client:
        alex = login(client, "alex")
        did = _create(client, alex)["id"]
        first = client.post(
            f"/api/discussions/{did}/messages", json={"content": "Budget is tight.", "client_id": "c1"}, headers=alex
        )
        again = client.post(
            f"/api/discussions/{did}/messages", json={"content": "Budget is tight.", "client_id": "c1"}, headers=alex
        )
        assert first.status_code == again.status_code == 201 and first.json()["id"] == again.json()["id"]
        messages = client.get(f"/api/discussions/{did}", headers=alex).json()["messages"]
        assert [(m["author"], m["content"]) for m in messages if m["author_kind"] == "human"][-1] == (
            "Alex",
            "Budget is tight.",
        )
        assert len([m for m in messages if m["content"] == "Budget is tight."]) == 1


def test_who_may_do_what_comes_from_the_token_never_from_the_body(api):
    with httpx.Client(base_url=api, timeout=30) as client:
        alex = login(client, "alex")
        did = _create(client, alex)["id"]
        # No token, a forged token, and the browser cookie (read or write): 401, nothing changes.
        assert client.get(f"/api/discussions/{did}").status_code == 401
        assert client.get(f"/api/discussions/{did}", headers={"Authorization": "Bearer forged"}).status_code == 401
        token = alex["Authorization"].split()[1]
        with httpx.Client(base_url=api, cookies={"maestro_session": token}) as browser_like:
            assert browser_like.get(f"/api/discussions/{did}").status_code == 401  # the API takes the bearer only
            cookie_write = browser_like.post(f"/api/discussions/{did}/messages", json={"content": "hi"})
        assert cookie_write.status_code == 401
        # A stranger sees no such discussion, for reads and writes alike.
        olga = login(client, "olga")
        assert client.get(f"/api/discussions/{did}", headers=olga).status_code == 404
        assert client.post(f"/api/discussions/{did}/run", headers=olga).status_code == 404
        assert client.get(f"/api/discussions/{did}/events", headers=olga).status_code == 404
        # An observer reads but may not write; a field claiming another author or role is refused, not obeyed.
        otto = login(client, "otto")
        invited = client.post(
            f"/api/discussions/{did}/people", json={"username": "otto", "role": "observer"}, headers=alex
        )
        assert invited.status_code == 201 and invited.json()["role"] == "observer"
        assert (
            client.post(
                f"/api/discussions/{did}/people", json={"username": "olga", "role": "must_approve"}, headers=otto
            ).status_code
            == 403
        )
        assert client.get(f"/api/discussions/{did}", headers=otto).status_code == 200
        refused = client.post(f"/api/discussions/{did}/messages", json={"content": "I approve."}, headers=otto)
        assert refused.status_code == 403 and "observer" in refused.json()["error"].lower()
        forged = client.post(
            f"/api/discussions/{did}/messages",
            json={"content": "x", "author": "Alex", "role": "must_approve"},
            headers=otto,
        )
        assert forged.status_code == 422 and {"author", "role"} <= set(forged.json()["fields"])
        assert client.post(f"/api/discussions/{did}/run", headers=otto).status_code == 403
        humans = [
            m
            for m in client.get(f"/api/discussions/{did}", headers=alex).json()["messages"]
            if m["author_kind"] == "human"
        ]
        assert [m["author"] for m in humans] == ["Alex"]  # only the opening question


def test_bad_input_gets_a_clear_error_and_creates_nothing(api):
    with httpx.Client(base_url=api, timeout=30) as client:
        alex = login(client, "alex")
        bad = client.post("/api/discussions", json={"topic": " ", "agents": [], "rounds": 1}, headers=alex)
        assert bad.status_code == 422 and {"topic", "agents"} <= set(bad.json()["fields"])
        unknown = client.post(
            "/api/discussions",
            json={"topic": "T", "agents": [{"persona": "architect", "provider": "nope"}]},
            headers=alex,
        )
        assert unknown.status_code == 422 and "nope" in unknown.json()["error"]
        assert client.post("/api/discussions", content=b"{not json", headers=alex).status_code == 422
        assert client.get("/api/discussions", headers=alex).json()["discussions"] == []
        # A 1 MB message is refused before it is read whole, with the limit in the answer; nothing is posted.
        did = _create(client, alex)["id"]
        huge = client.post(f"/api/discussions/{did}/messages", json={"content": "x" * 1_000_000}, headers=alex)
        assert huge.status_code == 413 and "20,000 characters" in huge.json()["error"]
        long = client.post(f"/api/discussions/{did}/messages", json={"content": "x" * 20_001}, headers=alex)
        assert long.status_code == 422 and "20000" in long.json()["error"].replace(",", "")
        humans = [
            m
            for m in client.get(f"/api/discussions/{did}", headers=alex).json()["messages"]
            if m["author_kind"] == "human"
        ]
        assert len(humans) == 1  # only the opening question
        wrong = client.post("/api/session", json={"username": "alex", "password": "nope"})
        assert wrong.status_code == 422 and wrong.json()["error"] == "Wrong username or password."


def _until(client: httpx.Client, path: str, headers: dict, ready, wait_s: float = 20) -> dict:
    """GET `path` until `ready(body)` holds (what a tool without the event stream would do)."""
    deadline = time.monotonic() + wait_s
    while True:
        body = client.get(path, headers=headers).json()
        if ready(body):
            return body
        assert time.monotonic() < deadline, f"gave up waiting on {path}: {body}"
        time.sleep(0.05)


def test_a_client_guessing_passwords_is_told_to_wait_with_429_and_retry_after(api):
    from backend.humans import sign_in_limit

    person("alex")
    with httpx.Client(base_url=api) as client:
        for _ in range(sign_in_limit.MAX_FAILURES):
            r = client.post("/api/session", json={"username": "alex", "password": "guess"})
            assert r.status_code == 422
        r = client.post("/api/session", json={"username": "alex", "password": PASSWORD})
        assert r.status_code == 429 and "Too many failed sign-ins" in r.json()["fields"]["password"]
        assert 0 < int(r.headers["retry-after"]) <= sign_in_limit.WINDOW_MINUTES * 60


def test_the_apollo_story_through_the_api_ends_in_a_decision_the_cto_approves(api, monkeypatch):
    monkeypatch.setattr(polls, "CHANGE_OF_MIND_S", 0.5)
    registry.register_provider("scripted", ScriptedProvider(model_reply))
    with httpx.Client(base_url=api, timeout=30) as client:
        sam, pat, cto = login(client, "sam"), login(client, "pat"), login(client, "cto")
        agents = [
            {"persona": p, "provider": "scripted", "model": "m"} for p in ("architect", "backend_engineer", "security")
        ]
        ask = {"prompt": "Which factor matters most?", "options": ["Cost", "Consistency"], "after_round": 1}
        created = client.post(
            "/api/discussions",
            json={
                "topic": "Choose a database for Apollo",
                "agents": agents,
                "rounds": 1,
                "role": "observer",
                "vote_rule": "plurality",
                "vote_options": OPTIONS,
                "checkpoints": [ask],
            },
            headers=sam,
        )
        assert created.status_code == 201, created.text
        did = created.json()["id"]
        room = f"/api/discussions/{did}"
        not_ready = client.post(f"{room}/run", headers=sam)
        assert not_ready.status_code == 409 and "decision maker" in not_ready.json()["error"].lower()
        for who, role in (("pat", "decision_maker"), ("cto", "must_approve")):
            assert client.post(f"{room}/people", json={"username": who, "role": role}, headers=sam).status_code == 201
        assert client.post(f"{room}/run", headers=sam).status_code == 202

        # The blocking choice reaches the PM; the CTO may not answer it; the PM does, once.
        prompt = _until(client, room, sam, lambda d: d["prompts"])["prompts"][0]
        assert prompt["options"] == ["Cost", "Consistency"] and prompt["blocking"]
        assert (
            client.post(f"{room}/prompts/{prompt['id']}/answer", json={"value": "Cost"}, headers=cto).status_code == 403
        )
        answer = {"value": "Consistency", "client_id": "a1"}
        assert client.post(f"{room}/prompts/{prompt['id']}/answer", json=answer, headers=pat).status_code == 200

        # The vote: the agents vote through the engine, the PM through the API.
        poll = _until(client, room, pat, lambda d: d["polls"])["polls"][0]
        postgres = next(o["id"] for o in poll["options"] if o["text"] == "PostgreSQL")
        vote = {"ranking": [postgres], "reason": "Consistency first.", "client_id": "v1"}
        assert client.post(f"{room}/polls/{poll['id']}/votes", json=vote, headers=pat).status_code == 200
        card = _until(client, room, cto, lambda d: d["decision"])["decision"]
        assert (card["chosen_option"], card["support"]) == ("PostgreSQL", "3 of 4 ranked PostgreSQL first")
        assert [d["who"] for d in card["dissent"]] == ["Security"]

        # The agents have stopped (awaiting approval): a stream from the log's end has nothing to wait for.
        end = _until(client, room, sam, lambda d: d["status"] == "awaiting_approval")["last_seq"]
        assert client.get(f"{room}/events?until=finished&after={end}", headers=sam).status_code == 204

        # Only the must-approve person signs off, and exactly once.
        sign = {"outcome": "approved", "conditions": "Budget review in Q3.", "client_id": "s1"}
        assert client.post(f"{room}/decisions/{card['id']}/sign-off", json=sign, headers=pat).status_code == 403
        signed = client.post(f"{room}/decisions/{card['id']}/sign-off", json=sign, headers=cto)
        assert signed.status_code == 200 and signed.json()["signoff"]["conditions"] == "Budget review in Q3."
        again = client.post(f"{room}/decisions/{card['id']}/sign-off", json={**sign, "client_id": "s2"}, headers=cto)
        assert again.status_code == 422 and "Already approved" in again.json()["error"]
        detail = client.get(room, headers=sam).json()
    assert detail["decision"]["signoff"]["outcome"] == "approved" and detail["prompts"] == []
    answered = [m["content"] for m in detail["messages"]]
    assert any("Consistency" in c for c in answered)  # the PM's answer entered the transcript


def test_an_agent_named_by_persona_alone_runs_where_its_persona_maps(api):
    from backend.services.personas import defaults_by_key

    with httpx.Client(base_url=api, timeout=30) as client:
        alex = login(client, "alex")
        agents = [{"persona": "architect"}, {"persona": "security", "provider": "offline"}]
        created = client.post("/api/discussions", json={"topic": "T", "agents": agents}, headers=alex)
        assert created.status_code == 201, created.text
    mapped = defaults_by_key()["architect"]
    architect, security = [p for p in created.json()["participants"] if p["kind"] == "agent"]
    assert (architect["provider"], architect["model"]) == (mapped.provider, mapped.model)
    assert (security["provider"], security["model"]) == ("offline", registry.default_model("offline"))
