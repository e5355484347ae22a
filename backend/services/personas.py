"""The persona library in the database: seeded from the defaults, editable afterwards; each persona maps to the
provider and model its agents run on by default (the registry of persona -> provider + model)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, select

from backend.db import session_scope
from backend.errors import InputError, NotFound
from backend.humans import audit
from backend.humans.instance import require_admin
from backend.models import Persona, User
from backend.models.base import utcnow
from backend.providers import egress, registry
from backend.providers.personas import DEFAULT_PERSONAS
from backend.services.discussions import AgentSpec


def seed_personas(session: Session) -> int:
    """Insert default personas that are missing (never overwrites a user's edits); returns how many."""
    existing = set(session.exec(select(Persona.key)))
    added = 0
    for seed in DEFAULT_PERSONAS:
        if seed.key not in existing:
            session.add(
                Persona(
                    key=seed.key,
                    name=seed.display_name,
                    description=seed.description,
                    system_prompt=seed.system_prompt,
                    provider=seed.provider,
                    model=seed.model,
                )
            )
            added += 1
    return added


def list_personas() -> list[Persona]:
    """Every persona, in a stable order."""
    with session_scope() as session:
        return list(session.exec(select(Persona).order_by(Persona.id)))  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class AgentDefaults:
    """What a new agent of a persona runs on; `fallback` says why it is the offline model instead, if so."""

    provider: str
    model: str
    base_url: str | None = None
    fallback: str = ""


def agent_defaults(persona: Persona) -> AgentDefaults:
    """The persona's provider and model when they can run here, else the offline default with the reason."""
    model = persona.model or registry.default_model(persona.provider)
    problem = registry.validate_agent(persona.provider, model, persona.base_url)
    if problem is None:
        return AgentDefaults(
            persona.provider, model, persona.base_url if persona.provider == "openai_compatible" else None
        )
    return AgentDefaults("offline", registry.default_model("offline"), None, f"{persona.name}: {problem}")


def defaults_by_key() -> dict[str, AgentDefaults]:
    """`agent_defaults` of every persona, by key."""
    return {p.key: agent_defaults(p) for p in list_personas()}


def agent_spec(
    persona: str, provider: str | None, model: str | None, base_url: str | None, mapped: dict[str, AgentDefaults]
) -> AgentSpec:
    """An agent on the provider (and model) named, else on its persona's own (`mapped`: `defaults_by_key()`), else
    on the offline model; a provider named without a model gets that provider's default model."""
    own = mapped.get(persona)
    if provider is None and own is not None:
        return AgentSpec(persona, own.provider, model or own.model, base_url or own.base_url)
    provider = provider or "offline"
    return AgentSpec(persona, provider, model or registry.default_model(provider), base_url)


def update_persona(
    key: str,
    *,
    actor: User | None,
    system_prompt: str,
    name: str | None = None,
    provider: str | None = None,
    model: str | None = None,
    base_url: str | None = None,
) -> Persona:
    """Edit a persona's prompt, and optionally the provider and model its agents run on (agents created after the
    edit use them). A provider whose key is not set yet is accepted: its agents fall back until it is.

    The library is shared by every discussion on the instance, so only the instance admin edits it (a persona
    pointed at another server would send every later transcript there); each edit is in the audit trail."""
    require_admin(actor, "edit the persona library")
    errors: dict[str, str] = {}
    if not system_prompt.strip():
        errors["system_prompt"] = "A persona needs a system prompt."
    if provider is not None:
        model = (model or "").strip() or registry.default_model(provider)
        problem = registry.validate_agent(provider, model, base_url, allow_missing_key=True)
        if problem:
            errors["provider"] = problem
    if errors:
        raise InputError(errors)
    with session_scope() as session:
        persona = session.exec(select(Persona).where(Persona.key == key)).first()
        if persona is None:
            raise NotFound(f"No persona '{key}'.")
        previous = _describe(persona)
        persona.system_prompt = system_prompt.strip()
        if name:
            persona.name = name.strip()
        if provider is not None:
            persona.provider = provider
            persona.model = model or ""
            persona.base_url = (base_url or "").strip() or None if provider == "openai_compatible" else None
        persona.updated_at = utcnow()
        session.add(persona)
        audit.record(
            session, actor=actor, action="persona.update", target=key, previous=previous, new=_describe(persona)
        )
        return persona


def _describe(persona: Persona) -> str:
    where = f"{persona.provider}:{persona.model or '(default)'}"
    if persona.base_url:
        where += f"@{egress.display_url(persona.base_url)}"
    return f"{persona.name} on {where}\n{persona.system_prompt}"
