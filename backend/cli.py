"""The `maestro` command: run a streaming debate in the terminal on the same engine as the web room."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

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


async def _debate(
    topic: str,
    agents: list[tuple[str, str, str, str | None]],
    rounds: int,
    max_tokens: int,
    protocol: str = "round_robin",
    vote: str | None = None,
    options: list[str] | None = None,
) -> int:
    from backend.bootstrap import prepare_database
    from backend.db import run_db
    from backend.errors import InputError
    from backend.events.bus import get_bus
    from backend.orchestrator.runner import get_runner
    from backend.services.discussions import AgentSpec, create_discussion, list_participants

    await run_db(prepare_database)
    specs = [AgentSpec(persona_key=p, provider=pv, model=m, base_url=u) for p, pv, m, u in agents]
    try:
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
) -> None:
    """Run a debate with streaming agents and print the transcript live (and the decision, with --vote)."""
    logging.basicConfig(level=logging.ERROR)  # failures are shown in the transcript
    personas = {}
    if provider is None:
        from backend.bootstrap import prepare_database
        from backend.services.personas import defaults_by_key

        prepare_database()
        personas = defaults_by_key()
    agents = [parse_agent(a, provider, model, personas) for a in (agent or DEFAULT_AGENTS)]
    raise typer.Exit(asyncio.run(_debate(topic, agents, rounds, max_tokens, protocol, vote, option or [])))


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
