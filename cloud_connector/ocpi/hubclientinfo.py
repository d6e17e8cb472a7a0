"""HubClientInfo module, Receiver interface: a hub tells us which parties behind it are connected.

Stored and shown to the operator (``/api/peers``); our pushes go to the hub as a platform either way.
"""

from __future__ import annotations

from aiohttp import web

from ..timeutil import db_dt, format_dt, from_db, parse_dt
from .common import ENDPOINTS, ctx_of, peer_of
from .schema import CLIENT_INFO, Invalid, validate
from .transport import OcpiError, Status, invalid, json_body, reply


async def get_client_info(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    info = request.match_info
    row = await ctx.db.fetchone(
        "SELECT country_code, party_id, role, status, last_updated FROM client_info WHERE country_code = ? AND party_id = ?",
        (info["country_code"].upper(), info["party_id"].upper()),
    )
    if row is None:
        raise OcpiError(Status.CLIENT_ERROR, "unknown party", http_status=404)
    row["last_updated"] = format_dt(from_db(row["last_updated"]))
    return reply(ctx.clock(), {key: row[key] for key in ("party_id", "country_code", "role", "status", "last_updated")})


async def put_client_info(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    info = request.match_info
    try:
        body = validate(CLIENT_INFO, await json_body(request))
    except Invalid as err:
        raise invalid(err) from None
    key = (info["country_code"].upper(), info["party_id"].upper())
    if (body["country_code"].upper(), body["party_id"].upper()) != key:
        raise OcpiError(Status.INVALID_PARAMETERS, "country_code/party_id differ from the URL")
    existed = await ctx.db.fetchone("SELECT 1 AS x FROM client_info WHERE country_code = ? AND party_id = ?", key)
    await ctx.db.execute(
        "INSERT INTO client_info (country_code, party_id, role, status, peer_id, last_updated) VALUES (?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (country_code, party_id) DO UPDATE SET role = excluded.role, status = excluded.status, "
        "peer_id = excluded.peer_id, last_updated = excluded.last_updated",
        (*key, body["role"], body["status"], peer_of(request).id, db_dt(parse_dt(body["last_updated"]))),
    )
    return reply(ctx.clock(), http_status=200 if existed else 201)


def routes() -> list[web.RouteDef]:
    path = ENDPOINTS["hubclientinfo"][1] + "/{country_code}/{party_id}"
    return [
        web.get(path, get_client_info, name="ocpi.hubclientinfo.get"),
        web.put(path, put_client_info, name="ocpi.hubclientinfo.put"),
    ]
