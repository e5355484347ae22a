"""Team-ready trust in the real app (Chromium against `reflex run --env prod`): the session cookie is the server's
and out of page script's reach, every response carries the security headers, another site can neither open the
room's websocket nor use the cookie on the API, and the admin's invite-only sign-up works from the admin page."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
import uuid

import pytest
from playwright.sync_api import expect

from tests.e2e.conftest import E2E_ADMIN
from tests.e2e.helpers import HOME_URL, fill

pytestmark = pytest.mark.e2e
EVIL = "http://evil.example"


def _get(url: str, headers: dict[str, str], method: str = "GET") -> tuple[int, dict[str, str], str]:
    request = urllib.request.Request(url, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read().decode()


def test_the_session_cookie_is_httponly_and_other_sites_get_nothing(new_context, app_url):
    ctx = new_context("Sam")
    page = ctx.new_page()
    page.goto("/")
    (cookie,) = [c for c in ctx.cookies() if c["name"] == "maestro_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    assert "maestro_session" not in page.evaluate("document.cookie")  # page script cannot read it

    status, headers, _ = _get(f"{app_url}/login", {})
    assert status == 200
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff" and headers["x-frame-options"] == "DENY"

    # The API takes the bearer header only: the browser's own cookie gets a 401, even for a read.
    assert page.request.get("/api/discussions").status == 401
    # Another site may not open the room's websocket (its handshake would carry the cookie) ...
    _, _, refused = _get(f"{app_url}/_event/?EIO=4&transport=websocket", {"Origin": EVIL})
    assert "not an accepted origin" in refused
    _, _, own = _get(f"{app_url}/_event/?EIO=4&transport=websocket", {"Origin": app_url})
    assert "not an accepted origin" not in own
    # ... nor make credentialed cross-origin requests.
    status, headers, _ = _get(
        f"{app_url}/api/discussions", {"Origin": EVIL, "Access-Control-Request-Method": "POST"}, "OPTIONS"
    )
    assert headers.get("access-control-allow-origin") != EVIL


def test_the_admin_makes_sign_up_invite_only_and_hands_out_a_link(new_context):
    admin = new_context("Ines", username=E2E_ADMIN).new_page()
    admin.goto("/admin")
    policy = admin.locator("#signup-policy")
    try:
        policy.click()
        admin.get_by_role("option", name=re.compile("^Invite-only")).click()
        admin.click("#save-policy")
        expect(admin.get_by_text("Saved.")).to_be_visible()

        stranger = new_context(signed_in=False).new_page()
        stranger.goto("/signup")
        fill(stranger, stranger.locator("#auth-username"), f"mal-{uuid.uuid4().hex[:6]}")
        fill(stranger, stranger.locator("#auth-password"), "correct horse battery")
        stranger.click("#auth-submit")
        expect(stranger.locator("#auth-error")).to_contain_text("by invitation")

        fill(admin, admin.locator("#link-note"), "Pat")
        admin.click("#make-signup-link")
        link = admin.locator("#new-signup-link code").inner_text()
        invited = new_context(signed_in=False).new_page()
        invited.goto(re.sub(r"^https?://[^/]+", "", link))
        name = f"pat-{uuid.uuid4().hex[:6]}"
        fill(invited, invited.locator("#auth-username"), name)
        fill(invited, invited.locator("#auth-password"), "correct horse battery")
        invited.click("#auth-submit")
        invited.wait_for_url(HOME_URL)
        expect(invited.locator("#me")).to_contain_text(name)
        expect(admin.locator(".signup-link-row").first).to_contain_text("Pat")
    finally:  # the other browser tests sign people up freely
        admin.goto("/admin")
        admin.locator("#signup-policy").click()
        admin.get_by_role("option", name=re.compile("^Open")).click()
        admin.click("#save-policy")
        expect(admin.get_by_text("Saved.")).to_be_visible()
