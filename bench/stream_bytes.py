"""Websocket bytes each viewer receives while one 2,000-token reply streams to 10 open tabs.

Starts the real app (`reflex run --env prod`, one port, SQLite in a temp directory) and a local
OpenAI-compatible streaming server (bench/openai_stream_server.py), creates a discussion with ONE agent on
provider "openai_compatible" (rounds=1, max tokens 2,100) per rate, opens 10 tabs of /room/<id> in Debian
Chromium through Playwright, and counts the websocket payload bytes each tab receives (CDP
Network.webSocketFrameReceived) from the click on Run Agents until #room-status shows "completed". Each tab
must end with the full reply in its transcript.

Figures per rate: the reply's UTF-8 size, median bytes received per tab and the ratio (target <= 2x),
frames per tab, and where the bytes went: the frame(s) carrying the finished message in the transcript
(`tx`, the transcript's delta of changed rows), the streamed deltas (LiveState `d`), and everything else
(agent rows, status, ...),
plus bytes per state variable.

A benchmark, not a test: it prints figures and is not run in CI.

    . .venv/bin/activate
    python bench/stream_bytes.py                      # rates 50, 200 tokens/s and unpaced (0)
    python bench/stream_bytes.py --rates 200 --tabs 3 # a quicker look
    python bench/stream_bytes.py --rev HEAD           # the last commit instead of the working tree

By default the app runs from a private snapshot of the working tree (a temp copy without .venv/.git, with
its own .web), because two `reflex run --env prod` started in the same directory share `.web` and overwrite
each other's build (the bundle then points at the other instance's port). `--in-place` runs it from the
repository itself, and refuses while another `reflex run` is working there. `--rev HEAD` runs a commit
(git archive) instead of the working tree, which others may be editing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import zlib
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
os.environ.setdefault("REFLEX_TELEMETRY_ENABLED", "false")

import _source  # noqa: E402
from openai_stream_server import StreamServer, make_tokens  # noqa: E402

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


# --- the app -----------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def other_reflex_in(path: Path) -> list[int]:
    """PIDs of `reflex run` processes working in `path` (they would race with ours on .web)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="ignore")
            if "reflex run" in cmd and Path(os.readlink(entry / "cwd")) == path:
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


@dataclass
class App:
    proc: subprocess.Popen
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def start_app(app_dir: Path, port: int, database_url: str, log_path: Path, timeout: float = 240) -> App:
    env = {**os.environ, "DATABASE_URL": database_url, "REFLEX_TELEMETRY_ENABLED": "false"}
    env.pop("REDIS_URL", None)
    reflex = Path(sys.executable).parent / "reflex"
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [str(reflex), "run", "--env", "prod", "--frontend-port", str(port)],
        cwd=app_dir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, killed as a whole at the end
    )
    app = App(proc, port, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"reflex exited with {proc.returncode}; see {log_path}")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(f"{app.url}/ping", timeout=2) as r:
                if r.status == 200:
                    with urllib.request.urlopen(f"{app.url}/", timeout=5) as page:
                        if page.status == 200:
                            break
        time.sleep(0.5)
    else:
        stop_app(app)
        raise RuntimeError(f"the app did not come up within {timeout:.0f}s; see {log_path}")
    env_json = json.loads((app_dir / ".web" / "env.json").read_text())
    if f":{port}/" not in env_json.get("EVENT", ""):
        stop_app(app)
        raise RuntimeError(
            f"the built frontend points at {env_json.get('EVENT')}, not port {port}: another reflex build "
            "overwrote .web (use the default snapshot mode)"
        )
    return app


def stop_app(app: App) -> None:
    """Terminate the app's process group (and only it)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(app.proc.pid, signal.SIGTERM)
    try:
        app.proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(app.proc.pid, signal.SIGKILL)
        app.proc.wait(timeout=5)


# --- frames --------------------------------------------------------------------------------------------


@dataclass
class Frame:
    size: int  # payload bytes (UTF-8 of a text frame, decoded length of a binary one)
    payload: str
    at: float


@dataclass
class Tab:
    page: object
    frames: list[Frame] = field(default_factory=list)
    sent: list[Frame] = field(default_factory=list)
    sockets_opened: int = 0
    counting: bool = False
    extensions: str = ""  # Sec-WebSocket-Extensions the server accepted ("" = no compression)
    cdp: object = None


def _payload_size(response: dict) -> int:
    data = response.get("payloadData", "")
    if response.get("opcode") == 2:  # binary frames arrive base64-encoded
        return len(data) * 3 // 4 - data[-2:].count("=")
    return len(data.encode())


def delta_of(payload: str) -> dict | None:
    """The state delta of a Socket.IO `42/_event,["event", {...}]` packet, else None."""
    at = payload.find("[")
    if not payload.startswith("42") or at < 0:
        return None
    try:
        msg = json.loads(payload[at:])
    except ValueError:
        return None
    if len(msg) >= 2 and isinstance(msg[1], dict):
        return msg[1].get("delta")
    return None


def var_sizes(delta: dict) -> dict[str, int]:
    """Bytes of each variable's key and value in a delta (compact JSON, as Reflex sends it)."""
    out: dict[str, int] = {}
    for _state, variables in (delta or {}).items():
        for name, value in variables.items():
            short = name.removesuffix("_rx_state_")
            out[short] = (
                out.get(short, 0)
                + len(name)
                + 3
                + len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())
            )
    return out


def find_var(delta: dict | None, short: str):
    for _state, variables in (delta or {}).items():
        if f"{short}_rx_state_" in variables:
            return variables[f"{short}_rx_state_"]
    return None


@dataclass
class TabResult:
    bytes: int
    frames: int
    final_bytes: int  # frames carrying the finished message in the transcript delta `tx`
    stream_bytes: int  # frames carrying LiveState deltas (`d`) and not the finished message
    other_bytes: int
    per_var: dict[str, int]
    text_var_bytes: int  # just the streamed text values in `d`
    after_completed: int  # frames after the one that showed "completed" (within the counting window)
    sent_bytes: int
    ok: bool
    shown_chars: int
    deflated: int  # what-if: the same payloads through permessage-deflate with context takeover
    reshaped: tuple[int, int]  # what-ifs, see `reshaped`


def deflated_size(frames: list[Frame]) -> int:
    """Payload bytes if the websocket used permessage-deflate (RFC 7692, context takeover, zlib level 6)."""
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return sum(len(c.compress(f.payload.encode()) + c.flush(zlib.Z_SYNC_FLUSH)) - 4 for f in frames)


def reshaped(tab: Tab, reply: str) -> tuple[int, int]:
    """What-if sizes of the same frames: (A) the agent rows (and the computed vars derived from them) sent only
    when something other than `elapsed` changed, i.e. the clock ticking on the client; (B) A, and the finished
    message's text not resent in the transcript (the tab already holds it from the stream)."""
    computed = {"has_offline_agent", "can_run", "is_running"}
    last_rows = None
    size_a = size_b = 0
    for frame in tab.frames:
        at = frame.payload.find("[")
        try:
            msg = json.loads(frame.payload[at:]) if frame.payload.startswith("42") and at >= 0 else None
        except ValueError:
            msg = None
        if not (isinstance(msg, list) and len(msg) >= 2 and isinstance(msg[1], dict) and msg[1].get("delta")):
            size_a += frame.size
            size_b += frame.size
            continue
        delta = msg[1]["delta"]
        rows = find_var(delta, "agents")
        keep_agents = True
        if rows is not None:
            bare = [{k: v for k, v in r.items() if k != "elapsed"} for r in rows]
            keep_agents = bare != last_rows
            last_rows = bare
        sizes = []
        for drop_text in (False, True):
            new = {}
            for state, variables in delta.items():
                kept = {}
                for name, value in variables.items():
                    short = name.removesuffix("_rx_state_")
                    if not keep_agents and (short == "agents" or short in computed):
                        continue
                    if drop_text and short == "tx" and isinstance(value, dict):
                        rows = value.get("rows") or []
                        value = {**value, "rows": [{**m, "content": ""} if _is_reply(m, reply) else m for m in rows]}
                    kept[name] = value
                if kept:
                    new[state] = kept
            if not new:
                sizes.append(0)  # nothing left: the frame would not be sent
                continue
            body = json.dumps([msg[0], {**msg[1], "delta": new}], ensure_ascii=False, separators=(",", ":"))
            sizes.append(len((frame.payload[:at] + body).encode()))
        size_a += sizes[0]
        size_b += sizes[1]
    return size_a, size_b


def _is_reply(row: dict, reply: str) -> bool:
    """A transcript row of the agent's reply: its whole text, or the rest after the streamed part."""
    content = row.get("content") or ""
    return row.get("kind") == "agent" and (content == reply or (bool(row.get("stream")) and reply.endswith(content)))


def analyse(tab: Tab, reply: str, ok: bool, shown: int) -> TabResult:
    per_var: dict[str, int] = defaultdict(int)
    final = stream = other = text_bytes = 0
    done_at = None
    for i, frame in enumerate(tab.frames):
        delta = delta_of(frame.payload)
        sizes = var_sizes(delta or {})
        for k, v in sizes.items():
            per_var[k] += v
        tx = find_var(delta, "tx")
        texts = find_var(delta, "d")
        if isinstance(tx, dict) and any(_is_reply(m, reply) for m in tx.get("rows") or []):
            final += frame.size
        elif texts:
            stream += frame.size
        else:
            other += frame.size
        if texts:
            text_bytes += sum(len(str(v[1]).encode()) for v in texts.values() if isinstance(v, list) and len(v) == 2)
        if done_at is None and find_var(delta, "status") == "completed":
            done_at = i
    after = len(tab.frames) - 1 - done_at if done_at is not None else -1
    return TabResult(
        bytes=sum(f.size for f in tab.frames),
        frames=len(tab.frames),
        final_bytes=final,
        stream_bytes=stream,
        other_bytes=other,
        per_var=dict(per_var),
        text_var_bytes=text_bytes,
        after_completed=after,
        sent_bytes=sum(f.size for f in tab.sent),
        ok=ok,
        shown_chars=shown,
        deflated=deflated_size(tab.frames),
        reshaped=reshaped(tab, reply),
    )


# --- one rate --------------------------------------------------------------------------------------------


def normalise(text: str) -> str:
    return " ".join(text.split())


def open_tabs(context, n: int) -> list[Tab]:
    """`n` pages, each with a CDP session counting its websocket frames while `tab.counting`."""
    tabs = []
    for _ in range(n):
        page = context.new_page()
        tab = Tab(page)
        cdp = context.new_cdp_session(page)
        cdp.send("Network.enable")

        def on_frame(event, tab=tab):
            if tab.counting:
                r = event["response"]
                tab.frames.append(Frame(_payload_size(r), r.get("payloadData", ""), time.monotonic()))

        def on_sent(event, tab=tab):
            if tab.counting:
                r = event["response"]
                tab.sent.append(Frame(_payload_size(r), "", time.monotonic()))

        def on_created(_event, tab=tab):
            tab.sockets_opened += 1

        def on_handshake(event, tab=tab):
            headers = {k.lower(): v for k, v in event["response"].get("headers", {}).items()}
            tab.extensions = headers.get("sec-websocket-extensions", "")

        cdp.on("Network.webSocketFrameReceived", on_frame)
        cdp.on("Network.webSocketFrameSent", on_sent)
        cdp.on("Network.webSocketCreated", on_created)
        cdp.on("Network.webSocketHandshakeResponseReceived", on_handshake)
        tab.cdp = cdp
        tabs.append(tab)
    return tabs


def run_rate(tabs: list[Tab], app: App, server: StreamServer, rate: float, args, reply: str, owner) -> dict:
    from sqlmodel import select

    from backend.db import session_scope
    from backend.models import Message
    from backend.services.discussions import AgentSpec, create_discussion

    discussion = create_discussion(
        topic=f"Streaming benchmark at {rate:g} tokens/s: how should the room scale?",
        # Two agents because preflight requires two; only the first reply is measured (counting stops when
        # it completes in every tab). The second streams slowly (2 tokens/s), so that when the first is
        # unpaced the second's text does not pour into the counting window before the tabs notice the end.
        agents=[
            AgentSpec("architect", "openai_compatible", "bench-model", server.base_url(rate)),
            AgentSpec("security", "openai_compatible", "bench-model", server.base_url(2)),
        ],
        rounds=1,
        max_tokens_per_turn=args.max_tokens,
        owner=owner,
    )
    did = discussion.id
    for tab in tabs:
        tab.frames, tab.sent, tab.sockets_opened, tab.counting = [], [], 0, False
        tab.page.goto(f"{app.url}/room/{did}", wait_until="commit")  # all tabs load in parallel
    for tab in tabs:  # hydrated and ready: the button is enabled for a draft discussion
        tab.page.wait_for_selector("#run-agents:not([disabled])", timeout=90_000)
    time.sleep(0.5)  # let hydration frames settle before counting
    for tab in tabs:
        tab.counting = True
    t0 = time.monotonic()
    tabs[0].page.click("#run-agents")
    completed = "document.querySelectorAll('#discussion .message.agent.complete').length >= 1"
    timeout_ms = int((args.tokens / (rate or 1000) + 120) * 1000)
    for tab in tabs:
        tab.page.wait_for_function(completed, timeout=timeout_ms, polling=100)
    elapsed = time.monotonic() - t0
    time.sleep(0.3)  # anything still in flight for the last tab
    for tab in tabs:
        tab.counting = False
    with session_scope() as s:
        agent_msg = s.exec(
            select(Message)
            .where(Message.discussion_id == did, Message.turn_key.is_not(None))  # type: ignore[union-attr]
            .order_by(Message.id)  # type: ignore[arg-type]
        ).first()
        final_text, status = agent_msg.content, agent_msg.status
    if status != "complete" or final_text != reply:
        raise RuntimeError(f"rate {rate:g}: the stored reply is {status} with {len(final_text)} chars")
    results = []
    for tab in tabs:
        body = tab.page.locator("#discussion .message.agent.complete .msg-body").first
        shown = body.inner_text() if body.count() == 1 else ""
        ok = normalise(shown) == normalise(reply)
        results.append(analyse(tab, reply, ok, len(shown)))
    reopened = sum(max(0, t.sockets_opened - 1) for t in tabs)
    streaming = [f for f in tabs[0].frames if find_var(delta_of(f.payload), "d")]
    sample = sorted(streaming, key=lambda f: f.size)[len(streaming) // 2].payload if streaming else ""
    extensions = ", ".join(sorted({t.extensions for t in tabs if t.extensions}))
    served = next((r for r in reversed(server.log.requests) if r["rate"] == rate), {})
    return {
        "rate": rate,
        "did": did,
        "elapsed": elapsed,
        "served_s": served.get("seconds", 0.0),
        "max_tokens_sent": served.get("max_tokens"),
        "results": results,
        "reopened": reopened,
        "sample": sample,
        "extensions": extensions,
    }


def report(run: dict, reply_bytes: int) -> None:
    res: list[TabResult] = run["results"]
    med = lambda xs: statistics.median(xs)  # noqa: E731
    total = med([r.bytes for r in res])
    final = med([r.final_bytes for r in res])
    stream = med([r.stream_bytes for r in res])
    other = med([r.other_bytes for r in res])
    frames = med([r.frames for r in res])
    label = "unpaced" if run["rate"] == 0 else f"{run['rate']:g} tok/s"
    print(
        f"\n== rate {label}: discussion {run['did']}, model stream {run['served_s']:.1f}s, click->completed "
        f"{run['elapsed']:.1f}s in all tabs, {len(res)} tabs =="
    )
    print(f"  reply bytes (UTF-8 of final text)     : {reply_bytes:,}")
    print(
        f"  median bytes received per tab         : {total:,.0f}   (min {min(r.bytes for r in res):,}, "
        f"max {max(r.bytes for r in res):,})"
    )
    print(
        f"  ratio received / reply                : {total / reply_bytes:.2f}x   (target <= 2x: "
        f"{'OK' if total / reply_bytes <= 2 else 'OVER'})"
    )
    print(f"  frames per tab (median)               : {frames:.0f}   ({total / max(frames, 1):.0f} bytes/frame)")
    print(
        f"  finished-message frame(s) (tx rows)   : {final:,.0f} bytes = {final / total * 100:4.1f}%  "
        f"({final / reply_bytes:.2f}x reply)"
    )
    print(
        f"  streaming delta frames (LiveState d)  : {stream:,.0f} bytes = {stream / total * 100:4.1f}%  "
        f"({stream / reply_bytes:.2f}x reply; streamed text itself "
        f"{med([r.text_var_bytes for r in res]):,.0f} bytes = {med([r.text_var_bytes for r in res]) / reply_bytes:.2f}x)"
    )
    print(f"  other frames (agent rows, status, ...): {other:,.0f} bytes = {other / total * 100:4.1f}%")
    print(f"  ratio without the final transcript    : {(total - final) / reply_bytes:.2f}x")
    agg: dict[str, list[int]] = defaultdict(list)
    for r in res:
        for k in set().union(*(x.per_var for x in res)):
            agg[k].append(r.per_var.get(k, 0))
    varsum = sum(med(v) for v in agg.values())
    top = sorted(((med(v), k) for k, v in agg.items()), reverse=True)[:8]
    print(
        "  bytes by state variable (median/tab)  : "
        + ", ".join(f"{k} {b:,.0f}" for b, k in top)
        + f"; framing/state names {total - varsum:,.0f}"
    )
    bad = [i for i, r in enumerate(res) if not r.ok]
    print(
        f"  tabs with the full reply in transcript: {len(res) - len(bad)}/{len(res)}"
        + (f"  MISSING in tabs {bad} (shown chars {[res[i].shown_chars for i in bad]})" if bad else "")
    )
    extra = [r.after_completed for r in res]
    print(
        f"  frames after 'completed' per tab      : {extra}; websocket reconnects: {run['reopened']}; "
        f"bytes sent per tab (median) {med([r.sent_bytes for r in res]):,.0f}; max_tokens sent {run['max_tokens_sent']}"
    )
    dfl = med([r.deflated for r in res])
    print(
        f"  websocket compression negotiated      : {run['extensions'] or 'none'}; what-if permessage-deflate: "
        f"~{dfl:,.0f} bytes/tab = {dfl / reply_bytes:.2f}x reply (estimate, same payloads)"
    )
    print(f"  frames per second per tab             : {frames / run['elapsed']:.1f}")
    ra, rb = med([r.reshaped[0] for r in res]), med([r.reshaped[1] for r in res])
    print(
        f"  what-if, same frames: agent rows only on real change (clock on the client): {ra:,.0f} = "
        f"{ra / reply_bytes:.2f}x; and no text in the final transcript row: {rb:,.0f} = {rb / reply_bytes:.2f}x"
    )
    if run["sample"]:
        print(f"  a median streaming frame ({len(run['sample'].encode())} bytes): {run['sample'][:900]}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rates", default="50,200,0", help="tokens/s, comma-separated; 0 = as fast as possible")
    ap.add_argument("--tabs", type=int, default=10)
    ap.add_argument("--tokens", type=int, default=2000)
    ap.add_argument("--max-tokens", type=int, default=2100)
    ap.add_argument("--port", type=int, default=0, help="app port (default: a free one)")
    ap.add_argument("--in-place", action="store_true", help="run reflex from the repository itself")
    ap.add_argument("--keep", action="store_true", help="keep the temp directory (app log, database)")
    ap.add_argument("--rev", help="benchmark this git revision (exported to a temp dir) instead of the working tree")
    args = ap.parse_args()
    rates = [float(x) for x in args.rates.split(",")]

    tmp = Path(tempfile.mkdtemp(prefix="maestro-stream-bench-"))
    t = time.monotonic()
    if args.in_place:
        if args.rev:
            sys.exit("--in-place runs the working tree; drop --rev")
        others = other_reflex_in(ROOT)
        if others:
            sys.exit(
                f"another `reflex run` works in {ROOT} (pids {others}); they would overwrite each other's "
                ".web build. Wait for it or drop --in-place."
            )
        app_dir, source = ROOT, _source.describe_tree() + ", in place"
    elif args.rev:
        app_dir = tmp / "app"
        source = _source.export_rev(args.rev, app_dir)
        _source.copy_web(app_dir)
    else:
        app_dir = tmp / "app"
        _source.copy_tree(app_dir, web=True)
        source = _source.describe_tree() + f", snapshot in {app_dir}"
    _source.use_code(app_dir)  # this process creates discussions with the same code and migrations as the app
    print(f"code: {source} ({time.monotonic() - t:.1f}s)")

    db_url = f"sqlite:///{tmp / 'bench.db'}"
    os.environ["DATABASE_URL"] = db_url
    from backend.bootstrap import prepare_database
    from backend.config import get_settings
    from backend.db import reset_engine

    get_settings.cache_clear()
    reset_engine()
    prepare_database(db_url)

    tokens = make_tokens(args.tokens)
    reply = "".join(tokens)
    reply_bytes = len(reply.encode())
    load = os.getloadavg()
    print(
        f"{os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; reply: {len(tokens)} "
        f"tokens, {reply_bytes:,} bytes; {args.tabs} tabs; rates {', '.join(f'{r:g}' for r in rates)} tok/s"
    )
    port = args.port or free_port()
    app = None
    runs = []
    try:
        t = time.monotonic()
        app = start_app(app_dir, port, db_url, tmp / "app.log")
        print(f"app up on {app.url} in {time.monotonic() - t:.1f}s (log {tmp / 'app.log'})")
        from playwright.sync_api import sync_playwright

        with StreamServer(tokens) as server, sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            try:
                # The ten tabs are one signed-in person (rooms are for members): the owner, who may Run Agents.
                from backend.humans import accounts

                owner, token = accounts.sign_up("bench", "bench password 1", "Bench")
                context = browser.new_context()
                context.add_cookies([{"name": "maestro_session", "value": token, "url": app.url}])
                tabs = open_tabs(context, args.tabs)
                for rate in rates:
                    run = run_rate(tabs, app, server, rate, args, reply, owner)
                    runs.append(run)
                    report(run, reply_bytes)
            finally:
                browser.close()
    finally:
        if app:
            stop_app(app)
        reset_engine()
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print(
        "\n== summary: rate | reply bytes | median bytes/tab | ratio | frames/tab | final-transcript share | "
        "ratio without final | what-if deflate | what-if rows-on-change | + no final text =="
    )
    for run in runs:
        res = run["results"]
        total = statistics.median(r.bytes for r in res)
        final = statistics.median(r.final_bytes for r in res)
        label = "unpaced" if run["rate"] == 0 else f"{run['rate']:g} tok/s"
        print(
            f"  {label:>10} | {reply_bytes:,} | "
            f"{total:,.0f} | {total / reply_bytes:.2f}x | {statistics.median(r.frames for r in res):.0f} | "
            f"{final / total * 100:.1f}% | {(total - final) / reply_bytes:.2f}x | "
            f"{statistics.median(r.deflated for r in res) / reply_bytes:.2f}x | "
            f"{statistics.median(r.reshaped[0] for r in res) / reply_bytes:.2f}x | "
            f"{statistics.median(r.reshaped[1] for r in res) / reply_bytes:.2f}x"
        )


if __name__ == "__main__":
    main()
