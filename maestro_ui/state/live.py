"""LiveState: only the text streamed since the last flush, per turn in flight (small websocket frames).

The client-side StreamText component appends each (start, text) delta to what it already shows, so a
2,000-token reply crosses the wire once instead of being resent whole on every flush.
"""

from __future__ import annotations

import reflex as rx


class LiveState(rx.State):
    """Stream key ("t<start_seq>") -> start offset / new text of the latest flush."""

    o: dict[str, int] = {}
    t: dict[str, str] = {}

    def _put(self, key: str, start: int, text: str) -> None:
        self.o[key] = start
        self.t[key] = text

    def _drop(self, key: str) -> None:
        self.o.pop(key, None)
        self.t.pop(key, None)

    def _clear(self) -> None:
        self.o = {}
        self.t = {}
