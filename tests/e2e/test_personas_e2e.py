"""The Personas page: a persona's provider and model, chosen by their labels, saved, and used by the new form."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import E2E_ADMIN
from tests.e2e.helpers import PROVIDER_OPTION, fill, open_new_form

pytestmark = pytest.mark.e2e


def _set_runs_on(page, key: str, provider: str, model: str) -> None:
    card = page.locator(f"#persona-{key}")
    card.locator(".rt-SelectTrigger").click()
    page.get_by_role("option", name=PROVIDER_OPTION[provider]).click()
    expect(page.get_by_role("listbox")).to_have_count(0)
    fill(page, card.locator("input[name=model]"), model)
    card.get_by_role("button", name="Save").click()
    expect(card.get_by_text("Saved")).to_be_visible()


def test_a_persona_runs_where_the_personas_page_says(new_context):
    page = new_context("Ines", username=E2E_ADMIN).new_page()  # only the instance admin edits the library
    page.goto("/personas")
    card = page.locator("#persona-product")  # fifth in the library: the other tests' agents never pick it
    trigger = card.locator(".rt-SelectTrigger")
    expect(trigger).to_have_text(PROVIDER_OPTION["offline"])  # the provider's label, not its registry key
    try:
        _set_runs_on(page, "product", "anthropic", "claude-sonnet-4-6")
        page.reload()
        card = page.locator("#persona-product")
        expect(card.locator(".rt-SelectTrigger")).to_have_text("Anthropic")
        expect(card.locator("input[name=model]")).to_have_value("claude-sonnet-4-6")

        # The new form: an agent given the Product persona runs where the persona says.
        open_new_form(page)
        draft = page.locator(".agent-draft").first
        draft.locator(".rt-SelectTrigger").first.click()
        page.get_by_role("option", name=re.compile("^Product")).click()
        expect(draft.locator(".rt-SelectTrigger").nth(1)).to_have_text("Anthropic")
        expect(draft.locator(".agent-model input")).to_have_value("claude-sonnet-4-6")
    finally:
        page.goto("/personas")
        _set_runs_on(page, "product", "offline", "smollm2-135m-instruct")
