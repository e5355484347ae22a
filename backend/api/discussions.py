"""The REST API over the room: create a discussion, read it, post, run and stop the agents, answer, vote, sign off.

Every route is a thin call into the same services the web room uses (backend/services/room.py), so roles, closed
discussions, idempotent client ids and message limits hold here exactly as they do in the browser. A discussion a
person is not in answers 404, as an unknown one does: which discussions exist is not leaked.

GET /api/discussions/{id} gives the newest 200 finished messages, in log order, never the whole transcript.
`?limit=` asks for 1 to 500; `?before=<seq>` gives the page of messages older than that seq, `?after=<seq>` the
oldest ones newer than it (to catch up). `messages_page` says what lies outside the page:
`{"limit", "has_more_before", "has_more_after", "next_before", "next_after"}`, where `next_before` (the seq of the
page's first message) is the `before=` of the previous page, and `next_after` (its last) the `after=` of the next,
each null when there is nothing that way. Pages are cut on seq, so messages that arrive meanwhile shift nothing.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query
from pydantic import BeforeValidator, Field
from starlette.responses import JSONResponse

from backend.db import run_db
from backend.deliberation import decisions
from backend.errors import Forbidden, NotFound
from backend.humans import polls, prompts
from backend.memory.results import Recall, Remembered
from backend.models import Message, Participant
from backend.services import discussions, memory, preflight, room, transcript
from backend.services.discussion_input import agent_specs

from .http import MAX_ID, Actor, ApiError, InDiscussion, ItemId, api_router, errors
from .memory import look_up, remembered
from .schemas import (
    AnswerIn,
    ChecklistOut,
    CreatedDiscussionOut,
    DiscussionListOut,
    DiscussionOut,
    InviteIn,
    MessageIn,
    MessageOut,
    NewDiscussionIn,
    NotReadyOut,
    ParticipantOut,
    RevisitIn,
    RunOut,
    SignOffIn,
    StatusOut,
    VoteIn,
)

router = api_router(prefix="/api/discussions", tags=["discussions"], responses=errors(401, 403, 404, 422, 429))
ONE = "/{discussion_id:int}"
WRITES = errors(413)  # a route that takes a body may also be sent one too big


def _blank_is_none(value: Any) -> Any:
    return None if value == "" else value  # `?limit=` with nothing after it means no limit given, as before


# The bounds sit on the int itself: on the optional whole, pydantic would compare a blank (None) with them (a 500).
Seq = Annotated[Annotated[int, Field(ge=0, le=MAX_ID)] | None, BeforeValidator(_blank_is_none), Query()]
Limit = Annotated[int, BeforeValidator(lambda v: transcript.DEFAULT_LIMIT if v == "" else v)]


def _participant(p: Participant) -> dict:
    agent = p.kind == "agent"
    return {
        "id": p.id,
        "kind": p.kind,
        "name": p.name,
        **(
            {"persona": p.persona_key, "provider": p.provider, "model": p.model}
            if agent
            else {"role": p.role, "vote_weight": p.vote_weight, "is_owner": p.is_owner}
        ),
    }


def _message(m: Message) -> dict:
    return {
        "id": m.id,
        "seq": m.seq,
        "author": m.author_name,
        "author_kind": m.author_kind,
        "participant_id": m.participant_id,
        "round": m.round,
        "status": m.status,
        "content": m.content,
        "error": None if m.status != "failed" else {"kind": m.error_kind, "message": m.error_message},
        "provider": m.provider,
        "model": m.model,
        "input_tokens": m.input_tokens,
        "output_tokens": m.output_tokens,
        "tokens_estimated": m.tokens_estimated,
        "cost_usd": m.cost_usd,
        "latency_ms": m.latency_ms,
    }


def _edge(seq: int | None, cursor: int | None, step: int) -> int | None:
    """The cursor for the next page one way: the page's edge seq, or just past the cursor of an empty page."""
    return seq if seq is not None else (cursor + step if cursor is not None else None)


def _detail(
    discussion_id: int, *, before: int | None = None, after: int | None = None, limit: int = transcript.DEFAULT_LIMIT
) -> dict:
    """Everything a client needs to follow and act: people, a page of messages (the newest by default), what
    waits for an answer, the decision."""
    d = discussions.get_discussion(discussion_id)
    page = transcript.list_messages_page(discussion_id, before=before, after=after, limit=limit)
    seqs = [m.seq for m in page.messages]
    return {
        "id": d.id,
        "topic": d.topic,
        "status": d.status,
        "pause_reason": d.pause_reason,
        "protocol": d.protocol,
        "rounds": d.rounds,
        "last_seq": d.last_seq,
        "participants": [_participant(p) for p in discussions.list_participants(discussion_id)],
        "messages": [_message(m) for m in page.messages],
        "messages_page": {
            "limit": limit,
            "has_more_before": page.has_more_before,
            "has_more_after": page.has_more_after,
            "next_before": _edge(seqs[0] if seqs else None, after, +1) if page.has_more_before else None,
            "next_after": _edge(seqs[-1] if seqs else None, before, -1) if page.has_more_after else None,
        },
        "prompts": [
            {
                "id": p.id,
                "kind": p.kind,
                "prompt": p.prompt,
                "options": p.options,
                "target_roles": p.target_roles,
                "target_users": p.target_users,
                "blocking": p.blocking,
                "deadline_at": p.deadline_at.isoformat(),
            }
            for p in prompts.open_prompts(discussion_id)
        ],
        "polls": [
            {
                "id": p.id,
                "question": p.question,
                "rule": p.rule,
                "options": p.options,
                "deadline_at": p.deadline_at.isoformat(),
            }
            for p in polls.open_polls(discussion_id)
        ],
        "decision": decisions.latest(discussion_id),
        "context": d.context or {},
        "memory_entry_id": d.memory_entry_id,
    }


@router.get("", response_model=DiscussionListOut, summary="The discussions you are in, newest first")
async def list_discussions(user: Actor) -> dict:
    rows = await run_db(discussions.list_discussions, 100, user.id)
    return {"discussions": [r.__dict__ for r in rows]}


@router.post("", status_code=201, response_model=CreatedDiscussionOut, responses=WRITES, summary="Create a discussion")
async def create(body: NewDiscussionIn, user: Actor) -> dict:
    """Create a discussion owned by the caller; 201 with the whole discussion, or 422 naming each bad field.

    Unless `fresh`, memory is checked first: when the same question was settled in the same context in a discussion
    the caller is in, the new discussion is answered from that result (completed at once, no agent runs) and
    `memory.reused` is true; otherwise `memory` says what it found (related decisions, near-misses refused) or why
    it is unavailable, and the discussion is created as asked."""
    specs = await run_db(agent_specs, body.agents)
    context = body.context.raw() if body.context else None
    looking = not body.fresh and body.topic.strip()  # a blank topic is refused below, with every other bad field
    found = await run_db(look_up, body.topic, context, user) if looking else None
    if found is not None and found.hit is not None:
        hit = found.hit
        try:
            reused = await run_db(
                lambda: memory.reuse(
                    hit.entry_id, question=body.topic, context=context, actor=user, owner_role=body.role
                )
            )
        except (NotFound, Forbidden):  # sent back or forgotten since the check: run it fresh instead
            found = Recall(related=found.related, refused=found.refused)
        else:
            assert reused.id is not None
            return {**await run_db(_detail, reused.id), "memory": _reused(hit)}
    fields = body.model_dump(exclude={"agents", "role", "checkpoints", "context", "fresh"})
    fields["checkpoints"] = [c.model_dump(exclude_none=True) for c in body.checkpoints]
    discussion = await run_db(
        lambda: discussions.create_discussion(agents=specs, owner=user, owner_role=body.role, context=context, **fields)
    )
    assert discussion.id is not None
    return {**await run_db(_detail, discussion.id), "memory": _fresh(found)}


def _reused(hit: Remembered) -> dict:
    return {
        "reused": True,
        "entry_id": hit.entry_id,
        "source_discussion_id": hit.discussion_id,
        "match_percent": hit.match_percent,
        "saves_usd": hit.saves_usd,
        "saves_tokens": hit.saves_tokens,
        "saves_seconds": hit.saves_seconds,
        "decided_at": hit.decided_at.isoformat(),
        "decided_by": hit.decided_by,
        "outcome": hit.outcome,
    }


def _fresh(found: Recall | None) -> dict:
    return {
        "reused": False,
        "checked": found is not None and found.unavailable is None,
        "refused_near_misses": len(found.refused) if found else 0,
        "unavailable": found.unavailable if found else None,
        "related": [remembered(r) for r in found.related] if found else [],
    }


@router.get(ONE, response_model=DiscussionOut, summary="A discussion with a page of its messages")
async def show(
    the: InDiscussion,
    limit: Annotated[Limit, Query(ge=1, le=transcript.MAX_LIMIT)] = transcript.DEFAULT_LIMIT,
    before: Seq = None,
    after: Seq = None,
) -> dict:
    """The discussion with a page of its messages: the newest `limit`, or those before or after a seq."""
    transcript.check_page(before=before, after=after, limit=limit)
    return await run_db(lambda: _detail(the.discussion_id, before=before, after=after, limit=limit))


@router.post(ONE + "/messages", status_code=201, response_model=MessageOut, responses=WRITES, summary="Post")
async def post_message(body: MessageIn, the: InDiscussion) -> dict:
    """Post as the caller (roles decide whether they may); the same client_id twice posts once."""
    message = await room.post_message(
        discussion_id=the.discussion_id, actor=the.user, content=body.content, client_id=body.client_id
    )
    return _message(message)


@router.post(
    ONE + "/people", status_code=201, response_model=ParticipantOut, responses=WRITES, summary="Invite a person"
)
async def invite(body: InviteIn, the: InDiscussion) -> dict:
    """Add a person by username with a role, or change their role (the owner only)."""
    participant = await room.invite(
        discussion_id=the.discussion_id, actor=the.user, username=body.username, role=body.role, weight=body.weight
    )
    return _participant(participant)


@router.get(ONE + "/preflight", response_model=ChecklistOut, summary="The checklist that gates running the agents")
async def check(the: InDiscussion, fresh: Annotated[str | None, Query(max_length=8)] = None) -> dict:
    """The preflight checklist (what gates Run Agents), with how to fix each failing item; `?fresh=1` checks the
    providers again instead of reusing a recent answer."""
    return _checklist(await preflight.run_preflight(the.discussion_id, fresh=fresh == "1"))


def _checklist(result: preflight.Preflight) -> dict:
    return {
        "ready": result.ready,
        "score": result.score,
        "items": [
            {"key": i.key, "label": i.label, "required": i.required, "status": i.status, "detail": i.detail}
            for i in result.items
        ],
    }


@router.post(
    ONE + "/run",
    status_code=202,
    response_model=RunOut,
    responses={409: {"model": NotReadyOut, "description": "Not ready: the failing checklist, or why not now."}},
    summary="Run (or resume) the agents",
)
async def run(the: InDiscussion) -> dict | JSONResponse:
    """Run (or resume) the agents, as the Run Agents button does: the owner only, once the preflight checklist
    passes (409 with the checklist otherwise)."""
    try:
        problem = await room.run_agents(the.discussion_id, the.user)
    except preflight.NotReady as err:
        return JSONResponse({"error": str(err), **_checklist(err.result)}, status_code=409)
    if problem:
        raise ApiError(409, problem)
    return {"status": "running", "events": f"/api/discussions/{the.discussion_id}/events"}


@router.post(ONE + "/stop", status_code=202, response_model=StatusOut, summary="Stop the agents")
async def stop(the: InDiscussion) -> dict:
    await room.stop(discussion_id=the.discussion_id, actor=the.user)
    return {"status": "stopping"}


@router.post(
    ONE + "/prompts/{prompt_id:int}/answer", response_model=StatusOut, responses=WRITES, summary="Answer a prompt"
)
async def answer(body: AnswerIn, the: InDiscussion, prompt_id: ItemId) -> dict:
    """Answer a prompt routed to the caller; the first answer wins."""
    await room.answer_prompt(
        discussion_id=the.discussion_id, prompt_id=prompt_id, actor=the.user, value=body.value, client_id=body.client_id
    )
    return {"status": "answered"}


@router.post(ONE + "/polls/{poll_id:int}/votes", response_model=StatusOut, responses=WRITES, summary="Vote")
async def vote(body: VoteIn, the: InDiscussion, poll_id: ItemId) -> dict:
    """Vote (or change a vote) in an open poll: one current vote per person, history kept."""
    await room.cast_vote(
        discussion_id=the.discussion_id,
        poll_id=poll_id,
        actor=the.user,
        ranking=body.ranking,
        client_id=body.client_id,
        reason=body.reason,
    )
    return {"status": "voted"}


@router.post(
    ONE + "/decisions/{decision_id:int}/sign-off",
    response_model=dict[str, Any],
    responses=WRITES,
    summary="Sign off a decision",
)
async def sign_off(body: SignOffIn, the: InDiscussion, decision_id: ItemId) -> dict:
    """The must-approve person's answer to a decision: approve, override or send back for more discussion; the
    decision card as it now stands."""
    await room.sign_off(discussion_id=the.discussion_id, decision_id=decision_id, actor=the.user, **body.model_dump())
    return await run_db(decisions.get_card, decision_id)


@router.post(
    ONE + "/decision/revisit", status_code=202, response_model=StatusOut, responses=WRITES, summary="Send back"
)
async def revisit(body: RevisitIn, the: InDiscussion) -> dict:
    """Send a settled decision back for more discussion (the must-approve person or the owner): memory stops serving
    it at once, the agents run the extra rounds and the room decides a new version."""
    await room.revisit(
        discussion_id=the.discussion_id, actor=the.user, question=body.question, extra_rounds=body.extra_rounds
    )
    return {"status": "running"}
