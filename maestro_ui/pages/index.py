"""The discussions list."""

from __future__ import annotations

from typing import TypedDict

import reflex as rx

from backend.db import run_db
from backend.services.discussions import list_discussions
from maestro_ui.components.badges import status_badge
from maestro_ui.components.layout import page


class DiscussionRow(TypedDict):
    id: int
    topic: str
    status: str
    agents: int
    messages: int
    href: str


class DiscussionsState(rx.State):
    """Newest discussions first."""

    rows: list[DiscussionRow] = []
    # False until the first load finished: until then the page must not claim "No discussions yet".
    loaded: bool = False

    @rx.event
    async def load(self):
        """Read the list from the database."""
        self.rows = [
            DiscussionRow(
                id=d.id, topic=d.topic, status=d.status, agents=d.agents, messages=d.messages, href=f"/room/{d.id}"
            )
            for d in await run_db(list_discussions)
        ]
        self.loaded = True


def _row(r: DiscussionRow) -> rx.Component:
    return rx.link(
        rx.card(
            rx.flex(
                rx.text(r["topic"], weight="medium", flex="1", min_width="0", word_break="break-word"),
                rx.flex(
                    status_badge(r["status"]),
                    rx.text(r["agents"], " agents · ", r["messages"], " messages", size="1", color_scheme="gray"),
                    spacing="2",
                    align="center",
                ),
                spacing="2",
                direction=rx.breakpoints(initial="column", sm="row"),
                align=rx.breakpoints(initial="start", sm="center"),
            ),
            width="100%",
        ),
        href=r["href"],
        underline="none",
        color="inherit",
        width="100%",
        class_name="discussion-row",
    )


def index_page() -> rx.Component:
    """All discussions, with a way to start a new one."""
    return page(
        rx.vstack(
            rx.heading("Discussions", size="6"),
            rx.text(
                "Several AI agents and several people think a question through together.",
                color_scheme="gray",
                size="2",
            ),
            rx.cond(
                DiscussionsState.rows.length() > 0,
                rx.vstack(rx.foreach(DiscussionsState.rows, _row), width="100%", spacing="2", id="discussion-list"),
                rx.cond(
                    DiscussionsState.loaded,
                    rx.callout("No discussions yet — start one with “New discussion”.", icon="info", id="empty-list"),
                    rx.spinner(size="3", id="list-loading"),
                ),
            ),
            width="100%",
            spacing="3",
        )
    )
