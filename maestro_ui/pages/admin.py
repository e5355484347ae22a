"""The instance admin's page: who may sign up, sign-up links, and the daily spend caps. Every action is checked by
the service (backend/humans/instance.py, signup_invites.py) against the signed-in person, whatever this page shows."""

from __future__ import annotations

from typing import TypedDict

import reflex as rx

from backend.db import run_db
from backend.errors import Forbidden, InputError, NotFound
from backend.humans import instance, signup_invites
from maestro_ui.components.layout import page
from maestro_ui.state.auth import AuthState


class AuditRow(TypedDict):
    at: str
    who: str
    action: str
    detail: str


class LinkRow(TypedDict):
    id: int
    note: str
    uses: str
    expires: str
    active: bool


def _dollars(value: str) -> float | None:
    text = value.strip().lstrip("$")
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise InputError({"cap": f"'{value}' is not an amount of dollars."}) from None


class AdminState(rx.State):
    """The policy form and the sign-up links."""

    signup_policy: str = "invite_only"
    user_daily_usd: str = ""
    instance_daily_usd: str = ""
    links: list[LinkRow] = []
    trail: list[AuditRow] = []
    new_link: str = ""  # shown once, right after it is made
    message: str = ""
    error: str = ""

    async def _actor(self):
        return await (await self.get_state(AuthState)).current_user()

    async def _refresh(self, actor) -> None:
        policy = await run_db(instance.current_policy)
        self.signup_policy = policy.signup_policy
        self.user_daily_usd = "" if policy.user_daily_usd is None else f"{policy.user_daily_usd:g}"
        self.instance_daily_usd = "" if policy.instance_daily_usd is None else f"{policy.instance_daily_usd:g}"
        rows = await run_db(signup_invites.list_links, actor)
        self.links = [
            LinkRow(
                id=r.id,
                note=r.note or "(no note)",
                uses=f"{r.uses} of {r.max_uses} used",
                expires=r.expires_at.strftime("%d %b %Y %H:%M UTC"),
                active=r.active,
            )
            for r in rows
        ]
        self.trail = [
            AuditRow(
                at=e.at.strftime("%d %b %H:%M"),
                who=e.actor_name,
                action=e.action,
                detail=" ".join(x for x in (e.target, (e.new_value or "")[:160]) if x),
            )
            for e in await run_db(instance.instance_audit, actor)
        ]

    @rx.event
    async def load(self):
        self.message = self.error = self.new_link = ""
        actor = await self._actor()
        try:
            await self._refresh(actor)
        except Forbidden as err:
            self.error, self.links = str(err), []

    @rx.event
    def choose_policy(self, value: str):
        """The select's choice, kept until Save (nothing is stored here)."""
        self.signup_policy = value

    @rx.event
    async def save_policy(self, form: dict):
        actor = await self._actor()
        try:
            await run_db(
                lambda: instance.set_policy(
                    actor,
                    signup_policy=str(form.get("signup_policy", "")),
                    user_daily_usd=_dollars(str(form.get("user_daily_usd", ""))),
                    instance_daily_usd=_dollars(str(form.get("instance_daily_usd", ""))),
                )
            )
            await self._refresh(actor)
        except (InputError, Forbidden) as err:
            self.error, self.message = str(err), ""
            return
        self.message, self.error = "Saved.", ""

    @rx.event
    async def make_link(self, form: dict):
        actor = await self._actor()
        try:
            uses = int(str(form.get("max_uses", "1")) or 1)
            days = int(str(form.get("days", "7")) or 7)
        except ValueError:
            self.error = "Uses and days are whole numbers."
            return
        try:
            token = await run_db(
                lambda: signup_invites.create(actor, note=str(form.get("note", "")), days=days, max_uses=uses)
            )
            await self._refresh(actor)
        except (InputError, Forbidden) as err:
            self.error = str(err)
            return
        self.new_link, self.error = f"{self.router.url.origin}/signup?invite={token}", ""

    @rx.event
    async def revoke_link(self, link_id: int):
        actor = await self._actor()
        try:
            await run_db(signup_invites.revoke, actor, int(link_id))
            await self._refresh(actor)
        except (Forbidden, NotFound, ValueError) as err:
            self.error = str(err)


def _link(row: LinkRow) -> rx.Component:
    return rx.flex(
        rx.text(row["note"], weight="medium", size="2"),
        rx.text(row["uses"], " · expires ", row["expires"], size="1", color_scheme="gray"),
        rx.spacer(),
        rx.cond(
            row["active"],
            rx.button(
                "Revoke", size="1", variant="soft", color_scheme="red", on_click=AdminState.revoke_link(row["id"])
            ),
            rx.badge("inactive", color_scheme="gray"),
        ),
        align="center",
        spacing="2",
        wrap="wrap",
        width="100%",
        class_name="signup-link-row",
    )


def admin_page() -> rx.Component:
    return page(
        rx.vstack(
            rx.heading("Instance admin", size="6"),
            rx.cond(AdminState.error != "", rx.callout(AdminState.error, color_scheme="red", icon="circle_alert")),
            rx.cond(
                AuthState.admin,
                rx.vstack(
                    rx.card(
                        rx.form(
                            rx.vstack(
                                rx.heading("Who may sign up", size="4"),
                                rx.select.root(
                                    rx.select.trigger(id="signup-policy"),
                                    rx.select.content(
                                        *[
                                            rx.select.item(label, value=key)
                                            for key, label in instance.SIGNUP_POLICIES.items()
                                        ]
                                    ),
                                    name="signup_policy",
                                    value=AdminState.signup_policy,
                                    on_change=AdminState.choose_policy,
                                ),
                                rx.heading("Daily spend caps (UTC day, in dollars; empty: no cap)", size="3"),
                                rx.flex(
                                    rx.input(
                                        name="user_daily_usd",
                                        default_value=AdminState.user_daily_usd,
                                        placeholder="per person",
                                        id="cap-user",
                                    ),
                                    rx.input(
                                        name="instance_daily_usd",
                                        default_value=AdminState.instance_daily_usd,
                                        placeholder="whole instance",
                                        id="cap-instance",
                                    ),
                                    spacing="2",
                                    wrap="wrap",
                                ),
                                rx.hstack(
                                    rx.button("Save", type="submit", id="save-policy"),
                                    rx.text(AdminState.message, color_scheme="green", size="2"),
                                    align="center",
                                ),
                                spacing="3",
                                width="100%",
                            ),
                            on_submit=AdminState.save_policy,
                            reset_on_submit=False,
                        ),
                        width="100%",
                    ),
                    rx.card(
                        rx.vstack(
                            rx.heading("Sign-up links", size="4"),
                            rx.form(
                                rx.flex(
                                    rx.input(name="note", placeholder="for whom", id="link-note"),
                                    rx.input(
                                        name="max_uses",
                                        default_value="1",
                                        type="number",
                                        width="80px",
                                        aria_label="uses",
                                    ),
                                    rx.text("accounts,", size="2"),
                                    rx.input(
                                        name="days", default_value="7", type="number", width="80px", aria_label="days"
                                    ),
                                    rx.text("days", size="2"),
                                    rx.button("Make link", type="submit", variant="soft", id="make-signup-link"),
                                    spacing="2",
                                    wrap="wrap",
                                    align="center",
                                ),
                                on_submit=AdminState.make_link,
                            ),
                            rx.cond(
                                AdminState.new_link != "",
                                rx.callout(
                                    rx.text("Send this link (it is shown only once): ", rx.code(AdminState.new_link)),
                                    icon="link",
                                    id="new-signup-link",
                                ),
                            ),
                            rx.foreach(AdminState.links, _link),
                            spacing="3",
                            width="100%",
                        ),
                        width="100%",
                    ),
                    rx.card(
                        rx.vstack(
                            rx.heading("What was changed", size="4"),
                            rx.foreach(
                                AdminState.trail,
                                lambda e: rx.text(
                                    rx.text.span(e["at"], " · ", color_scheme="gray"),
                                    rx.text.span(e["who"], weight="medium"),
                                    " ",
                                    rx.code(e["action"]),
                                    " ",
                                    e["detail"],
                                    size="1",
                                    class_name="instance-audit-row",
                                ),
                            ),
                            spacing="1",
                            width="100%",
                        ),
                        width="100%",
                    ),
                    spacing="4",
                    width="100%",
                ),
                rx.text("Only the instance admin sees this page.", color_scheme="gray"),
            ),
            width="100%",
            max_width="760px",
            spacing="3",
        )
    )
