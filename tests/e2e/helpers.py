"""Page-level helpers for the e2e tests: fill the /new form, open a room, read a transcript, watch streams."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from playwright.sync_api import BrowserContext, Page, expect

ROOM_URL = re.compile(r"/room/(\d+)/?$")
HOME_URL = re.compile(r"^https?://[^/]+/$")  # the discussions list itself (not "/signup/", which also ends in "/")
TURN_TIMEOUT_MS = 240_000  # one offline turn on a loaded two-core box can take ~40 s; leave lots of room


@dataclass(frozen=True)
class Agent:
    """One agent row of the /new form. `provider` is matched against the option's visible label."""

    provider: str = "offline"
    model: str | None = None  # None = keep what the form puts there
    base_url: str | None = None


PROVIDER_OPTION = {
    "offline": re.compile(r"^SmolLM2"),
    "openai_compatible": re.compile(r"^OpenAI-compatible"),
    "anthropic": re.compile(r"^Anthropic"),
    "openai": re.compile(r"^OpenAI$"),
    "gemini": re.compile(r"^Google Gemini"),
}


def settle_input(page: Page) -> None:
    """Reflex inputs are debounced (300 ms); blurring flushes the pending change to the server."""
    page.keyboard.press("Tab")


def fill(page: Page, locator, value: str) -> None:
    locator.fill(value)
    locator.press("Tab")  # blur: DebounceInput notifies immediately


def open_new_form(page: Page) -> None:
    page.goto("/new")
    # on_load fills the default team once the page is hydrated and connected
    expect(page.locator(".agent-draft").first).to_be_visible()


def set_agent_count(page: Page, n: int) -> None:
    cards = page.locator(".agent-draft")
    while cards.count() > n:
        before = cards.count()
        cards.nth(before - 1).get_by_role("button", name="Remove agent").click()
        expect(cards).to_have_count(before - 1)
    while cards.count() < n:
        before = cards.count()
        page.click("#add-agent")
        expect(cards).to_have_count(before + 1)


def configure_agent(page: Page, index: int, agent: Agent) -> None:
    card = page.locator(".agent-draft").nth(index)
    provider_trigger = card.locator(".rt-SelectTrigger").nth(1)
    if agent.provider != "offline" or not provider_trigger.inner_text().startswith("SmolLM2"):
        provider_trigger.click()
        page.get_by_role("option", name=PROVIDER_OPTION[agent.provider]).click()
        expect(page.get_by_role("listbox")).to_have_count(0)
    if agent.provider == "openai_compatible":
        expect(card.locator(".agent-base-url")).to_be_visible()
    if agent.model is not None:
        fill(page, card.locator(".agent-model input"), agent.model)
    if agent.base_url is not None:
        fill(page, card.locator(".agent-base-url input"), agent.base_url)


def fill_new_form(page: Page, topic: str, agents: list[Agent], rounds: int | str = 1) -> None:
    open_new_form(page)
    fill(page, page.locator("#topic-input"), topic)
    set_agent_count(page, len(agents))
    for i, agent in enumerate(agents):
        configure_agent(page, i, agent)
    fill(page, page.locator("#rounds-input"), str(rounds))


def create_discussion(page: Page, topic: str, agents: list[Agent], rounds: int = 1) -> str:
    """Create a discussion through the /new form; returns the room's path (/room/<id>) once the page is there."""
    fill_new_form(page, topic, agents, rounds)
    page.click("#create-btn")
    page.wait_for_url(ROOM_URL)
    wait_room_loaded(page, topic)
    return "/room/" + ROOM_URL.search(page.url).group(1)


def wait_room_loaded(page: Page, topic: str | None = None) -> None:
    """The room's header and at least the host's question are on screen (the follower replayed the log)."""
    if topic is not None:
        expect(page.locator("#room-topic")).to_have_text(topic)
    else:
        expect(page.locator("#room-topic")).not_to_be_empty()
    expect(page.locator("#room-status")).to_have_text(re.compile(r"^[a-z ]+$"))  # draft, running, awaiting approval…
    expect(page.locator("#discussion .message").first).to_be_visible()


def sign_up(ctx: BrowserContext, username: str, name: str, *, existing: bool = False) -> None:
    """Create an account through the sign-up page (or, `existing`, sign in to it when a test before made it); the
    context keeps the session cookie."""
    page = ctx.new_page()
    page.goto("/signup")
    fill(page, page.locator("#auth-username"), username)
    fill(page, page.locator("#auth-display_name"), name)
    fill(page, page.locator("#auth-password"), "correct horse battery")
    page.click("#auth-submit")
    if existing:
        taken = page.locator("#auth-error").filter(has_text="is taken")
        wait_for(lambda: HOME_URL.match(page.url) or taken.count(), 30, "sign-up to finish or say the name is taken")
        if not HOME_URL.match(page.url):
            page.goto("/login")
            fill(page, page.locator("#auth-username"), username)
            fill(page, page.locator("#auth-password"), "correct horse battery")
            page.click("#auth-submit")
    page.wait_for_url(HOME_URL)  # the full-page hop that set the HttpOnly session cookie has landed
    page.wait_for_load_state()
    expect(page.locator("#me")).to_contain_text(username)  # signed in: the session cookie is stored
    wait_for(lambda: any(c["name"] == "maestro_session" for c in ctx.cookies()), 10, "the session cookie")
    page.close()


LINK_ROLES = ("contributor", "observer")  # a join link never gives a deciding role: those are invited by name
ROLE_LABEL = {"decision_maker": "Decision maker", "must_approve": "Must approve"}


def join_link(host: Page, role: str = "contributor") -> str:
    """The owner (on the room page) makes a join link for `role` (observer or contributor); returns its path."""
    shown = host.locator("#join-link")
    before = shown.inner_text() if shown.count() else ""
    host.select_option("#join-role", role)
    host.click("#make-join-link")
    expect(shown).not_to_have_text(before) if before else expect(shown).to_be_visible()
    return re.search(r"/join/\S+", shown.inner_text()).group(0)


def invite(host: Page, username: str, role: str) -> None:
    """The owner (on the room page) invites `username` by name with `role`."""
    fill(host, host.locator("#invite-username"), username)
    host.select_option("#invite-role", role)
    host.click("#invite-btn")
    expect(host.locator("#people-notice")).to_have_text(f"Added @{username}.")


def open_room(
    ctx: BrowserContext, path: str, topic: str | None = None, *, host: Page, role: str = "contributor"
) -> Page:
    """A signed-in person joins the room with a link the owner (`host`) made, and opens it. A deciding role is
    not given by link: they join as a contributor and the owner then invites them by name with `role`."""
    page = ctx.new_page()
    page.goto(join_link(host, role if role in LINK_ROLES else "contributor"))
    page.wait_for_url(re.compile(re.escape(path) + r"/?$"))
    wait_room_loaded(page, topic)
    if role not in LINK_ROLES:
        username = (page.locator("#me").text_content() or "").strip().lstrip("@")
        invite(host, username, role)
        expect(page.locator("#my-role")).to_contain_text(ROLE_LABEL[role])
    return page


def transcript(page: Page) -> list[tuple[str, str]]:
    """(author, text) of every finished message card, in order."""
    return [tuple(row) for row in page.eval_on_selector_all("#discussion .message", _TRANSCRIPT_JS)]


def message_classes(page: Page) -> list[str]:
    return page.eval_on_selector_all(
        "#discussion .message",
        "els => els.map(e => ['human','agent','complete','failed'].filter(c => e.classList.contains(c)).join(' '))",
    )


_TRANSCRIPT_JS = """
els => els.map(e => [
  (e.querySelector('.rt-r-weight-bold') || {innerText: ''}).innerText.trim(),
  (e.querySelector('.msg-body') || {innerText: ''}).innerText.trim(),
])
"""


def wait_finished(page: Page, status: str = "completed", messages: int | None = None) -> None:
    """The discussion is over on this page: final status, no turn in flight, and (optionally) N message cards.

    Waits as long as turns keep finishing: up to TURN_TIMEOUT_MS after the last new message, so a long run on a
    slow machine is not cut off by one budget for all of its turns."""
    shown = page.locator("#discussion .message")
    seen, deadline = -1, 0.0
    while (now_status := page.locator("#room-status").inner_text()) != status:
        if (count := shown.count()) != seen:
            seen, deadline = count, time.monotonic() + TURN_TIMEOUT_MS / 1000
        elif time.monotonic() > deadline:
            raise AssertionError(f"room {now_status!r}, not {status!r}: no new message in {TURN_TIMEOUT_MS // 1000} s")
        page.wait_for_timeout(250)
    expect(page.locator("#discussion .streaming")).to_have_count(0)
    if messages is not None:
        expect(shown).to_have_count(messages)


# Records every distinct data-len of every .stream-text, per stream key, as the page sees it (a
# MutationObserver, so nothing is missed between two polls). Installed as an init script: survives reloads.
STREAM_RECORDER_JS = """
(() => {
  window.__streamLens = {};
  const record = () => {
    for (const el of document.querySelectorAll('.stream-text')) {
      const key = el.dataset.streamKey || '?';
      const n = Number(el.dataset.len || 0);
      const seen = (window.__streamLens[key] = window.__streamLens[key] || []);
      if (seen[seen.length - 1] !== n) seen.push(n);
    }
  };
  new MutationObserver(record).observe(document, {
    subtree: true, childList: true, characterData: true, attributes: true, attributeFilter: ['data-len'],
  });
})();
"""


def stream_lengths(page: Page) -> dict[str, list[int]]:
    return page.evaluate("() => window.__streamLens || {}")


def saw_live_growth(lens: dict[str, list[int]]) -> bool:
    """Some stream was seen with at least two different non-zero lengths, growing."""
    for seq in lens.values():
        positive = [n for n in seq if n > 0]
        if len(set(positive)) >= 2 and max(positive) > positive[0]:
            return True
    return False


def wait_for(predicate, timeout_s: float, what: str, interval_s: float = 0.2):
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(interval_s)


def discussion_rows(ctx: BrowserContext) -> list[tuple[str, str]]:
    """(href, topic) of every row on the discussions list, read by a fresh page once its on_load finished.

    Use a context that has not opened "/" before: Reflex keeps a tab's state across navigations, so a second
    visit would show the previous (stale) list until its on_load lands.
    """
    page = ctx.new_page()
    page.goto("/")
    expect(page.locator("#discussion-list, #empty-list").first).to_be_visible()
    rows = [
        tuple(r)
        for r in page.eval_on_selector_all(
            ".discussion-row", "els => els.map(e => [e.getAttribute('href'), e.innerText.split('\\n')[0].trim()])"
        )
    ]
    page.close()
    return rows


# --- connection loss (tests/e2e/test_reconnect_e2e.py) ----------------------------------------------------

# Records, with page timestamps, what the page's websockets did (new/open/close/error, frames received), the
# browser's online/offline events, and every time the transcript changed: its `msg-<id>` list, so a test can
# check that no intermediate render showed a duplicate or an order the final transcript does not have.
# Installed as an init script, before the app's bundle (engine.io captures `WebSocket` when it loads).
CONNECTION_RECORDER_JS = """
(() => {
  const log = (window.__connLog = []);
  const now = () => Date.now();
  window.__wsFrames = 0;
  const Native = window.WebSocket;
  class RecordedWebSocket extends Native {
    constructor(...args) {
      super(...args);
      log.push({t: now(), ev: 'new'});
      this.addEventListener('open', () => log.push({t: now(), ev: 'open'}));
      this.addEventListener('close', (e) => log.push({t: now(), ev: 'close', code: e.code}));
      this.addEventListener('error', () => log.push({t: now(), ev: 'error'}));
      this.addEventListener('message', () => { window.__wsFrames += 1; });
    }
  }
  window.WebSocket = RecordedWebSocket;
  addEventListener('offline', () => log.push({t: now(), ev: 'offline'}));
  addEventListener('online', () => log.push({t: now(), ev: 'online'}));

  const views = (window.__transcriptViews = []);
  const snap = () => {
    const root = document.getElementById('discussion');
    if (!root) return;
    const ids = [...root.querySelectorAll('.message')].map(e => e.id);
    const last = views[views.length - 1];
    if (!last || last.ids.join() !== ids.join()) views.push({t: now(), ids});
  };
  new MutationObserver(snap).observe(document, {subtree: true, childList: true});
})();
"""


def connection_log(page: Page) -> list[dict]:
    return page.evaluate("() => window.__connLog || []")


def frames_received(page: Page) -> int:
    return page.evaluate("() => window.__wsFrames || 0")


def transcript_views(page: Page) -> list[dict]:
    """Every distinct `msg-<id>` list the page rendered, in order, with its page timestamp (`t`, ms)."""
    return page.evaluate("() => window.__transcriptViews || []")


def message_ids(page: Page) -> list[str]:
    return page.eval_on_selector_all("#discussion .message", "els => els.map(e => e.id)")


def page_now(page: Page) -> int:
    return page.evaluate("() => Date.now()")


def post_message(page: Page, text: str) -> None:
    """Post through the composer (as the signed-in person) and wait until it is in this page's transcript."""
    before = page.locator("#discussion .message.human").count()
    fill(page, page.locator("#composer-input"), text)
    page.click("#send-btn")
    expect(page.locator("#discussion .message.human")).to_have_count(before + 1)
    expect(page.locator("#composer-input")).to_have_value("")


# Records every distinct text each .stream-text showed, per stream key (a MutationObserver, like
# STREAM_RECORDER_JS). Two pages that saw the same turn must have shown texts that are prefixes of each other:
# anything else is a gap, a duplicated or a reordered piece of streamed text.
STREAM_TEXT_RECORDER_JS = """
(() => {
  window.__streamTexts = {};
  const record = () => {
    for (const el of document.querySelectorAll('.stream-text')) {
      const key = el.dataset.streamKey || '?';
      const text = el.textContent || '';
      const seen = (window.__streamTexts[key] = window.__streamTexts[key] || []);
      if (text && seen[seen.length - 1] !== text) seen.push(text);
    }
  };
  new MutationObserver(record).observe(document, {subtree: true, childList: true, characterData: true});
})();
"""


def stream_texts(page: Page) -> dict[str, list[str]]:
    return page.evaluate("() => window.__streamTexts || {}")


def inconsistent_stream_texts(*pages_texts: dict[str, list[str]]) -> list[str]:
    """Problems found comparing the stream texts recorded by STREAM_TEXT_RECORDER_JS on several pages.

    Within a page a turn's text only grows (each text is a prefix of the next); across pages any two texts
    of the same turn are prefixes of one another.
    """
    from itertools import pairwise

    problems: list[str] = []
    for i, texts in enumerate(pages_texts):
        for key, seq in texts.items():
            for before, after in pairwise(seq):
                if not after.startswith(before):
                    problems.append(f"page {i} {key}: {before!r} then {after!r}")
    keys = set().union(*(t.keys() for t in pages_texts))
    for key in sorted(keys):
        longest = [max(t.get(key, [""]), key=len) for t in pages_texts]
        for i, x in enumerate(longest):
            for j, y in enumerate(longest[i + 1 :], i + 1):
                if not (x.startswith(y) or y.startswith(x)):
                    problems.append(f"{key}: page {i} showed {x!r}, page {j} showed {y!r}")
    return problems


def metric(base_url: str, name: str) -> float | None:
    """The value of an unlabelled metric on the app's GET /metrics, or None without that route or metric."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{base_url}/metrics", timeout=5) as resp:
            body = resp.read().decode()
    except (urllib.error.URLError, OSError):
        return None
    match = re.search(rf"^{re.escape(name)} (\S+)$", body, re.M)
    return float(match.group(1)) if match else None
