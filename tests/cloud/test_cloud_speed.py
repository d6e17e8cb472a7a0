"""What the speed work changed must not show: fast date reading, batched events, cached locations pages."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
import json
from pathlib import Path
from typing import Any

from aiohttp.test_utils import make_mocked_request
from hypothesis import given, strategies as st
import pytest

from cloud_connector.ocpi import views
from cloud_connector.ocpi.transport import Page, paginated, paginated_json
from cloud_connector.storage import Executor
from cloud_connector.storage.sqlite import SqliteDatabase
from cloud_connector.store import CloudStore
from cloud_connector.timeutil import db_dt, from_db

from .harness import add_site, connected, inventory, running_cpo
from .test_cloud_store import event

pytestmark = pytest.mark.usefixtures("socket_enabled")


def strptime_reading(text: str) -> datetime | str:
    """What from_db returned before (strptime): the datetime, or the error's type."""
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        return "ValueError"


def from_db_reading(text: str) -> datetime | str:
    try:
        return from_db(text)
    except ValueError:
        return "ValueError"


@given(st.datetimes(min_value=datetime(1000, 1, 1), timezones=st.just(UTC)))
def test_from_db_reads_what_db_dt_writes_as_strptime_did(moment: datetime) -> None:
    text = db_dt(moment)
    read = from_db(text)
    assert read == moment == strptime_reading(text)
    assert read.tzinfo is UTC


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-26T10:00:00.123456Z",
        "2026-11-26T10:00:00.123Z",  # short fraction: strptime takes it
        "2026-11-26T10:00:00.1Z",
        "2026-11-26T10:00:00Z",  # no fraction: refused
        "2026-11-26T10:00:00.123456",  # no Z: refused
        "2026-11-26T10:00:00.123456+00:00",
        "2026-11-26 10:00:00.123456Z",
        "2026-11-26T24:00:00.000000Z",  # fromisoformat may read hour 24 as the next day
        "2026-11-26T23:59:60.000000Z",
        "2026-02-30T10:00:00.000000Z",
        "2026-13-01T10:00:00.000000Z",
        "0000-01-01T00:00:00.000000Z",
        "2026-11-26T1\u0660:00:00.000000Z",  # a non-ASCII digit
        "2026-1-26T10:00:00.0000000Z",
        "",
    ],
)
def test_from_db_accepts_and_refuses_what_strptime_did(text: str) -> None:
    assert from_db_reading(text) == strptime_reading(text)


async def test_run_transactions_one_transaction_each(tmp_path: Path) -> None:
    db = await SqliteDatabase.open(str(tmp_path / "db.sqlite3"))
    try:
        await db.execute("CREATE TABLE t (n INTEGER PRIMARY KEY)")

        async def insert(tx: Executor, n: int, fail: bool = False) -> int:
            await tx.execute("INSERT INTO t (n) VALUES (?)", (n,))
            if fail:
                raise ValueError(f"no {n}")
            row = await tx.fetchone("SELECT COUNT(*) AS c FROM t")
            assert row is not None
            return int(row["c"])

        async def suspends(tx: Executor) -> int:
            await tx.execute("INSERT INTO t (n) VALUES (99)")
            await asyncio.sleep(0)  # not allowed: the work runs in the database thread
            return 0

        assert await db.run_transactions([]) == []
        results = await db.run_transactions(
            [
                lambda tx: insert(tx, 1),
                lambda tx: insert(tx, 2, fail=True),
                suspends,
                lambda tx: insert(tx, 1),  # duplicate key: sqlite3's error comes back
                lambda tx: insert(tx, 3),
            ]
        )
        assert results[0] == 1
        assert isinstance(results[1], ValueError)
        assert str(results[1]) == "no 2"
        assert isinstance(results[2], RuntimeError)
        assert "awaited something else" in str(results[2])
        assert type(results[3]).__name__ == "IntegrityError"
        assert results[4] == 2
        # The failed works left nothing behind, the others committed.
        assert await db.fetchall("SELECT n FROM t ORDER BY n") == [{"n": 1}, {"n": 3}]
        async with db.transaction() as tx:  # and no transaction is left open
            await tx.execute("INSERT INTO t (n) VALUES (4)")
    finally:
        await db.close()


async def test_events_of_many_sites_at_once(tmp_path: Path) -> None:
    async with running_cpo(tmp_path) as cpo:
        await cpo.party()
        sites = [await add_site(cpo, f"s{n}") for n in range(5)]
        store = cpo.service.store
        status = {"charger_id": "CP1", "evse_id": 1, "connector_id": 1, "status": "Charging"}
        results = await asyncio.gather(
            *(store.apply_event(site.id, event(2, kind="status", data=status)) for site in sites)
        )
        assert results == [True] * 5
        rows = await cpo.ctx.db.fetchall("SELECT id, last_seq FROM sites ORDER BY id")
        assert rows == [{"id": f"s{n}", "last_seq": 2} for n in range(5)]


async def test_a_gap_in_a_batch_fails_alone(tmp_path: Path) -> None:
    async with running_cpo(tmp_path) as cpo:
        await cpo.party()
        for n in range(2):
            await add_site(cpo, f"s{n}", send=False)
        store = cpo.service.store
        outcomes = await asyncio.gather(
            store.apply_event("s0", event(1)),
            store.apply_event("s1", event(3)),
            store.apply_event("s1", event(1)),
            return_exceptions=True,
        )
        assert outcomes[0] is True
        assert isinstance(outcomes[1], ValueError)
        assert outcomes[2] is True


async def test_a_cancelled_caller_before_its_batch_applies_nothing(tmp_path: Path) -> None:
    async with running_cpo(tmp_path) as cpo:
        await cpo.party()
        for n in range(2):
            await add_site(cpo, f"s{n}", send=False)
        store = cpo.service.store
        first = asyncio.create_task(store.apply_event("s0", event(1)))
        await asyncio.sleep(0)  # s0's batch runs now
        second = asyncio.create_task(store.apply_event("s1", event(1)))
        await asyncio.sleep(0)  # s1 waits for the next batch
        second.cancel()
        assert await first is True
        with pytest.raises(asyncio.CancelledError):
            await second
        assert await store.last_seq("s0") == 1
        assert await store.last_seq("s1") == 0


async def test_a_closed_database_fails_every_event(tmp_path: Path) -> None:
    db = await SqliteDatabase.open(str(tmp_path / "db.sqlite3"))
    await db.close()
    store = CloudStore(db, lambda: datetime(2026, 11, 26, tzinfo=UTC), currency="EUR")
    with pytest.raises(ValueError, match="connection"):
        await store.apply_event("s1", event(1))


def test_paginated_json_gives_the_bytes_of_paginated() -> None:
    now = datetime(2026, 11, 26, 10, 0, 0, 123000, tzinfo=UTC)
    items: list[dict[str, Any]] = [{"id": "a", "x": [1, 2.5, None, "é"]}, {"id": "b", "nested": {"k": True}}]
    request = make_mocked_request("GET", "/ocpi/cpo/2.2.1/locations?limit=2&date_from=2026-01-01T00:00:00Z")
    page = Page(offset=0, limit=2, date_from=None, date_to=None)
    for shown in (items, []):
        kwargs: dict[str, Any] = {"public_url": "http://x", "total": 5, "page": page, "max_limit": 2}
        plain = paginated(now, request, shown, **kwargs)
        fast = paginated_json(now, request, [json.dumps(item) for item in shown], **kwargs)
        assert fast.body == plain.body
        assert fast.content_type == plain.content_type
        assert fast.charset == plain.charset
        assert {k: v for k, v in fast.headers.items() if k != "Content-Length"} == {
            k: v for k, v in plain.headers.items() if k != "Content-Length"
        }


TARIFF = {"currency": "EUR", "elements": [{"price_components": [{"type": "ENERGY", "price": 0.3, "step_size": 1}]}]}


async def revision(cpo: Any, site_id: str) -> int:
    row = await cpo.ctx.db.fetchone("SELECT revision FROM sites WHERE id = ?", (site_id,))
    return int(row["revision"])


async def test_every_change_of_a_location_bumps_its_revision(tmp_path: Path) -> None:
    async with running_cpo(tmp_path) as cpo:
        await cpo.party()
        site = await add_site(cpo, "s1")
        await add_site(cpo, "s2")
        db = cpo.ctx.db
        uid = "s1-CP1-1"

        async def bumps(sql: str, *params: Any) -> bool:
            before = await revision(cpo, "s1")
            await db.execute(sql, params)
            return await revision(cpo, "s1") > before

        assert await bumps("UPDATE sites SET publish = 0 WHERE id = 's1'")
        assert await bumps("UPDATE sites SET info = info WHERE id = 's1'")
        assert await bumps("UPDATE sites SET name = 'x' WHERE id = 's1'")
        assert not await bumps("UPDATE sites SET last_seq = last_seq, last_event_at = last_event_at WHERE id = 's1'")
        assert not await bumps("UPDATE sites SET publish = 0 WHERE id = 's2'")
        assert await bumps("UPDATE evses SET status = 'AVAILABLE' WHERE uid = ?", uid)
        assert await bumps("UPDATE connectors SET max_amperage = 16 WHERE evse_uid = ?", uid)
        assert not await bumps("UPDATE connectors SET ocpp_status = 'Charging' WHERE evse_uid = ?", uid)
        assert await bumps(
            "INSERT INTO connectors (evse_uid, connector_id, standard, format, power_type, max_voltage, "
            "max_amperage, last_updated) VALUES (?, '9', 'IEC_62196_T2', 'SOCKET', 'AC_3_PHASE', 230, 16, 'x')",
            uid,
        )
        assert await bumps("DELETE FROM connectors WHERE evse_uid = ? AND connector_id = '9'", uid)
        assert await bumps(
            "INSERT INTO evses (uid, site_id, charger_id, evse_id, evse_code, status, last_updated) "
            "VALUES ('e9', 's1', 'CP9', 1, 'c', 'UNKNOWN', 'x')"
        )
        assert await bumps("DELETE FROM evses WHERE uid = 'e9'")
        # Tariffs: assignments, and the deletion of a tariff in use (a Location lists live tariffs only).
        await db.execute(
            "INSERT INTO tariffs (id, country_code, party_id, body, last_updated) VALUES ('t1', 'FR', 'CAR', '{}', 'x')"
        )
        assert await bumps("INSERT INTO tariff_assignments (tariff_id, site_id) VALUES ('t1', 's1')")
        assert await bumps("UPDATE tariff_assignments SET evse_uid = ? WHERE tariff_id = 't1'", uid)
        assert not await bumps("UPDATE tariffs SET body = '{\"a\": 1}' WHERE id = 't1'")
        assert await bumps("UPDATE tariffs SET deleted = 1 WHERE id = 't1'")
        assert not await bumps("UPDATE tariffs SET deleted = 1 WHERE id = 't1'")
        assert await bumps("DELETE FROM tariff_assignments WHERE tariff_id = 't1'")
        # What the service writes: statuses and inventories.
        before = await revision(cpo, "s1")
        assert await site.status("Charging")
        assert await revision(cpo, "s1") > before


async def test_locations_pages_follow_changes_within_one_millisecond(tmp_path: Path) -> None:
    frozen = datetime(2026, 11, 26, 10, 0, 0, 123000, tzinfo=UTC)  # every change in the same millisecond
    async with connected(tmp_path, clock=lambda: frozen) as (cpo, msp):
        site = await add_site(cpo, "s1", data=inventory())
        await add_site(cpo, "s2")

        async def page() -> list[dict[str, Any]]:
            status, body, _ = await msp.module("GET", "locations")
            assert status == 200
            expected = [await views.location(cpo.ctx.db, site_id) for site_id in ("s1", "s2")]
            assert body["data"] == expected  # what the uncached build gives
            return list(body["data"])

        first = await page()
        assert first[0]["evses"][0]["status"] == "UNKNOWN"
        assert await page() == first  # served from the cache
        assert await site.status("Charging")
        assert (await page())[0]["evses"][0]["status"] == "CHARGING"
        await cpo.ok("publish-site", "s1", "--off")
        assert (await page())[0]["publish"] is False
        tariff = tmp_path / "t1.json"
        tariff.write_text(json.dumps(TARIFF))
        await cpo.ok("set-tariff", "--id", "t1", "--file", str(tariff))
        await cpo.ok("assign-tariff", "t1", "--site", "s1")
        assert (await page())[0]["evses"][0]["connectors"][0]["tariff_ids"] == ["t1"]
        await cpo.ok("delete-tariff", "t1")
        assert "tariff_ids" not in (await page())[0]["evses"][0]["connectors"][0]
