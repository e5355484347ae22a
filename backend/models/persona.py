"""Persona: a reusable character (name + system prompt, and the provider and model it runs on) that agents are
built from; editable, stored."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from backend.models.base import timestamp_field


class Persona(SQLModel, table=True):
    """A persona in the library."""

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(index=True, unique=True, max_length=64)
    name: str = Field(max_length=120)
    description: str = Field(default="", max_length=500)
    system_prompt: str
    # Where its agents run unless the creator picks otherwise (services.personas.agent_defaults falls back to
    # the offline model when this provider cannot run here).
    provider: str = Field(default="offline", max_length=40)
    model: str = Field(default="", max_length=200)  # "" = the provider's default model
    base_url: str | None = Field(default=None, max_length=500)  # OpenAI-compatible servers
    created_at: datetime = timestamp_field()
    updated_at: datetime = timestamp_field()
