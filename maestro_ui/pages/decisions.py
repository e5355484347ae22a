"""Decisions: the list of decisions (with search) and one decision's own page with its exports."""

from __future__ import annotations

import asyncio
import logging
from typing import TypedDict

import reflex as rx

from backend.db import run_db
from backend.deliberation import decisions
from backend.errors import NotFound
from backend.humans import membership
from backend.services import memory
from maestro_ui import routes
from maestro_ui.components.badges import status_badge
from maestro_ui.components.deliberation import decision_card
from maestro_ui.components.layout import page
from maestro_ui.components.memory import related_list
from maestro_ui.projection import memory as memory_view
from maestro_ui.projection.memory import RelatedRow
from maestro_ui.state.auth import AuthState
from maestro_ui.state.deliberation import DeliberationState
from maestro_ui.state.room import RoomState

log = logging.getLogger(__name__)


class DecisionRow(TypedDict):
    title: str
    topic: str
    status: str
    signoff: str
    href: str


def _row(card: dict) -> DecisionRow:
    so = card.get("signoff")
    return DecisionRow(
        title=card["title"],
        topic=card.get("topic", ""),
        status=card["final_status"],
        signoff=f"{so['outcome'].replace('_', ' ')} by {so['by']}" if so else "awaiting sign-off",
        href=routes.decision(card["id"]),
    )


class DecisionsState(rx.State):
    """The signed-in person's decisions, newest first, filtered by a search."""

    query: str = ""
    rows: list[DecisionRow] = []

    @rx.event
    async def load(self):
        user = await (await self.get_state(AuthState)).current_user()
        if user is not None:
            self.rows = [_row(c) for c in await run_db(lambda: decisions.search(self.query, user_id=user.id))]

    @rx.event
    async def search(self, value: str):
        """Search titles, rationales and questions as the person types."""
        self.query = value[:200]
        return DecisionsState.load


class DecisionPageState(rx.State):
    """One decision: its card, and where to export it."""

    allowed: bool = True
    topic: str = ""
    room_href: str = "/"
    markdown_href: str = ""
    json_href: str = ""
    related: list[RelatedRow] = []  # earlier decisions on related questions (memory)
    _discussion_id: int = 0  # the decision's discussion, set only once the person was found to be in it

    @rx.event
    async def load(self):
        self._discussion_id, self.related = 0, []
        user = await (await self.get_state(AuthState)).current_user()
        if user is None:
            return rx.redirect(f"{routes.LOGIN}?next={self.router.url.path}")
        try:
            decision_id = int(self.decision_id)  # type: ignore[attr-defined]
            card = await run_db(decisions.get_card, decision_id)
        except (ValueError, NotFound):
            self.allowed = False
            return
        self.allowed = await run_db(membership.member_of, card["discussion_id"], user) is not None
        if not self.allowed:
            return
        self.topic, self.room_href = card["topic"], routes.room(card["discussion_id"])
        self.markdown_href, self.json_href = (
            f"/export/decisions/{decision_id}.md",
            f"/export/decisions/{decision_id}.json",
        )
        deliberation = await self.get_state(DeliberationState)
        deliberation._show_decision(card)
        # This tab's room view no longer matches what DeliberationState holds: the next room it opens loads whole.
        (await self.get_state(RoomState))._did = 0
        self._discussion_id = card["discussion_id"]
        return DecisionPageState.load_related

    @rx.event(background=True)
    async def load_related(self):
        """Related decisions from memory (the embedding runs in a thread: the card is already on screen)."""
        async with self:
            did = self._discussion_id
            user = await (await self.get_state(AuthState)).current_user() if did else None
        if user is None or await run_db(membership.member_of, did, user) is None:
            return  # only a member of this discussion is shown what is related to its question
        try:
            found = await asyncio.to_thread(memory.related_to, did, user)
        except NotFound:
            found = []
        except Exception:  # related decisions are a convenience: the page stands without them
            log.exception("memory: related decisions failed")
            found = []
        async with self:
            if self._discussion_id == did:
                self.related = [memory_view.related_row(r) for r in found]


def _decision_item(r: DecisionRow) -> rx.Component:
    return rx.card(
        rx.link(
            rx.flex(
                rx.vstack(
                    rx.text(r["title"], weight="bold", word_break="break-word"),
                    rx.text(r["topic"], size="1", color_scheme="gray"),
                    spacing="1",
                    flex="1",
                    min_width="0",
                ),
                rx.vstack(status_badge(r["status"]), rx.text(r["signoff"], size="1"), align="end", spacing="1"),
                spacing="3",
                width="100%",
            ),
            href=r["href"],
            underline="none",
        ),
        width="100%",
        class_name="decision-item",
    )


def decisions_page() -> rx.Component:
    return page(
        rx.vstack(
            rx.heading("Decisions", size="6"),
            rx.input(
                placeholder="Search decisions…",
                value=DecisionsState.query,
                on_change=DecisionsState.search.debounce(300),
                id="decision-search",
                width="100%",
            ),
            rx.cond(
                DecisionsState.rows.length() > 0,
                rx.vstack(rx.foreach(DecisionsState.rows, _decision_item), width="100%", spacing="2"),
                rx.text("No decisions yet. A discussion with a vote ends in one.", size="2", color_scheme="gray"),
            ),
            width="100%",
            spacing="3",
        )
    )


def decision_page() -> rx.Component:
    return page(
        rx.cond(
            DecisionPageState.allowed,
            rx.vstack(
                rx.flex(
                    rx.text(DecisionPageState.topic, size="2", color_scheme="gray", flex="1"),
                    rx.link("Back to the room", href=DecisionPageState.room_href),
                    spacing="3",
                    width="100%",
                    wrap="wrap",
                ),
                decision_card(with_controls=False),
                related_list(DecisionPageState.related, id="decision-related"),
                rx.flex(
                    rx.link(
                        rx.button("Export Markdown", variant="soft"),
                        href=DecisionPageState.markdown_href,
                        id="export-md",
                        is_external=True,
                    ),
                    rx.link(
                        rx.button("Export JSON", variant="soft"),
                        href=DecisionPageState.json_href,
                        id="export-json",
                        is_external=True,
                    ),
                    spacing="2",
                ),
                width="100%",
                spacing="3",
            ),
            rx.callout(
                "Only people in this discussion can read its decision.",
                icon="lock",
                color_scheme="orange",
                id="decision-locked",
            ),
        )
    )
