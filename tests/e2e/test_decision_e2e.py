"""The mission's story in Chromium: "Choose a database for Apollo" from question to an approved decision.

Three agents on three providers (Anthropic, OpenAI and Gemini SDKs against the local council servers), Sam asks,
Pat (decision maker, on a phone) answers a blocking choice and votes with the agents, the consensus panel shows
where the room stands, and the CTO (must approve) approves the decision card with conditions. Every viewer sees the
same card: rationale, the 3-of-4 breakdown, Security's dissent and the action plan.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.helpers import ROOM_URL, TURN_TIMEOUT_MS, Agent, fill, fill_new_form, open_room, wait_room_loaded

pytestmark = pytest.mark.e2e

APOLLO = "Choose a database for Apollo"
PHONE = {"width": 390, "height": 844}
SHOTS = Path("/tmp/shots")
CONDITIONS = "Budget review after 3 months"


def _choose(page: Page, trigger: str, option: str) -> None:
    page.locator(trigger).click()
    page.get_by_role("option", name=option, exact=True).click()
    expect(page.get_by_role("listbox")).to_have_count(0)


def _shot(page: Page, tmp_path: Path, name: str) -> None:
    page.screenshot(path=str(tmp_path / name), full_page=True)
    SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(tmp_path / name, SHOTS / name)


def test_the_apollo_story_ends_in_a_decision_the_cto_approves(new_context, tmp_path):
    sam = new_context("Sam").new_page()
    fill_new_form(sam, APOLLO, [Agent("anthropic"), Agent("openai"), Agent("gemini")], rounds=1)
    fill(sam, sam.locator("#budget-usd-input"), "5")  # paid providers: the preflight requires a budget
    fill(sam, sam.locator("#ask-question"), "Which factor matters most for Apollo?")
    fill(sam, sam.locator("#ask-options"), "cost, latency, operability")
    fill(sam, sam.locator("#ask-minutes"), "10")
    _choose(sam, "#vote-rule", "Plurality")
    fill(sam, sam.locator("#vote-options"), "PostgreSQL, MongoDB, DynamoDB")
    fill(sam, sam.locator("#vote-minutes"), "10")
    sam.click("#create-btn")
    sam.wait_for_url(ROOM_URL)
    wait_room_loaded(sam, APOLLO)
    room = "/room/" + ROOM_URL.search(sam.url).group(1)

    # Before the people are in, the preflight says what is missing and Run Agents stays disabled.
    expect(sam.locator(".check-item[data-key='approver']")).to_contain_text("Must approve", timeout=30_000)
    expect(sam.locator("#run-agents")).to_be_disabled()

    pat = open_room(
        new_context("Pat", viewport=PHONE, is_mobile=True, has_touch=True),
        room,
        APOLLO,
        host=sam,
        role="decision_maker",
    )
    cto = open_room(new_context("CTO"), room, APOLLO, host=sam, role="must_approve")
    sam.reload()
    wait_room_loaded(sam, APOLLO)
    expect(sam.locator("#run-agents")).to_be_enabled(timeout=30_000)
    sam.click("#run-agents")

    # A blocking choice to the PM after the round; the PM answers on the phone.
    prompt = pat.locator(".prompt-card")
    expect(prompt).to_be_visible(timeout=TURN_TIMEOUT_MS)
    expect(sam.locator(".waiting-for")).to_contain_text("Waiting for Pat (decision maker)")
    prompt.locator(".prompt-option[data-option='latency']").tap()
    expect(prompt).to_have_count(0)

    # Where the room stands, for everyone.
    for page in (sam, pat, cto):
        expect(page.locator("#consensus-panel")).to_contain_text("Apollo needs transactions for billing")
        expect(page.locator("#consensus-panel")).to_contain_text("Use DynamoDB")

    # The vote: the agents vote first, then Pat taps PostgreSQL; the CTO is not waited for.
    expect(pat.locator("#voted")).to_contain_text(re.compile("Architect.*Backend Engineer.*Security|Security.*"))
    expect(pat.locator("#vote-panel")).to_contain_text("Waiting for: Pat")
    expect(sam.locator("#vote-panel .vote-option")).to_have_count(0)  # a contributor does not vote
    _shot(pat, tmp_path, "vote_390.png")
    assert pat.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    pat.locator(".vote-option[data-option='PostgreSQL']").tap()

    # The decision card, the same for every viewer.
    for page in (sam, pat, cto):
        card = page.locator("#decision-card")
        expect(card).to_be_visible(timeout=TURN_TIMEOUT_MS)
        expect(page.locator("#decision-title")).to_have_text("Apollo runs on PostgreSQL")
        expect(page.locator("#decision-support")).to_have_text("3 of 4 ranked PostgreSQL first")
        expect(page.locator("#decision-rationale")).to_contain_text("relational integrity")
        expect(page.locator("#dissent")).to_contain_text("Security preferred DynamoDB")
        expect(page.locator("#action-plan")).to_contain_text("Provision a managed PostgreSQL 16 cluster")
        # Plurality counts first choices: each voter's row shows the one that counted.
        expect(page.locator("#decision-breakdown tr").filter(has_text="Security")).to_contain_text("DynamoDB")
        expect(page.locator("#decision-breakdown tr").filter(has_text="Pat")).to_contain_text("PostgreSQL")
        expect(page.locator("#vote-breakdown")).to_have_count(0)  # the card has the ballots: not twice on the page
        expect(page.locator("#room-status")).to_have_text("awaiting approval")

    # Only the CTO can sign off; they approve with conditions.
    expect(sam.locator("#sign-off-form")).to_have_count(0)
    expect(pat.locator("#sign-off-form")).to_have_count(0)
    fill(cto, cto.locator("#sign-off-form input[name='conditions']"), CONDITIONS)
    cto.click("#sign-off")
    for page in (sam, pat, cto):
        expect(page.locator("#signoff")).to_contain_text("Approved by CTO")
        expect(page.locator("#signoff")).to_contain_text(CONDITIONS)
        expect(page.locator("#room-status")).to_have_text("completed")
    _shot(pat, tmp_path, "decision_390.png")
    _shot(cto, tmp_path, "decision_desktop.png")
    assert pat.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]

    # Its own page, in the decisions list, and exported as Markdown and JSON (members only).
    sam.click("#decision-link")
    expect(sam.locator("#decision-title")).to_have_text("Apollo runs on PostgreSQL")
    expect(sam.locator("#decision-breakdown tbody tr")).to_have_count(4)  # every ballot, on the card itself
    expect(sam.locator("#decision-breakdown tbody tr").filter(has_text="Pat")).to_contain_text("PostgreSQL")
    expect(sam.locator("#export-md")).to_have_attribute("href", re.compile(r"^/export/decisions/\d+\.md$"))
    md = sam.request.get(sam.locator("#export-md").get_attribute("href"))
    assert md.ok and "# Apollo runs on PostgreSQL" in md.text() and CONDITIONS in md.text()
    data = sam.request.get(sam.locator("#export-json").get_attribute("href")).json()
    assert data["signoff"]["outcome"] == "approved" and data["support"] == "3 of 4 ranked PostgreSQL first"
    stranger = new_context("Mallory").new_page()
    assert stranger.request.get(sam.locator("#export-json").get_attribute("href")).status == 403
    sam.goto("/decisions")
    fill(sam, sam.locator("#decision-search"), "postgres")
    expect(sam.locator(".decision-item")).to_contain_text("Apollo runs on PostgreSQL")

    # The audit trail has Pat's vote and the CTO's approval.
    sam.goto(f"{room}/audit")
    expect(sam.locator("#audit-table")).to_contain_text("vote.cast")
    expect(sam.locator(".audit-row").filter(has_text="decision.approved")).to_contain_text("CTO")


def _drag_to_top(page: Page, option: str) -> None:
    """Drag an option's handle above the first row, with pointer moves as a finger or a mouse makes them."""
    handle = page.locator(f".ballot-row[data-option='{option}'] .drag-handle").bounding_box()
    first = page.locator(".ballot-row").first.bounding_box()
    page.mouse.move(handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2)
    page.mouse.down()
    page.mouse.move(first["x"] + 12, first["y"] + 4, steps=12)
    page.mouse.move(first["x"] + 12, first["y"] + 1, steps=4)
    page.wait_for_timeout(150)  # let the list take the last move before the drop (no retry if it has not)
    page.mouse.up()


def test_a_ranked_vote_is_dragged_into_order_on_a_phone(new_context):
    sam = new_context("Sam").new_page()
    fill_new_form(sam, "Pick the Apollo cache", [Agent("openai"), Agent("anthropic")], rounds=1)
    fill(sam, sam.locator("#budget-usd-input"), "5")
    _choose(sam, "#vote-rule", "Schulze")
    fill(sam, sam.locator("#vote-options"), "PostgreSQL, MongoDB, DynamoDB")
    sam.click("#create-btn")
    sam.wait_for_url(ROOM_URL)
    room = "/room/" + ROOM_URL.search(sam.url).group(1)
    pat = open_room(
        new_context("Pat", viewport=PHONE, is_mobile=True, has_touch=True), room, host=sam, role="decision_maker"
    )
    open_room(new_context("CTO"), room, host=sam, role="must_approve")
    sam.reload()
    expect(sam.locator("#run-agents")).to_be_enabled(timeout=30_000)
    sam.click("#run-agents")

    rows = pat.locator(".ballot-row")
    expect(rows).to_have_count(3, timeout=TURN_TIMEOUT_MS)
    expect(rows.first).to_have_attribute("data-option", "PostgreSQL")
    _drag_to_top(pat, "DynamoDB")
    expect(rows.first).to_have_attribute("data-option", "DynamoDB")
    pat.locator(".ballot-row[data-option='MongoDB'] .rank-up").tap()  # the arrows work too
    expect(rows.nth(1)).to_have_attribute("data-option", "MongoDB")
    assert [rows.nth(i).get_attribute("data-option") for i in range(3)] == ["DynamoDB", "MongoDB", "PostgreSQL"]
    pat.locator("#vote-panel").screenshot(path=str(SHOTS / "ballot_390.png"))
    assert pat.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    pat.locator("#send-vote").tap()
    expect(pat.locator("#my-vote")).to_have_text("Your vote: DynamoDB > MongoDB > PostgreSQL")
    expect(sam.locator("#vote-result")).to_contain_text("wins (schulze)", timeout=TURN_TIMEOUT_MS)
    expect(sam.locator("#pairwise")).to_be_visible()
    # The vote's own table, or the decision card's once synthesis has written it (the vote panel then defers to it).
    ballots = sam.locator("#vote-breakdown tr, #decision-breakdown tr")
    expect(ballots.filter(has_text="Pat").first).to_contain_text("DynamoDB > MongoDB > PostgreSQL")
