"""`maestro debate` with deliberation memory, in process (Typer's CliRunner) on a real SQLite file, the real engine
and the real embedding model, with agents on a scripted provider that counts its calls.

The first debate runs the agents and memory keeps its final synthesis; the same question in the same context then
prints the plan's line, streams the stored result and calls no provider; --fresh, another context and memory being
unavailable all run the agents.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from sqlmodel import col, select
from typer.testing import CliRunner

from backend import cli
from backend.db import session_scope
from backend.events.bus import set_bus
from backend.memory import embedder, recall
from backend.models import Discussion
from backend.orchestrator.runner import set_runner
from backend.providers import registry
from backend.providers.scripted import ScriptedProvider
from tests.integration.test_memory_api import remembered

REPLIES = ["PostgreSQL fits Apollo.", "Encrypt it at rest and keep PostgreSQL."]
TOPIC = "Choose a database for Apollo"
AGENTS = ("-a", "architect:scripted:m", "-a", "security:scripted:m", "--rounds", "1")
CONTEXT = ("--context", "language=Python", "--context", "security=high", "-c", "stack=postgres,redis")
HIT_LINE = re.compile(r"^\[MEMORY\] Cache hit \(\d{1,3}% match, saved \$\d+\.\d\d, \d+\.\ds faster\)$", re.M)


@pytest.fixture
def provider(sqlite_db) -> Iterator[ScriptedProvider]:
    scripted = ScriptedProvider(REPLIES)
    registry.register_provider("scripted", scripted)
    recall.reset_for_tests()
    yield scripted
    recall.reset_for_tests()
    registry.unregister_provider("scripted")


def maestro(*args: str):
    """One `maestro` command in this process, with a fresh bus and runner (each command has its own event loop)."""
    set_bus(None)
    set_runner(None)
    try:
        return CliRunner().invoke(cli.app, list(args), env={"COLUMNS": "120"})
    finally:
        set_runner(None)
        set_bus(None)


def _ran(result) -> str:
    assert result.exit_code == 0, result.output + repr(result.exception)
    if "[OK] Completed (" in result.output:  # the agents ran to the end: memory keeps the result
        with session_scope() as s:
            newest = s.exec(select(Discussion.id).order_by(col(Discussion.id).desc())).first()
        remembered(newest)
    return result.output


def test_the_plans_line():
    hit = SimpleNamespace(match_percent=94, saves_usd=0.0812, saves_seconds=4.21)
    assert cli.memory_line(hit) == "[MEMORY] Cache hit (94% match, saved $0.08, 4.2s faster)"


def test_the_same_question_in_the_same_context_streams_the_stored_result_and_calls_no_provider(provider, tmp_path):
    first = _ran(maestro("debate", TOPIC, *AGENTS, *CONTEXT))
    assert "PostgreSQL fits Apollo." in first and "[OK] Completed" in first
    assert "[MEMORY]" not in first
    assert provider.calls == 2

    # The same context from a file (JSON, other spellings): the same context, so a hit.
    as_json = tmp_path / "apollo.json"
    as_json.write_text('{"preferred_language": "python", "security_level": "High", "existing_stack": ["redis", "pg"]}')
    again = _ran(maestro("debate", TOPIC, *AGENTS, "--context-file", str(as_json)))
    [line] = HIT_LINE.findall(again)
    assert line.startswith("[MEMORY] Cache hit (99% match") or line.startswith("[MEMORY] Cache hit (100% match")
    assert "Encrypt it at rest and keep PostgreSQL." in again  # the stored result, streamed to the terminal
    assert "Completed from memory" in again and "no agent ran" in again
    assert provider.calls == 2  # zero provider calls on a hit

    # key=value lines in a file work the same; the printed savings are the source's own figures.
    as_lines = tmp_path / "apollo.ctx"
    as_lines.write_text("# Apollo\nlanguage = python\n\nsecurity=high\nstack=postgresql,redis\n")
    third = _ran(maestro("debate", TOPIC, *AGENTS, "--context-file", str(as_lines)))
    assert HIT_LINE.search(third) and provider.calls == 2

    listing = _ran(maestro("memory", "list"))
    assert f"#1 served  {TOPIC}" in listing and "python · high security · stack: postgresql, redis" in listing
    assert "2 hits, last " in listing and "synthesis: " in listing

    # The operator forgets it: the next ask runs the agents again.
    assert "no longer served" in _ran(maestro("memory", "forget", "1"))
    assert maestro("memory", "forget", "99").exit_code == 1
    assert "[MEMORY]" not in _ran(maestro("debate", TOPIC, *AGENTS, *CONTEXT)) and provider.calls == 4


def test_fresh_another_context_and_a_near_miss_run_the_agents(provider):
    _ran(maestro("debate", TOPIC, *AGENTS, *CONTEXT))
    assert provider.calls == 2

    fresh = _ran(maestro("debate", TOPIC, *AGENTS, *CONTEXT, "--fresh"))
    assert "[MEMORY]" not in fresh and "[OK] Completed" in fresh
    assert provider.calls == 4

    other = _ran(maestro("debate", TOPIC, *AGENTS, "--context", "language=python", "--context", "security=standard"))
    assert "[MEMORY]" not in other and provider.calls == 6

    near = _ran(maestro("debate", "Choose a database for Hermes", *AGENTS, *CONTEXT))
    assert "[MEMORY]" not in near and provider.calls == 8


def test_when_memory_is_unavailable_one_dim_line_says_so_and_the_debate_runs(provider, monkeypatch):
    _ran(maestro("debate", TOPIC, *AGENTS, *CONTEXT))
    monkeypatch.setattr(embedder, "_model", None)  # as if the model had failed to load in this process
    monkeypatch.setattr(embedder, "_failure", "OSError: no weights here")
    out = _ran(maestro("debate", TOPIC, *AGENTS, *CONTEXT))
    [said] = [line for line in out.splitlines() if "unavailable" in line]
    assert "no weights here" in said and "Running fresh" in said
    assert "[MEMORY] Cache hit" not in out and "[OK] Completed" in out
    assert provider.calls == 4


def test_memory_is_not_loaded_when_it_holds_nothing_for_the_context(provider, monkeypatch):
    """With no live result in this context there can be no hit: the embedding model is not loaded for nothing."""

    def no(*args, **kwargs):
        raise AssertionError("memory was looked in")

    monkeypatch.setattr(cli, "_look_up", no)
    assert "[OK] Completed" in _ran(maestro("debate", TOPIC, *AGENTS, *CONTEXT))


def test_a_bad_context_says_why_and_runs_nothing(provider, tmp_path):
    for args, why in [
        (("--context", "team=huge"), "team_size is one of small, medium, large"),
        (("--context", "budget=10"), "unknown context key 'budget'"),
        (("--context", "security"), "'security' is not key=value"),
        (("--context-file", str(tmp_path / "missing.json")), "Cannot read the context file"),
    ]:
        result = maestro("debate", TOPIC, *AGENTS, *args)
        assert result.exit_code == 2, result.output
        assert why in " ".join(result.output.split()), result.output
    listed = tmp_path / "list.json"
    listed.write_text('["python"]')
    result = maestro("debate", TOPIC, *AGENTS, "--context-file", str(listed))
    assert result.exit_code == 2 and "JSON object or key=value lines" in " ".join(result.output.split())
    assert provider.calls == 0


def test_memory_list_when_empty(provider):
    assert "Memory is empty" in _ran(maestro("memory", "list"))


def test_the_hit_line_shows_what_the_source_cost(provider, monkeypatch):
    """The numbers on the line are the hit's: its match, and what reaching the stored result cost."""
    _ran(maestro("debate", TOPIC, *AGENTS, *CONTEXT))
    from backend.db import session_scope
    from backend.models import MemoryEntry

    with session_scope() as s:
        entry = s.get(MemoryEntry, 1)
        entry.cost_usd, entry.model_seconds = 0.0812, 4.21
        entry.decided_at = datetime(2025, 11, 3, tzinfo=UTC)
        s.add(entry)
    out = _ran(maestro("debate", TOPIC, *AGENTS, *CONTEXT))
    assert re.search(r"^\[MEMORY\] Cache hit \(\d+% match, saved \$0\.08, 4\.2s faster\)$", out, re.M), out
    assert "settled 3 Nov 2025" in out
