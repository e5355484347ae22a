"""Templates: presets of protocol, rounds, the agent team, the creator's role, a question for the decision maker
and the vote, for common kinds of deliberation."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Template:
    """What a template fills in on the "new discussion" form (everything stays editable)."""

    key: str
    label: str
    summary: str
    protocol: str
    rounds: int
    vote_rule: str | None = None
    vote_options: list[str] = field(default_factory=list)
    stop_on_consensus: bool = False
    track_consensus: bool = False
    parallel_openings: bool = False
    team: tuple[str, ...] = ("architect", "backend_engineer", "security")  # persona keys of the agents
    owner_role: str = "contributor"  # the creator's own role in the room
    ask_question: str = ""
    ask_options: list[str] = field(default_factory=list)
    ask_after: int = 1


TEMPLATES: dict[str, Template] = {
    t.key: t
    for t in (
        Template(
            key="architecture_decision",
            label="Architecture decision",
            summary="Proposals, critique and revision until the room agrees, then a ranked vote and a sign-off.",
            protocol="consensus",
            rounds=3,
            vote_rule="schulze",
            stop_on_consensus=True,
            team=("architect", "backend_engineer", "devops", "security"),
            owner_role="decision_maker",
            ask_question="Which quality matters most for this decision?",
            ask_options=["cost", "latency", "operability", "security"],
        ),
        Template(
            key="design_review",
            label="Design review",
            summary="Agents argue for and against the design, a neutral one synthesises, then a vote on the verdict.",
            protocol="debate",
            rounds=2,
            vote_rule="plurality",
            vote_options=["Approve as is", "Approve with changes", "Rework the design"],
            team=("architect", "security", "product"),
            owner_role="decision_maker",
            ask_question="What must this design not break?",
            ask_options=["existing APIs", "the release date", "the budget", "nothing in particular"],
        ),
        Template(
            key="technical_spike",
            label="Technical spike",
            summary="Independent opening statements, then one round of discussion; where the room stands is tracked, "
            "no vote.",
            protocol="round_robin",
            rounds=2,
            parallel_openings=True,
            track_consensus=True,
            team=("backend_engineer", "devops"),
        ),
    )
}
