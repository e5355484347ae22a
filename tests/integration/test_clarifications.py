"""An agent asks the people a question through structured output; the room holds until someone answers."""

from __future__ import annotations

import asyncio

import pytest
from sqlmodel import select

from backend.db import session_scope
from backend.humans import clarifications, membership, prompts
from backend.models import HumanInputRequest
from backend.orchestrator.runner import Runner
from backend.providers import registry
from backend.providers.scripted import ScriptedProvider
from backend.services.discussions import AgentSpec, create_discussion
from tests.people import person

AGENTS = [AgentSpec("architect", "scripted", "m"), AgentSpec("security", "scripted", "m")]
ASKING = 'Postgres fits, if the load allows.\n{"clarification": "What peak load must Apollo handle?"}'


def test_only_a_valid_last_line_is_a_request():
    assert clarifications.requested(ASKING) == "What peak load must Apollo handle?"
    assert clarifications.requested('Use {"clarification": "x y z"} as a format, says the doc.') is None
    assert clarifications.requested('Done.\n{"clarification": ""}') is None  # empty question: schema refuses
    assert clarifications.requested("Plain answer.") is None
    assert clarifications.requested("Fine.\n{'clarification': 'Who owns the budget?'}") == "Who owns the budget?"


@pytest.fixture
def scripted():
    registry.register_provider("scripted", ScriptedProvider(["unused"]))
    yield
    registry.unregister_provider("scripted")


async def test_an_agent_s_question_holds_the_room_until_a_person_answers(database, bus, scripted):
    sam, pat = person("sam", "Sam"), person("pat", "Pat")
    d = create_discussion(topic="Choose a database for Apollo", agents=AGENTS, rounds=1, owner=sam)
    membership.invite(d.id, sam, "pat", "decision_maker")
    architect = ScriptedProvider([ASKING])
    security = ScriptedProvider(["Then encrypt it at rest."])
    providers = {"Architect": architect, "Security": security}
    runner = Runner(bus=bus, provider_lookup=lambda a: providers[a.name], lease_seconds=5)
    await runner.start(d.id)
    for _ in range(200):
        if prompts.open_blocking(d.id):
            break
        await asyncio.sleep(0.05)
    [prompt] = prompts.open_blocking(d.id)
    assert prompt.kind == "clarification" and prompt.prompt == "Architect asks: What peak load must Apollo handle?"
    assert prompt.created_by == "Architect" and "contributor" in prompt.target_roles
    await asyncio.sleep(0.6)
    assert security.calls == 0  # the next agent waits for the people
    assert "clarification" in architect.requests[0].system  # agents are told how to ask
    await bus.publish(prompts.answer(d.id, prompt.id, pat, "About 2,000 writes per second."))
    await asyncio.wait_for(runner.wait(d.id), 10)
    seen = security.requests[0].transcript
    assert any("2,000 writes per second" in e.content and e.author == "Pat" for e in seen)
    with session_scope() as s:
        assert len(s.exec(select(HumanInputRequest)).all()) == 1  # asked once


async def test_the_offline_model_is_not_told_how_to_ask(database, bus):
    """SmolLM2 wrote no valid request when told how, and sometimes recited the instruction in its reply instead."""
    specs = [AgentSpec(name, "offline", registry.OFFLINE_MODEL_ID) for name in ("architect", "security")]
    d = create_discussion(topic="Choose a database for Apollo", agents=specs, rounds=1, owner=person("sam", "Sam"))
    heard = ScriptedProvider(["Postgres.", "Encrypt it."])  # stands in for the model: what matters is what it is told
    runner = Runner(bus=bus, provider_lookup=lambda a: heard, lease_seconds=5)
    await runner.start(d.id)
    await asyncio.wait_for(runner.wait(d.id), 10)
    assert [r.model for r in heard.requests] == [registry.OFFLINE_MODEL_ID] * 2
    assert not any(clarifications.CUE in r.system or "clarification" in r.system for r in heard.requests)
