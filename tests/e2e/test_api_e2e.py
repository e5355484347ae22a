"""The REST + streaming API on the real app: a person signs up in Chromium, a tool logs in as them over HTTP,
creates a discussion on the offline model, runs it and follows it token by token over Server-Sent Events; the
person's browser shows the same room, with the same messages."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
from playwright.sync_api import expect

from tests.e2e.helpers import sign_up

pytestmark = pytest.mark.e2e
TURN_TIMEOUT_S = 180


def test_a_tool_drives_a_discussion_that_people_follow_in_the_room(new_context, app_url):
    ctx = new_context(signed_in=False)
    username = f"tool-{uuid.uuid4().hex[:8]}"
    sign_up(ctx, username, "Tess")
    with httpx.Client(base_url=app_url, timeout=TURN_TIMEOUT_S) as client:
        login = client.post("/api/session", json={"username": username, "password": "correct horse battery"})
        assert login.status_code == 201, login.text
        auth = {"Authorization": f"Bearer {login.json()['token']}"}
        agents = [{"persona": p, "provider": "offline"} for p in ("architect", "security")]
        created = client.post(
            "/api/discussions",
            json={"topic": "Choose a database for Apollo", "agents": agents, "rounds": 1},
            headers=auth,
        )
        assert created.status_code == 201, created.text
        did = created.json()["id"]
        assert client.post(f"/api/discussions/{did}/run", headers=auth).status_code == 202

        events, texts = [], 0
        with client.stream("GET", f"/api/discussions/{did}/events?until=finished", headers=auth) as stream:
            kind = None
            for line in stream.iter_lines():
                if line.startswith("event: "):
                    kind = line.removeprefix("event: ")
                elif line.startswith("data: ") and kind == "text":
                    texts += 1
                elif line.startswith("data: "):
                    events.append(json.loads(line.removeprefix("data: ")))
        detail = client.get(f"/api/discussions/{did}", headers=auth).json()

    assert events[-1]["type"] == "discussion_finished" and events[-1]["status"] == "completed"
    turns = [e for e in events if e["type"] in ("turn_completed", "turn_failed")]
    assert len(turns) == 2 and texts >= 2  # streamed text arrived before the turns completed
    agent_messages = [m for m in detail["messages"] if m["author_kind"] == "agent"]
    assert [m["author"] for m in agent_messages] == ["Architect", "Security"]

    page = ctx.new_page()
    page.goto(f"/room/{did}")
    expect(page.locator("#discussion .message.agent")).to_have_count(2)
    expect(page.locator("#discussion .message.agent").first).to_contain_text("Architect")
