"""A server that resets the connection before sending any header: the SDKs retry (at most 2), then a clear
connection error, for every vendor."""

from __future__ import annotations

import socket
import struct
import threading

import pytest

from backend.providers.anthropic_provider import AnthropicProvider
from backend.providers.base import ErrorKind
from backend.providers.gemini_provider import GeminiProvider
from backend.providers.openai_provider import OpenAIProvider
from tests.providers.wire_servers import collect, make_request


class ResettingServer:
    """Accepts each connection, reads the request, then resets the socket (RST) without answering."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.accepted = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.settimeout(2)
            try:
                conn.recv(65536)
            except OSError:
                pass
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST
            conn.close()

    def __enter__(self) -> ResettingServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.sock.close()


@pytest.mark.parametrize(
    ("make", "model"),
    [
        pytest.param(
            lambda url: AnthropicProvider(api_key="k", base_url=url, timeout=5), "claude-sonnet-4-6", id="anthropic"
        ),
        pytest.param(
            lambda url: OpenAIProvider(api_key="k", base_url=f"{url}/v1", timeout=5), "gpt-5.4-mini", id="openai"
        ),
        pytest.param(lambda url: GeminiProvider(api_key="k", base_url=url, timeout=5), "gemini-2.5-flash", id="gemini"),
    ],
)
async def test_a_reset_before_headers_is_retried_then_a_connection_error(make, model):
    with ResettingServer() as server:
        deltas, completion, error = await collect(make(server.url).stream(make_request(model)))
    assert deltas == [] and completion is None
    assert error is not None and error.kind is ErrorKind.CONNECTION, error
    assert 1 <= server.accepted <= 3  # the first try plus the SDK's own retries (at most 2), nothing stacked on top
    assert error.message and "Traceback" not in error.message
