"""Crash drills for the engine worker: a counting OpenAI-compatible server, worker processes, and an audit.

Shared by tests/integration/test_crash_resume.py and bench/crash_resume.py. The server answers every chat
completion with a deterministic reply for its (topic, agent, round), streamed slowly in the real wire format,
and counts the calls: the topic and the agent come from the system prompt the engine writes ("You are
{agent}, one participant ... The question: {topic}"), the round from the speaker cue at the end of the last
user message ("round 1 of 2" / "Round 2 of 2"). The audit reads a discussion back from the database: message
rows and TurnCompleted events per scheduled turn, the seqs, and the discussion_finished events.
"""

from __future__ import annotations

import json
import os
import re
import select as _select
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from sqlmodel import select

from backend.db import session_scope
from backend.models import Discussion, DiscussionStatus, EventRecord, Message, Participant, ParticipantKind
from backend.protocols.round_robin import RoundRobin
from backend.services.discussions import AgentSpec, create_discussion
from tests.providers import wire_servers
from tests.providers.wire_servers import OpenAIScript, RecordedRequest, WireServer

ROOT = Path(__file__).resolve().parents[2]

_AGENT = re.compile(r"You are (.+?), one participant in a live discussion")
_TOPIC = re.compile(r"The question: (.*)")
_ROUND = re.compile(r"\b[Rr]ound (\d+) of \d+")


class CallKey(NamedTuple):
    """Which turn a model call was for."""

    topic: str
    agent: str
    round: int


def call_key(body: Any) -> CallKey | None:
    """The turn a chat-completions request body asks for, or None when it is not one of the engine's."""
    try:
        messages = body["messages"]
        system = next(m["content"] for m in messages if m["role"] == "system")
        agent, topic = _AGENT.search(system), _TOPIC.search(system)
        rounds = _ROUND.findall(messages[-1]["content"])  # the cue comes last, after any merged transcript
    except (KeyError, TypeError, IndexError, StopIteration):
        return None
    if not (agent and topic and rounds):
        return None
    return CallKey(topic.group(1).strip(), agent.group(1), int(rounds[-1]))


def reply_pieces(key: CallKey, chunks: int) -> list[str]:
    """The reply for a turn, as `chunks` streamed pieces; joined, they are `expected_reply(key, chunks)`."""
    return [f"{key.agent} speaks, turn {key.round}:", *(f" w{i}" for i in range(1, chunks - 1)), "."][:chunks]


def expected_reply(key: CallKey, chunks: int) -> str:
    return "".join(reply_pieces(key, chunks))


@dataclass
class Call:
    """One model call the server received."""

    key: CallKey
    started: float  # time.monotonic()
    ended: float | None = None  # when the last byte was written, or the client went away


class _Handler(wire_servers._Handler):
    def handle(self) -> None:
        try:
            super().handle()
        finally:
            owner: CrashDrillServer = self.server.owner  # type: ignore[assignment]
            with owner._lock:
                owner._connections -= 1

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        owner: CrashDrillServer = self.server.owner  # type: ignore[assignment]
        body = json.loads(raw) if raw else None
        with owner._lock:
            owner.requests.append(
                RecordedRequest(
                    "POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.monotonic()
                )
            )
        key = call_key(body)
        if not owner.route.fullmatch(self.path) or key is None:
            self._send(OpenAIScript.error(400, f"crash drill server: not an engine call: {self.path}"))
            return
        call = Call(key, time.monotonic())
        with owner._lock:
            owner.calls.append(call)
        try:
            reply = OpenAIScript.ok(reply_pieces(key, owner.chunks), prompt_tokens=40, completion_tokens=owner.chunks)
            self._send(reply)
        finally:
            call.ended = time.monotonic()


class CrashDrillServer(WireServer):
    """An OpenAI-compatible server that streams each turn's reply in `chunks` pieces `gap` s apart and counts calls."""

    def __init__(self, *, chunks: int = 20, gap: float = 0.05) -> None:
        super().__init__(OpenAIScript.route, [], gap=gap)
        self._server.RequestHandlerClass = _Handler
        self.chunks = chunks
        self.calls: list[Call] = []
        self._connections = 0  # accepted and not yet handled to the end
        accept = self._server.process_request

        def counted(request: Any, client_address: Any) -> None:
            with self._lock:
                self._connections += 1
            accept(request, client_address)

        self._server.process_request = counted  # type: ignore[method-assign]

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def snapshot(self) -> list[Call]:
        with self._lock:
            return list(self.calls)

    def counts(self) -> Counter[CallKey]:
        return Counter(c.key for c in self.snapshot())

    def streaming(self) -> list[Call]:
        """Calls whose reply is still being written."""
        return [c for c in self.snapshot() if c.ended is None]

    def idle(self) -> bool:
        """No connection waiting to be accepted and none being handled: after its client died, every request
        it had sent is counted by now."""
        with self._lock:
            if self._connections:
                return False
        return not _select.select([self._server.socket], [], [], 0)[0]


# --- discussions ------------------------------------------------------------------------------------------


def create_drill_discussion(
    base_url: str,
    topic: str,
    personas: tuple[str, ...] = ("architect", "security", "product"),
    rounds: int = 2,
    *,
    parallel_openings: bool = False,
) -> int:
    """A discussion whose agents all talk to the drill server (model "local-model")."""
    discussion = create_discussion(
        topic=topic,
        agents=[AgentSpec(p, "openai_compatible", "local-model", base_url) for p in personas],
        rounds=rounds,
        max_tokens_per_turn=64,
        parallel_openings=parallel_openings,
    )
    assert discussion.id is not None
    return discussion.id


def mark_running(discussion_id: int) -> None:
    """What Run Agents leaves behind when no engine is up yet: a running discussion for a worker to pick up."""
    with session_scope() as s:
        discussion = s.get(Discussion, discussion_id)
        assert discussion is not None
        discussion.status = DiscussionStatus.RUNNING
        s.add(discussion)


def statuses(discussion_ids: list[int]) -> dict[int, str]:
    with session_scope() as s:
        rows = s.exec(select(Discussion.id, Discussion.status).where(Discussion.id.in_(discussion_ids)))  # type: ignore[union-attr]
        return dict(rows.all())  # type: ignore[arg-type]


def streaming_turns(discussion_ids: list[int]) -> list[CallKey]:
    """Turns whose message row says "streaming" (in flight, or left in flight by a dead engine)."""
    return [key for key, status in _turn_rows(discussion_ids) if status == "streaming"]


def complete_turns(discussion_ids: list[int]) -> set[CallKey]:
    return {key for key, status in _turn_rows(discussion_ids) if status == "complete"}


def _turn_rows(discussion_ids: list[int]) -> list[tuple[CallKey, str]]:
    with session_scope() as s:
        topics = dict(s.exec(select(Discussion.id, Discussion.topic).where(Discussion.id.in_(discussion_ids))).all())  # type: ignore[union-attr]
        rows = s.exec(
            select(Message.discussion_id, Message.author_name, Message.round, Message.status).where(
                Message.discussion_id.in_(discussion_ids),  # type: ignore[attr-defined]
                Message.turn_key.is_not(None),  # type: ignore[union-attr]
            )
        ).all()
    return [(CallKey(topics[d], name, r), status) for d, name, r, status in rows]


def count_events(discussion_ids: list[int], type_: str) -> int:
    with session_scope() as s:
        return len(
            s.exec(
                select(EventRecord.id).where(
                    EventRecord.discussion_id.in_(discussion_ids),  # type: ignore[attr-defined]
                    EventRecord.type == type_,
                )
            ).all()
        )


# --- the audit --------------------------------------------------------------------------------------------


@dataclass
class Audit:
    """A discussion read back from the database after the drill."""

    discussion_id: int
    topic: str
    status: str
    turns: dict[str, CallKey]  # scheduled turn key -> the call it makes, in speaking order
    rows: Counter[str] = field(default_factory=Counter)  # message rows per turn key
    complete: dict[str, str] = field(default_factory=dict)  # turn key -> content of its complete row
    completed_events: Counter[str] = field(default_factory=Counter)  # TurnCompleted events per turn key
    finished_events: int = 0
    seqs: list[int] = field(default_factory=list)
    last_seq: int = 0

    @property
    def lost(self) -> list[str]:
        """Scheduled turns without a complete message."""
        return [k for k in self.turns if k not in self.complete]

    @property
    def duplicated(self) -> list[str]:
        """Turns with more than one message row or more than one TurnCompleted event."""
        return [k for k in self.turns if self.rows[k] > 1 or self.completed_events[k] > 1]

    @property
    def seqs_gapless(self) -> bool:
        return self.seqs == list(range(1, len(self.seqs) + 1)) and self.last_seq == len(self.seqs)

    def wrong_content(self, chunks: int) -> list[str]:
        """Complete turns whose text is not exactly the reply the server streams for them."""
        return [k for k, text in self.complete.items() if text != expected_reply(self.turns[k], chunks)]


def audit(discussion_id: int) -> Audit:
    with session_scope() as s:
        discussion = s.get(Discussion, discussion_id)
        assert discussion is not None
        agents = sorted(
            s.exec(
                select(Participant).where(
                    Participant.discussion_id == discussion_id, Participant.kind == ParticipantKind.AGENT
                )
            ),
            key=lambda p: p.position,
        )
        turns = {
            t.key: CallKey(discussion.topic, t.speaker.name, t.round)  # type: ignore[attr-defined]
            for t in RoundRobin().schedule(agents, discussion.rounds)
        }
        result = Audit(discussion_id, discussion.topic, discussion.status, turns, last_seq=discussion.last_seq)
        messages = list(
            s.exec(
                select(Message).where(Message.discussion_id == discussion_id, Message.turn_key.is_not(None))  # type: ignore[union-attr]
            )
        )
        key_of = {}
        for m in messages:
            assert m.turn_key is not None
            key_of[m.id] = m.turn_key
            result.rows[m.turn_key] += 1
            if m.status == "complete":
                result.complete[m.turn_key] = m.content
        for record in s.exec(
            select(EventRecord).where(EventRecord.discussion_id == discussion_id).order_by(EventRecord.seq)  # type: ignore[arg-type]
        ):
            result.seqs.append(record.seq)
            if record.type == "turn_completed":
                result.completed_events[key_of.get(record.payload["message_id"], "?")] += 1
            elif record.type == "discussion_finished":
                result.finished_events += 1
    return result


# --- worker processes -------------------------------------------------------------------------------------


def worker_env(database_url: str, *, lease_seconds: float, interval: float) -> dict[str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "MAESTRO_LEASE_SECONDS": str(lease_seconds),
        "MAESTRO_JANITOR_INTERVAL_S": str(interval),
        "REFLEX_TELEMETRY_ENABLED": "false",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("REDIS_URL", None)  # the in-process bus: nobody watches this worker's tokens
    return env


class WorkerProcess:
    """`python -m backend.worker` in a subprocess, its log in a file."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        with open(log_path, "ab") as log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "backend.worker"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        self.started = time.monotonic()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no cleanup of any kind, as in a power cut or the OOM killer."""
        if self.alive():
            os.kill(self.proc.pid, signal.SIGKILL)
        self.wait(10)

    def terminate(self, timeout: float = 15) -> int:
        """SIGTERM, then wait for the graceful exit; returns the exit code."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


def wait_for(predicate, timeout: float, what: str, every: float = 0.02):
    """Poll until `predicate()` is truthy; returns its value or raises TimeoutError naming `what`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)
