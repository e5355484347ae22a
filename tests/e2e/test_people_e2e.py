"""Two people with different roles in one room while the agents run: a blocking choice routed to the decision
maker holds the agents, the contributor sees whom the room waits for, the decision maker answers on a phone,
and the agents resume with the answer in their transcript."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.e2e.helpers import (
    ROOM_URL,
    TURN_TIMEOUT_MS,
    Agent,
    fill,
    fill_new_form,
    open_room,
    transcript,
    wait_finished,
    wait_room_loaded,
)

pytestmark = pytest.mark.e2e

APOLLO = "Choose a database for Apollo"
PHONE = {"width": 390, "height": 844}
SHOTS = Path("/tmp/shots")
QUESTION = "Which factor matters most for Apollo?"


def test_a_blocking_choice_for_the_decision_maker_holds_the_agents_until_answered(new_context, tmp_path):
    sam_ctx = new_context("Sam")
    a = sam_ctx.new_page()
    fill_new_form(a, APOLLO, [Agent(), Agent()], rounds=2)
    fill(a, a.locator("#ask-question"), QUESTION)
    fill(a, a.locator("#ask-options"), "cost, latency, operability")
    fill(a, a.locator("#ask-after"), "1")
    fill(a, a.locator("#ask-minutes"), "10")
    a.click("#create-btn")
    a.wait_for_url(ROOM_URL)
    wait_room_loaded(a, APOLLO)
    room = "/room/" + ROOM_URL.search(a.url).group(1)

    pat_ctx = new_context("Pat", viewport=PHONE, is_mobile=True, has_touch=True)
    b = open_room(pat_ctx, room, APOLLO, host=a, role="decision_maker")
    expect(b.locator("#my-role")).to_have_text(re.compile("Decision maker"))

    # Presence: Sam's page shows Pat online, and sees Pat typing.
    pat_row = a.locator(".human-row[data-name='Pat']")
    expect(pat_row).to_have_attribute("data-online", "true")
    b.locator("#composer-input").type("thinking about it")
    expect(a.locator("#typing")).to_have_text(re.compile(r"Pat is typing"))

    expect(a.locator("#run-agents")).to_be_enabled(timeout=30_000)
    a.click("#run-agents")

    # After round 1 the prompt opens: Pat gets the card, Sam sees whom the room is waiting for.
    card = b.locator(".prompt-card")
    expect(card).to_be_visible(timeout=TURN_TIMEOUT_MS)
    expect(card).to_contain_text(QUESTION)
    expect(card.locator(".prompt-countdown")).to_have_text(re.compile(r"^(9|10):\d\d left$"))
    waiting = a.locator(".waiting-for")
    expect(waiting).to_contain_text("Waiting for Pat (decision maker)")
    expect(waiting).to_contain_text(re.compile(r"\d+:\d\d left"))
    expect(a.locator(".prompt-card")).to_have_count(0)  # not routed to Sam

    # The agents are held: two round-1 messages, nothing streaming, for as long as Pat takes.
    expect(a.locator("#discussion .message.agent")).to_have_count(2)
    a.wait_for_timeout(3000)
    expect(a.locator("#discussion .message.agent")).to_have_count(2)
    expect(a.locator("#discussion .streaming")).to_have_count(0)

    b.screenshot(path=str(tmp_path / "prompt_390.png"), full_page=True)
    SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(tmp_path / "prompt_390.png", SHOTS / "prompt_390.png")
    assert b.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]

    card.locator(".prompt-option[data-option='latency']").tap()
    expect(card).to_have_count(0)
    expect(waiting).to_have_count(0)

    # The agents resume; the answer sits in the transcript before round 2, so their next turns see it.
    for page in (a, b):
        wait_finished(page, "completed", messages=6)
    final = transcript(a)
    answer_at = next(i for i, (_author, text) in enumerate(final) if text == "latency")
    assert final[answer_at][0] == "Pat" and answer_at == 3, final
    assert transcript(b) == final

    # The audit trail records Pat's answer.
    a.click("#audit-link")
    expect(a.locator("#audit-table")).to_contain_text("prompt.answer")
    expect(a.locator(".audit-row").filter(has_text="prompt.answer")).to_contain_text("Pat")


def test_a_signed_out_browser_is_sent_to_sign_in_and_a_stranger_cannot_read_a_room(new_context):
    owner = new_context("Owner").new_page()
    fill_new_form(owner, "A private question", [Agent()], rounds=1)
    owner.click("#create-btn")
    owner.wait_for_url(ROOM_URL)
    room = "/room/" + ROOM_URL.search(owner.url).group(1)

    anonymous = new_context(signed_in=False).new_page()
    anonymous.goto(room)
    anonymous.wait_for_url(re.compile(r"/login\?next="))

    stranger = new_context("Stranger").new_page()
    stranger.goto(room)
    expect(stranger.locator("#not-member")).to_be_visible()
    expect(stranger.locator("#discussion")).to_have_count(0)
