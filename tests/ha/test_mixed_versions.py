"""A site with one OCPP 1.6 and one OCPP 2.0.1 charger: the user sees no difference."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from ocpp.routing import on
from ocpp.v201 import ChargePoint as ChargePoint201, call, call_result
from ocpp.v201.enums import Action
from pytest_homeassistant_custom_component.common import MockConfigEntry
import websockets

from tests.conftest import ChargerFactory, charger_device, state_of, wait_for


class Station(ChargePoint201):  # type: ignore[misc]
    """A bare OCPP 2.0.1 station written with the ocpp library."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.profiles: list[dict[str, Any]] = []

    @on(Action.get_base_report)
    def on_get_base_report(self, request_id: int, report_base: str, **_: Any) -> Any:
        return call_result.GetBaseReport(status="Accepted")

    @on(Action.set_charging_profile)
    def on_set_charging_profile(self, evse_id: int, charging_profile: dict[str, Any], **_: Any) -> Any:
        self.profiles.append(charging_profile)
        return call_result.SetChargingProfile(status="Accepted")


def meter_value(energy_wh: float, power_w: float, context: str) -> dict[str, Any]:
    return {
        "timestamp": "2026-01-01T10:00:00Z",
        "sampledValue": [
            {
                "value": energy_wh / 1000,
                "measurand": "Energy.Active.Import.Register",
                "context": context,
                "unitOfMeasure": {"unit": "kWh"},
            },
            {"value": power_w, "measurand": "Power.Active.Import", "context": context, "unitOfMeasure": {"unit": "W"}},
        ],
    }


async def test_one_16_and_one_201_charger_show_the_same_entities(
    hass: HomeAssistant, site: MockConfigEntry, chargers: ChargerFactory
) -> None:
    cp16 = await chargers("CP1")
    await cp16.status(1, "Available")

    ws = await websockets.connect(f"{chargers.url}/CS201", subprotocols=["ocpp2.0.1"])  # type: ignore[list-item]
    assert ws.subprotocol == "ocpp2.0.1"
    station = Station("CS201", ws)
    task = asyncio.create_task(station.start())
    try:
        boot = await station.call(
            call.BootNotification(
                charging_station={"model": "Wallbox201", "vendor_name": "Acme", "firmware_version": "2.0"},
                reason="PowerUp",
            ),
            suppress=False,
        )
        assert boot.status == "Accepted"
        await station.call(
            call.StatusNotification(
                timestamp="2026-01-01T10:00:00Z", connector_status="Occupied", evse_id=1, connector_id=1
            ),
            suppress=False,
        )
        started = await station.call(
            call.TransactionEvent(
                event_type="Started",
                timestamp="2026-01-01T10:00:00Z",
                trigger_reason="Authorized",
                seq_no=0,
                transaction_info={"transaction_id": "tx-1", "charging_state": "Charging"},
                id_token={"id_token": "BADGE201", "type": "ISO14443"},
                evse={"id": 1, "connector_id": 1},
                meter_value=[meter_value(10_000, 0, "Transaction.Begin")],
            ),
            suppress=False,
        )
        assert started.id_token_info["status"] == "Accepted"
        updated = call.TransactionEvent(
            event_type="Updated",
            timestamp="2026-01-01T10:30:00Z",
            trigger_reason="MeterValuePeriodic",
            seq_no=1,
            transaction_info={"transaction_id": "tx-1", "charging_state": "Charging"},
            meter_value=[meter_value(13_500, 7000, "Sample.Periodic")],
        )
        await station.call(updated, suppress=False)
        await station.call(updated, suppress=False)  # replayed: applied once
        await hass.async_block_till_done()
        await wait_for(lambda: state_of(hass, "sensor.cs201_power") == "7.0")
        assert state_of(hass, "sensor.cs201_status") == "charging"
        assert state_of(hass, "sensor.cs201_session_energy") == "3.5"
        assert state_of(hass, "sensor.cs201_energy") == "13.5"
        assert state_of(hass, "sensor.cs201_badge") == "BADGE201"

        # Same entity set for both versions (keys after the charger id).
        registry = er.async_get(hass)

        def keys(charger_id: str) -> set[str]:
            device = charger_device(hass, charger_id)
            return {
                entity.unique_id.removeprefix(f"{charger_id}_")
                for entity in er.async_entries_for_device(registry, device.id, include_disabled_entities=True)
            }

        assert keys("CP1") == keys("CS201")

        # The current limit becomes a 2.0.1 TxProfile on the running transaction.
        await hass.services.async_call(
            "number", "set_value", {"entity_id": "number.cs201_current_limit", "value": 10}, blocking=True
        )
        assert station.profiles[-1]["charging_profile_purpose"] == "TxProfile"
        assert station.profiles[-1]["transaction_id"] == "tx-1"
        assert station.profiles[-1]["charging_schedule"][0]["charging_schedule_period"][0]["limit"] == 10
        await station.call(
            call.TransactionEvent(
                event_type="Ended",
                timestamp="2026-01-01T11:00:00Z",
                trigger_reason="StopAuthorized",
                seq_no=2,
                transaction_info={"transaction_id": "tx-1", "stopped_reason": "Local"},
                meter_value=[meter_value(15_000, 0, "Transaction.End")],
            ),
            suppress=False,
        )
        await hass.async_block_till_done()
        history = site.runtime_data.history
        assert history[-1]["transaction_id"] == "tx-1"
        assert history[-1]["energy_wh"] == 5000
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        await ws.close()
