"""The "new discussion" page: topic, agents (persona + provider + model), rounds, people, the decision.

Its state (maestro_ui/state/new_discussion.py) parses the form with DiscussionIn, as the API parses its request."""

from __future__ import annotations

import reflex as rx

from backend.deliberation import voting
from backend.protocols import PROTOCOLS
from backend.protocols.templates import TEMPLATES
from backend.services.discussions import MAX_TOPIC_CHARS
from maestro_ui.components.layout import page
from maestro_ui.components.memory import related_list
from maestro_ui.components.too_long import LengthLimit
from maestro_ui.projection.memory import UNSET
from maestro_ui.state.new_discussion import AgentDraft, NewDiscussionState

__all__ = ["NewDiscussionState", "new_page"]


ROLE_OPTIONS = [
    ("contributor", "Contributor"),
    ("decision_maker", "Decision maker"),
    ("must_approve", "Must approve"),
    ("observer", "Observer"),
]


def _people_section() -> rx.Component:
    """People in the loop: the creator's own role, human turns, and a question for the decision maker."""
    field = NewDiscussionState.set_form_field
    return rx.vstack(
        rx.text("People", weight="bold", size="2"),
        rx.flex(
            rx.text("Your role", size="2"),
            rx.select.root(
                rx.select.trigger(id="owner-role"),
                rx.select.content(*[rx.select.item(label, value=value) for value, label in ROLE_OPTIONS]),
                value=NewDiscussionState.owner_role,
                on_change=lambda v: field("owner_role", v),
            ),
            rx.text("You invite the others from the room.", size="1", color_scheme="gray"),
            spacing="2",
            align="center",
            wrap="wrap",
        ),
        _error("owner_role"),
        rx.checkbox(
            "Human turns: after each agent round, wait up to 2 minutes for the people who write",
            checked=NewDiscussionState.human_turns,
            on_change=lambda v: field("human_turns", v),
            id="human-turns",
            size="2",
        ),
        rx.text("Ask the decision maker (optional; the agents wait for the answer)", size="2"),
        rx.input(
            value=NewDiscussionState.ask_question,
            on_change=lambda v: field("ask_question", v),
            placeholder="e.g. Which factor matters most?",
            id="ask-question",
            width="100%",
        ),
        rx.flex(
            rx.input(
                value=NewDiscussionState.ask_options,
                on_change=lambda v: field("ask_options", v),
                placeholder="options, comma-separated",
                id="ask-options",
                flex="1",
                min_width="200px",
            ),
            rx.text("after round", size="2"),
            rx.input(
                value=NewDiscussionState.ask_after,
                on_change=lambda v: field("ask_after", v),
                type="number",
                min="1",
                width="64px",
                id="ask-after",
            ),
            rx.text("wait", size="2"),
            rx.input(
                value=NewDiscussionState.ask_minutes,
                on_change=lambda v: field("ask_minutes", v),
                type="number",
                min="1",
                width="64px",
                id="ask-minutes",
            ),
            rx.text("min", size="2"),
            spacing="2",
            align="center",
            wrap="wrap",
            width="100%",
        ),
        _error("checkpoints"),
        width="100%",
        spacing="2",
    )


VOTE_RULES = [("none", "No vote"), *((r.value, r.label) for r in voting.RULES)]


def _templates() -> rx.Component:
    """Presets for common deliberations; everything they fill in stays editable."""
    return rx.vstack(
        rx.text("Start from a template (optional)", weight="bold", size="2"),
        rx.flex(
            *[
                rx.button(
                    t.label,
                    on_click=NewDiscussionState.use_template(t.key),
                    variant=rx.cond(NewDiscussionState.template == t.key, "solid", "soft"),
                    size="2",
                    title=t.summary,
                    id=f"template-{t.key}",
                )
                for t in TEMPLATES.values()
            ],
            spacing="2",
            wrap="wrap",
        ),
        width="100%",
        spacing="1",
    )


def _protocol_select() -> rx.Component:
    return rx.vstack(
        rx.flex(
            rx.text("Protocol", weight="bold", size="2"),
            rx.select.root(
                rx.select.trigger(id="protocol"),
                rx.select.content(*[rx.select.item(p.label, value=p.name) for p in PROTOCOLS.values()]),
                value=NewDiscussionState.protocol,
                on_change=lambda v: NewDiscussionState.set_form_field("protocol", v),
            ),
            spacing="2",
            align="center",
            wrap="wrap",
        ),
        rx.match(
            NewDiscussionState.protocol,
            *[(p.name, rx.text(p.summary, size="1", color_scheme="gray")) for p in PROTOCOLS.values()],
            rx.fragment(),
        ),
        _error("protocol"),
        spacing="1",
        width="100%",
    )


def _decision_section() -> rx.Component:
    """Deciding: a vote over humans and agents after the last round, then a decision card to sign off."""
    field = NewDiscussionState.set_form_field
    return rx.vstack(
        rx.text("Decision", weight="bold", size="2"),
        rx.flex(
            rx.text("After the last round, vote by", size="2"),
            rx.select.root(
                rx.select.trigger(id="vote-rule"),
                rx.select.content(*[rx.select.item(label, value=value) for value, label in VOTE_RULES]),
                value=NewDiscussionState.vote_rule,
                on_change=lambda v: field("vote_rule", v),
            ),
            rx.text("people have", size="2"),
            rx.input(
                value=NewDiscussionState.vote_minutes,
                on_change=lambda v: field("vote_minutes", v),
                type="number",
                min="1",
                width="64px",
                id="vote-minutes",
            ),
            rx.text("min to vote", size="2"),
            spacing="2",
            align="center",
            wrap="wrap",
        ),
        rx.input(
            value=NewDiscussionState.vote_options,
            on_change=lambda v: field("vote_options", v),
            placeholder="options, comma-separated (empty: vote on the proposals the room made)",
            id="vote-options",
            width="100%",
        ),
        rx.checkbox(
            "No vote on your own proposal",
            checked=NewDiscussionState.exclude_own_vote,
            on_change=lambda v: field("exclude_own_vote", v),
            id="exclude-own",
            size="2",
        ),
        rx.checkbox(
            "Track consensus after every round (one more model call a round; always on with a vote)",
            checked=NewDiscussionState.track_consensus | (NewDiscussionState.vote_rule != "none"),
            on_change=lambda v: field("track_consensus", v),
            id="track-consensus",
            size="2",
        ),
        rx.checkbox(
            "Stop the rounds early once consensus is detected (where the room stands is checked after every round)",
            checked=NewDiscussionState.stop_on_consensus,
            on_change=lambda v: field("stop_on_consensus", v),
            id="stop-on-consensus",
            size="2",
        ),
        rx.text(
            "Agents and people vote in the same poll; the must-approve person signs off the decision.",
            size="1",
            color_scheme="gray",
        ),
        _error("vote_rule"),
        _error("vote_options"),
        _error("vote_deadline"),
        width="100%",
        spacing="2",
    )


CHECK_DEBOUNCE_MS = 600  # memory is asked once typing pauses this long (and when the field loses focus)


def _context_text(field: str, label: str, placeholder: str) -> rx.Component:
    return rx.vstack(
        rx.text(label, size="1", color_scheme="gray"),
        rx.input(
            value=NewDiscussionState.context[field],
            on_change=lambda v: [
                NewDiscussionState.set_context_field(field, v),
                NewDiscussionState.check_memory.debounce(CHECK_DEBOUNCE_MS),
            ],
            on_blur=NewDiscussionState.check_memory,
            placeholder=placeholder,
            id=f"context-{field.replace('_', '-')}",
            width="100%",
            size="2",
        ),
        spacing="1",
        flex="1 1 160px",
        min_width="0",
    )


def _context_choice(field: str, label: str, choices: tuple[str, ...]) -> rx.Component:
    return rx.vstack(
        rx.text(label, size="1", color_scheme="gray"),
        rx.select.root(
            rx.select.trigger(id=f"context-{field.replace('_', '-')}", width="100%"),
            rx.select.content(rx.select.item("not set", value=UNSET), *[rx.select.item(c, value=c) for c in choices]),
            value=NewDiscussionState.context[field],
            on_change=lambda v: [NewDiscussionState.set_context_field(field, v), NewDiscussionState.check_memory],
            size="2",
        ),
        spacing="1",
        flex="1 1 120px",
        min_width="0",
    )


def _context_section() -> rx.Component:
    """Where the question is asked: memory reuses a result only for the very same context."""
    return rx.vstack(
        rx.flex(
            rx.text("Context", weight="bold", size="2"),
            rx.text(
                "(optional; a remembered result is reused only in the same context)", size="1", color_scheme="gray"
            ),
            spacing="2",
            align="baseline",
            wrap="wrap",
        ),
        rx.flex(
            _context_text("preferred_language", "Preferred language", "e.g. python"),
            _context_text("frameworks", "Frameworks", "e.g. fastapi, sqlalchemy"),
            _context_choice("security_level", "Security level", ("standard", "high", "enterprise")),
            _context_choice("team_size", "Team size", ("small", "medium", "large")),
            _context_text("existing_stack", "Existing stack", "e.g. postgresql, redis"),
            spacing="2",
            wrap="wrap",
            width="100%",
        ),
        rx.flex(
            rx.button(
                rx.icon("bookmark", size=14),
                "Save as my default",
                on_click=NewDiscussionState.save_default_context,
                variant="soft",
                size="1",
                id="save-default-context",
            ),
            rx.text(NewDiscussionState.context_note, size="1", color_scheme="green", id="context-note"),
            spacing="2",
            align="center",
            wrap="wrap",
        ),
        _error("context"),
        spacing="2",
        width="100%",
        id="context-section",
    )


def _memory_banner() -> rx.Component:
    """What memory holds for this question in this context: a hit to open or reuse, or why memory cannot look."""
    hit = NewDiscussionState.memory_hit
    return rx.vstack(
        rx.cond(
            NewDiscussionState.has_hit,
            rx.callout(
                rx.vstack(
                    rx.text(hit["line"], weight="medium", id="memory-line", word_break="break-word"),
                    rx.text(
                        "Asked before as “",
                        hit["question"],
                        "” · ",
                        hit["context"],
                        size="1",
                        color_scheme="gray",
                        word_break="break-word",
                    ),
                    rx.flex(
                        rx.link(
                            rx.button(rx.icon("external_link", size=14), "Open", variant="soft", size="2"),
                            href=hit["href"],
                            id="memory-open",
                        ),
                        rx.button(
                            rx.icon("history", size=14),
                            "Reuse",
                            on_click=NewDiscussionState.reuse_memory,
                            loading=NewDiscussionState.reusing,
                            size="2",
                            id="memory-reuse",
                        ),
                        rx.button(
                            "Run fresh",
                            on_click=NewDiscussionState.run_fresh,
                            variant="outline",
                            size="2",
                            id="memory-fresh",
                        ),
                        spacing="2",
                        wrap="wrap",
                    ),
                    rx.text(
                        "Reuse answers from this result: no agent runs and nothing is spent. "
                        "Run fresh, and Create discussion runs the agents.",
                        size="1",
                        color_scheme="gray",
                    ),
                    spacing="2",
                    width="100%",
                ),
                icon="brain",
                color_scheme="green",
                width="100%",
                id="memory-banner",
            ),
        ),
        rx.cond(
            NewDiscussionState.memory_notice != "",
            rx.callout(
                NewDiscussionState.memory_notice, icon="info", color_scheme="orange", size="1", id="memory-notice"
            ),
        ),
        rx.cond(
            NewDiscussionState.memory_unavailable != "",
            rx.text(NewDiscussionState.memory_unavailable, size="1", color_scheme="gray", id="memory-unavailable"),
        ),
        related_list(NewDiscussionState.memory_related, id="memory-related"),
        spacing="2",
        width="100%",
    )


# A question over the limit is refused here, before its text crosses the websocket (a 1 MB one would close it and be
# lost, and Create would then say the question is empty); the server checks the same limit again.
TOPIC_LIMIT = LengthLimit("topic_too_long", limit=MAX_TOPIC_CHARS, what="The question", input_id="topic-input")


def _error(key: str) -> rx.Component:
    return rx.cond(
        NewDiscussionState.errors.contains(key),
        rx.text(NewDiscussionState.errors[key], color_scheme="red", size="2", class_name="field-error"),
    )


def _agent_row(a: AgentDraft, i: rx.Var[int]) -> rx.Component:
    return rx.card(
        rx.vstack(
            rx.flex(
                rx.text("Agent ", i + 1, weight="bold", size="2"),
                rx.spacer(),
                rx.icon_button(
                    rx.icon("x", size=14),
                    on_click=NewDiscussionState.remove_agent(i),
                    variant="ghost",
                    color_scheme="gray",
                    size="1",
                    aria_label="Remove agent",
                ),
                width="100%",
                align="center",
            ),
            rx.flex(
                rx.select.root(
                    rx.select.trigger(placeholder="Persona", width="100%"),
                    rx.select.content(
                        rx.foreach(NewDiscussionState.personas, lambda p: rx.select.item(p["label"], value=p["value"]))
                    ),
                    value=a["persona"],
                    on_change=lambda v: NewDiscussionState.set_agent_field(i, "persona", v),
                ),
                rx.select.root(
                    rx.select.trigger(placeholder="Provider", width="100%"),
                    rx.select.content(
                        rx.foreach(NewDiscussionState.providers, lambda p: rx.select.item(p["label"], value=p["value"]))
                    ),
                    value=a["provider"],
                    on_change=lambda v: NewDiscussionState.set_agent_field(i, "provider", v),
                ),
                rx.input(
                    value=a["model"],
                    placeholder="Model",
                    on_change=lambda v: NewDiscussionState.set_agent_field(i, "model", v),
                    class_name="agent-model",
                ),
                rx.cond(
                    a["provider"] == "openai_compatible",
                    rx.input(
                        value=a["base_url"],
                        placeholder="http://localhost:11434/v1",
                        on_change=lambda v: NewDiscussionState.set_agent_field(i, "base_url", v),
                        class_name="agent-base-url",
                    ),
                ),
                direction=rx.breakpoints(initial="column", sm="row"),
                spacing="2",
                width="100%",
                wrap="wrap",
            ),
            _error("agent_" + i.to_string()),
            width="100%",
            spacing="2",
        ),
        width="100%",
        class_name="agent-draft",
    )


def new_page() -> rx.Component:
    """Write the question, pick the agents, create the room."""
    return page(
        rx.vstack(
            rx.heading("New discussion", size="6"),
            _templates(),
            rx.hstack(
                rx.text("The question", weight="bold", size="2"),
                rx.cond(NewDiscussionState.memory_checking, rx.spinner(size="1", id="memory-checking")),
                align="center",
                spacing="2",
            ),
            rx.text_area(
                value=NewDiscussionState.topic,
                on_change=TOPIC_LIMIT.on_change(
                    [NewDiscussionState.set_topic, NewDiscussionState.check_memory.debounce(CHECK_DEBOUNCE_MS)]
                ),
                on_blur=NewDiscussionState.check_memory,
                placeholder="e.g. Choose a database for Apollo",
                id="topic-input",
                rows="3",
                width="100%",
            ),
            _error("topic"),
            TOPIC_LIMIT.note(id="topic-too-long", class_name="field-error"),
            _context_section(),
            _memory_banner(),
            rx.flex(
                rx.text("Agents", weight="bold", size="2"),
                rx.spacer(),
                rx.button(
                    rx.icon("plus", size=14),
                    "Add agent",
                    on_click=NewDiscussionState.add_agent,
                    variant="soft",
                    size="1",
                    id="add-agent",
                ),
                width="100%",
                align="center",
            ),
            rx.foreach(NewDiscussionState.agents, _agent_row),
            _error("agents"),
            rx.foreach(
                NewDiscussionState.provider_notes, lambda n: rx.callout(n, icon="info", size="1", color_scheme="amber")
            ),
            rx.hstack(
                rx.text("Rounds", weight="bold", size="2"),
                rx.input(
                    value=NewDiscussionState.rounds,
                    on_change=NewDiscussionState.set_rounds,
                    type="number",
                    min="1",
                    max="10",
                    width="80px",
                    id="rounds-input",
                ),
                align="center",
            ),
            _error("rounds"),
            _protocol_select(),
            rx.checkbox(
                "Independent opening statements: in round 1 every agent answers at once, without seeing the others",
                checked=NewDiscussionState.parallel_openings,
                on_change=NewDiscussionState.set_parallel_openings,
                id="parallel-openings",
                size="2",
            ),
            rx.flex(
                rx.text("Budget", weight="bold", size="2"),
                rx.input(
                    value=NewDiscussionState.budget_tokens,
                    on_change=NewDiscussionState.set_budget_tokens,
                    placeholder="max tokens",
                    type="number",
                    min="1",
                    width="140px",
                    id="budget-tokens-input",
                ),
                rx.input(
                    value=NewDiscussionState.budget_usd,
                    on_change=NewDiscussionState.set_budget_usd,
                    placeholder="max $",
                    type="number",
                    step="0.01",
                    min="0",
                    width="110px",
                    id="budget-usd-input",
                ),
                rx.text("The discussion pauses itself when one is used up.", size="1", color_scheme="gray"),
                spacing="2",
                align="center",
                wrap="wrap",
            ),
            _error("budget_tokens"),
            _error("budget_usd"),
            _people_section(),
            _decision_section(),
            rx.button(
                "Create discussion",
                on_click=TOPIC_LIMIT.on_click([NewDiscussionState.create]),
                loading=NewDiscussionState.creating,
                size="3",
                id="create-btn",
            ),
            width="100%",
            max_width="760px",
            spacing="3",
        )
    )
