"""OCPP 2.0.1 adapter: translates 2.0.1 messages into the same protocol-neutral model as 1.6.

An EVSE is a connector of the model (its EVSE id is the connector id), so entities,
actions and the energy manager see no difference between versions. Transactions come as
TransactionEvent Started/Updated/Ended with a sequence number; events replayed after a
reconnect (offline queue) are recognised by their seqNo and applied once.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable
import itertools
import logging
from typing import Any

from ..access import AuthResult, AuthStatus
from .adapter import TX_DEFAULT_PROFILE_ID, TX_PROFILE_ID, AdapterBase, Handler
from .backend import BootStatus, CentralBackend
from .common import iso, parse_time, utcnow
from .meter import ENERGY_REGISTER, Sample, scale
from .model import Availability, Charger, ConnectorStatus, ResetKind, Session
from .rpc import V201, RpcEndpoint

_LOGGER = logging.getLogger(__name__)

CONNECTOR_STATUS = {
    "Available": ConnectorStatus.AVAILABLE,
    "Occupied": ConnectorStatus.OCCUPIED,
    "Reserved": ConnectorStatus.RESERVED,
    "Unavailable": ConnectorStatus.UNAVAILABLE,
    "Faulted": ConnectorStatus.FAULTED,
}
CHARGING_STATE = {
    "Charging": ConnectorStatus.CHARGING,
    "EVConnected": ConnectorStatus.PREPARING,
    "SuspendedEV": ConnectorStatus.SUSPENDED_EV,
    "SuspendedEVSE": ConnectorStatus.SUSPENDED_EVSE,
    "Idle": ConnectorStatus.OCCUPIED,
}
SEEN_EVENTS_KEPT = 2000
_request_ids = itertools.count(1)


def variable_key(component: dict[str, Any], variable: dict[str, Any]) -> str:
    """Where a device-model variable is kept: ``Component[.instance][#evse]/Variable[.instance]``."""
    name = str(component["name"])
    if component.get("instance"):
        name += f".{component['instance']}"
    if evse := component.get("evse"):
        name += f"#{evse['id']}"
    name += f"/{variable['name']}"
    if variable.get("instance"):
        name += f".{variable['instance']}"
    return name


def id_token_info(result: AuthResult) -> dict[str, Any]:
    """OCPP 2.0.1 IdTokenInfo."""
    info: dict[str, Any] = {"status": result.status.value}
    if result.expiry is not None:
        info["cacheExpiryDateTime"] = iso(result.expiry)
    if result.parent_id_tag:
        info["groupIdToken"] = {"idToken": result.parent_id_tag, "type": "Central"}
    return info


def samples_v201(sampled_values: list[dict[str, Any]]) -> list[Sample]:
    """Normalise 2.0.1 SampledValues (numbers with unit and power-of-ten multiplier)."""
    result: list[Sample] = []
    for item in sampled_values:
        measurand = item.get("measurand", ENERGY_REGISTER)
        unit_of_measure = item.get("unitOfMeasure") or {}
        unit = unit_of_measure.get("unit")
        if unit is None and measurand.startswith("Energy"):
            unit = "Wh"
        value = scale(float(item["value"]), unit, int(unit_of_measure.get("multiplier", 0)))
        if value is None:
            continue
        result.append(Sample(measurand, value, item.get("phase"), item.get("context"), item.get("location")))
    return result


class V201Adapter(AdapterBase):
    """One connected OCPP 2.0.1 charging station."""

    version = V201
    STACK_LEVEL_KEY = "SmartChargingCtrlr/ProfileStackLevel"
    ACKNOWLEDGED = frozenset(
        {
            "ClearedChargingLimit",
            "NotifyCustomerInformation",
            "NotifyDisplayMessages",
            "NotifyEVChargingSchedule",
            "NotifyMonitoringReport",
            "PublishFirmwareStatusNotification",
            "ReservationStatusUpdate",
        }
    )

    def __init__(
        self, charger: Charger, backend: CentralBackend, endpoint_factory: Callable[[V201Adapter], RpcEndpoint]
    ) -> None:
        self.reports: dict[int, list[dict[str, Any]]] = {}
        self._report_waiters: dict[int, asyncio.Future[list[dict[str, Any]]]] = {}
        self._seen: OrderedDict[tuple[str, int], dict[str, Any]] = OrderedDict()
        super().__init__(charger, backend, endpoint_factory)

    def handlers(self) -> dict[str, Handler]:
        """The 2.0.1 messages a CSMS receives."""
        return {
            "Authorize": self.on_authorize,
            "BootNotification": self.on_boot_notification,
            "DataTransfer": self.on_data_transfer,
            "FirmwareStatusNotification": self.on_firmware_status,
            "Heartbeat": self.on_heartbeat,
            "LogStatusNotification": self.on_log_status,
            "MeterValues": self.on_meter_values,
            "NotifyChargingLimit": self.on_notify_charging_limit,
            "NotifyEvent": self.on_notify_event,
            "NotifyReport": self.on_notify_report,
            "ReportChargingProfiles": self.on_report_charging_profiles,
            "SecurityEventNotification": self.on_security_event,
            "StatusNotification": self.on_status_notification,
            "TransactionEvent": self.on_transaction_event,
            "NotifyEVChargingNeeds": lambda _p: {"status": "Rejected"},
        }

    # ------------------------------------------------------------- handlers
    def on_boot_notification(self, payload: dict[str, Any]) -> dict[str, Any]:
        station = payload["chargingStation"]
        info = self.charger.info
        info.vendor = station["vendorName"]
        info.model = station["model"]
        info.serial = station.get("serialNumber")
        info.firmware = station.get("firmwareVersion")
        modem = station.get("modem") or {}
        info.iccid = modem.get("iccid")
        info.imsi = modem.get("imsi")
        decision = self.backend.boot(self.charger)
        self.charger.boot_status = decision.status
        if decision.status is BootStatus.ACCEPTED:
            self.follow_up(self.after_boot, "after boot")
        return {"currentTime": iso(utcnow()), "interval": decision.interval, "status": decision.status.value}

    def on_heartbeat(self, payload: dict[str, Any]) -> dict[str, Any]:
        now = utcnow()
        self.charger.last_heartbeat = now
        return {"currentTime": iso(now)}

    def on_status_notification(self, payload: dict[str, Any]) -> dict[str, Any]:
        connector = self.charger.connector(int(payload["evseId"]))
        status = CONNECTOR_STATUS.get(payload["connectorStatus"], ConnectorStatus.UNKNOWN)
        if status is ConnectorStatus.OCCUPIED and connector.status in CHARGING_STATE.values():
            # A transaction's charging state refines "occupied": keep it.
            status = connector.status
        connector.status = status
        connector.error_code = "Faulted" if status is ConnectorStatus.FAULTED else "NoError"
        connector.status_at = parse_time(payload.get("timestamp"), utcnow())
        if status is ConnectorStatus.AVAILABLE:
            connector.readings.power_w = 0.0
            connector.readings.current_a = {}
        return {}

    async def on_authorize(self, payload: dict[str, Any]) -> dict[str, Any]:
        id_token = payload["idToken"]
        if id_token.get("type") == "NoAuthorization":
            return {"idTokenInfo": id_token_info(AuthResult(AuthStatus.ACCEPTED))}
        return {"idTokenInfo": id_token_info(await self.backend.authorize_async(self.charger, id_token["idToken"]))}

    def _authorize(self, id_token: dict[str, Any]) -> AuthResult:
        if id_token.get("type") == "NoAuthorization":
            return AuthResult(AuthStatus.ACCEPTED)
        return self.backend.authorize(self.charger, id_token["idToken"])

    def on_meter_values(self, payload: dict[str, Any]) -> dict[str, Any]:
        evse_id = int(payload["evseId"])
        connector = self.charger.connector(evse_id)
        for meter_value in payload["meterValue"]:
            self._apply_meter_value(evse_id, connector.session, meter_value)
        return {}

    def on_transaction_event(self, payload: dict[str, Any]) -> dict[str, Any]:
        info = payload["transactionInfo"]
        transaction_id = str(info["transactionId"])
        key = (transaction_id, int(payload["seqNo"]))
        if key in self._seen or key in self.charger.seen_events:
            # A replayed event (offline queue sent again): same answer, applied once.
            return self._seen.get(key, {})
        event_type = payload["eventType"]
        timestamp = parse_time(payload.get("timestamp"), utcnow())
        session = self.charger.session_by_transaction(transaction_id)
        evse = payload.get("evse") or {}
        evse_id = int(evse["id"]) if "id" in evse else (session.connector_id if session else 0)
        response: dict[str, Any] = {}
        id_token = payload.get("idToken")
        if id_token is not None:
            response["idTokenInfo"] = id_token_info(self._authorize(id_token))
        if session is None and transaction_id in self.charger.ended_transactions:
            # An event of a transaction that already ended (replayed after a restart): applied already.
            self._remember(key, response)
            return response
        if session is None and evse_id > 0 and event_type != "Ended":
            session = self._start_session(transaction_id, evse_id, timestamp, payload)
        elif session is None and event_type == "Ended":
            session = self._orphan_session(transaction_id, evse_id, timestamp, payload)
        if session is not None and id_token is not None and session.id_tag is None:
            session.id_tag = id_token.get("idToken")
        connector = self.charger.connector(session.connector_id if session else evse_id)
        for meter_value in payload.get("meterValue", []):
            self._apply_meter_value(connector.connector_id, session, meter_value)
        if event_type != "Ended" and (state := info.get("chargingState")):
            connector.status = CHARGING_STATE.get(state, connector.status)
        elif event_type == "Ended" and connector.status in CHARGING_STATE.values():
            # The transaction is over; the cable may still be in: Occupied until the station says.
            connector.status = ConnectorStatus.OCCUPIED
        if event_type == "Ended" and session is not None:
            session.stopped_at = timestamp
            session.stop_reason = info.get("stoppedReason", "Local")
            session.meter_stop_wh = session.meter_now_wh
            if connector.session is session:
                connector.readings.power_w = 0.0
                connector.readings.current_a = {}
            self.charger.session_ended(session)
        self._remember(key, response)
        return response

    def _start_session(self, transaction_id: str, evse_id: int, timestamp: Any, payload: dict[str, Any]) -> Session:
        connector = self.charger.connector(evse_id)
        begin = [
            s.value
            for mv in payload.get("meterValue", [])
            for s in samples_v201(mv.get("sampledValue", []))
            if s.measurand == ENERGY_REGISTER
        ]
        start = min(begin) if begin else (connector.readings.energy_wh or 0.0)
        if connector.session is not None and connector.session.transaction_id != transaction_id:
            previous = connector.session
            previous.stopped_at = timestamp
            previous.stop_reason = "Superseded"
            self.charger.session_ended(previous)
        id_token = payload.get("idToken") or {}
        session = Session(
            transaction_id=transaction_id,
            connector_id=evse_id,
            id_tag=id_token.get("idToken"),
            started_at=timestamp,
            meter_start_wh=start,
            meter_now_wh=start,
            reservation_id=payload.get("reservationId"),
            offline_start=bool(payload.get("offline")) or payload["eventType"] != "Started",
        )
        self.charger.session_started(session)
        return session

    def _orphan_session(self, transaction_id: str, evse_id: int, timestamp: Any, payload: dict[str, Any]) -> Session:
        """An Ended event for a transaction we never saw: record it."""
        energy = [
            s.value
            for mv in payload.get("meterValue", [])
            for s in samples_v201(mv.get("sampledValue", []))
            if s.measurand == ENERGY_REGISTER
        ]
        start = min(energy) if energy else 0.0
        _LOGGER.info("%s: Ended event for unknown transaction %s recorded", self.charger.charger_id, transaction_id)
        return Session(
            transaction_id=transaction_id,
            connector_id=evse_id,
            id_tag=(payload.get("idToken") or {}).get("idToken"),
            started_at=timestamp,
            meter_start_wh=start,
            meter_now_wh=max(energy) if energy else start,
            offline_start=True,
        )

    def _remember(self, key: tuple[str, int], response: dict[str, Any]) -> None:
        self._seen[key] = response
        self.charger.seen_events.add(key)
        while len(self._seen) > SEEN_EVENTS_KEPT:
            old, _ = self._seen.popitem(last=False)
            self.charger.seen_events.discard(old)

    def _apply_meter_value(self, evse_id: int, session: Session | None, meter_value: dict[str, Any]) -> None:
        self.apply_meter_value(
            evse_id,
            session,
            samples_v201(meter_value.get("sampledValue", [])),
            parse_time(meter_value.get("timestamp"), utcnow()),
        )

    def on_notify_report(self, payload: dict[str, Any]) -> dict[str, Any]:
        request_id = int(payload["requestId"])
        for item in payload.get("reportData", []):
            self.reports.setdefault(request_id, []).append(item)
            name = variable_key(item["component"], item["variable"])
            for attribute in item.get("variableAttribute", []):
                if attribute.get("type", "Actual") == "Actual":
                    self.charger.configuration[name] = attribute.get("value")
        self._learn_device_model()
        if not payload.get("tbc", False):
            self._report_done(request_id)
        return {}

    def _report_done(self, request_id: int) -> None:
        waiter = self._report_waiters.get(request_id)
        if waiter is not None and not waiter.done():
            waiter.set_result(self.reports.get(request_id, []))

    def _learn_device_model(self) -> None:
        """EVSE count and identity from the device model; optional variables may be missing."""
        for key in self.charger.configuration:
            if key.startswith("EVSE#") and key.endswith("/AvailabilityState"):
                self.charger.connector(int(key[5:].split("/")[0]))

    def on_notify_event(self, payload: dict[str, Any]) -> dict[str, Any]:
        for event in payload.get("eventData", []):
            component = event.get("component", {})
            variable = event.get("variable", {})
            if variable.get("name") == "Problem" and str(event.get("actualValue")).lower() == "true":
                evse = (component.get("evse") or {}).get("id", 0)
                connector = self.charger.connector(int(evse))
                connector.error_code = component.get("name", "Problem")
                connector.info = event.get("techInfo")
        return {}

    def on_firmware_status(self, payload: dict[str, Any]) -> dict[str, Any]:
        self.charger.firmware_status = payload["status"]
        return {}

    def on_log_status(self, payload: dict[str, Any]) -> dict[str, Any]:
        self.charger.diagnostics_status = payload["status"]
        return {}

    def on_security_event(self, payload: dict[str, Any]) -> dict[str, Any]:
        _LOGGER.warning(
            "%s: security event %s %s", self.charger.charger_id, payload["type"], payload.get("techInfo", "")
        )
        return {}

    def on_notify_charging_limit(self, payload: dict[str, Any]) -> dict[str, Any]:
        limit = payload["chargingLimit"]
        self.charger.configuration["ChargingLimit/Source"] = limit["chargingLimitSource"]
        return {}

    def on_report_charging_profiles(self, payload: dict[str, Any]) -> dict[str, Any]:
        request_id = int(payload["requestId"])
        self.reports.setdefault(request_id, []).append(
            {
                "evseId": payload["evseId"],
                "chargingLimitSource": payload["chargingLimitSource"],
                "chargingProfile": payload["chargingProfile"],
            }
        )
        if not payload.get("tbc", False):
            self._report_done(request_id)
        return {}

    def on_data_transfer(self, payload: dict[str, Any]) -> dict[str, Any]:
        status = self.backend.data_transfer(
            self.charger, payload["vendorId"], payload.get("messageId"), payload.get("data")
        )
        return {"status": status}

    # ------------------------------------------------------------ follow-ups
    async def after_boot(self) -> None:
        """Ask for the device model, then re-apply our limits."""
        try:
            await self.call("GetBaseReport", {"requestId": next(_request_ids), "reportBase": "FullInventory"})
        except Exception as err:  # noqa: BLE001 - a follow-up never breaks the connection
            _LOGGER.debug("%s: GetBaseReport after boot failed: %s", self.charger.charger_id, err)
        await self.reapply_limits()

    # ------------------------------------------------------------- commands
    async def call(self, action: str, payload: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        """Send a raw OCPP 2.0.1 CALL (keeping our copy of the device model up to date)."""
        result = await super().call(action, payload, timeout)
        if action == "SetVariables":
            for request, answer in zip(payload["setVariableData"], result.get("setVariableResult", []), strict=False):
                if (
                    answer.get("attributeStatus") in ("Accepted", "RebootRequired")
                    and request.get("attributeType", "Actual") == "Actual"
                ):
                    key = variable_key(request["component"], request["variable"])
                    self.charger.configuration[key] = request["attributeValue"]
            self.charger.notify()
        elif action == "ClearChargingProfile" and result.get("status") == "Accepted":
            self._forget_cleared_limits(payload)
        return result

    def _forget_cleared_limits(self, payload: dict[str, Any]) -> None:
        criteria = payload.get("chargingProfileCriteria") or {}
        self.forget_cleared_limits(
            payload.get("chargingProfileId"),
            criteria.get("evseId"),
            criteria.get("chargingProfilePurpose"),
            criteria.get("stackLevel"),
        )

    async def request_report(
        self, action: str, payload: dict[str, Any], timeout: float | None = None
    ) -> dict[str, Any]:
        """Send GetBaseReport/GetReport/GetChargingProfiles and wait for the whole report that follows.

        Returns the station's answer plus ``reportData`` (every NotifyReport/ReportChargingProfiles
        item for the request) and ``complete`` (False when the report did not finish in time).
        """
        request_id = int(payload["requestId"])
        waiter: asyncio.Future[list[dict[str, Any]]] = asyncio.get_running_loop().create_future()
        self._report_waiters[request_id] = waiter
        self.reports[request_id] = []
        try:
            result = await self.call(action, payload, timeout)
            if result.get("status") != "Accepted":
                return result
            try:
                async with asyncio.timeout(self.endpoint.call_timeout if timeout is None else timeout):
                    data = await waiter
            except TimeoutError:
                return {**result, "reportData": self.reports.get(request_id, []), "complete": False}
            return {**result, "reportData": data, "complete": True}
        finally:
            self._report_waiters.pop(request_id, None)
            self.reports.pop(request_id, None)

    async def remote_start(self, connector_id: int | None, id_tag: str) -> str:
        payload: dict[str, Any] = {
            "idToken": {"idToken": id_tag, "type": "Central"},
            "remoteStartId": next(_request_ids),
        }
        if connector_id:
            payload["evseId"] = connector_id
        return await self._status("RequestStartTransaction", payload)

    async def remote_stop(self, transaction_id: str) -> str:
        return await self._status("RequestStopTransaction", {"transactionId": transaction_id})

    async def reset(self, kind: ResetKind) -> str:
        return await self._status("Reset", {"type": "Immediate" if kind is ResetKind.HARD else "OnIdle"})

    async def unlock(self, connector_id: int) -> str:
        return await self._status("UnlockConnector", {"evseId": connector_id, "connectorId": 1})

    async def set_availability(self, connector_id: int, availability: Availability) -> str:
        payload: dict[str, Any] = {
            "operationalStatus": "Operative" if availability is Availability.OPERATIVE else "Inoperative"
        }
        if connector_id:
            payload["evse"] = {"id": connector_id}
        return await self._status("ChangeAvailability", payload)

    def rate_unit(self) -> str:
        """'A' when the station accepts current (SmartChargingCtrlr.RateUnit), else 'W'."""
        units = self.charger.configuration.get("SmartChargingCtrlr/RateUnit") or "A"
        return "A" if "A" in [unit.strip() for unit in units.split(",")] else "W"

    def charging_profile(self, evse_id: int, amps: float, phases: int | None = None) -> dict[str, Any]:
        """TxProfile on a running transaction, else TxDefaultProfile; never ChargingStationMaxProfile."""
        connector = self.charger.connector(evse_id)
        unit, period = self.schedule_period(connector, amps, phases)
        profile: dict[str, Any] = {
            "stackLevel": self.stack_level(),
            "chargingProfileKind": "Relative",
            "chargingSchedule": [{"id": 1, "chargingRateUnit": unit, "chargingSchedulePeriod": [period]}],
        }
        if connector.session is not None:
            profile.update(
                id=TX_PROFILE_ID + evse_id,
                chargingProfilePurpose="TxProfile",
                transactionId=connector.session.transaction_id,
            )
        else:
            profile.update(id=TX_DEFAULT_PROFILE_ID + evse_id, chargingProfilePurpose="TxDefaultProfile")
        return profile

    async def _send_profile(self, connector_id: int, profile: dict[str, Any]) -> str:
        return await self._status("SetChargingProfile", {"evseId": connector_id, "chargingProfile": profile})

    async def _clear_profile(self, profile_id: int) -> str:
        return await self._status("ClearChargingProfile", {"chargingProfileId": profile_id})


def new_request_id() -> int:
    """A request id for GetReport/GetLog/... requests."""
    return next(_request_ids)
