"""A simulated OCPP 1.6J charge point, written with the ``ocpp`` library's ChargePoint.

Used by the demo, the benchmark and the tests. It answers every central-system command
the way a well-behaved charger does (overridable per action with ``responses``), keeps
an energy register per connector and can run sessions that send MeterValues.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
import logging
import ssl
from typing import Any

from ocpp.routing import after, on
from ocpp.v16 import ChargePoint, call
from ocpp.v16.enums import Action
import websockets

_LOGGER = logging.getLogger(__name__)


def now_iso() -> str:
    """OCPP timestamp of now."""
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class SimConnector:
    """State of one simulated connector."""

    connector_id: int
    status: str = "Available"
    energy_wh: float = 0.0
    power_w: float = 0.0
    transaction_id: int | None = None
    id_tag: str | None = None
    limit_a: float | None = None
    voltage: float = 230.0
    phases: int = 3
    number_phases: int | None = None  # what the central system's profile asks for (numberPhases)

    @property
    def active_phases(self) -> int:
        """The phases the car charges on: the profile's numberPhases, within the wiring."""
        return min(self.number_phases or self.phases, self.phases)


@dataclass
class SimConfig:
    """How the simulated charger identifies and behaves."""

    vendor: str = "Cariflex"
    model: str = "SimCharger"
    serial: str = "SIM-0001"
    firmware: str = "1.0.0"
    connectors: int = 1
    max_current: float = 32.0
    configuration: dict[str, str] = field(
        default_factory=lambda: {
            "HeartbeatInterval": "300",
            "MeterValueSampleInterval": "10",
            "NumberOfConnectors": "1",
            "ChargingScheduleAllowedChargingRateUnit": "Current",
            "ChargeProfileMaxStackLevel": "8",
            "AuthorizeRemoteTxRequests": "false",
            "LocalAuthListEnabled": "true",
            "SupportedFeatureProfiles": "Core,FirmwareManagement,LocalAuthListManagement,Reservation,SmartCharging,RemoteTrigger",
        }
    )
    readonly: frozenset[str] = frozenset({"NumberOfConnectors", "SupportedFeatureProfiles"})


class SimCharger16(ChargePoint):  # type: ignore[misc]
    """A charge point that can be scripted step by step or left to run sessions."""

    def __init__(
        self, charger_id: str, connection: Any, config: SimConfig | None = None, response_timeout: float = 10
    ) -> None:
        super().__init__(charger_id, connection, response_timeout=response_timeout)
        self.config = config or SimConfig()
        self.config.configuration["NumberOfConnectors"] = str(self.config.connectors)
        self.connectors = {cid: SimConnector(cid) for cid in range(1, self.config.connectors + 1)}
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.responses: dict[str, Any] = {}
        self.local_list_version = 0
        self.auto_session = True  # RemoteStart/Stop really start and stop sessions
        self._tasks: set[asyncio.Task[Any]] = set()
        self.meter_interval = 10.0
        self.session_power_w = 7400.0
        self.on_received: Callable[[str, dict[str, Any]], None] | None = None

    # ---------------------------------------------------------------- helpers
    def _record(self, action: str, payload: dict[str, Any]) -> None:
        self.received.append((action, payload))
        if self.on_received:
            self.on_received(action, payload)

    def _answer(self, action: str, default: Any) -> Any:
        """The configured answer to ``action``; an exception there is raised (a CALLERROR goes back)."""
        answer = self.responses.get(action, default)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def spawn(self, coro: Any) -> None:
        """Run a follow-up (outside the message loop)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(follow_up_done)

    async def stop_tasks(self) -> None:
        """Cancel running follow-ups (sessions)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    # ------------------------------------------------------ charger -> central
    async def boot(self) -> Any:
        """Send BootNotification."""
        return await self.call(
            call.BootNotification(
                charge_point_model=self.config.model,
                charge_point_vendor=self.config.vendor,
                charge_point_serial_number=self.config.serial,
                firmware_version=self.config.firmware,
            ),
            suppress=False,
        )

    async def heartbeat(self) -> Any:
        """Send Heartbeat."""
        return await self.call(call.Heartbeat(), suppress=False)

    async def status(self, connector_id: int, status: str, error_code: str = "NoError", **extra: Any) -> Any:
        """Send StatusNotification."""
        if connector_id in self.connectors:
            self.connectors[connector_id].status = status
        return await self.call(
            call.StatusNotification(
                connector_id=connector_id, error_code=error_code, status=status, timestamp=now_iso(), **extra
            ),
            suppress=False,
        )

    async def authorize(self, id_tag: str) -> Any:
        """Send Authorize."""
        return await self.call(call.Authorize(id_tag=id_tag), suppress=False)

    async def start_transaction(self, connector_id: int, id_tag: str, reservation_id: int | None = None) -> Any:
        """Send StartTransaction and remember the transaction id."""
        connector = self.connectors[connector_id]
        result = await self.call(
            call.StartTransaction(
                connector_id=connector_id,
                id_tag=id_tag,
                meter_start=round(connector.energy_wh),
                timestamp=now_iso(),
                reservation_id=reservation_id,
            ),
            suppress=False,
        )
        if result.id_tag_info["status"] == "Accepted":
            connector.transaction_id = result.transaction_id
            connector.id_tag = id_tag
        else:
            connector.transaction_id = None
        return result

    async def stop_transaction(self, connector_id: int, reason: str = "Local", id_tag: str | None = None) -> Any:
        """Send StopTransaction for the connector's transaction."""
        connector = self.connectors[connector_id]
        transaction_id = connector.transaction_id
        connector.power_w = 0.0
        connector.transaction_id = None
        return await self.call(
            call.StopTransaction(
                meter_stop=round(connector.energy_wh),
                timestamp=now_iso(),
                transaction_id=transaction_id if transaction_id is not None else 0,
                reason=reason,
                id_tag=id_tag,
            ),
            suppress=False,
        )

    async def meter_values(self, connector_id: int, seconds: float | None = None) -> Any:
        """Advance the register by ``seconds`` at the session power, then report it."""
        connector = self.connectors[connector_id]
        if seconds:
            connector.energy_wh += connector.power_w * seconds / 3600
        per_phase = connector.power_w / connector.voltage / connector.active_phases if connector.power_w else 0.0
        sampled: list[dict[str, Any]] = [
            {"value": f"{connector.energy_wh:.0f}", "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
            {"value": f"{connector.power_w:.0f}", "measurand": "Power.Active.Import", "unit": "W"},
        ]
        for phase in ("L1", "L2", "L3")[: connector.active_phases]:
            sampled.append({"value": f"{per_phase:.1f}", "measurand": "Current.Import", "unit": "A", "phase": phase})
        sampled.append({"value": f"{connector.voltage:.0f}", "measurand": "Voltage", "unit": "V", "phase": "L1-N"})
        return await self.call(
            call.MeterValues(
                connector_id=connector_id,
                transaction_id=connector.transaction_id,
                meter_value=[{"timestamp": now_iso(), "sampledValue": sampled}],
            ),
            suppress=False,
        )

    async def run_session(
        self, connector_id: int, id_tag: str, power_w: float | None = None, count: int | None = None
    ) -> None:
        """Start a session and send MeterValues every ``meter_interval`` seconds."""
        connector = self.connectors[connector_id]
        await self.status(connector_id, "Preparing")
        result = await self.start_transaction(connector_id, id_tag)
        if connector.transaction_id is None:
            _LOGGER.info("%s: session refused: %s", self.id, result.id_tag_info)
            await self.status(connector_id, "Available")
            return
        connector.power_w = power_w or self._offered_power(connector)
        await self.status(connector_id, "Charging")
        sent = 0
        while connector.transaction_id is not None and (count is None or sent < count):
            await asyncio.sleep(self.meter_interval)
            if connector.transaction_id is None:
                break
            connector.power_w = min(power_w or self.session_power_w, self._offered_power(connector))
            await self.meter_values(connector_id, self.meter_interval)
            sent += 1

    def _offered_power(self, connector: SimConnector) -> float:
        limit = self.config.max_current if connector.limit_a is None else connector.limit_a
        return min(self.session_power_w, limit * connector.voltage * connector.active_phases)

    # ------------------------------------------------------ central -> charger
    @on(Action.cancel_reservation)
    def on_cancel_reservation(self, reservation_id: int, **_: Any) -> Any:
        self._record("CancelReservation", {"reservationId": reservation_id})
        return self._result("CancelReservation", status=self._answer("CancelReservation", "Accepted"))

    @on(Action.change_availability)
    def on_change_availability(self, connector_id: int, type: str, **_: Any) -> Any:
        self._record("ChangeAvailability", {"connectorId": connector_id, "type": type})
        status = self._answer("ChangeAvailability", "Accepted")
        if status == "Accepted":
            new = "Available" if type == "Operative" else "Unavailable"
            targets = [0, *self.connectors] if connector_id == 0 else [connector_id]
            self.spawn(self._report_statuses(targets, new))
        return self._result("ChangeAvailability", status=status)

    async def _report_statuses(self, connector_ids: list[int], status: str) -> None:
        for connector_id in connector_ids:
            with contextlib.suppress(Exception):
                await self.status(connector_id, status)

    @on(Action.change_configuration)
    def on_change_configuration(self, key: str, value: str, **_: Any) -> Any:
        self._record("ChangeConfiguration", {"key": key, "value": value})
        if key not in self.config.configuration:
            status = "NotSupported"
        elif key in self.config.readonly:
            status = "Rejected"
        else:
            status = self._answer("ChangeConfiguration", "Accepted")
            if status == "Accepted":
                self.config.configuration[key] = value
        return self._result("ChangeConfiguration", status=status)

    @on(Action.clear_cache)
    def on_clear_cache(self, **_: Any) -> Any:
        self._record("ClearCache", {})
        return self._result("ClearCache", status=self._answer("ClearCache", "Accepted"))

    @on(Action.clear_charging_profile)
    def on_clear_charging_profile(self, **kwargs: Any) -> Any:
        self._record("ClearChargingProfile", kwargs)
        for connector in self.connectors.values():
            if kwargs.get("connector_id") in (None, 0, connector.connector_id):
                connector.limit_a = None
        return self._result("ClearChargingProfile", status=self._answer("ClearChargingProfile", "Accepted"))

    @on(Action.data_transfer)
    def on_data_transfer(self, vendor_id: str, **kwargs: Any) -> Any:
        self._record("DataTransfer", {"vendorId": vendor_id, **kwargs})
        return self._result("DataTransfer", status=self._answer("DataTransfer", "Accepted"), data=kwargs.get("data"))

    @on(Action.get_composite_schedule)
    def on_get_composite_schedule(self, connector_id: int, duration: int, **kwargs: Any) -> Any:
        self._record("GetCompositeSchedule", {"connectorId": connector_id, "duration": duration, **kwargs})
        connector = self.connectors.get(connector_id)
        limit = connector.limit_a if connector and connector.limit_a is not None else self.config.max_current
        return self._result(
            "GetCompositeSchedule",
            status=self._answer("GetCompositeSchedule", "Accepted"),
            connector_id=connector_id,
            schedule_start=now_iso(),
            charging_schedule={
                "duration": duration,
                "chargingRateUnit": kwargs.get("charging_rate_unit", "A"),
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}],
            },
        )

    @on(Action.get_configuration)
    def on_get_configuration(self, key: list[str] | None = None, **_: Any) -> Any:
        self._record("GetConfiguration", {"key": key} if key else {})
        known = self.config.configuration
        keys = key or list(known)
        return self._result(
            "GetConfiguration",
            configuration_key=[
                {"key": k, "readonly": k in self.config.readonly, "value": known[k]} for k in keys if k in known
            ],
            unknown_key=[k for k in keys if k not in known] or None,
        )

    @on(Action.get_diagnostics)
    def on_get_diagnostics(self, location: str, **kwargs: Any) -> Any:
        self._record("GetDiagnostics", {"location": location, **kwargs})
        self.spawn(self._diagnostics_progress())
        return self._result("GetDiagnostics", file_name=self._answer("GetDiagnostics", "diagnostics.log"))

    async def _diagnostics_progress(self) -> None:
        for status in ("Uploading", "Uploaded"):
            with contextlib.suppress(Exception):
                await self.call(call.DiagnosticsStatusNotification(status=status), suppress=False)

    @on(Action.get_local_list_version)
    def on_get_local_list_version(self, **_: Any) -> Any:
        self._record("GetLocalListVersion", {})
        return self._result(
            "GetLocalListVersion", list_version=self._answer("GetLocalListVersion", self.local_list_version)
        )

    @on(Action.remote_start_transaction)
    def on_remote_start_transaction(self, id_tag: str, connector_id: int | None = None, **kwargs: Any) -> Any:
        self._record("RemoteStartTransaction", {"idTag": id_tag, "connectorId": connector_id, **kwargs})
        status = self._answer("RemoteStartTransaction", "Accepted")
        if status == "Accepted" and self.auto_session:
            target = connector_id or next(
                (c.connector_id for c in self.connectors.values() if c.transaction_id is None), 1
            )
            profile = kwargs.get("charging_profile")
            if profile:
                period = profile["charging_schedule"]["charging_schedule_period"][0]
                self.connectors[target].limit_a = float(period["limit"])
            self.spawn(self.run_session(target, id_tag))
        return self._result("RemoteStartTransaction", status=status)

    @on(Action.remote_stop_transaction)
    def on_remote_stop_transaction(self, transaction_id: int, **_: Any) -> Any:
        self._record("RemoteStopTransaction", {"transactionId": transaction_id})
        match = [c for c in self.connectors.values() if c.transaction_id == transaction_id]
        status = self._answer("RemoteStopTransaction", "Accepted" if match else "Rejected")
        if status == "Accepted" and match and self.auto_session:
            self.spawn(self._remote_stop(match[0].connector_id))
        return self._result("RemoteStopTransaction", status=status)

    async def _remote_stop(self, connector_id: int) -> None:
        await self.stop_transaction(connector_id, reason="Remote")
        await self.status(connector_id, "Finishing")

    @on(Action.reserve_now)
    def on_reserve_now(self, connector_id: int, expiry_date: str, id_tag: str, reservation_id: int, **_: Any) -> Any:
        self._record("ReserveNow", {"connectorId": connector_id, "idTag": id_tag, "reservationId": reservation_id})
        status = self._answer("ReserveNow", "Accepted")
        if status == "Accepted" and connector_id in self.connectors:
            self.spawn(self._report_statuses([connector_id], "Reserved"))
        return self._result("ReserveNow", status=status)

    @on(Action.reset)
    def on_reset(self, type: str, **_: Any) -> Any:
        self._record("Reset", {"type": type})
        return self._result("Reset", status=self._answer("Reset", "Accepted"))

    @on(Action.send_local_list)
    def on_send_local_list(self, list_version: int, update_type: str, **kwargs: Any) -> Any:
        self._record("SendLocalList", {"listVersion": list_version, "updateType": update_type, **kwargs})
        status = self._answer("SendLocalList", "Accepted")
        if status == "Accepted":
            self.local_list_version = list_version
        return self._result("SendLocalList", status=status)

    @on(Action.set_charging_profile)
    def on_set_charging_profile(self, connector_id: int, cs_charging_profiles: dict[str, Any], **_: Any) -> Any:
        self._record("SetChargingProfile", {"connectorId": connector_id, "csChargingProfiles": cs_charging_profiles})
        status = self._answer("SetChargingProfile", "Accepted")
        if status == "Accepted":
            schedule = cs_charging_profiles["charging_schedule"]
            period = schedule["charging_schedule_period"][0]
            limit = float(period["limit"])
            targets = self.connectors.values() if connector_id == 0 else [self.connectors[connector_id]]
            for connector in targets:
                connector.number_phases = period.get("number_phases")
                amps = (
                    limit
                    if schedule["charging_rate_unit"] == "A"
                    else limit / connector.voltage / connector.active_phases
                )
                connector.limit_a = amps
        return self._result("SetChargingProfile", status=status)

    @on(Action.trigger_message)
    def on_trigger_message(self, requested_message: str, connector_id: int | None = None, **_: Any) -> Any:
        self._record("TriggerMessage", {"requestedMessage": requested_message, "connectorId": connector_id})
        status = self._answer("TriggerMessage", "Accepted")
        return self._result("TriggerMessage", status=status)

    @after(Action.trigger_message)
    def after_trigger_message(self, requested_message: str, connector_id: int | None = None, **_: Any) -> None:
        if self._answer("TriggerMessage", "Accepted") != "Accepted":
            return
        if requested_message == "BootNotification":
            self.spawn(self.boot())
        elif requested_message == "Heartbeat":
            self.spawn(self.heartbeat())
        elif requested_message == "StatusNotification":
            targets = [connector_id] if connector_id else list(self.connectors)
            self.spawn(self._report_statuses_named(targets))
        elif requested_message == "MeterValues":
            self.spawn(self.meter_values(connector_id or 1))

    @on(Action.unlock_connector)
    def on_unlock_connector(self, connector_id: int, **_: Any) -> Any:
        self._record("UnlockConnector", {"connectorId": connector_id})
        default = "Unlocked" if connector_id in self.connectors else "NotSupported"
        return self._result("UnlockConnector", status=self._answer("UnlockConnector", default))

    @on(Action.update_firmware)
    def on_update_firmware(self, location: str, retrieve_date: str, **kwargs: Any) -> Any:
        self._record("UpdateFirmware", {"location": location, "retrieveDate": retrieve_date, **kwargs})
        self.spawn(self._firmware_progress())
        return self._result("UpdateFirmware")

    async def _firmware_progress(self) -> None:
        for status in ("Downloading", "Downloaded", "Installing", "Installed"):
            with contextlib.suppress(Exception):
                await self.call(call.FirmwareStatusNotification(status=status), suppress=False)

    def _result(self, action: str, **fields: Any) -> Any:
        from ocpp.v16 import call_result

        return getattr(call_result, action)(**{k: v for k, v in fields.items() if v is not None})

    async def _report_statuses_named(self, connector_ids: list[int]) -> None:
        for connector_id in connector_ids:
            await self.status(connector_id, self.connectors[connector_id].status)


def follow_up_done(task: asyncio.Task[Any]) -> None:
    """Collect a finished follow-up's outcome: a central system that closed mid-way is what a real charger sees."""
    if task.cancelled() or (error := task.exception()) is None:
        return
    if isinstance(error, websockets.exceptions.ConnectionClosed):
        _LOGGER.debug("follow-up ended with the connection: %s", error)
    else:
        _LOGGER.error("follow-up failed: %r", error)


def basic_auth_header(charger_id: str, password: str) -> dict[str, str]:
    """HTTP Basic credentials as OCPP security profile 1 sends them."""
    token = base64.b64encode(f"{charger_id}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def connect(
    url: str,
    charger_id: str,
    *,
    password: str | None = None,
    subprotocols: list[str] | None = None,
    ssl_context: ssl.SSLContext | None = None,
    config: SimConfig | None = None,
    response_timeout: float = 10,
) -> tuple[SimCharger16, Any, asyncio.Task[None]]:
    """Open the websocket and start the charger's message loop.

    Returns the charger, its websocket and the loop task (cancel it, then close the socket).
    """
    headers = basic_auth_header(charger_id, password) if password is not None else None
    ws = await websockets.connect(
        f"{url.rstrip('/')}/{charger_id}",
        subprotocols=subprotocols if subprotocols is not None else ["ocpp1.6"],  # type: ignore[arg-type,list-item]
        additional_headers=headers,
        ssl=ssl_context,
        open_timeout=10,
    )
    charger = SimCharger16(charger_id, ws, config, response_timeout=response_timeout)
    task = asyncio.get_running_loop().create_task(_run(charger))
    return charger, ws, task


async def _run(charger: SimCharger16) -> None:
    with contextlib.suppress(websockets.ConnectionClosed, asyncio.CancelledError):
        await charger.start()
