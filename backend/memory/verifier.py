"""Same question, or only the same subject? The last check before a past decision is served (after the guard).

The embedding puts "How should Apollo back up its database?" next to "Choose a database for Apollo" (cosine 0.75)
and the guard finds nothing: no number, date, negation, name or qualifier differs. What differs is what the question
asks (how to / whether to / which one / who / when / how much) and which aspect of the subject it decides (backup,
cost, ownership, monitoring, hiring, training, testing, security, scaling, migration, naming...). Both are read here
from small word tables, in pure Python (25-45 us a pair uncached, 1-3 us cached): a doubt costs a fresh deliberation,
a wrong hit hands a team someone else's decision.

Measured on tests/memory/cases.json (330 cases, 50 of them "scope": same subject, another question), at
match.HIT_THRESHOLD = 0.72, after the guard:
- without a verifier 16 of 50 scope near-misses are served; the ask alone leaves 3, the aspects alone 5, both 0.
  Paraphrases found: 111 of 121 with or without it (the 10 lost are below the threshold or refused by the guard).
  Of all 141 repeats it would refuse one, were it asked: "What's the process for approving production deploys?" /
  "Who should sign off on deployments to production?" (how vs who, cosine 0.54). The other near-misses stay 0/139.
- held out: 16 scope cases and 12 paraphrases written after the tables and measured before any change served 2 of
  16 ("Which API gateway?" / "Which team should run it?": who vs which were then compatible) and refused 2 of 12
  ("...for our docs", "our e2e suite"); the tables were then corrected and the cases joined the set.
- every pair of different questions of the set: 113 pass the guard at >= 0.72, 56 pass the verifier too, nearly all
  of them the same question labelled in two cases ("build or buy" / "which vendor" led to `sourcing`). Below 0.72
  different questions pass both ("How do we handle secrets in CI?" / "How should we store secrets?" at 0.70), so
  the threshold stays where it is.
Rejected, measured: content-word coverage (every word that is not a stopword or a framing word needs a counterpart
on the other side) found 51 of 109 paraphrases, as people swap verbs freely ("handle" / "manage", "cut" / "reduce");
word embeddings do not rescue it: all-MiniLM-L6-v2 puts synonyms below unrelated words ("observability" /
"monitoring" 0.24, "headcount" / "engineers" 0.15, against "own" / "adopt" 0.40) and costs ~15 ms a word.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Literal

from backend.memory.guard import Difference

Ask = Literal["whether", "how", "which", "who", "when", "amount", "why", "unknown"]

# ---------------------------------------------------------------------------------------------------------------
# What a question asks: whether, how, which, who, when, how much
# ---------------------------------------------------------------------------------------------------------------

_AUX = frozenset("should shall do does did is are was were can could would will must may might has have am".split())
_CHOOSING = frozenset("choose pick select recommend suggest decide propose compare evaluate".split())
_DESIGNING = frozenset("design plan set define outline describe explain structure organise organize".split())
_LEAD_IN = re.compile(r"^(?:hey|hi|hello|ok|okay|so|quick question|question|team|folks|all|everyone)\b[,:!]?\s*")

# Asks that can be one question: "What pagination approach...?" is "How should we paginate...?", "What would we end
# up paying?" is "How much would it cost?", "What's the timeline?" is "When...?". Any other two asks are two questions
# ("Should we split the monolith?" / "How should we split it?"); "unknown" (a bare phrase) is never held against one.
_TOGETHER = {frozenset(p) for p in (("which", "how"), ("which", "amount"), ("which", "when"))}


def _apart(a: Ask, b: Ask) -> bool:
    return a != b and "unknown" not in (a, b) and frozenset((a, b)) not in _TOGETHER


def _clause_ask(clause: str, questioned: bool) -> Ask:
    words = re.findall(r"[a-z0-9][a-z0-9'+#.-]*", clause)
    if not words:
        return "unknown"
    first, rest = words[0], " ".join(words[1:4])
    alternatives = bool(re.search(r"\b(?:or|vs|versus)\b", re.sub(r"\b(?:or not|yes or no)\b", "", clause)))
    if first == "how":
        if re.match(r"(?:many|much|long|often|big|large)\b", rest):
            return "amount"
        return "when" if rest.startswith("soon") else "how"
    if first in ("who", "whom", "whose") or re.match(r"which (?:team|person|people|engineers?)\b", clause):
        return "who"
    if first == "when" or re.search(r"\b(?:timeline|timeframe|time frame|deadline) (?:for|of|to)\b", clause):
        return "when"
    if first == "why":
        return "why"
    if re.search(r"\b(?:the )?(?:right |ideal |best )?(?:number|amount) of\b", clause) and first in ("what", "what's"):
        return "amount"
    if first in ("what", "what's", "whats"):
        if re.match(
            r"(?:'?s|is|are|should be)?\s*(?:the |our |a |your )?(?:best |right |recommended |proper |safest )?"
            r"(?:way|ways|strategy|plan|process|approach|policy)\b",
            clause[len(first) :].strip(),
        ):
            return "how"
        if re.match(r"(?:should|can|do|could) we do\b", rest):
            return "how"
        return "which"
    if first in ("which", "where"):
        return "which"
    if first in _AUX:
        return "which" if alternatives else "whether"
    if first in _CHOOSING:
        return "which"
    if first in _DESIGNING:
        return "how"
    if questioned and alternatives:
        return "which"
    if "yes or no" in clause:
        return "whether"
    return "unknown"


@lru_cache(maxsize=4096)
def ask(question: str) -> Ask:
    """What kind of answer the question wants, read from the first clause that says."""
    text = unicodedata.normalize("NFKC", question).lower().replace("’", "'").strip()
    questioned = text.rstrip().endswith("?")
    for clause in re.split(r"[;:,.\n]+|\s[-—]\s", text):
        clause = _LEAD_IN.sub("", clause.strip())
        found = _clause_ask(clause, questioned)
        if found != "unknown":
            return found
    return "unknown"


# ---------------------------------------------------------------------------------------------------------------
# What a question is about: the aspect of its subject it decides
# ---------------------------------------------------------------------------------------------------------------

# Phrases read before the words (lower case; the longest wins): one word for several, and phrases that would
# otherwise read as an aspect ("our own" is not ownership, "pay down" debt is not a cost).
_PHRASES = {
    "back up": "backup",
    "backing up": "backup",
    "backed up": "backup",
    "back-up": "backup",
    "run it ourselves": "selfhost",
    "host it ourselves": "selfhost",
    "run our own": "selfhost",
    "host our own": "selfhost",
    "operate our own": "selfhost",
    "our own": "self",
    "their own": "self",
    "its own": "self",
    "your own": "self",
    "my own": "self",
    "self host": "selfhost",
    "self-host": "selfhost",
    "self hosted": "selfhost",
    "self-hosted": "selfhost",
    "self managed": "selfhost",
    "self-managed": "selfhost",
    "on-premises": "selfhost",
    "on premises": "selfhost",
    "on-prem": "selfhost",
    "pay down": "reduce",
    "paying down": "reduce",
    "of course": "",
    "sign off on": "approve",
    "sign off": "approve",
    "signs off": "approve",
    "sign-off": "approve",
    "lock down": "secure",
    "clean up": "cleanup",
    "cleaning up": "cleanup",
    "roll out": "rollout",
    "rolling out": "rollout",
    "roll back": "rollback",
    "rolling back": "rollback",
    "rate limit": "ratelimit",
    "rate limits": "ratelimit",
    "rate limiting": "ratelimit",
    "rate-limit": "ratelimit",
    "rate-limits": "ratelimit",
    "rate-limiting": "ratelimit",
    "disaster recovery": "recovery",
    "on call": "oncall",
    "on-call": "oncall",
    "post-incident reviews": "postmortems",
    "post-incident review": "postmortem",
    "incident reviews": "postmortems",
    "incident review": "postmortem",
    "post-incident": "postmortem",
    "post incident": "postmortem",
    "post-mortem": "postmortem",
    "post-mortems": "postmortems",
    "code ownership": "ownership",
    "how much": "howmuch",
    "how many": "howmany",
    "quality assurance": "qa",
    "speed up": "faster",
    "scale up": "scale",
    "scale out": "scale",
    "key rotation": "rotate",
    "in charge of": "owner",
    "log in": "login",
    "logs in": "login",
    "logged in": "login",
    "logging in": "login",
    "log into": "login",
    "log on": "login",
    "document database": "docdb",
    "document databases": "docdb",
    "document store": "docdb",
    "document db": "docdb",
}
_PHRASE_RE = re.compile(
    r"(?<![\w-])(" + "|".join(re.escape(k) for k in sorted(_PHRASES, key=len, reverse=True)) + r")(?![\w-])"
)

# The aspects of a subject that a decision is about, each with the word forms that name it. Two questions that
# differ in an aspect ("back up Apollo's database" / "choose Apollo's database") are two questions.
_ASPECTS: dict[str, str] = {
    "backup": "backup backups",
    "recovery": "recovery recover recovering restore restoring failover dr",
    "cost": "cost costs costly price prices pricing priced pay paying paid spend spending bill bills budget budgets "
    "expensive cheap cheaper cheapest afford savings howmuch",
    "ownership": "own owns owned owner owners ownership responsible responsibility accountable accountability",
    "maintenance": "maintain maintains maintaining maintenance maintainer maintainers upkeep",
    "monitoring": "monitor monitors monitoring monitored alert alerts alerting instrument instrumentation "
    "tracing telemetry apm",
    "logging": "log logs logging",
    "observability": "observability observable",
    "hiring": "hire hiring hired recruit recruiting recruitment headcount",
    "training": "train training trained course courses workshop workshops upskill upskilling teach teaching "
    "certification",
    "onboarding": "onboard onboarding onboarded",
    "interviewing": "interview interviews interviewing interviewer interviewers",
    "compensation": "compensate compensation compensated salary salaries bonus bonuses stipend",
    "testing": "test tests testing tested qa tester testers e2e end-to-end",
    "security": "secure securing security protect protecting protection harden hardening abuse attack attacks "
    "attacker attackers vulnerability vulnerabilities threat threats pentest",
    "encryption": "encrypt encrypted encrypting encryption",
    "rotation": "rotate rotating",
    "scaling": "scale scaling scalable scalability autoscale autoscaling",
    "performance": "performance latency faster slow slower optimise optimize optimising optimizing tune tuning "
    "profiling",
    "availability": "availability uptime reliability redundancy",
    "migration": "migrate migrating migrated migration migrations port porting",
    "naming": "name naming named rename renaming",
    "documentation": "document documenting documented documentation docs runbook runbooks readme writer writers",
    "versioning": "version versions versioning versioned semver",
    "pagination": "paginate paginating pagination paging",
    "retention": "retain retaining retention expire expiry expiration ttl",
    "cleanup": "cleanup prune pruning purge purging",
    "invalidation": "invalidate invalidating invalidation evict eviction",
    "rollback": "rollback rollbacks revert",
    "access": "access permission permissions",
    "review": "review reviews reviewing reviewer reviewers approve approval approvals approving",
    "triage": "triage triaging",
    "oncall": "oncall pager paging",
    "incident": "incident incidents postmortem postmortems outage outages",
    "structure": "structure structured structuring organise organize organising organizing layout",
    "sharding": "shard shards sharding partition partitions partitioning",
    "replication": "replicate replication replicas replica",
    "upgrade": "upgrade upgrades upgrading",
    "release": "release releases releasing rollout rollouts",
    "licensing": "license licenses licence licences licensing",
    "compliance": "compliance compliant audit audits auditing",
    "caching": "cache caches caching cached",
    "ratelimit": "ratelimit throttle throttling",
    "hosting": "host hosts hosting hosted selfhost",
    "search": "search searching",
    "sourcing": "buy buying bought outsource outsourcing in-house",  # build or buy is not which vendor
}
_PARENT = {"monitoring": "observability", "logging": "observability"}
_ASPECT_OF = {word: aspect for aspect, words in _ASPECTS.items() for word in words.split()}
# "need a designer" and "add two engineers" are hiring: people are the object.
_ROLES = (
    r"(?:engineers?|developers?|devs?|designers?|sres?|testers?|qa|pms?|product managers?|managers?|architects?|"
    r"analysts?|contractors?|leads?|interns?|scientists?|writers?|hires?)"
)
_HIRING_RE = re.compile(
    r"\b(?:need|needs|add|adding|get|bring in|bring on|staff|take on)\s+(?:a|an|another|more|one|two|three|four|five|"
    r"\d+|some)?\s*(?:[a-z-]+\s+){0,2}?" + _ROLES + r"\b"
)
# In a yes/no question, moving to something is adopting it: "Should we migrate from Heroku to AWS?" is "Is it time
# to leave Heroku for AWS?". How to migrate is another question (the asks differ).
_ADOPTING_IN_WHETHER = frozenset({"migration"})


@lru_cache(maxsize=4096)
def aspects(question: str) -> frozenset[str]:
    """The aspects a question names (a word of `_ASPECTS`, or people as the object of "need"/"add": hiring)."""
    text = unicodedata.normalize("NFKC", question).lower().replace("’", "'")
    text = _PHRASE_RE.sub(lambda m: _PHRASES[m.group(1)], text)
    found = {_ASPECT_OF[w] for w in re.findall(r"[a-z0-9][a-z0-9'-]*", text) if w in _ASPECT_OF}
    if _HIRING_RE.search(text):
        found.add("hiring")
    if ask(question) == "whether":
        found -= _ADOPTING_IN_WHETHER
    return frozenset(found)


def _unmatched(one: frozenset[str], other: frozenset[str]) -> list[str]:
    """Aspects of `one` that `other` does not name, neither as such nor as a broader or narrower aspect."""
    out = []
    for aspect in sorted(one):
        parent = _PARENT.get(aspect)
        if aspect in other or (parent and parent in other) or any(_PARENT.get(o) == aspect for o in other):
            continue
        out.append(aspect)
    return out


def differences(asked: str, stored: str) -> list[Difference]:
    """Why `asked` is another question than `stored` on the same subject; [] when it is the same question."""
    out: list[Difference] = []
    a, s = ask(asked), ask(stored)
    if _apart(a, s):
        out.append(Difference("scope", f"asks {_ASK_WORDS[a]}, the remembered question asks {_ASK_WORDS[s]}"))
    mine, theirs = aspects(asked), aspects(stored)
    only_asked, only_stored = _unmatched(mine, theirs), _unmatched(theirs, mine)
    if only_asked:
        out.append(Difference("scope", f"asks about {_quote(only_asked)}, which the remembered question does not"))
    if only_stored:
        out.append(Difference("scope", f"the remembered question is about {_quote(only_stored)}, this one is not"))
    return out


_ASK_WORDS = {
    "whether": "whether to",
    "how": "how to",
    "which": "which one",
    "who": "who",
    "when": "when",
    "amount": "how much or how many",
    "why": "why",
    "unknown": "something else",
}


def _quote(words: list[str]) -> str:
    return ", ".join(f"'{w}'" for w in words)
