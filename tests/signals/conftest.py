"""Fixtures for the signal tests: an aiohttp client session and the fake servers on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
from aiohttp.test_utils import TestServer
import pytest

from .fakes import FakeOpendatasoft, FakeRte


@pytest.fixture(autouse=True)
def _allow_sockets(request: pytest.FixtureRequest) -> None:
    """Home Assistant's test plugin blocks sockets; these tests use real ones on 127.0.0.1."""
    if request.config.pluginmanager.hasplugin("socket"):
        request.getfixturevalue("socket_enabled")


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """A client session like the one Home Assistant shares."""
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
async def ods() -> AsyncIterator[tuple[FakeOpendatasoft, str]]:
    """A fake Opendatasoft portal and its base URL."""
    fake = FakeOpendatasoft()
    server = TestServer(fake.app(), host="127.0.0.1")
    await server.start_server()
    yield fake, str(server.make_url("/"))
    fake.release.set()
    await server.close()


@pytest.fixture
async def rte() -> AsyncIterator[tuple[FakeRte, str]]:
    """A fake RTE data portal (token, Tempo, EcoWatt) and its base URL."""
    fake = FakeRte()
    server = TestServer(fake.app(), host="127.0.0.1")
    await server.start_server()
    yield fake, str(server.make_url("/"))
    await server.close()
