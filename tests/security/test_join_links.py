"""Join links (issue 12, point 5): hashed at rest, an expiry, a use count, a revoke; never a deciding role; and the
same checks as an invitation by name (a closed discussion, the approval gate while a decision is being made).

Each test runs on SQLite and Postgres against a real, migrated database, with real accounts.
"""

from __future__ import annotations

import hashlib
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlmodel import SQLModel, func, select

from backend import clock
from backend.db import get_engine, session_scope
from backend.errors import Forbidden, InputError, NotFound
from backend.humans import membership, polls
from backend.models import AuditEntry, Invite, Participant
from backend.providers import registry
from backend.providers.scripted import ScriptedProvider
from backend.services.discussions import AgentSpec, create_discussion
from tests.people import person

AGENTS = [AgentSpec("architect", "scripted", "m")]


class FakeClock:
    """A clock the test moves by hand: expiry is tested without sleeping."""

    def __init__(self) -> None:
        self.at = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.at


@pytest.fixture
def moved_clock():
    c = FakeClock()
    clock.set_clock(c)
    yield c
    clock.set_clock(None)


@pytest.fixture
def room(database):
    """Sam owns the discussion; Olive observes; Pat is a contributor."""
    registry.register_provider("scripted", ScriptedProvider(["unused"]))
    sam, olive, pat = person("sam"), person("olive"), person("pat")
    d = create_discussion(topic="Choose a database for Apollo", agents=AGENTS, rounds=1, owner=sam)
    membership.invite(d.id, sam, "olive", "observer")
    membership.invite(d.id, sam, "pat", "contributor")
    yield d.id, {"sam": sam, "olive": olive, "pat": pat}
    registry.unregister_provider("scripted")


def _members(did: int) -> int:
    with session_scope() as s:
        return s.exec(select(func.count()).select_from(Participant).where(Participant.discussion_id == did)).one()


def _link(did: int) -> Invite:
    with session_scope() as s:
        return s.exec(select(Invite).where(Invite.discussion_id == did).order_by(Invite.id.desc())).first()


def test_only_a_hash_of_the_token_is_stored_and_the_owner_never_sees_it_again(room):
    did, p = room
    token = membership.create_join_link(did, p["sam"], "contributor")
    assert len(token) >= 32
    assert _link(did).token_hash == hashlib.sha256(token.encode()).hexdigest()
    with get_engine().connect() as conn:  # no column of any row of any table holds the token
        for table in SQLModel.metadata.sorted_tables:
            for row in conn.execute(table.select()):
                assert token not in repr(tuple(row)), f"the token is stored in {table.name}"
    listed = membership.list_join_links(did, p["sam"])
    assert [(link.role, link.uses, link.max_uses, link.revoked, link.active) for link in listed] == [
        ("contributor", 0, None, False, True)
    ]
    assert token not in repr(listed)
    with pytest.raises(NotFound, match="not valid"):  # what a copy of the database shows is no key
        membership.join(_link(did).token_hash, person("mallory"))
    assert membership.join(token, person("nina"))[0].role == "contributor"


def test_a_link_expires(room, moved_clock):
    did, p = room
    token = membership.create_join_link(did, p["sam"], "observer", expires_in_days=1 / 24)
    assert _link(did).expires_at.replace(tzinfo=UTC) == moved_clock.at + timedelta(hours=1)
    moved_clock.at += timedelta(minutes=61)
    before = _members(did)
    with pytest.raises(NotFound, match="This join link has expired"):
        membership.join(token, person("nina"))
    assert _members(did) == before
    assert membership.list_join_links(did, p["sam"])[0].active is False


@pytest.mark.parametrize(
    ("terms", "field"),
    [
        ({"expires_in_days": 1 / 48}, "expires_in_days"),  # half an hour
        ({"expires_in_days": 31}, "expires_in_days"),
        ({"expires_in_days": float("nan")}, "expires_in_days"),
        ({"max_uses": 0}, "max_uses"),
        ({"max_uses": 1001}, "max_uses"),
    ],
)
def test_a_link_lasts_an_hour_to_a_month_and_lets_in_1_to_1000_people(room, terms, field):
    did, p = room
    with pytest.raises(InputError) as refused:
        membership.create_join_link(did, p["sam"], "observer", **terms)
    assert set(refused.value.errors) == {field}
    assert _link(did) is None


@pytest.mark.parametrize("role", ["decision_maker", "must_approve"])
def test_a_deciding_role_is_never_given_by_link(room, role):
    did, p = room
    with pytest.raises(InputError, match="invite them by name"):
        membership.create_join_link(did, p["sam"], role)
    assert _link(did) is None


def test_the_last_use_of_a_link_lets_exactly_one_person_in(room):
    """Four people open a one-person link at the same moment: one is in, three are told it is used up."""
    did, p = room
    token = membership.create_join_link(did, p["sam"], "contributor", max_uses=1)
    racers = [person(f"racer{i}") for i in range(4)]
    start = threading.Barrier(len(racers))
    outcomes: list[object] = []

    def race(user) -> None:
        start.wait()
        try:
            outcomes.append(membership.join(token, user)[0].user_id)
        except NotFound as err:
            outcomes.append(str(err))

    threads = [threading.Thread(target=race, args=(u,)) for u in racers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    joined = [o for o in outcomes if isinstance(o, int)]
    assert len(joined) == 1 and len(outcomes) == 4, outcomes
    assert all("used up" in o for o in outcomes if isinstance(o, str))
    with session_scope() as s:
        in_room = s.exec(
            select(Participant.user_id).where(
                Participant.discussion_id == did, Participant.user_id.in_([u.id for u in racers])
            )
        ).all()
    assert in_room == joined
    assert _link(did).uses == 1


def test_a_member_reopening_the_link_uses_nothing_up(room):
    did, p = room
    token = membership.create_join_link(did, p["sam"], "observer", max_uses=2)
    nina = person("nina")
    membership.join(token, nina)
    membership.join(token, nina)  # a second tab, a second click
    membership.join(token, p["pat"])  # already in, as a contributor: not demoted, nothing used
    assert _link(did).uses == 1
    membership.join(token, person("omar"))
    with pytest.raises(NotFound, match="used up"):
        membership.join(token, person("zoe"))


def test_a_revoked_link_lets_nobody_else_in_and_the_revoke_is_audited(room):
    did, p = room
    token = membership.create_join_link(did, p["sam"], "contributor")
    membership.join(token, person("nina"))
    link_id = membership.list_join_links(did, p["sam"])[0].id
    revoked = membership.revoke_join_link(did, link_id, p["sam"])
    assert revoked.revoked and not revoked.active
    with pytest.raises(NotFound, match="This join link has been revoked"):
        membership.join(token, person("omar"))
    with session_scope() as s:
        nina_stays = s.exec(select(Participant).where(Participant.discussion_id == did, Participant.name == "Nina"))
        assert nina_stays.first() is not None  # people it already let in stay
        actions = s.exec(select(AuditEntry.action, AuditEntry.actor_name).where(AuditEntry.discussion_id == did)).all()
    assert ("invite.link_created", "Sam") in actions
    assert ("member.join_link", "Nina") in actions
    assert ("invite.link_revoked", "Sam") in actions


@pytest.mark.parametrize("who", ["olive", "pat", "stranger", None])
def test_only_the_owner_can_list_or_revoke_links(room, who):
    did, p = room
    membership.create_join_link(did, p["sam"], "contributor")
    link_id = _link(did).id
    actor = None if who is None else p.get(who) or person(who)
    with pytest.raises(Forbidden):
        membership.list_join_links(did, actor)
    with pytest.raises(Forbidden):
        membership.revoke_join_link(did, link_id, actor)
    with pytest.raises(Forbidden):
        membership.create_join_link(did, actor, "observer")
    assert not _link(did).revoked


def test_a_link_of_another_discussion_cannot_be_revoked_from_this_one(room):
    did, p = room
    other = create_discussion(topic="Another question", agents=AGENTS, rounds=1, owner=p["olive"])
    membership.create_join_link(other.id, p["olive"], "observer")
    with pytest.raises(NotFound):
        membership.revoke_join_link(did, _link(other.id).id, p["sam"])  # Sam owns `did`, not the link's room
    assert not _link(other.id).revoked


def _legacy_link(did: int, owner_id: int, role: str) -> str:
    """A link made before links were limited (the migration revokes these; one left active must still not work)."""
    token = f"legacy-{role}"
    with session_scope() as s:
        s.add(
            Invite(
                discussion_id=did,
                token_hash=hashlib.sha256(token.encode()).hexdigest(),
                role=role,
                created_by=owner_id,
                expires_at=clock.now() + timedelta(days=7),
            )
        )
    return token


def test_a_join_makes_the_same_gate_check_as_an_invitation(room):
    """While a decision is being voted on, who approves it is fixed: a link cannot add an approver, nor can an
    invitation by name; once nothing is being decided, a deciding link is still refused."""
    did, p = room
    token = _legacy_link(did, p["sam"].id, "must_approve")
    with session_scope() as s:
        polls.open_poll(s, did, key="k", question="Which database?", options=["A", "B"], rule="plurality")
    gate = "who approves it cannot change now"
    with pytest.raises(Forbidden, match=gate):
        membership.join(token, person("mallory"))
    with pytest.raises(Forbidden, match=gate):
        membership.invite(did, p["sam"], "olive", "must_approve")
    with session_scope() as s:
        s.execute(text("UPDATE poll SET status = 'closed' WHERE discussion_id = :d"), {"d": did})
    with pytest.raises(NotFound, match="invited by name"):
        membership.join(token, person("trent"))
    assert _link(did).uses == 0
    with session_scope() as s:
        approvers = s.exec(select(Participant).where(Participant.role == "must_approve")).all()
    assert approvers == []


def test_a_link_into_a_closed_discussion_is_refused(room):
    did, p = room
    token = membership.create_join_link(did, p["sam"], "contributor")
    with session_scope() as s:
        s.execute(text("UPDATE discussion SET status = 'completed' WHERE id = :id"), {"id": did})
    with pytest.raises(Forbidden, match="closed"):
        membership.join(token, person("nina"))
    assert _link(did).uses == 0


def test_guessing_join_links_is_rate_limited_per_person(room, monkeypatch):
    from limits import parse

    from backend.errors import TooManyAttempts
    from backend.humans import rate_limits

    monkeypatch.setitem(rate_limits.LIMITS, "join", (parse("3/hour"), "join attempts"))
    mallory = person("mallory")
    for guess in ("a", "b", "c"):
        with pytest.raises(NotFound):
            membership.join(f"guess-{guess}", mallory)
    with pytest.raises(TooManyAttempts, match="join attempts"):
        membership.join("guess-d", mallory)
