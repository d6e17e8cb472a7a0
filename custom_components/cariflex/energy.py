"""The energy manager in Home Assistant: the EMS cycle of a site, fed by its meter and chargers.

Each cycle (every ``ems_cycle_s`` seconds, and at once when a session starts or ends):
read the grid meter (any Home Assistant power sensor), build the site tree, let the pure
regulator (``ems/``) share the site limit among the running sessions, and send the setpoints
that changed to the chargers through the protocol-neutral charger model (TxProfile or
TxDefaultProfile in A or W, as each charger takes it). A meter that is missing or stale is
replaced by a conservative fallback load, with a repair issue, until it comes back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
import logging
import math
import time
from typing import TYPE_CHECKING, Any, Literal

from homeassistant.const import STATE_ON, STATE_UNAVAILABLE, STATE_UNKNOWN, UnitOfPower
from homeassistant.core import HomeAssistant, State, callback
from homeassistant.helpers.debounce import Debouncer
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator
from homeassistant.util import dt as dt_util

from .const import (
    CONF_BATTERY_FOR_EV,
    CONF_BATTERY_POWER_ENTITY,
    CONF_BATTERY_PRIORITY_SOC,
    CONF_BATTERY_SOC_ENTITY,
    CONF_BOARD,
    CONF_BOARD_CURRENT,
    CONF_BOARD_METER,
    CONF_BOARD_POWER,
    CONF_EMS_CYCLE,
    CONF_EMS_STRATEGY,
    CONF_GENSET_ENTITY,
    CONF_GENSET_POWER,
    CONF_GRID_POWER_ENTITY,
    CONF_MAIN_BREAKER,
    CONF_METER_FALLBACK,
    CONF_MIN_CURRENT,
    CONF_PARENT,
    CONF_PHASE,
    CONF_PHASE_SWITCHING,
    CONF_PHASES,
    CONF_PRIORITY,
    CONF_PV_DISABLE_DELAY,
    CONF_PV_ENABLE_DELAY,
    CONF_PV_FORECAST_ENTITY,
    CONF_PV_POWER_ENTITY,
    CONF_PV_RESERVE,
    CONF_SUBSCRIBED_POWER,
    CONF_TARIFF_WEEKEND,
    CONF_VOLTAGE,
    CONF_ZNI_FRACTION,
    CONF_ZNI_MAX_SESSIONS,
    CONF_ZNI_SAFE_DEFAULT,
    DEFAULT_EMS_CYCLE,
    DEFAULT_MIN_CURRENT,
    DEFAULT_PHASES,
    DEFAULT_SUBSCRIBED_POWER,
    DEFAULT_VOLTAGE,
    DOMAIN,
    GENSET_RUNNING_W,
    METER_JUMP_W,
    METER_TIMEOUT_S,
    ROLE_BATTERY,
    ROLE_GENSET,
    ROLE_PV,
    TARIFF_WEEKEND_SAME,
    ZNI_EVIDENCE_LIMIT,
)
from .ems.allocator import Session as EmsSession, Strategy
from .ems.pv import ChargeMode, PvConfig
from .ems.regulator import Regulator, RegulatorConfig, RegulatorResult
from .ems.strategy import (
    Rule,
    SessionSettings,
    SiteInputs as StrategyInputs,
    StrategyConfig,
    StrategyEngine,
    StrategyResult,
)
from .ems.tariff import TariffOption, TariffPolicy, TariffState
from .ems.tree import Charger as EmsCharger, Node, NodeKind, PerPhase, Phase, SiteTree, per_phase
from .ems.zni import ZniConfig, ZniSource
from .issues import RepairIssue
from .modbus import Quantity
from .ocpp.errors import CallError, CallTimeoutError
from .ocpp.model import Connector, ConnectorStatus
from .planning import ChargePlanner
from .signal_sources import TariffSignals, ZniSignal

if TYPE_CHECKING:
    from .coordinator import ChargerCoordinator
    from .runtime import CariflexConfigEntry, CariflexRuntime

_LOGGER = logging.getLogger(__name__)

SITE_NODE = "site"
RAMP_DELAY_S = 3.0  # how long cars take to follow a lower setpoint before others may go up
OFFLINE_GRACE_S = 300.0  # how long a charger that dropped off while charging is assumed to still draw
_PHASE_KEYS = ("L1", "L2", "L3")
_KW_UNITS = {UnitOfPower.KILO_WATT, "kW"}
REFUSAL_RETRY_S = 10.0  # a refused setpoint is tried again after 10 s, then 20, 40... (one charger, one connector)
REFUSAL_RETRY_MAX_S = 300.0
REFUSALS_FOR_ISSUE = 3  # refusals in a row before the installer is told (a repair issue per charger)


@dataclass(slots=True)
class _Refusal:
    """A connector whose charger refused (or did not answer) its last setpoints."""

    count: int
    retry_at: float  # clock seconds
    answer: str


def split_net_load(meter_total: PerPhase, ev_draws: Iterable[PerPhase]) -> tuple[PerPhase, PerPhase]:
    """A meter's reading without the cars below it, as (load, production) per phase, both >= 0.

    A meter that also sees local production (PV, a discharging battery) reads less, or
    negative when the site exports: that production is what the chargers may use on top of
    the node's limit (seed 004 §4.10: available = limit - consumption + production).
    """
    net = list(meter_total)
    for draw in ev_draws:
        for index in range(3):
            net[index] -= draw[index]
    load = (max(net[0], 0.0), max(net[1], 0.0), max(net[2], 0.0))
    production = (max(-net[0], 0.0), max(-net[1], 0.0), max(-net[2], 0.0))
    return load, production


class EmsMode(StrEnum):
    """Whether Cariflex steers the chargers."""

    OFF = "off"  # chargers unmanaged: no limit is sent (our limits are removed when turned off)
    ON = "on"


class EmsStatus(StrEnum):
    """A one-word summary of the last cycle."""

    OFF = "off"
    IDLE = "idle"  # no session to share power between
    OK = "ok"  # every session got what it can take
    LIMITED = "limited"  # a limit of the site bound at least one session
    FALLBACK = "fallback"  # the meter is missing or stale: conservative fallback load


@dataclass(frozen=True, slots=True)
class SiteInputs:
    """The site's other measurements in one cycle (None: not configured or no value).

    Each comes from the Home Assistant entity chosen in the options or, when none is chosen,
    from the Modbus device with the matching role. ``battery_w`` is positive while the
    battery discharges into the site.
    """

    pv_w: float | None = None
    battery_w: float | None = None
    battery_soc: float | None = None
    genset_running: bool = False


@dataclass(frozen=True, slots=True)
class EnergyState:
    """What the entities show after a cycle."""

    mode: EmsMode
    status: EmsStatus
    result: RegulatorResult | None = None
    meter_w: float | None = None
    inputs: SiteInputs = SiteInputs()
    strategy: StrategyResult | None = None
    tariff: TariffState = field(default_factory=TariffState)
    surplus_source: str | None = None  # the grid reading the PV surplus came from: meter, inverter, forecast

    def target(self, session_id: str) -> str | None:
        """The strategy's reason for a session this cycle (ZNI cap, PV waiting...), if it ran."""
        if self.strategy is None or session_id not in self.strategy.targets:
            return None
        return self.strategy.targets[session_id].reason

    def setpoint(self, session_id: str) -> float | None:
        """The current given to one session (None when it has none)."""
        if self.result is None or session_id not in self.result.setpoints:
            return None
        return self.result.setpoints[session_id].setpoint_a

    def reason(self, session_id: str) -> str | None:
        """Why a session got its current."""
        if self.result is None or session_id not in self.result.setpoints:
            return None
        return self.result.setpoints[session_id].reason


_PHASE_COUNTS: dict[int, Literal[1, 3]] = {1: 1, 3: 3}


def session_id(charger_id: str, connector_id: int) -> str:
    """The EMS id of a connector (a charger leaf of the site tree)."""
    return f"{charger_id}/{connector_id}"


def charger_of(key: str) -> str:
    """The charger of a connector's EMS id (:func:`session_id`)."""
    return key.rpartition("/")[0]


def read_number(state: State | None) -> float | None:
    """A sensor's numeric value, None when it has none (unavailable, unknown, not a number)."""
    if state is None or state.state in (STATE_UNAVAILABLE, STATE_UNKNOWN):
        return None
    try:
        value = float(state.state)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def read_power_w(state: State | None) -> float | None:
    """A power sensor's value in W (kW converted), None when it has no number."""
    value = read_number(state)
    if value is None or state is None:
        return None
    unit = state.attributes.get("unit_of_measurement")
    return value * 1000 if unit in _KW_UNITS else value


def reported_at(state: State) -> float:
    """When a sensor last reported (``last_reported`` also moves when the value repeats)."""
    moment = getattr(state, "last_reported", None) or state.last_updated
    return float(moment.timestamp())


class EnergyCoordinator(DataUpdateCoordinator[EnergyState]):
    """Runs the EMS cycle of one site."""

    def __init__(self, hass: HomeAssistant, entry: CariflexConfigEntry, runtime: CariflexRuntime) -> None:
        cycle = float(runtime.setting(CONF_EMS_CYCLE, DEFAULT_EMS_CYCLE))
        super().__init__(
            hass,
            _LOGGER,
            config_entry=entry,
            name=f"{DOMAIN} energy manager",
            update_interval=timedelta(seconds=cycle),
            # Session starts and stops ask for a cycle; several in a burst make one.
            request_refresh_debouncer=Debouncer(hass, _LOGGER, cooldown=0.2, immediate=True),
        )
        self.runtime = runtime
        self.mode = EmsMode(runtime.ems_mode)
        self.regulator = Regulator(
            RegulatorConfig(
                strategy=Strategy(runtime.setting(CONF_EMS_STRATEGY, Strategy.EQUAL)),
                voltage_v=self.voltage,
                step_a=1.0,
                meter_timeout_s=METER_TIMEOUT_S,
            )
        )
        settings = {**entry.data, **entry.options}
        self.zni = ZniSignal(hass, settings)
        self.tariffs = TariffSignals(hass, settings, entry.entry_id)
        weekend = str(settings.get(CONF_TARIFF_WEEKEND) or TARIFF_WEEKEND_SAME)
        self.weekend_policy = None if weekend == TARIFF_WEEKEND_SAME else TariffPolicy(weekend)
        """The site's tariff policy on Saturdays and Sundays (None: each charger keeps its own)."""
        self.strategy = StrategyEngine(self._strategy_config())
        self.planning = ChargePlanner(hass, self)
        self._zni_capped: set[str] = set()  # connectors the ZNI signal caps while the manager is off
        self._sending: set[str] = set()
        self._applied_at: dict[str, float] = {}  # when each connector's latest setpoint was accepted
        self._desired: dict[str, tuple[float | None, int | None]] = {}  # (A, phases when switched)
        self._refused: dict[str, _Refusal] = {}
        self._refusal_issues: dict[str, RepairIssue] = {}  # per charger
        self._entry_id = entry.entry_id
        self._clock: Callable[[], float] = time.monotonic
        self._meter_issue = RepairIssue(hass, entry.entry_id, "meter_unavailable")
        self._issues = {key: RepairIssue(hass, entry.entry_id, key) for key in ("zni_unavailable", "pv_data_lost")}
        self.data = EnergyState(self.mode, EmsStatus.OFF if self.mode is EmsMode.OFF else EmsStatus.IDLE)

    # ------------------------------------------------------------ settings
    @property
    def voltage(self) -> float:
        """Phase-to-neutral voltage of the site."""
        return float(self.runtime.setting(CONF_VOLTAGE, DEFAULT_VOLTAGE))

    @property
    def phases(self) -> int:
        """Phases of the grid connection."""
        return int(self.runtime.setting(CONF_PHASES, DEFAULT_PHASES))

    def switches_phases(self, coordinator: ChargerCoordinator) -> bool:
        """Whether a charger switches between one and three phases (its option, on three phases)."""
        return bool(coordinator.settings.get(CONF_PHASE_SWITCHING)) and self.charger_phases(coordinator) == 3

    def phase_switching(self, key: str) -> bool:
        """Whether the charger of a connector key switches phases."""
        coordinator = self.runtime.coordinators.get(key.rsplit("/", 1)[0])
        return coordinator is not None and self.switches_phases(coordinator)

    def charger_phases(self, coordinator: ChargerCoordinator) -> Literal[1, 3]:
        """The phases a charger draws on: one on a single-phase site or a single-phase charger."""
        return 1 if self.phases == 1 or int(coordinator.settings.get(CONF_PHASES, 3)) == 1 else 3

    @property
    def subscribed_power_w(self) -> float:
        """Power subscribed from the grid operator."""
        return float(self.runtime.setting(CONF_SUBSCRIBED_POWER, DEFAULT_SUBSCRIBED_POWER)) * 1000

    @property
    def breaker_a(self) -> float:
        """Main breaker per phase (from the subscribed power when not given)."""
        breaker = self.runtime.setting(CONF_MAIN_BREAKER)
        if breaker:
            return float(breaker)
        return round(self.subscribed_power_w / self.voltage / self.phases, 1)

    def _strategy_config(self) -> StrategyConfig:
        setting = self.runtime.setting
        max_sessions = setting(CONF_ZNI_MAX_SESSIONS)
        return StrategyConfig(
            voltage_v=self.voltage,
            pv=PvConfig(
                reserve_w=float(setting(CONF_PV_RESERVE, 0) or 0),
                enable_delay_s=float(setting(CONF_PV_ENABLE_DELAY, 60)),
                disable_delay_s=float(setting(CONF_PV_DISABLE_DELAY, 180)),
                battery_priority_soc=float(setting(CONF_BATTERY_PRIORITY_SOC, 100)),
                battery_discharge_soc=0.0 if setting(CONF_BATTERY_FOR_EV) else None,
                data_timeout_s=METER_TIMEOUT_S,
            ),
            zni=ZniConfig(
                enabled=self.zni.enabled,
                fraction=float(setting(CONF_ZNI_FRACTION, 50)) / 100,
                max_sessions=None if max_sessions in (None, "") else int(max_sessions),
                safe_default=1 if str(setting(CONF_ZNI_SAFE_DEFAULT, "0")) == "1" else 0,
            ),
            timezone=dt_util.get_time_zone(self.hass.config.time_zone) or dt_util.UTC,
        )

    def charge_mode(self, key: str) -> ChargeMode:
        """A connector's charging mode (``now`` until the user picks another)."""
        return ChargeMode(self.runtime.charge_modes.get(key, ChargeMode.NOW))

    def tariff_policy(self, key: str) -> TariffPolicy:
        """A connector's tariff policy (``ignore`` until the user picks another)."""
        return TariffPolicy(self.runtime.tariff_policies.get(key, TariffPolicy.IGNORE))

    async def async_set_charge_mode(self, key: str, mode: ChargeMode) -> None:
        """Change a connector's charging mode (kept across restarts); a cycle follows at once."""
        self.runtime.charge_modes[key] = mode.value
        self.runtime.async_save()
        await self.async_refresh()

    async def async_set_departure(self, key: str, departure: str | None) -> None:
        """When the car on a connector leaves (a time of day); None forgets it. The plan follows."""
        if departure is None:
            self.runtime.departures.pop(key, None)
        else:
            self.runtime.departures[key] = departure
        self.runtime.async_save()
        await self.async_refresh()

    async def async_set_energy_need(self, key: str, kwh: float) -> None:
        """How much energy the car on a connector needs before it leaves (0: no plan)."""
        await self._async_set_plan_input(self.runtime.energy_needs, key, kwh)

    async def async_set_soc_target(self, key: str, percent: float) -> None:
        """The state of charge the car on a connector should reach by its departure (0: none)."""
        await self._async_set_plan_input(self.runtime.soc_targets, key, percent)

    async def async_set_battery_capacity(self, key: str, kwh: float) -> None:
        """The usable battery of the car on a connector (0: unknown)."""
        await self._async_set_plan_input(self.runtime.battery_capacities, key, kwh)

    async def _async_set_plan_input(self, values: dict[str, float], key: str, value: float) -> None:
        values[key] = value
        self.runtime.async_save()
        await self.async_refresh()

    async def async_set_tariff_policy(self, key: str, policy: TariffPolicy) -> None:
        """Change a connector's tariff policy (kept across restarts); a cycle follows at once."""
        self.runtime.tariff_policies[key] = policy.value
        self.runtime.async_save()
        await self.async_refresh()

    @callback
    def meter_moved(self, watts: float | None) -> None:
        """A new grid reading: a jump of a kilowatt or more since the last cycle starts one now."""
        last = self.data.meter_w
        if self.mode is EmsMode.OFF or watts is None or last is None or abs(watts - last) < METER_JUMP_W:
            return
        _LOGGER.debug("Grid meter jumped %.0f W -> %.0f W: cycle now", last, watts)
        self.hass.async_create_task(self.async_request_refresh(), "cariflex meter jump")

    # -------------------------------------------------------------- mode
    async def async_set_mode(self, mode: EmsMode) -> None:
        """Turn the energy manager on or off (off removes the limits it set)."""
        if mode is self.mode:
            return
        self.mode = mode
        self.runtime.ems_mode = mode.value
        self.runtime.async_save()
        if mode is EmsMode.OFF:
            self.regulator.reset()
            await self._release_limits()
        await self.async_refresh()

    async def _release_limits(self) -> None:
        for coordinator in list(self.runtime.coordinators.values()):
            charger = coordinator.charger
            if charger.link is None:
                continue
            for connector in charger.outlets:
                if connector.current_limit_a is not None:
                    try:
                        await charger.link.set_current_limit(connector.connector_id, None)
                    except Exception as err:  # noqa: BLE001 - one charger never stops the others
                        _LOGGER.warning("%s: could not remove the limit: %s", charger.charger_id, err)

    # ------------------------------------------------------------- cycle
    async def _async_update_data(self) -> EnergyState:
        now_dt = dt_util.utcnow()
        now = now_dt.timestamp()
        connectors = self._active_connectors()
        active = {session_id(coordinator.charger_id, connector.connector_id) for coordinator, connector in connectors}
        for known in list(self._refused):
            if known not in active:
                del self._refused[known]  # a new session starts afresh
        if self.mode is EmsMode.OFF:
            self._set_meter_issue(None)
            return EnergyState(
                self.mode,
                EmsStatus.OFF,
                strategy=self._zni_while_off(now_dt, connectors),
                tariff=self.tariffs.state(now_dt),
            )
        meter_w, measured_at = self._grid_meter()
        inputs = self.site_inputs()
        tree = self._tree(connectors, meter_w, measured_at, inputs)
        sessions = [self._session(coordinator, connector) for coordinator, connector in connectors]
        wanted = {session.id for session in sessions}
        for known in list(self.regulator.state):
            if known not in wanted:
                self.regulator.forget(known)
        readings, surplus_source = self._strategy_inputs(now_dt, meter_w, measured_at, inputs, connectors)
        strategy = self.strategy.cycle(
            now,
            tree,
            sessions,
            readings,
            {
                session_id(coordinator.charger_id, connector.connector_id): self._session_settings(
                    coordinator, connector, now
                )
                for coordinator, connector in connectors
            },
        )
        self._after_strategy(strategy)
        result = self.regulator.cycle(tree, strategy.apply(sessions), now)
        delivered = {
            session_id(c.charger_id, k.connector_id): k.session.energy_wh / 1000
            for c, k in connectors
            if k.session is not None
        }
        self.planning.maybe_replan(now, tree, result.allocation, delivered)
        site = result.allocation.nodes[SITE_NODE]
        meter_lost = self.has_meter and (meter_w is None or site.stale)
        self._set_meter_issue(None if meter_lost else meter_w)
        # Decreases first; increases wait for the cars to come down, so that a car that speeds
        # up never meets one that has not slowed down yet (the limit holds during the ramp).
        decreases = [key for key in result.changed if self._lowers(result, key)]
        delay = RAMP_DELAY_S if decreases else 0.0
        for changed in result.changed:
            phases = result.setpoints[changed].number_of_phases if self.phase_switching(changed) else None
            self._send(
                changed, result.setpoint(changed), connectors, 0.0 if changed in decreases else delay, phases=phases
            )
        return EnergyState(
            self.mode,
            self._status(result, bool(sessions), meter_lost),
            result,
            meter_w,
            inputs,
            strategy,
            readings.tariff,
            surplus_source,
        )

    # -------------------------------------------------------- strategies
    def _strategy_inputs(
        self,
        now: datetime,
        meter_w: float | None,
        measured_at: float | None,
        inputs: SiteInputs,
        connectors: list[tuple[ChargerCoordinator, Connector]],
    ) -> tuple[StrategyInputs, str | None]:
        """The strategy's readings, and where its grid reading came from (meter, inverter, forecast)."""
        source = "meter" if meter_w is not None else None
        estimate = None if meter_w is not None or self.has_meter else self._estimated_grid_w(now, inputs, connectors)
        if estimate is not None:
            meter_w, source = estimate
            measured_at = now.timestamp()
        readings = StrategyInputs(
            grid_power_w=meter_w,
            grid_measured_at=measured_at,
            pv_power_w=inputs.pv_w,
            battery_power_w=inputs.battery_w,
            battery_soc=inputs.battery_soc,
            zni_signal=self.zni.value(now),
            zni_next=self.zni.next_change(now),
            tariff=self.tariffs.state(now),
        )
        return readings, source

    def _estimated_grid_w(
        self, now: datetime, inputs: SiteInputs, connectors: list[tuple[ChargerCoordinator, Connector]]
    ) -> tuple[float, str] | None:
        """Without a grid meter (seed 004 A.8): the grid from the inverter's reading, else the PV forecast.

        grid = the building's assumed load (the fallback load) + what the cars draw - production,
        with its source. None when neither the inverter nor a forecast says anything (the PV modes
        then fall back).
        """
        production = inputs.pv_w
        source = "inverter"
        if production is None:
            production, source = self.planning.forecast_now_w(now.timestamp()), "forecast"
        if production is None:
            return None
        building_w = float(self.runtime.setting(CONF_METER_FALLBACK, 0.0) or 0.0)
        cars_w = sum(connector.readings.power_w or 0.0 for _, connector in connectors)
        return building_w + cars_w - production, source

    def _session_settings(self, coordinator: ChargerCoordinator, connector: Connector, now: float) -> SessionSettings:
        key = session_id(coordinator.charger_id, connector.connector_id)
        phases = self.charger_phases(coordinator)
        badge = None
        if connector.session is not None and connector.session.id_tag:
            badge = self.runtime.badges.get(connector.session.id_tag)
        return SessionSettings(
            mode=self.charge_mode(key),
            tariff=TariffOption(self.tariff_policy(key), self.weekend_policy),
            nominal_power_w=coordinator.max_current * phases * self.voltage,
            planner_target_w=self.planning.target_w(key, phases, now),
            phase_switching=self.switches_phases(coordinator),
            active_phases=_PHASE_COUNTS.get(connector.limit_phases or 0),
            pv_excluded=badge is not None and badge.pv_excluded,
            car_idle=connector.status is ConnectorStatus.SUSPENDED_EV,
            guaranteed_min_a=None if badge is None else badge.guaranteed_min_a,
        )

    def _zni_while_off(
        self, now: datetime, connectors: list[tuple[ChargerCoordinator, Connector]]
    ) -> StrategyResult | None:
        """With the manager off, the ZNI signal still caps every charger (seed 004, Annex B)."""
        if not self.zni.enabled:
            return None
        sessions = [self._session(coordinator, connector) for coordinator, connector in connectors]
        keys = {session.id for session in sessions}
        strategy = self.strategy.cycle(
            now.timestamp(),
            self._tree(connectors, None, None),
            sessions,
            StrategyInputs(zni_signal=self.zni.value(now), zni_next=self.zni.next_change(now)),
            {
                session_id(coordinator.charger_id, connector.connector_id): replace(
                    self._session_settings(coordinator, connector, now.timestamp()), mode=ChargeMode.NOW
                )
                for coordinator, connector in connectors
            },
        )
        self._after_strategy(strategy)
        for key, target in strategy.targets.items():
            if strategy.zni_cap_active and target.rule is Rule.ZNI:
                self._zni_capped.add(key)
                phases = target.phases if self.phase_switching(key) else None
                if self._desired.get(key) != (target.max_a, phases):
                    self._send(key, target.max_a, connectors, phases=phases)
        for key in list(self._zni_capped):
            if not strategy.zni_cap_active or key not in keys or strategy.targets[key].rule is not Rule.ZNI:
                self._zni_capped.discard(key)
                if key in keys:
                    self._send(key, None, connectors)  # back to unmanaged
        return strategy

    def _after_strategy(self, strategy: StrategyResult) -> None:
        """Keep the ZNI evidence; raise or clear the repair issues of the signals."""
        for entry in strategy.evidence:
            self.runtime.zni_evidence.append(entry.as_dict())
            _LOGGER.info("ZNI signal: %s", entry.as_dict())
        if strategy.evidence:
            del self.runtime.zni_evidence[:-ZNI_EVIDENCE_LIMIT]
            self.runtime.async_save()
        zni_lost = self.zni.enabled and strategy.zni.source is ZniSource.DEFAULT
        self._issue("zni_unavailable", zni_lost, {"source": self.zni.entity_id or self.zni.source})
        self._issue("pv_data_lost", strategy.pv_data_lost, {"meter": self.meter_name or "-"})

    @callback
    def _issue(self, key: str, active: bool, placeholders: dict[str, str]) -> None:
        if self._issues[key].set(active, placeholders) and active:
            _LOGGER.warning("%s: %s", key, placeholders)

    @staticmethod
    def _lowers(result: RegulatorResult, key: str) -> bool:
        setpoint = result.setpoints[key]
        return setpoint.previous_a is not None and setpoint.setpoint_a < setpoint.previous_a

    def _status(self, result: RegulatorResult, busy: bool, meter_lost: bool) -> EmsStatus:
        if meter_lost:
            return EmsStatus.FALLBACK
        if not busy:
            return EmsStatus.IDLE
        if any(s.limited_by is not None or s.paused for s in result.setpoints.values()):
            return EmsStatus.LIMITED
        return EmsStatus.OK

    def _active_connectors(self) -> list[tuple[ChargerCoordinator, Connector]]:
        """Connectors with a session on a connected charger: they share the site."""
        found: list[tuple[ChargerCoordinator, Connector]] = []
        for coordinator in self.runtime.coordinators.values():
            charger = coordinator.charger
            if not charger.connected:
                continue
            found.extend((coordinator, connector) for connector in charger.outlets if connector.session is not None)
        return found

    @property
    def has_meter(self) -> bool:
        """Whether the site measures its grid connection (a sensor or a Modbus device)."""
        return bool(self.runtime.setting(CONF_GRID_POWER_ENTITY)) or self.runtime.grid_meter() is not None

    @property
    def has_pv_data(self) -> bool:
        """Whether the site knows its PV without a grid meter: an inverter (entity or Modbus) or a forecast entity."""
        setting = self.runtime.setting
        return bool(
            setting(CONF_PV_POWER_ENTITY) or setting(CONF_PV_FORECAST_ENTITY) or self.runtime.meter_with_role(ROLE_PV)
        )

    @property
    def meter_name(self) -> str:
        """The grid meter, for messages."""
        modbus = self.runtime.grid_meter()
        return str(self.runtime.setting(CONF_GRID_POWER_ENTITY) or (modbus.title if modbus else ""))

    def _grid_meter(self) -> tuple[float | None, float | None]:
        entity_id = self.runtime.setting(CONF_GRID_POWER_ENTITY)
        if not entity_id:
            modbus = self.runtime.grid_meter()
            if modbus is None or not modbus.last_update_success or modbus.data is None:
                return None, None
            reading = modbus.data
            if reading.power_w is None:
                return None, None
            return reading.power_w, reading.measured_at.timestamp()
        state = self.hass.states.get(entity_id)
        value = read_power_w(state)
        if value is None or state is None:
            return None, None
        return value, reported_at(state)

    # ------------------------------------------------------------ inputs
    def site_inputs(self) -> SiteInputs:
        """PV, battery and generator, from the chosen entities or the Modbus devices' roles."""
        pv = self._power_input(CONF_PV_POWER_ENTITY, ROLE_PV, Quantity.PV_POWER_W, Quantity.POWER_W)
        battery = self._power_input(CONF_BATTERY_POWER_ENTITY, ROLE_BATTERY, Quantity.BATTERY_POWER_W)
        soc: float | None = None
        if entity_id := self.runtime.setting(CONF_BATTERY_SOC_ENTITY):
            soc = read_number(self.hass.states.get(entity_id))
        elif (device := self.runtime.meter_with_role(ROLE_BATTERY)) is not None and device.data is not None:
            soc = device.data.get(Quantity.SOC_PERCENT)
        genset = False
        if entity_id := self.runtime.setting(CONF_GENSET_ENTITY):
            state = self.hass.states.get(entity_id)
            genset = state is not None and state.state == STATE_ON
        else:
            # A meter on the generator's output: it runs while it delivers power.
            output = self._power_input(CONF_GENSET_ENTITY, ROLE_GENSET, Quantity.POWER_W)
            genset = output is not None and abs(output) > GENSET_RUNNING_W
        return SiteInputs(pv_w=pv, battery_w=battery, battery_soc=soc, genset_running=genset)

    def _power_input(self, option: str, role: str, *quantities: Quantity) -> float | None:
        if entity_id := self.runtime.setting(option):
            return read_power_w(self.hass.states.get(entity_id))
        device = self.runtime.meter_with_role(role)
        if device is None or device.data is None or not device.last_update_success:
            return None
        return next((value for q in quantities if (value := device.data.get(q)) is not None), None)

    def _tree(
        self,
        connectors: list[tuple[ChargerCoordinator, Connector]],
        meter_w: float | None,
        measured_at: float | None,
        inputs: SiteInputs | None = None,
    ) -> SiteTree:
        inputs = inputs or SiteInputs()
        phases = self.phases
        breaker_a, max_power_w = self.breaker_a, self.subscribed_power_w
        genset_kw = self.runtime.setting(CONF_GENSET_POWER)
        if inputs.genset_running and genset_kw:
            # On the generator: its power is the site's limit (island grids, grid outages).
            max_power_w = float(genset_kw) * 1000
            breaker_a = min(breaker_a, round(max_power_w / self.voltage / phases, 1))
        limit = self._per_phase(breaker_a)
        measured: PerPhase | None = None
        production: PerPhase | None = None
        has_meter = self.has_meter
        battery_w = max(inputs.battery_w or 0.0, 0.0)
        battery_for_ev = bool(self.runtime.setting(CONF_BATTERY_FOR_EV, False))
        if meter_w is not None:
            # The meter sees the battery's discharge as less import: unless the user lets the
            # battery feed the cars, count it back as load so the cars do not drain it.
            extra = 0.0 if battery_for_ev else battery_w
            measured, production = split_net_load(
                self._per_phase((meter_w + extra) / self.voltage / phases),
                (self._draw(connector) for _coordinator, connector in connectors),
            )
        elif inputs.pv_w is not None or (battery_for_ev and battery_w):
            # No grid meter: the production that is measured is what the cars may add to the limit.
            produced = max(inputs.pv_w or 0.0, 0.0) + (battery_w if battery_for_ev else 0.0)
            production = self._per_phase(produced / self.voltage / phases)
        fallback_w = float(self.runtime.setting(CONF_METER_FALLBACK, 0.0) or 0.0)
        boards = self.runtime.boards()
        reserved = self._offline_reserved(boards)
        site_reserve = reserved.get(SITE_NODE, 0.0) if measured is None else 0.0
        site = Node(
            id=SITE_NODE,
            kind=NodeKind.MAIN_BOARD,
            max_current_a=limit,
            max_power_w=max_power_w,
            measured_load=measured,
            production=production,
            measured_at=measured_at if measured is not None else (0.0 if has_meter else None),
            fallback_load=self._per_phase(fallback_w / self.voltage / phases + site_reserve),
            name="TGBT",
        )
        nodes = [
            site,
            *(self._board_node(sid, data, connectors, boards, reserved.get(sid, 0.0)) for sid, data in boards.items()),
        ]
        leaves = [self._leaf(coordinator, connector, boards) for coordinator, connector in connectors]
        return SiteTree.build(nodes, leaves)

    def _per_phase(self, value: float) -> tuple[float, float, float]:
        return (value, 0.0, 0.0) if self.phases == 1 else per_phase(value)

    def _board_node(
        self,
        board_id: str,
        data: Mapping[str, Any],
        connectors: list[tuple[ChargerCoordinator, Connector]],
        boards: Mapping[str, Mapping[str, Any]],
        reserve_a: float = 0.0,
    ) -> Node:
        """A sub-board (TD) or group: its limits and, when it has one, its own meter."""
        current = data.get(CONF_BOARD_CURRENT)
        power_kw = data.get(CONF_BOARD_POWER)
        parent = data.get(CONF_PARENT) or SITE_NODE
        measured: PerPhase | None = None
        production: PerPhase | None = None
        measured_at: float | None = None
        if entity_id := data.get(CONF_BOARD_METER):
            state = self.hass.states.get(entity_id)
            value = read_power_w(state)
            measured_at = 0.0  # stale (fallback) until it reads
            if value is not None and state is not None:
                below = [
                    c for coord, c in connectors if self._board_of(coord, boards) in self._subtree(board_id, boards)
                ]
                measured, production = split_net_load(
                    self._per_phase(value / self.voltage / self.phases), (self._draw(c) for c in below)
                )
                measured_at = reported_at(state)
        return Node(
            id=board_id,
            parent=parent if parent == SITE_NODE or parent in boards else SITE_NODE,
            kind=NodeKind.SUB_BOARD,
            max_current_a=self._per_phase(float(current)) if current else None,
            max_power_w=float(power_kw) * 1000 if power_kw else None,
            measured_load=measured,
            production=production,
            measured_at=measured_at,
            # Without a meter, chargers that went offline while charging are counted at their
            # last limit for a while (they may still be charging: fail closed).
            fallback_load=self._per_phase(reserve_a) if measured_at is None and reserve_a else None,
            name=str(data.get("name", board_id)),
        )

    def _offline_reserved(self, boards: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
        """Per node, the current (A per phase) of sessions whose charger went offline recently."""
        now = dt_util.utcnow()
        reserved: dict[str, float] = {}
        for coordinator in self.runtime.coordinators.values():
            charger = coordinator.charger
            gone = charger.disconnected_at
            if charger.connected or gone is None or (now - gone).total_seconds() > OFFLINE_GRACE_S:
                continue
            for connector in charger.outlets:
                if connector.session is not None:
                    amps = (
                        connector.current_limit_a if connector.current_limit_a is not None else coordinator.max_current
                    )
                    board = self._board_of(coordinator, boards)
                    reserved[board] = reserved.get(board, 0.0) + amps
        return reserved

    @staticmethod
    def _subtree(board_id: str, boards: Mapping[str, Mapping[str, Any]]) -> set[str]:
        found = {board_id}
        grew = True
        while grew:
            grew = False
            for sid, data in boards.items():
                if sid not in found and data.get(CONF_PARENT) in found:
                    found.add(sid)
                    grew = True
        return found

    @staticmethod
    def _board_of(coordinator: ChargerCoordinator, boards: Mapping[str, Mapping[str, Any]]) -> str:
        board = str(coordinator.settings.get(CONF_BOARD) or SITE_NODE)
        return board if board in boards else SITE_NODE

    def _leaf(
        self, coordinator: ChargerCoordinator, connector: Connector, boards: Mapping[str, Mapping[str, Any]]
    ) -> EmsCharger:
        config = coordinator.settings
        charger_phases = self.charger_phases(coordinator)
        minimum = float(config.get(CONF_MIN_CURRENT, DEFAULT_MIN_CURRENT))
        return EmsCharger(
            id=session_id(coordinator.charger_id, connector.connector_id),
            node=self._board_of(coordinator, boards),
            max_current_a=max(coordinator.max_current, minimum),
            min_current_a=minimum,
            phases=charger_phases,
            phase=Phase[str(config.get(CONF_PHASE, "L1"))] if charger_phases == 1 else Phase.L1,
            priority=int(config.get(CONF_PRIORITY, 0)),
        )

    @staticmethod
    def _draw(connector: Connector) -> tuple[float, float, float]:
        current = connector.readings.current_a
        values = [current.get(key, 0.0) for key in _PHASE_KEYS]
        return values[0], values[1], values[2]

    def _session(self, coordinator: ChargerCoordinator, connector: Connector) -> EmsSession:
        assert connector.session is not None
        draw = connector.readings.current_a
        key = session_id(coordinator.charger_id, connector.connector_id)
        cap_w = self.runtime.session_caps_w.get(key)
        # A draw measured before the latest setpoint reached the charger says nothing about the car
        # limiting itself (it has not had the chance to follow yet).
        measured_at = connector.readings.measured_at
        applied_at = self._applied_at.get(key)
        followed = applied_at is None or (measured_at is not None and measured_at.timestamp() > applied_at)
        phases = self.charger_phases(coordinator)
        return EmsSession(
            id=key,
            charger_id=key,
            arrival=connector.session.started_at.timestamp(),
            measured_a=self._draw(connector) if draw and followed else None,
            setpoint_a=connector.current_limit_a,
            # A cap from the cloud (an OCPI charging profile) bounds the session like the car's own limit.
            ev_max_current_a=None if cap_w is None else cap_w / self.voltage / phases,
        )

    # ------------------------------------------------------------ output
    def _send(
        self,
        key: str,
        amps: float | None,
        connectors: list[tuple[ChargerCoordinator, Connector]],
        delay: float = 0.0,
        *,
        phases: int | None = None,
    ) -> None:
        """Send one setpoint in the background, one at a time per connector, the latest one last.

        ``phases`` goes into the profile (numberPhases) only for a charger that switches phases.
        """
        self._desired[key] = (amps, phases)
        if key in self._sending:
            return  # the sender in flight sends this newer value when it is done
        refusal = self._refused.get(key)
        if refusal is not None and self._clock() < refusal.retry_at:
            # The charger refused the last one: not before the retry time. Forgotten, so that a
            # later cycle asks again.
            del self._desired[key]
            self.regulator.forget(key)
            return
        for coordinator, connector in connectors:
            if session_id(coordinator.charger_id, connector.connector_id) != key:
                continue
            link = coordinator.charger.link
            if link is None:
                return
            self._sending.add(key)
            self.runtime.spawn(self._apply(key, link, connector.connector_id, delay), f"cariflex setpoint {key}")
            return

    async def _apply(self, key: str, link: Any, connector_id: int, delay: float) -> None:
        """Send the wanted setpoint until the charger has the latest one; a failure is retried next cycle."""
        try:
            if delay:
                await asyncio.sleep(delay)
            while True:
                wanted = self._desired[key]
                amps, phases = wanted
                status = await link.set_current_limit(connector_id, amps, phases)
                self._applied_at[key] = dt_util.utcnow().timestamp()
                if status != "Accepted":
                    self._refusal(key, f"{amps} A ({phases or 'all'} phases) answered {status}", status)
                    return
                self._accepted(key)
                if self._desired.get(key) == wanted:
                    return
        except (asyncio.CancelledError, KeyboardInterrupt):
            raise
        except CallError as err:
            self._refusal(key, f"answered a CALLERROR: {err}", err.code)
        except CallTimeoutError as err:
            self._refusal(key, f"not answered: {err}", "no answer")
        except Exception as err:  # noqa: BLE001 - retried later
            self._refusal(key, f"not sent: {err}", type(err).__name__)
        finally:
            self._sending.discard(key)

    def refusals(self) -> dict[str, dict[str, Any]]:
        """The connectors whose charger refused their last setpoints: how often, the answer, the next try."""
        now = self._clock()
        return {
            key: {"count": r.count, "answer": r.answer, "retry_in_s": round(max(r.retry_at - now, 0.0), 1)}
            for key, r in self._refused.items()
        }

    def _refusal(self, key: str, what: str, answer: str) -> None:
        """A setpoint refused or lost: try again later, less and less often; tell the installer."""
        self.regulator.forget(key)
        previous = self._refused.get(key)
        count = 1 if previous is None else previous.count + 1
        wait = min(REFUSAL_RETRY_S * 2 ** (count - 1), REFUSAL_RETRY_MAX_S)
        self._refused[key] = _Refusal(count, self._clock() + wait, answer)
        if count == 1:
            _LOGGER.warning("%s: setpoint %s; trying again in %.0f s", key, what, wait)
        else:
            _LOGGER.debug("%s: setpoint %s (%d in a row); trying again in %.0f s", key, what, count, wait)
        charger_id = charger_of(key)
        if count >= REFUSALS_FOR_ISSUE:
            issue = self._refusal_issue(charger_id)
            if issue.set(True, {"charger": charger_id, "answer": answer, "count": str(count)}):
                _LOGGER.warning("%s refuses the energy manager's limits (%s, %d in a row)", charger_id, answer, count)

    def _accepted(self, key: str) -> None:
        refusal = self._refused.pop(key, None)
        if refusal is not None:
            _LOGGER.info("%s: setpoint accepted again after %d refusal(s)", key, refusal.count)
        # Also an issue left from before a restart: the registry knows it, this cycle does not.
        self._refusal_issue(charger_of(key)).set(False)

    def _refusal_issue(self, charger_id: str) -> RepairIssue:
        issue = self._refusal_issues.get(charger_id)
        if issue is None:
            issue = self._refusal_issues[charger_id] = RepairIssue(
                self.hass, self._entry_id, "setpoint_refused", suffix=charger_id
            )
        return issue

    @callback
    def _set_meter_issue(self, meter_w: float | None) -> None:
        """A repair issue while the grid meter is configured but gives nothing usable."""
        entity_id = self.meter_name
        broken = self.has_meter and self.mode is EmsMode.ON and meter_w is None
        fallback = f"{float(self.runtime.setting(CONF_METER_FALLBACK, 0.0) or 0.0):.0f}"
        if not self._meter_issue.set(broken, {"entity": str(entity_id), "fallback": fallback}):
            return
        if broken:
            _LOGGER.warning("Grid meter %s unavailable: the energy manager uses the fallback load", entity_id)
        else:
            _LOGGER.info("Grid meter %s is back", entity_id)
