"""The composer: humans post into the room at any time; agents see it on their next turn."""

from __future__ import annotations

import reflex as rx

from backend.config import get_settings
from maestro_ui.components.too_long import LengthLimit
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


def _limit() -> LengthLimit:
    """The server's limit on a message (MAESTRO_MAX_MESSAGE_CHARS, read when the page is compiled); the server
    checks it again on every post."""
    return LengthLimit(
        "composer_too_long", limit=get_settings().max_message_chars, what="That message", input_id="composer-input"
    )


def _form() -> rx.Component:
    # Not a <form>: a form's submit sends every field's text with it, and a text over the socket's limit closes
    # the socket. Send posts the draft the server already has, and only when the box's text fits.
    limit = _limit()
    return rx.vstack(
        rx.flex(
            rx.text_area(
                placeholder="Write to the room… (@name asks an agent or a person)",
                value=RoomState.draft,
                on_change=limit.on_change([RoomActions.set_draft]),
                id="composer-input",
                name="content",
                flex="1",
                rows="2",
                width="100%",
            ),
            rx.button(
                rx.icon("send", size=16),
                "Send",
                type="button",
                id="send-btn",
                on_click=limit.on_click([RoomActions.post({})]),
                loading=RoomState.posting,
                disabled=RoomState.posting | limit.over,
            ),
            spacing="2",
            direction=rx.breakpoints(initial="column", sm="row"),
            align=rx.breakpoints(initial="stretch", sm="end"),
            width="100%",
        ),
        limit.note(id="composer-too-long", class_name="field-error"),
        width="100%",
        class_name="composer",
    )
