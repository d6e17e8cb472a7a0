"""OCPI 2.2.1 tariff pricing: ``Tariff`` + a session (meter curve, or CDR charging periods) -> CDR costs.

Pure code (no I/O, no clock): ``Tariff.from_ocpi(json)``, then ``price_session``, ``price_cdr`` or
``price_expired_reservation``; ``CdrCosts.to_ocpi()`` gives the CDR's charging periods and totals.
The pricing rules and the rounding are described in ``engine``.
"""

from .cdr import CdrCosts, CdrDimension, CdrDimensionType, ChargingPeriod, Price
from .engine import MONEY_QUANTUM, price_cdr, price_expired_reservation, price_session
from .errors import InvalidSessionError, InvalidTariffError, TariffError, TariffNotApplicableError
from .model import (
    DayOfWeek,
    PriceComponent,
    PriceLimit,
    ReservationRestriction,
    Tariff,
    TariffDimension,
    TariffElement,
    TariffRestrictions,
    TariffType,
)
from .session import DEFAULT_PARKING_THRESHOLD_KW, MeterSample, SessionInput

__all__ = [
    "DEFAULT_PARKING_THRESHOLD_KW",
    "MONEY_QUANTUM",
    "CdrCosts",
    "CdrDimension",
    "CdrDimensionType",
    "ChargingPeriod",
    "DayOfWeek",
    "InvalidSessionError",
    "InvalidTariffError",
    "MeterSample",
    "Price",
    "PriceComponent",
    "PriceLimit",
    "ReservationRestriction",
    "SessionInput",
    "Tariff",
    "TariffDimension",
    "TariffElement",
    "TariffError",
    "TariffNotApplicableError",
    "TariffRestrictions",
    "TariffType",
    "price_cdr",
    "price_expired_reservation",
    "price_session",
]
