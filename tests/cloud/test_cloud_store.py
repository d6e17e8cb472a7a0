"""The uplink's store (exactly-once, in order), background tasks, pricing fall-backs, push edge cases."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cloud_connector import billing
from cloud_connector.ocpi.push import Job
from cloud_connector.repo.sessions import SessionRepo
from cloud_connector.tariffs import TariffError
from cloud_connector.uplink import UplinkEvent

from .harness import add_site, connected, inventory, running_cpo
from .test_ocpi_push import FAST
from .test_ocpi_sessions import end, run_session, start, with_tariff
from .test_ocpi_tokens import put

pytestmark = pytest.mark.usefixtures("socket_enabled")


def event(
    seq: int, event_id: str | None = None, kind: str = "inventory", data: dict[str, Any] | None = None
) -> UplinkEvent:
    return UplinkEvent.from_frame(
        {
            "seq": seq,
            "id": event_id or f"e{seq}",
            "kind": kind,
            "at": "2026-11-26T10:00:00Z",
            "data": data or inventory(),
        }
    )


async def test_events_are_applied_once_and_in_order(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async with running_cpo(tmp_path) as cpo:
        await cpo.party()
        made = await cpo.ok("register-site", "--name", "Home", "--id", "s1")
        store = cpo.service.store
        assert await store.authenticate_site(made["token"]) == "s1"
        assert await store.authenticate_site("nope") is None
        assert await store.last_seq("s1") == 0
        assert await store.last_seq("nope") == 0
        assert await store.apply_event("s1", event(1))
        assert not await store.apply_event("s1", event(1))  # duplicate: acknowledged, no effect
        with pytest.raises(ValueError, match="event 3 after 1"):
            await store.apply_event("s1", event(3))
        with pytest.raises(ValueError, match="unknown site"):
            await store.apply_event("nope", event(1))
        # The same id again under the next seq: the seq moves on, nothing else happens.
        assert not await store.apply_event("s1", event(2, "e1"))
        assert await store.last_seq("s1") == 2
        assert "sent event id e1 again as 2" in caplog.text
        rows = await cpo.ctx.db.fetchall("SELECT seq, event_id FROM uplink_events")
        assert rows == [{"seq": 1, "event_id": "e1"}]
        # A rotated token stops working at once.
        rotated = await cpo.ok("rotate-site-token", "s1")
        assert await store.authenticate_site(made["token"]) is None
        assert await store.authenticate_site(rotated["token"]) == "s1"


async def test_a_failing_listener_does_not_undo_the_event(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async with running_cpo(tmp_path) as cpo:
        await cpo.party()
        await cpo.ok("register-site", "--name", "Home", "--id", "s1")

        async def broken(site_id: str, changes: Any) -> None:
            raise RuntimeError("listener bug")

        cpo.service.store.add_listener(broken)
        assert await cpo.service.store.apply_event("s1", event(1))
        assert "Listener failed after event 1 of site s1" in caplog.text
        assert await cpo.service.store.last_seq("s1") == 1


async def test_background_tasks(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async with running_cpo(tmp_path) as cpo:
        ctx = cpo.ctx

        async def fail() -> None:
            raise RuntimeError("boom")

        async def forever() -> None:
            await asyncio.Event().wait()

        ctx.spawn(fail(), "failing")
        await ctx.drain()
        assert "Background task failing failed" in caplog.text
        ctx.spawn(forever(), "endless")
        await ctx.drain(cancel=True)
        assert not ctx.tasks


def test_time_zones_and_tariff_choice() -> None:
    assert billing.time_zone("Nowhere/Atlantis") is UTC
    assert billing.time_zone(None) is UTC
    assert str(billing.time_zone("America/Martinique")) == "America/Martinique"
    start_at = datetime(2026, 11, 26, 10, tzinfo=UTC)
    regular = {
        "country_code": "FR",
        "party_id": "CAR",
        "id": "R",
        "currency": "EUR",
        "type": "REGULAR",
        "elements": [{"price_components": [{"type": "FLAT", "price": 1, "step_size": 0}]}],
    }
    fast = {**regular, "id": "F", "type": "PROFILE_FAST"}
    later = {**regular, "id": "L", "type": None, "start_date_time": "2027-01-01T00:00:00Z"}
    later.pop("type")
    broken = {"id": "B", "elements": "none"}
    chosen = billing.choose_tariff([broken, fast, later, regular], start_at)
    assert chosen is not None
    assert chosen.id == "R"
    assert billing.choose_tariff([broken], start_at) is None


async def test_sessions_that_cannot_be_priced_fall_back_to_no_tariff(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise TariffError("engine refuses")

    async with connected(tmp_path) as (cpo, msp):
        site = await add_site(cpo)
        await with_tariff(cpo, tmp_path)
        await put(msp, msp.add_token("B1"))
        monkeypatch.setattr(billing, "price_session", refuse)
        await run_session(site)
        (cdr,) = msp.state.cdrs.values()
        assert cdr["total_cost"] == {"excl_vat": 0.0, "incl_vat": 0.0}
        assert cdr["tariffs"][0]["id"] == "T1"


async def test_meter_curves_never_go_backwards(tmp_path: Path) -> None:
    async with connected(tmp_path) as (cpo, msp):
        site = await add_site(cpo)
        await put(msp, msp.add_token("B1"))
        await site.send("session_start", start(start="2026-11-26T10:00:00"))  # no zone: UTC
        await site.send("session_update", {"session_id": "1", "energy_wh": 100, "at": "2026-11-26T10:10:00Z"})
        curve = [["2026-11-26T10:20:00Z", 900], ["2026-11-26T10:15:00Z", 950], ["2026-11-26T10:30:00Z", 500]]
        await site.send("session_end", end(meter_curve=curve, energy_wh=1000))
        session = await SessionRepo(cpo.ctx.db).get(next(iter(msp.state.sessions)))
        assert session is not None
        points = billing.curve(session)
        assert [wh for _, wh in points] == [0.0, 900.0, 900.0, 1000.0]
        assert points[0][0] == datetime(2026, 11, 26, 10, tzinfo=UTC)


async def test_push_jobs_with_nothing_to_send(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async with connected(tmp_path, ocpi=FAST) as (cpo, msp):
        await add_site(cpo, "silent", send=False)
        pusher = cpo.service.pusher
        before = len(msp.state.received)
        for job in (
            Job(99, "locations", "silent", 1),  # no such peer
            Job(1, "locations", "silent", 1),  # no inventory yet
            Job(1, "tariffs", "nope", 1),  # no such tariff
            Job(1, "cdrs", "nope", 1),
            Job(1, "hubclientinfo", "x", 1),  # not a module we push
        ):
            await pusher._attempt(job)
        assert len(msp.state.received) == before
        original = pusher.retry_due

        async def broken() -> int:
            pusher.retry_due = original  # type: ignore[method-assign]
            raise RuntimeError("loop bug")

        pusher.retry_due = broken  # type: ignore[method-assign]
        async with asyncio.timeout(5):
            while "Re-push loop failed" not in caplog.text:
                await asyncio.sleep(0.01)


async def test_statuses_skip_removed_evses_and_whole_evse_updates(tmp_path: Path) -> None:
    from .harness import connector

    two = inventory(
        {
            "id": "CP1",
            "evses": [{"evse_id": 1, "connectors": [connector()]}, {"evse_id": 2, "connectors": [connector()]}],
        }
    )
    async with connected(tmp_path) as (cpo, msp):
        site = await add_site(cpo, data=two)
        await site.send("inventory", inventory(name=None, postal_code=None))  # EVSE 2 goes; no name, no postal code
        location = msp.state.locations["s1"]
        assert "postal_code" not in location
        assert location["name"] == "Home"  # the site's registered name
        await site.status("Available", evse=1, connector_id=None)  # the EVSE's every connector
        await site.status("Faulted", evse=None, connector_id=None)
        statuses = {e["uid"]: e["status"] for e in msp.state.locations["s1"]["evses"]}
        assert statuses == {"s1-CP1-1": "OUTOFORDER", "s1-CP1-2": "REMOVED"}


async def test_hints_expire(tmp_path: Path) -> None:
    async with running_cpo(tmp_path) as cpo:
        repo = SessionRepo(cpo.ctx.db)
        now = datetime(2026, 11, 26, 10, tzinfo=UTC)
        await repo.add_hint("s1", "abc", peer_id=None, token=None, reference="r", now=now - timedelta(hours=1))
        assert await repo.take_hint("s1", "ABC", now - timedelta(minutes=30)) is None
        await repo.add_hint("s1", "abc", peer_id=None, token=None, reference="r", now=now)
        hint = await repo.take_hint("s1", "ABC", now - timedelta(minutes=30))
        assert hint is not None
        assert hint.authorization_reference == "r"
        assert await repo.take_hint("s1", "abc", now - timedelta(minutes=30)) is None  # taken
