"""Roles in a discussion and what each may do. The service layer checks these for every action."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    OBSERVER = "observer"  # reads
    CONTRIBUTOR = "contributor"  # writes, answers prompts routed to contributors
    DECISION_MAKER = "decision_maker"  # also votes (weight configurable)
    MUST_APPROVE = "must_approve"  # holds the final approval gate


class Permission(StrEnum):
    MESSAGE = "can_message"
    ANSWER = "can_answer"
    VOTE = "can_vote"
    VETO = "can_veto"
    APPROVE = "must_approve"
    # The discussion's owner (its creator) may also invite, run agents and ask the room questions.
    MANAGE = "can_manage"


ROLE_LABELS = {
    Role.OBSERVER: "Observer",
    Role.CONTRIBUTOR: "Contributor",
    Role.DECISION_MAKER: "Decision maker",
    Role.MUST_APPROVE: "Must approve",
}

_GRANTS: dict[Role, frozenset[Permission]] = {
    Role.OBSERVER: frozenset(),
    Role.CONTRIBUTOR: frozenset({Permission.MESSAGE, Permission.ANSWER}),
    Role.DECISION_MAKER: frozenset({Permission.MESSAGE, Permission.ANSWER, Permission.VOTE}),
    Role.MUST_APPROVE: frozenset(
        {Permission.MESSAGE, Permission.ANSWER, Permission.VOTE, Permission.VETO, Permission.APPROVE}
    ),
}

_REFUSALS = {
    Permission.MESSAGE: "write in this discussion",
    Permission.ANSWER: "answer prompts in this discussion",
    Permission.VOTE: "vote in this discussion",
    Permission.VETO: "veto in this discussion",
    Permission.APPROVE: "approve this discussion's decision",
    Permission.MANAGE: "manage this discussion (only its owner can)",
}


def parse_role(value: str) -> Role:
    """The role named `value`, or a ValueError listing the valid ones."""
    try:
        return Role(value)
    except ValueError:
        raise ValueError(f"Unknown role '{value}'; choose one of: {', '.join(r.value for r in Role)}.") from None


def permissions(role: str | None, *, is_owner: bool = False) -> frozenset[Permission]:
    """What a participant with `role` may do."""
    granted = _GRANTS.get(Role(role), frozenset()) if role in Role._value2member_map_ else frozenset()
    return granted | {Permission.MANAGE} if is_owner else granted


def refusal(role: str | None, permission: Permission) -> str:
    """A clear message for an action the role does not allow."""
    if role not in Role._value2member_map_:
        return f"You are not a member of this discussion, so you cannot {_REFUSALS[permission]}."
    return f"As {ROLE_LABELS[Role(role)].lower()} you cannot {_REFUSALS[permission]}."
