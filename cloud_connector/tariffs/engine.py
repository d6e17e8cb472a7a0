"""Price a session with an OCPI 2.2.1 tariff: which price component applies when, step_size, min/max price.

Rules, from ``mod_tariffs.asciidoc`` and ``mod_cdrs.asciidoc`` (step_size):

- Per period and per dimension, the first element (in list order) that has a component for that dimension
  and whose restrictions all match is used; no match means that dimension is free in that period.
  Restrictions are evaluated at the period's start, in the location's ``time_zone``: time of day, date,
  day of week, energy and duration so far (duration counts from the session start), and the period's
  power/current range. Elements with a ``reservation`` restriction only price reservation periods (an
  expired reservation uses RESERVATION_EXPIRES elements first, then RESERVATION ones); the others only
  price the charging session.
- ENERGY bills kWh, TIME the charging hours (the reservation hours in a reservation), PARKING_TIME the hours
  without charging. FLAT is billed once per session (the first FLAT component that applies) and once per
  reservation.
- step_size is applied once per session to the total billed ENERGY, and once to TIME and PARKING_TIME
  combined: with the step of the component of the last period that billed that dimension, the extra amount
  billed in that period. For time, the last period that billed TIME or PARKING_TIME decides which of the two
  is rounded (so charging followed by paid parking rounds the parking only). "Billed" leaves out stretches
  that no component prices (free parking after 20:00 in the spec's example). Reservation time is rounded on
  its own. step_size 0 means no rounding.
- VAT per component: ``incl = excl * (100 + vat) / 100``, no VAT field meaning no VAT.

Rounding: OCPI leaves price rounding to law and contracts and gives numbers 4 decimals. The engine computes
exactly (``Decimal``), rounds each category total (fixed, energy, time, parking, reservation) half up to
``money_quantum`` (default 0.0001; pass 0.01 to bill in cents), makes ``total_cost`` the sum of those rounded
totals, then applies ``min_price``/``max_price`` to ``total_cost`` only, excl. and incl. VAT each on its own
(a limit without ``incl_vat`` leaves the amount incl. VAT alone). The category totals are not capped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, tzinfo
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal, localcontext

from .cdr import PRICE_ZERO, VOLUME_QUANTUM, CdrCosts, CdrDimension, CdrDimensionType, ChargingPeriod, Price
from .errors import TariffNotApplicableError
from .model import ZERO, PriceComponent, ReservationRestriction, Tariff, TariffDimension, TariffElement
from .session import (
    SECONDS_PER_HOUR,
    SessionInput,
    Timeline,
    Usage,
    expired_reservation,
    from_meter_curve,
    from_ocpi_cdr,
)

MONEY_QUANTUM = Decimal("0.0001")
_ONE = Decimal(1)
_WH_PER_KWH = Decimal(1000)
_US = timedelta(microseconds=1)
_PRECISION = 40  # significant digits of every intermediate amount (rounding happens once, at the end)


def price_session(
    tariff: Tariff, session: SessionInput, *, time_zone: tzinfo, money_quantum: Decimal = MONEY_QUANTUM
) -> CdrCosts:
    """Price a metered session (and the reservation before it, if any) in the location's ``time_zone``."""
    with localcontext(prec=_PRECISION):
        return _price(tariff, from_meter_curve(session, tariff, time_zone), time_zone, money_quantum)


def price_cdr(
    tariff: Tariff, cdr: Mapping[str, object], *, time_zone: tzinfo, money_quantum: Decimal = MONEY_QUANTUM
) -> CdrCosts:
    """Price the charging periods of an OCPI CDR (e.g. to check a CDR from a peer)."""
    with localcontext(prec=_PRECISION):
        timeline = from_ocpi_cdr(cdr)
        currency = cdr.get("currency")
        if currency is not None and currency != tariff.currency:
            raise TariffNotApplicableError(f"currency: the CDR is in {currency!r}, the tariff in {tariff.currency!r}")
        return _price(tariff, timeline, time_zone, money_quantum)


def price_expired_reservation(
    tariff: Tariff, *, start: datetime, end: datetime, time_zone: tzinfo, money_quantum: Decimal = MONEY_QUANTUM
) -> CdrCosts:
    """Price a reservation made at ``start`` that expired at ``end`` without a charging session."""
    with localcontext(prec=_PRECISION):
        return _price(tariff, expired_reservation(tariff, start, end, time_zone), time_zone, money_quantum)


@dataclass(slots=True)
class _Priced:
    """A period, the component that applies to each dimension (with its element's index), what is billed."""

    usage: Usage
    components: dict[TariffDimension, tuple[int, PriceComponent]]
    billed: dict[TariffDimension, Decimal] = field(default_factory=dict)  # kWh, seconds, or 1 for FLAT

    def signature(self) -> tuple[object, ...]:
        usage = self.usage
        return (
            usage.reservation,
            usage.charging_s > ZERO,
            usage.parking_s > ZERO,
            sorted((dimension.value, index) for dimension, (index, _) in self.components.items()),
        )


def _price(tariff: Tariff, timeline: Timeline, time_zone: tzinfo, quantum: Decimal) -> CdrCosts:
    if quantum <= ZERO:
        raise ValueError("money_quantum must be positive")
    first = timeline.reservation_start or timeline.session_start or timeline.end
    if not tariff.is_valid_at(first):
        raise TariffNotApplicableError(f"tariff {tariff.id!r} is not valid at {first.isoformat()}")
    priced = _resolve(tariff, timeline, time_zone)
    if timeline.fine_grained:
        priced = _merge(priced)
    _bill(priced)
    return _report(tariff, timeline, priced, quantum)


def _resolve(tariff: Tariff, timeline: Timeline, time_zone: tzinfo) -> list[_Priced]:
    session_elements = [(i, e) for i, e in enumerate(tariff.elements) if e.restrictions.reservation is None]
    kinds = [ReservationRestriction.RESERVATION]
    if timeline.expired_reservation:
        kinds.insert(0, ReservationRestriction.RESERVATION_EXPIRES)
    reservation_elements = [
        (i, e) for kind in kinds for i, e in enumerate(tariff.elements) if e.restrictions.reservation is kind
    ]
    energy = ZERO
    priced: list[_Priced] = []
    for usage in timeline.usages:
        if usage.reservation:
            candidates, origin = reservation_elements, timeline.reservation_start
        else:
            candidates, origin = session_elements, timeline.session_start
        duration_s = Decimal((usage.start - (origin or usage.start)) // _US) / 1_000_000
        local = usage.start.astimezone(time_zone)
        components: dict[TariffDimension, tuple[int, PriceComponent]] = {}
        for index, element in candidates:
            if _applies(element, usage, local, energy, duration_s):
                for component in element.price_components:
                    components.setdefault(component.type, (index, component))
        priced.append(_Priced(usage, components))
        energy += usage.energy_kwh
    return priced


def _applies(element: TariffElement, usage: Usage, local: datetime, energy: Decimal, duration_s: Decimal) -> bool:
    restrictions = element.restrictions
    return restrictions.matches_local(local) and restrictions.matches_state(
        energy_kwh=energy,
        duration_s=duration_s,
        power_kw=(usage.min_power_kw, usage.max_power_kw),
        current_a=(usage.min_current_a, usage.max_current_a),
    )


def _merge(priced: list[_Priced]) -> list[_Priced]:
    """Join adjacent periods priced by the same components in the same state (charging, parking...)."""
    merged: list[_Priced] = []
    for item in priced:
        if merged and merged[-1].signature() == item.signature():
            last = merged[-1].usage
            usage = item.usage
            merged[-1].usage = replace(
                last,
                end=usage.end,
                energy_kwh=last.energy_kwh + usage.energy_kwh,
                charging_s=last.charging_s + usage.charging_s,
                parking_s=last.parking_s + usage.parking_s,
                reservation_s=last.reservation_s + usage.reservation_s,
                min_power_kw=_extreme(min, last.min_power_kw, usage.min_power_kw),
                max_power_kw=_extreme(max, last.max_power_kw, usage.max_power_kw),
                min_current_a=_extreme(min, last.min_current_a, usage.min_current_a),
                max_current_a=_extreme(max, last.max_current_a, usage.max_current_a),
            )
        else:
            merged.append(item)
    return merged


def _extreme(pick: Callable[[list[Decimal]], Decimal], a: Decimal | None, b: Decimal | None) -> Decimal | None:
    known = [value for value in (a, b) if value is not None]
    return pick(known) if known else None


def _volume(usage: Usage, dimension: TariffDimension) -> Decimal:
    if dimension is TariffDimension.ENERGY:
        return usage.energy_kwh
    if dimension is TariffDimension.TIME:
        return usage.reservation_s if usage.reservation else usage.charging_s
    if dimension is TariffDimension.PARKING_TIME:
        return usage.parking_s
    return ZERO  # FLAT: billed once, below


def _bill(priced: list[_Priced]) -> None:
    """Fill the billed volumes: consumption, FLAT once, then step_size (see the module docstring)."""
    for item in priced:
        for dimension in item.components:
            volume = _volume(item.usage, dimension)
            if volume > ZERO:
                item.billed[dimension] = volume
    session = [item for item in priced if not item.usage.reservation]
    reservation = [item for item in priced if item.usage.reservation]
    for part in (session, reservation):
        flat = next((item for item in part if TariffDimension.FLAT in item.components), None)
        if flat is not None:
            flat.billed[TariffDimension.FLAT] = _ONE
    _round_up(session, TariffDimension.ENERGY, _WH_PER_KWH)
    timed = [item for item in session if {TariffDimension.TIME, TariffDimension.PARKING_TIME} & item.billed.keys()]
    if timed:
        parking = TariffDimension.PARKING_TIME in timed[-1].billed
        _round_up(session, TariffDimension.PARKING_TIME if parking else TariffDimension.TIME, _ONE)
    _round_up(reservation, TariffDimension.TIME, _ONE)


def _round_up(part: list[_Priced], dimension: TariffDimension, step_unit: Decimal) -> None:
    """Round the part's total billed ``dimension`` up to the last billing component's step, in its period."""
    billing = [item for item in part if dimension in item.billed]
    if not billing:
        return
    last = billing[-1]
    step = Decimal(last.components[dimension][1].step_size)
    if step == ZERO:
        return
    total = sum((item.billed[dimension] for item in billing), ZERO) * step_unit
    rounded = (total / step).to_integral_value(ROUND_CEILING) * step
    last.billed[dimension] += (rounded - total) / step_unit


def _cost(item: _Priced) -> dict[str, Price]:
    """This period's cost per CDR category, exact."""
    costs: dict[str, Price] = {}
    for dimension, volume in item.billed.items():
        component = item.components[dimension][1]
        units = volume / SECONDS_PER_HOUR if dimension in _TIMES else volume
        excl = units * component.price
        category = "reservation" if item.usage.reservation else _CATEGORY[dimension]
        costs[category] = costs.get(category, PRICE_ZERO) + Price(excl, component.with_vat(excl))
    return costs


_TIMES = frozenset({TariffDimension.TIME, TariffDimension.PARKING_TIME})
_CATEGORY = {
    TariffDimension.FLAT: "fixed",
    TariffDimension.ENERGY: "energy",
    TariffDimension.TIME: "time",
    TariffDimension.PARKING_TIME: "parking",
}


def _report(tariff: Tariff, timeline: Timeline, priced: list[_Priced], quantum: Decimal) -> CdrCosts:
    totals: dict[str, Price] = {}
    periods: list[ChargingPeriod] = []
    publisher = _Publisher()
    for item in priced:
        costs = _cost(item)
        for category, cost in costs.items():
            totals[category] = totals.get(category, PRICE_ZERO) + cost
        periods.append(
            ChargingPeriod(
                start_date_time=item.usage.start,
                end_date_time=item.usage.end,
                dimensions=publisher.dimensions(item.usage),
                tariff_id=tariff.id,
                cost=sum(costs.values(), PRICE_ZERO),
            )
        )
    rounded = {category: total.quantize(quantum) for category, total in totals.items()}
    total = _limit(tariff, sum(rounded.values(), PRICE_ZERO))
    session = [item.usage for item in priced if not item.usage.reservation]
    start = timeline.session_start
    return CdrCosts(
        currency=tariff.currency,
        tariff_id=tariff.id,
        start_date_time=timeline.reservation_start or start or timeline.end,
        end_date_time=timeline.end,
        charging_periods=tuple(periods),
        total_cost=total,
        total_fixed_cost=rounded.get("fixed"),
        total_energy_cost=rounded.get("energy"),
        total_time_cost=rounded.get("time"),
        total_parking_cost=rounded.get("parking"),
        total_reservation_cost=rounded.get("reservation"),
        total_energy=_volume_out(sum((u.energy_kwh for u in session), ZERO)),
        total_time=_hours(timeline.end - start) if start is not None else ZERO,
        total_parking_time=_volume_out(sum((u.parking_s for u in session), ZERO) / SECONDS_PER_HOUR),
    )


def _limit(tariff: Tariff, total: Price) -> Price:
    """Apply the tariff's min_price and max_price to the session total."""
    excl, incl = total.excl_vat, total.incl_vat
    if tariff.min_price is not None:
        excl = max(excl, tariff.min_price.excl_vat)
        incl = incl if tariff.min_price.incl_vat is None else max(incl, tariff.min_price.incl_vat)
    if tariff.max_price is not None:
        excl = min(excl, tariff.max_price.excl_vat)
        incl = incl if tariff.max_price.incl_vat is None else min(incl, tariff.max_price.incl_vat)
    return Price(excl, incl)


class _Publisher:
    """The CDR volumes of each period, floored to OCPI's 4 decimals.

    Energy and times are floored cumulatively (each period gets the growth of the floored running total), so
    the published volumes add up to the floored total. Flooring keeps a re-pricing of the CDR on the same
    side of every restriction limit and step_size boundary as the exact amounts (for limits on the 4-decimal
    grid and whole-second totals), so a peer that prices our CDR finds the same steps.
    """

    def __init__(self) -> None:
        self._running: dict[CdrDimensionType, Decimal] = {}

    def dimensions(self, usage: Usage) -> tuple[CdrDimension, ...]:
        if usage.reservation:
            return (self._additive(CdrDimensionType.RESERVATION_TIME, usage.reservation_s / SECONDS_PER_HOUR),)
        dimensions = [self._additive(CdrDimensionType.ENERGY, usage.energy_kwh)]
        if usage.charging_s > ZERO:
            dimensions.append(self._additive(CdrDimensionType.TIME, usage.charging_s / SECONDS_PER_HOUR))
        if usage.parking_s > ZERO:
            dimensions.append(self._additive(CdrDimensionType.PARKING_TIME, usage.parking_s / SECONDS_PER_HOUR))
        levels = (
            (CdrDimensionType.MIN_POWER, usage.min_power_kw),
            (CdrDimensionType.MAX_POWER, usage.max_power_kw),
            (CdrDimensionType.MIN_CURRENT, usage.min_current_a),
            (CdrDimensionType.MAX_CURRENT, usage.max_current_a),
        )
        dimensions.extend(CdrDimension(kind, _floor(value)) for kind, value in levels if value is not None)
        return tuple(dimensions)

    def _additive(self, kind: CdrDimensionType, amount: Decimal) -> CdrDimension:
        before = self._running.get(kind, ZERO)
        self._running[kind] = before + amount
        return CdrDimension(kind, _floor(before + amount) - _floor(before))


def _floor(value: Decimal) -> Decimal:
    return value.quantize(VOLUME_QUANTUM, ROUND_FLOOR)


def _hours(span: timedelta) -> Decimal:
    return _volume_out(Decimal(span // _US) / Decimal(3_600_000_000))


def _volume_out(value: Decimal) -> Decimal:
    return value.quantize(VOLUME_QUANTUM, ROUND_HALF_UP)
