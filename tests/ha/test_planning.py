"""The charging planner in a real Home Assistant with a real OCPP charger: need + departure -> a plan."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest.mock import Mock

from homeassistant.components.energy.data import async_get_manager as async_get_energy_manager
from homeassistant.core import HomeAssistant, State
from homeassistant.util import dt as dt_util
from ocpp.v16 import call as call16
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, MockModule, mock_integration, mock_platform

from custom_components.cariflex.ems.planner import Plan
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
    entry, energy = await planned_site(hass, ws_port, offpeak_schedule=schedule, price_peak=0.30, price_offpeak=0.10)
    # The driver says: 20 kWh, leaving in 8 hours.
    leave = now + timedelta(hours=8)
    cp, plan = await plan_a_need(chargers, hass, energy, 20, leave)
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
    await set_number(hass, "number.cp1_energy_to_add", 0)
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
    # Each value is the mean power of its 30-minute period: both 15-minute slots of it get it.
    assert values[:5] == [3500, 3500, 4000, 4000, 0]
    assert sum(values) == 15000
    generic = State(
        "sensor.pv_forecast",
        "0",
        {
            "forecast": [
                {"datetime": "2026-11-26T10:15:00+00:00", "value": -5},
                {"datetime": "2026-11-26T11:15:00+00:00", "value": 2000},
                {"datetime": "2026-11-26T14:15:00+00:00", "value": 1000},  # after a gap: an hour at most
            ]
        },
    )
    hourly = pv_forecast_w(generic, start)
    assert hourly[1:5] == [0.0] * 4
    assert hourly[5:9] == [2000] * 4
    assert hourly[9:17] == [0.0] * 8
    assert hourly[17:21] == [1000] * 4
    assert sum(hourly) == 12000
    assert pv_forecast_w(None, start) == [0.0] * 96


async def planned_site(hass: HomeAssistant, ws_port: int, **options: Any) -> tuple[MockConfigEntry, EnergyCoordinator]:
    """A 22 kW site with CP1, the energy manager on, and ``options``."""
    hass.states.async_set(METER, "0", {"unit_of_measurement": "W", "device_class": "power"})
    entry = site_entry(
        ws_port,
        chargers={"CP1": {}},
        options={"subscribed_power_kw": 22.0, "main_breaker_a": 32.0, "grid_power_entity": METER, **options},
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    energy: EnergyCoordinator | None = entry.runtime_data.energy
    assert energy is not None
    energy.regulator = Regulator(replace(energy.regulator.config, hold_s=0))
    await energy.async_set_mode(EmsMode.ON)
    return entry, energy


async def set_number(hass: HomeAssistant, entity_id: str, value: float) -> None:
    await hass.services.async_call("number", "set_value", {"entity_id": entity_id, "value": value}, blocking=True)


async def set_departure(hass: HomeAssistant, leave: datetime) -> None:
    await hass.services.async_call(
        "time",
        "set_value",
        {"entity_id": "time.cp1_departure", "time": dt_util.as_local(leave).strftime("%H:%M:%S")},
        blocking=True,
    )


async def plan_a_need(
    chargers: ChargerFactory, hass: HomeAssistant, energy: EnergyCoordinator, kwh: float, leave: datetime
) -> tuple[Any, Plan]:
    """CP1 charging as fast as the site allows (no plan yet), then the driver's need and departure: its plan."""
    cp = await chargers("CP1")
    await cp.status(1, "Charging")
    await cp.start_transaction(1, "TAG-1")
    await energy.async_refresh()
    await wait_for(lambda: cp.connectors[1].limit_a == 31, timeout=10)
    await set_number(hass, "number.cp1_energy_to_add", kwh)
    await set_departure(hass, leave)
    await wait_for(lambda: energy.planning.plan is not None, timeout=20)
    plan = energy.planning.plan
    assert plan is not None
    return cp, plan


async def report_soc(cp: Any, soc: float) -> None:
    """A MeterValues with the car's state of charge, as a 1.6 charger sends it (measurand SoC, location EV)."""
    sampled = [{"value": f"{soc:.0f}", "measurand": "SoC", "unit": "Percent", "location": "EV"}]
    await cp.call(
        call16.MeterValues(
            connector_id=1,
            transaction_id=cp.connectors[1].transaction_id,
            meter_value=[{"timestamp": dt_util.utcnow().isoformat(), "sampledValue": sampled}],
        )
    )


async def test_a_soc_target_and_a_battery_size_make_the_need_and_the_target_reached_holds_the_car(
    hass: HomeAssistant,
    socket_enabled: None,
    ws_port: int,
    chargers: ChargerFactory,
    entity_registry_enabled_by_default: None,
) -> None:
    entry, energy = await planned_site(hass, ws_port)
    cp = await chargers("CP1")
    await cp.status(1, "Charging")
    await cp.start_transaction(1, "TAG-1")
    await set_number(hass, "number.cp1_charge_target", 80)
    await set_number(hass, "number.cp1_car_battery", 50)
    await set_number(hass, "number.cp1_energy_to_add", 5)  # used only while the car does not report its SoC
    await set_departure(hass, dt_util.utcnow() + timedelta(hours=8))
    await wait_for(lambda: energy.planning.plan is not None, timeout=20)
    assert energy.planning.plan is not None
    assert energy.planning.plan.sessions["CP1/1"].energy_kwh == pytest.approx(5, abs=0.01)

    # The car says 40 %: 40 % of 50 kWh to add, 22.2 kWh metered with the charger's losses.
    await report_soc(cp, 40)
    await hass.async_block_till_done()
    energy.planning._last_run = -1e12  # the once-a-minute limit is covered by test_planner's own tests
    await energy.async_refresh()
    await wait_for(
        lambda: energy.planning.plan is not None and energy.planning.plan.sessions["CP1/1"].energy_kwh > 20,
        timeout=20,
    )
    assert energy.planning.needs()["CP1/1"].kwh == pytest.approx(22.22, abs=0.01)
    assert energy.planning.plan.sessions["CP1/1"].unmet_kwh == pytest.approx(0, abs=0.01)

    # 80 % reached: nothing more to add, the car is held (a PV mode would still take the surplus).
    await report_soc(cp, 80)
    await hass.async_block_till_done()
    energy.planning._last_run = -1e12
    await energy.async_refresh()
    await wait_for(
        lambda: energy.planning.plan is not None and energy.planning.plan.sessions["CP1/1"].energy_kwh == 0,
        timeout=20,
    )
    await energy.async_refresh()
    await wait_for(lambda: cp.connectors[1].limit_a == 0, timeout=10)
    assert state_of(hass, "sensor.cp1_limit_reason") in ("planner_wait", "strategy_max")
    assert entry.runtime_data.soc_targets == {"CP1/1": 80}
    assert entry.runtime_data.battery_capacities == {"CP1/1": 50}
    await hass.config_entries.async_unload(entry.entry_id)


async def forecast_source(hass: HomeAssistant, source: str, start: float) -> dict[str, Any]:
    """9 kW forecast from 2 h to 6 h after ``start``, nothing before (the morning); the site options it needs.

    ``entity``: Solcast's ``detailedForecast`` attribute (30-minute periods). ``dashboard``: a
    forecast integration's energy platform (hourly Wh, like Forecast.Solar) picked in the Energy
    dashboard's solar source.
    """
    if source == "entity":
        forecast = [
            {
                "period_start": datetime.fromtimestamp(start + 1800 * k, UTC).isoformat(),
                "pv_estimate": 9.0 if 4 <= k < 12 else 0.0,
            }
            for k in range(48)
        ]
        hass.states.async_set("sensor.solcast_forecast_today", "30", {"detailedForecast": forecast})
        return {"pv_forecast_entity": "sensor.solcast_forecast_today"}
    wh_hours = {datetime.fromtimestamp(start + 3600 * h, UTC).isoformat(): 9000 if 2 <= h < 6 else 0 for h in range(24)}

    async def async_get_solar_forecast(hass: HomeAssistant, config_entry_id: str) -> dict[str, Any]:
        return {"wh_hours": wh_hours}

    mock_integration(hass, MockModule("roof_forecast"))
    mock_platform(hass, "roof_forecast.energy", Mock(async_get_solar_forecast=async_get_solar_forecast))
    roof = MockConfigEntry(domain="roof_forecast", title="Roof")
    roof.add_to_hass(hass)
    broken = MockConfigEntry(domain="no_energy_platform", title="Other")  # skipped, never breaks the plan
    broken.add_to_hass(hass)
    mock_integration(hass, MockModule("no_energy_platform"))
    manager = await async_get_energy_manager(hass)
    prefs: Any = {  # only the solar source: the other keys differ between Home Assistant versions
        "energy_sources": [
            {
                "type": "solar",
                "stat_energy_from": "sensor.solar_energy",
                "config_entry_solar_forecast": [roof.entry_id, broken.entry_id, "gone"],
            }
        ]
    }
    await manager.async_update(prefs)
    return {}


@pytest.mark.usefixtures("socket_enabled", "entity_registry_enabled_by_default")
@pytest.mark.parametrize("source", ["entity", "dashboard"])
async def test_a_sunny_forecast_holds_grid_charging_until_the_sun_covers_the_need(
    hass: HomeAssistant, ws_port: int, chargers: ChargerFactory, source: str
) -> None:
    now = dt_util.utcnow()
    start = slot_start(now.timestamp())
    options = await forecast_source(hass, source, start)
    entry, energy = await planned_site(hass, ws_port, price_peak=0.25, **options)
    if source == "dashboard":
        await wait_for(lambda: len(energy.planning.dashboard.entries) == 1, timeout=10)
        assert energy.planning.dashboard.watts(start)[:24] == [0.0] * 8 + [9000.0] * 16
    # 20 kWh before leaving in 8 h: the forecast covers it between 2 h and 6 h, so nothing from the grid now.
    cp, plan = await plan_a_need(chargers, hass, energy, 20, now + timedelta(hours=8))
    session = plan.sessions["CP1/1"]
    assert session.unmet_kwh == pytest.approx(0, abs=0.01)
    assert all(watts == 0 for watts in session.power_w[:7])  # before the sun: held back
    sunny = sum(session.power_w[8:24]) / 4 / 1000
    assert sunny >= 20 - 0.01  # the whole need in the sunny hours (kWh over 15-min slots)
    await energy.async_refresh()
    await wait_for(lambda: cp.connectors[1].limit_a == 0, timeout=10)
    assert state_of(hass, "sensor.cp1_limit_reason") in ("planner_wait", "strategy_max")
    await hass.config_entries.async_unload(entry.entry_id)


@pytest.mark.usefixtures("socket_enabled", "entity_registry_enabled_by_default")
async def test_a_feed_in_above_the_off_peak_price_sells_the_sun_and_charges_off_peak(
    hass: HomeAssistant, ws_port: int, chargers: ChargerFactory
) -> None:
    now = dt_util.utcnow()
    start = slot_start(now.timestamp())
    options = await forecast_source(hass, "entity", start)  # 9 kW from 2 h to 6 h
    cheap_from, cheap_to = now + timedelta(hours=6), now + timedelta(hours=8)
    entry, energy = await planned_site(
        hass,
        ws_port,
        offpeak_schedule=f"{local_hhmm(cheap_from)}-{local_hhmm(cheap_to)}",
        price_peak=0.25,
        price_offpeak=0.10,
        price_feed_in=0.13,  # an older surplus contract: the sun earns more on the grid than off-peak costs
        **options,
    )
    _, plan = await plan_a_need(chargers, hass, energy, 20, now + timedelta(hours=10))
    session = plan.sessions["CP1/1"]
    assert session.unmet_kwh == pytest.approx(0, abs=0.01)
    assert all(watts == 0 for watts in session.power_w[:24])  # neither the peak hours nor the sun
    assert sum(session.power_w[24:33]) / 4 / 1000 >= 20 - 0.01  # all of it in the off-peak window
    assert plan.pv_used_kwh == pytest.approx(0, abs=0.01)
    assert plan.cost_eur == pytest.approx(0.10 * session.energy_kwh, rel=0.01)
    await hass.config_entries.async_unload(entry.entry_id)
