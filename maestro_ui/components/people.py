"""People: who is in the room (role, online / away, typing) and, for the owner, inviting and asking."""

from __future__ import annotations

import reflex as rx

from maestro_ui.state.room import HumanRow, JoinLinkRow, RoomState
from maestro_ui.state.room_actions import RoomActions

ROLES = [
    ("contributor", "Contributor"),
    ("decision_maker", "Decision maker"),
    ("must_approve", "Must approve"),
    ("observer", "Observer"),
]
# A join link lets in whoever holds it: never a role that decides (those people are invited by name).
LINK_ROLES = [("contributor", "Contributor"), ("observer", "Observer")]
LINK_HOURS = [("1", "1 hour"), ("24", "1 day"), ("168", "7 days"), ("720", "30 days")]
LINK_USES = [("", "any number"), ("1", "1 person"), ("5", "5 people"), ("25", "25 people"), ("100", "100 people")]
SELECT_STYLE = {"padding": "6px", "border_radius": "6px", "border": "1px solid var(--gray-6)"}


def person_name(name, **props) -> rx.Component:
    """A person's or an agent's name next to other text: isolated for bidi (`unicode-bidi: isolate`, `dir=auto`,
    like <bdi>), so right-to-left text in it cannot reorder what is around it, and cut with an ellipsis rather than
    overflowing its column (the whole name is its tooltip)."""
    return rx.text(
        name,
        as_="span",
        dir="auto",
        title=name,
        unicode_bidi="isolate",
        overflow="hidden",
        text_overflow="ellipsis",
        white_space="nowrap",
        min_width="0",
        max_width="100%",
        display="inline-block",
        vertical_align="bottom",
        **props,
    )


def human_row(h: HumanRow) -> rx.Component:
    return rx.flex(
        rx.box(
            width="8px",
            height="8px",
            border_radius="50%",
            background=rx.cond(h["online"], "var(--green-9)", "var(--gray-7)"),
            flex_shrink="0",
            title=rx.cond(h["online"], "online", "away"),
        ),
        person_name(h["name"], size="2", weight="medium", class_name="person-name", flex="0 1 auto"),
        rx.badge(h["role_label"], variant="soft", color_scheme="gray", size="1"),
        rx.cond(h["owner"], rx.badge("owner", variant="outline", size="1")),
        rx.cond(h["typing"], rx.text("typing…", size="1", color_scheme="gray", class_name="typing")),
        rx.cond(~h["online"], rx.text("away", size="1", color_scheme="gray")),
        spacing="2",
        align="center",
        wrap="wrap",
        class_name="human-row",
        min_width="0",
        max_width="100%",
        data_online=h["online"].to(str),
        data_name=h["name"],
    )


def _role_select(name: str, default: str = "contributor") -> rx.Component:
    return rx.el.select(
        *[rx.el.option(label, value=value) for value, label in ROLES],
        name=name,
        default_value=default,
        id=f"invite-{name}",
        style=SELECT_STYLE,
    )


def _ask_target_select() -> rx.Component:
    """Who a question is for: a role that may answer, or one person in the room."""
    return rx.el.select(
        *[rx.el.option(label, value=value) for value, label in ROLES if value != "observer"],
        rx.foreach(
            RoomState.humans,
            lambda h: rx.el.option("@" + h["username"], value="@" + h["username"]),
        ),
        name="to",
        default_value="decision_maker",
        id="ask-to",
        style={"padding": "6px", "border_radius": "6px", "border": "1px solid var(--gray-6)"},
    )


def _select(name: str, options: list[tuple[str, str]], default: str, label: str) -> rx.Component:
    return rx.el.select(
        *[rx.el.option(text, value=value) for value, text in options],
        name=name,
        default_value=default,
        id=f"join-{name}",
        aria_label=label,
        style=SELECT_STYLE,
    )


def join_link_row(link: JoinLinkRow) -> rx.Component:
    return rx.flex(
        rx.text(link["role_label"], size="1", weight="medium"),
        rx.text(link["uses"], " · ", link["expires"], size="1", color_scheme="gray"),
        rx.spacer(),
        rx.button(
            "Revoke",
            size="1",
            variant="ghost",
            color_scheme="red",
            on_click=RoomActions.revoke_join_link(link["id"]),
            id="revoke-link-" + link["id"].to(str),
        ),
        spacing="2",
        align="center",
        wrap="wrap",
        width="100%",
        class_name="join-link-row",
        id="join-link-row-" + link["id"].to(str),
    )


def join_links() -> rx.Component:
    """Make a join link (observer or contributor, an expiry, a number of people) and revoke the live ones."""
    return rx.vstack(
        rx.form(
            rx.flex(
                rx.text("Join link for", size="1"),
                _select("role", LINK_ROLES, "contributor", "Role the link gives"),
                _select("hours", LINK_HOURS, "168", "How long the link lasts"),
                _select("uses", LINK_USES, "", "How many people the link lets in"),
                rx.button("Make link", type="submit", size="1", variant="outline", id="make-join-link"),
                spacing="1",
                wrap="wrap",
                align="center",
            ),
            on_submit=RoomActions.make_join_link,
            width="100%",
        ),
        rx.text("Deciding roles are invited by name.", size="1", color_scheme="gray"),
        rx.cond(
            RoomState.join_link != "",
            rx.code(RoomState.join_link, id="join-link", word_break="break-all", size="1"),
        ),
        rx.cond(
            RoomState.join_links.length() > 0,  # type: ignore[attr-defined]
            rx.vstack(
                rx.text("Live links", size="1", weight="bold"),
                rx.foreach(RoomState.join_links, join_link_row),
                spacing="1",
                width="100%",
                id="join-links",
            ),
        ),
        spacing="1",
        width="100%",
        on_mount=RoomActions.load_join_links,
    )


def owner_tools() -> rx.Component:
    """Invite by username, make and revoke join links, ask the room a question."""
    return rx.vstack(
        rx.form(
            rx.flex(
                rx.input(name="username", placeholder="@username", id="invite-username", flex="1", min_width="120px"),
                _role_select("role"),
                rx.input(
                    name="weight",
                    placeholder="vote weight",
                    type="number",
                    step="0.5",
                    min="0.5",
                    width="96px",
                    id="invite-weight",
                    title="How much this person's vote counts (1 by default)",
                ),
                rx.button("Invite", type="submit", size="2", variant="soft", id="invite-btn"),
                spacing="2",
                wrap="wrap",
                width="100%",
            ),
            on_submit=RoomActions.invite,
            reset_on_submit=True,
            width="100%",
        ),
        join_links(),
        rx.form(
            rx.vstack(
                rx.text("Ask the room", size="1", weight="bold"),
                rx.input(name="prompt", placeholder="Question", id="ask-prompt", width="100%"),
                rx.input(name="options", placeholder="options, comma-separated (for a choice)", width="100%"),
                rx.flex(
                    rx.el.select(
                        *[rx.el.option(k, value=k) for k in ("choice", "approval", "feedback", "clarification")],
                        name="kind",
                        style={"padding": "6px"},
                    ),
                    rx.text("to", size="1"),
                    _ask_target_select(),
                    rx.input(name="minutes", type="number", placeholder="min", width="64px", default_value="5"),
                    rx.checkbox("agents wait", name="blocking", default_checked=True, size="1"),
                    rx.button("Ask", type="submit", size="1", id="ask-btn"),
                    spacing="2",
                    wrap="wrap",
                    align="center",
                ),
                spacing="1",
                width="100%",
            ),
            on_submit=RoomActions.ask_room,
            reset_on_submit=True,
            width="100%",
        ),
        rx.cond(RoomState.people_notice != "", rx.text(RoomState.people_notice, size="1", id="people-notice")),
        rx.link("Audit trail", href=RoomState.audit_href, size="1", id="audit-link"),
        spacing="2",
        width="100%",
        id="owner-tools",
        padding="8px",
        border="1px dashed var(--gray-6)",
        border_radius="8px",
    )


def people_list() -> rx.Component:
    return rx.vstack(
        rx.text("People", weight="bold", size="2"),
        rx.foreach(RoomState.humans, human_row),
        rx.cond(RoomState.is_owner, owner_tools()),
        spacing="1",
        width="100%",
        id="people",
    )
