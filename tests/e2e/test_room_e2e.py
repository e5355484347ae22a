"""The room, end to end: the real app (offline SmolLM2 agents, 40 tokens a turn) driven by several Chromium contexts.

Every context is a separate human. Run with:  pytest -m e2e tests/e2e -v
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.e2e.helpers import (
    ROOM_URL,
    STREAM_RECORDER_JS,
    TURN_TIMEOUT_MS,
    Agent,
    configure_agent,
    create_discussion,
    discussion_rows,
    fill,
    fill_new_form,
    message_classes,
    open_room,
    saw_live_growth,
    stream_lengths,
    transcript,
    wait_finished,
    wait_for,
)
from tests.providers.wire_servers import OpenAIScript, WireServer

pytestmark = pytest.mark.e2e

APOLLO = "Choose a database for Apollo"
PHONE = {"width": 390, "height": 844}
SHOTS = Path("/tmp/shots")


def post(page, name: str, text: str) -> None:
    """Post through the composer as `name` and wait until the message is in this page's transcript."""
    before = page.locator("#discussion .message.human").count()
    fill(page, page.locator("#my-name"), name)
    fill(page, page.locator("#composer-input"), text)
    page.click("#send-btn")
    expect(page.locator("#discussion .message.human")).to_have_count(before + 1)
    expect(page.locator("#composer-input")).to_have_value("")


def test_two_viewers_see_the_same_live_stream(new_context, shared_rooms):
    host, viewer, reloader = new_context(), new_context(), new_context()
    for ctx in (host, viewer, reloader):
        ctx.add_init_script(STREAM_RECORDER_JS)

    a = host.new_page()
    room = create_discussion(a, APOLLO, [Agent(), Agent()], rounds=1)
    expect(a.locator("#participants .agent-row")).to_have_count(2)
    expect(a.locator("#room-status")).to_have_text("draft")
    b = open_room(viewer, room, APOLLO)
    c = open_room(reloader, room, APOLLO)
    for page in (a, b, c):
        expect(page.locator("#discussion .message")).to_have_count(1)
        expect(page.locator("#run-agents")).to_be_enabled()

    a.click("#run-agents")
    for page in (a, b):
        expect(page.locator("#room-status")).to_have_text(re.compile("running|completed"))

    # C reloads while the first turn is streaming; its fresh page must catch up and follow the rest live.
    wait_for(lambda: any(n > 0 for seq in stream_lengths(c).values() for n in seq), 180, "C to see streamed text")
    c_agent_messages_before_reload = c.locator("#discussion .message.agent").count()
    c.reload()
    expect(c.locator("#room-topic")).to_have_text(APOLLO)

    # Tokens arrive live in both A and B: a stream seen at two different, growing lengths in each page.
    for name, page in (("A", a), ("B", b)):
        wait_for(lambda page=page: saw_live_growth(stream_lengths(page)), 180, f"{name} to see a stream grow")

    for page in (a, b, c):
        wait_finished(page, "completed", messages=3)
        expect(page.locator("#participants .agent-row[data-status='done']")).to_have_count(2)
        expect(page.locator("#run-agents")).to_be_disabled()

    final = transcript(a)
    assert len(final) == 3, final
    assert final[0] == ("Host", APOLLO)
    assert all(author and text for author, text in final[1:]), final
    assert message_classes(a) == ["human complete", "agent complete", "agent complete"]
    assert transcript(b) == final
    assert transcript(c) == final, "the page reloaded mid-stream ended with a different transcript"
    if c_agent_messages_before_reload == 0:  # a whole turn was still to come: C saw it stream live
        assert saw_live_growth(stream_lengths(c)), stream_lengths(c)
    shared_rooms["completed"] = room


def test_room_on_a_phone(new_context, shared_rooms, tmp_path):
    room = shared_rooms.get("completed")
    if room is None:  # run alone: make a finished room with one agent message
        setup = new_context().new_page()
        room = create_discussion(setup, APOLLO, [Agent()], rounds=1)
        setup.click("#run-agents")
        wait_finished(setup, "completed", messages=2)

    page = open_room(new_context(viewport=PHONE, is_mobile=True, has_touch=True), room)
    expect(page.locator("#discussion .message.agent").first).to_be_visible()
    page.wait_for_load_state("load")

    shot = tmp_path / "room_390.png"
    page.screenshot(path=str(shot), full_page=True)
    SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, SHOTS / "room_390.png")

    def check_layout() -> None:
        scroll_width = page.evaluate("document.documentElement.scrollWidth")
        assert scroll_width <= PHONE["width"], f"horizontal overflow: scrollWidth={scroll_width}"
        for sel in ("#room-topic", "#run-agents", "#participants", "#discussion", "#composer-input", "#send-btn"):
            el = page.locator(sel)
            expect(el).to_be_visible()
            box = el.bounding_box()
            assert box is not None, sel
            assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"] + 0.5, f"{sel} sticks out: {box}"
        overflowing = page.evaluate(
            """w => [...document.querySelectorAll('#discussion .message, #discussion .message *')]
                 .filter(e => { const r = e.getBoundingClientRect(); return r.width && (r.left < 0 || r.right > w + 0.5); })
                 .map(e => e.tagName + '.' + e.className).slice(0, 5)""",
            PHONE["width"],
        )
        assert not overflowing, f"message content wider than the phone: {overflowing}"

    check_layout()
    post(page, "Pat on a phone", "Postgres, please — it fits Apollo's relational data.")
    expect(page.locator("#discussion .message.human").last).to_contain_text("Postgres, please")
    expect(page.locator("#room-notice")).to_have_count(0)
    check_layout()
    page.screenshot(path=str(tmp_path / "room_390_after_post.png"), full_page=True)


def test_failed_agent_is_visible_to_every_viewer(new_context):
    """A local OpenAI-compatible server passes preflight (it lists its models) and then cuts the reply mid-stream."""
    topic = "Pick a queue for Apollo's billing events"
    script = [OpenAIScript.models(["x"]), OpenAIScript.cut(["Kafka, because ", "the billing"], how="rst")]
    with WireServer(rf"{OpenAIScript.route}|{OpenAIScript.models_route}", script) as server:
        a = new_context().new_page()
        room = create_discussion(
            a,
            topic,
            [Agent(provider="openai_compatible", model="x", base_url=f"{server.url}/v1"), Agent()],
            rounds=1,
        )
        b = open_room(new_context(), room, topic)
        expect(a.locator("#participants .agent-row")).to_have_count(2)
        expect(a.locator("#run-agents")).to_be_enabled(timeout=30_000)  # the preflight checklist passed

        a.click("#run-agents")
        for page in (a, b):
            failed = page.locator("#discussion .message.agent.failed")
            expect(failed).to_have_count(1, timeout=TURN_TIMEOUT_MS)
            expect(failed.locator(".msg-error")).to_be_visible()
            expect(failed.locator(".msg-error")).to_contain_text(re.compile(r"connection|cut|dropped|reset", re.I))
            expect(failed).to_contain_text("Kafka, because")  # the partial text stays, marked failed
            # the agent row says so too
            expect(page.locator("#participants .agent-row").first).to_have_attribute("data-status", "failed")

    for page in (a, b):
        wait_finished(page, "completed", messages=3)
        expect(page.locator("#discussion .message.agent.complete")).to_have_count(1)
        expect(page.locator("#participants .agent-row").nth(1)).to_have_attribute("data-status", "done")
    assert message_classes(a) == ["human complete", "agent failed", "agent complete"]
    assert transcript(a) == transcript(b)


def test_bad_form_input_creates_nothing(new_context):
    before = discussion_rows(new_context())
    page = new_context().new_page()
    bad_topic = "Refused until the form is valid"

    # 1. no question
    fill_new_form(page, "", [Agent()], rounds=1)
    page.click("#create-btn")
    expect(page.locator(".field-error").filter(has_text=re.compile("question", re.I))).to_be_visible()
    assert re.search(r"/new/?$", page.url), page.url

    # 2. an OpenAI-compatible agent without a base URL
    fill(page, page.locator("#topic-input"), bad_topic)
    configure_agent(page, 0, Agent(provider="openai_compatible", model="x", base_url=""))
    page.click("#create-btn")
    card_error = page.locator(".agent-draft").first.locator(".field-error")
    expect(card_error).to_contain_text(re.compile(r"base URL", re.I))
    expect(card_error).to_be_visible()
    expect(page.locator(".field-error").filter(has_text=re.compile("question", re.I))).to_have_count(0)
    assert re.search(r"/new/?$", page.url), page.url

    # 3. rounds out of range
    configure_agent(page, 0, Agent(provider="offline"))
    fill(page, page.locator("#rounds-input"), "0")
    page.click("#create-btn")
    expect(page.locator(".field-error").filter(has_text=re.compile("rounds", re.I))).to_be_visible()
    expect(page.locator(".agent-draft .field-error")).to_have_count(0)
    assert re.search(r"/new/?$", page.url), page.url

    after = discussion_rows(new_context())
    assert after == before, "a refused form created a discussion"

    # control: the same form, once valid, creates exactly one discussion, and the list shows it
    fill(page, page.locator("#rounds-input"), "1")
    page.click("#create-btn")
    page.wait_for_url(ROOM_URL)
    rows = discussion_rows(new_context())
    assert len(rows) == len(before) + 1 and rows[0][1] == bad_topic, rows


XSS = [
    "<script>window.__xss=1</script>",
    '<img src=x onerror="window.__xss=2">',
    "[click](javascript:window.__xss=3)",
    '<svg onload="window.__xss=4">',
    '<a href="data:text/html,<script>alert(1)</script>">d</a>',
]


def test_untrusted_text_renders_as_text(new_context):
    topic = "Is this room safe from markup?"
    page = new_context().new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    create_discussion(page, topic, [Agent()], rounds=1)

    post(page, "Mallory", "\n\n".join(XSS))
    msg = page.locator("#discussion .message.human").last
    body = msg.locator(".msg-body")
    expect(body).to_contain_text("<script>window.__xss=1</script>")
    expect(body).to_contain_text("<script>")
    expect(body).to_contain_text('<img src=x onerror="window.__xss=2">')
    expect(body).to_contain_text('<svg onload="window.__xss=4">')
    page.wait_for_timeout(1000)

    dangerous = body.locator("script, img, svg, iframe, object, embed, [onerror], [onload]")
    assert dangerous.count() == 0, body.inner_html()
    assert page.evaluate("typeof window.__xss") == "undefined"

    links = body.locator("a")
    for i in range(links.count()):
        href = (links.nth(i).get_attribute("href") or "").strip().lower()
        assert not href.startswith(("javascript:", "data:", "vbscript:")), href
    if links.count():  # the sanitized Markdown link: clicking it must run nothing
        links.first.click()
        page.wait_for_timeout(1000)
        assert page.evaluate("typeof window.__xss") == "undefined"
        assert ROOM_URL.search(page.url), page.url
    assert dialogs == []
