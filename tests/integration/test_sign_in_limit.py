"""Guessing a password online stays slow: after MAX_FAILURES failed sign-ins an account is refused for a while,
even with the right password, and says how long; unknown names are treated alike; workers share the count in
Redis."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from backend.config import get_settings
from backend.errors import InputError, TooManyAttempts
from backend.humans import accounts, rate_limits, sign_in_limit
from tests.conftest import REDIS_TEST_URL
from tests.people import person

RIGHT = "correct horse"


def _fail(username: str, times: int) -> None:
    for _ in range(times):
        with pytest.raises(InputError, match="Wrong username or password"):
            accounts.log_in(username, "a wrong guess")


def test_too_many_failures_lock_the_account_even_for_the_right_password_and_say_how_long(sqlite_db) -> None:
    person("sam")
    person("pat")
    _fail("sam", sign_in_limit.MAX_FAILURES)
    with pytest.raises(TooManyAttempts) as refused:
        accounts.log_in("Sam", RIGHT)  # the same account however it is spelled
    assert refused.value.errors == {
        "password": f"Too many failed sign-ins for this account. Try again in {sign_in_limit.WINDOW_MINUTES} min."
    }
    assert 0 < refused.value.retry_after <= sign_in_limit.WINDOW_MINUTES * 60
    user, token = accounts.log_in("pat", RIGHT)  # another account is not affected
    assert user.username == "pat" and accounts.resolve(token).id == user.id


def test_an_unknown_name_is_refused_the_same_way_so_nothing_tells_which_accounts_exist(sqlite_db) -> None:
    _fail("nobody", sign_in_limit.MAX_FAILURES)
    with pytest.raises(TooManyAttempts, match="Too many failed sign-ins for this account"):
        accounts.log_in("nobody", RIGHT)


def test_a_successful_sign_in_clears_the_failures_before_it(sqlite_db) -> None:
    person("sam")
    _fail("sam", sign_in_limit.MAX_FAILURES - 1)
    accounts.log_in("sam", RIGHT)
    _fail("sam", sign_in_limit.MAX_FAILURES - 1)
    assert accounts.log_in("sam", RIGHT)[0].username == "sam"


def test_guesses_sent_in_parallel_get_no_more_password_checks_than_the_limit(sqlite_db) -> None:
    person("sam")

    def guess(i: int) -> str:
        try:
            accounts.log_in("sam", f"guess {i}")
        except TooManyAttempts:
            return "refused"
        except InputError:
            return "checked"
        return "signed in"

    with ThreadPoolExecutor(max_workers=30) as pool:
        outcomes = list(pool.map(guess, range(30)))
    assert outcomes.count("checked") == sign_in_limit.MAX_FAILURES
    assert outcomes.count("refused") == 30 - sign_in_limit.MAX_FAILURES


@pytest.mark.redis
def test_workers_share_the_count_in_redis(sqlite_db, monkeypatch) -> None:
    monkeypatch.setenv("REDIS_URL", REDIS_TEST_URL)
    get_settings.cache_clear()
    sign_in_limit.reset()
    person("sam")
    _fail("sam", sign_in_limit.MAX_FAILURES - 1)
    rate_limits.limiter.cache_clear()  # another worker: its own limiter, the same Redis
    _fail("sam", 1)
    with pytest.raises(TooManyAttempts):
        accounts.log_in("sam", RIGHT)
