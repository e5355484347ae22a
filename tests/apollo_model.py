"""The Apollo story's scripted model: what a well-behaved model answers at each step of a deliberation (its turns,
the consensus report, each agent's ballot, the decision text), in the JSON the structured steps ask for."""

from __future__ import annotations

import json
import re

from backend.providers.base import GenerationRequest

OPTIONS = ["PostgreSQL", "MongoDB", "DynamoDB"]
# Who prefers what: two agents and the PM want PostgreSQL, Security wants DynamoDB (the dissent).
PREFERENCES = {
    "Architect": ["PostgreSQL", "DynamoDB", "MongoDB"],
    "Backend Engineer": ["PostgreSQL", "MongoDB", "DynamoDB"],
    "Security": ["DynamoDB", "PostgreSQL", "MongoDB"],
}


def _speaker(request: GenerationRequest) -> str:
    match = re.search(r"You are ([A-Z][\w ]+?)(?:,|\.)", request.system)
    return match.group(1) if match else ""


def model_reply(request: GenerationRequest) -> str:
    """What a well-behaved model answers at each step."""
    title = (request.json_schema or {}).get("title", "")
    if title == "AgentBallot":
        listed = dict(
            (text.strip(), int(n)) for n, text in re.findall(r"^(\d+)\. (.+)$", request.transcript[-1].content, re.M)
        )
        wanted = PREFERENCES.get(_speaker(request), OPTIONS)
        ranking = [listed[o] for o in wanted if o in listed]
        return json.dumps({"ranking": ranking, "reason": f"{wanted[0]} fits Apollo best."})
    if title == "ConsensusReport":
        return json.dumps(
            {
                "agreements": ["Apollo needs transactions"],
                "disagreements": ["Whether managed NoSQL is simpler to run"],
                "proposals": [],
                "concerns": ["Migration effort from the prototype"],
                "trade_offs": ["Operational simplicity vs relational integrity"],
                "stances": [],
                "agreement_ratio": 0.5,
            }
        )
    if title == "DecisionText":
        return json.dumps(
            {
                "title": "Apollo runs on PostgreSQL",
                "rationale": "Transactions and relational integrity outweigh the operational simplicity of DynamoDB.",
                "action_plan": [
                    {"step": "Provision a managed PostgreSQL 16 cluster", "owner": "DevOps"},
                    {"step": "Port the prototype schema", "owner": "Backend engineer"},
                ],
            }
        )
    return f"{_speaker(request)} thinks about the database for Apollo."
