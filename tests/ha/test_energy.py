"""The energy manager in a real Home Assistant: a grid meter sensor, real OCPP chargers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from ocpp.exceptions import NotSupportedError
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.cariflex.const import DOMAIN
from custom_components.cariflex.diagnostics import async_get_config_entry_diagnostics
from custom_components.cariflex.energy import EmsMode, EnergyCoordinator, read_power_w
from simulator.charger16 import SimCharger16
from tests.conftest import ChargerFactory, site_entry, state_of, wait_for

METER = "sensor.grid_power"
VOLTS = 230.0


@pytest.fixture
async def ems_site(hass: HomeAssistant, socket_enabled: None, ws_port: int) -> AsyncIterator[MockConfigEntry]:
    """A 3-phase site, 32 A main breaker, 22 kW subscribed, a grid meter, two chargers."""
    hass.states.async_set(METER, "0", {"unit_of_measurement": "W", "device_class": "power"})
    entry = site_entry(
        ws_port,
        chargers={"CP1": {}, "CP2": {}},
        options={
            "subscribed_power_kw": 22.0,
            "main_breaker_a": 32.0,
            "grid_power_entity": METER,
            "meter_fallback_w": 6900.0,
            "ems_strategy": "equal",
        },
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await hass.services.async_call(
        "select", "select_option", {"entity_id": "select.test_site_energy_manager", "option": "on"}, blocking=True
    )
    yield entry
    if hass.config_entries.async_get_entry(entry.entry_id) is not None:  # not deleted by the test
        await hass.config_entries.async_unload(entry.entry_id)


def energy(entry: MockConfigEntry) -> EnergyCoordinator:
    coordinator: EnergyCoordinator | None = entry.runtime_data.energy
    assert coordinator is not None
    return coordinator


async def charging(chargers: ChargerFactory, charger_id: str) -> SimCharger16:
    cp = await chargers(charger_id)
    await cp.status(1, "Charging")
    await cp.start_transaction(1, f"TAG-{charger_id}")
    return cp


async def draw(cp: SimCharger16, amps: float) -> None:
    """The car draws ``amps`` on each of three phases and the charger reports it."""
    cp.connectors[1].power_w = amps * VOLTS * 3
    await cp.meter_values(1, 10)


def meter(hass: HomeAssistant, base_w: float, *cars_a: float) -> None:
    """The grid meter: the building's load plus what the cars draw."""
    total = base_w + sum(amps * VOLTS * 3 for amps in cars_a)
    hass.states.async_set(METER, str(total), {"unit_of_measurement": "W", "device_class": "power"})


async def cycle(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    await energy(entry).async_refresh()
    await hass.async_block_till_done()


async def test_site_limit_shared_and_followed_within_one_cycle(
    hass: HomeAssistant, ems_site: MockConfigEntry, chargers: ChargerFactory
) -> None:
    cp1 = await charging(chargers, "CP1")
    cp2 = await charging(chargers, "CP2")
    meter(hass, 2300)  # 3.3 A per phase of other load
    await cycle(hass, ems_site)
    # 32 A - 3.3 A = 28.7 A per phase for two cars: 14 A each (whole amps).
    await wait_for(lambda: cp1.connectors[1].limit_a == 14 and cp2.connectors[1].limit_a == 14)
    profile = next(p for a, p in reversed(cp1.received) if a == "SetChargingProfile")["csChargingProfiles"]
    assert profile["charging_profile_purpose"] == "TxProfile"  # steering a session, never the station maximum
    assert state_of(hass, "sensor.cp1_allocated_current") == "14.0"
    assert state_of(hass, "sensor.test_site_energy_manager_status") == "limited"

    # The cars follow; then the building's load jumps by 8.3 kW.
    await draw(cp1, 14)
    await draw(cp2, 14)
    meter(hass, 11500, 14, 14)  # 16.7 A per phase of other load
    await cycle(hass, ems_site)
    # 32 - 16.7 = 15.3 A per phase left: 15 A in whole amps (8 + 7), in the very next cycle.
    await wait_for(lambda: {cp1.connectors[1].limit_a, cp2.connectors[1].limit_a} == {7, 8})
    allocated = float(state_of(hass, "sensor.test_site_power_allocated_to_charging"))
    assert allocated == pytest.approx(15 * VOLTS * 3 / 1000, abs=0.1)  # kW

    # A charger that stops frees its share for the other one.
    first = cp1.connectors[1].limit_a or 0
    await draw(cp1, first)
    await draw(cp2, 15 - first)
    await cp2.stop_transaction(1)
    await cp2.status(1, "Available")
    meter(hass, 11500, first)
    await cycle(hass, ems_site)
    await wait_for(lambda: cp1.connectors[1].limit_a == 15)
    assert state_of(hass, "sensor.cp2_allocated_current") == "unknown"


async def test_local_production_seen_by_the_meter_is_shared_on_top_of_the_limit(
    hass: HomeAssistant, ems_site: MockConfigEntry, chargers: ChargerFactory
) -> None:
    """Seed 004 §4.10: available = limit - consumption + production (PV behind the grid meter)."""
    cp1 = await charging(chargers, "CP1")
    cp2 = await charging(chargers, "CP2")
    # The building uses 2.3 kW, the PV produces 9.2 kW: the meter reads an export of 6.9 kW.
    meter(hass, 2300 - 9200)
    await cycle(hass, ems_site)
    # Per phase 32 A + 10 A of net production = 42 A; in power 22 kW + 6.9 kW = 41.9 A: 41 A in whole amps.
    await wait_for(lambda: {cp1.connectors[1].limit_a, cp2.connectors[1].limit_a} == {20, 21}, timeout=10)
    assert float(state_of(hass, "sensor.test_site_power_available_for_charging")) == pytest.approx(28.9)
    # Without production the same load leaves 28.7 A (14 + 14): the sun gives the difference.
    await draw(cp1, 21)
    await draw(cp2, 21)
    meter(hass, 2300, 21, 21)
    await cycle(hass, ems_site)
    await wait_for(lambda: cp1.connectors[1].limit_a == 14 and cp2.connectors[1].limit_a == 14)


async def test_meter_lost_uses_fallback_and_raises_a_repair(
    hass: HomeAssistant, ems_site: MockConfigEntry, chargers: ChargerFactory
) -> None:
    cp1 = await charging(chargers, "CP1")
    meter(hass, 0)
    await cycle(hass, ems_site)
    # 32 A breaker, but 22 kW subscribed = 31.9 A per phase: 31 A.
    await wait_for(lambda: cp1.connectors[1].limit_a == 31)
    issue_id = f"meter_unavailable_{ems_site.entry_id}"

    hass.states.async_set(METER, "unavailable", {"unit_of_measurement": "W"})
    await cycle(hass, ems_site)
    # Fallback 6900 W assumed: 22 kW - 6.9 kW = 15.1 kW left, 21.9 A per phase: 21 A.
    await wait_for(lambda: cp1.connectors[1].limit_a == 21)
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is not None
    assert state_of(hass, "sensor.test_site_energy_manager_status") == "fallback"

    await draw(cp1, 21)
    meter(hass, 0, 21)
    await cycle(hass, ems_site)
    await wait_for(lambda: cp1.connectors[1].limit_a == 31)
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is None


async def test_a_repair_issue_from_before_a_restart_is_cleared_once_its_cause_is_gone(
    hass: HomeAssistant, ems_site: MockConfigEntry
) -> None:
    issue_id = f"meter_unavailable_{ems_site.entry_id}"
    hass.states.async_set(METER, "unavailable", {"unit_of_measurement": "W"})
    await cycle(hass, ems_site)
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is not None
    meter(hass, 0)  # the meter comes back while Home Assistant restarts
    assert await hass.config_entries.async_reload(ems_site.entry_id)
    await hass.async_block_till_done()
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is not None  # kept over the restart
    await cycle(hass, ems_site)
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is None

    # Deleting the site deletes its issues, and only its own.
    hass.states.async_set(METER, "unavailable", {"unit_of_measurement": "W"})
    await cycle(hass, ems_site)
    ir.async_create_issue(
        hass,
        DOMAIN,
        "meter_unavailable_other-site",
        is_fixable=False,
        severity=ir.IssueSeverity.WARNING,
        translation_key="meter_unavailable",
    )
    assert await hass.config_entries.async_remove(ems_site.entry_id)
    await hass.async_block_till_done()
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is None
    assert ir.async_get(hass).async_get_issue(DOMAIN, "meter_unavailable_other-site") is not None


async def test_turning_the_manager_off_releases_the_chargers(
    hass: HomeAssistant, ems_site: MockConfigEntry, chargers: ChargerFactory
) -> None:
    cp1 = await charging(chargers, "CP1")
    meter(hass, 20700)  # 30 A per phase of other load: only 2 A left, below the 6 A minimum
    await cycle(hass, ems_site)
    await wait_for(lambda: cp1.connectors[1].limit_a == 0)  # paused, not starved at 2 A
    assert state_of(hass, "sensor.cp1_allocated_current") == "0.0"
    await hass.services.async_call(
        "select", "select_option", {"entity_id": "select.test_site_energy_manager", "option": "off"}, blocking=True
    )
    await wait_for(lambda: cp1.connectors[1].limit_a is None)  # our profiles cleared
    assert any(action == "ClearChargingProfile" for action, _ in cp1.received)
    assert energy(ems_site).mode is EmsMode.OFF
    assert state_of(hass, "sensor.test_site_energy_manager_status") == "off"
    # The mode survives a restart.
    assert await hass.config_entries.async_reload(ems_site.entry_id)
    await hass.async_block_till_done()
    assert state_of(hass, "select.test_site_energy_manager") == "off"


async def test_charger_that_refuses_setpoints_is_retried_less_and_less_often_and_reported(
    hass: HomeAssistant, ems_site: MockConfigEntry, chargers: ChargerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    coordinator = energy(ems_site)
    clock = [1000.0]
    coordinator._clock = lambda: clock[0]  # the retry times, without waiting for them
    cp1 = await chargers("CP1")
    cp1.responses["SetChargingProfile"] = "Rejected"  # from the session's first setpoint on
    await cp1.status(1, "Charging")
    await cp1.start_transaction(1, "TAG-CP1")
    meter(hass, 2300)

    def sent() -> int:
        return sum(action == "SetChargingProfile" for action, _ in cp1.received)

    async def refused(count: int) -> None:
        # The central system heard the refusal (each setpoint is sent from a task of its own).
        def heard() -> bool:
            refusal = coordinator._refused.get("CP1/1")
            return sent() == count and refusal is not None and refusal.count == count

        await wait_for(heard)

    await cycle(hass, ems_site)
    await refused(1)
    assert cp1.connectors[1].limit_a is None
    # Cycle after cycle within the 10 s: nothing more goes to the charger.
    for _ in range(3):
        await cycle(hass, ems_site)
    assert sent() == 1
    # Then 10 s, 20 s: the second and third tries; the third raises a repair issue.
    for wait, count in ((10.0, 2), (20.0, 3)):
        clock[0] += wait - 0.5
        await cycle(hass, ems_site)
        assert sent() == count - 1  # not yet
        clock[0] += 0.5
        await cycle(hass, ems_site)
        await refused(count)
    issue = ir.async_get(hass).async_get_issue(DOMAIN, f"setpoint_refused_{ems_site.entry_id}_CP1")
    assert issue is not None
    assert issue.translation_placeholders == {"charger": "CP1", "answer": "Rejected", "count": "3"}
    diagnostics = await async_get_config_entry_diagnostics(hass, ems_site)
    assert diagnostics["signals"]["setpoint_refusals"] == {
        "CP1/1": {"count": 3, "answer": "Rejected", "retry_in_s": 40.0}
    }
    # One warning for the first refusal, one when the issue is raised: the log is not flooded.
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and "CP1" in r.getMessage()]
    assert len(warnings) == 2, warnings
    assert "trying again in 10 s" in warnings[0]

    # The charger accepts again (its smart charging was switched on): at the next try, 40 s on.
    del cp1.responses["SetChargingProfile"]
    clock[0] += 40.0
    await cycle(hass, ems_site)
    await wait_for(lambda: cp1.connectors[1].limit_a == 28)  # 32 - 3.3 A of other load
    await wait_for(lambda: "CP1/1" not in coordinator._refused)
    assert ir.async_get(hass).async_get_issue(DOMAIN, f"setpoint_refused_{ems_site.entry_id}_CP1") is None


async def test_a_refusal_issue_from_before_a_restart_clears_at_the_first_accepted_limit(
    hass: HomeAssistant, ems_site: MockConfigEntry, chargers: ChargerFactory
) -> None:
    issue_id = f"setpoint_refused_{ems_site.entry_id}_CP1"
    ir.async_create_issue(
        hass, DOMAIN, issue_id, is_fixable=False, severity=ir.IssueSeverity.WARNING, translation_key="setpoint_refused"
    )
    cp1 = await charging(chargers, "CP1")
    meter(hass, 2300)
    await cycle(hass, ems_site)
    await wait_for(lambda: cp1.connectors[1].limit_a == 28)
    await wait_for(lambda: ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is None)


async def test_a_charger_that_drops_a_setpoint_call_is_retried(
    hass: HomeAssistant, ems_site: MockConfigEntry, chargers: ChargerFactory
) -> None:
    coordinator = energy(ems_site)
    clock = [1000.0]
    coordinator._clock = lambda: clock[0]
    cp1 = await chargers("CP1")
    cp1.responses["SetChargingProfile"] = NotSupportedError("no smart charging on this one")
    await cp1.status(1, "Charging")
    await cp1.start_transaction(1, "TAG-CP1")
    meter(hass, 2300)
    await cycle(hass, ems_site)
    await wait_for(lambda: "CP1/1" in coordinator._refused)
    assert coordinator._refused["CP1/1"].answer == "NotSupported"
    del cp1.responses["SetChargingProfile"]
    clock[0] += 10.0
    await cycle(hass, ems_site)
    await wait_for(lambda: cp1.connectors[1].limit_a == 28)


def test_power_readings() -> None:
    from homeassistant.core import State

    assert read_power_w(State("sensor.p", "1.5", {"unit_of_measurement": "kW"})) == 1500
    assert read_power_w(State("sensor.p", "700", {"unit_of_measurement": "W"})) == 700
    assert read_power_w(State("sensor.p", "unknown")) is None
    assert read_power_w(State("sensor.p", "abc")) is None
    assert read_power_w(None) is None


async def test_decreases_reach_the_chargers_before_increases(
    hass: HomeAssistant, ems_site: MockConfigEntry, chargers: ChargerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second car arrives: the first one is slowed down before the newcomer gets its share."""
    from custom_components.cariflex import energy as energy_module

    monkeypatch.setattr(energy_module, "RAMP_DELAY_S", 0.3)
    loop = asyncio.get_running_loop()
    seen: list[tuple[float, str, float]] = []

    def recorder(name: str) -> Callable[[str, dict[str, Any]], None]:
        def record(action: str, payload: dict[str, Any]) -> None:
            if action == "SetChargingProfile":
                period = payload["csChargingProfiles"]["charging_schedule"]["charging_schedule_period"][0]
                seen.append((loop.time(), name, float(period["limit"])))

        return record

    meter(hass, 2300)
    cp1 = await charging(chargers, "CP1")
    cp1.on_received = recorder("CP1")
    await cycle(hass, ems_site)
    await wait_for(lambda: cp1.connectors[1].limit_a == 28)
    await draw(cp1, 28)
    meter(hass, 2300, 28)
    cp2 = await chargers("CP2")
    cp2.on_received = recorder("CP2")
    await cp2.status(1, "Charging")
    await cp2.start_transaction(1, "TAG-CP2")  # the start triggers a cycle at once
    await wait_for(lambda: cp1.connectors[1].limit_a == 14 and cp2.connectors[1].limit_a == 14)
    down = next(t for t, name, limit in seen if name == "CP1" and limit == 14)
    up = next(t for t, name, _limit in seen if name == "CP2")
    assert up - down >= 0.25  # the newcomer waited for the ramp


async def test_a_charger_that_drops_off_while_charging_is_still_counted_for_a_while(
    hass: HomeAssistant, socket_enabled: None, ws_port: int, chargers: ChargerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No meter: a charger gone offline mid-session keeps its share reserved (fail closed), then frees it."""
    entry = site_entry(ws_port, chargers={"CP1": {}, "CP2": {}}, options={"main_breaker_a": 40.0})
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await hass.services.async_call(
        "select", "select_option", {"entity_id": "select.test_site_energy_manager", "option": "on"}, blocking=True
    )
    from custom_components.cariflex import energy as energy_module

    monkeypatch.setattr(energy_module, "OFFLINE_GRACE_S", 3.0)
    cp1 = await charging(chargers, "CP1")
    cp2 = await charging(chargers, "CP2")
    await cycle(hass, entry)
    await wait_for(lambda: cp1.connectors[1].limit_a == 20 and cp2.connectors[1].limit_a == 20)
    # The central system knows CP2's 20 A once the charger's answer is in (the simulator applies it before).
    await wait_for(lambda: entry.runtime_data.coordinators["CP2"].charger.connector(1).current_limit_a == 20)
    await chargers.disconnect(cp2)
    await wait_for(lambda: not entry.runtime_data.coordinators["CP2"].charger.connected)
    await cycle(hass, entry)
    await asyncio.sleep(0.2)
    assert cp1.connectors[1].limit_a == 20  # CP2's 20 A may still flow
    await asyncio.sleep(3.0)  # the grace period is over
    await cycle(hass, entry)
    await wait_for(lambda: cp1.connectors[1].limit_a == 32)  # its own maximum now
    await hass.config_entries.async_unload(entry.entry_id)


async def test_a_meter_that_stops_reporting_is_stale_after_a_minute(
    hass: HomeAssistant, ems_site: MockConfigEntry, chargers: ChargerFactory
) -> None:
    import time

    cp1 = await charging(chargers, "CP1")
    meter(hass, 2300)
    await cycle(hass, ems_site)
    await wait_for(lambda: cp1.connectors[1].limit_a == 28)
    # The sensor keeps its value, but its last report is 61 s old.
    hass.states.async_set(
        METER, "2300", {"unit_of_measurement": "W", "device_class": "power"}, timestamp=time.time() - 61
    )
    await cycle(hass, ems_site)
    await wait_for(lambda: cp1.connectors[1].limit_a == 21)  # fallback 6.9 kW
    assert state_of(hass, "sensor.test_site_energy_manager_status") == "fallback"
    assert ir.async_get(hass).async_get_issue(DOMAIN, f"meter_unavailable_{ems_site.entry_id}") is not None


async def inputs_site(hass: HomeAssistant, ws_port: int, **options: Any) -> MockConfigEntry:
    """A 3-phase site (32 A breaker, 22 kW) with two chargers, the given EMS options, the EMS on."""
    entry = site_entry(
        ws_port,
        chargers={"CP1": {}, "CP2": {}},
        options={"subscribed_power_kw": 22.0, "main_breaker_a": 32.0, **options},
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await energy(entry).async_set_mode(EmsMode.ON)
    return entry


def power(hass: HomeAssistant, entity_id: str, watts: float) -> None:
    hass.states.async_set(entity_id, str(watts), {"unit_of_measurement": "W", "device_class": "power"})


async def test_home_battery_is_not_drained_by_the_cars_and_the_generator_limits_the_site(
    hass: HomeAssistant, socket_enabled: None, ws_port: int, chargers: ChargerFactory
) -> None:
    power(hass, METER, 2300)
    power(hass, "sensor.battery_power", 2300)  # discharging into the house
    hass.states.async_set("sensor.battery_soc", "64", {"unit_of_measurement": "%", "device_class": "battery"})
    hass.states.async_set("binary_sensor.genset", "off")
    entry = await inputs_site(
        hass,
        ws_port,
        grid_power_entity=METER,
        battery_power_entity="sensor.battery_power",
        battery_soc_entity="sensor.battery_soc",
        genset_entity="binary_sensor.genset",
        genset_power_kw=9.0,
    )
    cp1 = await charging(chargers, "CP1")
    cp2 = await charging(chargers, "CP2")
    await cycle(hass, entry)
    # The battery's 2.3 kW count as load: 22 kW - 4.6 kW = 25 A for the cars (not 28 A).
    await wait_for(lambda: (cp1.connectors[1].limit_a or 0) + (cp2.connectors[1].limit_a or 0) == 25, timeout=10)
    inputs = energy(entry).data.inputs
    assert (inputs.battery_w, inputs.battery_soc, inputs.genset_running) == (2300, 64, False)

    # The grid fails, the generator starts: 9 kW for everything. 13 A per phase - 6.7 A of load:
    # room for one car at its 6 A minimum; the other waits at 0 A rather than both starving.
    hass.states.async_set("binary_sensor.genset", "on")
    await cycle(hass, entry)
    await wait_for(lambda: sorted([cp1.connectors[1].limit_a or 0, cp2.connectors[1].limit_a or 0]) == [0, 6])
    assert energy(entry).data.inputs.genset_running
    await hass.config_entries.async_unload(entry.entry_id)


async def test_without_a_grid_meter_measured_pv_and_an_allowed_battery_add_to_the_limit(
    hass: HomeAssistant, socket_enabled: None, ws_port: int, chargers: ChargerFactory
) -> None:
    power(hass, "sensor.pv_power", 6900)
    power(hass, "sensor.battery_power", 0)
    entry = await inputs_site(
        hass,
        ws_port,
        meter_fallback_w=2300.0,
        pv_power_entity="sensor.pv_power",
        battery_power_entity="sensor.battery_power",
        battery_for_ev=True,
    )
    cp1 = await charging(chargers, "CP1")
    cp2 = await charging(chargers, "CP2")
    await cycle(hass, entry)
    # 22 kW - 2.3 kW of estimated load + 6.9 kW of PV = 38 A for the cars.
    await wait_for(lambda: cp1.connectors[1].limit_a == 19 and cp2.connectors[1].limit_a == 19, timeout=10)
    power(hass, "sensor.pv_power", 0)
    power(hass, "sensor.battery_power", 2300)  # the sun sets; the battery may feed the cars
    await cycle(hass, entry)
    await wait_for(lambda: (cp1.connectors[1].limit_a or 0) + (cp2.connectors[1].limit_a or 0) == 31, timeout=10)
    power(hass, "sensor.battery_power", 0)
    await cycle(hass, entry)
    await wait_for(lambda: cp1.connectors[1].limit_a == 14 and cp2.connectors[1].limit_a == 14, timeout=10)
    await hass.config_entries.async_unload(entry.entry_id)


async def test_a_jump_of_the_grid_meter_starts_a_cycle_at_once(
    hass: HomeAssistant, ems_site: MockConfigEntry, chargers: ChargerFactory
) -> None:
    cp1 = await charging(chargers, "CP1")
    meter(hass, 2300)
    await cycle(hass, ems_site)
    await wait_for(lambda: cp1.connectors[1].limit_a == 28)
    energy(ems_site).update_interval = None  # no periodic cycle: only the meter's jump may start one
    await draw(cp1, 28)
    meter(hass, 2400, 28)  # +100 W: no cycle
    await hass.async_block_till_done()
    assert cp1.connectors[1].limit_a == 28
    meter(hass, 11500, 28)  # an oven and a heat pump: +9.2 kW -> a cycle now, without waiting 5 s
    await wait_for(lambda: cp1.connectors[1].limit_a == 15)
