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

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from backend import preflight
from backend.db import run_db
from backend.deliberation import decisions, polls
from backend.humans import prompts
from backend.models import Message, Participant
from backend.services import discussions, room, transcript
from backend.services.discussions import AgentSpec
from backend.services.personas import agent_spec, defaults_by_key

from .http import ApiError, actor, endpoint, member_request, path_int, read_json


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt field is an error, not silently ignored


class AgentIn(_Body):
    """An agent: a persona, on its own mapped provider and model unless `provider` (and `model`) say otherwise."""

    persona: str = Field(max_length=64)
    provider: str | None = Field(default=None, max_length=40)
    model: str | None = Field(default=None, max_length=200)
    base_url: str | None = Field(default=None, max_length=500)


class CheckpointIn(_Body):
    """A question the protocol asks people after a round (e.g. the decision maker's choice); blocking by default."""

    after_round: int = 1
    kind: str = Field(default="choice", description="approval | choice | feedback | clarification")
    prompt: str = Field(max_length=2000)
    options: list[str] = Field(default_factory=list, max_length=20)
    target_roles: list[str] = Field(default_factory=lambda: ["decision_maker"], max_length=4)
    deadline_s: float = 300
    default: str | None = Field(default=None, max_length=2000)
    blocking: bool = True


class DiscussionIn(_Body):
    topic: str = Field(max_length=2000)
    agents: list[AgentIn] = Field(default_factory=list, max_length=12)
    rounds: int = 2
    protocol: str = "round_robin"
    role: str = Field(default="contributor", description="the creator's own role in the discussion")
    max_tokens_per_turn: int | None = None
    budget_tokens: int | None = None
    budget_usd: float | None = None
    parallel_openings: bool = False
    human_turns: bool = False
    vote_rule: str | None = None
    vote_options: list[str] = Field(default_factory=list, max_length=20)
    exclude_own_vote: bool = False
    vote_deadline_s: int = 300
    stop_on_consensus: bool = False
    track_consensus: bool = False
    checkpoints: list[CheckpointIn] = Field(default_factory=list, max_length=10)


class MessageIn(_Body):
    content: str
    client_id: str | None = Field(default=None, max_length=80, description="send the same id again: posted once")


class AnswerIn(_Body):
    value: str
    client_id: str | None = Field(default=None, max_length=80)


class VoteIn(_Body):
    ranking: list[str] = Field(max_length=50, description="option ids, best first (approval: the approved ones)")
    reason: str = Field(default="", max_length=2000)
    client_id: str = Field(default="api", max_length=80)


class InviteIn(_Body):
    username: str = Field(max_length=200)
    role: str = Field(description="observer | contributor | decision_maker | must_approve")
    weight: float | None = Field(default=None, description="a decision maker's vote weight")


class SignOffIn(_Body):
    outcome: str = Field(description="approved | overridden | more_discussion")
    conditions: str = ""
    override_option: str | None = None
    reason: str = ""
    question: str = ""
    extra_rounds: int = 1
    client_id: str = Field(default="", max_length=80)


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


def _page_query(request: Request) -> dict[str, int | None]:
    """`limit`, `before` and `after` from the query string; a value that is not a whole number is a 422."""
    values: dict[str, int | None] = {}
    for name in ("limit", "before", "after"):
        raw = request.query_params.get(name)
        if raw is None or raw == "":
            continue
        if not raw.isdigit() or len(raw) > 18:
            raise ApiError(422, f"?{name}= must be a whole number.", {name: "Must be a whole number."})
        values[name] = int(raw)
    transcript.check_page(
        before=values.get("before"), after=values.get("after"), limit=values.get("limit", transcript.DEFAULT_LIMIT)
    )
    return values


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
    }


@endpoint
async def list_discussions(request: Request) -> Response:
    user = await actor(request)
    rows = await run_db(discussions.list_discussions, 100, user.id)
    return JSONResponse({"discussions": [r.__dict__ for r in rows]})


def _specs(agents: list[AgentIn]) -> list[AgentSpec]:
    """Each agent on what the request names, else on its persona's own provider and model (as the form does)."""
    mapped = defaults_by_key()
    return [agent_spec(a.persona, a.provider, (a.model or "").strip() or None, a.base_url, mapped) for a in agents]


@endpoint
async def create(request: Request) -> Response:
    """Create a discussion owned by the caller; 201 with the whole discussion, or 422 naming each bad field."""
    user = await actor(request)
    body = await read_json(request, DiscussionIn)
    specs = await run_db(_specs, body.agents)
    fields = body.model_dump(exclude={"agents", "role", "checkpoints"})
    fields["checkpoints"] = [c.model_dump(exclude_none=True) for c in body.checkpoints]
    discussion = await run_db(
        lambda: discussions.create_discussion(agents=specs, owner=user, owner_role=body.role, **fields)
    )
    assert discussion.id is not None
    return JSONResponse(await run_db(_detail, discussion.id), status_code=201)


@endpoint
async def show(request: Request) -> Response:
    """The discussion with a page of its messages (see the module docstring for ?limit=, ?before=, ?after=)."""
    discussion_id, _ = await member_request(request)
    page = _page_query(request)
    return JSONResponse(await run_db(lambda: _detail(discussion_id, **page)))


@endpoint
async def post_message(request: Request) -> Response:
    """Post as the caller (roles decide whether they may); the same client_id twice posts once."""
    discussion_id, user = await member_request(request)
    body = await read_json(request, MessageIn)
    message = await room.post_message(
        discussion_id=discussion_id, actor=user, content=body.content, client_id=body.client_id
    )
    return JSONResponse(_message(message), status_code=201)


@endpoint
async def check(request: Request) -> Response:
    """The preflight checklist (what gates Run Agents), with how to fix each failing item."""
    discussion_id, _ = await member_request(request)
    result = await preflight.run_preflight(discussion_id, fresh=request.query_params.get("fresh") == "1")
    return JSONResponse(_checklist(result))


def _checklist(result: preflight.Preflight) -> dict:
    return {
        "ready": result.ready,
        "score": result.score,
        "items": [
            {"key": i.key, "label": i.label, "required": i.required, "status": i.status, "detail": i.detail}
            for i in result.items
        ],
    }


@endpoint
async def run(request: Request) -> Response:
    """Run (or resume) the agents, as the Run Agents button does: the owner only, once the preflight checklist
    passes (409 with the checklist otherwise)."""
    discussion_id, user = await member_request(request)
    try:
        problem = await room.run_agents(discussion_id, user)
    except preflight.NotReady as err:
        return JSONResponse({"error": str(err), **_checklist(err.result)}, status_code=409)
    if problem:
        raise ApiError(409, problem)
    return JSONResponse({"status": "running", "events": f"/api/discussions/{discussion_id}/events"}, status_code=202)


@endpoint
async def stop(request: Request) -> Response:
    discussion_id, user = await member_request(request)
    await room.stop(discussion_id=discussion_id, actor=user)
    return JSONResponse({"status": "stopping"}, status_code=202)


@endpoint
async def answer(request: Request) -> Response:
    """Answer a prompt routed to the caller; the first answer wins."""
    discussion_id, user = await member_request(request)
    body = await read_json(request, AnswerIn)
    await room.answer_prompt(
        discussion_id=discussion_id,
        prompt_id=path_int(request, "prompt_id"),
        actor=user,
        value=body.value,
        client_id=body.client_id,
    )
    return JSONResponse({"status": "answered"})


@endpoint
async def vote(request: Request) -> Response:
    """Vote (or change a vote) in an open poll: one current vote per person, history kept."""
    discussion_id, user = await member_request(request)
    body = await read_json(request, VoteIn)
    await room.cast_vote(
        discussion_id=discussion_id,
        poll_id=path_int(request, "poll_id"),
        actor=user,
        ranking=body.ranking,
        client_id=body.client_id,
        reason=body.reason,
    )
    return JSONResponse({"status": "voted"})


@endpoint
async def invite(request: Request) -> Response:
    """Add a person by username with a role, or change their role (the owner only)."""
    discussion_id, user = await member_request(request)
    body = await read_json(request, InviteIn)
    participant = await room.invite(
        discussion_id=discussion_id, actor=user, username=body.username, role=body.role, weight=body.weight
    )
    return JSONResponse(_participant(participant), status_code=201)


@endpoint
async def sign_off(request: Request) -> Response:
    """The must-approve person's answer to a decision: approve, override or send back for more discussion."""
    discussion_id, user = await member_request(request)
    body = await read_json(request, SignOffIn)
    decision_id = path_int(request, "decision_id")
    await room.sign_off(discussion_id=discussion_id, decision_id=decision_id, actor=user, **body.model_dump())
    return JSONResponse(await run_db(decisions.get_card, decision_id))


def discussion_routes() -> list[Route]:
    base = "/api/discussions"
    one = base + "/{discussion_id:int}"
    return [
        Route(base, list_discussions, methods=["GET"]),
        Route(base, create, methods=["POST"]),
        Route(one, show, methods=["GET"]),
        Route(one + "/messages", post_message, methods=["POST"]),
        Route(one + "/people", invite, methods=["POST"]),
        Route(one + "/preflight", check, methods=["GET"]),
        Route(one + "/run", run, methods=["POST"]),
        Route(one + "/stop", stop, methods=["POST"]),
        Route(one + "/prompts/{prompt_id:int}/answer", answer, methods=["POST"]),
        Route(one + "/polls/{poll_id:int}/votes", vote, methods=["POST"]),
        Route(one + "/decisions/{decision_id:int}/sign-off", sign_off, methods=["POST"]),
    ]
