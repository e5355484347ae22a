"""DeliberationState: the room's consensus panel, the vote and the decision card, built from the event log.

A substate of its own, so a vote or a new consensus report does not resend the transcript, and streaming does not
resend these panels. RoomState's follower hands it the deliberation events; actions go through the service layer
with the actor resolved from the server session.
"""

from __future__ import annotations

import uuid
from typing import TypedDict

import reflex as rx

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
from backend.services import room
from backend.services.errors import Forbidden, InputError, NotFound
from maestro_ui.state.auth import AuthState


class OptionRow(TypedDict):
    id: str
    text: str


class VoterRow(TypedDict):
    voter: str
    kind: str
    weight: str
    ballot: str
    reason: str


def _voter_rows(voters: list[dict]) -> list[VoterRow]:
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


DELIBERATION_EVENTS = (ConsensusUpdated, PollOpened, VoteCast, PollClosed, DecisionProposed, DecisionSignedOff)


class DeliberationState(rx.State):
    """Consensus, the current poll (and its result) and the newest decision with its sign-off."""

    # Consensus
    has_consensus: bool = False
    consensus_error: str = ""
    agreements: list[str] = []
    disagreements: list[str] = []
    proposals: list[str] = []
    concerns: list[str] = []
    trade_offs: list[str] = []
    agreement_pct: int = 0
    consensus_history: list[str] = []  # "round 2: 50 % · 2 agreements, 1 disagreement · Security: oppose → support"
    stances: list[StanceRow] = []
    _positions: dict[str, str] = {}  # each participant's position in the previous report
    # The poll
    poll_id: int = 0
    poll_open: bool = False
    poll_question: str = ""
    poll_rule: str = ""
    poll_rule_label: str = ""
    poll_ranked: bool = True
    poll_deadline: str = ""
    ballot: list[OptionRow] = []  # my ranking (best first), or the options for a single choice
    approved: list[str] = []
    voted: list[str] = []
    voters: list[str] = []
    my_vote: str = ""  # what I sent, as I read it
    vote_notice: str = ""
    voting: bool = False
    result_line: str = ""
    result_rows: list[VoterRow] = []
    matrix_header: list[str] = []
    matrix: list[MatrixRow] = []
    # The decision
    decision_id: int = 0
    ballots_on_card: bool = False  # the card shows this poll's ballots, so the vote panel need not
    decision_title: str = ""
    decision_status: str = ""
    decision_option: str = ""
    decision_support: str = ""
    rationale: str = ""
    dissent: list[DissentRow] = []
    decision_concerns: list[str] = []
    decision_votes: list[VoterRow] = []
    action_plan: list[StepRow] = []
    decision_note: str = ""
    decision_options: list[str] = []
    signoff: str = ""  # "Approved by CTO" etc.
    signoff_outcome: str = ""  # approved | overridden | more_discussion (colours the sign-off)
    signoff_detail: str = ""
    signoff_notice: str = ""
    signing: bool = False

    _did: int = 0

    @rx.var
    def poll_waiting(self) -> list[str]:
        return [v for v in self.voters if v not in self.voted]

    def _reset(self, did: int) -> None:
        self._did = did
        self.has_consensus, self.consensus_error, self.consensus_history = False, "", []
        self.stances, self._positions = [], {}
        self.agreements, self.disagreements, self.proposals, self.concerns, self.trade_offs = [], [], [], [], []
        self.poll_id, self.poll_open, self.ballot, self.approved, self.voted, self.voters = 0, False, [], [], [], []
        self.my_vote, self.vote_notice, self.result_line, self.result_rows = "", "", "", []
        self.matrix_header, self.matrix = [], []
        self.decision_id, self.signoff, self.signoff_detail, self.signoff_notice = 0, "", "", ""
        self.ballots_on_card = False

    def _apply(self, event: RoomEvent) -> None:
        if isinstance(event, ConsensusUpdated):
            self._consensus(event)
        elif isinstance(event, PollOpened):
            self.poll_id, self.poll_open, self.poll_question = event.poll_id, True, event.question
            self.poll_rule = event.rule
            rule = voting.get_rule(event.rule)
            self.poll_rule_label, self.poll_ranked = f"{rule.label}: {rule.summary}", rule in ("borda", "schulze")
            self.poll_deadline = event.deadline_at.isoformat()
            self.ballot = [OptionRow(id=o["id"], text=o["text"]) for o in event.options]
            self.approved, self.voted, self.voters, self.my_vote = [], [], event.voters, ""
            self.result_line, self.result_rows, self.matrix_header, self.matrix = "", [], [], []
            self.ballots_on_card = False  # a new vote (after more discussion): its ballots are not on the card
        elif isinstance(event, VoteCast) and event.poll_id == self.poll_id:
            if event.voter_name not in self.voted:
                self.voted = [*self.voted, event.voter_name]
        elif isinstance(event, PollClosed) and event.poll_id == self.poll_id:
            self.poll_open = False
            self._result(event.result)
        elif isinstance(event, DecisionProposed):
            self._decision(event.decision)
        elif isinstance(event, DecisionSignedOff) and event.decision_id == self.decision_id:
            self._signed(
                event.outcome, event.actor_name, event.conditions, event.override_option, event.reason, event.question
            )

    def _consensus(self, event: ConsensusUpdated) -> None:
        if event.report is None:
            self.consensus_error = f"Consensus detection failed: {event.error or 'no reason given'}"
            return
        r = event.report
        self.has_consensus, self.consensus_error = True, ""
        self.agreements, self.disagreements = list(r.get("agreements", [])), list(r.get("disagreements", []))
        self.concerns, self.trade_offs = list(r.get("concerns", [])), list(r.get("trade_offs", []))
        self.proposals = [
            f"{p['text']} — {p.get('author') or '?'}"
            + (f" (supported by {', '.join(p['supporters'])})" if p.get("supporters") else "")
            for p in r.get("proposals", [])
        ]
        self.agreement_pct = round(float(r.get("agreement_ratio", 0)) * 100)
        about = {p["id"]: p["text"] for p in r.get("proposals", [])}
        rows = [
            StanceRow(
                participant=st["participant"],
                position=st["position"],
                about=about.get(st.get("proposal_id") or "", ""),
                summary=st.get("summary", ""),
                was=self._positions.get(st["participant"], "")
                if self._positions.get(st["participant"], st["position"]) != st["position"]
                else "",
            )
            for st in r.get("stances", [])
        ]
        moved = [f"{row['participant']}: {row['was']} → {row['position']}" for row in rows if row["was"]]
        counts = f"{len(self.agreements)} agreed, {len(self.disagreements)} disputed"
        line = f"round {event.round % 1000}: {self.agreement_pct} % · {counts}" + "".join(f" · {m}" for m in moved)
        self.stances, self._positions = rows, {row["participant"]: row["position"] for row in rows}
        self.consensus_history = [*self.consensus_history, line]

    def _result(self, result: dict) -> None:
        texts = {o["id"]: o["text"] for o in result.get("options", [])}
        status = result.get("status")
        if status == "winner":
            self.result_line = f"{texts.get(result['winner'], result['winner'])} wins ({result.get('rule')})"
        elif status == "tie":
            self.result_line = "Tie: " + ", ".join(texts.get(t, t) for t in result.get("tied", []))
        elif status == "no_majority":
            self.result_line = "No majority; runoff: " + ", ".join(texts.get(t, t) for t in result.get("runoff", []))
        else:
            self.result_line = "Nobody voted"
        self.result_rows = _voter_rows(result.get("voters", []))
        pairwise = result.get("pairwise")
        if pairwise:
            ids = [o["id"] for o in result.get("options", [])]
            self.matrix_header = [texts.get(i, i) for i in ids]
            self.matrix = [
                MatrixRow(option=texts.get(a, a), cells=["—" if a == b else f"{pairwise[a][b]:g}" for b in ids])
                for a in ids
            ]

    def _decision(self, card: dict) -> None:
        self.decision_id = card["id"]
        self.decision_title, self.decision_status = card["title"], card["status"]
        self.decision_option, self.decision_support = card.get("chosen_option") or "", card.get("support", "")
        self.rationale, self.decision_note = card["rationale"], card.get("note", "")
        self.dissent = [
            DissentRow(who=d["who"], preferred=d["preferred"], why=d.get("why", "")) for d in card["dissent"]
        ]
        self.decision_concerns = list(card.get("concerns", []))
        self.decision_votes = _voter_rows(card.get("breakdown", []))
        self.ballots_on_card = bool(self.decision_votes)
        self.action_plan = [StepRow(step=s["step"], owner=s["owner"]) for s in card.get("action_plan", [])]
        self.decision_options = [o["text"] for o in card.get("options", [])]
        self.signoff, self.signoff_detail, self.signoff_notice, self.signoff_outcome = "", "", "", ""
        if card.get("signoff"):
            so = card["signoff"]
            self._signed(so["outcome"], so["by"], so["conditions"], so["override_option"], so["reason"], so["question"])

    def _signed(self, outcome: str, by: str, conditions: str, override: str | None, reason: str, question: str) -> None:
        label = {"approved": "Approved", "overridden": "Overridden", "more_discussion": "Sent back for more discussion"}
        self.signoff = f"{label.get(outcome, outcome)} by {by}"
        self.signoff_outcome = outcome
        if outcome == "approved":
            self.signoff_detail = f"Conditions: {conditions}" if conditions else ""
        elif outcome == "overridden":
            self.signoff_detail = f"Chose {override} instead of {self.decision_option or 'the room’s result'}: {reason}"
            self.decision_status = "decided"  # what stands now is the override (decisions.final_outcome)
        else:
            self.signoff_detail = f"Question: {question}"
            self.decision_status = "in_progress"  # discussed again; the next version settles it

    # --- actions ---------------------------------------------------------------------------------------

    async def _actor(self):
        return await (await self.get_state(AuthState)).current_user()

    @rx.event
    def move(self, index: int, step: int):
        """Move an option up (-1) or down (+1) in my ranking."""
        target = index + step
        if 0 <= index < len(self.ballot) and 0 <= target < len(self.ballot):
            items = list(self.ballot)
            items[index], items[target] = items[target], items[index]
            self.ballot = items

    @rx.event
    def drop(self, old_index: int, new_index: int):
        """Drag to rank: the option dropped at `new_index` leaves `old_index`."""
        items = list(self.ballot)
        if 0 <= old_index < len(items) and 0 <= new_index < len(items):
            items.insert(new_index, items.pop(old_index))
            self.ballot = items

    @rx.event
    def toggle_approved(self, option_id: str):
        """Approve or un-approve an option (approval voting)."""
        self.approved = (
            [a for a in self.approved if a != option_id] if option_id in self.approved else [*self.approved, option_id]
        )

    @rx.event
    async def vote(self, choice: str = ""):
        """Send my ballot: one choice, my approved set, or my ranking; a second click in flight sends nothing."""
        if self.voting or not self.poll_id:
            return
        if self.poll_ranked:
            ranking = [o["id"] for o in self.ballot]
        elif self.poll_rule == "approval":
            ranking = [o["id"] for o in self.ballot if o["id"] in self.approved]
        else:
            ranking = [choice] if choice else []
        self.voting, self.vote_notice = True, ""
        yield
        try:
            await room.cast_vote(
                discussion_id=self._did,
                poll_id=self.poll_id,
                actor=await self._actor(),
                ranking=ranking,
                client_id=uuid.uuid4().hex,
            )
            texts = {o["id"]: o["text"] for o in self.ballot}
            self.my_vote = " > ".join(texts.get(r, r) for r in ranking)
        except (InputError, Forbidden, NotFound) as err:
            self.vote_notice = str(err)
        finally:
            self.voting = False

    @rx.event
    async def sign(self, form: dict):
        """The must-approve person answers the decision: approve, override or more discussion."""
        if self.signing or not self.decision_id:
            return
        outcome = str(form.get("outcome", "approved"))
        try:
            rounds = int(form.get("extra_rounds") or 1)
        except ValueError:
            self.signoff_notice = "Rounds must be a whole number."
            return
        self.signing, self.signoff_notice = True, ""
        yield
        try:
            await room.sign_off(
                discussion_id=self._did,
                decision_id=self.decision_id,
                actor=await self._actor(),
                outcome=outcome,
                conditions=str(form.get("conditions", "")),
                override_option=str(form.get("override_option", "")) or None,
                reason=str(form.get("reason", "")),
                question=str(form.get("question", "")),
                extra_rounds=rounds,
                client_id=str(form.get("client_id", "")) or uuid.uuid4().hex,
            )
        except InputError as err:
            self.signoff_notice = "; ".join(err.errors.values())
        except (Forbidden, NotFound) as err:
            self.signoff_notice = str(err)
        finally:
            self.signing = False
