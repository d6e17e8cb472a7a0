"""Parsing and validating OCPI Tariff JSON (``Tariff.from_ocpi``), and the restriction predicates."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

import pytest

from cloud_connector.tariffs import (
    DayOfWeek,
    InvalidTariffError,
    PriceComponent,
    PriceLimit,
    ReservationRestriction,
    Tariff,
    TariffDimension,
    TariffError,
    TariffRestrictions,
    TariffType,
)

FULL: dict[str, Any] = {
    "country_code": "FR",
    "party_id": "CAR",
    "id": "night-1",
    "currency": "EUR",
    "type": "REGULAR",
    "tariff_alt_text": [{"language": "fr", "text": "ignored"}],
    "min_price": {"excl_vat": 0.5, "incl_vat": 0.6},
    "max_price": {"excl_vat": 30},
    "start_date_time": "2024-01-01T00:00:00Z",
    "end_date_time": "2024-12-31T23:00:00+01:00",
    "last_updated": "2023-12-01T10:00:00",
    "elements": [
        {
            "price_components": [
                {"type": "ENERGY", "price": 0.25, "vat": 8.5, "step_size": 1},
                {"type": "FLAT", "price": 1, "step_size": 0},
            ],
            "restrictions": {
                "start_time": "22:00",
                "end_time": "06:00",
                "start_date": "2024-01-01",
                "end_date": "2024-07-01",
                "min_kwh": 0,
                "max_kwh": 50.5,
                "min_current": 6,
                "max_current": 32,
                "min_power": 1.4,
                "max_power": 22,
                "min_duration": 0,
                "max_duration": 7200.0,
                "day_of_week": ["MONDAY", "SUNDAY"],
            },
        },
        {"price_components": [{"type": "TIME", "price": 2.4, "vat": 20, "step_size": 300}]},
        {
            "price_components": [{"type": "TIME", "price": 1, "step_size": 60}],
            "restrictions": {"reservation": "RESERVATION_EXPIRES"},
        },
    ],
}


def test_full_tariff_is_parsed() -> None:
    """Every pricing field lands in a typed value; JSON floats keep their decimal text."""
    tariff = Tariff.from_ocpi(FULL)
    assert (tariff.country_code, tariff.party_id, tariff.id, tariff.currency) == ("FR", "CAR", "night-1", "EUR")
    assert tariff.type is TariffType.REGULAR
    assert tariff.min_price == PriceLimit(Decimal("0.5"), Decimal("0.6"))
    assert tariff.max_price == PriceLimit(Decimal(30), None)
    assert tariff.start_date_time == datetime(2024, 1, 1, tzinfo=UTC)
    assert tariff.end_date_time == datetime(2024, 12, 31, 22, tzinfo=UTC)
    assert tariff.last_updated == datetime(2023, 12, 1, 10, tzinfo=UTC)  # no designator: UTC
    first = tariff.elements[0]
    assert first.price_components[0] == PriceComponent(TariffDimension.ENERGY, Decimal("0.25"), Decimal("8.5"), 1)
    assert first.component(TariffDimension.FLAT) == PriceComponent(TariffDimension.FLAT, Decimal(1), None, 0)
    assert first.component(TariffDimension.TIME) is None
    assert first.restrictions == TariffRestrictions(
        start_time=time(22),
        end_time=time(6),
        start_date=date(2024, 1, 1),
        end_date=date(2024, 7, 1),
        min_kwh=Decimal(0),
        max_kwh=Decimal("50.5"),
        min_current=Decimal(6),
        max_current=Decimal(32),
        min_power=Decimal("1.4"),
        max_power=Decimal(22),
        min_duration=0,
        max_duration=7200,
        day_of_week=frozenset({DayOfWeek.MONDAY, DayOfWeek.SUNDAY}),
    )
    assert tariff.elements[1].restrictions == TariffRestrictions()
    assert tariff.elements[2].restrictions.reservation is ReservationRestriction.RESERVATION_EXPIRES


def test_vat_and_validity() -> None:
    """VAT is added per component; a missing VAT adds nothing; validity bounds are inclusive."""
    tariff = Tariff.from_ocpi(FULL)
    energy, flat = tariff.elements[0].price_components
    assert energy.with_vat(Decimal(10)) == Decimal("10.85")
    assert flat.with_vat(Decimal(10)) == Decimal(10)
    assert not tariff.is_valid_at(datetime(2023, 12, 31, 23, 59, tzinfo=UTC))
    assert tariff.is_valid_at(datetime(2024, 1, 1, tzinfo=UTC))
    assert tariff.is_valid_at(datetime(2024, 12, 31, 22, tzinfo=UTC))
    assert not tariff.is_valid_at(datetime(2024, 12, 31, 22, 0, 1, tzinfo=UTC))
    assert DayOfWeek.of(date(2024, 3, 4)) is DayOfWeek.MONDAY
    assert DayOfWeek.of(date(2024, 3, 10)) is DayOfWeek.SUNDAY


@pytest.mark.parametrize(
    ("start", "end", "inside", "outside"),
    [
        ("09:00", "18:00", ["09:00", "17:59:59"], ["08:59:59", "18:00", "00:00"]),
        ("22:00", "06:00", ["22:00", "23:59:59", "00:00", "05:59"], ["06:00", "12:00", "21:59"]),
        ("20:00", "00:00", ["20:00", "23:59:59"], ["00:00", "19:59"]),  # 00:00 = end of the day
        ("17:00", None, ["17:00", "23:59"], ["16:59", "00:00"]),
        (None, "07:30", ["00:00", "07:29"], ["07:30", "23:00"]),
        ("08:00", "08:00", ["00:00", "08:00", "23:59"], []),  # equal bounds: the whole day
        (None, None, ["00:00", "13:00"], []),
    ],
)
def test_time_of_day_windows(start: str | None, end: str | None, inside: list[str], outside: list[str]) -> None:
    """start_time inclusive, end_time exclusive, wrapping past midnight when end < start."""
    restrictions = TariffRestrictions(
        start_time=None if start is None else time.fromisoformat(start),
        end_time=None if end is None else time.fromisoformat(end),
    )
    day = date(2024, 3, 5)
    for text in inside:
        assert restrictions.matches_local(datetime.combine(day, time.fromisoformat(text))), text
    for text in outside:
        assert not restrictions.matches_local(datetime.combine(day, time.fromisoformat(text))), text


def test_dates_and_days() -> None:
    """start_date inclusive, end_date exclusive, day_of_week on the local date."""
    restrictions = TariffRestrictions(
        start_date=date(2024, 3, 4), end_date=date(2024, 3, 9), day_of_week=frozenset({DayOfWeek.TUESDAY})
    )
    assert restrictions.matches_local(datetime(2024, 3, 5, 12))
    assert not restrictions.matches_local(datetime(2024, 3, 6, 12))  # Wednesday
    assert not restrictions.matches_local(datetime(2024, 2, 27, 12))  # Tuesday before start_date
    assert not restrictions.matches_local(datetime(2024, 3, 12, 12))  # Tuesday after end_date
    only_dates = TariffRestrictions(start_date=date(2024, 3, 4), end_date=date(2024, 3, 5))
    assert only_dates.matches_local(datetime(2024, 3, 4, 23, 59))
    assert not only_dates.matches_local(datetime(2024, 3, 5))


def test_state_restrictions() -> None:
    """kWh and duration: min inclusive, max exclusive; power and current: unknown values do not exclude."""
    restrictions = TariffRestrictions(
        min_kwh=Decimal(1),
        max_kwh=Decimal(5),
        min_duration=60,
        max_duration=120,
        min_power=Decimal(7),
        max_power=Decimal(11),
        min_current=Decimal(10),
        max_current=Decimal(16),
    )

    def check(
        kwh: str = "1",
        seconds: int = 60,
        power: tuple[str | None, str | None] = ("7", "7"),
        current: tuple[str | None, str | None] = ("10", "10"),
    ) -> bool:
        return restrictions.matches_state(
            energy_kwh=Decimal(kwh),
            duration_s=Decimal(seconds),
            power_kw=(None if power[0] is None else Decimal(power[0]), None if power[1] is None else Decimal(power[1])),
            current_a=(
                None if current[0] is None else Decimal(current[0]),
                None if current[1] is None else Decimal(current[1]),
            ),
        )

    assert check()
    assert not check(kwh="0.999")
    assert check(kwh="4.999")
    assert not check(kwh="5")
    assert not check(seconds=59)
    assert check(seconds=119)
    assert not check(seconds=120)
    assert not check(power=("6.9", "8"))
    assert not check(power=("8", "11"))
    assert check(power=(None, "10.9"))  # the max stands in for the min
    assert not check(power=(None, "6"))
    assert check(power=("8", None))
    assert not check(power=("12", None))  # the min stands in for the max
    assert check(power=(None, None))
    assert not check(current=("9", "12"))
    assert not check(current=("12", "16"))
    assert check(current=(None, None))


def _broken(path: str, value: object) -> dict[str, Any]:
    """FULL with the field at ``path`` (dotted, list indexes as numbers) set to ``value``; None deletes it."""
    data = copy.deepcopy(FULL)
    *parents, leaf = path.split(".")
    node: Any = data
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if value is None:
        del node[leaf]
    elif isinstance(node, list):
        node[int(leaf)] = value
    else:
        node[leaf] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("elements", None, "tariff.elements: missing"),
        ("elements", [], "tariff.elements: expected a non-empty list"),
        ("elements", {"x": 1}, "tariff.elements: expected a non-empty list"),
        ("currency", "eur", "tariff.currency: expected an ISO 4217 code"),
        ("currency", 978, "tariff.currency: expected a string"),
        ("id", None, "tariff.id: missing"),
        ("id", "x" * 37, "tariff.id: expected a string of 1 to 36"),
        ("id", "", "tariff.id: expected a string"),
        ("country_code", "FRA", "tariff.country_code"),
        ("type", "CHEAP", "tariff.type: expected one of AD_HOC_PAYMENT"),
        ("min_price", 1, "tariff.min_price: expected a JSON object"),
        ("min_price", {"incl_vat": 1}, "tariff.min_price.excl_vat: missing"),
        ("min_price", {"excl_vat": 40}, "tariff.min_price: greater than max_price"),
        ("max_price", {"excl_vat": 30, "incl_vat": 0.59}, "tariff.min_price: greater than max_price"),
        ("start_date_time", "2025-01-01T00:00:00Z", "tariff.start_date_time: not before end_date_time"),
        ("last_updated", "yesterday", "tariff.last_updated: expected an RFC 3339 timestamp"),
        ("last_updated", 1700000000, "tariff.last_updated: expected an RFC 3339 timestamp"),
        ("elements.1", "TIME", "tariff.elements[1]: expected a JSON object"),
        ("elements.1.price_components", [], "tariff.elements[1].price_components: expected a non-empty list"),
        ("elements.1.price_components.0", 2.4, "tariff.elements[1].price_components[0]: expected a JSON object"),
        ("elements.1.price_components.0.type", "KWH", "price_components[0].type: expected one of ENERGY"),
        ("elements.1.price_components.0.price", -1, "price_components[0].price: expected a finite number >= 0"),
        ("elements.1.price_components.0.price", float("nan"), "price_components[0].price: expected a finite"),
        ("elements.1.price_components.0.price", "2.40", "price_components[0].price: expected a number"),
        ("elements.1.price_components.0.price", True, "price_components[0].price: expected a number"),
        ("elements.1.price_components.0.price", None, "price_components[0].price: missing"),
        ("elements.1.price_components.0.step_size", None, "price_components[0].step_size: missing"),
        ("elements.1.price_components.0.step_size", -5, "price_components[0].step_size: expected an integer >= 0"),
        ("elements.1.price_components.0.step_size", 300.5, "price_components[0].step_size: expected an integer"),
        ("elements.1.price_components.0.step_size", True, "price_components[0].step_size: expected an integer"),
        ("elements.1.restrictions", [], "tariff.elements[1].restrictions: expected a JSON object"),
        ("elements.0.price_components.1.type", "ENERGY", "price_components[1].type: ENERGY appears twice"),
        ("elements.0.restrictions.day_of_week", "MONDAY", "restrictions.day_of_week: expected a list"),
        ("elements.0.restrictions.day_of_week", ["MON"], "restrictions.day_of_week[0]: expected one of MONDAY"),
        ("elements.0.restrictions.start_time", "24:00", "restrictions.start_time: expected a time of day HH:MM"),
        ("elements.0.restrictions.end_time", "7:00", "restrictions.end_time: expected a time of day HH:MM"),
        ("elements.0.restrictions.start_date", "2024-1-01", "restrictions.start_date: expected a date YYYY-MM-DD"),
        ("elements.0.restrictions.end_date", "2024-02-30", "restrictions.end_date: no such date '2024-02-30'"),
        ("elements.0.restrictions.end_date", "2024-01-01", "restrictions.start_date: not before end_date"),
        ("elements.0.restrictions.min_kwh", 51, "restrictions.min_kwh: greater than max_kwh"),
        ("elements.0.restrictions.min_current", 33, "restrictions.min_current: greater than max_current"),
        ("elements.0.restrictions.min_power", 23, "restrictions.min_power: greater than max_power"),
        ("elements.0.restrictions.min_duration", 7201, "restrictions.min_duration: greater than max_duration"),
        ("elements.0.restrictions.max_duration", 1.5, "restrictions.max_duration: expected an integer"),
        ("elements.2.restrictions.reservation", "YES", "restrictions.reservation: expected one of RESERVATION"),
        (
            "elements.2.price_components.0.type",
            "PARKING_TIME",
            "tariff.elements[2]: a reservation element may only have FLAT and TIME price components",
        ),
    ],
)
def test_invalid_tariffs_are_refused(path: str, value: object, message: str) -> None:
    """Each broken field gives an InvalidTariffError that names it."""
    with pytest.raises(InvalidTariffError) as caught:
        Tariff.from_ocpi(_broken(path, value))
    assert message in str(caught.value)
    assert isinstance(caught.value, TariffError)
    assert isinstance(caught.value, ValueError)


def test_not_an_object() -> None:
    """A tariff must be a JSON object."""
    with pytest.raises(InvalidTariffError, match="tariff: expected a JSON object"):
        Tariff.from_ocpi([FULL])  # type: ignore[arg-type]


def test_minimal_tariff() -> None:
    """The optional fields may all be missing (the spec's PUT example has no last_updated)."""
    tariff = Tariff.from_ocpi(
        {
            "country_code": "DE",
            "party_id": "ALL",
            "id": "12",
            "currency": "EUR",
            "elements": [{"price_components": [{"type": "TIME", "price": 2, "step_size": 300.0}]}],
        }
    )
    assert tariff.type is None
    assert tariff.min_price is None
    assert tariff.last_updated is None
    assert tariff.elements[0].price_components[0].step_size == 300
    assert tariff.is_valid_at(datetime(1999, 1, 1, tzinfo=UTC))
