"""A message in the transcript, and a turn still streaming. Markdown renders with raw HTML disabled."""

from __future__ import annotations

import reflex as rx

from maestro_ui.components.badges import provider_badge
from maestro_ui.components.people import person_name
from maestro_ui.components.stream_text import stream_text
from maestro_ui.components.untrusted import untrusted_markdown
from maestro_ui.state.live import LiveState
from maestro_ui.state.room import MessageRow, RoomState, StreamRow
from maestro_ui.state.room_actions import RoomActions


def _author(name, kind) -> rx.Component:
    return rx.hstack(
        rx.match(
            kind,
            ("agent", rx.icon("bot", size=16)),
            ("summary", rx.icon("scroll_text", size=16)),
            ("report", rx.icon("triangle_alert", size=16, color="var(--amber-9)")),
            rx.icon("user", size=16),
        ),
        person_name(name, weight="bold", size="2", class_name="msg-author"),
        align="center",
        spacing="1",
        min_width="0",
        max_width="100%",
    )


def message_bubble(m: MessageRow) -> rx.Component:
    """A finished message: author, provider badge, Markdown body, and usage or the failure reason."""
    return rx.card(
        rx.vstack(
            rx.flex(
                _author(m["author"], m["kind"]),
                rx.cond(m["kind"] == "agent", provider_badge(m["provider_label"], m["model"])),
                rx.cond(m["round"] > 0, rx.text("round ", m["round"], size="1", color_scheme="gray")),
                rx.cond(m["label"] != "", rx.badge(m["label"], size="1", color_scheme="plum", class_name="turn-label")),
                spacing="2",
                wrap="wrap",
                align="center",
            ),
            # The body is a bidi island of its own (dir=auto, isolate): right-to-left text or an unmatched override
            # in a message can neither flow into the author line nor take on its direction.
            rx.box(
                untrusted_markdown(m["content"]),
                class_name="msg-body",
                width="100%",
                dir="auto",
                unicode_bidi="isolate",
                overflow_wrap="anywhere",
            ),
            rx.cond(m["cut"] != "", rx.text(m["cut"], size="1", color_scheme="gray", class_name="msg-cut")),
            rx.match(
                m["status"],
                (
                    "failed",
                    rx.flex(
                        rx.callout(
                            rx.text("This turn failed — ", m["error"]),
                            icon="triangle_alert",
                            color_scheme="red",
                            size="1",
                            class_name="msg-error",
                            flex="1",
                        ),
                        rx.button(
                            rx.icon("rotate_ccw", size=14),
                            "Retry",
                            size="1",
                            variant="soft",
                            on_click=RoomActions.retry_message(m["id"]),
                            class_name="retry-btn",
                        ),
                        spacing="2",
                        align="center",
                        wrap="wrap",
                        width="100%",
                    ),
                ),
                ("queued", rx.text("Retry queued…", size="1", color_scheme="orange")),
                rx.text(m["meta"], size="1", color_scheme="gray"),
            ),
            spacing="1",
            width="100%",
        ),
        id="msg-" + m["id"].to_string(),
        class_name="message " + m["kind"] + " " + m["status"],
        width="100%",
        background=rx.match(
            m["kind"],
            ("human", "var(--accent-2)"),
            ("summary", "var(--gray-2)"),
            ("report", "var(--amber-2)"),
            "var(--color-panel)",
        ),
    )


def stream_bubble(s: StreamRow) -> rx.Component:
    """A turn in flight: its text grows on the client from deltas."""
    return rx.card(
        rx.vstack(
            rx.flex(
                _author(s["author"], "agent"),
                provider_badge(s["provider_label"], s["model"]),
                rx.spinner(size="1"),
                spacing="2",
                wrap="wrap",
                align="center",
            ),
            rx.box(
                stream_text(
                    stream_key=s["key"],
                    delta=LiveState.d[s["key"]],
                    on_gap=RoomState.resync,
                    class_name="stream-text",
                ),
                white_space="pre-wrap",
                width="100%",
                dir="auto",
                unicode_bidi="isolate",
                overflow_wrap="anywhere",
            ),
            spacing="1",
            width="100%",
        ),
        class_name="streaming",
        width="100%",
        border="1px dashed var(--blue-7)",
    )
