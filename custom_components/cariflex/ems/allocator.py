"""One allocation cycle: share the current available on every node of the site among sessions.

:func:`allocate` is a pure function: the same tree, sessions and time give the same result.
It works in integer multiples of ``step_a`` so that limits hold exactly (no float drift) and
every setpoint is one the chargers accept. See README.md in this package for the algorithm.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
import math
from types import MappingProxyType
from typing import Literal

from .tree import ZERO, Charger, EmsError, Node, PerPhase, Phase, SiteTree, Timestamp, to_seconds

_EPS = 1e-9
TOLERANCE_A = 1e-6
"""Rounding slack, in A, allowed when floats are compared with a limit."""


class SessionError(EmsError, ValueError):
    """The sessions given to the allocator do not match the tree or are not valid."""


class Strategy(StrEnum):
    """How sessions are ranked and how the current left once they have their minimum is shared.

    Every strategy first gives their minimum to as many sessions as fit, in its ranking
    (EQUAL and PRIORITY: priority then arrival; FCFS: arrival); the others are paused.
    """

    EQUAL = "equal"  # the rest: max-min fair water-filling
    PRIORITY = "priority"  # the rest: higher priority filled first, equal share within a priority
    FCFS = "fcfs"  # the rest: in arrival order, each filled to its maximum in turn


class Reason(StrEnum):
    """Why a session got its setpoint (node limits use :func:`limit_reason`)."""

    SITE_LIMIT = "site_limit"
    CHARGER_MAX = "charger_max"
    EV_MAX = "ev_max"
    EV_SELF_LIMITED = "ev_self_limited"
    PAUSED_MIN_NOT_REACHABLE = "paused_min_not_reachable"
    PAUSED_EV_MAX_BELOW_MIN = "paused_ev_max_below_min"
    STRATEGY_MAX = "strategy_max"  # the session's strategy_max_a bound it (and it gave no reason)
    # Set by the regulator:
    PAUSED_HOLD = "paused_hold"
    PAUSED_ROTATION = "paused_rotation"
    DEADBAND = "deadband"


def limit_reason(tree: SiteTree, node_id: str) -> str:
    """``site_limit`` for the root, ``board_limit:<id>`` for any other node."""
    return str(Reason.SITE_LIMIT) if node_id == tree.root else f"board_limit:{node_id}"


def meter_stale_reason(node_id: str) -> str:
    """The degraded-mode flag of a session below a node whose meter reading is stale."""
    return f"meter_stale:{node_id}"


@dataclass(frozen=True, slots=True)
class Session:
    """A charging session on charger ``charger_id``, as seen in this cycle.

    ``priority`` overrides the charger's priority (higher is served first). ``measured_a`` is
    the charger's measured draw per phase (None if unknown); ``setpoint_a`` is the setpoint the
    charger currently applies: together they tell a car that limits itself (it draws clearly
    less than its setpoint), whose unused share is then given to the others.
    ``ev_max_current_a`` is the car's own limit when known.

    The charging strategy (:mod:`.strategy`) may add targets; None leaves the allocation as it
    would be without them. ``strategy_max_a`` caps the session like the car's maximum does (below
    the charger minimum, the session is paused with ``strategy_reason``); ``strategy_min_a`` is a
    floor given to the session before the rest is shared (a badge's guaranteed minimum: it never
    breaks a limit); ``number_of_phases`` (1 on a three-phase charger that switched to one phase,
    on its ``phase``) says which phases the session uses; ``strategy_reason`` is the reason shown
    when the strategy's cap binds.
    """

    id: str
    charger_id: str
    arrival: Timestamp = 0.0
    priority: int | None = None
    measured_a: PerPhase | None = None
    setpoint_a: float | None = None
    ev_max_current_a: float | None = None
    strategy_min_a: float | None = None
    strategy_max_a: float | None = None
    number_of_phases: Literal[1, 3] | None = None
    strategy_reason: str | None = None


@dataclass(frozen=True, slots=True)
class SessionAllocation:
    """The result for one session: its setpoint (the same on each of its phases) and why.

    ``cap_a`` is the most the session could have had (charger, car and self-limit caps);
    ``limited_by`` is the node whose limit bound it, if any; ``degraded`` lists the
    degraded-mode conditions above it (``meter_stale:<node>``).
    """

    session_id: str
    charger_id: str
    setpoint_a: float
    reason: str
    cap_a: float
    min_a: float
    phases: tuple[Phase, ...]
    limited_by: str | None = None
    degraded: tuple[str, ...] = ()

    @property
    def paused(self) -> bool:
        """Whether the session gets no current."""
        return self.setpoint_a == 0

    @property
    def per_phase(self) -> PerPhase:
        """The setpoint on each phase (0 on the phases the charger does not use)."""
        values = [0.0, 0.0, 0.0]
        for phase in self.phases:
            values[phase] = self.setpoint_a
        return (values[0], values[1], values[2])


@dataclass(frozen=True, slots=True)
class NodeAllocation:
    """A node's budget and what was given out below it.

    ``available_a`` is the current per phase the chargers below may use (limit - load +
    production; ``inf`` without a current limit); ``available_power_w`` likewise for the total
    power limit (``inf`` without one). ``load_a`` is the non-EV load used in the computation
    (the measurement, the fallback or, when stale without fallback, the whole limit).
    """

    node_id: str
    available_a: PerPhase
    allocated_a: PerPhase
    available_power_w: float
    allocated_power_w: float
    load_a: PerPhase
    stale: bool = False

    @property
    def headroom_a(self) -> PerPhase:
        """Available minus allocated, per phase."""
        return (
            self.available_a[0] - self.allocated_a[0],
            self.available_a[1] - self.allocated_a[1],
            self.available_a[2] - self.allocated_a[2],
        )


@dataclass(frozen=True, slots=True)
class Allocation:
    """The result of one :func:`allocate` call."""

    sessions: Mapping[str, SessionAllocation]
    nodes: Mapping[str, NodeAllocation]
    strategy: Strategy
    time: float
    voltage_v: float
    step_a: float

    @property
    def setpoints(self) -> dict[str, float]:
        """Session id -> setpoint in A."""
        return {key: value.setpoint_a for key, value in self.sessions.items()}

    def setpoint(self, session_id: str) -> float:
        """The setpoint of one session, in A."""
        return self.sessions[session_id].setpoint_a


@dataclass(frozen=True, slots=True)
class NodeBudget:
    """What the chargers below a node may use: current per phase and total power (``inf``: no limit)."""

    available: PerPhase
    power: float
    load: PerPhase
    stale: bool


def node_budget(node: Node, now: float, voltage_v: float, meter_timeout_s: float | None) -> NodeBudget:
    """What the chargers below ``node`` may use, from its limits and its (possibly stale) meter."""
    stale = (
        node.measured_load is not None
        and node.measured_at is not None
        and meter_timeout_s is not None
        and now - to_seconds(node.measured_at) > meter_timeout_s
    )
    limit = node.current_limit
    full = False
    production = ZERO
    if stale:
        # The production reading is as old as the load: do not count on it.
        fallback = node.fallback
        full = fallback is None
        load = (limit or ZERO) if fallback is None else fallback
    else:
        load = node.measured_load or node.fallback or ZERO
        production = node.production or ZERO
    if limit is None:
        available: PerPhase = (math.inf, math.inf, math.inf)
    elif full:
        available = ZERO
    else:
        available = (
            max(limit[0] - load[0] + production[0], 0.0),
            max(limit[1] - load[1] + production[1], 0.0),
            max(limit[2] - load[2] + production[2], 0.0),
        )
    if node.max_power_w is None:
        power = math.inf
    elif full:
        power = 0.0
    else:
        power = max(node.max_power_w - voltage_v * (sum(load) - sum(production)), 0.0)
    return NodeBudget(available=available, power=power, load=load, stale=stale)


def _units(value: float, step: float) -> int:
    return math.floor(value / step + _EPS)


def _check_sessions(tree: SiteTree, sessions: Sequence[Session]) -> None:
    seen: set[str] = set()
    chargers: dict[str, str] = {}
    for session in sessions:
        if session.id in seen:
            raise SessionError(f"duplicate session id {session.id!r}")
        seen.add(session.id)
        if session.charger_id not in tree.chargers:
            raise SessionError(f"session {session.id!r} is on unknown charger {session.charger_id!r}")
        if session.charger_id in chargers:
            raise SessionError(
                f"sessions {chargers[session.charger_id]!r} and {session.id!r} share charger {session.charger_id!r}"
            )
        chargers[session.charger_id] = session.id
        for name, value in (
            ("ev_max_current_a", session.ev_max_current_a),
            ("setpoint_a", session.setpoint_a),
            ("strategy_min_a", session.strategy_min_a),
            ("strategy_max_a", session.strategy_max_a),
        ):
            if value is not None and (not math.isfinite(value) or value < 0):
                raise SessionError(f"session {session.id!r}: {name} must be finite and >= 0, got {value!r}")
        phases = session.number_of_phases
        if phases is not None and (phases not in (1, 3) or phases > tree.chargers[session.charger_id].phases):
            raise SessionError(
                f"session {session.id!r}: number_of_phases {phases!r} on a "
                f"{tree.chargers[session.charger_id].phases}-phase charger"
            )
        to_seconds(session.arrival)


def session_phases(charger: Charger, session: Session) -> tuple[Phase, ...]:
    """The phases a session draws on: its charger's, or only ``charger.phase`` once switched to one phase."""
    if session.number_of_phases == 1:
        return (charger.phase,)
    return charger.used_phases


def session_cap(tree: SiteTree, session: Session, residual_margin_a: float) -> tuple[float, str]:
    """The most a session may get regardless of node limits, and which cap that is.

    The charger's maximum, the car's maximum, and, when the car draws clearly less than its
    current setpoint, its measured draw plus the margin (never below the charger's minimum) so
    that the unused share goes to other sessions. "Clearly less" is by more than half the
    margin: a car held at its draw + margin stays held (it draws a whole margin below), and is
    released as soon as it draws more — a hysteresis, so the setpoint does not flip every cycle.
    The strategy's ``strategy_max_a``, when given, is one more cap (reason ``strategy_reason``).
    """
    charger = tree.charger(session.charger_id)
    caps: list[tuple[float, str]] = [(charger.max_current_a, Reason.CHARGER_MAX)]
    if session.ev_max_current_a is not None:
        caps.append((session.ev_max_current_a, Reason.EV_MAX))
    if session.measured_a is not None and session.setpoint_a is not None and session.setpoint_a > 0:
        drawn = max(session.measured_a[phase] for phase in session_phases(charger, session))
        if drawn < session.setpoint_a - residual_margin_a / 2:
            caps.append((max(drawn + residual_margin_a, charger.min_current_a), Reason.EV_SELF_LIMITED))
    if session.strategy_max_a is not None:
        caps.append((session.strategy_max_a, session.strategy_reason or Reason.STRATEGY_MAX))
    value, reason = min(caps, key=lambda item: item[0])
    return value, str(reason)


def strategy_order(tree: SiteTree, sessions: Iterable[Session], strategy: Strategy) -> list[Session]:
    """Sessions in the strategy's admission order (who is paused first when short is last)."""
    if strategy is Strategy.FCFS:
        return sorted(sessions, key=lambda s: (to_seconds(s.arrival), s.id))
    return sorted(sessions, key=lambda s: (-effective_priority(tree, s), to_seconds(s.arrival), s.id))


def effective_priority(tree: SiteTree, session: Session) -> int:
    """The session's priority, or its charger's when the session has none."""
    if session.priority is not None:
        return session.priority
    return tree.charger(session.charger_id).priority


class _Solver:
    """Integer water-filling over the constraints (node, phase) and (node, power)."""

    def __init__(self, heads: list[int], constraint_nodes: list[str]) -> None:
        self.head = heads
        self.node_of = constraint_nodes
        self.alloc: list[int] = []
        self.cons: list[list[tuple[int, int]]] = []
        self.min_u: list[int] = []
        self.cap_u: list[int] = []
        self.done: list[bool] = []
        self.admitted: list[bool] = []
        self.reason: list[str] = []
        self.limited_by: list[str | None] = []
        self.cap_reason: list[str] = []
        self.below_min_reason: list[str] = []

    def add_session(
        self, cons: list[tuple[int, int]], min_u: int, cap_u: int, cap_reason: str, below_min_reason: str
    ) -> None:
        self.alloc.append(0)
        self.cons.append(cons)
        self.min_u.append(min_u)
        self.cap_u.append(cap_u)
        self.cap_reason.append(cap_reason)
        self.below_min_reason.append(below_min_reason)
        self.done.append(False)
        self.admitted.append(False)
        self.reason.append("")
        self.limited_by.append(None)

    def blocking(self, index: int, amount: int) -> int | None:
        for constraint, weight in self.cons[index]:
            if self.head[constraint] < weight * amount:
                return constraint
        return None

    def give(self, index: int, amount: int) -> None:
        for constraint, weight in self.cons[index]:
            self.head[constraint] -= weight * amount
        self.alloc[index] += amount

    def freeze(self, index: int, reason: str, node: str | None = None) -> None:
        self.done[index] = True
        self.reason[index] = reason
        self.limited_by[index] = node

    def admit(self, index: int) -> None:
        if self.done[index] or self.admitted[index]:
            return
        if self.cap_u[index] < self.min_u[index]:
            self.freeze(index, self.below_min_reason[index])
            return
        blocked = self.blocking(index, self.min_u[index])
        if blocked is not None:
            self.freeze(index, str(Reason.PAUSED_MIN_NOT_REACHABLE), self.node_of[blocked])
            return
        self.admitted[index] = True
        self.give(index, self.min_u[index])
        if self.alloc[index] >= self.cap_u[index]:
            self.freeze(index, self.cap_reason[index])

    def fill(self, members: list[int], tree: SiteTree, targets: list[int] | None = None) -> None:
        """Max-min fair filling of ``members`` (in tie-break order) up to their caps.

        With ``targets``, fill only up to them (never above the caps): sessions that reach their
        target stay open for a later fill.
        """
        top = self.cap_u if targets is None else [min(t, c) for t, c in zip(targets, self.cap_u, strict=True)]
        active = [i for i in members if self.admitted[i] and not self.done[i] and self.alloc[i] < top[i]]
        while active:
            level = min(self.alloc[i] for i in active)
            group = [i for i in active if self.alloc[i] == level]
            raise_by = min(top[i] for i in group) - level
            higher = [self.alloc[i] for i in active if self.alloc[i] > level]
            if higher:
                raise_by = min(raise_by, min(higher) - level)
            weights: dict[int, int] = {}
            for i in group:
                for constraint, weight in self.cons[i]:
                    weights[constraint] = weights.get(constraint, 0) + weight
            for constraint, weight in weights.items():
                raise_by = min(raise_by, self.head[constraint] // weight)
            if raise_by >= 1:
                for i in group:
                    self.give(i, raise_by)
            else:
                for i in group:
                    blocked = self.blocking(i, 1)
                    if blocked is None:
                        self.give(i, 1)
                    else:
                        node = self.node_of[blocked]
                        self.freeze(i, limit_reason(tree, node), node)
            for i in group:
                if not self.done[i] and self.alloc[i] >= self.cap_u[i]:
                    self.freeze(i, self.cap_reason[i])
            active = [i for i in active if not self.done[i] and self.alloc[i] < top[i]]


def allocate(
    tree: SiteTree,
    sessions: Iterable[Session],
    strategy: Strategy = Strategy.EQUAL,
    now: Timestamp = 0.0,
    *,
    voltage_v: float = 230.0,
    step_a: float = 0.1,
    residual_margin_a: float = 2.0,
    meter_timeout_s: float | None = 60.0,
    order: Sequence[str] | None = None,
    keep_running: Collection[str] = (),
) -> Allocation:
    """Compute a setpoint for every session, respecting every node's limits on every phase.

    Sessions get their minimum in ranking order while it fits (the others are paused, reason
    ``paused_min_not_reachable``), then the rest is shared per ``strategy``. ``order`` (session
    ids) replaces the strategy's ranking (sessions it does not name come after, in strategy
    order); PRIORITY still fills higher priorities first. Sessions in ``keep_running`` get their
    minimum before anyone else (the regulator's hold time) unless even that breaks a limit.
    Sessions' strategy targets (``strategy_max_a``, ``strategy_min_a``, ``number_of_phases``)
    are applied inside the node limits: a floor is given after every admitted session has its
    minimum and before the rest is shared, and never where a node has no room for it.
    ``now`` is only compared with the nodes' ``measured_at`` to detect stale meters
    (``meter_timeout_s``; None disables). Raises :class:`SessionError` for sessions that do not
    match the tree, :class:`EmsError` for invalid parameters.
    """
    if not voltage_v > 0 or not step_a > 0 or not residual_margin_a >= 0:
        raise EmsError("voltage_v and step_a must be > 0, residual_margin_a >= 0")
    session_list = list(sessions)
    _check_sessions(tree, session_list)
    now_s = to_seconds(now)

    budgets = {node_id: node_budget(node, now_s, voltage_v, meter_timeout_s) for node_id, node in tree.nodes.items()}
    index_of: dict[tuple[str, int], int] = {}
    heads: list[int] = []
    constraint_nodes: list[str] = []
    for node_id, budget in budgets.items():
        for key, value in (
            (0, budget.available[0]),
            (1, budget.available[1]),
            (2, budget.available[2]),
            (3, budget.power / voltage_v),
        ):
            if math.isfinite(value):
                index_of[node_id, key] = len(heads)
                heads.append(_units(value, step_a))
                constraint_nodes.append(node_id)
    solver = _Solver(heads, constraint_nodes)

    caps: list[float] = []
    phases_of: list[tuple[Phase, ...]] = []
    floors: list[int] = []
    for session in session_list:
        charger = tree.charger(session.charger_id)
        phases = session_phases(charger, session)
        phases_of.append(phases)
        cons: list[tuple[int, int]] = []
        for node_id in tree.charger_path(session.charger_id):
            for phase in phases:
                constraint = index_of.get((node_id, phase))
                if constraint is not None:
                    cons.append((constraint, 1))
            constraint = index_of.get((node_id, 3))
            if constraint is not None:
                cons.append((constraint, len(phases)))
        cap, cap_reason = session_cap(tree, session, residual_margin_a)
        caps.append(cap)
        if cap_reason == Reason.EV_MAX:
            below_min = str(Reason.PAUSED_EV_MAX_BELOW_MIN)
        elif session.strategy_max_a is not None and cap == session.strategy_max_a:
            below_min = cap_reason
        else:
            below_min = str(Reason.PAUSED_MIN_NOT_REACHABLE)
        min_u = math.ceil(charger.min_current_a / step_a - _EPS)
        solver.add_session(cons, min_u, _units(cap, step_a), cap_reason, below_min)
        floors.append(max(_units(session.strategy_min_a or 0.0, step_a), min_u))

    position = {session.id: index for index, session in enumerate(session_list)}
    ranked = strategy_order(tree, session_list, strategy)
    if order is not None:
        rank = {session_id: index for index, session_id in enumerate(order)}
        ranked = sorted(ranked, key=lambda s: rank.get(s.id, len(rank)))
    ranked_index = [position[session.id] for session in ranked]
    for i in ranked_index:
        if session_list[i].id in keep_running:
            solver.admit(i)

    classes: list[list[int]]
    if strategy is Strategy.FCFS:
        classes = [[i] for i in ranked_index]
    elif strategy is Strategy.PRIORITY:
        by_priority: dict[int, list[int]] = {}
        for i in ranked_index:
            by_priority.setdefault(effective_priority(tree, session_list[i]), []).append(i)
        classes = [by_priority[key] for key in sorted(by_priority, reverse=True)]
    else:
        classes = [ranked_index]
    for i in ranked_index:
        solver.admit(i)
    # Strategy floors (guaranteed minimums) before the rest is shared.
    solver.fill([i for i in ranked_index if floors[i] > solver.min_u[i]], tree, floors)
    for members in classes:
        solver.fill(members, tree)

    stale_nodes = {node_id for node_id, budget in budgets.items() if budget.stale}
    results: dict[str, SessionAllocation] = {}
    allocated: dict[str, list[float]] = {node_id: [0.0, 0.0, 0.0, 0.0] for node_id in tree.nodes}
    for i, session in enumerate(session_list):
        charger = tree.charger(session.charger_id)
        setpoint = round(solver.alloc[i] * step_a, 6)
        path = tree.charger_path(session.charger_id)
        for node_id in path:
            for phase in phases_of[i]:
                allocated[node_id][phase] += setpoint
            allocated[node_id][3] += setpoint * len(phases_of[i])
        results[session.id] = SessionAllocation(
            session_id=session.id,
            charger_id=session.charger_id,
            setpoint_a=setpoint,
            reason=solver.reason[i],
            cap_a=caps[i],
            min_a=charger.min_current_a,
            phases=phases_of[i],
            limited_by=solver.limited_by[i],
            degraded=tuple(meter_stale_reason(node_id) for node_id in reversed(path) if node_id in stale_nodes),
        )
    nodes = {
        node_id: NodeAllocation(
            node_id=node_id,
            available_a=budget.available,
            allocated_a=(
                round(allocated[node_id][0], 6),
                round(allocated[node_id][1], 6),
                round(allocated[node_id][2], 6),
            ),
            available_power_w=budget.power,
            allocated_power_w=round(allocated[node_id][3] * voltage_v, 3),
            load_a=budget.load,
            stale=budget.stale,
        )
        for node_id, budget in budgets.items()
    }
    return Allocation(
        sessions=MappingProxyType(results),
        nodes=MappingProxyType(nodes),
        strategy=strategy,
        time=now_s,
        voltage_v=voltage_v,
        step_a=step_a,
    )


class LimitTracker:
    """Float bookkeeping of node usage against an allocation's budgets (used by the regulator).

    Start from given setpoints, then ask whether changing one session by ``delta`` A keeps
    every node within its available current per phase and its available power.
    """

    def __init__(self, tree: SiteTree, allocation: Allocation, setpoints: Mapping[str, float]) -> None:
        self._allocation = allocation
        self._paths: dict[str, tuple[tuple[str, ...], tuple[Phase, ...]]] = {}
        self._used: dict[str, list[float]] = {node_id: [0.0, 0.0, 0.0, 0.0] for node_id in tree.nodes}
        for session_id, result in allocation.sessions.items():
            self._paths[session_id] = (tree.charger_path(result.charger_id), result.phases)
            self.add(session_id, setpoints.get(session_id, 0.0))

    def fits(self, session_id: str, delta: float) -> bool:
        """Whether adding ``delta`` A to the session keeps every node on its path within budget."""
        path, phases = self._paths[session_id]
        for node_id in path:
            budget = self._allocation.nodes[node_id]
            used = self._used[node_id]
            for phase in phases:
                if used[phase] + delta > budget.available_a[phase] + TOLERANCE_A:
                    return False
            power = (used[3] + delta * len(phases)) * self._allocation.voltage_v
            if power > budget.available_power_w + TOLERANCE_A * self._allocation.voltage_v:
                return False
        return True

    def add(self, session_id: str, delta: float) -> None:
        """Record ``delta`` A more on the session."""
        path, phases = self._paths[session_id]
        for node_id in path:
            used = self._used[node_id]
            for phase in phases:
                used[phase] += delta
            used[3] += delta * len(phases)


__all__ = [
    "Allocation",
    "LimitTracker",
    "NodeAllocation",
    "NodeBudget",
    "Reason",
    "Session",
    "SessionAllocation",
    "SessionError",
    "Strategy",
    "allocate",
    "effective_priority",
    "limit_reason",
    "meter_stale_reason",
    "node_budget",
    "session_cap",
    "session_phases",
    "strategy_order",
]
