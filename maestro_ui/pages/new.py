"""The "new discussion" form: topic, agents (persona + provider + model), rounds."""

from __future__ import annotations

from typing import TypedDict

import reflex as rx

from backend.db import run_db
from backend.providers import registry
from backend.services.discussions import AgentSpec, create_discussion
from backend.services.errors import InputError
from backend.services.personas import list_personas
from maestro_ui import routes
from maestro_ui.components.layout import page

DEFAULT_TEAM = ("architect", "backend_engineer", "security")


class AgentDraft(TypedDict):
    persona: str
    provider: str
    model: str
    base_url: str


class Option(TypedDict):
    value: str
    label: str


class NewDiscussionState(rx.State):
    """The form; nothing is created until every field is valid."""

    topic: str = ""
    rounds: str = "2"
    budget_tokens: str = ""
    budget_usd: str = ""
    parallel_openings: bool = False
    agents: list[AgentDraft] = []
    personas: list[Option] = []
    providers: list[Option] = []
    provider_notes: list[str] = []
    errors: dict[str, str] = {}
    creating: bool = False

    @rx.event
    async def load(self):
        """Offer the persona library and the providers this server can reach."""
        self.personas = [Option(value=p.key, label=p.name) for p in await run_db(list_personas)]
        status = registry.provider_status()
        self.providers = [
            Option(value=p["name"], label=p["label"] + ("" if p["available"] else f" — {p['reason']}")) for p in status
        ]
        self.provider_notes = [p["hint"] for p in status if p["hint"]]
        if not self.agents:
            self.agents = [
                AgentDraft(persona=k, provider="offline", model=registry.default_model("offline"), base_url="")
                for k in DEFAULT_TEAM
            ]
        self.errors = {}

    @rx.event
    def set_topic(self, value: str):
        """Keep the question."""
        self.topic = value

    @rx.event
    def set_rounds(self, value: str):
        """Keep the number of rounds."""
        self.rounds = value

    @rx.event
    def set_parallel_openings(self, value: bool):
        """Choose independent opening statements for round 1."""
        self.parallel_openings = value

    @rx.event
    def set_budget_tokens(self, value: str):
        """Keep the token budget."""
        self.budget_tokens = value

    @rx.event
    def set_budget_usd(self, value: str):
        """Keep the cost budget."""
        self.budget_usd = value

    @rx.event
    def set_agent_field(self, index: int, field: str, value: str):
        """Change one agent's persona, provider, model or base URL."""
        if field not in ("persona", "provider", "model", "base_url") or not 0 <= index < len(self.agents):
            return
        self.agents[index][field] = value  # type: ignore[literal-required]
        if field == "provider":
            self.agents[index]["model"] = registry.default_model(value) if value in registry.PROVIDERS else ""

    @rx.event
    def add_agent(self):
        """Add another agent (a persona not yet in the team, on the offline model)."""
        used = {a["persona"] for a in self.agents}
        persona = next((p["value"] for p in self.personas if p["value"] not in used), "architect")
        self.agents.append(
            AgentDraft(persona=persona, provider="offline", model=registry.default_model("offline"), base_url="")
        )

    @rx.event
    def remove_agent(self, index: int):
        """Drop an agent from the team."""
        if 0 <= index < len(self.agents):
            self.agents.pop(index)

    @rx.event
    async def create(self):
        """Validate and create; on success open the room."""
        if self.creating:
            return
        try:
            rounds = int(self.rounds)
        except ValueError:
            self.errors = {"rounds": "Rounds must be a whole number."}
            return
        try:
            budget_tokens = int(self.budget_tokens) if self.budget_tokens.strip() else None
            budget_usd = float(self.budget_usd) if self.budget_usd.strip() else None
        except ValueError:
            self.errors = {"budget_tokens": "Budgets must be numbers: tokens as a whole number, cost in dollars."}
            return
        specs = [
            AgentSpec(
                persona_key=a["persona"],
                provider=a["provider"],
                model=a["model"].strip(),
                base_url=a["base_url"].strip() or None,
            )
            for a in self.agents
        ]
        self.creating = True
        yield
        try:
            discussion = await run_db(
                lambda: create_discussion(
                    topic=self.topic,
                    agents=specs,
                    rounds=rounds,
                    created_by="Host",
                    budget_tokens=budget_tokens,
                    budget_usd=budget_usd,
                    parallel_openings=self.parallel_openings,
                )
            )
        except InputError as err:
            self.errors = err.errors
            return
        finally:
            self.creating = False
        self.errors = {}
        self.topic = ""
        self.agents = []
        yield rx.redirect(routes.room(discussion.id or 0))


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
            rx.text("The question", weight="bold", size="2"),
            rx.text_area(
                value=NewDiscussionState.topic,
                on_change=NewDiscussionState.set_topic,
                placeholder="e.g. Choose a database for Apollo",
                id="topic-input",
                rows="3",
                width="100%",
            ),
            _error("topic"),
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
            rx.button(
                "Create discussion",
                on_click=NewDiscussionState.create,
                loading=NewDiscussionState.creating,
                size="3",
                id="create-btn",
            ),
            width="100%",
            max_width="760px",
            spacing="3",
        )
    )
