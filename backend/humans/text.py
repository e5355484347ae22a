"""One normaliser for the text people name things with: display names and discussion topics.

A name or a question is shown to others next to other text, so it must read as what it is: NFC (a precomposed "ë"
and "e" + combining diaeresis are the same name), no bidi controls (a right-to-left override makes "Approved by the
CTO" + RLO + "fdp.exe" show as "...exe.pdf"), no zero-width characters (two names that look alike must be alike),
no other control or format characters, and whitespace collapsed. Ordinary names (Zoë, 李雷, O'Brien, Anne-Marie)
come out as they went in.
"""

from __future__ import annotations

import re
import unicodedata

NAME_CHARS = 120  # a display name or a participant's name (the columns' length)

# Embeddings and overrides (LRE, RLE, PDF, LRO, RLO), isolates (LRI, RLI, FSI, PDI), marks (LRM, RLM, ALM).
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")
# Zero-width space, non-joiner, joiner, word joiner, byte-order mark / zero-width no-break space.
ZERO_WIDTH = frozenset("\u200b\u200c\u200d\u2060\ufeff")
# Control (Cc), format (Cf: soft hyphen, invisible operators, tag characters...), private use and surrogates.
_HIDDEN_CATEGORIES = ("Cc", "Cf", "Co", "Cs")
_LINE_BREAKS = frozenset("\n\r\u2028\u2029\x0b\x0c\x85\x1c\x1d\x1e")
_SPACES = re.compile(r"[^\S\n]+")
_BLANK_LINES = re.compile(r"\n{3,}")


def _hidden(ch: str) -> bool:
    return ch in BIDI_CONTROLS or ch in ZERO_WIDTH or unicodedata.category(ch) in _HIDDEN_CATEGORIES


def _visible(text: str, *, lines: bool) -> str:
    """Whitespace as a space (or a line break, when `lines`), hidden characters out, then NFC."""
    out = []
    for ch in (text or "").replace("\r\n", "\n"):
        if lines and ch in _LINE_BREAKS:
            out.append("\n")
        elif ch.isspace():
            out.append(" ")
        elif not _hidden(ch):
            out.append(ch)
    return unicodedata.normalize("NFC", "".join(out))


def clean_name(text: str) -> str:
    """A name as people will see it: NFC, one line, no bidi, zero-width or other control characters, single
    spaces. May be empty: the caller refuses an empty name in its own words."""
    return " ".join(_visible(text, lines=False).split())


def clean_topic(text: str) -> str:
    """A discussion's question: the same as a name, except that line breaks stay (a question may have paragraphs):
    runs of spaces become one, each line is trimmed, and there is at most one blank line in a row."""
    lines = [_SPACES.sub(" ", line).strip() for line in _visible(text, lines=True).split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()
