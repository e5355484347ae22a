"""A small council for the e2e app: Anthropic, OpenAI and Gemini wire formats on 127.0.0.1, answering each step.

The real app talks to these through the official SDKs (their keys and base URLs are set in the app's environment),
so the story runs on three different providers with no cloud. Each server reads what Maestro asked (a turn, the
consensus report, a ballot over numbered options, the decision card) and answers as a sensible model would:
Architect and Backend Engineer prefer PostgreSQL, Security prefers DynamoDB.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from tests.providers.wire_servers import (
    AnthropicScript,
    GeminiScript,
    OpenAIScript,
    RecordedRequest,
    Reply,
    WireServer,
)

PREFERENCES = {
    "Architect": ["PostgreSQL", "DynamoDB", "MongoDB"],
    "Backend Engineer": ["PostgreSQL", "MongoDB", "DynamoDB"],
    "Security": ["DynamoDB", "PostgreSQL", "MongoDB"],
}
WHY = {
    "PostgreSQL": "transactions and relational integrity matter most for Apollo's billing data",
    "DynamoDB": "a managed store removes the patching and failover work that worries me most",
    "MongoDB": "the document model fits the prototype",
}


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)


def answer(body: Any) -> str:
    """What the council member addressed in this request says."""
    text = "\n".join(_strings(body))
    speaker = re.search(r"You are ([A-Z][\w ]+?), one participant", text)
    name = speaker.group(1) if speaker else ""
    wanted = PREFERENCES.get(name, ["PostgreSQL", "DynamoDB", "MongoDB"])
    if "You are the consensus detector" in text:
        names = re.search(r"Participants \(use these exact names, and no one else\): (.+)", text)
        people = json.loads(names.group(1)) if names else []
        return json.dumps(
            {
                "agreements": ["Apollo needs transactions for billing"],
                "disagreements": ["Security would rather not run a database server at all"],
                "proposals": [
                    {"id": "P1", "text": "Use PostgreSQL", "author": "Architect", "supporters": []},
                    {"id": "P2", "text": "Use DynamoDB", "author": "Security", "supporters": []},
                ],
                "concerns": ["Migration effort from the prototype"],
                "trade_offs": ["Operational simplicity vs relational integrity"],
                "stances": [
                    {
                        "participant": p,
                        "position": "support" if p in PREFERENCES else "undecided",
                        "proposal_id": ("P2" if p == "Security" else "P1") if p in PREFERENCES else None,
                        "summary": "as argued",
                    }
                    for p in people
                ],
                "agreement_ratio": 0.5,
            }
        )
    if "Vote now." in text:
        listed = {t.strip(): int(n) for n, t in re.findall(r"^(\d+)\. (.+)$", text, re.M)}
        ranking = [listed[o] for o in wanted if o in listed]
        return json.dumps({"ranking": ranking, "reason": f"{WHY[wanted[0]][0].upper()}{WHY[wanted[0]][1:]}."})
    if "You write the decision card" in text:
        return json.dumps(
            {
                "title": "Apollo runs on PostgreSQL",
                "rationale": "Transactions and relational integrity outweigh the operational simplicity of DynamoDB.",
                "action_plan": [
                    {"step": "Provision a managed PostgreSQL 16 cluster", "owner": "DevOps"},
                    {"step": "Port the prototype schema and billing tables", "owner": "Backend engineer"},
                    {"step": "Review backups and failover before launch", "owner": "Security"},
                ],
            }
        )
    return f"As {name or 'a member'}, I lean towards {wanted[0]}: {WHY[wanted[0]]}."


class CouncilServer(WireServer):
    """A wire server whose reply is computed from each request (model lists for GETs, streams for POSTs)."""

    def __init__(self, script: type, models: Reply) -> None:
        super().__init__(rf"{script.route}|{script.models_route}", [])
        self.script = script
        self.models = models

    def _take(self, request: RecordedRequest) -> Reply:
        with self._lock:
            self.requests.append(request)
        if request.method == "GET":
            return self.models
        return self.script.ok([answer(request.body)])


# The running council (by vendor), so a test can count the model calls the app made.
SERVERS: dict[str, CouncilServer] = {}


def model_calls() -> int:
    """Model calls the app has made so far, on every vendor (the GETs listing models are not calls)."""
    return sum(1 for server in SERVERS.values() for r in list(server.requests) if r.method == "POST")


@contextmanager
def council() -> Iterator[dict[str, str]]:
    """Start the three servers; yields the environment that points the app's SDKs at them."""
    with ExitStack() as stack:
        anthropic = stack.enter_context(CouncilServer(AnthropicScript, AnthropicScript.models(["claude-sonnet-4-6"])))
        openai = stack.enter_context(CouncilServer(OpenAIScript, OpenAIScript.models(["gpt-5.4-mini"])))
        gemini = stack.enter_context(CouncilServer(GeminiScript, GeminiScript.models(["gemini-2.5-flash"])))
        SERVERS.update(anthropic=anthropic, openai=openai, gemini=gemini)
        stack.callback(SERVERS.clear)
        yield {
            "ANTHROPIC_API_KEY": "sk-ant-local-wire-server",
            "ANTHROPIC_BASE_URL": anthropic.url,
            "OPENAI_API_KEY": "sk-local-wire-server",
            "OPENAI_BASE_URL": f"{openai.url}/v1",
            "GEMINI_API_KEY": "local-wire-server",
            "GEMINI_BASE_URL": gemini.url,
        }
