"""Versions module: the versions list and the 2.2.1 endpoint details."""

from __future__ import annotations

from aiohttp import web

from ..context import OCPI_VERSION
from .common import ENDPOINTS, ctx_of
from .transport import reply


async def versions(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    return reply(ctx.clock(), [{"version": OCPI_VERSION, "url": ctx.url(f"/ocpi/{OCPI_VERSION}")}])


async def details(request: web.Request) -> web.Response:
    ctx = ctx_of(request)
    endpoints = [
        {"identifier": identifier, "role": role, "url": ctx.url(path)} for identifier, (role, path) in ENDPOINTS.items()
    ]
    return reply(ctx.clock(), {"version": OCPI_VERSION, "endpoints": endpoints})


def routes() -> list[web.RouteDef]:
    return [
        web.get("/ocpi/versions", versions, name="ocpi.versions.list"),
        web.get(f"/ocpi/{OCPI_VERSION}", details, name="ocpi.versions.details"),
    ]
