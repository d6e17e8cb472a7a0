"""Shared fixtures: a real Home Assistant with a Cariflex site on free ports."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Generator
import contextlib
import socket
from typing import Any
from unittest.mock import PropertyMock, patch

from homeassistant.config_entries import ConfigSubentryData
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

# Import our package before Home Assistant puts its own test config dir on sys.path,
# so that `custom_components` resolves to this repository.
import custom_components.cariflex  # noqa: F401
from custom_components.cariflex.compat import async_get_device
from custom_components.cariflex.const import (
    CONF_AUTH_MODE,
    CONF_CHARGER_ID,
    CONF_HEARTBEAT_INTERVAL,
    CONF_MAX_CURRENT,
    CONF_PHASES,
    CONF_SITE_NAME,
    CONF_SUBSCRIBED_POWER,
    CONF_UNKNOWN_CHARGERS,
    CONF_VOLTAGE,
    CONF_WS_PORT,
    CONF_WSS_PORT,
    DOMAIN,
    SUBENTRY_CHARGER,
)
from simulator.charger16 import SimCharger16, SimConfig, connect


@pytest.fixture
def entity_registry_enabled_by_default() -> Generator[None]:
    """Create the entities that are disabled by default too (as Home Assistant's own tests do)."""
    with patch(
        "homeassistant.helpers.entity.Entity.entity_registry_enabled_default",
        return_value=True,
        new_callable=PropertyMock,
    ):
        yield


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Let Home Assistant load custom_components/cariflex."""


def free_port() -> int:
    """A TCP port free right now on this host."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def site_entry(
    port: int,
    *,
    chargers: dict[str, dict[str, Any]] | None = None,
    options: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
) -> MockConfigEntry:
    """A site entry on ``port`` with charger sub-entries."""
    subentries: list[ConfigSubentryData] = [
        ConfigSubentryData(
            data={CONF_CHARGER_ID: charger_id, CONF_MAX_CURRENT: 32.0, **extra},
            subentry_type=SUBENTRY_CHARGER,
            title=charger_id,
            unique_id=charger_id,
        )
        for charger_id, extra in (chargers or {}).items()
    ]
    return MockConfigEntry(
        domain=DOMAIN,
        title="Test site",
        data={CONF_SITE_NAME: "Test site", CONF_WS_PORT: port, CONF_WSS_PORT: 0, **(data or {})},
        options={
            CONF_UNKNOWN_CHARGERS: "accept",
            CONF_AUTH_MODE: "open",
            CONF_PHASES: 3,
            CONF_VOLTAGE: 230,
            CONF_SUBSCRIBED_POWER: 36.0,
            CONF_HEARTBEAT_INTERVAL: 300,
            **(options or {}),
        },
        subentries_data=subentries,
    )


def state_of(hass: HomeAssistant, entity_id: str) -> str:
    """The state of an entity that must exist."""
    state = hass.states.get(entity_id)
    assert state is not None, f"{entity_id} does not exist"
    return state.state


def charger_device(hass: HomeAssistant, charger_id: str = "CP1") -> dr.DeviceEntry:
    """The device of a charger (or of the site, given its entry id), on both Home Assistant versions."""
    for entry in hass.config_entries.async_entries(DOMAIN):
        device = async_get_device(hass, (DOMAIN, charger_id), entry.entry_id)
        if device is not None:
            return device
    raise AssertionError(f"no device for {charger_id}")


def find_device(hass: HomeAssistant, identifier: str) -> dr.DeviceEntry | None:
    """Like :func:`charger_device` but None when absent."""
    try:
        return charger_device(hass, identifier)
    except AssertionError:
        return None


async def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait until ``predicate()`` holds (the central system answers asynchronously)."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


class ChargerFactory:
    """Connect simulated chargers to the site and close them at the end of the test."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"ws://127.0.0.1:{port}"
        self._open: list[tuple[SimCharger16, Any, asyncio.Task[None]]] = []

    async def __call__(
        self,
        charger_id: str = "CP1",
        *,
        boot: bool = True,
        password: str | None = None,
        subprotocols: list[str] | None = None,
        config: SimConfig | None = None,
        url: str | None = None,
        **kwargs: Any,
    ) -> SimCharger16:
        charger, ws, task = await connect(
            url or self.url, charger_id, password=password, subprotocols=subprotocols, config=config, **kwargs
        )
        self._open.append((charger, ws, task))
        if boot:
            await charger.boot()
        return charger

    async def disconnect(self, charger: SimCharger16) -> None:
        """Drop one charger's connection."""
        for item in list(self._open):
            if item[0] is charger:
                await self._close(item)
                self._open.remove(item)

    async def _close(self, item: tuple[SimCharger16, Any, asyncio.Task[None]]) -> None:
        charger, ws, task = item
        await charger.stop_tasks()
        task.cancel()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await task
        with contextlib.suppress(Exception):
            await ws.close()

    async def close_all(self) -> None:
        """Close every connection."""
        for item in self._open:
            await self._close(item)
        self._open.clear()


@pytest.fixture
def ws_port() -> int:
    """A free port for the site's ws server."""
    return free_port()


@pytest.fixture
async def site(hass: HomeAssistant, socket_enabled: None, ws_port: int) -> AsyncIterator[MockConfigEntry]:
    """A loaded site that knows charger CP1 and accepts unknown chargers."""
    entry = site_entry(ws_port, chargers={"CP1": {}})
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    yield entry
    if entry.state.recoverable or entry.state.name == "LOADED":
        await hass.config_entries.async_unload(entry.entry_id)


@pytest.fixture
async def chargers(ws_port: int) -> AsyncIterator[ChargerFactory]:
    """Connect simulated OCPP 1.6 chargers to the site."""
    factory = ChargerFactory(ws_port)
    yield factory
    await factory.close_all()


ChargerConnect = Callable[..., Awaitable[SimCharger16]]
