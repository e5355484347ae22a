"""AuthState: who this browser is signed in as. The browser holds only an opaque session token (a cookie);
every page and action resolves it on the server (backend.humans.accounts), never trusting a name it sends."""

from __future__ import annotations

from urllib.parse import quote

import reflex as rx

from backend.db import run_db
from backend.humans import accounts
from backend.models import User
from backend.services.errors import InputError
from maestro_ui import routes

SESSION_COOKIE_DAYS = accounts.SESSION_DAYS


class AuthState(rx.State):
    """The signed-in person, and the sign-in / sign-up forms."""

    session_token: str = rx.Cookie("", name="maestro_session", max_age=SESSION_COOKIE_DAYS * 86400, same_site="lax")
    username: str = ""
    display_name: str = ""
    auth_error: str = ""
    busy: bool = False

    @rx.var
    def signed_in(self) -> bool:
        return self.username != ""

    async def current_user(self) -> User | None:
        """The person this browser's token belongs to, looked up on the server now."""
        user = await run_db(accounts.resolve, self.session_token)
        self.username, self.display_name = (user.username, user.display_name) if user else ("", "")
        return user

    def _next(self) -> str:
        target = self.router.url.query_parameters.get("next", routes.INDEX)
        return target if target.startswith("/") and not target.startswith("//") else routes.INDEX

    @rx.event
    async def check(self):
        """On every page: refresh who is signed in (a stale or forged cookie signs nobody in)."""
        await self.current_user()

    @rx.event
    async def require(self):
        """On pages for people only: send a signed-out browser to the sign-in page, then back here."""
        if await self.current_user() is None:
            return rx.redirect(f"{routes.LOGIN}?next={quote(self.router.url.path)}")

    @rx.event
    async def log_in(self, form: dict):
        self.auth_error, self.busy = "", True
        yield
        try:
            user, token = await run_db(accounts.log_in, form.get("username", ""), form.get("password", ""))
        except InputError as err:
            self.auth_error = "; ".join(err.errors.values())
            return
        finally:
            self.busy = False
        self.session_token, self.username, self.display_name = token, user.username, user.display_name
        yield rx.redirect(self._next())

    @rx.event
    async def sign_up(self, form: dict):
        self.auth_error, self.busy = "", True
        yield
        try:
            user, token = await run_db(
                accounts.sign_up, form.get("username", ""), form.get("password", ""), form.get("display_name", "")
            )
        except InputError as err:
            self.auth_error = "; ".join(err.errors.values())
            return
        finally:
            self.busy = False
        self.session_token, self.username, self.display_name = token, user.username, user.display_name
        yield rx.redirect(self._next())

    @rx.event
    async def log_out(self):
        await run_db(accounts.log_out, self.session_token)
        self.session_token, self.username, self.display_name = "", "", ""
        return rx.redirect(routes.LOGIN)
