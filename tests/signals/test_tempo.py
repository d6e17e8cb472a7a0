"""TempoClient and the RTE OAuth2 token against a fake RTE portal on 127.0.0.1; Tempo decoders."""

from __future__ import annotations

from datetime import date, datetime, timedelta
import socket
from typing import Any

import aiohttp
import pytest

from custom_components.cariflex.signals import (
    SignalAuthError,
    SignalConfigError,
    SignalConnectionError,
    SignalResponseError,
    TempoCalendar,
    TempoClient,
    TempoColor,
    decode_tempo_calendars,
    tempo_color_from_state,
)
from custom_components.cariflex.signals.tempo import TEMPO_PATH
from custom_components.cariflex.signals.timeutil import PARIS

from .fakes import RTE_CLIENT_ID, RTE_CLIENT_SECRET, FakeRte, load_fixture

NOW = datetime(2025, 1, 15, 12, 0, tzinfo=PARIS)
Rte = tuple[FakeRte, str]


def paris(day: int, hour: int, minute: int = 0, month: int = 1) -> datetime:
    return datetime(2025, month, day, hour, minute, tzinfo=PARIS)


def make_client(session: aiohttp.ClientSession, url: str, **overrides: Any) -> TempoClient:
    options: dict[str, Any] = {"client_id": RTE_CLIENT_ID, "client_secret": RTE_CLIENT_SECRET, "base_url": url}
    return TempoClient(session, **(options | overrides))


async def test_fetch_asks_yesterday_to_tomorrow_and_decodes(session: aiohttp.ClientSession, rte: Rte) -> None:
    fake, base = rte
    client = make_client(session, base)

    calendar = await client.fetch(NOW)

    assert fake.tempo_requests == [{"start_date": "2025-01-14T00:00:00+01:00", "end_date": "2025-01-17T00:00:00+01:00"}]
    assert fake.bearer_seen == [f"Bearer {fake.issued[0]}"]
    assert {day: item.color for day, item in calendar.days.items()} == {
        date(2025, 1, 14): TempoColor.BLUE,
        date(2025, 1, 15): TempoColor.WHITE,
        date(2025, 1, 16): TempoColor.RED,
    }
    assert calendar.days[date(2025, 1, 16)].updated == paris(15, 10, 20)
    assert calendar.today(NOW) == TempoColor.WHITE
    assert calendar.tomorrow(NOW) == TempoColor.RED
    assert client.calendar is calendar
    assert client.last_success == NOW


async def test_the_tariff_day_runs_from_6_to_6(session: aiohttp.ClientSession, rte: Rte) -> None:
    _, base = rte
    calendar = await make_client(session, base).fetch(NOW)
    assert calendar.color_at(paris(16, 5, 59)) == TempoColor.WHITE  # still the 15th's tariff day
    assert calendar.color_at(paris(16, 6, 0)) == TempoColor.RED
    assert calendar.color_at(paris(15, 3, 0)) == TempoColor.BLUE
    assert calendar.color_at(paris(14, 3, 0)) is None  # the 13th was not asked for
    assert calendar.today(paris(16, 0, 30)) == TempoColor.RED  # calendar day, not tariff day


async def test_tomorrow_unknown_before_publication(session: aiohttp.ClientSession, rte: Rte) -> None:
    fake, base = rte
    fake.tempo["tempo_like_calendars"]["values"] = fake.tempo["tempo_like_calendars"]["values"][1:]
    calendar = await make_client(session, base).fetch(paris(15, 9, 0))
    assert calendar.today(paris(15, 9, 0)) == TempoColor.WHITE
    assert calendar.tomorrow(paris(15, 9, 0)) is None


async def test_period_across_a_dst_change(session: aiohttp.ClientSession, rte: Rte) -> None:
    fake, base = rte
    await make_client(session, base).fetch(paris(30, 12, 0, month=3))
    assert fake.tempo_requests[0] == {
        "start_date": "2025-03-29T00:00:00+01:00",
        "end_date": "2025-04-01T00:00:00+02:00",
    }


async def test_token_is_cached_until_shortly_before_expiry(session: aiohttp.ClientSession, rte: Rte) -> None:
    fake, base = rte
    client = make_client(session, base)

    await client.fetch(NOW)
    await client.fetch(NOW + timedelta(seconds=7139))
    assert fake.token_requests == 1
    assert client.api.token.expires_at == NOW + timedelta(seconds=7140)

    await client.fetch(NOW + timedelta(seconds=7140))  # renewed 60 s before the 7200 s lifetime
    assert fake.token_requests == 2
    assert fake.bearer_seen[-1] == f"Bearer {fake.issued[1]}"


async def test_a_revoked_token_is_renewed_once(session: aiohttp.ClientSession, rte: Rte) -> None:
    fake, base = rte
    client = make_client(session, base)
    await client.fetch(NOW)
    fake.revoke()

    calendar = await client.fetch(NOW + timedelta(minutes=5))

    assert calendar.today(NOW) == TempoColor.WHITE
    assert fake.token_requests == 2
    assert fake.bearer_seen[-2:] == [f"Bearer {fake.issued[0]}", f"Bearer {fake.issued[1]}"]


async def test_a_token_refused_twice_is_an_auth_error(session: aiohttp.ClientSession, rte: Rte) -> None:
    fake, base = rte
    fake.mode = "refuse_all"
    client = make_client(session, base)
    with pytest.raises(SignalAuthError, match="Tempo: credentials refused \\(HTTP 401\\)") as caught:
        await client.fetch(NOW)
    assert caught.value.code == "invalid_token"
    assert fake.token_requests == 2
    assert client.calendar is None


async def test_no_subscription_is_not_retried(session: aiohttp.ClientSession, rte: Rte) -> None:
    fake, base = rte
    fake.mode = "forbidden"
    with pytest.raises(SignalAuthError, match=r"HTTP 403.*No subscription") as caught:
        await make_client(session, base).fetch(NOW)
    assert caught.value.status == 403
    assert fake.token_requests == 1


async def test_wrong_client_credentials(session: aiohttp.ClientSession, rte: Rte) -> None:
    fake, base = rte
    client = make_client(session, base, client_secret="not-the-secret")
    with pytest.raises(
        SignalAuthError, match=r"Tempo token: credentials refused.*Client authentication failed"
    ) as caught:
        await client.fetch(NOW)
    assert caught.value.code == "invalid_client"
    assert "not-the-secret" not in str(caught.value)
    assert fake.tempo_requests == []


async def test_token_endpoint_400_is_an_auth_error(session: aiohttp.ClientSession, rte: Rte) -> None:
    fake, base = rte
    fake.mode = "invalid_grant"
    with pytest.raises(SignalAuthError, match="Grant refused") as caught:
        await make_client(session, base).fetch(NOW)
    assert (caught.value.status, caught.value.code) == (400, "invalid_grant")


async def test_token_endpoint_other_errors_pass_through(session: aiohttp.ClientSession) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = make_client(session, f"http://127.0.0.1:{port}/rte")
    with pytest.raises(SignalConnectionError, match=r"Tempo token: cannot reach 127\.0\.0\.1"):
        await client.fetch(NOW)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (["not", "an", "object"], "not a JSON object"),
        ({"token_type": "Bearer", "expires_in": 7200}, "no access_token"),
        ({"access_token": "", "expires_in": 7200}, "no access_token"),
        ({"access_token": "abc", "token_type": "mac", "expires_in": 7200}, "unsupported token_type 'mac'"),
    ],
)
async def test_unusable_token_answers(session: aiohttp.ClientSession, rte: Rte, body: object, message: str) -> None:
    fake, base = rte
    fake.token_body = body
    with pytest.raises(SignalResponseError, match=message):
        await make_client(session, base).fetch(NOW)


@pytest.mark.parametrize(("expires_in", "token_requests"), [(None, 2), (True, 2), ("oops", 2), ("3600", 1), (30, 2)])
async def test_token_lifetime_forms(
    session: aiohttp.ClientSession, rte: Rte, expires_in: object, token_requests: int
) -> None:
    fake, base = rte
    fake.expires_in = expires_in
    client = make_client(session, base)
    await client.fetch(NOW)
    await client.fetch(NOW + timedelta(seconds=1))
    assert fake.token_requests == token_requests


async def test_token_type_is_case_insensitive(session: aiohttp.ClientSession, rte: Rte) -> None:
    fake, base = rte
    fake.token_type = "bearer"
    assert (await make_client(session, base).fetch(NOW)).today(NOW) == TempoColor.WHITE


async def test_api_errors(session: aiohttp.ClientSession, rte: Rte) -> None:
    fake, base = rte
    client = make_client(session, base)
    fake.mode = "error503"
    with pytest.raises(SignalResponseError, match="Tempo: HTTP 503") as caught:
        await client.fetch(NOW)
    assert caught.value.status == 503
    fake.mode = "malformed"
    with pytest.raises(SignalResponseError, match="not valid JSON"):
        await client.fetch(NOW)
    fake.mode = None
    fake.tempo = {"unexpected": True}
    with pytest.raises(SignalResponseError, match="no tempo_like_calendars"):
        await client.fetch(NOW)
    assert client.calendar is None


async def test_rte_functional_error_is_reported_with_its_code(session: aiohttp.ClientSession, rte: Rte) -> None:
    _, base = rte
    client = make_client(session, base)
    with pytest.raises(SignalResponseError, match=r"HTTP 400.*must be given together") as caught:
        await client.api.get(TEMPO_PATH, NOW, params={"start_date": "2025-01-14T00:00:00+01:00"})
    assert caught.value.code == "TMPLIKSUPCON_TMPLIKCAL_F01"
    assert caught.value.body == load_fixture("rte_tempo_error_400.json")


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"client_id": ""}, "client_id"),
        ({"client_secret": None}, "client_secret"),
        ({"client_secret": "a b"}, "client_secret"),
        ({"base_url": "digital.iservices.rte-france.com"}, "base_url"),
    ],
)
async def test_configuration_is_validated(
    session: aiohttp.ClientSession, overrides: dict[str, Any], field: str
) -> None:
    with pytest.raises(SignalConfigError) as caught:
        make_client(session, "https://digital.iservices.rte-france.com", **overrides)
    assert caught.value.field == field


def test_decode_the_recorded_calendar() -> None:
    calendar = decode_tempo_calendars(load_fixture("rte_tempo_calendars.json"))
    assert [(day.isoformat(), item.color.value) for day, item in calendar.days.items()] == [
        ("2025-01-13", "blue"),
        ("2025-01-14", "blue"),
        ("2025-01-15", "white"),
        ("2025-01-16", "red"),
    ]
    assert calendar.skipped == 0


def test_decode_tolerates_bad_values_and_the_list_form() -> None:
    body = {
        "tempo_like_calendars": [
            {
                "values": [
                    {"start_date": "2025-01-15T00:00:00+01:00", "value": " white ", "fallback": True},
                    {"start_date": "2025-01-14T23:00:00Z", "value": "RED"},  # French midnight written in UTC
                    {"start_date": "2025-01-17T00:00:00+01:00", "value": "GREEN"},
                    {"start_date": "demain", "value": "RED"},
                    {"value": "BLUE"},
                    {"start_date": "2025-01-18T00:00:00+01:00", "value": 3},
                    "BLUE",
                ]
            }
        ]
    }
    calendar = decode_tempo_calendars(body)
    assert calendar.color_of(date(2025, 1, 15)) == TempoColor.RED
    assert calendar.days[date(2025, 1, 15)].fallback is None
    assert calendar.skipped == 5
    assert decode_tempo_calendars({"tempo_like_calendars": {"values": []}}) == TempoCalendar()


@pytest.mark.parametrize(
    "body",
    [None, [], {"tempo_like_calendars": None}, {"tempo_like_calendars": {"values": {}}}, {"tempo_like_calendars": [1]}],
)
def test_decode_refuses_other_shapes(body: object) -> None:
    with pytest.raises(SignalResponseError):
        decode_tempo_calendars(body)


@pytest.mark.parametrize(
    ("state", "color"),
    [
        ("Bleu", TempoColor.BLUE),
        ("blue", TempoColor.BLUE),
        ("BLUE", TempoColor.BLUE),
        (" TEMPO_BLEU ", TempoColor.BLUE),
        ("Blanc", TempoColor.WHITE),
        ("white", TempoColor.WHITE),
        ("Jour blanc", TempoColor.WHITE),
        ("Rouge", TempoColor.RED),
        ("RED", TempoColor.RED),
        ("tempo-rouge", TempoColor.RED),
        ("1", TempoColor.BLUE),
        (2, TempoColor.WHITE),
        (3.0, TempoColor.RED),
        ("Inconnu", None),
        ("unknown", None),
        ("unavailable", None),
        ("", None),
        ("4", None),
        (None, None),
        (True, None),
    ],
)
def test_color_from_entity_state(state: object, color: TempoColor | None) -> None:
    assert tempo_color_from_state(state) == color
