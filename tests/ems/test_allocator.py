"""Concrete allocation cases, one site situation per test."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
import math

import pytest

from custom_components.cariflex.ems import (
    Allocation,
    Charger,
    EmsError,
    LimitTracker,
    Node,
    NodeKind,
    Phase,
    Reason,
    Session,
    SessionError,
    SiteTree,
    Strategy,
    allocate,
    limit_reason,
    meter_stale_reason,
)


def _board(limit: float, count: int, **node: object) -> SiteTree:
    """One main board with ``count`` three-phase 6-32 A chargers c0..c<count-1>."""
    return SiteTree.build(
        [Node("tgbt", kind=NodeKind.MAIN_BOARD, max_current_a=limit, **node)],  # type: ignore[arg-type]
        [Charger(f"c{i}", "tgbt") for i in range(count)],
    )


def _sessions(count: int, **fields: object) -> list[Session]:
    return [Session(f"s{i}", f"c{i}", arrival=float(i), **fields) for i in range(count)]  # type: ignore[arg-type]


def _setpoints(allocation: Allocation) -> list[float]:
    return list(allocation.setpoints.values())


def _reasons(allocation: Allocation) -> list[str]:
    return [result.reason for result in allocation.sessions.values()]


def test_one_board_32a_three_chargers_equal_share() -> None:
    allocation = allocate(_board(32, 3), _sessions(3))
    assert _setpoints(allocation) == [10.7, 10.7, 10.6]
    assert _reasons(allocation) == ["site_limit"] * 3
    assert {result.limited_by for result in allocation.sessions.values()} == {"tgbt"}
    node = allocation.nodes["tgbt"]
    assert node.available_a == (32.0, 32.0, 32.0)
    assert node.allocated_a == (32.0, 32.0, 32.0)
    assert node.headroom_a == (0.0, 0.0, 0.0)
    assert node.allocated_power_w == pytest.approx(32 * 3 * 230)
    assert math.isinf(node.available_power_w)


def test_whole_amp_steps() -> None:
    allocation = allocate(_board(32, 3), _sessions(3), step_a=1.0)
    assert _setpoints(allocation) == [11.0, 11.0, 10.0]
    assert allocation.step_a == 1.0


def test_enough_for_everyone_gives_each_its_maximum() -> None:
    tree = SiteTree.build(
        [Node("tgbt", max_current_a=100)],
        [Charger("c0", "tgbt", max_current_a=16), Charger("c1", "tgbt", min_current_a=6, max_current_a=6)],
    )
    allocation = allocate(tree, _sessions(2))
    assert _setpoints(allocation) == [16.0, 6.0]
    assert _reasons(allocation) == ["charger_max", "charger_max"]
    assert allocation.nodes["tgbt"].headroom_a == (78.0, 78.0, 78.0)


def test_single_phase_charger_on_l2() -> None:
    tree = SiteTree.build(
        [Node("tgbt", max_current_a=32, measured_load=(0.0, 20.0, 0.0))],
        [
            Charger("c0", "tgbt", phases=1, phase=Phase.L1),
            Charger("c1", "tgbt", phases=1, phase=Phase.L2),
            Charger("c2", "tgbt", phases=1, phase=Phase.L3),
        ],
    )
    allocation = allocate(tree, _sessions(3))
    # L2 carries 20 A of other load: only its charger is limited.
    assert _setpoints(allocation) == [32.0, 12.0, 32.0]
    assert _reasons(allocation) == ["charger_max", "site_limit", "charger_max"]
    assert allocation.sessions["s1"].per_phase == (0.0, 12.0, 0.0)
    assert allocation.nodes["tgbt"].allocated_a == (32.0, 12.0, 32.0)
    assert allocation.nodes["tgbt"].available_a == (32.0, 12.0, 32.0)


def test_single_phase_and_three_phase_share_a_phase() -> None:
    tree = SiteTree.build(
        [Node("tgbt", max_current_a=32)],
        [Charger("c0", "tgbt"), Charger("c1", "tgbt", phases=1, phase=Phase.L2)],
    )
    allocation = allocate(tree, _sessions(2))
    assert _setpoints(allocation) == [16.0, 16.0]
    assert allocation.nodes["tgbt"].allocated_a == (16.0, 32.0, 16.0)


def test_sub_board_limit_below_site_limit() -> None:
    tree = SiteTree.build(
        [
            Node("tgbt", kind=NodeKind.MAIN_BOARD, max_current_a=63, measured_load=(20.0, 20.0, 20.0)),
            Node("td1", parent="tgbt", max_current_a=16),
        ],
        [Charger("c0", "td1"), Charger("c1", "td1"), Charger("c2", "tgbt")],
    )
    allocation = allocate(tree, _sessions(3))
    assert _setpoints(allocation) == [8.0, 8.0, 27.0]
    assert _reasons(allocation) == ["board_limit:td1", "board_limit:td1", "site_limit"]
    assert allocation.sessions["s0"].limited_by == "td1"
    assert allocation.nodes["tgbt"].available_a == (43.0, 43.0, 43.0)
    assert allocation.nodes["tgbt"].load_a == (20.0, 20.0, 20.0)
    assert allocation.nodes["td1"].allocated_a == (16.0, 16.0, 16.0)


def test_priority_strategy_serves_higher_priority_first() -> None:
    tree = SiteTree.build(
        [Node("tgbt", max_current_a=40)],
        [Charger("c0", "tgbt"), Charger("c1", "tgbt"), Charger("c2", "tgbt", priority=5)],
    )
    sessions = [Session("low1", "c0", arrival=0), Session("low2", "c1", arrival=1), Session("vip", "c2", arrival=2)]
    allocation = allocate(tree, sessions, Strategy.PRIORITY)
    # Everyone gets the minimum first, then the rest goes to the higher priority.
    assert allocation.setpoints == {"low1": 6.0, "low2": 6.0, "vip": 28.0}
    assert allocation.sessions["vip"].reason == "site_limit"
    assert allocation.sessions["low1"].reason == "site_limit"
    # A session's own priority overrides its charger's.
    sessions[2] = Session("vip", "c2", arrival=2, priority=-1)
    allocation = allocate(tree, sessions, Strategy.PRIORITY)
    assert allocation.setpoints == {"low1": 17.0, "low2": 17.0, "vip": 6.0}
    assert allocation.sessions["vip"].reason == "site_limit"
    # Short of minimums, the lowest priority is paused.
    tree = tree.with_node(Node("tgbt", max_current_a=14))
    allocation = allocate(tree, sessions, Strategy.PRIORITY)
    assert allocation.setpoints == {"low1": 7.0, "low2": 7.0, "vip": 0.0}
    assert allocation.sessions["vip"].reason == "paused_min_not_reachable"
    assert allocation.sessions["vip"].paused


def test_priority_strategy_shares_equally_within_a_priority() -> None:
    tree = SiteTree.build([Node("tgbt", max_current_a=50)], [Charger(f"c{i}", "tgbt") for i in range(4)])
    sessions = [
        Session("a", "c0", priority=2),
        Session("b", "c1", priority=2),
        Session("c", "c2", priority=1),
        Session("d", "c3", priority=1),
    ]
    allocation = allocate(tree, sessions, Strategy.PRIORITY)
    assert allocation.setpoints == {"a": 19.0, "b": 19.0, "c": 6.0, "d": 6.0}
    tree = SiteTree.build([Node("tgbt", max_current_a=80)], [Charger(f"c{i}", "tgbt") for i in range(4)])
    allocation = allocate(tree, sessions, Strategy.PRIORITY)
    assert allocation.setpoints == {"a": 32.0, "b": 32.0, "c": 8.0, "d": 8.0}


def test_equal_strategy_shares_after_minimums_whatever_the_priority() -> None:
    tree = SiteTree.build(
        [Node("tgbt", max_current_a=40)],
        [Charger("c0", "tgbt"), Charger("c1", "tgbt"), Charger("c2", "tgbt", priority=5)],
    )
    allocation = allocate(tree, [Session("a", "c0"), Session("b", "c1"), Session("vip", "c2")])
    assert sorted(allocation.setpoints.values()) == [13.3, 13.3, 13.4]


def test_first_come_first_served() -> None:
    sessions = [
        Session("late", "c0", arrival=30),
        Session("first", "c1", arrival=10),
        Session("second", "c2", arrival=20),
    ]
    allocation = allocate(_board(40, 3), sessions, Strategy.FCFS)
    # Minimums first, then the rest in arrival order.
    assert allocation.setpoints == {"late": 6.0, "first": 28.0, "second": 6.0}
    assert _reasons(allocation) == ["site_limit"] * 3
    allocation = allocate(_board(60, 3), sessions, Strategy.FCFS)
    assert allocation.setpoints == {"late": 6.0, "first": 32.0, "second": 22.0}
    assert allocation.sessions["first"].reason == "charger_max"
    allocation = allocate(_board(13, 3), sessions, Strategy.FCFS)
    assert allocation.setpoints == {"late": 0.0, "first": 7.0, "second": 6.0}
    assert allocation.sessions["late"].reason == "paused_min_not_reachable"
    assert allocation.strategy is Strategy.FCFS


def test_arrival_as_datetime() -> None:
    start = datetime(2025, 6, 1, 8, tzinfo=UTC)
    sessions = [Session("b", "c0", arrival=start + timedelta(minutes=5)), Session("a", "c1", arrival=start)]
    allocation = allocate(_board(40, 2), sessions, Strategy.FCFS, now=start + timedelta(hours=1))
    assert allocation.setpoints == {"b": 8.0, "a": 32.0}
    assert allocation.time == (start + timedelta(hours=1)).timestamp()


def test_not_enough_for_every_minimum_pauses_the_latest() -> None:
    allocation = allocate(_board(20, 4), _sessions(4))
    assert _setpoints(allocation) == [6.7, 6.7, 6.6, 0.0]
    assert allocation.sessions["s3"].reason == "paused_min_not_reachable"
    assert allocation.sessions["s3"].limited_by == "tgbt"


def test_not_enough_pauses_the_lowest_priority_even_if_first() -> None:
    tree = SiteTree.build([Node("tgbt", max_current_a=20)], [Charger(f"c{i}", "tgbt") for i in range(4)])
    sessions = [Session("early_low", "c0", arrival=0, priority=-1), *_sessions(4)[1:]]
    allocation = allocate(tree, sessions)
    assert allocation.setpoints["early_low"] == 0.0
    assert [allocation.setpoints[f"s{i}"] for i in (1, 2, 3)] == [6.7, 6.7, 6.6]


def test_a_paused_session_does_not_block_a_later_one_that_fits_elsewhere() -> None:
    tree = SiteTree.build(
        [Node("tgbt", max_current_a=63), Node("td1", parent="tgbt", max_current_a=10)],
        [Charger("c0", "td1"), Charger("c1", "td1"), Charger("c2", "tgbt")],
    )
    allocation = allocate(tree, _sessions(3))
    assert _setpoints(allocation) == [10.0, 0.0, 32.0]
    assert allocation.sessions["s1"].limited_by == "td1"


def test_residual_redistribution_from_a_self_limiting_car() -> None:
    sessions = [
        Session("s0", "c0", setpoint_a=16.0, measured_a=(5.0, 5.0, 5.2)),
        Session("s1", "c1", setpoint_a=16.0, measured_a=(16.0, 16.0, 16.0)),
    ]
    allocation = allocate(_board(32, 2), sessions)
    assert allocation.setpoints == {"s0": 7.2, "s1": 24.8}
    assert allocation.sessions["s0"].reason == "ev_self_limited"
    assert allocation.sessions["s0"].cap_a == pytest.approx(7.2)
    assert allocation.sessions["s1"].reason == "site_limit"


def test_residual_cap_is_never_below_the_minimum_nor_applied_when_close() -> None:
    sessions = [
        Session("idle", "c0", setpoint_a=16.0, measured_a=(0.0, 0.0, 0.0)),
        # Within half the margin of its setpoint: the car takes what it is given, no cap.
        Session("close", "c1", setpoint_a=16.0, measured_a=(15.5, 15.5, 15.5)),
        Session("unknown", "c2", setpoint_a=16.0),
    ]
    allocation = allocate(_board(60, 3), sessions, residual_margin_a=2.0)
    assert allocation.sessions["idle"].setpoint_a == 6.0
    assert allocation.sessions["idle"].reason == "ev_self_limited"
    assert allocation.setpoints["close"] == allocation.setpoints["unknown"] == 27.0


def test_residual_cap_holds_while_the_car_draws_a_margin_below() -> None:
    """Hysteresis: a car held at draw + margin stays held; drawing more releases it."""
    held = Session("s0", "c0", setpoint_a=18.0, measured_a=(16.0, 16.0, 16.0))
    assert allocate(_board(60, 1), [held], residual_margin_a=2.0).setpoints == {"s0": 18.0}
    wants_more = Session("s0", "c0", setpoint_a=18.0, measured_a=(17.5, 17.5, 17.5))
    assert allocate(_board(60, 1), [wants_more], residual_margin_a=2.0).setpoints == {"s0": 32.0}


def test_residual_uses_only_the_phase_of_a_single_phase_charger() -> None:
    tree = SiteTree.build([Node("tgbt", max_current_a=32)], [Charger("c0", "tgbt", phases=1, phase=Phase.L3)])
    session = Session("s0", "c0", setpoint_a=32.0, measured_a=(0.0, 0.0, 10.0))
    assert allocate(tree, [session]).setpoints == {"s0": 12.0}


def test_power_limit_in_watts() -> None:
    tree = SiteTree.build(
        [Node("tgbt", max_power_w=16 * 3 * 230)],
        [Charger("c0", "tgbt"), Charger("c1", "tgbt"), Charger("c2", "tgbt", phases=1, phase=Phase.L2)],
    )
    allocation = allocate(tree, _sessions(2))
    assert _setpoints(allocation) == [8.0, 8.0]
    assert allocation.nodes["tgbt"].allocated_power_w == pytest.approx(11_040)
    assert allocation.nodes["tgbt"].available_power_w == pytest.approx(11_040)
    # A single-phase session weighs one third of a three-phase one: 3a + b <= 48 A.
    allocation = allocate(tree, [Session("a", "c0"), Session("b", "c2")])
    assert allocation.setpoints == {"a": 12.0, "b": 12.0}
    assert allocation.sessions["b"].reason == "site_limit"
    # The non-EV load counts in the power budget, over the three phases.
    loaded = tree.with_measurement("tgbt", (2.0, 2.0, 2.0))
    allocation = allocate(loaded, _sessions(2))
    assert _setpoints(allocation) == [7.0, 7.0]
    assert allocation.nodes["tgbt"].available_power_w == pytest.approx(11_040 - 6 * 230)


def test_power_limit_with_another_voltage() -> None:
    tree = SiteTree.build([Node("tgbt", max_power_w=12_000)], [Charger("c0", "tgbt")])
    assert allocate(tree, _sessions(1), voltage_v=250.0).setpoints == {"s0": 16.0}


def test_current_and_power_limits_together() -> None:
    tree = SiteTree.build(
        [Node("tgbt", max_current_a=(32, 20, 32), max_power_w=60 * 230)],
        [Charger("c0", "tgbt", phases=1, phase=Phase.L1), Charger("c1", "tgbt", phases=1, phase=Phase.L2)],
    )
    allocation = allocate(tree, _sessions(2))
    assert _setpoints(allocation) == [32.0, 20.0]
    tree = tree.with_node(Node("tgbt", max_current_a=(32, 20, 32), max_power_w=40 * 230))
    assert _setpoints(allocate(tree, _sessions(2))) == [20.0, 20.0]


def test_ev_maximum() -> None:
    sessions = [Session("s0", "c0", ev_max_current_a=10), Session("s1", "c1"), Session("s2", "c2", ev_max_current_a=4)]
    allocation = allocate(_board(40, 3), sessions)
    assert allocation.setpoints == {"s0": 10.0, "s1": 30.0, "s2": 0.0}
    assert _reasons(allocation) == ["ev_max", "site_limit", "paused_ev_max_below_min"]


def test_local_production_adds_to_the_available_current() -> None:
    tree = _board(32, 1, measured_load=(30.0, 30.0, 30.0), production=(10.0, 10.0, 10.0))
    allocation = allocate(tree, _sessions(1))
    assert allocation.setpoints == {"s0": 12.0}
    assert allocation.nodes["tgbt"].available_a == (12.0, 12.0, 12.0)


def test_load_above_the_limit_leaves_nothing() -> None:
    allocation = allocate(_board(32, 1, measured_load=(40.0, 10.0, 10.0)), _sessions(1))
    assert allocation.setpoints == {"s0": 0.0}
    assert allocation.nodes["tgbt"].available_a == (0.0, 22.0, 22.0)


def test_unlimited_nodes_only_cap_at_the_charger() -> None:
    tree = SiteTree.build([Node("tgbt"), Node("td", parent="tgbt")], [Charger("c0", "td")])
    allocation = allocate(tree, _sessions(1))
    assert allocation.setpoints == {"s0": 32.0}
    assert allocation.nodes["td"].available_a == (math.inf, math.inf, math.inf)


def test_stale_meter_uses_the_fallback_load() -> None:
    tree = _board(32, 1, measured_load=(5.0, 5.0, 5.0), measured_at=0.0, fallback_load=20, production=(9.0, 9.0, 9.0))
    fresh = allocate(tree, _sessions(1), now=60.0, meter_timeout_s=60.0)
    assert fresh.setpoints == {"s0": 32.0}
    assert fresh.sessions["s0"].degraded == ()
    stale = allocate(tree, _sessions(1), now=61.0, meter_timeout_s=60.0)
    # Fallback 20 A, and the (equally stale) production is no longer counted.
    assert stale.setpoints == {"s0": 12.0}
    assert stale.sessions["s0"].degraded == (meter_stale_reason("tgbt"),) == ("meter_stale:tgbt",)
    assert stale.nodes["tgbt"].stale
    assert stale.nodes["tgbt"].load_a == (20.0, 20.0, 20.0)
    assert allocate(tree, _sessions(1), now=1e6, meter_timeout_s=None).setpoints == {"s0": 32.0}


def test_stale_meter_without_fallback_means_fully_loaded() -> None:
    tree = SiteTree.build(
        [
            Node("tgbt", max_current_a=63, max_power_w=40_000),
            Node(
                "td1", parent="tgbt", max_current_a=32, max_power_w=20_000, measured_load=(1.0, 1.0, 1.0), measured_at=0
            ),
            Node("td2", parent="tgbt"),
        ],
        [Charger("c0", "td1"), Charger("c1", "td2")],
    )
    allocation = allocate(tree, _sessions(2), now=datetime.fromtimestamp(600, UTC))
    assert allocation.setpoints == {"s0": 0.0, "s1": 32.0}
    assert allocation.sessions["s0"].reason == "paused_min_not_reachable"
    assert allocation.sessions["s0"].degraded == ("meter_stale:td1",)
    assert allocation.nodes["td1"].available_a == (0.0, 0.0, 0.0)
    assert allocation.nodes["td1"].available_power_w == 0.0
    assert allocation.sessions["s1"].degraded == ()


def test_a_node_without_meter_uses_its_fallback_as_a_static_estimate() -> None:
    allocation = allocate(_board(32, 1, fallback_load=(10, 0, 0)), _sessions(1))
    assert allocation.setpoints == {"s0": 22.0}


def test_nearest_binding_limit_is_reported() -> None:
    tree = SiteTree.build(
        [Node("tgbt", max_current_a=16), Node("td1", parent="tgbt", max_current_a=16)],
        [Charger("c0", "td1")],
    )
    allocation = allocate(tree, _sessions(1))
    assert allocation.sessions["s0"].reason == limit_reason(tree, "td1") == "board_limit:td1"
    assert limit_reason(tree, "tgbt") == "site_limit"


def test_order_and_keep_running_override_the_strategy_order() -> None:
    tree = _board(20, 4)
    allocation = allocate(tree, _sessions(4), order=["s3", "s2"])
    assert allocation.setpoints["s0"] == 6.6
    assert allocation.setpoints["s1"] == 0.0
    allocation = allocate(tree, _sessions(4), keep_running={"s3"})
    assert allocation.setpoints["s2"] == 0.0
    assert allocation.setpoints["s3"] > 0
    # Even a kept session is paused when its minimum does not fit.
    allocation = allocate(_board(5, 1), _sessions(1), keep_running={"s0"})
    assert allocation.setpoints == {"s0": 0.0}


def test_result_helpers() -> None:
    allocation = allocate(_board(32, 1), _sessions(1))
    assert allocation.setpoint("s0") == 32.0
    result = allocation.sessions["s0"]
    assert result.per_phase == (32.0, 32.0, 32.0)
    assert not result.paused
    assert result.min_a == 6.0
    assert result.charger_id == "c0"
    assert str(Reason.EV_MAX) == "ev_max"


def test_no_sessions() -> None:
    allocation = allocate(_board(32, 2), [])
    assert allocation.setpoints == {}
    assert allocation.nodes["tgbt"].allocated_a == (0.0, 0.0, 0.0)


@pytest.mark.parametrize(
    ("sessions", "message"),
    [
        ([Session("s", "c0"), Session("s", "c1")], "duplicate session id 's'"),
        ([Session("s", "nope")], "unknown charger 'nope'"),
        ([Session("a", "c0"), Session("b", "c0")], "share charger 'c0'"),
        ([Session("s", "c0", ev_max_current_a=-1)], "ev_max_current_a must be finite and >= 0"),
        ([Session("s", "c0", setpoint_a=math.nan)], "setpoint_a must be finite"),
    ],
)
def test_invalid_sessions(sessions: list[Session], message: str) -> None:
    with pytest.raises(SessionError, match=message):
        allocate(_board(32, 2), sessions)


def test_invalid_parameters() -> None:
    with pytest.raises(EmsError, match="voltage_v"):
        allocate(_board(32, 1), [], voltage_v=0)
    with pytest.raises(EmsError, match="step_a"):
        allocate(_board(32, 1), [], step_a=-1)
    with pytest.raises(EmsError, match="residual_margin_a"):
        allocate(_board(32, 1), [], residual_margin_a=-1)
    with pytest.raises(EmsError, match="no timezone"):
        allocate(_board(32, 1), [Session("s", "c0", arrival=datetime(2025, 1, 1))])


def test_limit_tracker_checks_phases_and_power() -> None:
    tree = SiteTree.build(
        [Node("tgbt", max_current_a=(32, 32, 32), max_power_w=20 * 3 * 230)],
        [Charger("c0", "tgbt"), Charger("c1", "tgbt", phases=1, phase=Phase.L1, max_current_a=16)],
    )
    allocation = allocate(tree, _sessions(2))
    assert allocation.setpoints == {"s0": 15.0, "s1": 15.0}
    tracker = LimitTracker(tree, allocation, allocation.setpoints)
    assert not tracker.fits("s0", 0.5)  # the power budget is spent
    assert not tracker.fits("s1", 0.5)
    tracker.add("s0", -3.0)
    assert tracker.fits("s1", 1.0)
    assert tracker.fits("s0", 3.0)
    tracker.add("s1", 1.0)
    assert not tracker.fits("s0", 3.0)
    phase_bound = allocate(tree.with_node(Node("tgbt", max_current_a=(20, 32, 32))), _sessions(2))
    assert phase_bound.setpoints == {"s0": 10.0, "s1": 10.0}
    tracker = LimitTracker(tree, phase_bound, phase_bound.setpoints)
    assert not tracker.fits("s1", 0.5)  # L1 is full
