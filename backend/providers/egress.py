"""Which base URLs the server may call: the operator's allowlist, checked again on the addresses a host resolves to.

An agent's base URL (an OpenAI-compatible server) is typed by whoever creates a discussion or edits a persona, yet
the server is the one that calls it, from inside the operator's network. Without a rule anyone who can sign up
could make it reach the cloud metadata service, a database admin page or anything else only the server can see
(server-side request forgery). So the operator lists what may be called in MAESTRO_ALLOWED_BASE_URLS: origins such
as `http://gpu-box:8001` (scheme, host and port must match) and/or the word `loopback` (the default: any port on
127.0.0.0/8, ::1 or `localhost`, for Ollama and friends on the same machine). Everything else is refused.

A URL that matches is still refused when its host resolves to an address nobody should call: link-local, the
cloud metadata addresses, unspecified or multicast, always; and for `loopback`, anything that is not loopback.
An origin entry trusts the host it names, private addresses included. URLs with credentials, a query or a fragment
are refused (they end up in logs and screens), and so are numeric hosts that are not standard dotted or bracketed
IP addresses (`http://2852039166/` is 169.254.169.254 to the resolver).

The check runs where a base URL is accepted (validation) and again before every call (the allowlist or the DNS may
have changed since). `display_url` is how a base URL is shown in logs and messages: never with credentials.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import SplitResult, urlsplit

from backend.config import get_settings

log = logging.getLogger(__name__)

ENV = "MAESTRO_ALLOWED_BASE_URLS"
LOOPBACK = "loopback"
SCHEMES = ("http", "https")
_DEFAULT_PORTS = {"http": 80, "https": 443}

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Addresses no entry ever allows: the cloud metadata services (AWS, AWS over IPv6, Alibaba), and whole ranges below.
_METADATA = frozenset(ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200"))
# inet_aton's forms that are not dotted quads: 2852039166, 0xa9fea9fe, 0251.0376.0251.0376, 169.254.43518.
_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]*|\d+)(\.(0x[0-9a-f]*|\d+))*\.?$")


@dataclass(frozen=True, slots=True)
class _Origin:
    """One allowlist entry naming a server: scheme, host (lowercase, or an IP address) and port."""

    scheme: str
    host: str | IPAddress
    port: int

    def __str__(self) -> str:
        return _origin_text(self.scheme, self.host, self.port)


_Entry = _Origin | str  # an origin, or LOOPBACK


def refusal(base_url: str) -> str | None:
    """Why the server must not call `base_url` (one user-facing sentence), or None when it may.

    Resolves the host, so it can block for as long as the resolver takes: call it off the event loop."""
    url = base_url.strip()
    shown = display_url(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return f"'{shown}' is not a valid URL."
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        return f"'{shown}' is not an http(s) URL; Maestro only calls model servers over http or https."
    if "@" in parts.netloc:
        return f"A base URL must not carry credentials (user:password@); remove them from '{shown}'."
    if parts.query or parts.fragment or "?" in url or "#" in url:
        return f"A base URL takes no query string or fragment; remove it from '{shown}'."
    host = _host(parts)
    if host is None:
        return f"'{shown}' has no host."
    if isinstance(host, str) and _NUMERIC_HOST.match(host):
        return f"'{shown}' does not name its host as a standard IP address or a name; write it like 192.0.2.7."
    port = port or _DEFAULT_PORTS[scheme]
    origin = _origin_text(scheme, host, port)
    if isinstance(host, (ipaddress.IPv4Address, ipaddress.IPv6Address)) and (why := _never(host)):
        return f"{origin} is {why}, which Maestro never calls."
    entries = allowlist()
    entry = _match(entries, scheme, host, port)
    if entry is None:
        return f"{origin} is not an allowed base URL; the operator allows: {_describe(entries)} (set {ENV})."
    try:
        infos = socket.getaddrinfo(str(host), port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        return f"{origin}: its host name could not be resolved ({exc})."
    for *_, sockaddr in infos:
        address = _normalise(ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0]))
        if why := _never(address):
            return f"{origin} resolves to {why}, which Maestro never calls."
        if entry == LOOPBACK and not address.is_loopback:
            return (
                f"{origin} resolves to an address that is not on this machine, and the operator allows only "
                f"loopback there (set {ENV})."
            )
    return None


def display_url(url: str | None) -> str:
    """`url` as it may appear in logs and messages: no credentials, no query string or fragment."""
    text = (url or "").strip()
    try:
        parts = urlsplit(text)
        netloc = parts.netloc.rsplit("@", 1)[-1]
        return SplitResult(parts.scheme, netloc, parts.path, "", "").geturl()
    except ValueError:
        text = re.sub(r"//[^/]*@", "//", text)
        return re.split(r"[?#]", text, maxsplit=1)[0]


def allowlist() -> list[_Entry]:
    """The operator's allowlist, parsed (malformed entries are left out, and logged once)."""
    return list(_parse(get_settings().allowed_base_urls))


def describe_allowlist() -> str:
    """The allowlist in words, for messages."""
    return _describe(allowlist())


@lru_cache(maxsize=8)
def _parse(raw: str) -> tuple[_Entry, ...]:
    entries: list[_Entry] = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        if item.lower() == LOOPBACK:
            entries.append(LOOPBACK)
            continue
        try:
            parts = urlsplit(item)
            port = parts.port
        except ValueError:
            parts, port = None, None
        scheme = parts.scheme.lower() if parts else ""
        host = _host(parts) if parts else None
        if (
            parts is None
            or scheme not in SCHEMES
            or host is None
            or "@" in parts.netloc
            or parts.path not in ("", "/")
            or parts.query
            or parts.fragment
        ):
            log.warning("%s: ignoring %r, which is neither 'loopback' nor an origin like http://host:8000", ENV, item)
            continue
        entries.append(_Origin(scheme, host, port or _DEFAULT_PORTS[scheme]))
    return tuple(entries)


def _describe(entries: list[_Entry]) -> str:
    return ", ".join(str(e) for e in entries) if entries else "nothing"


def _host(parts: SplitResult) -> str | IPAddress | None:
    """The URL's host: an IP address when it is one (IPv4-mapped IPv6 as IPv4), else the lowercase name."""
    name = (parts.hostname or "").lower()
    if not name:
        return None
    try:
        return _normalise(ipaddress.ip_address(name))
    except ValueError:
        return name


def _normalise(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.scope_id:
            return ipaddress.IPv6Address(address.compressed.split("%", 1)[0])
    return address


def _never(address: IPAddress) -> str | None:
    """What kind of address this is, when no allowlist entry may allow it."""
    if address in _METADATA:
        return "a cloud metadata address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_multicast:
        return "a multicast address"
    if isinstance(address, ipaddress.IPv4Address) and address.is_reserved:  # 240.0.0.0/4, the broadcast address
        return "a reserved address"
    return None


def _match(entries: list[_Entry], scheme: str, host: str | IPAddress, port: int) -> _Entry | None:
    """The first entry that covers this origin."""
    for entry in entries:
        if entry == LOOPBACK:
            if host == "localhost" or (not isinstance(host, str) and host.is_loopback):
                return entry
        elif isinstance(entry, _Origin) and (entry.scheme, entry.host, entry.port) == (scheme, host, port):
            return entry
    return None


def _origin_text(scheme: str, host: str | IPAddress, port: int) -> str:
    name = f"[{host}]" if isinstance(host, ipaddress.IPv6Address) else str(host)
    return f"{scheme}://{name}" + ("" if _DEFAULT_PORTS[scheme] == port else f":{port}")
