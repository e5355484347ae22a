"""DeliberationState: the room's consensus panel, the vote and the decision card, built from the event log.

A substate of its own, so a vote or a new consensus report does not resend the transcript, and streaming does not
resend these panels. RoomState's follower hands it the deliberation events, which maestro_ui/projection/
deliberation.py turns into this view; actions go through the service layer with the actor resolved from the server
session.
"""

from __future__ import annotations

import uuid

import reflex as rx

from backend.errors import Forbidden, InputError, NotFound
from backend.events.schema import RoomEvent
from backend.services import room
from maestro_ui.projection.deliberation import (
    VIEW_FIELDS,
    DeliberationView,
    DissentRow,
    MatrixRow,
    OptionRow,
    StanceRow,
    StepRow,
    VoterRow,
    project_deliberation,
    with_decision,
)
from maestro_ui.state.auth import AuthState

__all__ = ["DeliberationState", "DissentRow", "MatrixRow", "OptionRow", "StanceRow", "StepRow", "VoterRow"]

# DeliberationView's fields -> the vars that hold them.
_VIEW_VARS = {name: "_positions" if name == "positions" else name for name in VIEW_FIELDS}


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
    send_back_notice: str = ""

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

    def _view(self) -> DeliberationView:
        return DeliberationView(**{name: self.get_value(var) for name, var in _VIEW_VARS.items()})

    def _apply_all(self, events: list[RoomEvent]) -> None:
        """Project the deliberation events onto this panel; only the vars that changed are written (and sent)."""
        self._write(project_deliberation(self._view(), events))

    def _show_decision(self, card: dict) -> None:
        """Show one decision card (its own page), whatever room this tab showed before."""
        self._write(with_decision(self._view(), card))

    def _write(self, view: DeliberationView) -> None:
        for name, var in _VIEW_VARS.items():
            value = getattr(view, name)
            if value != self.get_value(var):
                setattr(self, var, value)

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

    @rx.event
    async def send_back(self, form: dict):
        """A settled decision sent back for more discussion (the must-approve person or the owner): memory stops
        serving it at once and the agents run again."""
        if self.signing or not self.decision_id:
            return
        try:
            rounds = int(form.get("extra_rounds") or 1)
        except ValueError:
            self.send_back_notice = "Rounds must be a whole number."
            return
        self.signing, self.send_back_notice = True, ""
        yield
        try:
            await room.revisit(
                discussion_id=self._did,
                actor=await self._actor(),
                question=str(form.get("question", "")),
                extra_rounds=rounds,
            )
        except InputError as err:
            self.send_back_notice = "; ".join(err.errors.values())
        except (Forbidden, NotFound) as err:
            self.send_back_notice = str(err)
        finally:
            self.signing = False
