"""Voting rules over ballots from humans and agents together (DESIGN decision 9).

A poll picks one rule and every participant, person or agent, casts the same kind of ballot, so the count is a
pure function of (rule, options, ballots). It touches no database, bus or UI, which lets a result be recomputed
from the event log, explained on screen (per-voter breakdown, Schulze's pairwise matrix) and tested exhaustively.

Policies a reader of a result can rely on:

- **Ties are explicit.** When several options share the top, the status is "tie" and `tied` lists them all.
  Nothing breaks a tie by name, id, option order or ballot order; deciding it is a human's job.
- **Exact arithmetic.** A weight is read as the decimal it prints as (0.1 is exactly 1/10) and totals are summed
  as fractions, so reordering ballots can never change a total or create or hide a tie. Scores are reported as
  floats.
- **Deterministic order.** Scores, matrices and groups follow the options as given; the breakdown follows the
  ballots as given.
- **Partial rankings.** Ranked options come before unranked ones; unranked options are tied with each other.
  Borda gives the ranked options n-1, n-2, ... points and lets the unranked ones share the points of the positions
  left over equally, so every ballot hands out the same n(n-1)/2 points and truncating a ballot gains nothing.
- **No vote on your own proposal** (`exclude_own=True`). An option whose `author` is the voter is removed from
  that voter's ballot, and the ballot says nothing about it: no points from that voter under any rule and no
  pairwise preference involving it under Schulze. Borda then scores the ballot over the n' options the voter may
  rate (n'-1 points down to 0). A ballot left empty is an abstention.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import KW_ONLY, asdict, dataclass, replace
from enum import StrEnum
from fractions import Fraction
from typing import Any, Literal

Status = Literal["winner", "tie", "no_majority", "no_votes"]
Matrix = dict[str, dict[str, float]]


class Rule(StrEnum):
    """A counting rule; each member equals its name, so `"schulze" in RULES` and `", ".join(RULES)` work."""

    PLURALITY = "plurality"
    MAJORITY = "majority"
    APPROVAL = "approval"
    BORDA = "borda"
    SCHULZE = "schulze"

    @property
    def label(self) -> str:
        """A human label for pickers and result headings."""
        return _LABELS[self][0]

    @property
    def summary(self) -> str:
        """One sentence on how the rule counts."""
        return _LABELS[self][1]

    @property
    def ranked(self) -> bool:
        """Whether the rule reads a ranking (otherwise a set of approved options)."""
        return self is not Rule.APPROVAL


_LABELS: dict[Rule, tuple[str, str]] = {
    Rule.PLURALITY: ("Plurality", "The option with the most weighted first preferences wins."),
    Rule.MAJORITY: (
        "Majority",
        "An option needs more than half of the weighted first preferences; otherwise the top two go to a runoff.",
    ),
    Rule.APPROVAL: ("Approval", "Each voter approves any number of options; the most weighted approvals win."),
    Rule.BORDA: (
        "Borda count",
        "A ranking gives n-1 points to its first option down to 0 for the last; most points win.",
    ),
    Rule.SCHULZE: (
        "Schulze",
        "Every pair of options is compared; the option whose strongest paths beat all others wins.",
    ),
}

RULES: tuple[Rule, ...] = tuple(Rule)
"""Every rule in display order; each has `.label` and `.summary`."""


class BallotError(ValueError):
    """A ballot that cannot be counted; the message says which voter and why."""

    def __init__(self, message: str, *, voter: str | None = None) -> None:
        super().__init__(message)
        self.voter = voter


@dataclass(frozen=True, slots=True)
class Option:
    """One choice in a poll; `author` is the participant who proposed it, if any."""

    id: str
    label: str = ""
    author: str | None = None


@dataclass(frozen=True, slots=True)
class Ballot:
    """One voter's current ballot: a ranking (best first, may be partial) or, for approval, an approved set.

    An approval poll also accepts a ranking and reads every ranked option as approved (order ignored).
    """

    voter: str
    ranking: Sequence[str] = ()
    _: KW_ONLY
    approved: Iterable[str] = ()
    weight: float = 1.0

    def __post_init__(self) -> None:
        for name in ("ranking", "approved"):
            value = getattr(self, name)
            if isinstance(value, str):
                raise BallotError(
                    f"Ballot from voter {self.voter!r}: {name} must be a list of option ids, not the string {value!r}.",
                    voter=self.voter,
                )
            object.__setattr__(self, name, tuple(value))


@dataclass(frozen=True, slots=True)
class VoterContribution:
    """What one ballot added to the count.

    `counted` is what was read after own options were removed: the ranking (best first) or the approved options
    (in option order); empty means the ballot abstained. `points` has every option: the weight for a first
    preference (plurality, majority) or approval, the weighted Borda points, or for Schulze the weight times the
    number of options this ballot ranks the option above (its share of the option's row in the pairwise matrix).
    """

    voter: str
    weight: float
    counted: list[str]
    excluded: list[str]
    points: dict[str, float]


@dataclass(frozen=True, slots=True)
class TallyResult:
    """The outcome of one rule over one set of ballots.

    `scores` are first preferences (plurality, majority), approvals, Borda points, or for Schulze the number of
    options each beats by strongest path. `order` groups the options best first; a group of several is a tie.
    `total_weight` is the weight of the ballots that counted (abstentions excluded). `pairwise` (d[x][y]: weight
    preferring x to y) and `strongest_paths` (p[x][y]) are set for Schulze only; their diagonals are 0.
    """

    rule: str
    status: Status
    winner: str | None
    tied: list[str]
    runoff: list[str]
    options: list[str]
    scores: dict[str, float]
    total_weight: float
    order: list[list[str]]
    breakdown: list[VoterContribution]
    pairwise: Matrix | None = None
    strongest_paths: Matrix | None = None

    def as_dict(self) -> dict[str, Any]:
        """The result as plain JSON-ready data."""
        return asdict(self)


def get_rule(name: str) -> Rule:
    """The rule called `name`, or a ValueError naming the valid ones."""
    try:
        return Rule(name)
    except ValueError:
        raise ValueError(f"Unknown voting rule {name!r}; choose one of: {', '.join(RULES)}.") from None


def validate_ballot(rule: str, options: Sequence[Option | str], ballot: Ballot) -> None:
    """Raise BallotError if `ballot` cannot be counted in a poll with this rule and these options."""
    opts = _normalize_options(options)
    _validate(get_rule(rule), [o.id for o in opts], ballot)


def own_options(voter: str, options: Sequence[Option | str]) -> list[str]:
    """The ids of the options `voter` authored, in option order."""
    return [o.id for o in _normalize_options(options) if o.author is not None and o.author == voter]


def strip_own_options(ballot: Ballot, options: Sequence[Option | str]) -> Ballot:
    """The ballot without the voter's own options; it may come out empty, which counts as an abstention."""
    own = set(own_options(ballot.voter, options))
    return replace(
        ballot,
        ranking=[o for o in ballot.ranking if o not in own],
        approved=[o for o in ballot.approved if o not in own],
    )


def tally(
    rule: str,
    options: Sequence[Option | str],
    ballots: Sequence[Ballot],
    *,
    exclude_own: bool = False,
) -> TallyResult:
    """Count `ballots` for `options` under `rule`; with `exclude_own`, nobody's ballot counts for their own option.

    Raises ValueError for an unknown rule or bad options and BallotError for a ballot that cannot be counted
    (unknown or repeated option, empty ballot, negative weight, a second ballot from the same voter).
    """
    kind = get_rule(rule)
    opts = _normalize_options(options)
    ids = [o.id for o in opts]
    seen: set[str] = set()
    for ballot in ballots:
        _validate(kind, ids, ballot)
        if ballot.voter in seen:
            raise BallotError(
                f"Voter {ballot.voter!r} cast more than one ballot; count only each voter's current ballot.",
                voter=ballot.voter,
            )
        seen.add(ballot.voter)
    prepared = [_prepare(kind, ids, opts, ballot, exclude_own) for ballot in ballots]
    return _COUNTERS[kind](kind, ids, prepared)


# --- validation and preparation -------------------------------------------------------------------------------


def _normalize_options(options: Sequence[Option | str]) -> list[Option]:
    opts = [o if isinstance(o, Option) else Option(id=o) for o in options]
    if not opts:
        raise ValueError("A poll needs at least one option.")
    ids = [o.id for o in opts]
    for oid in ids:
        if not isinstance(oid, str) or not oid:
            raise ValueError(f"Option ids must be non-empty strings, got {oid!r}.")
    if len(set(ids)) != len(ids):
        repeated = sorted({oid for oid in ids if ids.count(oid) > 1})
        raise ValueError(f"Option ids must be unique; repeated: {', '.join(repeated)}.")
    return opts


def _exact(weight: object, voter: str) -> Fraction:
    """A weight as an exact fraction of the decimal it prints as."""
    if isinstance(weight, bool) or not isinstance(weight, int | float | Fraction):
        raise BallotError(f"Ballot from voter {voter!r} has a weight that is not a number: {weight!r}.", voter=voter)
    if isinstance(weight, float) and not math.isfinite(weight):
        raise BallotError(f"Ballot from voter {voter!r} has a weight that is not finite: {weight!r}.", voter=voter)
    exact = Fraction(repr(weight)) if isinstance(weight, float) else Fraction(weight)
    if exact < 0:
        raise BallotError(f"Ballot from voter {voter!r} has a negative weight ({weight}).", voter=voter)
    return exact


def _validate(rule: Rule, ids: list[str], ballot: Ballot) -> None:
    voter = ballot.voter
    if not isinstance(voter, str) or not voter.strip():
        raise BallotError(f"A ballot needs a voter id, got {voter!r}.", voter=None)
    _exact(ballot.weight, voter)
    ranking, approved = tuple(ballot.ranking), tuple(ballot.approved)
    if ranking and approved:
        raise BallotError(
            f"Ballot from voter {voter!r} gives both a ranking and an approved set; give one.", voter=voter
        )
    if not ranking and not approved:
        raise BallotError(f"Ballot from voter {voter!r} is empty; it must name at least one option.", voter=voter)
    if rule.ranked and approved:
        raise BallotError(
            f"Ballot from voter {voter!r} gives an approved set, but the {rule.label} rule needs a ranking "
            "(best first).",
            voter=voter,
        )
    entries = ranking or approved
    verb = "ranks" if ranking else "approves"
    known = set(ids)
    seen: set[str] = set()
    for oid in entries:
        if oid not in known:
            raise BallotError(
                f"Ballot from voter {voter!r} {verb} unknown option {oid!r}; the options are {', '.join(ids)}.",
                voter=voter,
            )
        if oid in seen:
            raise BallotError(f"Ballot from voter {voter!r} {verb} option {oid!r} more than once.", voter=voter)
        seen.add(oid)


@dataclass(frozen=True, slots=True)
class _Prepared:
    voter: str
    weight: Fraction
    choices: tuple[str, ...]  # ranking best first, or approved options in option order; own options removed
    excluded: tuple[str, ...]  # options this voter may not vote on, in option order
    rated: tuple[str, ...]  # options this voter may vote on, in option order


def _prepare(rule: Rule, ids: list[str], opts: list[Option], ballot: Ballot, exclude_own: bool) -> _Prepared:
    excluded = tuple(o.id for o in opts if exclude_own and o.author is not None and o.author == ballot.voter)
    entries = set(ballot.ranking) | set(ballot.approved)
    if rule.ranked:
        choices = tuple(o for o in ballot.ranking if o not in excluded)
    else:
        choices = tuple(o for o in ids if o in entries and o not in excluded)
    return _Prepared(
        voter=ballot.voter,
        weight=_exact(ballot.weight, ballot.voter),
        choices=choices,
        excluded=excluded,
        rated=tuple(o for o in ids if o not in excluded),
    )


# --- counting ---------------------------------------------------------------------------------------------------

Points = dict[str, Fraction]


def _first_preference_points(ids: list[str], ballot: _Prepared) -> Points:
    points = dict.fromkeys(ids, Fraction(0))
    if ballot.choices:
        points[ballot.choices[0]] = ballot.weight
    return points


def _approval_points(ids: list[str], ballot: _Prepared) -> Points:
    points = dict.fromkeys(ids, Fraction(0))
    for oid in ballot.choices:
        points[oid] = ballot.weight
    return points


def _borda_points(ids: list[str], ballot: _Prepared) -> Points:
    points = dict.fromkeys(ids, Fraction(0))
    if not ballot.choices:
        return points
    n, k = len(ballot.rated), len(ballot.choices)
    for position, oid in enumerate(ballot.choices):
        points[oid] = ballot.weight * (n - 1 - position)
    share = ballot.weight * Fraction(n - k - 1, 2) if n > k else Fraction(0)
    for oid in ballot.rated:
        if oid not in ballot.choices:
            points[oid] = share
    return points


def _pairwise_points(ids: list[str], ballot: _Prepared) -> tuple[Points, list[tuple[str, str]]]:
    """The ballot's row sums in the pairwise matrix and the (preferred, other) pairs it states."""
    points = dict.fromkeys(ids, Fraction(0))
    pairs: list[tuple[str, str]] = []
    if not ballot.choices:
        return points, pairs
    unranked = len(ballot.choices)
    position = {oid: i for i, oid in enumerate(ballot.choices)}
    for x in ballot.rated:
        for y in ballot.rated:
            if x != y and position.get(x, unranked) < position.get(y, unranked):
                pairs.append((x, y))
                points[x] += ballot.weight
    return points, pairs


def _contribution(ballot: _Prepared, points: Points) -> VoterContribution:
    return VoterContribution(
        voter=ballot.voter,
        weight=float(ballot.weight),
        counted=list(ballot.choices),
        excluded=list(ballot.excluded),
        points={oid: float(value) for oid, value in points.items()},
    )


def _groups(ids: list[str], scores: dict[str, Fraction]) -> list[list[str]]:
    """Options grouped by equal score, best first, each group in option order."""
    return [[oid for oid in ids if scores[oid] == value] for value in sorted(set(scores.values()), reverse=True)]


def _totals(ids: list[str], rows: list[Points]) -> dict[str, Fraction]:
    return {oid: sum((row[oid] for row in rows), Fraction(0)) for oid in ids}


def _counted_weight(ballots: list[_Prepared]) -> Fraction:
    return sum((b.weight for b in ballots if b.choices), Fraction(0))


def _result(
    rule: Rule,
    ids: list[str],
    ballots: list[_Prepared],
    rows: list[Points],
    scores: dict[str, Fraction],
    *,
    status: Status,
    winner: str | None = None,
    tied: Sequence[str] = (),
    runoff: Sequence[str] = (),
    order: list[list[str]] | None = None,
    pairwise: dict[str, dict[str, Fraction]] | None = None,
    strongest_paths: dict[str, dict[str, Fraction]] | None = None,
) -> TallyResult:
    def floats(matrix: dict[str, dict[str, Fraction]] | None) -> Matrix | None:
        return None if matrix is None else {x: {y: float(v) for y, v in row.items()} for x, row in matrix.items()}

    return TallyResult(
        rule=rule.value,
        status=status,
        winner=winner,
        tied=list(tied),
        runoff=list(runoff),
        options=list(ids),
        scores={oid: float(scores[oid]) for oid in ids},
        total_weight=float(_counted_weight(ballots)),
        order=order if order is not None else _groups(ids, scores),
        breakdown=[_contribution(b, row) for b, row in zip(ballots, rows, strict=True)],
        pairwise=floats(pairwise),
        strongest_paths=floats(strongest_paths),
    )


def _highest_score(rule: Rule, ids: list[str], ballots: list[_Prepared], rows: list[Points]) -> TallyResult:
    """Plurality, approval and Borda: the top score wins, a shared top is a tie."""
    scores = _totals(ids, rows)
    if _counted_weight(ballots) == 0:
        return _result(rule, ids, ballots, rows, scores, status="no_votes")
    leaders = _groups(ids, scores)[0]
    if len(leaders) == 1:
        return _result(rule, ids, ballots, rows, scores, status="winner", winner=leaders[0])
    return _result(rule, ids, ballots, rows, scores, status="tie", tied=leaders)


def _count_plurality(rule: Rule, ids: list[str], ballots: list[_Prepared]) -> TallyResult:
    return _highest_score(rule, ids, ballots, [_first_preference_points(ids, b) for b in ballots])


def _count_approval(rule: Rule, ids: list[str], ballots: list[_Prepared]) -> TallyResult:
    return _highest_score(rule, ids, ballots, [_approval_points(ids, b) for b in ballots])


def _count_borda(rule: Rule, ids: list[str], ballots: list[_Prepared]) -> TallyResult:
    return _highest_score(rule, ids, ballots, [_borda_points(ids, b) for b in ballots])


def _count_majority(rule: Rule, ids: list[str], ballots: list[_Prepared]) -> TallyResult:
    """More than half of the counted first preferences wins; otherwise the top two (and any tied with the second)
    are the runoff."""
    rows = [_first_preference_points(ids, b) for b in ballots]
    scores = _totals(ids, rows)
    total = _counted_weight(ballots)
    if total == 0:
        return _result(rule, ids, ballots, rows, scores, status="no_votes")
    best = max(scores.values())
    if best * 2 > total:
        winner = next(oid for oid in ids if scores[oid] == best)
        return _result(rule, ids, ballots, rows, scores, status="winner", winner=winner)
    second = sorted(scores.values(), reverse=True)[1]
    runoff = [oid for oid in ids if scores[oid] >= second]
    return _result(rule, ids, ballots, rows, scores, status="no_majority", runoff=runoff)


def _count_schulze(rule: Rule, ids: list[str], ballots: list[_Prepared]) -> TallyResult:
    """Schulze with winning votes: p[x][y] is the strength of the strongest path from x to y."""
    zero = Fraction(0)
    d = {x: dict.fromkeys(ids, zero) for x in ids}
    rows: list[Points] = []
    for ballot in ballots:
        points, pairs = _pairwise_points(ids, ballot)
        rows.append(points)
        for x, y in pairs:
            d[x][y] += ballot.weight
    p = {x: {y: d[x][y] if x != y and d[x][y] > d[y][x] else zero for y in ids} for x in ids}
    for i in ids:
        for j in ids:
            if j == i:
                continue
            for k in ids:
                if k not in (i, j):
                    p[j][k] = max(p[j][k], min(p[j][i], p[i][k]))
    beats = {x: {y for y in ids if y != x and p[x][y] > p[y][x]} for x in ids}
    scores = {x: Fraction(len(beats[x])) for x in ids}
    order: list[list[str]] = []
    remaining = list(ids)
    while remaining:  # peel off the options no remaining option beats; the first layer is the winner set
        layer = [x for x in remaining if not any(x in beats[y] for y in remaining)] or remaining  # never empty:
        order.append(layer)  # Schulze's "beats" is transitive, hence acyclic; `or` only guards the loop
        remaining = [x for x in remaining if x not in layer]
    if _counted_weight(ballots) == 0:
        status: Status = "no_votes"
    else:
        status = "winner" if len(order[0]) == 1 else "tie"
    return _result(
        rule,
        ids,
        ballots,
        rows,
        scores,
        status=status,
        winner=order[0][0] if status == "winner" else None,
        tied=order[0] if status == "tie" else (),
        order=order,
        pairwise=d,
        strongest_paths=p,
    )


_COUNTERS: dict[Rule, Callable[[Rule, list[str], list[_Prepared]], TallyResult]] = {
    Rule.PLURALITY: _count_plurality,
    Rule.MAJORITY: _count_majority,
    Rule.APPROVAL: _count_approval,
    Rule.BORDA: _count_borda,
    Rule.SCHULZE: _count_schulze,
}
