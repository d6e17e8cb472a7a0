"""Typed readings: the fixed set of quantities every profile maps to.

Sign conventions (the same for every profile; a profile entry flips a device's own
convention with ``"invert": true``):

* ``power_w``, ``power_w_l1`` .. ``power_w_l3``: active power at the connection point the
  device meters (the grid connection for a grid meter or for the meter an inverter reads,
  a feeder for a sub-meter). **Positive = import** (drawn from the grid, consumed by the
  feeder), negative = export (fed into the grid).
* ``current_a_l1`` .. ``current_a_l3``: RMS current at that same point, as the device
  reports it (most devices give a magnitude, some sign it like the power).
* ``voltage_v_l1`` .. ``voltage_v_l3``: phase-to-neutral RMS voltage.
* ``energy_import_wh`` / ``energy_export_wh``: cumulative counters at that point, in Wh.
* ``frequency_hz``: grid frequency.
* ``pv_power_w``: photovoltaic production, **positive when producing** (>= 0).
* ``battery_power_w``: **positive = discharging** (the battery supplies the site),
  negative = charging.
* ``soc_percent``: battery state of charge, 0-100 %.

Each of ``power_w``, PV and battery is thus "power supplied to the site" seen from its own
source, which is also Home Assistant's energy dashboard convention (grid import, solar
production and battery discharge positive).

Single-phase devices report on L1; the site configuration says which phase they are on.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
import dataclasses
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum


class Quantity(StrEnum):
    """What a register measures; the value is also the key used in profiles."""

    POWER_W = "power_w"
    POWER_W_L1 = "power_w_l1"
    POWER_W_L2 = "power_w_l2"
    POWER_W_L3 = "power_w_l3"
    CURRENT_A_L1 = "current_a_l1"
    CURRENT_A_L2 = "current_a_l2"
    CURRENT_A_L3 = "current_a_l3"
    VOLTAGE_V_L1 = "voltage_v_l1"
    VOLTAGE_V_L2 = "voltage_v_l2"
    VOLTAGE_V_L3 = "voltage_v_l3"
    ENERGY_IMPORT_WH = "energy_import_wh"
    ENERGY_EXPORT_WH = "energy_export_wh"
    FREQUENCY_HZ = "frequency_hz"
    SOC_PERCENT = "soc_percent"
    PV_POWER_W = "pv_power_w"
    BATTERY_POWER_W = "battery_power_w"

    @property
    def unit(self) -> str:
        """The canonical unit of the quantity (what :class:`Reading` holds)."""
        return CANONICAL_UNITS[self]


CANONICAL_UNITS: dict[Quantity, str] = {
    **{q: "W" for q in Quantity if q.value.startswith(("power_w", "pv_power", "battery_power"))},
    **{q: "A" for q in Quantity if q.value.startswith("current_a")},
    **{q: "V" for q in Quantity if q.value.startswith("voltage_v")},
    Quantity.ENERGY_IMPORT_WH: "Wh",
    Quantity.ENERGY_EXPORT_WH: "Wh",
    Quantity.FREQUENCY_HZ: "Hz",
    Quantity.SOC_PERCENT: "%",
}

#: The units a profile entry may declare per canonical unit, and the factor to the canonical one.
UNIT_FACTORS: dict[str, dict[str, float]] = {
    "W": {"W": 1.0, "kW": 1000.0, "MW": 1_000_000.0},
    "A": {"A": 1.0, "mA": 0.001, "kA": 1000.0},
    "V": {"V": 1.0, "mV": 0.001, "kV": 1000.0},
    "Wh": {"Wh": 1.0, "kWh": 1000.0, "MWh": 1_000_000.0},
    "Hz": {"Hz": 1.0, "mHz": 0.001},
    "%": {"%": 1.0},
}

PHASE_POWERS = (Quantity.POWER_W_L1, Quantity.POWER_W_L2, Quantity.POWER_W_L3)
PHASE_CURRENTS = (Quantity.CURRENT_A_L1, Quantity.CURRENT_A_L2, Quantity.CURRENT_A_L3)
PHASE_VOLTAGES = (Quantity.VOLTAGE_V_L1, Quantity.VOLTAGE_V_L2, Quantity.VOLTAGE_V_L3)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class Reading:
    """Every quantity of one device, read in one go (``None``: not mapped or not available)."""

    power_w: float | None = None
    power_w_l1: float | None = None
    power_w_l2: float | None = None
    power_w_l3: float | None = None
    current_a_l1: float | None = None
    current_a_l2: float | None = None
    current_a_l3: float | None = None
    voltage_v_l1: float | None = None
    voltage_v_l2: float | None = None
    voltage_v_l3: float | None = None
    energy_import_wh: float | None = None
    energy_export_wh: float | None = None
    frequency_hz: float | None = None
    soc_percent: float | None = None
    pv_power_w: float | None = None
    battery_power_w: float | None = None

    measured_at: datetime = field(default_factory=_now)
    """When the last register block arrived (timezone-aware UTC)."""
    profile_id: str = ""
    unavailable: frozenset[Quantity] = frozenset()
    """Quantities the profile maps but the device reported as "not available" (NaN, sentinel)."""
    derived: frozenset[Quantity] = frozenset()
    """Quantities computed here rather than read (``power_w`` as the sum of the phases)."""
    requests: int = 0
    """How many Modbus requests this reading took."""

    @classmethod
    def from_values(cls, values: Mapping[Quantity, float | None], **meta: object) -> Reading:
        """Build a reading from ``{quantity: value}``; ``meta`` sets the other fields."""
        kwargs: dict[str, object] = {Quantity(q).value: v for q, v in values.items()}
        kwargs.update(meta)
        return cls(**kwargs)  # type: ignore[arg-type]

    def get(self, quantity: Quantity | str) -> float | None:
        """The value of one quantity."""
        return getattr(self, Quantity(quantity).value)  # type: ignore[no-any-return]

    def __getitem__(self, quantity: Quantity | str) -> float:
        value = self.get(quantity)
        if value is None:
            raise KeyError(quantity)
        return value

    def __contains__(self, quantity: object) -> bool:
        try:
            return self.get(Quantity(str(quantity))) is not None
        except ValueError:
            return False

    def __iter__(self) -> Iterator[Quantity]:
        return (q for q in Quantity if self.get(q) is not None)

    def as_dict(self) -> dict[Quantity, float]:
        """The quantities that have a value."""
        return {q: v for q in Quantity if (v := self.get(q)) is not None}

    @property
    def phase_powers(self) -> tuple[float | None, float | None, float | None]:
        """Active power per phase, L1..L3."""
        return (self.power_w_l1, self.power_w_l2, self.power_w_l3)

    @property
    def phase_currents(self) -> tuple[float | None, float | None, float | None]:
        """Current per phase, L1..L3."""
        return (self.current_a_l1, self.current_a_l2, self.current_a_l3)

    @property
    def phase_voltages(self) -> tuple[float | None, float | None, float | None]:
        """Voltage per phase, L1..L3."""
        return (self.voltage_v_l1, self.voltage_v_l2, self.voltage_v_l3)

    def replace(self, **changes: object) -> Reading:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]
