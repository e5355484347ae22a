"""Voting rules: worked examples with hand-checked numbers, explicit ties, ballot errors, and properties.

The worked examples pin the arithmetic a reader can redo on paper; the hypothesis properties pin what must hold for
every profile (Condorcet consistency of Schulze, Borda's fixed point total, order independence, no points for
one's own proposal), which is where hand-picked examples miss cases.
"""

from __future__ import annotations

import json
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend.deliberation.voting import (
    RULES,
    Ballot,
    BallotError,
    Option,
    Rule,
    get_rule,
    own_options,
    strip_own_options,
    tally,
    validate_ballot,
)

RANKED_RULES = [r for r in RULES if r.ranked]


def b(voter: str, ranking: str, weight: float = 1.0) -> Ballot:
    """A ranked ballot written compactly: b("alice", "ACB") ranks A > C > B."""
    return Ballot(voter, list(ranking), weight=weight)


def ap(voter: str, approved: str, weight: float = 1.0) -> Ballot:
    """An approval ballot written compactly: ap("bob", "AB") approves A and B."""
    return Ballot(voter, approved=set(approved), weight=weight)


def many(ranking: str, count: int, *, start: int = 0) -> list[Ballot]:
    return [b(f"v{start + i}", ranking) for i in range(count)]


# --- Schulze: the 45-voter example of Wikipedia's "Schulze method" article -------------------------------------

WIKIPEDIA_GROUPS = [
    (5, "ACBED"),
    (5, "ADECB"),
    (8, "BEDAC"),
    (3, "CABED"),
    (7, "CAEBD"),
    (2, "CBADE"),
    (7, "DCEBA"),
    (8, "EBADC"),
]

# d[x][y]: how many voters prefer x to y. Row A, column B: groups ACBED 5 + ADECB 5 + CABED 3 + CAEBD 7 = 20.
WIKIPEDIA_D = {
    "A": {"A": 0, "B": 20, "C": 26, "D": 30, "E": 22},
    "B": {"A": 25, "B": 0, "C": 16, "D": 33, "E": 18},
    "C": {"A": 19, "B": 29, "C": 0, "D": 17, "E": 24},
    "D": {"A": 15, "B": 12, "C": 28, "D": 0, "E": 14},
    "E": {"A": 23, "B": 27, "C": 21, "D": 31, "E": 0},
}

# The links are the pairs won: A→C 26, A→D 30, B→A 25, B→D 33, C→B 29, C→E 24, D→C 28, E→A 23, E→B 27, E→D 31.
# p[x][y] is the widest path over them; the path for every entry, its weakest link in brackets:
#   A→B: A-D-C-B (28)   A→C: A-D-C (28)     A→D: A-D (30)        A→E: A-D-C-E (24)
#   B→A: B-A (25)       B→C: B-D-C (28)     B→D: B-D (33)        B→E: B-D-C-E (24)
#   C→A: C-B-A (25)     C→B: C-B (29)       C→D: C-B-D (29)      C→E: C-E (24)
#   D→A: D-C-B-A (25)   D→B: D-C-B (28)     D→C: D-C (28)        D→E: D-C-E (24)
#   E→A: E-B-A (25)     E→B: E-D-C-B (28)   E→C: E-D-C (28)      E→D: E-D (31)
WIKIPEDIA_P = {
    "A": {"A": 0, "B": 28, "C": 28, "D": 30, "E": 24},
    "B": {"A": 25, "B": 0, "C": 28, "D": 33, "E": 24},
    "C": {"A": 25, "B": 29, "C": 0, "D": 29, "E": 24},
    "D": {"A": 25, "B": 28, "C": 28, "D": 0, "E": 24},
    "E": {"A": 25, "B": 28, "C": 28, "D": 31, "E": 0},
}


def wikipedia_ballots() -> list[Ballot]:
    ballots: list[Ballot] = []
    for count, ranking in WIKIPEDIA_GROUPS:
        ballots += many(ranking, count, start=len(ballots) + 1)
    return ballots


def test_wikipedia_tables_are_self_consistent():
    """The literal d table recounted from the groups, independently of the module."""
    assert sum(count for count, _ in WIKIPEDIA_GROUPS) == 45
    for x in "ABCDE":
        for y in "ABCDE":
            expected = sum(count for count, r in WIKIPEDIA_GROUPS if x != y and r.index(x) < r.index(y))
            assert WIKIPEDIA_D[x][y] == expected, (x, y)
            if x != y:
                assert WIKIPEDIA_D[x][y] + WIKIPEDIA_D[y][x] == 45


def test_schulze_wikipedia_example():
    result = tally("schulze", list("ABCDE"), wikipedia_ballots())

    assert result.pairwise == WIKIPEDIA_D
    assert result.strongest_paths == WIKIPEDIA_P
    assert result.status == "winner"
    assert result.winner == "E"
    assert result.tied == []
    assert result.order == [["E"], ["A"], ["C"], ["B"], ["D"]]
    assert result.scores == {"A": 3, "B": 1, "C": 2, "D": 0, "E": 4}  # options beaten by strongest path
    assert result.total_weight == 45
    assert [c.voter for c in result.breakdown] == [f"v{i}" for i in range(1, 46)]
    # v1 ranks A C B E D: A is above 4 options, C above 3, ...; the row sums of the voter's share of d.
    assert result.breakdown[0].points == {"A": 4, "B": 2, "C": 3, "D": 0, "E": 1}
    assert result.breakdown[0].counted == list("ACBED")


def test_schulze_matrices_have_rows_and_columns_in_option_order():
    result = tally("schulze", list("EDCBA"), wikipedia_ballots())
    assert result.pairwise is not None and result.strongest_paths is not None
    assert list(result.pairwise) == list("EDCBA")
    assert all(list(row) == list("EDCBA") for row in result.pairwise.values())
    assert list(result.scores) == list("EDCBA")
    assert result.winner == "E"


# --- small worked examples, one table for every rule ------------------------------------------------------------

CASES = [
    # id, rule, options, ballots, status, winner, tied, runoff, scores
    ("plurality-simple", "plurality", "ABC", [b("v1", "A"), b("v2", "A"), b("v3", "B")],
     "winner", "A", [], [], {"A": 2, "B": 1, "C": 0}),
    ("plurality-reads-only-first", "plurality", "ABC", [b("v1", "BA"), b("v2", "AB"), b("v3", "AC")],
     "winner", "A", [], [], {"A": 2, "B": 1, "C": 0}),
    ("plurality-weight-flips", "plurality", "ABC", [b("chair", "B", 3), b("a1", "A"), b("a2", "A")],
     "winner", "B", [], [], {"A": 2, "B": 3, "C": 0}),
    ("plurality-tie-in-option-order", "plurality", "ABC", [b("v1", "B"), b("v2", "A")],
     "tie", None, ["A", "B"], [], {"A": 1, "B": 1, "C": 0}),
    ("plurality-weighted-tie", "plurality", "ABC", [b("human", "C", 2), b("a1", "A"), b("a2", "A")],
     "tie", None, ["A", "C"], [], {"A": 2, "B": 0, "C": 2}),
    ("plurality-decimal-weights-tie-exactly", "plurality", "AB", [b("h", "A", 0.3), b("a1", "B", 0.1), b("a2", "B", 0.2)],
     "tie", None, ["A", "B"], [], {"A": 0.3, "B": 0.3}),
    ("plurality-no-ballots", "plurality", "AB", [],
     "no_votes", None, [], [], {"A": 0, "B": 0}),
    ("plurality-only-zero-weight", "plurality", "AB", [b("observer", "A", 0)],
     "no_votes", None, [], [], {"A": 0, "B": 0}),
    ("majority-clear", "majority", "ABC", [*many("A", 3), *many("B", 2, start=3)],
     "winner", "A", [], [], {"A": 3, "B": 2, "C": 0}),
    ("majority-exactly-half-is-not-enough", "majority", "ABC", [*many("A", 2), b("x", "B"), b("y", "C")],
     "no_majority", None, [], ["A", "B", "C"], {"A": 2, "B": 1, "C": 1}),
    ("majority-runoff-top-two", "majority", "ABC", [*many("A", 2), *many("B", 2, start=2), b("x", "C")],
     "no_majority", None, [], ["A", "B"], {"A": 2, "B": 2, "C": 1}),
    ("majority-runoff-keeps-tied-second", "majority", "ABCD", [*many("A", 3), *many("B", 2, start=3), *many("C", 2, start=5)],
     "no_majority", None, [], ["A", "B", "C"], {"A": 3, "B": 2, "C": 2, "D": 0}),
    ("majority-fifty-fifty", "majority", "AB", [b("v1", "A"), b("v2", "B")],
     "no_majority", None, [], ["A", "B"], {"A": 1, "B": 1}),
    ("majority-weighted", "majority", "AB", [b("chair", "B", 3), b("a1", "A"), b("a2", "A")],
     "winner", "B", [], [], {"A": 2, "B": 3}),
    ("majority-no-ballots", "majority", "AB", [],
     "no_votes", None, [], [], {"A": 0, "B": 0}),
    ("approval-tie", "approval", "ABC", [ap("alice", "AB"), ap("bob", "B"), ap("carol", "AC")],
     "tie", None, ["A", "B"], [], {"A": 2, "B": 2, "C": 1}),
    ("approval-weighted", "approval", "ABC", [ap("alice", "AB"), ap("bob", "B"), ap("carol", "AC", 2)],
     "winner", "A", [], [], {"A": 3, "B": 2, "C": 2}),
    ("approval-reads-a-ranking-as-approvals", "approval", "ABC", [b("a1", "CA"), b("a2", "A")],
     "winner", "A", [], [], {"A": 2, "B": 0, "C": 1}),
    ("borda-tie", "borda", "ABC", [b("v1", "ABC"), b("v2", "ABC"), b("v3", "BCA")],
     "tie", None, ["A", "B"], [], {"A": 4, "B": 4, "C": 1}),
    ("borda-weight-breaks-it", "borda", "ABC", [b("v1", "ABC"), b("v2", "ABC"), b("v3", "BCA", 2)],
     "winner", "B", [], [], {"A": 4, "B": 6, "C": 2}),
    # The same profile elects A by plurality and B by Borda: B is everyone's first or second choice.
    ("plurality-vs-borda-plurality", "plurality", "ABC", [*many("ABC", 3), *many("BCA", 2, start=3), *many("CBA", 2, start=5)],
     "winner", "A", [], [], {"A": 3, "B": 2, "C": 2}),
    ("plurality-vs-borda-borda", "borda", "ABC", [*many("ABC", 3), *many("BCA", 2, start=3), *many("CBA", 2, start=5)],
     "winner", "B", [], [], {"A": 6, "B": 9, "C": 6}),
    # Partial rankings: the unranked options share the leftover positions' points (here 0+1+2 over three).
    ("borda-one-ranked", "borda", "ABCD", [b("v1", "B")],
     "winner", "B", [], [], {"A": 1, "B": 3, "C": 1, "D": 1}),
    ("borda-two-ranked", "borda", "ABCD", [b("v1", "CA")],
     "winner", "C", [], [], {"A": 2, "B": 0.5, "C": 3, "D": 0.5}),
    ("schulze-condorcet-cycle-is-a-tie", "schulze", "ABC", [b("v1", "ABC"), b("v2", "BCA"), b("v3", "CAB")],
     "tie", None, ["A", "B", "C"], [], {"A": 0, "B": 0, "C": 0}),
    ("schulze-condorcet-winner", "schulze", "ABC", [b("v1", "ABC"), b("v2", "ABC"), b("v3", "BCA")],
     "winner", "A", [], [], {"A": 2, "B": 1, "C": 0}),
    ("schulze-partial-ranked-beats-unranked", "schulze", "ABC", [b("v1", "A"), b("v2", "B"), b("v3", "AB")],
     "winner", "A", [], [], {"A": 2, "B": 1, "C": 0}),
    ("schulze-no-ballots", "schulze", "AB", [],
     "no_votes", None, [], [], {"A": 0, "B": 0}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("rule", "options", "ballots", "status", "winner", "tied", "runoff", "scores"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_worked_examples(rule, options, ballots, status, winner, tied, runoff, scores):
    result = tally(rule, list(options), ballots)
    assert result.rule == rule
    assert result.status == status
    assert result.winner == winner
    assert result.tied == tied
    assert result.runoff == runoff
    assert result.scores == pytest.approx(scores)
    assert list(result.scores) == list(options)
    assert result.options == list(options)
    assert [c.voter for c in result.breakdown] == [ballot.voter for ballot in ballots]
    if status == "tie":
        assert result.order[0] == tied
    if status == "winner":
        assert result.order[0] == [winner]


def test_cycle_matrices():
    result = tally("schulze", list("ABC"), [b("v1", "ABC"), b("v2", "BCA"), b("v3", "CAB")])
    assert result.pairwise == {
        "A": {"A": 0, "B": 2, "C": 1},
        "B": {"A": 1, "B": 0, "C": 2},
        "C": {"A": 2, "B": 1, "C": 0},
    }
    assert result.strongest_paths == {
        "A": {"A": 0, "B": 2, "C": 2},
        "B": {"A": 2, "B": 0, "C": 2},
        "C": {"A": 2, "B": 2, "C": 0},
    }
    assert result.order == [["A", "B", "C"]]


def test_ties_follow_option_order_not_names():
    result = tally("plurality", ["C", "A", "B"], [b("v1", "A"), b("v2", "C")])
    assert (result.status, result.winner, result.tied) == ("tie", None, ["C", "A"])
    assert result.order == [["C", "A"], ["B"]]


def test_breakdown_per_rule():
    ballots = [b("alice", "BCA", 2), b("bob", "A")]
    plural = tally("plurality", list("ABC"), ballots).breakdown
    assert plural[0].points == {"A": 0, "B": 2, "C": 0}
    assert plural[0].weight == 2
    assert plural[1].points == {"A": 1, "B": 0, "C": 0}
    borda = tally("borda", list("ABC"), ballots).breakdown
    assert borda[0].points == {"A": 0, "B": 4, "C": 2}
    assert borda[1].points == {"A": 2, "B": 0.5, "C": 0.5}
    approval = tally("approval", list("ABC"), [ap("carol", "CA", 1.5)]).breakdown
    assert approval[0].counted == ["A", "C"]  # option order, whatever order the set iterates in
    assert approval[0].points == {"A": 1.5, "B": 0, "C": 1.5}


def test_non_schulze_results_have_no_matrices():
    for rule in ("plurality", "majority", "borda"):
        result = tally(rule, list("AB"), [b("v1", "AB")])
        assert result.pairwise is None and result.strongest_paths is None
    result = tally("approval", list("AB"), [ap("v1", "A")])
    assert result.pairwise is None and result.strongest_paths is None


def test_result_is_json_ready():
    result = tally("schulze", list("ABCDE"), wikipedia_ballots())
    data = json.loads(json.dumps(result.as_dict()))
    assert data["rule"] == "schulze"
    assert data["winner"] == "E"
    assert data["pairwise"]["E"]["D"] == 31
    assert data["breakdown"][0]["voter"] == "v1"


# --- no vote on your own proposal -------------------------------------------------------------------------------

AUTHORED = [Option("A", label="Postgres", author="alice"), Option("B", author="bob"), Option("C")]


def test_exclude_own_plurality_moves_to_next_preference():
    ballots = [b("alice", "AC"), b("bob", "BC"), b("carol", "A")]
    assert tally("plurality", AUTHORED, ballots).winner == "A"
    result = tally("plurality", AUTHORED, ballots, exclude_own=True)
    assert (result.status, result.winner) == ("winner", "C")
    assert result.scores == {"A": 1, "B": 0, "C": 2}
    alice = result.breakdown[0]
    assert (alice.counted, alice.excluded, alice.points) == (["C"], ["A"], {"A": 0, "B": 0, "C": 1})


def test_exclude_own_borda_scores_over_the_options_the_voter_may_rate():
    result = tally("borda", AUTHORED, [b("alice", "ACB")], exclude_own=True)
    assert result.breakdown[0].points == {"A": 0, "B": 0, "C": 1}  # C > B over two options: 1 and 0


def test_exclude_own_schulze_states_no_pair_with_the_own_option():
    result = tally("schulze", AUTHORED, [b("alice", "ACB")], exclude_own=True)
    assert result.pairwise == {
        "A": {"A": 0, "B": 0, "C": 0},
        "B": {"A": 0, "B": 0, "C": 0},
        "C": {"A": 0, "B": 1, "C": 0},
    }


def test_exclude_own_approval():
    result = tally("approval", AUTHORED, [ap("alice", "AC"), ap("bob", "AB")], exclude_own=True)
    assert result.scores == {"A": 1, "B": 0, "C": 1}
    assert result.status == "tie"


def test_a_ballot_for_only_ones_own_option_abstains():
    result = tally("majority", AUTHORED, [b("alice", "A", 5), b("bob", "C")], exclude_own=True)
    assert (result.status, result.winner, result.total_weight) == ("winner", "C", 1)
    assert result.breakdown[0].counted == []
    assert tally("majority", AUTHORED, [b("alice", "A")], exclude_own=True).status == "no_votes"


def test_strip_and_own_options():
    assert own_options("alice", AUTHORED) == ["A"]
    assert own_options("carol", AUTHORED) == []
    assert strip_own_options(b("alice", "CAB", 2), AUTHORED) == b("alice", "CB", 2)
    assert strip_own_options(b("alice", "A"), AUTHORED).ranking == ()


# --- errors -----------------------------------------------------------------------------------------------------

ERRORS = [
    ("unknown-option", "borda", [b("alice", "AZ")], "unknown option 'Z'"),
    ("duplicate-in-ranking", "schulze", [b("alice", "ABA")], "more than once"),
    ("duplicate-in-approval-list", "approval", [Ballot("alice", approved=["A", "A"])], "more than once"),
    ("empty-ballot", "plurality", [Ballot("alice")], "empty"),
    ("empty-approval", "approval", [Ballot("alice", approved=set())], "empty"),
    ("negative-weight", "majority", [b("alice", "A", -1)], "negative weight"),
    ("nan-weight", "majority", [b("alice", "A", float("nan"))], "not finite"),
    ("infinite-weight", "majority", [b("alice", "A", float("inf"))], "not finite"),
    ("weight-not-a-number", "majority", [Ballot("alice", ["A"], weight="2")], "not a number"),  # type: ignore[arg-type]
    ("approved-set-for-ranked-rule", "borda", [ap("alice", "AB")], "needs a ranking"),
    ("ranking-and-approvals", "approval", [Ballot("alice", ["A"], approved=["B"])], "both"),
    (
        "second-ballot-same-voter",
        "plurality",
        [b("alice", "A"), b("bob", "B"), b("alice", "B")],
        "more than one ballot",
    ),
]


@pytest.mark.parametrize(("rule", "ballots", "message"), [pytest.param(*e[1:], id=e[0]) for e in ERRORS])
def test_ballot_errors(rule, ballots, message):
    with pytest.raises(BallotError, match=message) as info:
        tally(rule, list("ABC"), ballots)
    assert isinstance(info.value, ValueError)
    assert info.value.voter == "alice"
    assert "'alice'" in str(info.value)


def test_validate_ballot_checks_one_ballot():
    validate_ballot("borda", list("ABC"), b("alice", "CA"))
    with pytest.raises(BallotError, match="unknown option 'D'"):
        validate_ballot("borda", list("ABC"), b("alice", "D"))


def test_blank_voter_and_string_ranking():
    with pytest.raises(BallotError, match="voter id"):
        tally("plurality", list("AB"), [b(" ", "A")])
    with pytest.raises(BallotError, match="not the string"):
        Ballot("alice", "AB")


@pytest.mark.parametrize(
    ("rule", "options", "message"),
    [
        ("instant_runoff", ["A"], "Unknown voting rule"),
        ("plurality", [], "at least one option"),
        ("plurality", ["A", "B", "A"], "unique"),
        ("plurality", [""], "non-empty"),
    ],
)
def test_poll_errors_are_value_errors_not_ballot_errors(rule, options, message):
    with pytest.raises(ValueError, match=message) as info:
        tally(rule, options, [])
    assert not isinstance(info.value, BallotError)


def test_rules_have_names_and_labels():
    assert [r.value for r in RULES] == ["plurality", "majority", "approval", "borda", "schulze"]
    assert "schulze" in RULES and "instant_runoff" not in RULES
    assert ", ".join(RULES) == "plurality, majority, approval, borda, schulze"
    assert all(r.label and r.summary for r in RULES)
    assert Rule.BORDA.label == "Borda count"
    assert get_rule("approval") is Rule.APPROVAL and not Rule.APPROVAL.ranked


# --- properties -------------------------------------------------------------------------------------------------

OPTION_IDS = "ABCDE"
EXACT_WEIGHTS = [0.0, 0.5, 1.0, 2.0, 3.0]
DECIMAL_WEIGHTS = [*EXACT_WEIGHTS, 0.1, 0.2, 0.3, 0.7, 1.1]


@st.composite
def profiles(draw, *, full: bool = False, weights: list[float] = DECIMAL_WEIGHTS, max_voters: int = 7):
    """Options (some authored by voters) and one ranked ballot per voter."""
    ids = list(OPTION_IDS[: draw(st.integers(2, len(OPTION_IDS)))])
    voters = [f"v{i}" for i in range(draw(st.integers(0, max_voters)))]
    authors = [draw(st.sampled_from([None, *voters])) for _ in ids]
    options = [Option(oid, author=author) for oid, author in zip(ids, authors, strict=True)]
    ballots = []
    for voter in voters:
        order = draw(st.permutations(ids))
        length = len(ids) if full else draw(st.integers(1, len(ids)))
        ballots.append(Ballot(voter, order[:length], weight=draw(st.sampled_from(weights))))
    return options, ballots


def for_rule(rule: str, ballots: list[Ballot]) -> list[Ballot]:
    """Approval polls get the ranked options as the approved set."""
    if Rule(rule).ranked:
        return ballots
    return [Ballot(x.voter, approved=x.ranking, weight=x.weight) for x in ballots]


def prefers(ballot: Ballot, x: str, y: str) -> bool:
    ranking = list(ballot.ranking)
    return (ranking.index(x) if x in ranking else len(ranking)) < (ranking.index(y) if y in ranking else len(ranking))


def condorcet_winner(ids: list[str], ballots: list[Ballot]) -> str | None:
    def support(x: str, y: str) -> float:
        return sum(ballot.weight for ballot in ballots if prefers(ballot, x, y))

    winners = [x for x in ids if all(support(x, y) > support(y, x) for y in ids if y != x)]
    return winners[0] if winners else None


def outcome(result) -> dict:
    """Everything in a result that must not depend on ballot order."""
    data = result.as_dict()
    data["breakdown"] = sorted(data["breakdown"], key=lambda c: c["voter"])
    return data


@settings(max_examples=300, deadline=None)
@given(profiles(weights=EXACT_WEIGHTS))
def test_schulze_elects_the_condorcet_winner(profile):
    options, ballots = profile
    ids = [o.id for o in options]
    expected = condorcet_winner(ids, ballots)
    result = tally("schulze", options, ballots)
    if expected is not None:
        assert (result.status, result.winner) == ("winner", expected)


@settings(max_examples=200, deadline=None)
@given(profiles(full=True))
def test_borda_hands_out_n_n_minus_1_over_2_per_unit_of_weight(profile):
    options, ballots = profile
    n = len(options)
    result = tally("borda", options, ballots)
    expected = sum(Fraction(repr(x.weight)) for x in ballots) * n * (n - 1) / 2
    assert sum(result.scores.values()) == pytest.approx(float(expected))


@settings(max_examples=200, deadline=None)
@given(profiles())
def test_borda_total_holds_for_partial_rankings_too(profile):
    options, ballots = profile
    n = len(options)
    result = tally("borda", options, ballots)
    assert sum(result.scores.values()) == pytest.approx(sum(x.weight for x in ballots) * n * (n - 1) / 2)


@settings(max_examples=150, deadline=None)
@given(profiles(), st.sampled_from([r.value for r in RULES]), st.booleans(), st.data())
def test_ballot_order_never_changes_a_result(profile, rule, exclude_own, data):
    options, ballots = profile
    ballots = for_rule(rule, ballots)
    shuffled = data.draw(st.permutations(ballots))
    first = tally(rule, options, ballots, exclude_own=exclude_own)
    second = tally(rule, options, shuffled, exclude_own=exclude_own)
    assert outcome(first) == outcome(second)
    assert [c.voter for c in second.breakdown] == [x.voter for x in shuffled]


@settings(max_examples=150, deadline=None)
@given(profiles(full=True), st.sampled_from([r.value for r in RULES]))
def test_exclude_own_never_gives_points_to_ones_own_option(profile, rule):
    options, ballots = profile
    ballots = for_rule(rule, ballots)
    result = tally(rule, options, ballots, exclude_own=True)
    for contribution in result.breakdown:
        own = own_options(contribution.voter, options)
        assert contribution.excluded == own
        assert not set(own) & set(contribution.counted)
        assert all(contribution.points[oid] == 0 for oid in own)
    if rule == "schulze":
        # With full rankings every counted ballot states each pair it may: exactly the ballots whose voter wrote
        # neither option of the pair.
        assert result.pairwise is not None
        ids = [o.id for o in options]
        for x in ids:
            for y in ids:
                if x != y:
                    free = [c for c in result.breakdown if c.counted and x not in c.excluded and y not in c.excluded]
                    assert result.pairwise[x][y] + result.pairwise[y][x] == pytest.approx(sum(c.weight for c in free))


@settings(max_examples=150, deadline=None)
@given(profiles(), st.sampled_from(["plurality", "majority", "approval", "borda"]), st.booleans())
def test_breakdown_adds_up_to_the_scores(profile, rule, exclude_own):
    options, ballots = profile
    result = tally(rule, options, for_rule(rule, ballots), exclude_own=exclude_own)
    for oid in result.options:
        assert sum(c.points[oid] for c in result.breakdown) == pytest.approx(result.scores[oid])


@settings(max_examples=150, deadline=None)
@given(profiles(), st.sampled_from([r.value for r in RULES]), st.booleans())
def test_status_fields_are_consistent(profile, rule, exclude_own):
    options, ballots = profile
    result = tally(rule, options, for_rule(rule, ballots), exclude_own=exclude_own)
    assert (result.winner is not None) == (result.status == "winner")
    assert (len(result.tied) >= 2) == (result.status == "tie")
    assert (len(result.runoff) >= 2) == (result.status == "no_majority")
    assert result.status != "no_majority" or rule == "majority"
    assert sorted(oid for group in result.order for oid in group) == sorted(result.options)
    if result.status == "winner":
        assert result.order[0] == [result.winner]


# --- the published Tennessee example: one electorate, every rule ------------------------------------------------
# Wikipedia's worked example for plurality, Borda, Condorcet and runoff methods ("Tennessee and its four major
# cities"): 100 voters, each city's voters preferring closer cities. M = Memphis, N = Nashville, C = Chattanooga,
# K = Knoxville.

TENNESSEE = [("MNCK", 42), ("NCKM", 26), ("CKNM", 15), ("KCNM", 17)]


def tennessee_ballots(weighted: bool = False) -> list[Ballot]:
    """Either one ballot per voter (100) or one weighted ballot per bloc (4): both must count the same."""
    if weighted:
        return [b(f"bloc-{ranking}", ranking, share) for ranking, share in TENNESSEE]
    return [b(f"{ranking}-{i}", ranking) for ranking, share in TENNESSEE for i in range(share)]


@pytest.mark.parametrize("weighted", [False, True])
def test_tennessee_under_every_rule(weighted):
    ballots = tennessee_ballots(weighted)
    plurality = tally("plurality", "MNCK", ballots)
    assert (plurality.status, plurality.winner) == ("winner", "M")  # Memphis, with 42 % only
    assert plurality.scores == {"M": 42, "N": 26, "C": 15, "K": 17}

    majority = tally("majority", "MNCK", ballots)  # nobody has more than half: Memphis and Nashville go again
    assert (majority.status, majority.winner, sorted(majority.runoff)) == ("no_majority", None, ["M", "N"])

    borda = tally("borda", "MNCK", ballots)  # the published Borda totals (3-2-1-0 points)
    assert (borda.winner, borda.scores) == ("N", {"M": 126, "N": 194, "C": 173, "K": 107})

    schulze = tally("schulze", "MNCK", ballots)  # Nashville beats every other city head to head: the Condorcet winner
    assert schulze.winner == "N"
    assert schulze.pairwise["N"] == {"M": 58, "N": 0, "C": 68, "K": 68}
