"""Diagnostics of a site: everything needed to understand it, none of its secrets."""

from __future__ import annotations

import json
from typing import Any

from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.components.diagnostics import get_diagnostics_for_config_entry
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.cariflex.const import CONF_CERTFILE, CONF_KEYFILE, CONF_PASSWORD_HASH, DOMAIN
from custom_components.cariflex.ocpp.site import hash_password
from simulator.charger16 import SimConfig
from tests.conftest import ChargerFactory, charger_device, site_entry, state_of, wait_for

REDACTED = "**REDACTED**"
PASSWORD = "diag-password"
SERIAL = "SERIAL-DIAG-4711"
SECRET_KEY = "0123456789abcdef"
CERTFILE = "/ssl/cariflex/fullchain.pem"
KEYFILE = "/ssl/cariflex/privkey.pem"
TAG_DONE = "TAG-DONE-1"
TAG_NOW = "TAG-NOW-2"
PARENT = "FLEET-PARENT"


@pytest.fixture
async def secret_site(hass: HomeAssistant, socket_enabled: None, ws_port: int) -> MockConfigEntry:
    """A site whose charger CP1 has a password, with certificate paths (no wss port: not opened)."""
    entry = site_entry(
        ws_port,
        chargers={"CP1": {CONF_PASSWORD_HASH: hash_password(PASSWORD)}},
        data={CONF_CERTFILE: CERTFILE, CONF_KEYFILE: KEYFILE},
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


async def test_diagnostics_of_a_site_with_a_charger_in_session(
    hass: HomeAssistant,
    hass_client: ClientSessionGenerator,
    secret_site: MockConfigEntry,
    chargers: ChargerFactory,
) -> None:
    config = SimConfig(serial=SERIAL)
    config.configuration["AuthorizationKey"] = SECRET_KEY
    cp = await chargers("CP1", password=PASSWORD, config=config)
    charger = secret_site.runtime_data.backend.chargers["CP1"]
    await wait_for(lambda: "AuthorizationKey" in charger.configuration)  # read after boot
    await hass.services.async_call(
        DOMAIN,
        "set_badge",
        {"device_id": charger_device(hass, "CP1").id, "id_tag": TAG_NOW, "parent_id_tag": PARENT},
        blocking=True,
    )
    # One finished session (in the history) and one running.
    await cp.status(1, "Charging")
    await cp.start_transaction(1, TAG_DONE)
    cp.connectors[1].power_w = 3000
    await cp.meter_values(1, 3600)
    await cp.stop_transaction(1, reason="EVDisconnected")
    running = await cp.start_transaction(1, TAG_NOW)
    cp.connectors[1].power_w = 7000
    await cp.meter_values(1, 1800)
    await hass.async_block_till_done()
    await wait_for(lambda: state_of(hass, "sensor.cp1_power") == "7.0")

    diag: dict[str, Any] = await get_diagnostics_for_config_entry(hass, hass_client, secret_site)

    # What explains the site is there.
    assert diag["entry"]["data"]["ws_port"] == secret_site.data["ws_port"]
    assert diag["entry"]["options"]["unknown_chargers"] == "accept"
    assert diag["subentries"] == [
        {
            "type": "charger",
            "title": "CP1",
            "data": {"charger_id": "CP1", "max_current": 32.0, "password_hash": REDACTED},
        }
    ]
    assert diag["badges"] == 1
    assert diag["transaction_counter"] == running.transaction_id
    cp1 = diag["chargers"]["CP1"]
    assert cp1["connected"] is True
    assert cp1["boot_status"] == "Accepted"
    assert cp1["ocpp_version"] == "1.6"
    assert cp1["info"]["vendor"] == "Cariflex"
    assert cp1["info"]["model"] == "SimCharger"
    assert cp1["info"]["firmware"] == "1.0.0"
    assert cp1["configuration"]["HeartbeatInterval"] == "300"
    connector = cp1["connectors"]["1"]
    assert connector["status"] == "charging"
    assert connector["readings"]["power_w"] == 7000
    session = connector["session"]
    assert session is not None
    assert session["transaction_id"] == str(running.transaction_id)
    assert session["stopped_at"] is None
    assert len(diag["recent_sessions"]) == 1
    done = diag["recent_sessions"][0]
    assert done["charger_id"] == "CP1"
    assert done["energy_wh"] == 3000
    assert done["stop_reason"] == "EVDisconnected"

    # ...and the secrets are not.
    assert diag["entry"]["data"][CONF_CERTFILE] == REDACTED
    assert diag["entry"]["data"][CONF_KEYFILE] == REDACTED
    assert cp1["info"]["serial"] == REDACTED
    assert cp1["configuration"]["AuthorizationKey"] == REDACTED
    assert session["id_tag"] == REDACTED
    assert done["id_tag"] == REDACTED
    text = json.dumps(diag)
    password_hash = secret_site.subentries[next(iter(secret_site.subentries))].data[CONF_PASSWORD_HASH]
    for secret in (PASSWORD, password_hash, SERIAL, SECRET_KEY, CERTFILE, KEYFILE, TAG_DONE, TAG_NOW, PARENT):
        assert secret not in text, secret


async def test_diagnostics_of_a_site_without_chargers(
    hass: HomeAssistant, hass_client: ClientSessionGenerator, socket_enabled: None, ws_port: int
) -> None:
    entry = site_entry(ws_port)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    diag = await get_diagnostics_for_config_entry(hass, hass_client, entry)
    assert diag["subentries"] == []
    assert diag["chargers"] == {}
    assert diag["recent_sessions"] == []
    assert diag["badges"] == 0
