"""Presence: who is in the room now. Each open tab beats every few seconds while it follows the room; a person
is online while a beat is recent and away once it is not. Typing is an ephemeral signal, never stored."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update

from backend import clock
from backend.db import session_scope
from backend.models import Participant
from backend.models.base import as_utc

BEAT_S = 10
ONLINE_FOR_S = 25  # a little over two beats, so one late beat does not flicker a person to away


def beat(participant_id: int) -> bool:
    """Record a beat; True when the person was not online before it."""
    now = clock.now()
    with session_scope() as s:
        participant = s.get(Participant, participant_id)
        if participant is None:
            return False
        was_online = is_online(participant.last_seen_at)
        s.execute(update(Participant).where(Participant.id == participant_id).values(last_seen_at=now))  # type: ignore[arg-type]
    return not was_online


def is_online(last_seen_at) -> bool:
    return last_seen_at is not None and clock.now() - as_utc(last_seen_at) < timedelta(seconds=ONLINE_FOR_S)
