"""Untrusted text (model and human output) as Markdown: raw HTML off, and images never fetched.

A Markdown image in a model's reply would make every viewer's browser request that URL (a tracking pixel an
injected instruction could plant), so images render as a short placeholder instead.
"""

from __future__ import annotations

import reflex as rx


def _no_image(*_children, **_props) -> rx.Component:
    return rx.text.span("[image not loaded]", class_name="md-image", color="var(--gray-10)")


def untrusted_markdown(text, **props) -> rx.Component:
    """Markdown for text nobody vetted: no raw HTML, no remote images (links stay, sanitized by react-markdown)."""
    return rx.markdown(text, use_raw=False, component_map={"img": _no_image}, **props)
