"""Honest fan-out: ask several agents the same step at once and report every outcome (DESIGN decision 7); and
the facilitating steps' "first agent that answers".

Calls run concurrently, so the step takes about as long as the slowest call, not the sum. Results keep the
input order whatever the completion order. Each result says whether it succeeded; one failure never aborts
the others; synthesis should use `successes`, and the room should list `failures` with a warning that a
partial council may lack its strongest members. If every call fails, the step is an error, not an empty
success.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Generic, Literal, TypeVar

from backend.events.schema import StepReport
from backend.models import Participant
from backend.providers.base import ErrorKind, ModelProvider, ProviderError
from backend.providers.structured import StructuredResult, spent_on

if TYPE_CHECKING:
    from backend.orchestrator.run_context import RunContext

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class FanoutResult:
    """One agent's outcome in a fan-out step."""

    participant: str
    model: str
    stance: str | None
    status: Literal["ok", "failed"]
    content: str
    error_message: str | None
    latency_ms: int
    error_kind: str | None = None


@dataclass(frozen=True, slots=True)
class FanoutTask(Generic[T]):
    """What to run for one agent: a coroutine factory returning its text."""

    participant: str
    model: str
    call: Callable[[], Awaitable[str]]
    stance: str | None = None


class AllFailed(ProviderError):
    """Every call of a fan-out step failed."""

    def __init__(self, results: Sequence[FanoutResult]) -> None:
        reasons = "; ".join(f"{r.participant}: {r.error_message}" for r in results)
        super().__init__(ErrorKind.SERVER, f"Every agent failed this step ({reasons}).")
        self.results = list(results)


@dataclass(frozen=True, slots=True)
class FanoutOutcome:
    """All results in input order, with the successes and failures split out."""

    results: list[FanoutResult]

    @property
    def successes(self) -> list[FanoutResult]:
        return [r for r in self.results if r.status == "ok"]

    @property
    def failures(self) -> list[FanoutResult]:
        return [r for r in self.results if r.status == "failed"]

    @property
    def warning(self) -> str | None:
        """What the room should say when the council is partial."""
        if not self.failures:
            return None
        names = ", ".join(r.participant for r in self.failures)
        return (
            f"{len(self.failures)} of {len(self.results)} agents failed ({names}); the synthesis uses the others, "
            "and a partial council may be missing its strongest members."
        )


async def _one(task: FanoutTask) -> FanoutResult:
    t0 = time.monotonic()
    try:
        content = await task.call()
    except ProviderError as err:
        status, content, message, kind = "failed", "", err.message, err.kind.value
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # a bug in one call must not sink the step
        status, content, message, kind = "failed", "", f"{type(exc).__name__}: {exc}", ErrorKind.SERVER.value
    else:
        status, message, kind = "ok", None, None
    return FanoutResult(
        participant=task.participant,
        model=task.model,
        stance=task.stance,
        status=status,  # type: ignore[arg-type]
        content=content,
        error_message=message,
        latency_ms=int((time.monotonic() - t0) * 1000),
        error_kind=kind,
    )


async def fan_out(tasks: Sequence[FanoutTask]) -> FanoutOutcome:
    """Run every task concurrently; results in input order; raise AllFailed when nothing succeeded."""
    results = list(await asyncio.gather(*(_one(t) for t in tasks)))
    outcome = FanoutOutcome(results)
    if tasks and not outcome.successes:
        raise AllFailed(results)
    return outcome


async def fan_out_gated(tasks: Sequence[FanoutTask], *, one_at_a_time: bool) -> FanoutOutcome:
    """Honest fan-out under a budget: with limited spend the calls go one at a time, each after the check of its
    worst case (as in the rounds), so two calls cannot both pass the last check before a limit; without a limit
    they all go at once. Every outcome is reported, even when nothing succeeded."""
    gate = asyncio.Semaphore(1 if one_at_a_time else max(1, len(tasks)))

    def gated(call: Callable[[], Awaitable[str]]) -> Callable[[], Awaitable[str]]:
        async def run() -> str:
            async with gate:
                return await call()

        return run

    try:
        return await fan_out([replace(t, call=gated(t.call)) for t in tasks])
    except AllFailed as err:
        return FanoutOutcome(err.results)


def step_report(
    discussion_id: int,
    step: str,
    outcome: FanoutOutcome,
    *,
    none_answered: str | None,
    unlisted: str | None = None,
) -> StepReport:
    """What the room is told after a fan-out step: who answered, who failed and why (except calls that were not
    made, `unlisted`), and `none_answered` when nobody did (else the partial-council warning)."""
    return StepReport(
        discussion_id=discussion_id,
        step=step,
        succeeded=[r.participant for r in outcome.successes],
        failed=[
            {"participant": r.participant, "error": r.error_message or ""}
            for r in outcome.failures
            if unlisted is None or r.error_message != unlisted
        ],
        warning=none_answered if not outcome.successes and none_answered else outcome.warning,
    )


@dataclass(frozen=True, slots=True)
class FirstAnswer(Generic[T]):
    """What `first_that_answers` got: the value and who gave it, or the last error; `paused` when a budget stopped
    the step before anyone answered."""

    value: T | None = None
    agent: Participant | None = None
    error: str = ""
    paused: bool = False


async def first_that_answers(
    ctx: RunContext,
    agents: Sequence[Participant],
    *,
    step: str,
    purpose: str,
    max_tokens: int,
    ask: Callable[[ModelProvider, Participant], Awaitable[StructuredResult[T]]],
) -> FirstAnswer[T]:
    """Ask the agents in order until one's provider answers (a facilitating step: consensus, the decision card).

    Each try is checked against the budgets first (a refusal pauses the discussion and ends the step) and counted
    in the call ledger, the failed ones with what their unusable replies cost."""
    error = ""
    for agent in agents:
        if not await ctx.budget_allows(ctx.step_call(agent, step, max_tokens)):
            return FirstAnswer(error=error, paused=True)
        try:
            provider = await ctx.provider_for(agent)
            result = await ask(provider, agent)
            await ctx.record_call(agent, purpose, result.usage, result.latency_ms)
            return FirstAnswer(value=result.value, agent=agent)
        except Exception as exc:  # malformed twice, or the provider failed: say so, try the next agent
            await ctx.record_call(agent, purpose, *spent_on(exc))
            error = f"{agent.name}: {exc}"
            log.warning("discussion %s: %s failed: %s", ctx.discussion_id, step, error)
    return FirstAnswer(error=error)
