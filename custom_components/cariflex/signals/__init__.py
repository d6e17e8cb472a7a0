"""Grid and tariff signals for the energy manager: pure Python, no Home Assistant, no clock.

* :mod:`.zni`: :class:`ZniSignalClient`, the EDF-SEI binary grid signal of a ZNI territory
  (Opendatasoft records API, API key, daily quota guard, 48 h of slots plus the forecast);
* :mod:`.tempo`: :class:`TempoClient` (RTE Tempo calendar, OAuth2) and
  :func:`tempo_color_from_state` for an existing Home Assistant entity;
* :mod:`.ecowatt`: :class:`EcoWattClient` (RTE EcoWatt v5, OAuth2) and
  :func:`ecowatt_level_from_state`;
* :mod:`.schedule`: :class:`OffPeakSchedule`, heures pleines / heures creuses in local time;
* :mod:`.errors`: the error tree (:class:`SignalError` and its children).

Network clients take the caller's ``aiohttp.ClientSession`` (Home Assistant's shared one) and
every time-dependent call takes ``now``, an aware datetime.
"""

from __future__ import annotations

from .ecowatt import (
    EcoWattClient,
    EcoWattDay,
    EcoWattForecast,
    EcoWattHour,
    EcoWattLevel,
    decode_ecowatt_signals,
    ecowatt_level_from_state,
)
from .errors import (
    ScheduleError,
    SignalAuthError,
    SignalConfigError,
    SignalConnectionError,
    SignalError,
    SignalQuotaExceededError,
    SignalRateLimitError,
    SignalResponseError,
)
from .quota import DailyQuota
from .rte import RTE_BASE_URL, ClientCredentialsToken, RteApi, rte_token
from .schedule import OffPeakSchedule, parse_schedule
from .tempo import TempoCalendar, TempoClient, TempoColor, TempoDay, decode_tempo_calendars, tempo_color_from_state
from .zni import SignalSlot, ZniSignalClient

__all__ = [
    "RTE_BASE_URL",
    "ClientCredentialsToken",
    "DailyQuota",
    "EcoWattClient",
    "EcoWattDay",
    "EcoWattForecast",
    "EcoWattHour",
    "EcoWattLevel",
    "OffPeakSchedule",
    "RteApi",
    "ScheduleError",
    "SignalAuthError",
    "SignalConfigError",
    "SignalConnectionError",
    "SignalError",
    "SignalQuotaExceededError",
    "SignalRateLimitError",
    "SignalResponseError",
    "SignalSlot",
    "TempoCalendar",
    "TempoClient",
    "TempoColor",
    "TempoDay",
    "ZniSignalClient",
    "decode_ecowatt_signals",
    "decode_tempo_calendars",
    "ecowatt_level_from_state",
    "parse_schedule",
    "rte_token",
    "tempo_color_from_state",
]
