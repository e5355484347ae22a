"""The verdict on one stored question whose context already matched exactly: a hit, a refused near-miss, related, or a
miss.

Context is never part of this: memory filters on the canonical context key before any vector is compared, so only
the question is embedded (`question_text`). A hit needs both a high cosine and a guard (backend.memory.guard) that
finds nothing the embedding blurs; a high cosine with a guard difference is a near-miss, refused and counted.

Thresholds, calibrated on tests/memory/cases.json (207 labelled pairs, all-MiniLM-L6-v2 on `question_text`; the
figures come from bench/memory_cache.py):
- paraphrases: cosine min 0.47, 10th percentile 0.72, median 0.88; identical repeats 1.00.
- near-misses the guard catches (numbers, dates, negation, named things, qualifiers): cosine up to 0.996, so the
  cosine alone cannot refuse them (0.92 still gave 21% wrong hits); with the guard none is a hit at any threshold.
- near-misses with no structured difference left for the guard (another object in other words) sit at 0.66-0.69.
- HIT_THRESHOLD = 0.75: finds 69/75 paraphrases (92%) and refuses every near-miss. 0.72 would find 71/75 but leaves
  a margin of 0.03 to the unstructured near-misses; 0.80 would find only 62/75 (83%), under the 90% target.
- RELATED_THRESHOLD = 0.55: below it, pairs of different questions in our domain are mostly unrelated topics; above
  it, the same subject (a database for Apollo / for Hermes, Kafka / RabbitMQ for order events).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal

from backend.memory.guard import differences

HIT_THRESHOLD = 0.75
RELATED_THRESHOLD = 0.55
MAX_QUESTION_CHARS = 2000  # what is embedded; the model reads 256 word pieces at most anyway

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
    """Hit, near-miss (refused: the guard found a difference), related, or miss, for one same-context candidate."""
    if similarity >= HIT_THRESHOLD:
        found = differences(asked, stored)
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
