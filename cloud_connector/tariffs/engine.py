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

CDR volumes carry 4 decimals (0.36 s of TIME, 0.1 Wh of ENERGY), so they cannot repeat the exact amounts:
they are chosen (``_publish``) so that pricing the CDR's periods, as ``price_cdr`` or a peer does, picks the
same elements and bills the same number of steps; the costs then agree to a few 0.0001 (the volumes' rounding).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, tzinfo
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal, localcontext
from itertools import pairwise

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
    steps = _bill(priced)
    return _report(tariff, timeline, priced, steps, quantum)


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


def _bill(priced: list[_Priced]) -> dict[_Rounded, int]:
    """Fill the billed volumes: consumption, FLAT once, then step_size (see the module docstring).

    Returns the step_size applied to each rounded (reservation?, dimension), for the CDR volumes.
    """
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
    steps = {
        (False, TariffDimension.ENERGY): _round_up(session, TariffDimension.ENERGY, _WH_PER_KWH),
        (True, TariffDimension.TIME): _round_up(reservation, TariffDimension.TIME, _ONE),
    }
    timed = [item for item in session if {TariffDimension.TIME, TariffDimension.PARKING_TIME} & item.billed.keys()]
    if timed:
        parking = TariffDimension.PARKING_TIME in timed[-1].billed
        dimension = TariffDimension.PARKING_TIME if parking else TariffDimension.TIME
        steps[False, dimension] = _round_up(session, dimension, _ONE)
    return {rounded: step for rounded, step in steps.items() if step}


def _round_up(part: list[_Priced], dimension: TariffDimension, step_unit: Decimal) -> int:
    """Round the part's total billed ``dimension`` up to the last billing component's step, in its period.

    Returns that step_size (0: nothing billed, or no rounding).
    """
    billing = [item for item in part if dimension in item.billed]
    if not billing:
        return 0
    last = billing[-1]
    step = last.components[dimension][1].step_size
    if step == 0:
        return 0
    total = sum((item.billed[dimension] for item in billing), ZERO) * step_unit
    rounded = _steps(total, Decimal(step)) * step
    last.billed[dimension] += (rounded - total) / step_unit
    return step


def _steps(amount: Decimal, step: Decimal) -> Decimal:
    """How many steps step_size bills for ``amount`` (both in the same unit)."""
    return (amount / step).to_integral_value(ROUND_CEILING)


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


def _report(
    tariff: Tariff, timeline: Timeline, priced: list[_Priced], steps: dict[_Rounded, int], quantum: Decimal
) -> CdrCosts:
    totals: dict[str, Price] = {}
    periods: list[ChargingPeriod] = []
    limits = {
        limit
        for element in tariff.elements
        if element.restrictions.reservation is None
        for limit in (element.restrictions.min_kwh, element.restrictions.max_kwh)
        if limit is not None
    }
    published = _publish(priced, steps, limits)
    for item, dimensions in zip(priced, published, strict=True):
        costs = _cost(item)
        for category, cost in costs.items():
            totals[category] = totals.get(category, PRICE_ZERO) + cost
        periods.append(
            ChargingPeriod(
                start_date_time=item.usage.start,
                end_date_time=item.usage.end,
                dimensions=dimensions,
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


_Rounded = tuple[bool, TariffDimension]  # (reservation part?, dimension) that step_size rounded


@dataclass(frozen=True, slots=True)
class _Chain:
    """One additive CDR dimension: the periods that carry it and how to read it from a period."""

    kind: CdrDimensionType
    rounded: _Rounded  # the part and tariff dimension that bill it
    unit: Decimal  # kWh or seconds per published unit (kWh, hours)
    amount: Callable[[Usage], Decimal]  # in kWh or seconds
    carried: Callable[[Usage], bool]


_CHAINS = (
    _Chain(
        CdrDimensionType.ENERGY,
        (False, TariffDimension.ENERGY),
        _ONE,
        lambda usage: usage.energy_kwh,
        lambda usage: not usage.reservation,
    ),
    _Chain(
        CdrDimensionType.TIME,
        (False, TariffDimension.TIME),
        SECONDS_PER_HOUR,
        lambda usage: usage.charging_s,
        lambda usage: not usage.reservation and usage.charging_s > ZERO,
    ),
    _Chain(
        CdrDimensionType.PARKING_TIME,
        (False, TariffDimension.PARKING_TIME),
        SECONDS_PER_HOUR,
        lambda usage: usage.parking_s,
        lambda usage: not usage.reservation and usage.parking_s > ZERO,
    ),
    _Chain(
        CdrDimensionType.RESERVATION_TIME,
        (True, TariffDimension.TIME),
        SECONDS_PER_HOUR,
        lambda usage: usage.reservation_s,
        lambda usage: usage.reservation,
    ),
)


def _publish(
    priced: list[_Priced], steps: dict[_Rounded, int], kwh_limits: set[Decimal]
) -> list[tuple[CdrDimension, ...]]:
    """The CDR dimensions of each period, volumes at OCPI's 4 decimals, so that a re-pricing finds our prices.

    Additive volumes (energy, times) are the growth of a running total floored to 4 decimals: they add up to the
    floored total, and the energy so far at each period start is the exact amount floored, on the same side of
    every kWh restriction limit on the 4-decimal grid. For a dimension that step_size rounds, the published total
    of the periods it bills must also stay in the same step as the exact total: a free stretch before billed time
    would otherwise shift it (10 billed minutes after 14 free ones read 0.4 - 0.2333 = 0.1667 h = 600.12 s, one
    5-minute step more). See ``_keep_the_step``. Levels (power, current) are floored.
    """
    volumes: dict[tuple[int, CdrDimensionType], Decimal] = {}
    for chain in _CHAINS:
        indexes = [index for index, item in enumerate(priced) if chain.carried(item.usage)]
        exact = [ZERO]
        for index in indexes:
            exact.append(exact[-1] + chain.amount(priced[index].usage))
        marks = [_floor(amount / chain.unit) for amount in exact]
        step = steps.get(chain.rounded)
        if step:
            dimension = chain.rounded[1]
            billed = [dimension in priced[index].billed for index in indexes]
            step_amount = Decimal(step) / (_WH_PER_KWH if dimension is TariffDimension.ENERGY else _ONE)
            limits = kwh_limits if dimension is TariffDimension.ENERGY else set()
            _keep_the_step(marks, exact, billed, unit=chain.unit, step=step_amount, kwh_limits=limits)
        for position, index in enumerate(indexes):
            volumes[index, chain.kind] = marks[position + 1] - marks[position]
    published: list[tuple[CdrDimension, ...]] = []
    for index, item in enumerate(priced):
        usage = item.usage
        dimensions = [
            CdrDimension(chain.kind, volumes[index, chain.kind]) for chain in _CHAINS if (index, chain.kind) in volumes
        ]
        levels = (
            (CdrDimensionType.MIN_POWER, usage.min_power_kw),
            (CdrDimensionType.MAX_POWER, usage.max_power_kw),
            (CdrDimensionType.MIN_CURRENT, usage.min_current_a),
            (CdrDimensionType.MAX_CURRENT, usage.max_current_a),
        )
        dimensions.extend(CdrDimension(kind, _floor(value)) for kind, value in levels if value is not None)
        published.append(tuple(dimensions))
    return published


def _keep_the_step(
    marks: list[Decimal],
    exact: list[Decimal],
    billed: list[bool],
    *,
    unit: Decimal,
    step: Decimal,
    kwh_limits: set[Decimal],
) -> None:
    """Move floored running totals (``marks``) up one quantum until the billed volumes round to the exact steps.

    ``exact[k]``/``marks[k]``: the amount before the chain's period k (k = len: the end). The billed total only
    changes at the edges of runs of billed periods: raising the mark where a run starts lowers it, raising the
    mark where a run ends (or the very end) raises it, by one quantum each time; a mark is at most ceiled, and
    each quantum is smaller than a step, so the first total in the right step is found if enough edges can move.
    An edge cannot move where that would make a volume negative or, for energy, lift the energy so far from
    below a kWh restriction limit to it (then the re-pricing could pick another element).
    """
    target = _steps(sum((b - a for (a, b), paid in zip(pairwise(exact), billed, strict=True) if paid), ZERO), step)

    def published() -> Decimal:
        return sum(((b - a) * unit for (a, b), paid in zip(pairwise(marks), billed, strict=True) if paid), ZERO)

    last = len(billed)
    if _steps(published(), step) > target:
        edges = [k for k in range(1, last) if billed[k] and not billed[k - 1]]
    else:
        edges = [k for k in range(1, last + 1) if billed[k - 1] and (k == last or not billed[k])]
    for k in edges:
        if _steps(published(), step) == target:
            return
        up = (exact[k] / unit).quantize(VOLUME_QUANTUM, ROUND_CEILING)
        if k < last and (up > marks[k + 1] or any(exact[k] < limit <= up for limit in kwh_limits)):
            continue
        marks[k] = up


def _floor(value: Decimal) -> Decimal:
    return value.quantize(VOLUME_QUANTUM, ROUND_FLOOR)


def _hours(span: timedelta) -> Decimal:
    return _volume_out(Decimal(span // _US) / Decimal(3_600_000_000))


def _volume_out(value: Decimal) -> Decimal:
    return value.quantize(VOLUME_QUANTUM, ROUND_HALF_UP)
