"""Honest fan-out: ask several agents the same step at once and report every outcome (DESIGN decision 7).

Calls run concurrently, so the step takes about as long as the slowest call, not the sum. Results keep the
input order whatever the completion order. Each result says whether it succeeded; one failure never aborts
the others; synthesis should use `successes`, and the room should list `failures` with a warning that a
partial council may lack its strongest members. If every call fails, the step is an error, not an empty
success.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

from backend.providers.base import ErrorKind, ProviderError

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
