"""Async room actions shared by the web room, the API and the CLI: persist, then tell every viewer."""

from __future__ import annotations

from backend.db import run_db
from backend.events.bus import get_bus
from backend.models import Message
from backend.orchestrator.runner import get_runner
from backend.services import discussions


async def post_message(*, discussion_id: int, author_name: str, content: str, client_id: str | None = None) -> Message:
    """Post a human message and publish it; a duplicate `client_id` returns the first message, publishes nothing."""
    message, event = await run_db(
        lambda: discussions.post_human_message(
            discussion_id=discussion_id, author_name=author_name, content=content, client_id=client_id
        )
    )
    if event is not None:
        await get_bus().publish(event)
    return message


async def retry_turn(*, discussion_id: int, message_id: int, requested_by: str = "") -> None:
    """Run one failed agent turn again, alone; the rest of the discussion is unchanged."""
    event = await run_db(
        lambda: discussions.request_retry(discussion_id=discussion_id, message_id=message_id, requested_by=requested_by)
    )
    await get_bus().publish(event)
    await get_runner().start(discussion_id)  # False when an engine is already running: it picks the retry up


async def set_budget(*, discussion_id: int, budget_tokens: int | None, budget_usd: float | None) -> None:
    """Change the budgets; a discussion paused by its budget continues with Run Agents."""
    await run_db(
        lambda: discussions.set_budget(discussion_id=discussion_id, budget_tokens=budget_tokens, budget_usd=budget_usd)
    )


async def run_agents(discussion_id: int) -> str | None:
    """Ask the runner to start (or resume) the discussion; a reason when it did not start, else None."""
    discussion = await run_db(discussions.get_discussion, discussion_id)
    runner = get_runner()
    if discussion.status in ("completed", "failed"):
        return f"This discussion has already {'finished' if discussion.status == 'completed' else 'failed'}."
    if runner.is_running(discussion_id):
        return None  # already running here: a second click changes nothing
    if not await runner.start(discussion_id):
        return None if runner.is_running(discussion_id) else "Another server is already running this discussion."
    return None
