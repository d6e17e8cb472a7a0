"""MeterValues normalisation into SI readings."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from custom_components.cariflex.ocpp.meter import (
    CURRENT,
    CURRENT_OFFERED,
    ENERGY_REGISTER,
    POWER,
    SOC,
    VOLTAGE,
    Sample,
    apply_samples,
    scale,
)
from custom_components.cariflex.ocpp.model import Readings
from custom_components.cariflex.ocpp.v16 import samples_v16

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "unit", "multiplier", "expected"),
    [
        (1234.0, "Wh", 0, 1234.0),
        (1.5, "kWh", 0, 1500.0),
        (7.4, "kW", 0, 7400.0),
        (230.0, "V", 0, 230.0),
        (80.0, "Percent", 0, 80.0),
        (12.0, None, 0, 12.0),
        (12.0, "", 0, 12.0),
        (15.0, "A", -1, 1.5),
        (2.0, "Wh", 3, 2000.0),
    ],
)
def test_scale(value: float, unit: str | None, multiplier: int, expected: float) -> None:
    assert scale(value, unit, multiplier) == pytest.approx(expected)


@pytest.mark.parametrize("unit", ["Celsius", "varh", "kvarh", "Hz", "K", "wh"])
def test_scale_unknown_unit(unit: str) -> None:
    assert scale(10.0, unit) is None


def test_energy_units_through_v16() -> None:
    samples = samples_v16(
        [
            {"value": "12.5", "measurand": ENERGY_REGISTER, "unit": "kWh"},
            {"value": "900", "unit": "Wh"},  # no measurand: the register
            {"value": "800"},  # no unit: Wh for energy
            {"value": "3.2", "measurand": POWER, "unit": "kW"},
            {"value": "230", "measurand": VOLTAGE},  # no unit, not energy: SI
            {"value": "20", "measurand": "Temperature", "unit": "Celsius"},  # unknown unit skipped
            {"value": "abc", "measurand": POWER, "unit": "W"},  # unreadable skipped
            {"measurand": POWER, "unit": "W"},  # no value skipped
            {"value": "0A1B", "format": "SignedData"},  # signed data skipped
        ]
    )
    assert [(s.measurand, s.value) for s in samples] == [
        (ENERGY_REGISTER, 12500.0),
        (ENERGY_REGISTER, 900.0),
        (ENERGY_REGISTER, 800.0),
        (POWER, 3200.0),
        (VOLTAGE, 230.0),
    ]


def test_plain_energy_and_power() -> None:
    readings = Readings()
    assert apply_samples(readings, [Sample(ENERGY_REGISTER, 1000.0), Sample(POWER, 7000.0)], T0)
    assert readings.energy_wh == 1000.0
    assert readings.power_w == 7000.0
    assert readings.measured_at == T0


def test_per_phase_energy_and_power_summed() -> None:
    readings = Readings()
    samples = [
        Sample(ENERGY_REGISTER, 100.0, "L1"),
        Sample(ENERGY_REGISTER, 200.0, "L2"),
        Sample(ENERGY_REGISTER, 300.0, "L3"),
        Sample(POWER, 1000.0, "L1-N"),
        Sample(POWER, 1100.0, "L2-N"),
        Sample(POWER, 1200.0, "L3-N"),
        Sample(POWER, 50.0, "N"),  # neutral is not a phase
    ]
    assert apply_samples(readings, samples, T0)
    assert readings.energy_wh == 600.0
    assert readings.power_w == 3300.0


def test_total_wins_over_phases() -> None:
    readings = Readings()
    samples = [Sample(POWER, 1000.0, "L1"), Sample(POWER, 1000.0, "L2"), Sample(POWER, 2500.0)]
    apply_samples(readings, samples, T0)
    assert readings.power_w == 2500.0


def test_same_phase_twice_counts_once() -> None:
    readings = Readings()
    apply_samples(readings, [Sample(POWER, 1000.0, "L1"), Sample(POWER, 1200.0, "L1-N")], T0)
    assert readings.power_w == 1200.0


def test_per_phase_currents() -> None:
    readings = Readings()
    samples = [
        Sample(CURRENT, 16.0, "L1"),
        Sample(CURRENT, 15.5, "L2-N"),
        Sample(CURRENT, 15.0, "L3"),
        Sample(CURRENT, 0.3, "N"),
    ]
    assert apply_samples(readings, samples, T0)
    assert readings.current_a == {"L1": 16.0, "L2": 15.5, "L3": 15.0}


def test_current_without_phase_is_l1() -> None:
    readings = Readings(current_a={"L1": 1.0, "L2": 1.0, "L3": 1.0})
    apply_samples(readings, [Sample(CURRENT, 10.0)], T0)
    assert readings.current_a == {"L1": 10.0}, "the new value replaces all phases"
    apply_samples(readings, [Sample(CURRENT, 11.0, "L1"), Sample(CURRENT, 12.0)], T0)
    assert readings.current_a == {"L1": 11.0}, "an explicit L1 beats a phase-less value"


def test_voltage_average_excludes_neutral() -> None:
    readings = Readings()
    samples = [
        Sample(VOLTAGE, 230.0, "L1-N"),
        Sample(VOLTAGE, 232.0, "L2-N"),
        Sample(VOLTAGE, 234.0, "L3-N"),
        Sample(VOLTAGE, 2.0, "N"),
    ]
    assert apply_samples(readings, samples, T0)
    assert readings.voltage_v == pytest.approx(232.0)


def test_only_neutral_voltage_is_not_used() -> None:
    readings = Readings()
    assert not apply_samples(readings, [Sample(VOLTAGE, 2.0, "N")], T0)
    assert readings.voltage_v is None
    assert readings.measured_at is None


def test_soc_and_offered_current() -> None:
    readings = Readings()
    samples = [
        Sample(SOC, 40.0, location="EV"),
        Sample(SOC, 42.0, location="EV"),
        Sample(CURRENT_OFFERED, 16.0, "L1"),
        Sample(CURRENT_OFFERED, 20.0, "L2"),
    ]
    assert apply_samples(readings, samples, T0)
    assert readings.soc == 42.0
    assert readings.current_offered_a == 20.0


@pytest.mark.parametrize("location", ["Inlet", "Body", "Cable"])
def test_non_outlet_locations_ignored(location: str) -> None:
    readings = Readings(power_w=5.0)
    assert not apply_samples(readings, [Sample(POWER, 999.0, location=location)], T0)
    assert readings.power_w == 5.0
    assert readings.measured_at is None


def test_inlet_ignored_outlet_kept_soc_always() -> None:
    readings = Readings()
    samples = [
        Sample(ENERGY_REGISTER, 5000.0, location="Inlet"),
        Sample(ENERGY_REGISTER, 4000.0, location="Outlet"),
        Sample(SOC, 55.0, location="Body"),
    ]
    assert apply_samples(readings, samples, T0)
    assert readings.energy_wh == 4000.0
    assert readings.soc == 55.0


def test_unused_measurands_change_nothing() -> None:
    readings = Readings()
    assert not apply_samples(readings, [Sample("Frequency", 50.0), Sample("Temperature", 30.0)], T0)
    assert not apply_samples(readings, [], T0)
    # energy reported only for a non-phase (N) gives no total
    assert not apply_samples(readings, [Sample(ENERGY_REGISTER, 1.0, "N")], T0)
    assert readings == Readings()


def test_energy_register_is_the_total_or_the_sum_of_its_phases() -> None:
    from custom_components.cariflex.ocpp.meter import energy_register

    per_phase = [Sample("Energy.Active.Import.Register", 1000.0, phase) for phase in ("L1", "L2", "L3")]
    assert energy_register(per_phase) == 3000.0
    total = [*per_phase, Sample("Energy.Active.Import.Register", 2900.0)]
    assert energy_register(total) == 2900.0  # a reported total wins over the phases
    inlet = [Sample("Energy.Active.Import.Register", 9999.0, None, None, "Inlet")]
    assert energy_register(inlet) is None
    assert energy_register([Sample("Power.Active.Import", 7000.0)]) is None
