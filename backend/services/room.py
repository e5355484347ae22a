"""Async room actions shared by the web room, the API and the CLI: persist, then tell every viewer."""

from __future__ import annotations

from backend.db import run_db
from backend.events.bus import get_bus
from backend.events.schema import Presence, Typing
from backend.humans import approval, membership, polls, presence, prompts, rate_limits
from backend.humans.roles import Permission
from backend.models import Message, Participant, User
from backend.orchestrator.runner import get_runner
from backend.services import discussions, preflight


async def post_message(
    *, discussion_id: int, actor: User | None, content: str, client_id: str | None = None
) -> Message:
    """Post a person's message and publish it; a duplicate `client_id` returns the first message, publishes nothing."""
    message, event = await run_db(
        lambda: discussions.post_human_message(
            discussion_id=discussion_id, actor=actor, content=content, client_id=client_id
        )
    )
    if event is not None:
        await get_bus().publish(event)
    return message


async def answer_prompt(
    *, discussion_id: int, prompt_id: int, actor: User | None, value: str, client_id: str | None = None
) -> None:
    """Answer a prompt (first answer wins) and tell the room; the engine picks the answer up on its own."""
    event = await run_db(prompts.answer, discussion_id, prompt_id, actor, value, client_id)
    if event is not None:
        await get_bus().publish(event)


async def ask(*, discussion_id: int, actor: User | None, **fields) -> None:
    """The owner asks the room a typed question (blocking ones hold the agents)."""
    await get_bus().publish(await run_db(lambda: prompts.ask(discussion_id, actor, **fields)))


async def invite(
    *, discussion_id: int, actor: User | None, username: str, role: str, weight: float | None = None
) -> Participant:
    """Add a person by username with a role (or change their role), and tell the room."""
    participant, event = await run_db(membership.invite, discussion_id, actor, username, role, weight)
    await get_bus().publish(event)
    return participant


async def create_join_link(
    *, discussion_id: int, actor: User | None, role: str, expires_in_days: float = 7, max_uses: int | None = None
) -> str:
    """A new join link's token (the owner only; observer or contributor); shown once, stored hashed."""
    return await run_db(
        lambda: membership.create_join_link(
            discussion_id, actor, role, expires_in_days=expires_in_days, max_uses=max_uses
        )
    )


async def list_join_links(*, discussion_id: int, actor: User | None) -> list[membership.JoinLink]:
    """The room's join links, without their tokens (the owner only)."""
    return await run_db(membership.list_join_links, discussion_id, actor)


async def revoke_join_link(*, discussion_id: int, link_id: int, actor: User | None) -> None:
    """Stop a join link letting anyone else in (the owner only)."""
    await run_db(membership.revoke_join_link, discussion_id, link_id, actor)


async def join(*, token: str, actor: User | None) -> Participant:
    """Join with a link; the room hears of it once."""
    participant, event = await run_db(membership.join, token, actor)
    if event is not None:
        await get_bus().publish(event)
    return participant


async def heartbeat(*, discussion_id: int, participant_id: int) -> None:
    """A tab of this person is following the room: every viewer hears it (a tiny ephemeral event per beat), so a
    viewer that joined later still sees them online."""
    await run_db(presence.beat, participant_id)
    await get_bus().publish(Presence(discussion_id=discussion_id, participant_id=participant_id, state="online"))


async def typing(*, discussion_id: int, participant_id: int, name: str) -> None:
    """Tell the room this person is typing (ephemeral, never stored)."""
    await get_bus().publish(Typing(discussion_id=discussion_id, participant_id=participant_id, name=name))


async def retry_turn(*, discussion_id: int, message_id: int, actor: User | None) -> None:
    """Run one failed agent turn again, alone (anyone who may write; reopening a finished discussion is the
    owner's call); the rest of the discussion is unchanged."""
    who = await run_db(membership.require, discussion_id, actor, Permission.MESSAGE)
    event = await run_db(
        lambda: discussions.request_retry(
            discussion_id=discussion_id, message_id=message_id, requested_by=who.name, actor=actor
        )
    )
    await get_bus().publish(event)
    await get_runner().start(discussion_id)  # False when an engine is already running: it picks the retry up


async def set_budget(
    *, discussion_id: int, actor: User | None, budget_tokens: int | None, budget_usd: float | None
) -> None:
    """Change the budgets (owner only); a discussion paused by its budget continues with Run Agents. Every open tab
    hears of it (`BudgetChanged`), so their checklists re-check the budget."""
    await run_db(membership.require, discussion_id, actor, Permission.MANAGE)
    _discussion, event = await run_db(
        lambda: discussions.change_budget(
            discussion_id=discussion_id, budget_tokens=budget_tokens, budget_usd=budget_usd, actor=actor
        )
    )
    if event is not None:
        await get_bus().publish(event)


async def run_agents(discussion_id: int, actor: User | None) -> str | None:
    """Ask the runner to start (or resume) the discussion (owner only) once the preflight checklist passes (raises
    preflight.NotReady otherwise, whatever the page showed); a reason when it did not start."""
    await run_db(membership.require, discussion_id, actor, Permission.MANAGE)
    discussion = await run_db(discussions.get_discussion, discussion_id)
    runner = get_runner()
    if discussion.status in ("completed", "failed"):
        return f"This discussion has already {'finished' if discussion.status == 'completed' else 'failed'}."
    if runner.is_running(discussion_id):
        return None  # already running here: a second click changes nothing
    checklist = await preflight.run_preflight(discussion_id)
    if not checklist.ready:
        raise preflight.NotReady(checklist)
    if actor is not None:  # each start may spend: limited per person (a click on a running room is not one)
        rate_limits.hit("run", actor.id)
    if not await runner.start(discussion_id):
        return None if runner.is_running(discussion_id) else "Another server is already running this discussion."
    return None


async def cast_vote(
    *, discussion_id: int, poll_id: int, actor: User | None, ranking: list[str], client_id: str, reason: str = ""
) -> None:
    """A person votes (or changes their vote); the engine closes the poll once everyone has voted."""
    event = await run_db(polls.cast_vote, discussion_id, poll_id, actor, ranking, client_id, reason)
    if event is not None:
        await get_bus().publish(event)


async def sign_off(*, discussion_id: int, decision_id: int, actor: User | None, outcome: str, **fields) -> None:
    """The must-approve person's answer; "more discussion" reopens the room and starts the agents again."""
    done = await run_db(lambda: approval.sign_off(discussion_id, decision_id, actor, outcome, **fields))
    if done is None:
        return  # the same click twice
    signed, posted = done
    if posted is not None:
        await get_bus().publish(posted)
    await get_bus().publish(signed)
    if signed.outcome == "more_discussion":
        await get_runner().start(discussion_id)


async def revisit(*, discussion_id: int, actor: User | None, question: str, extra_rounds: int = 1) -> None:
    """A settled decision sent back for more discussion: memory stops serving it and the agents start again."""
    posted = await run_db(lambda: approval.revisit(discussion_id, actor, question=question, extra_rounds=extra_rounds))
    await get_bus().publish(posted)
    await get_runner().start(discussion_id)


async def stop(*, discussion_id: int, actor: User | None) -> None:
    """The owner stops the agents after the turn in flight; every viewer sees why."""
    await get_bus().publish(await run_db(lambda: discussions.stop(discussion_id=discussion_id, actor=actor)))
