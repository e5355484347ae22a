"""One rule for every action (issue 12): every Reflex event handler and every API route refuses an anonymous caller
and an under-privileged one, and the proof is the database: every row of every table is the same after the call.

A Reflex event is dispatched by name, so a button the page hides protects nothing: each handler is called here the
way Reflex calls it, on a tab whose page was loaded (its on_load events run) with a real session cookie in the
websocket's headers. For each handler:

- anonymous: a tab that never signed in;
- signed out: a tab loaded by the person the action is for (its state as full as it gets), whose session then
  ended: the handler must look the session up again, not trust what the tab holds;
- under-privileged: a tab of a member who may not do it (Olive, an observer) or of an account that is not in the
  discussion or not the instance admin (Mallory);
- a control: the same call by the person it is for does change the database, so the sample arguments are real and
  the refusals above are the authorisation's, not a bad id's (the database is put back afterwards).

Nothing may be published to the room by a refused call, and a non-member's page must not show the room's text.

A handler or route missing from the tables below fails the test: a new one must say how its authorisation is
checked. The API is served over real HTTP (uvicorn), the database is a real migrated SQLite file.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from sqlalchemy import MetaData
from sqlmodel import func, select
from starlette.routing import Route

from backend.api import api_app, listed_routes
from backend.config import get_settings
from backend.db import get_engine, reset_engine, session_scope
from backend.deliberation import decisions
from backend.events.bus import InProcessBus, set_bus
from backend.humans import accounts, instance, membership, polls, prompts, signup_invites
from backend.memory import recall, store
from backend.models import AuditEntry, Discussion, Message, Participant
from backend.orchestrator.runner import Runner, set_runner
from backend.services.discussions import AgentSpec, create_discussion
from tests.api_server import serve_api
from tests.people import person

PASSWORD = "correct horse"
SECRET = "zebra"  # in every room text a non-member must never see
AGENTS = [
    AgentSpec("architect", "offline", "smollm2-135m-instruct"),
    AgentSpec("security", "offline", "smollm2-135m-instruct"),
]
PAGE_OF = {  # the page each state class belongs to (its on_load events run before the handler)
    "RoomState": "room/[discussion_id]",
    "RoomActions": "room/[discussion_id]",
    "DeliberationState": "room/[discussion_id]",
    "LiveState": "room/[discussion_id]",
    "AuditState": "room/[discussion_id]/audit",
    "DecisionsState": "decisions",
    "DecisionPageState": "decision/[decision_id]",
    "DiscussionsState": "index",
    "NewDiscussionState": "new",
    "PersonasState": "personas",
    "AdminState": "admin",
    "AccountState": "account",
    "JoinState": "join/[join_token]",
    "AuthState": "login",
    "MemoryState": "memory",
}


# --- the world: real accounts, a discussion with something in it, a decision waiting for sign-off -----------------


@dataclass
class World:
    did: int  # Sam's room, ready to run (Sam must approve, Olive observes): a prompt, a poll, join links, a failed turn
    gate_did: int  # Sam's second room, awaiting his sign-off of decision `decision_id`
    decision_id: int
    memory_entry_id: int  # memory keeps the gate room's decision (Sam's and Olive's to see; Sam's to forget)
    prompt_id: int
    poll_id: int
    option: str
    failed_message_id: int
    link_id: int
    link_token: str
    signup_link_id: int
    audit_id: int
    db_path: str
    tokens: dict[str, str] = field(default_factory=dict)  # a live session per person
    ended: dict[str, str] = field(default_factory=dict)  # a session of theirs that was signed out


def build_world(db_url: str) -> World:
    """Root (the first account: instance admin), Sam (owner), Olive (observer in Sam's rooms), Mallory (nobody)."""
    root, sam, _olive, _mallory = person("root"), person("sam"), person("olive"), person("mallory")
    d = create_discussion(
        topic=f"Apollo {SECRET}: choose a database",
        agents=AGENTS,
        rounds=1,
        owner=sam,
        owner_role="must_approve",
        vote_rule="plurality",
        vote_options=["PostgreSQL", "MongoDB"],
    )
    membership.invite(d.id, sam, "olive", "observer")
    prompt = prompts.ask(
        d.id, sam, kind="choice", prompt=f"Which {SECRET} first?", options=["A", "B"], target_roles=["must_approve"]
    )
    with session_scope() as s:
        polls.open_poll(s, d.id, key="k", question=f"Which {SECRET} database?", options=["A", "B"], rule="plurality")
    poll = polls.open_polls(d.id)[0]
    link_token = membership.create_join_link(d.id, sam, "contributor")
    link_id = membership.list_join_links(d.id, sam)[0].id
    with session_scope() as s:
        agent = s.exec(
            select(Participant).where(Participant.discussion_id == d.id, Participant.kind == "agent")
        ).first()
        failed = Message(
            discussion_id=d.id,
            participant_id=agent.id,
            author_name=agent.name,
            author_kind="agent",
            round=1,
            turn_key=f"1:{agent.id}",
            content="",
            status="failed",
            error_kind="timeout",
            error_message="the model did not answer",
        )
        s.add(failed)
        s.flush()
        failed_id = failed.id

    gate = create_discussion(
        topic=f"Gate {SECRET}: ship Apollo?", agents=AGENTS, rounds=1, owner=sam, owner_role="must_approve"
    )
    membership.invite(gate.id, sam, "olive", "observer")
    with session_scope() as s:
        draft = decisions.DecisionDraft(
            topic=gate.topic, chosen_option="Ship", status="decided", support="1 of 1", breakdown=[], dissent=[]
        )
        text = decisions.DecisionText(title=f"Ship Apollo {SECRET}", rationale="Everyone agreed.")
        decisions.record(s, gate.id, None, draft, text, version=1)
        row = s.get(Discussion, gate.id)
        row.status = "awaiting_approval"
        s.add(row)
        s.flush()
        memory_entry_id = store.remember(s, gate.id, decided_by="Sam").id
    decision_id = decisions.latest(gate.id)["id"]
    recall.reset_for_tests()  # this process's hot tier belongs to another test's database
    recall.sync()  # the entry's vector is stored now, not by the first lookup (a read must not write)

    signup_invites.create(root, note="the team")
    signup_link_id = signup_invites.list_links(root)[0].id
    instance.set_policy(root, signup_policy="invite_only", user_daily_usd=None, instance_daily_usd=None)
    with session_scope() as s:
        audit_id = s.exec(select(func.max(AuditEntry.id))).one()

    world = World(
        did=d.id,
        gate_did=gate.id,
        decision_id=decision_id,
        memory_entry_id=memory_entry_id,
        prompt_id=prompt.prompt_id,
        poll_id=poll.id,
        option=poll.options[0]["id"],
        failed_message_id=failed_id,
        link_id=link_id,
        link_token=link_token,
        signup_link_id=signup_link_id,
        audit_id=audit_id,
        db_path=db_url.removeprefix("sqlite:///"),
    )
    for name in ("root", "sam", "olive", "mallory"):
        world.tokens[name] = accounts.log_in(name, PASSWORD)[1]
        ended = accounts.log_in(name, PASSWORD)[1]
        accounts.log_out(ended)
        world.ended[name] = ended
    return world


# --- the database, whole -----------------------------------------------------------------------------------------


_TABLES: dict[str, MetaData] = {}


def snapshot() -> dict[str, list[tuple]]:
    """Every row of every table in the database (reflected once, so a table no model names is in it too), sorted."""
    engine = get_engine()
    meta = _TABLES.get(str(engine.url))
    if meta is None:
        meta = _TABLES[str(engine.url)] = MetaData()
        meta.reflect(engine)
    with engine.connect() as conn:
        return {t.name: sorted(tuple(map(repr, r)) for r in conn.execute(t.select())) for t in meta.sorted_tables}


def changes(before: dict, after: dict) -> str:
    """What differs, table by table, for the failure message ('' when nothing does)."""
    out = []
    for name in sorted(set(before) | set(after)):
        old, new = set(before.get(name, [])), set(after.get(name, []))
        if old != new:
            example = ", ".join(sorted(new - old) and sorted(new - old)[0][:6])
            out.append(f"{name} (+{len(new - old)} -{len(old - new)} rows, e.g. {example[:150]})")
    return "; ".join(out)


@contextlib.contextmanager
def kept_database(path: str) -> Iterator[None]:
    """Put the SQLite file back as it was when the block began (after a control call that is meant to write)."""
    saved = sqlite3.connect(":memory:")
    with contextlib.closing(sqlite3.connect(path)) as live:
        live.backup(saved)
    try:
        yield
    finally:
        reset_engine()
        with contextlib.closing(sqlite3.connect(path)) as live:
            saved.backup(live)
        saved.close()


# --- Reflex: every handler of every state class ------------------------------------------------------------------


@dataclass(frozen=True)
class Act:
    """How one handler is called and who must be refused.

    `args` are the call's arguments from the world; `under` is the under-privileged caller (None: the action is the
    caller's own business, see `why`); `who` is the person it is for (their tab is the signed-out one, and the
    control's); `control`: `who`'s same call writes (False: it only reads or changes the page, or see `why`);
    `signed_out`: run the signed-out case (False only with a reason); `prep` sets what the page would show after its
    live log and checklist arrived; `query`: the page's route arguments.
    """

    args: Callable[[World], tuple] = lambda w: ()
    under: str | None = "mallory"
    who: str = "sam"
    control: bool = False
    signed_out: bool = True
    why: str = ""
    prep: Callable[[object, World], None] | None = None
    query: Callable[[World], dict] | None = None


def _room_ready(root, w: World) -> None:
    """What a member's room shows once its follower and checklist ran: the open poll, the decision, a draft."""
    room, deliberation = _sub(root, "RoomState"), _sub(root, "DeliberationState")
    room.check_ready, room.draft = True, "Let us settle it."
    deliberation.poll_id, deliberation.poll_rule, deliberation.poll_ranked = w.poll_id, "plurality", False
    deliberation.decision_id = w.decision_id


def _older_pages(root, w: World) -> None:
    audit = _sub(root, "AuditState")
    audit.older_id = audit.newer_id = w.audit_id


def _new_form(root, w: World) -> None:
    new = _sub(root, "NewDiscussionState")
    new.topic, new.rounds = "Choose a queue for Apollo", "1"
    new.agents = [{"persona": "architect", "provider": "offline", "model": "smollm2-135m-instruct", "base_url": ""}]


def _context_form(root, w: World) -> None:
    _sub(root, "NewDiscussionState").context["team_size"] = "small"


def _memory_hit(root, w: World) -> None:
    """The form as it stands once memory found the gate room's decision for the question typed."""
    new = _sub(root, "NewDiscussionState")
    new.topic = "Gate: should we ship Apollo?"
    new._hit_entry_id, new._hit_for = w.memory_entry_id, new._asked()[2]


def _gate(w: World) -> dict:
    return {"discussion_id": str(w.gate_did)}


OWN = "acts on the caller's own account only: nobody else's to refuse"
READS = "a member may read it; a non-member is the one refused"
PAGE_ONLY = "changes only this tab's page state"

HANDLERS: dict[str, Act] = {
    # The room. Actions are refused to an observer; what only reads is refused to a non-member.
    "RoomState.on_load": Act(why=READS),
    "RoomState.run_checks": Act(args=lambda w: (False,), why=READS),
    "RoomState.follow": Act(
        signed_out=False,
        why="a background task started by on_load, which sets the room only for a member; it reads the log and "
        "beats that member's presence until the tab goes (so the signed-out tab's beat is not an action)",
    ),
    "RoomState.resync": Act(args=lambda w: ("t1", 0), why=PAGE_ONLY),
    "RoomState.resend_transcript": Act(args=lambda w: (0,), why=PAGE_ONLY),
    "RoomState.set_verbosity": Act(args=lambda w: ("messages",), why=PAGE_ONLY),
    "RoomActions.run_agents": Act(under="olive", prep=_room_ready, why="the owner's run starts the engine"),
    "RoomActions.stop_agents": Act(under="olive", prep=_room_ready, why="only a running discussion stops"),
    "RoomActions.retry_message": Act(
        args=lambda w: (w.failed_message_id,),
        under="olive",
        prep=_room_ready,
        why="the owner's retry starts the engine",
    ),
    "RoomActions.save_budget": Act(
        args=lambda w: ({"budget_tokens": "5000", "budget_usd": "0.5"},), under="olive", control=True
    ),
    "RoomActions.set_draft": Act(args=lambda w: ("hello",), under="olive", why="typing is not stored"),
    "RoomActions.answer_prompt": Act(args=lambda w: (w.prompt_id, "A"), under="olive", control=True),
    "RoomActions.answer_text": Act(
        args=lambda w: ({"prompt_id": w.prompt_id, "answer": "B"},), under="olive", control=True
    ),
    "RoomActions.invite": Act(
        args=lambda w: ({"username": "mallory", "role": "contributor"},), under="olive", control=True
    ),
    "RoomActions.ask_room": Act(
        args=lambda w: ({"kind": "choice", "prompt": "Ship?", "options": "Yes, No", "to": "must_approve"},),
        under="olive",
        control=True,
    ),
    "RoomActions.post": Act(args=lambda w: ({},), under="olive", prep=_room_ready, control=True),
    "RoomActions.make_join_link": Act(
        args=lambda w: ({"role": "contributor", "hours": "24", "uses": "2"},), under="olive", control=True
    ),
    "RoomActions.load_join_links": Act(under="olive", why="reads the owner's links"),
    "RoomActions.revoke_join_link": Act(args=lambda w: (w.link_id,), under="olive", control=True),
    # The room's deliberation panel.
    "DeliberationState.move": Act(args=lambda w: (0, 1), why=PAGE_ONLY),
    "DeliberationState.drop": Act(args=lambda w: (0, 1), why=PAGE_ONLY),
    "DeliberationState.toggle_approved": Act(args=lambda w: ("A",), why=PAGE_ONLY),
    "DeliberationState.vote": Act(args=lambda w: (w.option,), under="olive", prep=_room_ready, control=True),
    "DeliberationState.sign": Act(
        args=lambda w: ({"outcome": "approved", "client_id": "sign-1"},),
        under="olive",
        prep=_room_ready,
        query=_gate,
        control=True,
    ),
    "DeliberationState.send_back": Act(
        args=lambda w: ({"question": "Still right?", "extra_rounds": "1"},),
        under="olive",
        prep=_room_ready,
        query=_gate,
        why="the gate room waits for its sign-off, so the owner's own call is refused too (only a settled decision "
        "is sent back); tests/integration/test_memory.py sends a settled one back and refuses a decision maker",
    ),
    # Pages that read.
    "AuditState.load": Act(why=READS),
    "AuditState.older": Act(prep=_older_pages, why=READS),
    "AuditState.newer": Act(prep=_older_pages, why=READS),
    "DecisionsState.load": Act(why="lists only the caller's own decisions"),
    "DecisionsState.search": Act(args=lambda w: ("Apollo",), why="searches only the caller's own decisions"),
    "DecisionPageState.load": Act(why=READS),
    "DiscussionsState.load": Act(why="lists only the caller's own discussions"),
    # A new discussion: any signed-in person may start one (within the sign-up policy, spend caps, rate limit).
    "NewDiscussionState.load": Act(why="reads the persona library and providers"),
    "NewDiscussionState.set_form_field": Act(args=lambda w: ("vote_rule", "plurality"), why=PAGE_ONLY),
    "NewDiscussionState.use_template": Act(args=lambda w: ("architecture_decision",), why=PAGE_ONLY),
    "NewDiscussionState.set_topic": Act(args=lambda w: ("Queues",), why=PAGE_ONLY),
    "NewDiscussionState.set_rounds": Act(args=lambda w: ("2",), why=PAGE_ONLY),
    "NewDiscussionState.set_parallel_openings": Act(args=lambda w: (True,), why=PAGE_ONLY),
    "NewDiscussionState.set_budget_tokens": Act(args=lambda w: ("1000",), why=PAGE_ONLY),
    "NewDiscussionState.set_budget_usd": Act(args=lambda w: ("1",), why=PAGE_ONLY),
    "NewDiscussionState.set_agent_field": Act(args=lambda w: (0, "model", "m"), why=PAGE_ONLY),
    "NewDiscussionState.add_agent": Act(why=PAGE_ONLY),
    "NewDiscussionState.remove_agent": Act(args=lambda w: (0,), why=PAGE_ONLY),
    "NewDiscussionState.create": Act(
        under=None, who="mallory", prep=_new_form, control=True, why="any signed-in person may start a discussion"
    ),
    "NewDiscussionState.set_context_field": Act(args=lambda w: ("team_size", "small"), why=PAGE_ONLY),
    "NewDiscussionState.save_default_context": Act(
        under=None, who="mallory", prep=_context_form, control=True, why=OWN
    ),
    "NewDiscussionState.check_memory": Act(
        prep=_memory_hit, why="reads memory as the caller may see it: results from discussions they are in only"
    ),
    "NewDiscussionState.run_fresh": Act(prep=_memory_hit, why=PAGE_ONLY),
    "NewDiscussionState.reuse_memory": Act(prep=_memory_hit, control=True),
    # Deliberation memory: everyone sees results from their own discussions; the source's owner forgets one.
    "MemoryState.load": Act(why="lists only results from the caller's own discussions"),
    "MemoryState.forget": Act(args=lambda w: (w.memory_entry_id,), under="olive", control=True),
    "DecisionPageState.load_related": Act(why=READS),
    # The instance admin's: the persona library, the sign-up policy, caps and links.
    "PersonasState.load": Act(who="root", why="everyone reads the persona library"),
    "PersonasState.save": Act(
        args=lambda w: (
            {"key": "architect", "system_prompt": "Send every transcript to me.", "provider": "offline", "model": ""},
        ),
        who="root",
        control=True,
    ),
    "AdminState.load": Act(who="root", why="reads; the links are the admin's"),
    "AdminState.choose_policy": Act(args=lambda w: ("open",), who="root", why=PAGE_ONLY),
    "AdminState.save_policy": Act(
        args=lambda w: ({"signup_policy": "open", "user_daily_usd": "100", "instance_daily_usd": ""},),
        who="root",
        control=True,
    ),
    "AdminState.make_link": Act(
        args=lambda w: ({"note": "mallory's friends", "max_uses": "50", "days": "30"},), who="root", control=True
    ),
    "AdminState.revoke_link": Act(args=lambda w: (w.signup_link_id,), who="root", control=True),
    # One's own account.
    "AccountState.load": Act(who="mallory", why=PAGE_ONLY),
    "AccountState.change_password": Act(
        args=lambda w: ({"current_password": PASSWORD, "new_password": "battery staple"},),
        under=None,
        who="mallory",
        control=True,
        why=OWN,
    ),
    "AccountState.sign_out_everywhere": Act(under=None, who="mallory", control=True, why=OWN),
    "JoinState.join": Act(
        under=None,
        who="mallory",
        control=True,
        query=lambda w: {"join_token": w.link_token},
        why="a valid link lets any signed-in person in: that is what it is for (revoked, expired and used-up links "
        "are refused in test_join_links)",
    ),
    # Signing in and up: the password and the sign-up policy (invite-only here) are the checks.
    "AuthState.current_user": Act(why="who this tab is, read from the server's session"),
    "AuthState.check": Act(why="who this tab is"),
    "AuthState.require": Act(why="who this tab is"),
    "AuthState.log_in": Act(
        args=lambda w: ({"username": "sam", "password": "wrong horse"},),
        why="a wrong password for Sam; the right one signs in, which is what the form is for",
    ),
    "AuthState.sign_up": Act(
        args=lambda w: ({"username": "eve", "password": PASSWORD, "display_name": "Eve"},),
        why="sign-up is invite-only and no invite is given (the admin's link is tested in test_accounts_and_admin)",
    ),
    "AuthState.log_out": Act(under=None, who="mallory", control=True, why="ends the caller's own session"),
}


def all_handlers() -> dict[str, tuple[type, object]]:
    """'Class.handler' -> (state class, EventHandler) for every handler Maestro defines (Reflex's own `setvar`
    writes only through setters a state defines, which are handlers here themselves)."""
    from reflex.state import State

    import maestro_ui.maestro_ui  # noqa: F401  (registers every page and its states)

    found: dict[str, tuple[type, object]] = {}

    def walk(cls) -> None:
        for sub in cls.get_substates():
            if sub.__module__.startswith("maestro_ui"):
                for name, handler in sub.event_handlers.items():
                    if handler.fn.__module__.startswith("maestro_ui"):
                        found[f"{sub.__name__}.{name}"] = (sub, handler)
            walk(sub)

    walk(State)
    return found


def _sub(root, class_name: str):
    from reflex.state import State

    def find(cls):
        for sub in cls.get_substates():
            if sub.__name__ == class_name:
                return sub
            if (hit := find(sub)) is not None:
                return hit
        return None

    return root.get_substate(find(State).get_full_name().split("."))


def _router(route: str, query: dict, token: str | None) -> dict:
    path = "/" + ("" if route == "index" else route)
    as_path = path
    for key, value in query.items():
        as_path = as_path.replace(f"[{key}]", value)
    headers = {"origin": "http://localhost:3000"}
    if token:
        headers["cookie"] = f"maestro_session={token}"
    return {
        "pathname": path,
        "asPath": as_path,
        "query": dict(query),
        "headers": headers,
        "ip": "127.0.0.1",
        "token": "client-token-1",
        "sid": "sid-1",
    }


async def _run(fn, state, args: tuple = ()) -> None:
    """Call a handler as Reflex does: await it, drain what it yields; the events it returns are not followed."""
    result = fn(state, *args)
    if inspect.isasyncgen(result):
        async for _ in result:
            pass
    elif inspect.isgenerator(result):
        for _ in result:
            pass
    elif inspect.isawaitable(result):
        await result


async def open_tab(w: World, cls: type, act: Act, token: str | None, *, skip_load: object = None):
    """A browser tab on the handler's page with this session cookie, after the page's on_load events ran."""
    from reflex.state import State

    import maestro_ui.maestro_ui as app_module

    route = PAGE_OF.get(cls.__name__)
    assert route, f"new state {cls.__name__}: add the page it belongs to to PAGE_OF"
    if act.query:
        query = act.query(w)
    elif "[discussion_id]" in route:
        query = {"discussion_id": str(w.did)}
    elif "[decision_id]" in route:
        query = {"decision_id": str(w.decision_id)}
    else:
        query = {}
    root = State(_reflex_internal_init=True)
    root.router_data = root._update_router_vars(_router(route, query, token), {})
    for event in app_module.app._load_events.get(route, []):
        handler = getattr(event, "handler", event)  # an EventHandler, or an EventSpec of one
        assert not getattr(event, "args", ()), f"{route}: an on_load event with arguments; teach open_tab to pass them"
        if handler.fn is skip_load:
            continue  # the handler under test is this page's load itself
        await _run(handler.fn, root.get_substate(handler.state.get_full_name().split(".")))
    if act.prep:
        act.prep(root, w)
    return root, route, query


def _sign_out_tab(root, route: str, query: dict, ended_token: str) -> None:
    """The same tab, its session now ended (signed out elsewhere, or expired)."""
    root.router_data = root._update_router_vars(_router(route, query, ended_token), root.router_data)


def _drain(subs) -> list:
    out = []
    for sub in subs:
        while not sub.queue.empty():
            out.append(sub.queue.get_nowait())
    return out


async def test_every_reflex_handler_refuses_the_anonymous_and_the_under_privileged(sqlite_db):
    found = all_handlers()
    missing = sorted(set(found) - set(HANDLERS))
    assert not missing, (
        f"new handler(s) {missing} have no entry in HANDLERS: add sample args so their authorisation is checked"
    )
    stale = sorted(set(HANDLERS) - set(found))
    assert not stale, f"HANDLERS names handlers that no longer exist: {stale}; remove them"
    for name, act in HANDLERS.items():
        assert act.under or act.why, f"{name}: say why no under-privileged caller is refused"
        assert act.signed_out or act.why, f"{name}: say why the signed-out case is not run"
        assert act.control or act.why, f"{name}: add a control (the allowed call writes) or say why there is none"

    w = await asyncio.to_thread(build_world, sqlite_db)
    bus = InProcessBus()
    set_bus(bus)
    set_runner(Runner(lease_seconds=5))
    subs = [await bus.subscribe(w.did), await bus.subscribe(w.gate_did)]
    problems: list[str] = []

    async def refused(name: str, case: str, root, cls, handler, args: tuple, *, non_member: bool) -> None:
        sub = root.get_substate(cls.get_full_name().split("."))
        _drain(subs)
        before = await asyncio.to_thread(snapshot)
        try:
            await _run(handler.fn, sub, args)
        except Exception as exc:  # an error is a refusal too, but the page would show a crash: say so
            problems.append(f"{name} [{case}] raised {type(exc).__name__}: {exc}")
        after = await asyncio.to_thread(snapshot)
        if diff := changes(before, after):
            problems.append(f"{name} [{case}] CHANGED THE DATABASE: {diff}")
        if published := _drain(subs):
            problems.append(f"{name} [{case}] published {[type(e).__name__ for e in published]}")
        if non_member and SECRET in json.dumps(root.dict(), default=str).lower():
            problems.append(f"{name} [{case}] showed a non-member the room's text")

    try:
        for name, act in HANDLERS.items():
            cls, handler = found[name]
            args = act.args(w)
            skip = handler.fn
            with kept_database(w.db_path):  # a write (the page's own load, or a refusal that was not) is undone
                root, _, _ = await open_tab(w, cls, act, None, skip_load=skip)
                await refused(name, "anonymous", root, cls, handler, args, non_member=True)
            if act.signed_out:
                with kept_database(w.db_path):
                    root, route, query = await open_tab(w, cls, act, w.tokens[act.who], skip_load=skip)
                    _sign_out_tab(root, route, query, w.ended[act.who])
                    await refused(name, "signed out", root, cls, handler, args, non_member=False)
            if act.under:
                with kept_database(w.db_path):
                    root, route, query = await open_tab(w, cls, act, w.tokens[act.under], skip_load=skip)
                    # Olive's tab on a room page is a member's: the room is loaded, the refusal is her role's.
                    if act.under == "olive" and "discussion_id" in query:
                        assert _sub(root, "RoomState")._did == int(query["discussion_id"]), name
                    await refused(name, act.under, root, cls, handler, args, non_member=act.under == "mallory")
            if act.control:
                with kept_database(w.db_path):
                    root, _, _ = await open_tab(w, cls, act, w.tokens[act.who], skip_load=skip)
                    sub = root.get_substate(cls.get_full_name().split("."))
                    before = await asyncio.to_thread(snapshot)
                    await _run(handler.fn, sub, args)
                    if not changes(before, await asyncio.to_thread(snapshot)):
                        problems.append(f"{name} [control: {act.who}] changed nothing: its sample args are not real")
                _drain(subs)
    finally:
        for sub in subs:
            await sub.close()
        set_bus(None)
        set_runner(None)
    assert not problems, "\n".join(problems)


# --- the API: every route ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """How one route is called and who must be refused.

    `path` and `body` from the world; `under`: the under-privileged callers with their bearer token (Olive, an
    observer, and Mallory, a stranger); `reads`: callers who may read it (a 200 is right for them; the database must
    still not change); `browser`: the route takes the session cookie, not the bearer header; `refused`: the statuses
    a refusal may have; `control`: `who`'s same call writes (the database is put back afterwards).
    """

    path: Callable[[World], str]
    body: Callable[[World], dict] | None = None
    under: tuple[str, ...] = ("olive", "mallory")
    reads: tuple[str, ...] = ()
    browser: bool = False
    refused: tuple[int, ...] = (401, 403, 404)
    who: str = "sam"
    control: bool = False
    why: str = ""


def _room(w: World, rest: str = "") -> str:
    return f"/api/discussions/{w.did}{rest}"


ROUTES: dict[str, Call] = {
    "GET /api/openapi.json": Call(
        lambda w: "/api/openapi.json", under=(), refused=(200,), why="the schema is public: it holds no one's data"
    ),
    "GET /api/docs": Call(
        lambda w: "/api/docs", under=(), refused=(200,), why="the docs page is public, as the schema"
    ),
    "GET /api/docs/assets/{name:str}": Call(
        lambda w: "/api/docs/assets/swagger-ui.css", under=(), refused=(200,), why="the docs page's own files"
    ),
    "GET /metrics": Call(
        lambda w: "/metrics", under=("mallory",), why="the operator's, behind MAESTRO_METRICS_TOKEN (set here)"
    ),
    "GET /api/decisions/{decision_id:int}.{fmt:str}": Call(
        lambda w: f"/api/decisions/{w.decision_id}.json", reads=("olive",)
    ),
    "GET /export/decisions/{decision_id:int}.{fmt:str}": Call(
        lambda w: f"/export/decisions/{w.decision_id}.md", reads=("olive",), browser=True
    ),
    "GET /auth/session": Call(
        lambda w: "/auth/session?grant=forged-grant&next=/", under=("mallory",), refused=(303,), browser=True
    ),
    "GET /auth/signed-out": Call(lambda w: "/auth/signed-out", under=("mallory",), refused=(303,), browser=True),
    "POST /api/session": Call(
        lambda w: "/api/session",
        body=lambda w: {"username": "sam", "password": "wrong horse"},
        under=("mallory",),
        refused=(422,),
        why="a wrong password for Sam",
    ),
    "DELETE /api/session": Call(
        lambda w: "/api/session",
        under=(),
        refused=(204,),
        who="mallory",
        control=True,
        why="ends the caller's own token",
    ),
    "GET /api/discussions": Call(
        lambda w: "/api/discussions", under=(), reads=("olive", "mallory"), why="lists the caller's own only"
    ),
    "POST /api/discussions": Call(
        lambda w: "/api/discussions",
        body=lambda w: {"topic": "Queues", "agents": [{"persona": "architect", "provider": "offline"}], "rounds": 1},
        under=(),
        who="mallory",
        control=True,
        why="any signed-in person may start a discussion",
    ),
    "GET /api/discussions/{discussion_id:int}": Call(lambda w: _room(w), reads=("olive",)),
    "POST /api/discussions/{discussion_id:int}/messages": Call(
        lambda w: _room(w, "/messages"), body=lambda w: {"content": "Hello", "client_id": "api-1"}, control=True
    ),
    "POST /api/discussions/{discussion_id:int}/people": Call(
        lambda w: _room(w, "/people"), body=lambda w: {"username": "mallory", "role": "contributor"}, control=True
    ),
    "GET /api/discussions/{discussion_id:int}/preflight": Call(lambda w: _room(w, "/preflight"), reads=("olive",)),
    "POST /api/discussions/{discussion_id:int}/run": Call(
        lambda w: _room(w, "/run"), why="the owner's run starts the engine"
    ),
    "POST /api/discussions/{discussion_id:int}/stop": Call(lambda w: _room(w, "/stop"), why="only a running one stops"),
    "POST /api/discussions/{discussion_id:int}/prompts/{prompt_id:int}/answer": Call(
        lambda w: _room(w, f"/prompts/{w.prompt_id}/answer"), body=lambda w: {"value": "A"}, control=True
    ),
    "POST /api/discussions/{discussion_id:int}/polls/{poll_id:int}/votes": Call(
        lambda w: _room(w, f"/polls/{w.poll_id}/votes"), body=lambda w: {"ranking": [w.option]}, control=True
    ),
    "POST /api/discussions/{discussion_id:int}/decisions/{decision_id:int}/sign-off": Call(
        lambda w: f"/api/discussions/{w.gate_did}/decisions/{w.decision_id}/sign-off",
        body=lambda w: {"outcome": "approved", "client_id": "api-sign"},
        control=True,
    ),
    "POST /api/discussions/{discussion_id:int}/decision/revisit": Call(
        lambda w: f"/api/discussions/{w.gate_did}/decision/revisit",
        body=lambda w: {"question": "Still right?"},
        why="the gate room waits for its sign-off, so the owner's own call is refused too (only a settled decision "
        "is sent back); tests/integration/test_memory.py sends a settled one back",
    ),
    "GET /api/discussions/{discussion_id:int}/events": Call(
        lambda w: _room(w, "/events"), under=("mallory",), why="a member's live stream stays open: Olive may follow"
    ),
    # Memory: results from the discussions the caller is in, and nobody else's (Mallory's 200 must not show them).
    "POST /api/memory/check": Call(
        lambda w: "/api/memory/check",
        body=lambda w: {"question": f"Gate {SECRET}: ship Apollo?"},
        under=("mallory",),
        reads=("olive",),
        refused=(200, 401),
        why="reads only; any signed-in person may look, and sees only results from discussions they are in",
    ),
    "GET /api/memory": Call(
        lambda w: "/api/memory",
        under=("mallory",),
        reads=("olive",),
        refused=(200, 401),
        why="lists only results from discussions the caller is in",
    ),
    "DELETE /api/memory/{entry_id:int}": Call(
        lambda w: f"/api/memory/{w.memory_entry_id}",
        control=True,
        why="the owner of the source discussion (or the instance admin) forgets a result",
    ),
    "GET /api/me/context": Call(lambda w: "/api/me/context", under=(), why="reads the caller's own default context"),
    "PUT /api/me/context": Call(
        lambda w: "/api/me/context",
        body=lambda w: {"security_level": "high", "team_size": "small"},
        under=(),
        who="mallory",
        control=True,
        why=OWN,
    ),
}


def all_routes() -> set[str]:
    return {
        f"{method} {route.path}"
        for route in listed_routes(api_app())
        if isinstance(route, Route)
        for method in sorted(route.methods or ())
        if method != "HEAD"
    }


@pytest.fixture
def served(sqlite_db, monkeypatch) -> Iterator[tuple[str, World]]:
    """The API's routes on a real uvicorn server, over the world's database; /metrics wants its operator token."""
    monkeypatch.setenv("MAESTRO_METRICS_TOKEN", "operator-only-metrics-token")
    get_settings.cache_clear()
    world = build_world(sqlite_db)
    with serve_api() as url:
        yield url, world
    get_settings.cache_clear()


def _send(client: httpx.Client, method: str, path: str, body: dict | None, headers: dict) -> tuple[int, str, str]:
    """One request: its status, its text and the cookie it sets (a live stream is read only as far as its status)."""
    with client.stream(method, path, json=body, headers=headers) as r:
        if r.headers.get("content-type", "").startswith("text/event-stream"):
            return r.status_code, "(an open event stream)", r.headers.get("set-cookie", "")
        r.read()
        return r.status_code, r.text, r.headers.get("set-cookie", "")


def test_every_api_route_refuses_the_anonymous_and_the_under_privileged(served):
    base, w = served
    found = all_routes()
    missing = sorted(found - set(ROUTES))
    assert not missing, (
        f"new route(s) {missing} have no entry in ROUTES: add a sample call so their authorisation is checked"
    )
    stale = sorted(set(ROUTES) - found)
    assert not stale, f"ROUTES names routes that no longer exist: {stale}; remove them"
    for key, call in ROUTES.items():
        assert call.under or call.why, f"{key}: say why no under-privileged caller is refused"
        assert key.startswith("GET ") or call.control or call.why, f"{key}: add a control or say why there is none"

    def bearer(name: str) -> dict:
        return {"Authorization": f"Bearer {w.tokens[name]}"}

    def cookie(name: str) -> dict:
        return {"Cookie": f"maestro_session={w.tokens[name]}"}

    problems: list[str] = []
    with httpx.Client(base_url=base, timeout=20, follow_redirects=False) as client:

        def check(key: str, case: str, call: Call, headers: dict, *, may_read: bool) -> None:
            with kept_database(w.db_path):  # a refusal that wrote anyway is reported, and undone for the next check
                checked(key, case, call, headers, may_read=may_read)

        def checked(key: str, case: str, call: Call, headers: dict, *, may_read: bool) -> None:
            method = key.split(" ", 1)[0]
            before = snapshot()
            status, text, cookie_set = _send(client, method, call.path(w), call.body(w) if call.body else None, headers)
            if diff := changes(before, snapshot()):
                problems.append(f"{key} [{case}] CHANGED THE DATABASE: {diff}")
            allowed = (200,) if may_read else call.refused
            if status not in allowed:
                problems.append(f"{key} [{case}] answered {status}, not one of {allowed}: {text[:200]}")
            if not (may_read and case == "olive") and SECRET in text.lower():
                problems.append(f"{key} [{case}] showed the room's text: {text[:200]}")
            if "maestro_session=" in cookie_set and "max-age=0" not in cookie_set.lower():
                problems.append(f"{key} [{case}] set a session cookie")

        for key, call in ROUTES.items():
            wrong_place = bearer(call.who) if call.browser else cookie(call.who)
            check(key, "anonymous", call, {}, may_read=False)
            check(key, f"{call.who}'s credential in the wrong place", call, wrong_place, may_read=False)
            for name in dict.fromkeys((*call.under, *call.reads)):
                headers = cookie(name) if call.browser else bearer(name)
                check(key, name, call, headers, may_read=name in call.reads)
            if call.control:
                with kept_database(w.db_path):
                    headers = cookie(call.who) if call.browser else bearer(call.who)
                    before = snapshot()
                    status, text, _ = _send(
                        client, key.split(" ", 1)[0], call.path(w), call.body(w) if call.body else None, headers
                    )
                    if status >= 300 or not changes(before, snapshot()):
                        problems.append(f"{key} [control: {call.who}] answered {status}, changed nothing: {text[:200]}")
    assert not problems, "\n".join(problems)
