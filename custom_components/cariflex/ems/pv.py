"""PV surplus charging: the surplus, the charge modes, and who charges on it (with delays).

Pure and clock-free like the rest of the package: :class:`PvController` keeps, per session,
whether it is enabled and since when a start/stop condition holds; the time comes in with
every call. The precedence between PV and the other rules lives in :mod:`.strategy`.

The surplus is what the site would export if the cars drew nothing::

    surplus = -grid + EV draws - reserve (+ battery charge when the cars come first)
                                         (- battery discharge unless the cars may use it)

It does not depend on what the cars draw (the grid reading moves with them), so giving it out
is a stable feedback loop. See README.md in this package.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
import math
from types import MappingProxyType

from .tree import EmsError


class ChargeMode(StrEnum):
    """A charger's PV mode (evcc's off/now/minpv/pv)."""

    OFF = "off"  # no charging
    NOW = "now"  # as fast as the site allows (the standard EMS)
    MIN_PV = "min_pv"  # the minimum current always, the PV surplus on top
    PV = "pv"  # the PV surplus only: starts and stops with it


PV_MODES = frozenset({ChargeMode.MIN_PV, ChargeMode.PV})
"""The modes that follow the surplus."""


class PvReason(StrEnum):
    """Why a PV-following session got its target."""

    SURPLUS = "pv_surplus"  # charging on the surplus (above its minimum for min_pv)
    MINIMUM = "pv_minimum"  # min_pv at its minimum: not enough surplus for more
    WAITING = "pv_waiting_surplus"  # pv, not charging: not enough surplus (or the enable delay runs)
    DISABLE_PENDING = "pv_disable_pending"  # pv, at its minimum: the surplus is short, the disable delay runs
    CAR_IDLE = "pv_car_idle"  # the car takes nothing though it may (full, or its own timer): it holds no surplus


@dataclass(frozen=True, slots=True)
class PvConfig:
    """PV settings of a site (powers in W, durations in s, state of charge in %).

    ``enable_delay_s`` / ``disable_delay_s`` (evcc's defaults: 60 s / 180 s): a ``pv`` session
    starts once the surplus covers its minimum power (plus ``enable_threshold_w``) for the
    enable delay, and stops once the surplus lacks more than ``disable_threshold_w`` for its
    minimum during the disable delay; in between it runs at its minimum. ``reserve_w`` is kept
    for the site. The home battery: below ``battery_priority_soc`` it charges before the cars
    (its charging power is not surplus), at or above it the cars come first; the cars may draw
    on its discharge only at or above ``battery_discharge_soc`` (None: never, the default).
    ``phase_switch_interval_s`` is the minimum time between two 1/3-phase switches of a
    charger, ``guard_s`` between a start and a stop (evcc's guard: it spares the contactors and
    the car). Grid readings older than ``data_timeout_s`` count as lost.

    Flap damping: under passing clouds, a 180 s disable delay stops a car under most clouds, and
    the car restarts as soon as the guard lets it, a few minutes later. So each cycle in which
    the surplus stopped ``pv`` sessions counts as one stop of the site (a cloud shades all its
    panels), and each such stop in the last ``flap_window_s`` doubles the disable delay, up to
    ``disable_delay_max_s`` (180, 360, 720, 900 s by default): the cars ride short clouds out
    at their minimum, and clouds shorter than 720 s stop them at most twice per window. A quiet
    window brings the plain delay back; ``disable_delay_max_s`` <= ``disable_delay_s`` turns the
    damping off (evcc's behaviour).
    """

    reserve_w: float = 0.0
    enable_delay_s: float = 60.0
    disable_delay_s: float = 180.0
    enable_threshold_w: float = 0.0
    disable_threshold_w: float = 0.0
    battery_priority_soc: float = 100.0
    battery_discharge_soc: float | None = None
    phase_switch_interval_s: float = 300.0
    guard_s: float = 300.0
    data_timeout_s: float = 60.0
    flap_window_s: float = 7200.0
    disable_delay_max_s: float = 900.0

    def __post_init__(self) -> None:
        values = (
            self.reserve_w,
            self.enable_delay_s,
            self.disable_delay_s,
            self.enable_threshold_w,
            self.disable_threshold_w,
            self.phase_switch_interval_s,
            self.guard_s,
            self.data_timeout_s,
            self.flap_window_s,
            self.disable_delay_max_s,
        )
        if not all(math.isfinite(value) and value >= 0 for value in values):
            raise EmsError("PV powers and durations must be finite and >= 0")

    def disable_delay(self, recent_stops: int) -> float:
        """The disable delay after ``recent_stops`` PV stops in the flap window (doubling, capped)."""
        base = self.disable_delay_s
        if recent_stops <= 0 or self.disable_delay_max_s <= base:
            return base
        return min(math.ldexp(base, min(recent_stops, 32)), self.disable_delay_max_s)


def pv_surplus_w(
    grid_w: float,
    ev_draw_w: float,
    config: PvConfig,
    battery_w: float | None = None,
    battery_soc: float | None = None,
) -> float:
    """The PV surplus the cars may use, in W (negative: the site imports even without them).

    ``grid_w`` is the grid meter (import +, export -), ``ev_draw_w`` what the cars draw now,
    ``battery_w`` the home battery (discharge +, charge -) and ``battery_soc`` its charge in %;
    an unknown state of charge gives the battery priority and keeps its discharge for the home.
    """
    surplus = -grid_w + ev_draw_w - config.reserve_w
    if battery_w is not None:
        if battery_w < 0 and battery_soc is not None and battery_soc >= config.battery_priority_soc:
            surplus -= battery_w  # the battery would yield its charge to the cars
        elif battery_w > 0 and not (
            config.battery_discharge_soc is not None
            and battery_soc is not None
            and battery_soc >= config.battery_discharge_soc
        ):
            surplus -= battery_w  # the battery's discharge is not for the cars
    return surplus


@dataclass(frozen=True, slots=True)
class PvRequest:
    """A session that follows the surplus this cycle, in ranking order (first served first).

    ``mode`` is the effective one (a ``min_pv`` session whose grid minimum a higher rule took
    away follows ``pv``). ``min_a`` is its minimum current per phase (a guaranteed minimum may
    raise it), ``cap_a`` the most it can take per phase (charger, car), ``cap_w`` a power cap
    (ZNI). ``phases`` is what the charger uses now; ``switchable`` whether it may switch
    between 1 and 3 phases (``max_phases`` 3). ``car_phases``, when known, is how many phases
    the car draws on (a one-phase car on a three-phase charger needs, and takes, a third of the
    power per ampere: switching its charger's phases would change nothing). ``idle``: the car
    takes nothing though it is offered current (OCPP SuspendedEV: full, or waiting on its own
    timer).
    """

    session_id: str
    mode: ChargeMode
    min_a: float
    cap_a: float
    phases: int
    max_phases: int = 3
    switchable: bool = False
    cap_w: float = math.inf
    car_phases: int | None = None
    idle: bool = False


@dataclass(frozen=True, slots=True)
class PvOutcome:
    """The PV decision for one session: its ceiling (0 = do not charge), phases, reason, timer."""

    session_id: str
    max_a: float
    phases: int
    reason: PvReason
    timer_s: float | None = None
    share_w: float = 0.0

    @property
    def charging(self) -> bool:
        """Whether the session may charge."""
        return self.max_a > 0


@dataclass(slots=True)
class _Timer:
    """Since when a condition holds (None: it does not)."""

    kind: str = ""
    since: float | None = None

    def run(self, kind: str, now: float) -> float:
        """Seconds the ``kind`` condition has held (starting it now if it was not running)."""
        if self.since is None or self.kind != kind:
            self.kind, self.since = kind, now
        return now - self.since

    def reset(self) -> None:
        self.since = None
        self.kind = ""


@dataclass(slots=True)
class PvState:
    """What the controller remembers of a session: enabled, its PV delay, its phases and their switch delay."""

    enabled: bool
    phases: int
    timer: _Timer = field(default_factory=_Timer)
    phase_timer: _Timer = field(default_factory=_Timer)
    last_switch: float | None = None
    last_toggle: float | None = None
    car_phases: int | None = None


class PhaseSwitcher:
    """1/3-phase switching: a switch happens once wanted for a delay, never sooner than an interval after the last."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s

    def request(self, state: PvState, wanted: int, now: float, delay_s: float) -> float | None:
        """Move ``state`` toward ``wanted`` phases; return the seconds left before it may switch (None: done/idle)."""
        if wanted == state.phases:
            state.phase_timer.reset()
            return None
        elapsed = state.phase_timer.run(f"to{wanted}", now)
        wait = delay_s - elapsed
        if state.last_switch is not None:
            wait = max(wait, self.interval_s - (now - state.last_switch))
        if wait > 0:
            return wait
        state.phases = wanted
        state.last_switch = now
        state.phase_timer.reset()
        return None


class PvController:
    """Shares the surplus among the sessions that follow it, with enable/disable delays and phase switching."""

    def __init__(self, config: PvConfig | None = None, voltage_v: float = 230.0) -> None:
        self.config = config or PvConfig()
        self.voltage_v = voltage_v
        self.switcher = PhaseSwitcher(self.config.phase_switch_interval_s)
        self._state: dict[str, PvState] = {}
        self._stops: list[float] = []

    @property
    def stops(self) -> Sequence[float]:
        """When the surplus stopped ``pv`` sessions (once per cycle), as of the last cycle's flap window."""
        return tuple(self._stops)

    def recent_stops(self, now: float) -> int:
        """How many PV stops happened in the ``flap_window_s`` before ``now`` (forgets the older ones)."""
        window = self.config.flap_window_s
        self._stops = [t for t in self._stops if now - t < window]
        return len(self._stops)

    @property
    def states(self) -> Mapping[str, PvState]:
        """What the controller remembers, by session id."""
        return MappingProxyType(self._state)

    def state(self, session_id: str, phases: int, enabled: bool = False) -> PvState:
        """A session's state, created (with ``phases`` and ``enabled``) the first time."""
        state = self._state.get(session_id)
        if state is None:
            state = self._state[session_id] = PvState(enabled, phases)
        return state

    def keep_only(self, session_ids: set[str]) -> None:
        """Forget the sessions that are gone."""
        for key in [key for key in self._state if key not in session_ids]:
            del self._state[key]

    def hold(self, session_id: str, charging: bool) -> None:
        """A session another rule decided this cycle: remember whether it charges, stop its PV timer."""
        state = self._state.get(session_id)
        if state is not None:
            state.enabled = charging
            state.timer.reset()

    def distribute(self, now: float, budget_w: float, requests: Sequence[PvRequest]) -> dict[str, PvOutcome]:
        """Share ``budget_w`` (the surplus left for these sessions) among ``requests`` (ranked).

        Running sessions (``min_pv``, and ``pv`` ones enabled) first get their minimum power;
        when that is more than the budget, the lowest-ranked ``pv`` ones are short: they stay at
        their minimum while their disable delay runs (longer after recent stops, see
        :class:`PvConfig`; or, when one phase would do, while a switchable charger's switch to
        one phase is pending). Waiting ``pv`` sessions, in rank order, run their enable delay
        while the room left covers their minimum. Starts and stops of a session are at least
        ``guard_s`` apart. Switchable chargers then move between 1 and 3 phases, and the rest is
        shared as the allocator does: equal currents, up to the caps. An ``idle`` car keeps its
        state and its minimum, outside the budget: a full car does not hold surplus back.
        """
        cfg = self.config
        volts = self.voltage_v
        states = {r.session_id: self.state(r.session_id, r.phases, r.mode is ChargeMode.MIN_PV) for r in requests}
        idle = [r for r in requests if r.idle]
        requests = [r for r in requests if not r.idle]

        def drawn(r: PvRequest) -> int:
            return _drawn_phases(r, states[r.session_id])

        def min_w(r: PvRequest) -> float:
            return r.min_a * volts * drawn(r)

        running = [r for r in requests if r.mode is ChargeMode.MIN_PV or states[r.session_id].enabled]
        remaining = budget_w - sum(min_w(r) for r in running)
        available: dict[str, float] = {}
        short: set[str] = set()
        for r in reversed(running):
            if remaining >= -cfg.disable_threshold_w:
                break
            if r.mode is ChargeMode.PV:
                short.add(r.session_id)
                remaining += min_w(r)
                available[r.session_id] = remaining
        timers: dict[str, float | None] = {}
        stopped: set[str] = set()
        disable_delay = cfg.disable_delay(self.recent_stops(now))
        for r in running:
            state = states[r.session_id]
            if r.mode is ChargeMode.MIN_PV:
                state.enabled = True
                continue
            one_phase_would_do = (
                r.switchable
                and drawn(r) > 1
                and available.get(r.session_id, 0.0) >= r.min_a * volts - cfg.disable_threshold_w
            )
            if r.session_id not in short or one_phase_would_do:
                state.timer.reset()
                continue
            wait = self._wait(state, "disable", disable_delay, now)
            timers[r.session_id] = wait
            if wait is None:
                state.enabled = False
                state.last_toggle = now
                stopped.add(r.session_id)
        if stopped:
            self._stops.append(now)
        running = [r for r in running if r.session_id not in stopped]
        remaining = budget_w - sum(min_w(r) for r in running)

        room = remaining
        for r in requests:
            state = states[r.session_id]
            if r.mode is not ChargeMode.PV or state.enabled or r.session_id in stopped:
                continue
            available[r.session_id] = room
            need = min_w(r)
            if room < need + cfg.enable_threshold_w or need > r.cap_w:
                state.timer.reset()
                continue
            room -= need
            wait = self._wait(state, "enable", cfg.enable_delay_s, now)
            timers[r.session_id] = wait
            if wait is None:
                state.enabled = True
                state.last_toggle = now
                running.append(r)
                remaining -= need

        open_ = [r for r in running if r.session_id not in short]
        for r in open_:
            available[r.session_id] = min_w(r) + remaining / len(open_)
        charging = {r.session_id for r in running}
        phase_waits: dict[str, float | None] = {}
        for r in requests:
            if r.switchable:
                avail = available.get(r.session_id, remaining)
                phase_waits[r.session_id] = self._switch(
                    r, states[r.session_id], avail, now, charging=r.session_id in charging
                )

        levels = self._fill(budget_w, open_, states)
        outcomes: dict[str, PvOutcome] = {}
        for r in requests:
            state = states[r.session_id]
            phases = state.phases
            timer = _soonest(timers.get(r.session_id), phase_waits.get(r.session_id))
            if r.session_id not in charging:
                outcomes[r.session_id] = PvOutcome(r.session_id, 0.0, phases, PvReason.WAITING, timer)
                continue
            current = levels.get(r.session_id, r.min_a)
            if r.session_id in short:
                reason = PvReason.DISABLE_PENDING
            elif r.mode is ChargeMode.MIN_PV and current <= r.min_a + 1e-9:
                reason = PvReason.MINIMUM
            else:
                reason = PvReason.SURPLUS
            outcomes[r.session_id] = PvOutcome(
                r.session_id, round(current, 6), phases, reason, timer, round(current * volts * drawn(r), 3)
            )
        for r in idle:  # offered its minimum so that it may resume, but none of the surplus is kept for it
            state = states[r.session_id]
            state.timer.reset()
            offered = r.min_a if r.mode is ChargeMode.MIN_PV or state.enabled else 0.0
            outcomes[r.session_id] = PvOutcome(r.session_id, offered, state.phases, PvReason.CAR_IDLE, None, 0.0)
        return outcomes

    def _wait(self, state: PvState, kind: str, delay_s: float, now: float) -> float | None:
        """Run the ``kind`` delay; the seconds left before the start/stop may happen (None: now)."""
        elapsed = state.timer.run(kind, now)
        wait = delay_s - elapsed
        if state.last_toggle is not None:
            wait = max(wait, self.config.guard_s - (now - state.last_toggle))
        if wait > 0:
            return wait
        state.timer.reset()
        return None

    def _fill(self, budget_w: float, members: list[PvRequest], states: Mapping[str, PvState]) -> dict[str, float]:
        """Equal currents (max-min fair, like the allocator) within the budget, between each minimum and cap."""
        volts = self.voltage_v
        rows = []
        for r in members:
            phases = _drawn_phases(r, states[r.session_id])
            high = max(min(r.cap_a, r.cap_w / (volts * phases)), r.min_a)
            rows.append((r.session_id, r.min_a, high, volts * phases))

        def power(level: float) -> float:
            return sum(w * min(max(level, low), high) for _, low, high, w in rows)

        points = sorted({low for _, low, _, _ in rows} | {high for _, _, high, _ in rows})
        level = points[-1] if points else 0.0
        # The first breakpoint where the power reaches the budget (power grows with the level).
        first = bisect.bisect_left(points, True, lo=1, key=lambda point: power(point) >= budget_w)
        if first < len(points):
            previous, point = points[first - 1], points[first]
            p0, p1 = power(previous), power(point)
            level = previous if p1 <= p0 else previous + (point - previous) * max(budget_w - p0, 0.0) / (p1 - p0)
        return {key: min(max(level, low), high) for key, low, high, _ in rows}

    def _max_w(self, r: PvRequest, phases: int) -> float:
        return min(r.cap_a * self.voltage_v * phases, r.cap_w)

    def _switch(self, r: PvRequest, state: PvState, avail_w: float, now: float, *, charging: bool) -> float | None:
        """Switch phases: down when all phases would be below the minimum, up when one phase is saturated.

        A waiting session goes down only when the surplus would start it on one phase.
        """
        volts = self.voltage_v
        if r.car_phases is not None and r.car_phases < r.max_phases:
            return self.switcher.request(state, state.phases, now, 0.0)  # the car decides: nothing to switch
        threshold = 0.0 if charging else self.config.enable_threshold_w
        one = r.min_a * volts + threshold
        full = r.min_a * volts * r.max_phases + threshold
        wanted = state.phases
        if self._max_w(r, r.max_phases) < r.min_a * volts * r.max_phases:
            wanted = 1  # the power cap leaves no room for the minimum on every phase
        elif state.phases == r.max_phases and avail_w < full and (charging or avail_w >= one):
            wanted = 1
        elif state.phases == 1 and avail_w > self._max_w(r, 1) and avail_w >= full:
            wanted = r.max_phases
        delay = self.config.disable_delay_s if wanted < state.phases else self.config.enable_delay_s
        return self.switcher.request(state, wanted, now, delay)


def _drawn_phases(r: PvRequest, state: PvState) -> int:
    """The phases the session's power flows on: the charger's, or fewer when the car uses fewer."""
    return min(state.phases, r.car_phases or state.phases)


def _soonest(*values: float | None) -> float | None:
    found = [value for value in values if value is not None]
    return min(found) if found else None


__all__ = [
    "PV_MODES",
    "ChargeMode",
    "PhaseSwitcher",
    "PvConfig",
    "PvController",
    "PvOutcome",
    "PvReason",
    "PvRequest",
    "PvState",
    "pv_surplus_w",
]
