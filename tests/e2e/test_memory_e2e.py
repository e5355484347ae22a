"""Deliberation memory in Chromium: the same question, asked again in other words, is answered from memory.

Sam asks "Choose a database for Apollo" (Python, high security); the agent (the OpenAI SDK against the local
council server) and Sam vote, and Sam, who must approve, approves the decision. Asked again as "Which database should we use for Apollo?" in the same context, the New
discussion form shows the [MEMORY] banner and Reuse opens a room answered from memory with no model call. The same
question in another context and a near-miss (Hermes) both run fresh. Once Sam sends the source back for more
discussion, the banner is gone.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.council import model_calls
from tests.e2e.helpers import ROOM_URL, Agent, fill, fill_new_form, wait_finished, wait_room_loaded

pytestmark = pytest.mark.e2e

APOLLO = "Choose a database for Apollo"
AGAIN = "Which database should we use for Apollo?"
HERMES = "Choose a database for Hermes"


def _choose(page: Page, trigger: str, option: str) -> None:
    page.locator(trigger).click()
    page.get_by_role("option", name=option, exact=True).click()
    expect(page.get_by_role("listbox")).to_have_count(0)


def _context(page: Page, security: str) -> None:
    fill(page, page.locator("#context-preferred-language"), "Python")
    _choose(page, "#context-security-level", security)


def _ask(page: Page, topic: str, security: str, *, decide: bool = False) -> None:
    """The form with two agents (OpenAI and Anthropic: a discussion needs two), a budget (the preflight wants one for a paid provider) and a context; with
    `decide`, a vote at the end and Sam as the one who must approve."""
    fill_new_form(page, topic, [Agent("openai"), Agent("anthropic")], rounds=1)
    fill(page, page.locator("#budget-usd-input"), "5")
    if decide:
        _choose(page, "#owner-role", "Must approve")
        _choose(page, "#vote-rule", "Plurality")
        fill(page, page.locator("#vote-options"), "PostgreSQL, MongoDB, DynamoDB")
        fill(page, page.locator("#vote-minutes"), "10")
    _context(page, security)
    fill(page, page.locator("#topic-input"), topic)  # the check runs as the topic settles


def _no_hit_but_related(page: Page, related: str = APOLLO) -> None:
    """Memory answered (its related list names an earlier decision) and offered no reuse."""
    expect(page.locator("#memory-related")).to_contain_text(related, timeout=60_000)
    expect(page.locator("#memory-banner")).to_have_count(0)


def _create_and_run(page: Page, topic: str) -> None:
    page.click("#create-btn")
    page.wait_for_url(ROOM_URL)
    wait_room_loaded(page, topic)
    expect(page.locator("#run-agents")).to_be_enabled(timeout=30_000)
    page.click("#run-agents")


def test_a_question_asked_again_is_answered_from_memory_and_near_misses_run_fresh(new_context):
    ctx = new_context("Sam")
    sam = ctx.new_page()
    _ask(sam, APOLLO, "high", decide=True)
    _create_and_run(sam, APOLLO)
    sam.locator(".vote-option[data-option='PostgreSQL']").click(timeout=120_000)
    sam.click("#sign-off", timeout=120_000)  # approve is the form's default
    expect(sam.locator("#signoff")).to_contain_text("Approved", timeout=30_000)
    wait_finished(sam)

    # Asked again in other words, same context (a new tab: a new form): the banner offers the remembered result;
    # Reuse calls no model.
    again = ctx.new_page()
    _ask(again, AGAIN, "high")
    expect(again.locator("#memory-line")).to_contain_text("[MEMORY]", timeout=60_000)
    expect(again.locator("#memory-line")).to_contain_text("% match")
    calls = model_calls()
    again.click("#memory-reuse")
    again.wait_for_url(ROOM_URL)
    wait_room_loaded(again, AGAIN)
    expect(again.locator("#memory-badge")).to_contain_text("no agent ran")
    expect(again.locator("#memory-source")).to_contain_text(APOLLO)
    expect(again.locator("#discussion .message").last).to_contain_text("[MEMORY] From discussion #")
    expect(again.locator("#run-agents")).to_have_count(0)
    assert model_calls() == calls, "reusing a remembered result called a model"

    # The same question in another context is a miss, always: it runs fresh.
    other = ctx.new_page()
    _ask(other, AGAIN, "enterprise")
    _no_hit_but_related(other)
    calls = model_calls()
    _create_and_run(other, AGAIN)
    wait_finished(other)
    assert model_calls() > calls

    # A near-miss (another project) is refused: it runs fresh too.
    hermes = ctx.new_page()
    _ask(hermes, HERMES, "high")
    _no_hit_but_related(hermes)
    calls = model_calls()
    _create_and_run(hermes, HERMES)
    wait_finished(hermes)
    assert model_calls() > calls

    # Sam sends the source back for more discussion: from then on the question is not answered from memory.
    fill(sam, sam.locator("#send-back-form input[name='question']"), "Does this still hold at 10x the load?")
    sam.click("#send-back")
    expect(sam.locator("#room-status")).not_to_have_text("completed", timeout=30_000)
    # The room runs again and its next decision waits for Sam: nothing of it stands yet, so nothing is served.
    later = ctx.new_page()
    _ask(later, AGAIN, "high")
    _no_hit_but_related(later, HERMES)
