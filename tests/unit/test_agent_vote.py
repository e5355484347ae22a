"""An agent's ballot: what it is shown, the schema it must answer in, and how its numbers become option ids."""

from __future__ import annotations

from backend.deliberation.agent_vote import AgentBallot, ballot_schema, ballot_view, to_option_ids

OPTIONS = [
    {"id": "a", "text": "PostgreSQL", "author": "Architect"},
    {"id": "b", "text": "MongoDB", "author": "Security"},
    {"id": "c", "text": "DynamoDB", "author": None},
]


def test_the_view_is_shuffled_the_same_way_for_the_same_poll_and_agent_and_hides_own_proposals() -> None:
    first = ballot_view(OPTIONS, "Architect", poll_id=7, participant_id=3, exclude_own=True)
    again = ballot_view(OPTIONS, "Architect", poll_id=7, participant_id=3, exclude_own=True)
    assert first == again
    assert sorted(o["id"] for o in first) == ["b", "c"]
    assert len(ballot_view(OPTIONS, "Architect", poll_id=7, participant_id=3, exclude_own=False)) == 3


def test_the_schema_allows_exactly_the_numbers_on_this_ballot() -> None:
    view = ballot_view(OPTIONS, "Architect", poll_id=7, participant_id=3, exclude_own=True)
    ranking = ballot_schema(view)["properties"]["ranking"]
    assert ranking["items"]["enum"] == [1, 2]
    assert ranking["maxItems"] == 2
    assert AgentBallot.model_json_schema()["properties"]["ranking"]["items"] == {"type": "integer"}  # not mutated


def test_numbers_map_back_to_ids_dropping_ones_not_on_the_ballot_and_repeats() -> None:
    view = [OPTIONS[2], OPTIONS[0]]
    ballot = AgentBallot(ranking=[2, 3, 2, 0, 1], reason="joins")
    assert to_option_ids(ballot, view) == ["a", "c"]


async def test_an_agent_with_only_its_own_options_is_not_asked() -> None:
    import pytest

    from backend.deliberation.agent_vote import ask_agent
    from backend.providers.scripted import ScriptedProvider

    provider = ScriptedProvider(['{"ranking": [1], "reason": "mine"}'])
    view = ballot_view(OPTIONS[:1], "Architect", poll_id=1, participant_id=1, exclude_own=True)
    with pytest.raises(ValueError, match="none to vote for"):
        await ask_agent(provider, model="m", system="", transcript=[], question="Q?", rule="plurality", view=view)
    assert provider.calls == 0


async def test_a_stalled_ballot_is_cut_at_the_hard_deadline(monkeypatch) -> None:
    """Structured calls (ballots, reports, syntheses) keep the agents' hard deadline: a model that stalls is
    cancelled with a timeout, not waited on for ever."""
    import time

    import pytest

    from backend.config import get_settings
    from backend.deliberation.agent_vote import ask_agent
    from backend.providers.base import ErrorKind, ProviderError
    from backend.providers.scripted import ScriptedProvider

    monkeypatch.setenv("MAESTRO_HARD_DEADLINE_S", "0.3")
    get_settings.cache_clear()
    try:
        stalled = ScriptedProvider(['{"ranking": [1], "reason": "slowly"}'], token_delay=5.0)
        view = ballot_view(OPTIONS, "Nobody", poll_id=1, participant_id=1, exclude_own=True)
        started = time.monotonic()
        with pytest.raises(ProviderError) as raised:
            await ask_agent(stalled, model="m", system="", transcript=[], question="Q?", rule="plurality", view=view)
        assert raised.value.kind is ErrorKind.TIMEOUT
        assert raised.value.message == "No complete reply within 0.3 s, so the call was cancelled."
        assert time.monotonic() - started < 2
    finally:
        get_settings.cache_clear()
