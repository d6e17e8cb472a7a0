"""The cloud killed with SIGKILL in the middle of an ingest loses and doubles nothing.

The cloud side runs in a subprocess (``tests/cloud/uplink_server.py``) on a SQLite file; it is
killed -9 while ~2,000 events stream in, then started again on the same file and port.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import os
from pathlib import Path
import sys
from typing import Any

import aiohttp
import pytest

from tests.cloud.uplink_harness import SITE_A, Cloud, Sites
from tests.cloud.uplink_store import count_effects, read_effects
from tests.conftest import free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]
EVENTS = 2000


@pytest.fixture
async def sites(socket_enabled: None, tmp_path: Path) -> AsyncIterator[Sites]:
    async with aiohttp.ClientSession() as session:
        factory = Sites(session, tmp_path)
        yield factory
        await factory.close_all()


async def start_cloud(port: int, db: Path, log: Any) -> asyncio.subprocess.Process:
    """The cloud process, once it listens."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.cloud.uplink_server",
        str(port),
        str(db),
        f"{SITE_A[0]}:{SITE_A[1]}",
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=asyncio.subprocess.PIPE,
        stderr=log,
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 20)
    assert line.strip() == b"ready", line
    return proc


async def kill(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.kill()
    await proc.wait()


async def test_sigkill_mid_ingest_loses_and_doubles_nothing(tmp_path: Path, sites: Sites) -> None:
    db = tmp_path / "cloud.db"
    cloud = Cloud(db, free_port())  # only its url: the cloud itself is the subprocess
    site = await sites(cloud, start=False)
    await site.fill(EVENTS)
    with (tmp_path / "cloud.log").open("wb") as log:
        proc = await start_cloud(cloud.port, db, log)
        try:
            site.client.start()
            await wait_for(lambda: count_effects(db) >= 300, timeout=15)
            proc.kill()
            await proc.wait()
            applied_at_kill = count_effects(db)
            assert applied_at_kill < EVENTS, "the ingest ended before the kill: the test proves nothing"
            await wait_for(lambda: not site.client.connected)
            assert site.queue.length > 0

            proc = await start_cloud(cloud.port, db, log)
            await wait_for(lambda: site.client.connected and site.queue.length == 0, timeout=15)
        finally:
            await kill(proc)
    effects = read_effects(db, SITE_A[0])
    assert [seq for seq, _, _ in effects] == list(range(1, EVENTS + 1))
    assert [data["n"] for _, _, data in effects] == list(range(EVENTS))
    assert len({event_id for _, event_id, _ in effects}) == EVENTS
