"""OCA OCPP 1.6 compliance test cases (Core profile) for the central system side.

One test per OCA test case, named after it. The charger is a real :class:`SimCharger16`
on a real websocket; the central system is Cariflex inside a real Home Assistant. Each
test drives the case's message sequence and checks what the central system must do:
the answers the charger gets, the requests it receives, and what Home Assistant shows.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
import json
import logging
from typing import Any

from homeassistant.core import Event, HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.cariflex.const import CONF_HEARTBEAT_INTERVAL, DOMAIN, EVENT_SESSION_ENDED
from custom_components.cariflex.ocpp.model import Session
from custom_components.cariflex.runtime import CariflexConfigEntry
from simulator.charger16 import SimCharger16
from tests.conftest import ChargerFactory, charger_device, site_entry, state_of, wait_for

STATUS = "sensor.cp1_status"
STATION_STATUS = "sensor.cp1_station_status"
BADGE = "sensor.cp1_badge"
SESSION_ENERGY = "sensor.cp1_session_energy"
ENERGY = "sensor.cp1_energy"
POWER = "sensor.cp1_power"
CONNECTED = "binary_sensor.cp1_connected"
UNLOCK = "button.cp1_unlock"
RESTART = "button.cp1_restart"


# ---------------------------------------------------------------------------- helpers
def _device_id(hass: HomeAssistant) -> str:
    return charger_device(hass, "CP1").id


async def _action(hass: HomeAssistant, action: str, **data: Any) -> dict[str, Any]:
    """Call a ``cariflex.<action>`` on CP1 and return the charger's answer."""
    response = await hass.services.async_call(
        DOMAIN, action, {"device_id": _device_id(hass), **data}, blocking=True, return_response=True
    )
    assert isinstance(response, dict)
    return dict(response)


async def _press(hass: HomeAssistant, entity_id: str) -> None:
    await hass.services.async_call("button", "press", {"entity_id": entity_id}, blocking=True)


def _session_events(hass: HomeAssistant) -> list[Event]:
    events: list[Event] = []
    hass.bus.async_listen(EVENT_SESSION_ENDED, events.append)
    return events


def _received(cp: SimCharger16, action: str) -> list[dict[str, Any]]:
    return [payload for name, payload in cp.received if name == action]


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def _boot_and_settle(hass: HomeAssistant, cp: SimCharger16) -> None:
    """Wait for the central system's GetConfiguration after boot, then forget it."""
    await wait_for(lambda: bool(_received(cp, "GetConfiguration")))
    await hass.async_block_till_done()
    cp.received.clear()


async def _charging(hass: HomeAssistant, cp: SimCharger16, id_tag: str = "TAG1") -> int:
    """Plug in, start a transaction and charge: the state every session case starts from."""
    await cp.status(1, "Preparing")
    result = await cp.start_transaction(1, id_tag)
    assert result.id_tag_info["status"] == "Accepted"
    await cp.status(1, "Charging")
    cp.connectors[1].power_w = 7000
    await cp.meter_values(1, 3600)  # 7 kWh
    await hass.async_block_till_done()
    assert state_of(hass, STATUS) == "charging"
    assert state_of(hass, BADGE) == id_tag
    assert float(state_of(hass, SESSION_ENERGY)) == 7.0
    return int(result.transaction_id)


def _site_session(hass: HomeAssistant) -> Session | None:
    """The session the central system holds for CP1's connector 1."""
    entry: CariflexConfigEntry = hass.config_entries.async_entries(DOMAIN)[0]
    return entry.runtime_data.backend.chargers["CP1"].connectors[1].session


def _assert_idle(hass: HomeAssistant, status: str = "available") -> None:
    """No session on connector 1."""
    assert state_of(hass, STATUS) == status
    assert state_of(hass, BADGE) == "unknown"
    assert float(state_of(hass, SESSION_ENERGY)) == 0.0


@pytest.fixture
async def list_site(hass: HomeAssistant, socket_enabled: None, ws_port: int) -> AsyncIterator[MockConfigEntry]:
    """A loaded site that only accepts the badges on its list."""
    entry = site_entry(ws_port, chargers={"CP1": {}}, options={"auth_mode": "list"})
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    yield entry
    if entry.state.name == "LOADED":
        await hass.config_entries.async_unload(entry.entry_id)


# ---------------------------------------------------------------------------- boot
async def test_TC_001_cold_boot_charge_point(
    hass: HomeAssistant, site: MockConfigEntry, chargers: ChargerFactory
) -> None:
    """BootNotification is Accepted with the site's interval and the time; statuses and heartbeat follow."""
    cp = await chargers("CP1", boot=False)
    before = datetime.now(UTC).replace(microsecond=0)
    boot = await cp.boot()
    after = datetime.now(UTC)
    assert boot.status == "Accepted"
    assert boot.interval == site.options[CONF_HEARTBEAT_INTERVAL] == 300
    assert before - timedelta(seconds=1) <= _parse_time(boot.current_time) <= after + timedelta(seconds=1)

    assert await cp.status(0, "Available") is not None
    assert await cp.status(1, "Available") is not None
    heartbeat = await cp.heartbeat()
    assert before - timedelta(seconds=1) <= _parse_time(heartbeat.current_time) <= datetime.now(UTC)
    await hass.async_block_till_done()

    assert state_of(hass, CONNECTED) == "on"
    assert state_of(hass, STATION_STATUS) == "available"
    assert state_of(hass, STATUS) == "available"
    assert state_of(hass, "switch.cp1_available") == "on"
    assert state_of(hass, "sensor.cp1_firmware") == "1.0.0"
    assert state_of(hass, "sensor.cp1_last_heartbeat") not in ("unknown", "unavailable")
    device = charger_device(hass, "CP1")
    assert (device.manufacturer, device.model, device.serial_number, device.sw_version) == (
        "Cariflex",
        "SimCharger",
        "SIM-0001",
        "1.0.0",
    )


async def test_TC_001_boot_conf_before_central_requests(
    hass: HomeAssistant, site: MockConfigEntry, chargers: ChargerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """The first frame a booting charger receives is the answer to its BootNotification."""
    caplog.set_level(logging.INFO, logger="ocpp")
    cp = await chargers("CP1", boot=False)
    await cp.boot()
    await wait_for(lambda: bool(_received(cp, "GetConfiguration")))
    frames = [
        json.loads(str(record.args[1]))
        for record in caplog.records
        if record.name == "ocpp" and record.msg == "%s: receive message %s" and isinstance(record.args, tuple)
    ]
    assert frames, "no frame recorded"
    assert frames[0][0] == 3, f"first frame received was {frames[0]}"


# ---------------------------------------------------------------------------- local sessions
async def test_TC_003_regular_charging_session_plugin_first(
    hass: HomeAssistant, site: MockConfigEntry, chargers: ChargerFactory
) -> None:
    """Preparing, Authorize, StartTransaction, Charging, MeterValues, then a local stop."""
    ended = _session_events(hass)
    cp = await chargers("CP1")
    await cp.status(1, "Available")
    cp.connectors[1].energy_wh = 1000

    await cp.status(1, "Preparing")
    await hass.async_block_till_done()
    assert state_of(hass, STATUS) == "preparing"
    auth = await cp.authorize("TAG1")
    assert auth.id_tag_info["status"] == "Accepted"
    start = await cp.start_transaction(1, "TAG1")
    assert start.id_tag_info["status"] == "Accepted"
    assert isinstance(start.transaction_id, int)
    assert start.transaction_id > 0
    await cp.status(1, "Charging")
    cp.connectors[1].power_w = 7400
    await cp.meter_values(1, 1800)  # +3.7 kWh
    await hass.async_block_till_done()
    assert state_of(hass, STATUS) == "charging"
    assert state_of(hass, BADGE) == "TAG1"
    assert float(state_of(hass, POWER)) == 7.4
    assert float(state_of(hass, SESSION_ENERGY)) == 3.7
    assert float(state_of(hass, ENERGY)) == 4.7

    stop = await cp.stop_transaction(1, reason="Local", id_tag="TAG1")
    assert stop.id_tag_info["status"] == "Accepted"
    await cp.status(1, "Finishing")
    await hass.async_block_till_done()
    _assert_idle(hass, "finishing")
    assert float(state_of(hass, POWER)) == 0.0
    assert float(state_of(hass, ENERGY)) == 4.7
    await cp.status(1, "Available")
    await hass.async_block_till_done()
    _assert_idle(hass)
    assert len(ended) == 1
    assert ended[0].data["transaction_id"] == str(start.transaction_id)
    assert ended[0].data["energy_wh"] == 3700
    assert ended[0].data["stop_reason"] == "Local"
    assert ended[0].data["id_tag"] == "TAG1"


async def test_TC_004_1_regular_charging_session_identification_first(
    hass: HomeAssistant, site: MockConfigEntry, chargers: ChargerFactory
) -> None:
    """Authorize before the cable is plugged in, then Preparing, StartTransaction, Charging."""
    cp = await chargers("CP1")
    await cp.status(1, "Available")
    auth = await cp.authorize("TAG2")
    assert auth.id_tag_info["status"] == "Accepted"
    await hass.async_block_till_done()
    _assert_idle(hass)  # an Authorize alone starts nothing

    await cp.status(1, "Preparing")
    start = await cp.start_transaction(1, "TAG2")
    assert start.id_tag_info["status"] == "Accepted"
    assert start.transaction_id > 0
    await cp.status(1, "Charging")
    await hass.async_block_till_done()
    assert state_of(hass, STATUS) == "charging"
    assert state_of(hass, BADGE) == "TAG2"
    assert float(state_of(hass, SESSION_ENERGY)) == 0.0


async def test_TC_005_1_ev_side_disconnected(
    hass: HomeAssistant, site: MockConfigEntry, chargers: ChargerFactory
) -> None:
    """The EV leaves: StopTransaction with reason EVDisconnected ends the session in Home Assistant."""
    ended = _session_events(hass)
    cp = await chargers("CP1")
    transaction_id = await _charging(hass, cp)
    await cp.status(1, "SuspendedEV")
    await hass.async_block_till_done()
    assert state_of(hass, STATUS) == "suspended_ev"

    stop = await cp.stop_transaction(1, reason="EVDisconnected", id_tag="TAG1")
    assert stop.id_tag_info["status"] == "Accepted"
    await cp.status(1, "Finishing")
    await hass.async_block_till_done()
    _assert_idle(hass, "finishing")
    await cp.status(1, "Available")
    await hass.async_block_till_done()
    _assert_idle(hass)
    assert float(state_of(hass, ENERGY)) == 7.0
    assert [(e.data["transaction_id"], e.data["stop_reason"], e.data["energy_wh"]) for e in ended] == [
        (str(transaction_id), "EVDisconnected", 7000)
    ]


async def test_TC_007_regular_start_charging_session_cached_id(
    hass: HomeAssistant, site: MockConfigEntry, chargers: ChargerFactory
) -> None:
    """StartTransaction without a prior Authorize (id tag from the charger's cache) is accepted."""
    cp = await chargers("CP1")
    await cp.status(1, "Preparing")
    start = await cp.start_transaction(1, "CACHED1")
    assert start.id_tag_info["status"] == "Accepted"
    assert start.transaction_id > 0
    await cp.status(1, "Charging")
    await hass.async_block_till_done()
    assert state_of(hass, STATUS) == "charging"
    assert state_of(hass, BADGE) == "CACHED1"
    session = site.runtime_data.backend.chargers["CP1"].connectors[1].session
    assert session is not None
    assert session.transaction_id == str(start.transaction_id)


# ---------------------------------------------------------------------------- remote start / stop
async def test_TC_010_remote_start_charging_session_cable_plugged_in_first(
    hass: HomeAssistant, site: MockConfigEntry, chargers: ChargerFactory
) -> None:
    """Cable in, then RemoteStartTransaction from Home Assistant: the charger starts and charges."""
    cp = await chargers("CP1")
    cp.meter_interval = 0.05
    await _boot_and_settle(hass, cp)
    await cp.status(1, "Preparing")
    await hass.async_block_till_done()
    assert state_of(hass, STATUS) == "preparing"

    answer = await _action(hass, "remote_start_transaction", id_tag="REMOTE1", connector_id=1)
    assert answer == {"status": "Accepted"}
    assert _received(cp, "RemoteStartTransaction") == [{"idTag": "REMOTE1", "connectorId": 1}]
    await wait_for(lambda: state_of(hass, STATUS) == "charging")
    assert state_of(hass, BADGE) == "REMOTE1"
    await wait_for(lambda: float(state_of(hass, SESSION_ENERGY)) > 0)
    assert cp.connectors[1].transaction_id is not None


async def test_TC_011_1_remote_start_charging_session_remote_start_first(
    hass: HomeAssistant, site: MockConfigEntry, chargers: ChargerFactory
) -> None:
    """RemoteStartTransaction (no connector given) before the cable: Preparing, start, Charging follow."""
    cp = await chargers("CP1")
    cp.meter_interval = 0.05
    await _boot_and_settle(hass, cp)
    await cp.status(1, "Available")

    answer = await _action(hass, "remote_start_transaction", id_tag="REMOTE2")
    assert answer == {"status": "Accepted"}
    assert _received(cp, "RemoteStartTransaction") == [{"idTag": "REMOTE2", "connectorId": None}]
    await wait_for(lambda: state_of(hass, STATUS) == "charging")
    assert state_of(hass, BADGE) == "REMOTE2"
    session = site.runtime_data.backend.chargers["CP1"].connectors[1].session
    assert session is not None
    assert session.transaction_id == str(cp.connectors[1].transaction_id)


async def test_TC_012_remote_stop_charging_session(
    hass: HomeAssistant, site: MockConfigEntry, chargers: ChargerFactory
) -> None:
    """RemoteStopTransaction for the running transaction; the charger stops with reason Remote."""
    ended = _session_events(hass)
    cp = await chargers("CP1")
    await _boot_and_settle(hass, cp)
    transaction_id = await _charging(hass, cp)

    answer = await _action(hass, "remote_stop_transaction")
    assert answer == {"status": "Accepted"}
    assert _received(cp, "RemoteStopTransaction") == [{"transactionId": transaction_id}]
    await wait_for(lambda: state_of(hass, STATUS) == "finishing")
    _assert_idle(hass, "finishing")
    assert [(e.data["transaction_id"], e.data["stop_reason"], e.data["energy_wh"]) for e in ended] == [
        (str(transaction_id), "Remote", 7000)
    ]


# ---------------------------------------------------------------------------- reset
async def _reboot(hass: HomeAssistant, chargers: ChargerFactory, cp: SimCharger16) -> SimCharger16:
    """The charger restarts: connection drops, it reconnects, boots and reports its statuses."""
    await chargers.disconnect(cp)
    await wait_for(lambda: state_of(hass, CONNECTED) == "off")
    assert state_of(hass, STATUS) == "unavailable"
    rebooted = await chargers("CP1", boot=False)
    boot = await rebooted.boot()
    assert boot.status == "Accepted"
    assert boot.interval == 300
    await rebooted.status(0, "Available")
    await rebooted.status(1, "Available")
    await hass.async_block_till_done()
    assert state_of(hass, CONNECTED) == "on"
    _assert_idle(hass)
    return rebooted


async def test_TC_013_hard_reset_without_transaction(
    hass: HomeAssistant, site: MockConfigEntry, chargers: ChargerFactory
) -> None:
    """Reset Hard is sent and accepted; the charger reboots and is accepted again."""
    cp = await chargers("CP1")
    await _boot_and_settle(hass, cp)
    await cp.status(1, "Available")

    answer = await _action(hass, "reset", type="hard")
    assert answer == {"status": "Accepted"}
    assert cp.received == [("Reset", {"type": "Hard"})]
    await _reboot(hass, chargers, cp)


async def test_TC_014_soft_reset_without_transaction(
    hass: HomeAssistant, site: MockConfigEntry, chargers: ChargerFactory
) -> None:
    """The Restart button sends Reset Soft; the charger reboots and is accepted again."""
    cp = await chargers("CP1")
    await _boot_and_settle(hass, cp)
    await cp.status(1, "Available")

    await _press(hass, RESTART)
    assert cp.received == [("Reset", {"type": "Soft"})]
    rebooted = await _reboot(hass, chargers, cp)
    # The raw action sends a soft reset by default too.
    await _boot_and_settle(hass, rebooted)
    assert await _action(hass, "reset") == {"status": "Accepted"}
    assert rebooted.received == [("Reset", {"type": "Soft"})]


# ---------------------------------------------------------------------------- unlock
async def test_TC_017_1_unlock_connector_no_charging_session_not_fixed_cable(
    hass: HomeAssistant, site: MockConfigEntry, chargers: ChargerFactory
) -> None:
    """UnlockConnector for connector 1 from the Unlock button and from the action: Unlocked."""
    cp = await chargers("CP1")
    await _boot_and_settle(hass, cp)
    await cp.status(1, "Available")

    await _press(hass, UNLOCK)
    assert cp.received == [("UnlockConnector", {"connectorId": 1})]
    assert await _action(hass, "unlock_connector", connector_id=1) == {"status": "Unlocked"}
    assert cp.received[-1] == ("UnlockConnector", {"connectorId": 1})
    await hass.async_block_till_done()
    _assert_idle(hass)


async def test_TC_018_1_unlock_connector_with_charging_session(
    hass: HomeAssistant, site: MockConfigEntry, chargers: ChargerFactory
) -> None:
    """Unlock during a session: the charger stops with reason UnlockCommand and Home Assistant ends it."""
    ended = _session_events(hass)
    cp = await chargers("CP1")
    await _boot_and_settle(hass, cp)
    transaction_id = await _charging(hass, cp)

    async def stop_on_unlock() -> None:
        await cp.stop_transaction(1, reason="UnlockCommand")
        await cp.status(1, "Finishing")
        await cp.status(1, "Available")

    cp.on_received = lambda action, _payload: cp.spawn(stop_on_unlock()) if action == "UnlockConnector" else None
    await _press(hass, UNLOCK)
    assert cp.received == [("UnlockConnector", {"connectorId": 1})]
    await wait_for(lambda: bool(ended) and state_of(hass, STATUS) == "available")
    _assert_idle(hass)
    assert [(e.data["transaction_id"], e.data["stop_reason"], e.data["energy_wh"]) for e in ended] == [
        (str(transaction_id), "UnlockCommand", 7000)
    ]


# ---------------------------------------------------------------------------- configuration
async def test_TC_019_1_retrieve_all_configuration_keys(
    hass: HomeAssistant, site: MockConfigEntry, chargers: ChargerFactory
) -> None:
    """GetConfiguration without keys returns every key of the charger."""
    cp = await chargers("CP1")
    await _boot_and_settle(hass, cp)

    answer = await _action(hass, "get_configuration")
    assert cp.received == [("GetConfiguration", {})]
    keys = {item["key"]: item for item in answer["configurationKey"]}
    assert set(keys) == set(cp.config.configuration)
    assert keys["HeartbeatInterval"] == {"key": "HeartbeatInterval", "readonly": False, "value": "300"}
    assert keys["NumberOfConnectors"]["readonly"] is True
    assert "unknownKey" not in answer
    # The central system keeps what it read after boot.
    configuration = site.runtime_data.backend.chargers["CP1"].configuration
    assert configuration["SupportedFeatureProfiles"] == cp.config.configuration["SupportedFeatureProfiles"]


async def test_TC_019_2_retrieve_specific_configuration_key(
    hass: HomeAssistant, site: MockConfigEntry, chargers: ChargerFactory
) -> None:
    """GetConfiguration with one key returns that key only; an unknown key is reported as such."""
    cp = await chargers("CP1")
    await _boot_and_settle(hass, cp)

    answer = await _action(hass, "get_configuration", keys=["SupportedFeatureProfiles"])
    assert cp.received == [("GetConfiguration", {"key": ["SupportedFeatureProfiles"]})]
    assert answer["configurationKey"] == [
        {
            "key": "SupportedFeatureProfiles",
            "readonly": True,
            "value": cp.config.configuration["SupportedFeatureProfiles"],
        }
    ]
    assert "unknownKey" not in answer

    answer = await _action(hass, "get_configuration", keys=["MeterValueSampleInterval", "NoSuchKey"])
    assert [item["key"] for item in answer["configurationKey"]] == ["MeterValueSampleInterval"]
    assert answer["unknownKey"] == ["NoSuchKey"]


async def test_TC_021_change_set_configuration(
    hass: HomeAssistant, site: MockConfigEntry, chargers: ChargerFactory
) -> None:
    """ChangeConfiguration sends the key and value as strings; the charger's answer comes back as is."""
    cp = await chargers("CP1")
    await _boot_and_settle(hass, cp)

    answer = await _action(hass, "change_configuration", key="MeterValueSampleInterval", value="5")
    assert answer == {"status": "Accepted"}
    assert cp.received == [("ChangeConfiguration", {"key": "MeterValueSampleInterval", "value": "5"})]
    assert cp.config.configuration["MeterValueSampleInterval"] == "5"
    read_back = await _action(hass, "get_configuration", keys=["MeterValueSampleInterval"])
    assert read_back["configurationKey"][0]["value"] == "5"
    # A read-only key: the charger's refusal is the response data, not an error.
    assert await _action(hass, "change_configuration", key="NumberOfConnectors", value="2") == {"status": "Rejected"}


# ---------------------------------------------------------------------------- authorization


async def _set_badge(hass: HomeAssistant, id_tag: str, **fields: Any) -> None:
    await hass.services.async_call(
        DOMAIN, "set_badge", {"device_id": _device_id(hass), "id_tag": id_tag, **fields}, blocking=True
    )


async def _refused_start(hass: HomeAssistant, cp: SimCharger16, id_tag: str, status: str) -> dict[str, Any]:
    """Preparing, Authorize refused with ``status``; the charger goes back to Available, no session."""
    await cp.status(1, "Preparing")
    auth = await cp.authorize(id_tag)
    info: dict[str, Any] = auth.id_tag_info
    assert info["status"] == status
    await cp.status(1, "Available")
    await hass.async_block_till_done()
    _assert_idle(hass)
    assert _site_session(hass) is None
    return info


async def test_TC_023_1_start_charging_session_authorize_invalid(
    hass: HomeAssistant, list_site: MockConfigEntry, chargers: ChargerFactory
) -> None:
    """A badge not on the site's list is Invalid; one on the list is Accepted."""
    cp = await chargers("CP1")
    await _set_badge(hass, "GOOD1")
    info = await _refused_start(hass, cp, "STRANGER", "Invalid")
    assert "expiry_date" not in info
    assert (await cp.authorize("GOOD1")).id_tag_info["status"] == "Accepted"
    assert (await cp.authorize("good1")).id_tag_info["status"] == "Accepted"  # CiString


@pytest.mark.parametrize(
    "expiry",
    [
        pytest.param("aware", id="utc"),
        # The UI's date-time selector sends naive times in Home Assistant's time zone.
        pytest.param("naive", id="local-naive"),
    ],
)
async def test_TC_023_2_start_charging_session_authorize_expired(
    hass: HomeAssistant, list_site: MockConfigEntry, chargers: ChargerFactory, expiry: str
) -> None:
    """A badge whose expiry has passed is Expired, with its expiry date."""
    cp = await chargers("CP1")
    expired_at = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    value = (
        expired_at.isoformat()
        if expiry == "aware"
        else expired_at.astimezone(dt_util.get_default_time_zone()).replace(tzinfo=None).isoformat(" ")
    )
    await _set_badge(hass, "OLD1", expiry=value)
    await _set_badge(hass, "FRESH1", expiry=(datetime.now(UTC) + timedelta(days=1)).isoformat())
    info = await _refused_start(hass, cp, "OLD1", "Expired")
    assert _parse_time(info["expiry_date"]) == expired_at
    assert (await cp.authorize("FRESH1")).id_tag_info["status"] == "Accepted"


async def test_TC_023_3_start_charging_session_authorize_blocked(
    hass: HomeAssistant, list_site: MockConfigEntry, chargers: ChargerFactory
) -> None:
    """A blocked badge is Blocked."""
    cp = await chargers("CP1")
    await _set_badge(hass, "BAD1", blocked=True)
    await _refused_start(hass, cp, "BAD1", "Blocked")
    await _set_badge(hass, "BAD1", blocked=False)
    assert (await cp.authorize("BAD1")).id_tag_info["status"] == "Accepted"


# ---------------------------------------------------------------------------- rejections
async def test_TC_026_remote_start_charging_session_rejected(
    hass: HomeAssistant, site: MockConfigEntry, chargers: ChargerFactory
) -> None:
    """The charger rejects RemoteStartTransaction: the action returns Rejected, nothing starts."""
    cp = await chargers("CP1")
    await _boot_and_settle(hass, cp)
    await cp.status(1, "Available")
    cp.responses["RemoteStartTransaction"] = "Rejected"

    answer = await _action(hass, "remote_start_transaction", id_tag="REMOTE3", connector_id=1)
    assert answer == {"status": "Rejected"}
    assert cp.received == [("RemoteStartTransaction", {"idTag": "REMOTE3", "connectorId": 1})]
    await hass.async_block_till_done()
    _assert_idle(hass)
    assert _site_session(hass) is None


async def test_TC_028_remote_stop_transaction_rejected(
    hass: HomeAssistant, site: MockConfigEntry, chargers: ChargerFactory
) -> None:
    """The charger rejects RemoteStopTransaction: the action returns Rejected, the session goes on."""
    ended = _session_events(hass)
    cp = await chargers("CP1")
    await _boot_and_settle(hass, cp)
    transaction_id = await _charging(hass, cp)
    cp.responses["RemoteStopTransaction"] = "Rejected"

    answer = await _action(hass, "remote_stop_transaction", transaction_id=transaction_id)
    assert answer == {"status": "Rejected"}
    assert cp.received == [("RemoteStopTransaction", {"transactionId": transaction_id})]
    await hass.async_block_till_done()
    assert state_of(hass, STATUS) == "charging"
    assert state_of(hass, BADGE) == "TAG1"
    assert float(state_of(hass, SESSION_ENERGY)) == 7.0
    assert ended == []
    assert cp.connectors[1].transaction_id == transaction_id


async def test_rejection_surfaces_as_error_on_entities(
    hass: HomeAssistant, site: MockConfigEntry, chargers: ChargerFactory
) -> None:
    """Entity commands turn a refusal into a HomeAssistantError (the raw actions return it as data)."""
    cp = await chargers("CP1")
    await _boot_and_settle(hass, cp)
    await cp.status(1, "Available")
    cp.responses["UnlockConnector"] = "UnlockFailed"
    cp.responses["Reset"] = "Rejected"
    with pytest.raises(HomeAssistantError, match="UnlockFailed"):
        await _press(hass, UNLOCK)
    with pytest.raises(HomeAssistantError, match="Rejected"):
        await _press(hass, RESTART)
    assert await _action(hass, "unlock_connector") == {"status": "UnlockFailed"}
