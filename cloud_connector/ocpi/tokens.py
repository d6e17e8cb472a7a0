"""Tokens module, Receiver interface: eMSPs push their tokens (PUT, PATCH) and check them (GET)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ..repo.tokens import TokenRepo
from .common import ENDPOINTS, ctx_of, peer_of
from .schema import TOKEN, TOKEN_TYPE, Invalid, validate
from .transport import OcpiError, Status, invalid, json_body, reply

TokenListener = Callable[[dict[str, Any]], Awaitable[None]]
TOKEN_CHANGED: web.AppKey[TokenListener] = web.AppKey("cariflex_token_changed")
"""Optional: awaited with the stored Token after each PUT or PATCH (it must only schedule network work)."""


async def _changed(request: web.Request, body: dict[str, Any]) -> None:
    listener = request.app.get(TOKEN_CHANGED)
    if listener is not None:
        await listener(body)


def _key(request: web.Request) -> tuple[str, str, str, str]:
    """(country_code, party_id, uid, type) from the URL; 404 for a party that is not the peer's."""
    info = request.match_info
    token_type = request.query.get("type", "RFID")
    try:
        TOKEN_TYPE.check(token_type, "type")
    except Invalid as err:
        raise invalid(err) from None
    if not peer_of(request).owns(info["country_code"], info["party_id"]):
        # transport_and_format: objects of another party than the client's may be answered 404.
        raise OcpiError(Status.CLIENT_ERROR, "not one of your parties", http_status=404)
    return info["country_code"].upper(), info["party_id"].upper(), info["uid"], token_type


def _same_token(body: dict[str, Any], key: tuple[str, str, str, str]) -> None:
    """A pushed object must be the one its URL names (2001 otherwise)."""
    country, party, uid, token_type = key
    for name, expected in (("country_code", country), ("party_id", party), ("uid", uid)):
        if name in body and str(body[name]).upper() != expected.upper():
            raise OcpiError(Status.INVALID_PARAMETERS, f"{name} differs from the URL")
    if "type" in body and body["type"] != token_type:
        raise OcpiError(Status.INVALID_PARAMETERS, "type differs from the URL")


async def get_token(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    found = await TokenRepo(ctx.db).get(*_key(request))
    if found is None:
        raise OcpiError(Status.UNKNOWN_TOKEN, "unknown token", http_status=404)
    return reply(ctx.clock(), found.body)


async def put_token(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    key = _key(request)
    try:
        body = validate(TOKEN, await json_body(request))
    except Invalid as err:
        raise invalid(err) from None
    _same_token(body, key)
    created = await TokenRepo(ctx.db).put(peer_of(request).id, body)
    await _changed(request, body)
    return reply(ctx.clock(), http_status=201 if created else 200)


async def patch_token(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    key = _key(request)
    raw = await json_body(request)
    try:
        changes = validate(TOKEN, raw, partial=True)
    except Invalid as err:
        raise invalid(err) from None
    if "last_updated" not in changes:
        raise OcpiError(Status.INVALID_PARAMETERS, "a PATCH must contain last_updated")
    _same_token(changes, key)
    async with ctx.db.transaction() as tx:
        repo = TokenRepo(tx)
        found = await repo.get(*key)
        if found is None:
            raise OcpiError(Status.UNKNOWN_TOKEN, "unknown token: PUT it first", http_status=404)
        merged = validate(TOKEN, {**found.body, **changes})
        await repo.put(peer_of(request).id, merged)
    await _changed(request, merged)
    return reply(ctx.clock())


def routes() -> list[web.RouteDef]:
    path = ENDPOINTS["tokens"][1] + "/{country_code}/{party_id}/{uid}"
    return [
        web.get(path, get_token, name="ocpi.tokens.get"),
        web.put(path, put_token, name="ocpi.tokens.put"),
        web.patch(path, patch_token, name="ocpi.tokens.patch"),
    ]
