"""Serve the uplink endpoint with the SQLite test store, for the SIGKILL test.

``python -m tests.cloud.uplink_server PORT DB_FILE SITE_ID:TOKEN...`` prints ``ready`` once it
listens on 127.0.0.1:PORT, then serves until killed.
"""

from __future__ import annotations

import asyncio
import sys

from aiohttp import web

from cloud_connector.uplink import SiteHub, add_uplink_routes
from tests.cloud.uplink_store import SqliteUplinkStore


async def serve(port: int, path: str, sites: list[str]) -> None:
    """Serve forever."""
    store = await SqliteUplinkStore.open(path)
    for pair in sites:
        site_id, _, token = pair.partition(":")
        await store.add_site(site_id, token)
    app = web.Application()
    add_uplink_routes(app, store, SiteHub())
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1]), sys.argv[2], sys.argv[3:]))
