"""Things every OCPI handler needs: the app's context, the requesting peer, our endpoint URLs."""

from __future__ import annotations

from typing import Final

from aiohttp import web

from ..context import OCPI_VERSION, Context
from ..repo.peers import Peer
from .transport import request_info

CTX: Final = web.AppKey("cariflex_ctx", Context)

BASE = f"/ocpi/cpo/{OCPI_VERSION}"

# Our modules: identifier -> (interface role, path).
ENDPOINTS: Final = {
    "credentials": ("SENDER", f"/ocpi/{OCPI_VERSION}/credentials"),
    "locations": ("SENDER", f"{BASE}/locations"),
    "sessions": ("SENDER", f"{BASE}/sessions"),
    "cdrs": ("SENDER", f"{BASE}/cdrs"),
    "tariffs": ("SENDER", f"{BASE}/tariffs"),
    "tokens": ("RECEIVER", f"{BASE}/tokens"),
    "commands": ("RECEIVER", f"{BASE}/commands"),
    "chargingprofiles": ("RECEIVER", f"{BASE}/chargingprofiles"),
    "hubclientinfo": ("RECEIVER", f"{BASE}/hubclientinfo"),
}


def ctx_of(request: web.Request) -> Context:
    return request.app[CTX]


def peer_of(request: web.Request) -> Peer:
    peer = request_info().peer
    assert isinstance(peer, Peer)
    return peer
