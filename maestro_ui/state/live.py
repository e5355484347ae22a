"""LiveState: only the text streamed since the last flush, per turn in flight (small websocket frames).

The client-side StreamText component appends each (start, text) delta to what it already shows, so a
2,000-token reply crosses the wire once instead of being resent whole on every flush. Every flush is a frame
whose envelope names this state and its variables, so one short variable carries start and text together.
"""

from __future__ import annotations

import reflex as rx


class LiveState(rx.State):
    """Stream key ("t<start_seq>") -> [start offset, new text] of the latest flush."""

    d: dict[str, list] = {}
    # Finished turns whose last frame stays in `d` until the next text is sent: the finished message on the page
    # may need it (when React merges that frame with the one that finishes the turn, see assets/transcript.jsx).
    _done: set[str] = set()

    def _put(self, key: str, start: int, text: str) -> None:
        for done in self._done & set(self.d):
            self.d.pop(done)
        self._done = set()
        self.d[key] = [start, text]

    def _finish(self, key: str) -> None:
        self._done = {*self._done, key}

    def _clear(self) -> None:
        self.d = {}
        self._done = set()
