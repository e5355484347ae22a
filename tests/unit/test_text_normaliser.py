"""Names and topics as people will see them (issue 15, "Spoofable names"): backend/humans/text.py."""

from __future__ import annotations

import unicodedata

import pytest

from backend.humans.text import BIDI_CONTROLS, ZERO_WIDTH, clean_name, clean_topic


def test_a_right_to_left_override_cannot_disguise_a_name():
    cleaned = clean_name("Approved by the CTO\u202eexe.pdf")
    assert cleaned == "Approved by the CTOexe.pdf"
    assert "\u202e" not in cleaned


@pytest.mark.parametrize("ch", sorted(BIDI_CONTROLS))
def test_every_bidi_control_goes(ch):
    assert clean_name(f"Sam{ch} Lee") == "Sam Lee"
    assert clean_topic(f"Choose{ch} a database") == "Choose a database"


def test_the_bidi_controls_are_the_listed_ones():
    listed = {chr(c) for c in [*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C]}
    assert listed == BIDI_CONTROLS


@pytest.mark.parametrize("ch", ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"])
def test_zero_width_characters_go(ch):
    assert ch in ZERO_WIDTH
    assert clean_name(f"Al{ch}ex") == "Alex"
    assert clean_topic(f"Post{ch}greSQL?") == "PostgreSQL?"


def test_names_are_nfc():
    decomposed = "Zoe\u0308 Lo\u0301pez"  # e + combining diaeresis, o + combining acute
    cleaned = clean_name(decomposed)
    assert cleaned == "Zoë López"
    assert cleaned == unicodedata.normalize("NFC", cleaned)
    assert clean_name("Zoë") == clean_name("Zoe\u0308")  # two spellings, one name
    assert clean_topic("Cafe\u0301 or tea?") == "Café or tea?"


def test_a_zero_width_character_between_a_letter_and_its_accent_still_gives_nfc():
    assert clean_name("Zoe\u200b\u0308") == "Zoë"


@pytest.mark.parametrize("name", ["Zoë", "李雷", "O'Brien", "Anne-Marie", "José Ñúñez", "Łukasz", "Ἀθηνᾶ", "محمد"])
def test_ordinary_names_are_untouched(name):
    assert clean_name(name) == name


def test_control_characters_and_whitespace():
    assert clean_name("  Sam\t\tLee\n\rthe\x00 \x07second\u2028line  ") == "Sam Lee the second line"
    assert clean_name("\u200b\u202e \n") == ""  # nothing visible: the caller refuses it
    assert clean_name("soft\u00adhyphen") == "softhyphen"  # other format characters go too


def test_a_topic_keeps_its_paragraphs_but_not_the_noise():
    raw = "  Choose   a database\t for Apollo \r\n\r\n\r\n\r\nWhy:\u202e  cost\u200b and  ops  \n"
    assert clean_topic(raw) == "Choose a database for Apollo\n\nWhy: cost and ops"
    assert clean_topic("Which one?") == "Which one?"
    assert clean_topic("\u200b \u202e") == ""
