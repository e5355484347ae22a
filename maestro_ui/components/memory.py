"""Deliberation memory on the page: related decisions (links to their rooms) and the "answered from memory" badge.

Everything shown here is stored text (questions, outcomes, names): it is rendered as text, never as HTML."""

from __future__ import annotations

import reflex as rx

from maestro_ui.projection.memory import RelatedRow


def related_item(r: RelatedRow) -> rx.Component:
    return rx.box(
        rx.link(r["question"], href=r["href"], weight="medium", size="2", word_break="break-word"),
        rx.text(
            rx.text.span("→ ", r["outcome"], weight="medium"),
            size="2",
            word_break="break-word",
        ),
        rx.text(r["meta"], " · ", r["context"], size="1", color_scheme="gray", word_break="break-word"),
        width="100%",
        padding_y="4px",
        border_bottom="1px solid var(--gray-4)",
        class_name="memory-related-item",
    )


def related_list(rows: rx.Var[list[RelatedRow]], *, title: str = "Related decisions", **props) -> rx.Component:
    """Earlier decisions on related questions (not the same one), newest match first; nothing when there are none."""
    return rx.cond(
        rows.length() > 0,
        rx.vstack(
            rx.hstack(rx.icon("link", size=14), rx.text(title, weight="bold", size="2"), align="center", spacing="1"),
            rx.foreach(rows, related_item),
            spacing="1",
            width="100%",
            **props,
        ),
    )
