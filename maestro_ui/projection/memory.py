"""Deliberation memory as the pages show it: the banner line, related decisions, the memory page's rows, and the
New discussion form's context fields. Plain Python, no Reflex (tests/unit/test_memory_view.py)."""

from __future__ import annotations

from datetime import datetime
from typing import TypedDict

from backend.memory.context import SECURITY_LEVELS, TEAM_SIZES, parse_context
from backend.memory.results import Remembered
from backend.models.base import as_utc, utcnow
from backend.services.memory import MemoryRow

UNSET = "unset"  # a select's "no value" (a Radix select item cannot have an empty value)
CONTEXT_FIELDS = ("preferred_language", "frameworks", "security_level", "team_size", "existing_stack")
CONTEXT_CHOICES = {"security_level": SECURITY_LEVELS, "team_size": TEAM_SIZES}


class MemoryHit(TypedDict):
    """The banner for a hit on the New discussion form (the entry's id stays on the server)."""

    line: str
    question: str
    context: str
    href: str


class RelatedRow(TypedDict):
    """An earlier, related decision: a link to its room."""

    question: str
    outcome: str
    context: str
    meta: str  # "decided 3 Nov by Sam · 81% similar"
    href: str


class MemoryEntryRow(TypedDict):
    """A remembered result on the memory page, every field ready to show as text."""

    id: int
    question: str
    context: str
    outcome: str
    kind: str
    source_href: str
    source_label: str
    decided: str
    hits: int
    uses: str  # "reused 3 times · last 5 Nov" or "not reused yet"
    saved: str  # what its reuses saved: "$0.16 · 28k tokens · 8 min" ("" before the first reuse)
    status: str
    live: bool
    can_forget: bool


def room_href(discussion_id: int) -> str:
    return f"/room/{discussion_id}"


def day(when: datetime, now: datetime | None = None) -> str:
    """ "3 Nov" this year, "3 Nov 2024" otherwise."""
    when, now = as_utc(when), as_utc(now or utcnow())
    return f"{when.day} {when:%b}" if when.year == now.year else f"{when.day} {when:%b %Y}"


def duration(seconds: float) -> str:
    """A rough length of time: "<1 s", "40 s", "4 min", "1.5 h"."""
    if seconds < 1:
        return "<1 s"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h".replace(".0 h", " h")


def dollars(usd: float) -> str:
    if usd <= 0:
        return "$0"
    if usd < 0.01:
        return "<$0.01"
    return f"${usd:,.2f}"


def tokens(n: int) -> str:
    if n >= 10_000:
        return f"{n / 1000:.0f}k tokens"
    if n >= 1000:
        return f"{n / 1000:.1f}k tokens"
    return f"{n} tokens"


def savings(usd: float, n_tokens: int, seconds: float) -> str:
    """What reuse saves, roughly: "saves ~$0.08 and ~4 min"; tokens when it cost under a cent (the offline model);
    "" when there is nothing to name."""
    parts = []
    if usd >= 0.01:
        parts.append(f"~{dollars(usd)}")
    elif n_tokens > 0:
        parts.append(f"~{tokens(n_tokens)}")
    elif usd > 0:
        parts.append(dollars(usd))
    if seconds >= 1:
        parts.append(f"~{duration(seconds)}")
    return f"saves {' and '.join(parts)}" if parts else ""


def _verb(kind: str) -> str:
    return "Decided" if kind == "decision" else "Concluded"


def one_line(text: str, limit: int = 160) -> str:
    """Stored text on one line, cut at `limit` characters (it is shown as text, never as HTML)."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def hit_line(r: Remembered, now: datetime | None = None) -> str:
    """The banner: "[MEMORY] Decided 3 Nov by Sarah: PostgreSQL only (94% match, saves ~$0.08 and ~4 min)"."""
    by = f" by {r.decided_by}" if r.decided_by else ""
    extra = ", ".join(
        p for p in (f"{r.match_percent}% match", savings(r.saves_usd, r.saves_tokens, r.saves_seconds)) if p
    )
    return f"[MEMORY] {_verb(r.kind)} {day(r.decided_at, now)}{by}: {one_line(r.outcome)} ({extra})"


def context_line(context: dict | None) -> str:
    """A context dict as one line ("python · fastapi · high security"); "no context" when empty."""
    try:
        return parse_context(context or {}).describe()
    except ValueError:
        return "context not readable"


def memory_hit(r: Remembered, now: datetime | None = None) -> MemoryHit:
    return MemoryHit(
        line=hit_line(r, now),
        question=one_line(r.question, 300),
        context=context_line(r.context),
        href=room_href(r.discussion_id),
    )


def related_row(r: Remembered, now: datetime | None = None) -> RelatedRow:
    by = f" by {r.decided_by}" if r.decided_by else ""
    return RelatedRow(
        question=one_line(r.question, 200),
        outcome=one_line(r.outcome),
        context=context_line(r.context),
        meta=f"{_verb(r.kind).lower()} {day(r.decided_at, now)}{by} · {r.match_percent}% similar",
        href=room_href(r.discussion_id),
    )


def source_label(row: MemoryRow, now: datetime | None = None) -> str:
    """Where a reused result comes from: "#12 · Choose a database for Apollo · decided 3 Nov by Sam"."""
    by = f" by {row.decided_by}" if row.decided_by else ""
    verb = _verb(row.kind).lower()
    return f"#{row.discussion_id} · {one_line(row.question, 120)} · {verb} {day(row.decided_at, now)}{by}"


def uses(hits: int, last: datetime | None, now: datetime | None = None) -> str:
    if not hits:
        return "not reused yet"
    times = "once" if hits == 1 else f"{hits:,} times"
    return f"reused {times}" + (f" · last {day(last, now)}" if last else "")


def totals(rows: list[MemoryRow]) -> str:
    """One line over the memory page: how much is kept and served, and what reuse saved in all."""
    if not rows:
        return ""
    served = sum(1 for r in rows if r.live)
    hits = sum(r.hits for r in rows)
    line = f"{len(rows):,} result{'s' if len(rows) != 1 else ''} kept, {served:,} served"
    if hits:
        usd = sum(r.saved_usd for r in rows)
        n = sum(r.saved_tokens for r in rows)
        seconds = sum(r.saved_seconds for r in rows)
        line += f" · {hits:,} reuse{'s' if hits != 1 else ''} saved {dollars(usd)}, {tokens(n)} and {duration(seconds)}"
    return line


def entry_row(row: MemoryRow, now: datetime | None = None) -> MemoryEntryRow:
    saved = (
        f"{dollars(row.saved_usd)} · {tokens(row.saved_tokens)} · {duration(row.saved_seconds)}"
        if row.hits
        else f"each reuse {savings(row.each_usd, row.each_tokens, row.each_seconds)}".removesuffix("each reuse ")
    )
    by = f" by {row.decided_by}" if row.decided_by else ""
    return MemoryEntryRow(
        id=row.id,
        question=one_line(row.question, 300),
        context=row.context,
        outcome=one_line(row.outcome, 300),
        kind=row.kind,
        source_href=room_href(row.discussion_id),
        source_label=f"#{row.discussion_id}",
        decided=f"{day(row.decided_at, now)}{by}",
        hits=row.hits,
        uses=uses(row.hits, row.last_hit_at, now),
        saved=saved,
        status="served" if row.live else f"not served: {row.status}",
        live=row.live,
        can_forget=row.can_forget,
    )


# --- the New discussion form's context fields -------------------------------------------------------------------


def form_fields(context: dict | None) -> dict[str, str]:
    """A stored context as the form's text fields (lists comma-separated, an unset choice as UNSET)."""
    context = context or {}
    fields = {}
    for key in CONTEXT_FIELDS:
        value = context.get(key)
        if isinstance(value, list | tuple):
            fields[key] = ", ".join(str(v) for v in value)
        elif key in CONTEXT_CHOICES:
            fields[key] = str(value) if value in CONTEXT_CHOICES[key] else UNSET
        else:
            fields[key] = str(value or "")
    return fields


def raw_context(fields: dict[str, str]) -> dict[str, str]:
    """The form's fields as the service takes them: only what was filled in (the service parses and refuses)."""
    raw = {}
    for key in CONTEXT_FIELDS:
        value = str(fields.get(key, "")).strip()
        if value and value != UNSET:
            raw[key] = value
    return raw


def unavailable_line(reason: str) -> str:
    """Why memory could not look, and what happens instead: "Memory is unavailable: …; this discussion will run
    fresh." ("" when it could look)."""
    reason = one_line(reason, 300).rstrip(". ")
    return f"{reason}; this discussion will run fresh." if reason else ""
