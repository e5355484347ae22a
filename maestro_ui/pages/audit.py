"""The audit trail of a discussion: every human action, who, what, when, and the value before."""

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

    @rx.event
    async def load(self):
        """Members of the discussion may read its trail."""
        user = await (await self.get_state(AuthState)).current_user()
        if user is None:
            return rx.redirect(f"{routes.LOGIN}?next={self.router.url.path}")
        try:
            did = int(self.discussion_id)  # type: ignore[attr-defined]
        except ValueError:
            self.allowed, self.rows = False, []
            return
        self.room_href = routes.room(did)
        self.allowed = await run_db(membership.member_of, did, user) is not None
        entries = await run_db(audit.trail, did) if self.allowed else []
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
