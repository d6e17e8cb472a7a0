"""OCA OCPP 1.6 compliance test cases for the central system, end to end.

One test per OCA test case (the central-system side): a real Home Assistant runs the
site, SimCharger16 plays the charge point over real websockets. Each test checks what
the charger received, what it answered and what Home Assistant shows.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
import contextlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
import ssl
from typing import Any

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from ocpp.charge_point import snake_to_camel_case
from ocpp.v16 import call
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from custom_components.cariflex.compat import async_get_device
from custom_components.cariflex.const import (
    CONF_CERTFILE,
    CONF_KEYFILE,
    CONF_PASSWORD_HASH,
    CONF_WSS_PORT,
    DOMAIN,
    EVENT_DATA_TRANSFER,
    EVENT_SESSION_ENDED,
)
from custom_components.cariflex.diagnostics import async_get_config_entry_diagnostics
from custom_components.cariflex.ocpp.model import Charger
from custom_components.cariflex.ocpp.site import hash_password
from simulator.charger16 import SimCharger16, basic_auth_header
from tests.conftest import ChargerFactory, free_port, site_entry, state_of, wait_for
from tests.tls import self_signed_cert

PASSWORD = "s3cret-Passw0rd"
LoadSite = Callable[[MockConfigEntry], Awaitable[MockConfigEntry]]


# --------------------------------------------------------------------------- helpers
@pytest.fixture
async def load_site(hass: HomeAssistant, socket_enabled: None) -> AsyncIterator[LoadSite]:
    """Load a site entry built by the test; unload it at the end."""
    loaded: list[MockConfigEntry] = []

    async def load(entry: MockConfigEntry) -> MockConfigEntry:
        entry.add_to_hass(hass)
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
        loaded.append(entry)
        return entry

    yield load
    for entry in loaded:
        if entry.state is ConfigEntryState.LOADED:
            await hass.config_entries.async_unload(entry.entry_id)


def device_id(hass: HomeAssistant, entry: MockConfigEntry, charger_id: str = "CP1") -> str:
    """The device registry id of a charger."""
    device = async_get_device(hass, (DOMAIN, charger_id), entry.entry_id)
    assert device is not None
    return device.id


async def act(hass: HomeAssistant, entry: MockConfigEntry, action: str, **data: Any) -> dict[str, Any]:
    """Run a cariflex action on CP1 and return the charger's answer."""
    response = await hass.services.async_call(
        DOMAIN,
        action,
        {"device_id": device_id(hass, entry), **data},
        blocking=True,
        return_response=True,
    )
    assert isinstance(response, dict)
    return response


def received(cp: SimCharger16, action: str) -> list[dict[str, Any]]:
    """What the charger received for ``action``, with OCPP (camelCase) keys."""
    return [snake_to_camel_case(payload) for name, payload in cp.received if name == action]


def ts(moment: datetime) -> str:
    """OCPP timestamp."""
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def energy_sample(wh: float, context: str | None = None) -> dict[str, Any]:
    sample: dict[str, Any] = {"value": f"{wh:.0f}", "measurand": "Energy.Active.Import.Register", "unit": "Wh"}
    if context:
        sample["context"] = context
    return sample


async def set_limit(hass: HomeAssistant, amps: float) -> None:
    assert hass.states.get("number.cp1_current_limit") is not None
    await hass.services.async_call(
        "number", "set_value", {"entity_id": "number.cp1_current_limit", "value": amps}, blocking=True
    )


async def diagnostics_of(hass: HomeAssistant, entry: MockConfigEntry, charger_id: str = "CP1") -> dict[str, Any]:
    data = await async_get_config_entry_diagnostics(hass, entry)  # type: ignore[arg-type]
    charger: dict[str, Any] = data["chargers"][charger_id]
    return charger


async def after_boot_done(cp: SimCharger16) -> None:
    """The central system reads the configuration after every accepted boot."""
    await wait_for(lambda: any(name == "GetConfiguration" for name, _ in cp.received))


@contextlib.asynccontextmanager
async def raw_charger(url: str, subprotocols: list[str] | None) -> AsyncIterator[tuple[SimCharger16, Any]]:
    """A SimCharger16 on a websocket opened exactly as asked (None: no subprotocol header at all)."""
    ws = await websockets.connect(f"{url}/CP1", subprotocols=subprotocols, open_timeout=5)  # type: ignore[arg-type]
    cp = SimCharger16("CP1", ws)
    task = asyncio.get_running_loop().create_task(cp.start())
    try:
        yield cp, ws
    finally:
        await cp.stop_tasks()
        task.cancel()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await task
        await ws.close()


# ------------------------------------------------------------------ power failure
async def test_TC_032_1_power_failure_stop_transactions(
    hass: HomeAssistant, site: MockConfigEntry, chargers: ChargerFactory
) -> None:
    """The charger loses power mid-session, reboots and stops the transaction with PowerLoss."""
    ended = async_capture_events(hass, EVENT_SESSION_ENDED)
    cp = await chargers("CP1")
    await cp.status(1, "Preparing")
    await cp.start_transaction(1, "TAG32")
    transaction_id = cp.connectors[1].transaction_id
    assert transaction_id is not None
    await cp.status(1, "Charging")
    cp.connectors[1].power_w = 7000
    await cp.meter_values(1, 360)  # 700 Wh
    await hass.async_block_till_done()
    assert state_of(hass, "sensor.cp1_badge") == "TAG32"
    assert float(state_of(hass, "sensor.cp1_session_energy")) == pytest.approx(0.7)

    # Power failure: the connection drops without a word.
    await chargers.disconnect(cp)
    await wait_for(lambda: state_of(hass, "binary_sensor.cp1_connected") == "off")

    # Power is back: the charger reboots and stops the transaction it had running.
    rebooted = await chargers("CP1", boot=False)
    boot = await rebooted.boot()
    assert boot.status == "Accepted"
    rebooted.connectors[1].energy_wh = 1200.0  # the register kept counting until the power went
    rebooted.connectors[1].transaction_id = transaction_id
    answer = await rebooted.stop_transaction(1, reason="PowerLoss", id_tag="TAG32")
    assert answer.id_tag_info["status"] == "Accepted"
    await rebooted.status(1, "Available")
    await hass.async_block_till_done()

    assert state_of(hass, "binary_sensor.cp1_connected") == "on"
    assert state_of(hass, "sensor.cp1_status") == "available"
    assert state_of(hass, "sensor.cp1_badge") == "unknown"
    assert float(state_of(hass, "sensor.cp1_session_energy")) == 0.0
    assert float(state_of(hass, "sensor.cp1_energy")) == pytest.approx(1.2)
    assert len(ended) == 1
    assert ended[0].data["transaction_id"] == str(transaction_id)
    assert ended[0].data["stop_reason"] == "PowerLoss"
    assert ended[0].data["energy_wh"] == pytest.approx(1200.0)
    assert (await diagnostics_of(hass, site))["connectors"]["1"]["session"] is None


# --------------------------------------------------------------- offline sessions
async def test_TC_037_1_offline_start_transaction(
    hass: HomeAssistant, site: MockConfigEntry, chargers: ChargerFactory
) -> None:
    """A session started while offline is reported late, with its old timestamps, after reconnecting."""
    cp = await chargers("CP1")
    await cp.status(1, "Available")
    await chargers.disconnect(cp)
    await wait_for(lambda: state_of(hass, "binary_sensor.cp1_connected") == "off")

    now = datetime.now(UTC)
    started = now - timedelta(minutes=10)
    # Back online (no reboot): the live status first, then the queued transaction messages.
    cp = await chargers("CP1", boot=False)
    await cp.status(1, "Charging")
    start = await cp.call(
        call.StartTransaction(connector_id=1, id_tag="OFFLINE1", meter_start=1000, timestamp=ts(started)),
        suppress=False,
    )
    assert start.id_tag_info["status"] == "Accepted"
    assert isinstance(start.transaction_id, int)
    assert start.transaction_id > 0
    await cp.call(
        call.MeterValues(
            connector_id=1,
            transaction_id=start.transaction_id,
            meter_value=[{"timestamp": ts(now - timedelta(minutes=5)), "sampledValue": [energy_sample(1500)]}],
        ),
        suppress=False,
    )
    await cp.call(
        call.MeterValues(
            connector_id=1,
            transaction_id=start.transaction_id,
            meter_value=[
                {
                    "timestamp": ts(now),
                    "sampledValue": [
                        energy_sample(2000),
                        {"value": "7000", "measurand": "Power.Active.Import", "unit": "W"},
                    ],
                }
            ],
        ),
        suppress=False,
    )
    await hass.async_block_till_done()

    assert state_of(hass, "binary_sensor.cp1_connected") == "on"
    assert state_of(hass, "sensor.cp1_status") == "charging"
    assert state_of(hass, "sensor.cp1_badge") == "OFFLINE1"
    assert float(state_of(hass, "sensor.cp1_session_energy")) == pytest.approx(1.0)
    assert float(state_of(hass, "sensor.cp1_energy")) == pytest.approx(2.0)
    assert float(state_of(hass, "sensor.cp1_power")) == pytest.approx(7.0)
    # The session started when the charger says, not when the message arrived.
    assert 9.5 <= float(state_of(hass, "sensor.cp1_session_duration")) <= 11.0
    session = (await diagnostics_of(hass, site))["connectors"]["1"]["session"]
    assert session["transaction_id"] == str(start.transaction_id)
    assert datetime.fromisoformat(session["started_at"]) == started.replace(microsecond=0)


async def test_TC_037_3_offline_start_transaction_valid_id_tag(
    hass: HomeAssistant, load_site: LoadSite, chargers: ChargerFactory, ws_port: int
) -> None:
    """Offline start with a badge on the site's list: the late StartTransaction is Accepted."""
    entry = await load_site(site_entry(ws_port, chargers={"CP1": {}}, options={"auth_mode": "list"}))
    await hass.services.async_call(
        DOMAIN, "set_badge", {"device_id": device_id(hass, entry), "id_tag": "VALID37", "name": "Alice"}, blocking=True
    )
    cp = await chargers("CP1")
    # The site really checks its list: a stranger is refused.
    assert (await cp.authorize("STRANGER")).id_tag_info["status"] == "Invalid"
    await cp.status(1, "Available")
    await chargers.disconnect(cp)
    await wait_for(lambda: state_of(hass, "binary_sensor.cp1_connected") == "off")

    started = datetime.now(UTC) - timedelta(minutes=3)
    cp = await chargers("CP1", boot=False)
    await cp.status(1, "Charging")
    start = await cp.call(
        call.StartTransaction(connector_id=1, id_tag="VALID37", meter_start=500, timestamp=ts(started)),
        suppress=False,
    )
    assert start.id_tag_info["status"] == "Accepted"
    await hass.async_block_till_done()
    assert state_of(hass, "sensor.cp1_status") == "charging"
    assert state_of(hass, "sensor.cp1_badge") == "VALID37"
    session = (await diagnostics_of(hass, entry))["connectors"]["1"]["session"]
    assert session["transaction_id"] == str(start.transaction_id)


async def test_TC_039_offline_transaction(hass: HomeAssistant, site: MockConfigEntry, chargers: ChargerFactory) -> None:
    """A whole session happened offline: start, meter values and stop arrive late; energy counted once."""
    ended = async_capture_events(hass, EVENT_SESSION_ENDED)
    cp = await chargers("CP1")
    await cp.status(1, "Available")
    await chargers.disconnect(cp)
    await wait_for(lambda: state_of(hass, "binary_sensor.cp1_connected") == "off")

    now = datetime.now(UTC)
    cp = await chargers("CP1", boot=False)
    await cp.status(1, "Available")
    start = await cp.call(
        call.StartTransaction(
            connector_id=1, id_tag="OFF39", meter_start=10000, timestamp=ts(now - timedelta(minutes=30))
        ),
        suppress=False,
    )
    assert start.id_tag_info["status"] == "Accepted"
    await cp.call(
        call.MeterValues(
            connector_id=1,
            transaction_id=start.transaction_id,
            meter_value=[{"timestamp": ts(now - timedelta(minutes=15)), "sampledValue": [energy_sample(12000)]}],
        ),
        suppress=False,
    )
    stop = await cp.call(
        call.StopTransaction(
            transaction_id=start.transaction_id,
            meter_stop=14000,
            timestamp=ts(now - timedelta(minutes=5)),
            id_tag="OFF39",
            reason="Local",
            transaction_data=[
                {
                    "timestamp": ts(now - timedelta(minutes=30)),
                    "sampledValue": [energy_sample(10000, "Transaction.Begin")],
                },
                {
                    "timestamp": ts(now - timedelta(minutes=5)),
                    "sampledValue": [energy_sample(14000, "Transaction.End")],
                },
            ],
        ),
        suppress=False,
    )
    assert stop.id_tag_info["status"] == "Accepted"
    await hass.async_block_till_done()

    assert len(ended) == 1
    assert ended[0].data["transaction_id"] == str(start.transaction_id)
    assert ended[0].data["energy_wh"] == pytest.approx(4000.0)
    assert ended[0].data["stop_reason"] == "Local"
    assert datetime.fromisoformat(ended[0].data["started_at"]) == (now - timedelta(minutes=30)).replace(microsecond=0)
    assert datetime.fromisoformat(ended[0].data["stopped_at"]) == (now - timedelta(minutes=5)).replace(microsecond=0)
    assert [r["transaction_id"] for r in site.runtime_data.history] == [str(start.transaction_id)]
    assert float(state_of(hass, "sensor.cp1_energy")) == pytest.approx(14.0)
    assert float(state_of(hass, "sensor.cp1_session_energy")) == 0.0
    assert state_of(hass, "sensor.cp1_badge") == "unknown"
    assert state_of(hass, "sensor.cp1_status") == "available"


async def test_TC_039_offline_transaction_stop_resent_recorded_once(
    hass: HomeAssistant, site: MockConfigEntry, chargers: ChargerFactory
) -> None:
    """The charger resends the queued StopTransaction whose answer it lost: still one session."""
    ended = async_capture_events(hass, EVENT_SESSION_ENDED)
    cp = await chargers("CP1", boot=False)
    now = datetime.now(UTC)
    start = await cp.call(
        call.StartTransaction(
            connector_id=1, id_tag="OFF39", meter_start=10000, timestamp=ts(now - timedelta(minutes=30))
        ),
        suppress=False,
    )
    for _attempt in range(2):
        await cp.call(
            call.StopTransaction(
                transaction_id=start.transaction_id,
                meter_stop=14000,
                timestamp=ts(now - timedelta(minutes=5)),
                reason="Local",
            ),
            suppress=False,
        )
    await hass.async_block_till_done()
    assert [event.data["transaction_id"] for event in ended] == [str(start.transaction_id)]
    assert [record["energy_wh"] for record in site.runtime_data.history] == [4000.0]


# ----------------------------------------------------------------- configuration
async def test_TC_040_1_change_configuration_unknown_key(
    hass: HomeAssistant, site: MockConfigEntry, chargers: ChargerFactory
) -> None:
    cp = await chargers("CP1")
    await after_boot_done(cp)
    answer = await act(hass, site, "change_configuration", key="NoSuchKey", value="1")
    assert answer == {"status": "NotSupported"}
    assert received(cp, "ChangeConfiguration") == [{"key": "NoSuchKey", "value": "1"}]
    assert "NoSuchKey" not in cp.config.configuration
    assert "NoSuchKey" not in (await diagnostics_of(hass, site))["configuration"]


async def test_TC_040_2_change_configuration_rejected(
    hass: HomeAssistant, site: MockConfigEntry, chargers: ChargerFactory
) -> None:
    cp = await chargers("CP1")
    await after_boot_done(cp)
    # A read-only key.
    assert await act(hass, site, "change_configuration", key="NumberOfConnectors", value="4") == {"status": "Rejected"}
    assert cp.config.configuration["NumberOfConnectors"] == "1"
    # A value the charger refuses.
    cp.responses["ChangeConfiguration"] = "Rejected"
    assert await act(hass, site, "change_configuration", key="HeartbeatInterval", value="-5") == {"status": "Rejected"}
    assert cp.config.configuration["HeartbeatInterval"] == "300"
    assert received(cp, "ChangeConfiguration") == [
        {"key": "NumberOfConnectors", "value": "4"},
        {"key": "HeartbeatInterval", "value": "-5"},
    ]
    configuration = (await diagnostics_of(hass, site))["configuration"]
    assert configuration["NumberOfConnectors"] == "1"
    assert configuration["HeartbeatInterval"] == "300"


# ---------------------------------------------------------- local authorization list
async def test_TC_042_1_get_local_list_version_not_supported(
    hass: HomeAssistant, site: MockConfigEntry, chargers: ChargerFactory
) -> None:
    cp = await chargers("CP1")
    cp.responses["GetLocalListVersion"] = -1  # local authorization list not supported
    assert await act(hass, site, "get_local_list_version") == {"listVersion": -1}
    assert received(cp, "GetLocalListVersion") == [{}]


async def test_TC_042_2_get_local_list_version_empty(
    hass: HomeAssistant, site: MockConfigEntry, chargers: ChargerFactory
) -> None:
    cp = await chargers("CP1")
    assert await act(hass, site, "get_local_list_version") == {"listVersion": 0}
    assert received(cp, "GetLocalListVersion") == [{}]


async def test_TC_043_1_send_local_list(hass: HomeAssistant, site: MockConfigEntry, chargers: ChargerFactory) -> None:
    cp = await chargers("CP1")
    entries = [
        {"idTag": "TAG-A", "idTagInfo": {"status": "Accepted", "expiryDate": "2030-01-01T00:00:00Z"}},
        {"idTag": "TAG-B", "idTagInfo": {"status": "Blocked"}},
    ]
    answer = await act(
        hass, site, "send_local_list", list_version=7, update_type="Full", local_authorization_list=entries
    )
    assert answer == {"status": "Accepted"}
    assert received(cp, "SendLocalList") == [
        {"listVersion": 7, "updateType": "Full", "localAuthorizationList": entries}
    ]
    assert await act(hass, site, "get_local_list_version") == {"listVersion": 7}


# -------------------------------------------------------------- firmware, diagnostics
async def test_TC_044_1_firmware_update_downloaded_and_installed(
    hass: HomeAssistant, site: MockConfigEntry, chargers: ChargerFactory
) -> None:
    cp = await chargers("CP1")
    charger = site.runtime_data.backend.chargers["CP1"]
    seen: list[str] = []

    def follow(changed: Charger) -> None:
        status = changed.firmware_status
        if status is not None and seen[-1:] != [status]:
            seen.append(status)

    unsubscribe = charger.add_listener(follow)
    retrieve = datetime.now(UTC).replace(microsecond=0)
    answer = await act(
        hass, site, "update_firmware", location="https://example.com/fw-2.0.0.bin", retrieve_date=retrieve
    )
    assert answer == {}
    assert received(cp, "UpdateFirmware") == [
        {"location": "https://example.com/fw-2.0.0.bin", "retrieveDate": ts(retrieve)}
    ]
    await wait_for(lambda: charger.firmware_status == "Installed")
    unsubscribe()
    assert seen == ["Downloading", "Downloaded", "Installing", "Installed"]
    assert (await diagnostics_of(hass, site))["firmware_status"] == "Installed"

    # The charger reboots on its new firmware: Home Assistant shows the new version.
    await chargers.disconnect(cp)
    cp.config.firmware = "2.0.0"
    await chargers("CP1", config=cp.config)
    await hass.async_block_till_done()
    assert state_of(hass, "sensor.cp1_firmware") == "2.0.0"
    device = async_get_device(hass, (DOMAIN, "CP1"), site.entry_id)
    assert device is not None
    assert device.sw_version == "2.0.0"


async def test_TC_045_1_get_diagnostics(hass: HomeAssistant, site: MockConfigEntry, chargers: ChargerFactory) -> None:
    cp = await chargers("CP1")
    charger = site.runtime_data.backend.chargers["CP1"]
    answer = await act(hass, site, "get_diagnostics", location="ftp://user:pw@example.com/upload/", retries=2)
    assert answer == {"fileName": "diagnostics.log"}
    assert received(cp, "GetDiagnostics") == [{"location": "ftp://user:pw@example.com/upload/", "retries": 2}]
    await wait_for(lambda: charger.diagnostics_status == "Uploaded")
    assert (await diagnostics_of(hass, site))["diagnostics_status"] == "Uploaded"


# --------------------------------------------------------------------- reservations
async def test_TC_046_reservation_local_start_transaction(
    hass: HomeAssistant, site: MockConfigEntry, chargers: ChargerFactory
) -> None:
    cp = await chargers("CP1")
    await cp.status(1, "Available")
    expiry = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=15)
    answer = await act(hass, site, "reserve_now", connector_id=1, expiry_date=expiry, id_tag="RES46", reservation_id=46)
    assert answer == {"status": "Accepted", "reservationId": 46}
    assert received(cp, "ReserveNow") == [{"connectorId": 1, "idTag": "RES46", "reservationId": 46}]
    await wait_for(lambda: state_of(hass, "sensor.cp1_status") == "reserved")

    # The badge holder arrives: the charger starts the session on the reserved connector.
    assert (await cp.authorize("RES46")).id_tag_info["status"] == "Accepted"
    await cp.status(1, "Preparing")
    start = await cp.start_transaction(1, "RES46", reservation_id=46)
    assert start.id_tag_info["status"] == "Accepted"
    await cp.status(1, "Charging")
    await hass.async_block_till_done()
    assert state_of(hass, "sensor.cp1_status") == "charging"
    assert state_of(hass, "sensor.cp1_badge") == "RES46"
    session = (await diagnostics_of(hass, site))["connectors"]["1"]["session"]
    assert session["reservation_id"] == 46
    assert session["transaction_id"] == str(start.transaction_id)


async def test_TC_047_reservation_expires(hass: HomeAssistant, site: MockConfigEntry, chargers: ChargerFactory) -> None:
    cp = await chargers("CP1")
    await cp.status(1, "Available")
    expiry = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    answer = await act(hass, site, "reserve_now", connector_id=1, expiry_date=expiry, id_tag="RES47", reservation_id=47)
    assert answer == {"status": "Accepted", "reservationId": 47}
    await wait_for(lambda: state_of(hass, "sensor.cp1_status") == "reserved")
    (reserve,) = received(cp, "ReserveNow")
    assert reserve["reservationId"] == 47
    # The charger ends the reservation at its expiry and frees the connector.
    await cp.status(1, "Available")
    await hass.async_block_till_done()
    assert state_of(hass, "sensor.cp1_status") == "available"
    # Anyone may charge now, without a reservation.
    start = await cp.start_transaction(1, "OTHER47")
    assert start.id_tag_info["status"] == "Accepted"
    await hass.async_block_till_done()
    assert (await diagnostics_of(hass, site))["connectors"]["1"]["session"]["reservation_id"] is None


@pytest.mark.parametrize("refusal", ["Faulted", "Occupied", "Unavailable", "Rejected"])
async def test_TC_048_reservation_refused(
    hass: HomeAssistant, site: MockConfigEntry, chargers: ChargerFactory, refusal: str
) -> None:
    cp = await chargers("CP1")
    await cp.status(1, "Available")
    cp.responses["ReserveNow"] = refusal
    expiry = datetime.now(UTC) + timedelta(minutes=15)
    answer = await act(hass, site, "reserve_now", connector_id=1, expiry_date=expiry, id_tag="RES48", reservation_id=48)
    assert answer == {"status": refusal, "reservationId": 48}
    assert received(cp, "ReserveNow") == [{"connectorId": 1, "idTag": "RES48", "reservationId": 48}]
    await hass.async_block_till_done()
    assert state_of(hass, "sensor.cp1_status") == "available"


async def test_TC_049_reservation_of_charge_point_transaction(
    hass: HomeAssistant, site: MockConfigEntry, chargers: ChargerFactory
) -> None:
    cp = await chargers("CP1")
    await cp.status(1, "Available")
    expiry = datetime.now(UTC) + timedelta(minutes=15)
    # No connector and no reservation id: connector 0 (the whole charger), an id chosen by Cariflex.
    answer = await act(hass, site, "reserve_now", expiry_date=expiry, id_tag="RES49")
    (reserve,) = received(cp, "ReserveNow")
    assert reserve["connectorId"] == 0
    assert reserve["idTag"] == "RES49"
    reservation_id = reserve["reservationId"]
    assert isinstance(reservation_id, int)
    # The id Cariflex chose comes back to the user, who needs it to cancel.
    assert answer == {"status": "Accepted", "reservationId": reservation_id}

    await cp.status(1, "Preparing")
    start = await cp.start_transaction(1, "RES49", reservation_id=reservation_id)
    assert start.id_tag_info["status"] == "Accepted"
    await cp.status(1, "Charging")
    await hass.async_block_till_done()
    assert state_of(hass, "sensor.cp1_status") == "charging"
    assert state_of(hass, "sensor.cp1_badge") == "RES49"
    assert (await diagnostics_of(hass, site))["connectors"]["1"]["session"]["reservation_id"] == reservation_id


# ------------------------------------------------------------------ remote trigger
async def test_TC_054_trigger_message(hass: HomeAssistant, site: MockConfigEntry, chargers: ChargerFactory) -> None:
    cp = await chargers("CP1")
    await cp.status(1, "Available")
    await after_boot_done(cp)
    await hass.async_block_till_done()
    assert state_of(hass, "sensor.cp1_last_heartbeat") == "unknown"

    assert await act(hass, site, "trigger_message", requested_message="Heartbeat") == {"status": "Accepted"}
    await wait_for(lambda: state_of(hass, "sensor.cp1_last_heartbeat") != "unknown")

    cp.connectors[1].status = "Unavailable"  # changed on the charger, not reported yet
    answer = await act(hass, site, "trigger_message", requested_message="StatusNotification", connector_id=1)
    assert answer == {"status": "Accepted"}
    await wait_for(lambda: state_of(hass, "sensor.cp1_status") == "unavailable")

    cp.connectors[1].power_w = 3000
    answer = await act(hass, site, "trigger_message", requested_message="MeterValues", connector_id=1)
    assert answer == {"status": "Accepted"}
    await wait_for(lambda: state_of(hass, "sensor.cp1_power") == "3.0")

    boots = len(received(cp, "GetConfiguration"))
    assert await act(hass, site, "trigger_message", requested_message="BootNotification") == {"status": "Accepted"}
    await wait_for(lambda: len(received(cp, "GetConfiguration")) > boots)  # the boot was accepted

    cp.responses["TriggerMessage"] = "NotImplemented"
    answer = await act(hass, site, "trigger_message", requested_message="DiagnosticsStatusNotification")
    assert answer == {"status": "NotImplemented"}

    assert received(cp, "TriggerMessage") == [
        {"requestedMessage": "Heartbeat", "connectorId": None},
        {"requestedMessage": "StatusNotification", "connectorId": 1},
        {"requestedMessage": "MeterValues", "connectorId": 1},
        {"requestedMessage": "BootNotification", "connectorId": None},
        {"requestedMessage": "DiagnosticsStatusNotification", "connectorId": None},
    ]


# ------------------------------------------------------------------ smart charging
def charging_profiles(cp: SimCharger16) -> list[dict[str, Any]]:
    return [payload["csChargingProfiles"] for payload in received(cp, "SetChargingProfile")]


async def test_TC_056_central_smart_charging_tx_default_profile(
    hass: HomeAssistant, site: MockConfigEntry, chargers: ChargerFactory
) -> None:
    cp = await chargers("CP1")
    await cp.status(1, "Available")
    await after_boot_done(cp)
    await set_limit(hass, 10)
    (payload,) = received(cp, "SetChargingProfile")
    assert payload["connectorId"] == 1
    profile = payload["csChargingProfiles"]
    assert profile["chargingProfilePurpose"] == "TxDefaultProfile"
    assert "transactionId" not in profile
    assert profile["chargingSchedule"]["chargingRateUnit"] == "A"
    assert profile["chargingSchedule"]["chargingSchedulePeriod"] == [{"startPeriod": 0, "limit": 10.0}]
    assert cp.connectors[1].limit_a == 10.0
    assert float(state_of(hass, "number.cp1_current_limit")) == 10.0

    # A session started afterwards runs under the default profile: nothing more to send.
    await cp.start_transaction(1, "TAG56")
    await hass.async_block_till_done()
    assert len(charging_profiles(cp)) == 1
    assert cp.connectors[1].limit_a == 10.0
    assert float(state_of(hass, "number.cp1_current_limit")) == 10.0
    assert all(p["chargingProfilePurpose"] != "ChargePointMaxProfile" for p in charging_profiles(cp))


async def test_TC_057_central_smart_charging_tx_profile(
    hass: HomeAssistant, site: MockConfigEntry, chargers: ChargerFactory
) -> None:
    cp = await chargers("CP1")
    await after_boot_done(cp)
    await cp.status(1, "Preparing")
    await cp.start_transaction(1, "TAG57")
    await cp.status(1, "Charging")
    await hass.async_block_till_done()
    transaction_id = cp.connectors[1].transaction_id
    await set_limit(hass, 8)
    (payload,) = received(cp, "SetChargingProfile")
    assert payload["connectorId"] == 1
    profile = payload["csChargingProfiles"]
    assert profile["chargingProfilePurpose"] == "TxProfile"
    assert profile["transactionId"] == transaction_id
    assert profile["chargingSchedule"]["chargingSchedulePeriod"] == [{"startPeriod": 0, "limit": 8.0}]
    assert cp.connectors[1].limit_a == 8.0
    assert float(state_of(hass, "number.cp1_current_limit")) == 8.0
    assert all(p["chargingProfilePurpose"] != "ChargePointMaxProfile" for p in charging_profiles(cp))


async def test_TC_059_remote_start_transaction_with_charging_profile(
    hass: HomeAssistant, site: MockConfigEntry, chargers: ChargerFactory
) -> None:
    cp = await chargers("CP1")
    await cp.status(1, "Available")
    profile = {
        "chargingProfileId": 59,
        "stackLevel": 0,
        "chargingProfilePurpose": "TxProfile",
        "chargingProfileKind": "Relative",
        "chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 6.0}]},
    }
    answer = await act(hass, site, "remote_start_transaction", id_tag="TAG59", connector_id=1, charging_profile=profile)
    assert answer == {"status": "Accepted"}
    assert received(cp, "RemoteStartTransaction") == [{"idTag": "TAG59", "connectorId": 1, "chargingProfile": profile}]
    await wait_for(lambda: state_of(hass, "sensor.cp1_status") == "charging")
    assert state_of(hass, "sensor.cp1_badge") == "TAG59"
    assert cp.connectors[1].limit_a == 6.0
    assert cp.connectors[1].power_w == pytest.approx(6 * 230 * 3)


async def test_TC_061_clear_authorization_cache(
    hass: HomeAssistant, site: MockConfigEntry, chargers: ChargerFactory
) -> None:
    cp = await chargers("CP1")
    assert await act(hass, site, "clear_cache") == {"status": "Accepted"}
    cp.responses["ClearCache"] = "Rejected"
    assert await act(hass, site, "clear_cache") == {"status": "Rejected"}
    assert received(cp, "ClearCache") == [{}, {}]


async def test_TC_064_data_transfer_to_central_system(
    hass: HomeAssistant, site: MockConfigEntry, chargers: ChargerFactory
) -> None:
    events = async_capture_events(hass, EVENT_DATA_TRANSFER)
    cp = await chargers("CP1")
    answer = await cp.call(
        call.DataTransfer(vendor_id="com.example", message_id="Hello", data='{"x":1}'), suppress=False
    )
    assert answer.status == "UnknownVendorId"  # no Cariflex feature owns this vendor: automations get the event
    await hass.async_block_till_done()
    assert [event.data for event in events] == [
        {"charger_id": "CP1", "vendor_id": "com.example", "message_id": "Hello", "data": '{"x":1}'}
    ]


async def test_TC_066_get_composite_schedule(
    hass: HomeAssistant, site: MockConfigEntry, chargers: ChargerFactory
) -> None:
    cp = await chargers("CP1")
    await cp.status(1, "Available")
    await after_boot_done(cp)
    answer = await act(hass, site, "get_composite_schedule", connector_id=1, duration=3600, charging_rate_unit="A")
    assert answer["status"] == "Accepted"
    assert answer["connectorId"] == 1
    assert answer["chargingSchedule"]["chargingSchedulePeriod"] == [{"startPeriod": 0, "limit": 32.0}]
    assert received(cp, "GetCompositeSchedule") == [{"connectorId": 1, "duration": 3600, "chargingRateUnit": "A"}]

    await set_limit(hass, 16)
    answer = await act(hass, site, "get_composite_schedule", connector_id=1, duration=3600)
    assert answer["chargingSchedule"]["chargingSchedulePeriod"] == [{"startPeriod": 0, "limit": 16.0}]


async def test_TC_067_clear_charging_profile(
    hass: HomeAssistant, site: MockConfigEntry, chargers: ChargerFactory
) -> None:
    cp = await chargers("CP1")
    await cp.status(1, "Available")
    await after_boot_done(cp)
    await set_limit(hass, 12)
    (payload,) = received(cp, "SetChargingProfile")
    profile_id = payload["csChargingProfiles"]["chargingProfileId"]
    assert cp.connectors[1].limit_a == 12.0

    answer = await act(hass, site, "clear_charging_profile", profile_id=profile_id)
    assert answer == {"status": "Accepted"}
    answer = await act(hass, site, "clear_charging_profile", connector_id=1, purpose="TxDefaultProfile", stack_level=1)
    assert answer == {"status": "Accepted"}
    cp.responses["ClearChargingProfile"] = "Unknown"
    assert await act(hass, site, "clear_charging_profile", profile_id=999) == {"status": "Unknown"}
    assert received(cp, "ClearChargingProfile") == [
        {"id": profile_id},
        {"connectorId": 1, "chargingProfilePurpose": "TxDefaultProfile", "stackLevel": 1},
        {"id": 999},
    ]
    assert cp.connectors[1].limit_a is None


async def test_TC_067_clear_charging_profile_forgets_the_limit(
    hass: HomeAssistant, site: MockConfigEntry, chargers: ChargerFactory
) -> None:
    """After our profile is cleared, Home Assistant no longer shows nor re-applies its limit."""
    cp = await chargers("CP1")
    await cp.status(1, "Available")
    await after_boot_done(cp)
    await set_limit(hass, 12)
    (payload,) = received(cp, "SetChargingProfile")
    profile_id = payload["csChargingProfiles"]["chargingProfileId"]
    assert await act(hass, site, "clear_charging_profile", profile_id=profile_id) == {"status": "Accepted"}
    await hass.async_block_till_done()
    assert float(state_of(hass, "number.cp1_current_limit")) == 32.0  # the charger's maximum: no limit
    await chargers.disconnect(cp)
    cp = await chargers("CP1")
    await after_boot_done(cp)
    await hass.async_block_till_done()
    assert received(cp, "SetChargingProfile") == []


# ---------------------------------------------------------------------- security
async def test_TC_083_basic_authentication(
    hass: HomeAssistant, load_site: LoadSite, chargers: ChargerFactory, ws_port: int
) -> None:
    """Security profile 1: HTTP Basic with the charge point id; wrong or missing password is a 401."""
    await load_site(site_entry(ws_port, chargers={"CP1": {CONF_PASSWORD_HASH: hash_password(PASSWORD)}}))
    for password in ("wrong-password", None):
        with pytest.raises(InvalidStatus) as refused:
            await chargers("CP1", password=password)
        assert refused.value.response.status_code == 401
    # The right password under another user name than the charge point id.
    with pytest.raises(InvalidStatus) as refused:
        await websockets.connect(
            f"ws://127.0.0.1:{ws_port}/CP1",
            subprotocols=["ocpp1.6"],  # type: ignore[list-item]
            additional_headers=basic_auth_header("CP2", PASSWORD),
            open_timeout=5,
        )
    assert refused.value.response.status_code == 401
    await hass.async_block_till_done()
    assert state_of(hass, "binary_sensor.cp1_connected") == "off"

    cp = await chargers("CP1", password=PASSWORD)
    await cp.status(1, "Available")
    await hass.async_block_till_done()
    assert state_of(hass, "binary_sensor.cp1_connected") == "on"
    assert state_of(hass, "sensor.cp1_status") == "available"


async def test_TC_086_tls_with_basic_authentication(
    hass: HomeAssistant, load_site: LoadSite, chargers: ChargerFactory, ws_port: int, tmp_path: Path
) -> None:
    """Security profile 2: TLS (server certificate) plus HTTP Basic."""
    certfile, keyfile = self_signed_cert(tmp_path)
    wss_port = free_port()
    await load_site(
        site_entry(
            ws_port,
            chargers={"CP1": {CONF_PASSWORD_HASH: hash_password(PASSWORD)}},
            data={CONF_WSS_PORT: wss_port, CONF_CERTFILE: str(certfile), CONF_KEYFILE: str(keyfile)},
        )
    )
    client_ssl = ssl.create_default_context(cafile=str(certfile))
    url = f"wss://127.0.0.1:{wss_port}"

    with pytest.raises(InvalidStatus) as refused:
        await chargers("CP1", url=url, ssl_context=client_ssl, password="wrong-password")
    assert refused.value.response.status_code == 401

    cp = await chargers("CP1", url=url, ssl_context=client_ssl, password=PASSWORD)
    ws = cp._connection
    assert ws.transport.get_extra_info("ssl_object") is not None
    await cp.status(1, "Available")
    await hass.async_block_till_done()
    assert state_of(hass, "binary_sensor.cp1_connected") == "on"
    assert state_of(hass, "sensor.cp1_status") == "available"


async def test_TC_088_websocket_subprotocol(
    hass: HomeAssistant, site: MockConfigEntry, chargers: ChargerFactory, ws_port: int
) -> None:
    url = f"ws://127.0.0.1:{ws_port}"
    # Offering ocpp1.6: the server picks it.
    async with raw_charger(url, ["ocpp1.6"]) as (cp, ws):
        assert ws.subprotocol == "ocpp1.6"
        assert (await cp.boot()).status == "Accepted"
        await wait_for(lambda: state_of(hass, "binary_sensor.cp1_connected") == "on")
    await wait_for(lambda: state_of(hass, "binary_sensor.cp1_connected") == "off")

    # No Sec-WebSocket-Protocol header at all: served as OCPP 1.6.
    async with raw_charger(url, None) as (cp, ws):
        assert ws.subprotocol is None
        assert (await cp.boot()).status == "Accepted"
        await cp.status(1, "Available")
        await hass.async_block_till_done()
        assert state_of(hass, "binary_sensor.cp1_connected") == "on"
        assert site.runtime_data.backend.chargers["CP1"].ocpp_version == "1.6"
    await wait_for(lambda: state_of(hass, "binary_sensor.cp1_connected") == "off")

    # Only an unknown version: no subprotocol in the answer, and the server closes.
    ws = await websockets.connect(f"{url}/CP1", subprotocols=["ocpp9.9"], open_timeout=5)  # type: ignore[list-item]
    try:
        assert ws.subprotocol is None
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(2):
                await ws.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1002
    finally:
        await ws.close()
    await hass.async_block_till_done()
    assert state_of(hass, "binary_sensor.cp1_connected") == "off"
