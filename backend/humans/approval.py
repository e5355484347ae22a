"""The must-approve gate: the named person approves (with conditions), overrides, or asks for more discussion.

Only someone whose role holds the gate may act; exactly one outcome is recorded per decision (a unique constraint
decides a race, and the same click twice is recognised by its client id). Every outcome goes to the audit trail.
Asking for more discussion posts the question into the room, adds rounds and reopens it; the next synthesis is a
new version of the decision with its own gate.
"""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, func, select

from backend.db import session_scope
from backend.errors import Forbidden, InputError, NotFound
from backend.events.log import append_event
from backend.events.schema import DecisionSignedOff, HumanMessagePosted
from backend.humans import audit
from backend.humans.membership import authorize
from backend.humans.posts import append_post
from backend.humans.roles import Permission
from backend.memory import store as memory
from backend.models import Decision, Discussion, DiscussionStatus, Message, SignOff, SignOffOutcome, User
from backend.models.base import utcnow

MAX_EXTRA_ROUNDS = 5


def _validate(
    outcome: str,
    conditions: str,
    override_option: str | None,
    reason: str,
    question: str,
    rounds: int,
    options: list[str],
    chosen: str | None,
) -> None:
    errors: dict[str, str] = {}
    if outcome not in SignOffOutcome._value2member_map_:
        errors["outcome"] = "Choose approve, override or request more discussion."
    elif outcome == SignOffOutcome.APPROVED and chosen is None:
        errors["outcome"] = "Nothing was decided (deadlocked): override with an option or ask for more discussion."
    elif outcome == SignOffOutcome.OVERRIDDEN:
        if not override_option or override_option not in options:
            errors["override_option"] = f"Choose the option to go with instead: {', '.join(options) or '(none)'}."
        elif override_option == chosen:
            errors["override_option"] = "That is already the decision; approve it instead."
        if not reason.strip():
            errors["reason"] = "An override needs a reason."
    elif outcome == SignOffOutcome.MORE_DISCUSSION:
        if not question.strip():
            errors["question"] = "Write the question the room should discuss."
        if not 1 <= rounds <= MAX_EXTRA_ROUNDS:
            errors["extra_rounds"] = f"Reopen for 1 to {MAX_EXTRA_ROUNDS} rounds."
    for name, value, limit in (
        ("conditions", conditions, 4000),
        ("reason", reason, 4000),
        ("question", question, 2000),
    ):
        if len(value) > limit:
            errors[name] = f"This is {len(value):,} characters; the limit is {limit:,}."
    if errors:
        raise InputError(errors)


def _last_turn_round(session: Session, discussion_id: int) -> int:
    latest = session.exec(
        select(func.max(Message.round)).where(
            Message.discussion_id == discussion_id,
            Message.turn_key.is_not(None),  # type: ignore[union-attr]
        )
    ).one()
    return latest or 0


def sign_off(
    discussion_id: int,
    decision_id: int,
    actor: User | None,
    outcome: str,
    *,
    conditions: str = "",
    override_option: str | None = None,
    reason: str = "",
    question: str = "",
    extra_rounds: int = 1,
    client_id: str = "",
) -> tuple[DecisionSignedOff, HumanMessagePosted | None] | None:
    """Record the gate's one outcome; None for the same click delivered twice."""
    with session_scope() as s:
        discussion = s.get(Discussion, discussion_id, with_for_update=True)
        if discussion is None:
            raise NotFound(f"No discussion {discussion_id}.")
        participant = authorize(s, discussion_id, actor, Permission.APPROVE)
        if outcome == SignOffOutcome.OVERRIDDEN:  # setting the vote aside is a veto: its own permission
            authorize(s, discussion_id, actor, Permission.VETO)
        assert actor is not None and actor.id is not None
        decision = s.get(Decision, decision_id)
        if decision is None or decision.discussion_id != discussion_id:
            raise NotFound(f"No decision {decision_id} in this discussion.")
        existing = s.exec(select(SignOff).where(SignOff.decision_id == decision_id)).first()
        if existing is not None:
            if client_id and existing.client_id == client_id:
                return None
            raise InputError({"outcome": f"Already {existing.outcome.replace('_', ' ')} by {existing.actor_name}."})
        newest = s.exec(
            select(Decision.id).where(Decision.discussion_id == discussion_id).order_by(Decision.version.desc())  # type: ignore[attr-defined]
        ).first()
        if newest != decision_id:
            raise InputError({"outcome": "A newer version of this decision exists; sign that one off."})
        if discussion.status != DiscussionStatus.AWAITING_APPROVAL:
            raise Forbidden("This decision is not waiting for approval.")
        options = [o["text"] for o in decision.tally.get("options", [])]
        _validate(outcome, conditions, override_option, reason, question, extra_rounds, options, decision.chosen_option)
        rounds = extra_rounds if outcome == SignOffOutcome.MORE_DISCUSSION else 0
        row = SignOff(
            decision_id=decision_id,
            discussion_id=discussion_id,
            outcome=outcome,
            actor_user_id=actor.id,
            actor_name=participant.name,
            conditions=conditions.strip(),
            override_option=override_option if outcome == SignOffOutcome.OVERRIDDEN else None,
            reason=reason.strip(),
            question=question.strip(),
            extra_rounds=rounds,
            client_id=client_id[:80],
        )
        s.add(row)
        try:
            s.flush()
        except IntegrityError:  # another tab of the gate holder won the race: exactly one outcome stands
            s.rollback()
            raise InputError({"outcome": "This decision was signed off at the same moment elsewhere."}) from None
        posted: HumanMessagePosted | None = None
        if outcome == SignOffOutcome.MORE_DISCUSSION:
            # The new rounds follow the last one that ran (an early stop on consensus may have skipped some).
            discussion.rounds = _last_turn_round(s, discussion_id) + rounds
            discussion.status = DiscussionStatus.RUNNING
            text = f"(asking the room for more discussion, {rounds} more round{'s' * (rounds > 1)}) {row.question}"
            _message, posted = append_post(s, discussion_id, participant, text, client_id=None)
            # What memory remembered from this discussion no longer stands: never served again from now on.
            memory.forget_discussion(s, discussion_id, f"sent back for more discussion by {participant.name}")
        else:
            discussion.status = DiscussionStatus.COMPLETED
            s.add(discussion)
            memory.remember(s, discussion_id, decided_by=participant.name, override_option=row.override_option)
        discussion.updated_at = utcnow()
        s.add(discussion)
        detail = {
            SignOffOutcome.APPROVED: conditions.strip() and f"conditions: {conditions.strip()}",
            SignOffOutcome.OVERRIDDEN: f"{override_option} instead of {decision.chosen_option}: {reason.strip()}",
            SignOffOutcome.MORE_DISCUSSION: f"{rounds} more round(s): {question.strip()}",
        }.get(outcome, "")
        audit.record(
            s,
            actor=actor,
            action=f"decision.{outcome}",
            discussion_id=discussion_id,
            target=decision.title,
            previous="awaiting approval",
            new=f"{outcome}" + (f" — {detail}" if detail else ""),
        )
        signed = append_event(
            s,
            DecisionSignedOff(
                discussion_id=discussion_id,
                decision_id=decision_id,
                outcome=outcome,
                actor_name=participant.name,
                conditions=row.conditions,
                override_option=row.override_option,
                reason=row.reason,
                question=row.question,
                extra_rounds=rounds,
            ),
        )
        return signed, posted  # type: ignore[return-value]


def revisit(discussion_id: int, actor: User | None, *, question: str, extra_rounds: int = 1) -> HumanMessagePosted:
    """Send a settled decision back for more discussion: the must-approve person, or the owner, reopens the room.

    The decision stops standing at once: memory stops serving it in this transaction. The next run drafts a new
    version of the decision, with its own vote and gate."""
    with session_scope() as s:
        discussion = s.get(Discussion, discussion_id, with_for_update=True)
        if discussion is None:
            raise NotFound(f"No discussion {discussion_id}.")
        try:
            participant = authorize(s, discussion_id, actor, Permission.APPROVE)
        except Forbidden:
            participant = authorize(s, discussion_id, actor, Permission.MANAGE)
        assert actor is not None
        decision = s.exec(
            select(Decision).where(Decision.discussion_id == discussion_id).order_by(Decision.version.desc())  # type: ignore[attr-defined]
        ).first()
        if decision is None or discussion.status != DiscussionStatus.COMPLETED:
            raise InputError({"question": "Only a settled decision can be sent back; this one is not settled."})
        # The same rules as sending it back at its sign-off.
        _validate(SignOffOutcome.MORE_DISCUSSION, "", None, "", question, extra_rounds, [], decision.chosen_option)
        decision.reopened = True
        s.add(decision)
        discussion.rounds = _last_turn_round(s, discussion_id) + extra_rounds
        discussion.status = DiscussionStatus.RUNNING
        discussion.updated_at = utcnow()
        s.add(discussion)
        memory.forget_discussion(s, discussion_id, f"sent back for more discussion by {participant.name}")
        text = (
            f"(sending the decision back for more discussion, {extra_rounds} more round{'s' * (extra_rounds > 1)}) "
            f"{question.strip()}"
        )
        _message, posted = append_post(s, discussion_id, participant, text, client_id=None)
        audit.record(
            s,
            actor=actor,
            action="decision.revisit",
            discussion_id=discussion_id,
            target=decision.title,
            previous="completed",
            new=f"{extra_rounds} more round(s): {question.strip()[:300]}",
        )
        return posted
