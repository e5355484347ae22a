"""Which web origins may talk to this server from a browser: its own (the page and the backend on one origin, as
`reflex run --env prod` serves them), the front end's in development, and any the operator lists in
MAESTRO_ORIGINS (comma-separated, e.g. https://maestro.example.com). Used for CORS and for the room's websocket,
whose handshake carries the session cookie."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

DEV_ORIGINS = ("http://localhost:3000", "http://127.0.0.1:3000")


def listed_origins() -> list[str]:
    """The origins the operator named, normalised (scheme://host[:port], no trailing slash)."""
    raw = os.environ.get("MAESTRO_ORIGINS", "")
    return [o.strip().rstrip("/").lower() for o in raw.split(",") if o.strip()]


def cors_origins() -> list[str]:
    """Origins other than the server's own that may make credentialed requests (none but these)."""
    return sorted({*listed_origins(), *DEV_ORIGINS})


def _same_origin(origin: str, environ: dict) -> bool:
    host = environ.get("HTTP_HOST", "")
    scheme = environ.get("HTTP_X_FORWARDED_PROTO", environ.get("wsgi.url_scheme", "http")).split(",")[0].strip()
    parts = urlsplit(origin)
    return bool(host) and parts.netloc.lower() == host.lower() and parts.scheme in (scheme, "http", "https")


def websocket_origin_allowed(origin: str | None, environ: dict) -> bool:
    """A websocket handshake from `origin` may open: the server's own origin, or a listed one. A handshake with no
    Origin (not a browser) carries no browser cookie to abuse, so it may open too."""
    if not origin:
        return True
    origin = origin.rstrip("/").lower()
    return _same_origin(origin, environ) or origin in cors_origins()
