"""Constants and small helpers of the uplink protocol v1 (``docs/uplink.md``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

PROTOCOL_VERSION: Final = 1
SOFTWARE: Final = "cariflex/0.1.0"

EVENT_KINDS: Final = frozenset({"inventory", "status", "session_start", "session_update", "session_end"})
COMMAND_NAMES: Final = frozenset(
    {
        "start_session",
        "stop_session",
        "unlock_connector",
        "reserve_now",
        "cancel_reservation",
        "set_charging_profile",
        "clear_charging_profile",
    }
)
COMMAND_RESULTS: Final = frozenset({"accepted", "rejected", "failed", "unknown_charger", "timeout"})

AUTHORIZE_TIMEOUT: Final = 5.0
"""Seconds the site waits for the cloud's ``authorize_result`` before applying the whitelist rules."""

MAX_IN_FLIGHT: Final = 100
MAX_EVENT_DATA_BYTES: Final = 1 << 20
MAX_FRAME_BYTES: Final = 4 << 20

CLOSE_REPLACED: Final = 4000
CLOSE_PROTOCOL_ERROR: Final = 4002


def format_time(at: datetime) -> str:
    """``at`` as ISO 8601 UTC with a ``Z``; a naive datetime is a ``ValueError``."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"naive datetime {at!r}: event times must be aware")
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")
