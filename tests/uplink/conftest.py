"""Fixtures of the site-side uplink tests."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _allow_sockets(socket_enabled: None) -> None:
    """Home Assistant's test plugin blocks sockets; these tests use real ones on 127.0.0.1."""
