"""The persona library: read and edit the system prompts agents are built from, and the provider and model each
persona's agents run on by default."""

from __future__ import annotations

from typing import TypedDict

import reflex as rx

from backend.db import run_db
from backend.errors import Forbidden, InputError, NotFound
from backend.providers import registry
from backend.services.personas import agent_defaults, list_personas, update_persona
from maestro_ui.components.layout import page
from maestro_ui.state.auth import AuthState


class PersonaRow(TypedDict):
    key: str
    name: str
    description: str
    system_prompt: str
    provider: str
    model: str
    base_url: str
    note: str  # why its agents fall back to the offline model, if they do


class ProviderOption(TypedDict):
    value: str  # the registry key the form saves
    label: str


class PersonasState(rx.State):
    """Personas with their editable prompts; a saved prompt applies to agents created afterwards."""

    rows: list[PersonaRow] = []
    providers: list[ProviderOption] = []
    saved: str = ""
    error: str = ""

    @rx.event
    async def load(self):
        """Read the library."""
        self.rows = [
            PersonaRow(
                key=p.key,
                name=p.name,
                description=p.description,
                system_prompt=p.system_prompt,
                provider=p.provider,
                model=p.model,
                base_url=p.base_url or "",
                note=agent_defaults(p).fallback,
            )
            for p in await run_db(list_personas)
        ]
        self.providers = [ProviderOption(value=key, label=info.label) for key, info in registry.PROVIDERS.items()]
        self.saved = self.error = ""

    @rx.event
    async def save(self, form: dict):
        """Save one persona's prompt, provider and model (the form carries its key); the service lets only the
        instance admin do it, whatever the page showed."""
        key, prompt = str(form.get("key", "")), str(form.get("system_prompt", ""))
        provider, model = str(form.get("provider", "offline")), str(form.get("model", ""))
        base_url = str(form.get("base_url", "")) or None
        actor = await (await self.get_state(AuthState)).current_user()
        try:
            await run_db(
                lambda: update_persona(
                    key, actor=actor, system_prompt=prompt, provider=provider, model=model, base_url=base_url
                )
            )
        except (InputError, NotFound, Forbidden) as err:
            self.error, self.saved = str(err), ""
            return
        self.saved, self.error = key, ""
        await self.load()
        self.saved = key


def _persona(p: PersonaRow) -> rx.Component:
    return rx.card(
        rx.form(
            rx.vstack(
                rx.heading(p["name"], size="4"),
                rx.text(p["description"], size="2", color_scheme="gray"),
                rx.el.input(type="hidden", name="key", value=p["key"]),
                rx.text_area(name="system_prompt", default_value=p["system_prompt"], rows="6", width="100%"),
                rx.flex(
                    rx.select.root(  # labelled as on the new-discussion form; the form posts the key
                        rx.select.trigger(placeholder="Provider"),
                        rx.select.content(
                            rx.foreach(PersonasState.providers, lambda o: rx.select.item(o["label"], value=o["value"]))
                        ),
                        name="provider",
                        default_value=p["provider"],
                        size="2",
                    ),
                    rx.input(name="model", default_value=p["model"], placeholder="model (default)", size="2"),
                    rx.input(
                        name="base_url", default_value=p["base_url"], placeholder="base URL (local server)", size="2"
                    ),
                    spacing="2",
                    wrap="wrap",
                    width="100%",
                    class_name="persona-runs-on",
                ),
                rx.cond(p["note"] != "", rx.text(p["note"], size="1", color_scheme="orange", class_name="fallback")),
                rx.hstack(
                    rx.button("Save", type="submit", size="2", variant="soft", disabled=~AuthState.admin),
                    rx.cond(PersonasState.saved == p["key"], rx.text("Saved", size="2", color_scheme="green")),
                    align="center",
                ),
                width="100%",
                spacing="2",
            ),
            on_submit=PersonasState.save,
            width="100%",
        ),
        width="100%",
        id="persona-" + p["key"],
    )


def personas_page() -> rx.Component:
    """Every persona, editable."""
    return page(
        rx.vstack(
            rx.heading("Personas", size="6"),
            rx.text(
                "Agents are built from these, on the provider and model each names (offline when that provider cannot "
                "run here). Edits apply to agents created afterwards.",
                size="2",
                color_scheme="gray",
            ),
            rx.cond(
                ~AuthState.admin,
                rx.callout(
                    "The persona library is shared by everyone on this server: only the instance admin edits it.",
                    icon="lock",
                    color_scheme="gray",
                    id="personas-read-only",
                ),
            ),
            rx.cond(
                PersonasState.error != "", rx.callout(PersonasState.error, color_scheme="red", icon="circle_alert")
            ),
            rx.foreach(PersonasState.rows, _persona),
            width="100%",
            max_width="760px",
            spacing="3",
        )
    )
