"""Page chrome: a top bar with the product name and navigation."""

from __future__ import annotations

import reflex as rx

from maestro_ui import routes
from maestro_ui.state.auth import AuthState
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
            # On a phone the links are icons (with labels for screen readers), so the bar fits 390 px.
            rx.link(
                rx.hstack(rx.icon("scale", size=16), rx.text("Decisions", display=["none", "inline"]), spacing="1"),
                href=routes.DECISIONS,
                size="2",
                color_scheme="gray",
                id="decisions-link",
                aria_label="Decisions",
            ),
            rx.link(
                rx.hstack(rx.icon("brain", size=16), rx.text("Memory", display=["none", "inline"]), spacing="1"),
                href=routes.MEMORY,
                size="2",
                color_scheme="gray",
                id="memory-link",
                aria_label="Memory",
            ),
            rx.link(
                rx.hstack(rx.icon("users", size=16), rx.text("Personas", display=["none", "inline"]), spacing="1"),
                href=routes.PERSONAS,
                size="2",
                color_scheme="gray",
                aria_label="Personas",
            ),
            rx.link(rx.button(rx.icon("plus", size=14), "New", size="2", variant="soft"), href=routes.NEW),
            rx.cond(
                AuthState.signed_in,
                rx.menu.root(
                    rx.menu.trigger(
                        rx.button(
                            rx.icon("user", size=14),
                            rx.text("@", AuthState.username, display=["none", "inline"]),
                            size="2",
                            variant="ghost",
                            margin="0",  # a ghost button's negative margin pushed the icon off a phone's edge
                            id="me",
                            aria_label="Account",
                        )
                    ),
                    rx.menu.content(
                        rx.menu.item("Your account", on_click=rx.redirect(routes.ACCOUNT), id="account-link"),
                        rx.cond(
                            AuthState.admin,
                            rx.menu.item("Instance admin", on_click=rx.redirect(routes.ADMIN), id="admin-link"),
                        ),
                        rx.menu.separator(),
                        rx.menu.item("Sign out", on_click=AuthState.log_out, id="sign-out"),
                    ),
                ),
                rx.link("Sign in", href=routes.LOGIN, size="2", id="sign-in-link"),
            ),
            align="center",
            spacing="2",
            width="100%",
            padding_bottom="12px",
            border_bottom="1px solid var(--gray-4)",
            margin_bottom="16px",
        ),
        *children,
        **PAGE,
        **props,
    )
