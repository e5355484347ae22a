"""HumanInputPrompt on the page: a prominent card for the people it is routed to, and for everyone else a line
saying whom the room is waiting for and how long is left."""

from __future__ import annotations

import reflex as rx

from maestro_ui.components.countdown import countdown
from maestro_ui.state.room import PromptRow, RoomState
from maestro_ui.state.room_actions import RoomActions


def _choices(p: PromptRow) -> rx.Component:
    return rx.flex(
        rx.foreach(
            p["options"],
            lambda option: rx.button(
                option,
                on_click=RoomActions.answer_prompt(p["id"], option),
                disabled=RoomState.answering,
                size="3",
                class_name="prompt-option",
                data_option=option,
            ),
        ),
        spacing="2",
        wrap="wrap",
        width="100%",
    )


def _free_text(p: PromptRow) -> rx.Component:
    return rx.form(
        rx.flex(
            rx.input(type="hidden", name="prompt_id", value=p["id"].to_string()),
            rx.text_area(name="answer", placeholder="Your answer…", rows="2", flex="1", class_name="prompt-text"),
            rx.button("Answer", type="submit", disabled=RoomState.answering, class_name="prompt-submit"),
            spacing="2",
            direction=rx.breakpoints(initial="column", sm="row"),
            width="100%",
        ),
        on_submit=RoomActions.answer_text,
        reset_on_submit=True,
        width="100%",
    )


def prompt_card(p: PromptRow) -> rx.Component:
    """A question for me: big, on top, answerable with one tap on a phone."""
    return rx.callout.root(
        rx.vstack(
            rx.flex(
                rx.badge(p["kind"], color_scheme="violet"),
                rx.cond(p["blocking"], rx.badge("the agents are waiting", color_scheme="orange")),
                rx.spacer(),
                countdown(deadline=p["deadline"], class_name="prompt-countdown"),
                spacing="2",
                align="center",
                width="100%",
                wrap="wrap",
            ),
            rx.text(p["prompt"], size="4", weight="bold", class_name="prompt-text-question"),
            rx.cond(p["options"].length() > 0, _choices(p), _free_text(p)),
            rx.cond(
                p["default"] != "",
                rx.text("If nobody answers in time: ", p["default"], size="1", color_scheme="gray"),
            ),
            spacing="2",
            width="100%",
        ),
        color_scheme="violet",
        size="2",
        class_name="prompt-card",
        data_prompt=p["id"],
        width="100%",
    )


def waiting_line(p: PromptRow) -> rx.Component:
    """For everyone else: whom the room is waiting for."""
    return rx.callout.root(
        rx.callout.icon(rx.icon("hourglass")),
        rx.callout.text(
            "Waiting for ",
            rx.text.strong(p["targets"]),
            " — ",
            countdown(deadline=p["deadline"]),
            rx.text(" · ", p["prompt"], color_scheme="gray"),
        ),
        color_scheme="orange",
        size="1",
        class_name="waiting-for",
        width="100%",
    )


def prompts_area() -> rx.Component:
    return rx.vstack(
        rx.foreach(RoomState.my_prompts, prompt_card),
        rx.foreach(RoomState.waiting_for, waiting_line),
        width="100%",
        spacing="2",
        id="prompts",
    )
