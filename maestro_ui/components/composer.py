"""The composer: humans post into the room at any time; agents see it on their next turn."""

from __future__ import annotations

import reflex as rx

from maestro_ui.state.room import RoomState


def composer() -> rx.Component:
    """Name, message and Send; Ctrl/Cmd+Enter also sends."""
    return rx.form(
        rx.vstack(
            rx.flex(
                rx.input(
                    placeholder="Your name",
                    value=RoomState.my_name,
                    on_change=RoomState.set_my_name,
                    id="my-name",
                    name="author",
                    width=["100%", "180px"],
                    max_length=120,
                ),
                rx.text_area(
                    placeholder="Write to the room…",
                    value=RoomState.draft,
                    on_change=RoomState.set_draft,
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
        on_submit=RoomState.post,
        width="100%",
    )
