"""EDF Tempo day colours from RTE's "Tempo Like Supply Contract" API v1, and from entity states.

Contract (data.rte-france.com, API "Tempo Like Supply Contract" v1.1)::

    GET {base}/open_api/tempo_like_supply_contract/v1/tempo_like_calendars
        ?start_date=2025-01-14T00:00:00+01:00&end_date=2025-01-17T00:00:00+01:00
    Authorization: Bearer <token>

    {"tempo_like_calendars": {"start_date": "...", "end_date": "...",
        "values": [{"start_date": "2025-01-16T00:00:00+01:00", "end_date": "2025-01-17T00:00:00+01:00",
                    "value": "RED", "updated_date": "2025-01-15T10:20:00+01:00"}, ...]}}

``start_date`` and ``end_date`` go together (error ``TMPLIKSUPCON_TMPLIKCAL_F01`` otherwise),
the period is at least one day and ends at most on D+2; the values come most recent first.
Tomorrow's colour is published around 10:40 (French time): before that it is simply absent.

The colour of a calendar day D is billed from D 06:00 to D+1 06:00 (French time), which
:meth:`TempoCalendar.color_at` applies; :meth:`~TempoCalendar.today` and
:meth:`~TempoCalendar.tomorrow` answer for calendar days.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from enum import StrEnum
import unicodedata

import aiohttp

from ._http import DEFAULT_TIMEOUT
from .errors import SignalResponseError
from .rte import RTE_BASE_URL, ClientCredentialsToken, RteApi
from .timeutil import PARIS, local_midnight, parse_instant, require_aware

TEMPO_PATH = "/open_api/tempo_like_supply_contract/v1/tempo_like_calendars"
TARIFF_DAY_START = time(6, 0)
"""A Tempo tariff day runs from 06:00 to 06:00 the next day, French time."""


class TempoColor(StrEnum):
    """The colour of a Tempo day, cheapest first."""

    BLUE = "blue"
    WHITE = "white"
    RED = "red"


_API_COLORS = {"BLUE": TempoColor.BLUE, "WHITE": TempoColor.WHITE, "RED": TempoColor.RED}

# Entity states seen in Home Assistant Tempo integrations, after normalisation (casefold, no accents,
# separators as spaces): English and French names, RTE's codes, EDF's colour codes (1 blue, 2 white, 3 red).
_STATE_COLORS: dict[str, TempoColor] = {
    **dict.fromkeys(("blue", "bleu", "tempo bleu", "jour bleu", "1"), TempoColor.BLUE),
    **dict.fromkeys(("white", "blanc", "tempo blanc", "jour blanc", "2"), TempoColor.WHITE),
    **dict.fromkeys(("red", "rouge", "tempo rouge", "jour rouge", "3"), TempoColor.RED),
}


def normalize_state(state: object) -> str:
    """A state as a comparable key: str, casefolded, accents and ``_``/``-`` separators removed."""
    text = str(state)
    for separator in "_-'\u2019":
        text = text.replace(separator, " ")
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return " ".join(text.casefold().split())


def tempo_color_from_state(state: object) -> TempoColor | None:
    """The colour an entity state names ('Bleu', 'blue', 'BLUE', 'TEMPO_ROUGE', '2'...), else None.

    Unknown, unavailable or unrecognised states give None: the caller applies its safe default.
    """
    if state is None or isinstance(state, bool):
        return None
    if isinstance(state, float) and state.is_integer():
        state = int(state)
    return _STATE_COLORS.get(normalize_state(state))


@dataclass(frozen=True, slots=True)
class TempoDay:
    """One day of the calendar."""

    day: date
    color: TempoColor
    updated: datetime | None = None
    fallback: bool | None = None
    """RTE's degraded-mode flag (only with ``fallback_status=true``)."""


@dataclass(frozen=True, slots=True)
class TempoCalendar:
    """Known Tempo colours by calendar day; days RTE has not published yet are absent."""

    days: dict[date, TempoDay] = field(default_factory=dict)
    skipped: int = 0
    """Values of the answer that could not be used (bad date or colour)."""

    def color_of(self, day: date) -> TempoColor | None:
        """The colour of a calendar day, None when unknown."""
        known = self.days.get(day)
        return known.color if known is not None else None

    def today(self, now: datetime) -> TempoColor | None:
        """The colour of today's calendar day (French date of ``now``)."""
        return self.color_of(require_aware(now).astimezone(PARIS).date())

    def tomorrow(self, now: datetime) -> TempoColor | None:
        """The colour of tomorrow (None before RTE publishes it, around 10:40)."""
        return self.color_of(require_aware(now).astimezone(PARIS).date() + timedelta(days=1))

    def color_at(self, now: datetime) -> TempoColor | None:
        """The colour billed at ``now``: day D's colour applies from D 06:00 to D+1 06:00."""
        local = require_aware(now).astimezone(PARIS)
        day = local.date() if local.time() >= TARIFF_DAY_START else local.date() - timedelta(days=1)
        return self.color_of(day)


def decode_tempo_calendars(body: object) -> TempoCalendar:
    """Decode a ``tempo_like_calendars`` answer; raise :class:`SignalResponseError` when it has not that shape.

    Values with a missing or unreadable ``start_date`` or an unknown ``value`` are skipped and
    counted in :attr:`TempoCalendar.skipped`. ``tempo_like_calendars`` is an object in RTE's
    answers; a list of such objects is accepted too.
    """
    if not isinstance(body, dict) or "tempo_like_calendars" not in body:
        raise SignalResponseError("Tempo: the answer has no tempo_like_calendars")
    calendars = body["tempo_like_calendars"]
    blocks: Iterable[object] = calendars if isinstance(calendars, list) else [calendars]
    values: list[object] = []
    for block in blocks:
        if not isinstance(block, dict) or not isinstance(block.get("values"), list):
            raise SignalResponseError("Tempo: tempo_like_calendars has no values list")
        values.extend(block["values"])

    days: dict[date, TempoDay] = {}
    skipped = 0
    for item in values:
        if not isinstance(item, dict):
            skipped += 1
            continue
        start = parse_instant(item.get("start_date"))
        raw = item.get("value")
        color = _API_COLORS.get(raw.strip().upper()) if isinstance(raw, str) else None
        if start is None or color is None:
            skipped += 1
            continue
        # The day is the date RTE wrote (French midnight); an instant elsewhere is brought to Paris.
        day = start.astimezone(PARIS).date()
        fallback = item.get("fallback")
        days[day] = TempoDay(
            day=day,
            color=color,
            updated=parse_instant(item.get("updated_date")),
            fallback=fallback if isinstance(fallback, bool) else None,
        )
    return TempoCalendar(days=dict(sorted(days.items())), skipped=skipped)


class TempoClient:
    """Fetches yesterday's, today's and tomorrow's Tempo colours from RTE."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        client_id: str,
        client_secret: str,
        *,
        base_url: str = RTE_BASE_URL,
        timeout: float = DEFAULT_TIMEOUT,
        token: ClientCredentialsToken | None = None,
    ) -> None:
        self._api = RteApi(
            session, client_id, client_secret, source="Tempo", base_url=base_url, timeout=timeout, token=token
        )
        self.calendar: TempoCalendar | None = None
        """The last calendar fetched."""
        self.last_success: datetime | None = None

    @property
    def api(self) -> RteApi:
        """The authenticated RTE access."""
        return self._api

    async def fetch(self, now: datetime) -> TempoCalendar:
        """Fetch the colours of yesterday, today and tomorrow (French calendar days) and keep them."""
        today = require_aware(now).astimezone(PARIS).date()
        start = local_midnight(today - timedelta(days=1), PARIS)
        end = local_midnight(today + timedelta(days=2), PARIS)  # D+2 is the latest end RTE accepts
        response = await self._api.get(
            TEMPO_PATH,
            now,
            params={"start_date": start.isoformat(timespec="seconds"), "end_date": end.isoformat(timespec="seconds")},
        )
        self.calendar = decode_tempo_calendars(response.body)
        self.last_success = now
        return self.calendar
