"""Restarts, disconnections, dynamic chargers and deprecations, in a real Home Assistant."""

from __future__ import annotations

import logging
from typing import Any

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import Event, HomeAssistant
from homeassistant.helpers import entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.cariflex.const import CONF_CHARGER_ID, EVENT_SESSION_ENDED, SUBENTRY_CHARGER
from tests.conftest import ChargerFactory, find_device, site_entry, state_of, wait_for


async def test_restart_mid_session_loses_no_energy(
    hass: HomeAssistant, site: MockConfigEntry, chargers: ChargerFactory
) -> None:
    """Home Assistant restarts during a session: the session continues when the charger reconnects."""
    cp = await chargers("CP1")
    cp.connectors[1].energy_wh = 1000
    await cp.status(1, "Charging")
    start = await cp.start_transaction(1, "TAG1")
    cp.connectors[1].power_w = 4000
    await cp.meter_values(1, 3600)  # 5000 Wh
    await hass.async_block_till_done()
    assert state_of(hass, "sensor.cp1_session_energy") == "4.0"

    # Home Assistant stops: the state is written, the charger loses its connection.
    assert await hass.config_entries.async_unload(site.entry_id)
    await chargers.disconnect(cp)
    # ...and starts again: entities exist before the charger is back, unavailable.
    assert await hass.config_entries.async_setup(site.entry_id)
    await hass.async_block_till_done()
    assert state_of(hass, "sensor.cp1_session_energy") == "unavailable"
    assert state_of(hass, "binary_sensor.cp1_connected") == "off"
    runtime = site.runtime_data
    session = runtime.backend.chargers["CP1"].connectors[1].session
    assert session is not None
    assert session.transaction_id == str(start.transaction_id)

    # The charger reconnects without a new boot and goes on with its transaction.
    ended: list[Event] = []
    hass.bus.async_listen(EVENT_SESSION_ENDED, ended.append)
    cp2 = await chargers("CP1", boot=False)
    cp2.connectors[1].energy_wh = 5000
    cp2.connectors[1].transaction_id = start.transaction_id
    cp2.connectors[1].power_w = 3000
    await cp2.meter_values(1, 3600)  # 8000 Wh
    await hass.async_block_till_done()
    assert state_of(hass, "sensor.cp1_session_energy") == "7.0"
    assert state_of(hass, "sensor.cp1_energy") == "8.0"
    await cp2.stop_transaction(1, reason="EVDisconnected")
    await hass.async_block_till_done()
    assert len(ended) == 1
    assert ended[0].data["energy_wh"] == 7000
    assert ended[0].data["transaction_id"] == str(start.transaction_id)


async def test_transaction_ids_increase_across_restarts(
    hass: HomeAssistant, site: MockConfigEntry, chargers: ChargerFactory
) -> None:
    cp = await chargers("CP1")
    first = await cp.start_transaction(1, "A")
    await cp.stop_transaction(1)
    await chargers.disconnect(cp)
    assert await hass.config_entries.async_reload(site.entry_id)
    await hass.async_block_till_done()
    cp = await chargers("CP1")
    second = await cp.start_transaction(1, "A")
    assert second.transaction_id > first.transaction_id


async def test_entities_follow_the_connection(
    hass: HomeAssistant, site: MockConfigEntry, chargers: ChargerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    cp = await chargers("CP1")
    await cp.status(1, "Available")
    await hass.async_block_till_done()
    assert state_of(hass, "sensor.cp1_status") == "available"
    caplog.set_level(logging.INFO, logger="custom_components.cariflex")
    await chargers.disconnect(cp)
    await wait_for(lambda: state_of(hass, "sensor.cp1_status") == "unavailable")
    assert state_of(hass, "binary_sensor.cp1_connected") == "off"
    assert state_of(hass, "sensor.cp1_firmware") == "1.0.0"  # identity stays readable
    unavailable_logs = [r for r in caplog.records if "entities are unavailable" in r.getMessage()]
    assert len(unavailable_logs) == 1  # logged once, not once per entity
    cp = await chargers("CP1", boot=False)
    await cp.status(1, "Preparing")
    await wait_for(lambda: state_of(hass, "sensor.cp1_status") == "preparing")


async def test_new_chargers_and_connectors_appear_without_restart(
    hass: HomeAssistant, site: MockConfigEntry, chargers: ChargerFactory
) -> None:
    """An unknown charger (policy accept) becomes a sub-entry, a device and entities at once."""
    cp = await chargers("NEW-7")
    await cp.status(1, "Available")
    await hass.async_block_till_done()
    assert any(sub.unique_id == "NEW-7" for sub in site.subentries.values())
    device = find_device(hass, "NEW-7")
    assert device is not None
    assert device.manufacturer == "Cariflex"
    hub = find_device(hass, site.entry_id)
    assert hub is not None
    assert device.via_device_id == hub.id
    assert state_of(hass, "sensor.new_7_status") == "available"
    # A second connector shows up later: its entities are named with its number.
    await cp.status(2, "Available")
    await hass.async_block_till_done()
    assert state_of(hass, "sensor.new_7_connector_2_status") == "available"
    assert site.state is ConfigEntryState.LOADED


async def test_removing_a_charger_subentry_removes_its_device(
    hass: HomeAssistant, socket_enabled: None, ws_port: int, chargers: ChargerFactory
) -> None:
    entry = site_entry(ws_port, chargers={"CP1": {}, "CP2": {}})
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    cp2 = await chargers("CP2")
    await cp2.status(1, "Available")
    await hass.async_block_till_done()
    subentry_id = next(s.subentry_id for s in entry.subentries.values() if s.data[CONF_CHARGER_ID] == "CP2")
    hass.config_entries.async_remove_subentry(entry, subentry_id)
    await hass.async_block_till_done()
    assert find_device(hass, "CP2") is None
    assert er.async_get(hass).async_get("sensor.cp2_status") is None
    assert "CP2" not in entry.runtime_data.coordinators
    assert entry.state is ConfigEntryState.LOADED
    assert all(s.subentry_type == SUBENTRY_CHARGER for s in entry.subentries.values())
    await hass.config_entries.async_unload(entry.entry_id)


async def test_port_in_use_retries_setup(hass: HomeAssistant, socket_enabled: None, ws_port: int) -> None:
    import socket

    with socket.socket() as blocker:
        blocker.bind(("0.0.0.0", ws_port))
        blocker.listen()
        entry = site_entry(ws_port)
        entry.add_to_hass(hass)
        await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
        assert entry.state is ConfigEntryState.SETUP_RETRY


async def test_no_deprecation_names_our_code(
    hass: HomeAssistant, socket_enabled: None, ws_port: int, chargers: ChargerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """Setup, a session and unload log no deprecation or report_usage line about cariflex."""
    caplog.set_level(logging.WARNING)
    entry = site_entry(ws_port, chargers={"CP1": {}})
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    cp = await chargers("CP1")
    await cp.status(1, "Charging")
    await cp.start_transaction(1, "TAG")
    await cp.meter_values(1, 10)
    await cp.stop_transaction(1)
    await hass.async_block_till_done()
    assert await hass.config_entries.async_unload(entry.entry_id)
    offending = [
        r.getMessage()
        for r in caplog.records
        if "cariflex" in r.getMessage().lower()
        and any(word in r.getMessage().lower() for word in ("deprecat", "will stop working", "detected that custom"))
    ]
    assert offending == []


async def test_stale_charger_device_can_be_deleted(
    hass: HomeAssistant, site: MockConfigEntry, chargers: ChargerFactory, hass_ws_client: Any
) -> None:
    """A connected charger or the site device cannot be deleted; a charger that left can."""
    from homeassistant.setup import async_setup_component

    assert await async_setup_component(hass, "config", {})
    cp = await chargers("CP1")
    await hass.async_block_till_done()
    device = find_device(hass, "CP1")
    hub = find_device(hass, site.entry_id)
    assert device is not None
    assert hub is not None
    client = await hass_ws_client(hass)

    async def remove(device_id: str) -> bool:
        await client.send_json_auto_id(
            {
                "type": "config/device_registry/remove_config_entry",
                "config_entry_id": site.entry_id,
                "device_id": device_id,
            }
        )
        response = await client.receive_json()
        return bool(response["success"])

    assert not await remove(device.id)  # connected
    assert not await remove(hub.id)
    await chargers.disconnect(cp)
    await wait_for(lambda: not site.runtime_data.coordinators["CP1"].charger.connected)
    assert await remove(device.id)
    await hass.async_block_till_done()
    assert find_device(hass, "CP1") is None
    assert not any(sub.unique_id == "CP1" for sub in site.subentries.values())


async def test_limits_are_sent_again_after_a_reconnect_without_reboot(
    hass: HomeAssistant, site: MockConfigEntry, chargers: ChargerFactory
) -> None:
    cp = await chargers("CP1")
    await cp.status(1, "Available")
    await hass.services.async_call(
        "number", "set_value", {"entity_id": "number.cp1_current_limit", "value": 10}, blocking=True
    )
    assert cp.connectors[1].limit_a == 10
    await chargers.disconnect(cp)
    cp = await chargers("CP1", boot=False)  # a network drop: no BootNotification
    await wait_for(lambda: cp.connectors[1].limit_a == 10)
    profiles = [payload for action, payload in cp.received if action == "SetChargingProfile"]
    assert profiles[-1]["csChargingProfiles"]["charging_profile_purpose"] == "TxDefaultProfile"
