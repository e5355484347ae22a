"""Sign in and sign up."""

from __future__ import annotations

import reflex as rx

from maestro_ui import routes
from maestro_ui.components.layout import page
from maestro_ui.state.auth import AuthState


def _field(label: str, name: str, kind: str = "text", **props) -> rx.Component:
    return rx.vstack(
        rx.text(label, size="2", weight="medium"),
        rx.input(name=name, type=kind, id=f"auth-{name}", width="100%", size="3", **props),
        spacing="1",
        width="100%",
    )


def _form(title: str, submit: str, handler, fields: list[rx.Component], other: rx.Component) -> rx.Component:
    return page(
        rx.card(
            rx.form(
                rx.vstack(
                    rx.heading(title, size="6"),
                    *fields,
                    rx.cond(
                        AuthState.auth_error != "",
                        rx.callout(AuthState.auth_error, icon="circle_alert", color_scheme="red", id="auth-error"),
                    ),
                    rx.button(submit, type="submit", size="3", width="100%", loading=AuthState.busy, id="auth-submit"),
                    other,
                    spacing="3",
                    width="100%",
                ),
                on_submit=handler,
                reset_on_submit=False,
            ),
            max_width="420px",
            width="100%",
            margin_x="auto",
        )
    )


def login_page() -> rx.Component:
    return _form(
        "Sign in to Maestro",
        "Sign in",
        AuthState.log_in,
        [_field("Username", "username", auto_complete="username"), _field("Password", "password", "password")],
        rx.text("New here? ", rx.link("Create an account", href=routes.SIGNUP, id="to-signup"), size="2"),
    )


def signup_page() -> rx.Component:
    return _form(
        "Create your account",
        "Sign up",
        AuthState.sign_up,
        [
            _field("Username (for @mentions)", "username", auto_complete="username", placeholder="alex"),
            _field("Your name", "display_name", placeholder="Alex Kim"),
            _field("Password (8 characters or more)", "password", "password", auto_complete="new-password"),
            rx.text(
                "The first account on a new server is its admin. After that, the admin decides who may sign up "
                "(by default, people with a sign-up link from the admin).",
                size="1",
                color_scheme="gray",
            ),
        ],
        rx.text("Have an account? ", rx.link("Sign in", href=routes.LOGIN), size="2"),
    )
