"""The protocol-neutral charger model."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

from custom_components.cariflex.ocpp.model import (
    ENDED_KEPT,
    Availability,
    Charger,
    ChargerInfo,
    ChargerLink,
    ConnectorStatus,
    ResetKind,
    Session,
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def session(transaction_id: str = "1", connector_id: int = 1, **fields: Any) -> Session:
    values: dict[str, Any] = {
        "transaction_id": transaction_id,
        "connector_id": connector_id,
        "id_tag": "TAG",
        "started_at": T0,
        "meter_start_wh": 1000.0,
        "meter_now_wh": 1000.0,
    }
    values.update(fields)
    return Session(**values)


class FakeLink:
    version = "1.6"


def test_session_energy_and_duration() -> None:
    running = session(meter_now_wh=3500.0)
    assert running.energy_wh == 2500.0
    assert running.duration_s(T0 + timedelta(minutes=5)) == 300.0
    assert running.duration_s(T0 - timedelta(minutes=5)) == 0.0, "a clock behind the start gives 0"
    stopped = session(meter_now_wh=9000.0, meter_stop_wh=4000.0, stopped_at=T0 + timedelta(hours=1))
    assert stopped.energy_wh == 3000.0, "the stop value wins over the latest reading"
    assert stopped.duration_s(T0 + timedelta(hours=5)) == 3600.0
    assert session(meter_now_wh=10.0).energy_wh == 0.0, "never negative"


def test_session_round_trip() -> None:
    for original in (
        session(),
        session(stopped_at=T0 + timedelta(hours=1), meter_stop_wh=2000.0, stop_reason="Local", reservation_id=4),
    ):
        data = original.as_dict()
        assert data["started_at"] == T0.isoformat()
        assert Session.from_dict(data) == original
    assert session().as_dict()["stopped_at"] is None


def test_connectors_created_on_demand_and_outlets() -> None:
    charger = Charger("CP1")
    assert charger.connector(2).status is ConnectorStatus.UNKNOWN
    charger.connector(0)
    charger.connector(1)
    assert charger.connector(2) is charger.connectors[2]
    assert [c.connector_id for c in charger.outlets] == [1, 2]
    assert charger.connector(1).error_code == "NoError"


def test_session_by_transaction() -> None:
    charger = Charger("CP1")
    charger.connector(1)
    first = session("10", 1)
    charger.session_started(first)
    charger.session_started(session("11", 2))
    assert charger.session_by_transaction("10") is first
    assert charger.session_by_transaction("12") is None


def test_listeners_and_unsubscribe() -> None:
    charger = Charger("CP1")
    seen: list[str] = []
    unsubscribe = charger.add_listener(lambda c: seen.append(c.charger_id))
    charger.notify()
    unsubscribe()
    charger.notify()
    assert seen == ["CP1"]


def test_session_listeners() -> None:
    charger = Charger("CP1")
    events: list[tuple[str, str]] = []
    charger.on_session(started=lambda c, s: events.append(("start", s.transaction_id)))
    charger.on_session(ended=lambda c, s: events.append(("end", s.transaction_id)))
    charger.on_session()
    running = session("5")
    charger.session_started(running)
    assert charger.connector(1).session is running
    charger.session_ended(running)
    assert charger.connector(1).session is None
    assert charger.ended_transactions == ["5"]
    assert events == [("start", "5"), ("end", "5")]


def test_session_ended_keeps_other_session_and_bounds_history() -> None:
    charger = Charger("CP1")
    current = session("new")
    charger.session_started(current)
    charger.session_ended(session("old"))  # another session of the same connector
    assert charger.connector(1).session is current
    charger.session_ended(session("orphan", connector_id=7))  # connector never seen
    for number in range(ENDED_KEPT + 20):
        charger.session_ended(session(f"t{number}", connector_id=3))
    assert len(charger.ended_transactions) == ENDED_KEPT
    assert charger.ended_transactions[-1] == f"t{ENDED_KEPT + 19}"
    assert "old" not in charger.ended_transactions


def test_set_connected() -> None:
    charger = Charger("CP1")
    notified: list[bool] = []
    charger.add_listener(lambda c: notified.append(c.connected))
    link = cast("ChargerLink", FakeLink())
    charger.set_connected(link, T0)
    assert charger.link is link
    assert charger.ocpp_version == "1.6"
    assert charger.connected_since == T0
    charger.set_connected(None)
    assert charger.link is None
    assert charger.connected_since == T0, "the last connection time stays"
    assert notified == [True, False]
    before = datetime.now(UTC)
    charger.set_connected(link)
    assert charger.connected_since is not None
    assert charger.connected_since >= before


def test_snapshot_restore() -> None:
    charger = Charger("CP1", ocpp_version="1.6", info=ChargerInfo(vendor="V", model="M", serial="S"), phases=1)
    charger.connector(0)
    charger.connector(1).readings.energy_wh = 12345.0
    charger.connector(1).current_limit_a = 16.0
    charger.connector(1).limit_phases = 1
    charger.session_started(session("42"))
    charger.ended_transactions.append("41")
    data = charger.snapshot()
    assert data["connectors"]["1"]["session"]["transaction_id"] == "42"
    assert data["connectors"]["0"] == {
        "energy_wh": None,
        "current_limit_a": None,
        "limit_phases": None,
        "session": None,
    }

    restored = Charger("CP1")
    restored.restore(data)
    assert restored.ocpp_version == "1.6"
    assert restored.info == charger.info
    assert restored.phases == 1
    assert restored.ended_transactions == ["41"]
    assert restored.connector(1).readings.energy_wh == 12345.0
    assert restored.connector(1).current_limit_a == 16.0
    assert restored.connector(1).limit_phases == 1
    assert restored.connector(1).session == charger.connector(1).session
    assert restored.connector(0).session is None


def test_restore_defaults() -> None:
    charger = Charger("CP1")
    charger.restore({})
    assert charger.phases == 3
    assert charger.info == ChargerInfo()
    assert charger.connectors == {}


def test_enums() -> None:
    assert ConnectorStatus("suspended_ev") is ConnectorStatus.SUSPENDED_EV
    assert Availability.INOPERATIVE.value == "inoperative"
    assert ResetKind("hard") is ResetKind.HARD
