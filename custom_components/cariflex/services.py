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
from typing import Any

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant, ServiceCall, ServiceResponse, SupportsResponse, callback
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import config_validation as cv, device_registry as dr
import voluptuous as vol

from .access import Badge
from .compat import device_config_entry_ids
from .const import DOMAIN
from .helpers import async_call_link
from .ocpp.errors import OcppError
from .ocpp.model import Charger
from .ocpp.rpc import CALL, validate
from .ocpp.v16 import iso
from .runtime import CariflexConfigEntry, CariflexRuntime

ATTR_DEVICE_ID = "device_id"
_reservation_ids = itertools.count(int(time.time()) % 1_000_000_000)


def _drop_none(payload: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in payload.items() if value is not None}


def _time(value: datetime | None) -> str | None:
    return iso(value) if value is not None else None


@dataclass(frozen=True)
class OcppAction:
    """A Home Assistant action that sends one OCPP CALL."""

    action: str
    fields: dict[vol.Marker, Any]
    payload_fn: Callable[[dict[str, Any], Charger], dict[str, Any]]


def _running_transaction(data: dict[str, Any], charger: Charger) -> int:
    if data.get("transaction_id") is not None:
        return int(data["transaction_id"])
    connector_id = data.get("connector_id")
    for connector in charger.outlets:
        if connector.session and connector_id in (None, connector.connector_id):
            return int(connector.session.transaction_id)
    raise ServiceValidationError(
        translation_domain=DOMAIN,
        translation_key="no_session",
        translation_placeholders={"charger": charger.charger_id},
    )


CONNECTOR = vol.All(vol.Coerce(int), vol.Range(min=0))
OCPP_ACTIONS: dict[str, OcppAction] = {
    "cancel_reservation": OcppAction(
        "CancelReservation",
        {vol.Required("reservation_id"): vol.Coerce(int)},
        lambda d, _c: {"reservationId": d["reservation_id"]},
    ),
    "change_availability": OcppAction(
        "ChangeAvailability",
        {vol.Optional("connector_id", default=0): CONNECTOR, vol.Required("operative"): cv.boolean},
        lambda d, _c: {"connectorId": d["connector_id"], "type": "Operative" if d["operative"] else "Inoperative"},
    ),
    "change_configuration": OcppAction(
        "ChangeConfiguration",
        {vol.Required("key"): cv.string, vol.Required("value"): cv.string},
        lambda d, _c: {"key": d["key"], "value": d["value"]},
    ),
    "clear_cache": OcppAction("ClearCache", {}, lambda _d, _c: {}),
    "clear_charging_profile": OcppAction(
        "ClearChargingProfile",
        {
            vol.Optional("profile_id"): vol.Coerce(int),
            vol.Optional("connector_id"): CONNECTOR,
            vol.Optional("purpose"): vol.In(["ChargePointMaxProfile", "TxDefaultProfile", "TxProfile"]),
            vol.Optional("stack_level"): vol.All(vol.Coerce(int), vol.Range(min=0)),
        },
        lambda d, _c: _drop_none(
            {
                "id": d.get("profile_id"),
                "connectorId": d.get("connector_id"),
                "chargingProfilePurpose": d.get("purpose"),
                "stackLevel": d.get("stack_level"),
            }
        ),
    ),
    "data_transfer": OcppAction(
        "DataTransfer",
        {vol.Required("vendor_id"): cv.string, vol.Optional("message_id"): cv.string, vol.Optional("data"): cv.string},
        lambda d, _c: _drop_none({"vendorId": d["vendor_id"], "messageId": d.get("message_id"), "data": d.get("data")}),
    ),
    "get_composite_schedule": OcppAction(
        "GetCompositeSchedule",
        {
            vol.Optional("connector_id", default=0): CONNECTOR,
            vol.Required("duration"): vol.All(vol.Coerce(int), vol.Range(min=1)),
            vol.Optional("charging_rate_unit"): vol.In(["A", "W"]),
        },
        lambda d, _c: _drop_none(
            {
                "connectorId": d["connector_id"],
                "duration": d["duration"],
                "chargingRateUnit": d.get("charging_rate_unit"),
            }
        ),
    ),
    "get_configuration": OcppAction(
        "GetConfiguration",
        {vol.Optional("keys"): vol.All(cv.ensure_list, [cv.string])},
        lambda d, _c: {"key": d["keys"]} if d.get("keys") else {},
    ),
    "get_diagnostics": OcppAction(
        "GetDiagnostics",
        {
            vol.Required("location"): cv.string,
            vol.Optional("retries"): vol.Coerce(int),
            vol.Optional("retry_interval"): vol.Coerce(int),
            vol.Optional("start_time"): cv.datetime,
            vol.Optional("stop_time"): cv.datetime,
        },
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
    "get_local_list_version": OcppAction("GetLocalListVersion", {}, lambda _d, _c: {}),
    "remote_start_transaction": OcppAction(
        "RemoteStartTransaction",
        {
            vol.Required("id_tag"): cv.string,
            vol.Optional("connector_id"): vol.All(vol.Coerce(int), vol.Range(min=1)),
            vol.Optional("charging_profile"): dict,
        },
        lambda d, _c: _drop_none(
            {"idTag": d["id_tag"], "connectorId": d.get("connector_id"), "chargingProfile": d.get("charging_profile")}
        ),
    ),
    "remote_stop_transaction": OcppAction(
        "RemoteStopTransaction",
        {vol.Optional("transaction_id"): vol.Coerce(int), vol.Optional("connector_id"): CONNECTOR},
        lambda d, c: {"transactionId": _running_transaction(d, c)},
    ),
    "reserve_now": OcppAction(
        "ReserveNow",
        {
            vol.Optional("connector_id", default=0): CONNECTOR,
            vol.Required("expiry_date"): cv.datetime,
            vol.Required("id_tag"): cv.string,
            vol.Optional("parent_id_tag"): cv.string,
            vol.Optional("reservation_id"): vol.Coerce(int),
        },
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
    "reset": OcppAction(
        "Reset",
        {vol.Optional("type", default="soft"): vol.In(["soft", "hard"])},
        lambda d, _c: {"type": d["type"].capitalize()},
    ),
    "send_local_list": OcppAction(
        "SendLocalList",
        {
            vol.Required("list_version"): vol.Coerce(int),
            vol.Optional("update_type", default="Full"): vol.In(["Full", "Differential"]),
            vol.Optional("local_authorization_list", default=list): vol.All(cv.ensure_list, [dict]),
        },
        lambda d, _c: {
            "listVersion": d["list_version"],
            "updateType": d["update_type"],
            "localAuthorizationList": d["local_authorization_list"],
        },
    ),
    "set_charging_profile": OcppAction(
        "SetChargingProfile",
        {vol.Optional("connector_id", default=0): CONNECTOR, vol.Required("charging_profile"): dict},
        lambda d, _c: {"connectorId": d["connector_id"], "csChargingProfiles": d["charging_profile"]},
    ),
    "trigger_message": OcppAction(
        "TriggerMessage",
        {
            vol.Required("requested_message"): vol.In(
                [
                    "BootNotification",
                    "DiagnosticsStatusNotification",
                    "FirmwareStatusNotification",
                    "Heartbeat",
                    "MeterValues",
                    "StatusNotification",
                ]
            ),
            vol.Optional("connector_id"): CONNECTOR,
        },
        lambda d, _c: _drop_none({"requestedMessage": d["requested_message"], "connectorId": d.get("connector_id")}),
    ),
    "unlock_connector": OcppAction(
        "UnlockConnector",
        {vol.Optional("connector_id", default=1): vol.All(vol.Coerce(int), vol.Range(min=1))},
        lambda d, _c: {"connectorId": d["connector_id"]},
    ),
    "update_firmware": OcppAction(
        "UpdateFirmware",
        {
            vol.Required("location"): cv.string,
            vol.Required("retrieve_date"): cv.datetime,
            vol.Optional("retries"): vol.Coerce(int),
            vol.Optional("retry_interval"): vol.Coerce(int),
        },
        lambda d, _c: _drop_none(
            {
                "location": d["location"],
                "retrieveDate": _time(d["retrieve_date"]),
                "retries": d.get("retries"),
                "retryInterval": d.get("retry_interval"),
            }
        ),
    ),
}


def _runtime_and_charger(hass: HomeAssistant, device_id: str) -> tuple[CariflexRuntime, Charger]:
    device = dr.async_get(hass).async_get(device_id)
    if device is not None:
        for entry_id in device_config_entry_ids(device):
            entry: CariflexConfigEntry | None = hass.config_entries.async_get_entry(entry_id)
            if entry is None or entry.domain != DOMAIN or entry.state is not ConfigEntryState.LOADED:
                continue
            charger = entry.runtime_data.charger_for_device(device_id)
            if charger is not None:
                return entry.runtime_data, charger
    raise ServiceValidationError(
        translation_domain=DOMAIN,
        translation_key="not_a_charger",
        translation_placeholders={"device_id": device_id},
    )


def _site(hass: HomeAssistant, device_id: str) -> CariflexRuntime:
    device = dr.async_get(hass).async_get(device_id)
    if device is not None:
        for entry_id in device_config_entry_ids(device):
            entry: CariflexConfigEntry | None = hass.config_entries.async_get_entry(entry_id)
            if entry is not None and entry.domain == DOMAIN and entry.state is ConfigEntryState.LOADED:
                return entry.runtime_data
    raise ServiceValidationError(
        translation_domain=DOMAIN,
        translation_key="not_a_site",
        translation_placeholders={"device_id": device_id},
    )


def _make_handler(name: str, spec: OcppAction) -> Callable[[ServiceCall], Any]:
    async def handle(call: ServiceCall) -> ServiceResponse:
        _runtime, charger = _runtime_and_charger(call.hass, call.data[ATTR_DEVICE_ID])
        payload = spec.payload_fn(dict(call.data), charger)
        version = charger.link.version if charger.link else charger.ocpp_version or "1.6"
        try:
            validate(version, CALL, spec.action, payload)
        except OcppError as err:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="invalid_request",
                translation_placeholders={"action": spec.action, "error": err.description},
            ) from err
        return await async_call_link(charger, name, lambda link: link.call(spec.action, payload))

    return handle


async def _set_badge(call: ServiceCall) -> None:
    runtime = _site(call.hass, call.data[ATTR_DEVICE_ID])
    expiry: datetime | None = call.data.get("expiry")
    runtime.badges.upsert(
        Badge(
            id_tag=call.data["id_tag"],
            name=call.data.get("name", ""),
            blocked=call.data.get("blocked", False),
            expiry=expiry,
            parent_id_tag=call.data.get("parent_id_tag"),
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
                vol.Required("id_tag"): vol.All(cv.string, vol.Length(min=1, max=20)),
                vol.Optional("name"): cv.string,
                vol.Optional("blocked", default=False): cv.boolean,
                vol.Optional("expiry"): cv.datetime,
                vol.Optional("parent_id_tag"): vol.All(cv.string, vol.Length(max=20)),
            }
        ),
    )
    hass.services.async_register(
        DOMAIN,
        "remove_badge",
        _remove_badge,
        schema=vol.Schema({vol.Required(ATTR_DEVICE_ID): cv.string, vol.Required("id_tag"): cv.string}),
    )
