"""Consensus building: propose, critique, revise, until consensus is detected or the rounds run out, then vote.

Round 1 asks every agent for a concrete proposal; even rounds critique the proposals on the table; later odd rounds
revise them. Where the room stands is detected after every round (backend.orchestrator.deciding), the rounds stop
once enough participants back one proposal, and a vote over the proposals decides the rest.
"""

from __future__ import annotations

from backend.protocols.round_robin import RoundRobin

DEFAULT_RULE = "schulze"


class ConsensusBuilding(RoundRobin):
    """Propose -> critique -> revise rounds that end early on consensus, then a vote."""

    name = "consensus"
    label = "Consensus building"
    summary = "Propose, critique and revise until consensus is detected or the rounds run out, then vote."

    def speaker_cue(self, name: str, round_no: int, rounds: int) -> str:
        if round_no == 1:
            return (
                f"You are {name}. Round 1 of {rounds}: make one concrete proposal that answers the question, in one "
                "or two sentences starting with 'Proposal:', then say briefly why. Write only your own contribution."
            )
        if round_no % 2 == 0:
            return (
                f"You are {name}. Round {round_no} of {rounds}: critique the proposals on the table. For each, name "
                "its weakest point, and say which you could accept and on what condition. Write only your own "
                "contribution."
            )
        return (
            f"You are {name}. Round {round_no} of {rounds}: revise. State the proposal you now back (yours or "
            "another's), changed to meet the critiques, starting with 'Proposal:'. Write only your own contribution."
        )
