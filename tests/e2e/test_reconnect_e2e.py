"""A browser that loses its connection mid-stream catches up: no gap, no duplicate, no reordering.

Two humans watch the same discussion (2 offline agents, 3 or 4 rounds, 240 tokens a turn). A is always online: the
reference. B is taken offline with `context.set_offline(True)` while an agent is streaming, for ~1 s in one
case and ~30 s in the other (the two ends of the 1-30 s the requirement names), while A posts messages; then B comes back online. B must show what it missed,
its stream must carry on, and at the end B's transcript must equal A's exactly.

Each case has its own discussion, so its outage starts while a turn streams however fast the model runs (a
warm model writes a 240-token turn in ~2 s on one llama.cpp thread; the first turn after the app starts can take ~50 s).

Run with:  pytest -m e2e tests/e2e/test_reconnect_e2e.py -v
"""

from __future__ import annotations

import re
import sys
import time
from dataclasses import dataclass, field
from itertools import pairwise

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.e2e.helpers import (
    CONNECTION_RECORDER_JS,
    STREAM_RECORDER_JS,
    STREAM_TEXT_RECORDER_JS,
    Agent,
    connection_log,
    create_discussion,
    frames_received,
    inconsistent_stream_texts,
    message_ids,
    metric,
    open_room,
    page_now,
    post_message,
    stream_lengths,
    stream_texts,
    transcript,
    transcript_views,
    wait_finished,
    wait_for,
)

pytestmark = pytest.mark.e2e

AGENTS = 2
# Reflex retries on a timer (200 ms x failed attempts, capped at 2 s) and does not listen for the browser's
# "online" event: B is back 0.2-2.5 s after the network is.
RECOVERY_TIMEOUT_S = 30
MAX_OUTAGE_S = 31  # the requirement covers outages of 1-30 s: both ends are tested
# Going offline fires the page's "offline" event: engine.io closes its websocket at once (it skips that for a
# "localhost" host; the fixture serves 127.0.0.1) and Reflex keeps trying to reconnect. With the network
# emulated offline every attempt fails, and Chromium itself logs each failed handshake as a console error:
#   WebSocket connection to 'ws://127.0.0.1:<port>/_event/?EIO=4&transport=websocket&token=…' failed:
#   Error in connection establishment: net::ERR_INTERNET_DISCONNECTED
# That line is the browser reporting the outage this test causes, not an app error, so B's copies of it, and
# only them, are dropped from the autouse console check; any other error, from A or from B, still fails.
WS_OFFLINE_ERROR = re.compile(
    r"^\[ctx2\] console\.error: WebSocket connection to 'ws://127\.0\.0\.1:\d+/_event/\?[^']*' failed: "
    r"Error in connection establishment: net::ERR_INTERNET_DISCONNECTED \(\S*\)$"
)
# Reflex's connection toast, after two failed attempts. Recorded, not required: shown in every run but one
# (under load ~10 on two cores B logged a single failed attempt in 15 s and showed no toast); what the
# requirement needs is that B recovers, which is asserted.
TOAST = "Cannot connect to server"
VIEWERS = "maestro_connected_viewers"  # followers running in the app (backend/observability.py)


@dataclass
class Outage:
    seconds: float  # asked for
    stream_key: str  # the turn streaming in B when it went offline
    len_before: int
    agent_messages_before: int
    posted: list[str] = field(default_factory=list)
    lasted_s: float = 0.0
    closed_after_ms: int = -1  # offline -> B's websocket closed
    toast_shown: bool = False
    turns_missed: int = 0  # agent messages A got while B was offline
    caught_up_after_s: float = -1.0  # back online -> A's messages on B's screen
    continued: str = ""  # "grew to N" (same turn, longer text) or "completed"
    viewers: tuple = ()  # maestro_connected_viewers on the server: before, during, after the outage


def log(msg: str) -> None:
    sys.stderr.write(f"[reconnect] {msg}\n")


def streaming_now(page: Page) -> tuple[str, int] | None:
    """(stream key, data-len) of a turn in flight on this page with some text already, if any."""
    found = page.eval_on_selector_all(
        "#discussion .streaming .stream-text",
        "els => els.map(e => [e.dataset.streamKey, Number(e.dataset.len || 0)]).filter(([, n]) => n > 0)",
    )
    return tuple(found[-1]) if found else None


def wait_growing_stream(page: Page, tries: int = 5) -> tuple[str, int]:
    """A turn in flight whose text this page is seeing grow right now."""
    for _ in range(tries):
        key, length = wait_for(lambda: streaming_now(page), 180, "B to show a turn streaming", interval_s=0.05)
        try:
            return wait_for(
                lambda key=key, length=length: (
                    (now := streaming_now(page)) and now[0] == key and now[1] > length and now
                ),
                15,  # a turn lasts ~2 s: longer means it ended between two polls
                f"stream {key} to grow",
                interval_s=0.05,
            )
        except AssertionError:
            continue  # that turn ended between two polls: take the next one
    raise AssertionError("never saw a stream grow in B")


def settled(page: Page, key: str) -> tuple[int, list[int], list[str]]:
    """(frames received, stream `key`'s lengths, message ids) once two reads 300 ms apart agree."""

    def read():
        return frames_received(page), stream_lengths(page).get(key, []), message_ids(page)

    last = read()
    for _ in range(20):
        page.wait_for_timeout(300)
        now = read()
        if now == last:
            return now
        last = now
    raise AssertionError(f"B's page kept changing after its websocket closed: {last}")


def agent_messages(page: Page) -> int:
    return page.locator("#discussion .message.agent").count()


def log_socket(page: Page, since: int, what: str) -> None:
    events = " ".join(f"{e['ev']}{e.get('code', '')}@{e['t'] - since}" for e in connection_log(page) if e["t"] >= since)
    log(f"B's websocket, ms after {what}: {events}")


def a_done(page: Page) -> bool:
    return page.locator("#room-status").inner_text() == "completed"


def human_message(page: Page, text: str):
    return page.locator("#discussion .message.human").filter(has_text=text)


def go_offline_and_back(a: Page, b: Page, b_ctx: BrowserContext, seconds: float, app_url: str) -> Outage:
    key, length = wait_growing_stream(b)
    outage = Outage(seconds, key, length, agent_messages(b))
    viewers_before = metric(app_url, VIEWERS)
    assert viewers_before is not None, f"no {VIEWERS} on {app_url}/metrics"
    a_agents_before = agent_messages(a)
    t_off_page = page_now(b)
    started = time.monotonic()
    b_ctx.set_offline(True)
    log(f"B offline for ~{seconds}s while {key} streams at len {length}")

    # B notices at once: its websocket closes.
    closed = wait_for(
        lambda: next((e for e in connection_log(b) if e["ev"] == "close" and e["t"] >= t_off_page), None),
        5,
        "B's websocket to close after going offline",
        interval_s=0.05,
    )
    outage.closed_after_ms = closed["t"] - t_off_page
    # Frames that arrived before the close may still be rendering (a turn can end in the ~30 ms between going
    # offline and the close: CI once saw its message appear then). What B shows once that settles is the baseline.
    frames_at_close, lens_at_close, b_ids_before = settled(b, key)

    # A, still online, speaks while B is away: once at once, and again later in a long outage.
    outage.posted.append(f"Said while B was offline ({seconds}s), first: keep the audit trail append-only.")
    post_message(a, outage.posted[-1])
    if seconds >= 10:
        b.wait_for_timeout(seconds / 2 * 1000)
        if not a_done(a):  # a finished discussion takes no messages; the first one was said while B was away
            outage.posted.append(f"Said while B was offline ({seconds}s), second: and sign every entry.")
            post_message(a, outage.posted[-1])
    # Stay offline the time asked for; a long outage also lasts until B has missed a whole turn (capped).
    while True:
        elapsed = time.monotonic() - started
        if elapsed >= MAX_OUTAGE_S - 0.5:
            break
        if elapsed >= seconds and (seconds < 10 or agent_messages(a) > a_agents_before or a_done(a)):
            break
        b.wait_for_timeout(200)
    outage.turns_missed = agent_messages(a) - a_agents_before
    outage.toast_shown = b.get_by_text(TOAST).count() > 0
    log_socket(b, t_off_page, "going offline")
    # On the server, B's follower stops once its websocket is seen closed (a loaded server may take a moment).
    viewers_during = wait_for(
        lambda: (n := metric(app_url, VIEWERS)) == viewers_before - 1 and n, 10, f"{VIEWERS} to drop by one"
    )

    # B really was cut off: it received nothing, its stream froze, A's messages are not on its screen.
    assert frames_received(b) == frames_at_close, "B received websocket frames while offline"
    assert stream_lengths(b).get(key, []) == lens_at_close, "B's stream moved while offline"
    assert message_ids(b) == b_ids_before, "B's transcript changed while offline"
    for text in outage.posted:
        expect(human_message(b, text)).to_have_count(0)
    lens_seen_offline = len(stream_lengths(b).get(key, []))

    b_ctx.set_offline(False)
    back, back_page = time.monotonic(), page_now(b)
    outage.lasted_s = back - started

    # B catches up: A's messages show up, once each; its stream goes on, or that turn has completed meanwhile.
    for text in outage.posted:
        expect(human_message(b, text)).to_have_count(1, timeout=RECOVERY_TIMEOUT_S * 1000)
    outage.caught_up_after_s = time.monotonic() - back

    def continued():
        after = [n for n in stream_lengths(b).get(key, [])[lens_seen_offline:] if n > 0]
        if after and max(after) > length:
            return f"grew to {max(after)}"
        gone = b.locator(f'#discussion .stream-text[data-stream-key="{key}"]').count() == 0
        if gone and agent_messages(b) > outage.agent_messages_before:
            return "completed"
        return None

    outage.continued = wait_for(continued, RECOVERY_TIMEOUT_S, f"B's stream {key} to continue after reconnect")
    log_socket(b, back_page, "going online")
    # The connection toast goes away once B is back.
    expect(b.get_by_text(TOAST)).to_have_count(0)
    # On the server, exactly one follower runs again for B now.
    wait_for(lambda: metric(app_url, VIEWERS) == viewers_before, 10, f"{VIEWERS} back to {viewers_before}")
    outage.viewers = (viewers_before, viewers_during, metric(app_url, VIEWERS))
    log(f"{outage}")
    return outage


# A short outage in a three-round discussion, and a long one in a four-round discussion (8 turns of ~2-5 s), so
# that the room is usually still running 15 s into the outage for A's second message, and B also misses a turn
# starting and comes back to it mid-stream. (Six rounds would shrink the chance that the room finishes between
# A's check and its post, never seen, but cost a minute of CI.)
@pytest.mark.parametrize(("seconds", "rounds"), [(1, 3), (30, 4)], ids=["offline-1s", "offline-30s"])
def test_browser_offline_mid_stream_catches_up(new_context, console_errors, app_url, seconds, rounds):
    ref_ctx, flaky_ctx = new_context("Ada"), new_context("Bea")  # ctx1 = A (reference), ctx2 = B (goes offline)
    for ctx in (ref_ctx, flaky_ctx):
        ctx.add_init_script(STREAM_RECORDER_JS)
        ctx.add_init_script(STREAM_TEXT_RECORDER_JS)
        ctx.add_init_script(CONNECTION_RECORDER_JS)

    t0 = time.monotonic()
    topic = f"Should Apollo's audit trail live in Postgres or Kafka? ({seconds}s outage)"
    a = ref_ctx.new_page()
    room = create_discussion(a, topic, [Agent()] * AGENTS, rounds=rounds)
    b = open_room(flaky_ctx, room, topic, host=a)
    expect(a.locator("#run-agents")).to_be_enabled()
    a.click("#run-agents")

    outage = go_offline_and_back(a, b, flaky_ctx, seconds, app_url)

    for page in (a, b):
        wait_finished(page, "completed")
    log(f"case {seconds}s finished after {time.monotonic() - t0:.0f}s")

    # B ends with exactly A's transcript: same authors and texts, same order, same message ids, none twice.
    final = transcript(a)
    assert transcript(b) == final
    ids = message_ids(a)
    assert message_ids(b) == ids
    assert len(set(ids)) == len(ids), f"duplicate message ids: {ids}"
    assert len(final) == 1 + AGENTS * rounds + len(outage.posted), final
    for text in outage.posted:
        assert final.count(("Ada", text)) == 1, final
    # Numbers derived from the log were not counted twice (two followers applying the same events would).
    assert b.locator("#room-totals").inner_text() == a.locator("#room-totals").inner_text()
    # (Agents only: the owner's tools and people's presence differ by viewer on purpose.)
    assert b.locator(".agent-row").all_inner_texts() == a.locator(".agent-row").all_inner_texts()

    # No render of B, even while it caught up, showed a duplicate or an order the final transcript lacks.
    views = transcript_views(b)
    for view in views:
        shown = view["ids"]
        assert len(set(shown)) == len(shown), f"B rendered a duplicate: {shown}"
        assert shown == ids[: len(shown)], f"B rendered {shown}, not a prefix of {ids}"
    # No streamed text B showed, before or after its outage, has a gap, a repeat or a swap compared with A.
    problems = inconsistent_stream_texts(stream_texts(a), stream_texts(b))
    assert not problems, problems

    conn = connection_log(b)
    assert [e["ev"] for e in conn].count("open") >= 2, conn  # it did reconnect
    went_offline = next(e["t"] for e in conn if e["ev"] == "offline")
    # Observed, not required: on reconnect Reflex re-runs on_load, which empties the transcript, and the
    # follower's replay from seq 0 refills it one render later.
    blanks = [
        (view["t"], nxt["t"] - view["t"])
        for view, nxt in pairwise(views)
        if not view["ids"] and view["t"] > went_offline
    ]
    log(f"B's transcript went blank after reconnecting {len(blanks)}x for {[ms for _, ms in blanks]} ms")
    log(f"B's stream lengths: {stream_lengths(b)}")

    expected = [e for e in console_errors.errors if WS_OFFLINE_ERROR.match(e)]
    unexpected = [e for e in console_errors.errors if e not in expected]
    log(f"dropped {len(expected)} expected console errors, e.g. {expected[:1]}; kept {unexpected}")
    console_errors.errors[:] = unexpected
