"""OCPP 1.6J adapter: translates 1.6 messages into the protocol-neutral model.

Handlers are short: read the payload, update the model, answer. Follow-up CALLs after
a message (reading the configuration after boot, re-sending a limit after a reconnect)
run as spawned tasks, never inside a handler, so the receive loop never waits on itself.
"""

from __future__ import annotations

import logging
from typing import Any

from ..access import AuthResult
from .adapter import (
    PROFILE_STACK_LEVEL,
    TX_DEFAULT_PROFILE_ID,
    TX_PROFILE_ID,
    AdapterBase,
    Handler,
)
from .backend import BootStatus
from .common import iso, parse_time, utcnow
from .errors import PropertyConstraintViolationError
from .meter import Sample, scale
from .model import Availability, ConnectorStatus, ResetKind, Session
from .rpc import V16

__all__ = [
    "PROFILE_STACK_LEVEL",
    "STATUS_MAP",
    "TX_DEFAULT_PROFILE_ID",
    "TX_PROFILE_ID",
    "V16Adapter",
    "id_tag_info",
    "iso",
    "parse_time",
    "samples_v16",
    "utcnow",
]

_LOGGER = logging.getLogger(__name__)

STATUS_MAP = {
    "Available": ConnectorStatus.AVAILABLE,
    "Preparing": ConnectorStatus.PREPARING,
    "Charging": ConnectorStatus.CHARGING,
    "SuspendedEV": ConnectorStatus.SUSPENDED_EV,
    "SuspendedEVSE": ConnectorStatus.SUSPENDED_EVSE,
    "Finishing": ConnectorStatus.FINISHING,
    "Reserved": ConnectorStatus.RESERVED,
    "Unavailable": ConnectorStatus.UNAVAILABLE,
    "Faulted": ConnectorStatus.FAULTED,
}


def id_tag_info(result: AuthResult) -> dict[str, Any]:
    """OCPP 1.6 IdTagInfo."""
    info: dict[str, Any] = {"status": result.status.value}
    if result.expiry is not None:
        info["expiryDate"] = iso(result.expiry)
    if result.parent_id_tag:
        info["parentIdTag"] = result.parent_id_tag
    return info


def samples_v16(sampled_values: list[dict[str, Any]]) -> list[Sample]:
    """Normalise 1.6 SampledValues (value is a string; unit defaults to Wh)."""
    result: list[Sample] = []
    for item in sampled_values:
        if item.get("format") == "SignedData":
            continue
        measurand = item.get("measurand", "Energy.Active.Import.Register")
        try:
            raw = float(item["value"])
        except (KeyError, TypeError, ValueError):
            continue
        unit = item.get("unit")
        if unit is None and measurand.startswith("Energy"):
            unit = "Wh"
        value = scale(raw, unit)
        if value is None:
            continue
        result.append(Sample(measurand, value, item.get("phase"), item.get("context"), item.get("location")))
    return result


class V16Adapter(AdapterBase):
    """One connected OCPP 1.6 charger."""

    version = V16
    STACK_LEVEL_KEY = "ChargeProfileMaxStackLevel"
    # 1.6 security extension messages: acknowledged (logged at debug level)
    ACKNOWLEDGED = frozenset({"SecurityEventNotification", "LogStatusNotification", "SignedFirmwareStatusNotification"})

    def handlers(self) -> dict[str, Handler]:
        """The 1.6 messages a central system receives."""
        return {
            "Authorize": self.on_authorize,
            "BootNotification": self.on_boot_notification,
            "DataTransfer": self.on_data_transfer,
            "DiagnosticsStatusNotification": self.on_diagnostics_status,
            "FirmwareStatusNotification": self.on_firmware_status,
            "Heartbeat": self.on_heartbeat,
            "MeterValues": self.on_meter_values,
            "StartTransaction": self.on_start_transaction,
            "StatusNotification": self.on_status_notification,
            "StopTransaction": self.on_stop_transaction,
        }

    # ------------------------------------------------------------- handlers
    def on_boot_notification(self, payload: dict[str, Any]) -> dict[str, Any]:
        info = self.charger.info
        info.vendor = payload["chargePointVendor"]
        info.model = payload["chargePointModel"]
        info.serial = payload.get("chargePointSerialNumber") or payload.get("chargeBoxSerialNumber")
        info.firmware = payload.get("firmwareVersion")
        info.iccid = payload.get("iccid")
        info.imsi = payload.get("imsi")
        info.meter_type = payload.get("meterType")
        info.meter_serial = payload.get("meterSerialNumber")
        decision = self.backend.boot(self.charger)
        self.charger.boot_status = decision.status
        if decision.status is BootStatus.ACCEPTED:
            self.follow_up(self.after_boot, "after boot")
        return {"status": decision.status.value, "currentTime": iso(utcnow()), "interval": decision.interval}

    def on_heartbeat(self, payload: dict[str, Any]) -> dict[str, Any]:
        now = utcnow()
        self.charger.last_heartbeat = now
        return {"currentTime": iso(now)}

    def on_status_notification(self, payload: dict[str, Any]) -> dict[str, Any]:
        connector = self.charger.connector(int(payload["connectorId"]))
        connector.status = STATUS_MAP.get(payload["status"], ConnectorStatus.UNKNOWN)
        connector.error_code = payload["errorCode"]
        connector.vendor_error_code = payload.get("vendorErrorCode")
        connector.info = payload.get("info")
        connector.status_at = parse_time(payload.get("timestamp"), utcnow())
        if connector.status in (ConnectorStatus.AVAILABLE, ConnectorStatus.PREPARING) and connector.connector_id:
            connector.readings.power_w = 0.0
            connector.readings.current_a = {}
        return {}

    async def on_authorize(self, payload: dict[str, Any]) -> dict[str, Any]:
        return {"idTagInfo": id_tag_info(await self.backend.authorize_async(self.charger, payload["idTag"]))}

    def on_start_transaction(self, payload: dict[str, Any]) -> dict[str, Any]:
        connector_id = int(payload["connectorId"])
        if connector_id < 1:
            raise PropertyConstraintViolationError("connectorId must be >= 1")
        started_at = parse_time(payload.get("timestamp"), utcnow())
        meter_start = float(payload["meterStart"])
        auth = self.backend.authorize(self.charger, payload["idTag"])
        connector = self.charger.connector(connector_id)
        current = connector.session
        if current and current.started_at == started_at and current.meter_start_wh == meter_start:
            # The charger resent a StartTransaction whose answer it lost: same transaction.
            return {"transactionId": int(current.transaction_id), "idTagInfo": id_tag_info(auth)}
        if current is not None:
            _LOGGER.warning(
                "%s: connector %s started a new transaction while %s was open; closing it",
                self.charger.charger_id,
                connector_id,
                current.transaction_id,
            )
            current.stopped_at = started_at
            current.stop_reason = "Superseded"
            self.charger.session_ended(current)
        transaction_id = self.backend.next_transaction_id()
        session = Session(
            transaction_id=str(transaction_id),
            connector_id=connector_id,
            id_tag=payload["idTag"],
            started_at=started_at,
            meter_start_wh=meter_start,
            meter_now_wh=meter_start,
            reservation_id=payload.get("reservationId"),
        )
        connector.readings.energy_wh = max(connector.readings.energy_wh or 0.0, meter_start)
        self.charger.session_started(session)
        return {"transactionId": transaction_id, "idTagInfo": id_tag_info(auth)}

    def on_stop_transaction(self, payload: dict[str, Any]) -> dict[str, Any]:
        transaction_id = str(payload["transactionId"])
        stopped_at = parse_time(payload.get("timestamp"), utcnow())
        meter_stop = float(payload["meterStop"])
        session = self.charger.session_by_transaction(transaction_id)
        if session is None and transaction_id in self.charger.ended_transactions:
            # The charger sent it again (it lost our answer): answer, record nothing new.
            response: dict[str, Any] = {}
            if payload.get("idTag"):
                response["idTagInfo"] = id_tag_info(self.backend.authorize(self.charger, payload["idTag"]))
            return response
        if session is None:
            # Unknown or offline transaction: accept it and keep a record of it.
            session = Session(
                transaction_id=transaction_id,
                connector_id=0,
                id_tag=payload.get("idTag"),
                started_at=stopped_at,
                meter_start_wh=meter_stop,
                meter_now_wh=meter_stop,
                offline_start=True,
            )
            for meter_value in payload.get("transactionData", []):
                for sample in samples_v16(meter_value.get("sampledValue", [])):
                    if sample.measurand == "Energy.Active.Import.Register" and sample.context == "Transaction.Begin":
                        session.meter_start_wh = sample.value
                        session.started_at = parse_time(meter_value.get("timestamp"), stopped_at)
            _LOGGER.info(
                "%s: StopTransaction for unknown transaction %s recorded", self.charger.charger_id, transaction_id
            )
        else:
            connector = self.charger.connector(session.connector_id)
            for meter_value in payload.get("transactionData", []):
                self._apply_meter_value(connector.connector_id, session, meter_value)
            connector.readings.energy_wh = max(connector.readings.energy_wh or 0.0, meter_stop)
            connector.readings.power_w = 0.0
            connector.readings.current_a = {}
        session.meter_now_wh = max(session.meter_now_wh, meter_stop)
        session.meter_stop_wh = meter_stop
        session.stopped_at = stopped_at
        session.stop_reason = payload.get("reason", "Local")
        self.charger.session_ended(session)
        response = {}
        if payload.get("idTag"):
            response["idTagInfo"] = id_tag_info(self.backend.authorize(self.charger, payload["idTag"]))
        return response

    def on_meter_values(self, payload: dict[str, Any]) -> dict[str, Any]:
        connector_id = int(payload["connectorId"])
        connector = self.charger.connector(connector_id)
        session = connector.session
        transaction_id = payload.get("transactionId")
        if transaction_id is not None:
            session = self.charger.session_by_transaction(str(transaction_id)) or session
        for meter_value in payload["meterValue"]:
            if transaction_id is not None and session is None and connector_id > 0:
                session = self._adopt_session(connector_id, str(transaction_id), meter_value)
            self._apply_meter_value(connector_id, session, meter_value)
        return {}

    def _adopt_session(self, connector_id: int, transaction_id: str, meter_value: dict[str, Any]) -> Session | None:
        """A transaction we never saw start (state lost): follow it from now on."""
        samples = samples_v16(meter_value.get("sampledValue", []))
        energy = [s.value for s in samples if s.measurand == "Energy.Active.Import.Register"]
        if not energy:
            return None
        start = min(energy)
        session = Session(
            transaction_id=transaction_id,
            connector_id=connector_id,
            id_tag=None,
            started_at=parse_time(meter_value.get("timestamp"), utcnow()),
            meter_start_wh=start,
            meter_now_wh=start,
            offline_start=True,
        )
        _LOGGER.warning("%s: following unknown transaction %s", self.charger.charger_id, transaction_id)
        self.charger.session_started(session)
        return session

    def _apply_meter_value(self, connector_id: int, session: Session | None, meter_value: dict[str, Any]) -> None:
        self.apply_meter_value(
            connector_id,
            session,
            samples_v16(meter_value.get("sampledValue", [])),
            parse_time(meter_value.get("timestamp"), utcnow()),
        )

    def on_data_transfer(self, payload: dict[str, Any]) -> dict[str, Any]:
        status = self.backend.data_transfer(
            self.charger, payload["vendorId"], payload.get("messageId"), payload.get("data")
        )
        return {"status": status}

    def on_diagnostics_status(self, payload: dict[str, Any]) -> dict[str, Any]:
        self.charger.diagnostics_status = payload["status"]
        return {}

    def on_firmware_status(self, payload: dict[str, Any]) -> dict[str, Any]:
        self.charger.firmware_status = payload["status"]
        return {}

    # ------------------------------------------------------------ follow-ups
    async def after_boot(self) -> None:
        """Read the configuration and re-apply our limits after an accepted boot."""
        try:
            result = await self.call("GetConfiguration", {})
        except Exception as err:  # noqa: BLE001 - a follow-up must never break the connection
            _LOGGER.debug("%s: GetConfiguration after boot failed: %s", self.charger.charger_id, err)
        else:
            for item in result.get("configurationKey", []):
                self.charger.configuration[item["key"]] = item.get("value")
            phases = self.charger.configuration.get("ConnectorPhaseRotation")
            if phases and "Unknown" not in phases and len(phases.split(",")[0].split(".")[-1]) == 1:
                self.charger.phases = 1
            self.charger.notify()
        await self.reapply_limits()

    # ------------------------------------------------------------- commands
    async def call(self, action: str, payload: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        """Send a raw OCPP 1.6 CALL (keeping our copy of the configuration up to date)."""
        result = await super().call(action, payload, timeout)
        if action == "ChangeConfiguration" and result.get("status") in ("Accepted", "RebootRequired"):
            self.charger.configuration[payload["key"]] = payload["value"]
            self.charger.notify()
        elif action == "ClearChargingProfile" and result.get("status") == "Accepted":
            self._forget_cleared_limits(payload)
        return result

    def _forget_cleared_limits(self, payload: dict[str, Any]) -> None:
        self.forget_cleared_limits(
            payload.get("id"),
            payload.get("connectorId"),
            payload.get("chargingProfilePurpose"),
            payload.get("stackLevel"),
        )

    async def remote_start(self, connector_id: int | None, id_tag: str) -> str:
        payload: dict[str, Any] = {"idTag": id_tag}
        if connector_id:
            payload["connectorId"] = connector_id
        return await self._status("RemoteStartTransaction", payload)

    async def remote_stop(self, transaction_id: str) -> str:
        return await self._status("RemoteStopTransaction", {"transactionId": int(transaction_id)})

    async def reset(self, kind: ResetKind) -> str:
        return await self._status("Reset", {"type": "Hard" if kind is ResetKind.HARD else "Soft"})

    async def unlock(self, connector_id: int) -> str:
        return await self._status("UnlockConnector", {"connectorId": connector_id})

    async def set_availability(self, connector_id: int, availability: Availability) -> str:
        kind = "Operative" if availability is Availability.OPERATIVE else "Inoperative"
        return await self._status("ChangeAvailability", {"connectorId": connector_id, "type": kind})

    def rate_unit(self) -> str:
        """'A' unless the charger only accepts power ('W')."""
        allowed = (self.charger.configuration.get("ChargingScheduleAllowedChargingRateUnit") or "Current").lower()
        return "A" if "current" in allowed else "W"

    def charging_profile(self, connector_id: int, amps: float, phases: int | None = None) -> dict[str, Any]:
        """A TxProfile for the running session, else a TxDefaultProfile (never ChargePointMaxProfile)."""
        connector = self.charger.connector(connector_id)
        unit, period = self.schedule_period(connector, amps, phases)
        profile: dict[str, Any] = {
            "stackLevel": self.stack_level(),
            "chargingProfileKind": "Absolute" if connector.session else "Relative",
            "chargingSchedule": {"chargingRateUnit": unit, "chargingSchedulePeriod": [period]},
        }
        if connector.session is not None:
            profile["chargingProfileId"] = TX_PROFILE_ID + connector_id
            profile["chargingProfilePurpose"] = "TxProfile"
            profile["transactionId"] = int(connector.session.transaction_id)
            profile["chargingSchedule"]["startSchedule"] = iso(connector.session.started_at)
        else:
            profile["chargingProfileId"] = TX_DEFAULT_PROFILE_ID + connector_id
            profile["chargingProfilePurpose"] = "TxDefaultProfile"
        return profile

    async def _send_profile(self, connector_id: int, profile: dict[str, Any]) -> str:
        return await self._status("SetChargingProfile", {"connectorId": connector_id, "csChargingProfiles": profile})

    async def _clear_profile(self, profile_id: int) -> str:
        return await self._status("ClearChargingProfile", {"id": profile_id})
