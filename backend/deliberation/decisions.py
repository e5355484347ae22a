"""Decisions: turn a closed poll (and the room's consensus) into a decision card, as data.

What can be counted is counted, never asked of a model: the chosen option, the status (decided, or deadlocked when
the rule gave a tie or no majority), the per-voter breakdown, the "3 of 4" support line and the dissent (everyone
whose first choice lost, with the reason they gave). A model writes only the prose: a title, the rationale and an
action plan with an owner role per step. When that call fails the card says so and still carries every counted part.

The prose is checked against the count (`check_text`): the title must name the option that won (a deadlocked
title must not claim one). "Name" means the option's whole label as a phrase, ignoring case, punctuation and
spacing: for an option "PostgreSQL only", "postgresql-only" names it, "PostgreSQL" alone does not (another option
may be "Hybrid PostgreSQL + DynamoDB"). A rationale that explains without naming the winner is kept under a
counted lead sentence (`grounded`). The engine asks once more when the title is wrong, then falls back to a plain
card built from the count and keeps the model's text only as "unverified".

Text is never cut mid-sentence: long texts are cut at a sentence (or else word) boundary with an ellipsis, and a
reason that stops mid-sentence (a model out of tokens) is cut back to its last whole sentence.
"""

from __future__ import annotations

import re
import unicodedata
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


NO_ACTION_PLAN = "No action plan was written."
OFFLINE_NOTE = (
    "Written by the tiny offline model: the title, rationale and action plan may be shallow. "
    "The support line, ballots and dissent are counted, not written."
)
UNGROUNDED_NOTE = (
    "The model's text did not name the option that won ({winner}), even after one retry; "
    "this card is built from the count. The model's text is kept as unverified."
)
UNGROUNDED_DEADLOCK_NOTE = (
    "The model's title claimed a winner although the vote is deadlocked, even after one retry; "
    "this card is built from the count. The model's text is kept as unverified."
)
REASON_CHARS = 600  # a dissent reason on the card (an agent's reason is at most 600 by its schema)
_SENTENCE_END = re.compile(r"[.!?…](?:[\"')\]»”’]*)(?=\s|$)")
_ENDS_SENTENCE = re.compile(r"[.!?…][\"')\]»”’]*$")
CUT_BACK_CHARS = 200  # a reason at least this long that stops mid-sentence was cut off
_DEADLOCK_WORDS = re.compile(r"\b(tie|tied|deadlock\w*|no decision|undecided|no majority|runoff|split|open)\b", re.I)


def clip(text: str, limit: int) -> str:
    """`text` of at most `limit` characters, cut at a sentence end (or else a word boundary) with an ellipsis."""
    text = text.strip()
    if len(text) <= limit:
        return text
    head = text[: max(1, limit - 2)]
    ends = [m.end() for m in _SENTENCE_END.finditer(head)]
    if ends and ends[-1] >= limit // 3:
        return head[: ends[-1]] + " …"
    cut = head.rsplit(None, 1)[0] if " " in head.strip() else head
    return cut.rstrip(" ,;:-") + "…"


def whole_sentences(text: str, limit: int = REASON_CHARS) -> str:
    """A reason as whole sentences: clipped to `limit` at a sentence boundary; and a long one that stops
    mid-sentence (a model out of tokens) is cut back to its last complete sentence, an ellipsis marking the cut.
    A short fragment ("cheaper") is kept as written: people do not always end with a full stop."""
    text = clip(text, limit)
    if len(text) < CUT_BACK_CHARS or text.endswith("…") or _ENDS_SENTENCE.search(text):
        return text
    ends = [m.end() for m in _SENTENCE_END.finditer(text)]
    return text[: ends[-1]] + " …" if ends else text.rstrip(" ,;:-") + "…"


def _norm(text: str) -> str:
    folded = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(re.sub(r"[\W_]+", " ", folded).split())


def names(text: str, option: str | None) -> bool:
    """Whether `text` names `option`: its whole label as a phrase, ignoring case, punctuation and spacing."""
    wanted = _norm(option or "")
    return bool(wanted) and f" {wanted} " in f" {_norm(text)} "


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
        {"who": v["voter"], "preferred": v.get("first", ""), "why": whole_sentences(v.get("reason", "") or "")}
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
        title = _title(draft.topic, draft.chosen_option)
        reasons = [whole_sentences(v.get("reason", "") or "") for v in draft.breakdown]
        reasons = [
            r for r, v in zip(reasons, draft.breakdown, strict=True) if r and v.get("first") == draft.chosen_option
        ]
        why = clip(" ".join(reasons), 3000)
        rationale = f"{draft.support}." + (f" Reasons given: {why}" if why else "")
    else:
        title = _title(draft.topic, "no decision yet")
        rationale = f"{draft.support}. The room did not reach a decision; discuss further or override."
    return DecisionText(title=title, rationale=rationale, action_plan=[])


def _title(topic: str, outcome: str) -> str:
    """ "<topic>: <outcome>" within the title's 200 characters; the topic is what gets shortened, never the outcome."""
    room = 200 - len(outcome) - 2
    if room < 20:
        return clip(outcome, 200)
    return f"{clip(topic.rstrip('?.'), room)}: {outcome}"


def check_text(draft: DecisionDraft, text: DecisionText, options: list[str]) -> list[str]:
    """What in the model's prose contradicts the count (empty when nothing does): the title must name the option
    that won; a deadlocked title must not name a single option as if it had won."""
    if draft.chosen_option:
        if not names(text.title, draft.chosen_option):
            return [f'The title "{text.title}" does not name the option that won: "{draft.chosen_option}".']
        return []
    claimed = [o for o in options if names(text.title, o)]
    if len(claimed) == 1 and not _DEADLOCK_WORDS.search(text.title):
        return [f'The title "{text.title}" names "{claimed[0]}" as if it won, but the vote is deadlocked.']
    return []


def retry_cue(draft: DecisionDraft, problems: list[str]) -> str:
    """What the synthesising model is told when its card contradicted the count."""
    if draft.chosen_option:
        must = (
            f'The title and the rationale must name the option that won, "{draft.chosen_option}", exactly as '
            "written, and must not present another option or a combination as the choice."
        )
    else:
        must = "The vote is deadlocked: the title and the rationale must not claim that any option won."
    return "Your decision card contradicted the count. " + " ".join(problems) + " " + must + " Write the card again."


def grounded(draft: DecisionDraft, text: DecisionText) -> DecisionText:
    """The model's text, with a counted lead sentence before a rationale that does not name the winner."""
    if not draft.chosen_option or names(text.rationale, draft.chosen_option):
        return text
    lead = f"The room chose {draft.chosen_option} ({draft.support})."
    return text.model_copy(update={"rationale": clip(f"{lead} {text.rationale}", 4000)})


def unverified(text: DecisionText) -> dict:
    """A model's text that contradicted the count, kept (clearly labelled) beside the plain card."""
    return {
        "title": text.title,
        "rationale": text.rationale,
        "action_plan": [s.model_dump() for s in text.action_plan],
    }


def ungrounded_note(draft: DecisionDraft) -> str:
    if draft.chosen_option:
        return UNGROUNDED_NOTE.format(winner=draft.chosen_option)
    return UNGROUNDED_DEADLOCK_NOTE


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
    unverified_text: dict | None = None,
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
        tally=((poll.result or {}) if poll else {})
        | {"support": draft.support}
        | ({"unverified": unverified_text} if unverified_text else {}),
        dissent=draft.dissent,
        concerns=draft.concerns,
        action_plan=[s.model_dump() for s in text.action_plan],
        synthesis_note=clip(note, 1000),
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
        "action_plan_note": "" if decision.action_plan else NO_ACTION_PLAN,
        "note": decision.synthesis_note,
        "unverified": decision.tally.get("unverified"),
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
    out += ["## Action plan", ""]
    if c["action_plan"]:
        out += [f"{i}. {s['step']} — *{s['owner']}*" for i, s in enumerate(c["action_plan"], 1)] + [""]
    else:
        out += [NO_ACTION_PLAN, ""]
    if c.get("note"):
        out += [f"> {c['note']}", ""]
    if c.get("unverified"):
        u = c["unverified"]
        out += ["## Unverified model text (contradicted the count)", "", f"- Title: {u.get('title', '')}"]
        out += [f"- Rationale: {u.get('rationale', '')}"]
        out += [f"- Step: {s['step']} — *{s['owner']}*" for s in u.get("action_plan", [])] + [""]
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
