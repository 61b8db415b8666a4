"""What `rolecall keys create` and `POST /admin/keys` accept, and how `--since` reads: one checker for both."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from rolecall.core.errors import InvalidRequest
from rolecall.service.key_options import check_name, key_limits, parse_expiry, parse_window
from rolecall.service.tenants import parse_since
from rolecall.settings import Settings


@pytest.mark.parametrize(("text", "seconds"), [("5h", 18000), ("90m", 5400), ("1d", 86400), ("3600", 3600), (60, 60)])
def test_windows(text: str | int, seconds: int) -> None:
    assert parse_window(text) == seconds


@pytest.mark.parametrize("text", ["5 hours", "0h", "-1", "", "h"])
def test_bad_windows_say_what_to_write(text: str) -> None:
    with pytest.raises(InvalidRequest, match=r"5h|longer than 0"):
        parse_window(text)


def test_expiry_is_the_end_of_the_day_or_the_time_given() -> None:
    assert parse_expiry("2026-12-31") == datetime(2026, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    assert parse_expiry("2026-12-31T18:00:00Z") == datetime(2026, 12, 31, 18, tzinfo=UTC)
    assert parse_expiry("2026-12-31T18:00:00+02:00") == datetime(2026, 12, 31, 16, tzinfo=UTC)
    with pytest.raises(InvalidRequest, match="2026-12-31"):
        parse_expiry("next week")


def test_limits_from_options() -> None:
    limits = key_limits(rpm=30, quota_tokens=1000, quota_window="5h", models="smol*, MiniMax-M2.7")
    assert limits.requests_per_minute == 30 and limits.quota_window_seconds == 18000
    assert limits.models == ("smol*", "MiniMax-M2.7") and limits.limited
    assert not key_limits().limited and key_limits().models == ()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"rpm": 0}, "rpm: must be a whole number"),
        ({"tpm": "many"}, "tpm: must be a whole number"),
        ({"concurrency": True}, "concurrency: must be a whole number"),
        ({"quota_tokens": 5}, "give both the tokens and the window"),
        ({"quota_window": "5h"}, "give both the tokens and the window"),
        ({"models": [1]}, "models: a list"),
        ({"expires": 5}, "expires: a date"),
    ],
)
def test_bad_limits_are_400_with_a_hint(options: dict, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        key_limits(**options)


@pytest.mark.parametrize("name", ["", "a b", "config:x", "-lead", "x" * 65, "anonymous", "Other", "none"])
def test_bad_names(name: str) -> None:
    with pytest.raises(InvalidRequest, match="key name"):
        check_name(name)


def test_since() -> None:
    now = datetime(2026, 11, 30, 12, tzinfo=UTC)
    assert parse_since("24h", now) == datetime(2026, 11, 29, 12, tzinfo=UTC).timestamp()
    assert parse_since("7d", now) == datetime(2026, 11, 23, 12, tzinfo=UTC).timestamp()
    assert parse_since("2026-11-01", now) == datetime(2026, 11, 1, tzinfo=UTC).timestamp()
    with pytest.raises(InvalidRequest, match="24h"):
        parse_since("yesterday", now)


def test_database_url_schemes() -> None:
    assert Settings(database_url="postgresql://u:p@h/db").database_url == "postgresql://u:p@h/db"
    assert Settings(database_url="sqlite:////tmp/x.db").database_url == "sqlite:////tmp/x.db"
    with pytest.raises(ValidationError, match="sqlite:///PATH or postgresql://"):
        Settings(database_url="mysql://h/db")
