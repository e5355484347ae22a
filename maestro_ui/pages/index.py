"""The discussions list."""

from __future__ import annotations

from typing import TypedDict

import reflex as rx

from backend.db import run_db
from backend.humans.mentions import unseen_for
from backend.services.discussions import list_discussions
from maestro_ui.components.badges import status_badge
from maestro_ui.components.layout import page
from maestro_ui.state.auth import AuthState


class DiscussionRow(TypedDict):
    id: int
    topic: str
    status: str
    agents: int
    messages: int
    mentions: int
    href: str


class DiscussionsState(rx.State):
    """Newest discussions first."""

    rows: list[DiscussionRow] = []
    # False until the first load finished: until then the page must not claim "No discussions yet".
    loaded: bool = False

    @rx.event
    async def load(self):
        """The signed-in person's discussions, with a badge where someone @mentioned them."""
        user = await (await self.get_state(AuthState)).current_user()
        if user is None or user.id is None:
            self.rows, self.loaded = [], True
            return
        unseen = await run_db(unseen_for, user.id)
        self.rows = [
            DiscussionRow(
                id=d.id,
                topic=d.topic,
                status=d.status,
                agents=d.agents,
                messages=d.messages,
                mentions=unseen.get(d.id, 0),
                href=f"/room/{d.id}",
            )
            for d in await run_db(list_discussions, 100, user.id)
        ]
        self.loaded = True


def _row(r: DiscussionRow) -> rx.Component:
    return rx.link(
        rx.card(
            rx.flex(
                rx.text(r["topic"], weight="medium", flex="1", min_width="0", word_break="break-word"),
                rx.flex(
                    rx.cond(
                        r["mentions"] > 0,
                        rx.badge(
                            rx.icon("at-sign", size=12),
                            r["mentions"],
                            color_scheme="crimson",
                            class_name="mention-badge",
                        ),
                    ),
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
