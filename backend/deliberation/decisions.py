"""Decisions: turn a closed poll (and the room's consensus) into a decision card, as data.

What can be counted is counted, never asked of a model: the chosen option, the status (decided, or deadlocked when
the rule gave a tie or no majority), the per-voter breakdown, the "3 of 4" support line and the dissent (everyone
whose first choice lost, with the reason they gave). A model writes only the prose: a title, the rationale and an
action plan with an owner role per step. When that call fails the card says so and still carries every counted part.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel, Field
from sqlalchemy import func
from sqlmodel import Session, select

from backend.db import session_scope
from backend.errors import NotFound
from backend.events.log import append_event
from backend.events.schema import DecisionProposed
from backend.models import Decision, DecisionStatus, Discussion, Participant, Poll, SignOff, SignOffOutcome


class ActionStep(BaseModel):
    """One concrete step and the role that owns it."""

    step: str = Field(min_length=1, max_length=500)
    owner: str = Field(min_length=1, max_length=80, description="A role, e.g. 'Backend engineer' or 'DevOps'")


class DecisionText(BaseModel):
    """The prose a model writes for a decision card (structured output)."""

    title: str = Field(min_length=1, max_length=200)
    rationale: str = Field(min_length=1, max_length=4000)
    action_plan: list[ActionStep] = Field(default_factory=list, max_length=10)


@dataclass
class DecisionDraft:
    """Everything counted from the vote, before any prose is added."""

    topic: str
    chosen_option: str | None
    status: str
    support: str  # "3 of 4 ranked PostgreSQL first"
    breakdown: list[dict]
    dissent: list[dict]
    concerns: list[str] = field(default_factory=list)
    agreements: list[str] = field(default_factory=list)


def _outcome_line(result: dict) -> str:
    status = result.get("status")
    texts = {o["id"]: o["text"] for o in result.get("options", [])}
    if status == "tie":
        return "Tie between " + " and ".join(texts.get(t, t) for t in result.get("tied", []))
    if status == "no_majority":
        return "No majority; a runoff between " + " and ".join(texts.get(t, t) for t in result.get("runoff", []))
    if status == "no_votes":
        return "Nobody voted"
    return ""


def _backs(voter: dict, winner: str | None, winner_id: str | None, approval: bool) -> bool:
    """Whether a ballot supports the winner: ranked it first, or (approval voting) approved it at all."""
    if approval:
        return winner_id in voter.get("ranking", [])
    return voter.get("first") == winner


def draft_from(topic: str, result: dict, consensus: dict | None = None) -> DecisionDraft:
    """Count the parts of the decision that the poll already determines."""
    winner = result.get("winner_text") if result.get("status") == "winner" else None
    winner_id = result.get("winner")
    approval = result.get("rule") == "approval"
    author = next((o.get("author") for o in result.get("options", []) if o["id"] == winner_id), "") or ""
    voters = result.get("voters", [])
    total = sum(float(v.get("weight", 1)) for v in voters)
    backing = sum(float(v.get("weight", 1)) for v in voters if winner and _backs(v, winner, winner_id, approval))

    def num(x: float) -> str:
        return f"{x:g}"

    if winner:
        unit = "" if all(float(v.get("weight", 1)) == 1 for v in voters) else " (weighted)"
        verb = "approved" if approval else "ranked"
        support = f"{num(backing)} of {num(total)}{unit} {verb} {winner}" + ("" if approval else " first")
    else:
        support = _outcome_line(result)
    # The winner's author could not vote for it (no vote on your own proposal): that is not dissent.
    dissent = [
        {"who": v["voter"], "preferred": v.get("first", ""), "why": v.get("reason", "")}
        for v in voters
        if winner and not _backs(v, winner, winner_id, approval) and not (author and v["voter"] == author)
    ]
    return DecisionDraft(
        topic=topic,
        chosen_option=winner,
        status=DecisionStatus.DECIDED if winner else DecisionStatus.DEADLOCKED,
        support=support,
        breakdown=voters,
        dissent=dissent,
        concerns=list((consensus or {}).get("concerns", []))[:10],
        agreements=list((consensus or {}).get("agreements", []))[:10],
    )


def synthesis_brief(draft: DecisionDraft, result: dict) -> str:
    """What the synthesising model is told: the counted facts it must not change."""
    lines = [
        f"Question: {draft.topic}",
        f"Voting rule: {result.get('rule', '')}.",
        f"Outcome: {draft.chosen_option or 'no decision (deadlocked)'} — {draft.support}.",
        "Ballots (best first):",
        *(f"- {v['voter']}: {' > '.join(v.get('ranking_text') or v.get('ranking', []))}" for v in draft.breakdown),
    ]
    if draft.dissent:
        lines.append(
            "Dissent: " + "; ".join(f"{d['who']} preferred {d['preferred']} ({d['why']})" for d in draft.dissent)
        )
    if draft.agreements:
        lines.append("Agreed in discussion: " + "; ".join(draft.agreements))
    if draft.concerns:
        lines.append("Open concerns: " + "; ".join(draft.concerns))
    return "\n".join(lines)


def fallback_text(draft: DecisionDraft) -> DecisionText:
    """Prose assembled from the counted parts, for when no model could write it."""
    if draft.chosen_option:
        title = f"{draft.topic.rstrip('?.')}: {draft.chosen_option}"[:200]
        reasons = [v.get("reason", "") for v in draft.breakdown if v.get("first") == draft.chosen_option]
        why = " ".join(r for r in reasons if r)[:3000]
        rationale = f"{draft.support}." + (f" Reasons given: {why}" if why else "")
    else:
        title = f"{draft.topic.rstrip('?.')}: no decision yet"[:200]
        rationale = f"{draft.support}. The room did not reach a decision; discuss further or override."
    return DecisionText(title=title, rationale=rationale, action_plan=[])


def next_version(session: Session, discussion_id: int) -> int:
    latest = session.exec(select(func.max(Decision.version)).where(Decision.discussion_id == discussion_id)).one()
    return (latest or 0) + 1


def record(
    session: Session,
    discussion_id: int,
    poll: Poll | None,
    draft: DecisionDraft,
    text: DecisionText,
    *,
    version: int,
    note: str = "",
) -> DecisionProposed | None:
    """Store decision `version` and its event; None when that version exists already (a resumed synthesis)."""
    exists = session.exec(
        select(Decision.id).where(Decision.discussion_id == discussion_id, Decision.version == version)
    ).first()
    if exists:
        return None
    decision = Decision(
        discussion_id=discussion_id,
        version=version,
        poll_id=poll.id if poll else None,
        title=text.title,
        chosen_option=draft.chosen_option,
        rationale=text.rationale,
        status=draft.status,
        breakdown=draft.breakdown,
        tally=(poll.result or {}) | {"support": draft.support} if poll else {"support": draft.support},
        dissent=draft.dissent,
        concerns=draft.concerns,
        action_plan=[s.model_dump() for s in text.action_plan],
        synthesis_note=note[:1000],
    )
    session.add(decision)
    session.flush()
    assert decision.id is not None
    return append_event(
        session,
        DecisionProposed(discussion_id=discussion_id, decision_id=decision.id, decision=card(decision, None)),
    )  # type: ignore[return-value]


def final_outcome(decision: Decision, signoff: SignOff | None) -> tuple[str | None, str]:
    """What stands once the gate has spoken: an override replaces the room's option (and settles a deadlock);
    a decision sent back for more discussion is in progress again (its next version will settle it); an approval,
    or no sign-off yet, leaves the room's result as it was."""
    if signoff is not None and signoff.outcome == SignOffOutcome.OVERRIDDEN and signoff.override_option:
        return signoff.override_option, DecisionStatus.DECIDED
    if signoff is not None and signoff.outcome == SignOffOutcome.MORE_DISCUSSION:
        return None, DecisionStatus.IN_PROGRESS
    return decision.chosen_option, decision.status


def card(decision: Decision, signoff: SignOff | None) -> dict:
    """The decision card as plain JSON (the room, its own page and the Markdown/JSON exports read this).

    `chosen_option`/`status` are what the room's vote and synthesis produced; `final_option`/`final_status` are
    what stands after the sign-off."""
    final_option, final_status = final_outcome(decision, signoff)
    return {
        "final_option": final_option,
        "final_status": final_status,
        "id": decision.id,
        "discussion_id": decision.discussion_id,
        "version": decision.version,
        "title": decision.title,
        "chosen_option": decision.chosen_option,
        "status": decision.status,
        "rationale": decision.rationale,
        "support": decision.tally.get("support", ""),
        "rule": decision.tally.get("rule", ""),
        "breakdown": decision.breakdown,
        "pairwise": decision.tally.get("pairwise"),
        "options": decision.tally.get("options", []),
        "dissent": decision.dissent,
        "concerns": decision.concerns,
        "action_plan": decision.action_plan,
        "note": decision.synthesis_note,
        "created_at": decision.created_at.isoformat() if decision.created_at else None,
        "signoff": None
        if signoff is None
        else {
            "outcome": signoff.outcome,
            "by": signoff.actor_name,
            "conditions": signoff.conditions,
            "override_option": signoff.override_option,
            "reason": signoff.reason,
            "question": signoff.question,
            "extra_rounds": signoff.extra_rounds,
            "at": signoff.created_at.isoformat() if signoff.created_at else None,
        },
    }


def latest(discussion_id: int) -> dict | None:
    """The newest decision card of a discussion, with its sign-off, or None."""
    with session_scope() as s:
        decision = s.exec(
            select(Decision).where(Decision.discussion_id == discussion_id).order_by(Decision.version.desc())  # type: ignore[attr-defined]
        ).first()
        if decision is None:
            return None
        signoff = s.exec(select(SignOff).where(SignOff.decision_id == decision.id)).first()
        return card(decision, signoff)


def get_card(decision_id: int) -> dict:
    with session_scope() as s:
        decision = s.get(Decision, decision_id)
        if decision is None:
            raise NotFound(f"No decision {decision_id}.")
        signoff = s.exec(select(SignOff).where(SignOff.decision_id == decision_id)).first()
        return card(decision, signoff) | {"topic": (s.get(Discussion, decision.discussion_id) or Discussion()).topic}


def search(query: str = "", limit: int = 100, *, user_id: int | None = None) -> list[dict]:
    """Decisions, newest first, whose title, rationale or topic contains `query` (case-insensitive); with
    `user_id`, only those of discussions that person is in."""
    with session_scope() as s:
        stmt = select(Decision, Discussion.topic).join(Discussion, Discussion.id == Decision.discussion_id)  # type: ignore[arg-type]
        if user_id is not None:
            stmt = stmt.join(
                Participant,
                (Participant.discussion_id == Decision.discussion_id) & (Participant.user_id == user_id),  # type: ignore[arg-type]
            )
        if query.strip():
            like = f"%{query.strip().lower()}%"
            stmt = stmt.where(
                func.lower(Decision.title).like(like)
                | func.lower(Decision.rationale).like(like)
                | func.lower(Discussion.topic).like(like)
            )
        rows = s.exec(stmt.order_by(Decision.id.desc()).limit(limit)).all()  # type: ignore[union-attr]
        signoffs = {
            so.decision_id: so
            for so in s.exec(select(SignOff).where(SignOff.decision_id.in_([d.id for d, _ in rows])))  # type: ignore[union-attr]
        }
        return [card(d, signoffs.get(d.id)) | {"topic": topic} for d, topic in rows]


def to_markdown(c: dict) -> str:
    """A decision card as a Markdown document (the export)."""
    out = [f"# {c['title']}", ""]
    if c.get("topic"):
        out += [f"**Question:** {c['topic']}", ""]
    sent_back = (c.get("signoff") or {}).get("outcome") == SignOffOutcome.MORE_DISCUSSION
    if sent_back:
        outcome = f"— (sent back for more discussion; the room had chosen {c.get('chosen_option') or 'nothing'})"
    elif c.get("final_option") != c.get("chosen_option"):
        outcome = f"{c.get('final_option') or '—'} (overridden; the room chose {c.get('chosen_option') or 'nothing'}"
        outcome += f", {c.get('support', '')})"
    else:
        outcome = f"{c.get('final_option') or '—'} ({c.get('support', '')})"
    out += [f"**Status:** {c.get('final_status') or c['status']}  ", f"**Outcome:** {outcome}", ""]
    out += ["## Rationale", "", c["rationale"], ""]
    if c["breakdown"]:
        out += ["## Votes", "", "| Voter | Weight | Ballot |", "|---|---|---|"]
        out += [
            f"| {v['voter']} | {v.get('weight', 1):g} | {' > '.join(v.get('ranking_text') or v['ranking'])} |"
            for v in c["breakdown"]
        ]
        out.append("")
    if c["dissent"]:
        out += (
            ["## Dissent", ""]
            + [f"- **{d['who']}** preferred {d['preferred']}: {d['why'] or '(no reason given)'}" for d in c["dissent"]]
            + [""]
        )
    if c["concerns"]:
        out += ["## Concerns", ""] + [f"- {x}" for x in c["concerns"]] + [""]
    if c["action_plan"]:
        out += (
            ["## Action plan", ""]
            + [f"{i}. {s['step']} — *{s['owner']}*" for i, s in enumerate(c["action_plan"], 1)]
            + [""]
        )
    if c.get("note"):
        out += [f"> {c['note']}", ""]
    so = c.get("signoff")
    if so:
        out += ["## Sign-off", "", f"{so['outcome'].replace('_', ' ').capitalize()} by {so['by']}"]
        for label, key in (
            ("Conditions", "conditions"),
            ("Chosen instead", "override_option"),
            ("Reason", "reason"),
            ("Question", "question"),
        ):
            if so.get(key):
                out.append(f"- {label}: {so[key]}")
        out.append("")
    return "\n".join(out)
