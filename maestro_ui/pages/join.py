"""A join link: sign in (or up), then join the discussion with the link's role and open the room.

A link that lets nobody in any more (revoked, expired, used up, or the discussion closed) says so plainly, with the
way forward: ask the owner for a new one.
"""

from __future__ import annotations

import reflex as rx

from backend.errors import Forbidden, InputError, NotFound
from backend.services import room
from maestro_ui import routes
from maestro_ui.components.layout import page
from maestro_ui.state.auth import AuthState


class JoinState(rx.State):
    problem: str = ""

    @rx.event
    async def join(self):
        self.problem = ""
        user = await (await self.get_state(AuthState)).current_user()
        if user is None:
            return rx.redirect(f"{routes.SIGNUP}?next={self.router.url.path}")
        try:
            participant = await room.join(token=str(self.join_token), actor=user)  # type: ignore[attr-defined]
        except (NotFound, Forbidden, InputError) as err:
            self.problem = str(err)
            return
        return rx.redirect(routes.room(participant.discussion_id))


def join_page() -> rx.Component:
    return page(
        rx.cond(
            JoinState.problem != "",
            rx.vstack(
                rx.heading("This link did not let you in", size="4"),
                rx.callout(JoinState.problem, icon="circle_alert", color_scheme="red", id="join-problem"),
                rx.link("Your discussions", href=routes.INDEX, size="2", id="join-home"),
                spacing="3",
                width="100%",
                max_width="560px",
            ),
            rx.hstack(rx.spinner(), rx.text("Joining the discussion…")),
        )
    )
