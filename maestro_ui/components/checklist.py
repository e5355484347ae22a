"""The preflight checklist: what must pass before Run Agents, with how to fix each failing item."""

from __future__ import annotations

import reflex as rx

from maestro_ui.state.room import CheckRow, RoomState


def _item(c: CheckRow) -> rx.Component:
    return rx.hstack(
        rx.match(
            c["status"],
            ("pass", rx.icon("circle_check", size=16, color="var(--green-9)")),
            (
                "fail",
                rx.cond(
                    c["required"],
                    rx.icon("circle_x", size=16, color="var(--red-9)"),
                    rx.icon("triangle_alert", size=16, color="var(--amber-9)"),
                ),
            ),
            ("skip", rx.icon("circle_minus", size=16, color="var(--gray-8)")),
            rx.spinner(size="1"),
        ),
        rx.vstack(
            rx.text(c["label"], rx.cond(c["required"], "", " (recommended)"), size="2"),
            rx.cond((c["status"] != "pass") & (c["detail"] != ""), rx.text(c["detail"], size="1", color_scheme="gray")),
            spacing="0",
            min_width="0",
        ),
        align="start",
        spacing="2",
        class_name="check-item",
        data_status=c["status"],
        data_key=c["key"],
        width="100%",
    )


def checklist() -> rx.Component:
    """Shown before the agents run (and while paused); Run Agents stays disabled until required items pass."""
    return rx.card(
        rx.vstack(
            rx.hstack(
                rx.text("Preflight checklist", weight="bold", size="2"),
                rx.spacer(),
                rx.cond(
                    RoomState.checking,
                    rx.spinner(size="1"),
                    rx.text(RoomState.check_score, "% complete", size="1", color_scheme="gray", id="check-score"),
                ),
                rx.icon_button(
                    rx.icon("refresh_cw", size=14),
                    on_click=RoomState.run_checks(True),
                    disabled=RoomState.checking,
                    variant="ghost",
                    size="1",
                    aria_label="Check again",
                    id="check-again",
                ),
                width="100%",
                align="center",
            ),
            rx.progress(value=RoomState.check_score, max=100, size="1", width="100%"),
            rx.foreach(RoomState.checks, _item),
            spacing="2",
            width="100%",
        ),
        id="preflight",
        width="100%",
    )
