"""Spoofable names and topics (issue 15): display names and discussion topics are normalised where they are set
(backend/humans/text.py), on the real accounts and discussions services and database."""

from __future__ import annotations

import pytest
from sqlmodel import select

from backend.db import session_scope
from backend.errors import InputError
from backend.humans import accounts, membership
from backend.models import Discussion, Participant, User
from backend.providers import registry
from backend.providers.scripted import ScriptedProvider
from backend.services.discussions import MAX_TOPIC_CHARS, AgentSpec, create_discussion
from tests.people import person

PASSWORD = "correct horse"
AGENTS = [AgentSpec("architect", "scripted", "m")]


@pytest.fixture
def scripted():
    registry.register_provider("scripted", ScriptedProvider(["unused"]))
    yield
    registry.unregister_provider("scripted")


def test_a_right_to_left_override_is_not_kept_in_a_display_name(sqlite_db):
    user, _ = accounts.sign_up("cto", PASSWORD, "Approved by the CTO\u202eexe.pdf")
    assert user.display_name == "Approved by the CTOexe.pdf"
    with session_scope() as s:
        stored = s.exec(select(User).where(User.username == "cto")).one()
    assert stored.display_name == "Approved by the CTOexe.pdf"


def test_display_names_are_nfc_and_keep_ordinary_letters(sqlite_db):
    zoe, _ = accounts.sign_up("zoe", PASSWORD, "Zoe\u0308 O'Brien-\u674e\u96f7")
    assert zoe.display_name == "Zoë O'Brien-李雷"


@pytest.mark.parametrize("invisible", ["\u200b\u200d", "\u202e", " \u2066\u2069 \n", "\ufeff"])
def test_a_name_with_nothing_visible_is_refused(sqlite_db, invisible):
    with pytest.raises(InputError) as refused:
        accounts.sign_up("ghost", PASSWORD, invisible)
    assert "no visible characters" in refused.value.errors["display_name"]
    assert accounts.find_user("ghost") is None


def test_no_name_at_all_is_the_username(sqlite_db):
    user, _ = accounts.sign_up("sam", PASSWORD, "   ")
    assert user.display_name == "sam"


def test_names_in_a_discussion_stay_unique_after_normalising(sqlite_db, scripted):
    sam = person("sam", "Sam")
    person("zoe1", "Zoë")
    person("zoe2", "Zoe\u0308\u200b")  # the same name, decomposed and with a zero-width space
    d = create_discussion(topic="Choose a database for Apollo", agents=AGENTS, rounds=1, owner=sam)
    membership.invite(d.id, sam, "zoe1", "contributor")
    membership.invite(d.id, sam, "zoe2", "contributor")
    with session_scope() as s:
        names = set(s.exec(select(Participant.name).where(Participant.discussion_id == d.id)))
    assert {"Zoë", "Zoë 2"} <= names


def test_an_old_account_name_is_shown_clean_in_a_discussion(sqlite_db, scripted):
    sam = person("sam", "Sam")
    old = person("old", "Old")
    with session_scope() as s:  # an account made before names were normalised
        row = s.get(User, old.id)
        row.display_name = "Old\u202e fdp.exe"
        s.add(row)
    d = create_discussion(topic="Choose a database for Apollo", agents=AGENTS, rounds=1, owner=sam)
    membership.invite(d.id, sam, "old", "contributor")
    with session_scope() as s:
        names = set(s.exec(select(Participant.name).where(Participant.discussion_id == d.id)))
    assert "Old fdp.exe" in names


def test_a_long_name_and_its_number_fit_the_column():
    base = "x" * 200
    taken: set[str] = set()
    first, second = membership.unique_name(base, taken), membership.unique_name(base, taken)
    assert len(first) == 120 and len(second) == 120 and second.endswith(" 2") and first != second


def test_a_topic_is_normalised_when_a_discussion_is_created(sqlite_db, scripted):
    sam = person("sam")
    d = create_discussion(
        topic="  Approve the invoice\u202efdp.exe\u200b  from Caf\u0065\u0301 Ltd?  ",
        agents=AGENTS,
        rounds=1,
        owner=sam,
    )
    expected = "Approve the invoicefdp.exe from Café Ltd?"
    with session_scope() as s:
        assert s.get(Discussion, d.id).topic == expected


def test_a_topic_keeps_its_validation_messages(sqlite_db, scripted):
    with pytest.raises(InputError) as empty:
        create_discussion(topic="\u200b\u202e \n", agents=AGENTS, rounds=1)
    assert empty.value.errors["topic"] == "Write the question the room should discuss."
    huge = "x" * 1_048_576
    with pytest.raises(InputError) as too_long:
        create_discussion(topic=huge, agents=AGENTS, rounds=1)
    assert too_long.value.errors["topic"] == (
        f"The question is 1,048,576 characters; the limit is {MAX_TOPIC_CHARS:,}."
    )
