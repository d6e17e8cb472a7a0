"""RTE EcoWatt signals (API v5) per hour and per day, and from entity states.

Contract (data.rte-france.com, API "Ecowatt" v5.0)::

    GET {base}/open_api/ecowatt/v5/signals
    Authorization: Bearer <token>

    {"signals": [{"GenerationFichier": "2022-12-11T23:00:00+01:00", "jour": "2022-12-12T00:00:00+01:00",
                  "dvalue": 2, "message": "...", "values": [{"pas": 0, "hvalue": 1}, ..., {"pas": 23, "hvalue": 2}]},
                 ...]}

Four days (D to D+3), in no guaranteed order. ``pas`` is the hour since the day's local midnight
(0 = 00:00-01:00); ``hvalue`` is 0 (green, low-carbon production), 1 (green), 2 (orange:
strained system) or 3 (red: cuts likely); ``dvalue`` (the day) is 1, 2 or 3. RTE allows one
call every 15 minutes and answers HTTP 429 (with ``Retry-After``) beyond: :class:`EcoWattClient`
never calls sooner and serves its last forecast meanwhile.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import IntEnum
import math

import aiohttp

from ._http import DEFAULT_TIMEOUT
from .errors import SignalRateLimitError, SignalResponseError
from .rte import RTE_BASE_URL, ClientCredentialsToken, RteApi
from .tempo import normalize_state
from .timeutil import PARIS, local_midnight, parse_instant, require_aware

ECOWATT_PATH = "/open_api/ecowatt/v5/signals"
MIN_INTERVAL = timedelta(minutes=15)
"""RTE accepts one call to the signals every 15 minutes."""


class EcoWattLevel(IntEnum):
    """An EcoWatt level; ``GREEN_LOW_CARBON`` (0) exists for hours only."""

    GREEN_LOW_CARBON = 0
    GREEN = 1
    ORANGE = 2
    RED = 3

    @property
    def color(self) -> str:
        """``green``, ``orange`` or ``red`` (both greens are green)."""
        return ("green", "green", "orange", "red")[self]


# Entity states after normalize_state(): numbers, colour names (en/fr), and the option labels of
# the "RTE Ecowatt" custom integration for Home Assistant.
_STATE_LEVELS: dict[str, EcoWattLevel] = {
    "0": EcoWattLevel.GREEN_LOW_CARBON,
    "situation normale electricite faible emission de co2": EcoWattLevel.GREEN_LOW_CARBON,
    "1": EcoWattLevel.GREEN,
    "green": EcoWattLevel.GREEN,
    "vert": EcoWattLevel.GREEN,
    "situation normale": EcoWattLevel.GREEN,
    "2": EcoWattLevel.ORANGE,
    "orange": EcoWattLevel.ORANGE,
    "risques de coupures d electricite": EcoWattLevel.ORANGE,
    "3": EcoWattLevel.RED,
    "red": EcoWattLevel.RED,
    "rouge": EcoWattLevel.RED,
    "coupures d electricite programmees": EcoWattLevel.RED,
    "coupure d electricite en cours": EcoWattLevel.RED,
}


def ecowatt_level_from_state(state: object) -> EcoWattLevel | None:
    """The level an entity state names ('green', 'Orange', 'rouge', '2', 2.0...), else None."""
    if state is None or isinstance(state, bool):
        return None
    if isinstance(state, float) and state.is_integer():
        state = int(state)
    text = normalize_state(state)
    if text.endswith(".0") and text[:-2].isdigit():
        text = text[:-2]
    return _STATE_LEVELS.get(text)


@dataclass(frozen=True, slots=True)
class EcoWattHour:
    """One hour of signal, ``[start, end)`` in UTC."""

    start: datetime
    end: datetime
    level: EcoWattLevel


@dataclass(frozen=True, slots=True)
class EcoWattDay:
    """One day of signal: its level, RTE's message and its hours."""

    day: date
    level: EcoWattLevel | None
    message: str
    generated: datetime | None
    hours: tuple[EcoWattHour, ...]


@dataclass(frozen=True, slots=True)
class EcoWattForecast:
    """The days RTE sent, in date order."""

    days: tuple[EcoWattDay, ...] = ()
    skipped: int = 0
    """Days or hours of the answer that could not be used."""

    def day_level(self, day: date) -> EcoWattLevel | None:
        """The level of a (French) calendar day, None when unknown."""
        return next((item.level for item in self.days if item.day == day), None)

    def level_at(self, now: datetime) -> EcoWattLevel | None:
        """The hourly level at ``now``, None when no hour covers it."""
        require_aware(now)
        for hour in self.hours():
            if hour.start <= now < hour.end:
                return hour.level
        return None

    def hours(self, since: datetime | None = None) -> list[EcoWattHour]:
        """Every hour in time order, or only those still running or to come at ``since``."""
        hours = sorted((hour for day in self.days for hour in day.hours), key=lambda hour: hour.start)
        return hours if since is None else [hour for hour in hours if hour.end > require_aware(since, "since")]


def _int_level(value: object, allowed: range) -> EcoWattLevel | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    return EcoWattLevel(value) if isinstance(value, int) and value in allowed else None


def _day_start(raw: object) -> datetime | None:
    """Local midnight of ``jour``: RTE writes ``2022-12-12T00:00:00+01:00``; a bare date is French."""
    if not isinstance(raw, str):
        return None
    if len(raw.strip()) == 10:
        try:
            return local_midnight(date.fromisoformat(raw.strip()), PARIS)
        except ValueError:
            return None
    return parse_instant(raw)


def decode_ecowatt_signals(body: object) -> EcoWattForecast:
    """Decode a ``signals`` answer; raise :class:`SignalResponseError` when it has not that shape.

    Days without a readable ``jour``, and hours with a ``pas`` outside 0..24 (or past the end
    of a 23-hour day) or an ``hvalue`` outside 0..3, are skipped and counted. The hourly list is ``values`` in RTE's answers;
    ``hvalues`` is accepted too.
    """
    if not isinstance(body, dict) or not isinstance(body.get("signals"), list):
        raise SignalResponseError("EcoWatt: the answer has no signals list")
    days: dict[date, EcoWattDay] = {}
    skipped = 0
    for item in body["signals"]:
        start = _day_start(item.get("jour")) if isinstance(item, dict) else None
        if not isinstance(item, dict) or start is None:
            skipped += 1
            continue
        day = start.astimezone(PARIS).date()
        day_end = local_midnight(day + timedelta(days=1), PARIS)
        hours: dict[int, EcoWattHour] = {}
        raw_hours = item.get("values", item.get("hvalues"))
        for raw in raw_hours if isinstance(raw_hours, list) else []:
            pas = raw.get("pas") if isinstance(raw, dict) else None
            level = _int_level(raw.get("hvalue"), range(4)) if isinstance(raw, dict) else None
            if isinstance(pas, bool) or not isinstance(pas, int) or not 0 <= pas <= 24 or level is None:
                skipped += 1
                continue
            # Hours since local midnight, in absolute time: a DST day has 23 or 25 of them, and an
            # hour that would start on the next day is not this day's.
            begin = start.astimezone(UTC) + timedelta(hours=pas)
            if begin >= day_end:
                skipped += 1
                continue
            hours[pas] = EcoWattHour(start=begin, end=begin + timedelta(hours=1), level=level)
        message = item.get("message")
        days[day] = EcoWattDay(
            day=day,
            level=_int_level(item.get("dvalue"), range(1, 4)),
            message=message if isinstance(message, str) else "",
            generated=parse_instant(item.get("GenerationFichier")),
            hours=tuple(hours[pas] for pas in sorted(hours)),
        )
    return EcoWattForecast(days=tuple(days[day] for day in sorted(days)), skipped=skipped)


class EcoWattClient:
    """Fetches the EcoWatt signals, never more often than RTE allows."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        client_id: str,
        client_secret: str,
        *,
        base_url: str = RTE_BASE_URL,
        timeout: float = DEFAULT_TIMEOUT,
        token: ClientCredentialsToken | None = None,
        min_interval: timedelta = MIN_INTERVAL,
    ) -> None:
        self._api = RteApi(
            session, client_id, client_secret, source="EcoWatt", base_url=base_url, timeout=timeout, token=token
        )
        self._min_interval = min_interval
        self._last_request: datetime | None = None
        self._blocked_until: datetime | None = None
        self.forecast: EcoWattForecast | None = None
        """The last forecast fetched."""
        self.last_success: datetime | None = None

    @property
    def api(self) -> RteApi:
        """The authenticated RTE access."""
        return self._api

    def next_request_at(self) -> datetime | None:
        """The earliest instant a request will be sent (None: at once)."""
        interval_end = self._last_request + self._min_interval if self._last_request is not None else None
        return max((moment for moment in (interval_end, self._blocked_until) if moment is not None), default=None)

    async def fetch(self, now: datetime) -> EcoWattForecast:
        """The signals: fetched, or the last forecast while RTE's minimum interval runs.

        Raises :class:`SignalRateLimitError` without sending when the interval runs and no
        forecast is known yet, and when RTE answers 429 (its ``Retry-After`` is then honoured).
        """
        now = require_aware(now).astimezone(UTC)
        wait_until = self.next_request_at()
        if wait_until is not None and now < wait_until:
            if self.forecast is not None:
                return self.forecast
            wait = (wait_until - now).total_seconds()
            raise SignalRateLimitError(
                f"EcoWatt: next request allowed in {wait:.0f} s (RTE allows one every 15 minutes)",
                status=None,
                retry_after=wait,
            )
        self._last_request = now
        try:
            response = await self._api.get(ECOWATT_PATH, now)
        except SignalRateLimitError as err:
            if err.retry_after is not None:
                self._blocked_until = now + timedelta(seconds=err.retry_after)
            raise
        self.forecast = decode_ecowatt_signals(response.body)
        self.last_success = now
        return self.forecast
