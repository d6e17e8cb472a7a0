"""A first end-to-end check: a charger boots, charges and shows up in Home Assistant."""

from __future__ import annotations

from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry

from tests.conftest import ChargerFactory, wait_for


async def test_session_shows_in_entities(hass: HomeAssistant, site: MockConfigEntry, chargers: ChargerFactory) -> None:
    cp = await chargers("CP1")
    await cp.status(1, "Available")
    await hass.async_block_till_done()
    assert hass.states.get("binary_sensor.cp1_connected").state == "on"
    assert hass.states.get("sensor.cp1_status").state == "available"
    await cp.start_transaction(1, "TAG1")
    cp.connectors[1].power_w = 7000
    await cp.meter_values(1, 3600)
    await hass.async_block_till_done()
    await wait_for(lambda: hass.states.get("sensor.cp1_power").state == "7.0")
    assert float(hass.states.get("sensor.cp1_session_energy").state) == 7.0
    assert hass.states.get("sensor.cp1_badge").state == "TAG1"
