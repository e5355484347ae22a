"""ParticipantList: every agent with its live status, elapsed seconds, tokens, cost and latency; the humans."""

from __future__ import annotations

import reflex as rx

from maestro_ui.components.badges import provider_badge, provider_label, status_badge
from maestro_ui.components.elapsed import elapsed
from maestro_ui.components.people import people_list, person_name
from maestro_ui.state.room import AgentRow, RoomState


def _agent(a: AgentRow) -> rx.Component:
    return rx.box(
        rx.vstack(
            rx.hstack(
                rx.icon("bot", size=16),
                person_name(a["name"], weight="bold", size="2", class_name="agent-name"),
                rx.spacer(),
                status_badge(a["status"], class_name="agent-status"),
                rx.cond(
                    (a["status"] == "thinking")
                    | (a["status"] == "streaming")
                    | (a["status"] == "slow")
                    | (a["status"] == "retrying"),
                    rx.text(elapsed(turn=a["turn"], base=a["elapsed"]), size="1", class_name="elapsed"),
                    rx.cond(a["status"] == "done", rx.text(a["latency"], size="1", class_name="duration")),
                ),
                align="center",
                width="100%",
                spacing="2",
            ),
            provider_badge(provider_label(a["provider"]), a["model"]),
            rx.cond(
                a["offline"],
                rx.text("tiny offline model", size="1", color_scheme="amber"),
            ),
            rx.text(
                a["tokens_label"],
                " · ",
                a["cost"],
                rx.cond(a["latency"] != "", " · " + a["latency"], ""),
                size="1",
                color_scheme="gray",
            ),
            rx.cond(
                a["detail"] != "", rx.text(a["detail"], size="1", color_scheme="orange", class_name="agent-detail")
            ),
            rx.cond(a["error"] != "", rx.text(a["error"], size="1", color_scheme="red", class_name="agent-error")),
            spacing="1",
            width="100%",
        ),
        id="agent-" + a["id"].to_string(),
        class_name="agent-row",
        data_status=a["status"],
        padding="8px",
        border_radius="8px",
        border="1px solid var(--gray-5)",
        min_width=["220px", "220px", "auto"],
        flex_shrink="0",
    )


def participant_list() -> rx.Component:
    """Agents (with status badges) then humans; a horizontal strip on phones, a column on wide screens."""
    return rx.vstack(
        rx.text("Participants", weight="bold", size="2", display=["none", "none", "block"]),
        rx.flex(
            rx.foreach(RoomState.agents, _agent),
            direction=rx.breakpoints(initial="row", md="column"),
            spacing="2",
            overflow_x="auto",
            width="100%",
            padding_bottom="4px",
        ),
        people_list(),
        rx.text(
            RoomState.total_tokens, " tokens · ", RoomState.total_cost, size="1", color_scheme="gray", id="room-totals"
        ),
        id="participants",
        width="100%",
        spacing="2",
    )
