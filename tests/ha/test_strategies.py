"""Charging strategies in a real Home Assistant with real OCPP chargers: modes, the ZNI signal, tariffs."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.cariflex.access import Badge
from custom_components.cariflex.const import DOMAIN
from custom_components.cariflex.diagnostics import async_get_config_entry_diagnostics
from custom_components.cariflex.ems.pv import ChargeMode
from custom_components.cariflex.ems.regulator import Regulator
from custom_components.cariflex.ems.strategy import StrategyEngine
from custom_components.cariflex.energy import EmsMode, EnergyCoordinator
from simulator.charger16 import SimCharger16
from tests.conftest import ChargerFactory, site_entry, state_of, wait_for

pytestmark = pytest.mark.usefixtures("socket_enabled", "entity_registry_enabled_by_default")

METER = "sensor.grid_power"
SIGNAL = "binary_sensor.edf_signal"
VOLTS = 230.0


async def start_site(
    hass: HomeAssistant,
    ws_port: int,
    ems: EmsMode = EmsMode.ON,
    cp1: dict[str, Any] | None = None,
    *,
    grid_meter: bool = True,
    pv: dict[str, float] | None = None,
    **options: Any,
) -> MockConfigEntry:
    """A 3-phase site (32 A breaker, 22 kW, grid meter), two 32 A chargers (CP1's extra settings), the options.

    ``pv``: PV settings the options do not offer (the guard time, the minimum time between phase
    switches), 0 in the tests that are not about them (tests/ems covers them).
    """
    hass.states.async_set(METER, "0", {"unit_of_measurement": "W", "device_class": "power"})
    entry = site_entry(
        ws_port,
        chargers={"CP1": cp1 or {}, "CP2": {}},
        options={
            "subscribed_power_kw": 22.0,
            "main_breaker_a": 32.0,
            **({"grid_power_entity": METER} if grid_meter else {}),
            "pv_enable_delay_s": 0,
            "pv_disable_delay_s": 0,
            **options,
        },
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    # A paused session normally waits 60 s before it restarts (tests/ems covers it): not here.
    coordinator = energy(entry)
    coordinator.regulator = Regulator(replace(coordinator.regulator.config, hold_s=0))
    if pv:
        config = coordinator.strategy.config
        coordinator.strategy = StrategyEngine(replace(config, pv=replace(config.pv, **pv)))
    await coordinator.async_set_mode(ems)
    return entry


def energy(entry: MockConfigEntry) -> EnergyCoordinator:
    coordinator: EnergyCoordinator | None = entry.runtime_data.energy
    assert coordinator is not None
    return coordinator


async def charging(chargers: ChargerFactory, charger_id: str) -> SimCharger16:
    cp = await chargers(charger_id)
    await cp.status(1, "Charging")
    await cp.start_transaction(1, f"TAG-{charger_id}")
    return cp


def meter(hass: HomeAssistant, watts: float) -> None:
    hass.states.async_set(METER, str(watts), {"unit_of_measurement": "W", "device_class": "power"})


def strategy_of(hass: HomeAssistant, entity_id: str) -> Any:
    """The strategy's own reason, shown by a limit-reason sensor."""
    state = hass.states.get(entity_id)
    assert state is not None
    return state.attributes["strategy"]


async def cycle(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    await energy(entry).async_refresh()
    await hass.async_block_till_done()


async def select(hass: HomeAssistant, entity_id: str, option: str) -> None:
    await hass.services.async_call("select", "select_option", {"entity_id": entity_id, "option": option}, blocking=True)
    await hass.async_block_till_done()


async def test_the_charging_mode_select_changes_the_chargers_profile(
    hass: HomeAssistant,
    ws_port: int,
    chargers: ChargerFactory,
) -> None:
    entry = await start_site(hass, ws_port)
    cp1 = await charging(chargers, "CP1")
    cp2 = await charging(chargers, "CP2")
    meter(hass, 2300)
    await cycle(hass, entry)
    await wait_for(lambda: cp1.connectors[1].limit_a == 14 and cp2.connectors[1].limit_a == 14, timeout=10)
    assert state_of(hass, "select.cp1_charging_mode") == "now"
    assert state_of(hass, "sensor.cp1_limit_reason") == "site_limit"

    # Off: CP1 stops (0 A), CP2 gets the site.
    await select(hass, "select.cp1_charging_mode", "off")
    await wait_for(lambda: cp1.connectors[1].limit_a == 0 and cp2.connectors[1].limit_a == 28, timeout=10)
    assert state_of(hass, "sensor.cp1_limit_reason") == "mode_off"
    assert strategy_of(hass, "sensor.cp1_limit_reason") == "mode_off"

    # PV only, while the site imports: no surplus, CP1 waits.
    await select(hass, "select.cp1_charging_mode", "pv")
    assert strategy_of(hass, "sensor.cp1_limit_reason") == "pv_waiting_surplus"
    assert cp1.connectors[1].limit_a == 0
    # The sun comes out: 9 kW exported (CP2 is not drawing in this test) -> CP1 follows the surplus.
    meter(hass, -9000)
    await cycle(hass, entry)
    await wait_for(lambda: (cp1.connectors[1].limit_a or 0) >= 6, timeout=10)
    assert strategy_of(hass, "sensor.cp1_limit_reason") in ("pv_surplus", "pv_minimum")
    assert float(state_of(hass, "sensor.test_site_pv_surplus")) > 6.0  # kW
    # The mode survives a restart.
    assert entry.runtime_data.charge_modes == {"CP1/1": "pv"}
    await hass.config_entries.async_unload(entry.entry_id)


async def test_a_zni_signal_at_0_halves_every_charger_within_one_cycle(
    hass: HomeAssistant,
    ws_port: int,
    chargers: ChargerFactory,
) -> None:
    hass.states.async_set(SIGNAL, "on")
    entry = await start_site(hass, ws_port, zni_enabled=True, zni_entity=SIGNAL, subscribed_power_kw=36.0)
    energy(entry).update_interval = None  # no periodic cycle: the signal's change must trigger one
    cp1 = await charging(chargers, "CP1")
    meter(hass, 0)
    await cycle(hass, entry)
    await wait_for(lambda: cp1.connectors[1].limit_a == 32, timeout=10)
    assert state_of(hass, "binary_sensor.test_site_zni_grid_constraint") == "off"
    assert state_of(hass, "sensor.test_site_zni_power_cap") == "unknown"

    # EDF-SEI sends 0: the state change itself triggers the cycle (no manual refresh here).
    hass.states.async_set(SIGNAL, "off")
    await wait_for(lambda: cp1.connectors[1].limit_a == 16, timeout=10)
    profile = next(p for a, p in reversed(cp1.received) if a == "SetChargingProfile")["csChargingProfiles"]
    assert profile["charging_profile_purpose"] == "TxProfile"
    await hass.async_block_till_done()
    assert state_of(hass, "binary_sensor.test_site_zni_grid_constraint") == "on"
    assert float(state_of(hass, "sensor.test_site_zni_power_cap")) == pytest.approx(16 * 3 * VOLTS / 1000, abs=0.05)
    assert strategy_of(hass, "sensor.cp1_limit_reason") == "zni_cap"
    # Every change is evidence (Advenir): the signal received, the one applied, the caps.
    evidence = entry.runtime_data.zni_evidence
    assert evidence
    assert evidence[-1]["applied"] == 0
    diagnostics = await async_get_config_entry_diagnostics(hass, entry)
    assert diagnostics["zni_evidence"] == evidence

    # Back to 1: full power again.
    hass.states.async_set(SIGNAL, "on")
    await wait_for(lambda: cp1.connectors[1].limit_a == 32, timeout=10)
    # The signal cannot be read: the safe default (0) applies and a repair issue says so.
    hass.states.async_set(SIGNAL, "unavailable")
    await wait_for(lambda: cp1.connectors[1].limit_a == 16, timeout=10)
    issue = ir.async_get(hass).async_get_issue(DOMAIN, f"zni_unavailable_{entry.entry_id}")
    assert issue is not None
    hass.states.async_set(SIGNAL, "on")
    await wait_for(lambda: cp1.connectors[1].limit_a == 32, timeout=10)
    assert ir.async_get(hass).async_get_issue(DOMAIN, f"zni_unavailable_{entry.entry_id}") is None
    await hass.config_entries.async_unload(entry.entry_id)


async def test_the_zni_cap_applies_even_with_the_energy_manager_off(
    hass: HomeAssistant,
    ws_port: int,
    chargers: ChargerFactory,
) -> None:
    hass.states.async_set(SIGNAL, "1")
    entry = await start_site(hass, ws_port, EmsMode.OFF, zni_enabled=True, zni_entity=SIGNAL, zni_fraction=25)
    cp1 = await charging(chargers, "CP1")
    await cycle(hass, entry)
    assert cp1.connectors[1].limit_a is None  # unmanaged
    hass.states.async_set(SIGNAL, "0")
    await wait_for(lambda: cp1.connectors[1].limit_a == 8, timeout=10)  # 25 % of 32 A
    hass.states.async_set(SIGNAL, "1")
    await wait_for(lambda: cp1.connectors[1].limit_a is None, timeout=10)  # unmanaged again
    await hass.config_entries.async_unload(entry.entry_id)


async def test_an_off_peak_policy_waits_for_off_peak_hours(
    hass: HomeAssistant,
    ws_port: int,
    chargers: ChargerFactory,
) -> None:
    hass.states.async_set("binary_sensor.off_peak", "off")
    entry = await start_site(hass, ws_port, offpeak_entity="binary_sensor.off_peak")
    cp1 = await charging(chargers, "CP1")
    meter(hass, 0)
    await cycle(hass, entry)
    await wait_for(lambda: cp1.connectors[1].limit_a == 31, timeout=10)  # 22 kW: 31.9 A
    await select(hass, "select.cp1_tariff_policy", "offpeak")
    await wait_for(lambda: cp1.connectors[1].limit_a == 0, timeout=10)
    assert strategy_of(hass, "sensor.cp1_limit_reason") == "offpeak_wait"
    hass.states.async_set("binary_sensor.off_peak", "on")
    await cycle(hass, entry)
    await wait_for(lambda: cp1.connectors[1].limit_a == 31, timeout=10)
    await hass.config_entries.async_unload(entry.entry_id)


async def test_a_badge_excluded_from_pv_charges_at_once_and_a_guaranteed_minimum_holds(
    hass: HomeAssistant,
    ws_port: int,
    chargers: ChargerFactory,
) -> None:
    entry = await start_site(hass, ws_port)
    entry.runtime_data.badges.upsert(Badge("DOCTOR", "On call", pv_excluded=True))
    entry.runtime_data.badges.upsert(Badge("NURSE", "Shift", guaranteed_min_a=10))
    await energy(entry).async_set_charge_mode("CP1/1", ChargeMode.PV)
    await energy(entry).async_set_charge_mode("CP2/1", ChargeMode.PV)
    meter(hass, 2300)  # the site imports: no PV surplus at all
    cp1 = await chargers("CP1")
    await cp1.status(1, "Charging")
    await cp1.start_transaction(1, "DOCTOR")
    cp2 = await chargers("CP2")
    await cp2.status(1, "Charging")
    await cp2.start_transaction(1, "NURSE")
    await cycle(hass, entry)
    # The doctor's car does not wait for the sun; the nurse's gets at least its guaranteed 10 A.
    await wait_for(lambda: (cp1.connectors[1].limit_a or 0) > 0, timeout=10)
    await wait_for(lambda: (cp2.connectors[1].limit_a or 0) >= 10, timeout=10)
    assert strategy_of(hass, "sensor.cp1_limit_reason") == "pv_excluded"
    assert strategy_of(hass, "sensor.cp2_limit_reason") == "badge_minimum"
    await hass.config_entries.async_unload(entry.entry_id)


async def test_a_charger_that_switches_phases_charges_a_small_surplus_on_one_phase(
    hass: HomeAssistant,
    ws_port: int,
    chargers: ChargerFactory,
) -> None:
    entry = await start_site(
        hass, ws_port, cp1={"phase_switching": True}, pv={"phase_switch_interval_s": 0, "guard_s": 0}
    )
    cp1 = await charging(chargers, "CP1")
    cp2 = await charging(chargers, "CP2")
    await select(hass, "select.cp1_charging_mode", "pv")
    await select(hass, "select.cp2_charging_mode", "pv")
    # 2.5 kW exported: 6 A fits on one phase (1.4 kW), not on three (4.1 kW).
    meter(hass, -2500)
    await cycle(hass, entry)
    await cycle(hass, entry)  # the switch to one phase first, then the start on it
    cp1_model = entry.runtime_data.coordinators["CP1"].charger.connector(1)
    # The simulator applies a profile before it answers; the central system records it on the answer.
    await wait_for(
        lambda: (
            cp1.connectors[1].number_phases == 1
            and (cp1.connectors[1].limit_a or 0) >= 6
            and cp1_model.limit_phases == 1
        ),
        timeout=10,
    )
    period = [p for a, p in cp1.received if a == "SetChargingProfile"][-1]["csChargingProfiles"]
    assert period["charging_schedule"]["charging_schedule_period"][0]["number_phases"] == 1
    assert cp1.connectors[1].active_phases == 1
    # CP2 cannot switch: it waits (no numberPhases in its profiles, ever).
    await wait_for(lambda: cp2.connectors[1].limit_a == 0, timeout=10)
    assert all(
        "number_phases" not in p["csChargingProfiles"]["charging_schedule"]["charging_schedule_period"][0]
        for a, p in cp2.received
        if a == "SetChargingProfile"
    )
    # The sun comes out: 12 kW exported for CP1 alone -> it goes back to three phases.
    await select(hass, "select.cp2_charging_mode", "off")
    meter(hass, -12000)
    await cycle(hass, entry)
    await cycle(hass, entry)
    await wait_for(lambda: cp1.connectors[1].number_phases == 3, timeout=10)
    assert (cp1.connectors[1].limit_a or 0) >= 6
    await hass.config_entries.async_unload(entry.entry_id)


async def test_a_full_car_in_pv_mode_keeps_no_surplus_from_the_next_one(
    hass: HomeAssistant,
    ws_port: int,
    chargers: ChargerFactory,
) -> None:
    entry = await start_site(hass, ws_port, pv={"guard_s": 0})
    meter(hass, -5000)  # room for one car's minimum (4.1 kW), not two
    cp1 = await charging(chargers, "CP1")
    await select(hass, "select.cp1_charging_mode", "pv")
    await cycle(hass, entry)
    await wait_for(lambda: strategy_of(hass, "sensor.cp1_limit_reason") == "pv_surplus", timeout=10)
    cp2 = await charging(chargers, "CP2")
    await select(hass, "select.cp2_charging_mode", "pv")
    await cycle(hass, entry)
    assert strategy_of(hass, "sensor.cp2_limit_reason") == "pv_waiting_surplus"

    # CP1's car is full: it says SuspendedEV and takes nothing; CP2 gets the surplus, CP1 keeps 6 A.
    await cp1.status(1, "SuspendedEV")
    await cycle(hass, entry)
    # Both profiles go out in the same cycle, in no set order: wait for each charger's own.
    await wait_for(lambda: (cp2.connectors[1].limit_a or 0) >= 6 and cp1.connectors[1].limit_a == 6, timeout=10)
    assert strategy_of(hass, "sensor.cp1_limit_reason") == "pv_car_idle"
    await hass.config_entries.async_unload(entry.entry_id)


async def test_without_a_grid_meter_pv_modes_follow_the_inverter_then_the_forecast(
    hass: HomeAssistant,
    ws_port: int,
    chargers: ChargerFactory,
) -> None:
    """Seed 004 A.8: no inverter data -> the forecast; no PV data at all -> the standard sharing."""
    hass.states.async_set("sensor.inverter", "7000", {"unit_of_measurement": "W", "device_class": "power"})
    now = dt_util.utcnow().timestamp()
    forecast = [
        {"period_start": dt_util.utc_from_timestamp(now - 600 + 1800 * k).isoformat(), "pv_estimate": 3.0}
        for k in range(4)
    ]
    hass.states.async_set("sensor.solcast_today", "10", {"detailedForecast": forecast})
    entry = await start_site(
        hass,
        ws_port,
        grid_meter=False,
        pv={"guard_s": 0},
        meter_fallback_w=1000,  # the building's assumed load
        pv_power_entity="sensor.inverter",
        pv_forecast_entity="sensor.solcast_today",
    )
    cp1 = await charging(chargers, "CP1")
    await select(hass, "select.cp1_charging_mode", "pv")
    # The inverter: 7 kW - 1 kW of building = 6 kW for the car (8 A on three phases).
    await cycle(hass, entry)
    await wait_for(lambda: cp1.connectors[1].limit_a == 8, timeout=10)
    surplus = hass.states.get("sensor.test_site_pv_surplus")
    assert surplus is not None
    assert float(surplus.state) == pytest.approx(6.0)
    assert surplus.attributes["source"] == "inverter"

    # The inverter goes silent: the forecast's 3 kW now, 2 kW for the car, too little for 6 A on three phases.
    hass.states.async_set("sensor.inverter", "unavailable")
    await cycle(hass, entry)
    await cycle(hass, entry)
    await wait_for(lambda: cp1.connectors[1].limit_a == 0, timeout=10)
    assert strategy_of(hass, "sensor.cp1_limit_reason") == "pv_waiting_surplus"
    assert hass.states.get("sensor.test_site_pv_surplus").attributes["source"] == "forecast"  # type: ignore[union-attr]

    # No PV data at all: the standard sharing, and a repair issue says why.
    hass.states.async_set("sensor.solcast_today", "unavailable")
    await cycle(hass, entry)
    await wait_for(lambda: (cp1.connectors[1].limit_a or 0) > 8, timeout=10)
    assert strategy_of(hass, "sensor.cp1_limit_reason") == "pv_data_lost"
    assert ir.async_get(hass).async_get_issue(DOMAIN, f"pv_data_lost_{entry.entry_id}") is not None
    await hass.config_entries.async_unload(entry.entry_id)
