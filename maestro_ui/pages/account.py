"""Your account: change the password, or sign out of every browser and API token at once."""

from __future__ import annotations

import json

import reflex as rx

from backend.db import run_db
from backend.errors import Forbidden, InputError
from backend.humans import accounts
from maestro_ui.components.layout import page
from maestro_ui.state.auth import AuthState


class AccountState(rx.State):
    message: str = ""
    error: str = ""

    @rx.event
    async def load(self):
        self.message = self.error = ""

    @rx.event
    async def change_password(self, form: dict):
        auth = await self.get_state(AuthState)
        actor = await auth.current_user()
        try:
            token = await accounts.run_auth(
                accounts.change_password,
                actor,
                str(form.get("current_password", "")),
                str(form.get("new_password", "")),
            )
            hop = await auth._hand_over(token)  # this browser stays signed in with a new session
        except (InputError, Forbidden) as err:
            self.error, self.message = str(err), ""
            return
        self.error, self.message = "", "Password changed; every other session was signed out."
        yield hop

    @rx.event
    async def sign_out_everywhere(self):
        actor = await (await self.get_state(AuthState)).current_user()
        try:
            await run_db(accounts.log_out_everywhere, actor)
        except Forbidden as err:
            self.error = str(err)
            return
        return rx.call_script(f"window.location.assign({json.dumps('/auth/signed-out')})")


def account_page() -> rx.Component:
    return page(
        rx.vstack(
            rx.heading("Your account", size="6"),
            rx.cond(AccountState.error != "", rx.callout(AccountState.error, color_scheme="red", icon="circle_alert")),
            rx.cond(AccountState.message != "", rx.callout(AccountState.message, color_scheme="green", icon="check")),
            rx.card(
                rx.form(
                    rx.vstack(
                        rx.heading("Change password", size="4"),
                        rx.input(
                            name="current_password", type="password", placeholder="current password", width="100%"
                        ),
                        rx.input(
                            name="new_password", type="password", placeholder="new password (8 or more)", width="100%"
                        ),
                        rx.button("Change password", type="submit", id="change-password"),
                        spacing="2",
                        width="100%",
                    ),
                    on_submit=AccountState.change_password,
                ),
                width="100%",
            ),
            rx.card(
                rx.vstack(
                    rx.text("Signed in somewhere you should not be? End every session, this one included."),
                    rx.button(
                        "Sign out everywhere",
                        color_scheme="red",
                        variant="soft",
                        on_click=AccountState.sign_out_everywhere,
                        id="sign-out-everywhere",
                    ),
                    spacing="2",
                ),
                width="100%",
            ),
            width="100%",
            max_width="520px",
            spacing="3",
        )
    )
