"""Staged deliberation: the question is worked through in 2-4 stages, each closed by a synthesis.

The discussion's rounds are its stages: 2 = options -> recommendation, 3 = requirements -> options ->
recommendation, 4 adds constraints and risks. Every agent speaks once per stage on that stage's task; then one agent
(in turn) writes the stage's synthesis, which every later turn sees, before the next stage starts. Stage boundaries
are round boundaries, so checkpoints for people and consensus detection happen between stages.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

from backend.protocols.base import Protocol, Turn

A = TypeVar("A")

STAGE_TASKS = {
    "Requirements": "state the requirements and constraints an answer must meet; do not propose solutions yet",
    "Constraints and risks": "name the risks and hard constraints that could rule options out",
    "Options": "put forward the options worth considering and compare them against what was agreed so far",
    "Recommendation": "recommend one option, with the conditions under which you would change your mind",
    "Follow-up": "answer what the room was asked to discuss further, building on the stage syntheses",
}
PLANS = {
    2: ["Options", "Recommendation"],
    3: ["Requirements", "Options", "Recommendation"],
    4: ["Requirements", "Constraints and risks", "Options", "Recommendation"],
}
MIN_STAGES, MAX_STAGES = 2, 4


def stages(count: int) -> list[str]:
    """The stage names for a discussion with `count` stages (clamped to 2-4)."""
    return PLANS[min(MAX_STAGES, max(MIN_STAGES, count))]


class Staged(Protocol):
    """Stages of one round each, every stage closed by a synthesis."""

    name = "staged"
    label = "Staged deliberation"
    summary = "2-4 stages (e.g. requirements, options, recommendation); a synthesis closes each before the next."

    follows_plan = True  # `planned`: the stage count the discussion was created with (rounds added later follow it)

    def schedule(self, agents: Sequence[A], rounds: int) -> Iterator[Turn]:
        plan = stages(self.planned or rounds)
        plan = [*plan, *["Follow-up"] * max(0, rounds - len(plan))]  # "more discussion" after the last stage
        for k, stage in enumerate(plan[:rounds], start=1):
            for agent in agents:
                yield Turn(round=k, speaker=agent, cue=self.stage_cue(agent.name, k, plan), stance=stage)  # type: ignore[attr-defined]
            if agents:
                writer = agents[(k - 1) % len(agents)]
                yield Turn(round=k, speaker=writer, tag=f"stage{k}", cue=self.synthesis_cue(writer.name, k, plan))  # type: ignore[attr-defined]

    def stage_cue(self, name: str, k: int, plan: list[str]) -> str:
        stage = plan[k - 1]
        return (
            f"You are {name}. Stage {k} of {len(plan)}: {stage}. In this stage, {STAGE_TASKS[stage]}. Build on the "
            "syntheses of earlier stages. Write only your own contribution."
        )

    def synthesis_cue(self, name: str, k: int, plan: list[str]) -> str:
        return (
            f"You are {name}. Close stage {k} of {len(plan)} ({plan[k - 1]}) with its synthesis: what the room "
            "established in this stage, in a few bullet points, and what the next stage must settle."
        )
