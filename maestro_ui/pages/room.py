"""The room page: DiscussionView, ParticipantList, composer and Run Agents."""

from __future__ import annotations

import reflex as rx

from maestro_ui import routes
from maestro_ui.components.badges import status_badge
from maestro_ui.components.checklist import checklist
from maestro_ui.components.composer import composer
from maestro_ui.components.deliberation import consensus_panel, decision_card, vote_panel
from maestro_ui.components.layout import page
from maestro_ui.components.message import message_bubble, stream_bubble
from maestro_ui.components.participant_list import participant_list
from maestro_ui.components.prompts import prompts_area
from maestro_ui.components.transcript import transcript_rows, transcript_sync
from maestro_ui.state.live import LiveState
from maestro_ui.state.room import MessageRow, RoomState
from maestro_ui.state.room_actions import RoomActions


def _header() -> rx.Component:
    return rx.vstack(
        rx.flex(
            rx.heading(RoomState.topic, size="6", id="room-topic", word_break="break-word"),
            spacing="2",
            align="center",
            wrap="wrap",
        ),
        rx.flex(
            status_badge(RoomState.status, id="room-status", size="2"),
            rx.cond(
                ~RoomState.from_memory,  # no agent ran: there were no rounds to count
                rx.text(
                    RoomState.rounds,
                    rx.cond(RoomState.rounds == 1, " round", " rounds"),
                    " · ",
                    RoomState.protocol_label,
                    rx.cond(RoomState.vote_rule != "", rx.text.span(" · then a ", RoomState.vote_rule, " vote")),
                    size="2",
                    color_scheme="gray",
                ),
            ),
            rx.spacer(),
            rx.cond(
                RoomState.is_owner & RoomState.is_running,
                rx.button(
                    rx.icon("square", size=14),
                    "Stop",
                    on_click=RoomActions.stop_agents,
                    variant="soft",
                    color_scheme="red",
                    size="3",
                    id="stop-agents",
                ),
            ),
            rx.cond(
                RoomState.is_owner & ~RoomState.from_memory,
                rx.button(
                    rx.cond(RoomState.is_running, rx.spinner(size="2"), rx.icon("play", size=16)),
                    rx.cond(RoomState.is_running, "Agents running…", "Run Agents"),
                    on_click=RoomActions.run_agents,
                    disabled=~RoomState.can_run,
                    id="run-agents",
                    size="3",
                ),
                rx.badge("You: ", RoomState.my_role_label, size="2", variant="soft", id="my-role"),
            ),
            spacing="3",
            align="center",
            wrap="wrap",
            width="100%",
        ),
        rx.cond(RoomState.from_memory, _from_memory()),
        rx.cond(
            RoomState.has_offline_agent,
            rx.callout(RoomState.offline_hint, icon="info", size="1", color_scheme="amber", id="offline-hint"),
        ),
        rx.cond(RoomState.is_paused, _paused()),
        rx.cond(
            RoomState.notice != "",
            rx.callout(RoomState.notice, icon="circle_alert", color_scheme="red", size="1", id="room-notice"),
        ),
        rx.cond(RoomState.show_checklist & RoomState.is_owner, checklist()),
        prompts_area(),
        vote_panel(),
        decision_card(),
        width="100%",
        spacing="2",
    )


def _from_memory() -> rx.Component:
    """This discussion was answered from memory: the result below is an earlier discussion's, reused."""
    return rx.callout(
        rx.vstack(
            rx.hstack(
                rx.badge(rx.icon("brain", size=12), "From memory", color_scheme="green", variant="solid"),
                rx.text("Answered from memory — no agent ran.", weight="bold"),
                align="center",
                spacing="2",
                wrap="wrap",
            ),
            rx.cond(
                RoomState.memory_source_href != "",
                rx.text(
                    "Source: ",
                    rx.link(RoomState.memory_source_label, href=RoomState.memory_source_href, id="memory-source"),
                    size="2",
                    word_break="break-word",
                ),
                rx.text(
                    "The source discussion is named in the Memory post below.",
                    size="2",
                    color_scheme="gray",
                ),
            ),
            spacing="1",
        ),
        icon="history",
        color_scheme="green",
        id="memory-badge",
    )


def _paused() -> rx.Component:
    """Why the discussion paused, and the budgets to raise before pressing Run Agents again."""
    return rx.callout(
        rx.vstack(
            rx.text(RoomState.pause_reason, id="pause-reason"),
            rx.cond(
                RoomState.is_owner,
                _budget_form(),
                rx.text("Only the room's owner can run the agents again.", size="2", id="paused-not-owner"),
            ),
            spacing="2",
        ),
        icon="pause",
        color_scheme="orange",
        id="paused",
    )


def _budget_form() -> rx.Component:
    """The owner's budgets, to raise before pressing Run Agents again (the service checks the role too)."""
    return rx.form(
        rx.flex(
            rx.input(
                name="budget_tokens",
                placeholder="Token budget",
                default_value=RoomState.budget_tokens,
                type="number",
                min="1",
            ),
            rx.input(
                name="budget_usd",
                placeholder="Cost budget ($)",
                default_value=RoomState.budget_usd,
                type="number",
                step="0.01",
                min="0",
            ),
            rx.button("Save budget", type="submit", size="2", variant="soft", id="save-budget"),
            spacing="2",
            wrap="wrap",
        ),
        on_submit=RoomActions.save_budget,
        reset_on_submit=False,
    )


def _shown(m: MessageRow) -> rx.Var:
    """With "syntheses only", the syntheses, summaries, reports and people's answers stay."""
    return (
        (RoomState.verbosity != "syntheses")
        | (m["label"] == "synthesis")
        | (m["kind"] != "agent") & (m["kind"] != "human")
    )


def _verbosity() -> rx.Component:
    return rx.select.root(
        rx.select.trigger(id="verbosity", variant="ghost"),
        rx.select.content(
            rx.select.item("Every token", value="tokens"),
            rx.select.item("Finished messages", value="messages"),
            rx.select.item("Syntheses only", value="syntheses"),
        ),
        value=RoomState.verbosity,
        on_change=RoomState.set_verbosity,
        size="1",
    )


def _discussion_view() -> rx.Component:
    return rx.vstack(
        rx.flex(
            rx.spacer(),
            rx.text("Show", size="1", color_scheme="gray"),
            _verbosity(),
            align="center",
            spacing="2",
            width="100%",
        ),
        transcript_sync(tx=RoomState.tx, live=LiveState.d, on_gap=RoomState.resend_transcript, id="transcript-sync"),
        rx.foreach(
            transcript_rows(RoomState.tx, LiveState.d, MessageRow), lambda m: rx.cond(_shown(m), message_bubble(m))
        ),
        rx.cond(RoomState.verbosity == "tokens", rx.foreach(RoomState.streams, stream_bubble)),
        id="discussion",
        width="100%",
        spacing="2",
    )


def room_page() -> rx.Component:
    """A live room: every open tab sees the same stream."""
    return page(
        rx.cond(
            RoomState.found & ~RoomState.member,
            rx.callout(
                "You are not in this discussion. Ask its owner to invite you or to send you a join link.",
                icon="lock",
                color_scheme="orange",
                id="not-member",
            ),
            rx.cond(
                RoomState.found,
                rx.vstack(
                    _header(),
                    rx.flex(
                        rx.box(participant_list(), width=rx.breakpoints(initial="100%", md="260px"), flex_shrink="0"),
                        rx.vstack(
                            _discussion_view(),
                            consensus_panel(),
                            rx.text(
                                RoomState.typing_names, size="1", color_scheme="gray", id="typing", min_height="1em"
                            ),
                            composer(),
                            width="100%",
                            spacing="3",
                            min_width="0",
                        ),
                        direction=rx.breakpoints(initial="column", md="row"),
                        spacing="4",
                        width="100%",
                    ),
                    spacing="4",
                    width="100%",
                ),
                rx.callout("This discussion does not exist.", icon="circle_alert", color_scheme="red", id="not-found"),
            ),
        )
    )


ROUTE = routes.ROOM
