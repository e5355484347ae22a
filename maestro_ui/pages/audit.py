"""The audit trail of a discussion: every human action, who, what, when, and the value before; newest first, a
page of 100 at a time (Older / Newer), so a long trail never loads whole."""

from __future__ import annotations

from typing import TypedDict

import reflex as rx

from backend.db import run_db
from backend.humans import audit, membership
from maestro_ui import routes
from maestro_ui.components.layout import page
from maestro_ui.state.auth import AuthState


class AuditRow(TypedDict):
    at: str
    actor: str
    action: str
    target: str
    previous: str
    new: str


class AuditState(rx.State):
    rows: list[AuditRow] = []
    allowed: bool = True
    room_href: str = "/"
    # The trail is shown a page at a time, newest first: cursors to the pages beside this one (0: none that way).
    older_id: int = 0
    newer_id: int = 0

    @rx.event
    async def load(self):
        """Members of the discussion may read its trail; it opens on the newest page."""
        return await self._show()

    @rx.event
    async def older(self):
        """The next page of older entries."""
        if self.older_id:
            return await self._show(before=self.older_id)

    @rx.event
    async def newer(self):
        """The next page of newer entries (the newest page once there are no more)."""
        if self.newer_id:
            return await self._show(after=self.newer_id)

    async def _show(self, *, before: int | None = None, after: int | None = None):
        """Check who is asking on every page, then show the page (each page rechecks: a removed member sees none)."""
        user = await (await self.get_state(AuthState)).current_user()
        if user is None:
            return rx.redirect(f"{routes.LOGIN}?next={self.router.url.path}")
        try:
            did = int(self.discussion_id)  # type: ignore[attr-defined]
        except ValueError:
            self.allowed, self.rows, self.older_id, self.newer_id = False, [], 0, 0
            return
        self.room_href = routes.room(did)
        self.allowed = await run_db(membership.member_of, did, user) is not None
        if not self.allowed:
            self.rows, self.older_id, self.newer_id = [], 0, 0
            return
        page = await run_db(lambda: audit.trail_page(did, before=before, after=after))
        entries = page.entries
        self.older_id, self.newer_id = page.older or 0, page.newer or 0
        self.rows = [
            AuditRow(
                at=e.at.strftime("%Y-%m-%d %H:%M:%S"),
                actor=e.actor_name,
                action=e.action,
                target=e.target,
                previous=e.previous_value or "",
                new=e.new_value or "",
            )
            for e in entries
        ]


def _row(r: AuditRow) -> rx.Component:
    return rx.table.row(
        rx.table.cell(r["at"], white_space="nowrap"),
        rx.table.cell(r["actor"]),
        rx.table.cell(rx.code(r["action"])),
        rx.table.cell(r["target"], word_break="break-word"),
        rx.table.cell(r["previous"], word_break="break-word"),
        rx.table.cell(r["new"], word_break="break-word"),
        class_name="audit-row",
    )


def audit_page() -> rx.Component:
    return page(
        rx.vstack(
            rx.flex(
                rx.heading("Audit trail", size="6"), rx.spacer(), rx.link("Back to the room", href=AuditState.room_href)
            ),
            rx.text("Every human action, append-only: the database refuses edits and deletions.", size="2"),
            rx.cond(
                AuditState.allowed,
                rx.box(
                    rx.table.root(
                        rx.table.header(
                            rx.table.row(
                                *[
                                    rx.table.column_header_cell(h)
                                    for h in ("When (UTC)", "Who", "What", "On", "Before", "After")
                                ]
                            )
                        ),
                        rx.table.body(rx.foreach(AuditState.rows, _row)),
                        size="1",
                        id="audit-table",
                    ),
                    rx.flex(
                        rx.button(
                            "Newer",
                            on_click=AuditState.newer,
                            disabled=AuditState.newer_id == 0,
                            variant="soft",
                            id="audit-newer",
                        ),
                        rx.button(
                            "Older",
                            on_click=AuditState.older,
                            disabled=AuditState.older_id == 0,
                            variant="soft",
                            id="audit-older",
                        ),
                        spacing="2",
                        justify="end",
                        padding_top="8px",
                    ),
                    overflow_x="auto",
                    width="100%",
                ),
                rx.callout(
                    "Only people in this discussion can read its audit trail.", icon="lock", color_scheme="orange"
                ),
            ),
            width="100%",
            spacing="3",
        )
    )
