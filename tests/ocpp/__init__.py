"""Tests of the pure OCPP layer (no Home Assistant integration loaded).

``FakeTransport`` is the in-memory websocket the RPC endpoint and the version adapters
are driven through: it records every frame the central system sends.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any


class FakeTransport:
    """Collects the frames an :class:`RpcEndpoint` sends."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self._grew = asyncio.Event()

    async def send_text(self, text: str) -> None:
        self.sent.append(text)
        self._grew.set()

    @property
    def frames(self) -> list[list[Any]]:
        """Every frame sent so far, decoded."""
        return [json.loads(text) for text in self.sent]

    @property
    def last(self) -> list[Any]:
        """The last frame sent."""
        assert self.sent, "nothing was sent"
        decoded: list[Any] = json.loads(self.sent[-1])
        return decoded

    async def wait_for_frames(self, count: int, timeout: float = 2.0) -> list[list[Any]]:
        """Wait until ``count`` frames were sent; return them all."""
        async with asyncio.timeout(timeout):
            while len(self.sent) < count:
                self._grew.clear()
                await self._grew.wait()
        return self.frames
