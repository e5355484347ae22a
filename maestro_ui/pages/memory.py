"""The memory page: the results memory keeps from the signed-in person's discussions, what reusing them saved, and
a way for the owner of a source discussion to forget one."""

from __future__ import annotations

import reflex as rx

from backend.db import run_db
from backend.errors import Forbidden, NotFound
from backend.services import memory
from maestro_ui import routes
from maestro_ui.components.layout import page
from maestro_ui.projection import memory as memory_view
from maestro_ui.projection.memory import MemoryEntryRow
from maestro_ui.state.auth import AuthState


class MemoryState(rx.State):
    """Remembered results from discussions the person is in, newest first (the service filters them)."""

    rows: list[MemoryEntryRow] = []
    totals: str = ""
    notice: str = ""
    loaded: bool = False

    async def _fill(self, user) -> None:
        found = await run_db(memory.entries, user)
        self.rows = [memory_view.entry_row(r) for r in found]
        self.totals = memory_view.totals(found)
        self.loaded = True

    @rx.event
    async def load(self):
        user = await (await self.get_state(AuthState)).current_user()
        if user is None:
            self.rows, self.totals, self.loaded = [], "", True
            return
        self.notice = ""
        await self._fill(user)

    @rx.event
    async def forget(self, entry_id: int):
        """Stop serving a result (the owner of its source discussion, or the instance admin: the service checks)."""
        user = await (await self.get_state(AuthState)).current_user()
        if user is None:
            return rx.redirect(f"{routes.LOGIN}?next={routes.MEMORY}")
        try:
            await run_db(memory.forget, int(entry_id), user)
        except (Forbidden, NotFound, ValueError, TypeError) as err:
            self.notice = str(err) or "That result cannot be forgotten."
            return
        self.notice = "Forgotten: that result is no longer reused for anyone."
        await self._fill(user)


def _forget_button(r: MemoryEntryRow) -> rx.Component:
    return rx.alert_dialog.root(
        rx.alert_dialog.trigger(
            rx.button(rx.icon("trash_2", size=14), "Forget", size="1", variant="soft", color_scheme="red"),
        ),
        rx.alert_dialog.content(
            rx.alert_dialog.title("Forget this result?"),
            rx.alert_dialog.description(
                "Memory stops reusing it, for everyone. The source discussion and its decision stay as they are.",
                size="2",
            ),
            rx.flex(
                rx.alert_dialog.cancel(rx.button("Keep it", variant="soft", color_scheme="gray")),
                rx.alert_dialog.action(
                    rx.button("Forget", color_scheme="red", on_click=MemoryState.forget(r["id"]), class_name="forget")
                ),
                spacing="3",
                justify="end",
                margin_top="12px",
            ),
            max_width="420px",
        ),
    )


def _entry(r: MemoryEntryRow) -> rx.Component:
    return rx.card(
        rx.flex(
            rx.vstack(
                rx.text(r["question"], weight="bold", word_break="break-word"),
                rx.text(rx.text.span("→ ", r["outcome"], weight="medium"), size="2", word_break="break-word"),
                rx.text(r["context"], size="1", color_scheme="gray", word_break="break-word"),
                rx.text(
                    "Source ",
                    rx.link(r["source_label"], href=r["source_href"]),
                    " · ",
                    rx.cond(r["kind"] == "decision", "decided ", "concluded "),
                    r["decided"],
                    size="1",
                    word_break="break-word",
                ),
                spacing="1",
                flex="1",
                min_width="0",
            ),
            rx.vstack(
                rx.badge(
                    r["status"],
                    color_scheme=rx.cond(r["live"], "green", "gray"),
                    variant="soft",
                    white_space="normal",
                    class_name="memory-status",
                ),
                rx.text(r["uses"], size="1"),
                rx.cond(r["saved"] != "", rx.text("saved ", r["saved"], size="1", color_scheme="gray")),
                rx.cond(r["can_forget"], _forget_button(r)),
                spacing="1",
                align=rx.breakpoints(initial="start", sm="end"),
                flex_shrink="0",
                max_width=rx.breakpoints(initial="100%", sm="260px"),
            ),
            direction=rx.breakpoints(initial="column", sm="row"),
            spacing="3",
            width="100%",
        ),
        width="100%",
        class_name="memory-entry",
    )


def memory_page() -> rx.Component:
    return page(
        rx.vstack(
            rx.heading("Memory", size="6"),
            rx.text(
                "Results of finished discussions, reused when the same question comes back in the same context. "
                "A decision sent back, superseded or forgotten is no longer reused.",
                size="2",
                color_scheme="gray",
            ),
            rx.cond(MemoryState.totals != "", rx.text(MemoryState.totals, size="2", id="memory-totals")),
            rx.cond(
                MemoryState.notice != "",
                rx.callout(MemoryState.notice, icon="info", size="1", id="memory-page-notice"),
            ),
            rx.cond(
                MemoryState.rows.length() > 0,
                rx.vstack(rx.foreach(MemoryState.rows, _entry), width="100%", spacing="2", id="memory-list"),
                rx.cond(
                    MemoryState.loaded,
                    rx.callout(
                        "Nothing remembered yet. A decision that stands, or a discussion that ends without a vote, "
                        "is kept here.",
                        icon="info",
                        id="memory-empty",
                    ),
                    rx.spinner(size="3"),
                ),
            ),
            width="100%",
            spacing="3",
        )
    )
