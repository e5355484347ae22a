"""Shared look: page width, card style, status colours."""

PAGE = {"width": "100%", "max_width": "1100px", "margin_x": "auto", "padding": ["12px", "16px", "24px"]}

STATUS_COLOR = {
    "idle": "gray",
    "queued": "gray",
    "thinking": "amber",
    "streaming": "blue",
    "slow": "orange",
    "retrying": "orange",
    "done": "green",
    "failed": "red",
    "paused": "orange",
    "draft": "gray",
    "running": "blue",
    "completed": "green",
    "awaiting_approval": "violet",
    "decided": "green",
    "deadlocked": "orange",
    "in_progress": "blue",
}
