"""OCA OCPP 2.0.1 compliance test cases for the CSMS side, end to end (part B).

One test per OCA test case, named after it: transactions across reconnects and offline
periods (E), remote control (F), availability (G), metering (J), smart charging (K),
firmware (L), logs and customer data (N), data transfer (P), plus two version checks.
A real Home Assistant runs the site (Cariflex is the CSMS); a :class:`SimCharger201`
plays the charging station over a real websocket. Each test checks what the station got
back, what it received, and what Home Assistant shows.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import contextlib
from datetime import datetime
import json
from typing import Any

from homeassistant.core import Event, HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import entity_registry as er
from ocpp.v201 import call
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry
import websockets
from websockets.typing import Subprotocol

from custom_components.cariflex.const import DOMAIN, EVENT_DATA_TRANSFER, EVENT_SESSION_ENDED
from custom_components.cariflex.diagnostics import async_get_config_entry_diagnostics
from custom_components.cariflex.ocpp.adapter import TX_DEFAULT_PROFILE_ID, TX_PROFILE_ID
from custom_components.cariflex.ocpp.model import Charger
from custom_components.cariflex.ocpp.v16 import V16Adapter
from custom_components.cariflex.ocpp.v201 import V201Adapter
from custom_components.cariflex.runtime import CariflexConfigEntry
from simulator.charger16 import now_iso
from simulator.charger201 import ENERGY as ENERGY_REGISTER, SimCharger201, SimConfig201
from tests.conftest import ChargerFactory, charger_device, state_of, wait_for

CS = "CS1"
STATUS = "sensor.cs1_status"
BADGE = "sensor.cs1_badge"
POWER = "sensor.cs1_power"
ENERGY = "sensor.cs1_energy"
SESSION_ENERGY = "sensor.cs1_session_energy"
CURRENT = "sensor.cs1_current_l{}"
CONNECTED = "binary_sensor.cs1_connected"
AVAILABLE = "switch.cs1_available"
LIMIT = "number.cs1_current_limit"
UNLOCK = "button.cs1_unlock"
RESTART = "button.cs1_restart"
HEARTBEAT = "sensor.cs1_last_heartbeat"
FIRMWARE = "sensor.cs1_firmware"
MAX_CURRENT = 32.0  # DEFAULT_MAX_CURRENT of an auto-accepted charger


# --------------------------------------------------------------------------- station
class Station(SimCharger201):
    """A :class:`SimCharger201` that also keeps what it sent and what the CSMS answered."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.requests: list[tuple[str, Any]] = []  # (action, request), recorded before sending
        self.answers: list[tuple[str, Any, Any]] = []  # (action, request, CSMS answer), once answered

    async def call(
        self, payload: Any, suppress: bool = True, unique_id: Any = None, skip_schema_validation: bool = False
    ) -> Any:
        self.requests.append((type(payload).__name__, payload))
        result = await super().call(
            payload, suppress=suppress, unique_id=unique_id, skip_schema_validation=skip_schema_validation
        )
        self.answers.append((type(payload).__name__, payload, result))
        return result

    def got(self, action: str) -> list[dict[str, Any]]:
        """What the CSMS sent for ``action`` (camelCase, as on the wire), oldest first."""
        return [payload for name, payload in self.received if name == action]

    def sent(self, action: str) -> list[Any]:
        """The messages of ``action`` the station sent (answered or not yet), oldest first."""
        return [request for name, request in self.requests if name == action]

    def answered(self, action: str) -> list[tuple[Any, Any]]:
        """(request, CSMS answer) of the messages of ``action`` already answered, oldest first."""
        return [(request, answer) for name, request, answer in self.answers if name == action]

    async def wait_answered(self, action: str, count: int) -> list[tuple[Any, Any]]:
        """Wait until ``count`` messages of ``action`` are answered (the answer reaches the station last)."""
        await wait_for(lambda: len(self.answered(action)) >= count)
        return self.answered(action)

    def forget(self) -> None:
        """Start a test step with empty logs."""
        self.received.clear()
        self.requests.clear()
        self.answers.clear()


class Stations:
    """Connect :class:`Station` objects to the site; drop and restore their websocket."""

    def __init__(self, hass: HomeAssistant, port: int) -> None:
        self.hass = hass
        self.url = f"ws://127.0.0.1:{port}"
        self._open: list[tuple[Station, Any, asyncio.Task[None]]] = []

    async def __call__(self, charger_id: str = CS, *, boot: bool = True, config: SimConfig201 | None = None) -> Station:
        ws = await self._socket(charger_id)
        station = Station(charger_id, ws, config, response_timeout=5)
        self._open.append((station, ws, self._loop(station)))
        if boot:
            result = await station.boot()
            assert result.status == "Accepted"
            await self.settle(station)
        return station

    async def _socket(self, charger_id: str) -> Any:
        return await websockets.connect(
            f"{self.url}/{charger_id}", subprotocols=[Subprotocol("ocpp2.0.1")], open_timeout=5
        )

    @staticmethod
    def _loop(station: Station) -> asyncio.Task[None]:
        async def run() -> None:
            with contextlib.suppress(websockets.ConnectionClosed):
                await station.start()

        return asyncio.get_running_loop().create_task(run())

    async def settle(self, station: Station) -> None:
        """Wait until the base report the CSMS asks for after each boot is complete; clear the logs."""

        def reported() -> bool:
            asked = len(station.got("GetBaseReport"))
            done = sum(1 for request, _ in station.answered("NotifyReport") if not request.tbc)
            return asked > 0 and done >= asked

        await wait_for(reported)
        await self.hass.async_block_till_done()
        assert self.hass.states.get(STATUS.replace("cs1", station.id.lower())) is not None
        station.forget()

    async def drop(self, station: Station) -> None:
        """The connection is lost (no close handshake); the station keeps its state."""
        for index, (known, ws, task) in enumerate(self._open):
            if known is station:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                ws.transport.abort()
                with contextlib.suppress(Exception):
                    await ws.close()
                self._open[index] = (station, None, task)
        await wait_for(lambda: not _charger(self.hass, station.id).connected)

    async def reconnect(self, station: Station) -> None:
        """The same station opens a new websocket (and does not boot)."""
        ws = await self._socket(station.id)
        station._connection = ws  # the ocpp ChargePoint's websocket: same station, new connection
        for index, (known, _ws, _task) in enumerate(self._open):
            if known is station:
                self._open[index] = (station, ws, self._loop(station))
        await wait_for(lambda: _charger(self.hass, station.id).connected)

    async def close_all(self) -> None:
        for station, ws, task in self._open:
            await station.stop_tasks()
            task.cancel()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await task
            if ws is not None:
                with contextlib.suppress(Exception):
                    await ws.close()
        self._open.clear()


@pytest.fixture
async def stations(hass: HomeAssistant, site: MockConfigEntry, ws_port: int) -> AsyncIterator[Stations]:
    """OCPP 2.0.1 stations on the site's port (closed before the site unloads)."""
    factory = Stations(hass, ws_port)
    yield factory
    await factory.close_all()


# --------------------------------------------------------------------------- helpers
def _entry(hass: HomeAssistant) -> CariflexConfigEntry:
    entry: CariflexConfigEntry = hass.config_entries.async_entries(DOMAIN)[0]
    return entry


def _charger(hass: HomeAssistant, charger_id: str = CS) -> Charger:
    """The CSMS's model of a charger."""
    return _entry(hass).runtime_data.backend.chargers[charger_id]


def _history(hass: HomeAssistant) -> list[dict[str, Any]]:
    return _entry(hass).runtime_data.history


async def _action(hass: HomeAssistant, action: str, **data: Any) -> dict[str, Any]:
    """Call ``cariflex.<action>`` on CS1; returns the station's answer."""
    response = await hass.services.async_call(
        DOMAIN, action, {"device_id": charger_device(hass, CS).id, **data}, blocking=True, return_response=True
    )
    assert isinstance(response, dict)
    return dict(response)


async def _press(hass: HomeAssistant, entity_id: str) -> None:
    await hass.services.async_call("button", "press", {"entity_id": entity_id}, blocking=True)


async def _set_limit(hass: HomeAssistant, amps: float) -> None:
    await hass.services.async_call("number", "set_value", {"entity_id": LIMIT, "value": amps}, blocking=True)


def _capture(hass: HomeAssistant, event_type: str) -> list[Event]:
    events: list[Event] = []
    hass.bus.async_listen(event_type, events.append)
    return events


def _value(hass: HomeAssistant, entity_id: str) -> float:
    return float(state_of(hass, entity_id))


async def _charging(hass: HomeAssistant, station: Station, badge: str = "TAG1", evse_id: int = 1) -> str:
    """Plug in and start a transaction; returns its id."""
    await station.status(evse_id, "Occupied")
    started = await station.transaction_started(evse_id, badge)
    assert started.id_token_info["status"] == "Accepted"
    await hass.async_block_till_done()
    transaction_id = station.evses[evse_id].transaction_id
    assert transaction_id is not None
    return transaction_id


def _profile(
    profile_id: int,
    purpose: str,
    limit: float,
    *,
    stack_level: int = 0,
    kind: str = "Relative",
    unit: str = "A",
) -> dict[str, Any]:
    """A 2.0.1 ChargingProfile (camelCase) with one period."""
    schedule: dict[str, Any] = {
        "id": 1,
        "chargingRateUnit": unit,
        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}],
    }
    if kind == "Absolute":
        schedule["startSchedule"] = now_iso()
    return {
        "id": profile_id,
        "stackLevel": stack_level,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": kind,
        "chargingSchedule": [schedule],
    }


def _limit_of(profile: dict[str, Any]) -> float:
    return float(profile["chargingSchedule"][0]["chargingSchedulePeriod"][0]["limit"])


def _installed(station: Station) -> dict[int, tuple[int, float]]:
    """The station's profiles: id -> (EVSE id, limit)."""
    return {
        profile_id: (evse_id, float(profile["charging_schedule"][0]["charging_schedule_period"][0]["limit"]))
        for profile_id, (evse_id, profile) in station.charging_profiles.items()
    }


def _sample(
    value: float, measurand: str, unit: str, *, phase: str | None = None, multiplier: int = 0
) -> dict[str, Any]:
    unit_of_measure: dict[str, Any] = {"unit": unit}
    if multiplier:
        unit_of_measure["multiplier"] = multiplier
    sample: dict[str, Any] = {
        "value": value,
        "measurand": measurand,
        "context": "Sample.Periodic",
        "unit_of_measure": unit_of_measure,
    }
    if phase:
        sample["phase"] = phase
    return sample


async def _updated(station: Station, evse_id: int, samples: list[dict[str, Any]]) -> Any:
    """A TransactionEvent Updated with these sampled values (next seqNo of the transaction)."""
    evse = station.evses[evse_id]
    seq_no = evse.seq_no
    evse.seq_no += 1
    return await station.call(
        call.TransactionEvent(
            event_type="Updated",
            timestamp=now_iso(),
            trigger_reason="MeterValuePeriodic",
            seq_no=seq_no,
            transaction_info={"transaction_id": evse.transaction_id, "charging_state": "Charging"},
            meter_value=[{"timestamp": now_iso(), "sampled_value": samples}],
            evse={"id": evse_id, "connector_id": 1},
        ),
        suppress=False,
    )


# =========================================================================== E: transactions
async def test_TC_E_30_transaction_continues_after_reconnect(hass: HomeAssistant, stations: Stations) -> None:
    """The connection is lost mid-transaction; the station reconnects without booting and goes on."""
    ended = _capture(hass, EVENT_SESSION_ENDED)
    station = await stations()
    station.evses[1].energy_wh = 10_000.0
    transaction_id = await _charging(hass, station)
    await station.transaction_updated(1, 1800)  # 7.4 kW for 30 min: +3.7 kWh
    await hass.async_block_till_done()
    assert state_of(hass, STATUS) == "charging"
    assert _value(hass, SESSION_ENERGY) == pytest.approx(3.7)
    session = _charger(hass).connectors[1].session
    assert session is not None

    await stations.drop(station)
    await hass.async_block_till_done()
    assert state_of(hass, CONNECTED) == "off"
    assert state_of(hass, STATUS) == "unavailable"
    assert _charger(hass).connectors[1].session is session  # the CSMS keeps the transaction open
    assert _history(hass) == []

    # The car kept charging while the station was away: 15 more minutes at 7.4 kW.
    await stations.reconnect(station)
    station.forget()
    answer = await station.transaction_updated(1, 900)  # seqNo 2: the register includes the offline time
    assert answer is not None
    await hass.async_block_till_done()
    assert station.sent("BootNotification") == []
    assert state_of(hass, CONNECTED) == "on"
    assert state_of(hass, STATUS) == "charging"
    assert state_of(hass, BADGE) == "TAG1"
    assert _value(hass, POWER) == pytest.approx(7.4)
    assert _value(hass, SESSION_ENERGY) == pytest.approx(5.55)
    assert _value(hass, ENERGY) == pytest.approx(15.55)
    assert _charger(hass).connectors[1].session is session

    await station.transaction_updated(1, 600)  # seqNo 3
    await station.end_session(1)  # seqNo 4
    await hass.async_block_till_done()
    assert state_of(hass, STATUS) == "available"
    assert len(ended) == 1
    assert [record["transaction_id"] for record in _history(hass)] == [transaction_id]
    record = _history(hass)[0]
    assert record["energy_wh"] == pytest.approx(station.evses[1].energy_wh - 10_000.0, abs=0.1)
    assert record["energy_wh"] == pytest.approx(6783.3, abs=0.1)
    assert record["offline_start"] is False
    assert ended[0].data["transaction_id"] == transaction_id


async def test_TC_E_38_offline_transaction(hass: HomeAssistant, stations: Stations) -> None:
    """A whole transaction happens offline; its queued events (offline=true) are recorded once."""
    ended = _capture(hass, EVENT_SESSION_ENDED)
    station = await stations()
    await station.status(1, "Available")
    station.evses[1].energy_wh = 1000.0

    station.queue_offline = True
    await stations.drop(station)
    assert await station.transaction_started(1, "OFFLINE1") is None
    assert await station.transaction_updated(1, 1800) is None  # +3.7 kWh
    assert await station.transaction_ended(1, seconds=900) is None  # +1.85 kWh
    queued = list(station.offline_queue)
    assert [event.event_type for event in queued] == ["Started", "Updated", "Ended"]
    assert [event.seq_no for event in queued] == [0, 1, 2]
    assert all(event.offline for event in queued)
    transaction_id = queued[0].transaction_info["transaction_id"]
    await hass.async_block_till_done()
    assert _history(hass) == []
    assert ended == []

    await stations.reconnect(station)
    answers = await station.replay_offline_queue()
    await station.status(1, "Available")
    await hass.async_block_till_done()

    assert len(answers) == 3
    assert answers[0].id_token_info["status"] == "Accepted"  # the offline start is authorized afterwards
    assert station.offline_queue == []
    assert len(ended) == 1
    [record] = _history(hass)
    assert record["transaction_id"] == transaction_id
    assert record["id_tag"] == "OFFLINE1"
    assert record["meter_start_wh"] == pytest.approx(1000.0)
    assert record["energy_wh"] == pytest.approx(5550.0)
    assert record["offline_start"] is True
    assert record["stop_reason"] == "Local"
    assert datetime.fromisoformat(record["started_at"]) <= datetime.fromisoformat(record["stopped_at"])
    assert ended[0].data["energy_wh"] == pytest.approx(5550.0)
    # Nothing is left running; the register shows the last reading.
    assert state_of(hass, STATUS) == "available"
    assert state_of(hass, BADGE) == "unknown"
    assert _value(hass, SESSION_ENERGY) == 0.0
    assert _value(hass, POWER) == 0.0
    assert _value(hass, ENERGY) == pytest.approx(6.55)


async def test_TC_E_53_offline_events_replayed_twice_are_deduplicated(hass: HomeAssistant, stations: Stations) -> None:
    """Queued TransactionEvents sent twice: each (transactionId, seqNo) is applied once."""
    ended = _capture(hass, EVENT_SESSION_ENDED)
    station = await stations()
    await station.status(1, "Available")
    station.evses[1].energy_wh = 2000.0

    station.queue_offline = True
    await stations.drop(station)
    await station.transaction_started(1, "DUP1")  # seqNo 0: 2000 Wh
    await station.transaction_updated(1, 1800)  # seqNo 1: 5700 Wh
    await station.transaction_updated(1, 1800)  # seqNo 2: 9400 Wh
    await station.transaction_ended(1, seconds=0)  # seqNo 3
    queued = list(station.offline_queue)
    assert [event.seq_no for event in queued] == [0, 1, 2, 3]
    transaction_id = queued[0].transaction_info["transaction_id"]

    await stations.reconnect(station)
    station.forget()
    answers = await station.replay_offline_queue(duplicate=True)
    await hass.async_block_till_done()

    assert len(answers) == 8  # every copy is answered (the station must be able to empty its queue)
    assert [request.seq_no for request in station.sent("TransactionEvent")] == [0, 0, 1, 1, 2, 2, 3, 3]
    assert answers[0] == answers[1]  # the copy gets the same idTokenInfo
    assert answers[0].id_token_info["status"] == "Accepted"
    assert len(ended) == 1
    [record] = _history(hass)
    assert record["transaction_id"] == transaction_id
    assert record["energy_wh"] == pytest.approx(7400.0)
    assert ended[0].data["energy_wh"] == pytest.approx(7400.0)

    # The connection drops before the station saw the answers: it sends the whole queue once more.
    await stations.drop(station)
    await stations.reconnect(station)
    for event in queued:
        assert await station.call(event, suppress=False) is not None
    await hass.async_block_till_done()
    assert len(ended) == 1
    assert len(_history(hass)) == 1
    assert _charger(hass).connectors[1].session is None  # no phantom session from the old Started
    assert state_of(hass, BADGE) == "unknown"
    assert _value(hass, SESSION_ENERGY) == 0.0
    assert _value(hass, ENERGY) == pytest.approx(9.4)

    # Deduplication is by (transactionId, seqNo): the next transaction starts at seqNo 0 again.
    second = await _charging(hass, station, "DUP2")
    await station.transaction_updated(1, 600)
    await station.end_session(1)
    await hass.async_block_till_done()
    assert [record["transaction_id"] for record in _history(hass)] == [transaction_id, second]
    assert len(ended) == 2
    assert _history(hass)[1]["energy_wh"] == pytest.approx(1233.3, abs=0.1)


async def test_TC_E_53_replay_after_home_assistant_restart_is_deduplicated(
    hass: HomeAssistant, site: MockConfigEntry, stations: Stations
) -> None:
    ended = _capture(hass, EVENT_SESSION_ENDED)
    station = await stations()
    await station.status(1, "Available")
    station.queue_offline = True
    await stations.drop(station)
    await station.transaction_started(1, "DUP1")
    await station.transaction_updated(1, 1800)
    await station.transaction_ended(1, seconds=0)
    queued = list(station.offline_queue)
    await stations.reconnect(station)
    await station.replay_offline_queue()
    await hass.async_block_till_done()
    assert len(ended) == 1

    # Home Assistant restarts; the station, which never saw the answers, sends its queue again.
    await stations.drop(station)
    assert await hass.config_entries.async_reload(site.entry_id)
    await hass.async_block_till_done()
    await stations.reconnect(station)
    for event in queued:
        assert await station.call(event, suppress=False) is not None
    await hass.async_block_till_done()

    assert _charger(hass).connectors[1].session is None
    assert len(_history(hass)) == 1
    assert len(ended) == 1


# =========================================================================== F: remote control
async def test_TC_F_01_remote_start_cable_plugged_first(hass: HomeAssistant, stations: Stations) -> None:
    """Cable first, then RequestStartTransaction from Home Assistant: the station starts charging."""
    station = await stations()
    await station.status(1, "Occupied")
    await hass.async_block_till_done()
    assert state_of(hass, STATUS) == "occupied"

    result = await _action(hass, "remote_start_transaction", id_tag="REMOTE1", connector_id=1)

    assert result == {"status": "Accepted"}
    [request] = station.got("RequestStartTransaction")
    assert request["idToken"] == {"idToken": "REMOTE1", "type": "Central"}
    assert request["evseId"] == 1
    assert isinstance(request["remoteStartId"], int)
    assert "chargingProfile" not in request
    await wait_for(lambda: state_of(hass, STATUS) == "charging")
    [(started, answer)] = await station.wait_answered("TransactionEvent", 1)
    assert started.trigger_reason == "RemoteStart"
    assert started.transaction_info["remote_start_id"] == request["remoteStartId"]
    assert answer.id_token_info["status"] == "Accepted"
    assert state_of(hass, BADGE) == "REMOTE1"
    session = _charger(hass).connectors[1].session
    assert session is not None
    assert session.transaction_id == station.evses[1].transaction_id
    assert session.id_tag == "REMOTE1"


async def test_TC_F_02_remote_start_first_then_cable(hass: HomeAssistant, stations: Stations) -> None:
    """RequestStartTransaction before the cable: the transaction starts, charging follows the plug-in."""
    station = await stations()
    station.auto_session = False  # the station is scripted step by step below
    await station.status(1, "Available")

    result = await _action(hass, "remote_start_transaction", id_tag="REMOTE2")

    assert result == {"status": "Accepted"}
    [request] = station.got("RequestStartTransaction")
    assert "evseId" not in request  # the station chooses the EVSE
    # TxStartPoint Authorized: the transaction starts at once, no cable yet.
    started = await station.transaction_started(
        1,
        "REMOTE2",
        "RemoteStart",
        remote_start_id=request["remoteStartId"],
        token_type="Central",
        charging_state="Idle",
    )
    assert started.id_token_info["status"] == "Accepted"
    await hass.async_block_till_done()
    assert state_of(hass, BADGE) == "REMOTE2"
    assert state_of(hass, STATUS) not in ("available", "charging")
    session = _charger(hass).connectors[1].session
    assert session is not None
    assert session.transaction_id == station.evses[1].transaction_id

    await station.status(1, "Occupied")  # the driver plugs in
    await station.transaction_updated(1, 0, "CablePluggedIn", "EVConnected")
    await hass.async_block_till_done()
    assert state_of(hass, STATUS) == "preparing"
    await station.transaction_updated(1, 0, "ChargingStateChanged", "Charging")
    await hass.async_block_till_done()
    assert state_of(hass, STATUS) == "charging"
    assert _value(hass, POWER) == pytest.approx(7.4)
    assert _charger(hass).connectors[1].session is session


async def test_TC_F_03_remote_stop_transaction(hass: HomeAssistant, stations: Stations) -> None:
    """RequestStopTransaction: Cariflex finds the running transaction's id by itself."""
    station = await stations(config=SimConfig201(evses=2))
    first = await _charging(hass, station, "TAG1", evse_id=1)
    second = await _charging(hass, station, "TAG2", evse_id=2)
    await station.transaction_updated(1, 600)

    # On the connector given...
    assert await _action(hass, "remote_stop_transaction", connector_id=2) == {"status": "Accepted"}
    assert station.got("RequestStopTransaction") == [{"transactionId": second}]
    await wait_for(lambda: _charger(hass).connectors[2].status.value == "available")
    # ...or the one that runs when none is given.
    assert await _action(hass, "remote_stop_transaction") == {"status": "Accepted"}
    assert station.got("RequestStopTransaction")[-1] == {"transactionId": first}
    await wait_for(lambda: state_of(hass, STATUS) == "available")

    assert [(r["transaction_id"], r["stop_reason"]) for r in _history(hass)] == [
        (second, "Remote"),
        (first, "Remote"),
    ]
    assert state_of(hass, BADGE) == "unknown"
    # Nothing runs any more: refused before anything is sent.
    with pytest.raises(ServiceValidationError):
        await _action(hass, "remote_stop_transaction")
    assert len(station.got("RequestStopTransaction")) == 2


async def test_TC_F_04_remote_stop_transaction_rejected(hass: HomeAssistant, stations: Stations) -> None:
    """The station rejects RequestStopTransaction: the user gets Rejected, the session goes on."""
    station = await stations()
    transaction_id = await _charging(hass, station)
    station.forget()
    station.responses["RequestStopTransaction"] = "Rejected"

    assert await _action(hass, "remote_stop_transaction") == {"status": "Rejected"}
    assert station.got("RequestStopTransaction") == [{"transactionId": transaction_id}]
    # An explicit id the station does not know is rejected too.
    del station.responses["RequestStopTransaction"]
    assert await _action(hass, "remote_stop_transaction", transaction_id="no-such-tx") == {"status": "Rejected"}
    assert station.got("RequestStopTransaction")[-1] == {"transactionId": "no-such-tx"}

    await hass.async_block_till_done()
    assert station.sent("TransactionEvent") == []
    assert state_of(hass, STATUS) == "charging"
    assert state_of(hass, BADGE) == "TAG1"
    assert _charger(hass).connectors[1].session is not None
    assert _history(hass) == []


async def test_TC_F_06_trigger_message(hass: HomeAssistant, stations: Stations) -> None:
    """TriggerMessage for BootNotification, Heartbeat, StatusNotification, MeterValues, TransactionEvent."""
    station = await stations()

    async def trigger(message: str, **data: Any) -> dict[str, Any]:
        return await _action(hass, "trigger_message", requested_message=message, **data)

    # BootNotification: accepted again, the device model is read again.
    station.boot_result = None
    assert await trigger("BootNotification") == {"status": "Accepted"}
    assert station.got("TriggerMessage") == [{"requestedMessage": "BootNotification"}]
    await wait_for(lambda: station.boot_result is not None)
    assert station.boot_result.status == "Accepted"
    [boot] = station.sent("BootNotification")
    assert boot.reason == "Triggered"
    await stations.settle(station)

    # Heartbeat
    assert state_of(hass, HEARTBEAT) == "unknown"
    assert await trigger("Heartbeat") == {"status": "Accepted"}
    await station.wait_answered("Heartbeat", 1)
    await hass.async_block_till_done()
    assert state_of(hass, HEARTBEAT) not in ("unknown", "unavailable")

    # StatusNotification of EVSE 1: the cable went in without the CSMS being told.
    station.evses[1].connector_status = "Occupied"
    assert await trigger("StatusNotification", connector_id=1) == {"status": "Accepted"}
    assert station.got("TriggerMessage")[-1] == {"requestedMessage": "StatusNotification", "evse": {"id": 1}}
    await wait_for(lambda: state_of(hass, STATUS) == "occupied")

    # MeterValues
    station.evses[1].energy_wh = 4321.0
    assert await trigger("MeterValues", connector_id=1) == {"status": "Accepted"}
    await wait_for(lambda: state_of(hass, ENERGY) not in ("unknown", "unavailable"))
    assert _value(hass, ENERGY) == pytest.approx(4.321)
    [meter_values] = station.sent("MeterValues")
    assert meter_values.meter_value[0]["sampled_value"][0]["context"] == "Trigger"

    # TransactionEvent: nothing to report without a transaction, then the running one.
    assert await trigger("TransactionEvent", connector_id=1) == {"status": "Rejected"}
    await _charging(hass, station)
    station.evses[1].energy_wh += 1000.0
    assert await trigger("TransactionEvent", connector_id=1) == {"status": "Accepted"}
    await wait_for(lambda: _value(hass, SESSION_ENERGY) == pytest.approx(1.0))
    request = station.sent("TransactionEvent")[-1]
    assert (request.event_type, request.trigger_reason) == ("Updated", "Trigger")
    assert (await station.wait_answered("TransactionEvent", 2))[-1][1] is not None


async def test_TC_F_11_unlock_connector(hass: HomeAssistant, stations: Stations) -> None:
    """UnlockConnector from the unlock button and from the action."""
    station = await stations()
    await station.status(1, "Occupied")

    await _press(hass, UNLOCK)
    assert station.got("UnlockConnector") == [{"evseId": 1, "connectorId": 1}]
    assert await _action(hass, "unlock_connector", connector_id=1) == {"status": "Unlocked"}
    assert station.got("UnlockConnector")[-1] == {"evseId": 1, "connectorId": 1}

    # Failures: the button reports an error, the action returns the station's answer.
    station.responses["UnlockConnector"] = "UnlockFailed"
    with pytest.raises(HomeAssistantError):
        await _press(hass, UNLOCK)
    assert await _action(hass, "unlock_connector") == {"status": "UnlockFailed"}
    del station.responses["UnlockConnector"]
    await _charging(hass, station)
    with pytest.raises(HomeAssistantError):
        await _press(hass, UNLOCK)  # OngoingAuthorizedTransaction
    assert len(station.got("UnlockConnector")) == 5
    assert state_of(hass, STATUS) == "charging"


# =========================================================================== G: availability
async def test_TC_G_03_change_availability_evse(hass: HomeAssistant, stations: Stations) -> None:
    """ChangeAvailability of one EVSE (the action with connector_id): Inoperative, then Operative."""
    station = await stations(config=SimConfig201(evses=2))
    await station.status(1, "Available")
    await station.status(2, "Available")

    assert await _action(hass, "change_availability", connector_id=1, operative=False) == {"status": "Accepted"}
    assert station.got("ChangeAvailability") == [{"operationalStatus": "Inoperative", "evse": {"id": 1}}]
    await wait_for(lambda: state_of(hass, STATUS) == "unavailable")
    assert _charger(hass).connectors[2].status.value == "available"
    assert state_of(hass, AVAILABLE) == "on"  # the station as a whole stays operative

    assert await _action(hass, "change_availability", connector_id=1, operative=True) == {"status": "Accepted"}
    assert station.got("ChangeAvailability")[-1] == {"operationalStatus": "Operative", "evse": {"id": 1}}
    await wait_for(lambda: state_of(hass, STATUS) == "available")

    # With a transaction running the change is only Scheduled: nothing changes yet.
    await _charging(hass, station, evse_id=2)
    assert await _action(hass, "change_availability", connector_id=2, operative=False) == {"status": "Scheduled"}
    await hass.async_block_till_done()
    assert _charger(hass).connectors[2].status.value == "charging"


async def test_TC_G_04_change_availability_charging_station(hass: HomeAssistant, stations: Stations) -> None:
    """The availability switch sends ChangeAvailability for the whole station (no EVSE)."""
    station = await stations(config=SimConfig201(evses=2))
    await station.status(1, "Available")
    await station.status(2, "Available")
    await hass.async_block_till_done()
    assert state_of(hass, AVAILABLE) == "on"

    await hass.services.async_call("switch", "turn_off", {"entity_id": AVAILABLE}, blocking=True)
    assert station.got("ChangeAvailability") == [{"operationalStatus": "Inoperative"}]
    await wait_for(lambda: state_of(hass, AVAILABLE) == "off")
    assert [c.status.value for c in _charger(hass).outlets] == ["unavailable", "unavailable"]

    await hass.services.async_call("switch", "turn_on", {"entity_id": AVAILABLE}, blocking=True)
    assert station.got("ChangeAvailability")[-1] == {"operationalStatus": "Operative"}
    await wait_for(lambda: [c.status.value for c in _charger(hass).outlets] == ["available", "available"])
    assert state_of(hass, AVAILABLE) == "on"

    station.responses["ChangeAvailability"] = "Rejected"
    with pytest.raises(HomeAssistantError):
        await hass.services.async_call("switch", "turn_off", {"entity_id": AVAILABLE}, blocking=True)
    await hass.async_block_till_done()
    assert state_of(hass, AVAILABLE) == "on"


# =========================================================================== J: meter values
async def test_TC_J_01_clock_aligned_meter_values_outside_transaction(hass: HomeAssistant, stations: Stations) -> None:
    """Clock-aligned MeterValues without a transaction: the register and the power are shown."""
    station = await stations()
    await station.status(1, "Available")

    answer = await station.call(
        call.MeterValues(
            evse_id=1,
            meter_value=[
                {
                    "timestamp": now_iso(),
                    "sampled_value": [
                        {
                            "value": 12.3456,
                            "context": "Sample.Clock",
                            "measurand": ENERGY_REGISTER,
                            "unit_of_measure": {"unit": "kWh"},
                        },
                        {
                            "value": 15.0,
                            "context": "Sample.Clock",
                            "measurand": "Power.Active.Import",
                            "unit_of_measure": {"unit": "W"},
                        },
                    ],
                }
            ],
        ),
        suppress=False,
    )
    await hass.async_block_till_done()

    assert answer is not None  # an empty MeterValuesResponse, no CALLERROR
    assert _value(hass, ENERGY) == pytest.approx(12.3456)
    assert _value(hass, POWER) == pytest.approx(0.015)
    readings = _charger(hass).connectors[1].readings
    assert readings.energy_wh == pytest.approx(12345.6)
    assert readings.power_w == pytest.approx(15.0)
    # A reading is not a session.
    assert state_of(hass, STATUS) == "available"
    assert state_of(hass, BADGE) == "unknown"
    assert _value(hass, SESSION_ENERGY) == 0.0
    assert _history(hass) == []

    # The next clock-aligned value (in Wh) moves the register on.
    station.evses[1].energy_wh = 12_400.0
    await station.meter_values(1, context="Sample.Clock")
    await hass.async_block_till_done()
    assert _value(hass, ENERGY) == pytest.approx(12.4)
    assert _value(hass, POWER) == 0.0
    assert _history(hass) == []


async def test_TC_J_07_sampled_meter_values_in_transaction_event(hass: HomeAssistant, stations: Stations) -> None:
    """Sampled values in TransactionEvent Updated: power, current per phase, voltage, energy (units, multiplier)."""
    station = await stations()
    station.evses[1].energy_wh = 10_000.0
    await _charging(hass, station)

    answer = await _updated(
        station,
        1,
        [
            _sample(12.5, ENERGY_REGISTER, "kWh"),
            _sample(7.36, "Power.Active.Import", "W", multiplier=3),
            _sample(10.6, "Current.Import", "A", phase="L1"),
            _sample(10.7, "Current.Import", "A", phase="L2"),
            _sample(10.8, "Current.Import", "A", phase="L3"),
            _sample(229.0, "Voltage", "V", phase="L1-N"),
            _sample(230.0, "Voltage", "V", phase="L2-N"),
            _sample(231.0, "Voltage", "V", phase="L3-N"),
        ],
    )
    await hass.async_block_till_done()

    assert answer is not None
    assert _value(hass, POWER) == pytest.approx(7.36)
    assert [_value(hass, CURRENT.format(n)) for n in (1, 2, 3)] == pytest.approx([10.6, 10.7, 10.8])
    assert _charger(hass).connectors[1].readings.voltage_v == pytest.approx(230.0)
    assert _value(hass, ENERGY) == pytest.approx(12.5)
    assert _value(hass, SESSION_ENERGY) == pytest.approx(2.5)

    # Wh with a multiplier of 10^3 is kWh too; power in W with multiplier 0.
    await _updated(
        station,
        1,
        [_sample(13.0, ENERGY_REGISTER, "Wh", multiplier=3), _sample(6900.0, "Power.Active.Import", "W")],
    )
    await hass.async_block_till_done()
    assert _value(hass, ENERGY) == pytest.approx(13.0)
    assert _value(hass, SESSION_ENERGY) == pytest.approx(3.0)
    assert _value(hass, POWER) == pytest.approx(6.9)
    assert state_of(hass, STATUS) == "charging"


# =========================================================================== K: smart charging
async def test_TC_K_01_tx_default_profile_from_current_limit(hass: HomeAssistant, stations: Stations) -> None:
    """No transaction: the current limit becomes a TxDefaultProfile on the EVSE (never a station max profile)."""
    station = await stations()
    await station.status(1, "Available")
    assert _value(hass, LIMIT) == MAX_CURRENT

    await _set_limit(hass, 16)

    [request] = station.got("SetChargingProfile")
    assert request["evseId"] == 1
    profile = request["chargingProfile"]
    assert profile["id"] == TX_DEFAULT_PROFILE_ID + 1
    assert profile["chargingProfilePurpose"] == "TxDefaultProfile"
    assert "transactionId" not in profile
    assert profile["chargingSchedule"][0]["chargingRateUnit"] == "A"
    assert _limit_of(profile) == 16
    assert station.evses[1].limit_a == 16
    await hass.async_block_till_done()
    assert _value(hass, LIMIT) == 16

    await _set_limit(hass, 0)  # 0 A pauses charging; still a TxDefaultProfile
    assert _limit_of(station.got("SetChargingProfile")[-1]["chargingProfile"]) == 0
    assert _value(hass, LIMIT) == 0
    purposes = {r["chargingProfile"]["chargingProfilePurpose"] for r in station.got("SetChargingProfile")}
    assert purposes == {"TxDefaultProfile"}


async def test_TC_K_02_tx_profile_on_running_transaction(hass: HomeAssistant, stations: Stations) -> None:
    """During a transaction the current limit becomes a TxProfile carrying the transactionId."""
    station = await stations()
    transaction_id = await _charging(hass, station)
    await station.transaction_updated(1, 60)
    await hass.async_block_till_done()
    assert _value(hass, POWER) == pytest.approx(7.4)

    await _set_limit(hass, 10)

    [request] = station.got("SetChargingProfile")
    assert request["evseId"] == 1
    profile = request["chargingProfile"]
    assert profile["id"] == TX_PROFILE_ID + 1
    assert profile["chargingProfilePurpose"] == "TxProfile"
    assert profile["transactionId"] == transaction_id
    assert _limit_of(profile) == 10
    assert station.evses[1].limit_a == 10
    await station.transaction_updated(1, 60)  # the EV now draws 10 A x 3 x 230 V
    await hass.async_block_till_done()
    assert _value(hass, LIMIT) == 10
    assert _value(hass, POWER) == pytest.approx(6.9)


async def test_TC_K_02_tx_profile_on_one_phase_survives_a_reconnect(hass: HomeAssistant, stations: Stations) -> None:
    """A phase switch: numberPhases 1 in the TxProfile, the EV draws on L1 only, the reconnect re-sends both."""
    station = await stations()
    await _charging(hass, station)
    link = _charger(hass).link
    assert link is not None
    assert await link.set_current_limit(1, 16, 1) == "Accepted"
    [request] = station.got("SetChargingProfile")
    assert request["chargingProfile"]["chargingSchedule"][0]["chargingSchedulePeriod"] == [
        {"startPeriod": 0, "limit": 16.0, "numberPhases": 1}
    ]
    assert station.evses[1].active_phases == 1
    await station.transaction_updated(1, 60)  # the EV draws 16 A on one phase: 3.68 kW
    await hass.async_block_till_done()
    assert _value(hass, POWER) == pytest.approx(3.68)
    assert _charger(hass).connectors[1].readings.current_a == {"L1": 16.0}
    assert _charger(hass).connectors[1].limit_phases == 1

    await stations.drop(station)
    station.evses[1].number_phases = None  # the station forgot its profiles
    station.forget()
    await stations.reconnect(station)
    await wait_for(lambda: bool(station.got("SetChargingProfile")), timeout=10)
    period = station.got("SetChargingProfile")[-1]["chargingProfile"]["chargingSchedule"][0]["chargingSchedulePeriod"]
    assert period == [{"startPeriod": 0, "limit": 16.0, "numberPhases": 1}]
    assert station.evses[1].active_phases == 1

    # Back to our default: the limit is removed and the phases with it.
    link = _charger(hass).link
    assert link is not None
    assert await link.set_current_limit(1, None) == "Accepted"
    assert _charger(hass).connectors[1].limit_phases is None


async def test_TC_K_03_charging_station_max_profile(hass: HomeAssistant, stations: Stations) -> None:
    """set_charging_profile with EVSE 0 and a ChargingStationMaxProfile (Absolute, never Relative)."""
    station = await stations()
    await station.status(1, "Available")
    profile = _profile(300, "ChargingStationMaxProfile", 20.0, kind="Absolute")

    result = await _action(hass, "set_charging_profile", connector_id=0, charging_profile=profile)

    assert result == {"status": "Accepted"}
    assert station.got("SetChargingProfile") == [{"evseId": 0, "chargingProfile": profile}]
    assert station.evses[1].limit_a == 20  # caps every EVSE
    await hass.async_block_till_done()
    assert _value(hass, LIMIT) == MAX_CURRENT  # not our per-connector limit

    # A station max profile on one EVSE is not allowed: the station's Rejected comes back.
    on_evse = _profile(301, "ChargingStationMaxProfile", 10.0, kind="Absolute")
    assert await _action(hass, "set_charging_profile", connector_id=1, charging_profile=on_evse) == {
        "status": "Rejected"
    }
    # Our own limit stays a TxDefaultProfile under the cap.
    await _set_limit(hass, 25)
    assert station.evses[1].limit_a == 20
    sent = [r["chargingProfile"] for r in station.got("SetChargingProfile")]
    assert all(
        p["chargingProfileKind"] != "Relative"
        for p in sent
        if p["chargingProfilePurpose"].startswith("ChargingStation")
    )
    assert [p["chargingProfilePurpose"] for p in sent] == [
        "ChargingStationMaxProfile",
        "ChargingStationMaxProfile",
        "TxDefaultProfile",
    ]


async def test_TC_K_04_replace_charging_profile(hass: HomeAssistant, stations: Stations) -> None:
    """A profile sent again with the same id replaces the first one."""
    station = await stations()
    await station.status(1, "Available")

    first = _profile(50, "TxDefaultProfile", 20.0, stack_level=2)
    second = _profile(50, "TxDefaultProfile", 12.0, stack_level=2)
    assert await _action(hass, "set_charging_profile", connector_id=1, charging_profile=first) == {"status": "Accepted"}
    assert await _action(hass, "set_charging_profile", connector_id=1, charging_profile=second) == {
        "status": "Accepted"
    }
    assert _installed(station) == {50: (1, 12.0)}
    assert station.evses[1].limit_a == 12

    report = await _action(hass, "get_charging_profiles", connector_id=1)
    assert report["status"] == "Accepted"
    profiles = [p for item in report["reportData"] for p in item["chargingProfile"]]
    assert [(p["id"], _limit_of(p)) for p in profiles] == [(50, 12.0)]

    # Our current limit always uses the same id: it replaces itself too.
    await _set_limit(hass, 16)
    await _set_limit(hass, 14)
    assert [r["chargingProfile"]["id"] for r in station.got("SetChargingProfile")[-2:]] == [
        TX_DEFAULT_PROFILE_ID + 1
    ] * 2
    assert _installed(station) == {50: (1, 12.0), TX_DEFAULT_PROFILE_ID + 1: (1, 14.0)}
    assert _value(hass, LIMIT) == 14


async def test_TC_K_05_clear_charging_profile(hass: HomeAssistant, stations: Stations) -> None:
    """ClearChargingProfile by id and by purpose + stack level; our limit is forgotten when it is cleared."""
    station = await stations()
    await station.status(1, "Available")
    await _set_limit(hass, 16)
    ours = TX_DEFAULT_PROFILE_ID + 1

    # By id.
    assert await _action(hass, "clear_charging_profile", profile_id=ours) == {"status": "Accepted"}
    assert station.got("ClearChargingProfile") == [{"chargingProfileId": ours}]
    assert _installed(station) == {}
    await hass.async_block_till_done()
    assert _value(hass, LIMIT) == MAX_CURRENT
    assert _charger(hass).connectors[1].current_limit_a is None
    # An unknown id: Unknown, nothing forgotten.
    await _set_limit(hass, 12)
    assert await _action(hass, "clear_charging_profile", profile_id=4242) == {"status": "Unknown"}
    assert _value(hass, LIMIT) == 12

    # By purpose and stack level: only the profiles matching both go.
    user = _profile(60, "TxDefaultProfile", 20.0, stack_level=0)
    assert await _action(hass, "set_charging_profile", connector_id=1, charging_profile=user) == {"status": "Accepted"}
    stack = station.got("SetChargingProfile")[-2]["chargingProfile"]["stackLevel"]
    assert stack != 0
    result = await _action(hass, "clear_charging_profile", purpose="TxDefaultProfile", stack_level=stack)
    assert result == {"status": "Accepted"}
    assert station.got("ClearChargingProfile")[-1] == {
        "chargingProfileCriteria": {"chargingProfilePurpose": "TxDefaultProfile", "stackLevel": stack}
    }
    assert _installed(station) == {60: (1, 20.0)}
    await hass.async_block_till_done()
    assert _value(hass, LIMIT) == MAX_CURRENT
    assert _charger(hass).connectors[1].current_limit_a is None


async def test_TC_K_05_clear_other_stack_level_keeps_our_limit(hass: HomeAssistant, stations: Stations) -> None:
    station = await stations()
    await station.status(1, "Available")
    await _set_limit(hass, 12)
    user = _profile(60, "TxDefaultProfile", 20.0, stack_level=0)
    assert await _action(hass, "set_charging_profile", connector_id=1, charging_profile=user) == {"status": "Accepted"}

    result = await _action(hass, "clear_charging_profile", purpose="TxDefaultProfile", stack_level=0)

    assert result == {"status": "Accepted"}
    assert _installed(station) == {TX_DEFAULT_PROFILE_ID + 1: (1, 12.0)}  # ours is still in force
    await hass.async_block_till_done()
    assert _value(hass, LIMIT) == 12


async def test_TC_K_05_clear_evse_0_keeps_our_evse_limit(hass: HomeAssistant, stations: Stations) -> None:
    station = await stations()
    await station.status(1, "Available")
    await _set_limit(hass, 12)
    station_wide = _profile(61, "TxDefaultProfile", 20.0, stack_level=0)
    assert await _action(hass, "set_charging_profile", connector_id=0, charging_profile=station_wide) == {
        "status": "Accepted"
    }

    result = await _action(hass, "clear_charging_profile", connector_id=0, purpose="TxDefaultProfile")

    assert result == {"status": "Accepted"}
    assert _installed(station) == {TX_DEFAULT_PROFILE_ID + 1: (1, 12.0)}  # ours is still in force
    await hass.async_block_till_done()
    assert _value(hass, LIMIT) == 12


async def test_TC_K_10_get_charging_profiles(hass: HomeAssistant, stations: Stations) -> None:
    """GetChargingProfiles: the ReportChargingProfiles that follow come back as reportData."""
    station = await stations()
    await station.status(1, "Available")
    await _set_limit(hass, 16)
    station_max = _profile(300, "ChargingStationMaxProfile", 25.0, kind="Absolute")
    assert await _action(hass, "set_charging_profile", connector_id=0, charging_profile=station_max) == {
        "status": "Accepted"
    }

    report = await _action(hass, "get_charging_profiles")

    assert report["status"] == "Accepted"
    assert report["complete"] is True
    [request] = station.got("GetChargingProfiles")
    assert request["chargingProfile"] == {}
    assert isinstance(request["requestId"], int)
    by_evse = {item["evseId"]: item for item in report["reportData"]}
    assert sorted(by_evse) == [0, 1]
    assert [p["id"] for p in by_evse[0]["chargingProfile"]] == [300]
    assert [p["id"] for p in by_evse[1]["chargingProfile"]] == [TX_DEFAULT_PROFILE_ID + 1]
    assert _limit_of(by_evse[1]["chargingProfile"][0]) == 16
    assert {item["chargingLimitSource"] for item in report["reportData"]} == {"CSO"}
    reports = await station.wait_answered("ReportChargingProfiles", 2)
    assert [r.request_id for r, _ in reports] == [request["requestId"]] * 2
    assert all(answer is not None for _, answer in reports)

    # Criteria: by purpose; and nothing matching.
    report = await _action(hass, "get_charging_profiles", purpose="TxDefaultProfile")
    assert station.got("GetChargingProfiles")[-1]["chargingProfile"] == {"chargingProfilePurpose": "TxDefaultProfile"}
    assert [p["id"] for item in report["reportData"] for p in item["chargingProfile"]] == [TX_DEFAULT_PROFILE_ID + 1]
    assert await _action(hass, "get_charging_profiles", purpose="TxProfile") == {"status": "NoProfiles"}


async def test_TC_K_37_remote_start_with_charging_profile(hass: HomeAssistant, stations: Stations) -> None:
    """RequestStartTransaction with a TxProfile: the transaction starts limited by it."""
    station = await stations()
    await station.status(1, "Occupied")
    profile = _profile(77, "TxProfile", 8.0)

    result = await _action(
        hass, "remote_start_transaction", id_tag="REMOTE37", connector_id=1, charging_profile=profile
    )

    assert result == {"status": "Accepted"}
    [request] = station.got("RequestStartTransaction")
    assert request["chargingProfile"] == profile
    assert "transactionId" not in request["chargingProfile"]  # the station fills it in
    await wait_for(lambda: 77 in station.charging_profiles)
    transaction_id = station.evses[1].transaction_id
    assert station.charging_profiles[77][1]["transaction_id"] == transaction_id
    assert station.evses[1].limit_a == 8
    await station.transaction_updated(1, 60)
    await hass.async_block_till_done()
    assert state_of(hass, STATUS) == "charging"
    assert state_of(hass, BADGE) == "REMOTE37"
    assert _value(hass, POWER) == pytest.approx(5.52)  # 8 A x 3 x 230 V
    session = _charger(hass).connectors[1].session
    assert session is not None
    assert session.transaction_id == transaction_id


async def test_TC_K_43_get_composite_schedule(hass: HomeAssistant, stations: Stations) -> None:
    """GetCompositeSchedule of an EVSE, in A and in W; an unknown EVSE is Rejected."""
    station = await stations()
    await station.status(1, "Available")
    await _set_limit(hass, 16)

    result = await _action(hass, "get_composite_schedule", connector_id=1, duration=3600, charging_rate_unit="A")

    assert station.got("GetCompositeSchedule") == [{"evseId": 1, "duration": 3600, "chargingRateUnit": "A"}]
    assert result["status"] == "Accepted"
    schedule = result["schedule"]
    assert (schedule["evseId"], schedule["duration"], schedule["chargingRateUnit"]) == (1, 3600, "A")
    assert schedule["chargingSchedulePeriod"] == [{"startPeriod": 0, "limit": 16.0}]

    in_watts = await _action(hass, "get_composite_schedule", connector_id=1, duration=600, charging_rate_unit="W")
    assert in_watts["schedule"]["chargingSchedulePeriod"][0]["limit"] == pytest.approx(11040.0)
    whole = await _action(hass, "get_composite_schedule", duration=600)
    assert station.got("GetCompositeSchedule")[-1] == {"evseId": 0, "duration": 600}
    assert whole["status"] == "Accepted"
    assert await _action(hass, "get_composite_schedule", connector_id=9, duration=600) == {"status": "Rejected"}


async def test_TC_K_60_notify_charging_limit(hass: HomeAssistant, stations: Stations) -> None:
    """NotifyChargingLimit from the station (an external limit) is accepted and recorded."""
    station = await stations()
    await station.status(1, "Available")

    answer = await station.notify_charging_limit(source="EMS", evse_id=1, limit=10.0, is_grid_critical=True)
    await hass.async_block_till_done()

    assert answer is not None  # an empty NotifyChargingLimitResponse, no CALLERROR
    assert _charger(hass).configuration["ChargingLimit/Source"] == "EMS"
    diagnostics = await async_get_config_entry_diagnostics(hass, _entry(hass))
    assert diagnostics["chargers"][CS]["configuration"]["ChargingLimit/Source"] == "EMS"
    assert state_of(hass, CONNECTED) == "on"
    # Our own limit is untouched by the external one.
    assert _charger(hass).connectors[1].current_limit_a is None

    cleared = await station.cleared_charging_limit(source="EMS", evse_id=1)
    assert cleared is not None
    assert state_of(hass, CONNECTED) == "on"


# =========================================================================== L: firmware
async def test_TC_L_01_update_firmware(hass: HomeAssistant, stations: Stations) -> None:
    """UpdateFirmware, FirmwareStatusNotification Downloading..Installed, reboot on the new version."""
    station = await stations()
    charger = _charger(hass)
    statuses: list[str | None] = []
    unsubscribe = charger.add_listener(
        lambda ch: statuses.append(ch.firmware_status) if ch.firmware_status != (statuses or [None])[-1] else None
    )
    assert state_of(hass, FIRMWARE) == "1.0.0"

    result = await _action(
        hass,
        "update_firmware",
        location="https://firmware.example.com/cs-2.0.0.bin",
        retrieve_date="2026-01-01T10:00:00+00:00",
    )

    assert result == {"status": "Accepted"}
    [request] = station.got("UpdateFirmware")
    assert request["firmware"] == {
        "location": "https://firmware.example.com/cs-2.0.0.bin",
        "retrieveDateTime": "2026-01-01T10:00:00Z",
    }
    await wait_for(lambda: charger.firmware_status == "Installed")
    unsubscribe()
    assert statuses == ["Downloading", "Downloaded", "Installing", "Installed"]
    notifications = await station.wait_answered("FirmwareStatusNotification", 4)
    assert [n.request_id for n, _ in notifications] == [request["requestId"]] * 4
    assert all(answer is not None for _, answer in notifications)
    diagnostics = await async_get_config_entry_diagnostics(hass, _entry(hass))
    assert diagnostics["chargers"][CS]["firmware_status"] == "Installed"

    # The station reboots on the new firmware.
    station.config.firmware = "2.0.0"
    await stations.drop(station)
    await stations.reconnect(station)
    boot = await station.boot("FirmwareUpdate")
    assert boot.status == "Accepted"
    await stations.settle(station)
    assert state_of(hass, FIRMWARE) == "2.0.0"
    assert charger_device(hass, CS).sw_version == "2.0.0"


# =========================================================================== N: diagnostics
async def test_TC_N_25_get_log_and_customer_information(hass: HomeAssistant, stations: Stations) -> None:
    """GetLog with LogStatusNotification Uploading/Uploaded; CustomerInformation with its report."""
    station = await stations()
    charger = _charger(hass)

    result = await _action(hass, "get_log", location="https://logs.example.com/upload")

    assert result == {"status": "Accepted", "filename": "diagnostics.log"}
    [request] = station.got("GetLog")
    assert request["logType"] == "DiagnosticsLog"
    assert request["log"] == {"remoteLocation": "https://logs.example.com/upload"}
    await wait_for(lambda: charger.diagnostics_status == "Uploaded")
    notifications = await station.wait_answered("LogStatusNotification", 2)
    assert [(n.status, n.request_id) for n, _ in notifications] == [
        ("Uploading", request["requestId"]),
        ("Uploaded", request["requestId"]),
    ]
    security = await _action(
        hass,
        "get_log",
        location="https://logs.example.com/upload",
        log_type="SecurityLog",
        start_time="2026-01-01T00:00:00+00:00",
    )
    assert security == {"status": "Accepted", "filename": "security.log"}
    assert station.got("GetLog")[-1]["log"]["oldestTimestamp"] == "2026-01-01T00:00:00Z"
    assert station.got("GetLog")[-1]["requestId"] != request["requestId"]

    # CustomerInformation: the station reports what it holds about the idToken.
    result = await _action(hass, "customer_information", id_tag="TAG1")
    assert result == {"status": "Accepted"}
    [info] = station.got("CustomerInformation")
    assert info["idToken"] == {"idToken": "TAG1", "type": "Central"}
    assert (info["report"], info["clear"]) == (True, False)
    [(notify, answer)] = await station.wait_answered("NotifyCustomerInformation", 1)
    assert notify.request_id == info["requestId"]
    assert answer is not None
    # Without any identifier the station answers Invalid; the user gets that answer.
    assert await _action(hass, "customer_information") == {"status": "Invalid"}


# =========================================================================== P: data transfer
async def test_TC_P_02_data_transfer_from_station(hass: HomeAssistant, stations: Stations) -> None:
    """DataTransfer from the station is answered and fired as a cariflex_data_transfer event."""
    events = _capture(hass, EVENT_DATA_TRANSFER)
    station = await stations()

    answer = await station.data_transfer("com.example.vendor", "Hello", "some data")
    await hass.async_block_till_done()

    assert answer.status == "UnknownVendorId"  # no vendor extension is installed on the site
    assert len(events) == 1
    assert events[0].data == {
        "charger_id": CS,
        "vendor_id": "com.example.vendor",
        "message_id": "Hello",
        "data": "some data",
    }
    # 2.0.1 data may be any JSON; no message id.
    answer = await station.data_transfer("com.example.vendor", data={"level": 3, "ok": True})
    await hass.async_block_till_done()
    assert answer.status == "UnknownVendorId"
    assert events[1].data["message_id"] is None
    assert events[1].data["data"] == {"level": 3, "ok": True}
    assert state_of(hass, CONNECTED) == "on"


# =========================================================================== versions
async def _reply(ws: Any, unique_id: str) -> list[Any]:
    """The CALLRESULT / CALLERROR for ``unique_id`` (CALLs from the CSMS are skipped)."""
    async with asyncio.timeout(2):
        while True:
            frame = json.loads(await ws.recv())
            if frame[0] in (3, 4) and frame[1] == unique_id:
                return list(frame)


async def test_201_boot_never_validated_against_16_schema(
    hass: HomeAssistant, site: MockConfigEntry, ws_port: int
) -> None:
    """A 2.0.1 BootNotification is validated against the schema of the connection's version only."""
    frame = [
        2,
        "boot-1",
        "BootNotification",
        {"chargingStation": {"model": "RawModel", "vendorName": "RawVendor"}, "reason": "PowerUp"},
    ]
    frame16 = [2, "boot-2", "BootNotification", {"chargePointVendor": "RawVendor", "chargePointModel": "RawModel"}]
    url = f"ws://127.0.0.1:{ws_port}"

    async with websockets.connect(f"{url}/RAW201", subprotocols=[Subprotocol("ocpp2.0.1")]) as ws:
        assert ws.subprotocol == "ocpp2.0.1"
        await ws.send(json.dumps(frame))
        reply = await _reply(ws, "boot-1")
        assert reply[0] == 3
        assert reply[2]["status"] == "Accepted"
        assert reply[2]["interval"] == 300
        assert "currentTime" in reply[2]
        # The other way round: a 1.6 boot on this connection fails the 2.0.1 schema.
        await ws.send(json.dumps(frame16))
        reply = await _reply(ws, "boot-2")
        assert reply[:2] == [4, "boot-2"]
        assert reply[2] in ("FormatViolation", "OccurrenceConstraintViolation")

    async with websockets.connect(f"{url}/RAW16", subprotocols=[Subprotocol("ocpp1.6")]) as ws:
        assert ws.subprotocol == "ocpp1.6"
        await ws.send(json.dumps(frame))
        reply = await _reply(ws, "boot-1")
        # Checked against the 1.6 schema: the 2.0.1 fields are unknown there (FormatViolation is reported
        # first) and the 1.6 ones are missing (OccurrenceConstraintViolation once nothing is extra).
        assert reply[:3] == [4, "boot-1", "FormatViolation"]
        assert "chargingStation" in reply[3]
        await ws.send(json.dumps([2, "boot-3", "BootNotification", {}]))
        reply = await _reply(ws, "boot-3")
        assert reply[:3] == [4, "boot-3", "OccurrenceConstraintViolation"]
        assert "chargePoint" in reply[3]
    await hass.async_block_till_done()
    backend = _entry(hass).runtime_data.backend
    assert backend.chargers["RAW16"].boot_status is None
    assert backend.chargers["RAW16"].info.model is None
    assert backend.chargers["RAW201"].info.model == "RawModel"


async def test_201_reconnect_with_other_version_gets_other_adapter(
    hass: HomeAssistant, stations: Stations, chargers: ChargerFactory
) -> None:
    """CS1 first connects as OCPP 1.6, then as 2.0.1: the 2.0.1 adapter serves it, same device and entities."""
    cp = await chargers(CS)
    await cp.status(1, "Available")
    await wait_for(lambda: hass.states.get(STATUS) is not None)
    central = _entry(hass).runtime_data.central
    assert central is not None
    assert isinstance(central.adapter(CS), V16Adapter)
    assert _charger(hass).ocpp_version == "1.6"
    device_id = charger_device(hass, CS).id
    registry = er.async_get(hass)

    def entities() -> set[tuple[str, str]]:
        return {
            (entry.entity_id, entry.unique_id)
            for entry in er.async_entries_for_device(registry, device_id, include_disabled_entities=True)
        }

    before = entities()
    assert ("sensor.cs1_status", "CS1_1_status") in before
    await chargers.disconnect(cp)
    await wait_for(lambda: state_of(hass, CONNECTED) == "off")

    station = await stations(CS)
    await station.status(1, "Occupied")
    await hass.async_block_till_done()

    assert isinstance(central.adapter(CS), V201Adapter)
    assert _charger(hass).ocpp_version == "2.0.1"
    assert charger_device(hass, CS).id == device_id
    assert charger_device(hass, CS).model == "SimCharger201"
    assert entities() == before
    assert state_of(hass, CONNECTED) == "on"
    assert state_of(hass, STATUS) == "occupied"
    # Commands now go out in 2.0.1.
    station.reboot_on_reset = False
    await _press(hass, RESTART)
    assert station.got("Reset") == [{"type": "OnIdle"}]
    assert "Reset" not in [action for action, _ in cp.received]
