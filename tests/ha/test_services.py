"""Actions and command entities: what the user gets when a command cannot be carried out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import contextlib
from datetime import UTC, datetime
import json
import time
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import device_registry as dr
import ocpp.exceptions
from ocpp.v201 import ChargePoint as ChargePoint201, call as call201
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
import websockets

from custom_components.cariflex.const import CONF_AUTH_MODE, CONF_CALL_TIMEOUT, DOMAIN
from custom_components.cariflex.ocpp.rpc import V16
from custom_components.cariflex.services import OCPP_ACTIONS
from simulator.charger16 import SimCharger16, SimConfig
from tests.conftest import ChargerFactory, charger_device, site_entry, wait_for

pytestmark = pytest.mark.usefixtures("socket_enabled")

CALL_TIMEOUT_S = 0.5
PROFILE = {
    "chargingProfileId": 7,
    "stackLevel": 0,
    "chargingProfilePurpose": "TxDefaultProfile",
    "chargingProfileKind": "Relative",
    "chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16}]},
}
# The smallest valid call of every action (beside device_id), and the OCPP action it sends.
MINIMAL: dict[str, tuple[dict[str, Any], str]] = {
    "cancel_reservation": ({"reservation_id": 1}, "CancelReservation"),
    "change_availability": ({"operative": True}, "ChangeAvailability"),
    "change_configuration": ({"key": "HeartbeatInterval", "value": "60"}, "ChangeConfiguration"),
    "clear_cache": ({}, "ClearCache"),
    "clear_charging_profile": ({}, "ClearChargingProfile"),
    "data_transfer": ({"vendor_id": "com.example"}, "DataTransfer"),
    "get_composite_schedule": ({"duration": 60}, "GetCompositeSchedule"),
    "get_configuration": ({}, "GetConfiguration"),
    "get_diagnostics": ({"location": "ftp://diagnostics.invalid/upload"}, "GetDiagnostics"),
    "get_local_list_version": ({}, "GetLocalListVersion"),
    "remote_start_transaction": ({"id_tag": "TAG1"}, "RemoteStartTransaction"),
    "remote_stop_transaction": ({"transaction_id": "42"}, "RemoteStopTransaction"),
    "reserve_now": ({"expiry_date": "2030-01-01T00:00:00+00:00", "id_tag": "TAG1"}, "ReserveNow"),
    "reset": ({}, "Reset"),
    "send_local_list": ({"list_version": 1}, "SendLocalList"),
    "set_charging_profile": ({"charging_profile": PROFILE}, "SetChargingProfile"),
    "trigger_message": ({"requested_message": "Heartbeat"}, "TriggerMessage"),
    "unlock_connector": ({}, "UnlockConnector"),
    "update_firmware": (
        {"location": "https://firmware.invalid/fw.bin", "retrieve_date": "2030-01-01T00:00:00+00:00"},
        "UpdateFirmware",
    ),
}


# ---------------------------------------------------------------------- helpers
def device_id(hass: HomeAssistant, identifier: str) -> str:
    """The device registry id of a Cariflex device (a charger id, or a site's entry id)."""
    return charger_device(hass, identifier).id


async def online(chargers: ChargerFactory, charger_id: str = "CP1", **kwargs: Any) -> SimCharger16:
    """A booted charger, once the site's after-boot GetConfiguration is done; ``received`` starts empty."""
    cp = await chargers(charger_id, **kwargs)
    await wait_for(lambda: bool(sent(cp, "GetConfiguration")))
    cp.received.clear()
    return cp


async def call(hass: HomeAssistant, action: str, device: str, **data: Any) -> Any:
    return await hass.services.async_call(
        DOMAIN, action, {"device_id": device, **data}, blocking=True, return_response=True
    )


async def badge(hass: HomeAssistant, action: str, device: str, **data: Any) -> None:
    await hass.services.async_call(DOMAIN, action, {"device_id": device, **data}, blocking=True)


def silence(charger: SimCharger16, action: str) -> list[dict[str, Any]]:
    """Make the charger swallow every ``action`` CALL without answering; returns what it swallowed."""
    swallowed: list[dict[str, Any]] = []
    route = charger.route_message

    async def route_message(raw: str) -> None:
        frame = json.loads(raw)
        if frame[0] == 2 and frame[2] == action:
            swallowed.append(frame[3])
            return
        await route(raw)

    charger.route_message = route_message
    return swallowed


def sent(charger: SimCharger16, action: str) -> list[dict[str, Any]]:
    return [payload for name, payload in charger.received if name == action]


def other_integration_device(hass: HomeAssistant) -> str:
    other = MockConfigEntry(domain="other_integration", title="Other")
    other.add_to_hass(hass)
    device = dr.async_get(hass).async_get_or_create(
        config_entry_id=other.entry_id, identifiers={("other_integration", "CP1")}, name="CP1 lookalike"
    )
    return device.id


@pytest.fixture
async def short_site(hass: HomeAssistant, ws_port: int) -> MockConfigEntry:
    """A site knowing CP1 whose calls time out after CALL_TIMEOUT_S (read from the options)."""
    entry = site_entry(ws_port, chargers={"CP1": {}}, options={CONF_CALL_TIMEOUT: CALL_TIMEOUT_S})
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


@pytest.fixture
async def list_site(hass: HomeAssistant, ws_port: int) -> MockConfigEntry:
    """A site knowing CP1 that only accepts the badges on its list."""
    entry = site_entry(ws_port, chargers={"CP1": {}}, options={CONF_AUTH_MODE: "list"})
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


# Actions that only OCPP 2.0.1 has, with valid data.
V201_ONLY: dict[str, dict[str, Any]] = {
    "customer_information": {},
    "get_base_report": {},
    "get_charging_profiles": {},
    "get_log": {"location": "https://logs.invalid/upload"},
    "get_report": {},
    "get_transaction_status": {},
    "get_variables": {"variables": ["OCPPCommCtrlr/HeartbeatInterval"]},
    "set_network_profile": {
        "configuration_slot": 1,
        "connection_data": {
            "ocppVersion": "OCPP20",
            "ocppTransport": "JSON",
            "ocppCsmsUrl": "wss://csms.invalid/ocpp",
            "messageTimeout": 30,
            "securityProfile": 1,
            "ocppInterface": "Wired0",
        },
        "confirm": True,
    },
    "set_variables": {"variables": {"OCPPCommCtrlr/HeartbeatInterval": "60"}},
}


def test_every_action_has_a_minimal_call() -> None:
    v16 = {name: spec.v16 for name, spec in OCPP_ACTIONS.items() if spec.v16 is not None}
    assert set(MINIMAL) == set(v16)
    assert {name: action for name, (_data, action) in MINIMAL.items()} == {
        name: message[0] for name, message in v16.items()
    }
    assert set(V201_ONLY) == {name for name, spec in OCPP_ACTIONS.items() if spec.v16 is None}


# ---------------------------------------------------------------------- the happy path, as a baseline
@pytest.mark.parametrize("name", sorted(MINIMAL))
async def test_action_reaches_the_charger_and_returns_its_answer(
    hass: HomeAssistant, site: MockConfigEntry, chargers: ChargerFactory, name: str
) -> None:
    cp = await online(chargers)
    data, action = MINIMAL[name]
    response = await call(hass, name, device_id(hass, "CP1"), **data)
    assert isinstance(response, dict)
    assert len(sent(cp, action)) == 1
    if action == "RemoteStopTransaction":
        assert response == {"status": "Rejected"}  # there is no transaction 42: the answer is returned, not raised
        assert sent(cp, action) == [{"transactionId": 42}]
    elif action == "GetConfiguration":
        assert {item["key"] for item in response["configurationKey"]} >= {"HeartbeatInterval"}
    elif action == "GetDiagnostics":
        assert response == {"fileName": "diagnostics.log"}
    elif action == "GetLocalListVersion":
        assert response == {"listVersion": 0}
    elif action == "UpdateFirmware":
        assert response == {}
    else:
        assert response["status"] in ("Accepted", "Unlocked")


# ---------------------------------------------------------------------- devices that are not chargers
@pytest.mark.parametrize("name", sorted(MINIMAL))
async def test_unknown_device_is_a_validation_error(hass: HomeAssistant, site: MockConfigEntry, name: str) -> None:
    with pytest.raises(ServiceValidationError) as err:
        await call(hass, name, "no-such-device", **MINIMAL[name][0])
    assert err.value.translation_key == "not_a_charger"
    assert err.value.translation_placeholders == {"device_id": "no-such-device"}


async def test_device_of_another_integration_is_not_a_charger(
    hass: HomeAssistant, site: MockConfigEntry, chargers: ChargerFactory
) -> None:
    cp = await online(chargers)
    with pytest.raises(ServiceValidationError) as err:
        await call(hass, "reset", other_integration_device(hass))
    assert err.value.translation_key == "not_a_charger"
    assert sent(cp, "Reset") == []


async def test_site_device_is_not_a_charger(hass: HomeAssistant, site: MockConfigEntry) -> None:
    with pytest.raises(ServiceValidationError) as err:
        await call(hass, "reset", device_id(hass, site.entry_id))
    assert err.value.translation_key == "not_a_charger"


async def test_charger_of_an_unloaded_site_is_not_a_charger(hass: HomeAssistant, site: MockConfigEntry) -> None:
    cp1 = device_id(hass, "CP1")
    assert await hass.config_entries.async_unload(site.entry_id)
    with pytest.raises(ServiceValidationError) as err:
        await call(hass, "reset", cp1)
    assert err.value.translation_key == "not_a_charger"
    assert err.value.translation_placeholders == {"device_id": cp1}


# ---------------------------------------------------------------------- offline, refused, silent
@pytest.mark.parametrize("name", sorted(MINIMAL))
async def test_offline_charger_is_an_error(hass: HomeAssistant, site: MockConfigEntry, name: str) -> None:
    with pytest.raises(HomeAssistantError) as err:
        await call(hass, name, device_id(hass, "CP1"), **MINIMAL[name][0])
    assert not isinstance(err.value, ServiceValidationError)
    assert err.value.translation_key == "charger_offline"
    assert err.value.translation_placeholders == {"charger": "CP1"}


@pytest.mark.parametrize(
    ("name", "data", "action"),
    [
        ("change_configuration", {"key": "K" * 51, "value": "1"}, "ChangeConfiguration"),
        ("change_configuration", {"key": "HeartbeatInterval", "value": "9" * 501}, "ChangeConfiguration"),
        ("data_transfer", {"vendor_id": "v" * 256}, "DataTransfer"),
        ("remote_start_transaction", {"id_tag": "T" * 21}, "RemoteStartTransaction"),
        ("set_charging_profile", {"charging_profile": {"chargingProfileId": 1}}, "SetChargingProfile"),
    ],
    ids=["key-too-long", "value-too-long", "vendor-too-long", "id-tag-too-long", "incomplete-profile"],
)
async def test_request_refused_by_the_ocpp_schema_is_not_sent(
    hass: HomeAssistant,
    site: MockConfigEntry,
    chargers: ChargerFactory,
    *,
    name: str,
    data: dict[str, Any],
    action: str,
) -> None:
    cp = await online(chargers)
    with pytest.raises(ServiceValidationError) as err:
        await call(hass, name, device_id(hass, "CP1"), **data)
    assert err.value.translation_key == "invalid_request"
    assert err.value.translation_placeholders is not None
    assert err.value.translation_placeholders["action"] == action
    # A later command arrives first: the refused one never left.
    await call(hass, "clear_cache", device_id(hass, "CP1"))
    assert [name for name, _payload in cp.received] == ["ClearCache"]


@pytest.mark.parametrize("name", sorted(V201_ONLY))
async def test_201_only_action_on_a_16_charger_is_a_validation_error(
    hass: HomeAssistant, site: MockConfigEntry, chargers: ChargerFactory, name: str
) -> None:
    cp = await online(chargers)
    with pytest.raises(ServiceValidationError) as err:
        await call(hass, name, device_id(hass, "CP1"), **V201_ONLY[name])
    assert err.value.translation_key == "not_supported_by_version"
    assert err.value.translation_placeholders == {"action": name, "version": V16, "charger": "CP1"}
    await call(hass, "clear_cache", device_id(hass, "CP1"))
    assert [action for action, _payload in cp.received] == ["ClearCache"]


async def test_remote_stop_with_a_non_numeric_transaction_id_on_16(
    hass: HomeAssistant, site: MockConfigEntry, chargers: ChargerFactory
) -> None:
    cp = await online(chargers)
    with pytest.raises(ServiceValidationError) as err:
        await call(hass, "remote_stop_transaction", device_id(hass, "CP1"), transaction_id="tx-abc")
    assert err.value.translation_key == "invalid_transaction"
    assert err.value.translation_placeholders == {"transaction_id": "tx-abc"}
    assert cp.received == []


async def test_silent_charger_times_out(
    hass: HomeAssistant, short_site: MockConfigEntry, chargers: ChargerFactory
) -> None:
    cp = await online(chargers)
    swallowed = silence(cp, "Reset")
    started = time.monotonic()
    with pytest.raises(HomeAssistantError) as err:
        await call(hass, "reset", device_id(hass, "CP1"), type="hard")
    elapsed = time.monotonic() - started
    assert not isinstance(err.value, ServiceValidationError)
    assert err.value.translation_key == "command_timeout"
    assert err.value.translation_placeholders == {"charger": "CP1", "action": "reset", "timeout": "0.5"}
    assert swallowed == [{"type": "Hard"}]
    assert CALL_TIMEOUT_S * 0.9 <= elapsed < CALL_TIMEOUT_S + 2
    # The link is still usable afterwards.
    assert await call(hass, "clear_cache", device_id(hass, "CP1")) == {"status": "Accepted"}


async def test_charger_disconnecting_during_a_call_is_an_error(
    hass: HomeAssistant, site: MockConfigEntry, chargers: ChargerFactory
) -> None:
    cp = await online(chargers)
    swallowed = silence(cp, "Reset")
    task = hass.async_create_task(call(hass, "reset", device_id(hass, "CP1")))
    await wait_for(lambda: bool(swallowed))
    await chargers.disconnect(cp)
    with pytest.raises(HomeAssistantError) as err:
        async with asyncio.timeout(3):  # the call timeout of this site is 30 s
            await task
    assert not isinstance(err.value, ServiceValidationError)
    # The pending call fails at once with the connection, not after the call timeout.
    assert err.value.translation_key == "command_failed"
    assert err.value.translation_placeholders is not None
    assert err.value.translation_placeholders["charger"] == "CP1"
    assert err.value.translation_placeholders["action"] == "reset"


async def test_charger_callerror_is_an_error(
    hass: HomeAssistant, site: MockConfigEntry, chargers: ChargerFactory
) -> None:
    cp = await online(chargers)

    def refuse(**_: Any) -> Any:
        raise ocpp.exceptions.NotSupportedError("no resets on this model")

    cp.route_map["Reset"]["_on_action"] = refuse
    with pytest.raises(HomeAssistantError) as err:
        await call(hass, "reset", device_id(hass, "CP1"))
    assert not isinstance(err.value, ServiceValidationError)
    assert err.value.translation_key == "command_error"
    assert err.value.translation_placeholders == {
        "charger": "CP1",
        "action": "reset",
        "code": "NotSupported",
        "description": "no resets on this model",
    }


async def test_invalid_answer_is_an_error(hass: HomeAssistant, site: MockConfigEntry, chargers: ChargerFactory) -> None:
    cp = await online(chargers)
    cp.responses["Reset"] = "Maybe"
    cp.route_map["Reset"]["_skip_schema_validation"] = True  # let the charger send what OCPP forbids
    with pytest.raises(HomeAssistantError) as err:
        await call(hass, "reset", device_id(hass, "CP1"))
    assert not isinstance(err.value, ServiceValidationError)
    assert err.value.translation_key == "command_failed"
    assert sent(cp, "Reset") == [{"type": "Soft"}]


# ---------------------------------------------------------------------- remote stop
async def test_remote_stop_without_transaction_id_stops_the_running_session(
    hass: HomeAssistant, site: MockConfigEntry, chargers: ChargerFactory
) -> None:
    cp = await online(chargers)
    await cp.status(1, "Charging")
    started = await cp.start_transaction(1, "TAG1")
    response = await call(hass, "remote_stop_transaction", device_id(hass, "CP1"))
    assert response == {"status": "Accepted"}
    assert sent(cp, "RemoteStopTransaction") == [{"transactionId": started.transaction_id}]
    connector = site.runtime_data.backend.chargers["CP1"].connectors[1]
    await wait_for(lambda: connector.session is None)


async def test_remote_stop_picks_the_session_of_the_given_connector(
    hass: HomeAssistant, site: MockConfigEntry, chargers: ChargerFactory
) -> None:
    cp = await online(chargers, config=SimConfig(connectors=2))
    started = await cp.start_transaction(2, "TAG2")
    with pytest.raises(ServiceValidationError) as err:
        await call(hass, "remote_stop_transaction", device_id(hass, "CP1"), connector_id=1)
    assert err.value.translation_key == "no_session"
    await call(hass, "remote_stop_transaction", device_id(hass, "CP1"), connector_id=2)
    assert sent(cp, "RemoteStopTransaction") == [{"transactionId": started.transaction_id}]


async def test_remote_stop_without_session_is_a_validation_error(
    hass: HomeAssistant, site: MockConfigEntry, chargers: ChargerFactory
) -> None:
    cp = await online(chargers)
    await cp.status(1, "Available")
    with pytest.raises(ServiceValidationError) as err:
        await call(hass, "remote_stop_transaction", device_id(hass, "CP1"))
    assert err.value.translation_key == "no_session"
    assert err.value.translation_placeholders == {"charger": "CP1"}
    assert sent(cp, "RemoteStopTransaction") == []


# ---------------------------------------------------------------------- badges
async def test_set_and_remove_badge(hass: HomeAssistant, list_site: MockConfigEntry) -> None:
    runtime = list_site.runtime_data
    # Any device of the site will do: the site device or one of its chargers.
    await badge(hass, "set_badge", device_id(hass, list_site.entry_id), id_tag="TAG1", name="Alice")
    await badge(
        hass,
        "set_badge",
        device_id(hass, "CP1"),
        id_tag="TAG2",
        blocked=True,
        parent_id_tag="FLEET",
        expiry="2030-01-01T00:00:00+00:00",
    )
    alice = runtime.badges.get("tag1")  # id tags compare case-insensitively
    assert alice is not None
    assert (alice.id_tag, alice.name, alice.blocked, alice.expiry, alice.parent_id_tag) == (
        "TAG1",
        "Alice",
        False,
        None,
        None,
    )
    fleet = runtime.badges.get("TAG2")
    assert fleet is not None
    assert (fleet.blocked, fleet.parent_id_tag) == (True, "FLEET")
    assert fleet.expiry == datetime(2030, 1, 1, tzinfo=UTC)

    # Setting an existing badge replaces it.
    await badge(hass, "set_badge", device_id(hass, "CP1"), id_tag="tag1", name="Alice B.")
    assert [(b.id_tag, b.name) for b in runtime.badges.all()] == [("TAG2", ""), ("tag1", "Alice B.")]

    await badge(hass, "remove_badge", device_id(hass, "CP1"), id_tag="TAG1")
    assert runtime.badges.get("TAG1") is None
    assert len(runtime.badges) == 1


async def test_badges_are_enforced_by_the_site(
    hass: HomeAssistant, list_site: MockConfigEntry, chargers: ChargerFactory
) -> None:
    cp = await online(chargers)
    site_device = device_id(hass, list_site.entry_id)
    assert list_site.runtime_data.backend.badges is list_site.runtime_data.badges
    assert (await cp.authorize("TAG1")).id_tag_info["status"] == "Invalid"  # list mode: unknown badges refused
    await badge(hass, "set_badge", site_device, id_tag="TAG1")
    await badge(hass, "set_badge", site_device, id_tag="TAG2", blocked=True)
    await badge(hass, "set_badge", site_device, id_tag="OLD", expiry="2020-01-01T00:00:00+00:00")
    assert (await cp.authorize("TAG1")).id_tag_info["status"] == "Accepted"
    assert (await cp.authorize("TAG2")).id_tag_info["status"] == "Blocked"
    assert (await cp.authorize("OLD")).id_tag_info["status"] == "Expired"
    await badge(hass, "remove_badge", site_device, id_tag="TAG1")
    assert (await cp.authorize("TAG1")).id_tag_info["status"] == "Invalid"


async def test_removing_an_unknown_badge_raises(hass: HomeAssistant, list_site: MockConfigEntry) -> None:
    await badge(hass, "set_badge", device_id(hass, list_site.entry_id), id_tag="TAG1")
    with pytest.raises(ServiceValidationError) as err:
        await badge(hass, "remove_badge", device_id(hass, list_site.entry_id), id_tag="NOPE")
    assert err.value.translation_key == "unknown_badge"
    assert err.value.translation_placeholders == {"id_tag": "NOPE"}
    assert len(list_site.runtime_data.badges) == 1


@pytest.mark.parametrize("action", ["set_badge", "remove_badge"])
async def test_badge_actions_need_a_device_of_a_loaded_site(
    hass: HomeAssistant, list_site: MockConfigEntry, action: str
) -> None:
    for device in ("no-such-device", other_integration_device(hass)):
        with pytest.raises(ServiceValidationError) as err:
            await badge(hass, action, device, id_tag="TAG1")
        assert err.value.translation_key == "not_a_site"
        assert err.value.translation_placeholders == {"device_id": device}
    site_device = device_id(hass, list_site.entry_id)
    assert await hass.config_entries.async_unload(list_site.entry_id)
    with pytest.raises(ServiceValidationError) as err:
        await badge(hass, action, site_device, id_tag="TAG1")
    assert err.value.translation_key == "not_a_site"


async def test_badges_survive_a_reload(
    hass: HomeAssistant, list_site: MockConfigEntry, hass_storage: dict[str, Any]
) -> None:
    site_device = device_id(hass, list_site.entry_id)
    await badge(hass, "set_badge", site_device, id_tag="TAG1", name="Alice", expiry="2035-06-01T12:00:00+00:00")
    await badge(hass, "set_badge", site_device, id_tag="TAG2")
    await badge(hass, "remove_badge", site_device, id_tag="TAG2")
    old_runtime = list_site.runtime_data

    assert await hass.config_entries.async_reload(list_site.entry_id)
    await hass.async_block_till_done()
    runtime = list_site.runtime_data
    assert runtime is not old_runtime
    stored = hass_storage[f"{DOMAIN}.{list_site.entry_id}"]["data"]["badges"]
    assert [item["id_tag"] for item in stored] == ["TAG1"]
    assert [b.id_tag for b in runtime.badges.all()] == ["TAG1"]
    alice = runtime.badges.get("TAG1")
    assert alice is not None
    assert alice.name == "Alice"
    assert alice.expiry == datetime(2035, 6, 1, 12, tzinfo=UTC)


# ---------------------------------------------------------------------- command entities
@pytest.mark.parametrize(
    ("domain", "service", "entity_id", "data", "action", "expected"),
    [
        (
            "switch",
            "turn_off",
            "switch.cp1_available",
            {},
            "ChangeAvailability",
            {"connectorId": 0, "type": "Inoperative"},
        ),
        (
            "switch",
            "turn_on",
            "switch.cp1_available",
            {},
            "ChangeAvailability",
            {"connectorId": 0, "type": "Operative"},
        ),
        ("button", "press", "button.cp1_restart", {}, "Reset", {"type": "Soft"}),
        ("button", "press", "button.cp1_unlock", {}, "UnlockConnector", {"connectorId": 1}),
        ("number", "set_value", "number.cp1_current_limit", {"value": 10}, "SetChargingProfile", None),
    ],
    ids=["switch-off", "switch-on", "reset", "unlock", "current-limit"],
)
async def test_rejected_entity_command_raises(
    hass: HomeAssistant,
    site: MockConfigEntry,
    chargers: ChargerFactory,
    *,
    domain: str,
    service: str,
    entity_id: str,
    data: dict[str, Any],
    action: str,
    expected: dict[str, Any] | None,
) -> None:
    cp = await online(chargers)
    await cp.status(1, "Available")
    await hass.async_block_till_done()
    assert hass.states.get(entity_id) is not None, sorted(hass.states.async_entity_ids())
    refusal = "UnlockFailed" if action == "UnlockConnector" else "Rejected"
    cp.responses[action] = refusal
    with pytest.raises(HomeAssistantError) as err:
        await hass.services.async_call(domain, service, {"entity_id": entity_id, **data}, blocking=True)
    assert not isinstance(err.value, ServiceValidationError)
    assert err.value.translation_key == "command_rejected"
    assert err.value.translation_placeholders is not None
    assert err.value.translation_placeholders["status"] == refusal
    assert err.value.translation_placeholders["charger"] == "CP1"
    received = sent(cp, action)
    assert len(received) == 1
    if expected is not None:
        assert received[0] == expected
    if action == "SetChargingProfile":
        # The refused limit is not shown as the limit in force.
        assert site.runtime_data.backend.chargers["CP1"].connectors[1].current_limit_a is None


# ---------------------------------------------------------------------- OCPP 2.0.1 stations
PROFILE_201 = {
    "id": 7,
    "stackLevel": 0,
    "chargingProfilePurpose": "TxDefaultProfile",
    "chargingProfileKind": "Relative",
    "chargingSchedule": [
        {"id": 1, "chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16}]}
    ],
}
# The smallest valid call of every action on a 2.0.1 station, and the 2.0.1 message it becomes.
MINIMAL_201: dict[str, tuple[dict[str, Any], str]] = {
    **{name: (data, OCPP_ACTIONS[name].v201[0]) for name, data in V201_ONLY.items()},  # type: ignore[index]
    "cancel_reservation": ({"reservation_id": 1}, "CancelReservation"),
    "change_availability": ({"operative": False, "connector_id": 1}, "ChangeAvailability"),
    "change_configuration": ({"key": "OCPPCommCtrlr/HeartbeatInterval", "value": "60"}, "SetVariables"),
    "clear_cache": ({}, "ClearCache"),
    "clear_charging_profile": ({"purpose": "ChargePointMaxProfile", "connector_id": 1}, "ClearChargingProfile"),
    "data_transfer": ({"vendor_id": "com.example", "data": "x"}, "DataTransfer"),
    "get_composite_schedule": ({"duration": 60, "connector_id": 1}, "GetCompositeSchedule"),
    "get_configuration": ({"keys": ["OCPPCommCtrlr.HeartbeatInterval"]}, "GetVariables"),
    "get_diagnostics": ({"location": "https://logs.invalid/upload", "retries": 1}, "GetLog"),
    "get_local_list_version": ({}, "GetLocalListVersion"),
    "remote_start_transaction": ({"id_tag": "TAG1", "connector_id": 1}, "RequestStartTransaction"),
    "remote_stop_transaction": ({"transaction_id": "tx-1"}, "RequestStopTransaction"),
    "reserve_now": (
        {"expiry_date": "2030-01-01T00:00:00+00:00", "id_tag": "TAG1", "parent_id_tag": "FLEET", "connector_id": 1},
        "ReserveNow",
    ),
    "reset": ({"type": "hard"}, "Reset"),
    "send_local_list": ({"list_version": 1}, "SendLocalList"),
    "set_charging_profile": ({"connector_id": 1, "charging_profile": PROFILE_201}, "SetChargingProfile"),
    "trigger_message": ({"requested_message": "DiagnosticsStatusNotification", "connector_id": 1}, "TriggerMessage"),
    "unlock_connector": ({}, "UnlockConnector"),
    "update_firmware": (
        {"location": "https://firmware.invalid/fw.bin", "retrieve_date": "2030-01-01T00:00:00+00:00"},
        "UpdateFirmware",
    ),
}


class BareStation(ChargePoint201):  # type: ignore[misc]
    """An OCPP 2.0.1 station that implements no central-system command: every one is a CALLERROR."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[str] = []

    async def route_message(self, raw_msg: str) -> None:
        frame = json.loads(raw_msg)
        if frame[0] == 2:
            self.calls.append(frame[2])
        await super().route_message(raw_msg)


@pytest.fixture
async def station(hass: HomeAssistant, site: MockConfigEntry, ws_port: int) -> AsyncIterator[BareStation]:
    """A booted OCPP 2.0.1 station CS201 (accepted by the site), its after-boot questions answered."""
    ws = await websockets.connect(f"ws://127.0.0.1:{ws_port}/CS201", subprotocols=["ocpp2.0.1"])  # type: ignore[list-item]
    cs = BareStation("CS201", ws)
    task = asyncio.get_running_loop().create_task(cs.start())
    try:
        boot = await cs.call(
            call201.BootNotification(charging_station={"model": "Bare", "vendor_name": "Acme"}, reason="PowerUp"),
            suppress=False,
        )
        assert boot.status == "Accepted"
        await wait_for(lambda: "GetBaseReport" in cs.calls)
        await hass.async_block_till_done()
        cs.calls.clear()
        yield cs
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        await ws.close()


def test_every_action_has_a_minimal_201_call() -> None:
    assert set(MINIMAL_201) == {name for name, spec in OCPP_ACTIONS.items() if spec.v201 is not None}
    for name, (_data, action) in MINIMAL_201.items():
        assert OCPP_ACTIONS[name].v201 is not None
        assert OCPP_ACTIONS[name].v201[0] == action  # type: ignore[index]


@pytest.mark.parametrize("name", sorted(MINIMAL_201))
async def test_201_station_that_does_not_implement_a_command(
    hass: HomeAssistant, station: BareStation, name: str
) -> None:
    """The request passes the 2.0.1 schema, reaches the station, and its CALLERROR is reported."""
    data, action = MINIMAL_201[name]
    with pytest.raises(HomeAssistantError) as err:
        await call(hass, name, device_id(hass, "CS201"), **data)
    assert not isinstance(err.value, ServiceValidationError)
    assert err.value.translation_key == "command_error"
    assert err.value.translation_placeholders is not None
    assert err.value.translation_placeholders["code"] == "NotImplemented"
    assert station.calls == [action]


@pytest.mark.parametrize(
    ("name", "data", "error", "placeholders"),
    [
        ("get_variables", {"variables": ["HeartbeatInterval"]}, "invalid_variable", {"key": "HeartbeatInterval"}),
        ("get_variables", {"variables": ["OCPPCommCtrlr/"]}, "invalid_variable", {"key": "OCPPCommCtrlr/"}),
        (
            "change_configuration",
            {"key": "HeartbeatInterval", "value": "1"},
            "invalid_variable",
            {"key": "HeartbeatInterval"},
        ),
        (
            "set_network_profile",
            {"configuration_slot": 1, "connection_data": {}, "confirm": False},
            "confirm_required",
            None,
        ),
        ("remote_stop_transaction", {}, "no_session", {"charger": "CS201"}),
        ("data_transfer", {"vendor_id": "v" * 256}, "invalid_request", None),
    ],
    ids=["no-component", "no-variable", "configuration-key", "unconfirmed-network-profile", "no-session", "too-long"],
)
async def test_201_request_refused_before_sending(
    hass: HomeAssistant,
    station: BareStation,
    *,
    name: str,
    data: dict[str, Any],
    error: str,
    placeholders: dict[str, str] | None,
) -> None:
    with pytest.raises(ServiceValidationError) as err:
        await call(hass, name, device_id(hass, "CS201"), **data)
    assert err.value.translation_key == error
    if placeholders is not None:
        assert err.value.translation_placeholders == placeholders
    assert station.calls == []


async def test_201_get_configuration_without_keys(hass: HomeAssistant, station: BareStation) -> None:
    """Valid user input never turns into a request the integration's own OCPP schema refuses."""
    with pytest.raises(HomeAssistantError) as err:
        await call(hass, "get_configuration", device_id(hass, "CS201"))
    # Either it reached the station (which implements nothing), or a clear error of its own: not invalid_request.
    assert err.value.translation_key != "invalid_request", err.value.translation_placeholders


async def test_station_maximum_is_never_relative(
    hass: HomeAssistant, site: MockConfigEntry, chargers: ChargerFactory
) -> None:
    """OCPP 1.6 here; the same check guards ChargingStationMaxProfile on 2.0.1 stations."""
    purpose = "ChargePointMaxProfile"
    cp = await chargers("CP1")
    profile = {
        "chargingProfileId": 7,
        "stackLevel": 0,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": "Relative",
        "chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16}]},
    }
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(
            "cariflex",
            "set_charging_profile",
            {"device_id": charger_device(hass, "CP1").id, "charging_profile": profile},
            blocking=True,
            return_response=True,
        )
    assert err.value.translation_key == "station_max_relative"
    assert not any(action == "SetChargingProfile" for action, _ in cp.received)
