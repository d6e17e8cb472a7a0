"""The regulator over time: deadband, hold time, rotation, fail-safe, limit drops."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from custom_components.cariflex.ems import (
    Charger,
    EmsError,
    Node,
    Reason,
    Regulator,
    RegulatorConfig,
    RegulatorResult,
    Session,
    SiteTree,
    Strategy,
)


def _board(limit: float, count: int, **node: object) -> SiteTree:
    return SiteTree.build(
        [Node("tgbt", max_current_a=limit, **node)],  # type: ignore[arg-type]
        [Charger(f"c{i}", "tgbt") for i in range(count)],
    )


def _sessions(count: int, start: int = 0) -> list[Session]:
    return [Session(f"s{i}", f"c{i}", arrival=float(i)) for i in range(start, count)]


def _values(result: RegulatorResult) -> dict[str, float]:
    return {key: value.setpoint_a for key, value in result.setpoints.items()}


def _reasons(result: RegulatorResult) -> dict[str, str]:
    return {key: value.reason for key, value in result.setpoints.items()}


def test_first_cycle_sends_every_setpoint() -> None:
    regulator = Regulator()
    result = regulator.cycle(_board(20, 4), _sessions(4), 0.0)
    assert _values(result) == {"s0": 6.7, "s1": 6.7, "s2": 6.6, "s3": 0.0}
    assert result.changed == ("s0", "s1", "s2", "s3")
    assert all(value.previous_a is None for value in result.setpoints.values())
    assert result.setpoints["s3"].paused
    assert result.setpoints["s3"].reason == "paused_min_not_reachable"
    assert result.setpoint("s0") == 6.7
    assert result.allocation.setpoints == _values(result)
    assert result.time == 0.0
    assert regulator.state["s0"].running
    assert regulator.state["s0"].since == 0.0
    assert not regulator.state["s3"].running


def test_small_increases_wait_for_the_deadband() -> None:
    regulator = Regulator(RegulatorConfig(deadband_a=1.0))
    tree = _board(32, 2)
    regulator.cycle(tree.with_measurement("tgbt", (4.0, 4.0, 4.0)), _sessions(2), 0)
    result = regulator.cycle(tree.with_measurement("tgbt", (3.2, 3.2, 3.2)), _sessions(2), 10)
    assert result.setpoints["s0"].target_a == 14.4
    assert _values(result) == {"s0": 14.0, "s1": 14.0}
    assert _reasons(result) == {"s0": "deadband", "s1": "deadband"}
    assert result.changed == ()
    assert not result.setpoints["s0"].changed
    result = regulator.cycle(tree.with_measurement("tgbt", (2.0, 2.0, 2.0)), _sessions(2), 20)
    assert _values(result) == {"s0": 15.0, "s1": 15.0}
    assert result.changed == ("s0", "s1")
    assert result.setpoints["s0"].previous_a == 14.0


def test_a_limit_drop_is_applied_in_the_same_cycle_whatever_its_size() -> None:
    regulator = Regulator(RegulatorConfig(deadband_a=1.0))
    tree = _board(32, 2)
    assert _values(regulator.cycle(tree, _sessions(2), 0)) == {"s0": 16.0, "s1": 16.0}
    result = regulator.cycle(tree.with_measurement("tgbt", (0.0, 0.4, 0.0)), _sessions(2), 5)
    assert _values(result) == {"s0": 15.8, "s1": 15.8}
    assert result.changed == ("s0", "s1")
    result = regulator.cycle(tree.with_node(Node("tgbt", max_current_a=12)), _sessions(2), 6)
    assert _values(result) == {"s0": 6.0, "s1": 6.0}
    result = regulator.cycle(tree.with_node(Node("tgbt", max_current_a=10)), _sessions(2), 7)
    # Even within the hold time, a session is paused at once when its minimum no longer fits.
    assert _values(result) == {"s0": 10.0, "s1": 0.0}


def test_a_small_decrease_is_kept_when_the_limits_allow_it() -> None:
    regulator = Regulator(RegulatorConfig(deadband_a=1.0))
    tree = _board(30, 2)
    sessions = [Session("a", "c0"), Session("b", "c1", ev_max_current_a=10)]
    assert _values(regulator.cycle(tree, sessions, 0)) == {"a": 20.0, "b": 10.0}
    sessions[1] = Session("b", "c1", ev_max_current_a=10.6)
    result = regulator.cycle(tree, sessions, 10)
    assert {key: value.target_a for key, value in result.setpoints.items()} == {"a": 19.4, "b": 10.6}
    assert _values(result) == {"a": 20.0, "b": 10.0}
    assert result.changed == ()
    # The car's own maximum is a hard cap: a decrease to it is applied even below the deadband.
    sessions[1] = Session("b", "c1", ev_max_current_a=9.5)
    result = regulator.cycle(tree, sessions, 20)
    assert _values(result) == {"a": 20.0, "b": 9.5}
    assert _reasons(result) == {"a": "deadband", "b": "ev_max"}


def test_a_self_limiting_car_gives_its_share_to_the_others() -> None:
    regulator = Regulator()
    tree = _board(32, 2)
    regulator.cycle(tree, _sessions(2), 0)
    sessions = [
        Session("s0", "c0", measured_a=(3.0, 3.0, 3.0)),
        Session("s1", "c1", measured_a=(16.0, 16.0, 16.0)),
    ]
    result = regulator.cycle(tree, sessions, 10)
    assert _values(result) == {"s0": 6.0, "s1": 26.0}
    assert _reasons(result) == {"s0": "ev_self_limited", "s1": "site_limit"}
    # The car draws its whole (reduced) setpoint again: it gets its fair share back.
    sessions[0] = Session("s0", "c0", measured_a=(6.0, 6.0, 6.0))
    assert _values(regulator.cycle(tree, sessions, 20)) == {"s0": 16.0, "s1": 16.0}


def test_a_paused_session_waits_the_hold_time_before_restarting() -> None:
    regulator = Regulator(RegulatorConfig(hold_s=60))
    tree = _board(20, 4)
    regulator.cycle(tree, _sessions(4), 0)
    result = regulator.cycle(tree, _sessions(4, start=1), 30)
    assert _values(result) == {"s1": 10.0, "s2": 10.0, "s3": 0.0}
    assert result.setpoints["s3"].reason == Reason.PAUSED_HOLD
    assert Reason.PAUSED_HOLD.value == "paused_hold"
    assert result.setpoints["s3"].target_a == 0.0
    assert not result.setpoints["s3"].changed
    result = regulator.cycle(tree, _sessions(4, start=1), 60)
    assert _values(result) == {"s1": 6.7, "s2": 6.7, "s3": 6.6}
    assert regulator.state["s3"].since == 60
    assert "s0" not in regulator.state


def test_a_running_session_is_not_displaced_within_the_hold_time() -> None:
    regulator = Regulator(RegulatorConfig(hold_s=60))
    tree = SiteTree.build(
        [Node("tgbt", max_current_a=20)],
        [*(Charger(f"c{i}", "tgbt") for i in range(3)), Charger("vip", "tgbt", priority=5)],
    )
    sessions = [*_sessions(3), Session("vip", "vip", arrival=30)]
    regulator.cycle(tree, sessions[:3], 0)
    result = regulator.cycle(tree, sessions, 30)
    assert result.setpoint("vip") == 0.0
    assert result.setpoints["vip"].reason == "paused_min_not_reachable"
    result = regulator.cycle(tree, sessions, 60)
    assert result.setpoint("vip") == 0.0
    assert result.setpoints["vip"].reason == "paused_hold"
    result = regulator.cycle(tree, sessions, 90)
    # The newcomer has the higher priority: the latest of the others makes room.
    assert _values(result) == {"s0": 6.7, "s1": 6.6, "s2": 0.0, "vip": 6.7}


def _simulate(
    regulator: Regulator, tree: SiteTree, sessions: list[Session], cycles: int, period: float
) -> dict[str, int]:
    running = dict.fromkeys((s.id for s in sessions), 0)
    for index in range(cycles):
        result = regulator.cycle(tree, sessions, index * period)
        total = sum(value.setpoint_a for value in result.setpoints.values())
        assert total <= 20.0 + 1e-6
        for key, value in result.setpoints.items():
            assert value.setpoint_a == 0 or value.setpoint_a >= 6
            running[key] += value.setpoint_a > 0
    return running


def test_rotation_gives_every_session_its_turn() -> None:
    regulator = Regulator(RegulatorConfig(rotation_interval_s=900, hold_s=60))
    sessions = _sessions(4)
    running = _simulate(regulator, _board(20, 4), sessions, cycles=240, period=60)
    # 3 of the 4 sessions fit at a time: each runs about three quarters of the time.
    assert set(running) == {"s0", "s1", "s2", "s3"}
    assert all(170 <= value <= 190 for value in running.values()), running
    assert sum(running.values()) == 3 * 240


def test_rotation_reports_who_was_rotated_out() -> None:
    regulator = Regulator(RegulatorConfig(rotation_interval_s=900, hold_s=60))
    tree = _board(20, 4)
    regulator.cycle(tree, _sessions(4), 0)
    assert regulator.cycle(tree, _sessions(4), 840).setpoint("s3") == 0
    result = regulator.cycle(tree, _sessions(4), 900)
    assert _values(result) == {"s0": 6.7, "s1": 6.6, "s2": 0.0, "s3": 6.7}
    assert result.setpoints["s2"].reason == "paused_rotation"
    result = regulator.cycle(tree, _sessions(4), 1800)
    # s2 waited a full turn; of the others, s1 has run the longest (since 0, and after s0 in order).
    assert _values(result) == {"s0": 6.6, "s1": 0.0, "s2": 6.7, "s3": 6.7}
    assert result.setpoints["s1"].reason == "paused_rotation"


def test_without_rotation_the_last_comer_keeps_waiting() -> None:
    regulator = Regulator(RegulatorConfig(rotation_interval_s=None))
    running = _simulate(regulator, _board(20, 4), _sessions(4), cycles=60, period=60)
    assert running == {"s0": 60, "s1": 60, "s2": 60, "s3": 0}


def test_rotation_never_breaks_a_limit_with_uneven_minimums() -> None:
    tree = SiteTree.build(
        [Node("tgbt", max_current_a=20)],
        [Charger("c0", "tgbt", min_current_a=10), Charger("c1", "tgbt"), Charger("c2", "tgbt", min_current_a=8)],
    )
    regulator = Regulator(RegulatorConfig(rotation_interval_s=300, hold_s=60))
    running = _simulate(regulator, tree, _sessions(3), cycles=100, period=60)
    assert all(value > 0 for value in running.values()), running


def test_fcfs_keeps_arrival_order_and_does_not_rotate() -> None:
    regulator = Regulator(RegulatorConfig(strategy=Strategy.FCFS))
    tree = _board(40, 3)
    result = regulator.cycle(tree, _sessions(3), 0)
    assert _values(result) == {"s0": 28.0, "s1": 6.0, "s2": 6.0}
    running = _simulate(Regulator(RegulatorConfig(strategy=Strategy.FCFS)), _board(20, 4), _sessions(4), 40, 60)
    assert running["s3"] == 0


def test_stale_meter_falls_back_to_a_conservative_load() -> None:
    regulator = Regulator(RegulatorConfig(meter_timeout_s=30))
    start = datetime(2025, 6, 1, 8, tzinfo=UTC)
    tree = _board(32, 2, fallback_load=20).with_measurement("tgbt", (2.0, 2.0, 2.0), at=start)
    result = regulator.cycle(tree, _sessions(2), start + timedelta(seconds=10))
    assert _values(result) == {"s0": 15.0, "s1": 15.0}
    assert result.setpoints["s0"].degraded == ()
    result = regulator.cycle(tree, _sessions(2), start + timedelta(seconds=31))
    assert _values(result) == {"s0": 6.0, "s1": 6.0}
    assert result.setpoints["s0"].degraded == ("meter_stale:tgbt",)
    assert result.allocation.nodes["tgbt"].stale
    tree = tree.with_measurement("tgbt", (2.0, 2.0, 2.0), at=start + timedelta(seconds=40))
    result = regulator.cycle(tree, _sessions(2), start + timedelta(seconds=41))
    assert _values(result) == {"s0": 15.0, "s1": 15.0}
    assert result.setpoints["s0"].degraded == ()


def test_forget_and_reset() -> None:
    regulator = Regulator()
    tree = _board(20, 4)
    regulator.cycle(tree, _sessions(4), 0)
    regulator.forget("s3")
    regulator.forget("unknown")
    assert "s3" not in regulator.state
    # Forgotten, s3 is new again: no hold time, but s0-s2 are protected by theirs.
    assert regulator.cycle(tree, _sessions(4), 1).setpoint("s3") == 0
    regulator.reset()
    assert regulator.state == {}


def test_invalid_configuration() -> None:
    with pytest.raises(EmsError, match="deadband_a"):
        RegulatorConfig(deadband_a=-1)
    with pytest.raises(EmsError, match="rotation_interval_s"):
        RegulatorConfig(rotation_interval_s=0)
    assert Regulator().config == RegulatorConfig()
