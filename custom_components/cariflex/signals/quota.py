"""A daily request quota, counted per UTC day, with no clock of its own."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from .errors import SignalConfigError, SignalQuotaExceededError
from .timeutil import require_aware


class DailyQuota:
    """At most ``limit`` requests per UTC day: :meth:`acquire` counts one or refuses.

    The server may know better: :meth:`sync_remaining` lowers what is left to what it reports
    (``X-RateLimit-Remaining``), and :meth:`block_until` closes the quota until a given instant
    (after an HTTP 429).
    """

    def __init__(self, limit: int = 10_000) -> None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise SignalConfigError(f"the daily quota must be a positive integer, not {limit!r}", field="daily_quota")
        self._limit = limit
        self._day: date | None = None
        self._used = 0
        self._blocked_until: datetime | None = None

    @property
    def limit(self) -> int:
        """Requests allowed per UTC day."""
        return self._limit

    def _roll(self, now: datetime) -> None:
        day = require_aware(now).astimezone(UTC).date()
        if day != self._day:
            self._day, self._used = day, 0

    def used(self, now: datetime) -> int:
        """Requests counted on the UTC day of ``now``."""
        self._roll(now)
        return self._used

    def remaining(self, now: datetime) -> int:
        """Requests still allowed on the UTC day of ``now`` (0 while blocked)."""
        self._roll(now)
        if self._blocked_until is not None and now < self._blocked_until:
            return 0
        return max(0, self._limit - self._used)

    def resets_at(self, now: datetime) -> datetime:
        """When requests are allowed again: the end of a block, else the next UTC midnight."""
        if self._blocked_until is not None and now < self._blocked_until:
            return self._blocked_until
        return datetime.combine(now.astimezone(UTC).date() + timedelta(days=1), time(), UTC)

    def acquire(self, now: datetime, *, source: str = "signal") -> None:
        """Count one request, or raise :class:`SignalQuotaExceededError` without counting."""
        if self.remaining(now) <= 0:
            resets = self.resets_at(now)
            raise SignalQuotaExceededError(
                f"{source}: daily quota of {self._limit} requests used up; next request allowed at {resets.isoformat()}",
                resets_at=resets,
            )
        self._used += 1

    def sync_remaining(self, now: datetime, remaining: int) -> None:
        """Lower what is left today to ``remaining`` when the server reports less."""
        self._roll(now)
        self._used = max(self._used, self._limit - max(0, remaining))

    def block_until(self, until: datetime) -> None:
        """Refuse every request until ``until`` (the server said the quota is used up)."""
        self._blocked_until = require_aware(until)
