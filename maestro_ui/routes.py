"""Route constants and builders."""

INDEX = "/"
NEW = "/new"
PERSONAS = "/personas"
ROOM = "/room/[discussion_id]"


def room(discussion_id: int) -> str:
    """The room page of a discussion."""
    return f"/room/{discussion_id}"
