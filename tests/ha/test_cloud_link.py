"""A real Home Assistant site linked to a real cloud uplink endpoint (aiohttp on 127.0.0.1, SQLite)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import contextlib
import json
from pathlib import Path
import sqlite3
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from cloud_connector.uplink import AuthorizationAnswer
from custom_components.cariflex.cloud import command_result
from custom_components.cariflex.const import DOMAIN
from custom_components.cariflex.energy import EmsMode
from tests.cloud.harness import connected
from tests.cloud.uplink_harness import SITE_A, Cloud
from tests.conftest import ChargerFactory, free_port, site_entry, state_of, wait_for


def events(path: Path, site_id: str = SITE_A[0]) -> list[tuple[str, dict[str, Any]]]:
    """``(kind, data)`` of every event the cloud applied for the site, in order."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        rows = conn.execute("SELECT kind, data FROM events WHERE site_id = ? ORDER BY seq", (site_id,)).fetchall()
    return [(kind, json.loads(data)) for kind, data in rows]


def kinds(path: Path) -> list[str]:
    return [kind for kind, _ in events(path)]


@pytest.fixture
async def cloud(hass: HomeAssistant, tmp_path: Path, socket_enabled: None) -> AsyncIterator[Cloud]:
    hass.config.config_dir = str(tmp_path / "config")  # the site's queue goes to its .storage
    server = Cloud(tmp_path / "cloud.db", free_port())
    await server.start()
    yield server
    await server.stop()


async def linked_site(hass: HomeAssistant, ws_port: int, url: str, token: str, **options: Any) -> MockConfigEntry:
    entry = site_entry(
        ws_port,
        chargers={"CP1": {}},
        options={
            "cloud_url": url,
            "cloud_token": token,
            "address": "1 rue Victor Hugo",
            "city": "Fort-de-France",
            "postal_code": "97200",
            **options,
        },
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


async def test_a_site_reports_to_the_cloud_and_runs_its_commands_on_a_real_charger(
    hass: HomeAssistant, cloud: Cloud, ws_port: int, chargers: ChargerFactory
) -> None:
    entry = await linked_site(hass, ws_port, cloud.url, SITE_A[1])
    await wait_for(lambda: state_of(hass, "binary_sensor.test_site_cloud_connection") == "on", timeout=10)
    cp = await chargers("CP1")
    await cp.status(1, "Charging")
    await cp.start_transaction(1, "TAG-1")
    await wait_for(lambda: {"inventory", "status", "session_start"} <= set(kinds(cloud.path)), timeout=10)
    inventory = next(data for kind, data in events(cloud.path) if kind == "inventory")
    assert inventory["site"]["city"] == "Fort-de-France"
    assert inventory["site"]["country"] == "FRA"
    assert [c["id"] for c in inventory["chargers"]] == ["CP1"]
    start = next(data for kind, data in events(cloud.path) if kind == "session_start")
    assert start["charger_id"] == "CP1"
    assert start["id_tag"] == "TAG-1"
    await wait_for(lambda: state_of(hass, "sensor.test_site_cloud_queue") == "0", timeout=10)

    # The cloud's commands run on the real charger; the results come back.
    result = await cloud.hub.command(SITE_A[0], "unlock_connector", "CP1", {"evse_id": 1}, timeout=10)
    assert (result.result, result.detail) == ("accepted", "Unlocked")
    assert any(action == "UnlockConnector" for action, _ in cp.received)
    result = await cloud.hub.command(SITE_A[0], "start_session", "NOPE", {"evse_id": 1, "id_tag": "X"})
    assert result.result == "unknown_charger"
    result = await cloud.hub.command(SITE_A[0], "reserve_now", "CP1", {"reservation_id": 1, "id_tag": "X"})
    assert result.result == "rejected"  # no expiry: bad arguments, nothing sent
    assert not any(action == "ReserveNow" for action, _ in cp.received)

    # An OCPI charging profile caps the session through the energy manager.
    energy = entry.runtime_data.energy
    assert energy is not None
    await energy.async_set_mode(EmsMode.ON)
    session_id = start["session_id"]
    result = await cloud.hub.command(
        SITE_A[0], "set_charging_profile", "CP1", {"session_id": session_id, "limit_w": 6900}
    )
    assert result.result == "accepted"
    await wait_for(lambda: cp.connectors[1].limit_a == 10, timeout=10)  # 6.9 kW on 3 phases at 230 V
    result = await cloud.hub.command(SITE_A[0], "clear_charging_profile", "CP1", {"session_id": session_id})
    assert result.result == "accepted"
    assert entry.runtime_data.session_caps_w == {}
    result = await cloud.hub.command(SITE_A[0], "clear_charging_profile", "CP1", {"session_id": "CP1:999"})
    assert result.result == "rejected"

    # The session ends: its end reaches the cloud with its energy.
    await cp.meter_values(1, 60)
    await cp.stop_transaction(1)
    await wait_for(lambda: "session_end" in kinds(cloud.path), timeout=10)
    end = next(data for kind, data in events(cloud.path) if kind == "session_end")
    assert end["session_id"] == session_id
    # A remote start from the cloud (an eMSP's START_SESSION): the charger is asked, it accepts.
    result = await cloud.hub.command(SITE_A[0], "start_session", "CP1", {"evse_id": 1, "id_tag": "EMSP-1"})
    assert result.result == "accepted"
    assert any(action == "RemoteStartTransaction" and p["idTag"] == "EMSP-1" for action, p in cp.received)
    await hass.config_entries.async_unload(entry.entry_id)


async def test_the_site_keeps_its_events_while_the_cloud_is_down_and_a_bad_token_raises_a_repair(
    hass: HomeAssistant, cloud: Cloud, ws_port: int, chargers: ChargerFactory
) -> None:
    await cloud.stop()
    entry = await linked_site(hass, ws_port, cloud.url, SITE_A[1])
    cp = await chargers("CP1")
    await cp.status(1, "Preparing")
    await wait_for(lambda: int(state_of(hass, "sensor.test_site_cloud_queue")) >= 2, timeout=10)
    assert state_of(hass, "binary_sensor.test_site_cloud_connection") == "off"
    await cloud.start()
    await wait_for(lambda: {"inventory", "status"} <= set(kinds(cloud.path)), timeout=30)
    link = entry.runtime_data.cloud
    assert link is not None
    await hass.config_entries.async_unload(entry.entry_id)
    # A charger event that lands while the site stops: not queued, and no error escapes.
    assert link.queue is not None
    assert link.queue.queue.closed
    await link._append("status", {"charger_id": "CP1", "connector_id": 1, "status": "Unavailable"})

    # A token the cloud does not know: a repair issue, and the events stay queued.
    other = await linked_site(hass, free_port(), cloud.url, "not-a-token")
    issue_id = f"cloud_auth_failed_{other.entry_id}"
    await wait_for(lambda: ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is not None, timeout=10)
    await hass.config_entries.async_unload(other.entry_id)


def test_command_results_from_charger_answers() -> None:
    assert command_result({"status": "Accepted"}) == "accepted"
    assert command_result({"status": "Unlocked"}) == "accepted"
    assert command_result({"status": "Rejected"}) == "rejected"
    assert command_result({}) == "rejected"


async def test_a_roaming_badge_the_site_does_not_know_is_asked_of_the_cloud(
    hass: HomeAssistant, cloud: Cloud, ws_port: int, chargers: ChargerFactory
) -> None:
    asked: list[tuple[str, str, str | None]] = []

    async def emsp_says(site_id: str, uid: str, charger_id: str | None, evse_id: int | None) -> AuthorizationAnswer:
        asked.append((site_id, uid, charger_id))
        token = {"country_code": "FR", "party_id": "EMS", "uid": uid, "type": "RFID", "issuer": "eMSP"}
        if uid == "EMSP-GOOD":
            return AuthorizationAnswer(
                "ACCEPTED", "ALLOWED", {**token, "contract_id": "FR-EMS-1", "group_id": "FLEET-1"}
            )
        return AuthorizationAnswer("BLOCKED", "NEVER", {**token, "contract_id": "FR-EMS-2"})

    cloud.hub.set_authorizer(emsp_says)
    # Badges on the site's own list only: an unknown badge would be refused without the cloud.
    entry = await linked_site(hass, ws_port, cloud.url, SITE_A[1], auth_mode="list")
    await wait_for(lambda: state_of(hass, "binary_sensor.test_site_cloud_connection") == "on", timeout=10)
    cp = await chargers("CP1")
    good = await cp.authorize("EMSP-GOOD")
    assert good.id_tag_info["status"] == "Accepted"
    assert good.id_tag_info["parent_id_tag"] == "FLEET-1"
    bad = await cp.authorize("EMSP-BAD")
    assert bad.id_tag_info["status"] == "Blocked"
    assert asked == [(SITE_A[0], "EMSP-GOOD", "CP1"), (SITE_A[0], "EMSP-BAD", "CP1")]
    # The session that follows is accepted without asking again, and reported as authorized by the cloud.
    await cp.status(1, "Charging")
    started = await cp.start_transaction(1, "EMSP-GOOD")
    assert started.id_tag_info["status"] == "Accepted"
    await wait_for(lambda: "session_start" in kinds(cloud.path), timeout=10)
    start = next(data for kind, data in events(cloud.path) if kind == "session_start")
    assert start["auth_method"] == "AUTH_REQUEST"
    assert len(asked) == 2
    # The cloud goes away: a badge nobody can vouch for is refused (the site's list mode).
    await cloud.stop()
    await wait_for(lambda: state_of(hass, "binary_sensor.test_site_cloud_connection") == "off", timeout=10)
    assert (await cp.authorize("EMSP-OTHER")).id_tag_info["status"] == "Invalid"
    await hass.config_entries.async_unload(entry.entry_id)


async def test_an_emsp_command_reaches_a_real_charger_through_home_assistant_and_its_result_comes_back(
    hass: HomeAssistant, tmp_path: Path, socket_enabled: None, ws_port: int, chargers: ChargerFactory
) -> None:
    """OCPI START_SESSION from an eMSP -> cloud connector -> uplink -> Home Assistant -> OCPP charger, and back."""
    hass.config.config_dir = str(tmp_path / "config")
    (tmp_path / "cloud").mkdir()
    async with connected(tmp_path / "cloud") as (cpo, msp):
        site = await cpo.ok("register-site", "--name", "Résidence", "--id", "s1")
        await cpo.ok("publish-site", "s1")
        uplink = cpo.url.replace("http://", "ws://") + "/uplink/v1"
        entry = await linked_site(hass, ws_port, uplink, site["token"])
        cp = await chargers("CP1")
        await cp.status(1, "Available")

        async def location_published() -> bool:
            status, answer, _ = await msp.module("GET", "locations", "/s1")
            return status == 200 and bool(answer["data"]["evses"])

        async with asyncio.timeout(20):
            while not await location_published():
                await asyncio.sleep(0.2)
        token = msp.add_token("APP1", whitelist="NEVER", type="APP_USER")
        status, answer, _ = await msp.module(
            "POST",
            "commands",
            "/START_SESSION",
            {
                "response_url": f"{msp.url}/ocpi/emsp/2.2.1/commands/START_SESSION/r1",
                "token": token,
                "location_id": "s1",
            },
        )
        assert status == 200, answer
        assert answer["data"]["result"] == "ACCEPTED"  # the immediate CommandResponse
        await wait_for(lambda: bool(msp.state.command_results.get("r1")), timeout=20)
        assert [result["result"] for result in msp.state.command_results["r1"]] == ["ACCEPTED"]  # the CommandResult
        assert any(action == "RemoteStartTransaction" and p["idTag"] == "APP1" for action, p in cp.received)
        await hass.config_entries.async_unload(entry.entry_id)
