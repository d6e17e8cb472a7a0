"""The strategy engine (custom_components/cariflex/ems/strategy.py): precedence, users and badges, planner,
PV data lost, and how the allocator and the regulator take the targets."""

from __future__ import annotations

from dataclasses import replace
import math

import pytest

from custom_components.cariflex.ems.allocator import Reason, Session, SessionError, allocate
from custom_components.cariflex.ems.pv import ChargeMode, PvConfig
from custom_components.cariflex.ems.regulator import Regulator, RegulatorConfig
from custom_components.cariflex.ems.strategy import (
    PRECEDENCE,
    REASONS,
    Rule,
    SessionSettings,
    SiteInputs,
    StrategyConfig,
    StrategyEngine,
    StrategyResult,
)
from custom_components.cariflex.ems.tariff import TariffOption, TariffPolicy, TariffState
from custom_components.cariflex.ems.tree import Charger, EmsError, Node, Phase, SiteTree
from custom_components.cariflex.ems.zni import ZniConfig

V = 230.0
OFFPEAK = TariffOption(TariffPolicy.OFFPEAK)
PEAK = TariffState(is_offpeak=False)
FAST = PvConfig(enable_delay_s=0, guard_s=0)
ZNI = ZniConfig(enabled=True)


def _tree(limit: float = 63.0, *chargers: Charger) -> SiteTree:
    return SiteTree.build(
        [Node("site", max_current_a=limit, measured_load=(0.0, 0.0, 0.0), measured_at=0.0)],
        chargers or (Charger("c1", "site", max_current_a=32.0),),
    )


def _one(
    settings: SessionSettings,
    site: SiteInputs,
    config: StrategyConfig | None = None,
    session: Session | None = None,
) -> StrategyResult:
    engine = StrategyEngine(config or StrategyConfig(pv=FAST, zni=ZNI))
    return engine.cycle(0.0, _tree(), [session or Session("s1", "c1")], site, {"s1": settings})


def test_precedence_is_declared_once() -> None:
    assert PRECEDENCE == (Rule.TREE, Rule.ZNI, Rule.USER, Rule.PLANNER_TARIFF, Rule.PV, Rule.DEFAULT)
    assert {
        "zni_cap",
        "pv_waiting_surplus",
        "pv_surplus",
        "offpeak_wait",
        "tempo_red",
        "planner",
        "mode_off",
    } <= REASONS


# Each row: settings, site, expected (max A, reason, rule). Charger: 3 phases, 32 A (22 kW), ZNI cap 16 A.
SURPLUS_20KW = SiteInputs(grid_power_w=-20_000.0, zni_signal=1)
NO_SURPLUS = SiteInputs(grid_power_w=500.0, zni_signal=1)


@pytest.mark.parametrize(
    ("settings", "site", "expected"),
    [
        pytest.param(
            SessionSettings(mode=ChargeMode.PV, planner_target_w=22_000.0),
            replace(SURPLUS_20KW, zni_signal=0),
            (16.0, "zni_cap", Rule.ZNI),
            id="zni0+pv+planner: the cap wins",
        ),
        pytest.param(
            SessionSettings(mode=ChargeMode.NOW, guaranteed_min_a=20.0),
            replace(NO_SURPLUS, zni_signal=0),
            (16.0, "zni_cap", Rule.ZNI),
            id="zni over a badge minimum",
        ),
        pytest.param(
            SessionSettings(mode=ChargeMode.OFF, guaranteed_min_a=10.0, planner_target_w=7000.0),
            SURPLUS_20KW,
            (0.0, "mode_off", Rule.USER),
            id="off over badge, planner and surplus",
        ),
        pytest.param(
            SessionSettings(mode=ChargeMode.NOW, guaranteed_min_a=10.0, tariff=OFFPEAK),
            replace(NO_SURPLUS, tariff=PEAK),
            (10.0, "badge_minimum", Rule.USER),
            id="badge minimum over tariff",
        ),
        pytest.param(
            SessionSettings(mode=ChargeMode.NOW, guaranteed_min_a=10.0, planner_target_w=0.0),
            NO_SURPLUS,
            (10.0, "badge_minimum", Rule.USER),
            id="badge minimum over planner",
        ),
        pytest.param(
            SessionSettings(mode=ChargeMode.PV, planner_target_w=6900.0),
            SURPLUS_20KW,
            (10.0, "planner", Rule.PLANNER_TARIFF),
            id="planner over pv surplus",
        ),
        pytest.param(
            SessionSettings(mode=ChargeMode.PV, planner_target_w=6900.0),
            NO_SURPLUS,
            (10.0, "planner", Rule.PLANNER_TARIFF),
            id="planner over pv waiting",
        ),
        pytest.param(
            SessionSettings(mode=ChargeMode.NOW, planner_target_w=3000.0),
            NO_SURPLUS,
            (0.0, "planner_wait", Rule.PLANNER_TARIFF),
            id="planner target below the minimum power",
        ),
        pytest.param(
            SessionSettings(mode=ChargeMode.NOW, tariff=OFFPEAK),
            replace(SURPLUS_20KW, tariff=PEAK),
            (0.0, "offpeak_wait", Rule.PLANNER_TARIFF),
            id="tariff over default",
        ),
        pytest.param(
            SessionSettings(mode=ChargeMode.PV, tariff=OFFPEAK),
            replace(SURPLUS_20KW, tariff=PEAK),
            (20_000 / 690, "pv_surplus", Rule.PV),
            id="a tariff block leaves the free surplus",
        ),
        pytest.param(
            SessionSettings(mode=ChargeMode.MIN_PV, tariff=OFFPEAK),
            replace(NO_SURPLUS, tariff=PEAK),
            (0.0, "offpeak_wait", Rule.PLANNER_TARIFF),
            id="a tariff block takes away the grid minimum of min_pv",
        ),
        pytest.param(
            SessionSettings(mode=ChargeMode.MIN_PV, planner_target_w=0.0),
            SURPLUS_20KW,
            (20_000 / 690, "pv_surplus", Rule.PV),
            id="planner 0 leaves the surplus",
        ),
        pytest.param(SessionSettings(mode=ChargeMode.PV), SURPLUS_20KW, (20_000 / 690, "pv_surplus", Rule.PV), id="pv"),
        pytest.param(
            SessionSettings(mode=ChargeMode.PV), NO_SURPLUS, (0.0, "pv_waiting_surplus", Rule.PV), id="pv waiting"
        ),
        pytest.param(
            SessionSettings(mode=ChargeMode.MIN_PV), NO_SURPLUS, (6.0, "pv_minimum", Rule.PV), id="min_pv minimum"
        ),
        pytest.param(
            SessionSettings(mode=ChargeMode.PV, pv_excluded=True),
            NO_SURPLUS,
            (32.0, "pv_excluded", Rule.DEFAULT),
            id="badge excluded from pv: standard EMS",
        ),
        pytest.param(
            SessionSettings(mode=ChargeMode.PV, guaranteed_min_a=10.0),
            NO_SURPLUS,
            (10.0, "badge_minimum", Rule.USER),
            id="pv with a guaranteed minimum",
        ),
        pytest.param(
            SessionSettings(mode=ChargeMode.PV, guaranteed_min_a=10.0),
            SURPLUS_20KW,
            (20_000 / 690, "pv_surplus", Rule.PV),
            id="pv with a guaranteed minimum and surplus",
        ),
        pytest.param(SessionSettings(), NO_SURPLUS, (32.0, "mode_now", Rule.DEFAULT), id="default"),
    ],
)
def test_precedence(settings: SessionSettings, site: SiteInputs, expected: tuple[float, str, Rule]) -> None:
    target = _one(settings, site).targets["s1"]
    assert (round(target.max_a, 3), target.reason, target.rule) == (round(expected[0], 3), *expected[1:])
    if settings.guaranteed_min_a:
        assert target.min_a == min(settings.guaranteed_min_a, target.max_a)
    else:
        assert target.min_a == 0


def test_the_tree_wins_over_everything() -> None:
    """A 10 A site: the badge minimum, the planner and the ZNI cap all give way."""
    tree = _tree(10.0)
    engine = StrategyEngine(StrategyConfig(pv=FAST, zni=ZNI))
    session = Session("s1", "c1")
    settings = {"s1": SessionSettings(guaranteed_min_a=12.0, planner_target_w=20_000.0)}
    result = engine.cycle(0.0, tree, [session], SiteInputs(grid_power_w=0.0, zni_signal=0), settings)
    assert result.targets["s1"].max_a == 16.0
    assert result.targets["s1"].min_a == 12.0
    outcome = Regulator().cycle(tree, result.apply([session]), 0.0)
    assert outcome.setpoint("s1") == 10.0
    assert outcome.setpoints["s1"].reason == "site_limit"


def test_a_badge_minimum_is_a_floor_before_the_rest_is_shared() -> None:
    tree = _tree(24.0, Charger("c1", "site"), Charger("c2", "site"))
    engine = StrategyEngine()
    sessions = [Session("pro", "c1"), Session("visitor", "c2")]
    settings = {"pro": SessionSettings(guaranteed_min_a=16.0)}
    result = engine.cycle(0.0, tree, sessions, SiteInputs(grid_power_w=0.0), settings)
    allocation = allocate(tree, result.apply(sessions))
    assert allocation.setpoints == {"pro": 16.0, "visitor": 8.0}
    # Without the floor, the site is shared equally.
    assert allocate(tree, sessions).setpoints == {"pro": 12.0, "visitor": 12.0}


def test_pv_data_lost_falls_back_to_the_standard_ems() -> None:
    tree = _tree(63.0, Charger("c1", "site"), Charger("c2", "site"), Charger("c3", "site"))
    engine = StrategyEngine(StrategyConfig(pv=PvConfig(guard_s=0)))
    sessions = [Session("pv", "c1"), Session("min", "c2"), Session("now", "c3")]
    settings = {"pv": SessionSettings(mode=ChargeMode.PV), "min": SessionSettings(mode=ChargeMode.MIN_PV)}

    lost = engine.cycle(0.0, tree, sessions, SiteInputs(grid_power_w=None), settings)
    assert lost.pv_data_lost
    assert lost.surplus_w is None
    assert {key: (t.max_a, t.reason) for key, t in lost.targets.items()} == {
        "pv": (32.0, "pv_data_lost"),
        "min": (32.0, "pv_data_lost"),
        "now": (32.0, "mode_now"),
    }
    # A stale reading counts as lost too.
    stale = engine.cycle(100.0, tree, sessions, SiteInputs(grid_power_w=-9000.0, grid_measured_at=30.0), settings)
    assert stale.pv_data_lost
    # Back: the PV session was charging, so it goes through its disable delay, not a sudden stop.
    back = engine.cycle(110.0, tree, sessions, SiteInputs(grid_power_w=2000.0, grid_measured_at=110.0), settings)
    assert not back.pv_data_lost
    assert back.targets["pv"].reason == "pv_disable_pending"
    assert back.targets["min"].reason == "pv_minimum"
    later = engine.cycle(290.0, tree, sessions, SiteInputs(grid_power_w=2000.0, grid_measured_at=290.0), settings)
    assert later.targets["pv"].reason == "pv_waiting_surplus"
    # No session in a PV mode: nothing fell back, no flag.
    plain = StrategyEngine().cycle(0.0, tree, sessions, SiteInputs(), {})
    assert not plain.pv_data_lost


def test_pv_excluded_badge_and_guaranteed_minimum_over_a_day_of_no_surplus() -> None:
    tree = _tree(63.0, Charger("c1", "site"), Charger("c2", "site"), Charger("c3", "site"))
    engine = StrategyEngine()
    sessions = [Session("guest", "c1"), Session("staff", "c2"), Session("fleet", "c3")]
    settings = {
        "guest": SessionSettings(mode=ChargeMode.PV),
        "staff": SessionSettings(mode=ChargeMode.PV, pv_excluded=True),
        "fleet": SessionSettings(mode=ChargeMode.PV, guaranteed_min_a=8.0),
    }
    for t in range(0, 600, 5):
        result = engine.cycle(float(t), tree, sessions, SiteInputs(grid_power_w=1500.0), settings)
        assert result.targets["guest"].max_a == 0
        assert (result.targets["staff"].max_a, result.targets["staff"].reason) == (32.0, "pv_excluded")
        assert (result.targets["fleet"].max_a, result.targets["fleet"].reason) == (8.0, "badge_minimum")


def test_planner_picks_one_phase_on_a_switchable_charger() -> None:
    engine = StrategyEngine()
    settings = SessionSettings(planner_target_w=2300.0, phase_switching=True)
    tree = _tree()
    result = engine.cycle(0.0, tree, [Session("s1", "c1")], SiteInputs(grid_power_w=0.0), {"s1": settings})
    target = result.targets["s1"]
    assert (target.phases, target.max_a, target.reason) == (1, 10.0, "planner")
    # The planner asks for 9.2 kW: back to three phases, but not before the switch interval.
    settings = replace(settings, planner_target_w=9200.0)
    result = engine.cycle(100.0, tree, [Session("s1", "c1")], SiteInputs(grid_power_w=0.0), {"s1": settings})
    assert (result.targets["s1"].phases, result.targets["s1"].max_a) == (1, 32.0)
    assert result.targets["s1"].timer_s == 200.0
    result = engine.cycle(300.0, tree, [Session("s1", "c1")], SiteInputs(grid_power_w=0.0), {"s1": settings})
    assert (result.targets["s1"].phases, result.targets["s1"].max_a) == (3, round(9200 / 690, 3))
    # 2.3 kW again, too soon to switch: 3.3 A on three phases is below the minimum: the session waits.
    settings = replace(settings, planner_target_w=2300.0)
    result = engine.cycle(310.0, tree, [Session("s1", "c1")], SiteInputs(grid_power_w=0.0), {"s1": settings})
    target = result.targets["s1"]
    assert (target.phases, target.max_a, target.reason, target.timer_s) == (3, 0.0, "planner_wait", 290.0)
    assert target.paused
    # A paused session keeps its phases.
    settings = replace(settings, mode=ChargeMode.OFF, planner_target_w=None)
    result = engine.cycle(900.0, tree, [Session("s1", "c1")], SiteInputs(grid_power_w=0.0), {"s1": settings})
    assert result.targets["s1"].phases == 3
    assert result.targets["s1"].timer_s is None


def test_engine_forgets_sessions_and_validates_its_config() -> None:
    engine = StrategyEngine(StrategyConfig(pv=FAST))
    tree = _tree()
    settings = {"s1": SessionSettings(mode=ChargeMode.PV)}
    engine.cycle(0.0, tree, [Session("s1", "c1")], SiteInputs(grid_power_w=-5000.0), settings)
    assert set(engine.pv.states) == {"s1"}
    engine.cycle(5.0, tree, [], SiteInputs(grid_power_w=-5000.0), settings)
    assert set(engine.pv.states) == set()
    engine.cycle(10.0, tree, [Session("s1", "c1")], SiteInputs(grid_power_w=-5000.0), settings)
    engine.reset()
    assert set(engine.pv.states) == set()
    with pytest.raises(EmsError, match="voltage"):
        StrategyConfig(voltage_v=0)


def test_a_car_already_charging_when_first_seen_keeps_charging_in_pv_mode() -> None:
    """After a restart, a PV car that draws is not stopped and restarted: it goes through the disable delay."""
    engine = StrategyEngine()
    tree = _tree()
    session = Session("s1", "c1", measured_a=(8.0, 8.0, 8.0), setpoint_a=8.0)
    settings = {"s1": SessionSettings(mode=ChargeMode.PV)}
    result = engine.cycle(0.0, tree, [session], SiteInputs(grid_power_w=-1000.0 + 0.0), settings)
    assert result.targets["s1"].reason == "pv_surplus"
    assert result.targets["s1"].max_a == pytest.approx((1000 + 8 * 690) / 690, abs=1e-3)


# ------------------------------------------------------------------------ allocator and regulator


def _alloc_tree(limit: float = 32.0) -> SiteTree:
    return SiteTree.build(
        [Node("site", max_current_a=limit)],
        [Charger("c1", "site"), Charger("c2", "site"), Charger("c3", "site", phases=1, phase=Phase.L2)],
    )


def test_allocator_strategy_max_caps_and_pauses_with_the_strategy_reason() -> None:
    tree = _alloc_tree(63.0)
    sessions = [
        Session("a", "c1", strategy_max_a=10.0, strategy_reason="pv_surplus"),
        Session("b", "c2", strategy_max_a=0.0, strategy_reason="pv_waiting_surplus"),
        Session("c", "c3", strategy_max_a=4.0),
    ]
    allocation = allocate(tree, sessions)
    assert allocation.setpoints == {"a": 10.0, "b": 0.0, "c": 0.0}
    assert allocation.sessions["a"].reason == "pv_surplus"
    assert allocation.sessions["b"].reason == "pv_waiting_surplus"
    assert allocation.sessions["c"].reason == Reason.STRATEGY_MAX
    # The car's own limit, when lower, keeps its reason.
    allocation = allocate(tree, [Session("a", "c1", strategy_max_a=10.0, ev_max_current_a=8.0)])
    assert allocation.sessions["a"].reason == "ev_max"
    allocation = allocate(tree, [Session("a", "c1", strategy_max_a=3.0, ev_max_current_a=4.0)])
    assert allocation.sessions["a"].reason == "strategy_max"


def test_allocator_floors_never_break_a_limit() -> None:
    tree = _alloc_tree(20.0)
    sessions = [Session("a", "c1", strategy_min_a=18.0), Session("b", "c2", strategy_min_a=18.0, arrival=1.0)]
    allocation = allocate(tree, sessions)
    assert allocation.setpoints == {"a": 10.0, "b": 10.0}  # floors shared max-min fairly within the limit
    assert {s.reason for s in allocation.sessions.values()} == {"site_limit"}
    allocation = allocate(tree, [Session("a", "c1", strategy_min_a=18.0), Session("b", "c2", arrival=1.0)])
    assert allocation.setpoints == {"a": 14.0, "b": 6.0}


def test_allocator_one_phase_session_on_a_three_phase_charger() -> None:
    tree = SiteTree.build(
        [Node("site", max_current_a=(16.0, 32.0, 32.0))],
        [Charger("c1", "site", phase=Phase.L2), Charger("c2", "site")],
    )
    sessions = [Session("one", "c1", number_of_phases=1), Session("three", "c2")]
    allocation = allocate(tree, sessions)
    assert allocation.sessions["one"].phases == (Phase.L2,)
    assert allocation.setpoints == {"one": 16.0, "three": 16.0}
    assert allocation.nodes["site"].allocated_a == (16.0, 32.0, 16.0)
    assert allocation.nodes["site"].allocated_power_w == pytest.approx(16 * 4 * V)
    # Its draw on its phase tells whether the car limits itself.
    measured = Session("one", "c1", number_of_phases=1, measured_a=(0.0, 7.0, 0.0), setpoint_a=16.0)
    assert allocate(tree, [measured]).sessions["one"].reason == "ev_self_limited"


@pytest.mark.parametrize(
    ("session", "message"),
    [
        (Session("a", "c3", number_of_phases=3), "number_of_phases"),
        (Session("a", "c1", strategy_max_a=-1.0), "strategy_max_a"),
        (Session("a", "c1", strategy_min_a=math.nan), "strategy_min_a"),
    ],
)
def test_allocator_refuses_invalid_strategy_fields(session: Session, message: str) -> None:
    with pytest.raises(SessionError, match=message):
        allocate(_alloc_tree(), [session])


def test_regulator_applies_a_lower_strategy_cap_at_once_and_resends_on_phase_change() -> None:
    tree = _alloc_tree(63.0)
    regulator = Regulator(RegulatorConfig(deadband_a=1.0))
    first = regulator.cycle(tree, [Session("a", "c1", strategy_max_a=16.5)], 0.0)
    assert first.setpoint("a") == 16.5
    # 0.5 A lower is within the deadband, but the strategy cap (ZNI) must hold: applied at once.
    second = regulator.cycle(tree, [Session("a", "c1", strategy_max_a=16.0, strategy_reason="zni_cap")], 5.0)
    assert second.setpoint("a") == 16.0
    assert second.setpoints["a"].reason == "zni_cap"
    assert second.changed == ("a",)
    # Same current, one phase instead of three: a new profile to send.
    third = regulator.cycle(tree, [Session("a", "c1", strategy_max_a=16.0, number_of_phases=1)], 10.0)
    assert third.setpoint("a") == 16.0
    assert third.setpoints["a"].number_of_phases == 1
    assert third.setpoints["a"].previous_phases == 3
    assert third.changed == ("a",)
    fourth = regulator.cycle(tree, [Session("a", "c1", strategy_max_a=16.0, number_of_phases=1)], 15.0)
    assert fourth.changed == ()
    # A phase switch with a small current change skips the deadband (a new profile anyway).
    fifth = regulator.cycle(tree, [Session("a", "c1", strategy_max_a=16.5)], 20.0)
    assert fifth.setpoint("a") == 16.5
    assert fifth.changed == ("a",)
