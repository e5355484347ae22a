"""What it takes to create a discussion, as one input model: the REST API's request body and the New discussion
form are both parsed by it, so they accept and refuse the same things (the service validates the rest)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from backend.services.discussions import AgentSpec
from backend.services.personas import agent_spec, defaults_by_key


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is an error, not silently ignored


class AgentIn(_Body):
    """An agent: a persona, on its own mapped provider and model unless `provider` (and `model`) say otherwise."""

    persona: str = Field(max_length=64)
    provider: str | None = Field(default=None, max_length=40)
    model: str | None = Field(default=None, max_length=200)
    base_url: str | None = Field(default=None, max_length=500)


class CheckpointIn(_Body):
    """A question the protocol asks people after a round (e.g. the decision maker's choice); blocking by default."""

    after_round: int = 1
    kind: str = Field(default="choice", description="approval | choice | feedback | clarification")
    prompt: str = Field(max_length=2000)
    options: list[str] = Field(default_factory=list, max_length=20)
    target_roles: list[str] = Field(default_factory=lambda: ["decision_maker"], max_length=4)
    deadline_s: float = 300
    default: str | None = Field(default=None, max_length=2000)
    blocking: bool = True


class DiscussionIn(_Body):
    topic: str = Field(max_length=2000)
    agents: list[AgentIn] = Field(default_factory=list, max_length=12)
    rounds: int = 2
    protocol: str = "round_robin"
    role: str = Field(default="contributor", description="the creator's own role in the discussion")
    max_tokens_per_turn: int | None = None
    budget_tokens: int | None = None
    budget_usd: float | None = None
    parallel_openings: bool = False
    human_turns: bool = False
    vote_rule: str | None = None
    vote_options: list[str] = Field(default_factory=list, max_length=20)
    exclude_own_vote: bool = False
    vote_deadline_s: int = 300
    stop_on_consensus: bool = False
    track_consensus: bool = False
    checkpoints: list[CheckpointIn] = Field(default_factory=list, max_length=10)


def agent_specs(agents: list[AgentIn]) -> list[AgentSpec]:
    """Each agent on what the request names, else on its persona's own provider and model (as the form does)."""
    mapped = defaults_by_key()
    return [agent_spec(a.persona, a.provider, (a.model or "").strip() or None, a.base_url, mapped) for a in agents]
