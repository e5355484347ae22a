"""StreamText: a React component (assets/stream_text.jsx) that appends streamed deltas on the client."""

from __future__ import annotations

import reflex as rx


class StreamText(rx.Component):
    """Shows a turn's streamed text; the server sends only (start, text) deltas, see LiveState."""

    library = rx.asset("stream_text.jsx").importable_path
    tag = "StreamText"

    stream_key: rx.Var[str]
    delta: rx.Var[list]  # [start, text]
    # The page lost some text (e.g. it reconnected mid-stream): ask the server to resend the turn whole.
    on_gap: rx.EventHandler[rx.event.passthrough_event_spec(str, int)]  # (stream key, characters held)


stream_text = StreamText.create
