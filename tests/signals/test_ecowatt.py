"""EcoWattClient against a fake RTE portal on 127.0.0.1; EcoWatt decoders."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from custom_components.cariflex.signals import (
    EcoWattClient,
    EcoWattLevel,
    SignalConfigError,
    SignalRateLimitError,
    SignalResponseError,
    TempoClient,
    decode_ecowatt_signals,
    ecowatt_level_from_state,
    rte_token,
)
from custom_components.cariflex.signals.timeutil import PARIS

from .fakes import RTE_CLIENT_ID, RTE_CLIENT_SECRET, FakeRte

NOW = datetime(2022, 12, 14, 8, 30, tzinfo=PARIS)
Rte = tuple[FakeRte, str]
L = EcoWattLevel


def paris(day: int, hour: int, minute: int = 0, *, month: int = 12, year: int = 2022) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=PARIS)


def make_client(session: aiohttp.ClientSession, url: str, **overrides: Any) -> EcoWattClient:
    options: dict[str, Any] = {"client_id": RTE_CLIENT_ID, "client_secret": RTE_CLIENT_SECRET, "base_url": url}
    return EcoWattClient(session, **(options | overrides))


async def test_fetch_decodes_days_and_hours(session: aiohttp.ClientSession, rte: Rte) -> None:
    fake, base = rte
    client = make_client(session, base)

    forecast = await client.fetch(NOW)

    assert fake.ecowatt_requests == 1
    assert fake.bearer_seen == [f"Bearer {fake.issued[0]}"]
    assert client.api.token.requests == 1
    assert [(day.day.isoformat(), day.level) for day in forecast.days] == [
        ("2022-12-12", L.GREEN),
        ("2022-12-13", L.ORANGE),
        ("2022-12-14", L.RED),
        ("2022-12-15", L.GREEN),
    ]
    assert forecast.day_level(date(2022, 12, 14)) == L.RED
    assert forecast.day_level(date(2022, 12, 16)) is None
    assert forecast.days[2].message.startswith("Système électrique très tendu")
    assert forecast.days[2].generated == paris(11, 23)
    assert len(forecast.days[2].hours) == 24
    assert forecast.skipped == 0
    assert client.forecast is forecast
    assert client.last_success == NOW


async def test_level_at_each_hour(session: aiohttp.ClientSession, rte: Rte) -> None:
    _, base = rte
    forecast = await make_client(session, base).fetch(NOW)
    assert forecast.level_at(NOW) == L.RED  # 08:00-09:00
    assert forecast.level_at(paris(14, 7, 59)) == L.ORANGE
    assert forecast.level_at(paris(14, 11, 0)) == L.GREEN
    assert forecast.level_at(paris(12, 2, 30)) == L.GREEN_LOW_CARBON
    assert forecast.level_at(NOW.astimezone(UTC)) == L.RED
    assert forecast.level_at(paris(11, 23, 59)) is None
    assert forecast.level_at(paris(16, 0, 0)) is None
    upcoming = forecast.hours(NOW)
    assert upcoming[0].start == paris(14, 8)
    assert upcoming[0].level == L.RED
    assert upcoming[-1].end == paris(16, 0)
    assert len(forecast.hours()) == 96


async def test_one_request_per_15_minutes(session: aiohttp.ClientSession, rte: Rte) -> None:
    fake, base = rte
    client = make_client(session, base)
    first = await client.fetch(NOW)

    assert await client.fetch(NOW + timedelta(minutes=14, seconds=59)) is first
    assert fake.ecowatt_requests == 1
    assert client.next_request_at() == NOW + timedelta(minutes=15)

    await client.fetch(NOW + timedelta(minutes=15))
    assert fake.ecowatt_requests == 2


async def test_server_429_is_honoured(session: aiohttp.ClientSession, rte: Rte) -> None:
    fake, base = rte
    client = make_client(session, base)
    first = await client.fetch(NOW)
    fake.mode = "rate_limited"

    with pytest.raises(SignalRateLimitError, match="retry after 900 s") as caught:
        await client.fetch(NOW + timedelta(minutes=15))
    assert caught.value.retry_after == 900
    assert caught.value.status == 429

    fake.mode = None
    assert await client.fetch(NOW + timedelta(minutes=29)) is first  # still blocked: the last forecast
    assert fake.ecowatt_requests == 2
    await client.fetch(NOW + timedelta(minutes=30))
    assert fake.ecowatt_requests == 3


async def test_429_without_retry_after_only_waits_the_interval(session: aiohttp.ClientSession, rte: Rte) -> None:
    fake, base = rte
    client = make_client(session, base, min_interval=timedelta(minutes=1))
    await client.fetch(NOW)
    fake.mode, fake.retry_after = "rate_limited", None
    with pytest.raises(SignalRateLimitError) as caught:
        await client.fetch(NOW + timedelta(minutes=1))
    assert caught.value.retry_after is None
    assert client.next_request_at() == NOW + timedelta(minutes=2)


async def test_no_forecast_yet_and_too_early(session: aiohttp.ClientSession, rte: Rte) -> None:
    fake, base = rte
    fake.mode = "error503"
    client = make_client(session, base)
    with pytest.raises(SignalResponseError, match="EcoWatt: HTTP 503"):
        await client.fetch(NOW)

    fake.mode = None
    with pytest.raises(SignalRateLimitError, match="next request allowed in 600 s") as caught:
        await client.fetch(NOW + timedelta(minutes=5))
    assert caught.value.status is None
    assert caught.value.retry_after == 600
    assert fake.ecowatt_requests == 1


async def test_malformed_answers(session: aiohttp.ClientSession, rte: Rte) -> None:
    fake, base = rte
    client = make_client(session, base, min_interval=timedelta(0))
    fake.mode = "malformed"
    with pytest.raises(SignalResponseError, match="not valid JSON"):
        await client.fetch(NOW)
    fake.mode = None
    fake.ecowatt = {"signals": {"jour": "2022-12-14"}}
    with pytest.raises(SignalResponseError, match="no signals list"):
        await client.fetch(NOW)
    assert client.forecast is None


def test_decode_a_dst_day_counts_hours_from_local_midnight() -> None:
    body = {
        "signals": [
            {
                "jour": "2023-03-26T00:00:00+01:00",
                "dvalue": 2,
                "values": [{"pas": p, "hvalue": 1 + (p == 2)} for p in range(24)],
            },
            {"jour": "2023-03-27", "dvalue": 1, "hvalues": [{"pas": 0, "hvalue": 3}]},
        ]
    }
    forecast = decode_ecowatt_signals(body)
    # The 26th has 23 hours: pas 2 starts 02:00 after midnight, i.e. 03:00 summer time.
    assert forecast.level_at(datetime(2023, 3, 26, 3, 30, tzinfo=PARIS)) == L.ORANGE
    assert forecast.level_at(datetime(2023, 3, 26, 1, 30, tzinfo=PARIS)) == L.GREEN
    # pas 23 would start on the 27th: not the 26th's.
    assert forecast.skipped == 1
    assert forecast.days[0].hours[-1].end == datetime(2023, 3, 27, 0, 0, tzinfo=PARIS)
    assert forecast.day_level(date(2023, 3, 27)) == L.GREEN
    assert forecast.level_at(datetime(2023, 3, 27, 0, 30, tzinfo=PARIS)) == L.RED


def test_decode_a_25_hour_day() -> None:
    body = {
        "signals": [
            {
                "jour": "2022-10-30T00:00:00+02:00",
                "dvalue": True,
                "values": [{"pas": p, "hvalue": p % 4} for p in range(25)],
            }
        ]
    }
    forecast = decode_ecowatt_signals(body)
    day = forecast.days[0]
    assert day.level is None  # a boolean is not a level
    assert len(day.hours) == 25
    assert forecast.level_at(datetime(2022, 10, 30, 2, 30, tzinfo=PARIS, fold=0)) == L.ORANGE  # pas 2, summer time
    assert forecast.level_at(datetime(2022, 10, 30, 2, 30, tzinfo=PARIS, fold=1)) == L.RED  # pas 3, winter time
    assert forecast.level_at(datetime(2022, 10, 30, 23, 30, tzinfo=PARIS)) == L.GREEN_LOW_CARBON  # pas 24


def test_decode_skips_what_it_cannot_use() -> None:
    body = {
        "signals": [
            "not a day",
            {"dvalue": 1},
            {"jour": "2022-13-45"},
            {"jour": 20221214},
            {
                "jour": "2022-12-14T00:00:00+01:00",
                "dvalue": 0,
                "message": None,
                "values": [
                    {"pas": 0, "hvalue": 2.0},
                    {"pas": True, "hvalue": 1},
                    {"pas": 25, "hvalue": 1},
                    {"pas": 1, "hvalue": 4},
                    {"pas": 2, "hvalue": "2"},
                    {"pas": 3, "hvalue": float("nan")},
                    "hour",
                ],
            },
            {"jour": "2022-12-15T00:00:00+01:00", "dvalue": 3.0, "values": "none"},
        ]
    }
    forecast = decode_ecowatt_signals(body)
    assert forecast.skipped == 4 + 6
    first, second = forecast.days
    assert first.level is None
    assert first.message == ""
    assert [(hour.start, hour.level) for hour in first.hours] == [(paris(14, 0), L.ORANGE)]
    assert second.level == L.RED
    assert second.hours == ()


@pytest.mark.parametrize("body", [None, [], {"signals": None}, {"other": []}])
def test_decode_refuses_other_shapes(body: object) -> None:
    with pytest.raises(SignalResponseError):
        decode_ecowatt_signals(body)


def test_level_colors() -> None:
    assert [level.color for level in L] == ["green", "green", "orange", "red"]


@pytest.mark.parametrize(
    ("state", "level"),
    [
        ("green", L.GREEN),
        ("Vert", L.GREEN),
        ("ORANGE", L.ORANGE),
        ("rouge", L.RED),
        ("red", L.RED),
        ("0", L.GREEN_LOW_CARBON),
        ("1", L.GREEN),
        ("2", L.ORANGE),
        ("2.0", L.ORANGE),
        (3, L.RED),
        (1.0, L.GREEN),
        ("Situation normale", L.GREEN),
        ("Situation normale - Electricité faible émission de CO2", L.GREEN_LOW_CARBON),
        ("Risques de coupures d'électricité", L.ORANGE),
        ("Coupures d\u2019électricité programmées", L.RED),
        ("Coupure d'électricité en cours", L.RED),
        ("4", None),
        ("1.5", None),
        ("unknown", None),
        ("unavailable", None),
        (None, None),
        (False, None),
    ],
)
def test_level_from_entity_state(state: object, level: EcoWattLevel | None) -> None:
    assert ecowatt_level_from_state(state) == level


async def test_tempo_and_ecowatt_share_one_token_of_the_application(
    session: aiohttp.ClientSession, rte: tuple[FakeRte, str]
) -> None:
    fake, base = rte
    token = rte_token(session, RTE_CLIENT_ID, RTE_CLIENT_SECRET, base_url=base)
    tempo = TempoClient(session, RTE_CLIENT_ID, RTE_CLIENT_SECRET, base_url=base, token=token)
    ecowatt = make_client(session, base, token=token)
    # Both first fetches at once (as at start-up): one token request, both calls carry it.
    await asyncio.gather(tempo.fetch(NOW), ecowatt.fetch(NOW))
    assert fake.token_requests == 1
    assert fake.bearer_seen == [f"Bearer {fake.issued[0]}"] * 2
    assert tempo.api.token is ecowatt.api.token
    # A token RTE revoked is renewed once, for both.
    fake.revoke()
    await ecowatt.fetch(NOW + timedelta(hours=1))
    await tempo.fetch(NOW + timedelta(hours=1))
    assert fake.token_requests == 2


def test_an_rte_token_checks_its_credentials_and_address(session: aiohttp.ClientSession) -> None:
    with pytest.raises(SignalConfigError):
        rte_token(session, "", RTE_CLIENT_SECRET)
    with pytest.raises(SignalConfigError):
        rte_token(session, RTE_CLIENT_ID, RTE_CLIENT_SECRET, base_url="ftp://rte.example")
