"""May this model call start? Only if its worst case fits the discussion's budgets and today's spend caps.

Whoever can sign up spends the operator's keys, so the check before a call counts what the call could cost, not
what was spent so far: the prompt's estimated tokens (an estimate that errs high, capped at the model's window)
plus the reply's `max_tokens`, priced at the model's list price with nothing cached. A call that fits starts;
one that could pass a budget or a cap pauses the discussion, with a reason that names the limit.

The daily caps are the admin's (`backend.humans.instance`): per person, the cost of every call today (UTC) in the
discussions they own; instance-wide, every call today. A discussion without an owner (the CLI) counts toward the
instance cap only. A free call (the offline model, a local server) never meets a dollar limit.

Calls in flight elsewhere are not counted until they finish, so discussions running at the same moment can each
pass the last check before a cap: the overshoot is at most one call per running discussion.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, bindparam, func, select
from sqlmodel import Session

from backend.config import get_settings
from backend.humans.instance import read_policy
from backend.models import Discussion, Message, ModelCall
from backend.models.base import utcnow
from backend.orchestrator import turn_log
from backend.providers import pricing
from backend.providers.context_budget import context_window

RAISE_BUDGET = "Raise the budget and press Run Agents to continue."
CAP_RESETS = "The cap resets at midnight UTC (the instance admin can raise it); then press Run Agents to continue."

# What was spent today: agents' turns keep their cost on their message, every other call is a ModelCall row.
_OWNED = select(Discussion.id).where(Discussion.owner_user_id == bindparam("owner"))  # type: ignore[arg-type]
_TURNS_TODAY = select(func.coalesce(func.sum(Message.cost_usd), 0.0)).where(
    Message.created_at >= bindparam("since"),  # type: ignore[arg-type]
    Message.cost_usd > 0,  # type: ignore[arg-type]
)
_CALLS_TODAY = select(func.coalesce(func.sum(ModelCall.cost_usd), 0.0)).where(
    ModelCall.created_at >= bindparam("since"),  # type: ignore[arg-type]
    ModelCall.cost_usd > 0,  # type: ignore[arg-type]
)
_SPENT_TODAY = {
    "instance": (_TURNS_TODAY, _CALLS_TODAY),
    "owner": (
        _TURNS_TODAY.where(Message.discussion_id.in_(_OWNED)),  # type: ignore[attr-defined]
        _CALLS_TODAY.where(ModelCall.discussion_id.in_(_OWNED)),  # type: ignore[attr-defined]
    ),
}


def turn_max_tokens(stored: int) -> int:
    """A turn's reply limit: what the discussion asks for, never above the operator's limit (older rows may)."""
    return max(1, min(stored, get_settings().max_tokens_per_turn_limit))


@dataclass(frozen=True, slots=True)
class Call:
    """The most one step can use: `tries` calls of the prompt (estimated tokens) and a reply of `max_tokens`."""

    what: str  # "turn", "ballot", ... as the pause reason names it
    provider: str
    model: str
    prompt_tokens: int
    max_tokens: int
    tries: int = 1  # a structured reply may be asked for twice; a turn that overflows its window adds a summary

    @classmethod
    def of(cls, what: str, provider: str, model: str, prompt_tokens: int, max_tokens: int, tries: int = 1) -> Call:
        """The call with its prompt capped at the model's context window (nothing larger is ever sent)."""
        window = context_window(provider, model)
        return cls(what, provider, model, min(prompt_tokens, window), max_tokens, tries)

    @property
    def tokens(self) -> int:
        return self.tries * (self.prompt_tokens + self.max_tokens)

    @property
    def usd(self) -> float:
        return self.tries * pricing.worst_case_usd(self.provider, self.model, self.prompt_tokens, self.max_tokens)


def refusal(
    c: Connection,
    discussion_id: int,
    call: Call,
    *,
    budget_tokens: int | None,
    budget_usd: float | None,
    owner_id: int | None,
) -> str | None:
    """Why `call` must not start (the pause reason), or None when it may; in the caller's transaction."""
    return _over_budget(c, discussion_id, call, budget_tokens, budget_usd) or _over_cap(c, call, owner_id)


def _over_budget(
    c: Connection, discussion_id: int, call: Call, budget_tokens: int | None, budget_usd: float | None
) -> str | None:
    if budget_tokens is None and budget_usd is None:
        return None
    tokens, cost = turn_log.spent(c, discussion_id)
    if budget_tokens is not None and tokens + call.tokens > budget_tokens:
        if tokens >= budget_tokens:
            return f"Paused: the token budget is used up ({tokens:,} of {budget_tokens:,} tokens). {RAISE_BUDGET}"
        return (
            f"Paused: the next {call.what} could use up to {call.tokens:,} tokens, and {budget_tokens - tokens:,} "
            f"of the {budget_tokens:,}-token budget are left. {RAISE_BUDGET}"
        )
    worst = call.usd
    if budget_usd is not None and cost + worst > budget_usd:
        if cost >= budget_usd:
            return f"Paused: the cost budget is used up ({usd(cost)} of {usd(budget_usd)}). {RAISE_BUDGET}"
        return (
            f"Paused: the next {call.what} could cost up to {usd(worst)}, and {usd(budget_usd - cost)} "
            f"of the {usd(budget_usd)} budget is left. {RAISE_BUDGET}"
        )
    return None


def _over_cap(c: Connection, call: Call, owner_id: int | None) -> str | None:
    worst = call.usd
    if worst <= 0:
        return None  # free: no dollar cap applies, and nothing needs reading
    with Session(bind=c) as s:
        policy = read_policy(s)
    since = start_of_today()
    if policy.instance_daily_usd is not None:
        spent = spent_today(c, since)
        if spent + worst > policy.instance_daily_usd:
            return (
                f"Paused: today's spend cap for this instance ({usd(policy.instance_daily_usd)}) would be passed: "
                f"{usd(spent)} was spent today (UTC) and the next {call.what} could cost up to {usd(worst)}. "
                f"{CAP_RESETS}"
            )
    if policy.user_daily_usd is not None and owner_id is not None:
        spent = spent_today(c, since, owner_id)
        if spent + worst > policy.user_daily_usd:
            return (
                f"Paused: today's spend cap per person ({usd(policy.user_daily_usd)}) would be passed: this "
                f"discussion's owner has spent {usd(spent)} today (UTC) and the next {call.what} could cost up to "
                f"{usd(worst)}. {CAP_RESETS}"
            )
    return None


def start_of_today() -> datetime:
    """Midnight UTC today: the daily caps count calls from then on."""
    return utcnow().replace(hour=0, minute=0, second=0, microsecond=0)


def spent_today(c: Connection, since: datetime, owner_id: int | None = None) -> float:
    """Dollars spent on calls since `since`: in the discussions `owner_id` owns, or instance-wide without one."""
    turns, calls = _SPENT_TODAY["instance" if owner_id is None else "owner"]
    values = {"since": since} if owner_id is None else {"since": since, "owner": owner_id}
    return float(c.execute(turns, values).scalar_one()) + float(c.execute(calls, values).scalar_one())


def usd(amount: float) -> str:
    """Dollars as people read them; sub-cent amounts keep four decimals (a call often costs a fraction of one)."""
    return f"${amount:,.2f}" if amount >= 0.01 or amount <= 0 else f"${amount:.4f}"
