"""Things every OCPI handler needs: the app's context, the requesting peer, our endpoint URLs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Final

from aiohttp import web

from ..context import OCPI_VERSION, Context
from ..repo.peers import Peer
from .transport import Page, paginated, parse_page, request_info

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


async def sender_list(
    request: web.Request, fetch: Callable[[Context, Page], Awaitable[tuple[Sequence[Any], int]]]
) -> web.Response:
    """A Sender's GET list: the page the request asks for (within our page limit) with its pagination headers.

    ``fetch`` gives the page's objects and how many there are in all.
    """
    ctx = ctx_of(request)
    limit = ctx.config.ocpi.page_limit
    page = parse_page(request, limit)
    items, total = await fetch(ctx, page)
    return paginated(
        ctx.clock(), request, items, public_url=ctx.config.public_url, total=total, page=page, max_limit=limit
    )
