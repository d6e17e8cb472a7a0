"""The charging planner in a real Home Assistant with a real OCPP charger: need + departure -> a plan."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from homeassistant.core import HomeAssistant, State
from homeassistant.util import dt as dt_util
import pytest

from custom_components.cariflex.ems.regulator import Regulator
from custom_components.cariflex.energy import EmsMode, EnergyCoordinator
from custom_components.cariflex.planning import next_departure, pv_forecast_w, slot_start
from tests.conftest import ChargerFactory, site_entry, state_of, wait_for

METER = "sensor.grid_power"


def local_hhmm(moment: datetime) -> str:
    return dt_util.as_local(moment).strftime("%H:%M")


async def test_a_car_with_a_departure_and_a_need_waits_for_the_cheap_hours(
    hass: HomeAssistant,
    socket_enabled: None,
    ws_port: int,
    chargers: ChargerFactory,
    entity_registry_enabled_by_default: None,
) -> None:
    now = dt_util.utcnow()
    # Off-peak from 2 h to 6 h from now (every day), expensive otherwise.
    cheap_from, cheap_to = now + timedelta(hours=2), now + timedelta(hours=6)
    schedule = f"{local_hhmm(cheap_from)}-{local_hhmm(cheap_to)}"
    hass.states.async_set(METER, "0", {"unit_of_measurement": "W", "device_class": "power"})
    entry = site_entry(
        ws_port,
        chargers={"CP1": {}},
        options={
            "subscribed_power_kw": 22.0,
            "main_breaker_a": 32.0,
            "grid_power_entity": METER,
            "offpeak_schedule": schedule,
            "price_peak": 0.30,
            "price_offpeak": 0.10,
        },
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    energy: EnergyCoordinator | None = entry.runtime_data.energy
    assert energy is not None
    energy.regulator = Regulator(replace(energy.regulator.config, hold_s=0))
    await energy.async_set_mode(EmsMode.ON)
    cp = await chargers("CP1")
    await cp.status(1, "Charging")
    await cp.start_transaction(1, "TAG-1")
    await energy.async_refresh()
    await wait_for(lambda: cp.connectors[1].limit_a == 31, timeout=10)  # no plan yet: as fast as the site allows

    # The driver says: 20 kWh, leaving in 8 hours.
    leave = now + timedelta(hours=8)
    await hass.services.async_call(
        "number", "set_value", {"entity_id": "number.cp1_energy_to_add", "value": 20}, blocking=True
    )
    await hass.services.async_call(
        "time",
        "set_value",
        {"entity_id": "time.cp1_departure", "time": dt_util.as_local(leave).strftime("%H:%M:%S")},
        blocking=True,
    )
    await wait_for(lambda: energy.planning.plan is not None, timeout=20)
    plan = energy.planning.plan
    assert plan is not None
    session = plan.sessions["CP1/1"]
    assert session.unmet_kwh == pytest.approx(0, abs=0.01)
    assert session.energy_kwh >= 20 - 0.01
    # Nothing in the expensive first two hours; the energy comes in the cheap window.
    assert all(watts == 0 for watts in session.power_w[:7])
    await energy.async_refresh()
    await wait_for(lambda: cp.connectors[1].limit_a == 0, timeout=10)
    state = hass.states.get("sensor.cp1_planned_power")
    assert state is not None
    assert state.state == "0.0"
    schedule_attr: list[dict[str, Any]] = state.attributes["schedule"]
    assert len(schedule_attr) == 96
    assert sum(item["power_w"] for item in schedule_attr) / 4 / 1000 >= 20 - 0.01  # kWh over 15-min slots
    assert state.attributes["method"] in ("optimal", "feasible_timeout")
    assert state_of(hass, "sensor.cp1_limit_reason") in ("planner_wait", "strategy_max")

    # No need any more: the plan is dropped and the car charges as fast as the site allows.
    await hass.services.async_call(
        "number", "set_value", {"entity_id": "number.cp1_energy_to_add", "value": 0}, blocking=True
    )
    await wait_for(lambda: energy.planning.plan is None, timeout=10)
    await energy.async_refresh()
    await wait_for(lambda: cp.connectors[1].limit_a == 31, timeout=10)
    assert entry.runtime_data.departures["CP1/1"] == dt_util.as_local(leave).strftime("%H:%M:%S")
    await hass.config_entries.async_unload(entry.entry_id)


def test_next_departure_is_the_next_time_of_day() -> None:
    after = datetime(2026, 11, 26, 20, 0, tzinfo=UTC)
    tz = dt_util.get_default_time_zone()
    result = next_departure("07:30", after)
    assert result > after
    assert result - after <= timedelta(days=1)
    assert (result.astimezone(tz).hour, result.astimezone(tz).minute) == (7, 30)
    with pytest.raises(ValueError, match="not a time"):
        next_departure("soon", after)


def test_pv_forecasts_from_solcast_and_generic_attributes() -> None:
    start = slot_start(datetime(2026, 11, 26, 10, 7, tzinfo=UTC).timestamp())
    solcast = State(
        "sensor.solcast_today",
        "12",
        {
            "detailedForecast": [
                {"period_start": "2026-11-26T10:00:00+00:00", "pv_estimate": 3.5},
                {"period_start": "2026-11-26T10:30:00+00:00", "pv_estimate": 4.0},
                {"period_start": "2026-11-25T10:30:00+00:00", "pv_estimate": 9.0},  # yesterday: ignored
                {"period_start": "nonsense", "pv_estimate": 1.0},
            ]
        },
    )
    values = pv_forecast_w(solcast, start)
    assert values[0] == 3500
    assert values[2] == 4000
    assert sum(values) == 7500
    generic = State("sensor.pv_forecast", "0", {"forecast": [{"datetime": "2026-11-26T10:15:00+00:00", "value": -5}]})
    assert pv_forecast_w(generic, start)[1] == 0.0
    assert pv_forecast_w(None, start) == [0.0] * 96
