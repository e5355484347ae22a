"""ConsensusPanel, VotePanel and DecisionCard: where the room agrees, the vote, and what was decided."""

from __future__ import annotations

import reflex as rx

from maestro_ui.components.badges import status_badge
from maestro_ui.components.countdown import countdown
from maestro_ui.components.sortable import sortable_list
from maestro_ui.components.untrusted import untrusted_markdown
from maestro_ui.state.deliberation import DeliberationState as D
from maestro_ui.state.deliberation import DissentRow, MatrixRow, OptionRow, StepRow, VoterRow
from maestro_ui.state.room import RoomState


def _bullets(title: str, items, id: str) -> rx.Component:
    return rx.cond(
        items.length() > 0,  # type: ignore[attr-defined]
        rx.vstack(
            rx.text(title, weight="bold", size="2"),
            rx.foreach(items, lambda x: rx.text("• ", x, size="2", word_break="break-word")),
            spacing="1",
            id=id,
            width="100%",
        ),
    )


def _stance(st) -> rx.Component:
    colour = rx.match(st["position"], ("support", "green"), ("oppose", "red"), "gray")
    return rx.text(
        rx.text.strong(st["participant"]),
        " ",
        rx.badge(st["position"], color_scheme=colour, size="1"),
        rx.cond(st["was"] != "", rx.text.span(" (was ", st["was"], ")", size="1", color_scheme="gray")),
        rx.cond(st["about"] != "", rx.text.span(" on ", rx.text.span(st["about"], weight="medium"))),
        rx.cond(st["summary"] != "", rx.text.span(": ", st["summary"])),
        size="2",
        word_break="break-word",
        class_name="stance",
    )


def consensus_panel() -> rx.Component:
    """Agreements, disagreements, proposals, concerns and trade-offs after the latest round, and how it moved."""
    return rx.cond(
        D.has_consensus | (D.consensus_error != ""),
        rx.card(
            rx.vstack(
                rx.flex(
                    rx.heading("Consensus", size="4"),
                    rx.spacer(),
                    rx.cond(D.has_consensus, rx.badge(D.agreement_pct, " % agree", size="2", id="agreement")),
                    width="100%",
                    align="center",
                ),
                rx.cond(
                    D.consensus_error != "",
                    rx.callout(D.consensus_error, icon="triangle_alert", color_scheme="orange", size="1"),
                ),
                rx.cond(D.has_consensus, rx.progress(value=D.agreement_pct, width="100%")),
                rx.cond(
                    D.stances.length() > 0,
                    rx.vstack(
                        rx.text("Where each one stands", weight="bold", size="2"),
                        rx.foreach(D.stances, _stance),
                        spacing="1",
                        width="100%",
                        id="stances",
                    ),
                ),
                _bullets("Agreements", D.agreements, "agreements"),
                _bullets("Disagreements", D.disagreements, "disagreements"),
                _bullets("Proposals", D.proposals, "proposals"),
                _bullets("Concerns", D.concerns, "concerns"),
                _bullets("Trade-offs", D.trade_offs, "trade-offs"),
                rx.cond(
                    D.consensus_history.length() > 0,
                    rx.vstack(
                        rx.text("How it moved", weight="bold", size="2"),
                        rx.foreach(D.consensus_history, lambda h: rx.text(h, size="1", word_break="break-word")),
                        spacing="0",
                        id="consensus-history",
                    ),
                ),
                spacing="2",
                width="100%",
            ),
            id="consensus-panel",
            width="100%",
        ),
    )


def _ranked_row(option: OptionRow, index) -> rx.Component:
    return rx.flex(
        rx.icon("grip_vertical", size=20, class_name="drag-handle", cursor="grab", style={"touch_action": "none"}),
        rx.badge(index + 1, size="2", variant="solid"),
        rx.text(option["text"], flex="1", word_break="break-word"),
        rx.icon_button(
            rx.icon("arrow_up", size=16),
            on_click=D.move(index, -1),
            size="2",
            variant="soft",
            disabled=index == 0,
            aria_label="Move up",
            class_name="rank-up",
        ),
        rx.icon_button(
            rx.icon("arrow_down", size=16),
            on_click=D.move(index, 1),
            size="2",
            variant="soft",
            disabled=index == D.ballot.length() - 1,
            aria_label="Move down",
            class_name="rank-down",
        ),
        spacing="2",
        align="center",
        width="100%",
        class_name="ballot-row",
        data_option=option["text"],
    )


def _ballot() -> rx.Component:
    return rx.match(
        D.poll_rule,
        (
            "approval",
            rx.vstack(
                rx.foreach(
                    D.ballot,
                    lambda o: rx.checkbox(
                        o["text"],
                        checked=D.approved.contains(o["id"]),
                        on_change=lambda _v: D.toggle_approved(o["id"]),
                        size="3",
                    ),
                ),
                rx.button("Send my approvals", on_click=D.vote(""), disabled=D.voting, size="3", id="send-vote"),
                spacing="2",
            ),
        ),
        ("borda", _ranking()),
        ("schulze", _ranking()),
        rx.flex(
            rx.foreach(
                D.ballot,
                lambda o: rx.button(
                    o["text"],
                    on_click=D.vote(o["id"]),
                    disabled=D.voting,
                    size="3",
                    class_name="vote-option",
                    data_option=o["text"],
                ),
            ),
            spacing="2",
            wrap="wrap",
        ),
    )


def _ranking() -> rx.Component:
    """Drag the options into order (or use the arrows), then send the ranking."""
    return rx.vstack(
        rx.text("Drag to rank, best first (or use the arrows).", size="1", color_scheme="gray"),
        sortable_list(
            rx.foreach(D.ballot, lambda o, i: rx.box(_ranked_row(o, i), key=o["id"], width="100%")),
            on_move=D.drop,
            id="ballot",
            style={"display": "flex", "flex_direction": "column", "gap": "8px", "width": "100%"},
        ),
        _send_ranking(),
        spacing="2",
        width="100%",
    )


def _send_ranking() -> rx.Component:
    return rx.button("Send my ranking", on_click=D.vote(""), disabled=D.voting, size="3", id="send-vote")


def _result_row(v: VoterRow) -> rx.Component:
    return rx.table.row(
        rx.table.cell(v["voter"], rx.cond(v["kind"] == "agent", rx.badge("agent", size="1", ml="1"))),
        rx.table.cell(v["ballot"]),
        rx.table.cell(v["weight"]),
    )


def breakdown_table(rows, id: str) -> rx.Component:
    """Each voter's ballot and weight (the vote panel's count and the decision card's breakdown)."""
    return rx.table.root(
        rx.table.header(
            rx.table.row(
                rx.table.column_header_cell("Voter"),
                rx.table.column_header_cell("Ballot"),
                rx.table.column_header_cell("Weight"),
            )
        ),
        rx.table.body(rx.foreach(rows, _result_row)),
        size="1",
        width="100%",
        id=id,
    )


def _matrix_row(row: MatrixRow) -> rx.Component:
    return rx.table.row(rx.table.row_header_cell(row["option"]), rx.foreach(row["cells"], lambda c: rx.table.cell(c)))


def vote_panel() -> rx.Component:
    """The open vote (with my ballot if I may vote), then the count with each voter's ballot."""
    return rx.cond(
        D.poll_id > 0,
        rx.card(
            rx.vstack(
                rx.flex(
                    rx.heading("Vote", size="4"),
                    rx.spacer(),
                    rx.cond(D.poll_open, countdown(deadline=D.poll_deadline, class_name="vote-countdown")),
                    width="100%",
                    align="center",
                ),
                rx.text(D.poll_question, weight="medium"),
                rx.text(D.poll_rule_label, size="1", color_scheme="gray"),
                rx.cond(
                    D.poll_open,
                    rx.vstack(
                        rx.cond(
                            RoomState.can_vote,
                            _ballot(),
                            rx.text("Your role does not vote; you will see the result here.", size="2"),
                        ),
                        rx.cond(D.my_vote != "", rx.text("Your vote: ", D.my_vote, size="2", id="my-vote")),
                        rx.cond(
                            D.vote_notice != "",
                            rx.callout(D.vote_notice, icon="circle_alert", color_scheme="red", size="1"),
                        ),
                        rx.text("Voted: ", D.voted.join(", "), size="1", id="voted"),
                        rx.cond(
                            D.poll_waiting.length() > 0,
                            rx.text("Waiting for: ", D.poll_waiting.join(", "), size="1", color_scheme="gray"),
                        ),
                        spacing="2",
                        width="100%",
                    ),
                    rx.vstack(
                        rx.text(D.result_line, weight="bold", id="vote-result"),
                        rx.cond(  # once the decision card is out, it carries each ballot: not twice on one page
                            D.ballots_on_card,
                            rx.text("Each ballot is on the decision card.", size="1", color_scheme="gray"),
                            breakdown_table(D.result_rows, "vote-breakdown"),
                        ),
                        rx.cond(
                            D.matrix.length() > 0,
                            rx.vstack(
                                rx.text("Pairwise preferences (row over column)", size="1", weight="bold"),
                                rx.table.root(
                                    rx.table.header(
                                        rx.table.row(
                                            rx.table.column_header_cell(""),
                                            rx.foreach(D.matrix_header, lambda h: rx.table.column_header_cell(h)),
                                        )
                                    ),
                                    rx.table.body(rx.foreach(D.matrix, _matrix_row)),
                                    size="1",
                                    id="pairwise",
                                ),
                                overflow_x="auto",
                                width="100%",
                            ),
                        ),
                        spacing="2",
                        width="100%",
                        overflow_x="auto",
                    ),
                ),
                spacing="2",
                width="100%",
            ),
            id="vote-panel",
            width="100%",
        ),
    )


def _dissent(d: DissentRow) -> rx.Component:
    return rx.text(
        rx.text.strong(d["who"]),
        " preferred ",
        d["preferred"],
        rx.cond(d["why"] != "", ": ", ""),
        d["why"],
        size="2",
        word_break="break-word",
    )


def _step(s: StepRow, i) -> rx.Component:
    return rx.text(
        i + 1, ". ", s["step"], " ", rx.badge(s["owner"], size="1", variant="soft"), size="2", word_break="break-word"
    )


def _sign_off_form() -> rx.Component:
    """Only for the must-approve person, while the decision waits for them."""
    return rx.form(
        rx.vstack(
            rx.text("Your decision", weight="bold"),
            rx.radio_group.root(
                rx.flex(
                    rx.radio_group.item(value="approved"),
                    rx.text("Approve", size="2"),
                    rx.radio_group.item(value="overridden"),
                    rx.text("Override", size="2"),
                    rx.radio_group.item(value="more_discussion"),
                    rx.text("More discussion", size="2"),
                    spacing="2",
                    wrap="wrap",
                    align="center",
                ),
                name="outcome",
                default_value="approved",
            ),
            rx.input(name="conditions", placeholder="Conditions (optional, for approve)", width="100%"),
            rx.select(
                D.decision_options, name="override_option", placeholder="Override: choose instead…", width="100%"
            ),
            rx.input(name="reason", placeholder="Reason (required to override)", width="100%"),
            rx.input(name="question", placeholder="Question for the room (more discussion)", width="100%"),
            rx.input(name="extra_rounds", type="number", min="1", max="5", default_value="1", width="8em"),
            rx.button("Sign off", type="submit", disabled=D.signing, size="3", id="sign-off"),
            rx.cond(
                D.signoff_notice != "", rx.callout(D.signoff_notice, icon="circle_alert", color_scheme="red", size="1")
            ),
            spacing="2",
            width="100%",
        ),
        on_submit=D.sign,
        reset_on_submit=False,
        width="100%",
        id="sign-off-form",
    )


def _send_back_form() -> rx.Component:
    """Once the decision is settled: the must-approve person or the owner can send it back for more discussion."""
    return rx.form(
        rx.vstack(
            rx.text("Revisit this decision", weight="bold", size="2"),
            rx.input(name="question", placeholder="What should the room discuss again?", width="100%", max_length=2000),
            rx.flex(
                rx.input(name="extra_rounds", type="number", min="1", max="5", default_value="1", width="6em"),
                rx.button(
                    "Send back for more discussion", type="submit", disabled=D.signing, variant="soft", id="send-back"
                ),
                spacing="2",
                align="center",
                wrap="wrap",
            ),
            rx.cond(
                D.send_back_notice != "",
                rx.callout(D.send_back_notice, icon="circle_alert", color_scheme="red", size="1"),
            ),
            spacing="2",
            width="100%",
        ),
        on_submit=D.send_back,
        reset_on_submit=True,
        width="100%",
        id="send-back-form",
    )


def decision_card(with_controls: bool = True) -> rx.Component:
    """The decision: title, status, support, rationale, dissent, concerns, action plan and its sign-off."""
    return rx.cond(
        D.decision_id > 0,
        rx.card(
            rx.vstack(
                rx.flex(
                    rx.heading(D.decision_title, size="5", id="decision-title", word_break="break-word"),
                    rx.spacer(),
                    status_badge(D.decision_status, id="decision-status", size="2"),
                    width="100%",
                    align="center",
                    wrap="wrap",
                    spacing="2",
                ),
                rx.text(D.decision_support, weight="medium", id="decision-support"),
                rx.box(untrusted_markdown(D.rationale), id="decision-rationale", width="100%"),
                rx.cond(D.decision_votes.length() > 0, breakdown_table(D.decision_votes, "decision-breakdown")),
                rx.cond(
                    D.dissent.length() > 0,
                    rx.vstack(
                        rx.text("Dissent", weight="bold", size="2"),
                        rx.foreach(D.dissent, _dissent),
                        spacing="1",
                        id="dissent",
                    ),
                ),
                _bullets("Concerns", D.decision_concerns, "decision-concerns"),
                rx.vstack(
                    rx.text("Action plan", weight="bold", size="2"),
                    rx.cond(
                        D.action_plan.length() > 0,
                        rx.foreach(D.action_plan, _step),
                        rx.text("No action plan was written.", size="2", color_scheme="gray", id="no-action-plan"),
                    ),
                    spacing="1",
                    id="action-plan",
                ),
                rx.cond(
                    D.decision_note != "", rx.callout(D.decision_note, icon="info", color_scheme="amber", size="1")
                ),
                rx.cond(
                    D.signoff != "",
                    rx.callout(
                        rx.vstack(rx.text(D.signoff, weight="bold"), rx.text(D.signoff_detail, size="2"), spacing="1"),
                        icon="badge_check",
                        color_scheme=rx.match(
                            D.signoff_outcome, ("overridden", "violet"), ("more_discussion", "amber"), "green"
                        ),
                        id="signoff",
                    ),
                    rx.cond(
                        RoomState.can_approve & (RoomState.status == "awaiting_approval"),
                        _sign_off_form() if with_controls else rx.fragment(),
                        rx.cond(
                            RoomState.status == "awaiting_approval",
                            rx.text("Waiting for the must-approve person to sign off.", size="2", color_scheme="gray"),
                        ),
                    ),
                ),
                (
                    rx.cond(
                        (RoomState.can_approve | RoomState.is_owner) & (RoomState.status == "completed"),
                        _send_back_form(),
                    )
                    if with_controls
                    else rx.fragment()
                ),
                rx.link(
                    "Open the decision page",
                    href="/decision/" + D.decision_id.to_string(),
                    size="2",
                    id="decision-link",
                ),
                spacing="3",
                width="100%",
            ),
            id="decision-card",
            width="100%",
        ),
    )
