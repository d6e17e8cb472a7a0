"""A real cloud connector for tests: SQLite file in tmp_path, HTTP server on 127.0.0.1, CLI in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
import io
import json
from pathlib import Path
import socket
from typing import Any

import aiohttp
from aiohttp import web

from cloud_connector import cli
from cloud_connector.app import Service
from cloud_connector.config import Config, config_with
from cloud_connector.timeutil import Clock, utcnow


def bound_socket() -> socket.socket:
    """A listening-ready TCP socket on a free 127.0.0.1 port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


class Cpo:
    """The service under test, serving on 127.0.0.1."""

    def __init__(self, service: Service, url: str, config: Config, environ: dict[str, str]) -> None:
        self.service = service
        self.url = url
        self.config = config
        self.environ = environ

    @property
    def ctx(self) -> Any:
        return self.service.ctx

    async def cli(self, *argv: str) -> tuple[int, Any, str]:
        """Run ``python -m cloud_connector admin ...`` in-process on the same database."""
        out, err = io.StringIO(), io.StringIO()
        code = await cli.run(["admin", *argv], environ=self.environ, out=out, err=err)
        text = out.getvalue()
        return code, json.loads(text) if text else None, err.getvalue()

    async def ok(self, *argv: str) -> Any:
        code, value, err = await self.cli(*argv)
        assert code == 0, err
        return value

    async def party(self, country: str = "FR", party_id: str = "CAR") -> None:
        await self.ok("create-party", "--country-code", country, "--party-id", party_id, "--name", "Cariflex")


def environment(tmp_path: Path, url: str, **extra: str) -> dict[str, str]:
    """The CARIFLEX_CLOUD_* variables that point a service at ``tmp_path``."""
    return {
        "CARIFLEX_CLOUD_DATABASE_PATH": str(tmp_path / "cloud.sqlite3"),
        "CARIFLEX_CLOUD_SERVER_BASE_URL": url,
        "CARIFLEX_CLOUD_LOGGING_LEVEL": "DEBUG",
        **extra,
    }


@asynccontextmanager
async def running_cpo(
    tmp_path: Path,
    *,
    clock: Clock = utcnow,
    ocpi: dict[str, Any] | None = None,
    **extra_env: str,
) -> AsyncIterator[Cpo]:
    """Start the service on a free port; stop it (and check it stopped cleanly) afterwards."""
    sock = bound_socket()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    environ = environment(tmp_path, url, **extra_env)
    from cloud_connector.config import load_config

    config = load_config(None, environ)
    if ocpi:
        config = config_with(config, ocpi=ocpi)
    service = await Service.open(config, clock=clock)
    runner = web.AppRunner(service.app, access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    await service.start()
    try:
        yield Cpo(service, url, config, environ)
    finally:
        await runner.cleanup()
        await service.close()


async def fetch(
    method: str,
    url: str,
    *,
    token: str | None = None,
    body: Any = None,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any, dict[str, str]]:
    """One HTTP request with a 2.2.1 (base64) token; (status, parsed JSON or None, headers)."""
    from cloud_connector.ocpi.transport import authorization_header

    send = dict(headers or {})
    if token is not None:
        send.setdefault("Authorization", authorization_header(token))
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    if data is not None:
        send.setdefault("Content-Type", "application/json")
    async with aiohttp.ClientSession() as session, session.request(method, url, data=data, headers=send) as response:
        text = await response.read()
        try:
            parsed = json.loads(text) if text else None
        except ValueError:
            parsed = None
        return response.status, parsed, dict(response.headers)


# --- sites and their events --------------------------------------------------------------------------

AT = "2026-11-26T10:00:00Z"


def connector(cid: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "id": cid,
        "standard": "IEC_62196_T2",
        "format": "SOCKET",
        "power_type": "AC_3_PHASE",
        "max_voltage": 230,
        "max_amperage": 32,
        "max_electric_power": 22000,
        **extra,
    }


def inventory(*chargers: dict[str, Any], **site: Any) -> dict[str, Any]:
    """An ``inventory`` event's data: a site in Fort-de-France, CP1 with one EVSE unless told otherwise."""
    return {
        "site": {
            "name": "Home",
            "address": "1 rue Victor Hugo",
            "city": "Fort-de-France",
            "postal_code": "97200",
            "country": "MTQ",
            "latitude": 14.6036,
            "longitude": -61.0719,
            "time_zone": "America/Martinique",
            **site,
        },
        "chargers": list(chargers)
        or [
            {
                "id": "CP1",
                "vendor": "V",
                "model": "M",
                "ocpp_version": "1.6",
                "evses": [{"evse_id": 1, "connectors": [connector()]}],
            }
        ],
    }


class Site:
    """A registered site whose events the test feeds to the store directly (as the uplink would)."""

    def __init__(self, cpo: Cpo, site_id: str, token: str) -> None:
        self.cpo = cpo
        self.id = site_id
        self.token = token
        self.seq = 0

    async def send(self, kind: str, data: dict[str, Any], *, flush: bool = True) -> bool:
        from cloud_connector.uplink import UplinkEvent

        self.seq += 1
        frame = {"seq": self.seq, "id": f"{self.id}-{self.seq}", "kind": kind, "at": AT, "data": data}
        applied = await self.cpo.service.store.apply_event(self.id, UplinkEvent.from_frame(frame))
        if flush:
            await self.cpo.service.pusher.flush()
        return applied

    async def status(
        self, status: str, charger: str = "CP1", evse: int | None = 1, connector_id: int | None = 1
    ) -> bool:
        data: dict[str, Any] = {"charger_id": charger, "status": status, "error_code": "NoError"}
        if evse is not None:
            data["evse_id"] = evse
        if connector_id is not None:
            data["connector_id"] = connector_id
        return await self.send("status", data)


async def add_site(cpo: Cpo, site_id: str = "s1", *, data: dict[str, Any] | None = None, send: bool = True) -> Site:
    """Register a site and (unless ``send`` is False) apply its inventory."""
    made = await cpo.ok("register-site", "--name", "Home", "--id", site_id)
    site = Site(cpo, site_id, made["token"])
    if send:
        await site.send("inventory", data or inventory())
    return site


@asynccontextmanager
async def connected(
    tmp_path: Path, *, ocpi: dict[str, Any] | None = None, clock: Clock = utcnow
) -> AsyncIterator[tuple[Cpo, Any]]:
    """A CPO with a party, and an eMSP registered with it (the eMSP started the handshake)."""
    from .emsp import Emsp

    async with running_cpo(tmp_path, ocpi=ocpi, clock=clock) as cpo, Emsp() as msp:
        await cpo.party()
        peer = await cpo.ok("create-peer", "--name", "msp")
        await msp.register(peer["versions_url"], peer["token"])
        yield cpo, msp


class RemoteSite:
    """A real site end: its SQLite queue and the integration's uplink client, connected to the CPO."""

    def __init__(self, cpo: Cpo, site_id: str, token: str, path: Path) -> None:
        self.cpo = cpo
        self.id = site_id
        self.token = token
        self.path = path
        self.commands: list[tuple[str, str, dict[str, Any]]] = []
        self.answers: dict[str, tuple[str, str]] = {}  # command name -> (result, detail); accepted otherwise
        self.hold: dict[str, Any] = {}  # command name -> asyncio.Event to wait for before answering
        self.queue: Any = None
        self.client: Any = None
        self.http: aiohttp.ClientSession | None = None

    async def _handle(self, name: str, charger_id: str, args: dict[str, Any]) -> tuple[str, str]:
        self.commands.append((name, charger_id, args))
        if name in self.hold:
            await self.hold[name].wait()
        return self.answers.get(name, ("accepted", ""))

    async def start(self) -> None:
        import asyncio

        from custom_components.cariflex.uplink import AsyncUplinkQueue, UplinkClient

        self.queue = await AsyncUplinkQueue.open(self.path)
        self.http = aiohttp.ClientSession()
        url = self.cpo.url.replace("http://", "ws://") + "/uplink/v1"
        self.client = UplinkClient(
            self.http, url, self.token, self.queue, self._handle, backoff_initial=0.02, backoff_max=0.1, heartbeat=10.0
        )
        self.client.start()
        async with asyncio.timeout(5):
            while not self.cpo.service.hub.connected(self.id):
                await asyncio.sleep(0.01)

    async def send(self, kind: str, data: dict[str, Any]) -> None:
        """Queue an event like the integration does and wait until the cloud applied it (and pushed)."""
        import asyncio
        from datetime import UTC, datetime

        await self.queue.append(kind, data, datetime.now(UTC))
        async with asyncio.timeout(5):
            while self.queue.length:
                await asyncio.sleep(0.01)
        await self.cpo.service.pusher.flush()

    async def stop(self) -> None:
        if self.client is not None:
            await self.client.stop()
        if self.queue is not None:
            await self.queue.close()
        if self.http is not None:
            await self.http.close()


@asynccontextmanager
async def remote_site(
    cpo: Cpo, tmp_path: Path, site_id: str = "s1", data: dict[str, Any] | None = None
) -> AsyncIterator[RemoteSite]:
    """A registered site connected over the uplink, its inventory sent."""
    made = await cpo.ok("register-site", "--name", "Home", "--id", site_id)
    site = RemoteSite(cpo, site_id, made["token"], tmp_path / f"{site_id}.queue.db")
    try:
        await site.start()
        await site.send("inventory", data or inventory())
        yield site
    finally:
        await site.stop()
