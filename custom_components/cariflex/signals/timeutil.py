"""Small time helpers shared by the signal sources."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

PARIS = ZoneInfo("Europe/Paris")
"""RTE publishes Tempo and EcoWatt days in French legal time."""


def require_aware(moment: datetime, name: str = "now") -> datetime:
    """``moment`` itself, or :class:`ValueError` when it has no time zone."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got {moment!r}")
    return moment


def parse_instant(value: object) -> datetime | None:
    """An ISO 8601 string as an aware datetime (naive means UTC), or None when it is not one."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    """00:00 of ``day`` in ``tz`` (midnight exists in every zone we serve)."""
    return datetime.combine(day, time(), tz)
