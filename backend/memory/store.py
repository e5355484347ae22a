"""Remembering and forgetting results, in the caller's transaction (the cold tier is the database).

A result is remembered when a person can trust it: the decision that stands after approval or override (or a
decision no one had to approve), or the final synthesis of a discussion without a vote. It stops being served at
once when the decision is sent back, superseded, forgotten by the owner, or expires: those are rows updated in the
same transaction as the sign-off, and every lookup re-reads them before serving (backend/memory/recall.py).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update
from sqlmodel import Session, col, func, select

from backend.config import get_settings
from backend.memory.context import parse_context
from backend.models import Decision, DecisionStatus, Discussion, MemoryEntry, Message, MessageStatus, ModelCall
from backend.models.base import utcnow

MAX_RESULT_CHARS = 20_000


def _cost(s: Session, discussion_id: int) -> tuple[float, int, float]:
    """Dollars, tokens and model seconds the discussion spent: what reusing its result saves."""
    turns = s.exec(
        select(
            func.coalesce(func.sum(Message.cost_usd), 0.0),
            func.coalesce(func.sum(Message.input_tokens + Message.output_tokens), 0),
            func.coalesce(func.sum(Message.latency_ms), 0),
        ).where(Message.discussion_id == discussion_id, Message.author_kind == "agent")
    ).one()
    calls = s.exec(
        select(
            func.coalesce(func.sum(ModelCall.cost_usd), 0.0),
            func.coalesce(func.sum(ModelCall.input_tokens + ModelCall.output_tokens), 0),
            func.coalesce(func.sum(ModelCall.latency_ms), 0),
        ).where(ModelCall.discussion_id == discussion_id)
    ).one()
    return float(turns[0]) + float(calls[0]), int(turns[1]) + int(calls[1]), (int(turns[2]) + int(calls[2])) / 1000


def _decision_text(decision: Decision, standing: str, how: str) -> str:
    lines = [f"**Decision: {standing}** ({how})"]
    support = decision.tally.get("support") if isinstance(decision.tally, dict) else None
    if support:
        lines.append(str(support))
    if decision.rationale:
        lines += ["", decision.rationale]
    if decision.dissent:
        lines += ["", "Dissent:"] + [f"- {d.get('who', '?')}: {d.get('why', '')}" for d in decision.dissent]
    if decision.action_plan:
        lines += ["", "Action plan:"]
        for step in decision.action_plan:
            owner = f" ({step['owner']})" if step.get("owner") else ""
            lines.append(f"- [ ] {step.get('step', '')}{owner}")
    return "\n".join(lines)[:MAX_RESULT_CHARS]


def _final_synthesis(s: Session, discussion_id: int) -> str:
    """Without a vote, the result is where each agent ended: the last complete turn of every agent."""
    rows = s.exec(
        select(Message)
        .where(
            Message.discussion_id == discussion_id,
            Message.author_kind == "agent",
            Message.status == MessageStatus.COMPLETE,
        )
        .order_by(col(Message.seq).desc())
    ).all()
    last_round = rows[0].round if rows else 0
    final = [m for m in reversed(rows) if m.round == last_round]
    return "\n\n".join(f"**{m.author_name}:** {m.content.strip()}" for m in final)[:MAX_RESULT_CHARS]


def _invalidate(s: Session, which, reason: str) -> int:
    """Stop serving the live entries `which` selects; how many stopped."""
    result = s.execute(
        update(MemoryEntry)
        .where(which, col(MemoryEntry.invalidated_at).is_(None))
        .values(invalidated_at=utcnow(), invalidated_reason=reason[:200])
    )
    return int(result.rowcount or 0)


def forget_discussion(s: Session, discussion_id: int, reason: str) -> int:
    """Stop serving every live result of a discussion (sent back, superseded); how many stopped."""
    return _invalidate(s, col(MemoryEntry.discussion_id) == discussion_id, reason)


def remember(
    s: Session, discussion_id: int, *, decided_by: str, override_option: str | None = None
) -> MemoryEntry | None:
    """Remember what the discussion settled, replacing what it settled before; None when nothing was settled.

    Called where the result comes to stand: the sign-off (approve / override) and the end of a run that needed
    no sign-off. A deadlocked decision nobody overrode settles nothing."""
    if not get_settings().memory_enabled:
        return None
    discussion = s.get(Discussion, discussion_id)
    if discussion is None or discussion.memory_entry_id is not None:
        return None  # a discussion made from memory is not a new source
    decision = s.exec(
        select(Decision).where(Decision.discussion_id == discussion_id).order_by(col(Decision.version).desc())
    ).first()
    if decision is not None:
        standing = override_option or decision.chosen_option
        if standing is None or (decision.status != DecisionStatus.DECIDED and override_option is None):
            return None
        how = (
            f"overridden by {decided_by}"
            if override_option
            else (f"approved by {decided_by}" if decided_by else "voted")
        )
        kind, outcome, result = "decision", standing, _decision_text(decision, standing, how)
    else:
        result = _final_synthesis(s, discussion_id)
        if not result:
            return None
        first = result.split("\n", 1)[0].split(":** ", 1)[-1]
        kind, outcome = "synthesis", first[:200]
    forget_discussion(s, discussion_id, "superseded by a newer result")
    context = parse_context(discussion.context)
    cost, tokens, seconds = _cost(s, discussion_id)
    now = utcnow()
    entry = MemoryEntry(
        discussion_id=discussion_id,
        decision_id=decision.id if decision is not None else None,
        kind=kind,
        question=discussion.topic,
        context=context.as_dict(),
        context_key=context.key(),
        outcome=outcome[:500],
        result=result,
        decided_by=decided_by[:120],
        decided_at=now,
        cost_usd=cost,
        tokens=tokens,
        model_seconds=seconds,
        expires_at=now + timedelta(days=get_settings().memory_ttl_days),
        invalidated_reason="",
    )
    s.add(entry)
    s.flush()
    return entry


def forget_entry(s: Session, entry_id: int, reason: str) -> bool:
    return bool(_invalidate(s, col(MemoryEntry.id) == entry_id, reason))


def count_hit(s: Session, entry_id: int) -> None:
    """One reuse: the entry's hits and what they saved grow by what the source cost."""
    s.execute(
        update(MemoryEntry)
        .where(col(MemoryEntry.id) == entry_id)
        .values(
            hits=MemoryEntry.hits + 1,
            last_hit_at=utcnow(),
            saved_usd=MemoryEntry.saved_usd + MemoryEntry.cost_usd,
            saved_tokens=MemoryEntry.saved_tokens + MemoryEntry.tokens,
            saved_seconds=MemoryEntry.saved_seconds + MemoryEntry.model_seconds,
        )
    )
