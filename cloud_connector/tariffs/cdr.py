"""The engine's result: the cost fields of an OCPI 2.2.1 CDR (charging periods and totals)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

VOLUME_QUANTUM = Decimal("0.0001")  # OCPI numbers carry 4 decimals


class CdrDimensionType(StrEnum):
    """The CdrDimensionType values a CDR may carry."""

    ENERGY = "ENERGY"
    MAX_CURRENT = "MAX_CURRENT"
    MAX_POWER = "MAX_POWER"
    MIN_CURRENT = "MIN_CURRENT"
    MIN_POWER = "MIN_POWER"
    PARKING_TIME = "PARKING_TIME"
    RESERVATION_TIME = "RESERVATION_TIME"
    TIME = "TIME"


@dataclass(frozen=True, slots=True)
class Price:
    """An amount of money excluding and including VAT."""

    excl_vat: Decimal
    incl_vat: Decimal

    def __add__(self, other: Price) -> Price:
        return Price(self.excl_vat + other.excl_vat, self.incl_vat + other.incl_vat)

    def quantize(self, quantum: Decimal) -> Price:
        """Both amounts rounded half up to a multiple of ``quantum``."""
        return Price(
            self.excl_vat.quantize(quantum, ROUND_HALF_UP),
            self.incl_vat.quantize(quantum, ROUND_HALF_UP),
        )

    def to_ocpi(self) -> dict[str, float]:
        """The OCPI Price object."""
        return {"excl_vat": float(self.excl_vat), "incl_vat": float(self.incl_vat)}


PRICE_ZERO = Price(Decimal(0), Decimal(0))


@dataclass(frozen=True, slots=True)
class CdrDimension:
    """One measured volume of a charging period (kWh, hours, kW or A), at OCPI precision."""

    type: CdrDimensionType
    volume: Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class ChargingPeriod:
    """A CDR charging period; ``cost`` (exact, step_size included) explains it and is not sent over OCPI."""

    start_date_time: datetime
    end_date_time: datetime
    dimensions: tuple[CdrDimension, ...]
    tariff_id: str
    cost: Price

    def to_ocpi(self) -> dict[str, object]:
        """The OCPI ChargingPeriod object."""
        return {
            "start_date_time": ocpi_timestamp(self.start_date_time),
            "dimensions": [{"type": d.type.value, "volume": float(d.volume)} for d in self.dimensions],
            "tariff_id": self.tariff_id,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class CdrCosts:
    """Charging periods and totals of a priced session.

    A ``total_*_cost`` is None when no price component of its kind billed anything (the CDR then omits it).
    Times are in hours and energy in kWh, rounded to 4 decimals; money is rounded as the engine was asked.
    """

    currency: str
    tariff_id: str
    start_date_time: datetime
    end_date_time: datetime
    charging_periods: tuple[ChargingPeriod, ...]
    total_cost: Price
    total_fixed_cost: Price | None
    total_energy_cost: Price | None
    total_time_cost: Price | None
    total_parking_cost: Price | None
    total_reservation_cost: Price | None
    total_energy: Decimal
    total_time: Decimal
    total_parking_time: Decimal

    def to_ocpi(self) -> dict[str, object]:
        """The cost-related fields of an OCPI CDR object, JSON-ready."""
        cdr: dict[str, object] = {
            "start_date_time": ocpi_timestamp(self.start_date_time),
            "end_date_time": ocpi_timestamp(self.end_date_time),
            "currency": self.currency,
            "charging_periods": [period.to_ocpi() for period in self.charging_periods],
            "total_cost": self.total_cost.to_ocpi(),
            "total_energy": float(self.total_energy),
            "total_time": float(self.total_time),
            "total_parking_time": float(self.total_parking_time),
        }
        optional = {
            "total_fixed_cost": self.total_fixed_cost,
            "total_energy_cost": self.total_energy_cost,
            "total_time_cost": self.total_time_cost,
            "total_parking_cost": self.total_parking_cost,
            "total_reservation_cost": self.total_reservation_cost,
        }
        cdr.update({key: price.to_ocpi() for key, price in optional.items() if price is not None})
        return cdr


def ocpi_timestamp(moment: datetime) -> str:
    """An OCPI DateTime: UTC with ``Z``, milliseconds only when not zero (fits OCPI's 25 characters)."""
    utc = moment.astimezone(UTC)
    text = utc.isoformat(timespec="milliseconds" if utc.microsecond else "seconds")
    return text.replace("+00:00", "Z")
