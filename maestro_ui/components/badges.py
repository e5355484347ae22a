"""Small badges: discussion status, agent status with elapsed time, provider."""

from __future__ import annotations

import reflex as rx

from backend.providers.registry import PROVIDERS
from maestro_ui.styles import STATUS_COLOR


def status_badge(status: rx.Var[str], **props) -> rx.Component:
    """A coloured badge for a status word ("awaiting_approval" reads "awaiting approval")."""
    return rx.badge(
        status.replace("_", " "),
        color_scheme=rx.match(status, *[(k, v) for k, v in STATUS_COLOR.items()], "gray"),
        variant="soft",
        **props,
    )


def provider_badge(label: rx.Var[str], model: rx.Var[str]) -> rx.Component:
    """Which provider and model an agent runs on."""
    return rx.flex(
        rx.badge(label, variant="outline", color_scheme="violet", size="1", flex_shrink="0"),
        rx.text(
            model, size="1", color_scheme="gray", overflow="hidden", text_overflow="ellipsis", white_space="nowrap"
        ),
        spacing="1",
        align="center",
        min_width="0",
        max_width="100%",
    )


def provider_label(provider: rx.Var[str]) -> rx.Var[str]:
    """A provider's display name, looked up on the page (agent rows carry only the key: they are resent often)."""
    labels = {**{key: info.label for key, info in PROVIDERS.items()}, "offline": "Offline"}
    return rx.match(provider, *labels.items(), provider)
