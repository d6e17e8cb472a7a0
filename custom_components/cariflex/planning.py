"""The charging planner in Home Assistant: departure times and energy needs in, a plan per session out.

A connector whose session has a departure time and an energy to add is *planned*. The energy is
the car's state-of-charge target times its battery capacity when the car reports its SoC (what is
left from the SoC now, with the charger's losses), else the "energy to add" entity. The pure
MILP planner (:mod:`.ems.planner`, PuLP + HiGHS) decides in which 15-minute slots of the next
24 hours it charges, at the lowest cost (off-peak and peak prices per slot), using the PV
forecast and the ZNI signal forecast, within the site's limits. The energy manager follows the
current slot's value as the session's target (the strategies' precedence still applies: the
ZNI cap and the site's limits win).

Re-planned when the planned sessions or their needs change, at each new slot, and at most once
a minute; the solver runs in an executor thread (it may take up to its time limit, 5 s).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
import itertools
import logging
import math
from typing import TYPE_CHECKING, Any, cast

from homeassistant.components.energy.data import async_get_manager as async_get_energy_manager
from homeassistant.core import HomeAssistant, State, callback
from homeassistant.loader import async_get_integration
from homeassistant.util import dt as dt_util

from .const import (
    CONF_PLANNER_GOAL,
    CONF_PLANNER_TIME_LIMIT,
    CONF_PRICE_FEED_IN,
    CONF_PRICE_OFFPEAK,
    CONF_PRICE_PEAK,
    CONF_PV_FORECAST_ENTITY,
    CONF_ZNI_FRACTION,
    DEFAULT_PLANNER_TIME_LIMIT,
    PLANNER_GOAL_IMPORT,
)
from .ems.allocator import Allocation
from .ems.planner import Plan, PlanError, Planner, PlannerConfig, PlanNode, PlanProblem, PlanSession
from .ems.tree import SiteTree

if TYPE_CHECKING:
    from .energy import EnergyCoordinator

_LOGGER = logging.getLogger(__name__)

SLOT_S = 900.0
SLOTS = 96
MIN_INTERVAL_S = 60.0  # re-plan at most once a minute
IMPORT_GOAL_COST_WEIGHT = 0.01  # the cost as a tie-break when the goal is the grid import (EUR ≪ kWh)
DEFAULT_PRICE = 0.20  # EUR/kWh when no price is set: the plan then only prefers PV and meets the needs
FORECAST_PERIOD_S = 1800.0  # a forecast value alone covers half an hour (Solcast's period)
MAX_FORECAST_PERIOD_S = 3600.0  # and never more than an hour
CHARGE_EFFICIENCY = 0.9  # kWh stored in the battery per kWh metered (the on-board charger's losses)


@dataclass(frozen=True, slots=True)
class Need:
    """What a planned connector needs: when the car leaves, how much energy, and how it is known.

    ``from_soc``: ``kwh`` is what is left to reach the SoC target now (the session's delivered
    energy is already in the SoC); otherwise it is the whole session's need, less what it delivered.
    """

    departure: str
    kwh: float
    from_soc: bool = False


def slot_start(now: float) -> float:
    """The start of the 15-minute slot holding ``now``."""
    return math.floor(now / SLOT_S) * SLOT_S


def next_departure(departure: str, after: datetime) -> datetime:
    """The next time of day ``departure`` (HH:MM[:SS], local) after ``after``."""
    parsed = dt_util.parse_time(departure)
    if parsed is None:
        raise ValueError(f"departure {departure!r} is not a time of day")
    local = dt_util.as_local(after)
    moment = local.replace(hour=parsed.hour, minute=parsed.minute, second=parsed.second, microsecond=0)
    if moment <= local:
        moment += timedelta(days=1)
    return moment


def pv_forecast_w(state: State | None, start: float, slots: int = SLOTS, slot_s: float = SLOT_S) -> list[float]:
    """The PV power forecast per slot from a forecast entity's attributes (0 where unknown).

    Reads Solcast's ``detailedForecast`` (``period_start``, ``pv_estimate`` in kW) or a generic
    ``forecast`` list (``datetime`` or ``period_start``, ``value`` or ``power`` in W); the
    forecast integrations keep their own models, Cariflex only reads them. Each value is the
    mean power of its period, which runs to the next value (Solcast: 30 minutes; at most an hour),
    so it fills every slot of that period.
    """
    values = [0.0] * slots
    if state is None:
        return values
    solcast: list[tuple[float, float]] = []
    for item in state.attributes.get("detailedForecast") or []:
        at = dt_util.parse_datetime(str(item.get("period_start", "")))
        if at is not None and isinstance(item.get("pv_estimate"), int | float):
            solcast.append((at.timestamp(), float(item["pv_estimate"]) * 1000))
    generic: list[tuple[float, float]] = []
    for item in state.attributes.get("forecast") or []:
        at = dt_util.parse_datetime(str(item.get("datetime") or item.get("period_start") or ""))
        value = item.get("value", item.get("power"))
        if at is not None and isinstance(value, int | float):
            generic.append((at.timestamp(), float(value)))
    for points in (solcast, generic):  # two spellings of one forecast: the larger value
        values = [max(a, b) for a, b in zip(values, _per_slot(_periods(points), start, slots, slot_s), strict=True)]
    return values


def _per_slot(periods: list[tuple[float, float, float]], start: float, slots: int, slot_s: float) -> list[float]:
    """Mean powers over periods (start, end, W) as one value per slot (0 where no period, never negative)."""
    values = [0.0] * slots
    for begin, end, watts in periods:
        if not math.isfinite(watts):
            continue
        first = max(math.floor((begin - start) / slot_s), 0)
        last = min(math.ceil((end - start) / slot_s), slots)
        for index in range(first, last):
            values[index] = max(values[index], watts, 0.0)
    return values


class DashboardForecast:
    """The solar forecast of the Energy dashboard: the forecast integrations of its solar sources.

    Forecast.Solar, Solcast and the others give the dashboard ``{"wh_hours": {time: Wh}}`` through
    their ``energy`` platform (``async_get_solar_forecast``); Cariflex reads the same, for the
    sources the user picked there, every 30 minutes. Each value is the energy of its period
    (until the next value): its mean power is Wh / hours. Two sources (two roofs) add up.
    """

    def __init__(self, hass: HomeAssistant) -> None:
        self.hass = hass
        self.series: list[list[tuple[float, float, float]]] = []
        """Per forecast entry, its periods (start, end, mean W)."""
        self.entries: list[str] = []
        """The config entries read at the last refresh."""

    async def async_refresh(self, _now: datetime | None = None) -> None:
        """Read every solar forecast of the Energy dashboard once (an entry that fails is skipped)."""
        series: list[list[tuple[float, float, float]]] = []
        entries: list[str] = []
        for entry_id in await self._forecast_entries():
            entry = self.hass.config_entries.async_get_entry(entry_id)
            if entry is None:
                continue
            try:
                platform = await (await async_get_integration(self.hass, entry.domain)).async_get_platform("energy")
                forecast = await platform.async_get_solar_forecast(self.hass, entry_id)
            except Exception as err:  # noqa: BLE001 - another integration's failure never stops the planner
                _LOGGER.debug("Solar forecast of %s (%s) not read: %s", entry.title, entry.domain, err)
                continue
            points = []
            for moment, wh in ((forecast or {}).get("wh_hours") or {}).items():
                at = dt_util.parse_datetime(str(moment))
                if at is not None and isinstance(wh, int | float):
                    points.append((at.timestamp(), float(wh)))
            series.append([(begin, end, wh * 3600 / (end - begin)) for begin, end, wh in _periods(points)])
            entries.append(entry_id)
        self.series, self.entries = series, entries

    async def _forecast_entries(self) -> list[str]:
        try:
            prefs = (await async_get_energy_manager(self.hass)).data
        except Exception as err:  # noqa: BLE001 - no Energy dashboard: no forecast from it
            _LOGGER.debug("Energy dashboard preferences not read: %s", err)
            return []
        found: list[str] = []
        for source in cast("list[Mapping[str, Any]]", [] if prefs is None else prefs["energy_sources"]):
            if source.get("type") == "solar":
                found.extend(e for e in source.get("config_entry_solar_forecast") or [] if e not in found)
        return found

    def watts(self, start: float, slots: int = SLOTS, slot_s: float = SLOT_S) -> list[float]:
        """The forecast power per slot, summed over the sources (0 where unknown)."""
        total = [0.0] * slots
        for periods in self.series:
            total = [a + b for a, b in zip(total, _per_slot(periods, start, slots, slot_s), strict=True)]
        return total


def _periods(points: list[tuple[float, float]]) -> list[tuple[float, float, float]]:
    """(start, end, W) of each forecast value: until the next one, at most an hour (the finest step for the last)."""
    points = sorted(points)
    steps = [b - a for (a, _), (b, _) in itertools.pairwise(points) if b > a]
    usual = min(*steps, MAX_FORECAST_PERIOD_S) if steps else FORECAST_PERIOD_S
    periods = []
    for index, (moment, watts) in enumerate(points):
        following = points[index + 1][0] if index + 1 < len(points) else moment + usual
        end = min(following if following > moment else moment + usual, moment + MAX_FORECAST_PERIOD_S)
        periods.append((moment, end, watts))
    return periods


def planner_config(setting: Callable[[str], Any]) -> PlannerConfig:
    """The site's planner settings: its goal (cost or grid import) and its time limit."""
    limit = setting(CONF_PLANNER_TIME_LIMIT)
    time_limit = float(limit) if limit not in (None, "") else DEFAULT_PLANNER_TIME_LIMIT
    if setting(CONF_PLANNER_GOAL) == PLANNER_GOAL_IMPORT:
        # The grid energy first; among plans that import as little, the cheaper one.
        return PlannerConfig(time_limit_s=time_limit, cost_weight=IMPORT_GOAL_COST_WEIGHT, import_weight=1.0)
    return PlannerConfig(time_limit_s=time_limit)


class ChargePlanner:
    """Plans the site's planned sessions and gives the energy manager their current-slot targets."""

    def __init__(self, hass: HomeAssistant, energy: EnergyCoordinator) -> None:
        self.hass = hass
        self.energy = energy
        self.planner = Planner(planner_config(energy.runtime.setting))
        self.dashboard = DashboardForecast(hass)
        """The Energy dashboard's solar forecast, used when no forecast entity is set."""
        self.plan: Plan | None = None
        self._signature: tuple[Any, ...] | None = None
        self._last_run = -math.inf
        self._running = False
        self._listeners: list[Callable[[], None]] = []

    def add_listener(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call ``listener`` after each new plan."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    # ------------------------------------------------------------ settings
    def needs(self) -> dict[str, Need]:
        """Connectors with a departure and an energy to add (a SoC target reached counts: 0 kWh holds the car)."""
        runtime = self.energy.runtime
        found: dict[str, Need] = {}
        for key, departure in runtime.departures.items():
            if not departure:
                continue
            left = self.soc_need_kwh(key)
            if left is not None:
                found[key] = Need(departure, left, from_soc=True)
            elif (need := runtime.energy_needs.get(key, 0.0)) > 0:
                found[key] = Need(departure, need)
        return found

    def soc_need_kwh(self, key: str) -> float | None:
        """The energy left to reach a connector's SoC target (None: no target, capacity or SoC reading)."""
        runtime = self.energy.runtime
        target = runtime.soc_targets.get(key, 0.0)
        capacity = runtime.battery_capacities.get(key, 0.0)
        charger_id, _, connector_id = key.rpartition("/")
        coordinator = runtime.coordinators.get(charger_id)
        if target <= 0 or capacity <= 0 or coordinator is None or not connector_id.isdigit():
            return None
        connector = coordinator.charger.connectors.get(int(connector_id))
        soc = None if connector is None or connector.session is None else connector.readings.soc
        if soc is None:
            return None
        return round(max(target - soc, 0.0) / 100 * capacity / CHARGE_EFFICIENCY, 2)

    def forecast_now_w(self, now: float) -> float | None:
        """The PV power forecast for the current slot (None: no forecast covers it)."""
        entity = self.energy.runtime.setting(CONF_PV_FORECAST_ENTITY)
        start = slot_start(now)
        if entity:
            state = self.hass.states.get(entity)
            if state is None or not (state.attributes.get("detailedForecast") or state.attributes.get("forecast")):
                return None
            return pv_forecast_w(state, start, slots=1)[0]
        return self.dashboard.watts(start, slots=1)[0] if self.dashboard.series else None

    def target_w(self, key: str, phases: int, now: float) -> float | None:
        """A planned session's power for the current slot (None: not planned, or the plan is stale)."""
        plan = self.plan
        if plan is None or key not in plan.sessions:
            return None
        slot = int((now - plan.start) // plan.slot_s)
        if not 0 <= slot < plan.slots:
            return None
        return plan.sessions[key].current_a[slot] * phases * self.energy.voltage

    # -------------------------------------------------------------- planning
    @callback
    def maybe_replan(self, now: float, tree: SiteTree, allocation: Allocation, delivered: Mapping[str, float]) -> None:
        """Plan again when the planned sessions or their needs changed or a slot began (at most once a minute)."""
        needs = {key: need for key, need in self.needs().items() if key in tree.chargers}
        # A SoC-based need moves with every reading: half a kWh of change is worth a new plan.
        signature = (
            slot_start(now),
            tuple(sorted((key, n.departure, round(n.kwh * 2) / 2, n.from_soc) for key, n in needs.items())),
        )
        if not needs:
            if self.plan is not None:
                self.plan = None
                self.planner.reset()
                self._notify()
            self._signature = signature
            return
        if self._running or signature == self._signature or now - self._last_run < MIN_INTERVAL_S:
            return
        try:
            problem = self.problem(now, tree, allocation, needs, delivered)
        except (PlanError, ValueError) as err:
            _LOGGER.warning("Charging plan not made: %s", err)
            self._signature = signature
            return
        self._signature = signature
        self._last_run = now
        self._running = True
        self.energy.runtime.spawn(self._async_run(problem), "cariflex charging plan")

    async def _async_run(self, problem: PlanProblem) -> None:
        try:
            plan = await self.hass.async_add_executor_job(self.planner.plan, problem)
        except PlanError as err:
            _LOGGER.warning("Charging plan failed: %s", err)
            return
        finally:
            self._running = False
        _LOGGER.info(
            "Charging plan (%s, %.2f s): %d session(s), %.2f EUR, %.1f kWh unmet",
            plan.method,
            plan.total_s,
            len(plan.sessions),
            plan.cost_eur,
            plan.unmet_kwh,
        )
        self.plan = plan
        self._notify()
        await self.energy.async_request_refresh()

    def _notify(self) -> None:
        for listener in list(self._listeners):
            listener()

    def problem(
        self,
        now: float,
        tree: SiteTree,
        allocation: Allocation,
        needs: Mapping[str, Need],
        delivered: Mapping[str, float],
    ) -> PlanProblem:
        """The planning problem: the planned sessions, what each node has for them, prices, PV, ZNI."""
        runtime = self.energy.runtime
        start = slot_start(now)
        moment = dt_util.utc_from_timestamp(now)
        sessions = []
        for key, need in needs.items():
            charger = tree.chargers[key]
            leave = next_departure(need.departure, moment).timestamp()
            sessions.append(
                PlanSession(
                    id=key,
                    node=charger.node,
                    arrival=now,
                    departure=leave,
                    energy_kwh=need.kwh if need.from_soc else max(need.kwh - delivered.get(key, 0.0), 0.0),
                    min_current_a=charger.min_current_a,
                    max_current_a=charger.max_current_a,
                    phases=charger.phases,
                    phase=charger.phase,
                )
            )
        nodes = []
        for node_id, node in tree.nodes.items():
            used = allocation.nodes.get(node_id)
            if used is None:
                nodes.append(PlanNode(node_id, node.parent, node.current_limit, node.max_power_w))
                continue
            # What the node has for the planned cars: its room now, minus the unplanned sessions' share.
            unplanned = [s for s in allocation.sessions.values() if s.session_id not in needs]
            below = {s.session_id for s in unplanned if node_id in tree.charger_path(s.charger_id)}
            taken = [0.0, 0.0, 0.0]
            taken_w = 0.0
            for session in unplanned:
                if session.session_id in below:
                    for phase in session.phases:
                        taken[phase] += session.setpoint_a
                    taken_w += session.setpoint_a * len(session.phases) * allocation.voltage_v
            current = tuple(max(a - t, 0.0) for a, t in zip(used.available_a, taken, strict=True))
            power = used.available_power_w - taken_w
            nodes.append(
                PlanNode(
                    node_id,
                    node.parent,
                    current if all(math.isfinite(a) for a in current) else None,  # type: ignore[arg-type]
                    max(power, 0.0) if math.isfinite(power) else None,
                )
            )
        settings = runtime.setting
        peak = settings(CONF_PRICE_PEAK)
        offpeak = settings(CONF_PRICE_OFFPEAK)
        peak_price = float(peak) if peak not in (None, "") else DEFAULT_PRICE
        price: float | list[float] = peak_price
        schedule = self.energy.tariffs.schedule
        if schedule is not None and offpeak not in (None, ""):
            flags = schedule.offpeak_slots(dt_util.utc_from_timestamp(start), SLOTS, timedelta(seconds=SLOT_S))
            price = [float(offpeak) if flag else peak_price for flag in flags]
        feed_in = settings(CONF_PRICE_FEED_IN)
        entity = settings(CONF_PV_FORECAST_ENTITY)
        forecast = pv_forecast_w(self.hass.states.get(entity), start) if entity else self.dashboard.watts(start)
        load_w = sum(allocation.nodes[tree.root].load_a) * allocation.voltage_v if allocation.nodes else 0.0
        pv = [max(w - load_w, 0.0) if w > 0 else 0.0 for w in forecast]
        zni = [1.0] * SLOTS
        client = self.energy.zni.client
        if client is not None:
            fraction = float(settings(CONF_ZNI_FRACTION, 50)) / 100
            for slot in client.forecast(moment):
                first = int((slot.start.timestamp() - start) // SLOT_S)
                last = math.ceil((slot.end.timestamp() - start) / SLOT_S)
                for index in range(max(first, 0), min(last, SLOTS)):
                    if slot.value == 0:
                        zni[index] = fraction
        return PlanProblem(
            start=start,
            sessions=sessions,
            nodes=nodes,
            price=price,
            pv_w=pv,
            feed_in=float(feed_in) if feed_in not in (None, "") else 0.0,
            zni=zni,
            slots=SLOTS,
            slot_s=SLOT_S,
            voltage_v=allocation.voltage_v,
        )
