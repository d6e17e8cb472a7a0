"""Both ends of the uplink on 127.0.0.1 for the tests: a cloud (real aiohttp server, SQLite store) and sites."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
import uuid

import aiohttp
from aiohttp import web

from cloud_connector.uplink import SiteHub, add_uplink_routes
from custom_components.cariflex.uplink import AsyncUplinkQueue, UplinkClient, UplinkState
from tests.cloud.uplink_store import SqliteUplinkStore, read_effects

SITE_A = ("site-a", "token-a")
SITE_B = ("site-b", "token-b")
AT = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
FAST: dict[str, Any] = {"backoff_initial": 0.02, "backoff_max": 0.1, "handshake_timeout": 5.0, "heartbeat": 10.0}


@dataclass
class Cloud:
    """The cloud connector's uplink endpoint, restartable on the same port and SQLite file."""

    path: Path
    port: int
    sites: tuple[tuple[str, str], ...] = (SITE_A, SITE_B)
    hello_timeout: float = 5.0
    hub: SiteHub = field(default_factory=SiteHub)
    _store: SqliteUplinkStore | None = None
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/uplink/v1"

    @property
    def store(self) -> SqliteUplinkStore:
        assert self._store is not None, "the cloud is not running"
        return self._store

    async def start(self) -> None:
        """Start a new process-like instance: new store connection, new hub."""
        self._store = await SqliteUplinkStore.open(self.path)
        for site_id, token in self.sites:
            await self._store.add_site(site_id, token)
        self.hub = SiteHub()
        app = web.Application()
        add_uplink_routes(app, self._store, self.hub, hello_timeout=self.hello_timeout, heartbeat=10.0)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        """Graceful stop (closes the site connections with 1001)."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._store is not None:
            await self._store.close()
            self._store = None

    def effects(self, site_id: str = SITE_A[0]) -> list[tuple[int, str, dict[str, Any]]]:
        return read_effects(self.path, site_id)

    def applied_ns(self, site_id: str = SITE_A[0]) -> list[int]:
        """The ``n`` of every event application, in order."""
        return [data["n"] for _, _, data in self.effects(site_id)]


Handler = Callable[[str, str, dict[str, Any]], Awaitable[tuple[str, str]]]


async def accept_all(name: str, charger_id: str, args: dict[str, Any]) -> tuple[str, str]:
    """A command handler that accepts everything."""
    return "accepted", f"{name} {charger_id}"


@dataclass
class Site:
    """A site: its queue file and its uplink client."""

    path: Path
    queue: AsyncUplinkQueue
    client: UplinkClient

    async def append(self, count: int, start: int = 0) -> None:
        """Append ``count`` status events numbered ``n = start...`` (through the async API, as Home Assistant does)."""
        for n in range(start, start + count):
            await self.queue.append("status", status(n), AT)

    async def fill(self, count: int, start: int = 0) -> None:
        """Like :meth:`append`, in one transaction."""
        await self.queue.append_many(("status", status(n), AT) for n in range(start, start + count))


def status(n: int) -> dict[str, Any]:
    """A status event's data, tagged with ``n``."""
    return {
        "charger_id": f"CP{n % 3}",
        "evse_id": 1,
        "connector_id": 1,
        "status": "Charging" if n % 2 else "Available",
        "error_code": "NoError",
        "n": n,
    }


class Sites:
    """Creates sites and stops them at the end of a test."""

    def __init__(self, session: aiohttp.ClientSession, tmp_path: Path) -> None:
        self.session = session
        self.tmp_path = tmp_path
        self._open: list[Site] = []

    async def __call__(
        self,
        cloud: Cloud,
        token: str = SITE_A[1],
        *,
        name: str = "site-a",
        handler: Handler = accept_all,
        start: bool = True,
        **kwargs: Any,
    ) -> Site:
        path = self.tmp_path / f"{name}.queue.db"
        queue = await AsyncUplinkQueue.open(path)
        client = UplinkClient(self.session, cloud.url, token, queue, handler, **{**FAST, **kwargs})
        site = Site(path, queue, client)
        self._open.append(site)
        if start:
            client.start()
        return site

    async def close(self, site: Site) -> None:
        """Stop the client and close the queue (a site restart).

        Never in the middle of an upgrade: aiohttp 3.11 leaves its response unclosed when a
        request is cancelled inside ``req.send`` (Home Assistant's test plugin fails on that).
        """
        deadline = asyncio.get_running_loop().time() + 5
        while site.client.state is UplinkState.CONNECTING and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.005)
        await site.client.stop()
        await site.queue.close()
        self._open.remove(site)

    async def close_all(self) -> None:
        for site in list(self._open):
            await self.close(site)


def event_frame(seq: Any, n: int = 0, *, event_id: str | None = None, **overrides: Any) -> dict[str, Any]:
    """An ``event`` frame as a site sends it."""
    frame = {
        "type": "event",
        "seq": seq,
        "id": event_id or str(uuid.uuid4()),
        "kind": "status",
        "at": "2026-11-26T10:00:00Z",
        "data": status(n),
    }
    frame.update(overrides)
    return frame
