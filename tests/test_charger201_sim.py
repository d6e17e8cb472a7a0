"""The OCPP 2.0.1 simulated station against a tiny CSMS written with the ``ocpp`` library.

The CSMS here is independent of Cariflex: it answers what the station sends, records it
(snake_case payloads, as the library hands them to handlers) and sends the CSMS commands.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ocpp.routing import on
from ocpp.v201 import ChargePoint, call, call_result
from ocpp.v201.enums import Action
import pytest
import websockets
from websockets.asyncio.server import ServerConnection
from websockets.typing import Subprotocol

from simulator.charger16 import now_iso
from simulator.charger201 import (
    READ_ONLY,
    SimCharger201,
    SimConfig201,
    connect201,
)
from tests.conftest import free_port, wait_for

REFUSED = "BLOCKED"  # the tiny CSMS refuses this idToken


class Csms(ChargePoint):  # type: ignore[misc]
    """Answers every station-initiated message of 2.0.1 and records it."""

    def __init__(self, charger_id: str, connection: Any) -> None:
        super().__init__(charger_id, connection, response_timeout=5)
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.authorization: str | None = None
        self.subprotocol: str | None = None

    def got(self, action: str, payload: dict[str, Any]) -> None:
        self.received.append((action, payload))

    def of(self, action: str) -> list[dict[str, Any]]:
        """Payloads received for ``action``, oldest first."""
        return [payload for name, payload in self.received if name == action]

    async def send(self, payload: Any) -> Any:
        return await self.call(payload, suppress=False)

    @on(Action.boot_notification)
    def on_boot_notification(self, **kwargs: Any) -> Any:
        self.got("BootNotification", kwargs)
        return call_result.BootNotification(current_time=now_iso(), interval=120, status="Accepted")

    @on(Action.heartbeat)
    def on_heartbeat(self, **kwargs: Any) -> Any:
        self.got("Heartbeat", kwargs)
        return call_result.Heartbeat(current_time=now_iso())

    @on(Action.status_notification)
    def on_status_notification(self, **kwargs: Any) -> Any:
        self.got("StatusNotification", kwargs)
        return call_result.StatusNotification()

    @on(Action.authorize)
    def on_authorize(self, **kwargs: Any) -> Any:
        self.got("Authorize", kwargs)
        status = "Blocked" if kwargs["id_token"]["id_token"] == REFUSED else "Accepted"
        return call_result.Authorize(id_token_info={"status": status})

    @on(Action.transaction_event)
    def on_transaction_event(self, **kwargs: Any) -> Any:
        self.got("TransactionEvent", kwargs)
        token = (kwargs.get("id_token") or {}).get("id_token")
        if token is None:
            return call_result.TransactionEvent()
        return call_result.TransactionEvent(id_token_info={"status": "Blocked" if token == REFUSED else "Accepted"})

    @on(Action.meter_values)
    def on_meter_values(self, **kwargs: Any) -> Any:
        self.got("MeterValues", kwargs)
        return call_result.MeterValues()

    @on(Action.notify_report)
    def on_notify_report(self, **kwargs: Any) -> Any:
        self.got("NotifyReport", kwargs)
        return call_result.NotifyReport()

    @on(Action.notify_event)
    def on_notify_event(self, **kwargs: Any) -> Any:
        self.got("NotifyEvent", kwargs)
        return call_result.NotifyEvent()

    @on(Action.security_event_notification)
    def on_security_event_notification(self, **kwargs: Any) -> Any:
        self.got("SecurityEventNotification", kwargs)
        return call_result.SecurityEventNotification()

    @on(Action.firmware_status_notification)
    def on_firmware_status_notification(self, **kwargs: Any) -> Any:
        self.got("FirmwareStatusNotification", kwargs)
        return call_result.FirmwareStatusNotification()

    @on(Action.log_status_notification)
    def on_log_status_notification(self, **kwargs: Any) -> Any:
        self.got("LogStatusNotification", kwargs)
        return call_result.LogStatusNotification()

    @on(Action.notify_charging_limit)
    def on_notify_charging_limit(self, **kwargs: Any) -> Any:
        self.got("NotifyChargingLimit", kwargs)
        return call_result.NotifyChargingLimit()

    @on(Action.cleared_charging_limit)
    def on_cleared_charging_limit(self, **kwargs: Any) -> Any:
        self.got("ClearedChargingLimit", kwargs)
        return call_result.ClearedChargingLimit()

    @on(Action.reservation_status_update)
    def on_reservation_status_update(self, **kwargs: Any) -> Any:
        self.got("ReservationStatusUpdate", kwargs)
        return call_result.ReservationStatusUpdate()

    @on(Action.data_transfer)
    def on_data_transfer(self, **kwargs: Any) -> Any:
        self.got("DataTransfer", kwargs)
        return call_result.DataTransfer(status="Accepted", data={"echo": kwargs.get("data")})

    @on(Action.report_charging_profiles)
    def on_report_charging_profiles(self, **kwargs: Any) -> Any:
        self.got("ReportChargingProfiles", kwargs)
        return call_result.ReportChargingProfiles()

    @on(Action.notify_customer_information)
    def on_notify_customer_information(self, **kwargs: Any) -> Any:
        self.got("NotifyCustomerInformation", kwargs)
        return call_result.NotifyCustomerInformation()

    @on(Action.notify_display_messages)
    def on_notify_display_messages(self, **kwargs: Any) -> Any:
        self.got("NotifyDisplayMessages", kwargs)
        return call_result.NotifyDisplayMessages()

    @on(Action.notify_monitoring_report)
    def on_notify_monitoring_report(self, **kwargs: Any) -> Any:
        self.got("NotifyMonitoringReport", kwargs)
        return call_result.NotifyMonitoringReport()


@dataclass
class Link:
    """A station connected to the tiny CSMS."""

    cs: SimCharger201
    csms: Csms


Connector = Callable[..., Awaitable[Link]]


@pytest.fixture
async def link_factory(socket_enabled: None) -> AsyncIterator[Connector]:
    """Start a tiny CSMS on a free port; the factory connects a station to it."""
    port = free_port()
    arrivals: asyncio.Queue[Csms] = asyncio.Queue()

    async def handler(ws: ServerConnection) -> None:
        assert ws.request is not None
        csms = Csms(ws.request.path.strip("/"), ws)
        csms.authorization = ws.request.headers.get("Authorization")
        csms.subprotocol = ws.subprotocol
        await arrivals.put(csms)
        with contextlib.suppress(websockets.ConnectionClosed):
            await csms.start()

    server = await websockets.serve(
        handler, "127.0.0.1", port, subprotocols=[Subprotocol("ocpp2.0.1"), Subprotocol("ocpp1.6")]
    )
    opened: list[tuple[SimCharger201, Any, asyncio.Task[None]]] = []

    async def connect(charger_id: str = "CS201", **kwargs: Any) -> Link:
        cs, ws, task = await connect201(f"ws://127.0.0.1:{port}", charger_id, response_timeout=5, **kwargs)
        opened.append((cs, ws, task))
        return Link(cs, await asyncio.wait_for(arrivals.get(), 5))

    yield connect
    for cs, ws, task in opened:
        await cs.stop_tasks()
        task.cancel()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await task
        await ws.close()
    server.close()
    await server.wait_closed()


@pytest.fixture
async def link(link_factory: Connector) -> Link:
    """One station "CS201" (one EVSE), connected and booted."""
    connected = await link_factory()
    await connected.cs.boot()
    return connected


def profile(
    profile_id: int, purpose: str, limit: float, *, unit: str = "A", stack_level: int = 1, periods: int = 1
) -> dict[str, Any]:
    """A ChargingProfileType (snake_case, as the ocpp library sends it)."""
    return {
        "id": profile_id,
        "stack_level": stack_level,
        "charging_profile_purpose": purpose,
        "charging_profile_kind": "Relative",
        "charging_schedule": [
            {
                "id": 1,
                "charging_rate_unit": unit,
                "charging_schedule_period": [{"start_period": 60 * n, "limit": limit} for n in range(periods)],
            }
        ],
    }


def last_status(csms: Csms) -> str | None:
    """connectorStatus of the last StatusNotification the CSMS received."""
    statuses = csms.of("StatusNotification")
    return str(statuses[-1]["connector_status"]) if statuses else None


def samples(event: dict[str, Any]) -> dict[tuple[str, str | None], float]:
    """(measurand, phase) -> value of the event's first meter value."""
    return {(item["measurand"], item.get("phase")): item["value"] for item in event["meter_value"][0]["sampled_value"]}


async def test_boot_heartbeat_status_and_subprotocol(link_factory: Connector) -> None:
    link = await link_factory("CS-BOOT", password="secret")
    assert link.csms.subprotocol == "ocpp2.0.1"
    assert link.csms.authorization == "Basic Q1MtQk9PVDpzZWNyZXQ="
    result = await link.cs.boot()
    assert result.status == "Accepted"
    boot = link.csms.of("BootNotification")[0]
    assert boot["reason"] == "PowerUp"
    assert boot["charging_station"] == {
        "model": "SimCharger201",
        "vendor_name": "Cariflex",
        "serial_number": "SIM201-0001",
        "firmware_version": "1.0.0",
    }
    # The interval the CSMS gave becomes the HeartbeatInterval of the device model.
    assert link.cs.get_variable("OCPPCommCtrlr", "HeartbeatInterval") == "120"
    assert link.cs.get_variable("SecurityCtrlr", "Identity") == "CS-BOOT"
    assert (await link.cs.heartbeat()).current_time
    await link.cs.status(1, "Faulted")
    status = link.csms.of("StatusNotification")[-1]
    assert {k: v for k, v in status.items() if k != "timestamp"} == {
        "connector_status": "Faulted",
        "evse_id": 1,
        "connector_id": 1,
    }
    assert link.cs.evses[1].connector_status == "Faulted"


async def test_transaction_seq_no_and_meter_values(link: Link) -> None:
    cs, csms = link.cs, link.csms
    assert (await cs.authorize("TAG1")).id_token_info["status"] == "Accepted"
    assert (await cs.transaction_started(1, "TAG1")).id_token_info["status"] == "Accepted"
    transaction_id = cs.evses[1].transaction_id
    assert transaction_id is not None
    assert len(transaction_id) == 36
    await cs.transaction_updated(1, 3600)
    await cs.transaction_updated(1, 1800)
    await cs.transaction_ended(1)
    events = csms.of("TransactionEvent")
    assert [e["event_type"] for e in events] == ["Started", "Updated", "Updated", "Ended"]
    assert [e["seq_no"] for e in events] == [0, 1, 2, 3]
    assert {e["transaction_info"]["transaction_id"] for e in events} == {transaction_id}
    started, updated, _, ended = events
    assert started["trigger_reason"] == "Authorized"
    assert started["id_token"] == {"id_token": "TAG1", "type": "ISO14443"}
    assert started["evse"] == {"id": 1, "connector_id": 1}
    assert started["meter_value"][0]["sampled_value"] == [
        {
            "value": 0.0,
            "context": "Transaction.Begin",
            "measurand": "Energy.Active.Import.Register",
            "unit_of_measure": {"unit": "Wh"},
        }
    ]
    # 7.4 kW (the session power) for one hour, three phases at 230 V.
    values = samples(updated)
    assert values[("Energy.Active.Import.Register", None)] == 7400.0
    assert values[("Power.Active.Import", None)] == 7400.0
    assert values[("Current.Import", "L1")] == values[("Current.Import", "L3")] == 10.72
    assert values[("Voltage", "L1-N")] == 230.0
    assert {s["context"] for s in updated["meter_value"][0]["sampled_value"]} == {"Sample.Periodic"}
    assert updated["transaction_info"]["charging_state"] == "Charging"
    assert ended["transaction_info"]["stopped_reason"] == "Local"
    assert ended["trigger_reason"] == "StopAuthorized"
    assert ended["meter_value"][0]["sampled_value"][0]["value"] == 11100.0
    assert ended["meter_value"][0]["sampled_value"][0]["context"] == "Transaction.End"
    assert cs.evses[1].transaction_id is None
    assert cs.evses[1].power_w == 0.0
    # A new transaction: a new id and seqNo from 0 again.
    await cs.transaction_started(1, None, "CablePluggedIn", offline=True, reservation_id=None)
    again = csms.of("TransactionEvent")[-1]
    assert again["seq_no"] == 0
    assert again["offline"] is True
    assert "id_token" not in again
    assert again["transaction_info"]["transaction_id"] != transaction_id
    await cs.meter_values(1, 60, context="Sample.Clock")
    meter = csms.of("MeterValues")[-1]
    assert meter["evse_id"] == 1
    assert samples(meter)[("Energy.Active.Import.Register", None)] == pytest.approx(11223.3)
    await cs.transaction_ended(1, "EVDisconnected", "EVDeparted")
    last = csms.of("TransactionEvent")[-1]
    assert (last["seq_no"], last["transaction_info"]["charging_state"]) == (1, "Idle")
    assert "id_token" not in last
    with pytest.raises(ValueError, match="no transaction"):
        await cs.transaction_updated(1, 0)
    with pytest.raises(ValueError, match="no transaction"):
        await cs.transaction_ended(1)


async def test_offline_queue_replay_in_order_and_duplicated(link: Link) -> None:
    cs, csms = link.cs, link.csms
    await cs.transaction_started(1, "TAG1")
    transaction_id = cs.evses[1].transaction_id
    cs.queue_offline = True
    assert await cs.transaction_updated(1, 600) is None
    assert await cs.transaction_updated(1, 600) is None
    assert await cs.transaction_ended(1, "EVDisconnected", "EVDeparted") is None
    assert len(csms.of("TransactionEvent")) == 1
    assert [p.seq_no for p in cs.offline_queue] == [1, 2, 3]
    assert all(p.offline for p in cs.offline_queue)
    status = await csms.send(call.GetTransactionStatus(transaction_id=transaction_id))
    assert (status.messages_in_queue, status.ongoing_indicator) == (True, False)
    results = await cs.replay_offline_queue(duplicate=True)
    assert len(results) == 6
    assert cs.offline_queue == []
    assert cs.queue_offline is False
    replayed = csms.of("TransactionEvent")[1:]
    assert [(e["event_type"], e["seq_no"]) for e in replayed] == [
        ("Updated", 1),
        ("Updated", 1),
        ("Updated", 2),
        ("Updated", 2),
        ("Ended", 3),
        ("Ended", 3),
    ]
    assert all(e["offline"] is True for e in replayed)
    assert {e["transaction_info"]["transaction_id"] for e in replayed} == {transaction_id}
    status = await csms.send(call.GetTransactionStatus())
    assert status.messages_in_queue is False
    assert status.ongoing_indicator is None
    # Without duplicates: each queued event once.
    cs.queue_offline = True
    await cs.transaction_started(1, "TAG2")
    assert len(await cs.replay_offline_queue()) == 1
    assert csms.of("TransactionEvent")[-1]["seq_no"] == 0


async def test_get_base_report_sends_notify_report_in_parts(link: Link) -> None:
    cs, csms = link.cs, link.csms
    result = await csms.send(call.GetBaseReport(request_id=7, report_base="FullInventory"))
    assert result.status == "Accepted"
    await wait_for(lambda: any(r["tbc"] is False for r in csms.of("NotifyReport")))
    reports = csms.of("NotifyReport")
    total = len(cs.config.device_model)
    assert total > 20
    assert [r["seq_no"] for r in reports] == list(range((total + 9) // 10))
    assert [r["tbc"] for r in reports] == [True] * (len(reports) - 1) + [False]
    assert {r["request_id"] for r in reports} == {7}
    data = [item for r in reports for item in r["report_data"]]
    assert len(data) == total
    assert all(len(r["report_data"]) <= 10 for r in reports)
    by_name = {(d["component"]["name"], d["variable"]["name"]): d for d in data}
    assert by_name[("SecurityCtrlr", "Identity")]["variable_attribute"] == [
        {"type": "Actual", "value": "CS201", "mutability": "ReadWrite"}
    ]
    assert "value" not in by_name[("SecurityCtrlr", "BasicAuthPassword")]["variable_attribute"][0]
    power = by_name[("EVSE", "Power")]
    assert power["component"]["evse"] == {"id": 1}
    assert power["variable_characteristics"]["max_limit"] == 22080.0
    assert by_name[("Connector", "AvailabilityState")]["component"]["evse"] == {"id": 1, "connector_id": 1}
    assert by_name[("SmartChargingCtrlr", "RateUnit")]["variable_characteristics"]["data_type"] == "MemberList"
    assert by_name[("SmartChargingCtrlr", "Enabled")]["variable_characteristics"]["data_type"] == "boolean"
    assert by_name[("OCPPCommCtrlr", "HeartbeatInterval")]["variable_characteristics"]["data_type"] == "integer"
    assert by_name[("SampledDataCtrlr", "TxUpdatedMeasurands")]["variable_characteristics"]["data_type"] == "string"

    csms.received.clear()
    assert (
        await csms.send(call.GetBaseReport(request_id=8, report_base="ConfigurationInventory"))
    ).status == "Accepted"
    await wait_for(lambda: any(r["tbc"] is False for r in csms.of("NotifyReport")))
    config = [item for r in csms.of("NotifyReport") for item in r["report_data"]]
    assert config
    assert all(item["variable_attribute"][0]["mutability"] != READ_ONLY for item in config)

    csms.received.clear()
    assert (await csms.send(call.GetBaseReport(request_id=9, report_base="SummaryInventory"))).status == "Accepted"
    await wait_for(lambda: bool(csms.of("NotifyReport")))
    summary = csms.of("NotifyReport")[0]["report_data"]
    assert {item["variable"]["name"] for item in summary} == {"AvailabilityState"}

    cs.responses["GetBaseReport"] = "NotSupported"
    assert (await csms.send(call.GetBaseReport(request_id=10, report_base="FullInventory"))).status == "NotSupported"
    assert cs.received[-1] == ("GetBaseReport", {"requestId": 10, "reportBase": "FullInventory"})


async def test_get_report_filters(link: Link) -> None:
    csms = link.csms
    result = await csms.send(
        call.GetReport(request_id=3, component_variable=[{"component": {"name": "SmartChargingCtrlr"}}])
    )
    assert result.status == "Accepted"
    await wait_for(lambda: bool(csms.of("NotifyReport")))
    report = csms.of("NotifyReport")[0]
    assert report["tbc"] is False
    assert {item["variable"]["name"] for item in report["report_data"]} == {
        "Enabled",
        "RateUnit",
        "ProfileStackLevel",
        "PeriodsPerSchedule",
    }
    csms.received.clear()
    result = await csms.send(
        call.GetReport(
            request_id=4,
            component_variable=[
                {
                    "component": {"name": "DeviceDataCtrlr"},
                    "variable": {"name": "ItemsPerMessage", "instance": "GetReport"},
                },
                {"component": {"name": "EVSE", "evse": {"id": 1}}, "variable": {"name": "Power"}},
            ],
        )
    )
    assert result.status == "Accepted"
    await wait_for(lambda: bool(csms.of("NotifyReport")))
    items = csms.of("NotifyReport")[0]["report_data"]
    assert [(i["component"]["name"], i["variable"].get("instance")) for i in items] == [
        ("DeviceDataCtrlr", "GetReport"),
        ("EVSE", None),
    ]
    csms.received.clear()
    result = await csms.send(call.GetReport(request_id=5, component_criteria=["Enabled"]))
    assert result.status == "Accepted"
    await wait_for(lambda: any(r["tbc"] is False for r in csms.of("NotifyReport")))
    names = {i["component"]["name"] for r in csms.of("NotifyReport") for i in r["report_data"]}
    assert names == {"SmartChargingCtrlr", "AuthCtrlr", "LocalAuthListCtrlr", "ReservationCtrlr"}
    csms.received.clear()
    result = await csms.send(call.GetReport(request_id=6, component_criteria=["Available"]))
    assert result.status == "Accepted"
    await wait_for(lambda: any(r["tbc"] is False for r in csms.of("NotifyReport")))
    names = {i["component"]["name"] for r in csms.of("NotifyReport") for i in r["report_data"]}
    assert names == {"ChargingStation", "EVSE", "Connector"}
    csms.received.clear()
    for unknown in (
        call.GetReport(request_id=7, component_variable=[{"component": {"name": "Nope"}}]),
        call.GetReport(request_id=8, component_criteria=["Problem"]),
        call.GetReport(request_id=9, component_variable=[{"component": {"name": "DeviceDataCtrlr", "instance": "x"}}]),
        call.GetReport(request_id=10, component_variable=[{"component": {"name": "EVSE", "evse": {"id": 2}}}]),
    ):
        assert (await csms.send(unknown)).status == "EmptyResultSet"
    await asyncio.sleep(0.05)
    assert csms.of("NotifyReport") == []


async def test_get_and_set_variables(link: Link) -> None:
    cs, csms = link.cs, link.csms

    def item(component: str, variable: str, **extra: Any) -> dict[str, Any]:
        return {"component": {"name": component}, "variable": {"name": variable}, **extra}

    result = await csms.send(
        call.GetVariables(
            get_variable_data=[
                item("OCPPCommCtrlr", "HeartbeatInterval"),
                {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "MessageTimeout", "instance": "Default"}},
                {"component": {"name": "EVSE", "evse": {"id": 1}}, "variable": {"name": "AvailabilityState"}},
                item("ChargingStation", "AvailabilityState"),
                item("OCPPCommCtrlr", "Nope"),
                item("NoSuchCtrlr", "Enabled"),
                item("SecurityCtrlr", "BasicAuthPassword"),
                item("OCPPCommCtrlr", "HeartbeatInterval", attribute_type="Target"),
            ]
        )
    )
    answers = [(r["attribute_status"], r.get("attribute_value")) for r in result.get_variable_result]
    assert answers == [
        ("Accepted", "120"),
        ("Accepted", "30"),
        ("Accepted", "Available"),
        ("Accepted", "Available"),
        ("UnknownVariable", None),
        ("UnknownComponent", None),
        ("Rejected", None),
        ("NotSupportedAttributeType", None),
    ]
    result = await csms.send(
        call.SetVariables(
            set_variable_data=[
                item("OCPPCommCtrlr", "HeartbeatInterval", attribute_value="60"),
                item("SampledDataCtrlr", "TxUpdatedInterval", attribute_value="5"),
                item("SecurityCtrlr", "SecurityProfile", attribute_value="2"),
                item("SecurityCtrlr", "BasicAuthPassword", attribute_value="0123456789abcdef"),
                item("AuthCtrlr", "Enabled", attribute_value="maybe"),
                item("OCPPCommCtrlr", "HeartbeatInterval", attribute_value="soon"),
                item("OCPPCommCtrlr", "Nope", attribute_value="1"),
                item("OCPPCommCtrlr", "HeartbeatInterval", attribute_value="1", attribute_type="MaxSet"),
            ]
        )
    )
    statuses = [(r["attribute_status"], r.get("attribute_status_info")) for r in result.set_variable_result]
    assert statuses == [
        ("Accepted", None),
        ("Accepted", None),
        ("Rejected", {"reason_code": "ReadOnly"}),
        ("Accepted", None),
        ("Rejected", {"reason_code": "InvalidValue"}),
        ("Rejected", {"reason_code": "InvalidValue"}),
        ("UnknownVariable", None),
        ("NotSupportedAttributeType", None),
    ]
    assert cs.get_variable("OCPPCommCtrlr", "HeartbeatInterval") == "60"
    assert cs.get_variable("SecurityCtrlr", "SecurityProfile") == "1"
    assert cs.get_variable("SecurityCtrlr", "BasicAuthPassword") == "0123456789abcdef"
    assert cs.get_variable("OCPPCommCtrlr", "Nope") is None
    assert cs.meter_interval == 5.0
    assert cs.received[-1][0] == "SetVariables"
    assert cs.received[-1][1]["setVariableData"][0] == {
        "attributeValue": "60",
        "component": {"name": "OCPPCommCtrlr"},
        "variable": {"name": "HeartbeatInterval"},
    }
    # Overrides: every item gets the forced status.
    cs.responses["GetVariables"] = "Rejected"
    cs.responses["SetVariables"] = "RebootRequired"
    result = await csms.send(call.GetVariables(get_variable_data=[item("OCPPCommCtrlr", "HeartbeatInterval")]))
    assert result.get_variable_result[0]["attribute_status"] == "Rejected"
    assert "attribute_value" not in result.get_variable_result[0]
    result = await csms.send(
        call.SetVariables(set_variable_data=[item("OCPPCommCtrlr", "HeartbeatInterval", attribute_value="90")])
    )
    assert result.set_variable_result[0]["attribute_status"] == "RebootRequired"
    assert cs.get_variable("OCPPCommCtrlr", "HeartbeatInterval") == "60"
    cs.set_variable("Custom", "Knob", "7", evse_id=1, mutability=READ_ONLY)
    assert cs.get_variable("Custom", "Knob", evse_id=1) == "7"
    assert cs.config.device_model[("Custom", None, 1, "Knob", None)] == ("7", READ_ONLY)


async def test_config_device_model_entries_win() -> None:
    config = SimConfig201(
        evses=2, device_model={("SmartChargingCtrlr", None, None, "Enabled", None): ("false", "ReadWrite")}
    )
    assert config.device_model[("SmartChargingCtrlr", None, None, "Enabled", None)] == ("false", "ReadWrite")
    assert ("EVSE", None, 2, "Power", None) in config.device_model
    cs = SimCharger201("CS-X", None, config)
    assert sorted(cs.evses) == [1, 2]
    assert cs.get_variable("SecurityCtrlr", "Identity") == "CS-X"


async def test_remote_start_with_profile_then_remote_stop(link: Link) -> None:
    cs, csms = link.cs, link.csms
    cs.meter_interval = 0.05
    result = await csms.send(
        call.RequestStartTransaction(
            id_token={"id_token": "APP1", "type": "Central"},
            remote_start_id=42,
            evse_id=1,
            charging_profile=profile(5, "TxProfile", 6),
        )
    )
    assert result.status == "Accepted"
    await wait_for(lambda: len(csms.of("TransactionEvent")) >= 3)
    started = csms.of("TransactionEvent")[0]
    assert started["trigger_reason"] == "RemoteStart"
    assert started["transaction_info"]["remote_start_id"] == 42
    assert started["id_token"] == {"id_token": "APP1", "type": "Central"}
    assert csms.of("StatusNotification")[0]["connector_status"] == "Occupied"
    evse = cs.evses[1]
    transaction_id = evse.transaction_id
    assert transaction_id is not None
    assert evse.limit_a == 6.0
    assert evse.power_w == 6 * 230 * 3
    assert samples(csms.of("TransactionEvent")[-1])[("Power.Active.Import", None)] == 4140.0
    status = await csms.send(call.GetTransactionStatus(transaction_id=transaction_id))
    assert (status.messages_in_queue, status.ongoing_indicator) == (False, True)
    # A second start on the busy EVSE is refused; stopping an unknown transaction too.
    busy = await csms.send(
        call.RequestStartTransaction(id_token={"id_token": "APP2", "type": "Central"}, remote_start_id=43, evse_id=1)
    )
    assert busy.status == "Rejected"
    assert (await csms.send(call.RequestStopTransaction(transaction_id="nope"))).status == "Rejected"
    result = await csms.send(call.RequestStopTransaction(transaction_id=transaction_id))
    assert result.status == "Accepted"
    await wait_for(lambda: csms.of("TransactionEvent")[-1]["event_type"] == "Ended")
    ended = csms.of("TransactionEvent")[-1]
    assert (ended["trigger_reason"], ended["transaction_info"]["stopped_reason"]) == ("RemoteStop", "Remote")
    seq = [e["seq_no"] for e in csms.of("TransactionEvent")]
    assert seq == list(range(len(seq)))
    await wait_for(lambda: last_status(csms) == "Available")
    # The TxProfile ended with its transaction.
    assert cs.charging_profiles == {}
    assert evse.limit_a is None
    action, request = cs.received[0]
    assert action == "RequestStartTransaction"
    assert (request["remoteStartId"], request["evseId"]) == (42, 1)
    assert request["idToken"] == {"idToken": "APP1", "type": "Central"}
    assert request["chargingProfile"]["chargingSchedule"][0]["chargingRateUnit"] == "A"


async def test_remote_start_refusals(link: Link) -> None:
    cs, csms = link.cs, link.csms
    cs.meter_interval = 0.05
    # The CSMS refuses the token in TransactionEvent: the station ends the transaction (Deauthorized).
    result = await csms.send(
        call.RequestStartTransaction(id_token={"id_token": REFUSED, "type": "ISO14443"}, remote_start_id=1)
    )
    assert result.status == "Accepted"
    await wait_for(lambda: any(e["event_type"] == "Ended" for e in csms.of("TransactionEvent")))
    ended = csms.of("TransactionEvent")[-1]
    assert (ended["trigger_reason"], ended["transaction_info"]["stopped_reason"]) == ("Deauthorized", "DeAuthorized")
    await wait_for(lambda: last_status(csms) == "Available")
    # With AuthorizeRemoteStart the station asks first and does not start at all.
    csms.received.clear()
    cs.set_variable("AuthCtrlr", "AuthorizeRemoteStart", "true")
    result = await csms.send(
        call.RequestStartTransaction(id_token={"id_token": REFUSED, "type": "ISO14443"}, remote_start_id=2)
    )
    assert result.status == "Accepted"
    await wait_for(lambda: bool(csms.of("Authorize")))
    await asyncio.sleep(0.05)
    assert csms.of("TransactionEvent") == []
    # An accepted token after Authorize starts the session.
    result = await csms.send(
        call.RequestStartTransaction(id_token={"id_token": "OK", "type": "Central"}, remote_start_id=3)
    )
    await wait_for(lambda: bool(csms.of("TransactionEvent")))
    assert cs.evses[1].transaction_id is not None
    await cs.stop_tasks()
    await cs.end_session(1)
    # Overrides and auto_session.
    cs.responses["RequestStartTransaction"] = "Rejected"
    refused = await csms.send(
        call.RequestStartTransaction(id_token={"id_token": "X", "type": "Central"}, remote_start_id=4)
    )
    assert refused.status == "Rejected"
    del cs.responses["RequestStartTransaction"]
    cs.auto_session = False
    csms.received.clear()
    accepted = await csms.send(
        call.RequestStartTransaction(id_token={"id_token": "X", "type": "Central"}, remote_start_id=5)
    )
    assert accepted.status == "Accepted"
    await asyncio.sleep(0.05)
    assert csms.of("TransactionEvent") == []
    assert cs.evses[1].transaction_id is None
    # An unavailable EVSE cannot start.
    cs.evses[1].connector_status = "Unavailable"
    assert (
        await csms.send(call.RequestStartTransaction(id_token={"id_token": "X", "type": "Central"}, remote_start_id=6))
    ).status == "Rejected"


async def test_run_session_counts_updates(link: Link) -> None:
    cs, csms = link.cs, link.csms
    cs.meter_interval = 0.01
    await cs.run_session(1, "TAG1", power_w=3000, count=2)
    events = csms.of("TransactionEvent")
    assert [e["event_type"] for e in events] == ["Started", "Updated", "Updated"]
    assert samples(events[-1])[("Power.Active.Import", None)] == 3000.0
    assert cs.evses[1].energy_wh == pytest.approx(3000 * 0.02 / 3600)
    await cs.transaction_updated(1, 0, charging_state="SuspendedEV")
    assert cs.evses[1].power_w == 0.0
    await cs.transaction_updated(1, 0, "ChargingStateChanged", power_w=2000)
    assert cs.evses[1].power_w == 2000.0
    await cs.end_session(1, "EVDisconnected", "EVDeparted")
    assert last_status(csms) == "Available"
    # A limit set by hand (no profile) holds for the next transaction.
    cs.evses[1].limit_a = 2
    await cs.transaction_started(1, "TAG2")
    assert cs.evses[1].power_w == 2 * 230 * 3


async def test_smart_charging(link: Link) -> None:
    cs, csms = link.cs, link.csms
    evse = cs.evses[1]

    async def set_profile(evse_id: int, body: dict[str, Any]) -> str:
        result = await csms.send(call.SetChargingProfile(evse_id=evse_id, charging_profile=body))
        return str(result.status)

    assert await set_profile(0, profile(1, "TxDefaultProfile", 6900, unit="W")) == "Accepted"
    assert evse.limit_a == pytest.approx(10.0)
    schedule = await csms.send(call.GetCompositeSchedule(duration=3600, evse_id=1))
    assert schedule.status == "Accepted"
    assert schedule.schedule["charging_rate_unit"] == "A"
    assert schedule.schedule["charging_schedule_period"] == [{"start_period": 0, "limit": 10.0}]
    in_watts = await csms.send(call.GetCompositeSchedule(duration=60, evse_id=1, charging_rate_unit="W"))
    assert in_watts.schedule["charging_schedule_period"][0]["limit"] == 6900.0
    station = await csms.send(call.GetCompositeSchedule(duration=60, evse_id=0))
    assert station.schedule["charging_schedule_period"][0]["limit"] == 32.0
    assert (await csms.send(call.GetCompositeSchedule(duration=60, evse_id=5))).status == "Rejected"
    # Rejections: max profile on an EVSE, TxProfile without transaction, stack level, periods, unknown EVSE.
    assert await set_profile(1, profile(2, "ChargingStationMaxProfile", 16)) == "Rejected"
    assert await set_profile(1, profile(3, "TxProfile", 16)) == "Rejected"
    assert await set_profile(1, profile(4, "TxDefaultProfile", 16, stack_level=9)) == "Rejected"
    assert await set_profile(1, profile(4, "TxDefaultProfile", 16, periods=25)) == "Rejected"
    assert await set_profile(3, profile(4, "TxDefaultProfile", 16)) == "Rejected"
    # A station maximum caps the default profile.
    assert await set_profile(0, profile(6, "ChargingStationMaxProfile", 8)) == "Accepted"
    assert evse.limit_a == 8.0
    # A higher stack level on the EVSE wins over the station-wide default; same level replaces.
    assert await set_profile(1, profile(7, "TxDefaultProfile", 4, stack_level=2)) == "Accepted"
    assert evse.limit_a == 4.0
    assert await set_profile(1, profile(8, "TxDefaultProfile", 5, stack_level=2)) == "Accepted"
    assert sorted(cs.charging_profiles) == [1, 6, 8]
    assert evse.limit_a == 5.0
    # During a transaction a TxProfile applies and lowers the power at once.
    await cs.transaction_started(1, "TAG1")
    assert evse.power_w == 5 * 230 * 3
    assert await set_profile(1, {**profile(9, "TxProfile", 3), "transaction_id": "another"}) == "Rejected"
    assert await set_profile(1, profile(9, "TxProfile", 3)) == "Accepted"
    assert evse.limit_a == 3.0
    assert evse.power_w == 3 * 230 * 3
    assert cs.charging_profiles[9][1]["transaction_id"] == evse.transaction_id
    # GetChargingProfiles: ReportChargingProfiles per EVSE, tbc on all but the last.
    result = await csms.send(call.GetChargingProfiles(request_id=11, charging_profile={}))
    assert result.status == "Accepted"
    await wait_for(lambda: any(r["tbc"] is False for r in csms.of("ReportChargingProfiles")))
    reports = csms.of("ReportChargingProfiles")
    assert [(r["evse_id"], r["tbc"]) for r in reports] == [(0, True), (1, False)]
    assert {p["id"] for p in reports[1]["charging_profile"]} == {8, 9}
    assert reports[0]["charging_limit_source"] == "CSO"
    csms.received.clear()
    result = await csms.send(
        call.GetChargingProfiles(
            request_id=12,
            evse_id=1,
            charging_profile={"charging_profile_purpose": "TxDefaultProfile", "stack_level": 2},
        )
    )
    assert result.status == "Accepted"
    await wait_for(lambda: bool(csms.of("ReportChargingProfiles")))
    assert [p["id"] for p in csms.of("ReportChargingProfiles")[0]["charging_profile"]] == [8]
    for criterion in ({"charging_profile_id": [99]}, {"charging_limit_source": ["EMS"]}):
        answer = await csms.send(call.GetChargingProfiles(request_id=13, charging_profile=criterion))
        assert answer.status == "NoProfiles"
    # ClearChargingProfile by id, by criteria, unknown.
    assert (await csms.send(call.ClearChargingProfile(charging_profile_id=9))).status == "Accepted"
    assert evse.limit_a == 5.0
    cleared = await csms.send(
        call.ClearChargingProfile(
            charging_profile_criteria={"evse_id": 1, "charging_profile_purpose": "TxDefaultProfile", "stack_level": 2}
        )
    )
    assert cleared.status == "Accepted"
    assert sorted(cs.charging_profiles) == [1, 6]
    assert (await csms.send(call.ClearChargingProfile(charging_profile_id=99))).status == "Unknown"
    assert (
        await csms.send(call.ClearChargingProfile(charging_profile_criteria={"charging_profile_purpose": "TxProfile"}))
    ).status == "Unknown"
    assert (await csms.send(call.ClearChargingProfile())).status == "Accepted"
    assert cs.charging_profiles == {}
    assert evse.limit_a is None
    # Smart charging disabled, or a rate unit the station does not support.
    cs.set_variable("SmartChargingCtrlr", "RateUnit", "A")
    assert await set_profile(0, profile(1, "TxDefaultProfile", 6900, unit="W")) == "Rejected"
    cs.set_variable("SmartChargingCtrlr", "Enabled", "false")
    assert await set_profile(0, profile(1, "TxDefaultProfile", 16)) == "Rejected"
    cs.responses["SetChargingProfile"] = "Rejected"
    cs.set_variable("SmartChargingCtrlr", "Enabled", "true")
    assert await set_profile(0, profile(1, "TxDefaultProfile", 16)) == "Rejected"
    assert cs.charging_profiles == {}
    await cs.transaction_ended(1)


async def test_availability_unlock_and_reset(link: Link) -> None:
    cs, csms = link.cs, link.csms
    answer = await csms.send(call.ChangeAvailability(operational_status="Inoperative"))
    assert answer.status == "Accepted"
    await wait_for(lambda: bool(csms.of("StatusNotification")))
    assert last_status(csms) == "Unavailable"
    assert cs.get_variable("ChargingStation", "AvailabilityState") == "Unavailable"
    assert cs.get_variable("EVSE", "AvailabilityState", evse_id=1) == "Unavailable"
    answer = await csms.send(call.ChangeAvailability(operational_status="Operative", evse={"id": 1}))
    assert answer.status == "Accepted"
    await wait_for(lambda: last_status(csms) == "Available")
    assert (
        await csms.send(call.ChangeAvailability(operational_status="Operative", evse={"id": 9}))
    ).status == "Rejected"
    # Unlock.
    assert (await csms.send(call.UnlockConnector(evse_id=1, connector_id=1))).status == "Unlocked"
    assert (await csms.send(call.UnlockConnector(evse_id=1, connector_id=2))).status == "UnknownConnector"
    await cs.transaction_started(1, "TAG1")
    assert (await csms.send(call.UnlockConnector(evse_id=1, connector_id=1))).status == "OngoingAuthorizedTransaction"
    # Busy: availability and OnIdle reset are scheduled; Operative reports Occupied.
    answer = await csms.send(call.ChangeAvailability(operational_status="Inoperative", evse={"id": 1}))
    assert answer.status == "Scheduled"
    csms.received.clear()
    assert (await csms.send(call.ChangeAvailability(operational_status="Operative"))).status == "Accepted"
    await wait_for(lambda: bool(csms.of("StatusNotification")))
    assert last_status(csms) == "Occupied"
    assert (await csms.send(call.Reset(type="OnIdle"))).status == "Scheduled"
    assert (await csms.send(call.Reset(type="Immediate", evse_id=4))).status == "Rejected"
    # Immediate: ends the transaction, boots again, reports the connectors.
    csms.received.clear()
    assert (await csms.send(call.Reset(type="Immediate"))).status == "Accepted"
    await wait_for(lambda: bool(csms.of("StatusNotification")))
    ended = csms.of("TransactionEvent")[-1]
    assert (ended["trigger_reason"], ended["transaction_info"]["stopped_reason"]) == ("ResetCommand", "ImmediateReset")
    assert csms.of("BootNotification")[-1]["reason"] == "RemoteReset"
    assert last_status(csms) == "Available"
    assert [name for name, _ in csms.received] == ["TransactionEvent", "BootNotification", "StatusNotification"]
    # An EVSE reset: no boot.
    csms.received.clear()
    assert (await csms.send(call.Reset(type="OnIdle", evse_id=1))).status == "Accepted"
    await wait_for(lambda: bool(csms.of("StatusNotification")))
    assert csms.of("BootNotification") == []
    cs.responses["Reset"] = "Rejected"
    assert (await csms.send(call.Reset(type="Immediate"))).status == "Rejected"
    assert cs.received[-1] == ("Reset", {"type": "Immediate"})


async def test_trigger_message(link: Link) -> None:
    cs, csms = link.cs, link.csms

    async def trigger(message: str, evse_id: int | None = None) -> str:
        csms.received.clear()
        evse = {"id": evse_id} if evse_id is not None else None
        return str((await csms.send(call.TriggerMessage(requested_message=message, evse=evse))).status)

    assert await trigger("BootNotification") == "Accepted"
    await wait_for(lambda: bool(csms.of("BootNotification")))
    assert csms.of("BootNotification")[0]["reason"] == "Triggered"
    assert await trigger("Heartbeat") == "Accepted"
    await wait_for(lambda: bool(csms.of("Heartbeat")))
    assert await trigger("StatusNotification", 1) == "Accepted"
    await wait_for(lambda: bool(csms.of("StatusNotification")))
    assert await trigger("MeterValues") == "Accepted"
    await wait_for(lambda: bool(csms.of("MeterValues")))
    assert csms.of("MeterValues")[0]["meter_value"][0]["sampled_value"][0]["context"] == "Trigger"
    assert await trigger("FirmwareStatusNotification") == "Accepted"
    await wait_for(lambda: bool(csms.of("FirmwareStatusNotification")))
    assert csms.of("FirmwareStatusNotification")[0] == {"status": "Idle"}
    assert await trigger("LogStatusNotification") == "Accepted"
    await wait_for(lambda: bool(csms.of("LogStatusNotification")))
    assert await trigger("TransactionEvent") == "Rejected"
    assert await trigger("StatusNotification", 7) == "Rejected"
    assert await trigger("SignChargingStationCertificate") == "NotImplemented"
    await cs.transaction_started(1, "TAG1")
    assert await trigger("TransactionEvent", 1) == "Accepted"
    await wait_for(lambda: bool(csms.of("TransactionEvent")))
    event = csms.of("TransactionEvent")[0]
    assert (event["event_type"], event["trigger_reason"], event["seq_no"]) == ("Updated", "Trigger", 1)
    cs.responses["TriggerMessage"] = "Rejected"
    assert await trigger("Heartbeat") == "Rejected"
    await asyncio.sleep(0.05)
    assert csms.of("Heartbeat") == []


async def test_firmware_logs_local_list_and_reservations(link: Link) -> None:
    cs, csms = link.cs, link.csms
    result = await csms.send(
        call.UpdateFirmware(
            request_id=5,
            firmware={"location": "https://example.com/fw.bin", "retrieve_date_time": now_iso(), "signature": "c2ln"},
        )
    )
    assert result.status == "Accepted"
    await wait_for(lambda: any(f["status"] == "Installed" for f in csms.of("FirmwareStatusNotification")))
    steps = [(f["status"], f["request_id"]) for f in csms.of("FirmwareStatusNotification")]
    assert steps == [
        ("Downloading", 5),
        ("Downloaded", 5),
        ("SignatureVerified", 5),
        ("Installing", 5),
        ("Installed", 5),
    ]
    result = await csms.send(
        call.GetLog(log={"remote_location": "https://example.com/logs"}, log_type="SecurityLog", request_id=6)
    )
    assert (result.status, result.filename) == ("Accepted", "security.log")
    await wait_for(lambda: len(csms.of("LogStatusNotification")) == 2)
    assert [(s["status"], s["request_id"]) for s in csms.of("LogStatusNotification")] == [
        ("Uploading", 6),
        ("Uploaded", 6),
    ]
    cs.responses["GetLog"] = "Rejected"
    result = await csms.send(
        call.GetLog(log={"remote_location": "https://example.com/logs"}, log_type="DiagnosticsLog", request_id=7)
    )
    assert (result.status, result.filename) == ("Rejected", None)

    # Local authorization list.
    def entry(token: str, status: str | None = "Accepted") -> dict[str, Any]:
        data: dict[str, Any] = {"id_token": {"id_token": token, "type": "ISO14443"}}
        if status:
            data["id_token_info"] = {"status": status}
        return data

    full = call.SendLocalList(version_number=3, update_type="Full", local_authorization_list=[entry("A"), entry("B")])
    assert (await csms.send(full)).status == "Accepted"
    assert (await csms.send(call.GetLocalListVersion())).version_number == 3
    assert cs.get_variable("LocalAuthListCtrlr", "Entries") == "2"
    stale = call.SendLocalList(version_number=3, update_type="Differential", local_authorization_list=[entry("C")])
    assert (await csms.send(stale)).status == "VersionMismatch"
    diff = call.SendLocalList(
        version_number=4, update_type="Differential", local_authorization_list=[entry("A", None), entry("C", "Blocked")]
    )
    assert (await csms.send(diff)).status == "Accepted"
    assert sorted(cs.local_list) == ["B", "C"]
    cs.set_variable("LocalAuthListCtrlr", "Enabled", "false")
    assert (await csms.send(call.SendLocalList(version_number=5, update_type="Full"))).status == "Failed"

    # Customer information: report from the local list, then clear.
    result = await csms.send(
        call.CustomerInformation(request_id=8, report=True, clear=True, id_token={"id_token": "C", "type": "ISO14443"})
    )
    assert result.status == "Accepted"
    await wait_for(lambda: bool(csms.of("NotifyCustomerInformation")))
    info = csms.of("NotifyCustomerInformation")[0]
    assert (info["request_id"], info["seq_no"], info["tbc"]) == (8, 0, False)
    assert info["data"] == "idToken C: Blocked (local list)"
    assert sorted(cs.local_list) == ["B"]
    result = await csms.send(call.CustomerInformation(request_id=9, report=False, clear=True, customer_identifier="x"))
    assert result.status == "Accepted"
    await wait_for(lambda: len(csms.of("NotifyCustomerInformation")) == 2)
    assert csms.of("NotifyCustomerInformation")[1]["data"] == "Cleared"
    assert (await csms.send(call.CustomerInformation(request_id=10, report=True, clear=False))).status == "Invalid"

    # Reservations.
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    reserve = call.ReserveNow(id=1, expiry_date_time=later, id_token={"id_token": "A", "type": "ISO14443"}, evse_id=1)
    assert (await csms.send(reserve)).status == "Accepted"
    await wait_for(lambda: last_status(csms) == "Reserved")
    other = call.ReserveNow(id=2, expiry_date_time=later, id_token={"id_token": "B", "type": "ISO14443"}, evse_id=1)
    assert (await csms.send(other)).status == "Occupied"
    anywhere = call.ReserveNow(id=3, expiry_date_time=later, id_token={"id_token": "B", "type": "ISO14443"})
    assert (await csms.send(anywhere)).status == "Occupied"
    assert (await csms.send(call.CancelReservation(reservation_id=1))).status == "Accepted"
    await wait_for(lambda: last_status(csms) == "Available")
    assert (await csms.send(call.CancelReservation(reservation_id=1))).status == "Rejected"
    assert (
        await csms.send(
            call.ReserveNow(id=4, expiry_date_time=later, id_token={"id_token": "A", "type": "ISO14443"}, evse_id=8)
        )
    ).status == "Rejected"
    # A reservation that expires at once: ReservationStatusUpdate Expired, back to Available.
    past = (datetime.now(UTC) - timedelta(seconds=1)).replace(tzinfo=None).isoformat()
    expiring = call.ReserveNow(id=5, expiry_date_time=past, id_token={"id_token": "A", "type": "ISO14443"}, evse_id=1)
    assert (await csms.send(expiring)).status == "Accepted"
    await wait_for(lambda: bool(csms.of("ReservationStatusUpdate")))
    assert csms.of("ReservationStatusUpdate")[0] == {"reservation_id": 5, "reservation_update_status": "Expired"}
    await wait_for(lambda: last_status(csms) == "Available")
    assert cs.reservations == {}
    # A reservation used by a transaction.
    assert (
        await csms.send(call.ReserveNow(id=6, expiry_date_time=later, id_token={"id_token": "A", "type": "ISO14443"}))
    ).status == "Accepted"
    await cs.transaction_started(1, "A", reservation_id=6)
    assert cs.reservations == {}
    assert csms.of("TransactionEvent")[-1]["reservation_id"] == 6
    assert (
        await csms.send(
            call.ReserveNow(id=7, expiry_date_time=later, id_token={"id_token": "A", "type": "ISO14443"}, evse_id=1)
        )
    ).status == "Occupied"
    cs.evses[1].connector_status = "Faulted"
    assert (
        await csms.send(
            call.ReserveNow(id=7, expiry_date_time=later, id_token={"id_token": "A", "type": "ISO14443"}, evse_id=1)
        )
    ).status == "Faulted"
    cs.set_variable("ReservationCtrlr", "Enabled", "false")
    assert (
        await csms.send(call.ReserveNow(id=7, expiry_date_time=later, id_token={"id_token": "A", "type": "ISO14443"}))
    ).status == "Rejected"


async def test_other_csms_commands(link: Link) -> None:
    cs, csms = link.cs, link.csms
    assert (await csms.send(call.ClearCache())).status == "Accepted"
    transfer = await csms.send(call.DataTransfer(vendor_id="Cariflex", message_id="ping", data={"n": 1}))
    assert (transfer.status, transfer.data) == ("Accepted", {"n": 1})
    network = {
        "ocpp_version": "OCPP20",
        "ocpp_transport": "JSON",
        "ocpp_csms_url": "wss://csms.example.com/ocpp",
        "message_timeout": 30,
        "security_profile": 2,
        "ocpp_interface": "Wired0",
    }
    assert (await csms.send(call.SetNetworkProfile(configuration_slot=1, connection_data=network))).status == "Accepted"
    assert cs.network_profiles[1]["ocpp_csms_url"] == "wss://csms.example.com/ocpp"
    assert cs.received[-1][1]["connectionData"]["ocppCsmsUrl"] == "wss://csms.example.com/ocpp"
    assert (
        await csms.send(call.CertificateSigned(certificate_chain="-----BEGIN CERTIFICATE-----"))
    ).status == "Accepted"
    install = call.InstallCertificate(certificate_type="CSMSRootCertificate", certificate="-----BEGIN CERTIFICATE-----")
    assert (await csms.send(install)).status == "Accepted"
    assert len(cs.certificates) == 1
    hash_data = {"hash_algorithm": "SHA256", "issuer_name_hash": "a", "issuer_key_hash": "b", "serial_number": "1"}
    assert (await csms.send(call.DeleteCertificate(certificate_hash_data=hash_data))).status == "NotFound"
    assert (await csms.send(call.GetInstalledCertificateIds())).status == "NotFound"
    assert (
        await csms.send(call.PublishFirmware(location="https://example.com/fw", checksum="abc", request_id=1))
    ).status == "Rejected"
    assert (await csms.send(call.UnpublishFirmware(checksum="abc"))).status == "NoFirmware"
    await cs.transaction_started(1, "TAG1")
    transaction_id = cs.evses[1].transaction_id
    assert transaction_id is not None
    await csms.send(call.CostUpdated(total_cost=1.25, transaction_id=transaction_id))
    assert cs.total_costs == {transaction_id: 1.25}

    # Display messages.
    message = {"id": 1, "priority": "NormalCycle", "message": {"format": "UTF8", "content": "Hello"}}
    assert (await csms.send(call.SetDisplayMessage(message=message))).status == "Accepted"
    unknown_tx = {**message, "id": 2, "transaction_id": "nope"}
    assert (await csms.send(call.SetDisplayMessage(message=unknown_tx))).status == "UnknownTransaction"
    assert (await csms.send(call.GetDisplayMessages(request_id=1, id=[1]))).status == "Accepted"
    await wait_for(lambda: bool(csms.of("NotifyDisplayMessages")))
    assert csms.of("NotifyDisplayMessages")[0]["message_info"][0]["message"]["content"] == "Hello"
    assert (await csms.send(call.GetDisplayMessages(request_id=2, priority="AlwaysFront"))).status == "Unknown"
    assert (await csms.send(call.ClearDisplayMessage(id=1))).status == "Accepted"
    assert (await csms.send(call.ClearDisplayMessage(id=1))).status == "Unknown"

    # Monitoring.
    monitors = await csms.send(
        call.SetVariableMonitoring(
            set_monitoring_data=[
                {
                    "value": 7000,
                    "type": "UpperThreshold",
                    "severity": 5,
                    "component": {"name": "EVSE", "evse": {"id": 1}},
                    "variable": {"name": "Power"},
                },
                {"value": 1, "type": "Delta", "severity": 5, "component": {"name": "Nope"}, "variable": {"name": "X"}},
            ]
        )
    )
    results = monitors.set_monitoring_result
    assert [r["status"] for r in results] == ["Accepted", "UnknownComponent"]
    monitor_id = results[0]["id"]
    assert (
        await csms.send(call.GetMonitoringReport(request_id=3, monitoring_criteria=["DeltaMonitoring"]))
    ).status == "EmptyResultSet"
    report = await csms.send(
        call.GetMonitoringReport(
            request_id=4,
            component_variable=[{"component": {"name": "EVSE"}}],
            monitoring_criteria=["ThresholdMonitoring"],
        )
    )
    assert report.status == "Accepted"
    await wait_for(lambda: bool(csms.of("NotifyMonitoringReport")))
    monitored = csms.of("NotifyMonitoringReport")[0]["monitor"][0]
    assert monitored["variable_monitoring"][0] == {
        "id": monitor_id,
        "transaction": False,
        "value": 7000,
        "type": "UpperThreshold",
        "severity": 5,
    }
    cleared = await csms.send(call.ClearVariableMonitoring(id=[monitor_id, 999]))
    assert [r["status"] for r in cleared.clear_monitoring_result] == ["Accepted", "NotFound"]
    assert (await csms.send(call.SetMonitoringBase(monitoring_base="All"))).status == "Accepted"
    assert (await csms.send(call.SetMonitoringLevel(severity=3))).status == "Accepted"
    assert [name for name, _ in cs.received][:3] == ["ClearCache", "DataTransfer", "SetNetworkProfile"]

    # Everything recorded reaches on_received too.
    seen: list[str] = []
    cs.on_received = lambda action, _payload: seen.append(action)
    assert (await csms.send(call.ClearCache())).status == "Accepted"
    assert seen == ["ClearCache"]


async def test_station_initiated_messages(link: Link) -> None:
    cs, csms = link.cs, link.csms
    await cs.notify_event("Connector", "Problem", "true", evse_id=1, tech_code="E42", cleared=False)
    event = csms.of("NotifyEvent")[0]
    assert event["seq_no"] == 0
    data = event["event_data"][0]
    assert (data["component"], data["variable"], data["actual_value"]) == (
        {"name": "Connector", "evse": {"id": 1}},
        {"name": "Problem"},
        "true",
    )
    assert (data["trigger"], data["event_notification_type"], data["tech_code"]) == (
        "Alerting",
        "HardWiredNotification",
        "E42",
    )
    await cs.security_event("StartupOfTheDevice", tech_info="cold boot")
    assert csms.of("SecurityEventNotification")[0]["type"] == "StartupOfTheDevice"
    await cs.firmware_status("Downloading", 3)
    assert csms.of("FirmwareStatusNotification")[0] == {"status": "Downloading", "request_id": 3}
    await cs.log_status("Uploaded", 4)
    assert csms.of("LogStatusNotification")[0] == {"status": "Uploaded", "request_id": 4}
    await cs.notify_charging_limit("EMS", evse_id=1, limit=10, is_grid_critical=True)
    limit = csms.of("NotifyChargingLimit")[0]
    assert limit["charging_limit"] == {"charging_limit_source": "EMS", "is_grid_critical": True}
    assert limit["charging_schedule"][0]["charging_schedule_period"] == [{"start_period": 0, "limit": 10}]
    await cs.notify_charging_limit("SO")
    assert "charging_schedule" not in csms.of("NotifyChargingLimit")[1]
    await cs.cleared_charging_limit("EMS", evse_id=1)
    assert csms.of("ClearedChargingLimit")[0] == {"charging_limit_source": "EMS", "evse_id": 1}
    cs.reservations[3] = 1
    await cs.reservation_status_update(3, "Removed")
    assert cs.reservations == {}
    assert csms.of("ReservationStatusUpdate")[0]["reservation_update_status"] == "Removed"
    answer = await cs.data_transfer("Cariflex", "hello", {"a": 1})
    assert (answer.status, answer.data) == ("Accepted", {"echo": {"a": 1}})


async def test_follow_up_failure_is_contained(link: Link) -> None:
    cs, csms = link.cs, link.csms
    cs.meter_interval = 0.01

    async def broken() -> None:
        raise RuntimeError("boom")

    cs.spawn(cs._quietly(broken()))
    await asyncio.sleep(0.01)
    # The station still answers.
    assert (await csms.send(call.ClearCache())).status == "Accepted"
    assert cs.evses[1].transaction_id is None
