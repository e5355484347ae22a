"""End-to-end fixtures: the REAL app (``reflex run --env prod``) once per session, Chromium, one context per human.

* ``app_url``      base URL of a Maestro started in a subprocess on a free port, with a fresh temp SQLite
                   database and ``MAESTRO_MAX_TOKENS_PER_TURN=240``; its whole process group is killed at the end.
                   Its Anthropic, OpenAI and Gemini SDKs talk to the local council servers (tests/e2e/council.py).
                   Set ``MAESTRO_E2E_BASE_URL`` to drive an already running server instead (nothing is started).
* ``browser``      one headless Debian Chromium for the session (``playwright install`` does not work here).
* ``new_context``  factory: every call is a new browser context = a new human with its own cookies and storage.
* autouse console check: a test fails when any page logged a console error or threw an uncaught exception.

Failed tests get the app log tail attached to their report, and a screenshot of every open page in their
tmp dir.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.e2e.council import council
from tests.e2e.helpers import sign_up

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STARTUP_TIMEOUT_S = 240
DEFAULT_TIMEOUT_MS = 30_000
EXPECT_TIMEOUT_MS = 20_000
# Keys that would switch agents away from the embedded offline model, and a Redis bus we do not want.
SCRUBBED_ENV = ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY", "REDIS_URL")

_APP_LOG: Path | None = None
E2E_ADMIN = "e2e-admin"


def _tail(path: Path | None, lines: int = 60) -> str:
    if path is None or not path.exists():
        return "(no app log)"
    text = path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:])


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGTERM the app's whole process group (reflex + granian workers), SIGKILL whatever lingers."""
    try:
        pgid = os.getpgid(proc.pid)
    except ProcessLookupError:
        return
    for sig, grace in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)  # anyone left in the group?
            except ProcessLookupError:
                proc.poll()
                return
            proc.poll()
            time.sleep(0.2)


@pytest.fixture(scope="session")
def app_url(tmp_path_factory) -> Iterator[str]:
    """Start the real app once per session and yield its base URL (front end and back end on one port)."""
    global _APP_LOG
    external = os.environ.get("MAESTRO_E2E_BASE_URL")
    if external:
        yield external.rstrip("/")
        return

    vendors = contextlib.ExitStack()
    council_env = vendors.enter_context(council())
    workdir = tmp_path_factory.mktemp("app")
    log_path = workdir / "app.log"
    _APP_LOG = log_path
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
    env.update(council_env)
    env.update(
        DATABASE_URL=f"sqlite:///{workdir / 'maestro.db'}",
        MAESTRO_MAX_TOKENS_PER_TURN="240",  # ~2 s of streaming a turn: long enough to watch it grow
        MAESTRO_ADMINS=E2E_ADMIN,  # the persona library is the admin's; tests sign people up in any order
        MAESTRO_SIGNUP_POLICY="open",
        MAESTRO_RATE_LIMITS="sign_up=1000/hour,sign_in=1000/hour",  # every test's people sign up from 127.0.0.1
        REFLEX_TELEMETRY_ENABLED="false",
        PYTHONUNBUFFERED="1",
        # A private build directory: two apps building in one .web/ overwrite each other's front end.
        REFLEX_WEB_WORKDIR=str(workdir / ".web"),
    )
    reflex = Path(sys.executable).with_name("reflex")
    cmd = [str(reflex), "run", "--env", "prod", "--frontend-port", str(port), "--backend-host", "127.0.0.1"]
    base = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd,
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the app exited with code {proc.returncode} before serving:\n{_tail(log_path)}")
            if _http_ok(f"{base}/ping") and _http_ok(f"{base}/"):
                break
            if time.monotonic() - started > STARTUP_TIMEOUT_S:
                pytest.fail(f"the app did not serve {base} within {STARTUP_TIMEOUT_S}s:\n{_tail(log_path)}")
            time.sleep(1)
        sys.stderr.write(f"\n[e2e] app up at {base} after {time.monotonic() - started:.0f}s (log: {log_path})\n")
        yield base
    finally:
        _kill_group(proc)
        vendors.close()


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium for the whole session."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed")
    from playwright.sync_api import expect, sync_playwright

    # The box has two cores and the offline model may be busy: give UI assertions more than the 5 s default.
    expect.set_options(timeout=EXPECT_TIMEOUT_MS)

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@dataclass
class ConsoleLog:
    """Console errors and uncaught exceptions of every page the test opened."""

    errors: list[str] = field(default_factory=list)

    def watch(self, page, label: str) -> None:
        def on_console(msg) -> None:
            if msg.type != "error":
                return
            where = (msg.location or {}).get("url", "")
            self.errors.append(f"[{label}] console.error: {msg.text} ({where})")

        page.on("console", on_console)
        page.on("pageerror", lambda exc: self.errors.append(f"[{label}] uncaught: {exc}"))


@pytest.fixture(autouse=True)
def console_errors() -> ConsoleLog:
    """Autouse: every page opened through `new_context` reports here; see `pytest_runtest_call` below."""
    return ConsoleLog()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """Fail the test (not its teardown) when a page logged a console error while it ran."""
    result = yield
    log = item.funcargs.get("console_errors")
    if isinstance(log, ConsoleLog) and log.errors:
        pytest.fail("the page logged errors:\n  " + "\n  ".join(log.errors), pytrace=False)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    if report.failed and _APP_LOG is not None:
        report.sections.append(("app log (tail)", _tail(_APP_LOG, 40)))
    return report


@pytest.fixture
def new_context(browser, app_url, console_errors, request, tmp_path) -> Iterator[Callable[..., object]]:
    """Factory of browser contexts; each one is a separate human (own client token, cookies, localStorage)."""
    contexts: list = []

    def make(name: str | None = None, signed_in: bool = True, username: str | None = None, **options):
        """A new person: a context with its own account (display name `name`; a fresh username unless one is
        given), unless `signed_in=False`."""
        ctx = browser.new_context(base_url=app_url, **options)
        ctx.set_default_timeout(DEFAULT_TIMEOUT_MS)
        label = f"ctx{len(contexts) + 1}"
        ctx.on("page", lambda page: console_errors.watch(page, label))
        contexts.append(ctx)
        if signed_in:
            handle = username or f"{(name or 'person').split()[0].lower()}-{uuid.uuid4().hex[:8]}"
            sign_up(ctx, handle, name or f"Person {label}", existing=username is not None)
        return ctx

    yield make

    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for i, ctx in enumerate(contexts, 1):
        if failed:
            for j, page in enumerate(ctx.pages, 1):
                try:
                    page.screenshot(path=str(tmp_path / f"failure_ctx{i}_page{j}.png"), full_page=True)
                except Exception:  # best effort, the page may be gone
                    pass
        _stop_running_rooms(ctx)
        ctx.close()


def _stop_running_rooms(ctx) -> None:
    """Stop the agents of any room this test left running (its owner's page shows Stop): the app and its one
    offline model are shared by every test, and a leftover discussion would make the next test wait its turn."""
    for page in ctx.pages:
        try:
            stop = page.locator("#stop-agents")
            if stop.count() and stop.is_visible():
                stop.click()
                page.locator("#stop-agents").wait_for(state="detached", timeout=15_000)
        except Exception:  # best effort: the page may be gone or already closed
            pass


@pytest.fixture(scope="session")
def shared_rooms() -> dict[str, str]:
    """Rooms that one test leaves behind for another to look at (never required: users fall back)."""
    return {}
