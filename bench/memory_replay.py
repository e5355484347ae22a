"""Verified savings: replay a workload of questions once with memory and once without, in one run (issue 14).

The workload is built from the labelled cases (tests/memory/cases.json): every stored question is asked (in a
shuffled order), then every asked question (shuffled): true repeats (identical, paraphrased), near-misses (a
number, a date, a negation, a name, a qualifier) and the same question in another context. Each question that
memory does not answer runs a real deliberation: the engine, three agents on the OpenAI-compatible provider (the
real `openai` SDK) against a local streaming server (bench/openai_stream_server.py) at a set token rate, on a fresh
SQLite database per pass. Provider calls are counted by that server; tokens come from the database; cost is priced
as gpt-4o-mini from the price table (the local server itself is free). A hit on a pair the labelled set calls a near-miss
is a wrong hit; a hit the set does not relate either way is printed for a person to judge.

    .venv/bin/python bench/memory_replay.py --rate 1000
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

CASES = ROOT / "tests" / "memory" / "cases.json"
PRICE_IN, PRICE_OUT = 0.15 / 1e6, 0.60 / 1e6  # gpt-4o-mini, $ per token (backend/providers/pricing.py)


def workload(seed: int = 5, n_cases: int | None = None) -> tuple[list[tuple[str, dict]], dict[tuple, str]]:
    """The questions in order, and which labelled class each (question, context) belongs to.

    Two questions are the same question when the set says so for some case, or through a chain of cases (the set
    has several wordings of "a database for Apollo" across cases): classes are the closure of the "hit" pairs."""
    from backend.memory.context import parse_context
    from backend.memory.match import question_text

    every = json.loads(CASES.read_text())
    rng = random.Random(seed)
    cases = rng.sample(every, min(n_cases, len(every))) if n_cases is not None else every
    parent: dict[tuple[str, str], tuple[str, str]] = {}

    def node(side: dict) -> tuple[str, str]:
        return question_text(side["question"]), parse_context(side["context"]).key()

    def find(x: tuple[str, str]) -> tuple[str, str]:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for c in every:  # the classes come from the whole set: a sample would cut the chains between its cases
        a, b = find(node(c["stored"])), find(node(c["asked"]))
        if c["expect"] == "hit":
            parent[a] = b
    classes = {n: "/".join(find(n)) for n in list(parent)}
    for c in every:  # the labelled near-misses, both ways: serving one of these is a wrong hit
        if c["expect"] == "miss":
            a, b = node(c["stored"]), node(c["asked"])
            classes[(*a, *b)] = classes[(*b, *a)] = "miss"
    stored = list({(c["stored"]["question"], json.dumps(c["stored"]["context"], sort_keys=True)) for c in cases})
    asked = [(c["asked"]["question"], json.dumps(c["asked"]["context"], sort_keys=True)) for c in cases]
    rng.shuffle(stored)
    rng.shuffle(asked)
    return [(q, json.loads(ctx)) for q, ctx in stored + asked], classes


async def _one_pass(questions, same, *, memory: bool, server, rate: float, tokens_per_reply: int) -> dict:
    from sqlmodel import func, select

    from backend.bootstrap import prepare_database
    from backend.config import get_settings
    from backend.db import reset_engine, session_scope
    from backend.events.bus import InProcessBus, set_bus
    from backend.memory import recall
    from backend.memory.context import parse_context
    from backend.memory.match import question_text
    from backend.models import MemoryEntry, Message, ModelCall
    from backend.orchestrator.runner import Runner
    from backend.services import memory as memory_service
    from backend.services.discussions import AgentSpec, create_discussion

    folder = tempfile.mkdtemp(prefix="maestro-replay-")
    url = f"sqlite:///{folder}/replay.db"
    os.environ["DATABASE_URL"] = url
    os.environ["MAESTRO_MEMORY"] = "on" if memory else "off"
    get_settings.cache_clear()
    reset_engine()
    prepare_database(url)
    recall.reset_for_tests()
    set_bus(InProcessBus())
    runner = Runner()
    base_url = server.base_url(rate)
    agents = [
        AgentSpec(p, "openai_compatible", "bench-model", base_url)
        for p in ("architect", "backend_engineer", "security")
    ]
    calls_before = len(server.log.requests)
    hits = wrong = 0
    wrong_examples: list[str] = []
    unlabelled: list[str] = []  # the set says nothing of this pair: printed for a person to judge
    lookup_s: list[float] = []
    started = time.perf_counter()
    for question, raw_context in questions:
        context = parse_context(raw_context)
        if memory:
            found = await asyncio.to_thread(memory_service.check, question, context, None)
            lookup_s.append(found.seconds)
            if found.hit is not None:
                hits += 1
                asked = (question_text(question), context.key())
                source = (question_text(found.hit.question), context.key())
                if same.get((*asked, *source)) == "miss":
                    wrong += 1
                    wrong_examples.append(f"{question!r} -> {found.hit.question!r}")
                elif same.get(asked) is None or same.get(asked) != same.get(source):
                    unlabelled.append(f"{question!r} -> {found.hit.question!r}")
                await asyncio.to_thread(
                    memory_service.reuse, found.hit.entry_id, question=question, context=context, actor=None
                )
                continue
        d = await asyncio.to_thread(
            functools.partial(
                create_discussion,
                topic=question,
                agents=agents,
                rounds=1,
                context=context,
                max_tokens_per_turn=tokens_per_reply,
            )
        )
        assert await runner.start(d.id)
        await asyncio.wait_for(runner.tasks[d.id], 120)
    wall = time.perf_counter() - started
    with session_scope() as s:
        turns = s.exec(select(func.sum(Message.input_tokens), func.sum(Message.output_tokens))).one()
        calls = s.exec(select(func.sum(ModelCall.input_tokens), func.sum(ModelCall.output_tokens))).one()
        remembered = s.exec(select(func.count()).select_from(MemoryEntry)).one()
    tokens_in = int(turns[0] or 0) + int(calls[0] or 0)
    tokens_out = int(turns[1] or 0) + int(calls[1] or 0)
    reset_engine()
    return {
        "questions": len(questions),
        "hits": hits,
        "wrong": wrong,
        "wrong_examples": wrong_examples,
        "unlabelled": unlabelled,
        "provider_calls": len(server.log.requests) - calls_before,
        "tokens": tokens_in + tokens_out,
        "cost": tokens_in * PRICE_IN + tokens_out * PRICE_OUT,
        "wall_s": wall,
        "remembered": remembered,
        "lookup_p95_ms": 1000 * sorted(lookup_s)[int(0.95 * (len(lookup_s) - 1))] if lookup_s else 0.0,
    }


def replay_savings(rate: float = 1000, tokens_per_reply: int = 120, n_cases: int = 130) -> bool:
    """Both passes in one run; prints the comparison; True when memory saved without a wrong hit."""
    from openai_stream_server import StreamServer, make_tokens

    questions, same = workload(n_cases=n_cases)
    with StreamServer(make_tokens(tokens_per_reply)) as server:
        without = asyncio.run(
            _one_pass(questions, same, memory=False, server=server, rate=rate, tokens_per_reply=tokens_per_reply)
        )
        with_memory = asyncio.run(
            _one_pass(questions, same, memory=True, server=server, rate=rate, tokens_per_reply=tokens_per_reply)
        )
    print(f"\n(d) Replay: {len(questions)} questions, 3 agents x 1 round each when run, {rate:g} tokens/s local server")
    print(f"{'':28} {'without memory':>16} {'with memory':>14} {'saved':>10}")
    for label, key, fmt in (
        ("provider calls", "provider_calls", "{:,.0f}"),
        ("tokens", "tokens", "{:,.0f}"),
        ("cost (as gpt-4o-mini, $)", "cost", "{:.4f}"),
        ("wall time (s)", "wall_s", "{:.1f}"),
    ):
        a, b = without[key], with_memory[key]
        saved = f"{(a - b) / a:.0%}" if a else "-"
        print(f"{label:28} {fmt.format(a):>16} {fmt.format(b):>14} {saved:>10}")
    hit_rate = with_memory["hits"] / len(questions)
    print(
        f"hit rate {with_memory['hits']}/{len(questions)} = {hit_rate:.1%}; wrong hits {with_memory['wrong']}; "
        f"lookup p95 {with_memory['lookup_p95_ms']:.1f} ms; entries remembered {with_memory['remembered']}"
    )
    for example in with_memory["wrong_examples"][:10]:
        print(f"  wrong hit (a labelled near-miss): {example}")
    print(f"hits on pairs the labelled set does not relate ({len(with_memory['unlabelled'])}), to judge by eye:")
    for example in with_memory["unlabelled"]:
        print(f"  {example}")
    return with_memory["wrong"] == 0 and with_memory["provider_calls"] < without["provider_calls"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=1000, help="tokens per second of the local model server")
    ap.add_argument("--tokens", type=int, default=120, help="tokens per agent reply")
    ap.add_argument(
        "--cases", type=int, default=130, help="labelled cases to build the workload from (~2 questions each)"
    )
    a = ap.parse_args()
    return 0 if replay_savings(a.rate, a.tokens, a.cases) else 1


if __name__ == "__main__":
    sys.exit(main())
