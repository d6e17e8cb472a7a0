"""Fixtures for the Modbus tests; they run with or without Home Assistant installed.

``custom_components/cariflex/__init__.py`` imports Home Assistant. Where it is not installed
(a bare venv with only pymodbus, to test another pymodbus version), the package is
registered here without running that ``__init__``, so the pure ``modbus`` package imports.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
import importlib.util
from pathlib import Path
import sys
import types
from typing import Any

import pytest

if importlib.util.find_spec("homeassistant") is None:  # pragma: no cover - bare venv only
    _ROOT = Path(__file__).resolve().parents[2] / "custom_components"
    for _name, _path in (("custom_components", _ROOT), ("custom_components.cariflex", _ROOT / "cariflex")):
        if _name not in sys.modules:
            _module = types.ModuleType(_name)
            _module.__path__ = [str(_path)]
            sys.modules[_name] = _module

from custom_components.cariflex.modbus import ModbusDevice, Profile, Quantity
from custom_components.cariflex.modbus.simulator import ProfileSimulator


@pytest.fixture(autouse=True)
def _allow_sockets(request: pytest.FixtureRequest) -> None:
    """Home Assistant's test plugin blocks sockets; these tests use real ones on 127.0.0.1."""
    if "socket_enabled" in request.fixturenames or request.config.pluginmanager.hasplugin("socket"):
        request.getfixturevalue("socket_enabled")


SimulatorFactory = Callable[..., Any]


@pytest.fixture
async def simulators() -> AsyncIterator[SimulatorFactory]:
    """``sim = await simulators(profile, values, **kwargs)``: started, stopped at the end."""
    started: list[ProfileSimulator] = []

    async def start(
        profile: Profile, values: dict[Quantity | str, float] | None = None, **kwargs: Any
    ) -> ProfileSimulator:
        sim = ProfileSimulator(profile, values, **kwargs)
        await sim.start()
        started.append(sim)
        return sim

    yield start
    for sim in started:
        await sim.stop()


@pytest.fixture
async def devices() -> AsyncIterator[Callable[..., ModbusDevice]]:
    """``device = devices(profile, transport, ...)``: a ModbusDevice closed at the end."""
    made: list[ModbusDevice] = []

    def make(*args: Any, **kwargs: Any) -> ModbusDevice:
        device = ModbusDevice(*args, **kwargs)
        made.append(device)
        return device

    yield make
    for device in made:
        await device.close()
