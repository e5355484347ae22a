"""The verdict on one stored question whose context already matched exactly: a hit, a refused near-miss, related, or a
miss.

Context is never part of this: memory filters on the canonical context key before any vector is compared, so only
the question is embedded (`question_text`). A hit needs a high cosine, a guard (backend.memory.guard) that finds
nothing the embedding blurs (numbers, dates, negation, names, qualifiers), and a verifier (backend.memory.verifier)
that finds the same ask and the same aspects of the subject ("back up Apollo's database" is not "choose it"). A high
cosine with a difference is a near-miss, refused and counted.

Thresholds, calibrated on tests/memory/cases.json (330 labelled pairs; all-MiniLM-L6-v2 on `question_text`;
bench/memory_cache.py prints the table):
- cosine of paraphrases: min 0.48, 10th percentile 0.76, median 0.89; identical repeats 1.00.
- cosine of near-misses: numbers 0.86-1.00, dates 0.86-0.99, negations 0.87-0.99, qualifiers 0.61-0.96, names
  0.39-1.00 (median 0.70: the model tells most names apart, not "from MySQL to PostgreSQL" / the reverse), scope
  (same subject, another question) 0.14-0.96 (median 0.69, 20 of 50 at 0.72 or more). A threshold alone cannot refuse them: with exact contexts, 98 of 139
  structured near-misses are at or above 0.72 and 92 still at 0.80; the guard refuses all 139 at any threshold from
  0.60 up, and 16 of the 50 scope cases pass it at 0.72, all of which the verifier refuses.
- so the threshold only trades paraphrases found against different questions that neither check catches.
  Paraphrases found (guard + verifier): 0.65 -> 112/121, 0.70 -> 111, 0.72 -> 111 (91.7%), 0.75 -> 109 (90.1%),
  0.76 -> 107 (88.4%, under the 90% target), 0.80 -> 97. Over every pair of different questions in the set (as if
  asked in one context), 56 pass both checks at 0.72 and 56 at 0.75, nearly all the same question labelled in two
  cases; below 0.72 different questions do pass ("How do we handle secrets in CI?" / "How should we store secrets?"
  at 0.70), so lowering it buys one paraphrase at that price.
- HIT_THRESHOLD = 0.72: 1.7 points of margin over the 90% target, where 0.75 leaves 0.1 (no paraphrase).
- RELATED_THRESHOLD = 0.55: pairs of different questions at 0.55-0.60 share a subject ("Should we keep the
  monolith?" / "Should we split the monolith into microservices?"); at 0.45-0.55 half of them do not.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

from backend.memory import verifier
from backend.memory.guard import differences

HIT_THRESHOLD = 0.72
RELATED_THRESHOLD = 0.55
MAX_QUESTION_CHARS = 2000  # what is embedded; the model reads 256 word pieces at most anyway
# Bumped whenever `question_text` changes what it returns: vectors stored under an older version are re-embedded.
QUESTION_TEXT_VERSION = 1

VerdictKind = Literal["hit", "near_miss", "related", "miss"]


@dataclass(frozen=True)
class Verdict:
    kind: VerdictKind
    similarity: float
    reasons: tuple[str, ...] = ()

    @property
    def hit(self) -> bool:
        return self.kind == "hit"


def judge(asked: str, stored: str, similarity: float) -> Verdict:
    """Hit, near-miss (refused: the guard or the verifier found a difference), related, or miss, for one
    same-context candidate."""
    if similarity >= HIT_THRESHOLD:
        found = differences(asked, stored) or verifier.differences(asked, stored)
        if found:
            return Verdict("near_miss", similarity, tuple(str(d) for d in found))
        return Verdict("hit", similarity)
    if similarity >= RELATED_THRESHOLD:
        return Verdict("related", similarity)
    return Verdict("miss", similarity)


# Abbreviations spelled out before embedding: the model places "DB" and "database", "SSR" and "server-side
# rendering" far apart (cosine 0.43 for "SSR for the storefront" against its spelled-out question).
_EXPANSIONS = {
    "db": "database",
    "dbs": "databases",
    "k8s": "kubernetes",
    "kube": "kubernetes",
    "pg": "postgresql",
    "postgres": "postgresql",
    "mongo": "mongodb",
    "golang": "go",
    "ssr": "server-side rendering",
    "csr": "client-side rendering",
    "idp": "identity provider",
    "sso": "single sign-on",
    "2fa": "two-factor authentication",
    "mfa": "multi-factor authentication",
    "dau": "daily active users",
    "mau": "monthly active users",
    "pr": "pull request",
    "prs": "pull requests",
    "e2e": "end-to-end",
    "iac": "infrastructure as code",
    "rps": "requests per second",
    "qps": "queries per second",
    "tps": "transactions per second",
    "infra": "infrastructure",
    "repo": "repository",
    "repos": "repositories",
    "prod": "production",
    "auth": "authentication",
    "authn": "authentication",
    "authz": "authorization",
    "perf": "performance",
    "env": "environment",
    "envs": "environments",
    "msgs": "messages",
    "req": "requests",
    "reqs": "requests",
    "w/": "with",
    "w/o": "without",
}
_EXPANSION_RE = re.compile(r"(?<![\w/-])(" + "|".join(re.escape(k) for k in _EXPANSIONS) + r")(?![\w-])", re.I)
_MULTIPLIER = {"k": 1_000, "thousand": 1_000, "m": 1_000_000, "million": 1_000_000, "mm": 1_000_000}
_SCALED_RE = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)\s?(k|thousand|mm|m|million)(?![a-z])", re.IGNORECASE)
_GROUPED_RE = re.compile(r"(?<![\w.])\d{1,3}(?:,\d{3})+(?![\d])")


def _scaled(m: re.Match[str]) -> str:
    value = float(m.group(1)) * _MULTIPLIER[m.group(2).lower()]
    return f"{value:.0f}" if value == int(value) else f"{value:g}"


def question_text(question: str) -> str:
    """The normalised question that is embedded: spacing, abbreviations and number spellings made one."""
    text = unicodedata.normalize("NFKC", question)
    text = "".join(ch for ch in text if unicodedata.category(ch) not in ("Cf", "Cc") or ch in "\n\t")
    text = text.replace("’", "'").replace("“", '"').replace("”", '"')
    text = re.sub(r"\s+", " ", text).strip()[:MAX_QUESTION_CHARS]
    text = _GROUPED_RE.sub(lambda m: m.group(0).replace(",", ""), text)
    text = _SCALED_RE.sub(_scaled, text)
    text = _EXPANSION_RE.sub(lambda m: _EXPANSIONS[m.group(1).lower()], text)
    text = re.sub(r"^(?:please|hey(?: team)?|quick question)[,:]?\s+", "", text, flags=re.IGNORECASE)
    return text.rstrip(" ?.!").lower()
