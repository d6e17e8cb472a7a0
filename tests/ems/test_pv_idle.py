"""A car that takes nothing in a PV mode (full, or on its own timer) holds no surplus back."""

from __future__ import annotations

from custom_components.cariflex.ems.allocator import Session
from custom_components.cariflex.ems.pv import ChargeMode, PvConfig, PvController, PvReason, PvRequest
from custom_components.cariflex.ems.strategy import SessionSettings, SiteInputs, StrategyConfig, StrategyEngine
from custom_components.cariflex.ems.tree import Charger, Node, SiteTree

V = 230.0
MIN_3P = 6 * V * 3  # 4140 W


def _request(session_id: str, *, idle: bool = False, mode: ChargeMode = ChargeMode.PV) -> PvRequest:
    return PvRequest(session_id=session_id, mode=mode, min_a=6.0, cap_a=32.0, phases=3, idle=idle)


def test_an_idle_car_keeps_its_minimum_offer_but_not_its_share_of_the_surplus() -> None:
    controller = PvController(PvConfig(enable_delay_s=0, disable_delay_s=0, guard_s=0), V)
    controller.state("full", 3, enabled=True)
    # Room for one minimum: the full car would take it and the other car would wait.
    busy = controller.distribute(0.0, MIN_3P + 100, [_request("full"), _request("next")])
    assert busy["full"].max_a >= 6
    assert busy["next"].reason is PvReason.WAITING

    outcomes = controller.distribute(10.0, MIN_3P + 100, [_request("full", idle=True), _request("next")])
    assert outcomes["full"].reason is PvReason.CAR_IDLE
    assert outcomes["full"].max_a == 6.0  # it may resume at its minimum
    assert outcomes["full"].share_w == 0.0
    assert outcomes["next"].reason is PvReason.SURPLUS
    assert outcomes["next"].share_w == MIN_3P + 100  # the whole surplus
    assert controller.state("full", 3).enabled  # not stopped: no start/stop for a full car


def test_an_idle_car_that_was_not_charging_is_not_started() -> None:
    controller = PvController(PvConfig(enable_delay_s=0), V)
    outcome = controller.distribute(0.0, 20_000, [_request("waiting", idle=True)])["waiting"]
    assert outcome.max_a == 0.0
    assert outcome.reason is PvReason.CAR_IDLE
    assert not controller.state("waiting", 3).enabled
    minimum = controller.distribute(0.0, 0, [_request("min", idle=True, mode=ChargeMode.MIN_PV)])["min"]
    assert minimum.max_a == 6.0


def test_the_strategy_passes_a_suspended_car_to_the_pv_controller() -> None:
    tree = SiteTree.build(
        [Node("site", max_current_a=63.0)],
        [Charger("c1", "site", max_current_a=32.0), Charger("c2", "site", max_current_a=32.0)],
    )
    engine = StrategyEngine(StrategyConfig(pv=PvConfig(enable_delay_s=0, disable_delay_s=0, guard_s=0)))
    sessions = [Session("s1", "c1", arrival=0.0), Session("s2", "c2", arrival=1.0)]
    settings = {
        "s1": SessionSettings(mode=ChargeMode.PV, car_idle=True),
        "s2": SessionSettings(mode=ChargeMode.PV),
    }
    engine.pv.state("s1", 3, enabled=True)
    result = engine.cycle(0.0, tree, sessions, SiteInputs(grid_power_w=-(MIN_3P + 500)), settings)
    assert result.targets["s1"].reason == "pv_car_idle"
    assert result.targets["s1"].max_a == 6.0
    assert result.targets["s2"].reason == "pv_surplus"
    assert result.targets["s2"].max_a >= 6.0
