"""Actions: every central-system command as a Home Assistant action on a charger device.

Each action returns the charger's answer as response data. Requests are checked against
the OCPP schema before they leave; a bad field is a ServiceValidationError, a refusal or
a silent charger a HomeAssistantError, both translated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
import itertools
import time
from typing import Any, cast

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant, ServiceCall, ServiceResponse, SupportsResponse, callback
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import config_validation as cv, device_registry as dr
from homeassistant.util import dt as dt_util

from .access import Badge
from .compat import device_config_entry_ids, vol
from .const import DOMAIN
from .helpers import async_call_link
from .ocpp.common import iso
from .ocpp.errors import OcppError
from .ocpp.model import Charger
from .ocpp.rpc import CALL, V16, V201, validate
from .ocpp.v201 import V201Adapter, new_request_id
from .runtime import CariflexConfigEntry, CariflexRuntime

ATTR_DEVICE_ID = "device_id"
_reservation_ids = itertools.count(int(time.time()) % 1_000_000_000)


def _drop_none(payload: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in payload.items() if value is not None}


def _time(value: datetime | None) -> str | None:
    """OCPP time of a date picked in the UI (naive means Home Assistant's time zone)."""
    return iso(dt_util.as_utc(value)) if value is not None else None


PayloadFn = Callable[[dict[str, Any], Charger], dict[str, Any]]


@dataclass(frozen=True)
class OcppAction:
    """A Home Assistant action that sends one OCPP CALL, per OCPP version where it means something."""

    fields: dict[vol.Marker, Any]
    v16: tuple[str, PayloadFn] | None = None
    v201: tuple[str, PayloadFn] | None = None


def _running_transaction(data: dict[str, Any], charger: Charger) -> str:
    if data.get("transaction_id") is not None:
        return str(data["transaction_id"])
    connector_id = data.get("connector_id")
    for connector in charger.outlets:
        if connector.session and connector_id in (None, connector.connector_id):
            return connector.session.transaction_id
    raise ServiceValidationError(
        translation_domain=DOMAIN,
        translation_key="no_session",
        translation_placeholders={"charger": charger.charger_id},
    )


def _component_variable(key: str) -> dict[str, Any]:
    """OCPP 2.0.1 component and variable from "Component/Variable" (also "Component.Variable")."""
    component, sep, variable = key.partition("/")
    if not sep:
        component, sep, variable = key.partition(".")
    if not sep or not component or not variable:
        raise ServiceValidationError(
            translation_domain=DOMAIN, translation_key="invalid_variable", translation_placeholders={"key": key}
        )
    return {"component": {"name": component}, "variable": {"name": variable}}


def _evse(connector_id: int | None) -> dict[str, Any] | None:
    return {"id": connector_id} if connector_id else None


def _purpose_v201(purpose: str | None) -> str | None:
    return "ChargingStationMaxProfile" if purpose == "ChargePointMaxProfile" else purpose


def _id_token(tag: str) -> dict[str, str]:
    return {"idToken": tag, "type": "Central"}


CONNECTOR = vol.All(vol.Coerce(int), vol.Range(min=0))
TRIGGERS_V201 = {"DiagnosticsStatusNotification": "LogStatusNotification"}
OCPP_ACTIONS: dict[str, OcppAction] = {
    "cancel_reservation": OcppAction(
        {vol.Required("reservation_id"): vol.Coerce(int)},
        v16=("CancelReservation", lambda d, _c: {"reservationId": d["reservation_id"]}),
        v201=("CancelReservation", lambda d, _c: {"reservationId": d["reservation_id"]}),
    ),
    "change_availability": OcppAction(
        {vol.Optional("connector_id", default=0): CONNECTOR, vol.Required("operative"): cv.boolean},
        v16=(
            "ChangeAvailability",
            lambda d, _c: {"connectorId": d["connector_id"], "type": "Operative" if d["operative"] else "Inoperative"},
        ),
        v201=(
            "ChangeAvailability",
            lambda d, _c: _drop_none(
                {
                    "operationalStatus": "Operative" if d["operative"] else "Inoperative",
                    "evse": _evse(d["connector_id"]),
                }
            ),
        ),
    ),
    "change_configuration": OcppAction(
        {vol.Required("key"): cv.string, vol.Required("value"): cv.string},
        v16=("ChangeConfiguration", lambda d, _c: {"key": d["key"], "value": d["value"]}),
        v201=(
            "SetVariables",
            lambda d, _c: {"setVariableData": [{**_component_variable(d["key"]), "attributeValue": d["value"]}]},
        ),
    ),
    "clear_cache": OcppAction({}, v16=("ClearCache", lambda _d, _c: {}), v201=("ClearCache", lambda _d, _c: {})),
    "clear_charging_profile": OcppAction(
        {
            vol.Optional("profile_id"): vol.Coerce(int),
            vol.Optional("connector_id"): CONNECTOR,
            vol.Optional("purpose"): vol.In(
                ["ChargePointMaxProfile", "ChargingStationMaxProfile", "TxDefaultProfile", "TxProfile"]
            ),
            vol.Optional("stack_level"): vol.All(vol.Coerce(int), vol.Range(min=0)),
        },
        v16=(
            "ClearChargingProfile",
            lambda d, _c: _drop_none(
                {
                    "id": d.get("profile_id"),
                    "connectorId": d.get("connector_id"),
                    "chargingProfilePurpose": d.get("purpose"),
                    "stackLevel": d.get("stack_level"),
                }
            ),
        ),
        v201=(
            "ClearChargingProfile",
            lambda d, _c: _drop_none(
                {
                    "chargingProfileId": d.get("profile_id"),
                    "chargingProfileCriteria": _drop_none(
                        {
                            "evseId": d.get("connector_id"),
                            "chargingProfilePurpose": _purpose_v201(d.get("purpose")),
                            "stackLevel": d.get("stack_level"),
                        }
                    )
                    or None,
                }
            ),
        ),
    ),
    "data_transfer": OcppAction(
        {vol.Required("vendor_id"): cv.string, vol.Optional("message_id"): cv.string, vol.Optional("data"): cv.string},
        v16=(
            "DataTransfer",
            lambda d, _c: _drop_none(
                {"vendorId": d["vendor_id"], "messageId": d.get("message_id"), "data": d.get("data")}
            ),
        ),
        v201=(
            "DataTransfer",
            lambda d, _c: _drop_none(
                {"vendorId": d["vendor_id"], "messageId": d.get("message_id"), "data": d.get("data")}
            ),
        ),
    ),
    "get_composite_schedule": OcppAction(
        {
            vol.Optional("connector_id", default=0): CONNECTOR,
            vol.Required("duration"): vol.All(vol.Coerce(int), vol.Range(min=1)),
            vol.Optional("charging_rate_unit"): vol.In(["A", "W"]),
        },
        v16=(
            "GetCompositeSchedule",
            lambda d, _c: _drop_none(
                {
                    "connectorId": d["connector_id"],
                    "duration": d["duration"],
                    "chargingRateUnit": d.get("charging_rate_unit"),
                }
            ),
        ),
        v201=(
            "GetCompositeSchedule",
            lambda d, _c: _drop_none(
                {
                    "evseId": d["connector_id"],
                    "duration": d["duration"],
                    "chargingRateUnit": d.get("charging_rate_unit"),
                }
            ),
        ),
    ),
    "get_configuration": OcppAction(
        {vol.Optional("keys"): vol.All(cv.ensure_list, [cv.string])},
        v16=("GetConfiguration", lambda d, _c: {"key": d["keys"]} if d.get("keys") else {}),
        v201=(
            "GetVariables",
            lambda d, _c: {"getVariableData": [_component_variable(key) for key in d.get("keys") or []]},
        ),
    ),
    "get_diagnostics": OcppAction(
        {
            vol.Required("location"): cv.string,
            vol.Optional("retries"): vol.Coerce(int),
            vol.Optional("retry_interval"): vol.Coerce(int),
            vol.Optional("start_time"): cv.datetime,
            vol.Optional("stop_time"): cv.datetime,
        },
        v16=(
            "GetDiagnostics",
            lambda d, _c: _drop_none(
                {
                    "location": d["location"],
                    "retries": d.get("retries"),
                    "retryInterval": d.get("retry_interval"),
                    "startTime": _time(d.get("start_time")),
                    "stopTime": _time(d.get("stop_time")),
                }
            ),
        ),
        v201=(
            "GetLog",
            lambda d, _c: _drop_none(
                {
                    "logType": "DiagnosticsLog",
                    "requestId": new_request_id(),
                    "log": _drop_none(
                        {
                            "remoteLocation": d["location"],
                            "oldestTimestamp": _time(d.get("start_time")),
                            "latestTimestamp": _time(d.get("stop_time")),
                        }
                    ),
                    "retries": d.get("retries"),
                    "retryInterval": d.get("retry_interval"),
                }
            ),
        ),
    ),
    "get_local_list_version": OcppAction(
        {}, v16=("GetLocalListVersion", lambda _d, _c: {}), v201=("GetLocalListVersion", lambda _d, _c: {})
    ),
    "remote_start_transaction": OcppAction(
        {
            vol.Required("id_tag"): cv.string,
            vol.Optional("connector_id"): vol.All(vol.Coerce(int), vol.Range(min=1)),
            vol.Optional("charging_profile"): dict,
        },
        v16=(
            "RemoteStartTransaction",
            lambda d, _c: _drop_none(
                {
                    "idTag": d["id_tag"],
                    "connectorId": d.get("connector_id"),
                    "chargingProfile": d.get("charging_profile"),
                }
            ),
        ),
        v201=(
            "RequestStartTransaction",
            lambda d, _c: _drop_none(
                {
                    "idToken": _id_token(d["id_tag"]),
                    "remoteStartId": new_request_id(),
                    "evseId": d.get("connector_id"),
                    "chargingProfile": d.get("charging_profile"),
                }
            ),
        ),
    ),
    "remote_stop_transaction": OcppAction(
        {vol.Optional("transaction_id"): cv.string, vol.Optional("connector_id"): CONNECTOR},
        v16=("RemoteStopTransaction", lambda d, c: {"transactionId": _int_id(_running_transaction(d, c))}),
        v201=("RequestStopTransaction", lambda d, c: {"transactionId": _running_transaction(d, c)}),
    ),
    "reserve_now": OcppAction(
        {
            vol.Optional("connector_id", default=0): CONNECTOR,
            vol.Required("expiry_date"): cv.datetime,
            vol.Required("id_tag"): cv.string,
            vol.Optional("parent_id_tag"): cv.string,
            vol.Optional("reservation_id"): vol.Coerce(int),
        },
        v16=(
            "ReserveNow",
            lambda d, _c: _drop_none(
                {
                    "connectorId": d["connector_id"],
                    "expiryDate": _time(d["expiry_date"]),
                    "idTag": d["id_tag"],
                    "parentIdTag": d.get("parent_id_tag"),
                    "reservationId": d.get("reservation_id", next(_reservation_ids)),
                }
            ),
        ),
        v201=(
            "ReserveNow",
            lambda d, _c: _drop_none(
                {
                    "id": d.get("reservation_id", next(_reservation_ids)),
                    "expiryDateTime": _time(d["expiry_date"]),
                    "idToken": _id_token(d["id_tag"]),
                    "evseId": d["connector_id"] or None,
                    "groupIdToken": _id_token(d["parent_id_tag"]) if d.get("parent_id_tag") else None,
                }
            ),
        ),
    ),
    "reset": OcppAction(
        {vol.Optional("type", default="soft"): vol.In(["soft", "hard"])},
        v16=("Reset", lambda d, _c: {"type": d["type"].capitalize()}),
        v201=("Reset", lambda d, _c: {"type": "Immediate" if d["type"] == "hard" else "OnIdle"}),
    ),
    "send_local_list": OcppAction(
        {
            vol.Required("list_version"): vol.Coerce(int),
            vol.Optional("update_type", default="Full"): vol.In(["Full", "Differential"]),
            vol.Optional("local_authorization_list", default=list): vol.All(cv.ensure_list, [dict]),
        },
        v16=(
            "SendLocalList",
            lambda d, _c: {
                "listVersion": d["list_version"],
                "updateType": d["update_type"],
                "localAuthorizationList": d["local_authorization_list"],
            },
        ),
        v201=(
            "SendLocalList",
            lambda d, _c: _drop_none(
                {
                    "versionNumber": d["list_version"],
                    "updateType": d["update_type"],
                    "localAuthorizationList": d["local_authorization_list"] or None,
                }
            ),
        ),
    ),
    "set_charging_profile": OcppAction(
        {vol.Optional("connector_id", default=0): CONNECTOR, vol.Required("charging_profile"): dict},
        v16=(
            "SetChargingProfile",
            lambda d, _c: {"connectorId": d["connector_id"], "csChargingProfiles": _station_max_checked(d)},
        ),
        v201=(
            "SetChargingProfile",
            lambda d, _c: {"evseId": d["connector_id"], "chargingProfile": _station_max_checked(d)},
        ),
    ),
    "trigger_message": OcppAction(
        {
            vol.Required("requested_message"): vol.In(
                [
                    "BootNotification",
                    "DiagnosticsStatusNotification",
                    "FirmwareStatusNotification",
                    "Heartbeat",
                    "LogStatusNotification",
                    "MeterValues",
                    "StatusNotification",
                    "TransactionEvent",
                ]
            ),
            vol.Optional("connector_id"): CONNECTOR,
        },
        v16=(
            "TriggerMessage",
            lambda d, _c: _drop_none(
                {"requestedMessage": d["requested_message"], "connectorId": d.get("connector_id")}
            ),
        ),
        v201=(
            "TriggerMessage",
            lambda d, _c: _drop_none(
                {
                    "requestedMessage": TRIGGERS_V201.get(d["requested_message"], d["requested_message"]),
                    "evse": _evse(d.get("connector_id")),
                }
            ),
        ),
    ),
    "unlock_connector": OcppAction(
        {vol.Optional("connector_id", default=1): vol.All(vol.Coerce(int), vol.Range(min=1))},
        v16=("UnlockConnector", lambda d, _c: {"connectorId": d["connector_id"]}),
        v201=("UnlockConnector", lambda d, _c: {"evseId": d["connector_id"], "connectorId": 1}),
    ),
    "update_firmware": OcppAction(
        {
            vol.Required("location"): cv.string,
            vol.Required("retrieve_date"): cv.datetime,
            vol.Optional("retries"): vol.Coerce(int),
            vol.Optional("retry_interval"): vol.Coerce(int),
        },
        v16=(
            "UpdateFirmware",
            lambda d, _c: _drop_none(
                {
                    "location": d["location"],
                    "retrieveDate": _time(d["retrieve_date"]),
                    "retries": d.get("retries"),
                    "retryInterval": d.get("retry_interval"),
                }
            ),
        ),
        v201=(
            "UpdateFirmware",
            lambda d, _c: _drop_none(
                {
                    "requestId": new_request_id(),
                    "firmware": {"location": d["location"], "retrieveDateTime": _time(d["retrieve_date"])},
                    "retries": d.get("retries"),
                    "retryInterval": d.get("retry_interval"),
                }
            ),
        ),
    ),
    # ---- OCPP 2.0.1 only
    "get_variables": OcppAction(
        {vol.Required("variables"): vol.All(cv.ensure_list, [vol.Any(cv.string, dict)])},
        v201=(
            "GetVariables",
            lambda d, _c: {
                "getVariableData": [v if isinstance(v, dict) else _component_variable(v) for v in d["variables"]]
            },
        ),
    ),
    "set_variables": OcppAction(
        {vol.Required("variables"): vol.Any(dict, vol.All(cv.ensure_list, [dict]))},
        v201=(
            "SetVariables",
            lambda d, _c: {
                "setVariableData": [
                    {**_component_variable(key), "attributeValue": str(value)} for key, value in d["variables"].items()
                ]
                if isinstance(d["variables"], dict)
                else d["variables"]
            },
        ),
    ),
    "get_base_report": OcppAction(
        {
            vol.Optional("report_base", default="FullInventory"): vol.In(
                ["ConfigurationInventory", "FullInventory", "SummaryInventory"]
            )
        },
        v201=("GetBaseReport", lambda d, _c: {"requestId": new_request_id(), "reportBase": d["report_base"]}),
    ),
    "get_report": OcppAction(
        {
            vol.Optional("component_variables"): vol.All(cv.ensure_list, [vol.Any(cv.string, dict)]),
            vol.Optional("component_criteria"): vol.All(
                cv.ensure_list, [vol.In(["Active", "Available", "Enabled", "Problem"])]
            ),
        },
        v201=(
            "GetReport",
            lambda d, _c: _drop_none(
                {
                    "requestId": new_request_id(),
                    "componentVariable": [
                        v if isinstance(v, dict) else _component_variable(v) for v in d.get("component_variables") or []
                    ]
                    or None,
                    "componentCriteria": d.get("component_criteria") or None,
                }
            ),
        ),
    ),
    "get_transaction_status": OcppAction(
        {vol.Optional("transaction_id"): cv.string},
        v201=("GetTransactionStatus", lambda d, _c: _drop_none({"transactionId": d.get("transaction_id")})),
    ),
    "get_charging_profiles": OcppAction(
        {
            vol.Optional("connector_id"): CONNECTOR,
            vol.Optional("purpose"): vol.In(["ChargingStationMaxProfile", "TxDefaultProfile", "TxProfile"]),
            vol.Optional("stack_level"): vol.All(vol.Coerce(int), vol.Range(min=0)),
        },
        v201=(
            "GetChargingProfiles",
            lambda d, _c: _drop_none(
                {
                    "requestId": new_request_id(),
                    "evseId": d.get("connector_id"),
                    "chargingProfile": _drop_none(
                        {"chargingProfilePurpose": d.get("purpose"), "stackLevel": d.get("stack_level")}
                    ),
                }
            ),
        ),
    ),
    "set_network_profile": OcppAction(
        {
            vol.Required("configuration_slot"): vol.Coerce(int),
            vol.Required("connection_data"): dict,
            vol.Required("confirm"): cv.boolean,
        },
        v201=(
            "SetNetworkProfile",
            lambda d, _c: {"configurationSlot": d["configuration_slot"], "connectionData": _confirmed(d)},
        ),
    ),
    "get_log": OcppAction(
        {
            vol.Required("location"): cv.string,
            vol.Optional("log_type", default="DiagnosticsLog"): vol.In(["DiagnosticsLog", "SecurityLog"]),
            vol.Optional("start_time"): cv.datetime,
            vol.Optional("stop_time"): cv.datetime,
        },
        v201=(
            "GetLog",
            lambda d, _c: {
                "logType": d["log_type"],
                "requestId": new_request_id(),
                "log": _drop_none(
                    {
                        "remoteLocation": d["location"],
                        "oldestTimestamp": _time(d.get("start_time")),
                        "latestTimestamp": _time(d.get("stop_time")),
                    }
                ),
            },
        ),
    ),
    "customer_information": OcppAction(
        {
            vol.Optional("report", default=True): cv.boolean,
            vol.Optional("clear", default=False): cv.boolean,
            vol.Optional("customer_identifier"): cv.string,
            vol.Optional("id_tag"): cv.string,
        },
        v201=(
            "CustomerInformation",
            lambda d, _c: _drop_none(
                {
                    "requestId": new_request_id(),
                    "report": d["report"],
                    "clear": d["clear"],
                    "customerIdentifier": d.get("customer_identifier"),
                    "idToken": _id_token(d["id_tag"]) if d.get("id_tag") else None,
                }
            ),
        ),
    ),
}


REPORTING_ACTIONS = {"GetBaseReport", "GetReport", "GetChargingProfiles"}


def _configuration_report(_data: dict[str, Any], _charger: Charger) -> dict[str, Any]:
    return {"requestId": new_request_id(), "reportBase": "ConfigurationInventory"}


def _int_id(transaction_id: str) -> int:
    try:
        return int(transaction_id)
    except ValueError:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="invalid_transaction",
            translation_placeholders={"transaction_id": transaction_id},
        ) from None


STATION_MAX_PURPOSES = {"ChargePointMaxProfile", "ChargingStationMaxProfile"}


def _station_max_checked(data: dict[str, Any]) -> dict[str, Any]:
    """A station maximum profile is absolute or recurring, never relative (OCPP 1.6 and 2.0.1)."""
    profile: dict[str, Any] = data["charging_profile"]
    if (
        profile.get("chargingProfilePurpose") in STATION_MAX_PURPOSES
        and profile.get("chargingProfileKind") == "Relative"
    ):
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="station_max_relative",
            translation_placeholders={"purpose": str(profile["chargingProfilePurpose"])},
        )
    return profile


def _confirmed(data: dict[str, Any]) -> dict[str, Any]:
    """SetNetworkProfile can cut the charger off: it is sent only when the user confirmed."""
    if not data["confirm"]:
        raise ServiceValidationError(translation_domain=DOMAIN, translation_key="confirm_required")
    connection_data: dict[str, Any] = data["connection_data"]
    return connection_data


def _loaded_sites(hass: HomeAssistant, device_id: str) -> list[CariflexRuntime]:
    """The loaded Cariflex sites a device belongs to."""
    device = dr.async_get(hass).async_get(device_id)
    if device is None:
        return []
    sites = []
    for entry_id in device_config_entry_ids(device):
        entry: CariflexConfigEntry | None = hass.config_entries.async_get_entry(entry_id)
        if entry is not None and entry.domain == DOMAIN and entry.state is ConfigEntryState.LOADED:
            sites.append(entry.runtime_data)
    return sites


def _runtime_and_charger(hass: HomeAssistant, device_id: str) -> tuple[CariflexRuntime, Charger]:
    for runtime in _loaded_sites(hass, device_id):
        if (charger := runtime.charger_for_device(device_id)) is not None:
            return runtime, charger
    raise ServiceValidationError(
        translation_domain=DOMAIN,
        translation_key="not_a_charger",
        translation_placeholders={"device_id": device_id},
    )


def _site(hass: HomeAssistant, device_id: str) -> CariflexRuntime:
    if sites := _loaded_sites(hass, device_id):
        return sites[0]
    raise ServiceValidationError(
        translation_domain=DOMAIN,
        translation_key="not_a_site",
        translation_placeholders={"device_id": device_id},
    )


async def async_run_ocpp_action(charger: Charger, name: str, data: dict[str, Any]) -> dict[str, Any]:
    """Run the OCPP action named like its Home Assistant action (``reserve_now``...) on ``charger``.

    ``data`` holds the action's fields, already validated. The charger's answer is returned;
    a request the charger's version cannot carry raises :class:`ServiceValidationError`.
    """
    spec = OCPP_ACTIONS[name]
    version = charger.link.version if charger.link else charger.ocpp_version or V16
    message = spec.v201 if version == V201 else spec.v16
    if message is None:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="not_supported_by_version",
            translation_placeholders={"action": name, "version": version, "charger": charger.charger_id},
        )
    action, payload_fn = message
    if name == "get_configuration" and version == V201 and not data.get("keys"):
        # 2.0.1 has no "all keys" GetVariables: the configuration comes as a base report.
        action, payload_fn = "GetBaseReport", _configuration_report
    payload = payload_fn(dict(data), charger)
    try:
        validate(version, CALL, action, payload)
    except OcppError as err:
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="invalid_request",
            translation_placeholders={"action": action, "error": err.description},
        ) from err
    if version == V201 and action in REPORTING_ACTIONS:
        response = await async_call_link(
            charger, name, lambda link: cast("V201Adapter", link).request_report(action, payload)
        )
    else:
        response = await async_call_link(charger, name, lambda link: link.call(action, payload))
    if name == "reserve_now":
        # The id is needed to cancel the reservation later.
        response = {**response, "reservationId": payload.get("reservationId", payload.get("id"))}
    return response


def _make_handler(name: str, spec: OcppAction) -> Callable[[ServiceCall], Any]:
    async def handle(call: ServiceCall) -> ServiceResponse:
        _runtime, charger = _runtime_and_charger(call.hass, call.data[ATTR_DEVICE_ID])
        return await async_run_ocpp_action(charger, name, dict(call.data))

    return handle


async def _set_badge(call: ServiceCall) -> None:
    runtime = _site(call.hass, call.data[ATTR_DEVICE_ID])
    expiry: datetime | None = call.data.get("expiry")
    if expiry is not None:
        expiry = dt_util.as_utc(expiry)
    runtime.badges.upsert(
        Badge(
            id_tag=call.data["id_tag"],
            name=call.data.get("name", ""),
            blocked=call.data.get("blocked", False),
            expiry=expiry,
            parent_id_tag=call.data.get("parent_id_tag"),
            pv_excluded=call.data.get("pv_excluded", False),
            guaranteed_min_a=call.data.get("guaranteed_min_a"),
        )
    )
    runtime.async_save()


async def _remove_badge(call: ServiceCall) -> None:
    runtime = _site(call.hass, call.data[ATTR_DEVICE_ID])
    if not runtime.badges.remove(call.data["id_tag"]):
        raise ServiceValidationError(
            translation_domain=DOMAIN,
            translation_key="unknown_badge",
            translation_placeholders={"id_tag": call.data["id_tag"]},
        )
    runtime.async_save()


@callback
def async_setup_services(hass: HomeAssistant) -> None:
    """Register every action of the integration."""
    for name, spec in OCPP_ACTIONS.items():
        hass.services.async_register(
            DOMAIN,
            name,
            _make_handler(name, spec),
            schema=vol.Schema({vol.Required(ATTR_DEVICE_ID): cv.string, **spec.fields}),
            supports_response=SupportsResponse.OPTIONAL,
        )
    hass.services.async_register(
        DOMAIN,
        "set_badge",
        _set_badge,
        schema=vol.Schema(
            {
                vol.Required(ATTR_DEVICE_ID): cv.string,
                # 20 characters in OCPP 1.6 (CiString20), 36 for OCPP 2.0.1 idTokens
                vol.Required("id_tag"): vol.All(cv.string, vol.Length(min=1, max=36)),
                vol.Optional("name"): cv.string,
                vol.Optional("blocked", default=False): cv.boolean,
                vol.Optional("expiry"): cv.datetime,
                vol.Optional("parent_id_tag"): vol.All(cv.string, vol.Length(max=36)),
                vol.Optional("pv_excluded", default=False): cv.boolean,
                vol.Optional("guaranteed_min_a"): vol.All(vol.Coerce(float), vol.Range(min=0, max=500)),
            }
        ),
    )
    hass.services.async_register(
        DOMAIN,
        "remove_badge",
        _remove_badge,
        schema=vol.Schema({vol.Required(ATTR_DEVICE_ID): cv.string, vol.Required("id_tag"): cv.string}),
    )
