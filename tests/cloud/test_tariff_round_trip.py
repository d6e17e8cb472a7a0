"""The CDR the engine publishes re-prices to the same steps: 4-decimal volumes around free stretches."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from cloud_connector.tariffs import (
    CdrCosts,
    CdrDimensionType,
    MeterSample,
    Price,
    SessionInput,
    Tariff,
    price_cdr,
    price_session,
)

PARIS = ZoneInfo("Europe/Paris")
UTC_ZONE = ZoneInfo("UTC")


def tariff(*elements: dict[str, Any]) -> Tariff:
    """A tariff in EUR from OCPI elements."""
    return Tariff.from_ocpi(
        {"country_code": "FR", "party_id": "CAR", "id": "T9", "currency": "EUR", "elements": list(elements)}
    )


def component(kind: str, price: float, step: int) -> dict[str, Any]:
    """An OCPI price component without VAT."""
    return {"type": kind, "price": price, "step_size": step}


def cdr(*periods: tuple[str, Sequence[tuple[str, float]]], end: str) -> dict[str, Any]:
    """A peer's CDR: periods (start, [(dimension, volume)])."""
    return {
        "end_date_time": end,
        "charging_periods": [
            {"start_date_time": start, "dimensions": [{"type": kind, "volume": volume} for kind, volume in dimensions]}
            for start, dimensions in periods
        ],
    }


def volumes(result: CdrCosts, kind: CdrDimensionType) -> list[Decimal | None]:
    """One dimension's published volume per charging period (None where absent)."""
    return [next((d.volume for d in p.dimensions if d.type is kind), None) for p in result.charging_periods]


def euros(amount: str) -> Price:
    """A Price without VAT."""
    return Price(Decimal(amount), Decimal(amount))


def test_energy_free_in_the_middle_of_the_session_keeps_its_step() -> None:
    """Energy free 12:00-14:00, 0.30/kWh in 500 Wh steps otherwise; a meter line 11:00 -> 12:41 -> 15:00.

    Billed: 30.506 * 60/101 = 18.1223762 kWh before 12:00, 66.131 - 50.7533022 = 15.3776978 kWh after 14:00,
    33.5000741 kWh -> 34 kWh -> 10.20. Floored running totals would publish 18.1223 + 15.3777 = 33.5000 kWh,
    one step less (10.05) for whoever re-prices the CDR: the 12:00 total is published ceiled instead.
    """
    happy_hours = tariff(
        {
            "price_components": [component("ENERGY", 0.3, 500)],
            "restrictions": {"start_time": "14:00", "end_time": "12:00"},
        }
    )
    start = datetime(2024, 3, 4, 11, tzinfo=PARIS)
    samples = [
        MeterSample(timestamp=start + timedelta(minutes=minutes), energy_kwh=Decimal(kwh))
        for minutes, kwh in ((0, "0"), (101, "30.506"), (240, "66.131"))
    ]
    session = SessionInput(start=start, end=samples[-1].timestamp, samples=samples)
    one = price_session(happy_hours, session, time_zone=PARIS)
    assert one.total_energy_cost == euros("10.20")
    assert volumes(one, CdrDimensionType.ENERGY) == [Decimal("18.1224"), Decimal("32.6309"), Decimal("15.3777")]
    again = price_cdr(happy_hours, one.to_ocpi(), time_zone=PARIS)
    assert again.total_cost == one.total_cost


def test_billed_time_just_above_a_step_is_published_ceiled() -> None:
    """TIME 6/h from 10:00 in 1-minute steps; a peer's CDR bills 0.01667 h = 60.012 s -> 2 minutes -> 0.20.

    Its 0.00002 h before 10:00 are free. Floored running totals publish 0.0166 h (59.76 s, one minute: 0.10);
    the end of the session is published ceiled instead (0.0167 h = 60.12 s, still two minutes).
    """
    from_ten = tariff({"price_components": [component("TIME", 6, 60)], "restrictions": {"start_time": "10:00"}})
    peer = cdr(
        ("2024-03-04T09:59:59Z", [("TIME", 0.00002)]),
        ("2024-03-04T10:00:00Z", [("TIME", 0.01667)]),
        end="2024-03-04T10:01:00Z",
    )
    result = price_cdr(from_ten, peer, time_zone=UTC_ZONE)
    assert result.total_time_cost == euros("0.20")
    assert volumes(result, CdrDimensionType.TIME) == [Decimal(0), Decimal("0.0167")]
    assert price_cdr(from_ten, result.to_ocpi(), time_zone=UTC_ZONE).total_cost == result.total_cost


def test_a_kwh_limit_is_never_reached_by_publishing_a_step() -> None:
    """Energy 1/kWh in 1 Wh steps before 11:00 (1.05 Wh billed -> 2 Wh); TIME 6/h once 1.1 Wh are charged.

    Keeping the energy step would publish 0.0011 kWh before 11:00, and a re-pricing would then charge the
    11:00-12:00 hour at 6/h although only 1.05 Wh had been charged: the energy so far stays floored (0.0010),
    and the re-pricing loses 1 Wh (0.001) rather than adding 6.00.
    """
    limited = tariff(
        {"price_components": [component("ENERGY", 1, 1)], "restrictions": {"end_time": "11:00"}},
        {"price_components": [component("TIME", 6, 1)], "restrictions": {"min_kwh": 0.0011}},
    )
    peer = cdr(
        ("2024-03-04T10:00:00Z", [("ENERGY", 0.00105), ("TIME", 1)]),
        ("2024-03-04T11:00:00Z", [("ENERGY", 1), ("TIME", 1)]),
        end="2024-03-04T12:00:00Z",
    )
    result = price_cdr(limited, peer, time_zone=UTC_ZONE)
    assert result.total_cost == euros("0.002")
    assert result.total_time_cost is None
    assert volumes(result, CdrDimensionType.ENERGY) == [Decimal("0.0010"), Decimal("1.0000")]
    again = price_cdr(limited, result.to_ocpi(), time_zone=UTC_ZONE)
    assert again.total_time_cost is None
    assert again.total_cost == euros("0.001")
