"""Text over its limit is refused in the browser, before it is sent (issue 15: "A 1 MB message is silently lost").

Every keystroke in a controlled text box sends the whole text to the server over the room's websocket, and so does
the button that submits it. Reflex's Socket.IO server (python-engineio) refuses a packet over
`REFLEX_SOCKET_MAX_HTTP_BUFFER_SIZE` (1,000,000 characters by default): it raises "packet is too large", closes
the socket, the page reconnects, and the event (the text, or the Send) is gone without a word. So the check must
happen in the page: the text box's change handler and the submit button below measure the text first; over the
limit they send nothing and say "That message is 1,048,576 characters; the limit is 20,000." The text stays in the
box (the debounced text box keeps what was typed while the server's copy is unchanged), so it can be shortened.
The server still refuses oversized text on its own (the same words), whatever a browser sends.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import reflex as rx
from reflex.experimental.client_state import ClientStateVar
from reflex_base.event import EventChain, input_event, no_args_event_spec
from reflex_base.vars import VarData


class LengthLimit:
    """One text box's limit: `on_change` and `on_click` wrap event handlers so they run only when the text fits;
    `note()` says the real size and the limit when it does not."""

    def __init__(self, key: str, *, limit: int, what: str, input_id: str) -> None:
        self.limit, self.what, self.input_id = limit, what, input_id
        self.size = ClientStateVar.create(key, 0)  # the refused text's length; 0 while the text fits

    @property
    def over(self) -> rx.Var:
        return self.size.value.to(int) > 0

    def _setter(self) -> rx.Var:
        return self.size.set_value()

    def _guard(self, chain: EventChain, measure: str, args: str) -> rx.Var:
        inner = rx.Var.create(chain)
        setter = self._setter()
        js = (
            f"(({args}) => {{ const n = {measure}; if (n > {self.limit}) {{ ({setter})(n); return; }}"
            f" ({setter})(0); return ({inner})({args}); }})"
        )
        data = VarData.merge(inner._get_all_var_data(), setter._get_all_var_data(), self.size._get_all_var_data())
        return rx.Var(js, _var_data=data).to(EventChain)

    def on_change(self, handlers: Sequence) -> rx.Var:
        """A text box's change handlers, sent only when its text fits (the text comes in the change event)."""
        chain = EventChain.create(list(handlers), args_spec=input_event, key="on_change")
        return self._guard(chain, "String(_e?.target?.value ?? '').length", "_e")

    def on_click(self, handlers: Sequence) -> rx.Var:
        """A submit button's handlers, sent only when the text box's text (read from the page) fits."""
        chain = EventChain.create(list(handlers), args_spec=no_args_event_spec, key="on_click")
        measure = f"String(document.getElementById({json.dumps(self.input_id)})?.value ?? '').length"
        return self._guard(chain, measure, "...args")

    def note(self, **props) -> rx.Component:
        """'<what> is 1,048,576 characters; the limit is 20,000.' while the text is over its limit."""
        size = rx.Var(f"Number({self.size.value}).toLocaleString('en-US')", _var_data=self.size._get_all_var_data())
        return rx.cond(
            self.over,
            rx.text(
                f"{self.what} is ",
                size.to(str),
                f" characters; the limit is {self.limit:,}.",
                size="2",
                color_scheme="red",
                role="alert",
                **props,
            ),
        )
