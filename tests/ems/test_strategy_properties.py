"""Properties of the allocator and the regulator with strategy targets on random sites.

Random sessions get a strategy cap, a floor and, on three-phase chargers, one phase; the node
usage is recomputed here from the setpoints and each session's phases. The tree's budgets are
the allocator's report, which tests/ems/test_properties.py checks against an independent oracle.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

from hypothesis import given, settings, strategies as st

from custom_components.cariflex.ems.allocator import Allocation, Session, allocate, session_phases
from custom_components.cariflex.ems.regulator import Regulator, RegulatorConfig
from custom_components.cariflex.ems.tree import SiteTree
from tests.ems.test_properties import VOLTAGE, Scenario, scenarios

SLACK = 1e-6
_targets = st.tuples(
    st.none() | st.integers(0, 400).map(lambda tenths: tenths / 10),
    st.none() | st.integers(0, 32).map(float),
    st.sampled_from([None, 1, 3]),
    st.sampled_from([None, "zni_cap", "pv_surplus"]),
)


def _with_targets(
    tree: SiteTree, sessions: list[Session], targets: list[tuple[float | None, float | None, int | None, str | None]]
) -> list[Session]:
    result = []
    for session, (maximum, minimum, phases, reason) in zip(sessions, targets, strict=False):
        charger = tree.charger(session.charger_id)
        number: Literal[1, 3] | None = 1 if phases == 1 else (3 if phases == 3 and charger.phases == 3 else None)
        result.append(
            replace(
                session, strategy_max_a=maximum, strategy_min_a=minimum, number_of_phases=number, strategy_reason=reason
            )
        )
    return result + sessions[len(targets) :]


def _usage(tree: SiteTree, sessions: list[Session], setpoints: dict[str, float]) -> dict[str, list[float]]:
    used = {node_id: [0.0] * 4 for node_id in tree.nodes}
    for session in sessions:
        charger = tree.charger(session.charger_id)
        phases = session_phases(charger, session)
        for node_id in tree.charger_path(charger.id):
            for phase in phases:
                used[node_id][phase] += setpoints[session.id]
            used[node_id][3] += setpoints[session.id] * len(phases)
    return used


def _within(allocation: Allocation, used: dict[str, list[float]]) -> list[str]:
    found = []
    for node_id, node in allocation.nodes.items():
        found += [
            f"{node_id} L{p + 1}: {used[node_id][p]} > {node.available_a[p]}"
            for p in range(3)
            if used[node_id][p] > node.available_a[p] + SLACK
        ]
        if used[node_id][3] * VOLTAGE > node.available_power_w + SLACK * VOLTAGE:
            found.append(f"{node_id} power")
    return found


@settings(max_examples=150, deadline=None)
@given(scenarios(), st.lists(_targets, max_size=8))
def test_strategy_targets_never_break_a_limit(scenario: Scenario, targets: list[tuple[object, ...]]) -> None:
    tree = scenario.tree
    sessions = _with_targets(tree, scenario.sessions, targets)  # type: ignore[arg-type]
    allocation = allocate(
        tree,
        sessions,
        scenario.strategy,
        100.0,
        voltage_v=VOLTAGE,
        step_a=scenario.step,
        residual_margin_a=scenario.margin,
        meter_timeout_s=scenario.timeout,
    )
    assert _within(allocation, _usage(tree, sessions, allocation.setpoints)) == []
    for session in sessions:
        result = allocation.sessions[session.id]
        charger = tree.charger(session.charger_id)
        assert result.phases == session_phases(charger, session)
        assert result.setpoint_a == 0 or result.setpoint_a >= charger.min_current_a - SLACK
        if session.strategy_max_a is not None:
            assert result.setpoint_a <= session.strategy_max_a + SLACK
            car_lower = session.ev_max_current_a is not None and session.ev_max_current_a <= session.strategy_max_a
            if session.strategy_max_a < charger.min_current_a and result.cap_a == session.strategy_max_a:
                # The strategy's reason, unless the car's own limit is as low (either explains the pause).
                allowed = {session.strategy_reason or "strategy_max"} | (
                    {"paused_ev_max_below_min"} if car_lower else set()
                )
                assert result.reason in allowed
        # A floor is reached unless the cap or a node stops it.
        if session.strategy_min_a is not None and 0 < result.setpoint_a < min(session.strategy_min_a, result.cap_a):
            assert result.setpoint_a + scenario.step > min(session.strategy_min_a, result.cap_a) - SLACK or (
                result.limited_by is not None
            ), result


_caps = st.tuples(
    st.integers(50, 320).map(lambda tenths: tenths / 10),
    st.none(),
    st.sampled_from([None, 1]),
    st.just("zni_cap"),
)


@settings(max_examples=200, deadline=None)
@given(
    scenarios(),
    st.lists(_caps, min_size=8, max_size=8),
    st.lists(st.tuples(st.integers(1, 400), st.integers(0, 15)), min_size=2, max_size=6),
)
def test_the_regulator_keeps_strategy_caps_over_time(
    scenario: Scenario, targets: list[tuple[object, ...]], steps: list[tuple[int, int]]
) -> None:
    """The deadband and the hold time never keep a setpoint above a strategy cap that came down a little."""
    regulator = Regulator(
        RegulatorConfig(
            strategy=scenario.strategy,
            voltage_v=VOLTAGE,
            step_a=scenario.step,
            residual_margin_a=scenario.margin,
            meter_timeout_s=None,
        )
    )
    base = _with_targets(scenario.tree, scenario.sessions, targets)  # type: ignore[arg-type]
    now = 0.0
    for delta, cut in steps:
        now += delta
        sessions = [
            s if s.strategy_max_a is None else replace(s, strategy_max_a=max(s.strategy_max_a - cut / 10, 0.0))
            for s in base
        ]
        result = regulator.cycle(scenario.tree, sessions, now)
        setpoints = {key: value.setpoint_a for key, value in result.setpoints.items()}
        assert _within(result.allocation, _usage(scenario.tree, sessions, setpoints)) == []
        for session in sessions:
            if session.strategy_max_a is not None:
                assert setpoints[session.id] <= session.strategy_max_a + SLACK
            assert result.setpoints[session.id].number_of_phases == len(
                session_phases(scenario.tree.charger(session.charger_id), session)
            )
