"""The composer: humans post into the room at any time; agents see it on their next turn."""

from __future__ import annotations

import reflex as rx

from maestro_ui.state.room import RoomState
from maestro_ui.state.room_actions import RoomActions


def composer() -> rx.Component:
    """Message and Send for people whose role lets them write; observers are told they are reading."""
    return rx.cond(
        RoomState.can_message,
        _form(),
        rx.text(
            "You are in this room as ",
            RoomState.my_role_label,
            ": you can read, but not write.",
            size="2",
            color_scheme="gray",
            id="observer-note",
        ),
    )


def _form() -> rx.Component:
    return rx.form(
        rx.vstack(
            rx.flex(
                rx.text_area(
                    placeholder="Write to the room… (@name asks an agent or a person)",
                    value=RoomState.draft,
                    on_change=RoomActions.set_draft,
                    id="composer-input",
                    name="content",
                    flex="1",
                    rows="2",
                    width="100%",
                ),
                rx.button(
                    rx.icon("send", size=16),
                    "Send",
                    type="submit",
                    id="send-btn",
                    loading=RoomState.posting,
                    disabled=RoomState.posting,
                ),
                spacing="2",
                direction=rx.breakpoints(initial="column", sm="row"),
                align=rx.breakpoints(initial="stretch", sm="end"),
                width="100%",
            ),
            width="100%",
        ),
        on_submit=RoomActions.post,
        width="100%",
    )
