"""A first end-to-end check: a charger boots, charges and shows up in Home Assistant."""

from __future__ import annotations

from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry

from tests.conftest import ChargerFactory, state_of, wait_for


async def test_session_shows_in_entities(hass: HomeAssistant, site: MockConfigEntry, chargers: ChargerFactory) -> None:
    cp = await chargers("CP1")
    await cp.status(1, "Available")
    await hass.async_block_till_done()
    assert state_of(hass, "binary_sensor.cp1_connected") == "on"
    assert state_of(hass, "sensor.cp1_status") == "available"
    await cp.start_transaction(1, "TAG1")
    cp.connectors[1].power_w = 7000
    await cp.meter_values(1, 3600)
    await hass.async_block_till_done()
    await wait_for(lambda: state_of(hass, "sensor.cp1_power") == "7.0")
    assert float(state_of(hass, "sensor.cp1_session_energy")) == 7.0
    assert state_of(hass, "sensor.cp1_badge") == "TAG1"
