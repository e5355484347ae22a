"""The transcript kept on the client (assets/transcript.jsx): the server sends only the rows that changed.

Reflex resends a state variable whole whenever it changes, so a `messages` list would cross the wire again
for every new message: a long room would cost O(n^2) bytes per viewer. Instead RoomState sends `tx`, a delta
of changed rows, and the page folds it into the rows it has; `transcript_rows` is that folded list, as a
Var that `rx.foreach` can render with ordinary Reflex components.
"""

from __future__ import annotations

import reflex as rx
from reflex.vars import FunctionStringVar, VarData

_LIBRARY = rx.asset("transcript.jsx").importable_path


class TranscriptSync(rx.Component):
    """Renders nothing visible; asks for a reset when a delta cannot be applied (a gap)."""

    library = _LIBRARY
    tag = "TranscriptSync"

    tx: rx.Var[dict]
    live: rx.Var[dict]
    on_gap: rx.EventHandler[rx.event.passthrough_event_spec(int)]


transcript_sync = TranscriptSync.create


def transcript_rows(tx: rx.Var, live: rx.Var, row_type: type) -> rx.Var:
    """The client's transcript after applying `tx` (finished turns' text taken from the streams and `live`,
    LiveState's latest frames), typed as a list of `row_type` for rx.foreach."""
    fold = FunctionStringVar.create(
        "transcript", _var_data=VarData(imports={_LIBRARY: [rx.ImportVar(tag="transcript")]})
    )
    return fold.call(tx, live).to(list[row_type])  # type: ignore[valid-type]
