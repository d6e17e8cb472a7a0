"""Stage 4: a failed push is not queued; the object is flagged and its latest state pushed again later."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from cloud_connector.timeutil import utcnow

from .harness import add_site, connected
from .test_ocpi_locations import pushes

pytestmark = pytest.mark.usefixtures("socket_enabled")

FAST = {"retry_initial": 0.05, "retry_max": 0.2, "retry_interval": 0.02, "request_timeout": 0.5}


async def flags(cpo: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = await cpo.ctx.db.fetchall(
        "SELECT module, object_id, version, attempts, last_error FROM push_state"
    )
    return rows


async def wait_for(predicate: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


async def test_emsp_down_then_back_gets_the_latest_state_once(tmp_path: Path) -> None:
    async with connected(tmp_path, ocpi={**FAST, "retry_initial": 0.3, "retry_max": 0.3}) as (cpo, msp):
        site = await add_site(cpo, "s1")
        assert await flags(cpo) == []  # delivered: nothing flagged
        await msp.go_down()
        for status in ("Charging", "Finishing", "Available", "Faulted"):
            await site.status(status)
        (flag,) = await flags(cpo)  # one flag for the Location, not one message per change
        assert flag["module"] == "locations"
        assert flag["object_id"] == "s1"
        assert flag["attempts"] >= 1
        assert "ClientConnectorError" in flag["last_error"]
        before = len(msp.state.received)
        await msp.start()
        await wait_for(lambda: len(msp.state.received) > before)
        await cpo.service.pusher.flush()
        new = msp.state.received[before:]
        assert [(r.method, r.path) for r in new] == [("PUT", "/ocpi/emsp/2.2.1/locations/FR/CAR/s1")]
        assert new[0].body["evses"][0]["status"] == "OUTOFORDER"  # the latest state, in full
        assert await flags(cpo) == []
        # Back to normal: deltas again.
        await site.status("Available")
        assert pushes(msp)[-1][0] == "PATCH"


async def test_an_error_answer_counts_as_a_failure(tmp_path: Path) -> None:
    async with connected(tmp_path, ocpi=FAST) as (cpo, msp):
        site = await add_site(cpo, "s1")
        msp.fail_next = [500]
        await site.status("Charging")
        (flag,) = await flags(cpo)
        assert flag["last_error"].startswith("HTTP 500, status 3000")
        (listed,) = await cpo.ok("list-peers")
        assert listed["last_error"] == "down"
        await wait_for(lambda: pushes(msp)[-1][0] == "PUT")
        await cpo.service.pusher.flush()
        await wait_for(lambda: not cpo.service.pusher._queues[1].qsize())
        assert msp.state.locations["s1"]["evses"][0]["status"] == "CHARGING"


async def test_a_patch_never_clears_a_failure(tmp_path: Path) -> None:
    slow = {**FAST, "retry_initial": 60.0, "retry_max": 60.0}
    async with connected(tmp_path, ocpi=slow) as (cpo, msp):
        site = await add_site(cpo, "s1")
        msp.fail_next = [503]
        await site.status("Charging")
        assert (await flags(cpo))[0]["attempts"] == 1
        # The next change is sent in full, since the peer missed one: and that clears the flag.
        await site.status("Available")
        method, _, body = pushes(msp)[-1]
        assert method == "PUT"
        assert body["evses"][0]["status"] == "AVAILABLE"
        assert await flags(cpo) == []


async def test_back_off_doubles_up_to_the_cap(tmp_path: Path) -> None:
    now = [utcnow()]

    def clock() -> datetime:
        return now[0]

    ocpi = {"retry_initial": 10.0, "retry_max": 40.0, "retry_interval": 3600.0}
    async with connected(tmp_path, ocpi=ocpi, clock=clock) as (cpo, msp):
        site = await add_site(cpo, "s1")
        await msp.go_down()
        await site.status("Charging")
        pusher = cpo.service.pusher
        delays = []
        for _ in range(5):
            (row,) = await cpo.ctx.db.fetchall("SELECT next_attempt_at, attempts FROM push_state")
            due = datetime.strptime(row["next_attempt_at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=now[0].tzinfo)
            delays.append(round((due - now[0]).total_seconds()))
            assert await pusher.retry_due() == 0  # not yet
            now[0] = due
            assert await pusher.retry_due() == 1
            await pusher.flush()
        assert delays == [10, 20, 40, 40, 40]
        assert (await flags(cpo))[0]["attempts"] == 6


async def test_unregistered_and_pull_only_peers_get_nothing(tmp_path: Path) -> None:
    async with connected(tmp_path, ocpi=FAST) as (cpo, msp):
        await msp.go_down()
        site = await add_site(cpo, "s1")
        assert len(await flags(cpo)) == 1
        await msp.start()
        await msp.unregister()
        assert await flags(cpo) == []  # forgotten with the registration
        await site.status("Charging")
        assert await flags(cpo) == []
        # A peer without a locations Receiver endpoint (pull only).
        msp.endpoints = lambda: [e for e in type(msp).endpoints(msp) if e["identifier"] == "credentials"]  # type: ignore[method-assign]
        peer = await cpo.ok("create-peer", "--name", "puller")
        await msp.register(peer["versions_url"], peer["token"])
        count = len(msp.state.received)
        await site.status("Available")
        assert len(msp.state.received) == count
        assert await flags(cpo) == []


async def test_pushes_wait_for_a_peer_worker_crash(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async with connected(tmp_path, ocpi=FAST) as (cpo, msp):
        site = await add_site(cpo, "s1")
        pusher = cpo.service.pusher
        original = pusher._attempt

        async def broken(job: Any) -> None:
            raise RuntimeError("bug")

        pusher._attempt = broken  # type: ignore[method-assign]
        await site.status("Charging")
        assert "crashed" in caplog.text
        pusher._attempt = original  # type: ignore[method-assign]
        await wait_for(lambda: msp.state.locations["s1"]["evses"][0]["status"] == "CHARGING")
