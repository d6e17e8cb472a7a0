"""A simulated OCPP 2.0.1 charging station, written with the ``ocpp`` library's v201 ChargePoint.

The 2.0.1 twin of :mod:`simulator.charger16`, driven the same way by the demo and the tests:
step-by-step methods send one message each (``boot``, ``status``, ``transaction_started``,
``transaction_updated``, ``transaction_ended``...), ``run_session`` runs a whole session, and
every CSMS-initiated action of OCPP 2.0.1 is answered the way a well-behaved station does
(override the answer per action with ``responses["ActionName"] = "Rejected"``); what the
station received is recorded in ``received`` as ``(action, camelCase payload)``.

Specific to 2.0.1:

* a device model (``SimConfig201.device_model``) answering GetVariables / SetVariables and
  reported by NotifyReport after GetBaseReport / GetReport (``ItemsPerMessage`` per message,
  ``seqNo`` and ``tbc``);
* transactions are TransactionEvent Started / Updated / Ended with a string transaction id and
  a ``seqNo`` that starts at 0 and increases with each event of the transaction;
* an offline queue: while ``queue_offline`` is true, TransactionEvents are built (flagged
  ``offline``) and kept in ``offline_queue``; ``replay_offline_queue()`` sends them in order,
  ``replay_offline_queue(duplicate=True)`` sends each twice (de-duplication by seqNo);
* charging profiles are kept per id; the effective limit of an EVSE follows the OCPP rules in a
  simplified way (TxProfile over TxDefaultProfile, capped by ChargingStationMaxProfile).

Follow-up messages (NotifyReport after GetBaseReport, StatusNotification after
ChangeAvailability...) are sent from ``@after`` hooks, once the answer is on the wire, never by
awaiting a call inside an ``@on`` handler (which would deadlock the message loop).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterable
import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
import itertools
import logging
import ssl
from typing import Any
import uuid

from ocpp.charge_point import snake_to_camel_case
from ocpp.routing import after, on
from ocpp.v201 import ChargePoint, call, call_result
from ocpp.v201.enums import Action
import websockets

from simulator.charger16 import basic_auth_header, follow_up_done, now_iso

_LOGGER = logging.getLogger(__name__)

# (component name, component instance, EVSE id, variable name, variable instance)
type VariableKey = tuple[str, str | None, int | None, str, str | None]
# key -> (value, mutability)
type DeviceModel = dict[VariableKey, tuple[str, str]]

READ_ONLY = "ReadOnly"
READ_WRITE = "ReadWrite"
WRITE_ONLY = "WriteOnly"

IDENTITY: VariableKey = ("SecurityCtrlr", None, None, "Identity", None)
SECURITY_PROFILE: VariableKey = ("SecurityCtrlr", None, None, "SecurityProfile", None)  # read-only
HEARTBEAT_INTERVAL: VariableKey = ("OCPPCommCtrlr", None, None, "HeartbeatInterval", None)
TX_UPDATED_INTERVAL: VariableKey = ("SampledDataCtrlr", None, None, "TxUpdatedInterval", None)
SMART_CHARGING_ENABLED: VariableKey = ("SmartChargingCtrlr", None, None, "Enabled", None)
RATE_UNIT: VariableKey = ("SmartChargingCtrlr", None, None, "RateUnit", None)
PROFILE_STACK_LEVEL: VariableKey = ("SmartChargingCtrlr", None, None, "ProfileStackLevel", None)
PERIODS_PER_SCHEDULE: VariableKey = ("SmartChargingCtrlr", None, None, "PeriodsPerSchedule", None)
AUTHORIZE_REMOTE_START: VariableKey = ("AuthCtrlr", None, None, "AuthorizeRemoteStart", None)
LOCAL_LIST_ENABLED: VariableKey = ("LocalAuthListCtrlr", None, None, "Enabled", None)
LOCAL_LIST_ENTRIES: VariableKey = ("LocalAuthListCtrlr", None, None, "Entries", None)
RESERVATION_ENABLED: VariableKey = ("ReservationCtrlr", None, None, "Enabled", None)
ITEMS_PER_REPORT: VariableKey = ("DeviceDataCtrlr", None, None, "ItemsPerMessage", "GetReport")

ENERGY = "Energy.Active.Import.Register"
ISO14443 = "ISO14443"  # the default idToken type (RFID card)
PHASES = ("L1", "L2", "L3")
CONNECTOR_STATUSES = "Available,Occupied,Reserved,Unavailable,Faulted"
TRIGGERABLE = {
    "BootNotification",
    "Heartbeat",
    "StatusNotification",
    "MeterValues",
    "TransactionEvent",
    "FirmwareStatusNotification",
    "LogStatusNotification",
}


def default_device_model(evses: int) -> DeviceModel:
    """The realistic minimum of a 2.0.1 device model (without SecurityCtrlr.Identity)."""
    model: DeviceModel = {
        ("ChargingStation", None, None, "AvailabilityState", None): ("Available", READ_ONLY),
        ("ChargingStation", None, None, "SupplyPhases", None): ("3", READ_ONLY),
        SECURITY_PROFILE: ("1", READ_ONLY),
        ("SecurityCtrlr", None, None, "BasicAuthPassword", None): ("", WRITE_ONLY),
        HEARTBEAT_INTERVAL: ("300", READ_WRITE),
        ("OCPPCommCtrlr", None, None, "MessageTimeout", "Default"): ("30", READ_WRITE),
        TX_UPDATED_INTERVAL: ("10", READ_WRITE),
        ("SampledDataCtrlr", None, None, "TxUpdatedMeasurands", None): (
            f"{ENERGY},Power.Active.Import,Current.Import,Voltage",
            READ_WRITE,
        ),
        SMART_CHARGING_ENABLED: ("true", READ_WRITE),
        RATE_UNIT: ("A,W", READ_ONLY),
        PROFILE_STACK_LEVEL: ("8", READ_ONLY),
        PERIODS_PER_SCHEDULE: ("24", READ_ONLY),
        ("AuthCtrlr", None, None, "Enabled", None): ("true", READ_WRITE),
        AUTHORIZE_REMOTE_START: ("false", READ_WRITE),
        LOCAL_LIST_ENABLED: ("true", READ_WRITE),
        LOCAL_LIST_ENTRIES: ("0", READ_ONLY),
        RESERVATION_ENABLED: ("true", READ_WRITE),
        ITEMS_PER_REPORT: ("10", READ_ONLY),
        ("DeviceDataCtrlr", None, None, "ItemsPerMessage", "GetVariables"): ("20", READ_ONLY),
        ("DeviceDataCtrlr", None, None, "ItemsPerMessage", "SetVariables"): ("20", READ_ONLY),
    }
    for evse_id in range(1, evses + 1):
        model[("EVSE", None, evse_id, "AvailabilityState", None)] = ("Available", READ_ONLY)
        model[("EVSE", None, evse_id, "Power", None)] = ("0", READ_ONLY)
        model[("EVSE", None, evse_id, "SupplyPhases", None)] = ("3", READ_ONLY)
        model[("Connector", None, evse_id, "AvailabilityState", None)] = ("Available", READ_ONLY)
        model[("Connector", None, evse_id, "ConnectorType", None)] = ("cType2", READ_ONLY)
    return model


@dataclass
class SimEvse:
    """State of one simulated EVSE (one connector each)."""

    evse_id: int
    connector_status: str = "Available"
    energy_wh: float = 0.0
    power_w: float = 0.0
    transaction_id: str | None = None
    seq_no: int = 0  # next seqNo of the transaction's TransactionEvents
    id_token: str | None = None
    token_type: str = ISO14443
    limit_a: float | None = None
    voltage: float = 230.0
    phases: int = 3
    number_phases: int | None = None  # what the central system's profile asks for (numberPhases)

    @property
    def active_phases(self) -> int:
        """The phases the car charges on: the profile's numberPhases, within the wiring."""
        return min(self.number_phases or self.phases, self.phases)

    charging_state: str | None = None
    remote_start_id: int | None = None
    demand_w: float | None = None  # what the EV draws when allowed (default: session_power_w)


@dataclass
class SimConfig201:
    """How the simulated station identifies and behaves; ``device_model`` entries given win."""

    vendor: str = "Cariflex"
    model: str = "SimCharger201"
    serial: str = "SIM201-0001"
    firmware: str = "1.0.0"
    evses: int = 1
    max_current: float = 32.0
    device_model: DeviceModel = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.fill_device_model()

    def fill_device_model(self) -> None:
        """Add the default variables missing from ``device_model``."""
        for key, entry in default_device_model(self.evses).items():
            self.device_model.setdefault(key, entry)


def _key(component: dict[str, Any], variable: dict[str, Any]) -> VariableKey:
    """Device-model key of an OCPP (snake_case) component and variable."""
    evse = component.get("evse") or {}
    return (component["name"], component.get("instance"), evse.get("id"), variable["name"], variable.get("instance"))


def _is_int(value: str) -> bool:
    return value.lstrip("-").isdigit()


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


class SimCharger201(ChargePoint):  # type: ignore[misc]
    """An OCPP 2.0.1 charging station that can be scripted step by step or left to run sessions."""

    def __init__(
        self, charger_id: str, connection: Any, config: SimConfig201 | None = None, response_timeout: float = 10
    ) -> None:
        super().__init__(charger_id, connection, response_timeout=response_timeout)
        self.config = config or SimConfig201()
        self.config.fill_device_model()
        self.config.device_model.setdefault(IDENTITY, (charger_id, READ_WRITE))
        self.evses = {evse_id: SimEvse(evse_id) for evse_id in range(1, self.config.evses + 1)}
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.responses: dict[str, Any] = {}
        self.on_received: Callable[[str, dict[str, Any]], None] | None = None
        self.auto_session = True  # RequestStart/StopTransaction really start and stop sessions
        self.reboot_on_reset = True  # an accepted Reset ends transactions and boots again
        self.meter_interval = float(self.get_variable("SampledDataCtrlr", "TxUpdatedInterval") or 10)
        self.session_power_w = 7400.0
        self.progress_delay = 0.0  # pause between firmware / log progress notifications
        self.queue_offline = False
        self.offline_queue: list[Any] = []  # call.TransactionEvent payloads, oldest first
        self.boot_result: Any = None
        self.local_list_version = 0
        self.local_list: dict[str, dict[str, Any]] = {}  # idToken -> AuthorizationData (snake_case)
        self.charging_profiles: dict[int, tuple[int, dict[str, Any]]] = {}  # id -> (EVSE id, profile)
        self.reservations: dict[int, int | None] = {}  # reservation id -> EVSE id
        self.network_profiles: dict[int, dict[str, Any]] = {}
        self.display_messages: dict[int, dict[str, Any]] = {}
        self.monitors: dict[int, dict[str, Any]] = {}
        self.certificates: list[dict[str, Any]] = []
        self.total_costs: dict[str, float] = {}
        self.firmware_state: tuple[str, int | None] = ("Idle", None)
        self.log_state: tuple[str, int | None] = ("Idle", None)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._tx_lock = asyncio.Lock()  # TransactionEvents leave in seqNo order
        self._followups: list[Callable[[], Coroutine[Any, Any, Any]]] = []
        self._event_ids = itertools.count(1)
        self._monitor_ids = itertools.count(1)

    # ---------------------------------------------------------------- helpers
    def _record(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Remember a CSMS request (camelCase, as on the wire); returns the snake_case payload."""
        self._followups.clear()
        camel: dict[str, Any] = snake_to_camel_case(payload)
        self.received.append((action, camel))
        if self.on_received:
            self.on_received(action, camel)
        return payload

    def _answer(self, action: str, default: Any) -> Any:
        return self.responses.get(action, default)

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """Run a follow-up (outside the message loop)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(follow_up_done)
        return task

    async def stop_tasks(self) -> None:
        """Cancel running follow-ups (sessions)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _then(self, factory: Callable[[], Coroutine[Any, Any, Any]]) -> None:
        """Send ``factory()`` once the answer to the current request is sent (see ``_run_followups``)."""
        self._followups.append(factory)

    def _run_followups(self) -> None:
        """Called by the ``@after`` hooks: the answer is on the wire, follow-ups may call."""
        factories, self._followups = self._followups, []
        for factory in factories:
            self.spawn(self._quietly(factory()))

    async def _quietly(self, coro: Coroutine[Any, Any, Any]) -> None:
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception:
            _LOGGER.warning("%s: follow-up failed", self.id, exc_info=True)

    def get_variable(
        self,
        component: str,
        variable: str,
        *,
        evse_id: int | None = None,
        component_instance: str | None = None,
        variable_instance: str | None = None,
    ) -> str | None:
        """Current value of a device-model variable (None when unknown)."""
        key: VariableKey = (component, component_instance, evse_id, variable, variable_instance)
        return self.variable_value(key) if key in self.config.device_model else None

    def set_variable(
        self,
        component: str,
        variable: str,
        value: str,
        *,
        evse_id: int | None = None,
        component_instance: str | None = None,
        variable_instance: str | None = None,
        mutability: str | None = None,
    ) -> None:
        """Set (or add) a device-model variable directly, whatever its mutability."""
        key: VariableKey = (component, component_instance, evse_id, variable, variable_instance)
        current = self.config.device_model.get(key, (value, READ_WRITE))
        self.config.device_model[key] = (value, mutability or current[1])
        self._apply_variable(key, value)

    def variable_value(self, key: VariableKey) -> str:
        """Value of a known variable; EVSE availability and power are live."""
        component, _, evse_id, variable, _ = key
        evse = self.evses.get(evse_id) if evse_id is not None else None
        if evse is not None and variable == "AvailabilityState":
            return evse.connector_status
        if evse is not None and (component, variable) == ("EVSE", "Power"):
            return f"{evse.power_w:.0f}"
        if (component, variable) == ("ChargingStation", "AvailabilityState"):
            statuses = {e.connector_status for e in self.evses.values()}
            return "Unavailable" if statuses == {"Unavailable"} else "Available"
        return self.config.device_model[key][0]

    def _store(self, key: VariableKey, value: str) -> None:
        mutability = self.config.device_model.get(key, (value, READ_WRITE))[1]
        self.config.device_model[key] = (value, mutability)
        self._apply_variable(key, value)

    def _apply_variable(self, key: VariableKey, value: str) -> None:
        if key == TX_UPDATED_INTERVAL and _is_number(value) and float(value) > 0:
            self.meter_interval = float(value)

    def _flag(self, key: VariableKey) -> bool:
        return key in self.config.device_model and self.variable_value(key).lower() == "true"

    def _int(self, key: VariableKey, default: int) -> int:
        value = self.variable_value(key) if key in self.config.device_model else ""
        return int(value) if _is_int(value) else default

    def _offered_power(self, evse: SimEvse) -> float:
        limit = self.config.max_current if evse.limit_a is None else evse.limit_a
        return max(0.0, min(evse.demand_w or self.session_power_w, limit * evse.voltage * evse.active_phases))

    def _meter_value(self, evse: SimEvse, context: str, *, full: bool = True) -> dict[str, Any]:
        sampled: list[dict[str, Any]] = [
            {
                "value": round(evse.energy_wh, 1),
                "context": context,
                "measurand": ENERGY,
                "unit_of_measure": {"unit": "Wh"},
            }
        ]
        if full:
            per_phase = evse.power_w / evse.voltage / evse.active_phases if evse.power_w else 0.0
            sampled.append(
                {
                    "value": round(evse.power_w, 1),
                    "context": context,
                    "measurand": "Power.Active.Import",
                    "unit_of_measure": {"unit": "W"},
                }
            )
            for phase in PHASES[: evse.active_phases]:
                sampled.append(
                    {
                        "value": round(per_phase, 2),
                        "context": context,
                        "measurand": "Current.Import",
                        "phase": phase,
                        "unit_of_measure": {"unit": "A"},
                    }
                )
            sampled.append(
                {
                    "value": round(evse.voltage, 1),
                    "context": context,
                    "measurand": "Voltage",
                    "phase": "L1-N",
                    "unit_of_measure": {"unit": "V"},
                }
            )
        return {"timestamp": now_iso(), "sampled_value": sampled}

    @staticmethod
    def _advance(evse: SimEvse, seconds: float) -> None:
        if seconds:
            evse.energy_wh += evse.power_w * seconds / 3600

    @staticmethod
    def _next_seq(evse: SimEvse) -> int:
        seq_no = evse.seq_no
        evse.seq_no += 1
        return seq_no

    def _evse_of_transaction(self, transaction_id: str | None) -> SimEvse | None:
        return next((e for e in self.evses.values() if transaction_id and e.transaction_id == transaction_id), None)

    # ------------------------------------------------------ station -> CSMS
    async def boot(self, reason: str = "PowerUp") -> Any:
        """Send BootNotification; an accepted answer sets HeartbeatInterval."""
        result = await self.call(
            call.BootNotification(
                charging_station={
                    "model": self.config.model,
                    "vendor_name": self.config.vendor,
                    "serial_number": self.config.serial,
                    "firmware_version": self.config.firmware,
                },
                reason=reason,
            ),
            suppress=False,
        )
        self.boot_result = result
        if result.status == "Accepted" and result.interval > 0:
            self._store(HEARTBEAT_INTERVAL, str(result.interval))
        return result

    async def heartbeat(self) -> Any:
        """Send Heartbeat."""
        return await self.call(call.Heartbeat(), suppress=False)

    async def status(self, evse_id: int, connector_status: str, connector_id: int = 1) -> Any:
        """Send StatusNotification (Available, Occupied, Reserved, Unavailable, Faulted)."""
        if evse_id in self.evses:
            self.evses[evse_id].connector_status = connector_status
        return await self.call(
            call.StatusNotification(
                timestamp=now_iso(), connector_status=connector_status, evse_id=evse_id, connector_id=connector_id
            ),
            suppress=False,
        )

    async def authorize(self, id_token: str, type_: str = ISO14443) -> Any:
        """Send Authorize."""
        return await self.call(call.Authorize(id_token={"id_token": id_token, "type": type_}), suppress=False)

    async def transaction_started(  # noqa: PLR0917 - the positional API mirrors the brief
        self,
        evse_id: int,
        id_token: str | None,
        trigger_reason: str = "Authorized",
        offline: bool = False,
        remote_start_id: int | None = None,
        reservation_id: int | None = None,
        *,
        token_type: str = ISO14443,
        charging_state: str = "Charging",
        power_w: float | None = None,
    ) -> Any:
        """Start a transaction (new uuid, seqNo 0) and send TransactionEvent Started.

        Returns the CSMS answer, or None when the event went to the offline queue.
        """
        async with self._tx_lock:
            evse = self.evses[evse_id]
            evse.transaction_id = str(uuid.uuid4())
            evse.seq_no = 0
            evse.id_token = id_token
            evse.token_type = token_type
            evse.remote_start_id = remote_start_id
            evse.charging_state = charging_state
            evse.demand_w = power_w
            evse.power_w = self._offered_power(evse) if charging_state == "Charging" else 0.0
            if reservation_id is not None:
                self.reservations.pop(reservation_id, None)
            payload = call.TransactionEvent(
                event_type="Started",
                timestamp=now_iso(),
                trigger_reason=trigger_reason,
                seq_no=self._next_seq(evse),
                transaction_info={
                    "transaction_id": evse.transaction_id,
                    "charging_state": charging_state,
                    "remote_start_id": remote_start_id,
                },
                meter_value=[self._meter_value(evse, "Transaction.Begin", full=False)],
                offline=True if offline else None,
                number_of_phases_used=evse.active_phases,
                reservation_id=reservation_id,
                evse={"id": evse_id, "connector_id": 1},
                id_token={"id_token": id_token, "type": token_type} if id_token else None,
            )
            return await self._transaction_event(payload)

    async def transaction_updated(
        self,
        evse_id: int,
        seconds: float = 0,
        trigger_reason: str = "MeterValuePeriodic",
        charging_state: str = "Charging",
        *,
        power_w: float | None = None,
    ) -> Any:
        """Advance the register by ``seconds`` at the current power and send TransactionEvent Updated."""
        async with self._tx_lock:
            payload = self._updated_payload(evse_id, seconds, trigger_reason, charging_state, power_w)
            return await self._transaction_event(payload)

    def _updated_payload(
        self, evse_id: int, seconds: float, trigger_reason: str, charging_state: str, power_w: float | None
    ) -> Any:
        evse = self.evses[evse_id]
        if evse.transaction_id is None:
            raise ValueError(f"no transaction on EVSE {evse_id}")
        self._advance(evse, seconds)
        if power_w is not None:
            evse.demand_w = power_w
        evse.charging_state = charging_state
        evse.power_w = self._offered_power(evse) if charging_state == "Charging" else 0.0
        context = "Trigger" if trigger_reason == "Trigger" else "Sample.Periodic"
        return call.TransactionEvent(
            event_type="Updated",
            timestamp=now_iso(),
            trigger_reason=trigger_reason,
            seq_no=self._next_seq(evse),
            transaction_info={"transaction_id": evse.transaction_id, "charging_state": charging_state},
            meter_value=[self._meter_value(evse, context)],
            evse={"id": evse_id, "connector_id": 1},
        )

    async def transaction_ended(
        self,
        evse_id: int,
        stopped_reason: str = "Local",
        trigger_reason: str = "StopAuthorized",
        *,
        seconds: float = 0,
    ) -> Any:
        """End the EVSE's transaction: TransactionEvent Ended with the Transaction.End register."""
        async with self._tx_lock:
            evse = self.evses[evse_id]
            transaction_id = evse.transaction_id
            if transaction_id is None:
                raise ValueError(f"no transaction on EVSE {evse_id}")
            self._advance(evse, seconds)
            evse.power_w = 0.0
            payload = call.TransactionEvent(
                event_type="Ended",
                timestamp=now_iso(),
                trigger_reason=trigger_reason,
                seq_no=self._next_seq(evse),
                transaction_info={
                    "transaction_id": transaction_id,
                    "charging_state": "Idle" if stopped_reason == "EVDisconnected" else "EVConnected",
                    "stopped_reason": stopped_reason,
                },
                meter_value=[self._meter_value(evse, "Transaction.End", full=False)],
                evse={"id": evse_id, "connector_id": 1},
                id_token=(
                    {"id_token": evse.id_token, "type": evse.token_type}
                    if trigger_reason == "StopAuthorized" and evse.id_token
                    else None
                ),
            )
            evse.transaction_id = None
            evse.id_token = None
            evse.charging_state = None
            evse.remote_start_id = None
            evse.demand_w = None
            ended_profiles = [
                profile_id
                for profile_id, (_, profile) in self.charging_profiles.items()
                if profile.get("transaction_id") == transaction_id
            ]
            if ended_profiles:  # a TxProfile lives as long as its transaction
                for profile_id in ended_profiles:
                    del self.charging_profiles[profile_id]
                self._recompute_limits()
            return await self._transaction_event(payload)

    async def _transaction_event(self, payload: Any) -> Any:
        """Send (or queue, while offline) a TransactionEvent; the caller holds ``_tx_lock``."""
        if self.queue_offline:
            payload.offline = True
            self.offline_queue.append(payload)
            return None
        return await self.call(payload, suppress=False)

    async def replay_offline_queue(self, duplicate: bool = False) -> list[Any]:
        """Back online: send the queued TransactionEvents in order (each twice if ``duplicate``).

        Turns ``queue_offline`` off; returns the CSMS answers.
        """
        results = []
        async with self._tx_lock:
            self.queue_offline = False
            while self.offline_queue:
                payload = self.offline_queue[0]
                for _ in range(2 if duplicate else 1):
                    results.append(await self.call(payload, suppress=False))
                self.offline_queue.pop(0)
        return results

    async def meter_values(self, evse_id: int, seconds: float = 0, context: str = "Sample.Periodic") -> Any:
        """Advance the register by ``seconds`` at the current power and send MeterValues."""
        evse = self.evses[evse_id]
        self._advance(evse, seconds)
        return await self.call(
            call.MeterValues(evse_id=evse_id, meter_value=[self._meter_value(evse, context)]), suppress=False
        )

    async def notify_event(
        self,
        component: str,
        variable: str,
        actual_value: str,
        *,
        trigger: str = "Alerting",
        evse_id: int | None = None,
        event_notification_type: str = "HardWiredNotification",
        tech_code: str | None = None,
        tech_info: str | None = None,
        cleared: bool | None = None,
        transaction_id: str | None = None,
    ) -> Any:
        """Send NotifyEvent with one event (e.g. Connector / Problem / "true")."""
        return await self.call(
            call.NotifyEvent(
                generated_at=now_iso(),
                seq_no=0,
                event_data=[
                    {
                        "event_id": next(self._event_ids),
                        "timestamp": now_iso(),
                        "trigger": trigger,
                        "actual_value": actual_value,
                        "event_notification_type": event_notification_type,
                        "component": {"name": component, "evse": {"id": evse_id} if evse_id else None},
                        "variable": {"name": variable},
                        "tech_code": tech_code,
                        "tech_info": tech_info,
                        "cleared": cleared,
                        "transaction_id": transaction_id,
                    }
                ],
            ),
            suppress=False,
        )

    async def security_event(self, type_: str, tech_info: str | None = None) -> Any:
        """Send SecurityEventNotification."""
        return await self.call(
            call.SecurityEventNotification(type=type_, timestamp=now_iso(), tech_info=tech_info), suppress=False
        )

    async def firmware_status(self, status: str, request_id: int | None = None) -> Any:
        """Send FirmwareStatusNotification."""
        self.firmware_state = (status, request_id)
        return await self.call(call.FirmwareStatusNotification(status=status, request_id=request_id), suppress=False)

    async def log_status(self, status: str, request_id: int | None = None) -> Any:
        """Send LogStatusNotification."""
        self.log_state = (status, request_id)
        return await self.call(call.LogStatusNotification(status=status, request_id=request_id), suppress=False)

    async def notify_charging_limit(
        self,
        source: str = "EMS",
        evse_id: int | None = None,
        limit: float | None = None,
        rate_unit: str = "A",
        is_grid_critical: bool | None = None,
    ) -> Any:
        """Send NotifyChargingLimit (an external limit, with its schedule when ``limit`` is given)."""
        schedule = None
        if limit is not None:
            schedule = [
                {
                    "id": 1,
                    "charging_rate_unit": rate_unit,
                    "charging_schedule_period": [{"start_period": 0, "limit": limit}],
                }
            ]
        return await self.call(
            call.NotifyChargingLimit(
                charging_limit={"charging_limit_source": source, "is_grid_critical": is_grid_critical},
                charging_schedule=schedule,
                evse_id=evse_id,
            ),
            suppress=False,
        )

    async def cleared_charging_limit(self, source: str = "EMS", evse_id: int | None = None) -> Any:
        """Send ClearedChargingLimit."""
        return await self.call(call.ClearedChargingLimit(charging_limit_source=source, evse_id=evse_id), suppress=False)

    async def reservation_status_update(self, reservation_id: int, status: str = "Expired") -> Any:
        """Send ReservationStatusUpdate (Expired / Removed) and forget the reservation."""
        self.reservations.pop(reservation_id, None)
        return await self.call(
            call.ReservationStatusUpdate(reservation_id=reservation_id, reservation_update_status=status),
            suppress=False,
        )

    async def data_transfer(self, vendor_id: str, message_id: str | None = None, data: Any = None) -> Any:
        """Send DataTransfer."""
        return await self.call(call.DataTransfer(vendor_id=vendor_id, message_id=message_id, data=data), suppress=False)

    async def run_session(
        self,
        evse_id: int,
        id_token: str,
        power_w: float | None = None,
        count: int | None = None,
        *,
        token_type: str = ISO14443,
        trigger_reason: str = "Authorized",
        remote_start_id: int | None = None,
        charging_profile: dict[str, Any] | None = None,
    ) -> None:
        """Occupy the EVSE, start a transaction and send an Updated event every ``meter_interval`` seconds.

        A start the CSMS does not accept (idTokenInfo not Accepted) is ended at once (Deauthorized).
        """
        evse = self.evses[evse_id]
        await self.status(evse_id, "Occupied")
        result = await self.transaction_started(
            evse_id,
            id_token,
            trigger_reason,
            remote_start_id=remote_start_id,
            token_type=token_type,
            power_w=power_w,
        )
        transaction_id = evse.transaction_id
        info = getattr(result, "id_token_info", None) or {}
        if info.get("status", "Accepted") != "Accepted":
            _LOGGER.info("%s: transaction refused: %s", self.id, info)
            await self.transaction_ended(evse_id, stopped_reason="DeAuthorized", trigger_reason="Deauthorized")
            await self.status(evse_id, "Available")
            return
        if charging_profile:
            self.charging_profiles[int(charging_profile["id"])] = (
                evse_id,
                {**charging_profile, "transaction_id": transaction_id},
            )
            self._recompute_limits()
        sent = 0
        while evse.transaction_id == transaction_id and (count is None or sent < count):
            await asyncio.sleep(self.meter_interval)
            async with self._tx_lock:  # the session may have ended meanwhile
                if evse.transaction_id != transaction_id:
                    break
                payload = self._updated_payload(evse_id, self.meter_interval, "MeterValuePeriodic", "Charging", None)
                await self._transaction_event(payload)
            sent += 1

    async def end_session(
        self, evse_id: int, stopped_reason: str = "Local", trigger_reason: str = "StopAuthorized"
    ) -> Any:
        """End the transaction and free the EVSE (TransactionEvent Ended, StatusNotification Available)."""
        result = await self.transaction_ended(evse_id, stopped_reason, trigger_reason)
        await self.status(evse_id, "Available")
        return result

    # ------------------------------------------------------ device model
    def _find(self, component: dict[str, Any], variable: dict[str, Any]) -> tuple[str, VariableKey]:
        key = _key(component, variable)
        if key in self.config.device_model:
            return "Accepted", key
        if any(known[:3] == key[:3] for known in self.config.device_model):
            return "UnknownVariable", key
        return "UnknownComponent", key

    def _valid_value(self, key: VariableKey, value: str) -> bool:
        current = self.config.device_model[key][0]
        if current in ("true", "false"):
            return value in ("true", "false")
        if _is_int(current):
            return _is_int(value)
        return True

    def _characteristics(self, key: VariableKey) -> dict[str, Any]:
        component, _, _, variable, _ = key
        value = self.config.device_model[key][0]
        if (component, variable) == ("EVSE", "Power"):
            return {
                "data_type": "decimal",
                "unit": "W",
                "max_limit": self.config.max_current * 230.0 * 3,
                "supports_monitoring": True,
            }
        if variable == "AvailabilityState":
            return {"data_type": "OptionList", "values_list": CONNECTOR_STATUSES, "supports_monitoring": True}
        if key == RATE_UNIT:
            return {"data_type": "MemberList", "values_list": "A,W", "supports_monitoring": False}
        if value in ("true", "false"):
            data_type = "boolean"
        elif _is_int(value):
            data_type = "integer"
        elif _is_number(value):
            data_type = "decimal"
        else:
            data_type = "string"
        return {"data_type": data_type, "supports_monitoring": False}

    def _report_data(self, key: VariableKey) -> dict[str, Any]:
        component, component_instance, evse_id, variable, variable_instance = key
        mutability = self.config.device_model[key][1]
        evse = None
        if evse_id is not None:
            evse = {"id": evse_id, "connector_id": 1 if component == "Connector" else None}
        return {
            "component": {"name": component, "instance": component_instance, "evse": evse},
            "variable": {"name": variable, "instance": variable_instance},
            "variable_attribute": [
                {
                    "type": "Actual",
                    "value": None if mutability == WRITE_ONLY else self.variable_value(key),
                    "mutability": mutability,
                }
            ],
            "variable_characteristics": self._characteristics(key),
        }

    async def send_report(self, request_id: int, keys: list[VariableKey]) -> None:
        """NotifyReport messages of ``ItemsPerMessage`` (GetReport) variables, seqNo 0.., tbc."""
        size = max(1, self._int(ITEMS_PER_REPORT, 10))
        chunks = [keys[start : start + size] for start in range(0, len(keys), size)] or [[]]
        for seq_no, chunk in enumerate(chunks):
            await self.call(
                call.NotifyReport(
                    request_id=request_id,
                    generated_at=now_iso(),
                    seq_no=seq_no,
                    report_data=[self._report_data(key) for key in chunk] or None,
                    tbc=seq_no < len(chunks) - 1,
                ),
                suppress=False,
            )

    def _component_matches(self, key: VariableKey, criteria: Iterable[str]) -> bool:
        values = {k[3]: self.variable_value(k) for k in self.config.device_model if k[:3] == key[:3]}
        for criterion in criteria:
            if criterion in ("Enabled", "Active", "Problem") and values.get(criterion) == "true":
                return True
            if criterion == "Available" and values.get("AvailabilityState", values.get("Available")) in (
                "Available",
                "Occupied",
                "Reserved",
                "true",
            ):
                return True
        return False

    @staticmethod
    def _selected(key: VariableKey, component_variable: list[dict[str, Any]]) -> bool:
        for item in component_variable:
            component = item["component"]
            variable = item.get("variable")
            evse = component.get("evse")
            if component["name"] != key[0]:
                continue
            if component.get("instance") is not None and component["instance"] != key[1]:
                continue
            if evse is not None and evse["id"] != key[2]:
                continue
            if variable is not None and (variable["name"] != key[3] or variable.get("instance") not in (None, key[4])):
                continue
            return True
        return False

    # ------------------------------------------------------ smart charging
    def _profile_limit_a(self, evse: SimEvse, profile: dict[str, Any]) -> float:
        schedule = profile["charging_schedule"][0]
        limit = float(schedule["charging_schedule_period"][0]["limit"])
        return limit if schedule["charging_rate_unit"] == "A" else limit / evse.voltage / evse.active_phases

    def _recompute_limits(self) -> None:
        """Effective limit per EVSE: TxProfile (own transaction) or TxDefaultProfile, capped by the max profiles."""
        for evse in self.evses.values():
            applicable = [
                (evse_id, profile)
                for evse_id, profile in self.charging_profiles.values()
                if evse_id in (0, evse.evse_id)
                and (profile.get("transaction_id") is None or profile["transaction_id"] == evse.transaction_id)
            ]

            def top(purpose: str, applicable: list[tuple[int, dict[str, Any]]] = applicable) -> dict[str, Any] | None:
                candidates = [
                    (p["stack_level"], e, p) for e, p in applicable if p["charging_profile_purpose"] == purpose
                ]
                return max(candidates, key=lambda item: (item[0], item[1]))[2] if candidates else None

            chosen = (top("TxProfile") if evse.transaction_id else None) or top("TxDefaultProfile")
            limit = None if chosen is None else self._profile_limit_a(evse, chosen)
            for purpose in ("ChargingStationMaxProfile", "ChargingStationExternalConstraints"):
                cap = top(purpose)
                if cap is not None:
                    cap_a = self._profile_limit_a(evse, cap)
                    limit = cap_a if limit is None else min(limit, cap_a)
            evse.limit_a = limit
            evse.number_phases = (
                None
                if chosen is None
                else chosen["charging_schedule"][0]["charging_schedule_period"][0].get("number_phases")
            )
            if evse.transaction_id and evse.charging_state == "Charging":
                evse.power_w = self._offered_power(evse)

    def _check_profile(self, evse_id: int, profile: dict[str, Any]) -> str:
        purpose = profile["charging_profile_purpose"]
        units = self.variable_value(RATE_UNIT).split(",") if RATE_UNIT in self.config.device_model else ["A", "W"]
        if not self._flag(SMART_CHARGING_ENABLED):
            return "Rejected"
        if evse_id != 0 and evse_id not in self.evses:
            return "Rejected"
        if purpose == "ChargingStationMaxProfile" and evse_id != 0:
            return "Rejected"
        if profile["stack_level"] > self._int(PROFILE_STACK_LEVEL, 8):
            return "Rejected"
        for schedule in profile["charging_schedule"]:
            if schedule["charging_rate_unit"] not in units:
                return "Rejected"
            if len(schedule["charging_schedule_period"]) > self._int(PERIODS_PER_SCHEDULE, 24):
                return "Rejected"
        if purpose == "TxProfile":
            evse = self.evses.get(evse_id)
            if evse is None or evse.transaction_id is None:
                return "Rejected"
            if profile.get("transaction_id") not in (None, evse.transaction_id):
                return "Rejected"
        return "Accepted"

    def _install_profile(self, evse_id: int, profile: dict[str, Any]) -> None:
        if profile["charging_profile_purpose"] == "TxProfile":
            profile = {**profile, "transaction_id": self.evses[evse_id].transaction_id}
        for profile_id, (other_evse, other) in list(self.charging_profiles.items()):
            if (
                other_evse == evse_id
                and other["charging_profile_purpose"] == profile["charging_profile_purpose"]
                and other["stack_level"] == profile["stack_level"]
                and other.get("transaction_id") == profile.get("transaction_id")
            ):
                del self.charging_profiles[profile_id]
        self.charging_profiles[int(profile["id"])] = (evse_id, profile)
        self._recompute_limits()

    # ------------------------------------------------------ CSMS -> station: provisioning
    @on(Action.get_variables)
    def on_get_variables(self, **kwargs: Any) -> Any:
        request = self._record("GetVariables", kwargs)
        override = self.responses.get("GetVariables")
        results = []
        for item in request["get_variable_data"]:
            status, key = self._find(item["component"], item["variable"])
            attribute_type = item.get("attribute_type")
            if status == "Accepted" and attribute_type not in (None, "Actual"):
                status = "NotSupportedAttributeType"
            elif status == "Accepted" and self.config.device_model[key][1] == WRITE_ONLY:
                status = "Rejected"
            status = override or status
            results.append(
                {
                    "attribute_status": status,
                    "attribute_type": attribute_type,
                    "attribute_value": self.variable_value(key) if status == "Accepted" else None,
                    "component": item["component"],
                    "variable": item["variable"],
                }
            )
        return call_result.GetVariables(get_variable_result=results)

    @on(Action.set_variables)
    def on_set_variables(self, **kwargs: Any) -> Any:
        request = self._record("SetVariables", kwargs)
        override = self.responses.get("SetVariables")
        results = []
        for item in request["set_variable_data"]:
            status, key = self._find(item["component"], item["variable"])
            attribute_type = item.get("attribute_type")
            reason = None
            if status == "Accepted":
                if attribute_type not in (None, "Actual"):
                    status = "NotSupportedAttributeType"
                elif self.config.device_model[key][1] == READ_ONLY:
                    status, reason = "Rejected", "ReadOnly"
                elif not self._valid_value(key, item["attribute_value"]):
                    status, reason = "Rejected", "InvalidValue"
            status = override or status
            if status == "Accepted":
                self._store(key, item["attribute_value"])
            results.append(
                {
                    "attribute_type": attribute_type,
                    "attribute_status": status,
                    "attribute_status_info": {"reason_code": reason} if reason and status == "Rejected" else None,
                    "component": item["component"],
                    "variable": item["variable"],
                }
            )
        return call_result.SetVariables(set_variable_result=results)

    @on(Action.get_base_report)
    def on_get_base_report(self, **kwargs: Any) -> Any:
        request = self._record("GetBaseReport", kwargs)
        base = request["report_base"]
        model = self.config.device_model
        if base == "ConfigurationInventory":
            keys = [key for key, (_, mutability) in model.items() if mutability != READ_ONLY]
        elif base == "SummaryInventory":
            keys = [key for key in model if key[3] in ("AvailabilityState", "Problem")]
        else:
            keys = list(model)
        status = self._answer("GetBaseReport", "Accepted" if keys else "EmptyResultSet")
        if status == "Accepted":
            self._then(lambda: self.send_report(request["request_id"], keys))
        return call_result.GetBaseReport(status=status)

    @after(Action.get_base_report)
    def after_get_base_report(self, **_: Any) -> None:
        self._run_followups()

    @on(Action.get_report)
    def on_get_report(self, **kwargs: Any) -> Any:
        request = self._record("GetReport", kwargs)
        component_variable = request.get("component_variable")
        criteria = request.get("component_criteria")
        keys = [
            key
            for key in self.config.device_model
            if (not component_variable or self._selected(key, component_variable))
            and (not criteria or self._component_matches(key, criteria))
        ]
        status = self._answer("GetReport", "Accepted" if keys else "EmptyResultSet")
        if status == "Accepted":
            self._then(lambda: self.send_report(request["request_id"], keys))
        return call_result.GetReport(status=status)

    @after(Action.get_report)
    def after_get_report(self, **_: Any) -> None:
        self._run_followups()

    @on(Action.set_network_profile)
    def on_set_network_profile(self, **kwargs: Any) -> Any:
        request = self._record("SetNetworkProfile", kwargs)
        status = self._answer("SetNetworkProfile", "Accepted")
        if status == "Accepted":
            self.network_profiles[request["configuration_slot"]] = request["connection_data"]
        return call_result.SetNetworkProfile(status=status)

    @on(Action.reset)
    def on_reset(self, **kwargs: Any) -> Any:
        request = self._record("Reset", kwargs)
        evse_id = request.get("evse_id")
        targets = [evse_id] if evse_id else list(self.evses)
        busy = any(self.evses[t].transaction_id for t in targets if t in self.evses)
        if any(t not in self.evses for t in targets):
            default = "Rejected"
        elif request["type"] == "OnIdle" and busy:
            default = "Scheduled"
        else:
            default = "Accepted"
        status = self._answer("Reset", default)
        if status == "Accepted" and self.reboot_on_reset and all(t in self.evses for t in targets):
            self._then(lambda: self._reboot(targets, whole_station=not evse_id))
        return call_result.Reset(status=status)

    @after(Action.reset)
    def after_reset(self, **_: Any) -> None:
        self._run_followups()

    async def _reboot(self, evse_ids: list[int], whole_station: bool) -> None:
        for evse_id in evse_ids:
            if self.evses[evse_id].transaction_id:
                await self.transaction_ended(evse_id, stopped_reason="ImmediateReset", trigger_reason="ResetCommand")
        if whole_station:
            await self.boot("RemoteReset")
        for evse_id in evse_ids:
            current = self.evses[evse_id].connector_status
            await self.status(evse_id, current if current in ("Unavailable", "Faulted") else "Available")

    # ------------------------------------------------------ CSMS -> station: transactions
    @on(Action.request_start_transaction)
    def on_request_start_transaction(self, **kwargs: Any) -> Any:
        request = self._record("RequestStartTransaction", kwargs)
        evse_id = request.get("evse_id") or next(
            (e.evse_id for e in self.evses.values() if e.transaction_id is None), 0
        )
        evse = self.evses.get(evse_id)
        usable = (
            evse is not None and evse.transaction_id is None and evse.connector_status not in ("Unavailable", "Faulted")
        )
        status = self._answer("RequestStartTransaction", "Accepted" if usable else "Rejected")
        if status == "Accepted" and usable and self.auto_session:
            self._then(
                lambda: self._remote_start(
                    evse_id, request["id_token"], request["remote_start_id"], request.get("charging_profile")
                )
            )
        return call_result.RequestStartTransaction(status=status)

    @after(Action.request_start_transaction)
    def after_request_start_transaction(self, **_: Any) -> None:
        self._run_followups()

    async def _remote_start(
        self, evse_id: int, id_token: dict[str, Any], remote_start_id: int, charging_profile: dict[str, Any] | None
    ) -> None:
        if self._flag(AUTHORIZE_REMOTE_START):
            result = await self.authorize(id_token["id_token"], id_token["type"])
            if result.id_token_info["status"] != "Accepted":
                return
        await self.run_session(
            evse_id,
            id_token["id_token"],
            token_type=id_token["type"],
            trigger_reason="RemoteStart",
            remote_start_id=remote_start_id,
            charging_profile=charging_profile,
        )

    @on(Action.request_stop_transaction)
    def on_request_stop_transaction(self, **kwargs: Any) -> Any:
        request = self._record("RequestStopTransaction", kwargs)
        evse = self._evse_of_transaction(request["transaction_id"])
        status = self._answer("RequestStopTransaction", "Accepted" if evse else "Rejected")
        if status == "Accepted" and evse is not None and self.auto_session:
            evse_id = evse.evse_id
            self._then(lambda: self.end_session(evse_id, stopped_reason="Remote", trigger_reason="RemoteStop"))
        return call_result.RequestStopTransaction(status=status)

    @after(Action.request_stop_transaction)
    def after_request_stop_transaction(self, **_: Any) -> None:
        self._run_followups()

    @on(Action.get_transaction_status)
    def on_get_transaction_status(self, **kwargs: Any) -> Any:
        request = self._record("GetTransactionStatus", kwargs)
        transaction_id = request.get("transaction_id")
        queued = any(
            transaction_id is None or payload.transaction_info["transaction_id"] == transaction_id
            for payload in self.offline_queue
        )
        ongoing = None if transaction_id is None else self._evse_of_transaction(transaction_id) is not None
        return call_result.GetTransactionStatus(messages_in_queue=queued, ongoing_indicator=ongoing)

    @on(Action.cost_updated)
    def on_cost_updated(self, **kwargs: Any) -> Any:
        request = self._record("CostUpdated", kwargs)
        self.total_costs[request["transaction_id"]] = float(request["total_cost"])
        return call_result.CostUpdated()

    # ------------------------------------------------------ CSMS -> station: availability
    @on(Action.change_availability)
    def on_change_availability(self, **kwargs: Any) -> Any:
        request = self._record("ChangeAvailability", kwargs)
        evse_id = (request.get("evse") or {}).get("id")
        targets = list(self.evses) if not evse_id else [evse_id]
        operative = request["operational_status"] == "Operative"
        if any(t not in self.evses for t in targets):
            default = "Rejected"
        elif not operative and any(self.evses[t].transaction_id for t in targets):
            default = "Scheduled"
        else:
            default = "Accepted"
        status = self._answer("ChangeAvailability", default)
        if status == "Accepted" and all(t in self.evses for t in targets):
            self._then(lambda: self._report_availability(targets, operative))
        return call_result.ChangeAvailability(status=status)

    @after(Action.change_availability)
    def after_change_availability(self, **_: Any) -> None:
        self._run_followups()

    async def _report_availability(self, evse_ids: list[int], operative: bool) -> None:
        for evse_id in evse_ids:
            busy = self.evses[evse_id].transaction_id is not None
            new = ("Occupied" if busy else "Available") if operative else "Unavailable"
            await self.status(evse_id, new)

    @on(Action.unlock_connector)
    def on_unlock_connector(self, **kwargs: Any) -> Any:
        request = self._record("UnlockConnector", kwargs)
        evse = self.evses.get(request["evse_id"])
        if evse is None or request["connector_id"] != 1:
            default = "UnknownConnector"
        elif evse.transaction_id:
            default = "OngoingAuthorizedTransaction"
        else:
            default = "Unlocked"
        return call_result.UnlockConnector(status=self._answer("UnlockConnector", default))

    @on(Action.trigger_message)
    def on_trigger_message(self, **kwargs: Any) -> Any:
        request = self._record("TriggerMessage", kwargs)
        message = request["requested_message"]
        evse_id = (request.get("evse") or {}).get("id")
        targets = [evse_id] if evse_id else list(self.evses)
        if message not in TRIGGERABLE:
            default = "NotImplemented"
        elif any(t not in self.evses for t in targets) or (
            message == "TransactionEvent" and not any(self.evses[t].transaction_id for t in targets)
        ):
            default = "Rejected"
        else:
            default = "Accepted"
        status = self._answer("TriggerMessage", default)
        if status == "Accepted" and default == "Accepted":
            self._then(lambda: self._triggered(message, targets))
        return call_result.TriggerMessage(status=status)

    @after(Action.trigger_message)
    def after_trigger_message(self, **_: Any) -> None:
        self._run_followups()

    async def _triggered(self, message: str, evse_ids: list[int]) -> None:
        if message == "BootNotification":
            await self.boot("Triggered")
        elif message == "Heartbeat":
            await self.heartbeat()
        elif message == "FirmwareStatusNotification":
            await self.firmware_status(*self.firmware_state)
        elif message == "LogStatusNotification":
            await self.log_status(*self.log_state)
        for evse_id in evse_ids:
            evse = self.evses[evse_id]
            if message == "StatusNotification":
                await self.status(evse_id, evse.connector_status)
            elif message == "MeterValues":
                await self.meter_values(evse_id, context="Trigger")
            elif message == "TransactionEvent" and evse.transaction_id:
                await self.transaction_updated(evse_id, 0, "Trigger", evse.charging_state or "Charging")

    # ------------------------------------------------------ CSMS -> station: smart charging
    @on(Action.set_charging_profile)
    def on_set_charging_profile(self, **kwargs: Any) -> Any:
        request = self._record("SetChargingProfile", kwargs)
        evse_id, profile = request["evse_id"], request["charging_profile"]
        status = self._answer("SetChargingProfile", self._check_profile(evse_id, profile))
        if status == "Accepted" and self._check_profile(evse_id, profile) == "Accepted":
            self._install_profile(evse_id, profile)
        return call_result.SetChargingProfile(status=status)

    @on(Action.get_charging_profiles)
    def on_get_charging_profiles(self, **kwargs: Any) -> Any:
        request = self._record("GetChargingProfiles", kwargs)
        criterion = request["charging_profile"]
        evse_id = request.get("evse_id")
        found: list[tuple[int, dict[str, Any]]] = []
        for profile_evse, profile in self.charging_profiles.values():
            if evse_id is not None and profile_evse != evse_id:
                continue
            purpose = criterion.get("charging_profile_purpose")
            if purpose is not None and profile["charging_profile_purpose"] != purpose:
                continue
            if criterion.get("stack_level") is not None and profile["stack_level"] != criterion["stack_level"]:
                continue
            if criterion.get("charging_profile_id") and profile["id"] not in criterion["charging_profile_id"]:
                continue
            if criterion.get("charging_limit_source") and "CSO" not in criterion["charging_limit_source"]:
                continue
            found.append((profile_evse, profile))
        status = self._answer("GetChargingProfiles", "Accepted" if found else "NoProfiles")
        if status == "Accepted" and found:
            self._then(lambda: self._report_charging_profiles(request["request_id"], found))
        return call_result.GetChargingProfiles(status=status)

    @after(Action.get_charging_profiles)
    def after_get_charging_profiles(self, **_: Any) -> None:
        self._run_followups()

    async def _report_charging_profiles(self, request_id: int, found: list[tuple[int, dict[str, Any]]]) -> None:
        evse_ids = sorted({evse_id for evse_id, _ in found})
        for index, evse_id in enumerate(evse_ids):
            await self.call(
                call.ReportChargingProfiles(
                    request_id=request_id,
                    charging_limit_source="CSO",
                    charging_profile=[profile for e, profile in found if e == evse_id],
                    evse_id=evse_id,
                    tbc=index < len(evse_ids) - 1,
                ),
                suppress=False,
            )

    @on(Action.clear_charging_profile)
    def on_clear_charging_profile(self, **kwargs: Any) -> Any:
        request = self._record("ClearChargingProfile", kwargs)
        profile_id = request.get("charging_profile_id")
        criteria = request.get("charging_profile_criteria") or {}
        removed = []
        for known_id, (evse_id, profile) in self.charging_profiles.items():
            if profile_id is not None:
                if known_id == profile_id:
                    removed.append(known_id)
                continue
            if criteria.get("evse_id") is not None and criteria["evse_id"] != evse_id:
                continue
            purpose = criteria.get("charging_profile_purpose")
            if purpose is not None and profile["charging_profile_purpose"] != purpose:
                continue
            if criteria.get("stack_level") is not None and profile["stack_level"] != criteria["stack_level"]:
                continue
            removed.append(known_id)
        status = self._answer("ClearChargingProfile", "Accepted" if removed else "Unknown")
        if status == "Accepted":
            for known_id in removed:
                del self.charging_profiles[known_id]
            self._recompute_limits()
        return call_result.ClearChargingProfile(status=status)

    @on(Action.get_composite_schedule)
    def on_get_composite_schedule(self, **kwargs: Any) -> Any:
        request = self._record("GetCompositeSchedule", kwargs)
        evse_id = request["evse_id"]
        unit = request.get("charging_rate_unit") or "A"
        evse = self.evses.get(evse_id)
        if evse_id != 0 and evse is None:
            return call_result.GetCompositeSchedule(status=self._answer("GetCompositeSchedule", "Rejected"))
        limit_a = self.config.max_current if evse is None or evse.limit_a is None else evse.limit_a
        limit = limit_a if unit == "A" else limit_a * (evse.voltage * evse.active_phases if evse else 230.0 * 3)
        return call_result.GetCompositeSchedule(
            status=self._answer("GetCompositeSchedule", "Accepted"),
            schedule={
                "evse_id": evse_id,
                "duration": request["duration"],
                "schedule_start": now_iso(),
                "charging_rate_unit": unit,
                "charging_schedule_period": [{"start_period": 0, "limit": round(limit, 1)}],
            },
        )

    # ------------------------------------------------------ CSMS -> station: authorization
    @on(Action.send_local_list)
    def on_send_local_list(self, **kwargs: Any) -> Any:
        request = self._record("SendLocalList", kwargs)
        version = request["version_number"]
        if not self._flag(LOCAL_LIST_ENABLED):
            default = "Failed"
        elif request["update_type"] == "Differential" and version <= self.local_list_version:
            default = "VersionMismatch"
        else:
            default = "Accepted"
        status = self._answer("SendLocalList", default)
        if status == "Accepted":
            if request["update_type"] == "Full":
                self.local_list.clear()
            for entry in request.get("local_authorization_list") or []:
                token = entry["id_token"]["id_token"]
                if entry.get("id_token_info"):
                    self.local_list[token] = entry
                else:
                    self.local_list.pop(token, None)
            self.local_list_version = version
            self._store(LOCAL_LIST_ENTRIES, str(len(self.local_list)))
        return call_result.SendLocalList(status=status)

    @on(Action.get_local_list_version)
    def on_get_local_list_version(self, **kwargs: Any) -> Any:
        self._record("GetLocalListVersion", kwargs)
        return call_result.GetLocalListVersion(
            version_number=self._answer("GetLocalListVersion", self.local_list_version)
        )

    @on(Action.clear_cache)
    def on_clear_cache(self, **kwargs: Any) -> Any:
        self._record("ClearCache", kwargs)
        return call_result.ClearCache(status=self._answer("ClearCache", "Accepted"))

    @on(Action.customer_information)
    def on_customer_information(self, **kwargs: Any) -> Any:
        request = self._record("CustomerInformation", kwargs)
        token = (request.get("id_token") or {}).get("id_token")
        identified = token or request.get("customer_identifier") or request.get("customer_certificate")
        status = self._answer("CustomerInformation", "Accepted" if identified else "Invalid")
        if status == "Accepted":
            self._then(lambda: self._customer_information(request, token))
        return call_result.CustomerInformation(status=status)

    @after(Action.customer_information)
    def after_customer_information(self, **_: Any) -> None:
        self._run_followups()

    async def _customer_information(self, request: dict[str, Any], token: str | None) -> None:
        entry = self.local_list.get(token) if token else None
        if entry is not None:
            data = f"idToken {token}: {entry['id_token_info']['status']} (local list)"
        else:
            data = "No customer data"
        if request["clear"] and token:
            self.local_list.pop(token, None)
            self._store(LOCAL_LIST_ENTRIES, str(len(self.local_list)))
        if request["report"] or request["clear"]:
            await self.call(
                call.NotifyCustomerInformation(
                    data=data if request["report"] else "Cleared",
                    seq_no=0,
                    generated_at=now_iso(),
                    request_id=request["request_id"],
                    tbc=False,
                ),
                suppress=False,
            )

    # ------------------------------------------------------ CSMS -> station: reservations
    @on(Action.reserve_now)
    def on_reserve_now(self, **kwargs: Any) -> Any:
        request = self._record("ReserveNow", kwargs)
        evse_id = request.get("evse_id")
        reserved = {e for e in self.reservations.values() if e is not None}
        if not self._flag(RESERVATION_ENABLED):
            default = "Rejected"
        elif evse_id is None:
            free = [e for e in self.evses.values() if e.transaction_id is None and e.evse_id not in reserved]
            default = "Accepted" if free else "Occupied"
        elif evse_id not in self.evses:
            default = "Rejected"
        elif self.evses[evse_id].connector_status in ("Unavailable", "Faulted"):
            default = self.evses[evse_id].connector_status
        elif self.evses[evse_id].transaction_id or (evse_id in reserved and request["id"] not in self.reservations):
            default = "Occupied"
        else:
            default = "Accepted"
        status = self._answer("ReserveNow", default)
        if status == "Accepted":
            self.reservations[request["id"]] = evse_id
            self._then(lambda: self._reserved(request["id"], evse_id, request["expiry_date_time"]))
        return call_result.ReserveNow(status=status)

    @after(Action.reserve_now)
    def after_reserve_now(self, **_: Any) -> None:
        self._run_followups()

    async def _reserved(self, reservation_id: int, evse_id: int | None, expiry: str) -> None:
        if evse_id in self.evses:
            await self.status(evse_id, "Reserved")
        with contextlib.suppress(ValueError):
            expires = datetime.fromisoformat(expiry)
            if expires.tzinfo is None:
                expires = expires.replace(tzinfo=UTC)
            delay = (expires - datetime.now(UTC)).total_seconds()
            self.spawn(self._quietly(self._expire(reservation_id, evse_id, max(0.0, delay))))

    async def _expire(self, reservation_id: int, evse_id: int | None, delay: float) -> None:
        await asyncio.sleep(delay)
        if reservation_id in self.reservations:
            await self.reservation_status_update(reservation_id, "Expired")
            if evse_id in self.evses and self.evses[evse_id].connector_status == "Reserved":
                await self.status(evse_id, "Available")

    @on(Action.cancel_reservation)
    def on_cancel_reservation(self, **kwargs: Any) -> Any:
        request = self._record("CancelReservation", kwargs)
        reservation_id = request["reservation_id"]
        known = reservation_id in self.reservations
        status = self._answer("CancelReservation", "Accepted" if known else "Rejected")
        if status == "Accepted" and known:
            evse_id = self.reservations.pop(reservation_id)
            if evse_id in self.evses and self.evses[evse_id].connector_status == "Reserved":
                target = evse_id
                self._then(lambda: self.status(target, "Available"))
        return call_result.CancelReservation(status=status)

    @after(Action.cancel_reservation)
    def after_cancel_reservation(self, **_: Any) -> None:
        self._run_followups()

    # ------------------------------------------------------ CSMS -> station: firmware, logs, misc
    @on(Action.update_firmware)
    def on_update_firmware(self, **kwargs: Any) -> Any:
        request = self._record("UpdateFirmware", kwargs)
        status = self._answer("UpdateFirmware", "Accepted")
        if status == "Accepted":
            signed = bool(request["firmware"].get("signature"))
            self._then(lambda: self._firmware_progress(request["request_id"], signed))
        return call_result.UpdateFirmware(status=status)

    @after(Action.update_firmware)
    def after_update_firmware(self, **_: Any) -> None:
        self._run_followups()

    async def _firmware_progress(self, request_id: int, signed: bool) -> None:
        steps = ["Downloading", "Downloaded", *(["SignatureVerified"] if signed else []), "Installing", "Installed"]
        for step in steps:
            await asyncio.sleep(self.progress_delay)
            await self.firmware_status(step, request_id)

    @on(Action.get_log)
    def on_get_log(self, **kwargs: Any) -> Any:
        request = self._record("GetLog", kwargs)
        status = self._answer("GetLog", "Accepted")
        if status == "Accepted":
            self._then(lambda: self._log_progress(request["request_id"]))
        filename = "security.log" if request["log_type"] == "SecurityLog" else "diagnostics.log"
        return call_result.GetLog(status=status, filename=filename if status == "Accepted" else None)

    @after(Action.get_log)
    def after_get_log(self, **_: Any) -> None:
        self._run_followups()

    async def _log_progress(self, request_id: int) -> None:
        for step in ("Uploading", "Uploaded"):
            await asyncio.sleep(self.progress_delay)
            await self.log_status(step, request_id)

    @on(Action.data_transfer)
    def on_data_transfer(self, **kwargs: Any) -> Any:
        request = self._record("DataTransfer", kwargs)
        return call_result.DataTransfer(status=self._answer("DataTransfer", "Accepted"), data=request.get("data"))

    @on(Action.certificate_signed)
    def on_certificate_signed(self, **kwargs: Any) -> Any:
        self._record("CertificateSigned", kwargs)
        return call_result.CertificateSigned(status=self._answer("CertificateSigned", "Accepted"))

    @on(Action.install_certificate)
    def on_install_certificate(self, **kwargs: Any) -> Any:
        request = self._record("InstallCertificate", kwargs)
        status = self._answer("InstallCertificate", "Accepted")
        if status == "Accepted":
            self.certificates.append(request)
        return call_result.InstallCertificate(status=status)

    @on(Action.delete_certificate)
    def on_delete_certificate(self, **kwargs: Any) -> Any:
        self._record("DeleteCertificate", kwargs)
        return call_result.DeleteCertificate(status=self._answer("DeleteCertificate", "NotFound"))

    @on(Action.get_installed_certificate_ids)
    def on_get_installed_certificate_ids(self, **kwargs: Any) -> Any:
        self._record("GetInstalledCertificateIds", kwargs)
        return call_result.GetInstalledCertificateIds(status=self._answer("GetInstalledCertificateIds", "NotFound"))

    @on(Action.publish_firmware)
    def on_publish_firmware(self, **kwargs: Any) -> Any:
        self._record("PublishFirmware", kwargs)  # only a Local Controller publishes firmware
        return call_result.PublishFirmware(status=self._answer("PublishFirmware", "Rejected"))

    @on(Action.unpublish_firmware)
    def on_unpublish_firmware(self, **kwargs: Any) -> Any:
        self._record("UnpublishFirmware", kwargs)
        return call_result.UnpublishFirmware(status=self._answer("UnpublishFirmware", "NoFirmware"))

    # ------------------------------------------------------ CSMS -> station: display messages
    @on(Action.set_display_message)
    def on_set_display_message(self, **kwargs: Any) -> Any:
        request = self._record("SetDisplayMessage", kwargs)
        message = request["message"]
        transaction_id = message.get("transaction_id")
        default = (
            "UnknownTransaction" if transaction_id and not self._evse_of_transaction(transaction_id) else "Accepted"
        )
        status = self._answer("SetDisplayMessage", default)
        if status == "Accepted":
            self.display_messages[message["id"]] = message
        return call_result.SetDisplayMessage(status=status)

    @on(Action.get_display_messages)
    def on_get_display_messages(self, **kwargs: Any) -> Any:
        request = self._record("GetDisplayMessages", kwargs)
        found = [
            message
            for message in self.display_messages.values()
            if (not request.get("id") or message["id"] in request["id"])
            and request.get("priority") in (None, message["priority"])
            and request.get("state") in (None, message.get("state"))
        ]
        status = self._answer("GetDisplayMessages", "Accepted" if found else "Unknown")
        if status == "Accepted" and found:
            self._then(
                lambda: self.call(
                    call.NotifyDisplayMessages(request_id=request["request_id"], message_info=found, tbc=False),
                    suppress=False,
                )
            )
        return call_result.GetDisplayMessages(status=status)

    @after(Action.get_display_messages)
    def after_get_display_messages(self, **_: Any) -> None:
        self._run_followups()

    @on(Action.clear_display_message)
    def on_clear_display_message(self, **kwargs: Any) -> Any:
        request = self._record("ClearDisplayMessage", kwargs)
        known = self.display_messages.pop(request["id"], None) is not None
        return call_result.ClearDisplayMessage(
            status=self._answer("ClearDisplayMessage", "Accepted" if known else "Unknown")
        )

    # ------------------------------------------------------ CSMS -> station: monitoring
    @on(Action.set_variable_monitoring)
    def on_set_variable_monitoring(self, **kwargs: Any) -> Any:
        request = self._record("SetVariableMonitoring", kwargs)
        results = []
        for item in request["set_monitoring_data"]:
            status, _ = self._find(item["component"], item["variable"])
            status = self._answer("SetVariableMonitoring", status)
            monitor_id = None
            if status == "Accepted":
                monitor_id = item.get("id") or next(self._monitor_ids)
                self.monitors[monitor_id] = {**item, "id": monitor_id}
            results.append(
                {
                    "id": monitor_id,
                    "status": status,
                    "type": item["type"],
                    "severity": item["severity"],
                    "component": item["component"],
                    "variable": item["variable"],
                }
            )
        return call_result.SetVariableMonitoring(set_monitoring_result=results)

    @on(Action.clear_variable_monitoring)
    def on_clear_variable_monitoring(self, **kwargs: Any) -> Any:
        request = self._record("ClearVariableMonitoring", kwargs)
        results = [
            {"id": monitor_id, "status": "Accepted" if self.monitors.pop(monitor_id, None) else "NotFound"}
            for monitor_id in request["id"]
        ]
        return call_result.ClearVariableMonitoring(clear_monitoring_result=results)

    @on(Action.get_monitoring_report)
    def on_get_monitoring_report(self, **kwargs: Any) -> Any:
        request = self._record("GetMonitoringReport", kwargs)
        component_variable = request.get("component_variable")
        criteria = request.get("monitoring_criteria")
        kinds = {
            "ThresholdMonitoring": ("UpperThreshold", "LowerThreshold"),
            "DeltaMonitoring": ("Delta",),
            "PeriodicMonitoring": ("Periodic", "PeriodicClockAligned"),
        }
        found = [
            monitor
            for monitor in self.monitors.values()
            if (
                not component_variable
                or self._selected(_key(monitor["component"], monitor["variable"]), component_variable)
            )
            and (not criteria or any(monitor["type"] in kinds[c] for c in criteria))
        ]
        status = self._answer("GetMonitoringReport", "Accepted" if found else "EmptyResultSet")
        if status == "Accepted" and found:
            self._then(lambda: self._monitoring_report(request["request_id"], found))
        return call_result.GetMonitoringReport(status=status)

    @after(Action.get_monitoring_report)
    def after_get_monitoring_report(self, **_: Any) -> None:
        self._run_followups()

    async def _monitoring_report(self, request_id: int, monitors: list[dict[str, Any]]) -> None:
        await self.call(
            call.NotifyMonitoringReport(
                request_id=request_id,
                seq_no=0,
                generated_at=now_iso(),
                monitor=[
                    {
                        "component": monitor["component"],
                        "variable": monitor["variable"],
                        "variable_monitoring": [
                            {
                                "id": monitor["id"],
                                "transaction": bool(monitor.get("transaction", False)),
                                "value": monitor["value"],
                                "type": monitor["type"],
                                "severity": monitor["severity"],
                            }
                        ],
                    }
                    for monitor in monitors
                ],
                tbc=False,
            ),
            suppress=False,
        )

    @on(Action.set_monitoring_base)
    def on_set_monitoring_base(self, **kwargs: Any) -> Any:
        self._record("SetMonitoringBase", kwargs)
        return call_result.SetMonitoringBase(status=self._answer("SetMonitoringBase", "Accepted"))

    @on(Action.set_monitoring_level)
    def on_set_monitoring_level(self, **kwargs: Any) -> Any:
        self._record("SetMonitoringLevel", kwargs)
        return call_result.SetMonitoringLevel(status=self._answer("SetMonitoringLevel", "Accepted"))


async def connect201(
    url: str,
    charger_id: str,
    *,
    password: str | None = None,
    subprotocols: list[str] | None = None,
    ssl_context: ssl.SSLContext | None = None,
    config: SimConfig201 | None = None,
    response_timeout: float = 10,
) -> tuple[SimCharger201, Any, asyncio.Task[None]]:
    """Open the websocket (subprotocol ocpp2.0.1) and start the station's message loop.

    Returns the station, its websocket and the loop task (cancel it, then close the socket).
    """
    headers = basic_auth_header(charger_id, password) if password is not None else None
    ws = await websockets.connect(
        f"{url.rstrip('/')}/{charger_id}",
        subprotocols=subprotocols if subprotocols is not None else ["ocpp2.0.1"],  # type: ignore[arg-type,list-item]
        additional_headers=headers,
        ssl=ssl_context,
        open_timeout=10,
    )
    charger = SimCharger201(charger_id, ws, config, response_timeout=response_timeout)
    task = asyncio.get_running_loop().create_task(_run(charger))
    return charger, ws, task


async def _run(charger: SimCharger201) -> None:
    with contextlib.suppress(websockets.ConnectionClosed, asyncio.CancelledError):
        await charger.start()
