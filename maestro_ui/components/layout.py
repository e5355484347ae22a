"""Page chrome: a top bar with the product name and navigation."""

from __future__ import annotations

import reflex as rx

from maestro_ui import routes
from maestro_ui.styles import PAGE


def page(*children: rx.Component, **props) -> rx.Component:
    """Wrap a page's content with the top bar, at a readable width that also fits a 390 px phone."""
    return rx.box(
        rx.flex(
            rx.link(
                rx.hstack(rx.icon("orbit", size=20), rx.heading("Maestro", size="5"), align="center", spacing="2"),
                href=routes.INDEX,
                underline="none",
                color="inherit",
            ),
            rx.spacer(),
            rx.link("Personas", href=routes.PERSONAS, size="2", margin_right="12px", color_scheme="gray"),
            rx.link(rx.button(rx.icon("plus", size=14), "New discussion", size="2", variant="soft"), href=routes.NEW),
            align="center",
            width="100%",
            padding_bottom="12px",
            border_bottom="1px solid var(--gray-4)",
            margin_bottom="16px",
        ),
        *children,
        **PAGE,
        **props,
    )
