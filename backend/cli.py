"""The `maestro` command: run a streaming debate in the terminal on the same engine as the web room."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.panel import Panel
from rich.text import Text

from backend.events.schema import (
    ConsensusUpdated,
    DecisionProposed,
    DiscussionFinished,
    HumanMessagePosted,
    PollOpened,
    TokenDelta,
    TurnCompleted,
    TurnFailed,
    TurnStarted,
    VoteCast,
)

if TYPE_CHECKING:  # the memory modules load only when a debate looks in memory
    from backend.memory.context import DiscussionContext
    from backend.memory.results import Recall, Remembered

app = typer.Typer(help="Maestro: several AI agents and people think a question through together.", no_args_is_help=True)
console = Console()

DEFAULT_AGENTS = ["architect", "backend_engineer", "security"]


@app.callback()
def _main() -> None:
    """Maestro's command line."""


def parse_agent(
    text: str, default_provider: str | None, default_model: str | None, personas: dict | None = None
) -> tuple[str, str, str, str | None]:
    """Parse `persona[:provider[:model[@base_url]]]` into its parts; without a provider (and no --provider), the
    persona's own provider and model (`personas`: services.personas.defaults_by_key)."""
    from backend.services.personas import agent_spec

    base_url = None
    if "@" in text:
        text, base_url = text.split("@", 1)
    parts = text.split(":", 2)
    provider = parts[1].strip() if len(parts) > 1 and parts[1] else default_provider
    model = parts[2].strip() if len(parts) > 2 and parts[2] else default_model
    spec = agent_spec(parts[0].strip(), provider or None, model or None, base_url, personas or {})
    return spec.persona_key, spec.provider, spec.model, spec.base_url


@dataclass
class _View:
    """What the terminal shows: finished messages, then the turns streaming now."""

    topic: str
    done: list[Panel] = field(default_factory=list)
    live: dict[int, tuple[str, str]] = field(default_factory=dict)  # start_seq -> (author, text)
    started: float = field(default_factory=time.monotonic)

    def render(self) -> Group:
        streaming = [
            Panel(Text(text + "▌"), title=f"[bold cyan]{escape(author)}[/] [dim]streaming…[/]", border_style="cyan")
            for author, text in self.live.values()
        ]
        return Group(*self.done[-4:], *streaming)


def _decision_panel(card: dict) -> Panel:
    """The decision card in the terminal: outcome, support, rationale, dissent and the action plan."""
    body = Text()
    body.append(f"{card.get('support', '')}\n", style="bold")
    body.append(f"{card['rationale']}\n")
    for d in card.get("dissent", []):
        body.append(f"Dissent: {d['who']} preferred {d['preferred']}", style="yellow")
        body.append(f" — {d['why']}\n" if d.get("why") else "\n")
    for i, step in enumerate(card.get("action_plan", []), 1):
        body.append(f"{i}. {step['step']} ({step['owner']})\n")
    if card.get("note"):
        body.append(card["note"], style="dim")
    style = "green" if card["status"] == "decided" else "yellow"
    return Panel(body, title=f"[bold]{escape(card['title'])}[/] [dim]{card['status']}[/]", border_style=style)


def read_context(pairs: list[str], file: Path | None) -> DiscussionContext:
    """The context from `--context-file` (a JSON object, or key=value lines) and then the repeated `--context
    key=value` (which win over the file's); InputError({"context": ...}) naming what is wrong."""
    from backend.errors import InputError
    from backend.memory.context import parse_context, parse_pairs

    merged: dict = {}
    if file is not None:
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise InputError({"context": f"Cannot read the context file {file}: {err}"}) from None
        if text.lstrip().startswith(("{", "[")):
            try:
                raw = json.loads(text)
            except json.JSONDecodeError as err:
                raise InputError({"context": f"The context file {file} is not valid JSON: {err}"}) from None
            if not isinstance(raw, dict):
                raise InputError({"context": f"The context file {file} holds a JSON object or key=value lines."})
            merged.update(parse_context(raw).as_dict())
        else:
            lines = [line.strip() for line in text.splitlines()]
            merged.update(parse_pairs([line for line in lines if line and not line.startswith("#")]).as_dict())
    merged.update(parse_pairs(pairs).as_dict())
    return parse_context(merged)


def _worth_looking(context: DiscussionContext) -> bool:
    """Whether to look in memory: it is switched off (the lookup says so), or it holds a live result in this exact
    context. Without one there can be no hit, and the embedding model (seconds to load) is not loaded for nothing."""
    from sqlmodel import col, select

    from backend.config import get_settings
    from backend.db import session_scope
    from backend.models import MemoryEntry
    from backend.models.base import utcnow

    if not get_settings().memory_enabled:
        return True
    with session_scope() as s:
        live = select(MemoryEntry.id).where(
            MemoryEntry.context_key == context.key(),
            col(MemoryEntry.invalidated_at).is_(None),
            col(MemoryEntry.expires_at) > utcnow(),
        )
        return s.exec(live.limit(1)).first() is not None


def _quiet_model_loading() -> None:
    """No progress bar from loading the embedding model in the middle of the transcript."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        from transformers.utils import logging as transformers_logging
    except ImportError:  # memory will say it is unavailable
        return
    transformers_logging.disable_progress_bar()


def _look_up(topic: str, context: DiscussionContext) -> Recall:
    """services.memory.check as the operator; a failure inside memory is said and the debate runs fresh."""
    from backend.errors import InputError
    from backend.memory.results import Recall
    from backend.services import memory

    _quiet_model_loading()
    try:
        return memory.check(topic, context, None)
    except InputError:
        raise
    except Exception as err:
        logging.getLogger(__name__).debug("memory lookup failed", exc_info=True)
        return Recall(unavailable=f"Memory is unavailable: the lookup failed ({type(err).__name__}: {err}).")


def memory_line(hit: Remembered) -> str:
    """The plan's line: `[MEMORY] Cache hit (94% match, saved $0.08, 4.2s faster)`."""
    return (
        f"[MEMORY] Cache hit ({hit.match_percent}% match, saved ${hit.saves_usd:.2f}, {hit.saves_seconds:.1f}s faster)"
    )


REPLAY_WORDS = 3  # words a chunk when a remembered result streams
REPLAY_SECONDS = 1.5  # at most this long in all, however long the result


def _stored_result(discussion_id: int) -> str:
    from backend.services import memory, transcript

    page = transcript.list_messages_page(discussion_id)
    return next((m.content for m in reversed(page.messages) if m.author_name == memory.MEMORY_AUTHOR), "")


async def _replay(topic: str, hit: Remembered, context: DiscussionContext) -> int | None:
    """Answer from memory: create the discussion from the remembered result and stream it, a few words at a time as
    an agent's text streams; no provider is called. None when the result stopped being served since the check."""
    import re

    from backend.db import run_db
    from backend.errors import NotFound
    from backend.services import memory

    try:
        discussion = await run_db(lambda: memory.reuse(hit.entry_id, question=topic, context=context, actor=None))
    except NotFound:
        return None
    assert discussion.id is not None
    console.print(Text(memory_line(hit), style="bold magenta"))
    console.print(Panel(escape(topic), title="[bold]Question[/]", border_style="magenta"))
    text = await run_db(_stored_result, discussion.id)
    words = re.findall(r"\s*\S+", text)
    pieces = ["".join(words[i : i + REPLAY_WORDS]) for i in range(0, len(words), REPLAY_WORDS)]
    delay = min(0.02, REPLAY_SECONDS / max(1, len(pieces)))
    view = _View(topic=topic)
    view.live[0] = (memory.MEMORY_AUTHOR, "")
    with Live(view.render(), console=console, refresh_per_second=12, transient=True) as live:
        for piece in pieces:
            view.live[0] = (memory.MEMORY_AUTHOR, view.live[0][1] + piece)
            live.update(view.render())
            await asyncio.sleep(delay)
    when = hit.decided_at.strftime("%-d %b %Y")
    by = f" by {hit.decided_by}" if hit.decided_by else ""
    console.print(
        Panel(
            Text(text.strip()),
            title=f"[bold green]{escape(memory.MEMORY_AUTHOR)}[/]",
            subtitle=escape(f"settled {when}{by} · memory entry {hit.entry_id} · no agent ran"),
            border_style="green",
        )
    )
    console.print(
        f"[green][OK][/] Completed from memory (discussion #{discussion.id}, source #{hit.discussion_id}, "
        f"no agent ran; --fresh runs the agents)"
    )
    return 0


async def _debate(
    topic: str,
    agents: list[tuple[str, str, str, str | None]],
    rounds: int,
    max_tokens: int,
    protocol: str = "round_robin",
    vote: str | None = None,
    options: list[str] | None = None,
    context: DiscussionContext | None = None,
    fresh: bool = False,
) -> int:
    from backend.bootstrap import prepare_database
    from backend.db import run_db
    from backend.errors import InputError
    from backend.events.bus import get_bus
    from backend.memory.context import DiscussionContext
    from backend.orchestrator.runner import get_runner
    from backend.services.discussions import AgentSpec, create_discussion, list_participants

    await run_db(prepare_database)
    specs = [AgentSpec(persona_key=p, provider=pv, model=m, base_url=u) for p, pv, m, u in agents]
    context = context if context is not None else DiscussionContext()
    try:
        if not fresh and topic.strip() and await run_db(_worth_looking, context):
            found = await run_db(_look_up, topic, context)
            if found.unavailable:
                console.print(f"[dim]{escape(found.unavailable)} Running fresh.[/]")
            elif found.hit is not None:
                replayed = await _replay(topic, found.hit, context)
                if replayed is not None:
                    return replayed
        discussion = await run_db(
            lambda: create_discussion(
                topic=topic,
                agents=specs,
                rounds=rounds,
                created_by="You",
                max_tokens_per_turn=max_tokens,
                protocol=protocol,
                vote_rule=vote,
                vote_options=options or [],
                context=context,
            )
        )
    except InputError as err:
        for message in err.errors.values():
            console.print(f"[red]✗[/] {escape(message)}")
        return 2
    assert discussion.id is not None
    participants = {p.id: p for p in await run_db(list_participants, discussion.id)}
    agent_rows = [p for p in participants.values() if p.kind == "agent"]
    console.print(Panel(escape(topic), title="[bold]Question[/]", border_style="magenta"))
    for p in agent_rows:
        console.print(f"  [cyan]●[/] {escape(p.name)} [dim]({p.provider} · {escape(p.model or '')})[/]")

    bus = get_bus()
    sub = await bus.subscribe(discussion.id)
    runner = get_runner()
    await runner.start(discussion.id)
    view = _View(topic=topic)
    finished: DiscussionFinished | None = None
    failures = 0
    with Live(view.render(), console=console, refresh_per_second=12, transient=False) as live:
        async for event in sub:
            if isinstance(event, TurnStarted):
                view.live[event.seq] = (event.author_name, "")
            elif isinstance(event, TokenDelta):
                author, text = view.live.get(event.start_seq, ("", ""))
                view.live[event.start_seq] = (author, text + event.text)
            elif isinstance(event, TurnCompleted):
                author, _ = view.live.pop(event.start_seq, (participants[event.participant_id].name, ""))
                meta = f"{event.output_tokens} tok · {event.latency_ms / 1000:.1f}s · ${event.cost_usd:.4f}"
                live.console.print(
                    Panel(
                        Text(event.content),
                        title=f"[bold green]{escape(author)}[/]",
                        subtitle=meta,
                        border_style="green",
                    )
                )
            elif isinstance(event, TurnFailed):
                failures += 1
                author, _ = view.live.pop(event.start_seq, (participants[event.participant_id].name, ""))
                body = Text(event.partial_content + "\n" if event.partial_content else "")
                body.append(f"{event.error_kind}: {event.error_message}", style="red")
                live.console.print(Panel(body, title=f"[bold red]{escape(author)} failed[/]", border_style="red"))
            elif isinstance(event, ConsensusUpdated):
                if event.report is not None:
                    ratio = round(event.report.get("agreement_ratio", 0) * 100)
                    live.console.print(f"[magenta]◆ Consensus after round {event.round % 1000}: {ratio} % agree[/]")
                else:
                    live.console.print(f"[yellow]◆ {escape(event.error or 'Consensus detection failed')}[/]")
            elif isinstance(event, PollOpened):
                live.console.print(f"[magenta]◆ Vote ({event.rule}): {', '.join(o['text'] for o in event.options)}[/]")
            elif isinstance(event, VoteCast):
                live.console.print(f"  [dim]{escape(event.voter_name)} voted[/]")
            elif isinstance(event, DecisionProposed):
                live.console.print(_decision_panel(event.decision))
            elif isinstance(event, HumanMessagePosted):
                pass
            elif isinstance(event, DiscussionFinished):
                finished = event
                break
            live.update(view.render())
    await sub.close()
    await runner.wait(discussion.id)
    assert finished is not None
    mark = "[green][OK][/]" if finished.status == "completed" else "[red][FAILED][/]"
    extra = f", {failures} failed turn{'s' * (failures != 1)}" if failures else ""
    console.print(
        f"{mark} {finished.status.capitalize()} ({finished.elapsed_s:.1f}s, {len(agent_rows)} agents, "
        f"{rounds} round{'s' * (rounds != 1)}, ${finished.total_cost_usd:.3f}{extra})"
    )
    return 0 if finished.status == "completed" else 1


@app.command()
def debate(
    topic: str = typer.Argument(..., help="The question, e.g. 'Choose a database for Apollo'."),
    agent: list[str] = typer.Option(
        None,
        "--agent",
        "-a",
        help="persona[:provider[:model[@base_url]]], repeatable. Default: architect, backend_engineer, security.",
    ),
    provider: str | None = typer.Option(
        None, help="Provider for agents that don't name one (default: the persona's own, else offline)."
    ),
    model: str | None = typer.Option(None, help="Model for agents that don't name one."),
    rounds: int = typer.Option(2, min=1, max=10, help="Rounds."),
    max_tokens: int = typer.Option(200, help="Max tokens per agent turn."),
    protocol: str = typer.Option("round_robin", help="round_robin, debate (for/against/neutral) or consensus."),
    vote: str | None = typer.Option(
        None, help="End with a vote of the agents: plurality, majority, approval, borda or schulze."
    ),
    option: list[str] = typer.Option(
        None, "--option", "-o", help="An option to vote on, repeatable (default: the proposals the agents made)."
    ),
    context: list[str] = typer.Option(
        None,
        "--context",
        "-c",
        help="The context the question is asked in, key=value, repeatable: language, frameworks, security "
        "(standard/high/enterprise), team (small/medium/large), stack; lists comma-separated, e.g. stack=postgres,redis.",
    ),
    context_file: Path | None = typer.Option(
        None, "--context-file", help="A file with the context: a JSON object, or key=value lines (--context wins)."
    ),
    fresh: bool = typer.Option(
        False, "--fresh", help="Skip memory: run the agents even if this question was settled in this context."
    ),
) -> None:
    """Run a debate with streaming agents and print the transcript live (and the decision, with --vote).

    Memory is checked first: the same question settled before in the same context is answered from that result,
    streamed here, and no agent runs (--fresh runs them anyway)."""
    from backend.errors import InputError

    logging.basicConfig(level=logging.ERROR)  # failures are shown in the transcript
    try:
        asked_in = read_context(context or [], context_file)
    except InputError as err:
        for message in err.errors.values():
            console.print(f"[red]✗[/] {escape(message)}")
        raise typer.Exit(2) from None
    personas = {}
    if provider is None:
        from backend.bootstrap import prepare_database
        from backend.services.personas import defaults_by_key

        prepare_database()
        personas = defaults_by_key()
    agents = [parse_agent(a, provider, model, personas) for a in (agent or DEFAULT_AGENTS)]
    raise typer.Exit(
        asyncio.run(_debate(topic, agents, rounds, max_tokens, protocol, vote, option or [], asked_in, fresh))
    )


memory_app = typer.Typer(help="Deliberation memory: results reused when a question comes back in the same context.")
app.add_typer(memory_app, name="memory")


@memory_app.command("list")
def memory_list(
    limit: int = typer.Option(50, min=1, max=1000, help="How many entries, newest first."),
) -> None:
    """List remembered results (all of them: the command acts as the operator) with their hits and savings."""
    from backend.bootstrap import prepare_database
    from backend.services import memory

    prepare_database()
    rows = memory.entries(None, limit=limit)
    if not rows:
        console.print("[dim]Memory is empty: a result is remembered once a discussion settles it.[/]")
        return
    for r in rows:
        status = "[green]served[/]" if r.live else f"[dim]{escape(r.status)}[/]"
        by = f" by {r.decided_by}" if r.decided_by else ""
        last = f", last {r.last_hit_at:%-d %b %Y %H:%M}" if r.last_hit_at else ""
        console.print(f"[bold]#{r.id}[/] {status}  {escape(r.question)}")
        console.print(
            f"    [dim]{escape(r.context)} · discussion #{r.discussion_id}, settled {r.decided_at:%-d %b %Y}{escape(by)}[/]"
        )
        console.print(f"    {r.kind}: {escape(r.outcome)}")
        console.print(
            f"    {r.hits} hit{'s' * (r.hits != 1)}{last} · saved ${r.saved_usd:.2f}, {r.saved_tokens:,} tokens, "
            f"{r.saved_seconds:.1f}s"
        )


@memory_app.command("forget")
def memory_forget(
    entry_id: int = typer.Argument(..., help="The entry's number, as `maestro memory list` shows it."),
) -> None:
    """Stop serving a remembered result (as the operator; in the app, its source's owner does this)."""
    from backend.bootstrap import prepare_database
    from backend.errors import NotFound
    from backend.services import memory

    prepare_database()
    try:
        memory.forget(entry_id, None, operator=True)
    except NotFound as err:
        console.print(f"[red]{escape(str(err))}[/]")
        raise typer.Exit(1) from None
    console.print(f"Forgotten: #{entry_id} is no longer served.")


@app.command()
def personas() -> None:
    """List the persona library."""
    from backend.bootstrap import prepare_database
    from backend.services.personas import agent_defaults, list_personas

    prepare_database()
    for p in list_personas():
        runs = agent_defaults(p)
        where = f"{runs.provider}:{runs.model}" + (f"@{runs.base_url}" if runs.base_url else "")
        note = f" [yellow](fallback: {escape(runs.fallback)})[/]" if runs.fallback else ""
        console.print(f"[bold]{p.key}[/]  {escape(p.name)} — [dim]{escape(p.description)}[/]  runs on {where}{note}")


@app.command()
def worker(
    interval: float | None = typer.Option(
        None, min=0.01, help="Seconds between janitor passes (default: MAESTRO_JANITOR_INTERVAL_S or half the lease)."
    ),
    log_level: str | None = typer.Option(
        None, help="DEBUG, INFO, WARNING or ERROR (default: MAESTRO_LOG_LEVEL or INFO)."
    ),
    metrics_port: int | None = typer.Option(None, help="Also serve Prometheus /metrics on 127.0.0.1:PORT."),
) -> None:
    """Run discussion engines headless: resume unfinished discussions and pick up new ones until SIGTERM."""
    from backend.worker import main

    main(interval, log_level, metrics_port)


if __name__ == "__main__":
    app()
