"""Headers every response carries, pages included: what a browser may load and run, and that no other site may
frame Maestro (clickjacking) or make a response's type up (MIME sniffing). A pure ASGI wrapper, so websockets and
streamed responses pass through untouched."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]

# Reflex's pages run their own bundled scripts (an inline one sets the colour theme, and Reflex evaluates the
# scripts a server event sends, e.g. the full-page hop that sets the session cookie); Radix styles are inline; the
# room talks to its own backend over a websocket. Nothing is loaded from another origin, and no other site may
# frame a page or be a form's target.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline' 'unsafe-eval'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        "connect-src 'self' ws: wss:",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
]
_NAMES = {name for name, _ in HEADERS}


def security_headers(app: ASGIApp) -> ASGIApp:
    """Wrap `app` so every HTTP response gets HEADERS (replacing any the app set itself)."""

    async def wrapped(scope: Scope, receive, send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in _NAMES]
                message["headers"] = kept + HEADERS
            await send(message)

        await app(scope, receive, send_with_headers)

    return wrapped
