"""Meter values: normalise what chargers send into SI readings.

Chargers report energy in Wh, kWh or without a unit (OCPP says Wh then), sometimes per
phase only, sometimes as signed data we cannot read. Every sample is brought to W, Wh,
A, V or % here; per-phase energy and power are summed, per-phase currents kept apart.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from .model import Readings

ENERGY_REGISTER = "Energy.Active.Import.Register"
POWER = "Power.Active.Import"
CURRENT = "Current.Import"
CURRENT_OFFERED = "Current.Offered"
VOLTAGE = "Voltage"
SOC = "SoC"

_SCALE = {
    None: 1.0,
    "": 1.0,
    "Wh": 1.0,
    "kWh": 1000.0,
    "W": 1.0,
    "kW": 1000.0,
    "A": 1.0,
    "V": 1.0,
    "Percent": 1.0,
}
# The unit a measurand has when the charger gives none (OCPP 1.6 §7.31 defaults to Wh,
# which is only right for energy; for the others take the SI unit).
_PHASE_ORDER = ("L1", "L2", "L3")


@dataclass(slots=True, frozen=True)
class Sample:
    """One sampled value in SI units."""

    measurand: str
    value: float
    phase: str | None = None
    context: str | None = None
    location: str | None = None


def scale(value: float, unit: str | None, multiplier: int = 0) -> float | None:
    """Bring ``value`` to the base unit; ``None`` for units we do not use."""
    factor = _SCALE.get(unit)
    if factor is None:
        return None
    return value * factor * (10.0**multiplier)


def _phase_key(phase: str | None) -> str | None:
    """Map "L1", "L1-N", "L1-L2" to "L1"... ; "N" and unknown to None-like markers."""
    if not phase:
        return None
    return phase[:2] if phase[:2] in _PHASE_ORDER else phase


def apply_samples(readings: Readings, samples: Iterable[Sample], measured_at: datetime) -> bool:
    """Fold one meter value's samples into ``readings``; True when anything was used."""
    grouped: dict[str, list[Sample]] = defaultdict(list)
    for sample in samples:
        if sample.location in ("Inlet", "Body", "Cable") and sample.measurand != SOC:
            continue  # we report what goes to the car (Outlet/EV/unspecified)
        grouped[sample.measurand].append(sample)
    if not grouped:
        return False
    used = False
    for measurand, group in grouped.items():
        total = _total(group)
        if measurand == ENERGY_REGISTER and total is not None:
            readings.energy_wh = total
            used = True
        elif measurand == POWER and total is not None:
            readings.power_w = total
            used = True
        elif measurand == CURRENT:
            readings.current_a = _per_phase(group)
            used = True
        elif measurand == CURRENT_OFFERED and total is not None:
            readings.current_offered_a = max(s.value for s in group)
            used = True
        elif measurand == VOLTAGE:
            values = [s.value for s in group if _phase_key(s.phase) != "N"]
            if values:
                readings.voltage_v = sum(values) / len(values)
                used = True
        elif measurand == SOC:
            readings.soc = group[-1].value
            used = True
    if used:
        readings.measured_at = measured_at
    return used


def energy_register(samples: Iterable[Sample]) -> float | None:
    """The energy register in a meter value (Wh): the total, or the sum of its phases."""
    group = [s for s in samples if s.measurand == ENERGY_REGISTER and (s.location not in ("Inlet", "Body", "Cable"))]
    return _total(group) if group else None


def _total(group: list[Sample]) -> float | None:
    """The value without phase if given, else the sum over L1..L3."""
    plain = [s.value for s in group if s.phase is None]
    if plain:
        return plain[-1]
    phases: dict[str, float] = {}
    for sample in group:
        key = _phase_key(sample.phase)
        if key in _PHASE_ORDER:
            phases[key] = sample.value
    return sum(phases.values()) if phases else None


def _per_phase(group: list[Sample]) -> dict[str, float]:
    result: dict[str, float] = {}
    for sample in group:
        key = _phase_key(sample.phase)
        if key is None:
            result.setdefault("L1", sample.value)
        elif key in _PHASE_ORDER:
            result[key] = sample.value
    return result
