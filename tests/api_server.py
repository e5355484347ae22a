"""Maestro's API app on a real uvicorn server on 127.0.0.1, as the tests that talk HTTP to it need it."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import uvicorn

from backend.api import api_app
from backend.events.bus import set_bus
from backend.orchestrator.runner import Runner, set_runner
from tests.people import person

PASSWORD = "correct horse"


@contextmanager
def serve_api(host: str = "127.0.0.1") -> Iterator[str]:
    """Serve the API app on a free port of `host` with a fresh bus and runner (made inside the server's event loop,
    as in the app); yields the base URL and stops the server afterwards."""
    set_bus(None)
    set_runner(Runner(lease_seconds=5))
    with socket.socket() as s:
        s.bind((host, 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(api_app(), host=host, port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the API server did not start"
        time.sleep(0.02)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        set_runner(None)
        set_bus(None)


def login(client: httpx.Client, username: str) -> dict[str, str]:
    """Sign `username` up (password PASSWORD), log in over the API, and return the bearer header."""
    person(username)
    r = client.post("/api/session", json={"username": username, "password": PASSWORD})
    assert r.status_code == 201, r.text
    return {"Authorization": f"Bearer {r.json()['token']}"}
