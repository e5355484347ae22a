"""What an embedding blurs: the reasons two questions that read alike are NOT the same question.

A sentence embedding puts "...for 1,000 requests per second" next to "...for 100,000", "before the Q3 launch" next to
"before Q1", "adopt GraphQL" next to "stop using GraphQL", and "the public API" next to "the internal one" (cosine
0.90-0.99 with all-MiniLM-L6-v2). Those are the cheap, structured parts of a question, so they are compared here
exactly: numbers with their units and scale, dates, negation and antonyms, named things, and the qualifiers that
change the object. True paraphrases pass: case, punctuation, "1k" / "1,000" / "1000", "Postgres" / "PostgreSQL",
"front-end" / "frontend".

Pure Python and deterministic (regexes and small word tables): no model call, well under a millisecond a pair.
The rule of thumb throughout is that a wrong hit hands a team someone else's decision while a refused paraphrase only
costs a fresh deliberation, so a doubt is a difference.
"""

from __future__ import annotations

import re
import unicodedata
from difflib import SequenceMatcher
from functools import lru_cache
from typing import Literal, NamedTuple

Kind = Literal["number", "date", "negation", "name", "qualifier", "scope"]  # "scope": backend.memory.verifier
KINDS: tuple[Kind, ...] = ("number", "date", "negation", "name", "qualifier")  # what the guard itself finds


class Difference(str):
    """A reason, readable as is ("numbers differ: 1,000 vs 100,000"), that also knows its kind (for the bench)."""

    kind: Kind

    def __new__(cls, kind: Kind, reason: str) -> Difference:
        obj = super().__new__(cls, reason)
        obj.kind = kind
        return obj

    def __getnewargs__(self) -> tuple[str, str]:  # type: ignore[override]
        return (self.kind, str(self))


# ---------------------------------------------------------------------------------------------------------------
# Word tables
# ---------------------------------------------------------------------------------------------------------------

# Several words for one thing, replaced before anything is compared (lower case; the longest phrase wins).
_PHRASES = {
    # people drop these in a yes/no question; they do not change it
    "or not": "",
    "yes or no": "",
    "or no": "",
    # clouds, products, and names written several ways
    "google cloud platform": "gcp",
    "google cloud": "gcp",
    "amazon web services": "aws",
    "microsoft azure": "azure",
    "github actions": "github-actions",
    "gitlab ci": "gitlab-ci",
    "react native": "react-native",
    "internet explorer": "internet-explorer",
    "new relic": "newrelic",
    "sql server": "mssql",
    "confluent cloud": "confluent-cloud",
    "cloud run": "cloud-run",
    "app engine": "app-engine",
    "active directory": "active-directory",
    # terms of art
    "single sign-on": "sso",
    "single sign on": "sso",
    "two-factor authentication": "2fa",
    "two factor authentication": "2fa",
    "two-factor auth": "2fa",
    "two-factor": "2fa",
    "multi-factor authentication": "mfa",
    "multi-factor": "mfa",
    "identity provider": "idp",
    "end-to-end": "e2e",
    "end to end": "e2e",
    "front end": "frontend",
    "front-end": "frontend",
    "back end": "backend",
    "back-end": "backend",
    "server side": "server-side",
    "client side": "client-side",
    "server-side rendering": "ssr",
    "server side rendering": "ssr",
    "real time": "realtime",
    "real-time": "realtime",
    "time series": "timeseries",
    "time-series": "timeseries",
    "on premises": "onprem",
    "on-premises": "onprem",
    "on premise": "onprem",
    "on-premise": "onprem",
    "on-prem": "onprem",
    "on prem": "onprem",
    "self hosted": "selfhosted",
    "self-hosted": "selfhosted",
    "self-host": "selfhosted",
    "self host": "selfhosted",
    "self-managed": "selfhosted",
    "in the cloud": "cloud-hosted",
    "run our own": "selfhosted",
    "host our own": "selfhosted",
    "operate our own": "selfhosted",
    "run it ourselves": "selfhosted",
    "host it ourselves": "selfhosted",
    "self managed": "selfhosted",
    "open source": "opensource",
    "open-source": "opensource",
    "closed source": "proprietary",
    "closed-source": "proprietary",
    "full time": "fulltime",
    "full-time": "fulltime",
    "part time": "parttime",
    "part-time": "parttime",
    "third party": "thirdparty",
    "third-party": "thirdparty",
    "3rd party": "thirdparty",
    "3rd-party": "thirdparty",
    "first party": "firstparty",
    "first-party": "firstparty",
    "multi-tenant": "multitenant",
    "multi tenant": "multitenant",
    "single-tenant": "singletenant",
    "single tenant": "singletenant",
    "infrastructure as code": "iac",
    "daily active users": "dau",
    "monthly active users": "mau",
    "pull requests": "prs",
    "pull request": "pr",
    "blue/green": "bluegreen",
    "blue-green": "bluegreen",
    "blue green": "bluegreen",
    "zero-downtime": "zerodowntime",
    "zero downtime": "zerodowntime",
    "without downtime": "zerodowntime",
    "with no downtime": "zerodowntime",
    "no downtime": "zerodowntime",
    "feature flags": "featureflags",
    "feature flag": "featureflags",
    "tech debt": "techdebt",
    "technical debt": "techdebt",
    # verbs of negation and their opposites, as one word each
    "turn off": "disable",
    "switch off": "disable",
    "shut off": "disable",
    "turn on": "enable",
    "switch on": "enable",
    "get rid of": "drop",
    "phase out": "drop",
    "rip out": "drop",
    "no longer": "not",
    "break backwards compatibility": "incompatible",
    "break backward compatibility": "incompatible",
    "break compatibility": "incompatible",
    "breaking changes": "incompatible",
    "breaking change": "incompatible",
    "move away from": "away",
    "migrate away from": "away",
    "away from": "away",
    "roll back": "rollback",
    "roll-back": "rollback",
    "roll out": "rollout",
    "roll-out": "rollout",
    "scale up": "scaleup",
    "scale out": "scaleup",
    "scale down": "scaledown",
    "scale in": "scaledown",
    "ahead of": "before",
    "prior to": "before",
    "in front of": "infrontof",
    "per cent": "percent",
    "at rest": "at-rest",
    "in transit": "in-transit",
    # dates said several ways
    "first quarter": "q1",
    "second quarter": "q2",
    "third quarter": "q3",
    "fourth quarter": "q4",
    "first half": "h1",
    "second half": "h2",
    "end of the year": "eoy",
    "end of year": "eoy",
    "year end": "eoy",
    "year-end": "eoy",
    "end of the quarter": "eoq",
    "end of quarter": "eoq",
    "quarter end": "eoq",
    "end of the month": "eom",
    "end of month": "eom",
    "end of the sprint": "eos",
    "end of sprint": "eos",
}

# One word, another spelling (after the phrases). Names here stay names: "postgres" is "postgresql".
_WORDS = {
    "postgres": "postgresql",
    "pg": "postgresql",
    "psql": "postgresql",
    "mongo": "mongodb",
    "k8s": "kubernetes",
    "kube": "kubernetes",
    "golang": "go",
    "js": "javascript",
    "ts": "typescript",
    "gcloud": "gcp",
    "es": "elasticsearch",
    "ie": "internet-explorer",
    "nodejs": "node.js",
    "node": "node.js",
    "db": "database",
    "dbs": "databases",
    "repo": "repository",
    "repos": "repositories",
    "infra": "infrastructure",
    "auth": "authentication",
    "authn": "authentication",
    "authz": "authorization",
    "prod": "production",
    "stage": "staging",
    "dev": "development",
    "website": "site",
    "web-site": "site",
    "frontends": "frontend",
    "backends": "backend",
    "deploys": "deployments",
    "deploy": "deployment",
    "big": "large",
    "bigger": "larger",
    "mandatory": "required",
    "async": "asynchronous",
    "sync": "synchronous",
    "percent": "%",
    "microservice": "microservices",
    "monolithic": "monolith",
    "pre-launch": "before launch",
    "prelaunch": "before launch",
    "post-launch": "after launch",
    "postlaunch": "after launch",
    "can't": "can not",
    "cannot": "can not",
    "won't": "will not",
    "shan't": "shall not",
}

# Named things whose lower-case spelling is unambiguous (a capital is not needed to know them).
_NAMES = frozenset(
    """
    postgresql mysql mariadb sqlite mongodb cassandra scylladb dynamodb redis memcached valkey elasticsearch opensearch
    solr clickhouse snowflake bigquery redshift cockroachdb neo4j couchdb firestore firebase supabase timescaledb
    influxdb oracle mssql kafka rabbitmq sqs sns nats pulsar kinesis sidekiq activemq zeromq celery aws gcp azure
    heroku vercel netlify fly.io digitalocean cloudflare hetzner linode kubernetes docker nomad ecs eks gke aks fargate
    openshift terraform pulumi ansible helm argocd jenkins circleci travis buildkite github gitlab bitbucket
    github-actions gitlab-ci python java kotlin scala typescript javascript ruby php elixir erlang haskell clojure c#
    c++ rust django fastapi laravel symfony nestjs next.js nuxt vue angular svelte sveltekit ember flutter
    react-native swiftui graphql grpc rest soap websocket websockets trpc openapi oauth oauth2 oidc saml jwt auth0
    okta keycloak cognito ldap active-directory pytest jest cypress playwright selenium junit vitest mocha testng
    datadog grafana prometheus sentry rollbar newrelic splunk honeycomb opentelemetry jaeger kibana logstash pagerduty
    opsgenie nginx envoy istio linkerd traefik haproxy kong apigee stripe braintree adyen paypal twilio sendgrid
    mailgun slack jira confluence asana figma vite webpack esbuild rollup turborepo bazel pnpm npm yarn s3 ec2 rds
    aurora ios android windows linux macos ubuntu debian airflow dagster dbt hadoop databricks tableau looker
    metabase mixpanel amplitude posthog launchdarkly zookeeper etcd openai anthropic pinecone weaviate qdrant milvus
    pgvector sqlalchemy prisma typeorm hibernate sequelize gdpr hipaa soc2 internet-explorer safari chrome firefox
    jquery tailwind storybook sonarqube snyk dependabot confluent-cloud cloud-run app-engine node.js
    """.split()
)

# Capitalised in a question without being a name: acronyms of generic things, and words people capitalise.
_GENERIC_CAPS = frozenset(
    """
    i api apis db ui ux ci cd sla slo sli qa sdk cli orm mvp pr prs rfc sql http https json xml yaml cpu gpu ram ssd
    vm vms os id ids url urls dns cdn tls ssl sso mfa 2fa rbac abac kpi okr okrs iac idp dau mau etl elt pii b2b b2c
    saas paas iaas faq ttl rps qps sre devops cto ceo vp pm em hr ok tbd eta poc spa ssr csr ci/cd e2e p99 p95 p50
    ml ai llm llms nosql crud dx
    """.split()
)

# Pure negators and verbs that turn a question around ("adopt X" / "stop using X").
_NEGATORS = frozenset(
    """
    not never without nor stop stopping stopped cease quit drop dropping dropped remove removing removed disable
    disabling disabled forbid forbidding forbidden ban banning banned prohibit disallow abandon abandoning ditch
    deprecate deprecating sunset sunsetting retire retiring decommission decommissioning eliminate away against
    reject rejecting exclude excluding unsubscribe avoid avoiding incompatible
    """.split()
)

# Opposite directions of one scale: a word from each side means two questions.
_OPPOSITES: list[tuple[str, frozenset[str], frozenset[str]]] = [
    (
        "direction",
        frozenset("increase increasing raise raising grow growing expand expanding more higher scaleup boost".split()),
        frozenset(
            "decrease decreasing reduce reducing lower lowering shrink shrinking cut cutting fewer less scaledown".split()
        ),
    ),
    ("version", frozenset({"upgrade", "upgrading"}), frozenset({"downgrade", "downgrading"})),
    ("rollout", frozenset({"rollout"}), frozenset({"rollback"})),
    (
        "switch",
        frozenset({"enable", "enabling", "enabled", "start", "starting"}),
        frozenset({"disable", "disabling", "disabled", "stop", "stopping"}),
    ),
    ("safety", frozenset({"safe", "secure"}), frozenset({"unsafe", "insecure"})),
]
_ADDING = frozenset({"add", "adding", "extra", "additional", "another", "expand", "grow"})
_TIME_OPPOSITES = ("timing", frozenset({"before", "until", "pre"}), frozenset({"after", "post"}))

# Qualifiers that change the object: one side of a group in one question and another side in the other.
_QUALIFIERS: list[tuple[str, tuple[frozenset[str], ...]]] = [
    ("exposure", (frozenset({"public", "external"}), frozenset({"internal", "private"}))),
    (
        "access",
        (
            frozenset({"read", "reads", "read-heavy", "reading"}),
            frozenset({"write", "writes", "write-heavy", "writing"}),
        ),
    ),
    ("tier", (frozenset({"frontend", "client-side", "client"}), frozenset({"backend", "server-side", "server"}))),
    ("platform", (frozenset({"mobile", "ios", "android"}), frozenset({"web", "desktop", "browser"}))),
    ("mobile os", (frozenset({"ios"}), frozenset({"android"}))),
    ("environment", (frozenset({"staging", "development", "sandbox"}), frozenset({"production"}))),
    ("calls", (frozenset({"synchronous"}), frozenset({"asynchronous"}))),
    ("data model", (frozenset({"relational", "sql"}), frozenset({"document", "nosql", "key-value", "graph"}))),
    ("state", (frozenset({"stateless"}), frozenset({"stateful"}))),
    ("architecture", (frozenset({"monolith"}), frozenset({"microservices"}))),
    ("processing", (frozenset({"batch", "batches", "nightly"}), frozenset({"streaming", "realtime", "stream"}))),
    ("scaling", (frozenset({"horizontal", "horizontally"}), frozenset({"vertical", "vertically"}))),
    (
        "hosting",
        (frozenset({"cloud", "cloud-hosted", "managed", "hosted", "saas"}), frozenset({"onprem", "selfhosted"})),
    ),
    (
        "seniority",
        (frozenset({"junior", "intern", "interns", "graduate"}), frozenset({"senior", "principal"})),
    ),
    (
        "employment",
        (
            frozenset({"fulltime", "employee", "employees"}),
            frozenset({"contractor", "contractors", "parttime", "freelancer", "agency"}),
        ),
    ),
    (
        "tests",
        (frozenset({"unit"}), frozenset({"integration"}), frozenset({"e2e"}), frozenset({"load", "performance"})),
    ),
    (
        "users",
        (
            frozenset({"customer", "customers", "client", "clients", "user", "users", "partner", "partners"}),
            frozenset({"employee", "employees", "staff", "admin", "admins", "internal"}),
        ),
    ),
    ("market", (frozenset({"b2b"}), frozenset({"b2c"}))),
    ("price", (frozenset({"free"}), frozenset({"paid", "premium"}))),
    (
        "replica",
        (frozenset({"primary", "leader", "master"}), frozenset({"replica", "replicas", "secondary", "follower"})),
    ),
    ("temperature", (frozenset({"hot"}), frozenset({"cold", "archive", "archival"}))),
    ("size", (frozenset({"small", "smaller", "tiny"}), frozenset({"large", "larger", "huge"}))),
    ("encryption", (frozenset({"at-rest"}), frozenset({"in-transit"}))),
    ("auth", (frozenset({"authentication"}), frozenset({"authorization"}))),
    ("tenancy", (frozenset({"singletenant"}), frozenset({"multitenant"}))),
    ("traffic", (frozenset({"inbound", "ingress"}), frozenset({"outbound", "egress"}))),
    ("transfer", (frozenset({"upload", "uploads"}), frozenset({"download", "downloads"}))),
    ("party", (frozenset({"firstparty", "in-house"}), frozenset({"thirdparty", "vendor", "vendors"}))),
    ("licence", (frozenset({"opensource"}), frozenset({"proprietary", "commercial"}))),
    ("work place", (frozenset({"remote", "remotely"}), frozenset({"onsite", "office", "in-office", "hybrid"}))),
    ("horizon", (frozenset({"short-term"}), frozenset({"long-term"}))),
    ("consistency", (frozenset({"strong", "strongly"}), frozenset({"eventual", "eventually"}))),
    ("locking", (frozenset({"optimistic"}), frozenset({"pessimistic"}))),
    ("change", (frozenset({"major"}), frozenset({"minor", "patch"}))),
    ("rendering", (frozenset({"ssr", "server-rendered"}), frozenset({"csr", "spa", "client-rendered", "static"}))),
    ("api style", (frozenset({"rest"}), frozenset({"graphql"}), frozenset({"grpc"}), frozenset({"soap"}))),
]

# Qualifiers that make another question even when the other question has none ("the public API" / "the API").
_ALONE = frozenset(
    """
    public internal private external managed cloud-hosted selfhosted onprem staging production mobile web
    synchronous asynchronous relational document nosql stateless stateful batch streaming realtime horizontal
    horizontally vertical vertically junior senior intern interns contractor contractors parttime unit integration
    e2e multitenant singletenant opensource proprietary read-heavy write-heavy b2b b2c inbound outbound
    """.split()
)
_KEEP_JOINED = frozenset(w for _, groups in _QUALIFIERS for group in groups for w in group if "-" in w)

# The head of a noun phrase: "the analytics service" and "the notifications service" are two services; the
# first few are objects enough that "...the database" is another question than one with no database in it.
_OBJECTS = frozenset("database api app application service site page".split())
_HEADS = _OBJECTS | frozenset(
    """
    service services team teams app apps application page pages database module table tables cluster project pipeline
    pipelines site dashboard endpoint endpoints bucket repository workers worker job jobs flow api portal tool
    """.split()
)

# Words that are never names, even capitalised at the start of a question or in Title Case.
_COMMON = frozenset(
    """
    a an the this that these those some any all every each no our my your their its his her we i you they he she it
    us them me what which who whom whose when where why how whether if is are was were be been being am do does did
    done doing have has had having can could should would will shall may might must need needs let lets let's please
    and or but nor so yet for to of in on at by with from into onto over under between about against after before
    during until since than then there here also just only very more most less least much many few fewer again
    vs versus via per as not never yes okay ok
    choose pick select decide recommend suggest propose design plan evaluate compare assess review build buy use
    using adopt migrate move switch replace implement set setup create define establish improve reduce increase hire
    staff run host deploy ship launch release test write store cache handle manage support keep drop stop start add
    remove enable disable allow forbid make get find figure sort structure organise organize standardise
    standardize scale split merge upgrade downgrade secure protect encrypt monitor measure track log audit document
    version paginate rate limit introduce consider prioritise prioritize approve sign estimate budget
    schedule freeze sunset retire deprecate rewrite refactor automate integrate expose require enforce outsource
    is it time worth best right good better way ways option options approach strategy policy process plan plans
    database databases queue queues cache caching api apis authentication authorization hosting framework
    frameworks frontend backend mobile web testing tests tooling team teams hiring launch deployment deployments
    monorepo microservices monolith feature features logging monitoring observability security performance
    pagination sessions payments billing search storage backups backup infrastructure code review reviews
    onboarding headcount roadmap sprint incident incidents postmortem postmortems data analytics service services
    app application platform product products project projects engineering engineers engineer developers users user
    customers customer cloud server servers cluster public private internal external new old our single
    managed self which one two three first second next last hey hi hello folks everyone quick question thoughts
    idea ideas given assuming now well
    """.split()
)

# Words whose swap is rewording, not another question: function words and the verbs that frame a question.
_FRAME = frozenset(
    """
    a an the this that these those some any all every each no our my your their its we i you they it us them me
    what which who when where why how whether if is are was were be been do does did can could should would will
    shall may might must need needs let lets please and or but so for to of in on at by with from into onto about
    between vs versus via per as yes okay ok also just really actually
    choose pick select decide recommend suggest propose find get make want consider go have help figure sort
    best right good better way ways option options approach strategy plan
    """.split()
)

# After an imperative verb at the start of a question comes one of these; after a name, rarely.
_AFTER_VERB = frozenset(
    """
    a an the our my your their this that these those some all every each any between whether how which what if to
    on for with in up out down off it them us me more fewer less new
    """.split()
)

_MONTHS = {
    "january": 1, "jan": 1, "february": 2, "feb": 2, "march": 3, "mar": 3, "april": 4, "apr": 4, "may": 5,
    "june": 6, "jun": 6, "july": 7, "jul": 7, "august": 8, "aug": 8, "september": 9, "sep": 9, "sept": 9,
    "october": 10, "oct": 10, "november": 11, "nov": 11, "december": 12, "dec": 12,
}  # fmt: skip
_MONTH_NAMES = ("", "January", "February", "March", "April", "May", "June", "July", "August", "September",
                "October", "November", "December")  # fmt: skip
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_SEASONS = ("summer", "winter", "autumn")  # "spring" and "fall" are a framework and a verb as often
_RELATIVE = ("this", "next", "last", "coming", "following", "previous", "current")
_PERIODS = ("day", "week", "month", "quarter", "year", "sprint", "half", "release", "cycle", "season")
_YEAR_NOUNS = frozenset("goals okrs plans targets priorities budgets roadmaps results numbers plans".split())
_DAY_WORDS = ("today", "tomorrow", "tonight", "yesterday")

_NUMBER_WORDS = {
    "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
    "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17,
    "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60,
    "seventy": 70, "eighty": 80, "ninety": 90, "dozen": 12, "a dozen": 12, "a hundred": 100, "one hundred": 100,
    "a thousand": 1_000, "one thousand": 1_000, "a million": 1_000_000, "one million": 1_000_000,
    "a billion": 1_000_000_000, "one billion": 1_000_000_000, "half a million": 500_000, "a couple of": 2,
    "double": 2, "twice": 2, "triple": 3,
}  # fmt: skip
_MULTIPLIERS = {
    "k": 1e3, "thousand": 1e3, "m": 1e6, "mm": 1e6, "mn": 1e6, "million": 1e6, "millions": 1e6, "b": 1e9,
    "bn": 1e9, "billion": 1e9, "billions": 1e9, "hundred": 1e2, "trillion": 1e12,
}  # fmt: skip
# Units: (dimension, factor to the base unit).
_UNITS = {
    "b": ("bytes", 1), "byte": ("bytes", 1), "bytes": ("bytes", 1),
    "kb": ("bytes", 1e3), "mb": ("bytes", 1e6), "gb": ("bytes", 1e9), "tb": ("bytes", 1e12), "pb": ("bytes", 1e15),
    "kib": ("bytes", 2**10), "mib": ("bytes", 2**20), "gib": ("bytes", 2**30), "tib": ("bytes", 2**40),
    "kilobytes": ("bytes", 1e3), "megabytes": ("bytes", 1e6), "gigabytes": ("bytes", 1e9),
    "terabytes": ("bytes", 1e12), "petabytes": ("bytes", 1e15),
    "ms": ("seconds", 1e-3), "millisecond": ("seconds", 1e-3), "milliseconds": ("seconds", 1e-3),
    "s": ("seconds", 1), "sec": ("seconds", 1), "secs": ("seconds", 1), "second": ("seconds", 1),
    "seconds": ("seconds", 1), "min": ("seconds", 60), "mins": ("seconds", 60), "minute": ("seconds", 60),
    "minutes": ("seconds", 60), "h": ("seconds", 3600), "hr": ("seconds", 3600), "hrs": ("seconds", 3600),
    "hour": ("seconds", 3600), "hours": ("seconds", 3600), "day": ("seconds", 86400), "days": ("seconds", 86400),
    "week": ("seconds", 604800), "weeks": ("seconds", 604800), "month": ("seconds", 2629800),
    "months": ("seconds", 2629800), "year": ("seconds", 31557600), "years": ("seconds", 31557600),
    "%": ("percent", 1), "percent": ("percent", 1), "x": ("times", 1),
    "rps": ("per second", 1), "qps": ("per second", 1), "tps": ("per second", 1), "rpm": ("per second", 1 / 60),
    "usd": ("usd", 1), "dollars": ("usd", 1), "dollar": ("usd", 1), "eur": ("eur", 1), "euros": ("eur", 1),
    "gbp": ("gbp", 1), "pounds": ("gbp", 1),
}  # fmt: skip
_CURRENCY = {"$": "usd", "€": "eur", "£": "gbp"}
_RATE = {"second": 1, "sec": 1, "s": 1, "minute": 1 / 60, "min": 1 / 60, "hour": 1 / 3600, "h": 1 / 3600,
         "day": 1 / 86400, "week": 1 / 604800, "month": 1 / 2629800, "year": 1 / 31557600}  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------
# Reading a question
# ---------------------------------------------------------------------------------------------------------------


class Quantity(NamedTuple):
    value: float
    dimension: str  # "" when the number has no unit
    text: str  # as written


class _Token(NamedTuple):
    norm: str  # lower case, after aliases
    raw: str  # as written
    initial: bool  # first word of a sentence (or after a colon)
    follower: str  # the next word, lower case ("" at the end)
    glued: str  # the character right after the word (":" in "Apollo: which...")


class Reading(NamedTuple):
    """What the guard compares in one question."""

    quantities: tuple[Quantity, ...]
    versions: frozenset[str]
    dates: frozenset[str]
    tokens: tuple[str, ...]  # lower case, aliases applied, numbers and dates taken out
    names: dict[str, str]  # normalised name -> as written
    roles: dict[str, str]  # name -> "from" / "to"
    negated: tuple[str, ...]  # the negation words present
    heads: dict[str, frozenset[str]]  # head noun -> the words right before it


def _phrase_pattern() -> re.Pattern[str]:
    keys = sorted(_PHRASES, key=len, reverse=True)
    return re.compile(r"(?<![\w-])(" + "|".join(re.escape(k) for k in keys) + r")(?![\w-])", re.IGNORECASE)


_PHRASE_RE = _phrase_pattern()
_NUMWORD_RE = re.compile(
    r"(?<![\w-])(" + "|".join(re.escape(k) for k in sorted(_NUMBER_WORDS, key=len, reverse=True)) + r")(?![\w-])",
    re.IGNORECASE,
)
_RANGE_RE = re.compile(r"(\d[kmb]?)\s*[-–]\s*(\d)", re.IGNORECASE)
_NUMBER_RE = re.compile(
    r"(?<![\w.])(?<![a-z]-)(?P<cur>[$€£])?\s?(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)"
    r"(?:\s?(?P<mult>k|mm|mn|m|bn|b|thousand|millions?|billions?|hundred|trillion)(?![a-z]))?"
    r"(?:\s?(?P<unit>%|percent|kib|mib|gib|tib|kb|mb|gb|tb|pb|kilobytes|megabytes|gigabytes|terabytes|petabytes|bytes?|"
    r"milliseconds?|ms|seconds?|secs?|s|minutes?|mins?|min|hours?|hrs?|hr|h|days?|weeks?|months?|years?|x|rps|qps|"
    r"tps|rpm|usd|dollars?|eur|euros|gbp|pounds)(?![a-z]))?"
    r"(?:\s?(?:/|per|a|an|each)\s?(?P<per>second|sec|s|minute|min|hour|h|day|week|month|year)\b)?",
    re.IGNORECASE,
)
# A rate a few words after the number: "100,000 writes per second", "5 TB of logs a month".
_LATE_RATE_RE = re.compile(
    r"^(?:\s+[a-z-]+){1,3}?\s*(?:/|\s+per\s+|\s+a\s+|\s+an\s+|\s+each\s+)(second|sec|s|minute|min|hour|day|week|month|year)\b",
    re.IGNORECASE,
)
_VERSION_RE = re.compile(r"(?<![\w.])(?:v(\d+(?:\.\d+)*)|(\d+\.\d+\.\d+)|(\d+\.\d+)(?=\s*(?:version|release)))\b", re.I)
_PERCENTILE_RE = re.compile(r"\bp(50|75|90|95|99|999)\b", re.IGNORECASE)
_YEAR_RE = re.compile(r"(?<![\w$€£.,])(?:fy\s?)?((?:19|20)\d{2})(?![\w%,.]|\s?(?:k|m|b|gb|tb|ms|users)\b)", re.I)
_FY_RE = re.compile(r"\bfy\s?'?(\d{2})\b", re.IGNORECASE)
_QUARTER_RE = re.compile(r"\b([qh])([1-4])\b", re.IGNORECASE)
_TOKEN_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9+#._'/-]*[A-Za-z0-9+#]|[A-Za-z0-9]|%")
_SENTENCE_BREAK = re.compile(r"[.?!:;\"(\[—]\s*$")


def _replace_phrases(text: str) -> str:
    return _PHRASE_RE.sub(lambda m: _PHRASES[m.group(1).lower()], text)


def _number(text: str) -> float:
    return float(text.replace(",", ""))


def _read_quantities(text: str) -> tuple[list[Quantity], str]:
    """Numbers with their scale and unit, in base units; the text with them taken out."""
    found: list[Quantity] = []

    def take(m: re.Match[str]) -> str:
        mult, unit, cur, per = (m.group(g) for g in ("mult", "unit", "cur", "per"))
        if not (mult or unit or per) and text[m.end() : m.end() + 1].isalpha():
            return m.group(0)  # part of a word: "2FA", "3rd", "4xx"
        value = _number(m.group("num"))
        dimension = ""
        if mult:
            value *= _MULTIPLIERS[mult.lower()]
        if unit:
            dimension, factor = _UNITS[unit.lower()]
            value *= factor
        if cur:
            dimension = _CURRENCY[cur]
        if per is None:
            late = _LATE_RATE_RE.match(text[m.end() : m.end() + 40])
            per = late.group(1) if late else None
        if per:
            value *= _RATE[per.lower()]
            dimension = (dimension + " per second").strip()
        found.append(Quantity(value, dimension, m.group(0).strip()))
        return " "

    rest = _NUMBER_RE.sub(take, text)
    return found, rest


def _read_dates(text: str) -> tuple[set[str], str]:
    """Years, fiscal years, quarters, halves, months, weekdays, seasons and "next quarter"; the text without them."""
    dates: set[str] = set()

    def year(m: re.Match[str]) -> str:
        fiscal = m.group(0).lower().startswith("fy")
        after = re.match(r"\s*([a-z]+)", text[m.end() :], re.IGNORECASE)
        if not fiscal and after and after.group(1).lower().endswith("s") and after.group(1).lower() not in _YEAR_NOUNS:
            return m.group(0)  # "2000 requests", "2048 connections": a count, read with the numbers
        dates.add(("FY" if fiscal else "") + m.group(1))
        return " "

    def fiscal(m: re.Match[str]) -> str:
        dates.add("FY20" + m.group(1))
        return " "

    def quarter(m: re.Match[str]) -> str:
        dates.add(m.group(1).upper() + m.group(2))
        return " "

    text = _FY_RE.sub(fiscal, text)
    text = _YEAR_RE.sub(year, text)
    text = _QUARTER_RE.sub(quarter, text)
    for key, label in (
        ("eoy", "end of year"),
        ("eoq", "end of quarter"),
        ("eom", "end of month"),
        ("eos", "end of sprint"),
    ):
        if re.search(rf"\b{key}\b", text, re.IGNORECASE):
            dates.add(label)
            text = re.sub(rf"\b{key}\b", " ", text, flags=re.IGNORECASE)
    relative = re.compile(rf"\b({'|'.join(_RELATIVE)})\s+({'|'.join(_PERIODS)})s?\b", re.IGNORECASE)
    for m in relative.finditer(text):
        which = m.group(1).lower()
        which = {"current": "this", "coming": "next", "following": "next", "previous": "last"}.get(which, which)
        dates.add(f"{which} {m.group(2).lower()}")
    text = relative.sub(" ", text)

    def month(m: re.Match[str]) -> str:
        word = m.group(1)
        if word.lower() == "may" and not (word[0] == "M" and m.start() > 0) and not re.match(r"\s+\d", text[m.end() :]):
            return word  # the verb
        if word.lower() in ("mar", "jun", "jul", "aug", "sep", "oct", "nov", "dec", "jan", "feb", "apr", "sept"):
            if word[0].islower():
                return word  # "dec" or "mar" in lower case are too rarely months to count
        dates.add(_MONTH_NAMES[_MONTHS[word.lower()]])
        return " "

    text = re.sub(r"\b(" + "|".join(_MONTHS) + r")\b\.?", month, text, flags=re.IGNORECASE)
    for day in _WEEKDAYS:
        if re.search(rf"\b{day}s?\b", text, re.IGNORECASE):
            dates.add(day.capitalize())
            text = re.sub(rf"\b{day}s?\b", " ", text, flags=re.IGNORECASE)
    for word in (*_SEASONS, *_DAY_WORDS):
        if re.search(rf"\b{word}\b", text, re.IGNORECASE):
            dates.add(word)
            text = re.sub(rf"\b{word}\b", " ", text, flags=re.IGNORECASE)
    return dates, text


def _stem(word: str) -> str:
    """Plural and possessive off ("users'", "payments", "profiles" -> user, payment, profile), enough to compare."""
    word = word.removesuffix("'s").removesuffix("'")
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _tokens(text: str) -> list[_Token]:
    out: list[_Token] = []
    matches = list(_TOKEN_RE.finditer(text))
    for i, m in enumerate(matches):
        raw = re.sub(r"'(?:s|re|ve|ll|d|m)$", "", m.group(0).rstrip("."), flags=re.IGNORECASE)  # we're, Apollo's
        norm = raw.lower()
        norm = _WORDS.get(norm, norm)
        before = text[: m.start()]
        initial = not before.strip() or bool(_SENTENCE_BREAK.search(before))
        follower = matches[i + 1].group(0).lower() if i + 1 < len(matches) else ""
        glued = text[m.end() : m.end() + 1]
        parts = norm.split()  # an alias can be two words ("can not")
        if len(parts) == 1 and re.search(r"[-/]", norm) and norm not in _NAMES and norm not in _KEEP_JOINED:
            parts = [p for p in re.split(r"[-/]", norm) if p]  # "load-testing" is "load testing"
        for part in parts:
            out.append(_Token(part, raw, initial, follower, glued))
    return out


def _looks_like_name(tok: _Token, shouting: bool, title_case: bool) -> bool:
    raw, norm = tok.raw, tok.norm
    if norm in _NAMES:
        return True
    if norm in _GENERIC_CAPS or shouting or not raw[:1].isupper():
        return bool(re.search(r"[a-z][A-Z]", raw)) and norm not in _GENERIC_CAPS  # GraphQL, OpenSearch, IdP...
    if norm in _COMMON or _stem(norm) in _COMMON:
        return False
    if tok.initial or title_case:
        # "Recommend an ORM" is a verb; "Apollo needs a database" / "Apollo: which database?" is a name.
        return tok.glued in (":", ",", "'") or tok.follower not in _AFTER_VERB
    return True


def _roles(tokens: list[str], names: set[str]) -> dict[str, str]:
    """Which name is left and which is taken: "from MySQL to PostgreSQL", "Kafka instead of RabbitMQ"."""
    roles: dict[str, str] = {}
    replacing = "replace" in tokens or "replacing" in tokens
    for i, tok in enumerate(tokens):
        if tok not in names:
            continue
        prev = tokens[i - 1] if i else ""
        prev2 = " ".join(tokens[max(0, i - 2) : i])
        nxt = " ".join(tokens[i + 1 : i + 3])
        if prev in ("from", "leave", "leaving", "replace", "replacing", "away", "over") or prev2 in (
            "instead of",
            "rather than",
        ):
            roles.setdefault(tok, "from")
        elif prev in ("to", "into", "onto") or (prev == "with" and replacing) or nxt in ("instead of", "rather than"):
            roles.setdefault(tok, "to")
        elif set(tokens[max(0, i - 3) : i]) & {"keep", "keeping", "stay", "stick", "remain", "continue"}:
            roles.setdefault(tok, "keep")
    return roles


def _heads(tokens: list[str]) -> dict[str, frozenset[str]]:
    found: dict[str, set[str]] = {}
    for i, tok in enumerate(tokens):
        if tok in _HEADS and i > 0:
            prev = tokens[i - 1]
            mods = found.setdefault(_stem(tok), set())
            if prev not in _FRAME and prev not in ("new", "current", "existing", "main", "own", "hey", "hi", "hello"):
                mods.add(_stem(prev))
    return {k: frozenset(v) for k, v in found.items()}


@lru_cache(maxsize=4096)
def read(question: str) -> Reading:
    """The parts of one question the guard compares (cached: the stored side is read again and again)."""
    text = unicodedata.normalize("NFKC", question)
    text = text.replace("’", "'").replace("‘", "'").replace("“", '"').replace("”", '"')
    text = re.sub(r"\s+", " ", text).strip()
    letters = [c for c in text if c.isalpha()]
    shouting = len(letters) > 8 and sum(c.isupper() for c in letters) > 0.8 * len(letters)
    text = _replace_phrases(text)
    text = re.sub(r"n't\b", " not", text, flags=re.IGNORECASE)
    text = _RANGE_RE.sub(r"\1 to \2", text)
    versions = {m.group(1) or m.group(2) or m.group(3) for m in _VERSION_RE.finditer(text)}
    versions |= {"p" + m.group(1) for m in _PERCENTILE_RE.finditer(text)}
    text = _VERSION_RE.sub(" ", text)
    text = _PERCENTILE_RE.sub(" ", text)
    dates, text = _read_dates(text)
    text = _NUMWORD_RE.sub(lambda m: str(_NUMBER_WORDS[m.group(1).lower()]), text)
    text = re.sub(r"\bone\s+(hundred|thousand|million|billion)\b", r"1 \1", text, flags=re.IGNORECASE)
    quantities, text = _read_quantities(text)
    toks = _tokens(text)
    words = [t.raw for t in toks[1:] if t.raw[:1].isalpha() and len(t.raw) > 3]
    title_case = len(words) >= 3 and sum(not w[0].isupper() for w in words) <= len(words) // 4
    names: dict[str, str] = {}
    for tok in toks:
        if _looks_like_name(tok, shouting, title_case) or (
            re.search(r"\d", tok.norm) and re.search(r"[a-z]", tok.norm) and tok.norm not in _GENERIC_CAPS
        ):
            names.setdefault(tok.norm, tok.raw)
    norms = [t.norm for t in toks]
    negated = tuple(t for t in norms if t in _NEGATORS)
    return Reading(
        quantities=tuple(sorted(quantities)),
        versions=frozenset(versions),
        dates=frozenset(dates),
        tokens=tuple(norms),
        names=names,
        roles=_roles(norms, set(names)),
        negated=negated,
        heads=_heads(norms),
    )


# ---------------------------------------------------------------------------------------------------------------
# Comparing two questions
# ---------------------------------------------------------------------------------------------------------------


def _fmt(value: float) -> str:
    if value >= 1000 and value == int(value):
        return f"{int(value):,}"
    return f"{value:g}"


def _show(qs: list[Quantity]) -> str:
    return ", ".join(q.text for q in qs) or "none"


def _same_value(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-9 * max(abs(a), abs(b), 1.0)


def _compare_numbers(a: Reading, b: Reading) -> list[Difference]:
    out: list[Difference] = []
    qa, qb = list(a.quantities), list(b.quantities)
    unmatched_a = [q for q in qa if not any(_same_value(q.value, r.value) for r in qb)]
    unmatched_b = [q for q in qb if not any(_same_value(q.value, r.value) for r in qa)]
    if unmatched_a or unmatched_b or len(qa) != len(qb):
        out.append(Difference("number", f"numbers differ: {_show(qa)} vs {_show(qb)}"))
    else:
        for x, y in zip(qa, qb, strict=True):
            if x.dimension and y.dimension and x.dimension != y.dimension:
                out.append(Difference("number", f"units differ: {x.text} vs {y.text}"))
                break
    if a.versions != b.versions:
        out.append(
            Difference(
                "number",
                f"versions differ: {', '.join(sorted(a.versions)) or 'none'} vs {', '.join(sorted(b.versions)) or 'none'}",
            )
        )
    return out


_EVENTS = frozenset(
    """
    launch release go-live golive live deadline cutover migration freeze holiday holidays demo audit rollout ipo
    funding beta ga conference merger acquisition reorg renewal deploy deployment upgrade kickoff
    """.split()
)


def _timed_event(tokens: tuple[str, ...]) -> bool:
    _, before, after = _TIME_OPPOSITES
    for i, tok in enumerate(tokens):
        if tok in before or tok in after:
            if set(tokens[i + 1 : i + 4]) & _EVENTS:
                return True
    return False


def _timing(sides: set[int]) -> str:
    return " and ".join(("before", "after")[i] for i in sorted(sides)) or "no timing"


def _sides(tokens: set[str], groups: tuple[frozenset[str], ...]) -> set[int]:
    return {i for i, group in enumerate(groups) if tokens & group}


def _present(tokens: set[str], word: str) -> bool:
    return word in tokens or _stem(word) in {_stem(t) for t in tokens}


def _compare(a: Reading, b: Reading) -> list[Difference]:
    out = _compare_numbers(a, b)
    ta, tb = set(a.tokens), set(b.tokens)

    # dates, and before / after
    if a.dates != b.dates:
        show_a = ", ".join(sorted(a.dates)) or "no date"
        show_b = ", ".join(sorted(b.dates)) or "no date"
        out.append(Difference("date", f"dates differ: {show_a} vs {show_b}"))
    _, before, after = _TIME_OPPOSITES
    sa, sb = _sides(ta, (before, after)), _sides(tb, (before, after))
    if (sa and sb and sa != sb) or (bool(sa) != bool(sb) and (_timed_event(a.tokens) or _timed_event(b.tokens))):
        # "before the launch" is another question than one with no time at all; "after a disaster" is not a date
        out.append(Difference("date", f"timing differs: {_timing(sa)} vs {_timing(sb)}"))

    # negation and antonyms
    if bool(a.negated) != bool(b.negated):
        out.append(
            Difference(
                "negation",
                f"negation differs: '{' '.join(a.negated) or 'no negation'}' vs '{' '.join(b.negated) or 'no negation'}'",
            )
        )
    for label, up, down in _OPPOSITES:
        sa, sb = _sides(ta, (up, down)), _sides(tb, (up, down))
        if label == "direction" and bool(sa) != bool(sb):
            # "hire more engineers" is not "hire engineers"; but "add two engineers" says "more" too
            loose_a, loose_b = sa or _sides(ta, (_ADDING, frozenset())), sb or _sides(tb, (_ADDING, frozenset()))
            if loose_a != loose_b:
                wa = ", ".join(sorted(ta & (up | down))) or "none"
                wb = ", ".join(sorted(tb & (up | down))) or "none"
                out.append(Difference("negation", f"{label} differs: {wa} vs {wb}"))
            continue
        if sa and sb and (sa - sb) and (sb - sa):
            wa = ", ".join(sorted(ta & (up | down)))
            wb = ", ".join(sorted(tb & (up | down)))
            out.append(Difference("negation", f"opposite {label}: {wa} vs {wb}"))
    for word in ta ^ tb:  # "safe" / "unsafe", "secure" / "insecure", "blocking" / "non-blocking"
        other = tb if word in ta else ta
        for prefix in ("un", "in", "non-", "non", "dis"):
            if word.startswith(prefix) and len(word) - len(prefix) >= 4 and word[len(prefix) :] in other:
                out.append(Difference("negation", f"opposites: {word[len(prefix) :]} vs {word}"))

    # named things
    only_a = [raw for norm, raw in a.names.items() if not _present(tb, norm)]
    only_b = [raw for norm, raw in b.names.items() if not _present(ta, norm)]
    if only_a or only_b:
        out.append(Difference("name", f"names differ: {', '.join(only_a) or 'none'} vs {', '.join(only_b) or 'none'}"))
    else:
        flipped = [n for n in a.roles if n in b.roles and a.roles[n] != b.roles[n]]
        if flipped:
            show = ", ".join(a.names.get(n, n) for n in flipped)
            out.append(Difference("name", f"direction differs: {show} is taken in one and left in the other"))

    # qualifiers
    for label, groups in _QUALIFIERS:
        sa, sb = _sides(ta, groups), _sides(tb, groups)
        if sa and sb and (sa - sb) and (sb - sa):
            wa = ", ".join(sorted(ta & frozenset().union(*groups)))
            wb = ", ".join(sorted(tb & frozenset().union(*groups)))
            out.append(Difference("qualifier", f"{label} differs: {wa} vs {wb}"))
        elif bool(sa) != bool(sb):
            one, other = (ta, tb) if sa else (tb, ta)
            alone = sorted(w for w in one & _ALONE & frozenset().union(*groups) if not _present(other, w))
            if alone:
                shown = (", ".join(alone), "none") if sa else ("none", ", ".join(alone))
                out.append(Difference("qualifier", f"{label} differs: {shown[0]} vs {shown[1]}"))
    reported = {_stem(w) for d in out for w in re.findall(r"[\w.+#-]+", d.lower())}
    stems_a, stems_b = {_stem(t) for t in ta}, {_stem(t) for t in tb}
    for head in set(a.heads) & set(b.heads):
        ma, mb = a.heads[head], b.heads[head]
        # a modifier the other question uses anywhere ("cron jobs" / "jobs from cron") is rewording
        if ma and mb and not (ma & stems_b) and not (mb & stems_a) and not (ma | mb) & reported:
            out.append(
                Difference(
                    "qualifier", f"objects differ: {'/'.join(sorted(ma))} {head} vs {'/'.join(sorted(mb))} {head}"
                )
            )
    for one, other, stems_other, first in ((a, b, stems_b, True), (b, a, stems_a, False)):
        for head, mods in one.heads.items():
            if head in other.heads or head in stems_other or mods & stems_other or mods & reported:
                continue
            if not mods and head not in _OBJECTS:
                continue
            phrase = f"{'/'.join(sorted(mods))} {head}".strip()
            shown = (phrase, "none") if first else ("none", phrase)
            out.append(Difference("qualifier", f"objects differ: {shown[0]} vs {shown[1]}"))
    out.extend(_substitutions(a, b, reported))
    return out


def _substitutions(a: Reading, b: Reading, reported: set[str]) -> list[Difference]:
    """One word swapped for another in otherwise equal wording ("...for the analytics service" / "...for billing").

    Only a word that is neither common nor a known synonym counts: "Pick"/"Choose" never do.
    """
    sa = [_stem(t) for t in a.tokens]
    sb = [_stem(t) for t in b.tokens]
    out: list[Difference] = []
    ops = SequenceMatcher(a=sa, b=sb, autojunk=False).get_opcodes()
    for n, (op, i1, i2, j1, j2) in enumerate(ops):
        if op != "replace" or i2 - i1 != 1 or j2 - j1 != 1:
            continue
        x, y = sa[i1], sb[j1]
        if x in _FRAME or y in _FRAME or x in reported or y in reported or _SYNONYMS.get(x, x) == _SYNONYMS.get(y, y):
            continue
        # a pocket in otherwise equal wording: two equal words before, and equal words (or the end) after
        before = ops[n - 1] if n else None
        after = ops[n + 1] if n + 1 < len(ops) else None
        if before is None or before[0] != "equal" or before[2] - before[1] < 2:
            continue
        if after is not None and after[0] != "equal":
            continue
        out.append(Difference("qualifier", f"words differ: {a.tokens[i1]} vs {b.tokens[j1]}"))
    return out


# Words people use for one another; a swap between them is rewording.
_SYNONYM_GROUPS = [
    "choose pick select decide",
    "site website webpage",
    "large big huge",
    "small tiny",
    "app application",
    "engineer developer dev hire",
    "cost bill spend",
    "deployment release rollout",
    "broker queue",
    "storage store",
]
_SYNONYMS = {w: group.split()[0] for group in _SYNONYM_GROUPS for w in group.split()}


def differences(asked: str, stored: str) -> list[Difference]:
    """The reasons `asked` is not the same question as `stored` (each a str with a `.kind`); [] when nothing differs.

    Symmetric apart from the order of the two sides in each reason ("asked vs stored").
    """
    return _compare(read(asked), read(stored))
