"""The `maestro` command runs a real streaming debate in the terminal (agents on a local OpenAI-compatible
server speaking the real wire format) and ends with the summary line."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from tests.providers.wire_servers import OpenAIScript, WireServer


def _maestro(*args: str, db: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": db, "COLUMNS": "100", "REFLEX_TELEMETRY_ENABLED": "false"}
    return subprocess.run(
        [sys.executable, "-m", "backend.cli", *args], capture_output=True, text=True, env=env, timeout=timeout
    )


def test_debate_streams_every_agent_and_ends_with_the_summary_line(tmp_path):
    replies = [
        OpenAIScript.ok(["Postgres ", "fits ", "Apollo."], prompt_tokens=120, completion_tokens=3),
        OpenAIScript.ok(["Encrypt ", "it ", "at rest."], prompt_tokens=140, completion_tokens=4),
        OpenAIScript.ok(["Agreed, ", "Postgres."], prompt_tokens=160, completion_tokens=3),
        OpenAIScript.ok(["Fine ", "by me."], prompt_tokens=180, completion_tokens=3),
    ]
    with WireServer(OpenAIScript.route, replies) as server:
        base = f"{server.url}/v1"
        result = _maestro(
            "debate",
            "Choose a database for Apollo",
            "--rounds",
            "2",
            "-a",
            f"architect:openai_compatible:local-model@{base}",
            "-a",
            f"security:openai_compatible:local-model@{base}",
            db=f"sqlite:///{tmp_path / 'cli.db'}",
        )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    for text in ("Postgres fits Apollo.", "Encrypt it at rest.", "Agreed, Postgres.", "Fine by me."):
        assert text in out
    assert re.search(r"\[OK\] Completed \(\d+\.\ds, 2 agents, 2 rounds, \$0\.000\)", out), out
    # Each agent saw the transcript attributed by author: the fourth call carries the first three replies.
    last = server.requests[-1].body["messages"]
    joined = "\n".join(m["content"] for m in last if isinstance(m.get("content"), str))
    assert "[Architect]: Postgres fits Apollo." in joined
    assert "[Host]" in joined or "[You]" in joined


def test_debate_with_a_bad_agent_says_why_and_creates_nothing(tmp_path):
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    result = _maestro("debate", "Choose a database", "-a", "architect:nonsense:x", db=db)
    assert result.returncode == 2
    assert "Unknown provider 'nonsense'" in result.stdout
    listing = subprocess.run(
        [sys.executable, "-c", "from backend.services.discussions import list_discussions as l; print(len(l()))"],
        capture_output=True,
        text=True,
        env={**os.environ, "DATABASE_URL": db},
    )
    assert listing.stdout.strip() == "0", listing.stderr


def test_debate_reports_a_failed_agent_and_goes_on(tmp_path):
    replies = [OpenAIScript.auth_error(), OpenAIScript.ok(["Still ", "here."], prompt_tokens=10, completion_tokens=2)]
    with WireServer(OpenAIScript.route, replies) as server:
        base = f"{server.url}/v1"
        result = _maestro(
            "debate",
            "Choose a database",
            "--rounds",
            "1",
            "-a",
            f"architect:openai_compatible:m@{base}",
            "-a",
            f"security:openai_compatible:m@{base}",
            db=f"sqlite:///{tmp_path / 'cli.db'}",
        )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Architect failed" in result.stdout and "auth" in result.stdout
    assert "Still here." in result.stdout
    assert "[OK] Completed" in result.stdout and "1 failed turn" in result.stdout


def test_a_debate_with_a_vote_ends_with_the_decision_card(tmp_path):
    from tests.e2e.council import CouncilServer

    with CouncilServer(OpenAIScript, OpenAIScript.models(["local-model"])) as server:
        base = f"{server.url}/v1"
        result = _maestro(
            "debate",
            "Choose a database for Apollo",
            "--rounds",
            "1",
            "--protocol",
            "debate",
            "--vote",
            "plurality",
            *("-o", "PostgreSQL", "-o", "MongoDB", "-o", "DynamoDB"),
            *(
                f"--agent={p}:openai_compatible:local-model@{base}"
                for p in ("architect", "backend_engineer", "security")
            ),
            db=f"sqlite:///{tmp_path / 'cli.db'}",
        )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "Consensus after round 1" in out and "Vote (plurality): PostgreSQL, MongoDB, DynamoDB" in out
    assert "Apollo runs on PostgreSQL" in out and "2 of 3 ranked PostgreSQL first" in out
    assert "Dissent: Security preferred DynamoDB" in out and "Provision a managed PostgreSQL 16 cluster" in out
    assert "write its synthesis" in "\n".join(str(r.body) for r in server.requests)  # the debate's synthesis turn
    assert re.search(r"\[OK\] Completed", out), out


def test_agents_named_by_persona_alone_run_where_their_persona_maps(tmp_path):
    """`-a architect` with no provider runs on the provider and model the persona maps to (edited here to a local
    OpenAI-compatible server), not on the offline default."""
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    replies = [
        OpenAIScript.ok(["Postgres."], prompt_tokens=10, completion_tokens=1),
        OpenAIScript.ok(["Encrypted Postgres."], prompt_tokens=12, completion_tokens=2),
    ]
    with WireServer(OpenAIScript.route, replies) as server:
        base = f"{server.url}/v1"
        setup = (
            "from backend.bootstrap import prepare_database; prepare_database()\n"
            "from backend.services.personas import update_persona as u\n"
            "from backend.humans.accounts import sign_up\n"
            "admin, _ = sign_up('admin', 'correct horse')\n"
            f"for k in ('architect', 'security'): u(k, actor=admin, system_prompt='Be brief.', provider='openai_compatible', "
            f"model='local-model', base_url='{base}')\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", setup], capture_output=True, text=True, env={**os.environ, "DATABASE_URL": db}
        )
        assert done.returncode == 0, done.stderr
        listing = _maestro("personas", db=db)
        assert f"runs on openai_compatible:local-model@{base}" in " ".join(listing.stdout.split()), listing.stdout
        result = _maestro("debate", "Choose a database", "--rounds", "1", "-a", "architect", "-a", "security", db=db)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Postgres." in result.stdout and "Encrypted Postgres." in result.stdout
    assert [r.body["model"] for r in server.requests] == ["local-model", "local-model"]
