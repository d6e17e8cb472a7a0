"""ZniSignalClient against a fake Opendatasoft portal on 127.0.0.1 (fixtures/ods_zni_dataset.json)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
import socket
from typing import Any

import aiohttp
import pytest

from custom_components.cariflex.signals import (
    SignalAuthError,
    SignalConfigError,
    SignalConnectionError,
    SignalQuotaExceededError,
    SignalRateLimitError,
    SignalResponseError,
    SignalSlot,
    ZniSignalClient,
    zni,
)

from .fakes import DATASET_ID, ODS_API_KEY, FakeOpendatasoft, load_fixture

NOW = datetime(2025, 3, 11, 12, 0, tzinfo=UTC)  # 08:00 in Martinique
MINUTE = timedelta(minutes=1)
Ods = tuple[FakeOpendatasoft, str]


def utc(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2025, 3, day, hour, minute, tzinfo=UTC)


def make_client(session: aiohttp.ClientSession, url: str, **overrides: Any) -> ZniSignalClient:
    options: dict[str, Any] = {
        "base_url": url,
        "dataset_id": DATASET_ID,
        "api_key": ODS_API_KEY,
        "time_field": "horodatage",
        "value_field": "valeur_signal",
        "territory": "Martinique",
        "territory_field": "territoire",
    } | overrides
    return ZniSignalClient(session, **options)


async def test_first_refresh_reads_48h_and_the_future_page_by_page(session: aiohttp.ClientSession, ods: Ods) -> None:
    fake, base = ods
    client = make_client(session, base)

    read = await client.refresh(NOW)

    # 2025-03-09 12:00Z to 2025-03-12 23:50Z: 504 Martinique rows, two of them unusable.
    assert read == 504
    assert client.invalid_records == 2
    assert len(client.slots) == 502
    assert [request["offset"] for request in fake.requests] == ["0", "100", "200", "300", "400", "500"]
    assert fake.requests[0] == {
        "select": "horodatage,valeur_signal",
        "where": "horodatage >= date'2025-03-09T12:00:00Z' AND territoire = \"Martinique\"",
        "order_by": "horodatage ASC",
        "limit": "100",
        "offset": "0",
        "timezone": "UTC",
    }
    assert set(fake.auth_headers) == {f"Apikey {ODS_API_KEY}"}
    assert client.quota.used(NOW) == 6
    assert client.quota_remaining(NOW) == 10_000 - 6
    assert client.last_success == NOW
    assert not client.truncated


async def test_value_at_follows_the_slots(session: aiohttp.ClientSession, ods: Ods) -> None:
    _, base = ods
    client = make_client(session, base)
    assert client.value_at(NOW) is None  # nothing known yet: the caller applies its safe default

    await client.refresh(NOW)

    assert client.value_at(NOW) == 1  # 08:00 local: favourable
    assert client.value_at(utc(11, 21, 5)) == 0  # 17:05 local: evening peak
    assert client.value_at(utc(12, 0, 59)) == 0  # 20:59 local
    assert client.value_at(utc(12, 1)) == 1  # 21:00 local
    assert client.value_at(utc(11, 15, 5)) is None  # the unusable rows leave a hole
    assert client.value_at(utc(11, 15, 20)) == 1
    assert client.value_at(utc(12, 23, 59)) == 0  # last slot 23:50-00:00Z (19:50 local, peak)
    assert client.value_at(utc(13, 0)) is None  # beyond the data
    assert client.value_at(utc(9, 11, 59)) is None  # older than the 48 h asked for


async def test_forecast_and_history_split_at_now(session: aiohttp.ClientSession, ods: Ods) -> None:
    _, base = ods
    client = make_client(session, base)
    await client.refresh(NOW)

    forecast = client.forecast(NOW + 5 * MINUTE)
    assert forecast[0] == SignalSlot(start=NOW, end=NOW + 10 * MINUTE, value=1)
    assert forecast[-1].start == utc(12, 23, 50)
    assert [slot.value for slot in forecast if utc(11, 21) <= slot.start < utc(12, 1)] == [0] * 24
    history = client.history(NOW)
    assert history[0].start == utc(9, 12)
    assert history[-1].end == NOW
    assert len(history) + len(client.forecast(NOW)) == len(client.slots)


async def test_next_refresh_asks_from_an_hour_before_the_last_success(session: aiohttp.ClientSession, ods: Ods) -> None:
    fake, base = ods
    client = make_client(session, base)
    await client.refresh(NOW)
    assert not client.is_due(NOW + 9 * MINUTE)
    assert client.is_due(NOW + 10 * MINUTE)

    # EDF revises a future slot and withdraws another one.
    fake.rows = [
        row | {"valeur_signal": 0} if row["horodatage"] == "2025-03-11T13:00:00+00:00" else row
        for row in fake.rows
        if row["horodatage"] != "2025-03-11T14:00:00+00:00"
    ]
    fake.requests.clear()
    later = NOW + 10 * MINUTE
    await client.refresh(later)

    assert fake.requests[0]["where"].startswith("horodatage >= date'2025-03-11T11:00:00Z'")
    assert len(fake.requests) == 3  # 11:00Z onwards: 216 rows
    assert client.value_at(utc(11, 13, 5)) == 0
    assert client.value_at(utc(11, 14, 5)) is None
    assert client.value_at(utc(10, 12)) == 1  # history from the first refresh is kept


async def test_history_older_than_48h_is_dropped(session: aiohttp.ClientSession, ods: Ods) -> None:
    _, base = ods
    client = make_client(session, base)
    await client.refresh(NOW)
    later = NOW + timedelta(days=1)

    await client.refresh(later)

    assert client.slots[0].end > later - timedelta(hours=48)
    assert client.slots[0].start == utc(10, 12)  # the 11:50 slot ended exactly 48 h before
    assert client.value_at(utc(10, 11, 55)) is None


async def test_refused_api_key(session: aiohttp.ClientSession, ods: Ods) -> None:
    _, base = ods
    client = make_client(session, base, api_key="wrong-key")

    with pytest.raises(SignalAuthError) as caught:
        await client.refresh(NOW)

    assert caught.value.status == 401
    assert caught.value.code == "InvalidAPIKeyError"
    assert "credentials refused" in str(caught.value)
    assert "wrong-key" not in str(caught.value)
    assert client.slots == ()
    assert client.last_success is None
    assert client.quota.used(NOW) == 1


async def test_anonymous_access_sends_no_key(session: aiohttp.ClientSession, ods: Ods) -> None:
    fake, base = ods
    client = make_client(session, base, api_key=None)
    with pytest.raises(SignalAuthError):
        await client.refresh(NOW)
    assert fake.auth_headers == [None]


async def test_server_quota_used_up_blocks_until_its_reset_time(session: aiohttp.ClientSession, ods: Ods) -> None:
    fake, base = ods
    client = make_client(session, base)
    fake.call_limit = 0

    with pytest.raises(SignalRateLimitError) as caught:
        await client.refresh(NOW)
    assert caught.value.status == 429
    assert caught.value.code == "10002"
    assert "Too many requests" in str(caught.value)
    assert client.quota_remaining(NOW) == 0

    with pytest.raises(SignalQuotaExceededError) as refused:
        await client.refresh(NOW + 10 * MINUTE)
    assert refused.value.resets_at == utc(12, 0)  # reset_time of the 429 body
    assert len(fake.requests) == 1  # the guard did not send

    fake.call_limit = 10_000
    assert client.quota_remaining(utc(12, 0)) == 10_000
    await client.refresh(utc(12, 0))
    assert client.value_at(utc(12, 0)) == 0


async def test_429_without_reset_time_uses_retry_after_or_midnight(session: aiohttp.ClientSession) -> None:
    error = SignalRateLimitError("x", body={"error": "slow down"}, retry_after=120)
    assert ZniSignalClient._blocked_until(error, NOW) == NOW + timedelta(seconds=120)
    stale = SignalRateLimitError("x", body={"reset_time": "2025-03-10T00:00:00Z"})
    assert ZniSignalClient._blocked_until(stale, NOW) == utc(12, 0)


async def test_local_quota_guard_stops_mid_refresh_and_keeps_the_pages(
    session: aiohttp.ClientSession, ods: Ods
) -> None:
    fake, base = ods
    client = make_client(session, base, daily_quota=3)

    with pytest.raises(SignalQuotaExceededError) as caught:
        await client.refresh(NOW)

    assert len(fake.requests) == 3
    assert caught.value.resets_at == utc(12, 0)
    assert "3 requests" in str(caught.value)
    assert client.quota_remaining(NOW) == 0
    assert len(client.slots) == 300
    assert client.value_at(utc(9, 13)) == 1
    assert client.last_success is None
    assert client.quota_remaining(utc(12, 0)) == 3  # a new UTC day


async def test_server_remaining_header_lowers_the_quota(session: aiohttp.ClientSession, ods: Ods) -> None:
    fake, base = ods
    fake.call_limit = 50
    client = make_client(session, base)
    await client.refresh(NOW)
    assert client.quota_remaining(NOW) == 44


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ([1, 2, 3], "not a JSON object"),
        ({"results": []}, "no results list or no total_count"),
        ({"total_count": "3", "results": []}, "no results list or no total_count"),
        ({"total_count": 1, "results": {"a": 1}}, "no results list or no total_count"),
    ],
)
async def test_answers_of_the_wrong_shape(
    session: aiohttp.ClientSession, ods: Ods, override: object, message: str
) -> None:
    fake, base = ods
    fake.override = override
    client = make_client(session, base)
    with pytest.raises(SignalResponseError, match=message):
        await client.refresh(NOW)


async def test_malformed_json(session: aiohttp.ClientSession, ods: Ods) -> None:
    fake, base = ods
    fake.mode = "malformed"
    client = make_client(session, base)
    with pytest.raises(SignalResponseError, match="not valid JSON") as caught:
        await client.refresh(NOW)
    assert caught.value.status == 200


async def test_server_error_after_some_pages_keeps_them(session: aiohttp.ClientSession, ods: Ods) -> None:
    fake, base = ods
    fake.fail_after = 2
    client = make_client(session, base)

    with pytest.raises(SignalResponseError) as caught:
        await client.refresh(NOW)

    assert caught.value.status == 500
    assert "HTTP 500" in str(caught.value)
    assert len(client.slots) == 200
    assert client.last_success is None


async def test_no_answer_in_time(session: aiohttp.ClientSession, ods: Ods) -> None:
    fake, base = ods
    fake.mode = "hang"
    client = make_client(session, base, timeout=0.2)
    with pytest.raises(SignalConnectionError, match=r"no answer from 127\.0\.0\.1 within 0\.2 s"):
        await client.refresh(NOW)


async def test_nobody_listening(session: aiohttp.ClientSession) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = make_client(session, f"http://127.0.0.1:{port}")
    with pytest.raises(SignalConnectionError, match=r"cannot reach 127\.0\.0\.1"):
        await client.refresh(NOW)


async def test_unknown_dataset(session: aiohttp.ClientSession, ods: Ods) -> None:
    _, base = ods
    client = make_client(session, base, dataset_id="another-dataset")
    with pytest.raises(SignalResponseError, match=r"HTTP 404 .*Unknown dataset") as caught:
        await client.refresh(NOW)
    assert caught.value.code == "NotFound"


async def test_pagination_stops_at_the_10000_record_window(
    session: aiohttp.ClientSession, ods: Ods, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, base = ods
    client = make_client(session, base)
    await client.refresh(NOW)
    monkeypatch.setattr(zni, "MAX_WINDOW", 200)
    fake.requests.clear()

    assert await client.refresh(NOW) == 200  # from 11:00Z: 222 rows, the window stops at 200
    assert len(fake.requests) == 2
    assert client.truncated
    assert client.last_success == NOW
    assert client.value_at(utc(12, 23, 55)) == 0  # beyond the window: kept from the first refresh


async def test_without_territory_every_row_counts(session: aiohttp.ClientSession, ods: Ods) -> None:
    fake, base = ods
    client = make_client(session, base, territory=None, territory_field=None)
    await client.refresh(NOW)
    assert fake.requests[0]["where"] == "horodatage >= date'2025-03-09T12:00:00Z'"
    assert client.invalid_records == 2
    assert sum(int(request["offset"]) == 500 for request in fake.requests) == 1


async def test_end_field_and_value_types(session: aiohttp.ClientSession, ods: Ods) -> None:
    fake, base = ods
    fake.rows = [
        {"debut": "2025-03-11T11:00:00Z", "fin": "2025-03-11T11:30:00Z", "v": True},
        {"debut": "2025-03-11T11:30:00", "fin": "2025-03-11T12:00:00+00:00", "v": "0"},  # naive means UTC
        {"debut": "2025-03-11T08:00:00-04:00", "fin": "2025-03-11T12:30:00Z", "v": 1.0},  # 12:00Z
        {"debut": "2025-03-11T12:30:00Z", "fin": "2025-03-11T12:30:00Z", "v": 1},  # empty: unusable
        {"debut": "2025-03-11T12:40:00Z", "fin": None, "v": " 0.0 "},  # no end: next start
        {"debut": "2025-03-11T12:50:00Z", "v": 2},  # not binary
        {"debut": "2025-03-11T12:51:00Z", "v": "oui"},
        {"debut": "2025-03-11T12:52:00Z", "v": float("nan")},
        {"debut": "hier", "v": 1},
        {"debut": 1741694400, "v": 1},
        {"debut": "2025-03-11T13:00:00Z", "v": False},
    ]
    client = make_client(
        session, base, time_field="debut", value_field="v", end_field="fin", territory=None, territory_field=None
    )

    await client.refresh(NOW)

    assert fake.requests[0]["select"] == "debut,v,fin"
    assert client.invalid_records == 6
    assert [(slot.start.strftime("%H:%M"), slot.end.strftime("%H:%M"), slot.value) for slot in client.slots] == [
        ("11:00", "11:30", 1),
        ("11:30", "12:00", 0),
        ("12:00", "12:30", 1),
        ("12:40", "13:00", 0),
        ("13:00", "13:30", 0),  # no end, no next: the most common step (30 min)
    ]
    assert client.value_at(utc(11, 12, 35)) is None


async def test_slot_length_setting_and_single_record(session: aiohttp.ClientSession, ods: Ods) -> None:
    fake, base = ods
    fake.rows = [{"horodatage": "2025-03-11T12:00:00Z", "valeur_signal": 1, "territoire": "Martinique"}]
    default = make_client(session, base)
    await default.refresh(NOW)
    assert default.slots[0].end == NOW + 10 * MINUTE  # the documented 10-minute step

    fixed = make_client(session, base, slot_length=timedelta(minutes=5))
    await fixed.refresh(NOW)
    assert fixed.value_at(NOW + 4 * MINUTE) == 1
    assert fixed.value_at(NOW + 6 * MINUTE) is None


async def test_non_record_items_are_counted_invalid(session: aiohttp.ClientSession, ods: Ods) -> None:
    fake, base = ods
    page = load_fixture("ods_records_page.json")
    page["results"].append("not a record")
    page["total_count"] = 4
    fake.override = page
    client = make_client(session, base)
    assert await client.refresh(NOW) == 4
    assert client.invalid_records == 1
    assert [slot.value for slot in client.slots] == [1, 0, 0]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"base_url": "ftp://portal.example"}, "base_url"),
        ({"base_url": ""}, "base_url"),
        ({"base_url": "https://portal.example/?q=1"}, "base_url"),
        ({"base_url": "http://[::1"}, "base_url"),
        ({"dataset_id": ""}, "dataset_id"),
        ({"dataset_id": "a/b"}, "dataset_id"),
        ({"api_key": ""}, "api_key"),
        ({"api_key": " key"}, "api_key"),
        ({"api_key": "two words"}, "api_key"),
        ({"time_field": "date heure"}, "time_field"),
        ({"value_field": "1valeur"}, "value_field"),
        ({"value_field": "horodatage"}, "value_field"),
        ({"end_field": "valeur_signal"}, "value_field"),
        ({"end_field": "fin;drop"}, "end_field"),
        ({"territory": None}, "territory"),
        ({"territory_field": None}, "territory"),
        ({"territory": 'Martinique" OR 1=1'}, "territory"),
        ({"territory": "  "}, "territory"),
        ({"territory_field": "terr itoire"}, "territory_field"),
        ({"slot_length": timedelta(0)}, "slot_length"),
        ({"interval": timedelta(minutes=-1)}, "interval"),
        ({"daily_quota": 0}, "daily_quota"),
        ({"daily_quota": True}, "daily_quota"),
    ],
)
async def test_configuration_is_validated(
    session: aiohttp.ClientSession, overrides: dict[str, Any], field: str
) -> None:
    with pytest.raises(SignalConfigError) as caught:
        make_client(session, "https://opendata.example", **overrides)
    assert caught.value.field == field
    assert isinstance(caught.value, ValueError)


async def test_now_must_be_aware(session: aiohttp.ClientSession) -> None:
    client = make_client(session, "https://opendata.example")
    with pytest.raises(ValueError, match="timezone-aware"):
        client.value_at(datetime(2025, 3, 11, 12, 0))
