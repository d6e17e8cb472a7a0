"""Charging planner: when and how fast each session charges over the next hours.

The allocator (:mod:`.allocator`) shares the current of *this* cycle; the planner looks ahead.
Over ``slots`` time slots (default 96 x 15 min = 24 h) it decides, per session and per slot, the
current to draw so that every session gets its energy need by its departure, at the lowest
cost (grid import priced per slot, the PV surplus is free) and/or the lowest grid import, within
every node limit of the site on every phase and in power, and within the ZNI signal (a slot
whose signal is 0 caps every session at half its maximum). The current-slot value of each
session's plan is the target the allocator follows until the next plan.

A charger cannot draw less than its minimum (6 A): in every slot a session is either off or
between its minimum and its maximum. The model is therefore a MILP with an on/off binary per
session and slot (not an LP relaxation), written with PuLP and solved by HiGHS to a gap of 1 %
(relative to the cost; see :func:`_within_gap`). :func:`plan` *always* returns a plan within its
time limit: an optimal one (proven within the gap), else the best feasible plan found when time
ran out, else (no solver plan in time, solver error) a greedy earliest-deadline-first plan that
also respects the minimum, the maximum and every limit. The result says which
(:attr:`Plan.method`) and the gap reached.

How it is solved, and what keeps it fast (benchmarks/planner.py has the figures):

* variables only for the slots a session can charge in (present, limits and ZNI above its
  minimum), with bounds as tight as the limits allow; one binary ``on`` and one continuous
  ``extra`` per slot (current = minimum x on + extra, extra <= (cap - minimum) x on);
* node rows only in the slots where the sessions below the node could exceed it; PV rows only in
  the slots where the PV covers part of what the sessions could draw;
* identical sessions (same node, phases, limits, window and need) are ordered, so that the
  solver does not explore their permutations;
* independent parts of the site (no shared limit that can bind) are solved separately;
* HiGHS first solves the LP relaxation, a lower bound. Its optimum, rounded to what chargers can
  draw (currents at or above the minimum kept, those below raised to it where they fit, needs
  topped up greedily), is most often within the gap already. If not, HiGHS solves the MILP on
  the on/off decisions the LP left fractional, the others fixed (RENS), and only then the whole
  MILP, started from the best plan so far: the LP-based ones, the greedy plan or the previous
  plan (:class:`Planner`) repaired for the new situation.

Pure: no Home Assistant, no I/O; the only clock is the one measuring the time spent (injectable).
Times are seconds on any epoch (or timezone-aware datetimes), currents in A per phase, powers in
W, energies in kWh, prices in EUR/kWh.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
import itertools
import logging
import math
import time
from types import MappingProxyType
from typing import Any, Literal, cast

import highspy
import numpy as np
import numpy.typing as npt
import pulp

from .tree import PHASES, EmsError, Node, PerPhase, Phase, SiteTree, Timestamp, to_seconds

_LOGGER = logging.getLogger(__name__)

type FloatArray = npt.NDArray[np.float64]
type IntArray = npt.NDArray[np.int64]
type SlotValues = float | Sequence[float]
"""One value for every slot, or one value per slot."""
type SlotLimits = float | PerPhase | list[float | PerPhase]
"""A current limit: one value, a (L1, L2, L3) tuple, or a list of one of those per slot."""
type SolverOption = bool | int | float | str

TOLERANCE_A = 1e-4
"""Rounding slack, in A, allowed when a plan is checked against a limit."""
_EPS = 1e-9
_EARLY_EUR_PER_KWH = 1e-6
"""Tie-break: each later slot costs this much more per kWh, so equal plans charge earlier."""
_TINY = 1e-6


class PlanError(EmsError, ValueError):
    """The planning problem is not valid (the message names the culprit)."""


class PlanMethod(StrEnum):
    """Where a plan comes from."""

    OPTIMAL = "optimal"
    """HiGHS proved the plan optimal within the relative gap."""
    FEASIBLE_TIMEOUT = "feasible_timeout"
    """HiGHS stopped on the time limit (or another limit) with this feasible plan, its best."""
    GREEDY_EDF = "greedy_edf"
    """No solver plan in time (or a solver error): the greedy earliest-deadline-first plan."""


class Backend(StrEnum):
    """How the MILP reaches HiGHS."""

    PULP = "pulp"
    """Modelled with PuLP (``LpProblem``/``LpVariable``), solved by ``pulp.HiGHS`` (highspy)."""
    HIGHSPY = "highspy"
    """The same model passed to highspy directly as sparse arrays (no PuLP objects)."""


# ---------------------------------------------------------------------------------------------
# Inputs


@dataclass(frozen=True, slots=True)
class PlanNode:
    """A node of the site (main board, sub-board, group) with the limits available to the EVs.

    ``max_current_a`` is A per phase: one value, a (L1, L2, L3) tuple, or a list with one of those
    per slot; ``max_power_w`` is W over the three phases, one value or one per slot. Give what is
    *available to the chargers*: the breaker or contract limit minus the forecast non-EV load of
    that node. ``None``: no limit.
    """

    id: str
    parent: str | None = None
    max_current_a: SlotLimits | None = None
    max_power_w: SlotValues | None = None


@dataclass(frozen=True, slots=True)
class PlanSession:
    """A charging session to plan: a car on charger ``node``'s branch, present from ``arrival``.

    ``energy_kwh`` is the energy still to deliver before ``departure``; ``min_current_a`` and
    ``max_current_a`` are what the charger and the car accept (A on each phase used); a
    single-phase session draws on ``phase`` only.
    """

    id: str
    node: str
    arrival: Timestamp
    departure: Timestamp
    energy_kwh: float
    min_current_a: float = 6.0
    max_current_a: float = 32.0
    phases: Literal[1, 3] = 3
    phase: Phase = Phase.L1

    @property
    def used_phases(self) -> tuple[Phase, ...]:
        """The phases this session draws on."""
        return PHASES if self.phases == 3 else (self.phase,)


@dataclass(frozen=True, slots=True)
class PlanProblem:
    """What to plan: sessions, the site's nodes and the forecasts per slot.

    Slot ``t`` covers ``[start + t * slot_s, start + (t + 1) * slot_s)``. ``price`` is EUR/kWh per
    slot (a value, one per slot, or a tariff: a function of the slot's start time); ``pv_w`` is
    the PV surplus available to the chargers at the root (W); ``feed_in`` is what a kWh of that
    surplus earns when it goes to the grid instead (EUR/kWh, a value or one per slot; 0: the PV is
    free energy); ``zni`` is the EDF-SEI factor per slot: 0.5 when the signal is 0 (every session
    capped at half its maximum), 1.0 otherwise. A session present for part of a slot draws for that
    part only.
    """

    start: Timestamp
    sessions: Sequence[PlanSession]
    nodes: Sequence[PlanNode]
    price: SlotValues | Callable[[float], float] = 0.0
    pv_w: SlotValues = 0.0
    feed_in: SlotValues = 0.0
    zni: SlotValues = 1.0
    slots: int = 96
    slot_s: float = 900.0
    voltage_v: float = 230.0


def nodes_from_tree(tree: SiteTree) -> list[PlanNode]:
    """The site tree's nodes with their static limits (current per phase, power) for every slot.

    Subtract the forecast non-EV load before planning (replace the limits with per-slot values)
    when the site has one.
    """
    return [_plan_node(node) for node in tree.nodes.values()]


def _plan_node(node: Node) -> PlanNode:
    return PlanNode(node.id, node.parent, node.current_limit, node.max_power_w)


@dataclass(frozen=True, slots=True)
class PlannerConfig:
    """How to plan.

    The objective is ``sum over slots of (cost_weight * price + import_weight) * grid import
    (kWh) + cost_weight * feed_in * PV used (kWh) + unmet_penalty * energy not delivered (kWh)``:
    ``cost_weight=1, import_weight=0`` (the default) minimises the cost, the feed-in revenue the
    cars' PV energy gives up included; ``cost_weight=0, import_weight=1`` the grid import. The
    penalty is raised to at least 10x the largest per-kWh weight so that meeting needs always comes
    first. Negative weights (negative prices) count as zero in the model: such energy is free. In
    a slot where the sun covers only part of the draw and the grid costs less than the feed-in
    earns, the model counts the grid part at the grid's weight for all the draw (a concave cost
    the MILP does not model; the reported objective is exact).

    ``relax`` solves the LP relaxation (the minimum current ignored): for comparison only, its
    plans may hold currents a charger cannot draw.
    """

    time_limit_s: float = 5.0
    mip_gap: float = 0.01
    cost_weight: float = 1.0
    import_weight: float = 0.0
    unmet_penalty: float = 1000.0
    backend: Backend = Backend.PULP
    symmetry_breaking: bool = True
    decompose: bool = True
    warm_start: bool = True
    relax: bool = False
    solver_options: Mapping[str, SolverOption] = field(default_factory=dict)
    """Extra HiGHS options (e.g. ``{"mip_max_nodes": 10}``). Not ``threads``: HiGHS fixes its thread
    pool for the whole process on first use and refuses another value later."""

    def __post_init__(self) -> None:
        if not (self.time_limit_s > 0 and math.isfinite(self.time_limit_s)):
            raise PlanError(f"time_limit_s must be > 0, got {self.time_limit_s!r}")
        if not 0 <= self.mip_gap < 1:
            raise PlanError(f"mip_gap must be in [0, 1), got {self.mip_gap!r}")
        for name in ("cost_weight", "import_weight"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise PlanError(f"{name} must be >= 0, got {value!r}")
        if not (math.isfinite(self.unmet_penalty) and self.unmet_penalty > 0):
            raise PlanError(f"unmet_penalty must be > 0, got {self.unmet_penalty!r}")


# ---------------------------------------------------------------------------------------------
# Outputs


@dataclass(frozen=True, slots=True)
class SessionPlan:
    """One session's plan: the current per slot (A on each phase used, 0 = off) and its energy.

    ``energy_kwh`` may exceed the need by less than one slot at the minimum current (the car
    stops by itself when full); ``unmet_kwh`` is what the plan cannot deliver before departure.
    ``reachable_kwh`` is the most the session could get with the site to itself (its presence,
    maximum current, ZNI and each node's own limit): unmet energy beyond ``need - reachable`` is
    what sharing the site costs it. ``target_a`` is the current-slot value, the target the
    allocator follows.
    """

    session_id: str
    current_a: tuple[float, ...]
    power_w: tuple[float, ...]
    energy_kwh: float
    need_kwh: float
    unmet_kwh: float
    reachable_kwh: float

    @property
    def target_a(self) -> float:
        """The current to apply now (slot 0)."""
        return self.current_a[0]


@dataclass(frozen=True, slots=True)
class Plan:
    """A charging plan for every session, with how it was obtained and what it costs.

    ``objective`` is the configured objective of this plan (without solver tie-breaks); ``gap``
    the gap proven, relative to the plan's cost (0 for the LP relaxation, None for a greedy
    plan); ``incumbent`` the best starting plan HiGHS had (``greedy_edf``, ``last_plan``,
    ``lp_rounding``, ``lp_neighbourhood``; ``none`` without warm start); ``components`` how many
    parts were solved one by one. ``build_s`` covers checking the problem, the greedy plan and the
    model; ``solve_s`` loading it into HiGHS and solving; ``total_s`` everything.
    """

    start: float
    slot_s: float
    slots: int
    sessions: Mapping[str, SessionPlan]
    method: PlanMethod
    gap: float | None
    objective: float
    cost_eur: float
    grid_import_kwh: float
    pv_used_kwh: float
    unmet_kwh: float
    incumbent: str
    relaxed: bool = False
    components: int = 0
    variables: int = 0
    binaries: int = 0
    rows: int = 0
    build_s: float = 0.0
    solve_s: float = 0.0
    total_s: float = 0.0
    detail: str = ""

    @property
    def targets(self) -> dict[str, float]:
        """The current-slot target of every session (A per phase)."""
        return {session_id: plan.target_a for session_id, plan in self.sessions.items()}

    def slot_start(self, slot: int) -> float:
        """The start of slot ``slot`` (seconds)."""
        return self.start + slot * self.slot_s


# ---------------------------------------------------------------------------------------------
# Compilation: validated inputs as arrays


@dataclass(slots=True)
class _Compiled:
    """The problem as arrays: sessions x slots, nodes x phases x slots."""

    ids: list[str]
    node_ids: list[str]
    start: float
    slots: int
    slot_s: float
    voltage: float
    cap: FloatArray  # (S, T) A; 0 where the session cannot charge
    kwh_per_a: FloatArray  # (S, T) kWh for 1 A over the part of the slot the session is present
    min_a: FloatArray  # (S,)
    need: FloatArray  # (S,)
    reach: FloatArray  # (S,) the part of the need the session could get alone (the model's target)
    nph: FloatArray  # (S,) 1 or 3
    phase_sets: list[list[int]]
    paths: list[list[int]]
    arrival: FloatArray  # (S,)
    departure: FloatArray  # (S,)
    lim_a: FloatArray  # (N, 3, T) inf: no limit
    lim_w: FloatArray  # (N, T)
    price: FloatArray  # (T,)
    weight: FloatArray  # (T,) objective weight per imported kWh
    pv_weight: FloatArray  # (T,) objective weight per kWh of PV a car takes (the feed-in it gives up)
    pv_kwh: FloatArray  # (T,)
    penalty: float

    @property
    def sessions(self) -> int:
        return len(self.ids)


def _slot_series(name: str, value: SlotValues, slots: int) -> FloatArray:
    if isinstance(value, int | float):
        series: FloatArray = np.full(slots, float(value))
    else:
        if len(value) != slots:
            raise PlanError(f"{name} needs one value per slot ({slots}), got {len(value)}")
        series = np.array([float(item) for item in value])
    if not np.all(np.isfinite(series)):
        raise PlanError(f"{name} must be finite")
    return series


def _limit_series(owner: str, value: SlotLimits | None, slots: int) -> FloatArray:
    result = np.full((3, slots), math.inf)
    if value is None:
        return result
    items: Sequence[float | PerPhase]
    if isinstance(value, int | float | tuple):
        items = [value] * slots
    else:
        items = value
        if len(items) != slots:
            raise PlanError(f"{owner}: max_current_a needs one value per slot ({slots}), got {len(items)}")
    for index, item in enumerate(items):
        triple = (float(item),) * 3 if isinstance(item, int | float) else tuple(float(x) for x in item)
        if len(triple) != 3:
            raise PlanError(f"{owner}: max_current_a needs one value per phase (L1, L2, L3), got {len(triple)}")
        result[:, index] = triple
    if np.any(np.isnan(result)) or np.any(result < 0):
        raise PlanError(f"{owner}: max_current_a must be >= 0")
    return result


def _compile(problem: PlanProblem, config: PlannerConfig) -> _Compiled:
    slots = problem.slots
    if slots < 1:
        raise PlanError(f"slots must be >= 1, got {slots!r}")
    if not (problem.slot_s > 0 and math.isfinite(problem.slot_s)):
        raise PlanError(f"slot_s must be > 0, got {problem.slot_s!r}")
    if not (problem.voltage_v > 0 and math.isfinite(problem.voltage_v)):
        raise PlanError(f"voltage_v must be > 0, got {problem.voltage_v!r}")
    start = to_seconds(problem.start)
    slot_s = problem.slot_s
    if callable(problem.price):
        tariff = problem.price
        price = _slot_series("price", [tariff(start + t * slot_s) for t in range(slots)], slots)
    else:
        price = _slot_series("price", problem.price, slots)
    pv_w = _slot_series("pv_w", problem.pv_w, slots)
    if np.any(pv_w < 0):
        raise PlanError("pv_w must be >= 0")
    feed_in = _slot_series("feed_in", problem.feed_in, slots)
    if np.any(feed_in < 0):
        raise PlanError("feed_in must be >= 0")
    zni = _slot_series("zni", problem.zni, slots)
    if np.any(zni <= 0) or np.any(zni > 1):
        raise PlanError("zni factors must be in (0, 1]")

    node_index: dict[str, int] = {}
    for node in problem.nodes:
        if not node.id:
            raise PlanError("a node needs a non-empty id")
        if node.id in node_index:
            raise PlanError(f"duplicate node id {node.id!r}")
        node_index[node.id] = len(node_index)
    roots = [node.id for node in problem.nodes if node.parent is None]
    if len(roots) != 1:
        raise PlanError(f"the nodes need exactly one root, got {len(roots)}")
    parents: dict[str, str | None] = {node.id: node.parent for node in problem.nodes}
    node_paths: dict[str, list[int]] = {}
    for node in problem.nodes:
        path: list[int] = []
        current: str | None = node.id
        while current is not None:
            if current not in parents:
                raise PlanError(f"node {node.id!r} has unknown ancestor {current!r}")
            if node_index[current] in path:
                raise PlanError(f"node {node.id!r} is in a cycle")
            path.append(node_index[current])
            current = parents[current]
        node_paths[node.id] = path
    count = len(problem.nodes)
    lim_a = np.full((count, 3, slots), math.inf)
    lim_w = np.full((count, slots), math.inf)
    for node in problem.nodes:
        index = node_index[node.id]
        lim_a[index] = _limit_series(f"node {node.id!r}", node.max_current_a, slots)
        if node.max_power_w is not None:
            power = _slot_series(f"node {node.id!r} max_power_w", node.max_power_w, slots)
            if np.any(power < 0):
                raise PlanError(f"node {node.id!r}: max_power_w must be >= 0")
            lim_w[index] = power

    sessions = list(problem.sessions)
    size = len(sessions)
    ids: list[str] = []
    seen: set[str] = set()
    cap = np.zeros((size, slots))
    kwh_per_a = np.zeros((size, slots))
    min_a = np.zeros(size)
    need = np.zeros(size)
    nph = np.zeros(size)
    arrival = np.zeros(size)
    departure = np.zeros(size)
    phase_sets: list[list[int]] = []
    paths: list[list[int]] = []
    slot_h = slot_s / 3600.0
    edges = start + slot_s * np.arange(slots + 1)
    for row, session in enumerate(sessions):
        owner = f"session {session.id!r}"
        if not session.id or session.id in seen:
            raise PlanError(f"{owner}: session ids must be unique and non-empty")
        seen.add(session.id)
        ids.append(session.id)
        if session.node not in node_index:
            raise PlanError(f"{owner} is on unknown node {session.node!r}")
        values = (session.energy_kwh, session.min_current_a, session.max_current_a)
        if not all(math.isfinite(value) for value in values):
            raise PlanError(f"{owner}: energy and currents must be finite")
        if session.energy_kwh < 0:
            raise PlanError(f"{owner}: energy_kwh must be >= 0, got {session.energy_kwh!r}")
        if not 0 < session.min_current_a <= session.max_current_a:
            raise PlanError(f"{owner}: needs 0 < min_current_a <= max_current_a")
        if session.phases not in (1, 3):
            raise PlanError(f"{owner}: phases must be 1 or 3, got {session.phases!r}")
        arrival[row] = to_seconds(session.arrival)
        departure[row] = to_seconds(session.departure)
        phases = [int(phase) for phase in session.used_phases]
        path = node_paths[session.node]
        phase_sets.append(phases)
        paths.append(path)
        min_a[row] = session.min_current_a
        need[row] = session.energy_kwh
        nph[row] = session.phases
        present = np.clip(np.minimum(edges[1:], departure[row]) - np.maximum(edges[:-1], arrival[row]), 0.0, slot_s)
        fraction = present / slot_s
        fraction[fraction < _TINY] = 0.0
        kwh_per_a[row] = problem.voltage_v * session.phases * slot_h * fraction / 1000.0
        limit = session.max_current_a * zni
        limit = np.minimum(limit, lim_a[np.ix_(path, phases)].min(axis=(0, 1)))
        limit = np.minimum(limit, lim_w[path].min(axis=0) / (problem.voltage_v * session.phases))
        usable = (fraction > 0) & (limit >= session.min_current_a - _EPS) & (session.energy_kwh > _EPS)
        cap[row] = np.where(usable, np.maximum(limit, session.min_current_a), 0.0)

    weight = config.cost_weight * price + config.import_weight
    pv_weight = config.cost_weight * feed_in
    penalty = max(config.unmet_penalty, 10.0 * float(max(np.max(np.abs(weight)), np.max(pv_weight))))
    return _Compiled(
        ids=ids,
        node_ids=list(node_index),
        start=start,
        slots=slots,
        slot_s=slot_s,
        voltage=problem.voltage_v,
        cap=cap,
        kwh_per_a=kwh_per_a,
        min_a=min_a,
        need=need,
        reach=np.minimum(need, (cap * kwh_per_a).sum(axis=1)),
        nph=nph,
        phase_sets=phase_sets,
        paths=paths,
        arrival=arrival,
        departure=departure,
        lim_a=lim_a,
        lim_w=lim_w,
        price=price,
        weight=weight,
        pv_weight=pv_weight,
        pv_kwh=np.asarray(pv_w * (slot_h / 1000.0), dtype=np.float64),
        penalty=penalty,
    )


# ---------------------------------------------------------------------------------------------
# Evaluation and checks


@dataclass(frozen=True, slots=True)
class _Figures:
    energy: FloatArray  # (S,)
    unmet: FloatArray  # (S,)
    grid_kwh: FloatArray  # (T,)
    pv_used: float
    cost: float
    objective: float


def _evaluate(comp: _Compiled, current: FloatArray) -> _Figures:
    energy_st = current * comp.kwh_per_a
    energy = energy_st.sum(axis=1)
    unmet = np.maximum(comp.need - energy, 0.0)
    ev_kwh = energy_st.sum(axis=0)
    grid = np.maximum(ev_kwh - comp.pv_kwh, 0.0)
    cost = float(np.dot(comp.price, grid))
    objective = (
        float(np.dot(comp.weight, grid))
        + float(np.dot(comp.pv_weight, ev_kwh - grid))
        + comp.penalty * float(unmet.sum())
    )
    return _Figures(energy, unmet, grid, float((ev_kwh - grid).sum()), cost, objective)


def check_plan(problem: PlanProblem, result: Plan, *, tolerance_a: float = TOLERANCE_A) -> list[str]:
    """Every way ``result`` breaks ``problem`` (empty: none): a current strictly between 0 and the
    minimum, above the maximum or the ZNI cap, outside the session's presence (or with nothing to
    deliver), or a node limit exceeded on a phase or in power in a slot."""
    comp = _compile(problem, PlannerConfig())
    current = np.array([result.sessions[session_id].current_a for session_id in comp.ids]).reshape(
        comp.sessions, comp.slots
    )
    return _violations(comp, current, tolerance_a)


def _violations(comp: _Compiled, current: FloatArray, tolerance: float) -> list[str]:
    problems: list[str] = []
    running = current > tolerance
    for row, slot in np.argwhere(running & (current < comp.min_a[:, None] - tolerance)):
        problems.append(f"{comp.ids[row]} slot {slot}: {current[row, slot]:.3f} A below the minimum")
    for row, slot in np.argwhere(running & (current > comp.cap + tolerance)):
        problems.append(f"{comp.ids[row]} slot {slot}: {current[row, slot]:.3f} A above {comp.cap[row, slot]:.3f} A")
    for node, node_id in enumerate(comp.node_ids):
        members = [row for row in range(comp.sessions) if node in comp.paths[row]]
        for phase in range(3):
            load = current[[row for row in members if phase in comp.phase_sets[row]]].sum(axis=0)
            for slot in np.nonzero(load > comp.lim_a[node, phase] + tolerance)[0]:
                problems.append(f"node {node_id} L{phase + 1} slot {slot}: {load[slot]:.3f} A over the limit")
        power = (current[members] * comp.nph[members, None]).sum(axis=0) * comp.voltage
        for slot in np.nonzero(power > comp.lim_w[node] + tolerance * comp.voltage)[0]:
            problems.append(f"node {node_id} slot {slot}: {power[slot]:.0f} W over the limit")
    return problems


# ---------------------------------------------------------------------------------------------
# Greedy plans


type GreedyOrder = Literal["edf", "now"]


def _greedy(comp: _Compiled, order: GreedyOrder, *bases: FloatArray, rows: Sequence[int] | None = None) -> FloatArray:
    """A feasible plan, session by session, each within what the previous ones left.

    ``edf``: earliest departure first, each filling its cheapest slots (PV first), at the most the
    limits allow. ``now``: in arrival order, each charging as soon and as fast as it can. With
    ``bases`` (e.g. a previous plan), each session first keeps what still fits of the first base,
    then of the next one in the slots still off, and so on, before the needs are topped up.
    ``rows``: plan only these sessions (an independent part of the site), the others get 0.
    """
    room = _Room(comp.lim_a.copy(), comp.lim_w.copy(), comp.pv_kwh.copy())
    current = np.zeros((comp.sessions, comp.slots))
    chosen = range(comp.sessions) if rows is None else rows
    if order == "edf":
        ranking = sorted(chosen, key=lambda r: (comp.departure[r], comp.arrival[r], comp.ids[r]))
    else:
        ranking = sorted(chosen, key=lambda r: (comp.arrival[r], comp.departure[r], comp.ids[r]))
    for base in bases:
        for row in ranking:
            kept = np.where(current[row] > 0, 0.0, np.minimum(base[row], room.headroom(comp, row)))
            kept[kept < comp.min_a[row] - _EPS] = 0.0
            current[row] += kept
            room.take(comp, row, kept)
    for row in ranking:
        if not comp.cap[row].any():
            continue
        room.take(comp, row, -current[row])
        current[row] = _fill(comp, row, current[row], room, order=order)
        room.take(comp, row, current[row])
    return current


@dataclass(slots=True)
class _Room:
    """What the sessions planned so far left: current per node, phase and slot, power, PV."""

    current_a: FloatArray  # (N, 3, T)
    power_w: FloatArray  # (N, T)
    pv_kwh: FloatArray  # (T,)

    def headroom(self, comp: _Compiled, row: int) -> FloatArray:
        """The most session ``row`` may draw per slot (0 where that is below its minimum)."""
        path, phases = comp.paths[row], comp.phase_sets[row]
        room = np.minimum(comp.cap[row], self.current_a[np.ix_(path, phases)].min(axis=(0, 1)))
        room = np.minimum(room, self.power_w[path].min(axis=0) / (comp.voltage * comp.nph[row]))
        room[room < comp.min_a[row] - _EPS] = 0.0
        result: FloatArray = np.maximum(room, 0.0)
        return result

    def take(self, comp: _Compiled, row: int, amount: FloatArray) -> None:
        """Book ``amount`` (A per slot, negative to release) for session ``row``."""
        path, phases = comp.paths[row], comp.phase_sets[row]
        self.current_a[np.ix_(path, phases)] -= amount
        self.power_w[path] -= amount * comp.voltage * comp.nph[row]
        self.pv_kwh -= amount * comp.kwh_per_a[row]


def _fill(comp: _Compiled, row: int, start: FloatArray, room: _Room, *, order: GreedyOrder) -> FloatArray:
    """Session ``row``'s currents: ``start`` trimmed to the need, then topped up slot by slot."""
    headroom = room.headroom(comp, row)
    current = np.minimum(start, headroom)
    current[current < comp.min_a[row] - _EPS] = 0.0
    minimum = float(comp.min_a[row])
    kwh = comp.kwh_per_a[row]
    usable = [slot for slot in range(comp.slots) if headroom[slot] > 0 and kwh[slot] > 0]
    if order == "now":
        ranked = usable
    else:
        free = np.maximum(room.pv_kwh, 0.0)

        def price(slot: int) -> tuple[float, int]:
            pv_share = min(free[slot] / (kwh[slot] * headroom[slot]), 1.0)
            grid = max(float(comp.weight[slot]), 0.0)
            return (grid * (1.0 - pv_share) + float(comp.pv_weight[slot]) * pv_share, slot)

        ranked = sorted(usable, key=price)
    excess = float(np.dot(current, kwh)) - comp.reach[row]
    for slot in reversed(ranked):
        if excess <= _EPS:
            break
        if current[slot] <= 0:
            continue
        reducible = (current[slot] - minimum) * kwh[slot]
        if excess <= reducible:
            current[slot] -= excess / kwh[slot]
            excess = 0.0
        else:
            excess -= current[slot] * kwh[slot]
            current[slot] = 0.0
    deficit = comp.reach[row] - float(np.dot(current, kwh))
    for slot in ranked:
        if deficit <= _EPS:
            break
        wanted = current[slot] + deficit / kwh[slot]
        if wanted >= minimum:
            new = min(float(headroom[slot]), wanted)
        else:
            # Less than the minimum is left to deliver: run at the minimum here and, if another
            # slot can give the surplus back, lower it (else the car stops early by itself).
            new = min(float(headroom[slot]), minimum)
            deficit += _shift(current, kwh, minimum, slot, new * kwh[slot] - deficit)
        deficit -= (new - current[slot]) * kwh[slot]
        current[slot] = new
    return current


def _shift(current: FloatArray, kwh: FloatArray, minimum: float, slot: int, surplus: float) -> float:
    """Take ``surplus`` kWh off another slot that stays at or above the minimum; what was taken."""
    for other in np.nonzero(current > 0)[0]:
        if other != slot and (current[other] - minimum) * kwh[other] >= surplus:
            current[other] -= surplus / kwh[other]
            return surplus
    return 0.0


# ---------------------------------------------------------------------------------------------
# The MILP


type BoolArray = npt.NDArray[np.bool_]


@dataclass(slots=True)
class _Model:
    """The MILP as arrays, in the column order HiGHS gets them, rows in CSR form.

    ``owner`` is the session (row of the compiled problem) each column belongs to; ``links``
    the sessions each row ties together, for the rows that tie several (node, PV, symmetry).
    Every column has 0 as lower bound.
    """

    cost: FloatArray
    upper: FloatArray
    integer: BoolArray
    slack: BoolArray  # the unmet-energy columns (penalised)
    owner: IntArray
    row_lower: FloatArray
    row_upper: FloatArray
    row_start: IntArray  # rows + 1 offsets into row_index / row_value
    row_index: IntArray
    row_value: FloatArray
    capacity: BoolArray  # the node-limit rows (non-negative terms <= limit)
    links: list[IntArray] = field(default_factory=list)

    @property
    def columns(self) -> int:
        return int(self.cost.size)

    @property
    def rows(self) -> int:
        return int(self.row_lower.size)

    @property
    def binaries(self) -> int:
        return int(self.integer.sum())

    def split(self, values: FloatArray) -> tuple[float, float]:
        """The objective of ``values``: (cost part, unmet penalty part)."""
        slack = self.slack
        return float(self.cost[~slack] @ values[~slack]), float(self.cost[slack] @ values[slack])

    def part(self, columns: IntArray, rows: IntArray) -> _Model:
        """The sub-model made of ``columns`` and ``rows`` (the rows use only those columns)."""
        where = np.full(self.columns, -1, dtype=np.int64)
        where[columns] = np.arange(columns.size)
        lengths = np.diff(self.row_start)
        keep = np.zeros(self.rows, dtype=bool)
        keep[rows] = True
        entries = np.repeat(keep, lengths)
        return _Model(
            cost=self.cost[columns],
            upper=self.upper[columns],
            integer=self.integer[columns],
            slack=self.slack[columns],
            owner=self.owner[columns],
            row_lower=self.row_lower[rows],
            row_upper=self.row_upper[rows],
            row_start=np.concatenate(([0], np.cumsum(lengths[rows]))).astype(np.int64),
            row_index=where[self.row_index[entries]],
            row_value=self.row_value[entries],
            capacity=self.capacity[rows],
        )


@dataclass(slots=True)
class _Builder:
    """Collects columns and rows in chunks, then makes a :class:`_Model`."""

    columns: int = 0
    column_chunks: list[tuple[FloatArray, FloatArray, bool, bool, int]] = field(default_factory=list)
    row_chunks: list[tuple[IntArray, IntArray, FloatArray, FloatArray, FloatArray, bool]] = field(default_factory=list)
    links: list[IntArray] = field(default_factory=list)

    def add_columns(
        self, owner: int, cost: FloatArray, upper: FloatArray, *, integer: bool = False, slack: bool = False
    ) -> IntArray:
        """New columns (bounds 0..upper); their indices."""
        self.column_chunks.append((cost, upper, integer, slack, owner))
        first = self.columns
        self.columns += cost.size
        return np.arange(first, self.columns, dtype=np.int64)

    def add_rows(
        self,
        rows: IntArray,
        index: IntArray,
        value: FloatArray,
        bounds: tuple[FloatArray, FloatArray],
        *,
        capacity: bool = False,
    ) -> None:
        """Rows ``0..len(lower)-1`` of this chunk (``bounds``: lower, upper); entry ``k`` is in row
        ``rows[k]``; ``capacity``: node-limit rows."""
        self.row_chunks.append((rows, index, value, bounds[0], bounds[1], capacity))

    def model(self) -> _Model:
        chunks = self.column_chunks
        sizes = [cost.size for cost, *_ in chunks]
        row_parts: list[tuple[IntArray, IntArray, FloatArray]] = []
        lowers: list[FloatArray] = []
        uppers: list[FloatArray] = []
        capacity: list[bool] = []
        offset = 0
        for rows, index, value, lower, upper, limit in self.row_chunks:
            order = np.argsort(rows, kind="stable")
            row_parts.append((rows[order] + offset, index[order], value[order]))
            lowers.append(lower)
            uppers.append(upper)
            capacity += [limit] * lower.size
            offset += lower.size
        row_ids = np.concatenate([part[0] for part in row_parts]) if row_parts else np.zeros(0, dtype=np.int64)
        return _Model(
            cost=_concat([cost for cost, *_ in chunks]),
            upper=_concat([upper for _, upper, *_ in chunks]),
            integer=np.repeat([chunk[2] for chunk in chunks], sizes).astype(bool),
            slack=np.repeat([chunk[3] for chunk in chunks], sizes).astype(bool),
            owner=np.repeat([chunk[4] for chunk in chunks], sizes).astype(np.int64),
            row_lower=_concat(lowers),
            row_upper=_concat(uppers),
            row_start=np.concatenate(([0], np.cumsum(np.bincount(row_ids, minlength=offset)))).astype(np.int64),
            row_index=np.concatenate([part[1] for part in row_parts]).astype(np.int64) if row_parts else row_ids,
            row_value=_concat([part[2] for part in row_parts]),
            capacity=np.array(capacity, dtype=bool),
            links=self.links,
        )


def _ints(array: IntArray) -> list[int]:
    return cast("list[int]", array.tolist())


def _floats(array: FloatArray) -> list[float]:
    return cast("list[float]", array.tolist())


def _concat(arrays: list[FloatArray]) -> FloatArray:
    return np.concatenate(arrays).astype(np.float64) if arrays else np.zeros(0)


@dataclass(slots=True)
class _Layout:
    """Where each session and slot lives in the model (current = minimum x on + extra)."""

    on: IntArray  # (S, T) column of the on/off binary, -1: none
    extra: IntArray  # (S, T) column of the current above the minimum, -1: none
    unmet: IntArray  # (S,) -1: the session cannot charge at all
    grid: dict[int, int] = field(default_factory=dict)  # slot -> grid import column (PV covers part)
    groups: list[list[int]] = field(default_factory=list)  # identical sessions, in symmetry order

    def entries(
        self, comp: _Compiled, sessions: IntArray, slots: IntArray, scale: FloatArray
    ) -> tuple[IntArray, IntArray, FloatArray]:
        """The terms of ``scale[s, t] * current[s, t]`` for ``sessions`` x ``slots``.

        Returns (position of the slot in ``slots``, column, coefficient) per term.
        """
        on = self.on[np.ix_(sessions, slots)].T
        extra = self.extra[np.ix_(sessions, slots)].T
        factor = scale[np.ix_(sessions, slots)].T
        on_slot, on_session = np.nonzero(on >= 0)
        extra_slot, extra_session = np.nonzero(extra >= 0)
        minimum = comp.min_a[sessions]
        return (
            np.concatenate((on_slot, extra_slot)),
            np.concatenate((on[on_slot, on_session], extra[extra_slot, extra_session])),
            np.concatenate((factor[on_slot, on_session] * minimum[on_session], factor[extra_slot, extra_session])),
        )


def _build(comp: _Compiled, config: PlannerConfig) -> tuple[_Model, _Layout]:
    builder = _Builder()
    size, slots = comp.sessions, comp.slots
    layout = _Layout(
        on=np.full((size, slots), -1, dtype=np.int64),
        extra=np.full((size, slots), -1, dtype=np.int64),
        unmet=np.full(size, -1, dtype=np.int64),
    )
    ev_most = (comp.cap * comp.kwh_per_a).sum(axis=0)
    grid_weight = np.maximum(comp.weight, 0.0)
    covered = comp.pv_kwh >= ev_most - _EPS
    # Where the sun covers part of the draw: every kWh gives up the feed-in, the grid's pay the rest.
    mixed = (comp.pv_kwh > _EPS) & ~covered & (grid_weight > comp.pv_weight)
    per_kwh = np.where(mixed | covered, comp.pv_weight, grid_weight) + _EARLY_EUR_PER_KWH * np.arange(1, slots + 1)
    for row in range(size):
        usable = np.nonzero(comp.cap[row] > 0)[0]
        if not usable.size:
            continue
        minimum = float(comp.min_a[row])
        kwh = comp.kwh_per_a[row, usable]
        on = builder.add_columns(row, per_kwh[usable] * kwh * minimum, np.ones(usable.size), integer=not config.relax)
        layout.on[row, usable] = on
        spread = comp.cap[row, usable] - minimum
        wide = spread > _EPS
        extra = builder.add_columns(row, per_kwh[usable[wide]] * kwh[wide], spread[wide])
        layout.extra[row, usable[wide]] = extra
        # extra <= (cap - minimum) x on
        pairs = np.arange(extra.size)
        builder.add_rows(
            np.concatenate((pairs, pairs)),
            np.concatenate((extra, on[wide])),
            np.concatenate((np.ones(extra.size), -spread[wide])),
            (np.full(extra.size, -math.inf), np.zeros(extra.size)),
        )
        # energy + unmet >= reach
        reach = float(comp.reach[row])
        unmet = builder.add_columns(row, np.array([comp.penalty]), np.array([reach]), slack=True)
        layout.unmet[row] = unmet[0]
        index = np.concatenate((on, extra, unmet))
        value = np.concatenate((kwh * minimum, kwh[wide], [1.0]))
        builder.add_rows(np.zeros(index.size, dtype=np.int64), index, value, (np.array([reach]), np.array([math.inf])))
    _node_rows(comp, builder, layout)
    pv_slots = np.nonzero(mixed)[0]
    if pv_slots.size:
        # energy drawn - grid import <= PV, in the slots where the PV covers part of the draw
        upper = ev_most[pv_slots] - comp.pv_kwh[pv_slots]
        sessions = np.nonzero((layout.on[:, pv_slots] >= 0).any(axis=1))[0]
        grid = builder.add_columns(int(sessions[0]), (grid_weight - comp.pv_weight)[pv_slots], upper)
        layout.grid = dict(zip(_ints(pv_slots), _ints(grid), strict=True))
        rows, index, value = layout.entries(comp, sessions, pv_slots, comp.kwh_per_a)
        builder.add_rows(
            np.concatenate((rows, np.arange(pv_slots.size))),
            np.concatenate((index, grid)),
            np.concatenate((value, -np.ones(pv_slots.size))),
            (np.full(pv_slots.size, -math.inf), comp.pv_kwh[pv_slots]),
        )
        builder.links.append(sessions)
    layout.groups = _identical_groups(comp) if config.symmetry_breaking else []
    everywhere = np.arange(slots)
    weights = comp.kwh_per_a * np.arange(1, slots + 1)
    for group in layout.groups:
        for first, second in itertools.pairwise(group):
            # Identical sessions: the first one's energy-weighted mean slot is the earliest.
            _, index_a, value_a = layout.entries(comp, np.array([first]), everywhere, weights)
            _, index_b, value_b = layout.entries(comp, np.array([second]), everywhere, weights)
            index = np.concatenate((index_a, index_b))
            builder.add_rows(
                np.zeros(index.size, dtype=np.int64),
                index,
                np.concatenate((value_a, -value_b)),
                (np.array([-math.inf]), np.array([0.0])),
            )
            builder.links.append(np.array([first, second]))
    return builder.model(), layout


def _node_rows(comp: _Compiled, builder: _Builder, layout: _Layout) -> None:
    """One row per node, phase (or power) and slot where the sessions below could exceed the limit."""
    ones = np.ones((comp.sessions, comp.slots))
    kw_per_a = np.repeat((comp.nph * (comp.voltage / 1000.0))[:, None], comp.slots, axis=1)
    active = np.asarray(comp.cap.any(axis=1), dtype=bool)
    for node in range(comp.lim_a.shape[0]):
        members = np.array([row for row in range(comp.sessions) if active[row] and node in comp.paths[row]])
        if members.size < 2:
            continue
        limits: list[tuple[IntArray, FloatArray, FloatArray]] = []
        for phase in range(3):
            rows = np.array([row for row in members if phase in comp.phase_sets[row]], dtype=np.int64)
            if rows.size:
                limits.append((rows, ones, comp.lim_a[node, phase]))
        limits.append((members, kw_per_a, comp.lim_w[node] / 1000.0))
        for rows, scale, limit in limits:
            binding = np.nonzero((comp.cap[rows] * scale[rows]).sum(axis=0) > limit + _EPS)[0]
            if not binding.size:
                continue
            positions, index, value = layout.entries(comp, rows, binding, scale)
            bounds = (np.full(binding.size, -math.inf), limit[binding])
            builder.add_rows(positions, index, value, bounds, capacity=True)
            builder.links.append(rows)


def _identical_groups(comp: _Compiled) -> list[list[int]]:
    """Sessions that differ only by their id (same node, phases, limits, presence and need)."""
    groups: dict[tuple[Any, ...], list[int]] = {}
    for row in range(comp.sessions):
        if not comp.cap[row].any():
            continue
        key = (
            tuple(comp.paths[row]),
            tuple(comp.phase_sets[row]),
            float(comp.min_a[row]),
            float(comp.need[row]),
            float(comp.reach[row]),
            comp.cap[row].tobytes(),
            comp.kwh_per_a[row].tobytes(),
        )
        groups.setdefault(key, []).append(row)
    return [group for group in groups.values() if len(group) > 1]


def _to_columns(comp: _Compiled, model: _Model, layout: _Layout, current: FloatArray) -> FloatArray:
    """A feasible plan as a full column vector of the model (the starting solution)."""
    current = _symmetry_order(comp, layout, current)
    values = np.zeros(model.columns)
    rows, slots = np.nonzero(layout.on >= 0)
    running = current[rows, slots] >= comp.min_a[rows] - _EPS
    values[layout.on[rows, slots]] = running.astype(np.float64)
    extra = layout.extra[rows, slots]
    spread = np.where(running, current[rows, slots] - comp.min_a[rows], 0.0)
    values[extra[extra >= 0]] = np.maximum(spread[extra >= 0], 0.0)
    delivered = (current * comp.kwh_per_a).sum(axis=1)
    active = layout.unmet >= 0
    values[layout.unmet[active]] = np.maximum(comp.reach - delivered, 0.0)[active]
    ev_kwh = (current * comp.kwh_per_a).sum(axis=0)
    for slot, column in layout.grid.items():
        values[column] = max(ev_kwh[slot] - comp.pv_kwh[slot], 0.0)
    return values


def _symmetry_order(comp: _Compiled, layout: _Layout, current: FloatArray) -> FloatArray:
    """``current`` with identical sessions' plans swapped so they satisfy the symmetry rows."""
    current = current.copy()
    for group in layout.groups:
        weights = comp.kwh_per_a[group[0]] * np.arange(1, comp.slots + 1)
        ordered = sorted(group, key=lambda row: float(np.dot(current[row], weights)))
        current[group] = current[ordered]
    return current


def _currents(comp: _Compiled, layout: _Layout, values: FloatArray, *, relaxed: bool) -> FloatArray:
    """The plan (A per session and slot) from a column vector."""
    current = np.zeros((comp.sessions, comp.slots))
    rows, slots = np.nonzero(layout.on >= 0)
    on = values[layout.on[rows, slots]]
    extra_columns = layout.extra[rows, slots]
    extra = np.where(extra_columns >= 0, values[np.maximum(extra_columns, 0)], 0.0)
    if relaxed:
        current[rows, slots] = np.clip(comp.min_a[rows] * on + extra, 0.0, comp.cap[rows, slots])
    else:
        running = on > 0.5
        current[rows, slots] = np.where(
            running, np.clip(comp.min_a[rows] + extra, comp.min_a[rows], comp.cap[rows, slots]), 0.0
        )
    return current


type Part = tuple[IntArray, IntArray]
"""Columns and rows of an independent part of the model."""


def _components(model: _Model, sessions: int) -> list[Part]:
    """The independent parts of the model: columns and rows that share no row with the others."""
    parent = list(range(sessions))

    def find(item: int) -> int:
        while parent[item] != item:
            parent[item] = parent[parent[item]]
            item = parent[item]
        return item

    for link in model.links:
        root = find(int(link[0]))
        for other in link[1:]:
            parent[find(int(other))] = root
    roots = np.array([find(session) for session in range(sessions)], dtype=np.int64)
    column_root = roots[model.owner]
    row_root = column_root[model.row_index[model.row_start[:-1]]]
    return [(np.nonzero(column_root == root)[0], np.nonzero(row_root == root)[0]) for root in np.unique(column_root)]


# ---------------------------------------------------------------------------------------------
# Solving

_PART_MIN_COLUMNS = 300
"""Independent parts smaller than this are solved together (one HiGHS call each costs time)."""
_PART_MIN_S = 0.25
"""The least time given to each independent part, however small."""
_MIP_MIN_S = 0.02
"""Below this much time left, HiGHS's MIP is not started."""
_LOAD_S_PER_NONZERO = {Backend.PULP: 4e-6, Backend.HIGHSPY: 2e-7}
"""A generous estimate of the time to hand the model to HiGHS (PuLP objects are slow to make):
the solver is not started when less time than that is left, since loading cannot be stopped."""


@dataclass(slots=True)
class _Outcome:
    """What the solver produced for one part of the model."""

    values: FloatArray | None  # None: nothing beyond the greedy starting plan
    status: str
    optimal: bool  # proven within the gap
    objective: float
    bound: float
    seconds: float
    start: str  # where HiGHS's starting plan came from


@dataclass(slots=True)
class _Loaded:
    """A model loaded in HiGHS; ``order[j]`` is HiGHS's index of model column ``j``."""

    highs: highspy.Highs
    order: IntArray
    binaries: IntArray  # model columns of the on/off binaries
    integer: npt.NDArray[np.int32]  # their HiGHS columns

    def set_integer(self, integer: bool) -> None:
        """Switch the on/off columns between binary (MILP) and continuous (LP relaxation)."""
        if self.integer.size:
            kind = highspy.HighsVarType.kInteger if integer else highspy.HighsVarType.kContinuous
            kinds = np.full(self.integer.size, kind.value, dtype=np.uint8)
            self.highs.changeColsIntegrality(self.integer.size, self.integer, kinds)

    def fix(self, which: BoolArray, values: FloatArray) -> npt.NDArray[np.int32]:
        """Fix the binaries selected by ``which`` to ``values`` (both per binary); their HiGHS columns."""
        fixed = self.integer[which]
        self.highs.changeColsBounds(fixed.size, fixed, values[which], values[which])
        return fixed

    def release(self, fixed: npt.NDArray[np.int32]) -> None:
        """Undo :meth:`fix`."""
        self.highs.changeColsBounds(fixed.size, fixed, np.zeros(fixed.size), np.ones(fixed.size))

    def start_from(self, values: FloatArray) -> None:
        """Give HiGHS a feasible solution to start from (model column order)."""
        full = np.zeros(values.size)
        full[self.order] = values
        solution = highspy.HighsSolution()
        solution.col_value = full.tolist()
        solution.value_valid = True
        self.highs.setSolution(solution)

    def run(self, seconds: float) -> tuple[bool, bool, float, float]:
        """Run HiGHS for at most ``seconds``: (optimal, has a solution, objective, dual bound)."""
        self.highs.setOptionValue("time_limit", max(float(seconds), 1e-3))
        self.highs.run()
        info = self.highs.getInfo()
        optimal = self.highs.getModelStatus() == highspy.HighsModelStatus.kOptimal
        feasible = info.primal_solution_status == highspy.SolutionStatus.kSolutionStatusFeasible
        bound = float(info.mip_dual_bound)
        return optimal, feasible, float(info.objective_function_value), bound if math.isfinite(bound) else -math.inf

    def values(self) -> FloatArray:
        """The current solution, in model column order."""
        return np.asarray(self.highs.getSolution().col_value, dtype=np.float64)[self.order]

    @property
    def status(self) -> str:
        return str(self.highs.modelStatusToString(self.highs.getModelStatus()))


def _load_highspy(model: _Model) -> _Loaded:
    """The model straight into highspy as sparse arrays (no PuLP objects)."""
    highs = highspy.Highs()  # type: ignore[no-untyped-call]
    empty = np.zeros(0, dtype=np.int32)
    highs.addCols(model.columns, model.cost, np.zeros(model.columns), model.upper, 0, empty, empty, np.zeros(0))
    highs.addRows(
        model.rows,
        model.row_lower,
        model.row_upper,
        model.row_index.size,
        model.row_start[:-1].astype(np.int32),
        model.row_index.astype(np.int32),
        model.row_value,
    )
    binaries = np.nonzero(model.integer)[0]
    loaded = _Loaded(highs, np.arange(model.columns, dtype=np.int64), binaries, binaries.astype(np.int32))
    loaded.set_integer(True)
    return loaded


def _load_pulp(model: _Model) -> _Loaded:
    """The model written with PuLP's classic API and handed to HiGHS by ``pulp.HiGHS``.

    PuLP 3.3's HiGHS interface takes no starting solution and cannot solve the LP relaxation
    and then the MILP on one loaded model, so PuLP builds and transfers the model
    (``createAndConfigureSolver``, ``buildSolverModel``) and the planner runs HiGHS itself.
    """
    problem = pulp.LpProblem("charging_plan", pulp.LpMinimize)
    width = len(str(model.columns))
    upper = _floats(model.upper)
    integer = cast("list[bool]", model.integer.tolist())
    columns = [
        pulp.LpVariable(
            f"x{j:0{width}d}",
            lowBound=0.0,
            upBound=upper[j],
            cat=pulp.LpBinary if integer[j] else pulp.LpContinuous,
        )
        for j in range(model.columns)
    ]
    problem.setObjective(pulp.LpAffineExpression(zip(columns, _floats(model.cost), strict=True)))
    starts = _ints(model.row_start)
    index = _ints(model.row_index)
    value = _floats(model.row_value)
    for row, (lower, upper_bound) in enumerate(zip(_floats(model.row_lower), _floats(model.row_upper), strict=True)):
        terms = range(starts[row], starts[row + 1])
        expression = pulp.LpAffineExpression([(columns[index[k]], value[k]) for k in terms])
        if math.isinf(lower):
            constraint = pulp.LpConstraint(expression, pulp.LpConstraintLE, f"r{row}", upper_bound)
        else:
            constraint = pulp.LpConstraint(expression, pulp.LpConstraintGE, f"r{row}", lower)
        problem.addConstraint(constraint)
    solver = pulp.HiGHS(mip=True, msg=False)
    solver.createAndConfigureSolver(problem)
    solver.buildSolverModel(problem)
    order = np.array([variable.index for variable in columns], dtype=np.int64)
    binaries = np.nonzero(model.integer)[0]
    return _Loaded(problem.solverModel, order, binaries, order[binaries].astype(np.int32))


def _allowance(model: _Model, config: PlannerConfig, values: FloatArray) -> float:
    """How far above the optimum a plan as good as ``values`` may be: the gap times its cost.

    The gap is relative to the cost part of the objective, not to the whole: when some energy
    cannot be delivered, the penalty dwarfs the cost and 1 % of the objective would accept almost
    any cost. When every need is met, this is the usual relative gap.
    """
    return config.mip_gap * max(abs(model.split(values)[0]), 0.01)


def _within_gap(model: _Model, config: PlannerConfig, values: FloatArray, bound: float) -> bool:
    """Whether ``values`` is proven within the gap of the optimum, given a lower ``bound``."""
    return float(model.cost @ values) - bound <= _allowance(model, config, values)


def _configure(highs: highspy.Highs, model: _Model, config: PlannerConfig, start: FloatArray) -> None:
    highs.setOptionValue("output_flag", False)
    highs.setOptionValue("mip_rel_gap", 0.0)
    highs.setOptionValue("mip_abs_gap", _allowance(model, config, start))
    for key, value in config.solver_options.items():
        highs.setOptionValue(key, value)


def _solve(
    model: _Model,
    config: PlannerConfig,
    *,
    start: FloatArray,
    source: str,
    rounder: Callable[[FloatArray], FloatArray],
    deadline: float,
    clock: Callable[[], float],
) -> _Outcome:
    """Solve one part before ``deadline``; each step stops as soon as a plan is within the gap:

    1. the LP relaxation: its optimum is the lower bound;
    2. its rounding by ``rounder`` (greedy repair);
    3. the LP with every binary fixed: those the LP left at 0 or 1 as they are, the fractional
       ones at 1 where the minimums still fit under every node limit, else 0;
    4. RENS: the MILP on the fractional binaries only, the others fixed;
    5. the whole MILP, from the best plan so far.

    Without warm start, only step 5 runs, from scratch. HiGHS cannot be stopped while it
    presolves, so a MILP is started only when twice the LP's time is left.
    """
    began = clock()
    loaded = _load_pulp(model) if config.backend is Backend.PULP else _load_highspy(model)
    if deadline - clock() < _MIP_MIN_S:
        return _Outcome(
            None, "no time left once the model was loaded", False, math.inf, -math.inf, clock() - began, source
        )
    _configure(loaded.highs, model, config, start)
    loaded.highs.cbMipInterrupt.subscribe(_interrupter(deadline, clock))
    cost = model.cost
    state = _Search(start, source, float(cost @ start))

    def outcome(status: str, *, optimal: bool) -> _Outcome:
        values = state.start if state.improved or optimal else None
        return _Outcome(values, status, optimal, state.objective, state.bound, clock() - began, state.source)

    def better(values: FloatArray, name: str) -> bool:
        """Keep ``values`` if better; whether the best plan is now proven within the gap."""
        objective = float(cost @ values)
        if objective < state.objective - _EPS:
            state.start, state.source, state.objective, state.improved = values, name, objective, True
        return _within_gap(model, config, state.start, state.bound)

    mip_s = _MIP_MIN_S
    if config.warm_start or config.relax:
        loaded.set_integer(False)
        lp_began = clock()
        optimal, _, objective, _ = loaded.run(deadline - clock())
        if config.relax:
            relaxed = loaded.values() if optimal else None
            return _Outcome(relaxed, loaded.status, optimal, objective, objective, clock() - began, "none")
        if not optimal:
            return outcome(f"LP relaxation: {loaded.status}", optimal=False)
        mip_s = max(_MIP_MIN_S, 2 * (clock() - lp_began))
        state.bound = objective
        relaxed = loaded.values()
        if better(rounder(relaxed), "lp_rounding"):
            return outcome("LP bound", optimal=True)
        on = relaxed[loaded.binaries]
        integral = (on <= _TINY) | (on >= 1 - _TINY)
        everything = loaded.fix(np.ones(on.size, dtype=bool), _fit_ones(model, loaded.binaries, on))
        fixed_ok, _, _, _ = loaded.run(deadline - clock())
        if fixed_ok and better(loaded.values(), "lp_fixing"):
            return outcome("LP bound", optimal=True)
        loaded.release(everything)
        loaded.set_integer(True)
        loaded.highs.setOptionValue("mip_heuristic_run_feasibility_jump", False)
        # Stop HiGHS as soon as a plan is within the gap of the LP bound.
        loaded.highs.setOptionValue("objective_target", state.bound + _allowance(model, config, state.start))
        if deadline - clock() >= 2 * mip_s:
            fixed = loaded.fix(integral, np.round(on))
            loaded.start_from(state.start)
            _, feasible, _, _ = loaded.run((deadline - clock()) * 0.5)
            loaded.release(fixed)
            if feasible and better(loaded.values(), "lp_neighbourhood"):
                return outcome("LP bound", optimal=True)
        loaded.start_from(state.start)
    left = (deadline - clock()) * 0.8 - 0.01
    if left < mip_s:
        return outcome("no time left for the MIP", optimal=False)
    optimal, feasible, _, mip_bound = loaded.run(left)
    state.bound = max(state.bound, mip_bound)
    if feasible:
        values = loaded.values()
        better(values, state.source)
        # HiGHS stops at the objective target (bound + allowance): that plan is within the gap.
        optimal = optimal or _within_gap(model, config, values, state.bound)
    return outcome(loaded.status, optimal=optimal and (state.improved or feasible))


@dataclass(slots=True)
class _Search:
    """The best plan of a part so far, where it comes from, and the lower bound."""

    start: FloatArray
    source: str
    objective: float
    bound: float = -math.inf
    improved: bool = False  # better than the starting plan the planner gave


def _fit_ones(model: _Model, binaries: IntArray, on: FloatArray) -> FloatArray:
    """A 0/1 value for every binary: as in ``on`` (an LP optimum) where it is 0 or 1; the
    fractional ones set to 1, largest first, while the minimums fit under every node limit."""
    pattern = np.where(on >= 1 - _TINY, 1.0, 0.0)
    fractional = np.nonzero((on > _TINY) & (on < 1 - _TINY))[0]
    rows = np.repeat(np.arange(model.rows), np.diff(model.row_start))
    capacity = model.capacity[rows]
    values = np.zeros(model.columns)
    values[binaries] = pattern
    load = np.zeros(model.rows)
    np.add.at(load, rows[capacity], model.row_value[capacity] * values[model.row_index[capacity]])
    slack = model.row_upper - load
    column_of = np.full(model.columns, -1, dtype=np.int64)
    column_of[binaries[fractional]] = fractional
    entries = capacity & (column_of[model.row_index] >= 0)
    touched: dict[int, list[tuple[int, float]]] = {}
    for row, column, value in zip(
        _ints(rows[entries]), _ints(column_of[model.row_index[entries]]), _floats(model.row_value[entries]), strict=True
    ):
        touched.setdefault(column, []).append((row, value))
    for binary in fractional[np.argsort(-on[fractional], kind="stable")]:
        terms = touched.get(int(binary), [])
        if all(slack[row] >= value - _EPS for row, value in terms):
            pattern[binary] = 1.0
            for row, value in terms:
                slack[row] -= value
    return pattern


def _interrupter(deadline: float, clock: Callable[[], float]) -> Callable[[Any], None]:
    """A HiGHS MIP callback that stops the solve at ``deadline`` (HiGHS's own time limit is
    checked at coarse points only)."""

    def interrupt(event: Any) -> None:
        if clock() >= deadline:
            event.interrupt()

    return interrupt


# ---------------------------------------------------------------------------------------------
# Planning


def plan(
    problem: PlanProblem,
    config: PlannerConfig | None = None,
    *,
    initial: Plan | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> Plan:
    """Plan every session of ``problem``; always returns within about ``config.time_limit_s``.

    The greedy plan is the fallback and the first starting plan; ``initial`` (the previous plan,
    see :class:`Planner`), shifted to the new slots and repaired (what no longer fits dropped,
    needs topped up greedily), replaces it when better. Then each independent part of the site is
    solved as :func:`_solve` describes, within its share of the time. Checking the problem and
    building the model (about 0.1 s for 400 sessions) cannot be interrupted; neither can handing
    the model to HiGHS, so the solver is skipped when the time left looks too short for that.
    ``clock`` only measures the time spent. Raises :class:`PlanError` for an invalid problem.
    """
    config = config or PlannerConfig()
    began = clock()
    deadline = began + config.time_limit_s - min(0.05 * config.time_limit_s, 0.25)
    comp = _compile(problem, config)
    incumbent = _greedy(comp, "edf")
    source = "greedy_edf" if config.warm_start else "none"
    if initial is not None and config.warm_start:
        repaired = _greedy(comp, "edf", _shift_plan(comp, initial))
        if _evaluate(comp, repaired).objective < _evaluate(comp, incumbent).objective - _EPS:
            incumbent, source = repaired, "last_plan"
    model, layout = _build(comp, config)
    start_values = _to_columns(comp, model, layout, incumbent)
    parts = _parts(model, comp.sessions, decompose=config.decompose)
    build_s = clock() - began
    values = start_values.copy()
    outcomes: list[_Outcome] = []
    notes: list[str] = []
    fallback = 0
    left = sum(columns.size for columns, _ in parts)
    for columns, rows in parts:
        # Its share of the time left, but enough for a small part (they are quick).
        share = max((deadline - clock()) * columns.size / left, min(deadline - clock(), _PART_MIN_S))
        left -= columns.size
        outcome = _solve_part(
            comp,
            model,
            layout,
            (columns, rows),
            config,
            start=start_values,
            source=source,
            deadline=clock() + share,
            clock=clock,
        )
        if isinstance(outcome, str):
            fallback += 1
            notes.append(outcome)
            continue
        outcomes.append(outcome)
        if not outcome.optimal:
            notes.append(f"HiGHS: {outcome.status}")
        if outcome.values is None:
            fallback += 1
            continue
        values[columns] = outcome.values
    current = _currents(comp, layout, values, relaxed=config.relax)
    problems = [] if config.relax else _violations(comp, current, TOLERANCE_A)
    if problems:
        _LOGGER.error("planner: the solver's plan breaks %s; using the greedy plan", problems[0])
        current = _symmetry_order(comp, layout, incumbent)
        fallback, outcomes = len(parts), []
        notes.append(f"solver plan rejected: {problems[0]}")
    method, gap = _method(outcomes, fallback, penalty=model.split(values)[1], relaxed=config.relax)
    result = _result(
        comp,
        current,
        method=method,
        gap=gap,
        incumbent=outcomes[-1].start if outcomes else source,  # the largest part's
        relaxed=config.relax,
        components=len(parts),
        model=model,
        build_s=build_s,
        solve_s=sum(outcome.seconds for outcome in outcomes),
        total_s=clock() - began,
        detail="; ".join(notes),
    )
    log = _LOGGER.warning if method is PlanMethod.GREEDY_EDF else _LOGGER.info
    log(
        "planner: %s (gap %s) for %d sessions in %.3f s (build %.3f s, solve %.3f s)%s",
        method,
        "n/a" if gap is None else f"{gap:.4f}",
        comp.sessions,
        result.total_s,
        result.build_s,
        result.solve_s,
        f": {result.detail}" if result.detail else "",
    )
    return result


def _parts(model: _Model, sessions: int, *, decompose: bool) -> list[Part]:
    """The parts solved one by one: independent parts, the small ones merged, smallest first."""
    if not model.columns:
        return []
    everything = (np.arange(model.columns), np.arange(model.rows))
    if not decompose:
        return [everything]
    parts = _components(model, sessions)
    large = [part for part in parts if part[0].size >= _PART_MIN_COLUMNS]
    small = [part for part in parts if part[0].size < _PART_MIN_COLUMNS]
    if small:
        large.append((np.sort(np.concatenate([c for c, _ in small])), np.sort(np.concatenate([r for _, r in small]))))
    if len(large) == 1:
        return [everything]
    return sorted(large, key=lambda part: part[0].size)


def _solve_part(
    comp: _Compiled,
    model: _Model,
    layout: _Layout,
    part: Part,
    config: PlannerConfig,
    *,
    start: FloatArray,
    source: str,
    deadline: float,
    clock: Callable[[], float],
) -> _Outcome | str:
    """Solve one part; a string says why it was not solved."""
    columns, rows = part
    sub = model if columns.size == model.columns else model.part(columns, rows)
    if deadline - clock() < _MIP_MIN_S + sub.row_index.size * _LOAD_S_PER_NONZERO[config.backend]:
        return "no time left for the solver"
    sessions = _ints(np.unique(model.owner[columns]))

    def rounder(lp_values: FloatArray) -> FloatArray:
        # The LP optimum rounded: its currents at or above the minimum first (they fit together),
        # then those between 0 and the minimum raised to it where they still fit, then the
        # needs topped up by the greedy.
        full = np.zeros(model.columns)
        full[columns] = lp_values
        relaxed = _currents(comp, layout, full, relaxed=True)
        minimum = comp.min_a[:, None] - _EPS
        running = np.where(relaxed >= minimum, relaxed, 0.0)
        raised = np.where((relaxed > _TINY) & (relaxed < minimum), minimum + _EPS, 0.0)
        current = _greedy(comp, "edf", running, raised, rows=sessions)
        return _to_columns(comp, model, layout, current)[columns]

    try:
        return _solve(sub, config, start=start[columns], source=source, rounder=rounder, deadline=deadline, clock=clock)
    except Exception as error:  # a plan must come out whatever the solver does
        _LOGGER.exception("planner: the solver failed")
        return f"solver error: {error!r}"


def _method(
    outcomes: list[_Outcome], fallback: int, *, penalty: float, relaxed: bool
) -> tuple[PlanMethod, float | None]:
    """The plan's method and gap; the gap is relative to the cost part of the objective (the
    whole objective when every need is met), so that the unmet penalty does not hide it."""
    if fallback:
        return PlanMethod.GREEDY_EDF, None
    if not outcomes:
        return PlanMethod.OPTIMAL, 0.0
    objective = sum(outcome.objective for outcome in outcomes)
    bound = sum(outcome.bound for outcome in outcomes)
    gap = 0.0 if relaxed else max(objective - bound, 0.0) / max(abs(objective - penalty), 0.01)
    if all(outcome.optimal for outcome in outcomes):
        return PlanMethod.OPTIMAL, gap
    return PlanMethod.FEASIBLE_TIMEOUT, min(gap, 1.0) if math.isfinite(gap) else 1.0


def _shift_plan(comp: _Compiled, previous: Plan) -> FloatArray:
    """``previous``'s currents on this problem's slots (by session id and time), 0 elsewhere."""
    base = np.zeros((comp.sessions, comp.slots))
    middle = comp.start + (np.arange(comp.slots) + 0.5) * comp.slot_s
    old = np.floor((middle - previous.start) / previous.slot_s).astype(np.int64)
    inside = (old >= 0) & (old < previous.slots)
    for row, session_id in enumerate(comp.ids):
        session = previous.sessions.get(session_id)
        if session is not None:
            base[row, inside] = np.asarray(session.current_a)[old[inside]]
    return base


def _result(
    comp: _Compiled,
    current: FloatArray,
    *,
    method: PlanMethod,
    gap: float | None,
    incumbent: str,
    relaxed: bool = False,
    components: int = 0,
    model: _Model | None = None,
    build_s: float = 0.0,
    solve_s: float = 0.0,
    total_s: float = 0.0,
    detail: str = "",
) -> Plan:
    current = np.round(current, 6)
    figures = _evaluate(comp, current)
    power = current * comp.nph[:, None] * comp.voltage
    sessions = {
        session_id: SessionPlan(
            session_id=session_id,
            current_a=tuple(current[row].tolist()),
            power_w=tuple(power[row].tolist()),
            energy_kwh=float(figures.energy[row]),
            need_kwh=float(comp.need[row]),
            unmet_kwh=float(figures.unmet[row]),
            reachable_kwh=float(comp.reach[row]),
        )
        for row, session_id in enumerate(comp.ids)
    }
    return Plan(
        start=comp.start,
        slot_s=comp.slot_s,
        slots=comp.slots,
        sessions=MappingProxyType(sessions),
        method=method,
        gap=gap,
        objective=figures.objective,
        cost_eur=figures.cost,
        grid_import_kwh=float(figures.grid_kwh.sum()),
        pv_used_kwh=figures.pv_used,
        unmet_kwh=float(figures.unmet.sum()),
        incumbent=incumbent,
        relaxed=relaxed,
        components=components,
        variables=model.columns if model else 0,
        binaries=model.binaries if model else 0,
        rows=model.rows if model else 0,
        build_s=build_s,
        solve_s=solve_s,
        total_s=total_s,
        detail=detail,
    )


def greedy_plan(
    problem: PlanProblem,
    config: PlannerConfig | None = None,
    *,
    order: GreedyOrder = "edf",
    clock: Callable[[], float] = time.perf_counter,
) -> Plan:
    """The greedy plan alone (the planner's fallback, and a baseline for comparisons).

    ``edf``: earliest departure first, each session in its cheapest slots; ``now``: "charge
    now", in arrival order, each as soon and as fast as the limits allow. Both respect the
    minimum and maximum currents and every node limit.
    """
    config = config or PlannerConfig()
    began = clock()
    comp = _compile(problem, config)
    current = _greedy(comp, order)
    return _result(
        comp, current, method=PlanMethod.GREEDY_EDF, gap=None, incumbent="none", total_s=clock() - began, detail=order
    )


class Planner:
    """Plans again and again, each time starting HiGHS from the previous plan.

    The caller re-plans on events (a car arrives or leaves, a forecast changes), at most about
    once a minute, with the remaining needs and the new forecasts.
    """

    def __init__(self, config: PlannerConfig | None = None, *, clock: Callable[[], float] = time.perf_counter) -> None:
        self.config = config or PlannerConfig()
        self._clock = clock
        self._last: Plan | None = None

    @property
    def last(self) -> Plan | None:
        """The latest plan (None before the first)."""
        return self._last

    def plan(self, problem: PlanProblem) -> Plan:
        """Plan ``problem``, starting from the previous plan, and keep the result."""
        self._last = plan(problem, self.config, initial=self._last, clock=self._clock)
        return self._last

    def reset(self) -> None:
        """Forget the previous plan."""
        self._last = None
