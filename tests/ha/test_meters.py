"""A Modbus grid meter (a real pymodbus server) drives the energy manager of a real Home Assistant."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import issue_registry as ir
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.cariflex.const import DOMAIN, SUBENTRY_METER
from custom_components.cariflex.energy import EnergyCoordinator
from custom_components.cariflex.modbus import Quantity, load_profile
from custom_components.cariflex.modbus.simulator import ProfileSimulator
from tests.conftest import ChargerFactory, site_entry, state_of, wait_for

VOLTS = 230.0


def grid_power(sim: ProfileSimulator, base_w: float, *cars_a: float) -> None:
    """The SDM630 at the grid connection: building load plus the cars, split over 3 phases."""
    total = base_w + sum(amps * VOLTS * 3 for amps in cars_a)
    sim.set(Quantity.POWER_W, total)
    for phase in ("l1", "l2", "l3"):
        sim.set(Quantity(f"power_w_{phase}"), total / 3)
        sim.set(Quantity(f"current_a_{phase}"), total / 3 / VOLTS)
        sim.set(Quantity(f"voltage_v_{phase}"), VOLTS)


@pytest.fixture
async def sdm630(socket_enabled: None) -> AsyncIterator[ProfileSimulator]:
    sim = ProfileSimulator(load_profile("eastron_sdm630"), {Quantity.ENERGY_IMPORT_WH: 1_234_000}, unit_id=1)
    grid_power(sim, 0)
    await sim.start()
    yield sim
    await sim.stop()


@pytest.fixture
async def modbus_site(hass: HomeAssistant, sdm630: ProfileSimulator, ws_port: int) -> AsyncIterator[MockConfigEntry]:
    """A site whose grid meter is an SDM630 on Modbus TCP; 32 A breaker, 22 kW; two chargers."""
    entry = site_entry(
        ws_port,
        chargers={"CP1": {}, "CP2": {}},
        options={"subscribed_power_kw": 22.0, "main_breaker_a": 32.0, "meter_fallback_w": 6900.0},
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    # The installer adds the meter: the flow reads it once before accepting it.
    result = await meter_flow(hass, entry, "tcp")
    assert result["type"] is FlowResultType.FORM
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"],
        {
            "name": "Grid meter",
            "profile": "eastron_sdm630",
            "host": "127.0.0.1",
            "port": sdm630.port,
            "unit_id": 1,
            "role": "grid",
        },
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    await hass.services.async_call(
        "select", "select_option", {"entity_id": "select.test_site_energy_manager", "option": "on"}, blocking=True
    )
    yield entry
    await hass.config_entries.async_unload(entry.entry_id)


async def meter_flow(hass: HomeAssistant, entry: MockConfigEntry, wiring: str) -> Any:
    """Start "Add Modbus device" and pick how it is wired (``tcp`` or ``serial``): its form."""
    menu = await hass.config_entries.subentries.async_init((entry.entry_id, SUBENTRY_METER), context={"source": "user"})
    assert menu["type"] is FlowResultType.MENU
    assert menu["menu_options"] == ["tcp", "serial"]
    return await hass.config_entries.subentries.async_configure(menu["flow_id"], {"next_step_id": wiring})


def energy(entry: MockConfigEntry) -> EnergyCoordinator:
    coordinator: EnergyCoordinator | None = entry.runtime_data.energy
    assert coordinator is not None
    return coordinator


async def cycle(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """A meter poll, then an EMS cycle (both every 5 s in production)."""
    meter = entry.runtime_data.grid_meter()
    assert meter is not None
    await meter.async_refresh()
    await energy(entry).async_refresh()
    await hass.async_block_till_done()


async def test_modbus_meter_is_a_device_with_entities(
    hass: HomeAssistant, modbus_site: MockConfigEntry, sdm630: ProfileSimulator
) -> None:
    grid_power(sdm630, 4600)
    await cycle(hass, modbus_site)
    assert float(state_of(hass, "sensor.grid_meter_power")) == pytest.approx(4600, abs=1)
    assert float(state_of(hass, "sensor.grid_meter_current_l1")) == pytest.approx(6.67, abs=0.01)
    assert float(state_of(hass, "sensor.grid_meter_energy_imported")) == pytest.approx(1234, abs=0.1)  # kWh
    assert any(sub.subentry_type == SUBENTRY_METER for sub in modbus_site.subentries.values())


async def test_load_step_on_the_modbus_meter_lowers_the_chargers_within_one_cycle(
    hass: HomeAssistant, modbus_site: MockConfigEntry, sdm630: ProfileSimulator, chargers: ChargerFactory
) -> None:
    cps = []
    for charger_id in ("CP1", "CP2"):
        cp = await chargers(charger_id)
        await cp.status(1, "Charging")
        await cp.start_transaction(1, f"TAG-{charger_id}")
        cps.append(cp)
    grid_power(sdm630, 2300)
    await cycle(hass, modbus_site)
    await wait_for(lambda: [cp.connectors[1].limit_a for cp in cps] == [14, 14])
    for cp in cps:
        cp.connectors[1].power_w = 14 * VOLTS * 3
        await cp.meter_values(1, 10)
    # An oven and a heat pump: +8.3 kW on the meter.
    grid_power(sdm630, 11500, 14, 14)
    await cycle(hass, modbus_site)
    await wait_for(lambda: sum(cp.connectors[1].limit_a or 0 for cp in cps) == 15)


async def test_modbus_meter_lost_falls_back_with_a_repair_issue(
    hass: HomeAssistant, modbus_site: MockConfigEntry, sdm630: ProfileSimulator, chargers: ChargerFactory
) -> None:
    cp = await chargers("CP1")
    await cp.status(1, "Charging")
    await cp.start_transaction(1, "TAG")
    await cycle(hass, modbus_site)
    await wait_for(lambda: cp.connectors[1].limit_a == 31)
    await sdm630.stop()
    await cycle(hass, modbus_site)
    # Fallback 6.9 kW: 22 - 6.9 = 15.1 kW left, 21 A per phase.
    await wait_for(lambda: cp.connectors[1].limit_a == 21)
    assert state_of(hass, "sensor.grid_meter_power") == "unavailable"
    issue = ir.async_get(hass).async_get_issue(DOMAIN, f"meter_unavailable_{modbus_site.entry_id}")
    assert issue is not None
    await sdm630.start()
    cp.connectors[1].power_w = 21 * VOLTS * 3
    await cp.meter_values(1, 10)
    grid_power(sdm630, 0, 21)
    await cycle(hass, modbus_site)
    await wait_for(lambda: cp.connectors[1].limit_a == 31)
    assert ir.async_get(hass).async_get_issue(DOMAIN, f"meter_unavailable_{modbus_site.entry_id}") is None


async def test_meter_flow_refuses_a_device_that_does_not_answer(
    hass: HomeAssistant, site: MockConfigEntry, sdm630: ProfileSimulator
) -> None:
    from tests.conftest import free_port

    flow = await meter_flow(hass, site, "tcp")
    data = {"profile": "eastron_sdm630", "host": "127.0.0.1", "port": free_port(), "unit_id": 1, "role": "grid"}
    result = await hass.config_entries.subentries.async_configure(flow["flow_id"], data)
    assert result["errors"] == {"base": "cannot_connect"}
    # A device that answers, but not as the profile says (SunSpec has no "SunS" marker here).
    result = await hass.config_entries.subentries.async_configure(
        flow["flow_id"], {**data, "profile": "sunspec", "port": sdm630.port}
    )
    assert result["errors"] == {"base": "invalid_response"}
    result = await hass.config_entries.subentries.async_configure(flow["flow_id"], {**data, "port": sdm630.port})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    # A second grid meter, or the same device twice, is refused.
    again = await meter_flow(hass, site, "tcp")
    result = await hass.config_entries.subentries.async_configure(again["flow_id"], {**data, "port": sdm630.port})
    assert result["errors"] == {"base": "meter_exists"}
    result = await hass.config_entries.subentries.async_configure(
        again["flow_id"], {**data, "port": sdm630.port, "unit_id": 2}
    )
    assert result["errors"] == {"role": "grid_meter_exists"}
    # Removing the sub-entry removes the device and its polling.
    meter_id = next(s.subentry_id for s in site.subentries.values() if s.subentry_type == SUBENTRY_METER)
    hass.config_entries.async_remove_subentry(site, meter_id)
    await hass.async_block_till_done()
    assert site.runtime_data.meters == {}


async def test_modbus_rtu_on_a_serial_port_and_through_a_gateway(
    hass: HomeAssistant, site: MockConfigEntry, socket_enabled: None
) -> None:
    """RTU on a serial line (here pyserial's socket:// URL to an RTU server) and RTU frames over TCP."""
    serial_meter = ProfileSimulator(load_profile("eastron_sdm120"), {"power_w": 1500.0}, rtu_framing=True, unit_id=7)
    gateway_meter = ProfileSimulator(load_profile("eastron_sdm630"), {"power_w": 2500.0}, rtu_framing=True, unit_id=3)
    async with serial_meter, gateway_meter:
        form = await meter_flow(hass, site, "serial")
        assert form["step_id"] == "serial"
        data = {
            "name": "Heat pump",
            "profile": "eastron_sdm120",
            "serial_port": f"socket://127.0.0.1:{serial_meter.port}",
            "baudrate": "19200",
            "parity": "even",
            "stopbits": "1",
            "bytesize": "8",
            "unit_id": 8,  # the wrong address: the port opens, but no device answers as the profile says
            "role": "other",
        }
        result = await hass.config_entries.subentries.async_configure(form["flow_id"], data)
        assert result["errors"] == {"base": "invalid_response"}
        result = await hass.config_entries.subentries.async_configure(form["flow_id"], {**data, "unit_id": 7})
        assert result["type"] is FlowResultType.CREATE_ENTRY
        assert result["data"] == {
            "profile": "eastron_sdm120",
            "serial_port": f"socket://127.0.0.1:{serial_meter.port}",
            "baudrate": 19200,
            "parity": "E",
            "stopbits": 1,
            "bytesize": 8,
            "unit_id": 7,
            "role": "other",
        }
        form = await meter_flow(hass, site, "tcp")
        result = await hass.config_entries.subentries.async_configure(
            form["flow_id"],
            {
                "name": "Car park board",
                "profile": "eastron_sdm630",
                "host": "127.0.0.1",
                "port": gateway_meter.port,
                "unit_id": 3,
                "role": "other",
                "rtu_over_tcp": True,
            },
        )
        assert result["type"] is FlowResultType.CREATE_ENTRY
        await hass.async_block_till_done()
        for meter in site.runtime_data.meters.values():
            await meter.async_refresh()
        await hass.async_block_till_done()
        assert float(state_of(hass, "sensor.heat_pump_power")) == pytest.approx(1500)
        assert float(state_of(hass, "sensor.car_park_board_power")) == pytest.approx(2500)


async def test_pv_and_battery_devices_feed_the_energy_managers_inputs(
    hass: HomeAssistant, modbus_site: MockConfigEntry
) -> None:
    inverter = ProfileSimulator(load_profile("sunspec"), {"pv_power_w": 4200.0}, sunspec_models=[1, 103])
    battery = ProfileSimulator(load_profile("huawei_sun2000"), {"battery_power_w": -1500.0, "soc_percent": 81.0})
    async with inverter, battery:
        for name, sim, role in (("Roof PV", inverter, "pv"), ("Home battery", battery, "battery")):
            form = await meter_flow(hass, modbus_site, "tcp")
            result = await hass.config_entries.subentries.async_configure(
                form["flow_id"],
                {
                    "name": name,
                    "profile": sim.profile.id,
                    "host": "127.0.0.1",
                    "port": sim.port,
                    "unit_id": sim.unit_id,
                    "role": role,
                },
            )
            assert result["type"] is FlowResultType.CREATE_ENTRY
        await hass.async_block_till_done()
        for meter in modbus_site.runtime_data.meters.values():
            await meter.async_refresh()
        inputs = energy(modbus_site).site_inputs()
        assert inputs.pv_w == pytest.approx(4200)
        assert inputs.battery_w == pytest.approx(-1500)  # charging
        assert inputs.battery_soc == pytest.approx(81)
        assert not inputs.genset_running
    # A meter on the generator's output: it runs while it delivers power.
    genset = ProfileSimulator(load_profile("eastron_sdm120"), {"power_w": 0.0})
    async with genset:
        form = await meter_flow(hass, modbus_site, "tcp")
        result = await hass.config_entries.subentries.async_configure(
            form["flow_id"],
            {
                "name": "Genset",
                "profile": "eastron_sdm120",
                "host": "127.0.0.1",
                "port": genset.port,
                "unit_id": 1,
                "role": "genset",
            },
        )
        assert result["type"] is FlowResultType.CREATE_ENTRY
        await hass.async_block_till_done()
        for meter in modbus_site.runtime_data.meters.values():
            await meter.async_refresh()
        assert not energy(modbus_site).site_inputs().genset_running
        genset.set("power_w", 7800.0)
        for meter in modbus_site.runtime_data.meters.values():
            await meter.async_refresh()
        assert energy(modbus_site).site_inputs().genset_running


async def test_a_restart_reads_the_grid_meter_at_once_without_errors(
    hass: HomeAssistant, modbus_site: MockConfigEntry, sdm630: ProfileSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    """The meters' first reading comes before setup has set ``entry.runtime_data``."""
    grid_power(sdm630, 2300)
    caplog.clear()
    assert await hass.config_entries.async_reload(modbus_site.entry_id)
    await hass.async_block_till_done()
    meter = modbus_site.runtime_data.grid_meter()
    assert meter is not None
    assert meter.last_update_success
    assert meter.data.power_w == pytest.approx(2300, abs=1)
    assert "Unexpected error" not in caplog.text


async def test_a_meter_added_while_the_site_reloads_is_added_once(
    hass: HomeAssistant, modbus_site: MockConfigEntry, caplog: pytest.LogCaptureFixture
) -> None:
    """An options change reloads the site while the new device's first reading is in flight."""
    inverter = ProfileSimulator(load_profile("sunspec"), {"pv_power_w": 4200.0}, sunspec_models=[1, 103])
    async with inverter:
        form = await meter_flow(hass, modbus_site, "tcp")
        caplog.clear()
        result = await hass.config_entries.subentries.async_configure(
            form["flow_id"],
            {
                "name": "Roof PV",
                "profile": "sunspec",
                "host": "127.0.0.1",
                "port": inverter.port,
                "unit_id": 1,
                "role": "pv",
            },
        )
        assert result["type"] is FlowResultType.CREATE_ENTRY
        # The listener's sync of the old runtime is reading the inverter; the site reloads meanwhile.
        assert await hass.config_entries.async_reload(modbus_site.entry_id)
        await hass.async_block_till_done()
        assert "does not generate unique IDs" not in caplog.text
        assert "Unexpected error" not in caplog.text
        await wait_for(lambda: state_of(hass, "sensor.roof_pv_pv_power") not in (None, "unavailable", "unknown"))
        assert float(state_of(hass, "sensor.roof_pv_pv_power")) == pytest.approx(4200, abs=1)
        # The old runtime's device connection was closed, not left polling.
        assert len([m for m in modbus_site.runtime_data.meters.values() if m.role == "pv"]) == 1
