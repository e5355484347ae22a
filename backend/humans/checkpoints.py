"""Checkpoints: where the protocol stops to ask people something, configured when a discussion is created.

A checkpoint is a typed prompt asked after a given agent round (e.g. "after round 1, ask the decision maker which
factor matters most"). Human turns are a feedback prompt to the people who write, after every round but the last.
Each gets a stable key, so a resumed engine asks it once.
"""

from __future__ import annotations

from dataclasses import dataclass

from backend.humans.roles import Role
from backend.models import Discussion, PromptKind

HUMAN_TURN_S = 120
WRITERS = [Role.CONTRIBUTOR, Role.DECISION_MAKER, Role.MUST_APPROVE]


@dataclass(frozen=True)
class Ask:
    """A prompt the protocol opens at a round boundary."""

    key: str
    fields: dict


def validate_checkpoints(items: list[dict], rounds: int) -> tuple[list[dict], str | None]:
    """Normalise checkpoint dicts; a readable problem for the form when one is wrong."""
    plan = []
    for i, item in enumerate(items):
        after = int(item.get("after_round", 1))
        if not 1 <= after <= rounds:
            return [], f"Checkpoint {i + 1}: ask after a round between 1 and {rounds}."
        kind = item.get("kind", PromptKind.CHOICE)
        if kind not in PromptKind._value2member_map_:
            return [], f"Checkpoint {i + 1}: unknown kind '{kind}'."
        options = [str(o).strip() for o in item.get("options", []) if str(o).strip()]
        if kind == PromptKind.CHOICE and len(options) < 2:
            return [], f"Checkpoint {i + 1}: a choice needs at least two options."
        if not str(item.get("prompt", "")).strip():
            return [], f"Checkpoint {i + 1}: write the question to ask."
        plan.append(
            {
                "after_round": after,
                "kind": kind,
                "prompt": str(item["prompt"]).strip()[:2000],
                "options": options,
                "target_roles": list(item.get("target_roles") or [Role.DECISION_MAKER]),
                "deadline_s": float(item.get("deadline_s", 300)),
                "default": str(item.get("default", options[0] if options else "")),
                "blocking": bool(item.get("blocking", True)),
            }
        )
    return plan, None


def due_after(discussion: Discussion, round_no: int) -> list[Ask]:
    """The prompts to open once agent round `round_no` has finished."""
    asks = [
        Ask(
            key=f"checkpoint:{i}",
            fields={
                "kind": c["kind"],
                "prompt": c["prompt"],
                "options": c["options"],
                "target_roles": c["target_roles"],
                "deadline_s": c["deadline_s"],
                "default": c["default"],
                "blocking": c["blocking"],
            },
        )
        for i, c in enumerate(discussion.checkpoints or [])
        if c["after_round"] == round_no
    ]
    if discussion.human_turns and round_no < discussion.rounds:
        asks.append(
            Ask(
                key=f"human_turn:{round_no}",
                fields={
                    "kind": PromptKind.FEEDBACK,
                    "prompt": f"Round {round_no} is done. Anything the agents should take into account next?",
                    "target_roles": WRITERS,
                    "deadline_s": HUMAN_TURN_S,
                    "default": "(nothing to add)",
                    "blocking": True,
                },
            )
        )
    return asks
