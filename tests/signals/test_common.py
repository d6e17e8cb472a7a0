"""Shared pieces: the daily quota, Retry-After parsing, time helpers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from custom_components.cariflex.signals import DailyQuota, SignalConfigError, SignalQuotaExceededError
from custom_components.cariflex.signals._http import retry_after_seconds
from custom_components.cariflex.signals.timeutil import parse_instant

NOW = datetime(2025, 3, 11, 23, 59, tzinfo=UTC)


def test_quota_counts_per_utc_day() -> None:
    quota = DailyQuota(2)
    assert quota.limit == 2
    quota.acquire(NOW)
    quota.acquire(NOW)
    with pytest.raises(SignalQuotaExceededError, match="2 requests used up") as caught:
        quota.acquire(NOW)
    assert caught.value.resets_at == datetime(2025, 3, 12, tzinfo=UTC)
    assert quota.used(NOW) == 2
    # Midnight in Martinique is not the reset: the quota follows the UTC day.
    martinique = NOW.astimezone(ZoneInfo("America/Martinique"))
    assert quota.remaining(martinique) == 0
    assert quota.remaining(NOW + timedelta(minutes=1)) == 2
    assert quota.used(NOW + timedelta(minutes=1)) == 0


def test_quota_follows_the_server() -> None:
    quota = DailyQuota(100)
    quota.acquire(NOW)
    quota.sync_remaining(NOW, 10)
    assert quota.remaining(NOW) == 10
    quota.sync_remaining(NOW, 50)  # never raises what is left
    assert quota.remaining(NOW) == 10
    quota.sync_remaining(NOW, -3)
    assert quota.remaining(NOW) == 0
    quota.block_until(NOW + timedelta(hours=2))
    later = NOW + timedelta(hours=1)
    assert quota.remaining(later) == 0
    assert quota.resets_at(later) == NOW + timedelta(hours=2)
    assert quota.remaining(NOW + timedelta(hours=2)) == 100
    with pytest.raises(ValueError, match="timezone-aware"):
        quota.block_until(datetime(2025, 3, 12))


@pytest.mark.parametrize("limit", [0, -1, 1.5, "10", None])
def test_quota_limit_is_validated(limit: object) -> None:
    with pytest.raises(SignalConfigError):
        DailyQuota(limit)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("120", 120.0), ("0", 0.0), ("1.5", 1.5), ("-1", None), ("inf", None), ("Wed, 21 Oct 2015 07:28:00 GMT", None)],
)
def test_retry_after(header: str, seconds: float | None) -> None:
    assert retry_after_seconds({"Retry-After": header}) == seconds
    assert retry_after_seconds({}) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2025-03-11T12:00:00Z", datetime(2025, 3, 11, 12, tzinfo=UTC)),
        ("2025-03-11T08:00:00-04:00", datetime(2025, 3, 11, 12, tzinfo=UTC)),
        ("2025-03-11", datetime(2025, 3, 11, tzinfo=UTC)),
        ("  ", None),
        ("", None),
        (None, None),
        (1741694400, None),
        ("11/03/2025", None),
    ],
)
def test_parse_instant(value: object, expected: datetime | None) -> None:
    assert parse_instant(value) == expected
