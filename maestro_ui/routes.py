"""Route constants and builders."""

INDEX = "/"
NEW = "/new"
PERSONAS = "/personas"
ROOM = "/room/[discussion_id]"
AUDIT = "/room/[discussion_id]/audit"
JOIN = "/join/[join_token]"
LOGIN = "/login"
SIGNUP = "/signup"
DECISIONS = "/decisions"
DECISION = "/decision/[decision_id]"
ADMIN = "/admin"
ACCOUNT = "/account"
MEMORY = "/memory"


def room(discussion_id: int) -> str:
    """The room page of a discussion."""
    return f"/room/{discussion_id}"


def audit(discussion_id: int) -> str:
    """The audit trail of a discussion."""
    return f"/room/{discussion_id}/audit"


def join(token: str) -> str:
    """A join link's path."""
    return f"/join/{token}"


def decision(decision_id: int) -> str:
    """A decision's own page."""
    return f"/decision/{decision_id}"
