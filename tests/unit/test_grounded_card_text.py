"""The checks behind a grounded decision card: naming the winner, cutting text, and stances only from what a
person wrote or voted."""

from __future__ import annotations

from backend.deliberation import decisions
from backend.deliberation.consensus import ConsensusReport
from backend.deliberation.decisions import DecisionDraft, DecisionText, check_text, clip, names, whole_sentences

OPTIONS = ["PostgreSQL only", "Hybrid PostgreSQL + DynamoDB", "DynamoDB"]


def _draft(winner: str | None) -> DecisionDraft:
    return DecisionDraft(
        topic="Choose a database for Apollo",
        chosen_option=winner,
        status="decided" if winner else "deadlocked",
        support="2 of 4 ranked PostgreSQL only first" if winner else "Tie between PostgreSQL only and DynamoDB",
        breakdown=[],
        dissent=[],
    )


def test_an_option_is_named_by_its_whole_label_whatever_the_case_and_punctuation():
    assert names("Apollo: postgresql-ONLY!", "PostgreSQL only")
    assert names("We go with  PostgreSQL   only.", "PostgreSQL only")
    assert not names("A hybrid of PostgreSQL and DynamoDB", "PostgreSQL only")
    assert not names("PostgreSQL", "PostgreSQL only")
    assert not names("PostgreSQLonly", "PostgreSQL only")
    assert not names("anything", "")


def test_the_title_must_name_the_option_that_won():
    draft = _draft("PostgreSQL only")
    assert check_text(draft, DecisionText(title="Apollo runs on PostgreSQL only", rationale="x"), OPTIONS) == []
    [problem] = check_text(draft, DecisionText(title="Dissent", rationale="x"), OPTIONS)
    assert '"Dissent"' in problem and '"PostgreSQL only"' in problem
    assert check_text(draft, DecisionText(title="Hybrid PostgreSQL + DynamoDB", rationale="x"), OPTIONS)


def test_a_deadlocked_title_must_not_claim_a_winner():
    draft = _draft(None)
    assert check_text(draft, DecisionText(title="Apollo runs on DynamoDB", rationale="x"), OPTIONS)
    assert not check_text(draft, DecisionText(title="DynamoDB and PostgreSQL only tied", rationale="x"), OPTIONS)
    assert not check_text(draft, DecisionText(title="Tie: DynamoDB?", rationale="x"), OPTIONS)
    assert not check_text(draft, DecisionText(title="Apollo's database is still open", rationale="x"), OPTIONS)
    assert "deadlocked" in decisions.retry_cue(draft, ["x"])


def test_a_rationale_that_does_not_name_the_winner_gets_a_counted_lead():
    draft = _draft("PostgreSQL only")
    text = decisions.grounded(draft, DecisionText(title="PostgreSQL only", rationale="Transactions matter."))
    assert (
        text.rationale == "The room chose PostgreSQL only (2 of 4 ranked PostgreSQL only first). Transactions matter."
    )
    kept = DecisionText(title="PostgreSQL only", rationale="PostgreSQL only is simplest.")
    assert decisions.grounded(draft, kept) == kept


def test_text_is_cut_at_a_sentence_or_word_with_an_ellipsis():
    assert clip("Short.", 100) == "Short."
    assert clip("One two three. Four five six seven eight nine ten.", 30) == "One two three. …"
    assert clip("Onetwothree four five six seven eight nine ten", 20) == "Onetwothree four…"
    long = "Sentence number one is here. " * 30
    cut = clip(long, 200)
    assert len(cut) <= 200 and cut.endswith("here. …")


def test_a_long_reason_that_stops_mid_sentence_is_cut_back_to_its_last_sentence():
    reason = "DynamoDB scales without operations work. " * 5 + "And the team already knows the access patt"
    assert whole_sentences(reason).endswith("operations work. …")
    assert whole_sentences("cheaper") == "cheaper"  # a short fragment is how people write: kept
    assert whole_sentences("It scales. It is cheap.") == "It scales. It is cheap."
    assert whole_sentences("x" * 700).endswith("…") and len(whole_sentences("x" * 700)) <= 600


def test_the_card_says_when_there_is_no_action_plan():
    md = decisions.to_markdown(
        {
            "title": "t",
            "status": "decided",
            "final_status": "decided",
            "final_option": "A",
            "chosen_option": "A",
            "support": "1 of 1",
            "rationale": "r",
            "breakdown": [],
            "dissent": [],
            "concerns": [],
            "action_plan": [],
        }
    )
    assert "## Action plan\n\nNo action plan was written." in md


PEOPLE = ["Architect", "Security", "Pat", "Sam"]
SAID = {
    "proposals": [{"id": "P1", "text": "PostgreSQL only", "author": "Pat", "supporters": ["Architect", "Pat"]}],
    "stances": [
        {"participant": "Pat", "position": "oppose", "proposal_id": "P1", "summary": "security is not a priority"},
        {"participant": "Architect", "position": "support", "proposal_id": "P1", "summary": "relational"},
        {"participant": "Sam", "position": "support", "proposal_id": "P1", "summary": "as I wrote"},
    ],
}


def test_a_person_who_wrote_and_voted_nothing_is_undecided_whatever_the_model_said():
    report = ConsensusReport.model_validate(SAID, context={"participants": PEOPLE, "silent": ["pat"]})
    stance = {s.participant: s for s in report.stances}
    assert stance["Pat"].position == "undecided" and stance["Pat"].summary == "" and stance["Pat"].proposal_id is None
    assert report.proposals[0].author == "(unknown)"  # nobody who wrote nothing proposed anything
    assert report.proposals[0].supporters == ["Architect", "Sam"]
    # Agents and people who wrote keep the model's reading.
    assert stance["Architect"].position == "support" and stance["Sam"].summary == "as I wrote"
    assert report.agreement_ratio == 0.5


def test_without_a_silent_list_the_model_reading_stands():
    report = ConsensusReport.model_validate(SAID, context={"participants": PEOPLE})
    assert {s.participant: s.position for s in report.stances}["Pat"] == "oppose"
