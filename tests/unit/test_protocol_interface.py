"""Every protocol implements one interface (`backend.protocols.base.Protocol`): the engine asks it for the
schedule, the cues, an open slot's speaker and whether its plan follows the rounds it was created with, and never
probes for optional attributes."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from backend.protocols import PROTOCOLS, get_protocol
from backend.protocols.base import Protocol, Turn
from backend.protocols.open_floor import OpenFloor
from backend.protocols.round_robin import RoundRobin
from backend.protocols.staged import Staged


@dataclass(frozen=True)
class _Agent:
    id: int
    name: str


AGENTS = [_Agent(1, "Ada"), _Agent(2, "Brian"), _Agent(3, "Cleo")]


@pytest.mark.parametrize("name", sorted(PROTOCOLS))
def test_every_registered_protocol_implements_the_interface(name):
    protocol = get_protocol(name)
    assert isinstance(protocol, Protocol)
    assert protocol.name == name and protocol.label and protocol.summary
    turns = list(protocol.schedule(AGENTS, 2))
    assert turns and all(isinstance(t, Turn) for t in turns)
    assert len({t.key for t in turns}) == len(turns)  # keys identify each model call across restarts
    assert {t.round for t in turns} == {1, 2}
    assert "Ada" in protocol.speaker_cue("Ada", 1, 2)
    assert "Grace" in protocol.mention_cue("Ada", "Grace")
    assert "Ada" in protocol.next_cue("Ada", 1, 2, "")


def test_a_protocol_must_define_its_schedule():
    class NoSchedule(Protocol):
        name, label, summary = "none", "None", "No schedule."

    with pytest.raises(TypeError):
        NoSchedule()  # type: ignore[abstract]


def test_unknown_names_fall_back_to_round_robin():
    assert type(get_protocol(None)) is RoundRobin
    assert type(get_protocol("nonsense")) is RoundRobin


def test_only_staged_follows_the_rounds_it_was_created_with():
    assert [n for n, p in PROTOCOLS.items() if p.follows_plan] == [Staged.name]
    staged = Staged()
    staged.planned = 3
    assert max(t.round for t in staged.schedule(AGENTS, 4)) == 4  # "more discussion" adds a follow-up stage
    assert sum(1 for t in staged.schedule(AGENTS, 4) if t.tag.startswith("stage")) == 4


async def test_only_a_protocol_with_open_slots_is_asked_to_choose_a_speaker():
    assert all(t.speaker is None for t in OpenFloor().schedule(AGENTS, 1))
    assert all(t.speaker is not None for t in RoundRobin().schedule(AGENTS, 1))
    with pytest.raises(NotImplementedError):
        await RoundRobin().choose(None, "", [], ["Ada"])  # type: ignore[arg-type]
