"""Local HTTP servers speaking each vendor's streaming wire format, so the real SDKs can be tested offline.

A server replays a script, one `Reply` per incoming request in order ("429 then success" is
`[S.rate_limit(retry_after=1), S.ok(["Hi"])]`), and records every request it received so tests can check
retry counts, headers and how the request body was laid out. Streams use chunked transfer encoding, as
the real APIs do over HTTP/1.1, and every piece is its own TCP write so the SDKs' decoders see real splits.
GET requests (the model lists the preflight check reads) are scripted and recorded the same way.
"""

from __future__ import annotations

import json
import re
import socket
import struct
import sys
import threading
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

from backend.providers.base import (
    Completion,
    GenerationRequest,
    ProviderError,
    StreamItem,
    TokenDelta,
    TranscriptEntry,
)

Cut = Literal["fin", "rst", "eof"]
"""How a stream stops early: "fin" closes mid chunked body, "rst" resets the socket, "eof" ends a body
that had no length cleanly, just without the vendor's final events."""


@dataclass(frozen=True)
class Reply:
    """One scripted HTTP response."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""  # a whole body, sent with Content-Length (error replies)
    pieces: tuple[bytes, ...] = ()  # a streamed body, one TCP write per piece
    cut: Cut | None = None  # stop the stream early, this way
    stall: float = 0.0  # wait this long after the pieces (to trip read timeouts)
    delay: float = 0.0  # wait this long before sending anything at all (a server that hangs)


@dataclass(frozen=True)
class RecordedRequest:
    """What the SDK sent."""

    method: str
    path: str  # path and query
    headers: dict[str, str]  # lower-case names
    body: Any  # parsed JSON
    at: float  # time.monotonic() on arrival


class WireServer:
    """A scripted HTTP server on 127.0.0.1 (a free port), running in a background thread."""

    def __init__(self, route: str, replies: Sequence[Reply], *, gap: float = 0.001) -> None:
        self.route = re.compile(route)
        self.requests: list[RecordedRequest] = []
        self.gap = gap  # pause between streamed pieces, so each arrives as its own read
        self._replies = list(replies)
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.01})

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> WireServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _take(self, request: RecordedRequest) -> Reply:
        with self._lock:
            self.requests.append(request)
            if not self.route.fullmatch(request.path):
                return _plain_error(404, f"wire server: no route for {request.path}")
            if not self._replies:
                return _plain_error(400, "wire server: no scripted reply left")
            return self._replies.pop(0)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    owner: WireServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up first (after a timeout, say) is expected; anything else is a bug."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def do_POST(self) -> None:
        self._record_and_reply("POST")

    def do_GET(self) -> None:
        self._record_and_reply("GET")

    def _record_and_reply(self, method: str) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        recorded = RecordedRequest(
            method=method,
            path=self.path,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=json.loads(raw) if raw else None,
            at=time.monotonic(),
        )
        self._send(self.server.owner._take(recorded))

    def _send(self, reply: Reply) -> None:
        self.close_connection = True
        if reply.delay:
            time.sleep(reply.delay)
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Connection", "close")
        if not reply.pieces:
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)
            return
        chunked = reply.cut != "eof"
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        for piece in reply.pieces:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            self.wfile.flush()
            time.sleep(self.server.owner.gap)
        if reply.stall:
            time.sleep(reply.stall)
        if reply.cut in ("fin", "rst"):
            time.sleep(0.02)  # let the client read what was sent before the socket goes away
            if reply.cut == "rst":  # a zero linger time makes close() send RST instead of FIN
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
            else:
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        if chunked:
            self.wfile.write(b"0\r\n\r\n")


def _plain_error(status: int, message: str) -> Reply:
    return Reply(status=status, headers={"Content-Type": "application/json"}, body=_json({"error": message}))


def _json(value: Any) -> bytes:
    # Real APIs send raw UTF-8, not \u escapes; that is what makes split multi-byte characters possible.
    return json.dumps(value, ensure_ascii=False).encode()


def split_multibyte(pieces: Sequence[bytes]) -> tuple[bytes, ...]:
    """Split every piece that holds a multi-byte UTF-8 character inside that character's bytes."""
    out: list[bytes] = []
    for piece in pieces:
        at = next((i for i, byte in enumerate(piece) if byte >= 0xC0), None)
        if at is None:
            out.append(piece)
        else:
            out += [piece[: at + 1], piece[at + 1 :]]
    return tuple(out)


def _error_reply(status: int, body: dict[str, Any], retry_after: float | None) -> Reply:
    headers = {"Content-Type": "application/json"}
    if retry_after is not None:
        headers["Retry-After"] = f"{retry_after:g}"
    return Reply(status=status, headers=headers, body=_json(body))


def _streamed(pieces: Sequence[bytes], *, cut: Cut | None = None, stall: float = 0.0) -> Reply:
    return Reply(headers={"Content-Type": "text/event-stream"}, pieces=tuple(pieces), cut=cut, stall=stall)


def _hang(seconds: float) -> Reply:
    return Reply(delay=seconds, headers={"Content-Type": "application/json"}, body=b"{}")


# Anthropic: POST /v1/messages, GET /v1/models


def _anthropic_event(data: dict[str, Any]) -> bytes:
    return b"event: %s\ndata: %s\n\n" % (data["type"].encode(), _json(data))


class AnthropicScript:
    """Replies in the shape of Anthropic's streaming Messages API."""

    route = r"/v1/messages"
    models_route = r"/v1/models(\?.*)?"

    @staticmethod
    def models(ids: Sequence[str] = ("claude-test",)) -> Reply:
        """One page of GET /v1/models."""
        data = [{"type": "model", "id": i, "display_name": i, "created_at": "2025-01-01T00:00:00Z"} for i in ids]
        body = {
            "data": data,
            "has_more": False,
            "first_id": ids[0] if ids else None,
            "last_id": ids[-1] if ids else None,
        }
        return Reply(headers={"Content-Type": "application/json"}, body=_json(body))

    hang = staticmethod(_hang)

    @staticmethod
    def events(
        texts: Sequence[str],
        *,
        model: str = "claude-test",
        input_tokens: int = 12,
        output_tokens: int = 7,
        cache_read: int = 0,
        stop_reason: str = "end_turn",
        stop_details: dict[str, Any] | None = None,
        finish: bool = True,
    ) -> list[bytes]:
        """The SSE events of one reply; without `finish`, only the start and the text deltas."""
        start_usage = {
            "input_tokens": input_tokens,
            "output_tokens": 1,
            "cache_read_input_tokens": cache_read,
            "cache_creation_input_tokens": 0,
        }
        message = {
            "id": "msg_test",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": start_usage,
        }
        out = [
            _anthropic_event({"type": "message_start", "message": message}),
            _anthropic_event(
                {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
            ),
            _anthropic_event({"type": "ping"}),
        ]
        for text in texts:
            delta = {"type": "text_delta", "text": text}
            out.append(_anthropic_event({"type": "content_block_delta", "index": 0, "delta": delta}))
        if finish:
            out += [
                _anthropic_event({"type": "content_block_stop", "index": 0}),
                _anthropic_event(
                    {
                        "type": "message_delta",
                        "delta": {"stop_reason": stop_reason, "stop_sequence": None, "stop_details": stop_details},
                        "usage": {"output_tokens": output_tokens},
                    }
                ),
                _anthropic_event({"type": "message_stop"}),
            ]
        return out

    @classmethod
    def ok(cls, texts: Sequence[str], *, split: bool = False, **kwargs: Any) -> Reply:
        events = cls.events(texts, **kwargs)
        return _streamed(split_multibyte(events) if split else events)

    @classmethod
    def cut(cls, texts: Sequence[str], how: Cut = "fin") -> Reply:
        return _streamed(cls.events(texts, finish=False), cut=how)

    @classmethod
    def stall(cls, texts: Sequence[str], seconds: float) -> Reply:
        return _streamed(cls.events(texts, finish=False), stall=seconds)

    @classmethod
    def error_midway(cls, texts: Sequence[str], error_type: str = "overloaded_error") -> Reply:
        """Some text, then an `error` event inside the 200 stream (how Anthropic reports overload mid-reply)."""
        error = {"type": "error", "error": {"type": error_type, "message": "Overloaded"}}
        return _streamed([*cls.events(texts, finish=False), b"event: error\ndata: %s\n\n" % _json(error)])

    @staticmethod
    def error(status: int, error_type: str, message: str, *, retry_after: float | None = None) -> Reply:
        body = {"type": "error", "error": {"type": error_type, "message": message}, "request_id": "req_test"}
        return _error_reply(status, body, retry_after)

    @classmethod
    def rate_limit(cls, retry_after: float | None = 1) -> Reply:
        return cls.error(
            429, "rate_limit_error", "Number of requests has exceeded your rate limit.", retry_after=retry_after
        )

    @classmethod
    def server_error(cls, status: int = 500, retry_after: float | None = None) -> Reply:
        return cls.error(status, "api_error", "Internal server error", retry_after=retry_after)

    @classmethod
    def auth_error(cls) -> Reply:
        return cls.error(401, "authentication_error", "invalid x-api-key")

    @classmethod
    def not_found(cls, model: str) -> Reply:
        return cls.error(404, "not_found_error", f"model: {model}")


# OpenAI: POST /v1/chat/completions, GET /v1/models


def _openai_event(data: dict[str, Any] | str) -> bytes:
    return b"data: %s\n\n" % (data.encode() if isinstance(data, str) else _json(data))


class OpenAIScript:
    """Replies in the shape of OpenAI's streaming Chat Completions API (and the servers that copy it)."""

    route = r"/v1/chat/completions"
    models_route = r"/v1/models"

    @staticmethod
    def models(ids: Sequence[str] = ("gpt-test",)) -> Reply:
        """GET /v1/models (the whole list: OpenAI's has no paging)."""
        data = [{"id": i, "object": "model", "created": 1_700_000_000, "owned_by": "test"} for i in ids]
        return Reply(headers={"Content-Type": "application/json"}, body=_json({"object": "list", "data": data}))

    hang = staticmethod(_hang)

    @staticmethod
    def events(
        texts: Sequence[str],
        *,
        model: str = "gpt-test",
        prompt_tokens: int = 20,
        completion_tokens: int = 6,
        cached_tokens: int | None = None,
        finish_reason: str = "stop",
        usage: bool = True,
        finish: bool = True,
        refusal: str | None = None,
    ) -> list[bytes]:
        """The SSE events of one reply; `usage=False` imitates servers that ignore `include_usage`."""

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            body: dict[str, Any] = {
                "id": "chatcmpl-test",
                "object": "chat.completion.chunk",
                "created": 1_700_000_000,
                "model": model,
                "choices": [choice],
            }
            if usage:
                body["usage"] = None
            return body

        out = [_openai_event(chunk({"role": "assistant", "content": ""}))]
        out += [_openai_event(chunk({"content": text})) for text in texts]
        if refusal is not None:
            out.append(_openai_event(chunk({"refusal": refusal})))
        if not finish:
            return out
        out.append(_openai_event(chunk({}, finish_reason)))
        if usage:
            totals: dict[str, Any] = {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            }
            if cached_tokens is not None:
                totals["prompt_tokens_details"] = {"cached_tokens": cached_tokens}
            last = {"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": 1_700_000_000}
            out.append(_openai_event({**last, "model": model, "choices": [], "usage": totals}))
        out.append(_openai_event("[DONE]"))
        return out

    @classmethod
    def ok(cls, texts: Sequence[str], *, split: bool = False, **kwargs: Any) -> Reply:
        events = cls.events(texts, **kwargs)
        return _streamed(split_multibyte(events) if split else events)

    @classmethod
    def cut(cls, texts: Sequence[str], how: Cut = "fin") -> Reply:
        return _streamed(cls.events(texts, finish=False), cut=how)

    @classmethod
    def stall(cls, texts: Sequence[str], seconds: float) -> Reply:
        return _streamed(cls.events(texts, finish=False), stall=seconds)

    @classmethod
    def error_midway(cls, texts: Sequence[str]) -> Reply:
        """Some text, then an error object as a `data:` event inside the 200 stream."""
        error = {"error": {"message": "The server had an error.", "type": "server_error", "code": None}}
        return _streamed([*cls.events(texts, finish=False), _openai_event(error)])

    @staticmethod
    def error(
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        code: str | None = None,
        retry_after: float | None = None,
    ) -> Reply:
        body = {"error": {"message": message, "type": type_, "param": None, "code": code}}
        return _error_reply(status, body, retry_after)

    @classmethod
    def rate_limit(cls, retry_after: float | None = 1) -> Reply:
        return cls.error(
            429,
            "Rate limit reached for requests",
            type_="requests",
            code="rate_limit_exceeded",
            retry_after=retry_after,
        )

    @classmethod
    def server_error(cls, status: int = 500, retry_after: float | None = None) -> Reply:
        message = "The server had an error while processing your request."
        return cls.error(status, message, type_="server_error", retry_after=retry_after)

    @classmethod
    def auth_error(cls) -> Reply:
        return cls.error(401, "Incorrect API key provided: sk-test.", code="invalid_api_key")

    @classmethod
    def not_found(cls, model: str) -> Reply:
        return cls.error(
            404, f"The model `{model}` does not exist or you do not have access to it.", code="model_not_found"
        )


# Gemini: POST /v1beta/models/{model}:streamGenerateContent?alt=sse, GET /v1beta/models?pageSize=n


def _gemini_event(data: dict[str, Any]) -> bytes:
    return b"data: %s\r\n\r\n" % _json(data)  # Google ends SSE lines with CRLF


class GeminiScript:
    """Replies in the shape of the Gemini API's `streamGenerateContent` with `alt=sse`."""

    route = r"/v1beta/models/[^/:]+:streamGenerateContent\?alt=sse"
    models_route = r"/v1beta/models(\?.*)?"

    @staticmethod
    def models(ids: Sequence[str] = ("gemini-test",)) -> Reply:
        """One page of GET /v1beta/models."""
        data = [
            {"name": f"models/{i}", "displayName": i, "supportedGenerationMethods": ["generateContent"]} for i in ids
        ]
        return Reply(headers={"Content-Type": "application/json"}, body=_json({"models": data}))

    hang = staticmethod(_hang)

    @staticmethod
    def events(
        texts: Sequence[str],
        *,
        model_version: str = "gemini-test-001",
        prompt_tokens: int = 30,
        candidates_tokens: int = 8,
        cached_tokens: int | None = None,
        thoughts_tokens: int | None = None,
        finish_reason: str | None = "STOP",
        usage: bool = True,
    ) -> list[bytes]:
        """The SSE events of one reply: one chunk per text, the last one carrying `finishReason`."""
        out = []
        for i, text in enumerate(texts or [""]):
            last = i == max(len(texts), 1) - 1
            candidate: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": text}]}, "index": 0}
            if last and finish_reason:
                candidate["finishReason"] = finish_reason
            chunk: dict[str, Any] = {"candidates": [candidate], "modelVersion": model_version, "responseId": "r1"}
            if usage:
                metadata = {
                    "promptTokenCount": prompt_tokens,
                    "candidatesTokenCount": candidates_tokens if last else i + 1,
                    "totalTokenCount": prompt_tokens + (candidates_tokens if last else i + 1),
                }
                if cached_tokens is not None:
                    metadata["cachedContentTokenCount"] = cached_tokens
                if thoughts_tokens is not None:
                    metadata["thoughtsTokenCount"] = thoughts_tokens
                chunk["usageMetadata"] = metadata
            out.append(_gemini_event(chunk))
        return out

    @classmethod
    def ok(cls, texts: Sequence[str], *, split: bool = False, **kwargs: Any) -> Reply:
        events = cls.events(texts, **kwargs)
        return _streamed(split_multibyte(events) if split else events)

    @classmethod
    def cut(cls, texts: Sequence[str], how: Cut = "fin") -> Reply:
        return _streamed(cls.events(texts, finish_reason=None), cut=how)

    @classmethod
    def stall(cls, texts: Sequence[str], seconds: float) -> Reply:
        return _streamed(cls.events(texts, finish_reason=None), stall=seconds)

    @classmethod
    def error_midway(cls, texts: Sequence[str]) -> Reply:
        """Some text, then an error object as a `data:` event inside the 200 stream."""
        error = {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}
        return _streamed([*cls.events(texts, finish_reason=None), _gemini_event(error)])

    @classmethod
    def blocked_prompt(cls, reason: str = "SAFETY") -> Reply:
        chunk = {"promptFeedback": {"blockReason": reason}, "modelVersion": "gemini-test-001", "responseId": "r1"}
        return _streamed([_gemini_event(chunk)])

    @staticmethod
    def error(
        code: int,
        status: str,
        message: str,
        *,
        retry_after: float | None = None,
        details: Sequence[dict[str, Any]] = (),
    ) -> Reply:
        body = {"error": {"code": code, "message": message, "status": status, "details": list(details)}}
        return _error_reply(code, body, retry_after)

    @classmethod
    def rate_limit(cls, retry_after: float | None = 1) -> Reply:
        retry_info = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{retry_after or 1:g}s"}
        return cls.error(
            429, "RESOURCE_EXHAUSTED", "Resource has been exhausted.", retry_after=retry_after, details=[retry_info]
        )

    @classmethod
    def server_error(cls, status: int = 500) -> Reply:
        return cls.error(status, "INTERNAL", "An internal error has occurred.")

    @classmethod
    def auth_error(cls) -> Reply:
        return cls.error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.")

    @classmethod
    def invalid_key(cls) -> Reply:
        """What Google really answers for a wrong key: 400 INVALID_ARGUMENT, reason API_KEY_INVALID."""
        info = {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}
        return cls.error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", details=[info])

    @classmethod
    def not_found(cls, model: str) -> Reply:
        return cls.error(404, "NOT_FOUND", f"models/{model} is not found for API version v1beta.")


# Test helpers

TRANSCRIPT = [
    TranscriptEntry("Alex", "Should we ship on Friday?", author_kind="human"),
    TranscriptEntry("Architect", "Only if the migration is reversible."),
    TranscriptEntry("Critic", "Fridays are risky.", is_self=True),
    TranscriptEntry("Alex", "What would make it safe?", author_kind="human"),
    TranscriptEntry("Architect", "A rollback rehearsal."),
]


def make_request(model: str, **overrides: Any) -> GenerationRequest:
    """A small multi-author discussion, as seen by the agent "Critic"."""
    fields: dict[str, Any] = {
        "model": model,
        "system": "You are Critic. Be brief.",
        "transcript": TRANSCRIPT,
        "max_tokens": 64,
        "temperature": 0.3,
    }
    return GenerationRequest(**(fields | overrides))


async def collect(stream: AsyncIterator[StreamItem]) -> tuple[list[str], Completion | None, ProviderError | None]:
    """Drain a provider stream: the text deltas, the Completion, or the ProviderError that ended it."""
    deltas: list[str] = []
    completion: Completion | None = None
    try:
        async for item in stream:
            assert completion is None, "nothing may follow the Completion"
            if isinstance(item, TokenDelta):
                assert item.text, "deltas are never empty"
                deltas.append(item.text)
            else:
                completion = item
    except ProviderError as error:
        return deltas, None, error
    return deltas, completion, None
