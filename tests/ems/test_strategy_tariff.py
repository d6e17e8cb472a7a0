"""Tariff policies (custom_components/cariflex/ems/tariff.py): off-peak, Tempo red, EcoWatt red, weekends."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from custom_components.cariflex.ems.allocator import Session
from custom_components.cariflex.ems.strategy import SessionSettings, SiteInputs, StrategyConfig, StrategyEngine
from custom_components.cariflex.ems.tariff import (
    TariffOption,
    TariffPolicy,
    TariffReason,
    TariffState,
    tariff_block,
)
from custom_components.cariflex.ems.tree import Charger, Node, SiteTree

PARIS = ZoneInfo("Europe/Paris")


@pytest.mark.parametrize(
    ("policy", "state", "expected"),
    [
        (TariffPolicy.IGNORE, TariffState(False, "red", 3), None),
        (TariffPolicy.OFFPEAK, TariffState(is_offpeak=False), TariffReason.OFFPEAK_WAIT),
        (TariffPolicy.OFFPEAK, TariffState(is_offpeak=True, tempo="red"), None),
        (TariffPolicy.OFFPEAK, TariffState(), None),  # unknown: no block
        (TariffPolicy.AVOID_RED, TariffState(is_offpeak=False), None),
        (TariffPolicy.AVOID_RED, TariffState(is_offpeak=False, tempo="red"), TariffReason.TEMPO_RED),
        (TariffPolicy.AVOID_RED, TariffState(is_offpeak=None, tempo="red"), TariffReason.TEMPO_RED),
        (TariffPolicy.AVOID_RED, TariffState(is_offpeak=True, tempo="red"), None),  # red day, off-peak hours
        (TariffPolicy.AVOID_RED, TariffState(is_offpeak=False, tempo="white"), None),
        (TariffPolicy.AVOID_RED, TariffState(is_offpeak=True, ecowatt=3), TariffReason.ECOWATT_RED),
        (TariffPolicy.AVOID_RED, TariffState(ecowatt=2), None),
        (TariffPolicy.OFFPEAK_AVOID_RED, TariffState(is_offpeak=True, ecowatt=3), TariffReason.ECOWATT_RED),
        (TariffPolicy.OFFPEAK_AVOID_RED, TariffState(is_offpeak=False, tempo="blue"), TariffReason.OFFPEAK_WAIT),
        (TariffPolicy.OFFPEAK_AVOID_RED, TariffState(is_offpeak=True, tempo="blue", ecowatt=1), None),
    ],
)
def test_tariff_block(policy: TariffPolicy, state: TariffState, expected: TariffReason | None) -> None:
    assert tariff_block(policy, state) == expected


def test_weekends_may_have_their_own_policy() -> None:
    option = TariffOption(weekday=TariffPolicy.OFFPEAK, weekend=TariffPolicy.IGNORE)
    assert option.policy(weekend=False) is TariffPolicy.OFFPEAK
    assert option.policy(weekend=True) is TariffPolicy.IGNORE
    assert TariffOption(TariffPolicy.AVOID_RED).policy(weekend=True) is TariffPolicy.AVOID_RED


def test_engine_applies_the_policy_of_the_local_day() -> None:
    tree = SiteTree.build([Node("site", max_current_a=63.0)], [Charger("c1", "site")])
    engine = StrategyEngine(StrategyConfig(timezone=PARIS))
    settings = {"s1": SessionSettings(tariff=TariffOption(TariffPolicy.OFFPEAK, weekend=TariffPolicy.IGNORE))}
    peak = SiteInputs(grid_power_w=0.0, tariff=TariffState(is_offpeak=False))
    # Friday 23:30 UTC is Saturday 01:30 in Paris: a weekend day there.
    friday_night = datetime(2025, 6, 6, 23, 30, tzinfo=ZoneInfo("UTC"))
    result = engine.cycle(friday_night, tree, [Session("s1", "c1")], peak, settings)
    assert result.weekend
    assert (result.targets["s1"].max_a, result.targets["s1"].reason) == (32.0, "mode_now")
    thursday = datetime(2025, 6, 5, 18, 0, tzinfo=PARIS)
    result = engine.cycle(thursday, tree, [Session("s1", "c1")], peak, settings)
    assert not result.weekend
    assert (result.targets["s1"].max_a, result.targets["s1"].reason) == (0.0, "offpeak_wait")
    off = SiteInputs(grid_power_w=0.0, tariff=TariffState(is_offpeak=True))
    assert engine.cycle(thursday, tree, [Session("s1", "c1")], off, settings).targets["s1"].max_a == 32.0
