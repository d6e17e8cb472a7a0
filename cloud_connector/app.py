"""The service: database, HTTP client, OCPI application and background tasks, wired together."""

from __future__ import annotations

import logging
from typing import Self

import aiohttp
from aiohttp import web

from . import operator_api
from .authorization import Authorizer
from .config import Config
from .context import Context
from .ocpi import (
    cdrs,
    chargingprofiles,
    commands,
    credentials,
    hubclientinfo,
    locations,
    sessions,
    tariffs,
    tokens,
    versions,
)
from .ocpi.client import OcpiClient
from .ocpi.common import CTX
from .ocpi.push import Pusher
from .ocpi.transport import make_middleware
from .repo.peers import PeerRepo
from .roaming import SiteRoaming
from .secrets_util import hash_token
from .storage import Database
from .storage.sqlite import SqliteDatabase
from .store import CloudStore
from .timeutil import Clock, utcnow
from .uplink import SiteHub, add_uplink_routes

_LOGGER = logging.getLogger(__name__)


async def healthz(request: web.Request) -> web.Response:
    """Liveness and database check for load balancers."""
    ctx = request.app[CTX]
    try:
        await ctx.db.fetchone("SELECT 1 AS ok")
    except Exception as err:  # noqa: BLE001 - any database failure makes us unhealthy
        return web.json_response({"status": "error", "database": str(err)}, status=503)
    return web.json_response({"status": "ok"})


class Service:
    """Owns everything that runs; ``start``/``close`` bracket its life."""

    def __init__(self, config: Config, db: Database, *, clock: Clock = utcnow) -> None:
        self.config = config
        self.db = db
        self.clock = clock
        self.http = aiohttp.ClientSession()
        self.hub = SiteHub()
        self.ctx = Context(
            config=config,
            db=db,
            http=self.http,
            client=OcpiClient(self.http, db, clock, config.ocpi.request_timeout),
            hub=self.hub,
            clock=clock,
        )
        self.store = CloudStore(db, clock, currency=config.ocpi.currency)
        self.pusher = Pusher(self.ctx)
        self.authorizer = Authorizer(self.ctx)
        self.roaming = SiteRoaming(self.ctx, self.authorizer, self.hub)
        self.roaming.install()
        self.store.add_listener(self.pusher.on_changes)
        self.app = self._build_app()

    @classmethod
    async def open(cls, config: Config, *, clock: Clock = utcnow) -> Self:
        """Open the configured database (migrating it) and build the service."""
        return cls(config, await SqliteDatabase.open(config.database.path), clock=clock)

    async def _authenticate(self, token: str) -> tuple[object, str] | None:
        return await PeerRepo(self.db).by_token(hash_token(token))

    def _build_app(self) -> web.Application:
        app = web.Application(middlewares=[make_middleware(self._authenticate, self.ctx.default_party, self.clock)])
        app[CTX] = self.ctx
        app[tokens.TOKEN_CHANGED] = self.roaming.token_changed
        app.router.add_get("/healthz", healthz, name="healthz")
        app.router.add_routes(versions.routes())
        app.router.add_routes(credentials.routes())
        app.router.add_routes(locations.routes())
        app.router.add_routes(tokens.routes())
        app.router.add_routes(sessions.routes())
        app.router.add_routes(cdrs.routes())
        app.router.add_routes(tariffs.routes())
        app.router.add_routes(commands.routes())
        app.router.add_routes(chargingprofiles.routes())
        app.router.add_routes(hubclientinfo.routes())
        add_uplink_routes(app, self.store, self.hub)
        operator_api.setup(app, self.ctx)
        return app

    async def start(self) -> None:
        """Start the background tasks (pushes); admin commands never do."""
        await self.pusher.start()

    async def close(self) -> None:
        """Stop everything and close the database."""
        await self.pusher.stop()
        await self.ctx.drain(cancel=True)
        await self.http.close()
        await self.db.close()
