"""Memory as the pages show it (maestro_ui/projection/memory.py): the banner line, related decisions, the memory
page's rows, and the New discussion form's context fields. Plain data, no browser, no Reflex."""

from __future__ import annotations

from datetime import UTC, datetime

from backend.memory.results import Remembered
from backend.services.memory import MemoryRow
from maestro_ui.projection.memory import (
    UNSET,
    duration,
    entry_row,
    form_fields,
    hit_line,
    memory_hit,
    raw_context,
    related_row,
    savings,
    source_label,
    totals,
    unavailable_line,
)

NOW = datetime(2025, 11, 20, 12, 0, tzinfo=UTC)
NOV_3 = datetime(2025, 11, 3, 9, 30, tzinfo=UTC)


def remembered(**fields) -> Remembered:
    base = dict(
        entry_id=5,
        discussion_id=12,
        question="Choose a database for Apollo",
        context={"preferred_language": "python", "security_level": "high"},
        outcome="PostgreSQL only",
        kind="decision",
        decided_by="Sarah",
        decided_at=NOV_3,
        similarity=0.9431,
        saves_usd=0.0812,
        saves_tokens=14_200,
        saves_seconds=241.0,
    )
    return Remembered(**{**base, **fields})


def row(**fields) -> MemoryRow:
    base = dict(
        id=5,
        discussion_id=12,
        question="Choose a database for Apollo",
        context="python · high security",
        outcome="PostgreSQL only",
        kind="decision",
        decided_by="Sarah",
        decided_at=NOV_3,
        hits=0,
        last_hit_at=None,
        saved_usd=0.0,
        saved_tokens=0,
        saved_seconds=0.0,
        each_usd=0.0812,
        each_tokens=14_200,
        each_seconds=241.0,
        live=True,
        status="served",
        can_forget=True,
    )
    return MemoryRow(**{**base, **fields})


def test_the_banner_names_when_who_what_how_close_and_what_reuse_saves():
    assert hit_line(remembered(), NOW) == (
        "[MEMORY] Decided 3 Nov by Sarah: PostgreSQL only (94% match, saves ~$0.08 and ~4 min)"
    )


def test_the_banner_for_a_synthesis_an_unnamed_decider_and_another_year():
    line = hit_line(remembered(kind="synthesis", decided_by="", decided_at=datetime(2024, 3, 1, tzinfo=UTC)), NOW)
    assert line.startswith("[MEMORY] Concluded 1 Mar 2024: PostgreSQL only (")


def test_savings_name_tokens_when_the_source_cost_nothing_and_nothing_when_there_is_nothing():
    assert savings(0.0, 14_200, 40) == "saves ~14k tokens and ~40 s"
    assert savings(0.004, 900, 0.2) == "saves ~900 tokens"
    assert savings(0.004, 0, 0.0) == "saves <$0.01"
    assert savings(0.0, 0, 0.0) == ""
    line = hit_line(remembered(saves_usd=0.0, saves_tokens=0, saves_seconds=0.0), NOW)
    assert line.endswith("(94% match)")


def test_durations_are_rough():
    assert [duration(s) for s in (0.3, 42, 241, 3600, 5400)] == ["<1 s", "42 s", "4 min", "1 h", "1.5 h"]


def test_stored_text_is_kept_on_one_line_and_cut():
    long = remembered(outcome="PostgreSQL\n\n<b>only</b>  " + "x" * 400)
    line = hit_line(long, NOW)
    assert "\n" not in line and "…" in line and len(line) < 260
    assert "<b>only</b>" in line  # shown as text by the page, never as HTML: nothing to strip here


def test_a_hit_links_to_its_source_room_and_says_the_context_it_was_decided_in():
    hit = memory_hit(remembered(), NOW)
    assert hit["href"] == "/room/12"
    assert hit["context"] == "python · high security"
    assert hit["question"] == "Choose a database for Apollo"


def test_a_related_decision_links_to_its_room_with_when_who_and_how_similar():
    r = related_row(remembered(question="Choose a cache for Apollo", outcome="Redis", similarity=0.81), NOW)
    assert r == {
        "question": "Choose a cache for Apollo",
        "outcome": "Redis",
        "context": "python · high security",
        "meta": "decided 3 Nov by Sarah · 81% similar",
        "href": "/room/12",
    }


def test_a_memory_page_row_before_and_after_reuse():
    fresh = entry_row(row(), NOW)
    assert fresh["uses"] == "not reused yet" and fresh["status"] == "served"
    assert fresh["saved"] == "each reuse saves ~$0.08 and ~4 min"  # what the source cost, before any reuse
    assert (
        fresh["source_href"] == "/room/12" and fresh["source_label"] == "#12" and fresh["decided"] == "3 Nov by Sarah"
    )
    used = entry_row(
        row(hits=3, last_hit_at=NOV_3, saved_usd=0.24, saved_tokens=42_600, saved_seconds=723.0, can_forget=False),
        NOW,
    )
    assert used["uses"] == "reused 3 times · last 3 Nov"
    assert used["saved"] == "$0.24 · 43k tokens · 12 min"
    assert used["can_forget"] is False


def test_a_row_no_longer_served_says_why():
    gone = entry_row(row(live=False, status="sent back for more discussion", can_forget=False), NOW)
    assert gone["status"] == "not served: sent back for more discussion"
    assert gone["live"] is False


def test_the_totals_line():
    assert totals([]) == ""
    assert totals([row(), row(live=False)]) == "2 results kept, 1 served"
    line = totals([row(hits=1, saved_usd=0.08, saved_tokens=1400, saved_seconds=240), row(hits=2, saved_usd=0.16)])
    assert line == "2 results kept, 2 served · 3 reuses saved $0.24, 1.4k tokens and 4 min"


def test_the_source_label_of_a_reused_result():
    assert source_label(row(), NOW) == "#12 · Choose a database for Apollo · decided 3 Nov by Sarah"


def test_the_form_shows_a_stored_context_and_sends_back_only_what_is_filled_in():
    stored = {"preferred_language": "python", "frameworks": ["fastapi", "sqlalchemy"], "team_size": "small"}
    fields = form_fields(stored)
    assert fields == {
        "preferred_language": "python",
        "frameworks": "fastapi, sqlalchemy",
        "security_level": UNSET,
        "team_size": "small",
        "existing_stack": "",
    }
    assert raw_context(fields) == {
        "preferred_language": "python",
        "frameworks": "fastapi, sqlalchemy",
        "team_size": "small",
    }
    assert raw_context(form_fields({})) == {}
    assert raw_context({**fields, "existing_stack": "  ", "bogus": "x"}) == raw_context(fields)


def test_what_the_form_sends_parses_to_the_context_that_was_stored():
    from backend.memory.context import parse_context

    stored = parse_context({"frameworks": "SQLAlchemy, fastapi", "security_level": "high", "stack": "postgres"})
    assert parse_context(raw_context(form_fields(stored.as_dict()))) == stored


def test_an_unavailable_memory_says_the_discussion_runs_fresh():
    assert unavailable_line("Memory is unavailable: OSError: no model.") == (
        "Memory is unavailable: OSError: no model; this discussion will run fresh."
    )
    assert unavailable_line("") == ""
