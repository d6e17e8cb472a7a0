"""The site's grid and tariff signals in Home Assistant: where the strategies read them.

* the ZNI grid signal (EDF-SEI): an entity the user picks, or the territory's EDF open-data
  portal read every 10 minutes by :class:`~.signals.ZniSignalClient`;
* the tariff state: off-peak hours from a weekly schedule or an entity, the Tempo colour and
  the EcoWatt level from entities (decoded by :mod:`.signals`) or from RTE's data portal.

The decoding and the network protocol live in the pure :mod:`.signals` package; this module
only reads Home Assistant states and runs the fetch on Home Assistant's clock.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
import logging
from typing import Any

from homeassistant.const import STATE_UNAVAILABLE, STATE_UNKNOWN
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, State, callback
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.event import async_track_state_change_event, async_track_time_interval
from homeassistant.util import dt as dt_util

from .const import (
    CONF_ECOWATT_ENTITY,
    CONF_OFFPEAK_ENTITY,
    CONF_OFFPEAK_SCHEDULE,
    CONF_RTE_CLIENT_ID,
    CONF_RTE_CLIENT_SECRET,
    CONF_RTE_URL,
    CONF_TEMPO_ENTITY,
    CONF_ZNI_API_KEY,
    CONF_ZNI_DATASET,
    CONF_ZNI_ENABLED,
    CONF_ZNI_ENTITY,
    CONF_ZNI_TERRITORY,
    CONF_ZNI_TERRITORY_FIELD,
    CONF_ZNI_TIME_FIELD,
    CONF_ZNI_URL,
    CONF_ZNI_VALUE_FIELD,
    ECOWATT_FETCH_S,
    TEMPO_FETCH_S,
    ZNI_FETCH_S,
)
from .ems.tariff import EcoWattLevel, TariffState, TempoColour
from .issues import RepairIssue
from .signals import (
    RTE_BASE_URL,
    EcoWattClient,
    OffPeakSchedule,
    ScheduleError,
    SignalAuthError,
    SignalError,
    TempoClient,
    TempoColor,
    ZniSignalClient,
    ecowatt_level_from_state,
    parse_schedule,
    rte_token,
    tempo_color_from_state,
)

_LOGGER = logging.getLogger(__name__)

_ON = {"on", "1", "1.0", "true", "normal", "home", "open"}
_OFF = {"off", "0", "0.0", "false", "constrained", "not_home", "closed"}


def binary_signal(state: State | None) -> int | None:
    """A 0/1 signal from an entity's state (on/1/true = 1, off/0/false = 0), None when unknown."""
    if state is None or state.state in (STATE_UNAVAILABLE, STATE_UNKNOWN):
        return None
    text = state.state.strip().casefold()
    if text in _ON:
        return 1
    if text in _OFF:
        return 0
    return None


def zni_portal_client(hass: HomeAssistant, settings: Mapping[str, Any]) -> ZniSignalClient:
    """The EDF open-data client the settings describe (``SignalConfigError`` names a bad one; no request sent)."""
    return ZniSignalClient(
        async_get_clientsession(hass),
        base_url=str(settings[CONF_ZNI_URL]),
        dataset_id=str(settings[CONF_ZNI_DATASET]).strip(),
        api_key=settings.get(CONF_ZNI_API_KEY) or None,
        time_field=str(settings.get(CONF_ZNI_TIME_FIELD, "horodate")).strip(),
        value_field=str(settings.get(CONF_ZNI_VALUE_FIELD, "signal")).strip(),
        territory=str(settings.get(CONF_ZNI_TERRITORY) or "").strip() or None,
        territory_field=str(settings.get(CONF_ZNI_TERRITORY_FIELD) or "").strip() or None,
    )


class ZniSignal:
    """The ZNI grid signal of a site: from an entity, or from the EDF open-data portal."""

    def __init__(self, hass: HomeAssistant, settings: Mapping[str, Any]) -> None:
        self.hass = hass
        self.enabled = bool(settings.get(CONF_ZNI_ENABLED))
        self.entity_id: str | None = settings.get(CONF_ZNI_ENTITY) or None
        self.client: ZniSignalClient | None = None
        self.last_error: str | None = None
        self.last_fetch: datetime | None = None
        self._settings = settings

    @property
    def source(self) -> str:
        """``entity``, ``portal`` or ``none``."""
        if self.entity_id:
            return "entity"
        return "portal" if self.client is not None else "none"

    def start(self, on_unload: Callable[[Callable[[], None]], None], on_change: Callable[[], None]) -> None:
        """Follow the entity (``on_change`` at each change), or read the portal every 10 minutes."""
        settings = self._settings
        if self.enabled and self.entity_id:

            @callback
            def _changed(_event: Event[EventStateChangedData]) -> None:
                on_change()

            on_unload(async_track_state_change_event(self.hass, [self.entity_id], _changed))
        if not self.enabled or self.entity_id or not (settings.get(CONF_ZNI_URL) and settings.get(CONF_ZNI_DATASET)):
            return
        try:
            self.client = zni_portal_client(self.hass, settings)
        except SignalError as err:
            self.last_error = str(err)
            _LOGGER.error("ZNI signal portal misconfigured: %s (the safe default applies)", err)
            return
        on_unload(async_track_time_interval(self.hass, self.async_fetch, timedelta(seconds=ZNI_FETCH_S)))
        self.hass.async_create_background_task(self.async_fetch(), "cariflex ZNI signal first fetch")

    async def async_fetch(self, _now: datetime | None = None) -> None:
        """Read the portal once (errors are logged and kept; the last slots stay usable)."""
        if self.client is None:
            return
        now = datetime.now().astimezone()
        try:
            await self.client.refresh(now)
        except SignalError as err:
            if self.last_error != str(err):
                _LOGGER.warning("ZNI signal portal: %s", err)
            self.last_error = str(err)
        else:
            self.last_error = None
            self.last_fetch = now

    def value(self, now: datetime) -> int | None:
        """1 (normal), 0 (constrained), None (unknown: the caller applies the safe default)."""
        if not self.enabled:
            return None
        if self.entity_id:
            return binary_signal(self.hass.states.get(self.entity_id))
        if self.client is None:
            return None
        return self.client.value_at(now)

    def next_change(self, now: datetime) -> tuple[float, int] | None:
        """The next announced change of the portal's signal (time, value), if any."""
        if self.client is None:
            return None
        current = self.client.value_at(now)
        for slot in self.client.forecast(now):
            if slot.start > now and slot.value != current:
                return slot.start.timestamp(), slot.value
        return None


class TariffSignals:
    """The tariff state of this moment: off-peak hours, Tempo colour, EcoWatt level.

    Tempo and EcoWatt come from the entity the user picked or, with RTE credentials and no
    entity, from RTE's data portal (:class:`~.signals.TempoClient` every hour,
    :class:`~.signals.EcoWattClient` every 30 minutes). Refused credentials raise a repair
    issue; other errors are logged once and the last answer stays in use.
    """

    def __init__(self, hass: HomeAssistant, settings: Mapping[str, Any], entry_id: str = "") -> None:
        self.hass = hass
        self.offpeak_entity: str | None = settings.get(CONF_OFFPEAK_ENTITY) or None
        self.tempo_entity: str | None = settings.get(CONF_TEMPO_ENTITY) or None
        self.ecowatt_entity: str | None = settings.get(CONF_ECOWATT_ENTITY) or None
        self.schedule: OffPeakSchedule | None = None
        if text := settings.get(CONF_OFFPEAK_SCHEDULE):
            try:
                self.schedule = parse_schedule(str(text), hass.config.time_zone)
            except ScheduleError as err:  # the options flow checks it; an old value may not parse
                _LOGGER.error("Off-peak schedule ignored: %s", err)
        self.tempo_client: TempoClient | None = None
        self.ecowatt_client: EcoWattClient | None = None
        self.errors: dict[str, str] = {}
        """The last error of each built-in client (``tempo``, ``ecowatt``), for diagnostics."""
        self._settings = settings
        self._auth_issue = RepairIssue(hass, entry_id, "rte_auth_failed", ir.IssueSeverity.ERROR)
        self._on_change: Callable[[], None] | None = None

    @property
    def rte_configured(self) -> bool:
        """Whether RTE credentials are set (the built-in clients replace missing entities)."""
        return bool(self._settings.get(CONF_RTE_CLIENT_ID) and self._settings.get(CONF_RTE_CLIENT_SECRET))

    def start(self, on_unload: Callable[[Callable[[], None]], None], on_change: Callable[[], None]) -> None:
        """Start the built-in RTE clients (for the signals without an entity); ``on_change`` after each answer."""
        if not self.rte_configured or (self.tempo_entity and self.ecowatt_entity):
            return
        self._on_change = on_change
        session = async_get_clientsession(self.hass)
        client_id = str(self._settings[CONF_RTE_CLIENT_ID])
        secret = str(self._settings[CONF_RTE_CLIENT_SECRET])
        base_url = str(self._settings.get(CONF_RTE_URL) or RTE_BASE_URL)
        try:
            token = rte_token(session, client_id, secret, base_url=base_url)  # one application, one token
            if not self.tempo_entity:
                self.tempo_client = TempoClient(session, client_id, secret, base_url=base_url, token=token)
            if not self.ecowatt_entity:
                self.ecowatt_client = EcoWattClient(session, client_id, secret, base_url=base_url, token=token)
        except SignalError as err:  # the options flow checks them; an old value may not pass
            self.tempo_client = self.ecowatt_client = None
            _LOGGER.error("RTE data portal misconfigured: %s", err)
            return
        if self.tempo_client is not None:
            on_unload(async_track_time_interval(self.hass, self.async_fetch_tempo, timedelta(seconds=TEMPO_FETCH_S)))
            self.hass.async_create_background_task(self.async_fetch_tempo(), "cariflex Tempo first fetch")
        if self.ecowatt_client is not None:
            on_unload(
                async_track_time_interval(self.hass, self.async_fetch_ecowatt, timedelta(seconds=ECOWATT_FETCH_S))
            )
            self.hass.async_create_background_task(self.async_fetch_ecowatt(), "cariflex EcoWatt first fetch")

    async def async_fetch_tempo(self, _now: datetime | None = None) -> None:
        """Read the Tempo calendar (yesterday, today, tomorrow) once."""
        if self.tempo_client is not None:
            await self._fetch("tempo", self.tempo_client.fetch)

    async def async_fetch_ecowatt(self, _now: datetime | None = None) -> None:
        """Read the EcoWatt signals once (never more often than RTE allows)."""
        if self.ecowatt_client is not None:
            await self._fetch("ecowatt", self.ecowatt_client.fetch)

    async def _fetch(self, name: str, fetch: Callable[[datetime], Awaitable[object]]) -> None:
        try:
            await fetch(dt_util.utcnow())
        except SignalAuthError as err:
            self._failed(name, err)
            self._auth_issue.set(True)
        except SignalError as err:
            self._failed(name, err)
        else:
            self.errors.pop(name, None)
            if not self.errors:
                self._auth_issue.set(False)
            if self._on_change is not None:
                self._on_change()

    def _failed(self, name: str, err: SignalError) -> None:
        if self.errors.get(name) != str(err):
            _LOGGER.warning("RTE %s: %s (the last known value stays in use)", name, err)
        self.errors[name] = str(err)

    def tempo_tomorrow(self, now: datetime) -> TempoColour | None:
        """Tomorrow's colour from the built-in client (None before RTE publishes it, or without the client)."""
        calendar = None if self.tempo_client is None else self.tempo_client.calendar
        color = None if calendar is None else calendar.tomorrow(now)
        return None if color is None else color.value  # type: ignore[return-value]

    def state(self, now: datetime) -> TariffState:
        """The decoded signals (None where a signal is not configured or has no value)."""
        offpeak: bool | None = None
        if self.offpeak_entity:
            value = binary_signal(self.hass.states.get(self.offpeak_entity))
            offpeak = None if value is None else value == 1
        elif self.schedule is not None:
            offpeak = self.schedule.is_offpeak(now)
        return TariffState(is_offpeak=offpeak, tempo=self._tempo(now), ecowatt=self._ecowatt(now))

    def _tempo(self, now: datetime) -> TempoColour | None:
        color: TempoColor | None = None
        if self.tempo_entity:
            if (state := self.hass.states.get(self.tempo_entity)) is not None:
                color = tempo_color_from_state(state.state)
        elif self.tempo_client is not None and self.tempo_client.calendar is not None:
            color = self.tempo_client.calendar.color_at(now)
        return None if color is None else color.value  # type: ignore[return-value]

    def _ecowatt(self, now: datetime) -> EcoWattLevel | None:
        level: int | None = None
        if self.ecowatt_entity:
            if (state := self.hass.states.get(self.ecowatt_entity)) is not None:
                level = ecowatt_level_from_state(state.state)
        elif self.ecowatt_client is not None and self.ecowatt_client.forecast is not None:
            level = self.ecowatt_client.forecast.level_at(now)
        return None if level is None else max(1, min(3, int(level)))  # type: ignore[return-value]
