"""Sub-boards: a board's own limit holds under the site's, in a real Home Assistant."""

from __future__ import annotations

from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.cariflex.const import SUBENTRY_BOARD, SUBENTRY_CHARGER
from custom_components.cariflex.energy import EnergyCoordinator
from tests.conftest import ChargerFactory, site_entry, state_of, wait_for

METER = "sensor.grid_power"


async def add_board(hass: HomeAssistant, entry: MockConfigEntry, **data: object) -> str:
    flow = await hass.config_entries.subentries.async_init((entry.entry_id, SUBENTRY_BOARD), context={"source": "user"})
    result = await hass.config_entries.subentries.async_configure(flow["flow_id"], data)
    assert result["type"] is FlowResultType.CREATE_ENTRY, result
    await hass.async_block_till_done()
    return str(next(sid for sid, sub in entry.subentries.items() if sub.title == data["name"]))


async def test_board_limit_holds_under_the_site_limit(
    hass: HomeAssistant, socket_enabled: None, ws_port: int, chargers: ChargerFactory
) -> None:
    hass.states.async_set(METER, "0", {"unit_of_measurement": "W"})
    entry = site_entry(
        ws_port,
        chargers={"CP1": {}, "CP2": {}},
        options={"subscribed_power_kw": 36.0, "main_breaker_a": 40.0, "grid_power_entity": METER},
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    # A board without any limit is refused; then the car park's TD with 16 A.
    flow = await hass.config_entries.subentries.async_init((entry.entry_id, SUBENTRY_BOARD), context={"source": "user"})
    result = await hass.config_entries.subentries.async_configure(flow["flow_id"], {"name": "TD parking"})
    assert result["errors"] == {"base": "no_limit"}
    board = await add_board(hass, entry, name="TD parking", max_current_a=16)
    # CP2 is wired on that board.
    cp2_sub = next(s for s in entry.subentries.values() if s.subentry_type == SUBENTRY_CHARGER and s.title == "CP2")
    hass.config_entries.async_update_subentry(entry, cp2_sub, data={**cp2_sub.data, "board": board})
    await hass.async_block_till_done()
    await hass.services.async_call(
        "select", "select_option", {"entity_id": "select.test_site_energy_manager", "option": "on"}, blocking=True
    )
    cps = []
    for charger_id in ("CP1", "CP2"):
        cp = await chargers(charger_id)
        await cp.status(1, "Charging")
        await cp.start_transaction(1, f"TAG-{charger_id}")
        cps.append(cp)
    energy: EnergyCoordinator | None = entry.runtime_data.energy
    assert energy is not None
    await energy.async_refresh()
    await hass.async_block_till_done()
    # Site: 40 A per phase; the TD: 16 A. CP2 gets 16 A, CP1 the rest up to its 32 A maximum... 24 A.
    await wait_for(lambda: (cps[0].connectors[1].limit_a, cps[1].connectors[1].limit_a) == (24, 16))
    assert energy.data.reason("CP2/1") == f"board_limit:{board}"
    assert float(state_of(hass, "sensor.td_parking_power_allocated_to_charging")) == pytest.approx(
        16 * 230 * 3 / 1000, abs=0.1
    )
    # Reconfigure the board: 10 A.
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_BOARD), context={"source": "reconfigure", "subentry_id": board}
    )
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], {"max_current_a": 10})
    assert result["type"] is FlowResultType.ABORT
    await hass.async_block_till_done()
    await energy.async_refresh()
    await hass.async_block_till_done()
    await wait_for(lambda: cps[1].connectors[1].limit_a == 10)
    await hass.config_entries.async_unload(entry.entry_id)
