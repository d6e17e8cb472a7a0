"""Half-open connections: a charger that stops answering is dropped, a live one is kept."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os

import pytest
import websockets

from custom_components.cariflex.ocpp import server as server_module
from custom_components.cariflex.ocpp.server import CentralSystem
from custom_components.cariflex.ocpp.site import SiteBackend
from tests.conftest import free_port, wait_for


@pytest.fixture
async def central(monkeypatch: pytest.MonkeyPatch, socket_enabled: None) -> CentralSystem:
    monkeypatch.setattr(server_module, "PING_INTERVAL_S", 0.3)  # slack for a loaded machine
    system = CentralSystem(SiteBackend(), host="127.0.0.1", port=free_port())
    await system.start()
    return system


async def test_silent_peer_is_closed(central: CentralSystem) -> None:
    """A raw TCP peer that completes the upgrade and then never answers a ping."""
    reader, writer = await asyncio.open_connection("127.0.0.1", central.port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            "GET /SILENT HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: ocpp1.6\r\n\r\n"
        ).encode()
    )
    await writer.drain()
    status = await reader.readline()
    assert b"101" in status
    await wait_for(lambda: "SILENT" in central.connections, timeout=2)
    # Never read nor answer: the central system pings, hears nothing, and lets go.
    await wait_for(lambda: "SILENT" not in central.connections, timeout=3)
    assert not central.backend.charger("SILENT").connected  # type: ignore[attr-defined]
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()
    await central.stop()


async def test_live_peer_answering_pings_is_kept(central: CentralSystem, monkeypatch: pytest.MonkeyPatch) -> None:
    # A pong has one interval to come back: 0.3 s was too short when 3 test workers share 2 cores.
    monkeypatch.setattr(server_module, "PING_INTERVAL_S", 0.8)
    async with websockets.connect(f"ws://127.0.0.1:{central.port}/LIVE", subprotocols=["ocpp1.6"]) as ws:  # type: ignore[list-item]
        await wait_for(lambda: "LIVE" in central.connections, timeout=2)
        await asyncio.sleep(3.3)  # four ping intervals: websockets answers the pings
        assert "LIVE" in central.connections
        await ws.ping()  # pings from the charger are answered too
    await central.stop()
