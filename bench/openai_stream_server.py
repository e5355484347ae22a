"""A local OpenAI-compatible streaming server for benchmarks: one long reply at a chosen token rate.

POST {base}/r{RATE}/v1/chat/completions streams `tokens` chunks in OpenAI's chat.completions SSE format
(a role chunk, one content chunk per token, a finish_reason chunk, a usage chunk, then [DONE]), paced at
RATE tokens per second on an absolute schedule (RATE 0 = as fast as the socket takes it). The rate lives in
the path, so one server serves discussions at several rates: use base_url f"{server.url}/r{rate}/v1".

    python bench/openai_stream_server.py --port 8765 --tokens 2000   # stand-alone, Ctrl-C to stop
"""

from __future__ import annotations

import argparse
import json
import random
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_WORDS = (
    "the room weighs each option against cost latency and risk before the team commits to a plan that "
    "survives review migration rollback backups replication monitoring on-call budget quarter customers "
    "schema index queue cache consistency availability throughput deadline tradeoff proposal evidence "
    "measured production staging incident postmortem audit encryption compliance vendor contract"
).split()


def make_tokens(n: int, seed: int = 11) -> list[str]:
    """`n` deterministic word tokens (" word"), with a sentence break every ~15 tokens; plain text, no Markdown."""
    rng = random.Random(seed)
    out, since = [], 0
    for i in range(n):
        word = rng.choice(_WORDS)
        since += 1
        if since >= 15 and rng.random() < 0.3:
            word += "."
            since = 0
        out.append(word.capitalize() if i == 0 else " " + word)
    out[-1] = out[-1].rstrip(".") + "."
    return out


@dataclass
class StreamLog:
    """What was served, per request."""

    requests: list[dict[str, Any]] = field(default_factory=list)


def _chunk(delta: dict[str, Any], finish: str | None = None, model: str = "bench-model") -> bytes:
    body = {
        "id": "chatcmpl-bench",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(body, ensure_ascii=False).encode() + b"\n\n"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _write_chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def do_GET(self) -> None:
        """`GET /r{rate}/v1/models`: what the preflight checklist asks an OpenAI-compatible server."""
        if re.fullmatch(r"/r(\d+(?:\.\d+)?)/v1/models", self.path):
            status, body = (
                200,
                b'{"object": "list", "data": [{"id": "bench-model", "object": "model", "owned_by": "bench"}]}',
            )
        else:
            status, body = 404, b'{"error": {"message": "no route", "type": "invalid_request_error"}}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        m = re.fullmatch(r"/r(\d+(?:\.\d+)?)/v1/chat/completions", self.path)
        if not m:
            body = b'{"error": {"message": "no route", "type": "invalid_request_error"}}'
            self.send_response(404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        rate = float(m.group(1))
        request = json.loads(raw or b"{}")
        model = request.get("model") or "bench-model"
        tokens = self.server.tokens
        started = time.monotonic()
        self.server.log.requests.append(
            {"path": self.path, "rate": rate, "max_tokens": request.get("max_tokens"), "at": started}
        )
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        self.end_headers()
        self._write_chunk(_chunk({"role": "assistant", "content": ""}, model=model))
        self.wfile.flush()
        for i, token in enumerate(tokens):
            if rate > 0:
                delay = started + i / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            self._write_chunk(_chunk({"content": token}, model=model))
            if rate > 0:
                self.wfile.flush()
        self._write_chunk(_chunk({}, "stop", model=model))
        prompt_chars = sum(len(m.get("content") or "") for m in request.get("messages", []))
        usage = {
            "id": "chatcmpl-bench",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "choices": [],
            "usage": {
                "prompt_tokens": max(1, prompt_chars // 4),
                "completion_tokens": len(tokens),
                "total_tokens": max(1, prompt_chars // 4) + len(tokens),
            },
        }
        self._write_chunk(b"data: " + json.dumps(usage).encode() + b"\n\n")
        self._write_chunk(b"data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
        self.server.log.requests[-1]["seconds"] = time.monotonic() - started


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    tokens: list[str]
    log: StreamLog


class StreamServer:
    """The server on 127.0.0.1 in a background thread; use as a context manager."""

    def __init__(self, tokens: list[str], port: int = 0) -> None:
        self._server = _Server(("127.0.0.1", port), _Handler)
        self._server.tokens = tokens
        self._server.log = StreamLog()
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def log(self) -> StreamLog:
        return self._server.log

    def base_url(self, rate: float) -> str:
        return f"{self.url}/r{rate:g}/v1"

    def __enter__(self) -> StreamServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--tokens", type=int, default=2000)
    a = ap.parse_args()
    with StreamServer(make_tokens(a.tokens), a.port) as s:
        print(f"serving {a.tokens} tokens at {s.url}/r<RATE>/v1 (RATE tokens/s, 0 = unpaced); Ctrl-C to stop")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
