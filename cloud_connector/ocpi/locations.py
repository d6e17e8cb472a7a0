"""Locations module, Sender interface: the sites' Locations, EVSEs and connectors."""

from __future__ import annotations

from aiohttp import web

from ..repo.core import CoreRepo, Site
from ..repo.inventory import InventoryRepo
from . import views
from .common import ENDPOINTS, ctx_of
from .transport import OcpiError, Status, paginated_json, parse_page, reply


async def list_locations(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    limit = ctx.config.ocpi.page_limit
    page = parse_page(request, limit)
    sites, total = await InventoryRepo(ctx.db).location_sites(page.date_from, page.date_to, page.offset, page.limit)
    texts = await ctx.locations.texts(ctx.db, sites)
    return paginated_json(
        ctx.clock(), request, texts, public_url=ctx.config.public_url, total=total, page=page, max_limit=limit
    )


async def _site(request: web.Request) -> Site:
    ctx = ctx_of(request)
    site_id = await InventoryRepo(ctx.db).site_id_matching(request.match_info["location_id"])
    site = await CoreRepo(ctx.db).site(site_id) if site_id else None
    if site is None:
        raise OcpiError(Status.UNKNOWN_LOCATION, "unknown location", http_status=404)
    return site


async def get_location(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    site = await _site(request)
    return reply(ctx.clock(), await views.location(ctx.db, site.id))


async def get_evse(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    evse = await views.evse(ctx.db, await _site(request), request.match_info["evse_uid"])
    if evse is None:
        raise OcpiError(Status.UNKNOWN_LOCATION, "unknown EVSE", http_status=404)
    return reply(ctx.clock(), evse)


async def get_connector(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    info = request.match_info
    connector = await views.connector(ctx.db, await _site(request), info["evse_uid"], info["connector_id"])
    if connector is None:
        raise OcpiError(Status.UNKNOWN_LOCATION, "unknown connector", http_status=404)
    return reply(ctx.clock(), connector)


def routes() -> list[web.RouteDef]:
    path = ENDPOINTS["locations"][1]
    return [
        web.get(path, list_locations, name="ocpi.locations.list"),
        web.get(path + "/", list_locations, name="ocpi.locations.list-slash"),
        web.get(path + "/{location_id}", get_location, name="ocpi.locations.location"),
        web.get(path + "/{location_id}/{evse_uid}", get_evse, name="ocpi.locations.evse"),
        web.get(path + "/{location_id}/{evse_uid}/{connector_id}", get_connector, name="ocpi.locations.connector"),
    ]
