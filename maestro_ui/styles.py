"""Shared look: page width, card style, status colours."""

PAGE = {"width": "100%", "max_width": "1100px", "margin_x": "auto", "padding": ["12px", "16px", "24px"]}

STATUS_COLOR = {
    "idle": "gray",
    "thinking": "amber",
    "streaming": "blue",
    "done": "green",
    "error": "red",
    "draft": "gray",
    "running": "blue",
    "completed": "green",
    "failed": "red",
}
