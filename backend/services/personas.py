"""The persona library in the database: seeded from the defaults, editable afterwards."""

from __future__ import annotations

from sqlmodel import Session, select

from backend.db import session_scope
from backend.models import Persona
from backend.models.base import utcnow
from backend.providers.personas import DEFAULT_PERSONAS
from backend.services.errors import InputError, NotFound


def seed_personas(session: Session) -> int:
    """Insert default personas that are missing (never overwrites a user's edits); returns how many."""
    existing = set(session.exec(select(Persona.key)))
    added = 0
    for seed in DEFAULT_PERSONAS:
        if seed.key not in existing:
            session.add(
                Persona(
                    key=seed.key, name=seed.display_name, description=seed.description, system_prompt=seed.system_prompt
                )
            )
            added += 1
    return added


def list_personas() -> list[Persona]:
    """Every persona, in a stable order."""
    with session_scope() as session:
        return list(session.exec(select(Persona).order_by(Persona.id)))  # type: ignore[arg-type]


def update_persona(key: str, *, system_prompt: str, name: str | None = None) -> Persona:
    """Edit a persona's prompt (used by agents created after the edit)."""
    if not system_prompt.strip():
        raise InputError({"system_prompt": "A persona needs a system prompt."})
    with session_scope() as session:
        persona = session.exec(select(Persona).where(Persona.key == key)).first()
        if persona is None:
            raise NotFound(f"No persona '{key}'.")
        persona.system_prompt = system_prompt.strip()
        if name:
            persona.name = name.strip()
        persona.updated_at = utcnow()
        session.add(persona)
        return persona
