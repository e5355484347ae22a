"""Discussion protocols: who speaks when, and what each turn is asked to do. One module per protocol."""

from __future__ import annotations

from backend.protocols.base import Protocol
from backend.protocols.consensus_building import ConsensusBuilding
from backend.protocols.debate import Debate
from backend.protocols.open_floor import OpenFloor
from backend.protocols.round_robin import RoundRobin
from backend.protocols.staged import Staged

PROTOCOLS: dict[str, type[Protocol]] = {p.name: p for p in (RoundRobin, OpenFloor, Debate, ConsensusBuilding, Staged)}


def get_protocol(name: str | None) -> Protocol:
    """The protocol called `name` (round-robin when unknown or empty)."""
    return PROTOCOLS.get(name or "", RoundRobin)()
