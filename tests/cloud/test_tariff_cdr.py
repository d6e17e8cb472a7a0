"""Pricing the charging periods of an OCPI CDR, and the CDR fields the engine produces."""

from __future__ import annotations

from collections.abc import Sequence
import copy
from decimal import Decimal
import json
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from cloud_connector.tariffs import (
    CdrDimensionType,
    InvalidSessionError,
    Price,
    Tariff,
    TariffNotApplicableError,
    price_cdr,
)

UTC_ZONE = ZoneInfo("UTC")
SPEC_EXAMPLES = Path(__file__).parents[2].parent / "shared" / "reference" / "ocpi-2.2.1" / "examples"

RESERVATION_TARIFF = Tariff.from_ocpi(
    {
        "country_code": "DE",
        "party_id": "ALL",
        "id": "20",
        "currency": "EUR",
        "elements": [
            {
                "price_components": [{"type": "FLAT", "price": 4.00, "vat": 20.0, "step_size": 1}],
                "restrictions": {"reservation": "RESERVATION_EXPIRES"},
            },
            {
                "price_components": [{"type": "TIME", "price": 2.00, "vat": 20.0, "step_size": 600}],
                "restrictions": {"reservation": "RESERVATION"},
            },
            {
                "price_components": [
                    {"type": "FLAT", "price": 0.50, "vat": 20.0, "step_size": 1},
                    {"type": "ENERGY", "price": 0.25, "vat": 10.0, "step_size": 1},
                ]
            },
        ],
    }
)

POWER_TARIFF = Tariff.from_ocpi(
    {
        "country_code": "DE",
        "party_id": "ALL",
        "id": "1",
        "currency": "EUR",
        "elements": [
            {
                "price_components": [{"type": "ENERGY", "price": 0.20, "step_size": 1}],
                "restrictions": {"max_power": 16},
            },
            {"price_components": [{"type": "ENERGY", "price": 0.50, "step_size": 1}]},
        ],
    }
)


def cdr(*periods: tuple[str, Sequence[tuple[str, float]]], end: str = "2024-03-04T12:00:00Z") -> dict[str, Any]:
    """A CDR with periods (start, [(dimension, volume)])."""
    return {
        "start_date_time": periods[0][0],
        "end_date_time": end,
        "currency": "EUR",
        "charging_periods": [
            {"start_date_time": start, "dimensions": [{"type": kind, "volume": volume} for kind, volume in dimensions]}
            for start, dimensions in periods
        ],
    }


def test_the_spec_cdr_example() -> None:
    """mod_cdrs' example CDR: 1.973 h at 2.00/h, step 5 min -> 2 h -> 4.00 / 4.40."""
    example = json.loads((SPEC_EXAMPLES / "cdr_example.json").read_text(encoding="utf-8"))
    tariff = Tariff.from_ocpi(example["tariffs"][0])
    result = price_cdr(tariff, example, time_zone=ZoneInfo("Europe/Brussels"))
    assert result.total_cost == Price(Decimal("4.00"), Decimal("4.40"))
    assert result.total_time_cost == Price(Decimal("4.00"), Decimal("4.40"))
    assert result.total_time == Decimal("1.9731")  # from the timestamps; the example rounds it to 1.973


def test_reservation_then_session() -> None:
    """RESERVATION_TIME periods are priced by reservation elements, the rest by the others."""
    result = price_cdr(
        RESERVATION_TARIFF,
        cdr(
            ("2024-03-04T10:38:00Z", [("RESERVATION_TIME", 0.3667)]),
            ("2024-03-04T11:00:00Z", [("ENERGY", 20), ("TIME", 1)]),
        ),
        time_zone=UTC_ZONE,
    )
    assert result.total_reservation_cost == Price(Decimal("1.00"), Decimal("1.20"))
    assert result.total_cost == Price(Decimal("6.50"), Decimal("7.30"))
    assert result.total_time == Decimal(1)
    assert result.start_date_time.isoformat() == "2024-03-04T10:38:00+00:00"


def test_expired_reservation_cdr() -> None:
    """A CDR with reservation periods only is an expired reservation."""
    result = price_cdr(
        RESERVATION_TARIFF,
        cdr(("2024-03-04T11:00:00Z", [("RESERVATION_TIME", 1)])),
        time_zone=UTC_ZONE,
    )
    assert result.total_cost == Price(Decimal("6.00"), Decimal("7.20"))
    assert result.total_time == Decimal(0)


def test_power_dimensions_of_the_cdr() -> None:
    """MIN/MAX_POWER of a period decide power restrictions (one stands in for the other); no power: no exclusion."""
    periods = (
        ("2024-03-04T10:00:00Z", [("ENERGY", 1), ("MAX_POWER", 6), ("STATE_OF_CHARGE", 40)]),
        ("2024-03-04T10:10:00Z", [("ENERGY", 40), ("MIN_POWER", 45), ("MAX_POWER", 48), ("POWER", 47)]),
        ("2024-03-04T11:00:00Z", [("ENERGY", 0.5), ("MIN_POWER", 4)]),
        ("2024-03-04T11:30:00Z", [("ENERGY", 1)]),
    )
    result = price_cdr(POWER_TARIFF, cdr(*periods), time_zone=UTC_ZONE)
    assert result.total_energy_cost == Price(Decimal("20.50"), Decimal("20.50"))
    assert result.total_energy == Decimal("42.5")
    assert [p.cost.excl_vat for p in result.charging_periods] == [
        Decimal("0.2"),
        Decimal("20.0"),
        Decimal("0.1"),
        Decimal("0.2"),
    ]


def test_currency_must_match() -> None:
    """A CDR in another currency cannot be priced with the tariff."""
    other = cdr(("2024-03-04T10:00:00Z", [("ENERGY", 1)])) | {"currency": "XPF"}
    with pytest.raises(TariffNotApplicableError, match="'XPF'"):
        price_cdr(POWER_TARIFF, other, time_zone=UTC_ZONE)
    del other["currency"]
    assert price_cdr(POWER_TARIFF, other, time_zone=UTC_ZONE).currency == "EUR"


GOOD = cdr(("2024-03-04T10:00:00Z", [("ENERGY", 1), ("TIME", 1)]), ("2024-03-04T11:00:00Z", [("PARKING_TIME", 1)]))


def _edit(path: str, value: object) -> dict[str, Any]:
    data = copy.deepcopy(GOOD)
    *parents, leaf = path.split(".")
    node: Any = data
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if isinstance(node, list):
        node[int(leaf)] = value
    else:
        node[leaf] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("end_date_time", "noon", "cdr.end_date_time: expected an RFC 3339 timestamp"),
        ("charging_periods", [], "cdr.charging_periods: expected a non-empty list"),
        ("charging_periods.1", "PARKING", r"cdr.charging_periods\[1\]: expected a JSON object"),
        ("charging_periods.1.start_date_time", None, r"cdr.charging_periods\[1\].start_date_time: expected an RFC"),
        ("charging_periods.1.start_date_time", "2024-03-04T09:00:00Z", "must not decrease"),
        ("charging_periods.1.start_date_time", "2024-03-04T12:00:01Z", "nor pass end_date_time"),
        ("charging_periods.0.dimensions", [], r"cdr.charging_periods\[0\].dimensions: expected a non-empty list"),
        ("charging_periods.0.dimensions.1", {"volume": 1}, r"dimensions\[1\]: expected an object with a type"),
        ("charging_periods.0.dimensions.1", {"type": "KWH", "volume": 1}, r"dimensions\[1\].type: unknown"),
        ("charging_periods.0.dimensions.0.volume", -1, r"dimensions\[0\].volume: expected a finite number >= 0"),
        ("charging_periods.1.dimensions.0.type", "RESERVATION_TIME", "RESERVATION_TIME mixed with other"),
    ],
)
def test_invalid_cdrs_are_refused(path: str, value: object, message: str) -> None:
    """Malformed charging periods raise InvalidSessionError naming the field."""
    broken = _edit(path, value)
    if path == "charging_periods.1.dimensions.0.type":
        broken["charging_periods"][1]["dimensions"].append({"type": "ENERGY", "volume": 0})
    with pytest.raises(InvalidSessionError, match=message):
        price_cdr(POWER_TARIFF, broken, time_zone=UTC_ZONE)


def test_cdr_must_be_an_object() -> None:
    """A CDR is a JSON object."""
    with pytest.raises(InvalidSessionError, match="cdr: expected a JSON object"):
        price_cdr(POWER_TARIFF, [GOOD], time_zone=UTC_ZONE)  # type: ignore[arg-type]


def test_to_ocpi() -> None:
    """The CDR fields: timestamps in UTC with Z, numbers as JSON numbers, only the totals that apply."""
    result = price_cdr(POWER_TARIFF, GOOD, time_zone=UTC_ZONE)
    assert result.to_ocpi() == {
        "start_date_time": "2024-03-04T10:00:00Z",
        "end_date_time": "2024-03-04T12:00:00Z",
        "currency": "EUR",
        "charging_periods": [
            {
                "start_date_time": "2024-03-04T10:00:00Z",
                "dimensions": [{"type": "ENERGY", "volume": 1.0}, {"type": "TIME", "volume": 1.0}],
                "tariff_id": "1",
            },
            {
                "start_date_time": "2024-03-04T11:00:00Z",
                "dimensions": [{"type": "ENERGY", "volume": 0.0}, {"type": "PARKING_TIME", "volume": 1.0}],
                "tariff_id": "1",
            },
        ],
        "total_cost": {"excl_vat": 0.2, "incl_vat": 0.2},
        "total_energy_cost": {"excl_vat": 0.2, "incl_vat": 0.2},
        "total_energy": 1.0,
        "total_time": 2.0,
        "total_parking_time": 1.0,
    }
    assert [d.type for d in result.charging_periods[1].dimensions] == [
        CdrDimensionType.ENERGY,
        CdrDimensionType.PARKING_TIME,
    ]


def test_published_volumes_are_floored_cumulatively() -> None:
    """Three periods of 0.33335 h publish 0.3333, 0.3334, 0.3333: floored running total 1.0000, never above."""
    thirds = cdr(
        ("2024-03-04T10:00:00Z", [("TIME", 0.33335), ("MAX_CURRENT", 16.00009)]),
        ("2024-03-04T10:20:00Z", [("TIME", 0.33335)]),
        ("2024-03-04T10:40:00Z", [("TIME", 0.33335)]),
        end="2024-03-04T11:00:00Z",
    )
    result = price_cdr(POWER_TARIFF, thirds, time_zone=UTC_ZONE)
    times = [d.volume for p in result.charging_periods for d in p.dimensions if d.type is CdrDimensionType.TIME]
    assert times == [Decimal("0.3333"), Decimal("0.3334"), Decimal("0.3333")]
    assert result.charging_periods[0].dimensions[-1].volume == Decimal("16.0000")
