"""Creating discussions and posting into them: bad input gets a clear message and writes nothing."""

from __future__ import annotations

import concurrent.futures

import pytest
from sqlmodel import func, select

from backend.db import session_scope
from backend.errors import InputError
from backend.models import Discussion, EventRecord, Message, Participant
from backend.protocols.templates import TEMPLATES
from backend.services.discussions import AgentSpec, create_discussion, list_discussions, post_human_message
from backend.services.personas import list_personas, update_persona
from tests.people import person

OFFLINE = AgentSpec(persona_key="architect", provider="offline", model="smollm2-135m-instruct")


def _counts() -> tuple[int, int, int, int]:
    with session_scope() as s:
        return tuple(  # type: ignore[return-value]
            s.exec(select(func.count()).select_from(t)).one() for t in (Discussion, Participant, Message, EventRecord)
        )


@pytest.mark.parametrize(
    ("topic", "agents", "rounds", "field", "words"),
    [
        ("   ", [OFFLINE], 2, "topic", "question"),
        ("x" * 2001, [OFFLINE], 2, "topic", "limit"),
        ("Pick a DB", [], 2, "agents", "at least one agent"),
        ("Pick a DB", [OFFLINE], 0, "rounds", "between 1 and"),
        ("Pick a DB", [AgentSpec("architect", "nonsense", "m")], 2, "agent_0", "Unknown provider 'nonsense'"),
        ("Pick a DB", [AgentSpec("architect", "openai", "gpt-nope")], 2, "agent_0", "Unknown OpenAI model"),
        ("Pick a DB", [AgentSpec("architect", "anthropic", "claude-sonnet-4-6")], 2, "agent_0", "ANTHROPIC_API_KEY"),
        ("Pick a DB", [AgentSpec("architect", "openai_compatible", "llama3")], 2, "agent_0", "base URL"),
        ("Pick a DB", [AgentSpec("wizard", "offline", "")], 2, "agent_0", "unknown persona"),
    ],
)
def test_bad_input_is_refused_clearly_and_creates_nothing(database, monkeypatch, topic, agents, rounds, field, words):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    before = _counts()
    with pytest.raises(InputError) as err:
        create_discussion(topic=topic, agents=agents, rounds=rounds)
    assert words.lower() in err.value.errors[field].lower()
    assert _counts() == before


def test_a_valid_discussion_has_its_agents_in_order_and_opens_with_the_question(database):
    d = create_discussion(
        topic="Choose a database for Apollo",
        agents=[OFFLINE, AgentSpec("architect", "offline", ""), AgentSpec("security", "offline", "")],
        rounds=2,
        created_by="Alex",
    )
    with session_scope() as s:
        names = [
            p.name
            for p in s.exec(select(Participant).where(Participant.kind == "agent").order_by(Participant.position))
        ]
        opening = s.exec(select(Message).where(Message.discussion_id == d.id)).one()
    assert names == ["Architect", "Architect 2", "Security"]
    assert (opening.author_name, opening.content) == ("Alex", "Choose a database for Apollo")
    assert [row.topic for row in list_discussions()] == ["Choose a database for Apollo"]


def test_a_one_megabyte_message_is_refused_with_the_limit(database):
    alex = person("alex")
    d = create_discussion(topic="t", agents=[OFFLINE], owner=alex)
    before = _counts()
    with pytest.raises(InputError) as err:
        post_human_message(discussion_id=d.id, actor=alex, content="a" * 1_000_000)
    assert "1,000,000 characters; the limit is 20,000" in err.value.errors["content"]
    assert _counts() == before


def test_the_same_client_id_twice_posts_once(database):
    alex = person("alex")
    d = create_discussion(topic="t", agents=[OFFLINE], owner=alex)
    first, event = post_human_message(discussion_id=d.id, actor=alex, content="hello", client_id="c-1")
    again, none = post_human_message(discussion_id=d.id, actor=alex, content="hello", client_id="c-1")
    assert event is not None and none is None and again.id == first.id


def test_concurrent_duplicates_post_once(database):
    alex = person("alex")
    d = create_discussion(topic="t", agents=[OFFLINE], owner=alex)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(
            pool.map(
                lambda _: post_human_message(discussion_id=d.id, actor=alex, content="hi", client_id="same"),
                range(4),
            )
        )
    assert len({m.id for m, _ in results}) == 1
    assert sum(1 for _, e in results if e is not None) == 1
    with session_scope() as s:
        assert s.exec(select(func.count()).select_from(Message).where(Message.client_id == "same")).one() == 1


def test_a_person_named_like_an_agent_gets_a_distinct_name(database):
    architect = person("architect", "Architect")
    d = create_discussion(topic="t", agents=[OFFLINE], owner=architect)
    message, _ = post_human_message(discussion_id=d.id, actor=architect, content="I approve.")
    assert message.author_name == "Architect"
    with session_scope() as s:
        agent = s.exec(select(Participant).where(Participant.discussion_id == d.id, Participant.kind == "agent")).one()
    assert agent.name == "Architect 2"  # the owner joined first; the agent's name is made unique


def _admin():
    """The instance admin: the first account."""
    return person("admin")


def test_personas_are_seeded_and_editable(database):
    keys = [p.key for p in list_personas()]
    assert {"architect", "backend_engineer", "devops", "security", "product"} <= set(keys)
    update_persona("security", actor=_admin(), system_prompt="You are a paranoid security reviewer.")
    assert next(p for p in list_personas() if p.key == "security").system_prompt.startswith("You are a paranoid")
    d = create_discussion(topic="t", agents=[AgentSpec("security", "offline", "")])
    with session_scope() as s:
        agent = s.exec(select(Participant).where(Participant.discussion_id == d.id, Participant.kind == "agent")).one()
    assert agent.system_prompt == "You are a paranoid security reviewer."


def test_each_persona_maps_to_a_provider_and_model_and_falls_back_when_it_cannot_run(database, monkeypatch):
    """The registry of persona -> provider + model: stored with the persona, editable, and honest about a provider
    that cannot run here (no key): its agents get the offline model, with the reason."""
    from backend.providers.offline import OFFLINE_MODEL_ID
    from backend.services.personas import agent_defaults, defaults_by_key

    assert {d.provider for d in defaults_by_key().values()} == {"offline"}  # the seeded library: no key needed
    url = "http://127.0.0.1:11434/v1"
    admin = _admin()
    update_persona(
        "devops",
        actor=admin,
        system_prompt="You run things.",
        provider="openai_compatible",
        model="llama3.1",
        base_url=url,
    )
    devops = defaults_by_key()["devops"]
    assert (devops.provider, devops.model, devops.base_url, devops.fallback) == (
        "openai_compatible",
        "llama3.1",
        url,
        "",
    )

    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    update_persona("architect", actor=admin, system_prompt="You design.", provider="anthropic", model="")
    stored = next(p for p in list_personas() if p.key == "architect")
    assert stored.provider == "anthropic" and stored.model  # the provider's default model, kept
    waiting = agent_defaults(stored)
    assert (waiting.provider, waiting.model) == ("offline", OFFLINE_MODEL_ID)
    assert "ANTHROPIC_API_KEY" in waiting.fallback
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    assert agent_defaults(stored).provider == "anthropic"

    with pytest.raises(InputError, match="Unknown provider"):
        update_persona("security", actor=admin, system_prompt="x", provider="nonsense")
    with pytest.raises(InputError, match="Name the model"):
        update_persona("security", actor=admin, system_prompt="x", provider="openai_compatible", model="", base_url=url)


@pytest.mark.parametrize("key", sorted(TEMPLATES))
def test_every_template_creates_a_valid_discussion_with_its_team_and_roles(database, key):
    """What a template fills in (protocol, rounds, team, the creator's role, the question, the vote) is accepted
    as it stands, and the discussion gets exactly the template's team."""
    t = TEMPLATES[key]
    checkpoints = (
        [
            {
                "after_round": t.ask_after,
                "kind": "choice",
                "prompt": t.ask_question,
                "options": t.ask_options,
                "target_roles": ["decision_maker"],
                "deadline_s": 300,
            }
        ]
        if t.ask_question
        else []
    )
    d = create_discussion(
        topic="Choose a database for Apollo",
        agents=[AgentSpec(p, "offline", "") for p in t.team],
        rounds=t.rounds,
        owner=person("sam"),
        owner_role=t.owner_role,
        protocol=t.protocol,
        vote_rule=t.vote_rule,
        vote_options=t.vote_options,
        stop_on_consensus=t.stop_on_consensus,
        track_consensus=t.track_consensus,
        parallel_openings=t.parallel_openings,
        checkpoints=checkpoints,
    )
    with session_scope() as s:
        agents = s.exec(select(Participant).where(Participant.discussion_id == d.id, Participant.kind == "agent"))
        assert sorted(a.persona_key for a in agents) == sorted(t.team)
        owner = s.exec(select(Participant).where(Participant.discussion_id == d.id, Participant.is_owner)).one()
        assert owner.role == t.owner_role
    assert d.track_consensus == (t.track_consensus or t.stop_on_consensus or bool(t.vote_rule))
