"""Properties of the allocator (and the regulator) over random sites, checked by an independent oracle.

The oracle recomputes every node's budget from the tree with the documented rules
(limit - load + production; power limit over the three phases at the voltage; stale meter ->
fallback load, or the whole limit without fallback) instead of trusting the allocator's report.
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from typing import Literal

from hypothesis import given, settings, strategies as st

from custom_components.cariflex.ems import (
    PHASES,
    Allocation,
    Charger,
    Node,
    Phase,
    Regulator,
    RegulatorConfig,
    Session,
    SiteTree,
    Strategy,
    allocate,
    to_seconds,
)

VOLTAGE = 230.0
NOW = 100.0
SLACK = 1e-6

_amps = st.integers(0, 400).map(lambda tenths: tenths / 10)
_phase_amps = st.tuples(_amps, _amps, _amps)
_small = st.integers(0, 100).map(lambda tenths: tenths / 10)


@dataclass(frozen=True)
class Scenario:
    tree: SiteTree
    sessions: list[Session]
    strategy: Strategy
    step: float
    margin: float
    timeout: float | None


_limits = st.none() | st.integers(0, 80) | st.tuples(_amps, _amps, _amps)
_powers = st.none() | st.integers(0, 60_000)
_loads = st.none() | _phase_amps
_productions = st.none() | st.tuples(_small, _small, _small)
_measured_at = st.sampled_from([None, 0.0, NOW])
_fallbacks = st.none() | _small.map(lambda value: value * 3)
_phases = st.sampled_from(PHASES)
_phase_counts: st.SearchStrategy[Literal[1, 3]] = st.sampled_from([1, 3])
_priorities = st.integers(0, 2)
_optional_priorities = st.none() | _priorities
_setpoints = st.none() | st.integers(0, 32)
_ev_max = st.none() | _amps


@st.composite
def _nodes(draw: st.DrawFn) -> list[Node]:
    nodes: list[Node] = []
    depth: dict[str, int] = {}
    for index in range(draw(st.integers(1, 7))):
        node_id = f"n{index}"
        parent = None
        if index:
            shallow = [key for key, value in depth.items() if value < 3]
            parent = shallow[draw(st.integers(0, len(shallow) - 1))]
        depth[node_id] = 0 if parent is None else depth[parent] + 1
        nodes.append(
            Node(
                node_id,
                parent=parent,
                max_current_a=draw(_limits),
                max_power_w=draw(_powers),
                measured_load=draw(_loads),
                production=draw(_productions),
                measured_at=draw(_measured_at),
                fallback_load=draw(_fallbacks),
            )
        )
    return nodes


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    """A random site (up to 7 nodes, depth up to 3, up to 8 chargers) and sessions on some chargers."""
    nodes = draw(_nodes())
    chargers: list[Charger] = []
    for index in range(draw(st.integers(0, 8))):
        minimum = draw(st.integers(5, 8))
        chargers.append(
            Charger(
                f"c{index}",
                nodes[draw(st.integers(0, len(nodes) - 1))].id,
                min_current_a=minimum,
                max_current_a=draw(st.integers(minimum, 32)),
                phases=draw(_phase_counts),
                phase=draw(_phases),
                priority=draw(_priorities),
            )
        )
    tree = SiteTree.build(nodes, chargers)
    sessions: list[Session] = []
    for charger in chargers:
        if not draw(st.integers(0, 4)):
            continue
        sessions.append(
            Session(
                f"s{charger.id}",
                charger.id,
                arrival=draw(st.integers(0, 100)),
                priority=draw(_optional_priorities),
                measured_a=draw(_loads),
                setpoint_a=draw(_setpoints),
                ev_max_current_a=draw(_ev_max),
            )
        )
    return Scenario(
        tree=tree,
        sessions=sessions,
        strategy=draw(_strategies),
        step=draw(_steps),
        margin=draw(_margins),
        timeout=draw(_timeouts),
    )


_strategies = st.sampled_from(list(Strategy))
_steps = st.sampled_from([0.1, 0.5, 1.0])
_margins = st.sampled_from([0.5, 2.0])
_timeouts = st.sampled_from([None, 60.0])


def _run(scenario: Scenario) -> Allocation:
    return allocate(
        scenario.tree,
        scenario.sessions,
        scenario.strategy,
        NOW,
        voltage_v=VOLTAGE,
        step_a=scenario.step,
        residual_margin_a=scenario.margin,
        meter_timeout_s=scenario.timeout,
    )


def _budget(node: Node, timeout: float | None) -> tuple[list[float], float]:
    """Oracle: (available A per phase, available W) below ``node``."""
    limit = None if node.max_current_a is None else node.current_limit
    stale = (
        node.measured_load is not None
        and node.measured_at is not None
        and timeout is not None
        and NOW - to_seconds(node.measured_at) > timeout
    )
    if stale and node.fallback_load is None:
        phases = [math.inf] * 3 if limit is None else [0.0] * 3
        return phases, math.inf if node.max_power_w is None else 0.0
    if stale:
        load, production = node.fallback, None
    else:
        load, production = node.measured_load or node.fallback, node.production
    load = load or (0.0, 0.0, 0.0)
    production = production or (0.0, 0.0, 0.0)
    phases = [math.inf if limit is None else max(limit[p] - load[p] + production[p], 0.0) for p in range(3)]
    power = math.inf
    if node.max_power_w is not None:
        power = max(node.max_power_w - VOLTAGE * (sum(load) - sum(production)), 0.0)
    return phases, power


class _Oracle:
    def __init__(
        self, tree: SiteTree, timeout: float | None, setpoints: dict[str, float], sessions: list[Session]
    ) -> None:
        self.tree = tree
        self.budgets = {node_id: _budget(node, timeout) for node_id, node in tree.nodes.items()}
        self.charger_of = {session.id: session.charger_id for session in sessions}
        self.used: dict[str, list[float]] = {node_id: [0.0] * 4 for node_id in tree.nodes}
        for session_id, setpoint in setpoints.items():
            charger = tree.charger(self.charger_of[session_id])
            for node_id in tree.charger_path(charger.id):
                for phase in charger.used_phases:
                    self.used[node_id][phase] += setpoint
                self.used[node_id][3] += setpoint * charger.phases

    def violations(self) -> list[str]:
        found = []
        for node_id, (phases, power) in self.budgets.items():
            used = self.used[node_id]
            found += [f"{node_id} {Phase(p)}: {used[p]} > {phases[p]}" for p in range(3) if used[p] > phases[p] + SLACK]
            if used[3] * VOLTAGE > power + SLACK * VOLTAGE:
                found.append(f"{node_id} power: {used[3] * VOLTAGE} > {power}")
        return found

    def clearly_fits(self, session_id: str, delta: float) -> bool:
        charger = self.tree.charger(self.charger_of[session_id])
        for node_id in self.tree.charger_path(charger.id):
            phases, power = self.budgets[node_id]
            used = self.used[node_id]
            if any(used[p] + delta > phases[p] - SLACK for p in charger.used_phases):
                return False
            if (used[3] + delta * charger.phases) * VOLTAGE > power - SLACK * VOLTAGE:
                return False
        return True


def _cap(tree: SiteTree, session: Session, margin: float) -> float:
    """Oracle: charger max, car max, and the self-limit cap."""
    charger = tree.charger(session.charger_id)
    cap = charger.max_current_a
    if session.ev_max_current_a is not None:
        cap = min(cap, session.ev_max_current_a)
    if session.measured_a is not None and session.setpoint_a:
        drawn = max(session.measured_a[p] for p in charger.used_phases)
        if drawn < session.setpoint_a - margin / 2:
            cap = min(cap, max(drawn + margin, charger.min_current_a))
    return cap


@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_every_node_limit_holds_on_every_phase(scenario: Scenario) -> None:
    allocation = _run(scenario)
    oracle = _Oracle(scenario.tree, scenario.timeout, allocation.setpoints, scenario.sessions)
    assert oracle.violations() == []
    for node_id, node in allocation.nodes.items():
        for phase in PHASES:
            assert node.allocated_a[phase] <= node.available_a[phase] + SLACK, node_id


@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_no_session_between_zero_and_its_minimum(scenario: Scenario) -> None:
    allocation = _run(scenario)
    for result in allocation.sessions.values():
        minimum = scenario.tree.charger(result.charger_id).min_current_a
        assert result.setpoint_a == 0 or result.setpoint_a >= minimum - SLACK, result
        assert result.paused == (result.setpoint_a == 0)
        assert result.reason


@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_maximality_no_session_could_take_more(scenario: Scenario) -> None:
    allocation = _run(scenario)
    oracle = _Oracle(scenario.tree, scenario.timeout, allocation.setpoints, scenario.sessions)
    for session in scenario.sessions:
        setpoint = allocation.setpoint(session.id)
        cap = _cap(scenario.tree, session, scenario.margin)
        minimum = scenario.tree.charger(session.charger_id).min_current_a
        if setpoint == 0:
            assert not (minimum <= cap and oracle.clearly_fits(session.id, minimum)), (session, allocation)
        elif setpoint + 1 <= cap - SLACK:
            assert not oracle.clearly_fits(session.id, 1.0), (session, allocation)


@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_setpoints_never_exceed_a_maximum(scenario: Scenario) -> None:
    allocation = _run(scenario)
    for session in scenario.sessions:
        result = allocation.sessions[session.id]
        charger = scenario.tree.charger(session.charger_id)
        assert result.setpoint_a <= charger.max_current_a + SLACK
        if session.ev_max_current_a is not None:
            assert result.setpoint_a <= session.ev_max_current_a + SLACK
        assert result.setpoint_a <= _cap(scenario.tree, session, scenario.margin) + SLACK
        assert result.cap_a == _cap(scenario.tree, session, scenario.margin)


@settings(max_examples=100, deadline=None)
@given(
    scenarios(),
    st.lists(
        st.tuples(st.integers(1, 400), st.integers(0, 6), _phase_amps, st.frozensets(st.integers(0, 7))),
        min_size=1,
        max_size=8,
    ),
)
def test_regulator_keeps_every_limit_over_time(
    scenario: Scenario, steps: list[tuple[int, int, tuple[float, float, float], frozenset[int]]]
) -> None:
    """Whatever the deadband, hold time and rotation decide, limits and minimums always hold."""
    regulator = Regulator(
        RegulatorConfig(
            strategy=scenario.strategy,
            voltage_v=VOLTAGE,
            step_a=scenario.step,
            residual_margin_a=scenario.margin,
            meter_timeout_s=None,
            hold_s=60,
            rotation_interval_s=300,
        )
    )
    tree = scenario.tree
    now = 0.0
    for delta, node_index, load, absent in steps:
        now += delta
        node_ids = sorted(tree.nodes)
        tree = tree.with_measurement(node_ids[node_index % len(node_ids)], load)
        sessions = [s for i, s in enumerate(scenario.sessions) if i not in absent]
        result = regulator.cycle(tree, sessions, now)
        setpoints = {key: value.setpoint_a for key, value in result.setpoints.items()}
        assert set(setpoints) == {s.id for s in sessions}
        oracle = _Oracle(tree, None, setpoints, sessions)
        assert oracle.violations() == []
        for session in sessions:
            charger = tree.charger(session.charger_id)
            setpoint = setpoints[session.id]
            assert setpoint == 0 or charger.min_current_a - SLACK <= setpoint <= charger.max_current_a + SLACK
            if session.ev_max_current_a is not None:
                assert setpoint <= session.ev_max_current_a + SLACK
