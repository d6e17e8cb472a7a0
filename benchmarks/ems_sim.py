"""Replay a day of a charging site, second by second, through Cariflex's real energy manager.

The physics runs at 1 s steps; the energy manager (``custom_components.cariflex.ems``: the
:class:`~custom_components.cariflex.ems.Regulator` over a :class:`~custom_components.cariflex.ems.SiteTree`)
runs every ``--cycle`` seconds, exactly as the Home Assistant side calls it: read the main
board's meter, subtract the EV draws the chargers report (non-EV load = meter - EV draw), run
one cycle, send the setpoints that changed.

Everything is seeded and deterministic (except the measured compute times):

* **Site**: a main board (TGBT: breaker current per phase and subscribed power), 2-3 sub-boards
  (TD, breaker current) and charger groups (a current or a power limit). The sub-boards and
  groups feed chargers only; the building's load and the PV are behind the main board, whose
  meter is the only one.
* **Building load** per phase: a daily profile, slow noise and, unless ``--no-spikes``, random
  spikes: ovens (single-phase, thermostat cycling), heat pumps (three-phase), kettles.
* **PV**: a bell curve (``--pv-kw`` peak, three-phase inverter), with passing clouds unless
  ``--no-clouds``.
* **Sessions**: commuters, visitors and residents with an arrival, a departure, an energy need,
  the car's maximum current and phases (a single-phase car on a three-phase charger draws on one
  phase only) and a ramp delay (a new setpoint takes effect only 1..``--ramp-delay`` s after it
  is sent). A car tapers over the last 10 % of its need and draws nothing once full. A newly
  plugged car draws nothing until it receives its first setpoint (TxDefaultProfile of 0 A).
* **Meter**: at the main board, every second: building load + EV draws - PV, per phase (signed:
  a phase exporting PV gives a negative reading, which the EMS may use).

The report gives, per node, how far and how long its limit was exceeded (current on any phase
or total power; import direction only), split into *ramp* (the overshoot would vanish if every
car already drew its latest setpoint) and *load* (the building load or the PV moved since the
last cycle); the energy delivered against the energy requested; the fairness (Jain index of
delivered/requested over the sessions); the setpoint messages sent (``RegulatorResult.changed``)
and the compute time of a cycle.

``--day`` picks the kind of day; the charging strategy (``ems/strategy.py``) runs before the
regulator on the two strategy days, exactly as the Home Assistant side would call it:

* ``standard`` (default): every session charges as fast as the site allows (no strategy);
* ``pv-clouds``: a workplace with more PV than load and many passing clouds; sessions are in
  the PV modes (``--pv-modes``: a mix of pv / min_pv / now by default), three-phase chargers
  switch to one phase (``--no-phase-switching`` to forbid it). Reported: the PV
  self-consumption (and the building's alone), the EV energy from PV, the starts and stops the
  PV decided per EV and hour (not the start on arrival, nor the on/off of a car already full:
  neither starts or stops any charging on the surplus) next to every setpoint on/off, phase
  switches;
* ``zni``: the EDF-SEI grid signal of a ZNI site in 10-minute slots (0 at the morning and
  evening peaks and in a few random slots, plus a 30-minute outage of the feed while the
  published value is 1); each charger is capped at ``--zni-fraction`` of its nominal power in
  the 0 slots (announced changes are applied 30 s early). Reported: the energy charged in the
  0 slots, and whether any charger ever drew more than its cap in a 0 slot (second by second,
  and per slot).

``--scale N`` instead times cycles for N chargers in a 3-level tree (1 TGBT -> 10 TD -> N/10
groups of 10 chargers) with random loads and sessions coming and going.

    python -m benchmarks.ems_sim --sessions 30 --seed 1 --cycle 5
    python -m benchmarks.ems_sim --day pv-clouds
    python -m benchmarks.ems_sim --day zni --zni-max-sessions 6
    python -m benchmarks.ems_sim --scale 600
    python -m benchmarks.ems_sim --sessions 50 --json

Numbers, not pass/fail: nothing here is a test (tests/test_ems_sim.py tests the simulator).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
import json
import math
import random
import sys
import time
from typing import Any, Literal

from custom_components.cariflex.ems import (
    Charger,
    Node,
    NodeKind,
    PerPhase,
    Phase,
    Regulator,
    RegulatorConfig,
    Session,
    SiteTree,
    Strategy,
)
from custom_components.cariflex.ems.pv import ChargeMode, PvConfig
from custom_components.cariflex.ems.strategy import SessionSettings, SiteInputs, StrategyConfig, StrategyEngine
from custom_components.cariflex.ems.zni import ZniConfig

VOLTAGE_V = 230.0
DAY_S = 86_400
CAR_MIN_A = 6.0
"""Below this setpoint a car does not charge (IEC 61851 PWM)."""
TAPER = 0.10
"""A car tapers over the last TAPER of its need..."""
TAPER_FLOOR = 0.25
"""...down to TAPER_FLOOR of its maximum current."""
OVER_TOL_A = 1e-6
"""Float noise tolerated before a node counts as above its limit."""
DAYS = ("standard", "pv-clouds", "zni")
PV_MODE_CHOICES = ("mix", "pv", "min_pv", "now")
PV_MODE_MIX: tuple[tuple[ChargeMode, float], ...] = (
    (ChargeMode.PV, 0.5),
    (ChargeMode.MIN_PV, 0.3),
    (ChargeMode.NOW, 0.2),
)
ZNI_SLOT_S = 600
"""The EDF-SEI signal's time step."""
ZNI_ANTICIPATION_S = 30.0
PRESETS: dict[str, dict[str, Any]] = {
    "standard": {"sessions": 30, "pv_kw": 30.0, "base_kw": 14.0, "clouds_per_day": 18},
    "pv-clouds": {"sessions": 12, "pv_kw": 36.0, "base_kw": 6.0, "clouds_per_day": 40},
    "zni": {"sessions": 30, "pv_kw": 30.0, "base_kw": 14.0, "clouds_per_day": 18},
}
"""Per day, the values of the options left unset on the command line."""

# ---------------------------------------------------------------------------------------------
# Configuration and report
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DayConfig:
    """What to simulate (times in s, powers in kW unless named otherwise)."""

    sessions: int = 30
    seed: int = 1
    cycle_s: int = 5
    start_s: int = 0
    duration_s: int = DAY_S
    ramp_delay_s: int = 5
    spikes: bool = True
    clouds: bool = True
    pv_kw: float = 30.0
    base_kw: float = 14.0
    site_kw: float = 50.0
    breaker_a: float = 125.0
    limit_factor: float = 1.0
    strategy: Strategy = Strategy.EQUAL
    deadband_a: float = 1.0
    hold_s: float = 60.0
    step_a: float = 0.1
    day: str = "standard"
    clouds_per_day: int = 18
    pv_modes: str = "mix"
    phase_switching: bool = True
    zni_fraction: float = 0.5
    zni_max_sessions: int | None = None
    zni_anticipation_s: float = ZNI_ANTICIPATION_S

    def __post_init__(self) -> None:
        if self.cycle_s < 1 or self.duration_s < 1 or self.sessions < 0 or self.ramp_delay_s < 0:
            raise ValueError("cycle_s and duration_s must be >= 1, sessions and ramp_delay_s >= 0")
        if self.limit_factor <= 0:
            raise ValueError("limit_factor must be > 0")
        if self.day not in DAYS or self.pv_modes not in PV_MODE_CHOICES:
            raise ValueError(f"day must be one of {DAYS}, pv_modes one of {PV_MODE_CHOICES}")

    @property
    def uses_strategy(self) -> bool:
        """Whether the charging strategy runs before the regulator."""
        return self.day != "standard"

    def strategy_config(self) -> StrategyConfig:
        """The strategy's settings."""
        return StrategyConfig(
            voltage_v=VOLTAGE_V,
            pv=PvConfig(),
            zni=ZniConfig(
                enabled=self.day == "zni",
                fraction=self.zni_fraction,
                max_sessions=self.zni_max_sessions,
                anticipation_s=self.zni_anticipation_s,
            ),
        )

    def regulator(self) -> RegulatorConfig:
        """The regulator's settings."""
        return RegulatorConfig(
            strategy=self.strategy,
            voltage_v=VOLTAGE_V,
            step_a=self.step_a,
            deadband_a=self.deadband_a,
            hold_s=self.hold_s,
        )


@dataclass(slots=True)
class NodeReport:
    """How a node fared: its limits, its peak and its overshoots (import direction)."""

    node_id: str
    parent: str | None
    limit_a: float | None
    limit_w: float | None
    chargers: int
    peak_a: float = 0.0
    peak_w: float = 0.0
    max_over_a: float = 0.0
    max_over_w: float = 0.0
    over_wh: float = 0.0
    over_s: int = 0
    over_s_ramp: int = 0
    over_s_load: int = 0
    over_wh_ramp: float = 0.0
    over_wh_load: float = 0.0
    over_at_cycle: int = 0


@dataclass(slots=True)
class SessionReport:
    """One charging session's outcome."""

    session_id: str
    charger_id: str
    arrival_s: int
    departure_s: int
    car: str
    charger_phases: int
    draw_phases: int
    requested_kwh: float
    delivered_kwh: float = 0.0
    setpoints_sent: int = 0
    mode: str = "now"
    transitions: int = 0
    pv_transitions: int = 0
    phase_switches: int = 0


@dataclass(slots=True)
class Timing:
    """Compute time of a cycle, in ms."""

    cycles: int
    p50_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Timing:
        """Percentiles of ``seconds`` (nearest rank), in ms."""
        ordered = sorted(seconds)
        return cls(
            cycles=len(ordered),
            p50_ms=round(_percentile(ordered, 0.50) * 1000, 4),
            p99_ms=round(_percentile(ordered, 0.99) * 1000, 4),
            max_ms=round((ordered[-1] if ordered else 0.0) * 1000, 4),
        )


@dataclass(slots=True)
class PvDayReport:
    """PV figures of a day (energies in kWh).

    ``self_consumption``: share of the PV used on site (building + cars);
    ``building_self_consumption``: what it would be without the cars; ``ev_from_pv_kwh``: car
    energy covered by the PV left after the building. ``transitions``: every setpoint on/off of
    the PV-mode sessions; ``pv_transitions``: those the PV decided, that is without a start on
    the session's first cycle (``min_pv`` starts on arrival: its minimum, not the surplus) and
    without the on/off sent to a car already full (it charges neither way). ``..._per_ev_hour``:
    per plugged hour (``..._max``: the worst session plugged for at least an hour).
    """

    pv_kwh: float
    exported_kwh: float
    self_consumption: float
    building_self_consumption: float
    ev_kwh: float
    ev_from_pv_kwh: float
    transitions: int
    transitions_per_ev_hour: float
    transitions_per_ev_hour_max: float
    pv_transitions: int
    pv_transitions_per_ev_hour: float
    pv_transitions_per_ev_hour_max: float
    phase_switches: int
    by_mode: dict[str, dict[str, float]]


@dataclass(slots=True)
class ZniDayReport:
    """ZNI figures of a day.

    ``zero_slots``: published signal-0 slots; ``zero_slot_kwh``: energy charged in them;
    ``over_cap_s`` / ``max_over_cap_w``: charger-seconds above the cap in a 0 slot and the worst
    excess (0 means the cap always held); ``slots_over_cap``: (charger, slot) pairs whose mean
    power exceeded the cap. ``outage_over_cap_s``: the same during the feed outage, where the
    published signal is 1 but the safe default 0 applies once the loss is seen.
    """

    zero_slots: int
    zero_slot_hours: float
    zero_slot_kwh: float
    day_kwh: float
    over_cap_s: int
    max_over_cap_w: float
    slots_over_cap: int
    max_power_to_cap: float
    outage_s: int
    outage_over_cap_s: int
    evidence_entries: int
    delayed_session_s: int


@dataclass(slots=True)
class DayReport:
    """The outcome of :func:`simulate`."""

    config: dict[str, Any]
    chargers: int
    nodes: list[NodeReport]
    sessions: list[SessionReport]
    requested_kwh: float
    delivered_kwh: float
    delivered_ratio: float
    sessions_complete: int
    jain_index: float
    reserved_kwh: float
    reserved_used_ratio: float
    reserved_unused_kwh: dict[str, float]
    by_car: dict[str, dict[str, float]]
    setpoints_sent: int
    pauses_sent: int
    cycle: Timing
    wall_s: float
    mode: Literal["day"] = "day"
    pv: PvDayReport | None = None
    zni: ZniDayReport | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


@dataclass(slots=True)
class ScaleReport:
    """The outcome of :func:`scale`."""

    chargers: int
    nodes: int
    sessions_mean: float
    cycle: Timing
    changed_mean: float
    paused_mean: float
    seed: int
    wall_s: float
    mode: Literal["scale"] = "scale"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


def _percentile(ordered: Sequence[float], fraction: float) -> float:
    if not ordered:
        return 0.0
    rank = max(math.ceil(fraction * len(ordered)) - 1, 0)
    return ordered[min(rank, len(ordered) - 1)]


def jain_index(values: Sequence[float]) -> float:
    """Jain's fairness index: 1 when all values are equal, 1/n when one gets everything."""
    if not values:
        return 1.0
    square = sum(value * value for value in values)
    if square == 0:
        return 1.0
    return sum(values) ** 2 / (len(values) * square)


# ---------------------------------------------------------------------------------------------
# The site
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CarModel:
    """A car's charging capability."""

    name: str
    max_a: float
    phases: Literal[1, 3]


CARS: tuple[tuple[CarModel, float], ...] = (
    (CarModel("3ph-16A", 16.0, 3), 0.45),
    (CarModel("3ph-32A", 32.0, 3), 0.10),
    (CarModel("1ph-32A", 32.0, 1), 0.30),
    (CarModel("1ph-16A", 16.0, 1), 0.15),
)


def build_site(
    rng: random.Random, chargers: int, limit_factor: float = 1.0, site_kw: float = 50.0, breaker_a: float = 125.0
) -> SiteTree:
    """A TGBT, 2-3 TDs each with 1-2 groups, and ``chargers`` chargers spread over them."""
    nodes = [
        Node(
            "tgbt",
            kind=NodeKind.MAIN_BOARD,
            max_current_a=breaker_a * limit_factor,
            max_power_w=site_kw * 1000 * limit_factor,
            name="main board",
        )
    ]
    slots: list[str] = []
    group = 0
    for td in range(1, rng.choice((2, 3)) + 1):
        td_id = f"td{td}"
        nodes.append(Node(td_id, "tgbt", max_current_a=rng.choice((40.0, 63.0, 80.0)) * limit_factor))
        slots.append(td_id)
        for _ in range(rng.randint(1, 2)):
            group += 1
            group_id = f"g{group}"
            if rng.random() < 0.5:
                nodes.append(
                    Node(group_id, td_id, kind=NodeKind.GROUP, max_current_a=rng.choice((25.0, 32.0)) * limit_factor)
                )
            else:
                nodes.append(
                    Node(
                        group_id,
                        td_id,
                        kind=NodeKind.GROUP,
                        max_power_w=rng.choice((11_000.0, 22_000.0)) * limit_factor,
                    )
                )
            slots.append(group_id)
    charger_list: list[Charger] = []
    for index in range(chargers):
        phases: Literal[1, 3] = 1 if rng.random() < 0.25 else 3
        charger_list.append(
            Charger(
                f"cp{index + 1:02d}",
                slots[index % len(slots)],
                max_current_a=rng.choice((16.0, 32.0)) if phases == 3 else 32.0,
                phases=phases,
                # For a three-phase charger, the site phase its L1 is wired to (rotation): a
                # single-phase car draws there. The EMS ignores it for three-phase chargers.
                phase=Phase(index % 3),
            )
        )
    return SiteTree.build(nodes, charger_list)


# ---------------------------------------------------------------------------------------------
# Loads and production (arrays over the simulated window, one value per second)
# ---------------------------------------------------------------------------------------------


def _kw_to_phase_a(kw: float) -> float:
    return kw * 1000.0 / (3 * VOLTAGE_V)


def _bump(hour: float, start: float, end: float, edge: float = 1.0) -> float:
    """1 inside [start, end], smooth edges of ``edge`` hours, 0 outside."""
    if hour < start - edge or hour > end + edge:
        return 0.0
    if hour < start:
        return 0.5 - 0.5 * math.cos(math.pi * (hour - start + edge) / edge)
    if hour > end:
        return 0.5 + 0.5 * math.cos(math.pi * (hour - end) / edge)
    return 1.0


def building_load(config: DayConfig, rng: random.Random) -> list[list[float]]:
    """Building load per phase (A), one value per second of the window."""
    n = config.duration_s
    imbalance = (1.12, 0.96, 0.92)
    base = config.base_kw
    phases: list[list[float]] = [[0.0] * n for _ in range(3)]
    noise = [0.0, 0.0, 0.0]
    for i in range(n):
        hour = ((config.start_s + i) % DAY_S) / 3600.0
        kw = base * (
            0.45 + 0.55 * _bump(hour, 8.0, 18.0) + 0.35 * math.exp(-(((hour - 19.5) / 1.3) ** 2) / 2)
        ) + 0.15 * base * math.exp(-(((hour - 12.5) / 0.8) ** 2) / 2)
        amps = _kw_to_phase_a(kw)
        for p in range(3):
            noise[p] = 0.998 * noise[p] + rng.gauss(0.0, 0.12)
            phases[p][i] = max(amps * imbalance[p] + noise[p], 0.0)
    if not config.spikes:
        return phases

    def add(phase_list: Sequence[int], start: int, duration: int, amps: float) -> None:
        for i in range(max(start, 0), min(start + duration, n)):
            for p in phase_list:
                phases[p][i] += amps

    scale = n / DAY_S
    # Ovens: single-phase, 2-3.5 kW, 20-60 min around lunch and dinner, thermostat cycling.
    for _ in range(max(1, round(8 * scale))):
        centre = rng.choice((12.0, 19.0)) * 3600 + rng.gauss(0, 2400) - config.start_s
        start = int(centre % DAY_S) if config.duration_s == DAY_S else int(rng.uniform(0, n))
        length = rng.randint(1200, 3600)
        amps = rng.uniform(2000, 3500) / VOLTAGE_V
        phase = rng.randrange(3)
        on = rng.randint(120, 300)
        off = rng.randint(60, 240)
        t = start
        while t < start + length:
            add((phase,), t, on, amps)
            t += on + off
    # Heat pumps: three-phase, 3-9 kW, run 10-40 min.
    for _ in range(max(1, round(14 * scale))):
        start = int(rng.uniform(0, n))
        add((0, 1, 2), start, rng.randint(600, 2400), _kw_to_phase_a(rng.uniform(3.0, 9.0)))
    # Kettles, hair dryers, vacuum: single-phase, 1.5-2.5 kW, 2-6 min.
    for _ in range(max(1, round(30 * scale))):
        add((rng.randrange(3),), int(rng.uniform(0, n)), rng.randint(120, 360), rng.uniform(1500, 2500) / VOLTAGE_V)
    return phases


def pv_production(config: DayConfig, rng: random.Random) -> list[float]:
    """PV production per phase (A, three-phase inverter), one value per second of the window."""
    n = config.duration_s
    sunrise, sunset, noon, sigma = 6.5, 20.5, 13.5, 2.6
    peak = _kw_to_phase_a(config.pv_kw)
    values = [0.0] * n
    for i in range(n):
        hour = ((config.start_s + i) % DAY_S) / 3600.0
        if sunrise < hour < sunset:
            values[i] = peak * math.exp(-(((hour - noon) / sigma) ** 2) / 2)
    if config.clouds and config.pv_kw > 0:
        for _ in range(max(1, round(config.clouds_per_day * n / DAY_S))):
            hour = rng.uniform(sunrise + 1, sunset - 1)
            start = int(hour * 3600) - config.start_s if config.duration_s == DAY_S else int(rng.uniform(0, n))
            length = rng.randint(60, 600)
            depth = rng.uniform(0.3, 0.8)
            edge = rng.randint(5, 30)
            for i in range(max(start, 0), min(start + length, n)):
                ramp = min((i - start) / edge, (start + length - i) / edge, 1.0)
                values[i] *= 1.0 - depth * ramp
    return values


# ---------------------------------------------------------------------------------------------
# Sessions
# ---------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Car:
    """A session during the simulation (times relative to the window start)."""

    report: SessionReport
    arrival: int
    departure: int
    model: CarModel
    charger: Charger
    delay: int
    need_wh: float
    draw_phases: tuple[int, ...] = ()
    path: tuple[int, ...] = ()
    applied: float = 0.0
    last_sent: float = 0.0
    pending: list[tuple[int, float, int]] = field(default_factory=list)
    delivered_wh: float = 0.0
    draw: float = 0.0
    settings: SessionSettings = field(default_factory=SessionSettings)
    phases: int = 3
    """The phases the charger gives (1 once switched to one phase)."""
    sent_phases: int = 3
    charging: bool = False
    cycled: bool = False
    """Whether the EMS has run a cycle with this session (its first decision is the arrival one)."""

    def apply(self, value: float, phases: int) -> None:
        """The charger now applies ``value`` A on ``phases`` phases."""
        self.applied = value
        if phases != self.phases:
            self.phases = phases
            self.draw_phases = (
                _effective_phases(self.model, self.charger) if phases == 3 else (int(self.charger.phase),)
            )


def _arrival_departure(rng: random.Random, config: DayConfig) -> tuple[int, int] | None:
    """One session's (arrival, departure) in window seconds, or None if outside the window."""
    kind = rng.random()
    if kind < 0.45:  # commuter
        arrival_h = rng.gauss(8.5, 1.0)
        stay_h = rng.uniform(6.0, 10.0)
    elif kind < 0.75:  # visitor
        arrival_h = rng.uniform(9.0, 18.0)
        stay_h = rng.uniform(0.5, 3.0)
    elif kind < 0.95:  # resident, overnight
        arrival_h = rng.gauss(18.5, 1.5)
        stay_h = rng.uniform(10.0, 14.0)
    else:  # night owl
        arrival_h = rng.uniform(0.0, 3.0)
        stay_h = rng.uniform(3.0, 7.0)
    arrival = int(arrival_h * 3600) - config.start_s
    departure = min(arrival + int(stay_h * 3600), config.duration_s)
    if arrival < 0 or departure - arrival < 600:
        return None
    return arrival, departure


def make_sessions(rng: random.Random, config: DayConfig) -> tuple[list[tuple[int, int, CarModel]], int]:
    """Sessions (arrival, departure, car) in arrival order, and the chargers they need."""
    found: list[tuple[int, int, CarModel]] = []
    attempts = 0
    while len(found) < config.sessions:
        attempts += 1
        if attempts > 1000 * (config.sessions + 1):
            raise ValueError("the window is too short to place the sessions")
        times = _arrival_departure(rng, config)
        if times is None:
            continue
        model = rng.choices([car for car, _ in CARS], weights=[weight for _, weight in CARS])[0]
        found.append((times[0], times[1], model))
    found.sort(key=lambda item: (item[0], item[1]))
    events = sorted([(a, 1) for a, _, _ in found] + [(d, -1) for _, d, _ in found])
    busy = peak = 0
    for _, change in events:
        busy += change
        peak = max(peak, busy)
    return found, peak


def _effective_phases(model: CarModel, charger: Charger) -> tuple[int, ...]:
    if model.phases == 3 and charger.phases == 3:
        return (0, 1, 2)
    return (int(charger.phase),)


# ---------------------------------------------------------------------------------------------
# The day simulation
# ---------------------------------------------------------------------------------------------


class _Sim:
    """State of one day simulation (kept in one object so the 1 s loop stays flat and fast)."""

    def __init__(self, config: DayConfig) -> None:
        self.config = config
        # One random stream per component, so that changing one option (say the ramp delay or
        # the spikes) leaves everything else as it was.
        rng = random.Random(f"{config.seed}:sessions")
        plan, peak = make_sessions(rng, config)
        self.tree = build_site(
            random.Random(f"{config.seed}:site"), max(peak, 1), config.limit_factor, config.site_kw, config.breaker_a
        )
        self.base = building_load(config, random.Random(f"{config.seed}:building"))
        self.pv = pv_production(config, random.Random(f"{config.seed}:pv"))
        self.node_ids = list(self.tree.nodes)
        self.index = {node_id: i for i, node_id in enumerate(self.node_ids)}
        self.root = self.index[self.tree.root]
        self.limits_a = [self.tree.nodes[n].current_limit for n in self.node_ids]
        self.limits_w = [self.tree.nodes[n].max_power_w for n in self.node_ids]
        counts = dict.fromkeys(self.node_ids, 0)
        for charger in self.tree.chargers.values():
            for node_id in self.tree.charger_path(charger.id):
                counts[node_id] += 1
        self.nodes = [
            NodeReport(
                node_id=n,
                parent=self.tree.nodes[n].parent,
                limit_a=None if self.limits_a[i] is None else max(self.limits_a[i] or (0.0,)),
                limit_w=self.limits_w[i],
                chargers=counts[n],
            )
            for i, n in enumerate(self.node_ids)
        ]
        # Each session gets a random free charger; the need is what the car could take in
        # 75 % of its stay on that charger (so it is feasible on an unconstrained site).
        chargers = list(self.tree.chargers.values())
        free_at = {charger.id: -1 for charger in chargers}
        self.cars: list[_Car] = []
        for number, (arrival, departure, model) in enumerate(plan, start=1):
            free = [charger for charger in chargers if free_at[charger.id] <= arrival]
            charger = rng.choice(free)
            free_at[charger.id] = departure
            phases = _effective_phases(model, charger)
            power_w = VOLTAGE_V * min(model.max_a, charger.max_current_a) * len(phases)
            feasible_wh = 0.75 * power_w * (departure - arrival) / 3600
            need_wh = min(rng.uniform(4_000, 40_000), feasible_wh)
            delay_draw = 1.0 - rng.random()  # in (0, 1]: 1..ramp_delay_s s
            self.cars.append(
                _Car(
                    report=SessionReport(
                        session_id=f"s{number:02d}",
                        charger_id=charger.id,
                        arrival_s=config.start_s + arrival,
                        departure_s=config.start_s + departure,
                        car=model.name,
                        charger_phases=charger.phases,
                        draw_phases=len(phases),
                        requested_kwh=round(need_wh / 1000, 3),
                    ),
                    arrival=arrival,
                    departure=departure,
                    model=model,
                    charger=charger,
                    delay=math.ceil(delay_draw * config.ramp_delay_s),
                    need_wh=need_wh,
                    draw_phases=phases,
                    path=tuple(self.index[n] for n in self.tree.charger_path(charger.id)),
                    phases=charger.phases,
                    sent_phases=charger.phases,
                )
            )
        self.regulator = Regulator(config.regulator())
        self.engine = StrategyEngine(config.strategy_config()) if config.uses_strategy else None
        self._assign_modes(random.Random(f"{config.seed}:modes"))
        self.zni_published, self.zni_received = (
            zni_schedule(config, random.Random(f"{config.seed}:zni")) if config.day == "zni" else ([], [])
        )
        self.evidence = 0
        self.delayed_s = 0
        self.pv_acc = dict.fromkeys(("pv", "export", "self", "building_self", "ev", "ev_pv"), 0.0)
        self.zni_acc = {"zero_wh": 0.0, "day_wh": 0.0, "over_s": 0, "max_over_w": 0.0, "max_ratio": 0.0}
        self.zni_acc.update({"outage_s": 0, "outage_over_s": 0})
        self.slot_energy: dict[tuple[str, int], float] = {}
        self.cycle_times: list[float] = []
        self.setpoints_sent = 0
        self.pauses_sent = 0
        self.reserved_wh = 0.0
        self.unused_wh = {"car_full": 0.0, "phase_mismatch": 0.0, "below_setpoint": 0.0}

    def _assign_modes(self, rng: random.Random) -> None:
        """PV modes and phase switching of the sessions (pv-clouds day)."""
        if self.config.day != "pv-clouds":
            return
        for car in self.cars:
            if self.config.pv_modes == "mix":
                mode = rng.choices([m for m, _ in PV_MODE_MIX], weights=[w for _, w in PV_MODE_MIX])[0]
            else:
                mode = ChargeMode(self.config.pv_modes)
            car.settings = SessionSettings(
                mode=mode, phase_switching=self.config.phase_switching and car.charger.phases == 3
            )
            car.report.mode = str(mode)

    @staticmethod
    def car_draw(car: _Car, setpoint: float) -> float:
        """What the car draws per phase this second with ``setpoint`` applied."""
        remaining = car.need_wh - car.delivered_wh
        if setpoint < CAR_MIN_A or remaining <= 1e-9:
            return 0.0
        amps = min(setpoint, car.model.max_a)
        fraction = remaining / car.need_wh
        if fraction < TAPER:
            amps = min(amps, car.model.max_a * max(fraction / TAPER, TAPER_FLOOR))
        # Not more than what is left to fill this second.
        return min(amps, remaining * 3600 / (VOLTAGE_V * len(car.draw_phases)))

    def ems_cycle(self, t: int, active: list[_Car], currents: list[list[float]]) -> None:
        """Read the meter, run the strategy (strategy days) and one regulator cycle, send what changed."""
        now = float(self.config.start_s + t)
        root = self.root
        ev = [0.0, 0.0, 0.0]
        sessions: list[Session] = []
        for car in active:
            measured = [0.0, 0.0, 0.0]
            for p in car.draw_phases:
                measured[p] = car.draw
                ev[p] += car.draw
            sessions.append(
                Session(
                    car.report.session_id,
                    car.charger.id,
                    arrival=float(self.config.start_s + car.arrival),
                    measured_a=(measured[0], measured[1], measured[2]),
                    setpoint_a=car.applied,
                )
            )
        meter = currents[root]
        non_ev: PerPhase = (meter[0] - ev[0], meter[1] - ev[1], meter[2] - ev[2])
        tree = self.tree.with_measurement(self.tree.root, non_ev, at=now)
        signal, upcoming = self.zni_inputs(t)
        started = time.perf_counter()
        if self.engine is not None:
            site = SiteInputs(grid_power_w=VOLTAGE_V * sum(meter), zni_signal=signal, zni_next=upcoming)
            # A full car offered current says so (OCPP SuspendedEV): the PV modes keep no surplus for it.
            settings = {
                car.report.session_id: replace(
                    car.settings, car_idle=car.applied >= CAR_MIN_A and car.delivered_wh >= car.need_wh - 1e-9
                )
                for car in active
            }
            strategy = self.engine.cycle(now, tree, sessions, site, settings)
            self.evidence += len(strategy.evidence)
            self.delayed_s += len(strategy.zni.delayed) * self.config.cycle_s
            sessions = strategy.apply(sessions)
        result = self.regulator.cycle(tree, sessions, now)
        self.cycle_times.append(time.perf_counter() - started)
        by_id = {car.report.session_id: car for car in active}
        for session_id in result.changed:
            car = by_id[session_id]
            value = result.setpoint(session_id)
            phases = result.setpoints[session_id].number_of_phases or car.charger.phases
            self.setpoints_sent += 1
            self.pauses_sent += value == 0
            car.report.setpoints_sent += 1
            car.last_sent = value
            if (value > 0) != car.charging:
                car.charging = value > 0
                car.report.transitions += 1
                on_arrival = car.charging and not car.cycled
                car.report.pv_transitions += not (on_arrival or car.delivered_wh >= car.need_wh - 1e-9)
            if phases != car.sent_phases:
                car.sent_phases = phases
                car.report.phase_switches += 1
            if car.delay == 0:
                car.apply(value, phases)
                car.pending.clear()
            else:
                car.pending.append((t + car.delay, value, phases))
        for car in active:
            car.cycled = True

    def zni_inputs(self, t: int) -> tuple[int | None, tuple[float, int] | None]:
        """The ZNI signal received at window second ``t`` and the next announced change (None: none)."""
        if not self.zni_received:
            return None, None
        slot = self._slot(t)
        signal = self.zni_received[slot]
        if signal is None:
            return None, None
        for later in range(slot + 1, len(self.zni_published)):
            if self.zni_published[later] != signal:
                return signal, (float(later * ZNI_SLOT_S), self.zni_published[later])
        return signal, None

    def _slot(self, t: int) -> int:
        return (self.config.start_s + t) // ZNI_SLOT_S

    def node_currents(self, t: int, active: list[_Car], *, target: bool = False) -> list[list[float]]:
        """Current per node and phase this second (building and PV on the root)."""
        currents = [[0.0, 0.0, 0.0] for _ in self.node_ids]
        root = currents[self.root]
        pv = self.pv[t]
        for p in range(3):
            root[p] = self.base[p][t] - pv
        for car in active:
            amps = self.car_draw(car, car.last_sent) if target else car.draw
            if amps:
                for n in car.path:
                    row = currents[n]
                    for p in car.draw_phases:
                        row[p] += amps
        return currents

    def excess(self, currents: list[list[float]]) -> list[tuple[float, float, float]]:
        """Per node: (excess in W, worst phase above its limit in A, power above its limit in W)."""
        result: list[tuple[float, float, float]] = []
        for i, row in enumerate(currents):
            over_a = over_phase_w = 0.0
            limit = self.limits_a[i]
            if limit is not None:
                for p in range(3):
                    above = row[p] - limit[p]
                    if above > OVER_TOL_A:
                        over_a = max(over_a, above)
                        over_phase_w += above * VOLTAGE_V
            over_w = 0.0
            limit_w = self.limits_w[i]
            if limit_w is not None:
                over_w = max(VOLTAGE_V * (row[0] + row[1] + row[2]) - limit_w, 0.0)
                if over_w <= OVER_TOL_A * VOLTAGE_V:
                    over_w = 0.0
            result.append((max(over_phase_w, over_w), over_a, over_w))
        return result

    def run(self) -> DayReport:
        """Simulate the whole window."""
        config = self.config
        started = time.perf_counter()
        pending_arrivals = list(self.cars)
        pending_arrivals.reverse()
        active: list[_Car] = []
        unused = self.unused_wh
        for t in range(config.duration_s):
            if active and any(car.departure <= t for car in active):
                active = [car for car in active if car.departure > t]
            while pending_arrivals and pending_arrivals[-1].arrival <= t:
                active.append(pending_arrivals.pop())
            for car in active:
                while car.pending and car.pending[0][0] <= t:
                    _, value, phases = car.pending.pop(0)
                    car.apply(value, phases)
                car.draw = self.car_draw(car, car.applied)
            is_cycle = t % config.cycle_s == 0
            if is_cycle:
                self.ems_cycle(t, active, self.node_currents(t, active))
                for car in active:
                    car.draw = self.car_draw(car, car.applied)
            currents = self.node_currents(t, active)
            excess = self.excess(currents)
            target_excess: list[tuple[float, float, float]] | None = None
            for i, (node, row) in enumerate(zip(self.nodes, currents, strict=True)):
                node.peak_a = max(node.peak_a, row[0], row[1], row[2])
                node.peak_w = max(node.peak_w, VOLTAGE_V * (row[0] + row[1] + row[2]))
                over_w, over_a, over_power = excess[i]
                if over_w <= 0:
                    continue
                if target_excess is None:
                    target_excess = self.excess(self.node_currents(t, active, target=True))
                node.over_s += 1
                node.over_wh += over_w / 3600
                node.max_over_a = max(node.max_over_a, over_a)
                node.max_over_w = max(node.max_over_w, over_power)
                node.over_at_cycle += is_cycle
                if target_excess[i][0] <= 0:
                    node.over_s_ramp += 1
                    node.over_wh_ramp += over_w / 3600
                else:
                    node.over_s_load += 1
                    node.over_wh_load += over_w / 3600
            for car in active:
                if car.draw:
                    car.delivered_wh += car.draw * VOLTAGE_V * len(car.draw_phases) / 3600
                # What the EMS counts for this car: its setpoint on every phase of its charger;
                # and why the car draws less.
                if car.applied:
                    self.reserved_wh += car.applied * VOLTAGE_V * car.phases / 3600
                    if car.delivered_wh >= car.need_wh - 1e-9 and not car.draw:
                        unused["car_full"] += car.applied * VOLTAGE_V * car.phases / 3600
                    else:
                        mismatch = car.draw * (car.phases - len(car.draw_phases))
                        unused["phase_mismatch"] += mismatch * VOLTAGE_V / 3600
                        unused["below_setpoint"] += (car.applied - car.draw) * car.phases * VOLTAGE_V / 3600
            if config.day == "pv-clouds":
                self.account_pv(t, active)
            elif config.day == "zni":
                self.account_zni(t, active)
        return self.report(time.perf_counter() - started)

    def account_pv(self, t: int, active: list[_Car]) -> None:
        """This second's PV, export and self-consumption (on the total of the three phases)."""
        acc = self.pv_acc
        pv = self.pv[t] * 3 * VOLTAGE_V
        building = VOLTAGE_V * (self.base[0][t] + self.base[1][t] + self.base[2][t])
        ev = VOLTAGE_V * sum(car.draw * len(car.draw_phases) for car in active)
        used = min(pv, building + ev)
        acc["pv"] += pv / 3600
        acc["self"] += used / 3600
        acc["export"] += (pv - used) / 3600
        acc["building_self"] += min(pv, building) / 3600
        acc["ev"] += ev / 3600
        acc["ev_pv"] += min(ev, max(pv - building, 0.0)) / 3600

    def account_zni(self, t: int, active: list[_Car]) -> None:
        """This second against the ZNI caps of the published signal."""
        acc = self.zni_acc
        slot = self._slot(t)
        zero = self.zni_published[slot] == 0
        outage = self.zni_received[slot] is None
        acc["outage_s"] += outage
        fraction = self.config.zni_fraction
        for car in active:
            power = car.draw * VOLTAGE_V * len(car.draw_phases)
            acc["day_wh"] += power / 3600
            if not (zero or outage):
                continue
            cap = fraction * car.charger.max_current_a * car.charger.phases * VOLTAGE_V
            if outage and not zero:
                acc["outage_over_s"] += power > cap + 1e-6
                continue
            acc["zero_wh"] += power / 3600
            key = (car.charger.id, slot)
            self.slot_energy[key] = self.slot_energy.get(key, 0.0) + power / 3600
            if power > cap + 1e-6:
                acc["over_s"] += 1
                acc["max_over_w"] = max(acc["max_over_w"], power - cap)
            if cap > 0:
                acc["max_ratio"] = max(acc["max_ratio"], power / cap)

    def report(self, wall_s: float) -> DayReport:
        """Gather the figures."""
        for car in self.cars:
            car.report.delivered_kwh = round(car.delivered_wh / 1000, 3)
        for node in self.nodes:
            node.peak_a = round(node.peak_a, 2)
            node.peak_w = round(node.peak_w, 1)
            node.max_over_a = round(node.max_over_a, 3)
            node.max_over_w = round(node.max_over_w, 1)
            node.over_wh = round(node.over_wh, 3)
            node.over_wh_ramp = round(node.over_wh_ramp, 3)
            node.over_wh_load = round(node.over_wh_load, 3)
        requested = sum(car.need_wh for car in self.cars)
        delivered = sum(car.delivered_wh for car in self.cars)
        by_car: dict[str, dict[str, float]] = {}
        for car in self.cars:
            key = f"{car.model.name} on {car.charger.phases}ph"
            entry = by_car.setdefault(key, {"sessions": 0, "requested_kwh": 0.0, "delivered_kwh": 0.0})
            entry["sessions"] += 1
            entry["requested_kwh"] += car.need_wh / 1000
            entry["delivered_kwh"] += car.delivered_wh / 1000
        for entry in by_car.values():
            entry["ratio"] = (
                round(entry["delivered_kwh"] / entry["requested_kwh"], 4) if entry["requested_kwh"] else 1.0
            )
            entry["requested_kwh"] = round(entry["requested_kwh"], 3)
            entry["delivered_kwh"] = round(entry["delivered_kwh"], 3)
        config = asdict(self.config)
        config["strategy"] = str(self.config.strategy)
        return DayReport(
            config=config,
            chargers=len(self.tree.chargers),
            nodes=self.nodes,
            sessions=[car.report for car in self.cars],
            requested_kwh=round(requested / 1000, 3),
            delivered_kwh=round(delivered / 1000, 3),
            delivered_ratio=round(delivered / requested, 5) if requested else 1.0,
            sessions_complete=sum(car.delivered_wh >= car.need_wh * 0.999 for car in self.cars),
            jain_index=round(jain_index([car.delivered_wh / car.need_wh for car in self.cars]), 5),
            reserved_kwh=round(self.reserved_wh / 1000, 3),
            reserved_used_ratio=round(delivered / self.reserved_wh, 5) if self.reserved_wh else 1.0,
            reserved_unused_kwh={key: round(value / 1000, 3) for key, value in self.unused_wh.items()},
            by_car=dict(sorted(by_car.items())),
            setpoints_sent=self.setpoints_sent,
            pauses_sent=self.pauses_sent,
            cycle=Timing.of(self.cycle_times),
            wall_s=round(wall_s, 2),
            pv=self.pv_report() if config["day"] == "pv-clouds" else None,
            zni=self.zni_report() if config["day"] == "zni" else None,
        )

    def pv_report(self) -> PvDayReport:
        """The PV figures."""
        acc = self.pv_acc
        following = [car for car in self.cars if car.settings.mode in (ChargeMode.PV, ChargeMode.MIN_PV)]
        hours = sum((car.departure - car.arrival) / 3600 for car in following)
        long_stays = [car for car in following if car.departure - car.arrival >= 3600]
        by_mode: dict[str, dict[str, float]] = {}
        for car in self.cars:
            entry = by_mode.setdefault(
                car.report.mode, {"sessions": 0, "requested_kwh": 0.0, "delivered_kwh": 0.0, "transitions": 0}
            )
            entry["sessions"] += 1
            entry["requested_kwh"] = round(entry["requested_kwh"] + car.need_wh / 1000, 3)
            entry["delivered_kwh"] = round(entry["delivered_kwh"] + car.delivered_wh / 1000, 3)
            entry["transitions"] += car.report.transitions
        transitions = sum(car.report.transitions for car in following)
        decided = sum(car.report.pv_transitions for car in following)

        def worst(count: Callable[[_Car], int]) -> float:
            rates = (count(car) / ((car.departure - car.arrival) / 3600) for car in long_stays)
            return round(max(rates, default=0.0), 3)

        return PvDayReport(
            pv_kwh=round(acc["pv"] / 1000, 3),
            exported_kwh=round(acc["export"] / 1000, 3),
            self_consumption=round(acc["self"] / acc["pv"], 4) if acc["pv"] else 0.0,
            building_self_consumption=round(acc["building_self"] / acc["pv"], 4) if acc["pv"] else 0.0,
            ev_kwh=round(acc["ev"] / 1000, 3),
            ev_from_pv_kwh=round(acc["ev_pv"] / 1000, 3),
            transitions=transitions,
            transitions_per_ev_hour=round(transitions / hours, 3) if hours else 0.0,
            transitions_per_ev_hour_max=worst(lambda car: car.report.transitions),
            pv_transitions=decided,
            pv_transitions_per_ev_hour=round(decided / hours, 3) if hours else 0.0,
            pv_transitions_per_ev_hour_max=worst(lambda car: car.report.pv_transitions),
            phase_switches=sum(car.report.phase_switches for car in self.cars),
            by_mode=dict(sorted(by_mode.items())),
        )

    def zni_report(self) -> ZniDayReport:
        """The ZNI figures."""
        acc = self.zni_acc
        first = self._slot(0)
        last = self._slot(self.config.duration_s - 1)
        zero = [slot for slot in range(first, last + 1) if self.zni_published[slot] == 0]
        over_slots = 0
        for (charger_id, _slot), wh in self.slot_energy.items():
            charger = self.tree.chargers[charger_id]
            cap_w = self.config.zni_fraction * charger.max_current_a * charger.phases * VOLTAGE_V
            over_slots += wh > cap_w * ZNI_SLOT_S / 3600 + 1e-6
        return ZniDayReport(
            zero_slots=len(zero),
            zero_slot_hours=round(len(zero) * ZNI_SLOT_S / 3600, 2),
            zero_slot_kwh=round(acc["zero_wh"] / 1000, 3),
            day_kwh=round(acc["day_wh"] / 1000, 3),
            over_cap_s=int(acc["over_s"]),
            max_over_cap_w=round(acc["max_over_w"], 1),
            slots_over_cap=over_slots,
            max_power_to_cap=round(acc["max_ratio"], 4),
            outage_s=int(acc["outage_s"]),
            outage_over_cap_s=int(acc["outage_over_s"]),
            evidence_entries=self.evidence,
            delayed_session_s=self.delayed_s,
        )


def zni_schedule(config: DayConfig, rng: random.Random) -> tuple[list[int], list[int | None]]:
    """The EDF-SEI signal per 10-minute slot from midnight to the end of the window: published and received.

    Published, every day: 0 from 06:00 to 07:30 and from 17:30 to 21:00, plus three random 0
    periods of 20-60 minutes between 09:00 and 17:00. Received: the same, except a 30-minute
    outage of the feed (None) during a 1 period between 10:00 and 16:00.
    """
    per_day = DAY_S // ZNI_SLOT_S
    per_hour = 3600 // ZNI_SLOT_S
    day: list[int] = [1] * per_day
    for first, last in ((6 * per_hour, 7 * per_hour + 3), (17 * per_hour + 3, 21 * per_hour)):
        day[first:last] = [0] * (last - first)
    for _ in range(3):
        first = rng.randrange(9 * per_hour, 16 * per_hour)
        last = first + rng.randint(2, 6)
        day[first:last] = [0] * (last - first)
    outage = rng.choice([k for k in range(10 * per_hour, 16 * per_hour - 3) if day[k : k + 3] == [1, 1, 1]])
    received_day: list[int | None] = list(day)
    received_day[outage : outage + 3] = [None, None, None]
    slots = math.ceil((config.start_s + config.duration_s) / ZNI_SLOT_S)
    return [day[k % per_day] for k in range(slots)], [received_day[k % per_day] for k in range(slots)]


def simulate(config: DayConfig | None = None) -> DayReport:
    """Simulate a day (or ``config.duration_s``) and report."""
    return _Sim(config or DayConfig()).run()


# ---------------------------------------------------------------------------------------------
# Scale mode
# ---------------------------------------------------------------------------------------------


def build_scale_site(rng: random.Random, chargers: int) -> SiteTree:
    """1 TGBT -> up to 10 TDs -> groups of 10 chargers, with meters on the TGBT and the TDs."""
    groups = max(math.ceil(chargers / 10), 1)
    tds = min(10, groups)
    nodes = [Node("tgbt", kind=NodeKind.MAIN_BOARD, max_current_a=4000.0, max_power_w=2_500_000.0)]
    nodes += [Node(f"td{d + 1}", "tgbt", max_current_a=400.0) for d in range(tds)]
    for g in range(groups):
        limit: dict[str, Any] = (
            {"max_current_a": 63.0} if rng.random() < 0.5 else {"max_power_w": rng.choice((44_000.0, 66_000.0))}
        )
        nodes.append(Node(f"g{g + 1}", f"td{g % tds + 1}", kind=NodeKind.GROUP, **limit))
    charger_list = []
    for c in range(chargers):
        phases: Literal[1, 3] = 1 if rng.random() < 0.25 else 3
        charger_list.append(
            Charger(
                f"cp{c + 1:04d}",
                f"g{c // 10 + 1}",
                max_current_a=rng.choice((16.0, 32.0)),
                phases=phases,
                phase=Phase(c % 3),
            )
        )
    return SiteTree.build(nodes, charger_list)


def scale(
    chargers: int = 600,
    cycles: int = 200,
    seed: int = 1,
    cycle_s: float = 5.0,
    regulator: RegulatorConfig | None = None,
) -> ScaleReport:
    """Time ``cycles`` regulator cycles over ``chargers`` chargers with random loads and sessions."""
    if chargers < 1 or cycles < 1:
        raise ValueError("chargers and cycles must be >= 1")
    started = time.perf_counter()
    rng = random.Random(seed)
    tree = build_scale_site(rng, chargers)
    td_ids = [node_id for node_id in tree.nodes if node_id.startswith("td")]
    loads = {node_id: [rng.uniform(0, 40) for _ in range(3)] for node_id in td_ids}
    loads["tgbt"] = [rng.uniform(100, 400) for _ in range(3)]
    reg = Regulator(regulator or RegulatorConfig())
    charger_ids = list(tree.chargers)
    # charger id -> (session id, arrival, car max A, car phases, full)
    active: dict[str, tuple[str, float, float, int, bool]] = {}
    serial = 0

    def plug(charger_id: str, now: float) -> None:
        nonlocal serial
        serial += 1
        model = rng.choices([car for car, _ in CARS], weights=[weight for _, weight in CARS])[0]
        active[charger_id] = (f"s{serial}", now, model.max_a, model.phases, rng.random() < 0.1)

    for charger_id in charger_ids:
        if rng.random() < 0.9:
            plug(charger_id, 0.0)
    setpoints: dict[str, float] = {}
    times: list[float] = []
    changed = paused = sizes = 0
    for k in range(cycles):
        now = k * cycle_s
        for charger_id in charger_ids:
            if charger_id in active and rng.random() < 0.01:
                setpoints.pop(active.pop(charger_id)[0], None)
            elif charger_id not in active and rng.random() < 0.05:
                plug(charger_id, now)
        for values in loads.values():
            for p in range(3):
                values[p] = max(values[p] + rng.gauss(0, 3.0), 0.0)
        for node_id, values in loads.items():
            tree = tree.with_measurement(node_id, (values[0], values[1], values[2]), at=now)
        sessions = []
        for charger_id, (session_id, arrival, car_max, car_phases, full) in active.items():
            charger = tree.chargers[charger_id]
            draw = 0.0 if full else min(setpoints.get(session_id, 0.0), car_max) * rng.uniform(0.95, 1.0)
            measured = [0.0, 0.0, 0.0]
            for p in (0, 1, 2) if car_phases == 3 and charger.phases == 3 else (int(charger.phase),):
                measured[p] = draw
            sessions.append(
                Session(
                    session_id,
                    charger_id,
                    arrival=arrival,
                    measured_a=(measured[0], measured[1], measured[2]),
                    setpoint_a=setpoints.get(session_id),
                )
            )
        sizes += len(sessions)
        tick = time.perf_counter()
        result = reg.cycle(tree, sessions, now)
        times.append(time.perf_counter() - tick)
        changed += len(result.changed)
        paused += sum(value.paused for value in result.setpoints.values())
        setpoints = {key: value.setpoint_a for key, value in result.setpoints.items()}
    return ScaleReport(
        chargers=chargers,
        nodes=len(tree.nodes),
        sessions_mean=round(sizes / cycles, 1),
        cycle=Timing.of(times),
        changed_mean=round(changed / cycles, 1),
        paused_mean=round(paused / cycles, 1),
        seed=seed,
        wall_s=round(time.perf_counter() - started, 2),
    )


# ---------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------


def _hhmm(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}"


def format_day(report: DayReport) -> str:
    """A readable table of a day report."""
    c = report.config
    lines = [
        f"Cariflex EMS day simulation: seed {c['seed']}, {len(report.sessions)} sessions on {report.chargers} chargers, "
        f"{_hhmm(c['start_s'])} + {c['duration_s'] / 3600:g} h, cycle {c['cycle_s']} s, ramp delay <= {c['ramp_delay_s']} s, "
        f"spikes {'on' if c['spikes'] else 'off'}, clouds {'on' if c['clouds'] else 'off'}, PV {c['pv_kw']:g} kWp, "
        f"strategy {c['strategy']}" + ("" if c["day"] == "standard" else f", day {c['day']}"),
        "",
        f"{'node':<8} {'parent':<6} {'cps':>3} {'limit':>15} {'peak A':>7} {'peak kW':>8} {'max over':>16} "
        f"{'over Wh':>8} {'over s':>7} {'ramp s':>7} {'load s':>7} {'@cycle':>6}",
    ]
    for n in report.nodes:
        limit = " / ".join(
            part
            for part in (
                "" if n.limit_a is None else f"{n.limit_a:g} A",
                "" if n.limit_w is None else f"{n.limit_w / 1000:g} kW",
            )
            if part
        )
        over = f"{n.max_over_a:.1f} A / {n.max_over_w / 1000:.2f} kW"
        lines.append(
            f"{n.node_id:<8} {n.parent or '-':<6} {n.chargers:>3} {limit:>15} {n.peak_a:>7.1f} {n.peak_w / 1000:>8.1f} "
            f"{over:>16} {n.over_wh:>8.1f} {n.over_s:>7} {n.over_s_ramp:>7} {n.over_s_load:>7} {n.over_at_cycle:>6}"
        )
    hours = c["duration_s"] / 3600
    sessions = max(len(report.sessions), 1)
    lines += [
        "",
        f"Energy     requested {report.requested_kwh:.1f} kWh, delivered {report.delivered_kwh:.1f} kWh "
        f"({report.delivered_ratio * 100:.1f} %), {report.sessions_complete}/{len(report.sessions)} sessions complete",
        f"Fairness   Jain index of delivered/requested: {report.jain_index:.4f}",
        f"Reserved   {report.reserved_kwh:.1f} kWh applied setpoints x charger phases, "
        f"{report.reserved_used_ratio * 100:.1f} % of it drawn; unused: "
        + ", ".join(f"{key} {value:.1f} kWh" for key, value in report.reserved_unused_kwh.items()),
        "By car     "
        + "; ".join(
            f"{key}: {int(entry['sessions'])} x, {entry['ratio'] * 100:.0f} %" for key, entry in report.by_car.items()
        ),
        f"Messages   {report.setpoints_sent} setpoints sent ({report.pauses_sent} pauses), "
        f"{report.setpoints_sent / sessions:.1f} per session, {report.setpoints_sent / hours:.1f} per hour",
        *_pv_lines(report.pv),
        *_zni_lines(report.zni),
        f"Compute    cycle p50 {report.cycle.p50_ms:.3f} ms, p99 {report.cycle.p99_ms:.3f} ms, "
        f"max {report.cycle.max_ms:.3f} ms over {report.cycle.cycles} cycles",
        f"Wall time  {report.wall_s:.1f} s",
        "",
        "over Wh / over s: energy and time above the node's limit (current on any phase or total power);",
        "ramp: gone if every car already drew its latest setpoint; load: building load or PV moved since the",
        "last cycle; @cycle: seconds above the limit at EMS cycle instants.",
    ]
    return "\n".join(lines)


def _pv_lines(pv: PvDayReport | None) -> list[str]:
    if pv is None:
        return []
    return [
        f"PV         {pv.pv_kwh:.1f} kWh produced, {pv.exported_kwh:.1f} kWh exported: self-consumption "
        f"{pv.self_consumption * 100:.1f} % (building alone {pv.building_self_consumption * 100:.1f} %); "
        f"cars {pv.ev_kwh:.1f} kWh, {pv.ev_from_pv_kwh:.1f} kWh of it from PV",
        f"PV starts  {pv.pv_transitions} starts/stops of PV-mode sessions decided by the PV (not the start on "
        f"arrival, not the on/off of a full car): {pv.pv_transitions_per_ev_hour:.2f} per EV and hour (worst "
        f"session {pv.pv_transitions_per_ev_hour_max:.2f}); every setpoint on/off: {pv.transitions}, "
        f"{pv.transitions_per_ev_hour:.2f} per EV and hour (worst {pv.transitions_per_ev_hour_max:.2f})",
        f"PV modes   {pv.phase_switches} phase switches; "
        + "; ".join(
            f"{mode}: {int(e['sessions'])} x, {e['delivered_kwh']:.1f}/{e['requested_kwh']:.1f} kWh"
            for mode, e in pv.by_mode.items()
        ),
    ]


def _zni_lines(zni: ZniDayReport | None) -> list[str]:
    if zni is None:
        return []
    return [
        f"ZNI        {zni.zero_slots} signal-0 slots ({zni.zero_slot_hours:g} h): {zni.zero_slot_kwh:.1f} kWh charged "
        f"in them, {zni.day_kwh:.1f} kWh over the window; charger power / cap at most {zni.max_power_to_cap:.3f}",
        f"ZNI caps   {zni.over_cap_s} charger-seconds above the cap in a 0 slot (worst {zni.max_over_cap_w:.0f} W), "
        f"{zni.slots_over_cap} slots above it on average; feed outage {zni.outage_s} s (safe default 0): "
        f"{zni.outage_over_cap_s} charger-seconds above the cap; {zni.evidence_entries} evidence entries, "
        f"{zni.delayed_session_s} session-seconds delayed",
    ]


def format_scale(report: ScaleReport) -> str:
    """A readable summary of a scale report."""
    t = report.cycle
    return "\n".join(
        [
            f"Cariflex EMS scale: {report.chargers} chargers, {report.nodes} nodes (1 TGBT -> TDs -> groups of 10), "
            f"seed {report.seed}",
            f"Sessions   {report.sessions_mean:.0f} per cycle on average, {report.paused_mean:.0f} paused, "
            f"{report.changed_mean:.1f} setpoints changed per cycle",
            f"Compute    cycle p50 {t.p50_ms:.2f} ms, p99 {t.p99_ms:.2f} ms, max {t.max_ms:.2f} ms over {t.cycles} cycles",
            f"Wall time  {report.wall_s:.1f} s",
        ]
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--day", choices=DAYS, default="standard", help="the kind of day (default standard)")
    parser.add_argument("--sessions", type=int, help="EV sessions over the window (default 30; pv-clouds 12)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cycle", type=int, default=5, help="EMS cycle in s (default 5)")
    parser.add_argument("--start", type=float, default=0.0, help="time of day the window starts, in hours")
    parser.add_argument("--hours", type=float, default=24.0, help="length of the window in hours (default 24)")
    parser.add_argument("--ramp-delay", type=int, default=5, help="max s before a car follows a setpoint (0: at once)")
    parser.add_argument("--no-spikes", action="store_true", help="no ovens, heat pumps or kettles")
    parser.add_argument("--no-clouds", action="store_true", help="a clear sky")
    parser.add_argument("--pv-kw", type=float, help="PV peak in kW (default 30; pv-clouds 36)")
    parser.add_argument("--base-kw", type=float, help="building daytime load in kW (default 14; pv-clouds 6)")
    parser.add_argument("--clouds-per-day", type=int, help="passing clouds per day (default 18; pv-clouds 40)")
    parser.add_argument("--pv-modes", choices=PV_MODE_CHOICES, default="mix", help="pv-clouds: the sessions' mode")
    parser.add_argument("--no-phase-switching", action="store_true", help="pv-clouds: chargers keep their phases")
    parser.add_argument("--zni-fraction", type=float, default=0.5, help="zni: share of nominal power in 0 slots")
    parser.add_argument("--zni-max-sessions", type=int, help="zni: at most this many sessions in 0 slots")
    parser.add_argument("--site-kw", type=float, default=50.0, help="main board subscribed power in kW (default 50)")
    parser.add_argument("--breaker", type=float, default=125.0, help="main board breaker in A per phase (default 125)")
    parser.add_argument("--limit-factor", type=float, default=1.0, help="multiply every node limit")
    parser.add_argument("--strategy", choices=[str(s) for s in Strategy], default=str(Strategy.EQUAL))
    parser.add_argument("--deadband", type=float, default=1.0, help="regulator deadband in A (default 1)")
    parser.add_argument("--hold", type=float, default=60.0, help="regulator hold time in s (default 60)")
    parser.add_argument("--step", type=float, default=0.1, help="setpoint step in A (default 0.1)")
    parser.add_argument("--scale", type=int, metavar="CHARGERS", help="time cycles for this many chargers instead")
    parser.add_argument("--scale-cycles", type=int, default=200, help="cycles timed in --scale mode (default 200)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the simulation the options ask for and print its report."""
    args = parse_args(argv)
    strategy = Strategy(args.strategy)
    if args.scale is not None:
        regulator = RegulatorConfig(
            strategy=strategy, step_a=args.step, deadband_a=args.deadband, hold_s=args.hold, voltage_v=VOLTAGE_V
        )
        scale_report = scale(args.scale, args.scale_cycles, args.seed, float(args.cycle), regulator)
        print(json.dumps(scale_report.to_dict(), indent=2) if args.json else format_scale(scale_report))
        return 0
    preset = PRESETS[args.day]

    def option(name: str) -> Any:
        value = getattr(args, name)
        return preset[name] if value is None else value

    config = DayConfig(
        sessions=option("sessions"),
        seed=args.seed,
        cycle_s=args.cycle,
        start_s=round(args.start * 3600),
        duration_s=round(args.hours * 3600),
        ramp_delay_s=args.ramp_delay,
        spikes=not args.no_spikes,
        clouds=not args.no_clouds,
        pv_kw=option("pv_kw"),
        base_kw=option("base_kw"),
        site_kw=args.site_kw,
        breaker_a=args.breaker,
        limit_factor=args.limit_factor,
        strategy=strategy,
        deadband_a=args.deadband,
        hold_s=args.hold,
        step_a=args.step,
        day=args.day,
        clouds_per_day=option("clouds_per_day"),
        pv_modes=args.pv_modes,
        phase_switching=not args.no_phase_switching,
        zni_fraction=args.zni_fraction,
        zni_max_sessions=args.zni_max_sessions,
    )
    day_report = simulate(config)
    print(json.dumps(day_report.to_dict(), indent=2) if args.json else format_day(day_report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
