"""The OCPP 1.6 adapter driven through an in-memory transport and a real SiteBackend."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Coroutine, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
import itertools
import json
from typing import Any, TypeVar

import pytest

from custom_components.cariflex.access import AuthMode, AuthResult, AuthStatus, Badge, BadgeList
from custom_components.cariflex.ocpp.backend import BootStatus
from custom_components.cariflex.ocpp.errors import CallError
from custom_components.cariflex.ocpp.model import Availability, Charger, ConnectorStatus, ResetKind, Session
from custom_components.cariflex.ocpp.rpc import CALL, CALLERROR, CALLRESULT, V16, RpcEndpoint
from custom_components.cariflex.ocpp.site import (
    TRANSACTION_EPOCH,
    ChargerConfig,
    SiteBackend,
    TransactionCounter,
    UnknownChargerPolicy,
)
from custom_components.cariflex.ocpp.v16 import (
    STATUS_MAP,
    TX_DEFAULT_PROFILE_ID,
    TX_PROFILE_ID,
    V16Adapter,
    id_tag_info,
)
from tests.ocpp import FakeTransport

T = TypeVar("T")
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
ENERGY = "Energy.Active.Import.Register"
POWER = "Power.Active.Import"
BOOT = {"chargePointVendor": "Acme", "chargePointModel": "X1"}


def at(minutes: float) -> str:
    """OCPP timestamp ``minutes`` after T0."""
    return (T0 + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def energy(value: str, unit: str = "Wh", **extra: str) -> dict[str, str]:
    return {"value": value, "measurand": ENERGY, "unit": unit, **extra}


def power(value: str, unit: str = "W") -> dict[str, str]:
    return {"value": value, "measurand": POWER, "unit": unit}


def meter_values(
    connector_id: int, *values: tuple[float, list[dict[str, str]]], tx: int | None = None
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "connectorId": connector_id,
        "meterValue": [{"timestamp": at(minutes), "sampledValue": sampled} for minutes, sampled in values],
    }
    if tx is not None:
        payload["transactionId"] = tx
    return payload


def start(
    connector_id: int = 1, minutes: float = 0, meter: int = 1000, tag: str = "TAG1", **extra: Any
) -> dict[str, Any]:
    return {"connectorId": connector_id, "idTag": tag, "meterStart": meter, "timestamp": at(minutes), **extra}


def stop(tx: int, minutes: float, meter: int, **extra: Any) -> dict[str, Any]:
    return {"transactionId": tx, "meterStop": meter, "timestamp": at(minutes), **extra}


@dataclass
class Err:
    """A CALLERROR the fake charger answers with."""

    code: str = "InternalError"


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Link:
    """One charger on an in-memory connection: send CALLs, answer the central system's."""

    def __init__(self, backend: SiteBackend, charger_id: str = "CP1") -> None:
        self.backend = backend
        self.transport = FakeTransport()
        self.charger = backend.charger(charger_id)
        self.adapter = V16Adapter(
            self.charger,
            backend,
            lambda a: RpcEndpoint(
                self.transport, V16, a.handle, call_timeout=2.0, name=charger_id, after_reply=a.flush_followups
            ),
        )
        self._ids = itertools.count(1)

    async def send(self, action: str, payload: dict[str, Any]) -> list[Any]:
        """Charger -> central system: return the answer frame."""
        unique_id = f"cp-{next(self._ids)}"
        before = len(self.transport.sent)
        await self.adapter.endpoint.handle_frame(json.dumps([CALL, unique_id, action, payload]))
        answer = self.transport.frames[before]
        assert answer[1] == unique_id
        return answer

    async def ok(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        frame = await self.send(action, payload)
        assert frame[0] == CALLRESULT, frame
        result: dict[str, Any] = frame[2]
        return result

    async def refused(self, action: str, payload: dict[str, Any]) -> str:
        frame = await self.send(action, payload)
        assert frame[0] == CALLERROR, frame
        return str(frame[2])

    async def run(self, command: Awaitable[T], *answers: dict[str, Any] | Err) -> tuple[T, list[list[Any]]]:
        """Run a command, answering its CALLs in order; return its result and the CALLs sent."""
        task: asyncio.Task[T] = asyncio.ensure_future(command)
        first = len(self.transport.sent)
        calls: list[list[Any]] = []
        for number, answer in enumerate(answers, start=1):
            try:
                frames = await self.transport.wait_for_frames(first + number)
            except TimeoutError:
                task.cancel()
                raise AssertionError(f"only {len(calls)} CALLs sent, {len(answers)} expected") from None
            sent = frames[first + number - 1]
            assert sent[0] == CALL
            calls.append(sent)
            reply = (
                [CALLERROR, sent[1], answer.code, "", {}] if isinstance(answer, Err) else [CALLRESULT, sent[1], answer]
            )
            await self.adapter.endpoint.handle_frame(json.dumps(reply))
        result = await asyncio.wait_for(task, 2)
        assert len(self.transport.sent) == first + len(answers), "unexpected extra CALLs"
        return result, calls


class World:
    """A site backend with recorders, and the links to it."""

    def __init__(self) -> None:
        self.spawned: list[tuple[Coroutine[Any, Any, Any], str, int]] = []
        self.changes: list[str] = []
        self.ended: list[Session] = []
        self.transfers: list[tuple[str, str | None, str | None]] = []
        self.links: list[Link] = []
        self.backend = self.make_backend()

    def make_backend(
        self, policy: UnknownChargerPolicy = UnknownChargerPolicy.ACCEPT, badges: BadgeList | None = None
    ) -> SiteBackend:
        self.backend = SiteBackend(
            policy=policy,
            heartbeat_interval=300,
            badges=badges,
            counter=TransactionCounter(last=100, clock=Clock(TRANSACTION_EPOCH)),
            on_change=lambda c: self.changes.append(c.charger_id),
            on_session_ended=lambda c, s: self.ended.append(s),
            spawn=self._spawn,
        )
        self.backend.set_known([ChargerConfig("CP1")])
        return self.backend

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        sent = len(self.links[-1].transport.sent) if self.links else -1
        self.spawned.append((coro, name, sent))

    def link(self, charger_id: str = "CP1") -> Link:
        link = Link(self.backend, charger_id)
        self.links.append(link)
        return link

    def close(self) -> None:
        for coro, _, _ in self.spawned:
            coro.close()


@pytest.fixture
def world() -> Iterator[World]:
    created = World()
    yield created
    created.close()


@pytest.fixture
def link(world: World) -> Link:
    return world.link()


# --------------------------------------------------------------------------------- boot
async def test_boot_accepted(world: World, link: Link) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    answer = await link.ok(
        "BootNotification",
        {
            **BOOT,
            "chargeBoxSerialNumber": "BOX-1",
            "firmwareVersion": "1.2.3",
            "iccid": "ICCID",
            "imsi": "IMSI",
            "meterType": "MID",
            "meterSerialNumber": "M-9",
        },
    )
    assert answer["status"] == "Accepted"
    assert answer["interval"] == 300
    assert answer["currentTime"].endswith("Z")
    assert datetime.fromisoformat(answer["currentTime"]) >= before
    info = link.charger.info
    assert (info.vendor, info.model, info.serial, info.firmware) == ("Acme", "X1", "BOX-1", "1.2.3")
    assert (info.iccid, info.imsi, info.meter_type, info.meter_serial) == ("ICCID", "IMSI", "MID", "M-9")
    assert link.charger.boot_status is BootStatus.ACCEPTED
    # the follow-up starts once the answer is out, not before
    assert [(name, sent) for _, name, sent in world.spawned] == [("CP1 after boot", 1)]


async def test_charge_point_serial_preferred(link: Link) -> None:
    await link.ok("BootNotification", {**BOOT, "chargePointSerialNumber": "CP-1", "chargeBoxSerialNumber": "BOX-1"})
    assert link.charger.info.serial == "CP-1"


async def test_boot_pending_then_security_errors(world: World) -> None:
    world.make_backend(UnknownChargerPolicy.ASK)
    link = world.link("NEW")
    answer = await link.ok("BootNotification", BOOT)
    assert (answer["status"], answer["interval"]) == ("Pending", 30)
    assert world.spawned == [], "no configuration read before acceptance"
    assert link.charger.boot_status is BootStatus.PENDING
    assert await link.refused("Heartbeat", {}) == "SecurityError"
    status = {"connectorId": 1, "errorCode": "NoError", "status": "Available"}
    assert await link.refused("StatusNotification", status) == "SecurityError"
    assert await link.refused("StartTransaction", start()) == "SecurityError"
    assert link.charger.connectors == {}, "refused messages change nothing"
    assert link.charger.last_heartbeat is None
    # BootNotification itself stays allowed; once the user accepts, the next boot is Accepted
    assert (await link.ok("BootNotification", BOOT))["status"] == "Pending"
    world.backend.set_known([ChargerConfig("NEW")])
    assert (await link.ok("BootNotification", BOOT))["status"] == "Accepted"
    assert "currentTime" in await link.ok("Heartbeat", {})


async def test_boot_rejected_then_security_errors(world: World) -> None:
    world.make_backend(UnknownChargerPolicy.REFUSE)
    link = world.link("STRANGER")
    answer = await link.ok("BootNotification", BOOT)
    assert (answer["status"], answer["interval"]) == ("Rejected", 30)
    assert await link.refused("Heartbeat", {}) == "SecurityError"


async def test_messages_before_any_boot_are_served(link: Link) -> None:
    """A known charger may reconnect without a new BootNotification."""
    assert link.charger.boot_status is None
    assert "currentTime" in await link.ok("Heartbeat", {})


# ---------------------------------------------------------------- heartbeat and status
async def test_heartbeat_updates_and_notifies_once(world: World, link: Link) -> None:
    notified: list[str] = []
    link.charger.add_listener(lambda c: notified.append(c.charger_id))
    before = datetime.now(UTC)
    answer = await link.ok("Heartbeat", {})
    assert link.charger.last_heartbeat is not None
    assert link.charger.last_heartbeat >= before
    assert link.charger.last_seen is not None
    assert before <= link.charger.last_seen <= link.charger.last_heartbeat
    assert datetime.fromisoformat(answer["currentTime"]) == link.charger.last_heartbeat.replace(microsecond=0)
    assert notified == ["CP1"]
    assert world.changes == ["CP1"]


@pytest.mark.parametrize(("word", "status"), list(STATUS_MAP.items()))
async def test_status_mapping(link: Link, word: str, status: ConnectorStatus) -> None:
    assert (
        await link.ok(
            "StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": word, "timestamp": at(3)}
        )
        == {}
    )
    connector = link.charger.connectors[1]
    assert connector.status is status
    assert connector.status_at == T0 + timedelta(minutes=3)


async def test_status_details_and_readings_reset(link: Link) -> None:
    connector = link.charger.connector(1)
    connector.readings.power_w = 7000.0
    connector.readings.current_a = {"L1": 10.0}
    await link.ok(
        "StatusNotification",
        {
            "connectorId": 1,
            "errorCode": "OtherError",
            "status": "Faulted",
            "vendorErrorCode": "E42",
            "info": "RCD tripped",
        },
    )
    assert (connector.error_code, connector.vendor_error_code, connector.info) == ("OtherError", "E42", "RCD tripped")
    assert connector.status_at is not None, "no timestamp: the time of reception"
    assert connector.readings.power_w == 7000.0, "a fault keeps the last readings"
    await link.ok("StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Available"})
    assert connector.readings.power_w == 0.0
    assert connector.readings.current_a == {}
    assert (connector.vendor_error_code, connector.info) == (None, None)
    # the station (connector 0) has no readings to reset
    station = link.charger.connector(0)
    station.readings.power_w = 11000.0
    await link.ok("StatusNotification", {"connectorId": 0, "errorCode": "NoError", "status": "Available"})
    assert station.status is ConnectorStatus.AVAILABLE
    assert station.readings.power_w == 11000.0


async def test_bad_charger_clock_keeps_the_message(link: Link) -> None:
    await link.ok(
        "StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Charging", "timestamp": "yesterday"}
    )
    connector = link.charger.connectors[1]
    assert connector.status is ConnectorStatus.CHARGING
    assert connector.status_at is not None
    assert abs((connector.status_at - datetime.now(UTC)).total_seconds()) < 5


# ------------------------------------------------------------------------- authorize
def test_id_tag_info() -> None:
    assert id_tag_info(AuthResult(AuthStatus.ACCEPTED)) == {"status": "Accepted"}
    assert id_tag_info(AuthResult(AuthStatus.BLOCKED, T0, "FLEET")) == {
        "status": "Blocked",
        "expiryDate": "2024-05-01T12:00:00Z",
        "parentIdTag": "FLEET",
    }


async def test_authorize(world: World) -> None:
    badges = BadgeList(AuthMode.LIST)
    badges.upsert(Badge("TAG1", expiry=datetime(2099, 1, 1, tzinfo=UTC), parent_id_tag="FLEET"))
    badges.upsert(Badge("TAG2", blocked=True))
    world.make_backend(badges=badges)
    link = world.link()
    assert await link.ok("Authorize", {"idTag": "tag1"}) == {
        "idTagInfo": {"status": "Accepted", "expiryDate": "2099-01-01T00:00:00Z", "parentIdTag": "FLEET"}
    }
    assert await link.ok("Authorize", {"idTag": "TAG2"}) == {"idTagInfo": {"status": "Blocked"}}
    assert await link.ok("Authorize", {"idTag": "NOBODY"}) == {"idTagInfo": {"status": "Invalid"}}


# ---------------------------------------------------------------------- transactions
async def test_start_transaction(world: World, link: Link) -> None:
    started: list[Session] = []
    link.charger.on_session(started=lambda c, s: started.append(s))
    answer = await link.ok("StartTransaction", start(meter=1000, reservationId=7))
    assert answer == {"transactionId": 101, "idTagInfo": {"status": "Accepted"}}
    session = link.charger.connectors[1].session
    assert session is not None
    assert started == [session]
    assert (session.transaction_id, session.id_tag, session.started_at) == ("101", "TAG1", T0)
    assert (session.meter_start_wh, session.meter_now_wh, session.reservation_id) == (1000.0, 1000.0, 7)
    assert not session.offline_start
    assert link.charger.connectors[1].readings.energy_wh == 1000.0


async def test_start_never_lowers_the_register(link: Link) -> None:
    link.charger.connector(1).readings.energy_wh = 5000.0
    await link.ok("StartTransaction", start(meter=4000))
    assert link.charger.connectors[1].readings.energy_wh == 5000.0


async def test_duplicate_start_answered_with_same_id(world: World, link: Link) -> None:
    first = await link.ok("StartTransaction", start())
    session = link.charger.connectors[1].session
    again = await link.ok("StartTransaction", start())
    assert again == first
    assert link.charger.connectors[1].session is session
    assert world.backend.counter.last == 101, "no new id was drawn"
    assert world.ended == []


async def test_new_start_closes_open_session(world: World, link: Link) -> None:
    await link.ok("StartTransaction", start(minutes=0, meter=1000))
    old = link.charger.connectors[1].session
    answer = await link.ok("StartTransaction", start(minutes=30, meter=1500, tag="TAG2"))
    assert answer["transactionId"] == 102
    assert world.ended == [old]
    assert old is not None
    assert (old.stop_reason, old.stopped_at) == ("Superseded", T0 + timedelta(minutes=30))
    new = link.charger.connectors[1].session
    assert new is not None
    assert (new.transaction_id, new.id_tag) == ("102", "TAG2")
    # the charger's late StopTransaction for the superseded one is answered, not recorded twice
    assert await link.ok("StopTransaction", stop(101, 29, 1500, idTag="TAG1")) == {"idTagInfo": {"status": "Accepted"}}
    assert await link.ok("StopTransaction", stop(101, 29, 1500)) == {}
    assert world.ended == [old]
    assert link.charger.connectors[1].session is new


async def test_start_on_connector_zero_refused(link: Link) -> None:
    assert await link.refused("StartTransaction", start(connector_id=0)) == "PropertyConstraintViolation"
    assert link.charger.connectors == {}


async def test_start_with_invalid_badge_answers_invalid(world: World) -> None:
    world.make_backend(badges=BadgeList(AuthMode.LIST))
    link = world.link()
    answer = await link.ok("StartTransaction", start(tag="NOBODY"))
    assert answer["idTagInfo"] == {"status": "Invalid"}
    assert isinstance(answer["transactionId"], int)


async def test_stop_transaction(world: World, link: Link) -> None:
    await link.ok("StartTransaction", start(meter=1000))
    session = link.charger.connectors[1].session
    assert session is not None
    readings = link.charger.connectors[1].readings
    readings.power_w = 7000.0
    readings.current_a = {"L1": 10.0}
    answer = await link.ok("StopTransaction", stop(101, 60, 8000, reason="EVDisconnected", idTag="TAG1"))
    assert answer == {"idTagInfo": {"status": "Accepted"}}
    assert world.ended == [session]
    assert (session.meter_stop_wh, session.meter_now_wh, session.energy_wh) == (8000.0, 8000.0, 7000.0)
    assert (session.stopped_at, session.stop_reason) == (T0 + timedelta(hours=1), "EVDisconnected")
    assert link.charger.connectors[1].session is None
    assert (readings.energy_wh, readings.power_w, readings.current_a) == (8000.0, 0.0, {})
    assert "101" in link.charger.ended_transactions


async def test_stop_defaults(world: World, link: Link) -> None:
    await link.ok("StartTransaction", start())
    assert await link.ok("StopTransaction", stop(101, 10, 1200)) == {}
    assert world.ended[0].stop_reason == "Local"


async def test_stop_applies_transaction_data(world: World, link: Link) -> None:
    await link.ok("StartTransaction", start(meter=1000))
    data = [
        {"timestamp": at(30), "sampledValue": [energy("4000"), {"value": "231", "measurand": "Voltage", "unit": "V"}]},
        {"timestamp": at(45), "sampledValue": [energy("7.0", "kWh", context="Sample.Periodic")]},
    ]
    await link.ok("StopTransaction", stop(101, 60, 7500, transactionData=data))
    readings = link.charger.connectors[1].readings
    assert readings.voltage_v == 231.0
    assert readings.measured_at == T0 + timedelta(minutes=45)
    assert readings.energy_wh == 7500.0
    assert world.ended[0].energy_wh == 6500.0


async def test_stop_of_unknown_transaction_recorded(world: World, link: Link) -> None:
    data = [
        {"timestamp": at(-120), "sampledValue": [energy("3000", context="Transaction.Begin")]},
        {"timestamp": at(-60), "sampledValue": [energy("4000", context="Sample.Periodic"), power("3000")]},
        {"timestamp": at(0), "sampledValue": [energy("5000", context="Transaction.End")]},
    ]
    answer = await link.ok(
        "StopTransaction", stop(555, 0, 5000, reason="PowerLoss", idTag="TAG9", transactionData=data)
    )
    assert answer == {"idTagInfo": {"status": "Accepted"}}
    (session,) = world.ended
    assert (session.transaction_id, session.connector_id, session.id_tag) == ("555", 0, "TAG9")
    assert session.offline_start
    assert session.started_at == T0 - timedelta(hours=2)
    assert (session.meter_start_wh, session.meter_stop_wh, session.energy_wh) == (3000.0, 5000.0, 2000.0)
    assert (session.stopped_at, session.stop_reason) == (T0, "PowerLoss")
    assert "555" in link.charger.ended_transactions
    assert link.charger.connectors == {}, "no connector invented"
    # sent again: answered, recorded once
    assert await link.ok("StopTransaction", stop(555, 0, 5000)) == {}
    assert len(world.ended) == 1


async def test_stop_of_unknown_transaction_without_data(world: World, link: Link) -> None:
    await link.ok("StopTransaction", stop(556, 0, 5000))
    (session,) = world.ended
    assert (session.started_at, session.stopped_at, session.energy_wh) == (T0, T0, 0.0)


# ------------------------------------------------------------------------ meter values
async def test_meter_values_kwh_and_session_energy(link: Link) -> None:
    await link.ok("StartTransaction", start(meter=1000))
    assert await link.ok("MeterValues", meter_values(1, (10, [energy("2.5", "kWh"), power("7.2", "kW")]), tx=101)) == {}
    readings = link.charger.connectors[1].readings
    assert (readings.energy_wh, readings.power_w, readings.measured_at) == (2500.0, 7200.0, T0 + timedelta(minutes=10))
    session = link.charger.connectors[1].session
    assert session is not None
    assert session.energy_wh == 1500.0


async def test_meter_values_without_transaction_id_follow_connector_session(link: Link) -> None:
    await link.ok("StartTransaction", start(meter=1000))
    await link.ok("MeterValues", meter_values(1, (10, [energy("1800")])))
    session = link.charger.connectors[1].session
    assert session is not None
    assert session.meter_now_wh == 1800.0


async def test_late_values_never_move_readings_back(link: Link) -> None:
    await link.ok("StartTransaction", start(meter=1000))
    await link.ok("MeterValues", meter_values(1, (10, [energy("2500"), power("7200")]), tx=101))
    await link.ok("MeterValues", meter_values(1, (5, [energy("2000"), power("3000")]), tx=101))
    readings = link.charger.connectors[1].readings
    assert (readings.energy_wh, readings.power_w, readings.measured_at) == (2500.0, 7200.0, T0 + timedelta(minutes=10))
    session = link.charger.connectors[1].session
    assert session is not None
    assert session.meter_now_wh == 2500.0


async def test_late_value_raises_session_energy(link: Link) -> None:
    await link.ok("StartTransaction", start(meter=1000))
    await link.ok("MeterValues", meter_values(1, (20, [power("7000")]), tx=101))  # newest reading: power only
    await link.ok("MeterValues", meter_values(1, (15, [energy("3000"), power("1")]), tx=101))  # queued, older
    session = link.charger.connectors[1].session
    assert session is not None
    assert session.meter_now_wh == 3000.0, "the late register still counts for the session"
    readings = link.charger.connectors[1].readings
    assert (readings.power_w, readings.measured_at) == (7000.0, T0 + timedelta(minutes=20))
    assert readings.energy_wh == 1000.0, "readings did not move back in time"


async def test_register_going_back_is_ignored(link: Link) -> None:
    await link.ok("StartTransaction", start(meter=1000))
    await link.ok("MeterValues", meter_values(1, (10, [energy("2500")]), tx=101))
    await link.ok("MeterValues", meter_values(1, (20, [energy("100"), power("500")]), tx=101))
    readings = link.charger.connectors[1].readings
    assert (readings.energy_wh, readings.power_w) == (2500.0, 500.0)


async def test_several_meter_values_in_one_message(link: Link) -> None:
    await link.ok("StartTransaction", start(meter=1000))
    await link.ok("MeterValues", meter_values(1, (10, [energy("2000")]), (20, [energy("3000")]), tx=101))
    readings = link.charger.connectors[1].readings
    assert (readings.energy_wh, readings.measured_at) == (3000.0, T0 + timedelta(minutes=20))


async def test_unknown_transaction_adopted(world: World, link: Link) -> None:
    started: list[Session] = []
    link.charger.on_session(started=lambda c, s: started.append(s))
    await link.ok(
        "MeterValues",
        meter_values(
            2,
            (0, [power("7000")]),  # no energy: nothing to start from yet
            (5, [energy("5100", phase="L1"), energy("5000", phase="L2"), energy("5200", phase="L3")]),
            (10, [energy("5600")]),
            tx=77,
        ),
    )
    session = link.charger.connectors[2].session
    assert session is not None
    assert started == [session]
    assert (session.transaction_id, session.connector_id, session.id_tag) == ("77", 2, None)
    assert session.offline_start
    assert (session.started_at, session.meter_start_wh) == (T0 + timedelta(minutes=5), 5000.0)
    assert session.meter_now_wh == 15300.0, "per-phase registers are summed for the reading"
    await link.ok("StopTransaction", stop(77, 30, 16000))
    assert world.ended == [session]
    assert session.energy_wh == 11000.0


async def test_no_adoption_without_energy_or_on_station(link: Link) -> None:
    await link.ok("MeterValues", meter_values(1, (0, [power("7000")]), tx=78))
    assert link.charger.connectors[1].session is None
    assert link.charger.connectors[1].readings.power_w == 7000.0
    await link.ok("MeterValues", meter_values(0, (0, [energy("9000")]), tx=79))
    assert link.charger.connectors[0].session is None
    assert link.charger.connectors[0].readings.energy_wh == 9000.0


# ---------------------------------------------------------------------------- commands
async def test_commands_payloads(link: Link) -> None:
    accepted = {"status": "Accepted"}
    cases: list[tuple[Awaitable[str], dict[str, Any], str, dict[str, Any]]] = [
        (link.adapter.remote_start(2, "TAG1"), accepted, "RemoteStartTransaction", {"idTag": "TAG1", "connectorId": 2}),
        (link.adapter.remote_start(None, "TAG1"), accepted, "RemoteStartTransaction", {"idTag": "TAG1"}),
        (link.adapter.remote_start(0, "TAG1"), {"status": "Rejected"}, "RemoteStartTransaction", {"idTag": "TAG1"}),
        (link.adapter.remote_stop("101"), accepted, "RemoteStopTransaction", {"transactionId": 101}),
        (link.adapter.reset(ResetKind.HARD), accepted, "Reset", {"type": "Hard"}),
        (link.adapter.reset(ResetKind.SOFT), accepted, "Reset", {"type": "Soft"}),
        (link.adapter.unlock(1), {"status": "Unlocked"}, "UnlockConnector", {"connectorId": 1}),
        (
            link.adapter.set_availability(0, Availability.INOPERATIVE),
            {"status": "Scheduled"},
            "ChangeAvailability",
            {"connectorId": 0, "type": "Inoperative"},
        ),
        (
            link.adapter.set_availability(1, Availability.OPERATIVE),
            accepted,
            "ChangeAvailability",
            {"connectorId": 1, "type": "Operative"},
        ),
    ]
    for command, answer, action, payload in cases:
        result, calls = await link.run(command, answer)
        assert result == answer["status"]
        assert [c[2:] for c in calls] == [[action, payload]]


async def test_command_error_propagates(link: Link) -> None:
    with pytest.raises(CallError) as info:
        await link.run(link.adapter.reset(ResetKind.SOFT), Err("NotSupported"))
    assert info.value.code == "NotSupported"


@pytest.mark.parametrize(
    ("status", "kept"), [("Accepted", True), ("RebootRequired", True), ("Rejected", False), ("NotSupported", False)]
)
async def test_change_configuration_tracked(link: Link, status: str, kept: bool) -> None:
    notified: list[str] = []
    link.charger.add_listener(lambda c: notified.append(c.charger_id))
    result, _ = await link.run(
        link.adapter.call("ChangeConfiguration", {"key": "HeartbeatInterval", "value": "60"}), {"status": status}
    )
    assert result == {"status": status}
    assert link.charger.configuration.get("HeartbeatInterval") == ("60" if kept else None)
    assert notified == (["CP1"] if kept else [])


# -------------------------------------------------------------------- charging profiles
@pytest.mark.parametrize(
    ("allowed", "unit"),
    [(None, "A"), ("Current", "A"), ("Power", "W"), ("Current,Power", "A"), ("current", "A"), ("", "A")],
)
def test_rate_unit(link: Link, allowed: str | None, unit: str) -> None:
    if allowed is not None:
        link.charger.configuration["ChargingScheduleAllowedChargingRateUnit"] = allowed
    assert link.adapter.rate_unit() == unit


@pytest.mark.parametrize(("maximum", "level"), [(None, 1), ("8", 1), ("1", 1), ("0", 0), ("-2", 0), ("many", 1)])
def test_stack_level(link: Link, maximum: str | None, level: int) -> None:
    if maximum is not None:
        link.charger.configuration["ChargeProfileMaxStackLevel"] = maximum
    assert link.adapter.stack_level() == level


def test_tx_default_profile_in_amps(link: Link) -> None:
    assert link.adapter.charging_profile(1, 16.04) == {
        "chargingProfileId": TX_DEFAULT_PROFILE_ID + 1,
        "stackLevel": 1,
        "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Relative",
        "chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.0}]},
    }


async def test_tx_profile_for_running_session(link: Link) -> None:
    await link.ok("StartTransaction", start(connector_id=2, minutes=5))
    profile = link.adapter.charging_profile(2, 10)
    assert profile == {
        "chargingProfileId": TX_PROFILE_ID + 2,
        "stackLevel": 1,
        "chargingProfilePurpose": "TxProfile",
        "chargingProfileKind": "Absolute",
        "transactionId": 101,
        "chargingSchedule": {
            "chargingRateUnit": "A",
            "startSchedule": "2024-05-01T12:05:00Z",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 10}],
        },
    }


@pytest.mark.parametrize(("voltage", "phases", "limit"), [(None, 3, 11040.0), (240.0, 3, 11520.0), (None, 1, 3680.0)])
def test_profile_in_watts(link: Link, voltage: float | None, phases: int, limit: float) -> None:
    link.charger.configuration["ChargingScheduleAllowedChargingRateUnit"] = "Power"
    link.charger.phases = phases
    link.charger.connector(1).readings.voltage_v = voltage
    schedule = link.adapter.charging_profile(1, 16)["chargingSchedule"]
    assert schedule["chargingRateUnit"] == "W"
    assert schedule["chargingSchedulePeriod"] == [{"startPeriod": 0, "limit": limit}]


async def test_set_current_limit_accepted(world: World, link: Link) -> None:
    status, calls = await link.run(link.adapter.set_current_limit(1, 21.4), {"status": "Accepted"})
    assert status == "Accepted"
    assert calls[0][2] == "SetChargingProfile"
    assert calls[0][3]["connectorId"] == 1
    assert calls[0][3]["csChargingProfiles"]["chargingSchedule"]["chargingSchedulePeriod"] == [
        {"startPeriod": 0, "limit": 21.4}
    ]
    assert '"limit":21.4' in link.transport.sent[-1]
    assert link.charger.connectors[1].current_limit_a == 21.4
    assert world.changes == ["CP1"]


async def test_a_limit_on_one_phase_carries_number_phases_and_counts_one_phase_in_watts(link: Link) -> None:
    link.charger.configuration["ChargingScheduleAllowedChargingRateUnit"] = "Power"
    status, calls = await link.run(link.adapter.set_current_limit(1, 16, 1), {"status": "Accepted"})
    assert status == "Accepted"
    assert calls[0][3]["csChargingProfiles"]["chargingSchedule"]["chargingSchedulePeriod"] == [
        {"startPeriod": 0, "limit": 3680.0, "numberPhases": 1}
    ]
    assert link.charger.connector(1).limit_phases == 1
    await link.run(link.adapter.set_current_limit(1, None), {"status": "Accepted"}, {"status": "Accepted"})
    assert link.charger.connector(1).limit_phases is None


async def test_set_current_limit_rejected(world: World, link: Link) -> None:
    status, _ = await link.run(link.adapter.set_current_limit(1, 16), {"status": "Rejected"})
    assert status == "Rejected"
    assert link.charger.connector(1).current_limit_a is None
    assert world.changes == []


@pytest.mark.parametrize(
    ("answers", "status"),
    [
        (("Unknown", "Accepted"), "Accepted"),
        (("Accepted", "Unknown"), "Accepted"),
        (("Accepted", "Accepted"), "Accepted"),
        (("Unknown", "Unknown"), "Unknown"),
    ],
)
async def test_set_current_limit_none_clears_both_profiles(link: Link, answers: tuple[str, str], status: str) -> None:
    link.charger.connector(1).current_limit_a = 16.0
    result, calls = await link.run(link.adapter.set_current_limit(1, None), *({"status": a} for a in answers))
    assert result == status
    assert [c[2:] for c in calls] == [
        ["ClearChargingProfile", {"id": TX_PROFILE_ID + 1}],
        ["ClearChargingProfile", {"id": TX_DEFAULT_PROFILE_ID + 1}],
    ]
    assert link.charger.connectors[1].current_limit_a is None


async def test_cleared_limit_is_persisted_even_if_charger_had_none(world: World, link: Link) -> None:
    link.charger.connector(1).current_limit_a = 16.0
    await link.run(link.adapter.set_current_limit(1, None), {"status": "Unknown"}, {"status": "Unknown"})
    assert world.changes == ["CP1"]


@pytest.mark.parametrize(
    ("payload", "status", "forgotten"),
    [
        ({"id": TX_DEFAULT_PROFILE_ID + 2}, "Accepted", {2}),
        ({"id": TX_PROFILE_ID + 1}, "Accepted", {1}),
        ({"id": 5}, "Accepted", set()),
        ({"connectorId": 1, "chargingProfilePurpose": "TxDefaultProfile"}, "Accepted", {1}),
        ({"connectorId": 2, "chargingProfilePurpose": "TxProfile"}, "Accepted", {2}),
        ({"connectorId": 0}, "Accepted", set()),  # 0: the station's own profiles, never ours
        ({}, "Accepted", {1, 2}),
        ({"stackLevel": 1}, "Accepted", {1, 2}),  # our stack level
        ({"stackLevel": 5, "connectorId": 1}, "Accepted", set()),
        ({"chargingProfilePurpose": "ChargePointMaxProfile"}, "Accepted", set()),
        ({}, "Unknown", set()),
    ],
)
async def test_clear_charging_profile_forgets_our_limits(
    world: World, link: Link, payload: dict[str, Any], status: str, forgotten: set[int]
) -> None:
    link.charger.connector(0)
    for cid in (1, 2):
        link.charger.connector(cid).current_limit_a = 16.0
    await link.run(link.adapter.call("ClearChargingProfile", payload), {"status": status})
    left = {cid for cid in (1, 2) if link.charger.connectors[cid].current_limit_a is None}
    assert left == forgotten
    assert world.changes == (["CP1"] if forgotten else []), "persisted once when something was forgotten"


# -------------------------------------------------------------------------- follow-ups
async def booted(world: World, link: Link) -> Coroutine[Any, Any, Any]:
    """Boot the charger and return its after-boot follow-up (not yet run)."""
    await link.ok("BootNotification", BOOT)
    coro, name, _ = world.spawned[-1]
    assert name == "CP1 after boot"
    return coro


def config_keys(**values: str | None) -> dict[str, Any]:
    return {
        "configurationKey": [
            {"key": key, "readonly": False, **({"value": value} if value is not None else {})}
            for key, value in values.items()
        ]
    }


async def test_after_boot_reads_configuration_and_reapplies_limits(world: World, link: Link) -> None:
    link.charger.connector(0)
    link.charger.connector(1).current_limit_a = 16.0
    link.charger.connector(2)
    coro = await booted(world, link)
    notified: list[int] = []
    link.charger.add_listener(lambda c: notified.append(c.phases))
    _, calls = await link.run(
        coro,
        config_keys(ConnectorPhaseRotation="0.R,1.R", ChargeProfileMaxStackLevel="3", AuthorizationKey=None),
        {"status": "Accepted"},
    )
    assert calls[0][2:] == ["GetConfiguration", {}]
    assert link.charger.configuration == {
        "ConnectorPhaseRotation": "0.R,1.R",
        "ChargeProfileMaxStackLevel": "3",
        "AuthorizationKey": None,
    }
    assert link.charger.phases == 1
    assert calls[1][2] == "SetChargingProfile"
    assert calls[1][3]["connectorId"] == 1
    assert calls[1][3]["csChargingProfiles"]["chargingProfilePurpose"] == "TxDefaultProfile"
    assert notified[0] == 1


@pytest.mark.parametrize("rotation", ["0.RST,1.RST", "Unknown", "0.Unknown", "NotApplicable", ""])
async def test_phase_rotation_that_is_not_single_phase(world: World, link: Link, rotation: str) -> None:
    coro = await booted(world, link)
    await link.run(coro, config_keys(ConnectorPhaseRotation=rotation))
    assert link.charger.phases == 3


async def test_after_boot_survives_configuration_errors(world: World, link: Link) -> None:
    link.charger.connector(1).current_limit_a = 16.0
    link.charger.connector(2).current_limit_a = 10.0
    coro = await booted(world, link)
    _, calls = await link.run(coro, Err("NotSupported"), Err("InternalError"), {"status": "Accepted"})
    assert [c[2] for c in calls] == ["GetConfiguration", "SetChargingProfile", "SetChargingProfile"]
    assert link.charger.configuration == {}
    assert calls[2][3]["connectorId"] == 2, "one failed limit does not stop the next"


# ------------------------------------------------------------------------ other messages
async def test_data_transfer(world: World, link: Link) -> None:
    assert await link.ok("DataTransfer", {"vendorId": "acme"}) == {"status": "UnknownVendorId"}
    seen: list[tuple[str, str | None, str | None]] = []

    def transfer(charger: Charger, vendor: str, message: str | None, data: str | None) -> str:
        seen.append((vendor, message, data))
        return "Accepted"

    world.backend._on_data_transfer = transfer
    assert await link.ok("DataTransfer", {"vendorId": "acme", "messageId": "m", "data": "d"}) == {"status": "Accepted"}
    assert seen == [("acme", "m", "d")]


async def test_diagnostics_and_firmware_status(link: Link) -> None:
    assert await link.ok("DiagnosticsStatusNotification", {"status": "Uploading"}) == {}
    assert await link.ok("FirmwareStatusNotification", {"status": "Installed"}) == {}
    assert (link.charger.diagnostics_status, link.charger.firmware_status) == ("Uploading", "Installed")


@pytest.mark.parametrize(
    ("action", "payload"),
    [("RemoteStartTransaction", {"idTag": "TAG1"}), ("Reset", {"type": "Soft"}), ("ClearCache", {})],
)
async def test_central_system_actions_from_a_charger_not_supported(
    link: Link, action: str, payload: dict[str, Any]
) -> None:
    assert await link.refused(action, payload) == "NotSupported"


async def test_schema_errors_reach_the_charger(link: Link) -> None:
    assert await link.refused("StartTransaction", {"connectorId": 1}) == "OccurrenceConstraintViolation"
    assert await link.refused("Authorize", {"idTag": "X" * 21}) == "TypeConstraintViolation"
    assert link.charger.connectors == {}


async def test_security_extension_messages_are_acknowledged(link: Link) -> None:
    """1.6 security-whitepaper messages are acknowledged; a CP-initiated action we do not serve is NotSupported."""
    assert await link.ok("SecurityEventNotification", {"type": "StartupOfTheDevice", "timestamp": at(0)}) == {}
    assert await link.refused("SignCertificate", {"csr": "x"}) == "NotSupported"


async def test_acknowledged_actions_answered_without_handler(world: World) -> None:
    """The adapter base answers {} to ACKNOWLEDGED actions, even before an accepted boot."""

    class Acknowledging(V16Adapter):
        ACKNOWLEDGED = frozenset({"SecurityEventNotification"})

    world.make_backend(UnknownChargerPolicy.ASK)
    link = world.link("NEW")
    link.adapter = Acknowledging(
        link.charger, world.backend, lambda a: RpcEndpoint(link.transport, V16, a.handle, after_reply=a.flush_followups)
    )
    await world.backend.admit("NEW", None, False)
    assert await link.ok("SecurityEventNotification", {"type": "StartupOfTheDevice", "timestamp": at(0)}) == {}
    assert await link.refused("Heartbeat", {}) == "SecurityError"
