"""AuthState: who this browser is signed in as.

The browser holds only an opaque session token, in an HttpOnly cookie that the server sets (backend/api/
browser_session.py), so no page script can read it. Every event resolves it on the server from the cookie the
websocket was opened with (backend.humans.accounts), never trusting a name the page sends.
"""

from __future__ import annotations

import json
from http.cookies import CookieError, SimpleCookie
from urllib.parse import quote

import reflex as rx

from backend.api.browser_session import SESSION_COOKIE, safe_next
from backend.db import run_db
from backend.errors import Forbidden, InputError
from backend.humans import accounts
from backend.humans.instance import is_admin
from backend.models import User
from maestro_ui import routes


def cookie_token(cookie_header: str) -> str | None:
    """The session token in a Cookie header, if any."""
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(cookie_header or "")
    except CookieError:
        return None
    morsel = jar.get(SESSION_COOKIE)
    return morsel.value if morsel else None


class AuthState(rx.State):
    """The signed-in person, and the sign-in / sign-up forms."""

    username: str = ""
    display_name: str = ""
    admin: bool = False
    auth_error: str = ""
    busy: bool = False

    @rx.var
    def signed_in(self) -> bool:
        return self.username != ""

    def _session_token(self) -> str | None:
        return cookie_token(self.router.headers.cookie)

    def _client_address(self) -> str:
        return self.router.session.client_ip or "unknown"

    async def current_user(self) -> User | None:
        """The person this browser's session cookie belongs to, looked up on the server now."""
        user = await run_db(accounts.resolve, self._session_token())
        self.username, self.display_name = (user.username, user.display_name) if user else ("", "")
        self.admin = is_admin(user)
        return user

    def _next(self) -> str:
        return safe_next(self.router.url.query_parameters.get("next"), routes.INDEX)

    async def _hand_over(self, token: str):
        """Send the browser (a full page load, not the app's own navigation) to swap a one-time grant for its
        HttpOnly session cookie, then on to where it was going."""
        grant = await run_db(accounts.grant_for, token)  # only the database step leaves the event loop
        url = f"/auth/session?grant={quote(grant)}&next={quote(self._next())}"
        return rx.call_script(f"window.location.assign({json.dumps(url)})")

    @rx.event
    async def check(self):
        """On every page: refresh who is signed in (a stale or forged cookie signs nobody in)."""
        await self.current_user()
        if self.router.url.query_parameters.get("expired"):
            self.auth_error = "That sign-in took too long to finish; sign in again."

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
            _, token = await accounts.run_auth(
                accounts.log_in,
                str(form.get("username", "")),
                str(form.get("password", "")),
                address=self._client_address(),
            )
            hop = await self._hand_over(token)
        except InputError as err:
            self.auth_error = "; ".join(err.errors.values())
            return
        finally:
            self.busy = False
        yield hop  # signed in once the hop lands: the page that loads then reads the new cookie

    @rx.event
    async def sign_up(self, form: dict):
        self.auth_error, self.busy = "", True
        yield
        try:
            _, token = await accounts.run_auth(
                accounts.sign_up,
                str(form.get("username", "")),
                str(form.get("password", "")),
                str(form.get("display_name", "")),
                invite_token=str(self.router.url.query_parameters.get("invite", "")),
                address=self._client_address(),
            )
            hop = await self._hand_over(token)
        except (InputError, Forbidden) as err:
            self.auth_error = "; ".join(err.errors.values()) if isinstance(err, InputError) else str(err)
            return
        finally:
            self.busy = False
        yield hop  # signed in once the hop lands: the page that loads then reads the new cookie

    @rx.event
    async def log_out(self):
        """End this browser's session on the server, then clear its cookie."""
        await run_db(accounts.log_out, self._session_token())
        self.username, self.display_name, self.admin = "", "", False
        return rx.call_script(f"window.location.assign({json.dumps('/auth/signed-out')})")
