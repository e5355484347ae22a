"""The room's deliberation panel projected from its event log: where the room stands (consensus), the current vote
and its count, and the newest decision card with its sign-off.

`project_deliberation(view, events)` returns the new view and never changes the one it is given; RoomState's
projection (projection/room.py) routes these events here, each once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, fields, replace
from typing import TypedDict

from backend.deliberation import voting
from backend.events.schema import (
    ConsensusUpdated,
    DecisionProposed,
    DecisionSignedOff,
    PollClosed,
    PollOpened,
    RoomEvent,
    VoteCast,
)


class OptionRow(TypedDict):
    id: str
    text: str


class VoterRow(TypedDict):
    voter: str
    kind: str
    weight: str
    ballot: str
    reason: str


class StanceRow(TypedDict):
    participant: str
    position: str  # support / oppose / undecided
    about: str  # the proposal's text, or "" for the question as a whole
    summary: str
    was: str  # the position in the previous report when it changed, else ""


class StepRow(TypedDict):
    step: str
    owner: str


class DissentRow(TypedDict):
    who: str
    preferred: str
    why: str


class MatrixRow(TypedDict):
    option: str
    cells: list[str]


SIGNOFF_LABELS = {
    "approved": "Approved",
    "overridden": "Overridden",
    "more_discussion": "Sent back for more discussion",
}


@dataclass
class DeliberationView:
    """The fields DeliberationState holds and the log decides."""

    # Consensus
    has_consensus: bool = False
    consensus_error: str = ""
    agreements: list[str] = field(default_factory=list)
    disagreements: list[str] = field(default_factory=list)
    proposals: list[str] = field(default_factory=list)
    concerns: list[str] = field(default_factory=list)
    trade_offs: list[str] = field(default_factory=list)
    agreement_pct: int = 0
    consensus_history: list[str] = field(default_factory=list)  # "round 2: 50 % · 2 agreed, 1 disputed · …"
    stances: list[StanceRow] = field(default_factory=list)
    positions: dict[str, str] = field(default_factory=dict)  # each participant's position in the previous report
    # The poll
    poll_id: int = 0
    poll_open: bool = False
    poll_question: str = ""
    poll_rule: str = ""
    poll_rule_label: str = ""
    poll_ranked: bool = True
    poll_deadline: str = ""
    ballot: list[OptionRow] = field(default_factory=list)  # my ranking (best first), or the options
    approved: list[str] = field(default_factory=list)
    voted: list[str] = field(default_factory=list)
    voters: list[str] = field(default_factory=list)
    my_vote: str = ""
    result_line: str = ""
    result_rows: list[VoterRow] = field(default_factory=list)
    matrix_header: list[str] = field(default_factory=list)
    matrix: list[MatrixRow] = field(default_factory=list)
    # The decision
    decision_id: int = 0
    ballots_on_card: bool = False  # the card shows this poll's ballots, so the vote panel need not
    decision_title: str = ""
    decision_status: str = ""
    decision_option: str = ""
    decision_support: str = ""
    rationale: str = ""
    dissent: list[DissentRow] = field(default_factory=list)
    decision_concerns: list[str] = field(default_factory=list)
    decision_votes: list[VoterRow] = field(default_factory=list)
    action_plan: list[StepRow] = field(default_factory=list)
    decision_note: str = ""
    decision_options: list[str] = field(default_factory=list)
    signoff: str = ""  # "Approved by CTO" etc.
    signoff_outcome: str = ""  # approved | overridden | more_discussion (colours the sign-off)
    signoff_detail: str = ""
    signoff_notice: str = ""


VIEW_FIELDS = tuple(f.name for f in fields(DeliberationView))


def voter_rows(voters: list[dict]) -> list[VoterRow]:
    return [
        VoterRow(
            voter=v["voter"],
            kind=v["kind"],
            weight=f"{v.get('weight', 1):g}",
            ballot=" > ".join(v.get("ranking_text") or v.get("ranking", [])),
            reason=v.get("reason", ""),
        )
        for v in voters
    ]


def project_deliberation(view: DeliberationView, events: Iterable[RoomEvent]) -> DeliberationView:
    """Apply the deliberation events among `events` to a copy of `view` (every field is replaced, never changed)."""
    view = replace(view)
    for event in events:
        if isinstance(event, ConsensusUpdated):
            _consensus(view, event)
        elif isinstance(event, PollOpened):
            _poll_opened(view, event)
        elif isinstance(event, VoteCast) and event.poll_id == view.poll_id:
            if event.voter_name not in view.voted:
                view.voted = [*view.voted, event.voter_name]
        elif isinstance(event, PollClosed) and event.poll_id == view.poll_id:
            view.poll_open = False
            _result(view, event.result)
        elif isinstance(event, DecisionProposed):
            _decision(view, event.decision)
        elif isinstance(event, DecisionSignedOff) and event.decision_id == view.decision_id:
            _signed(
                view,
                event.outcome,
                event.actor_name,
                event.conditions,
                event.override_option,
                event.reason,
                event.question,
            )
    return view


def with_decision(view: DeliberationView, card: dict) -> DeliberationView:
    """A copy of `view` showing the decision `card` (a decision's own page loads it without its room's log)."""
    view = replace(view)
    _decision(view, card)
    return view


def _consensus(view: DeliberationView, event: ConsensusUpdated) -> None:
    if event.report is None:
        view.consensus_error = f"Consensus detection failed: {event.error or 'no reason given'}"
        return
    r = event.report
    view.has_consensus, view.consensus_error = True, ""
    view.agreements, view.disagreements = list(r.get("agreements", [])), list(r.get("disagreements", []))
    view.concerns, view.trade_offs = list(r.get("concerns", [])), list(r.get("trade_offs", []))
    view.proposals = [
        f"{p['text']} — {p.get('author') or '?'}"
        + (f" (supported by {', '.join(p['supporters'])})" if p.get("supporters") else "")
        for p in r.get("proposals", [])
    ]
    view.agreement_pct = round(float(r.get("agreement_ratio", 0)) * 100)
    about = {p["id"]: p["text"] for p in r.get("proposals", [])}
    rows = [
        StanceRow(
            participant=st["participant"],
            position=st["position"],
            about=about.get(st.get("proposal_id") or "", ""),
            summary=st.get("summary", ""),
            was=view.positions.get(st["participant"], "")
            if view.positions.get(st["participant"], st["position"]) != st["position"]
            else "",
        )
        for st in r.get("stances", [])
    ]
    moved = [f"{row['participant']}: {row['was']} → {row['position']}" for row in rows if row["was"]]
    counts = f"{len(view.agreements)} agreed, {len(view.disagreements)} disputed"
    line = f"round {event.round % 1000}: {view.agreement_pct} % · {counts}" + "".join(f" · {m}" for m in moved)
    view.stances, view.positions = rows, {row["participant"]: row["position"] for row in rows}
    view.consensus_history = [*view.consensus_history, line]


def _poll_opened(view: DeliberationView, event: PollOpened) -> None:
    view.poll_id, view.poll_open, view.poll_question = event.poll_id, True, event.question
    view.poll_rule = event.rule
    rule = voting.get_rule(event.rule)
    view.poll_rule_label, view.poll_ranked = f"{rule.label}: {rule.summary}", rule in ("borda", "schulze")
    view.poll_deadline = event.deadline_at.isoformat()
    view.ballot = [OptionRow(id=o["id"], text=o["text"]) for o in event.options]
    view.approved, view.voted, view.voters, view.my_vote = [], [], list(event.voters), ""
    view.result_line, view.result_rows, view.matrix_header, view.matrix = "", [], [], []
    view.ballots_on_card = False  # a new vote (after more discussion): its ballots are not on the card


def _result(view: DeliberationView, result: dict) -> None:
    texts = {o["id"]: o["text"] for o in result.get("options", [])}
    status = result.get("status")
    if status == "winner":
        view.result_line = f"{texts.get(result['winner'], result['winner'])} wins ({result.get('rule')})"
    elif status == "tie":
        view.result_line = "Tie: " + ", ".join(texts.get(t, t) for t in result.get("tied", []))
    elif status == "no_majority":
        view.result_line = "No majority; runoff: " + ", ".join(texts.get(t, t) for t in result.get("runoff", []))
    else:
        view.result_line = "Nobody voted"
    view.result_rows = voter_rows(result.get("voters", []))
    pairwise = result.get("pairwise")
    if pairwise:
        ids = [o["id"] for o in result.get("options", [])]
        view.matrix_header = [texts.get(i, i) for i in ids]
        view.matrix = [
            MatrixRow(option=texts.get(a, a), cells=["—" if a == b else f"{pairwise[a][b]:g}" for b in ids])
            for a in ids
        ]


def _decision(view: DeliberationView, card: dict) -> None:
    view.decision_id = card["id"]
    view.decision_title, view.decision_status = card["title"], card["status"]
    view.decision_option, view.decision_support = card.get("chosen_option") or "", card.get("support", "")
    view.rationale, view.decision_note = card["rationale"], card.get("note", "")
    view.dissent = [DissentRow(who=d["who"], preferred=d["preferred"], why=d.get("why", "")) for d in card["dissent"]]
    view.decision_concerns = list(card.get("concerns", []))
    view.decision_votes = voter_rows(card.get("breakdown", []))
    view.ballots_on_card = bool(view.decision_votes)
    view.action_plan = [StepRow(step=s["step"], owner=s["owner"]) for s in card.get("action_plan", [])]
    view.decision_options = [o["text"] for o in card.get("options", [])]
    view.signoff, view.signoff_detail, view.signoff_notice, view.signoff_outcome = "", "", "", ""
    if card.get("signoff"):
        so = card["signoff"]
        _signed(view, so["outcome"], so["by"], so["conditions"], so["override_option"], so["reason"], so["question"])


def _signed(
    view: DeliberationView, outcome: str, by: str, conditions: str, override: str | None, reason: str, question: str
) -> None:
    view.signoff = f"{SIGNOFF_LABELS.get(outcome, outcome)} by {by}"
    view.signoff_outcome = outcome
    if outcome == "approved":
        view.signoff_detail = f"Conditions: {conditions}" if conditions else ""
    elif outcome == "overridden":
        view.signoff_detail = f"Chose {override} instead of {view.decision_option or 'the room’s result'}: {reason}"
        view.decision_status = "decided"  # what stands now is the override (decisions.final_outcome)
    else:
        view.signoff_detail = f"Question: {question}"
        view.decision_status = "in_progress"  # discussed again; the next version settles it
