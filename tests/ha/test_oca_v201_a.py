"""OCA OCPP 2.0.1 compliance test cases for the CSMS side, end to end (part A).

One test per OCA test case, named after it: security profiles (A), provisioning (B),
authorization (C) and transactions (E). A real Home Assistant runs the site,
:class:`SimCharger201` plays the charging station over real websockets. Each test checks
what the station got back, what it received and what Home Assistant shows.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
import contextlib
from datetime import UTC, datetime, timedelta
import math
from pathlib import Path
import ssl
from typing import Any

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from ocpp.exceptions import SecurityError
from ocpp.v201 import call
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events
import websockets
from websockets.exceptions import InvalidStatus

from custom_components.cariflex.const import (
    CONF_AUTH_MODE,
    CONF_CERTFILE,
    CONF_HEARTBEAT_INTERVAL,
    CONF_KEYFILE,
    CONF_PASSWORD_HASH,
    CONF_UNKNOWN_CHARGERS,
    CONF_WSS_PORT,
    DOMAIN,
    EVENT_SESSION_ENDED,
)
from custom_components.cariflex.ocpp.model import Charger
from custom_components.cariflex.ocpp.site import hash_password
from simulator.charger16 import basic_auth_header, now_iso
from simulator.charger201 import (
    ISO14443,
    ITEMS_PER_REPORT,
    READ_ONLY,
    READ_WRITE,
    TX_UPDATED_INTERVAL,
    SimCharger201,
    SimConfig201,
    connect201,
)
from tests.conftest import charger_device, free_port, site_entry, state_of, wait_for
from tests.tls import self_signed_cert

PASSWORD = "s3cret-Passw0rd-201"
STATUS = "sensor.cs1_status"
BADGE = "sensor.cs1_badge"
SESSION_ENERGY = "sensor.cs1_session_energy"
ENERGY = "sensor.cs1_energy"
CONNECTED = "binary_sensor.cs1_connected"
RESTART = "button.cs1_restart"

LoadSite = Callable[[MockConfigEntry], Awaitable[MockConfigEntry]]


# --------------------------------------------------------------------------- fixtures
class StationFactory:
    """Connect simulated OCPP 2.0.1 stations; close them at the end of the test."""

    def __init__(self, port: int) -> None:
        self.url = f"ws://127.0.0.1:{port}"
        self.sockets: dict[int, Any] = {}
        self._open: list[tuple[SimCharger201, Any, asyncio.Task[None]]] = []

    async def __call__(
        self,
        charger_id: str = "CS1",
        *,
        boot: bool = True,
        password: str | None = None,
        config: SimConfig201 | None = None,
        url: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> SimCharger201:
        station, ws, task = await connect201(
            url or self.url, charger_id, password=password, config=config, ssl_context=ssl_context
        )
        self._open.append((station, ws, task))
        self.sockets[id(station)] = ws
        if boot:
            result = await station.boot()
            assert result.status == "Accepted"
        return station

    def socket(self, station: SimCharger201) -> Any:
        """The station's websocket (client side)."""
        return self.sockets[id(station)]

    async def close_all(self) -> None:
        for station, ws, task in self._open:
            # Stop the message loop first, so that no follow-up starts after the others are cancelled.
            task.cancel()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await task
            with contextlib.suppress(Exception):
                await ws.close()
            await station.stop_tasks()
        self._open.clear()


@pytest.fixture
async def stations(ws_port: int) -> AsyncIterator[StationFactory]:
    """Simulated OCPP 2.0.1 stations on the site's port."""
    factory = StationFactory(ws_port)
    yield factory
    await factory.close_all()


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


@pytest.fixture
async def site201(load_site: LoadSite, ws_port: int) -> MockConfigEntry:
    """A site that knows station CS1 (open badge mode)."""
    return await load_site(site_entry(ws_port, chargers={"CS1": {}}))


@pytest.fixture
async def list_site(load_site: LoadSite, ws_port: int) -> MockConfigEntry:
    """A site that knows station CS1 and accepts only the badges on its list."""
    return await load_site(site_entry(ws_port, chargers={"CS1": {}}, options={CONF_AUTH_MODE: "list"}))


# --------------------------------------------------------------------------- helpers
def received(station: SimCharger201, action: str) -> list[dict[str, Any]]:
    """What the station received for ``action`` (camelCase, as on the wire)."""
    return [payload for name, payload in station.received if name == action]


def model_of(entry: MockConfigEntry, charger_id: str = "CS1") -> Charger:
    """The central system's model of a station."""
    charger: Charger = entry.runtime_data.backend.chargers[charger_id]
    return charger


async def settled(hass: HomeAssistant, entry: MockConfigEntry, station: SimCharger201) -> None:
    """Wait until the base report asked after the boot is stored, then forget what was received."""
    charger = model_of(entry, station.id)
    await wait_for(lambda: len(charger.configuration) >= len(station.config.device_model))
    await hass.async_block_till_done()
    station.received.clear()


async def wait_for_history(entry: MockConfigEntry, count: int = 1) -> dict[str, Any]:
    """The last finished session once ``count`` sessions are recorded."""
    await wait_for(lambda: len(entry.runtime_data.history) >= count)
    record: dict[str, Any] = entry.runtime_data.history[-1]
    return record


async def act(hass: HomeAssistant, action: str, charger_id: str = "CS1", **data: Any) -> dict[str, Any]:
    """Run a ``cariflex.<action>`` on a station and return its answer."""
    response = await hass.services.async_call(
        DOMAIN,
        action,
        {"device_id": charger_device(hass, charger_id).id, **data},
        blocking=True,
        return_response=True,
    )
    assert isinstance(response, dict)
    return dict(response)


async def set_badge(hass: HomeAssistant, id_tag: str, **data: Any) -> None:
    await hass.services.async_call(
        DOMAIN, "set_badge", {"device_id": charger_device(hass, "CS1").id, "id_tag": id_tag, **data}, blocking=True
    )


async def event_with_token(
    station: SimCharger201,
    evse_id: int,
    id_token: str,
    *,
    trigger_reason: str = "Authorized",
    charging_state: str = "EVConnected",
) -> Any:
    """TransactionEvent Updated carrying the idToken presented after the transaction started."""
    evse = station.evses[evse_id]
    assert evse.transaction_id is not None
    evse.id_token, evse.token_type, evse.charging_state = id_token, ISO14443, charging_state
    seq_no = evse.seq_no
    evse.seq_no += 1
    return await station.call(
        call.TransactionEvent(
            event_type="Updated",
            timestamp=now_iso(),
            trigger_reason=trigger_reason,
            seq_no=seq_no,
            transaction_info={"transaction_id": evse.transaction_id, "charging_state": charging_state},
            evse={"id": evse_id, "connector_id": 1},
            id_token={"id_token": id_token, "type": ISO14443},
        ),
        suppress=False,
    )


def answered_calls(station: SimCharger201, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """From now on, the actions the station sent and the CSMS answered, in order."""
    answered: list[str] = []
    send = station.call

    async def spy(payload: Any, *args: Any, **kwargs: Any) -> Any:
        result = await send(payload, *args, **kwargs)
        answered.append(type(payload).__name__)
        return result

    monkeypatch.setattr(station, "call", spy)
    return answered


def kwh(hass: HomeAssistant, entity_id: str) -> float:
    return float(state_of(hass, entity_id))


# ----------------------------------------------------------------- A: security
async def test_TC_A_01_basic_authentication_valid_credentials(
    hass: HomeAssistant, load_site: LoadSite, stations: StationFactory, ws_port: int
) -> None:
    """Security profile 1: HTTP Basic, the user name is the charging station id."""
    entry = await load_site(site_entry(ws_port, chargers={"CS1": {CONF_PASSWORD_HASH: hash_password(PASSWORD)}}))
    station = await stations("CS1", boot=False, password=PASSWORD)
    assert stations.socket(station).subprotocol == "ocpp2.0.1"
    boot = await station.boot()
    assert boot.status == "Accepted"
    await station.status(1, "Available")
    await hass.async_block_till_done()
    assert state_of(hass, CONNECTED) == "on"
    assert state_of(hass, STATUS) == "available"
    assert model_of(entry).ocpp_version == "2.0.1"


async def test_TC_A_02_basic_authentication_invalid_credentials(
    hass: HomeAssistant, load_site: LoadSite, stations: StationFactory, ws_port: int
) -> None:
    """Wrong, missing or foreign credentials are refused at the upgrade with HTTP 401."""
    entry = await load_site(site_entry(ws_port, chargers={"CS1": {CONF_PASSWORD_HASH: hash_password(PASSWORD)}}))
    for password in ("wrong-password-201", "", None):
        with pytest.raises(InvalidStatus) as refused:
            await stations("CS1", boot=False, password=password)
        assert refused.value.response.status_code == 401
        assert "Basic" in refused.value.response.headers.get("WWW-Authenticate", "")
    # The right password under a user name other than the station id.
    with pytest.raises(InvalidStatus) as refused:
        await websockets.connect(
            f"ws://127.0.0.1:{ws_port}/CS1",
            subprotocols=["ocpp2.0.1"],  # type: ignore[list-item]
            additional_headers=basic_auth_header("CS2", PASSWORD),
            open_timeout=5,
        )
    assert refused.value.response.status_code == 401
    await hass.async_block_till_done()
    assert state_of(hass, CONNECTED) == "off"
    assert not model_of(entry).connected
    assert model_of(entry).boot_status is None


async def test_TC_A_03_tls_server_certificate_with_basic_authentication(
    hass: HomeAssistant, load_site: LoadSite, stations: StationFactory, ws_port: int, tmp_path: Path
) -> None:
    """Security profile 2: TLS 1.2+ with the CSMS certificate, plus HTTP Basic."""
    certfile, keyfile = self_signed_cert(tmp_path)
    wss_port = free_port()
    await load_site(
        site_entry(
            ws_port,
            chargers={"CS1": {CONF_PASSWORD_HASH: hash_password(PASSWORD)}},
            data={CONF_WSS_PORT: wss_port, CONF_CERTFILE: str(certfile), CONF_KEYFILE: str(keyfile)},
        )
    )
    client_ssl = ssl.create_default_context(cafile=str(certfile))
    url = f"wss://127.0.0.1:{wss_port}"

    with pytest.raises(InvalidStatus) as refused:
        await stations("CS1", url=url, ssl_context=client_ssl, password="wrong-password-201")
    assert refused.value.response.status_code == 401

    station = await stations("CS1", url=url, ssl_context=client_ssl, password=PASSWORD, boot=False)
    ws = stations.socket(station)
    tls = ws.transport.get_extra_info("ssl_object")
    assert tls is not None
    assert tls.version() in ("TLSv1.2", "TLSv1.3")
    assert ws.subprotocol == "ocpp2.0.1"
    assert (await station.boot()).status == "Accepted"
    await station.status(1, "Available")
    await hass.async_block_till_done()
    assert state_of(hass, CONNECTED) == "on"
    assert state_of(hass, STATUS) == "available"


# ----------------------------------------------------------------- B: provisioning
async def test_TC_B_01_cold_boot_accepted(
    hass: HomeAssistant, load_site: LoadSite, stations: StationFactory, ws_port: int
) -> None:
    """Accepted with the site's interval; then the CSMS reads the device model (base report)."""
    entry = await load_site(site_entry(ws_port, chargers={"CS1": {}}, options={CONF_HEARTBEAT_INTERVAL: 120}))
    config = SimConfig201(vendor="Acme", model="Wallbox 201", serial="ACME-0042", firmware="2.3.4", evses=2)
    station = await stations("CS1", boot=False, config=config)
    before = datetime.now(UTC)
    boot = await station.boot()
    assert boot.status == "Accepted"
    assert boot.interval == 120
    assert abs(datetime.fromisoformat(boot.current_time.replace("Z", "+00:00")) - before) < timedelta(seconds=5)
    assert station.get_variable("OCPPCommCtrlr", "HeartbeatInterval") == "120"

    # The CSMS asks for the whole device model and keeps it.
    await wait_for(lambda: bool(received(station, "GetBaseReport")))
    assert received(station, "GetBaseReport")[0]["reportBase"] == "FullInventory"
    charger = model_of(entry)
    await wait_for(lambda: len(charger.configuration) == len(config.device_model))
    assert charger.configuration["SecurityCtrlr/Identity"] == "CS1"
    assert charger.configuration["OCPPCommCtrlr/MessageTimeout.Default"] == "30"
    assert charger.configuration["EVSE#2/AvailabilityState"] == "Available"
    assert charger.configuration["SecurityCtrlr/BasicAuthPassword"] is None  # write-only: never reported
    assert [c.connector_id for c in charger.outlets] == [1, 2]

    heartbeat = await station.heartbeat()
    assert heartbeat.current_time
    await hass.async_block_till_done()
    device = charger_device(hass, "CS1")
    assert (device.manufacturer, device.model, device.serial_number, device.sw_version) == (
        "Acme",
        "Wallbox 201",
        "ACME-0042",
        "2.3.4",
    )
    assert state_of(hass, "sensor.cs1_firmware") == "2.3.4"
    assert state_of(hass, CONNECTED) == "on"
    assert state_of(hass, "sensor.cs1_last_heartbeat") not in ("unknown", "unavailable")
    # Both EVSEs from the device model have their entities, before any StatusNotification.
    assert hass.states.get(STATUS) is not None
    assert hass.states.get("sensor.cs1_connector_2_status") is not None


async def test_TC_B_02_cold_boot_pending(
    hass: HomeAssistant, load_site: LoadSite, stations: StationFactory, ws_port: int
) -> None:
    """Unknown station on an "ask" site: Pending, nothing else accepted until the user confirms."""
    entry = await load_site(site_entry(ws_port, options={CONF_UNKNOWN_CHARGERS: "ask"}))
    station = await stations("CS1", boot=False)
    boot = await station.boot()
    assert boot.status == "Pending"
    assert boot.interval > 0
    with pytest.raises(SecurityError):
        await station.heartbeat()
    with pytest.raises(SecurityError):
        await station.status(1, "Available")
    with pytest.raises(SecurityError):
        await station.transaction_started(1, "TAG1")
    await hass.async_block_till_done()
    assert hass.states.get(CONNECTED) is None
    assert model_of(entry).connectors.get(1) is None or model_of(entry).connectors[1].session is None

    flows = [flow for flow in hass.config_entries.flow.async_progress() if flow["handler"] == DOMAIN]
    assert len(flows) == 1
    assert flows[0]["step_id"] == "discovery_confirm"
    assert flows[0]["context"]["title_placeholders"] == {"charger": "CS1"}
    result = await hass.config_entries.flow.async_configure(flows[0]["flow_id"], {"name": "CS1"})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "charger_added"

    # Confirmed: the CSMS asks the station to boot again, and accepts it.
    await wait_for(lambda: bool(received(station, "TriggerMessage")))
    assert received(station, "TriggerMessage") == [{"requestedMessage": "BootNotification"}]
    await wait_for(lambda: station.boot_result.status == "Accepted")
    assert station.boot_result.interval == 300
    await wait_for(lambda: bool(received(station, "GetBaseReport")))
    await station.heartbeat()
    await station.status(1, "Available")
    await hass.async_block_till_done()
    assert state_of(hass, CONNECTED) == "on"
    assert state_of(hass, STATUS) == "available"


async def test_TC_B_02_unknown_station_skipping_the_boot_gets_security_errors(
    hass: HomeAssistant, load_site: LoadSite, stations: StationFactory, ws_port: int
) -> None:
    entry = await load_site(site_entry(ws_port, options={CONF_UNKNOWN_CHARGERS: "ask"}))
    station = await stations("CS1", boot=False)
    with pytest.raises(SecurityError):
        await station.heartbeat()
    with pytest.raises(SecurityError):
        await station.status(1, "Available")
    with pytest.raises(SecurityError):
        await station.transaction_started(1, "TAG1")
    assert all(connector.session is None for connector in model_of(entry).connectors.values())


async def test_TC_B_06_get_variables_single_value(
    hass: HomeAssistant, site201: MockConfigEntry, stations: StationFactory
) -> None:
    config = SimConfig201(device_model={TX_UPDATED_INTERVAL: ("42", READ_WRITE)})
    station = await stations("CS1", config=config)
    await settled(hass, site201, station)
    answer = await act(hass, "get_variables", variables=["SampledDataCtrlr/TxUpdatedInterval"])
    assert received(station, "GetVariables") == [
        {"getVariableData": [{"component": {"name": "SampledDataCtrlr"}, "variable": {"name": "TxUpdatedInterval"}}]}
    ]
    assert answer == {
        "getVariableResult": [
            {
                "attributeStatus": "Accepted",
                "attributeValue": "42",
                "component": {"name": "SampledDataCtrlr"},
                "variable": {"name": "TxUpdatedInterval"},
            }
        ]
    }


async def test_TC_B_07_get_variables_multiple_values(
    hass: HomeAssistant, site201: MockConfigEntry, stations: StationFactory
) -> None:
    """Several variables in one request; unknown ones come back as UnknownVariable / UnknownComponent."""
    station = await stations("CS1")
    await settled(hass, site201, station)
    message_timeout = {
        "component": {"name": "OCPPCommCtrlr"},
        "variable": {"name": "MessageTimeout", "instance": "Default"},
    }
    evse_state = {"component": {"name": "EVSE", "evse": {"id": 1}}, "variable": {"name": "AvailabilityState"}}
    answer = await act(
        hass,
        "get_variables",
        variables=[
            "OCPPCommCtrlr/HeartbeatInterval",
            "AuthCtrlr/AuthorizeRemoteStart",
            message_timeout,
            evse_state,
            "OCPPCommCtrlr/NoSuchVariable",
            "NoSuchCtrlr/Enabled",
            "SecurityCtrlr/BasicAuthPassword",
        ],
    )
    sent = received(station, "GetVariables")
    assert len(sent) == 1
    assert len(sent[0]["getVariableData"]) == 7
    assert sent[0]["getVariableData"][2] == message_timeout
    results = answer["getVariableResult"]
    assert [(r["attributeStatus"], r.get("attributeValue")) for r in results] == [
        ("Accepted", "300"),
        ("Accepted", "false"),
        ("Accepted", "30"),
        ("Accepted", "Available"),
        ("UnknownVariable", None),
        ("UnknownComponent", None),
        ("Rejected", None),  # write-only: never read back
    ]
    assert results[4]["variable"] == {"name": "NoSuchVariable"}
    assert results[5]["component"] == {"name": "NoSuchCtrlr"}


async def test_TC_B_09_set_variables_single_value(
    hass: HomeAssistant, site201: MockConfigEntry, stations: StationFactory
) -> None:
    """SetVariables of one variable; the CSMS's copy of the device model follows."""
    station = await stations("CS1")
    await settled(hass, site201, station)
    charger = model_of(site201)
    assert charger.configuration["SampledDataCtrlr/TxUpdatedInterval"] == "10"

    answer = await act(hass, "set_variables", variables={"SampledDataCtrlr/TxUpdatedInterval": 30})
    assert received(station, "SetVariables") == [
        {
            "setVariableData": [
                {
                    "component": {"name": "SampledDataCtrlr"},
                    "variable": {"name": "TxUpdatedInterval"},
                    "attributeValue": "30",
                }
            ]
        }
    ]
    assert [r["attributeStatus"] for r in answer["setVariableResult"]] == ["Accepted"]
    assert station.get_variable("SampledDataCtrlr", "TxUpdatedInterval") == "30"
    assert station.meter_interval == 30
    assert charger.configuration["SampledDataCtrlr/TxUpdatedInterval"] == "30"

    # The 1.6 action change_configuration is the same SetVariables on a 2.0.1 station.
    answer = await act(hass, "change_configuration", key="AuthCtrlr/AuthorizeRemoteStart", value="true")
    assert [r["attributeStatus"] for r in answer["setVariableResult"]] == ["Accepted"]
    assert station.get_variable("AuthCtrlr", "AuthorizeRemoteStart") == "true"
    assert charger.configuration["AuthCtrlr/AuthorizeRemoteStart"] == "true"


async def test_TC_B_09_set_variables_with_instance_updates_the_same_copy(
    hass: HomeAssistant, site201: MockConfigEntry, stations: StationFactory
) -> None:
    station = await stations("CS1")
    await settled(hass, site201, station)
    charger = model_of(site201)
    assert charger.configuration["OCPPCommCtrlr/MessageTimeout.Default"] == "30"
    answer = await act(
        hass,
        "set_variables",
        variables=[
            {
                "component": {"name": "OCPPCommCtrlr"},
                "variable": {"name": "MessageTimeout", "instance": "Default"},
                "attributeValue": "45",
            }
        ],
    )
    assert [r["attributeStatus"] for r in answer["setVariableResult"]] == ["Accepted"]
    assert station.get_variable("OCPPCommCtrlr", "MessageTimeout", variable_instance="Default") == "45"
    assert charger.configuration["OCPPCommCtrlr/MessageTimeout.Default"] == "45"
    assert "OCPPCommCtrlr/MessageTimeout" not in charger.configuration


async def test_TC_B_10_set_variables_multiple_values(
    hass: HomeAssistant, site201: MockConfigEntry, stations: StationFactory
) -> None:
    """Several variables at once: a read-only one and a bad value are Rejected, the others applied."""
    station = await stations("CS1")
    await settled(hass, site201, station)
    charger = model_of(site201)
    answer = await act(
        hass,
        "set_variables",
        variables={
            "SampledDataCtrlr/TxUpdatedInterval": 15,
            "AuthCtrlr/AuthorizeRemoteStart": "true",
            "SecurityCtrlr/SecurityProfile": 2,
            "OCPPCommCtrlr/HeartbeatInterval": "often",
        },
    )
    assert len(received(station, "SetVariables")[0]["setVariableData"]) == 4
    results = answer["setVariableResult"]
    assert [r["attributeStatus"] for r in results] == ["Accepted", "Accepted", "Rejected", "Rejected"]
    assert results[2]["attributeStatusInfo"] == {"reasonCode": "ReadOnly"}
    assert results[3]["attributeStatusInfo"] == {"reasonCode": "InvalidValue"}
    assert station.get_variable("SampledDataCtrlr", "TxUpdatedInterval") == "15"
    assert station.get_variable("SecurityCtrlr", "SecurityProfile") == "1"
    # Only what the station accepted changes in the CSMS's copy.
    assert charger.configuration["SampledDataCtrlr/TxUpdatedInterval"] == "15"
    assert charger.configuration["AuthCtrlr/AuthorizeRemoteStart"] == "true"
    assert charger.configuration["SecurityCtrlr/SecurityProfile"] == "1"
    assert charger.configuration["OCPPCommCtrlr/HeartbeatInterval"] == "300"


async def test_TC_B_12_get_base_report_configuration_inventory(
    hass: HomeAssistant, site201: MockConfigEntry, stations: StationFactory
) -> None:
    station = await stations("CS1")
    await settled(hass, site201, station)
    answer = await act(hass, "get_base_report", report_base="ConfigurationInventory")
    sent = received(station, "GetBaseReport")
    assert len(sent) == 1
    assert sent[0]["reportBase"] == "ConfigurationInventory"
    assert isinstance(sent[0]["requestId"], int)
    assert answer["status"] == "Accepted"
    assert answer["complete"] is True
    expected = {
        (key[0], key[3], key[4])
        for key, (_, mutability) in station.config.device_model.items()
        if mutability != READ_ONLY
    }
    reported = {
        (item["component"]["name"], item["variable"]["name"], item["variable"].get("instance"))
        for item in answer["reportData"]
    }
    assert reported == expected
    assert len(answer["reportData"]) == len(expected)
    assert all(item["variableAttribute"][0]["mutability"] != READ_ONLY for item in answer["reportData"])
    interval = next(i for i in answer["reportData"] if i["variable"]["name"] == "HeartbeatInterval")
    assert interval["variableAttribute"][0]["value"] == "300"

    # A station that does not support the report: its answer comes back, without waiting for data.
    station.responses["GetBaseReport"] = "NotSupported"
    assert await act(hass, "get_base_report", report_base="ConfigurationInventory") == {"status": "NotSupported"}


async def test_TC_B_13_get_base_report_full_inventory(
    hass: HomeAssistant, site201: MockConfigEntry, stations: StationFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The full inventory comes in several NotifyReport parts (tbc): the action waits for the last."""
    config = SimConfig201(evses=2, device_model={ITEMS_PER_REPORT: ("4", READ_ONLY)})
    station = await stations("CS1", config=config)
    await settled(hass, site201, station)
    parts: list[Any] = []
    send = station.call

    async def spy(payload: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(payload, call.NotifyReport):
            parts.append(payload)
        return await send(payload, *args, **kwargs)

    monkeypatch.setattr(station, "call", spy)
    answer = await act(hass, "get_base_report", report_base="FullInventory")
    total = len(config.device_model)
    assert received(station, "GetBaseReport")[0]["reportBase"] == "FullInventory"
    assert answer["status"] == "Accepted"
    assert answer["complete"] is True
    assert len(answer["reportData"]) == total
    assert len(parts) == math.ceil(total / 4) > 2
    assert [p.seq_no for p in parts] == list(range(len(parts)))
    assert [p.tbc for p in parts] == [True] * (len(parts) - 1) + [False]
    assert {p.request_id for p in parts} == {received(station, "GetBaseReport")[0]["requestId"]}
    names = {(i["component"]["name"], (i["component"].get("evse") or {}).get("id")) for i in answer["reportData"]}
    assert {("EVSE", 1), ("EVSE", 2), ("Connector", 2), ("SecurityCtrlr", None)} <= names
    assert len(model_of(site201).configuration) >= total


async def test_TC_B_20_reset_on_idle_without_transaction(
    hass: HomeAssistant, site201: MockConfigEntry, stations: StationFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The restart button sends Reset OnIdle; the station reboots and is accepted again."""
    station = await stations("CS1")
    await station.status(1, "Available")
    await settled(hass, site201, station)
    answered = answered_calls(station, monkeypatch)
    await hass.services.async_call("button", "press", {"entity_id": RESTART}, blocking=True)
    assert received(station, "Reset") == [{"type": "OnIdle"}]
    # The station reboots (BootNotification RemoteReset), is accepted and reports its EVSE again.
    await wait_for(lambda: "StatusNotification" in answered)
    assert answered.index("BootNotification") < answered.index("StatusNotification")
    assert station.boot_result.status == "Accepted"
    await wait_for(lambda: bool(received(station, "GetBaseReport")))  # the device model is read again
    await hass.async_block_till_done()
    assert model_of(site201).boot_status == "Accepted"
    assert state_of(hass, CONNECTED) == "on"
    assert state_of(hass, STATUS) == "available"


async def test_TC_B_21_reset_immediate_without_transaction(
    hass: HomeAssistant, site201: MockConfigEntry, stations: StationFactory
) -> None:
    station = await stations("CS1")
    await station.status(1, "Available")
    await settled(hass, site201, station)
    answer = await act(hass, "reset", type="hard")
    assert answer == {"status": "Accepted"}
    assert received(station, "Reset") == [{"type": "Immediate"}]
    await wait_for(lambda: bool(received(station, "GetBaseReport")))
    assert station.boot_result.status == "Accepted"
    await hass.async_block_till_done()
    assert state_of(hass, STATUS) == "available"

    # A station refusing the reset: the answer is returned as it is.
    station.responses["Reset"] = "Rejected"
    assert await act(hass, "reset", type="hard") == {"status": "Rejected"}


async def test_TC_B_25_reset_with_ongoing_transaction(
    hass: HomeAssistant, site201: MockConfigEntry, stations: StationFactory
) -> None:
    """OnIdle is Scheduled while charging; Immediate ends the transaction (ImmediateReset)."""
    ended = async_capture_events(hass, EVENT_SESSION_ENDED)
    station = await stations("CS1")
    await settled(hass, site201, station)
    station.evses[1].energy_wh = 1000.0
    await station.status(1, "Occupied")
    await station.transaction_started(1, "TAG25")
    transaction_id = station.evses[1].transaction_id
    await station.transaction_updated(1, 360)  # 740 Wh at 7.4 kW
    await hass.async_block_till_done()
    assert state_of(hass, STATUS) == "charging"

    assert await act(hass, "reset", type="soft") == {"status": "Scheduled"}
    assert received(station, "Reset") == [{"type": "OnIdle"}]
    await hass.async_block_till_done()
    assert station.evses[1].transaction_id == transaction_id
    assert state_of(hass, BADGE) == "TAG25"

    assert await act(hass, "reset", type="hard") == {"status": "Accepted"}
    await wait_for(lambda: bool(site201.runtime_data.history))
    record = site201.runtime_data.history[-1]
    assert record["transaction_id"] == transaction_id
    assert record["stop_reason"] == "ImmediateReset"
    assert record["id_tag"] == "TAG25"
    assert record["energy_wh"] == pytest.approx(740)
    await wait_for(lambda: state_of(hass, STATUS) == "available")
    assert len(ended) == 1
    assert kwh(hass, SESSION_ENERGY) == 0
    assert state_of(hass, BADGE) == "unknown"
    assert station.boot_result.status == "Accepted"


async def test_TC_B_25_restart_button_during_a_transaction_is_scheduled(
    hass: HomeAssistant, site201: MockConfigEntry, stations: StationFactory
) -> None:
    station = await stations("CS1")
    await settled(hass, site201, station)
    await station.status(1, "Occupied")
    await station.transaction_started(1, "TAG25")
    await hass.services.async_call("button", "press", {"entity_id": RESTART}, blocking=True)
    assert received(station, "Reset") == [{"type": "OnIdle"}]


# ----------------------------------------------------------------- C: authorization
async def test_TC_C_02_authorization_invalid_unknown_id_token(
    hass: HomeAssistant, list_site: MockConfigEntry, stations: StationFactory
) -> None:
    """List mode: an idToken not on the list is Invalid; nothing is charged to it."""
    station = await stations("CS1")
    await settled(hass, list_site, station)
    await set_badge(hass, "KNOWN-C02")
    answer = await station.authorize("UNKNOWN-C02")
    assert answer.id_token_info["status"] == "Invalid"
    assert (await station.authorize("KNOWN-C02")).id_token_info["status"] == "Accepted"
    await hass.async_block_till_done()
    assert state_of(hass, BADGE) == "unknown"
    assert kwh(hass, SESSION_ENERGY) == 0

    # A station that starts the transaction anyway is told Invalid and stops it (Deauthorized).
    await station.run_session(1, "UNKNOWN-C02", count=0)
    started = await wait_for_history(list_site)
    assert started["id_tag"] == "UNKNOWN-C02"
    assert started["stop_reason"] == "DeAuthorized"
    assert started["energy_wh"] == 0
    await hass.async_block_till_done()
    assert state_of(hass, STATUS) == "available"
    assert state_of(hass, BADGE) == "unknown"


async def test_TC_C_06_authorization_blocked_and_expired_id_tokens(
    hass: HomeAssistant, list_site: MockConfigEntry, stations: StationFactory
) -> None:
    station = await stations("CS1")
    await settled(hass, list_site, station)
    await set_badge(hass, "BLOCKED-C06", blocked=True)
    await set_badge(hass, "EXPIRED-C06", expiry=(datetime.now(UTC) - timedelta(days=1)).isoformat())
    await set_badge(hass, "VALID-C06", expiry=(datetime.now(UTC) + timedelta(days=1)).isoformat())

    assert (await station.authorize("BLOCKED-C06")).id_token_info["status"] == "Blocked"
    assert (await station.authorize("EXPIRED-C06")).id_token_info["status"] == "Expired"
    assert (await station.authorize("blocked-c06")).id_token_info["status"] == "Blocked"  # case-insensitive
    valid = (await station.authorize("VALID-C06")).id_token_info
    assert valid["status"] == "Accepted"
    assert "cache_expiry_date_time" in valid  # snake_case: the ocpp library converts answers

    # The same answers in TransactionEvent.idTokenInfo.
    await station.status(1, "Occupied")
    started = await station.transaction_started(1, "BLOCKED-C06")
    assert started.id_token_info["status"] == "Blocked"
    await station.transaction_ended(1, "DeAuthorized", "Deauthorized")
    started = await station.transaction_started(1, "EXPIRED-C06")
    assert started.id_token_info["status"] == "Expired"
    await station.transaction_ended(1, "DeAuthorized", "Deauthorized")
    await station.status(1, "Available")
    history = list_site.runtime_data.history
    assert [(r["id_tag"], r["stop_reason"], r["energy_wh"]) for r in history] == [
        ("BLOCKED-C06", "DeAuthorized", 0),
        ("EXPIRED-C06", "DeAuthorized", 0),
    ]
    await hass.async_block_till_done()
    assert state_of(hass, STATUS) == "available"


async def test_TC_C_07_authorization_no_authorization_id_token(
    hass: HomeAssistant, list_site: MockConfigEntry, stations: StationFactory
) -> None:
    """idToken type NoAuthorization (empty idToken) is accepted, even in list mode."""
    station = await stations("CS1")
    await settled(hass, list_site, station)
    answer = await station.authorize("", "NoAuthorization")
    assert answer.id_token_info["status"] == "Accepted"

    await station.status(1, "Occupied")
    evse = station.evses[1]
    evse.transaction_id, evse.seq_no, evse.power_w = "tx-c07", 0, 7400.0
    started = await station.call(
        call.TransactionEvent(
            event_type="Started",
            timestamp=now_iso(),
            trigger_reason="CablePluggedIn",
            seq_no=0,
            transaction_info={"transaction_id": "tx-c07", "charging_state": "Charging"},
            evse={"id": 1, "connector_id": 1},
            id_token={"id_token": "", "type": "NoAuthorization"},
            meter_value=[
                {
                    "timestamp": now_iso(),
                    "sampled_value": [
                        {"value": 0, "measurand": "Energy.Active.Import.Register", "unit_of_measure": {"unit": "Wh"}}
                    ],
                }
            ],
        ),
        suppress=False,
    )
    assert started.id_token_info["status"] == "Accepted"
    evse.seq_no = 1
    await station.transaction_updated(1, 360)
    await hass.async_block_till_done()
    assert state_of(hass, STATUS) == "charging"
    assert kwh(hass, SESSION_ENERGY) == pytest.approx(0.74)
    await station.end_session(1, "Local", "EVCommunicationLost")
    record = await wait_for_history(list_site)
    assert record["transaction_id"] == "tx-c07"
    assert record["energy_wh"] == pytest.approx(740)


async def test_TC_C_37_clear_authorization_cache(
    hass: HomeAssistant, site201: MockConfigEntry, stations: StationFactory
) -> None:
    station = await stations("CS1")
    await settled(hass, site201, station)
    assert await act(hass, "clear_cache") == {"status": "Accepted"}
    assert received(station, "ClearCache") == [{}]
    station.responses["ClearCache"] = "Rejected"
    assert await act(hass, "clear_cache") == {"status": "Rejected"}
    assert len(received(station, "ClearCache")) == 2


# ----------------------------------------------------------------- E: transactions
async def test_TC_E_01_start_transaction_cable_plugged_in_first(
    hass: HomeAssistant, site201: MockConfigEntry, stations: StationFactory
) -> None:
    """TxStartPoint EVConnected: Started without idToken (CablePluggedIn), the badge follows."""
    station = await stations("CS1")
    await settled(hass, site201, station)
    station.evses[1].energy_wh = 5000.0
    await station.status(1, "Occupied")
    started = await station.transaction_started(1, None, "CablePluggedIn", charging_state="EVConnected")
    assert getattr(started, "id_token_info", None) is None
    await hass.async_block_till_done()
    assert state_of(hass, STATUS) == "preparing"
    assert state_of(hass, BADGE) == "unknown"
    connector = model_of(site201).connectors[1]
    assert connector.session is not None
    assert connector.session.transaction_id == station.evses[1].transaction_id
    assert connector.session.meter_start_wh == 5000

    assert (await station.authorize("TAG-E01")).id_token_info["status"] == "Accepted"
    authorized = await event_with_token(station, 1, "TAG-E01")
    assert authorized.id_token_info["status"] == "Accepted"
    await station.transaction_updated(1, 0, "ChargingStateChanged")
    await station.transaction_updated(1, 360)
    await hass.async_block_till_done()
    assert state_of(hass, BADGE) == "TAG-E01"
    assert state_of(hass, STATUS) == "charging"
    assert kwh(hass, SESSION_ENERGY) == pytest.approx(0.74)
    assert kwh(hass, ENERGY) == pytest.approx(5.74)


async def test_TC_E_02_start_transaction_authorized_first(
    hass: HomeAssistant, site201: MockConfigEntry, stations: StationFactory
) -> None:
    """TxStartPoint Authorized: Started carries the idToken (Authorized) before the cable is in."""
    station = await stations("CS1")
    await settled(hass, site201, station)
    assert (await station.authorize("TAG-E02")).id_token_info["status"] == "Accepted"
    started = await station.transaction_started(1, "TAG-E02", "Authorized", charging_state="Idle")
    assert started.id_token_info["status"] == "Accepted"
    await hass.async_block_till_done()
    assert state_of(hass, BADGE) == "TAG-E02"
    assert model_of(site201).connectors[1].session is not None

    await station.status(1, "Occupied")
    await station.transaction_updated(1, 0, "CablePluggedIn", "EVConnected")
    await hass.async_block_till_done()
    assert state_of(hass, STATUS) == "preparing"
    await station.transaction_updated(1, 0, "ChargingStateChanged", "Charging")
    await station.transaction_updated(1, 180)
    await hass.async_block_till_done()
    assert state_of(hass, STATUS) == "charging"
    assert kwh(hass, SESSION_ENERGY) == pytest.approx(0.37)
    assert state_of(hass, BADGE) == "TAG-E02"


async def test_TC_E_03_start_transaction_ev_detected(
    hass: HomeAssistant, site201: MockConfigEntry, stations: StationFactory
) -> None:
    """TxStartPoint EVConnected, EV detected (EVDetected) before any idToken."""
    station = await stations("CS1")
    await settled(hass, site201, station)
    await station.status(1, "Occupied")
    started = await station.transaction_started(1, None, "EVDetected", charging_state="EVConnected")
    assert getattr(started, "id_token_info", None) is None
    await hass.async_block_till_done()
    assert state_of(hass, STATUS) == "preparing"
    assert state_of(hass, BADGE) == "unknown"

    authorized = await event_with_token(station, 1, "TAG-E03")
    assert authorized.id_token_info["status"] == "Accepted"
    await station.transaction_updated(1, 0, "ChargingStateChanged")
    await station.transaction_updated(1, 360)
    await hass.async_block_till_done()
    assert state_of(hass, BADGE) == "TAG-E03"
    assert state_of(hass, STATUS) == "charging"
    assert kwh(hass, SESSION_ENERGY) == pytest.approx(0.74)


async def test_TC_E_04_start_transaction_energy_transfer_with_id_token(
    hass: HomeAssistant, site201: MockConfigEntry, stations: StationFactory
) -> None:
    """TxStartPoint EnergyTransfer: Started only when power flows, with the idToken and Charging."""
    station = await stations("CS1")
    await settled(hass, site201, station)
    await station.status(1, "Occupied")
    assert (await station.authorize("TAG-E04")).id_token_info["status"] == "Accepted"
    started = await station.transaction_started(1, "TAG-E04", "ChargingStateChanged", charging_state="Charging")
    assert started.id_token_info["status"] == "Accepted"
    await station.transaction_updated(1, 720)
    await hass.async_block_till_done()
    assert state_of(hass, STATUS) == "charging"
    assert state_of(hass, BADGE) == "TAG-E04"
    assert kwh(hass, SESSION_ENERGY) == pytest.approx(1.48)
    assert float(state_of(hass, "sensor.cs1_power")) == pytest.approx(7.4)


async def test_TC_E_07_local_stop_transaction(
    hass: HomeAssistant, site201: MockConfigEntry, stations: StationFactory
) -> None:
    """Stop with the badge at the station: Ended with stoppedReason Local; the session is recorded."""
    ended = async_capture_events(hass, EVENT_SESSION_ENDED)
    station = await stations("CS1")
    await settled(hass, site201, station)
    station.evses[1].energy_wh = 2000.0
    await station.status(1, "Occupied")
    await station.transaction_started(1, "TAG-E07")
    transaction_id = station.evses[1].transaction_id
    await station.transaction_updated(1, 360)
    await station.transaction_updated(1, 360)
    await hass.async_block_till_done()
    assert kwh(hass, SESSION_ENERGY) == pytest.approx(1.48)

    assert (await station.authorize("TAG-E07")).id_token_info["status"] == "Accepted"
    answer = await station.transaction_ended(1, "Local", "StopAuthorized")
    assert answer.id_token_info["status"] == "Accepted"
    await station.status(1, "Available")
    await hass.async_block_till_done()
    record = site201.runtime_data.history[-1]
    assert record["charger_id"] == "CS1"
    assert record["transaction_id"] == transaction_id
    assert record["stop_reason"] == "Local"
    assert record["id_tag"] == "TAG-E07"
    assert record["meter_start_wh"] == pytest.approx(2000)
    assert record["meter_stop_wh"] == pytest.approx(3480)
    assert record["energy_wh"] == pytest.approx(1480)
    assert record["stopped_at"] is not None
    assert len(ended) == 1
    assert ended[0].data["energy_wh"] == pytest.approx(1480)
    assert state_of(hass, STATUS) == "available"
    assert kwh(hass, SESSION_ENERGY) == 0
    assert state_of(hass, BADGE) == "unknown"
    assert float(state_of(hass, "sensor.cs1_power")) == 0
    assert kwh(hass, ENERGY) == pytest.approx(3.48)


async def test_TC_E_09_ev_side_disconnected(
    hass: HomeAssistant, site201: MockConfigEntry, stations: StationFactory
) -> None:
    """The cable is pulled at the EV side: Ended with stoppedReason EVDisconnected."""
    station = await stations("CS1")
    await settled(hass, site201, station)
    await station.status(1, "Occupied")
    await station.transaction_started(1, "TAG-E09")
    transaction_id = station.evses[1].transaction_id
    await station.transaction_updated(1, 360)
    answer = await station.transaction_ended(1, "EVDisconnected", "EVCommunicationLost")
    assert getattr(answer, "id_token_info", None) is None
    record = await wait_for_history(site201)
    assert record["transaction_id"] == transaction_id
    assert record["stop_reason"] == "EVDisconnected"
    assert record["energy_wh"] == pytest.approx(740)
    await hass.async_block_till_done()
    assert kwh(hass, SESSION_ENERGY) == 0
    assert state_of(hass, BADGE) == "unknown"
    await station.status(1, "Available")
    await hass.async_block_till_done()
    assert state_of(hass, STATUS) == "available"


async def test_TC_E_09_ev_side_disconnected_status_available_before_ended(
    hass: HomeAssistant, site201: MockConfigEntry, stations: StationFactory
) -> None:
    """The unplugged connector is reported Available first, then the transaction ends."""
    station = await stations("CS1")
    await settled(hass, site201, station)
    await station.status(1, "Occupied")
    await station.transaction_started(1, "TAG-E09")
    await station.transaction_updated(1, 360)
    await station.status(1, "Available")
    await station.transaction_ended(1, "EVDisconnected", "EVCommunicationLost")
    record = await wait_for_history(site201)
    assert record["stop_reason"] == "EVDisconnected"
    await hass.async_block_till_done()
    assert state_of(hass, STATUS) == "available"


async def test_TC_E_29_get_transaction_status(
    hass: HomeAssistant, site201: MockConfigEntry, stations: StationFactory
) -> None:
    """GetTransactionStatus of the running transaction: ongoing, and whether events are queued."""
    station = await stations("CS1")
    await settled(hass, site201, station)
    await station.status(1, "Occupied")
    await station.transaction_started(1, "TAG-E29")
    transaction_id = station.evses[1].transaction_id
    assert transaction_id is not None
    await hass.async_block_till_done()

    answer = await act(hass, "get_transaction_status", transaction_id=transaction_id)
    assert received(station, "GetTransactionStatus") == [{"transactionId": transaction_id}]
    assert answer == {"messagesInQueue": False, "ongoingIndicator": True}

    # Events waiting in the station's queue.
    station.queue_offline = True
    await station.transaction_updated(1, 360)
    answer = await act(hass, "get_transaction_status", transaction_id=transaction_id)
    assert answer == {"messagesInQueue": True, "ongoingIndicator": True}
    await station.replay_offline_queue()
    await hass.async_block_till_done()
    assert kwh(hass, SESSION_ENERGY) == pytest.approx(0.74)

    # Without a transaction id: is anything queued at all?
    assert await act(hass, "get_transaction_status") == {"messagesInQueue": False}
    await station.end_session(1)
    await wait_for_history(site201)
    answer = await act(hass, "get_transaction_status", transaction_id=transaction_id)
    assert answer == {"messagesInQueue": False, "ongoingIndicator": False}
