"""Server-side request forgery: an agent's base URL may only name a server the operator allows (issue 12, point 2).

The rules on their own first (`egress.refusal`), then every place a base URL enters or is called: creating a
discussion, editing a persona, the preflight probe and an agent's turn. The servers are real sockets on loopback
addresses; "not allowed" is made by setting MAESTRO_ALLOWED_BASE_URLS to some other origin, and each test counts
the TCP connections the refused server received: none.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from sqlmodel import select

from backend.config import get_settings
from backend.db import session_scope
from backend.errors import InputError
from backend.events.schema import TurnFailed
from backend.models import Discussion, Participant, Persona
from backend.orchestrator.runner import Runner
from backend.providers import egress, registry
from backend.providers.base import GenerationRequest, ProviderError, TranscriptEntry
from backend.providers.openai_provider import OpenAICompatibleProvider
from backend.services import preflight
from backend.services.discussions import AgentSpec, create_discussion
from backend.services.personas import update_persona
from tests.people import person
from tests.providers.wire_servers import OpenAIScript, Reply, WireServer, _Handler, _Server

ENV = "MAESTRO_ALLOWED_BASE_URLS"
ROUTE = r"/v1/(models|chat/completions)"


@pytest.fixture(autouse=True)
def _fresh(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(ENV, raising=False)
    get_settings.cache_clear()
    preflight.clear_preflight_cache()
    registry.clear_provider_cache()
    yield
    get_settings.cache_clear()
    preflight.clear_preflight_cache()
    registry.clear_provider_cache()


@pytest.fixture
def allow(monkeypatch: pytest.MonkeyPatch):
    """Set the operator's allowlist, as MAESTRO_ALLOWED_BASE_URLS would."""

    def set_(value: str) -> None:
        monkeypatch.setenv(ENV, value)
        get_settings.cache_clear()

    return set_


class _CountingServer(_Server):
    connections = 0

    def verify_request(self, request: Any, client_address: Any) -> bool:
        """Called for every accepted TCP connection, before a byte of HTTP is read."""
        self.connections += 1
        return True


class CountingWireServer(WireServer):
    """A scripted OpenAI-style server on another loopback address that counts TCP connections, not just requests."""

    def __init__(self, replies: Sequence[Reply], host: str = "127.0.0.2") -> None:
        super().__init__(ROUTE, replies)
        self._server.server_close()
        self._server = _CountingServer((host, 0), _Handler)
        self._server.owner = self
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.01})

    @property
    def connections(self) -> int:
        return self._server.connections


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _elsewhere() -> str:
    """An allowlist naming only an origin where nothing in these tests listens."""
    return f"http://127.0.0.1:{_free_port()}"


def _request() -> GenerationRequest:
    return GenerationRequest(
        model="llama3.1",
        system="You are terse.",
        transcript=[TranscriptEntry(author="Moderator", content="Say hi.", author_kind="system")],
        max_tokens=20,
    )


async def _drain(provider: OpenAICompatibleProvider) -> list:
    return [item async for item in provider.stream(_request())]


# -- the rules ------------------------------------------------------------------------------------------------


def test_by_default_loopback_is_allowed_and_a_private_address_refused_naming_the_setting() -> None:
    for url in ("http://localhost:11434/v1", "http://127.0.0.1:8000/v1", "http://127.5.6.7:1234", "http://[::1]:8080"):
        assert egress.refusal(url) is None, url
    assert egress.refusal("http://10.0.0.5:8000/v1") == (
        "http://10.0.0.5:8000 is not an allowed base URL; the operator allows: loopback "
        "(set MAESTRO_ALLOWED_BASE_URLS)."
    )


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://192.168.1.10:11434/v1", "not an allowed base URL"),
        ("http://172.16.0.1/v1", "not an allowed base URL"),
        ("https://api.example.com/v1", "not an allowed base URL"),  # a public name
        (f"http://{socket.gethostname()}:11434/v1", "not an allowed base URL"),  # a name that resolves to loopback
        ("http://localhost.evil.test/v1", "not an allowed base URL"),
        ("http://169.254.169.254/latest/meta-data", "a cloud metadata address"),
        ("http://[::ffff:169.254.169.254]/latest", "a cloud metadata address"),
        ("http://[fd00:ec2::254]/latest", "a cloud metadata address"),
        ("http://100.100.100.200/latest", "a cloud metadata address"),
        ("http://169.254.1.1:8000/v1", "a link-local address"),
        ("http://[fe80::1]:8000/v1", "a link-local address"),
        ("http://0.0.0.0:8000/v1", "the unspecified address"),
        ("http://[::]:8000/v1", "the unspecified address"),
        ("http://224.0.0.1/v1", "a multicast address"),
        ("http://2852039166/latest", "standard IP address"),  # 169.254.169.254 in decimal
        ("http://0xa9fea9fe/latest", "standard IP address"),  # ... in hex
        ("http://0251.0376.0251.0376/latest", "standard IP address"),  # ... in octal
        ("http://127.1:11434/v1", "standard IP address"),
        ("http://167772165:8000/v1", "standard IP address"),  # 10.0.0.5
        ("http://user:hunter2@localhost:11434/v1", "must not carry credentials"),
        ("http://localhost:11434/v1?api_key=x", "no query string"),
        ("http://localhost:11434/v1#x", "no query string"),
        ("file:///etc/passwd", "not an http(s) URL"),
        ("gopher://localhost:70/", "not an http(s) URL"),
    ],
)
def test_everything_else_is_refused(url: str, why: str) -> None:
    message = egress.refusal(url)
    assert message is not None and why in message
    assert "hunter2" not in message
    # And an agent on it is refused where discussions and personas are checked.
    problem = registry.validate_agent("openai_compatible", "llama3.1", url)
    assert problem is not None and "hunter2" not in problem


def test_an_origin_on_the_allowlist_is_accepted_and_only_that_origin(allow) -> None:
    allow(f"loopback, http://10.0.0.5:8000, https://{socket.gethostname()}")
    assert egress.refusal("http://10.0.0.5:8000/v1") is None
    assert egress.refusal(f"https://{socket.gethostname()}/v1") is None  # a name the operator named
    assert egress.refusal("http://localhost:11434/v1") is None
    for other in ("http://10.0.0.5:8001/v1", "https://10.0.0.5:8000/v1", "http://10.0.0.6:8000/v1"):
        message = egress.refusal(other)
        assert message is not None and "not an allowed base URL" in message
        assert f"the operator allows: loopback, http://10.0.0.5:8000, https://{socket.gethostname()}" in message
    assert registry.validate_agent("openai_compatible", "llama3.1", "http://10.0.0.5:8000/v1") is None


def test_the_operator_can_allow_nothing_or_not_loopback(allow) -> None:
    allow("http://10.0.0.5:8000")
    assert "not an allowed base URL" in (egress.refusal("http://127.0.0.1:11434/v1") or "")
    allow("")
    assert "the operator allows: nothing" in (egress.refusal("http://127.0.0.1:11434/v1") or "")


def test_no_entry_allows_metadata_or_link_local(allow) -> None:
    allow("http://169.254.169.254, http://[fe80::1]:8000, http://2852039166")
    assert "cloud metadata" in (egress.refusal("http://169.254.169.254/latest") or "")
    assert "link-local" in (egress.refusal("http://[fe80::1]:8000/v1") or "")
    assert "standard IP address" in (egress.refusal("http://2852039166/latest") or "")


def test_the_addresses_a_name_resolves_to_are_checked(allow, monkeypatch: pytest.MonkeyPatch) -> None:
    """A resolver answer stands in for DNS the operator does not control (there is none to reach from here)."""
    answers: dict[str, str] = {}
    real = socket.getaddrinfo

    def resolver(host: Any, port: Any, *args: Any, **kwargs: Any) -> list:
        if host in answers:
            family = socket.AF_INET6 if ":" in answers[host] else socket.AF_INET
            return [(family, socket.SOCK_STREAM, 6, "", (answers[host], port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    allow("loopback, http://gpu-box:8001")
    answers["gpu-box"] = "10.1.2.3"
    assert egress.refusal("http://gpu-box:8001/v1") is None  # the operator named it: private is fine
    answers["gpu-box"] = "169.254.169.254"
    assert "resolves to a cloud metadata address" in (egress.refusal("http://gpu-box:8001/v1") or "")
    answers["gpu-box"] = "fe80::1"
    assert "resolves to a link-local address" in (egress.refusal("http://gpu-box:8001/v1") or "")
    answers["localhost"] = "10.0.0.5"  # `loopback` means loopback addresses, whatever the name says
    assert "not on this machine" in (egress.refusal("http://localhost:11434/v1") or "")


def test_display_url_never_shows_credentials() -> None:
    assert egress.display_url("http://ollama:s3cret@127.0.0.1:11434/v1?key=abc#x") == "http://127.0.0.1:11434/v1"
    assert egress.display_url("http://a:b@[::1:11434/v1") == "http://[::1:11434/v1"  # unparsable: still stripped
    assert egress.display_url("http://localhost:11434/v1") == "http://localhost:11434/v1"


# -- where a base URL comes in --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://169.254.169.254/latest", "cloud metadata address"),
        ("http://10.0.0.5:8000/v1", "not an allowed base URL"),
        ("http://admin:pw@127.0.0.1:11434/v1", "must not carry credentials"),
    ],
)
def test_creating_a_discussion_on_a_refused_base_url_is_refused(sqlite_db, url: str, why: str) -> None:
    agents = [
        AgentSpec("architect", "offline", ""),
        AgentSpec("security", "openai_compatible", "llama3.1", url),
    ]
    with pytest.raises(InputError) as caught:
        create_discussion(topic="Choose a database for Apollo", agents=agents)
    message = caught.value.errors["agent_1"]
    assert message.startswith("Agent 2 (Security): ") and why in message and "pw" not in message
    with session_scope() as s:
        assert s.exec(select(Discussion)).first() is None  # nothing half-written


def test_a_persona_cannot_be_pointed_at_a_refused_base_url(sqlite_db) -> None:
    admin = person("ada")  # the first account: the instance admin, who edits the library
    with pytest.raises(InputError) as caught:
        update_persona(
            "devops",
            actor=admin,
            system_prompt="You run things.",
            provider="openai_compatible",
            model="llama3.1",
            base_url="http://169.254.169.254/latest",
        )
    assert "cloud metadata address" in caught.value.errors["provider"]
    with session_scope() as s:
        devops = s.exec(select(Persona).where(Persona.key == "devops")).one()
        assert devops.base_url is None


# -- where a base URL is called -------------------------------------------------------------------------------


def _discussion_on(url: str) -> int:
    agents = [AgentSpec(p, "openai_compatible", "llama3.1", url) for p in ("architect", "security")]
    d = create_discussion(topic="Choose a database for Apollo", agents=agents, rounds=1)
    assert d.id is not None
    return d.id


async def test_the_preflight_probe_never_connects_to_a_base_url_no_longer_allowed(sqlite_db, allow) -> None:
    with CountingWireServer([OpenAIScript.models(), OpenAIScript.models()]) as server:
        did = _discussion_on(f"{server.url}/v1")  # allowed when it was created (loopback) ...
        allow(_elsewhere())  # ... then the operator narrowed the allowlist
        pf = await preflight.run_preflight(did, timeout_s=2.0)
        item = pf.item(f"provider:openai_compatible@{server.url}/v1")
        assert item.status == "fail" and "not an allowed base URL" in item.detail and ENV in item.detail
        assert not pf.ready
        assert server.connections == 0


async def test_the_preflight_probe_does_not_follow_a_redirect(sqlite_db, allow) -> None:
    with CountingWireServer([OpenAIScript.models()]) as elsewhere:
        redirect = Reply(status=307, headers={"Location": f"{elsewhere.url}/v1/models"})
        with WireServer(ROUTE, [redirect]) as server:
            allow(server.url)  # only the first server is allowed
            pf = await preflight.run_preflight(_discussion_on(f"{server.url}/v1"), timeout_s=2.0)
        item = pf.item(f"provider:openai_compatible@{server.url}/v1")
        assert item.status == "fail" and "redirect (307)" in item.detail
        assert elsewhere.url not in item.detail
        assert elsewhere.connections == 0


async def test_preflight_logs_and_items_never_show_stored_credentials(sqlite_db, caplog) -> None:
    """A base URL stored before credentials were refused is shown and logged without them."""
    with WireServer(ROUTE, [OpenAIScript.models()]) as server:
        did = _discussion_on(f"{server.url}/v1")
        with session_scope() as s:
            for agent in s.exec(select(Participant).where(Participant.discussion_id == did)):
                if agent.base_url:
                    agent.base_url = agent.base_url.replace("http://", "http://ollama:s3cret@")
                    s.add(agent)
        with caplog.at_level(logging.DEBUG):
            pf = await preflight.run_preflight(did, timeout_s=2.0)
    assert pf.items and all("s3cret" not in f"{i.key} {i.label} {i.detail}" for i in pf.items)
    assert "s3cret" not in caplog.text
    assert server.requests == []  # and it was refused, not called


async def test_a_turn_on_a_base_url_no_longer_allowed_fails_without_a_connection(sqlite_db, bus, allow) -> None:
    with CountingWireServer([OpenAIScript.ok(["Postgres."]), OpenAIScript.ok(["Postgres."])]) as server:
        did = _discussion_on(f"{server.url}/v1")
        allow(_elsewhere())
        sub = await bus.subscribe(did)
        runner = Runner(bus=bus, lease_seconds=5)
        await runner.start(did)
        await runner.wait(did)
        seen = []
        while True:
            try:
                seen.append(await asyncio.wait_for(sub.__aiter__().__anext__(), 0.05))
            except TimeoutError:
                break
        await sub.close()
        failed = [e for e in seen if isinstance(e, TurnFailed)]
        assert failed and all("not an allowed base URL" in e.error_message for e in failed)
        assert ENV in failed[0].error_message
        assert server.connections == 0


async def test_a_built_provider_rechecks_its_base_url_before_every_call(allow) -> None:
    with CountingWireServer([OpenAIScript.ok(["Hi."]), OpenAIScript.ok(["Hi again."])]) as server:
        provider = OpenAICompatibleProvider(base_url=f"{server.url}/v1", timeout=10)
        assert (await _drain(provider))[-1].text == "Hi."
        assert server.connections == 1
        allow(_elsewhere())
        with pytest.raises(ProviderError, match="not an allowed base URL"):
            await _drain(provider)
        assert server.connections == 1


async def test_a_turn_does_not_follow_a_redirect(allow) -> None:
    with CountingWireServer([OpenAIScript.ok(["Hi."])]) as elsewhere:
        redirect = Reply(status=307, headers={"Location": f"{elsewhere.url}/v1/chat/completions"})
        with WireServer(ROUTE, [redirect]) as server:
            allow(server.url)
            provider = OpenAICompatibleProvider(base_url=f"{server.url}/v1", timeout=10)
            with pytest.raises(ProviderError, match=r"redirect \(307\), which Maestro does not follow"):
                await _drain(provider)
        assert elsewhere.connections == 0
