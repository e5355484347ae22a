"""Untrusted text (model and human output) as Markdown: raw HTML off, images never fetched, unsafe links disarmed.

A Markdown image in a model's reply would make every viewer's browser request that URL (a tracking pixel an
injected instruction could plant), so images render as a short placeholder instead.

A link whose URL react-markdown would refuse (`javascript:`, `data:`, `vbscript:`... anything but http(s), mailto,
irc(s), xmpp or a relative URL) used to come out as `<a href="">`, which reloads the page when clicked. Our own URL
transform (the same rule as react-markdown's default) marks such a URL instead, and the link renderer shows it as
plain text with the URL beside it: nothing to click, nothing navigates.
"""

from __future__ import annotations

import reflex as rx

DISARMED = "maestro-disarmed:"
# react-markdown's defaultUrlTransform, except that a refused URL is kept behind DISARMED (never as an href).
URL_TRANSFORM = (
    "((url) => { const value = String(url ?? ''); const colon = value.indexOf(':');"
    " const slash = value.indexOf('/'); const question = value.indexOf('?'); const hash = value.indexOf('#');"
    " if (colon === -1 || (slash !== -1 && colon > slash) || (question !== -1 && colon > question)"
    " || (hash !== -1 && colon > hash) || /^(https?|ircs?|mailto|xmpp)$/i.test(value.slice(0, colon)))"
    f" {{ return value; }} return {DISARMED!r} + value; }})"
)
_HREF = rx.Var("String(props?.href ?? '')").to(str)
_DISARMED_HREF = rx.Var(f"(String(props?.href ?? '').startsWith({DISARMED!r}) || !props?.href)").to(bool)
_SHOWN_URL = rx.Var(
    f"String(props?.href ?? '').slice(String(props?.href ?? '').startsWith({DISARMED!r}) ? {len(DISARMED)} : 0)"
).to(str)


def _no_image(*_children, **_props) -> rx.Component:
    return rx.text.span("[image not loaded]", class_name="md-image", color="var(--gray-10)")


def _link(*children, **_props) -> rx.Component:
    """A safe link as a link (a new tab, no referrer); a disarmed one as its text and its URL, with no href at all.

    react-markdown's props are spread onto the outer span (an href on a span is inert)."""
    return rx.text.span(
        rx.cond(
            _DISARMED_HREF,
            rx.text.span(
                *children,
                rx.text.span(" (link not opened: ", rx.code(_SHOWN_URL, size="1", class_name="md-link-url"), ")"),
                class_name="md-link-disarmed",
                color="var(--gray-11)",
            ),
            rx.el.a(
                *children,
                href=_HREF,
                target="_blank",
                rel="noopener noreferrer nofollow",
                class_name="md-link",
                color="var(--accent-11)",
                text_decoration="underline",
            ),
        ),
    )


def untrusted_markdown(text, **props) -> rx.Component:
    """Markdown for text nobody vetted: no raw HTML, no remote images, links that are safe or plainly disarmed."""
    wrapper = rx.markdown(text, use_raw=False, component_map={"img": _no_image, "a": _link}, **props)
    inner = wrapper.children[0]  # rx.markdown wraps ReactMarkdown in a div; the transform is ReactMarkdown's prop
    inner.custom_attrs["urlTransform"] = rx.Var(URL_TRANSFORM)
    return wrapper
