"""Read-only JSON API for the operator: ``/api/...`` with ``Authorization: Bearer <admin token>``.

Sites (and whether their uplink is connected), chargers, live EVSE status, sessions, CDRs, peers with
their last exchange and pending pushes. Lists take ``offset`` and ``limit`` (at most 1000) and answer
``{"items": [...], "total": n}``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
import json
from typing import Any, Final

from aiohttp import web

from .context import Context
from .ocpi import views
from .repo.core import CoreRepo, Site
from .repo.inventory import InventoryRepo
from .repo.peers import PeerRepo
from .repo.sessions import SessionRepo
from .secrets_util import hash_token
from .timeutil import format_dt, from_db

API_CTX: Final = web.AppKey("cariflex_api_ctx", Context)
MAX_LIMIT = 1000


def _page(request: web.Request) -> tuple[int, int]:
    try:
        offset = max(int(request.query.get("offset", 0)), 0)
        limit = min(max(int(request.query.get("limit", 100)), 1), MAX_LIMIT)
    except ValueError:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "offset and limit must be integers"}), content_type="application/json"
        ) from None
    return offset, limit


def _dt(value: Any) -> str | None:
    return format_dt(value) if value is not None else None


@web.middleware
async def admin_only(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    if not request.path.startswith("/api/"):
        return await handler(request)
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    name = (
        await CoreRepo(request.app[API_CTX].db).admin_token_name(hash_token(token.strip()))
        if scheme.lower() == "bearer"
        else None
    )
    if name is None:
        return web.json_response(
            {"error": "unauthorized"}, status=401, headers={"WWW-Authenticate": 'Bearer realm="api"'}
        )
    return await handler(request)


async def _site_json(ctx: Context, site: Site) -> dict[str, Any]:
    inv = InventoryRepo(ctx.db)
    evses = [e for e in await inv.evses(site.id) if not e.removed]
    by_status: dict[str, int] = {}
    for evse in evses:
        by_status[evse.status] = by_status.get(evse.status, 0) + 1
    return {
        "site_id": site.id,
        "name": site.name,
        "party": f"{site.country_code}*{site.party_id}",
        "publish": site.publish,
        "connected": ctx.hub.connected(site.id),
        "last_seq": site.last_seq,
        "last_event_at": _dt(site.last_event_at),
        "location_updated": _dt(site.last_updated),
        "evses": by_status,
    }


async def sites(request: web.Request) -> web.Response:
    ctx = request.app[API_CTX]
    offset, limit = _page(request)
    found = await CoreRepo(ctx.db).sites()
    items = [await _site_json(ctx, site) for site in found[offset : offset + limit]]
    return web.json_response({"items": items, "total": len(found)})


async def site(request: web.Request) -> web.Response:
    ctx = request.app[API_CTX]
    found = await CoreRepo(ctx.db).site(request.match_info["site_id"])
    if found is None:
        raise web.HTTPNotFound(text=json.dumps({"error": "unknown site"}), content_type="application/json")
    body = await _site_json(ctx, found)
    body["info"] = found.info
    body["location"] = await views.location(ctx.db, found.id)
    return web.json_response(body)


async def chargers(request: web.Request) -> web.Response:
    ctx = request.app[API_CTX]
    offset, limit = _page(request)
    inv = InventoryRepo(ctx.db)
    items = []
    for each in await CoreRepo(ctx.db).sites():
        for charger in await inv.chargers(each.id):
            evses = await inv.charger_evses(each.id, charger["charger_id"])
            items.append(
                {
                    "site_id": each.id,
                    "charger_id": charger["charger_id"],
                    "vendor": charger["vendor"],
                    "model": charger["model"],
                    "ocpp_version": charger["ocpp_version"],
                    "present": bool(charger["present"]),
                    "status": charger["status"],
                    "evses": {str(e.evse_id): e.status for e in evses},
                }
            )
    return web.json_response({"items": items[offset : offset + limit], "total": len(items)})


async def status(request: web.Request) -> web.Response:
    """Every EVSE, live: OCPI status and the OCPP status of each connector."""
    ctx = request.app[API_CTX]
    inv = InventoryRepo(ctx.db)
    items = []
    counts: dict[str, int] = {}
    for each in await CoreRepo(ctx.db).sites():
        evses = await inv.evses(each.id)
        connectors = await inv.connectors([e.uid for e in evses])
        for evse in evses:
            counts[evse.status] = counts.get(evse.status, 0) + 1
            items.append(
                {
                    "site_id": each.id,
                    "connected": ctx.hub.connected(each.id),
                    "charger_id": evse.charger_id,
                    "evse_id": evse.evse_id,
                    "evse_uid": evse.uid,
                    "status": evse.status,
                    "connectors": {c.connector_id: c.ocpp_status for c in connectors[evse.uid]},
                    "last_updated": _dt(evse.last_updated),
                }
            )
    return web.json_response({"items": items, "total": len(items), "by_status": counts})


async def sessions(request: web.Request) -> web.Response:
    ctx = request.app[API_CTX]
    offset, limit = _page(request)
    found, total = await SessionRepo(ctx.db).for_peer(None, None, None, offset, limit)
    items = []
    for session in found:
        body = await views.session(ctx.db, session)
        body.update(site_id=session.site_id, site_session_id=session.site_session_id, peer_id=session.peer_id)
        items.append(body)
    return web.json_response({"items": items, "total": total})


async def cdrs(request: web.Request) -> web.Response:
    ctx = request.app[API_CTX]
    offset, limit = _page(request)
    found, total = await SessionRepo(ctx.db).cdrs_for_peer(None, None, None, offset, limit)
    items = [
        {
            "cdr": cdr.body,
            "peer_id": cdr.peer_id,
            "delivered_at": _dt(cdr.delivered_at),
            "emsp_url": cdr.emsp_url,
            "credited_by": cdr.credited_by,
        }
        for cdr in found
    ]
    return web.json_response({"items": items, "total": total})


async def peers(request: web.Request) -> web.Response:
    ctx = request.app[API_CTX]
    items = []
    for peer in await PeerRepo(ctx.db).all():
        pending = await ctx.db.fetchone("SELECT COUNT(*) AS n FROM push_state WHERE peer_id = ?", (peer.id,))
        clients = await ctx.db.fetchall(
            "SELECT country_code, party_id, role, status, last_updated FROM client_info WHERE peer_id = ? "
            "ORDER BY country_code, party_id",
            (peer.id,),
        )
        items.append(
            {
                "peer_id": peer.id,
                "name": peer.name,
                "status": peer.status,
                "version": peer.version,
                "parties": [f"{cc}*{pid}" for cc, pid in peer.parties()],
                "roles": sorted({str(role.get("role")) for role in peer.roles}),
                "endpoints": {f"{e['identifier']}/{e['role']}": e["url"] for e in peer.endpoints},
                "last_exchange_at": _dt(peer.last_exchange_at),
                "last_exchange": peer.last_exchange,
                "last_error": peer.last_error,
                "pending_pushes": pending["n"] if pending else 0,
                "hub_clients": [{**c, "last_updated": format_dt(from_db(c["last_updated"]))} for c in clients],
            }
        )
    return web.json_response({"items": items, "total": len(items)})


def setup(app: web.Application, ctx: Context) -> None:
    """Add the ``/api`` routes (GET only) and their token check to ``app``."""
    app[API_CTX] = ctx
    app.middlewares.append(admin_only)
    app.router.add_get("/api/sites", sites)
    app.router.add_get("/api/sites/{site_id}", site)
    app.router.add_get("/api/chargers", chargers)
    app.router.add_get("/api/status", status)
    app.router.add_get("/api/sessions", sessions)
    app.router.add_get("/api/cdrs", cdrs)
    app.router.add_get("/api/peers", peers)
