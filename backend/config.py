"""Settings from the environment: embedded defaults, distributed by configuration (DESIGN decision 11)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Everything Maestro reads from the environment; nothing here is required."""

    model_config = SettingsConfigDict(env_prefix="", extra="ignore", populate_by_name=True)

    database_url: str = Field(default=f"sqlite:///{PROJECT_ROOT / 'maestro.db'}", alias="DATABASE_URL")
    redis_url: str | None = Field(default=None, alias="REDIS_URL")
    # Largest human message accepted, in characters; larger ones are refused with a clear message.
    max_message_chars: int = Field(default=20_000, alias="MAESTRO_MAX_MESSAGE_CHARS")
    # Default reply length for an agent turn.
    max_tokens_per_turn: int = Field(default=300, alias="MAESTRO_MAX_TOKENS_PER_TURN")
    # Per-call deadlines: past the soft one the badge says "slow"; the hard one cancels the call.
    soft_deadline_s: float = Field(default=30.0, alias="MAESTRO_SOFT_DEADLINE_S")
    hard_deadline_s: float = Field(default=180.0, alias="MAESTRO_HARD_DEADLINE_S")
    # How long a runner's lease on a discussion lasts without a heartbeat.
    lease_seconds: float = Field(default=15.0, alias="MAESTRO_LEASE_SECONDS")
    # How often a runner's janitor looks for discussions to resume or pick up (default: half the lease).
    janitor_interval_s: float | None = Field(default=None, gt=0, alias="MAESTRO_JANITOR_INTERVAL_S")

    # Team-ready trust (README "Security"). Usernames that are instance admins besides the first account.
    admins: str = Field(default="", alias="MAESTRO_ADMINS")
    # Sign-up until the admin chooses otherwise: open | invite_only | closed (the first account is always allowed).
    signup_policy: str = Field(default="invite_only", alias="MAESTRO_SIGNUP_POLICY")
    # Daily spend caps in dollars (UTC days) until the admin sets them: per person (their discussions) and for
    # the whole instance. None: no cap.
    user_daily_usd: float | None = Field(default=None, gt=0, alias="MAESTRO_USER_DAILY_USD")
    instance_daily_usd: float | None = Field(default=None, gt=0, alias="MAESTRO_INSTANCE_DAILY_USD")
    # The longest reply anyone may ask an agent for, in tokens.
    max_tokens_per_turn_limit: int = Field(default=4000, gt=0, alias="MAESTRO_MAX_TOKENS_PER_TURN_LIMIT")
    # Base URLs agents may be pointed at (OpenAI-compatible servers): comma-separated origins such as
    # http://gpu-box:8001, or the word `loopback` (the default: servers on this machine only).
    allowed_base_urls: str = Field(default="loopback", alias="MAESTRO_ALLOWED_BASE_URLS")
    # GET /metrics answers a scraper that sends `Authorization: Bearer <this>`; without it, loopback callers only.
    metrics_token: str | None = Field(default=None, alias="MAESTRO_METRICS_TOKEN")
    # The session cookie is Secure when the request came over HTTPS (directly or per X-Forwarded-Proto) or
    # when this is true.
    secure_cookies: bool = Field(default=False, alias="MAESTRO_SECURE_COOKIES")
    # Overrides of the rate limits (backend/humans/rate_limits.py), e.g. "sign_up=100/hour,post=60/minute".
    rate_limits: str = Field(default="", alias="MAESTRO_RATE_LIMITS")
    # Live event streams (SSE) one person may hold open at once.
    max_streams_per_user: int = Field(default=8, gt=0, alias="MAESTRO_MAX_STREAMS_PER_USER")
    # Deliberation memory (backend/memory): reuse a trusted result when the same question comes back in the same
    # context. Off: every discussion runs fresh and nothing is remembered.
    memory_enabled: bool = Field(default=True, alias="MAESTRO_MEMORY")
    # How long a remembered result may be served, in days.
    memory_ttl_days: float = Field(default=180.0, gt=0, alias="MAESTRO_MEMORY_TTL_DAYS")


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (cached; tests clear the cache after changing the environment)."""
    return Settings()
