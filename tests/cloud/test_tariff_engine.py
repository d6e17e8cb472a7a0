"""Pricing metered sessions: each restriction, step_size, min/max price, parking, reservations, bad input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
import re
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import given, settings, strategies as st
import pytest

from cloud_connector.tariffs import (
    CdrCosts,
    CdrDimensionType,
    InvalidSessionError,
    MeterSample,
    Price,
    SessionInput,
    Tariff,
    TariffNotApplicableError,
    price_cdr,
    price_expired_reservation,
    price_session,
)

PARIS = ZoneInfo("Europe/Paris")

type Point = tuple[float, str] | tuple[float, str, str | None, str | None]


def comp(kind: str, price: float, step: int = 1, vat: float | None = None) -> dict[str, Any]:
    """An OCPI price component."""
    component: dict[str, Any] = {"type": kind, "price": price, "step_size": step}
    if vat is not None:
        component["vat"] = vat
    return component


def element(*components: dict[str, Any], **restrictions: Any) -> dict[str, Any]:
    """An OCPI tariff element."""
    item: dict[str, Any] = {"price_components": list(components)}
    if restrictions:
        item["restrictions"] = restrictions
    return item


def tariff(*elements: dict[str, Any], **extra: Any) -> Tariff:
    """A tariff in EUR from elements."""
    data = {"country_code": "FR", "party_id": "CAR", "id": "T1", "currency": "EUR", "elements": list(elements)}
    return Tariff.from_ocpi(data | extra)


def local(text: str) -> datetime:
    """A Paris wall-clock time."""
    return datetime.fromisoformat(text).replace(tzinfo=PARIS)


def session(start: datetime, *points: Point, reservation_start: datetime | None = None, **extra: Any) -> SessionInput:
    """A session whose samples are (minutes after start, cumulative kWh[, kW, A])."""
    samples = []
    for point in points:
        minutes, kwh = point[0], point[1]
        kw, amps = (point[2], point[3]) if len(point) == 4 else (None, None)
        samples.append(
            MeterSample(
                timestamp=start + timedelta(minutes=minutes),
                energy_kwh=Decimal(kwh),
                power_kw=None if kw is None else Decimal(kw),
                current_a=None if amps is None else Decimal(amps),
            )
        )
    return SessionInput(
        start=start,
        end=samples[-1].timestamp,
        samples=samples,
        reservation_start=reservation_start,
        **extra,
    )


def price(t: Tariff, s: SessionInput) -> CdrCosts:
    """Price in Paris time."""
    return price_session(t, s, time_zone=PARIS)


def euros(excl: str, incl: str | None = None) -> Price:
    """A Price; incl defaults to excl (no VAT)."""
    return Price(Decimal(excl), Decimal(incl if incl is not None else excl))


def starts(result: CdrCosts) -> list[str]:
    """Local start times of the charging periods."""
    return [p.start_date_time.astimezone(PARIS).strftime("%d %H:%M") for p in result.charging_periods]


def volumes(result: CdrCosts, kind: CdrDimensionType) -> list[Decimal | None]:
    """One dimension's volume per charging period (None where absent)."""
    return [next((d.volume for d in p.dimensions if d.type is kind), None) for p in result.charging_periods]


# --- time of day, dates, days of week -------------------------------------------------------------------


def test_time_window_across_midnight() -> None:
    """A 22:00-06:00 window: the session is cut at both ends, each part billed at its price."""
    night = tariff(element(comp("ENERGY", 0.10), start_time="22:00", end_time="06:00"), element(comp("ENERGY", 0.30)))
    result = price(night, session(local("2024-03-05T21:00"), (0, "0"), (600, "10")))
    assert result.total_energy_cost == euros("1.40")
    assert starts(result) == ["05 21:00", "05 22:00", "06 06:00"]
    assert volumes(result, CdrDimensionType.ENERGY) == [Decimal(1), Decimal(8), Decimal(1)]
    assert result.total_time == Decimal(10)


def test_time_window_on_the_daylight_saving_night() -> None:
    """Local times follow the zone: the night of the spring change has 7 hours from 22:00 to 06:00."""
    night = tariff(element(comp("ENERGY", 0.10), start_time="22:00", end_time="06:00"), element(comp("ENERGY", 0.30)))
    start = datetime(2024, 3, 30, 20, tzinfo=UTC)  # 21:00 CET
    result = price(night, session(start, (0, "0"), (600, "10")))  # until 08:00 CEST
    assert result.total_energy_cost == euros("1.60")
    assert [p.start_date_time for p in result.charging_periods] == [
        start,
        datetime(2024, 3, 30, 21, tzinfo=UTC),
        datetime(2024, 3, 31, 4, tzinfo=UTC),
    ]


def test_end_time_midnight_means_end_of_day() -> None:
    """end_time 00:00 closes the window at midnight."""
    evening = tariff(element(comp("TIME", 2), start_time="18:00", end_time="00:00"), element(comp("TIME", 1)))
    result = price(evening, session(local("2024-03-05T23:00"), (0, "0"), (120, "14")))
    assert result.total_time_cost == euros("3.00")
    assert starts(result) == ["05 23:00", "06 00:00"]


def test_day_of_week_changes_mid_session() -> None:
    """Friday 23:00 to Saturday 01:00: the Saturday element takes over at local midnight."""
    weekend = tariff(element(comp("TIME", 1), day_of_week=["SATURDAY", "SUNDAY"]), element(comp("TIME", 2)))
    result = price(weekend, session(local("2024-03-08T23:00"), (0, "0"), (120, "14")))
    assert result.total_time_cost == euros("3.00")
    assert [p.start_date_time for p in result.charging_periods] == [
        datetime(2024, 3, 8, 22, tzinfo=UTC),
        datetime(2024, 3, 8, 23, tzinfo=UTC),
    ]


def test_start_and_end_date() -> None:
    """A one-day promotion (start_date inclusive, end_date exclusive, local dates)."""
    promo = tariff(
        element(comp("ENERGY", 0), start_date="2024-04-01", end_date="2024-04-02"), element(comp("ENERGY", 0.30))
    )
    result = price(promo, session(local("2024-03-31T23:00"), (0, "0"), (26 * 60, "26")))
    assert result.total_energy_cost == euros("0.60")
    assert starts(result) == ["31 23:00", "01 00:00", "02 00:00"]


def test_no_matching_element_means_free() -> None:
    """A dimension without a matching element costs nothing, and its total is left out."""
    weekend_only = tariff(element(comp("TIME", 2), day_of_week=["SATURDAY"]))
    result = price(weekend_only, session(local("2024-03-04T10:00"), (0, "0"), (60, "7")))
    assert result.total_cost == euros("0")
    assert result.total_time_cost is None
    assert "total_time_cost" not in result.to_ocpi()


# --- energy, duration, power, current ------------------------------------------------------------------


def test_kwh_thresholds() -> None:
    """The price changes at the instant the energy reaches min_kwh / max_kwh (linear between samples)."""
    tiers = tariff(element(comp("ENERGY", 0.20), max_kwh=10), element(comp("ENERGY", 0.40), min_kwh=10))
    result = price(tiers, session(local("2024-03-04T10:00"), (0, "0"), (150, "25")))
    assert result.total_energy_cost == euros("8.00")
    assert starts(result) == ["04 10:00", "04 11:00"]


def test_kwh_threshold_between_microseconds() -> None:
    """A crossing inside a microsecond: the next period starts at or above the threshold, the sum stays exact."""
    tiers = tariff(element(comp("ENERGY", 0.20, step=0), max_kwh=1), element(comp("ENERGY", 0.40, step=0), min_kwh=1))
    start = local("2024-03-04T10:00")
    result = price(tiers, session(start, (0, "0"), (7 / 60, "3")))
    assert result.total_energy_cost == euros("1.0000")
    assert result.total_energy == Decimal(3)
    crossing = result.charging_periods[1].start_date_time
    assert crossing == start + timedelta(microseconds=2_333_334)
    text = result.to_ocpi()["charging_periods"]
    assert isinstance(text, list)
    assert re.fullmatch(r"2024-03-04T09:00:02\.333Z", text[1]["start_date_time"])


def test_kwh_threshold_reached_exactly_at_the_end_of_charging() -> None:
    """Reaching min_kwh exactly as charging stops: the parking that follows is priced by that element."""
    idle_fee = tariff(element(comp("PARKING_TIME", 10, step=60), min_kwh=5), element(comp("TIME", 1)))
    result = price(idle_fee, session(local("2024-03-04T10:00"), (0, "0"), (60, "5"), (90, "5")))
    assert result.total_time_cost == euros("1.00")
    assert result.total_parking_cost == euros("5.00")
    never = tariff(element(comp("TIME", 9), min_kwh=50), element(comp("TIME", 1)))
    assert price(never, session(local("2024-03-04T10:00"), (0, "0"), (60, "5"))).total_cost == euros("1.00")


def test_min_duration() -> None:
    """min_duration counts from the session start: a penalty price after one hour."""
    penalty = tariff(element(comp("TIME", 5), min_duration=3600), element(comp("TIME", 1)))
    result = price(penalty, session(local("2024-03-04T10:00"), (0, "0"), (90, "10")))
    assert result.total_time_cost == euros("3.50")


def test_current_restrictions() -> None:
    """Currents (sum over phases) from the samples; without any current, a current restriction does not exclude."""
    by_current = tariff(element(comp("TIME", 1), max_current=16), element(comp("TIME", 3), min_current=16))
    result = price(
        by_current, session(local("2024-03-04T10:00"), (0, "0", None, "10"), (60, "7", None, "32"), (120, "29"))
    )
    assert result.total_time_cost == euros("4.00")
    assert volumes(result, CdrDimensionType.MAX_CURRENT) == [Decimal(10), Decimal(32)]
    unknown = price(by_current, session(local("2024-03-04T10:00"), (0, "0"), (120, "29")))
    assert unknown.total_time_cost == euros("2.00")


def test_power_from_the_energy_curve() -> None:
    """Without power samples, the average power between samples decides min_power."""
    fast = tariff(element(comp("ENERGY", 0.50), min_power=7), element(comp("ENERGY", 0.30)))
    result = price(fast, session(local("2024-03-04T10:00"), (0, "0"), (60, "3"), (120, "14")))
    assert result.total_energy_cost == euros("6.40")
    assert volumes(result, CdrDimensionType.MIN_POWER) == [Decimal(3), Decimal(11)]


def test_equal_periods_merge() -> None:
    """Samples that change nothing in the pricing give one charging period, with the power range."""
    capped = tariff(element(comp("ENERGY", 0.20), max_power=16), element(comp("ENERGY", 0.50)))
    points: list[Point] = [(0, "0", "5", "8"), (10, "1", "6", None), (20, "2", "7", "12"), (30, "3", None, None)]
    result = price(capped, session(local("2024-03-04T10:00"), *points))
    assert len(result.charging_periods) == 1
    period = result.charging_periods[0]
    kinds = {d.type: d.volume for d in period.dimensions}
    assert kinds[CdrDimensionType.MIN_POWER] == Decimal(5)
    assert kinds[CdrDimensionType.MAX_POWER] == Decimal(7)
    assert kinds[CdrDimensionType.MIN_CURRENT] == Decimal(8)
    assert kinds[CdrDimensionType.MAX_CURRENT] == Decimal(12)
    assert period.cost == euros("0.60")


# --- charging or parking --------------------------------------------------------------------------------


def test_parking_when_the_power_is_about_zero() -> None:
    """A trickle under the threshold is parking (its energy is still counted); the threshold is a setting."""
    t = tariff(element(comp("TIME", 1), comp("PARKING_TIME", 2), comp("ENERGY", 1)))
    points: list[Point] = [(0, "0"), (60, "11"), (120, "11.03")]
    result = price(t, session(local("2024-03-04T10:00"), *points))
    assert result.total_time_cost == euros("1.00")
    assert result.total_parking_cost == euros("2.00")
    assert result.total_energy_cost == euros("11.03")
    assert result.total_parking_time == Decimal(1)
    assert volumes(result, CdrDimensionType.PARKING_TIME) == [None, Decimal(1)]
    sensitive = price(t, session(local("2024-03-04T10:00"), *points, parking_power_threshold_kw=Decimal("0.01")))
    assert sensitive.total_time_cost == euros("2.00")
    assert sensitive.total_parking_cost is None
    assert sensitive.total_parking_time == Decimal(0)


def test_power_sample_or_energy_means_charging() -> None:
    """Energy flowing or a power sample above the threshold each make the stretch charging time."""
    t = tariff(element(comp("TIME", 1), comp("PARKING_TIME", 2)))
    energy_only = price(t, session(local("2024-03-04T10:00"), (0, "0", "0", None), (60, "5", "0", None)))
    assert energy_only.total_time_cost == euros("1.00")
    lagging_register = price(t, session(local("2024-03-04T10:00"), (0, "0", "3", None), (60, "0", "0", None)))
    assert lagging_register.total_time_cost == euros("1.00")
    assert lagging_register.total_parking_cost is None


# --- step_size (mod_cdrs.asciidoc) ----------------------------------------------------------------------


def test_energy_step_size_applies_to_the_session_total() -> None:
    """4.3 kWh before 17:00 and 1.1 kWh after, step 500 Wh: 5.4 -> 5.5 kWh, the extra 0.1 at the later price."""
    t = tariff(element(comp("ENERGY", 0.20, step=500), end_time="17:00"), element(comp("ENERGY", 0.27, step=500)))
    result = price(t, session(local("2024-03-04T16:00"), (0, "0"), (60, "4.3"), (120, "5.4")))
    assert result.total_energy_cost == euros("1.184")
    assert [p.cost for p in result.charging_periods] == [euros("0.86"), euros("0.324")]


def test_time_step_size_applies_to_the_session_total() -> None:
    """6 min at 5/h then 22 min at 7/h, step 10 min: 28 -> 30 min, so 24 min after 17:00 (not 30)."""
    t = tariff(element(comp("TIME", 5, step=600), end_time="17:00"), element(comp("TIME", 7, step=600)))
    result = price(t, session(local("2024-03-04T16:54"), (0, "0"), (28, "5")))
    assert result.total_time_cost == euros("3.30")


@pytest.mark.parametrize(
    ("step", "charging", "parking", "time_cost", "parking_cost"),
    [
        (600, 21, 16, "0.35", "0.6667"),  # parking 16 -> 20 min; charging is not rounded
        (300, 21, 7, "0.35", "0.3333"),  # charging 21 min (not 25), parking 7 -> 10 min
    ],
)
def test_time_then_parking_rounds_the_parking_only(
    step: int, charging: int, parking: int, time_cost: str, parking_cost: str
) -> None:
    """TIME and PARKING_TIME share one step_size rounding, on the parking duration."""
    t = tariff(element(comp("TIME", 1, step=step), comp("PARKING_TIME", 2, step=step)))
    result = price(t, session(local("2024-03-04T10:00"), (0, "0"), (charging, "3"), (charging + parking, "3")))
    assert result.total_time_cost == euros(time_cost)
    assert result.total_parking_cost == euros(parking_cost)


def test_charging_again_after_parking_rounds_the_charging_time() -> None:
    """When charging time is the last time billed, the charging total is rounded and parking is not."""
    t = tariff(element(comp("TIME", 6, step=900), comp("PARKING_TIME", 6, step=900)))
    result = price(t, session(local("2024-03-04T10:00"), (0, "0"), (10, "2"), (20, "2"), (30, "4")))
    assert result.total_time_cost == euros("3.00")
    assert result.total_parking_cost == euros("1.00")
    assert [p.cost for p in result.charging_periods] == [euros("1.00"), euros("1.00"), euros("2.00")]


def test_step_size_zero_does_not_round() -> None:
    """step_size 0: billed exactly."""
    t = tariff(element(comp("TIME", 6, step=0)))
    assert price(t, session(local("2024-03-04T10:00"), (0, "0"), (7, "1"))).total_time_cost == euros("0.70")


# --- min_price / max_price ------------------------------------------------------------------------------

MIN_PRICE = {"excl_vat": 0.50, "incl_vat": 0.55}


def test_min_price() -> None:
    """The spec's 0.25/kWh + min price example: 20 kWh -> 5.00; 1 kWh -> 0.50 / 0.55 instead of 0.25 / 0.275."""
    t = tariff(element(comp("ENERGY", 0.25, vat=10)), min_price=MIN_PRICE)
    assert price(t, session(local("2024-03-04T10:00"), (0, "0"), (60, "20"))).total_cost == euros("5.00", "5.50")
    small = price(t, session(local("2024-03-04T10:00"), (0, "0"), (60, "1")))
    assert small.total_cost == euros("0.50", "0.55")
    assert small.total_energy_cost == euros("0.25", "0.275")  # the categories are not adjusted


def test_limits_without_incl_vat_leave_the_amount_incl_vat_alone() -> None:
    """A min/max price given excl. VAT only limits the amount excl. VAT."""
    floor = tariff(element(comp("ENERGY", 0.25, vat=10)), min_price={"excl_vat": 2})
    assert price(floor, session(local("2024-03-04T10:00"), (0, "0"), (60, "1"))).total_cost == euros("2", "0.275")
    cap = tariff(element(comp("ENERGY", 0.25, vat=10)), max_price={"excl_vat": 1})
    assert price(cap, session(local("2024-03-04T10:00"), (0, "0"), (60, "20"))).total_cost == euros("1", "5.50")


def test_money_quantum() -> None:
    """Category totals are rounded half up to the quantum, and the total is their sum."""
    t = tariff(element(comp("ENERGY", 0.25, vat=10, step=100), comp("FLAT", 0.5, vat=20)))
    cents = price_session(
        t, session(local("2024-03-04T10:00"), (0, "0"), (60, "20.45")), time_zone=PARIS, money_quantum=Decimal("0.01")
    )
    assert cents.total_energy_cost == euros("5.13", "5.64")
    assert cents.total_cost == euros("5.63", "6.24")
    with pytest.raises(ValueError, match="money_quantum"):
        price_session(
            t, session(local("2024-03-04T10:00"), (0, "0"), (60, "1")), time_zone=PARIS, money_quantum=Decimal(0)
        )


# --- reservations ---------------------------------------------------------------------------------------

RESERVING = (
    element(comp("FLAT", 1), comp("TIME", 6, step=60), reservation="RESERVATION"),
    element(comp("FLAT", 0.5), comp("TIME", 2, step=60)),
)


def test_reservation_is_priced_apart_from_the_session() -> None:
    """Reservation elements price only the reservation, the others only the session; each FLAT once."""
    t = tariff(*RESERVING)
    start = local("2024-03-04T10:00")
    result = price(t, session(start, (0, "0"), (30, "5"), reservation_start=start - timedelta(minutes=20)))
    assert result.total_reservation_cost == euros("3.00")  # 1.00 + 20 min at 6/h
    assert result.total_fixed_cost == euros("0.50")
    assert result.total_time_cost == euros("1.00")
    assert result.total_cost == euros("4.50")
    assert result.start_date_time == start - timedelta(minutes=20)
    assert result.total_time == Decimal("0.5")  # the charging session only
    assert volumes(result, CdrDimensionType.RESERVATION_TIME) == [Decimal("0.3333"), None]


def test_reservation_starting_with_the_session_costs_nothing() -> None:
    """A reservation used at once has no reservation period."""
    t = tariff(*RESERVING)
    start = local("2024-03-04T10:00")
    result = price(t, session(start, (0, "0"), (30, "5"), reservation_start=start))
    assert result.total_reservation_cost is None
    assert result.total_cost == euros("1.50")


def test_reservation_elements_with_restrictions() -> None:
    """Reservation elements follow their own restrictions (time of day, duration from the reservation start)."""
    t = tariff(
        element(comp("TIME", 12), reservation="RESERVATION", min_duration=900),
        element(comp("TIME", 6), reservation="RESERVATION", start_time="08:00", end_time="20:00"),
        element(comp("TIME", 1)),
    )
    start = local("2024-03-04T20:10")
    result = price(t, session(start, (0, "0"), (60, "7"), reservation_start=start - timedelta(minutes=30)))
    # 19:40-19:55 in the 08:00-20:00 window at 6/h (1.50); from 19:55 (15 min reserved) at 12/h (3.00)
    assert result.total_reservation_cost == euros("4.50")
    assert result.total_time_cost == euros("1.00")


def test_expired_reservation_prefers_the_expiry_elements() -> None:
    """An expired reservation takes RESERVATION_EXPIRES components first, wherever they are listed."""
    t = tariff(
        element(comp("TIME", 3, step=600), reservation="RESERVATION"),
        element(comp("TIME", 6, step=600), comp("FLAT", 4), reservation="RESERVATION_EXPIRES"),
        element(comp("FLAT", 0.5), comp("ENERGY", 0.25)),
    )
    start = local("2024-03-04T10:00")
    result = price_expired_reservation(t, start=start, end=start + timedelta(minutes=45), time_zone=PARIS)
    assert result.total_reservation_cost == euros("9.00")  # 4 + 50 min at 6/h
    assert result.total_fixed_cost is None
    assert result.total_time == Decimal(0)
    assert result.start_date_time == start
    only_reservation = tariff(element(comp("TIME", 3, step=600), reservation="RESERVATION"))
    plain = price_expired_reservation(only_reservation, start=start, end=start + timedelta(hours=1), time_zone=PARIS)
    assert plain.total_cost == euros("3.00")


# --- tariff validity and bad input ----------------------------------------------------------------------


def test_tariff_outside_its_validity() -> None:
    """A session that starts after end_date_time (or before start_date_time) cannot use the tariff."""
    old = tariff(element(comp("ENERGY", 0.25)), end_date_time="2019-06-30T23:59:59Z")
    late = session(datetime(2019, 7, 1, tzinfo=UTC), (0, "0"), (60, "5"))
    with pytest.raises(TariffNotApplicableError, match="not valid"):
        price(old, late)
    future = tariff(element(comp("ENERGY", 0.25)), start_date_time="2030-01-01T00:00:00Z")
    with pytest.raises(TariffNotApplicableError):
        price_expired_reservation(
            future, start=datetime(2029, 1, 1, tzinfo=UTC), end=datetime(2029, 1, 1, 1, tzinfo=UTC), time_zone=PARIS
        )


def _sample(minutes: int, kwh: str) -> MeterSample:
    return MeterSample(
        timestamp=datetime(2024, 3, 4, 10, tzinfo=UTC) + timedelta(minutes=minutes), energy_kwh=Decimal(kwh)
    )


T0 = datetime(2024, 3, 4, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (SessionInput(start=T0.replace(tzinfo=None), end=T0, samples=[]), "start: a time zone aware"),
        (SessionInput(start=T0, end=T0, samples=[]), "end: must be after start"),
        (SessionInput(start=T0, end=T0 + timedelta(hours=1), samples=[_sample(0, "0")]), "at least two readings"),
        (
            SessionInput(start=T0, end=T0 + timedelta(hours=1), samples=[_sample(1, "0"), _sample(60, "1")]),
            "the first reading must be at start",
        ),
        (
            SessionInput(
                start=T0,
                end=T0 + timedelta(hours=1),
                samples=[_sample(0, "0"), _sample(30, "1"), _sample(30, "1"), _sample(60, "1")],
            ),
            "strictly increasing",
        ),
        (
            SessionInput(start=T0, end=T0 + timedelta(hours=1), samples=[_sample(0, "5"), _sample(60, "4")]),
            "must not decrease",
        ),
        (
            SessionInput(
                start=T0,
                end=T0 + timedelta(hours=1),
                samples=[_sample(0, "0"), _sample(60, "4")],
                reservation_start=T0 + timedelta(minutes=1),
            ),
            "reservation_start: must not be after start",
        ),
        (
            SessionInput(
                start=T0,
                end=T0 + timedelta(hours=1),
                samples=[_sample(0, "0"), MeterSample(timestamp=datetime(2024, 3, 4, 11), energy_kwh=Decimal(1))],
            ),
            r"samples\[1\].timestamp: a time zone aware",
        ),
    ],
)
def test_invalid_sessions_are_refused(bad: SessionInput, message: str) -> None:
    """Unusable meter curves raise InvalidSessionError with the reason."""
    with pytest.raises(InvalidSessionError, match=message):
        price(tariff(element(comp("ENERGY", 0.25))), bad)


def test_invalid_expired_reservation() -> None:
    """An expired reservation must end after it starts."""
    with pytest.raises(InvalidSessionError, match="end: must be after start"):
        price_expired_reservation(tariff(*RESERVING), start=T0, end=T0, time_zone=PARIS)


# --- properties -----------------------------------------------------------------------------------------

PROPERTY_TARIFF = tariff(
    element(comp("FLAT", 1, vat=20)),
    element(comp("ENERGY", 0.2, step=100, vat=20), max_kwh=5),
    element(comp("ENERGY", 0.4, step=100, vat=20), min_power=11),
    element(comp("ENERGY", 0.3, step=100, vat=20)),
    element(comp("TIME", 1.5, step=300, vat=20), start_time="18:00", end_time="08:00"),
    element(comp("TIME", 1, step=300, vat=20), comp("PARKING_TIME", 4, step=600, vat=20), min_duration=1800),
)

legs = st.lists(
    st.tuples(st.integers(min_value=1, max_value=90).map(lambda m: m * 2), st.integers(min_value=0, max_value=9000)),
    min_size=1,
    max_size=6,
)


@settings(max_examples=200, deadline=None)
@given(legs=legs, start_minute=st.integers(min_value=0, max_value=24 * 60 - 1))
def test_extra_samples_on_a_straight_line_change_nothing(legs: list[tuple[int, int]], start_minute: int) -> None:
    """Splitting a linear stretch with an extra sample gives the same CDR totals; the CDR re-prices the same."""
    start = datetime(2024, 3, 4, tzinfo=UTC) + timedelta(minutes=start_minute)
    minutes, wh = 0, 0
    plain: list[MeterSample] = [MeterSample(timestamp=start, energy_kwh=Decimal(0))]
    split: list[MeterSample] = list(plain)
    for length, energy in legs:
        middle = MeterSample(
            timestamp=start + timedelta(minutes=minutes + length // 2), energy_kwh=Decimal(wh * 2 + energy) / 2000
        )
        minutes, wh = minutes + length, wh + energy
        end = MeterSample(timestamp=start + timedelta(minutes=minutes), energy_kwh=Decimal(wh) / 1000)
        plain.append(end)
        split.extend((middle, end))
    end_time = start + timedelta(minutes=minutes)
    one = price(PROPERTY_TARIFF, SessionInput(start=start, end=end_time, samples=plain))
    two = price(PROPERTY_TARIFF, SessionInput(start=start, end=end_time, samples=split))
    assert one.to_ocpi() == two.to_ocpi()
    again = price_cdr(PROPERTY_TARIFF, one.to_ocpi(), time_zone=PARIS)
    assert abs(again.total_cost.incl_vat - one.total_cost.incl_vat) < Decimal("0.01")
    assert one.total_energy == Decimal(wh) / 1000


def test_a_cdr_re_prices_like_its_session_with_short_idle_legs_before_charging() -> None:
    """Billed time after a free stretch: the CDR keeps the billed total on the step boundary (found by hypothesis).

    17:40 Paris, 6 min idle (parking, free before 30 min), charging from 17:46: TIME is free until 18:00, then
    1.5/h (step 5 min) for 190 min = 38 steps exactly -> 4.75; 172 Wh -> 200 Wh at 0.2 -> 0.04; FLAT 1:
    5.79 / 6.948. The billed 10 min of 18:00-18:10 must not read 0.1667 h (600.12 s, one step more: 7.098).
    """
    legs = [(2, 0), (2, 0), (2, 0), (42, 36), (162, 136)]
    start = datetime(2024, 3, 4, tzinfo=UTC) + timedelta(minutes=1000)
    samples = [MeterSample(timestamp=start, energy_kwh=Decimal(0))]
    minutes, wh = 0, 0
    for length, energy in legs:
        minutes, wh = minutes + length, wh + energy
        samples.append(MeterSample(timestamp=start + timedelta(minutes=minutes), energy_kwh=Decimal(wh) / 1000))
    one = price(PROPERTY_TARIFF, SessionInput(start=start, end=start + timedelta(minutes=minutes), samples=samples))
    assert one.total_time_cost == euros("4.75", "5.70")
    assert one.total_cost == euros("5.79", "6.948")
    # The free 17:46-18:00 stretch takes the quantum: 0.2334 h, then 0.1666 h (599.76 s) billed, still 38 steps.
    assert volumes(one, CdrDimensionType.TIME) == [None, Decimal("0.2334"), Decimal("0.1666"), Decimal(3)]
    again = price_cdr(PROPERTY_TARIFF, one.to_ocpi(), time_zone=PARIS)
    assert again.total_time_cost == euros("4.75", "5.70")
    assert again.total_cost == one.total_cost


@pytest.mark.parametrize(
    ("start", "hours", "cost"),
    [
        # Spring forward: at 01:00Z the clock jumps from 02:00 to 03:00, out of the window (4 h in, 2 h out).
        (datetime(2024, 3, 30, 21, tzinfo=UTC), 6, "1.00"),
        # Fall back: 02:30 CEST ends the window at 00:30Z, 01:00Z is 02:00 CET again (in) until 02:30 CET.
        (datetime(2024, 10, 26, 20, tzinfo=UTC), 8, "1.40"),
    ],
)
def test_time_window_across_clock_changes(start: datetime, hours: int, cost: str) -> None:
    """A 22:00-02:30 window follows the wall clock through the daylight saving changes."""
    night = tariff(element(comp("ENERGY", 0.10), start_time="22:00", end_time="02:30"), element(comp("ENERGY", 0.30)))
    result = price(night, session(start, (0, "0"), (hours * 60, str(hours))))
    assert result.total_energy_cost == euros(cost)
