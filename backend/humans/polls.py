"""Polls: one counting rule over humans and agents together, with every "only once" rule in the database.

A person votes through the service (identity from the server session, role checked here); an agent's ballot comes
from the engine. Changing a vote retires the previous row and inserts a new current one, so the history stays and
the partial unique index keeps one current ballot per participant. A ballot's `client_id` makes a double click one
vote. How anyone voted stays hidden until the poll closes (the audit trail and the VoteCast event say who voted, never
how); then the count, the per-voter breakdown and (for Schulze) the pairwise matrix are stored on the poll and
published, and the people's ballots are revealed in the audit trail in the same transaction.
"""

from __future__ import annotations

import string
from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from backend import clock
from backend.db import session_scope
from backend.deliberation import voting
from backend.errors import InputError, NotFound
from backend.events.log import append_event
from backend.events.schema import PollClosed, PollOpened, VoteCast
from backend.humans import audit
from backend.humans.membership import authorize, load_open
from backend.humans.roles import Permission, Role, permissions
from backend.models import Participant, ParticipantKind, Poll, PollStatus, User, Vote
from backend.models.base import as_utc, utcnow

MAX_OPTIONS = 12
CHANGE_OF_MIND_S = 3.0
MIN_DEADLINE_S, MAX_DEADLINE_S = 10, 7 * 24 * 3600


def option_ids(count: int) -> list[str]:
    """Stable option ids: A, B, C..."""
    return list(string.ascii_uppercase[:count])


def normalise_options(options: list[str] | list[dict]) -> list[dict]:
    """Options as {"id", "text", "author"} with ids A, B, C...; blank and repeated texts dropped."""
    seen: set[str] = set()
    items: list[dict] = []
    for raw in options:
        text = (raw.get("text", "") if isinstance(raw, dict) else str(raw)).strip()[:500]
        author = (raw.get("author", "") if isinstance(raw, dict) else "") or ""
        if text and text.lower() not in seen:
            seen.add(text.lower())
            items.append({"text": text, "author": author})
    return [{"id": oid, **item} for oid, item in zip(option_ids(len(items)), items, strict=False)]


def validate_rule(rule: str) -> str:
    """The rule's name, or an InputError naming the valid ones."""
    if rule not in voting.RULES:
        raise InputError({"rule": f"Unknown voting rule '{rule}'; choose one of: {', '.join(voting.RULES)}."})
    return rule


def voters(session: Session, discussion_id: int) -> list[Participant]:
    """Who may vote: every agent, and every person whose role grants the vote."""
    rows = session.exec(select(Participant).where(Participant.discussion_id == discussion_id)).all()
    return [
        p
        for p in sorted(rows, key=lambda p: (p.kind != ParticipantKind.AGENT, p.position, p.id or 0))
        if p.kind == ParticipantKind.AGENT or Permission.VOTE in permissions(p.role)
    ]


def expected_voters(session: Session, discussion_id: int) -> list[Participant]:
    """Whose vote the count waits for: everyone who may vote except the must-approve person, whose say is the
    sign-off that follows (they may still vote before the poll closes)."""
    return [p for p in voters(session, discussion_id) if p.role != Role.MUST_APPROVE]


def open_poll(
    session: Session,
    discussion_id: int,
    *,
    key: str,
    question: str,
    options: list[str] | list[dict],
    rule: str,
    exclude_own: bool = False,
    deadline_s: float = 300,
    created_by: str = "protocol",
) -> PollOpened | None:
    """Open a poll in the caller's transaction; None when one with this key exists (a resumed step)."""
    validate_rule(rule)
    items = normalise_options(options)
    if len(items) < 2:
        raise InputError({"options": "A vote needs at least two different options."})
    if len(items) > MAX_OPTIONS:
        raise InputError({"options": f"A vote has at most {MAX_OPTIONS} options."})
    if not question.strip():
        raise InputError({"question": "Write the question the vote decides."})
    if not MIN_DEADLINE_S <= deadline_s <= MAX_DEADLINE_S:
        raise InputError({"deadline": f"A vote's deadline is between {MIN_DEADLINE_S} seconds and 7 days away."})
    if session.exec(select(Poll.id).where(Poll.discussion_id == discussion_id, Poll.key == key)).first():
        return None
    poll = Poll(
        discussion_id=discussion_id,
        key=key,
        question=question.strip()[:2000],
        rule=rule,
        options=items,
        exclude_own=exclude_own,
        deadline_at=clock.now() + timedelta(seconds=deadline_s),
        created_by=created_by[:120],
    )
    session.add(poll)
    session.flush()
    assert poll.id is not None
    return append_event(
        session,
        PollOpened(
            discussion_id=discussion_id,
            poll_id=poll.id,
            question=poll.question,
            rule=rule,
            options=[{"id": o["id"], "text": o["text"]} for o in items],
            voters=[p.name for p in expected_voters(session, discussion_id)],
            deadline_at=poll.deadline_at,
            exclude_own=exclude_own,
        ),
    )  # type: ignore[return-value]


def _check_ballot(poll: Poll, ranking: list[str], voter_name: str) -> list[str]:
    known = {o["id"] for o in poll.options}
    ranking = [str(r).strip() for r in ranking]
    if not ranking:
        raise InputError({"ballot": "Choose at least one option."})
    if unknown := [r for r in ranking if r not in known]:
        raise InputError(
            {"ballot": f"Unknown option {', '.join(unknown)}; the options are {', '.join(sorted(known))}."}
        )
    if len(set(ranking)) != len(ranking):
        raise InputError({"ballot": "Each option may appear once in a ballot."})
    if poll.rule in ("plurality", "majority"):
        ranking = ranking[:1]
    if poll.exclude_own:  # your own proposals are left out of your ballot; it must still name another option
        own = {o["id"] for o in poll.options if o.get("author") and o["author"] == voter_name}
        ranking = [r for r in ranking if r not in own]
        if not ranking:
            raise InputError({"ballot": "In this vote nobody votes for an option they proposed: choose another."})
    return ranking


def record_vote(
    session: Session,
    poll: Poll,
    participant: Participant,
    ranking: list[str],
    *,
    client_id: str,
    reason: str = "",
) -> VoteCast | None:
    """Store a ballot as the participant's current vote (history kept); None for a repeated `client_id`."""
    assert poll.id is not None and participant.id is not None
    # A no-op UPDATE on the open row takes its write lock first, so a close() running at the same moment either
    # counts this ballot or happens before it and refuses it; never a ballot stored after the count.
    still_open = session.execute(
        update(Poll)
        .where(Poll.id == poll.id, Poll.status == PollStatus.OPEN)  # type: ignore[arg-type]
        .values(status=PollStatus.OPEN)
    ).rowcount
    if not still_open or as_utc(poll.deadline_at) <= clock.now():
        raise InputError({"ballot": "This vote is closed."})
    ranking = _check_ballot(poll, ranking, participant.name)
    if session.exec(select(Vote.id).where(Vote.poll_id == poll.id, Vote.client_id == client_id)).first():
        return None
    changed = (
        session.execute(
            update(Vote)
            .where(Vote.poll_id == poll.id, Vote.participant_id == participant.id, Vote.current == True)  # type: ignore[arg-type]  # noqa: E712
            .values(current=False)
        ).rowcount
        > 0
    )
    session.add(
        Vote(
            poll_id=poll.id,
            participant_id=participant.id,
            voter_name=participant.name,
            voter_kind=participant.kind,
            ranking=ranking,
            weight=participant.vote_weight if participant.kind == ParticipantKind.HUMAN else 1.0,
            reason=reason.strip()[:2000],
            client_id=client_id[:80],
            created_at=clock.now(),
        )
    )
    session.flush()
    return append_event(
        session,
        VoteCast(
            discussion_id=poll.discussion_id,
            poll_id=poll.id,
            participant_id=participant.id,
            voter_name=participant.name,
            voter_kind=participant.kind,
            changed=changed,
        ),
    )  # type: ignore[return-value]


def cast_vote(
    discussion_id: int, poll_id: int, actor: User | None, ranking: list[str], client_id: str, reason: str = ""
) -> VoteCast | None:
    """A person votes; their identity and role come from the session, never from the payload."""
    try:
        with session_scope() as s:
            load_open(s, discussion_id)
            participant = authorize(s, discussion_id, actor, Permission.VOTE)
            poll = s.get(Poll, poll_id)
            if poll is None or poll.discussion_id != discussion_id:
                raise NotFound(f"No vote {poll_id} in this discussion.")
            event = record_vote(s, poll, participant, ranking, client_id=client_id, reason=reason)
            if event is not None:  # that they voted, not how: the ballot is sealed until the poll closes
                audit.record(
                    s,
                    actor=actor,
                    action="vote.change" if event.changed else "vote.cast",
                    discussion_id=discussion_id,
                    target=poll.question,
                )
            return event
    except IntegrityError:  # the same person voting from two tabs at the same instant: one of them wins
        raise InputError({"ballot": "Your vote changed in another tab at the same moment; try again."}) from None


def current_votes(session: Session, poll_id: int) -> list[Vote]:
    """Every participant's current ballot, in the order they were cast."""
    return list(
        session.exec(
            select(Vote).where(Vote.poll_id == poll_id, Vote.current == True).order_by(Vote.id)  # type: ignore[arg-type]  # noqa: E712
        )
    )


def vote_history(poll_id: int) -> list[Vote]:
    """Every ballot ever cast in a poll, retired ones included."""
    with session_scope() as s:
        return list(s.exec(select(Vote).where(Vote.poll_id == poll_id).order_by(Vote.id)))  # type: ignore[arg-type]


def count(poll: Poll, votes: list[Vote]) -> dict:
    """The poll's result as JSON: the rule's outcome plus who voted how (and what their ballot was worth)."""
    options = [voting.Option(id=o["id"], label=o["text"], author=o.get("author") or None) for o in poll.options]
    ballots = [voting.Ballot(voter=v.voter_name, ranking=tuple(v.ranking), weight=v.weight) for v in votes]
    result = voting.tally(poll.rule, options, ballots, exclude_own=poll.exclude_own)
    data = result.as_dict()
    texts = {o["id"]: o["text"] for o in poll.options}
    data["options"] = [{"id": o["id"], "text": o["text"], "author": o.get("author") or ""} for o in poll.options]
    data["winner_text"] = texts.get(data.get("winner") or "", None)
    data["voters"] = [
        {
            "voter": v.voter_name,
            "kind": v.voter_kind,
            "weight": v.weight,
            "ranking": v.ranking,
            "ranking_text": [texts.get(r, r) for r in v.ranking],
            "first": texts.get(v.ranking[0], "") if v.ranking else "",
            "reason": v.reason,
        }
        for v in votes
    ]
    return data


def close(session: Session, poll: Poll) -> PollClosed | None:
    """Count and close (exactly once, even when two callers race); None if it was already closed."""
    assert poll.id is not None
    won = session.execute(
        update(Poll)
        .where(Poll.id == poll.id, Poll.status == PollStatus.OPEN)  # type: ignore[arg-type]
        .values(status=PollStatus.CLOSED, closed_at=utcnow())
    ).rowcount
    if won != 1:
        return None
    result = count(poll, current_votes(session, poll.id))
    session.execute(update(Poll).where(Poll.id == poll.id).values(result=result))  # type: ignore[arg-type]
    _reveal_ballots(session, poll)
    return append_event(session, PollClosed(discussion_id=poll.discussion_id, poll_id=poll.id, result=result))  # type: ignore[return-value]


def _reveal_ballots(session: Session, poll: Poll) -> None:
    """Unseal the people's ballots into the audit trail, in the closing transaction: one "vote.revealed" entry per
    ballot ever cast (changed ones included, with the ballot it replaced as the value before), so the trail keeps
    every vote once nobody can be swayed by it any more."""
    assert poll.id is not None
    texts = {o["id"]: o["text"] for o in poll.options}
    previous: dict[int, str] = {}
    ballots = session.exec(
        select(Vote, Participant.user_id)
        .join(Participant, Participant.id == Vote.participant_id)  # type: ignore[arg-type]
        .where(Vote.poll_id == poll.id, Vote.voter_kind == ParticipantKind.HUMAN)
        .order_by(Vote.id)  # type: ignore[arg-type]
    ).all()
    user_ids = sorted({uid for _, uid in ballots if uid})
    users = {u.id: u for u in session.exec(select(User).where(User.id.in_(user_ids)))}  # type: ignore[union-attr]
    for vote, user_id in ballots:
        shown = " > ".join(texts.get(r, r) for r in vote.ranking) + (f" ({vote.reason})" if vote.reason else "")
        audit.record(
            session,
            actor=users.get(user_id) if user_id else None,
            action="vote.revealed",
            discussion_id=poll.discussion_id,
            target=poll.question if user_id in users else f"{poll.question} ({vote.voter_name})",
            previous=previous.get(vote.participant_id),
            new=shown,
        )
        previous[vote.participant_id] = shown


def close_if_done(poll_id: int, grace_s: float | None = None, excused: set[int] | None = None) -> PollClosed | None:
    """Close a poll at its deadline, or earlier once every expected voter has voted and nobody has voted for
    `grace_s` seconds (so the last voter can still change their mind)."""
    with session_scope() as s:
        poll = s.get(Poll, poll_id)
        if poll is None or poll.status != PollStatus.OPEN:
            return None
        eligible = {p.id for p in expected_voters(s, poll.discussion_id)} - (excused or set())
        votes = current_votes(s, poll_id)
        now = clock.now()
        grace_s = CHANGE_OF_MIND_S if grace_s is None else grace_s
        settled = not votes or max(as_utc(v.created_at) for v in votes) <= now - timedelta(seconds=grace_s)
        if (eligible <= {v.participant_id for v in votes} and settled) or as_utc(poll.deadline_at) <= now:
            return close(s, poll)
        return None


def poll_by_key(discussion_id: int, key: str) -> Poll | None:
    with session_scope() as s:
        return s.exec(select(Poll).where(Poll.discussion_id == discussion_id, Poll.key == key)).first()


def get(poll_id: int) -> Poll:
    with session_scope() as s:
        poll = s.get(Poll, poll_id)
        if poll is None:
            raise NotFound(f"No vote {poll_id}.")
        return poll


def open_polls(discussion_id: int) -> list[Poll]:
    with session_scope() as s:
        return list(s.exec(select(Poll).where(Poll.discussion_id == discussion_id, Poll.status == PollStatus.OPEN)))
