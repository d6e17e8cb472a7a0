"""The OCPP central system: websocket server, authentication, TLS, subprotocols.

Chargers connect to ``ws://host:9000/<charge_point_id>`` (any path prefix works; the last
path segment is the id) or ``wss://host:9043/<charge_point_id>``. Security profile 1 is
HTTP Basic with the charge point id as user name; profile 2 is the same over TLS. The
subprotocol is negotiated from the client's list; no header means OCPP 1.6.

Each connection runs in its own aiohttp handler task: a slow, silent or misbehaving
charger only ever delays itself.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import Callable
import logging
import ssl
from typing import Any
from urllib.parse import unquote

from aiohttp import WSMsgType, web

from .backend import Admission, CentralBackend
from .model import Charger
from .rpc import V16, V201, RpcEndpoint, preload_schemas
from .v16 import V16Adapter
from .v201 import V201Adapter

_LOGGER = logging.getLogger(__name__)

MAX_FRAME_BYTES = 1 << 20
PING_INTERVAL_S = 60.0


class _WsTransport:
    """aiohttp websocket as an RPC transport."""

    __slots__ = ("_ws",)

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self._ws = ws

    async def send_text(self, text: str) -> None:
        if not self._ws.closed:
            await self._ws.send_str(text)


def parse_basic_auth(header: str | None) -> tuple[str, str] | None:
    """Return (user, password) from an ``Authorization: Basic`` header."""
    if not header or not header.lower().startswith("basic "):
        return None
    try:
        raw = base64.b64decode(header[6:].strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    try:
        decoded = raw.decode()  # clients send UTF-8 today (RFC 7617)
    except UnicodeDecodeError:
        decoded = raw.decode("latin-1")
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def charger_id_from_path(path: str) -> str:
    """The last non-empty path segment, percent-decoded."""
    segments = [segment for segment in path.split("/") if segment]
    return unquote(segments[-1]) if segments else ""


class CentralSystem:
    """Accepts charger connections and binds each to its version adapter."""

    def __init__(
        self,
        backend: CentralBackend,
        *,
        host: str | None = None,
        port: int | None = 9000,
        tls_port: int | None = None,
        ssl_context: ssl.SSLContext | None = None,
        call_timeout: float = 30.0,
        adapters: dict[str, Callable[[Charger, CentralBackend, Callable[[Any], RpcEndpoint]], Any]] | None = None,
    ) -> None:
        self.backend = backend
        self.host = host
        self.port = port
        self.tls_port = tls_port
        self.ssl_context = ssl_context
        self.call_timeout = call_timeout
        self.adapters: dict[str, Callable[..., Any]] = adapters or {V201: V201Adapter, V16: V16Adapter}
        self.connections: dict[str, tuple[web.WebSocketResponse, Any]] = {}
        self._runner: web.AppRunner | None = None
        self._sites: list[web.TCPSite] = []

    @property
    def subprotocols(self) -> dict[str, str]:
        """Subprotocol names served, newest first, mapped to versions."""
        known = {"ocpp2.0.1": V201, "ocpp1.6": V16}
        return {name: version for name, version in known.items() if version in self.adapters}

    # ---------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        """Open the listening sockets (raises OSError when a port is taken)."""
        # Reading the JSON schemas is file I/O: do it once, off the event loop.
        await asyncio.get_running_loop().run_in_executor(None, preload_schemas)
        app = web.Application()
        app.router.add_get("/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        try:
            if self.port:
                site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
                await site.start()
                self._sites.append(site)
            if self.tls_port and self.ssl_context is not None:
                tls_site = web.TCPSite(
                    self._runner, self.host, self.tls_port, ssl_context=self.ssl_context, reuse_address=True
                )
                await tls_site.start()
                self._sites.append(tls_site)
        except OSError:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Close every connection and the listening sockets."""
        for ws, _adapter in list(self.connections.values()):
            await ws.close(code=1001, message=b"central system stopping")
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._sites.clear()

    def adapter(self, charger_id: str) -> Any | None:
        """The live adapter of a connected charger."""
        found = self.connections.get(charger_id)
        return found[1] if found else None

    # ---------------------------------------------------------------- handshake
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        charger_id = charger_id_from_path(request.path)
        if not charger_id:
            raise web.HTTPNotFound(text="charge point id missing from the URL")
        secure = request.transport is not None and request.transport.get_extra_info("sslcontext") is not None
        credentials = parse_basic_auth(request.headers.get("Authorization"))
        password = credentials[1] if credentials and credentials[0] == charger_id else None
        if credentials and credentials[0] != charger_id:
            _LOGGER.warning("%s: basic auth user %r is not the charge point id", charger_id, credentials[0])
        admission = await self.backend.admit(charger_id, password, secure)
        if admission is Admission.UNAUTHORIZED:
            _LOGGER.warning("%s: refused, wrong or missing password", charger_id)
            raise web.HTTPUnauthorized(headers={"WWW-Authenticate": 'Basic realm="cariflex"'})
        if admission is Admission.REFUSE:
            _LOGGER.info("%s: refused, not a charger of this site", charger_id)
            raise web.HTTPNotFound(text="unknown charge point")

        offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
        # Pings are ours (see _keepalive), so that nothing outlives the connection.
        ws = web.WebSocketResponse(
            protocols=tuple(self.subprotocols), heartbeat=None, autoping=False, max_msg_size=MAX_FRAME_BYTES
        )
        await ws.prepare(request)
        if ws.ws_protocol is None and offered:
            _LOGGER.warning("%s: none of the subprotocols %s is supported", charger_id, offered)
            await ws.close(code=1002, message=b"unsupported subprotocol")
            return ws
        version = self.subprotocols.get(ws.ws_protocol or "ocpp1.6", V16)
        await self._serve(charger_id, version, ws)
        return ws

    async def _serve(self, charger_id: str, version: str, ws: web.WebSocketResponse) -> None:
        charger = self.backend.charger(charger_id)
        previous = self.connections.get(charger_id)
        transport = _WsTransport(ws)
        adapter_cls = self.adapters[version]
        adapter = adapter_cls(
            charger,
            self.backend,
            lambda a: RpcEndpoint(
                transport,
                version,
                a.handle,
                call_timeout=self.call_timeout,
                name=charger_id,
                after_reply=a.flush_followups,
            ),
        )
        # Register the new connection before closing the old one, so that the charger is
        # never seen disconnected in between.
        self.connections[charger_id] = (ws, adapter)
        # A known charger may reconnect without a new BootNotification (network drop, restart
        # of Home Assistant); one held at Pending stays so until it boots again and is accepted.
        charger.set_connected(adapter)
        self.backend.connection_changed(charger)
        if charger.boot_status == "Accepted" and any(c.current_limit_a is not None for c in charger.outlets):
            # Back without a reboot (network drop, Home Assistant restart): the charger may have
            # lost our limits with its connection; send them again.
            self.backend.spawn(adapter.reapply_limits(), f"{charger_id} limits after reconnect")
        if previous is not None:
            _LOGGER.info("%s: new connection replaces the previous one", charger_id)
            await previous[0].close(code=1000, message=b"replaced by a new connection")
        _LOGGER.info("%s: connected (OCPP %s)", charger_id, version)
        loop = asyncio.get_running_loop()
        heard = [loop.time()]
        keepalive = loop.create_task(self._keepalive(charger_id, ws, heard), name=f"{charger_id} keepalive")
        try:
            async for message in ws:
                heard[0] = loop.time()
                if message.type is WSMsgType.TEXT or message.type is WSMsgType.BINARY:
                    await adapter.endpoint.handle_frame(message.data)
                elif message.type is WSMsgType.PING:
                    await ws.pong(message.data)
                elif message.type is WSMsgType.ERROR:
                    _LOGGER.debug("%s: websocket error %s", charger_id, ws.exception())
        except asyncio.CancelledError:
            raise
        except Exception:
            _LOGGER.exception("%s: connection failed", charger_id)
        finally:
            keepalive.cancel()
            adapter.endpoint.close()
            if self.connections.get(charger_id, (None, None))[1] is adapter:
                del self.connections[charger_id]
                charger.set_connected(None)
                self.backend.connection_changed(charger)
                _LOGGER.info("%s: disconnected", charger_id)

    @staticmethod
    async def _keepalive(charger_id: str, ws: web.WebSocketResponse, heard: list[float]) -> None:
        """Ping a silent charger; close a connection that stays silent (a half-open socket)."""
        loop = asyncio.get_running_loop()
        while not ws.closed:
            await asyncio.sleep(PING_INTERVAL_S)
            silent = loop.time() - heard[0]
            if silent >= 2 * PING_INTERVAL_S:
                _LOGGER.info("%s: silent for %.0f s, closing the connection", charger_id, silent)
                await ws.close(code=1011, message=b"no answer to ping")
                return
            if silent >= PING_INTERVAL_S:
                await ws.ping()


def build_ssl_context(certfile: str, keyfile: str | None) -> ssl.SSLContext:
    """Server TLS context (TLS 1.2+, as OCPP security profile 2 requires)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certfile, keyfile or None)
    return context
