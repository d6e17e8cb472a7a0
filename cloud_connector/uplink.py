"""The cloud end of the site uplink: ``GET /uplink/v1`` and :class:`SiteHub` (``docs/uplink.md``).

Sites connect with their token, get a welcome with the last event the cloud applied, and
stream their events; each event is applied exactly once, in ``seq`` order, through
:class:`UplinkStore` (the only way this module touches storage). The rest of the service
sends commands to the sites and hears about applied events through :class:`SiteHub`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
import inspect
import json
import logging
from typing import Any, Final, Protocol
import uuid

from aiohttp import WSCloseCode, WSMsgType, hdrs, web

_LOGGER = logging.getLogger(__name__)

PROTOCOL_VERSION: Final = 1
EVENT_KINDS: Final = frozenset({"inventory", "status", "session_start", "session_update", "session_end"})
COMMAND_NAMES: Final = frozenset(
    {
        "start_session",
        "stop_session",
        "unlock_connector",
        "reserve_now",
        "cancel_reservation",
        "set_charging_profile",
        "clear_charging_profile",
    }
)
COMMAND_RESULTS: Final = frozenset({"accepted", "rejected", "failed", "unknown_charger", "timeout"})
MAX_FRAME_BYTES: Final = 4 << 20
CLOSE_REPLACED: Final = 4000
CLOSE_PROTOCOL_ERROR: Final = 4002
UPLINK_PATH: Final = "/uplink/v1"


@dataclass(frozen=True, slots=True)
class UplinkEvent:
    """One event of a site, as received."""

    seq: int
    id: str
    kind: str
    """One of :data:`EVENT_KINDS`, or a kind this cloud does not know yet (stored without effect)."""
    at: datetime
    """Aware, UTC."""
    data: dict[str, Any]

    @classmethod
    def from_frame(cls, frame: Mapping[str, Any]) -> UplinkEvent:
        """Parse an ``event`` frame; ``ValueError`` when it is not well formed."""
        seq, event_id, kind, at, data = (frame.get(key) for key in ("seq", "id", "kind", "at", "data"))
        if type(seq) is not int or not 1 <= seq < 1 << 63:
            raise ValueError(f"seq must be a positive 64-bit integer, not {seq!r}")
        if not isinstance(event_id, str) or not event_id:
            raise ValueError(f"id must be a non-empty string, not {event_id!r}")
        if not isinstance(kind, str) or not kind:
            raise ValueError(f"kind must be a non-empty string, not {kind!r}")
        if not isinstance(data, dict):
            raise ValueError(f"data must be an object, not {type(data).__name__}")
        try:
            when = datetime.fromisoformat(at) if isinstance(at, str) else None
        except ValueError:
            when = None
        if when is None or when.utcoffset() is None:
            raise ValueError(f"at must be an ISO 8601 UTC time, not {at!r}")
        return cls(seq, event_id, kind, when.astimezone(UTC), data)


class UplinkStore(Protocol):
    """What the endpoint needs from storage (implemented by the storage layer)."""

    async def authenticate_site(self, token: str) -> str | None:
        """The site id of ``token``, or None."""

    async def last_seq(self, site_id: str) -> int:
        """The highest ``seq`` applied for the site (0 for none)."""

    async def apply_event(self, site_id: str, event: UplinkEvent) -> bool:
        """Apply one event in ONE transaction; False for a duplicate.

        ``seq <= last_seq``: False, nothing written. ``seq > last_seq + 1``: ``ValueError``.
        An ``id`` already applied for the site: ``last_seq = seq``, no effect, False.
        Otherwise: store the event, apply its effect, ``last_seq = seq``, True. Never raises
        for the content of ``data`` (unknown kinds and unusable data are stored, not applied).
        """


@dataclass(frozen=True, slots=True)
class CommandResult:
    """The outcome of a command sent to a site."""

    result: str
    """One of :data:`COMMAND_RESULTS`."""
    detail: str = ""


Listener = Callable[[str, UplinkEvent], Awaitable[None] | None]


@dataclass(eq=False)
class _Connection:
    site_id: str
    ws: web.WebSocketResponse
    ready: bool = False
    """True once the welcome is sent: commands may go out."""
    pending: dict[str, asyncio.Future[CommandResult]] = field(default_factory=dict)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    closing: asyncio.Task[bool] | None = None


class SiteHub:
    """The connected sites: their commands and the events they send."""

    def __init__(self) -> None:
        self._connections: dict[str, _Connection] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._listeners: list[Listener] = []

    def connected(self, site_id: str) -> bool:
        """True while the site has a welcomed connection."""
        conn = self._connections.get(site_id)
        return conn is not None and conn.ready and not conn.ws.closed

    def add_listener(self, callback: Listener) -> Callable[[], None]:
        """Call ``callback(site_id, event)`` after each event applied with an effect; returns the unsubscriber.

        Called in ``seq`` order before the ack; a coroutine is awaited there, so it must only
        schedule network work. Exceptions are logged and ignored.
        """
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback)

    async def command(
        self, site_id: str, name: str, charger_id: str, args: Mapping[str, Any], timeout: float = 30.0
    ) -> CommandResult:
        """Send a command to a site and wait for its result.

        ``failed``/"site offline" at once when the site is not connected, ``failed``/"connection
        lost" when it drops before answering, ``timeout`` when no result comes in ``timeout`` s.
        ``ValueError`` for a ``name`` not in :data:`COMMAND_NAMES`.
        """
        if name not in COMMAND_NAMES:
            raise ValueError(f"unknown uplink command {name!r}")
        conn = self._connections.get(site_id)
        if conn is None or not conn.ready:
            return CommandResult("failed", "site offline")
        command_id = str(uuid.uuid4())
        future: asyncio.Future[CommandResult] = asyncio.get_running_loop().create_future()
        conn.pending[command_id] = future
        frame = {"type": "command", "id": command_id, "name": name, "charger_id": charger_id, "args": dict(args)}
        try:
            try:
                await conn.ws.send_str(json.dumps(frame))
            except ConnectionError:
                return CommandResult("failed", "site offline")
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            return CommandResult("timeout", f"no result from the site within {timeout:g} s")
        finally:
            conn.pending.pop(command_id, None)

    async def close(self) -> None:
        """Close every site connection (application shutdown)."""
        conns = list(self._connections.values())
        await asyncio.gather(
            *(conn.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown") for conn in conns),
            return_exceptions=True,
        )

    async def _attach(self, site_id: str, ws: web.WebSocketResponse) -> _Connection:
        """Register a new connection, after the previous one of the site has finished its work."""
        async with self._locks.setdefault(site_id, asyncio.Lock()):
            old = self._connections.get(site_id)
            if old is not None:
                _LOGGER.info("Uplink: site %s connected again, closing its previous connection", site_id)
                old.closing = asyncio.create_task(old.ws.close(code=CLOSE_REPLACED, message=b"replaced"))
                await old.done.wait()
            conn = self._connections[site_id] = _Connection(site_id, ws)
            return conn

    def _detach(self, conn: _Connection) -> None:
        if self._connections.get(conn.site_id) is conn:
            del self._connections[conn.site_id]
        for future in conn.pending.values():
            if not future.done():
                future.set_result(CommandResult("failed", "connection lost"))
        conn.done.set()

    def _command_result(self, conn: _Connection, frame: Mapping[str, Any]) -> None:
        future = conn.pending.get(str(frame.get("id")))
        if future is None or future.done():
            _LOGGER.debug("Uplink: site %s sent a result for an unknown command: %r", conn.site_id, frame)
            return
        result = frame.get("result")
        detail = frame.get("detail", "")
        if result in COMMAND_RESULTS:
            future.set_result(CommandResult(str(result), str(detail)))
        else:
            future.set_result(CommandResult("failed", f"the site answered {result!r}"))

    async def _emit(self, site_id: str, event: UplinkEvent) -> None:
        for callback in list(self._listeners):
            try:
                outcome = callback(site_id, event)
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception:
                _LOGGER.exception("Uplink listener %r failed on event %d of site %s", callback, event.seq, site_id)


class _BadFrameError(Exception):
    """The site broke the protocol: close with 4002."""


class _Endpoint:
    def __init__(self, store: UplinkStore, hub: SiteHub, *, hello_timeout: float, heartbeat: float) -> None:
        self._store = store
        self._hub = hub
        self._hello_timeout = hello_timeout
        self._heartbeat = heartbeat

    async def handle(self, request: web.Request) -> web.StreamResponse:
        token = _bearer(request.headers.get(hdrs.AUTHORIZATION))
        site_id = await self._store.authenticate_site(token) if token else None
        if site_id is None:
            return web.Response(
                status=401, text="unknown site token", headers={hdrs.WWW_AUTHENTICATE: 'Bearer realm="uplink"'}
            )
        ws = web.WebSocketResponse(heartbeat=self._heartbeat, max_msg_size=MAX_FRAME_BYTES)
        await ws.prepare(request)
        try:
            try:
                async with asyncio.timeout(self._hello_timeout):
                    hello = await _receive_frame(ws)
            except TimeoutError as exc:
                raise _BadFrameError("no hello") from exc
            if hello is None:
                return ws
            if hello.get("type") != "hello" or hello.get("protocol") != PROTOCOL_VERSION:
                raise _BadFrameError(f"expected a hello with protocol {PROTOCOL_VERSION}")
            conn = await self._hub._attach(site_id, ws)
            try:
                await self._serve(conn)
            finally:
                self._hub._detach(conn)
                if conn.closing is not None:
                    await conn.closing
        except _BadFrameError as exc:
            _LOGGER.warning("Uplink: site %s broke the protocol: %s", site_id, exc)
            await ws.close(code=CLOSE_PROTOCOL_ERROR, message=str(exc).encode()[:120])
        except ConnectionError:
            _LOGGER.debug("Uplink: connection of site %s lost", site_id)
        except Exception:
            _LOGGER.exception("Uplink: store failure for site %s", site_id)
            await ws.close(code=WSCloseCode.INTERNAL_ERROR, message=b"store failure")
        return ws

    async def _serve(self, conn: _Connection) -> None:
        site_id, ws = conn.site_id, conn.ws
        last = await self._store.last_seq(site_id)
        await ws.send_str(json.dumps({"type": "welcome", "site_id": site_id, "last_seq": last}))
        conn.ready = True
        _LOGGER.info("Uplink: site %s connected, at event %d", site_id, last)
        while (frame := await _receive_frame(ws)) is not None:
            kind = frame.get("type")
            if kind == "event":
                try:
                    event = UplinkEvent.from_frame(frame)
                except ValueError as exc:
                    raise _BadFrameError(f"bad event: {exc}") from exc
                if event.seq > last + 1:
                    await ws.send_str(json.dumps({"type": "nack", "expected": last + 1}))
                    continue
                if event.seq == last + 1:
                    applied = await self._store.apply_event(site_id, event)
                    last = event.seq if applied else await self._store.last_seq(site_id)
                    if applied:
                        await self._hub._emit(site_id, event)
                await ws.send_str(json.dumps({"type": "ack", "seq": last}))
            elif kind == "command_result":
                self._hub._command_result(conn, frame)
            else:
                _LOGGER.debug("Uplink: site %s sent an unknown frame %r", site_id, frame)


async def _receive_frame(ws: web.WebSocketResponse) -> dict[str, Any] | None:
    """The next frame as a JSON object; None once the connection is closed."""
    msg = await ws.receive()
    if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
        return None
    if msg.type is not WSMsgType.TEXT:
        raise _BadFrameError(f"{msg.type.name} frame: text frames only")
    try:
        frame = json.loads(msg.data)
    except ValueError as exc:
        raise _BadFrameError("frame is not JSON") from exc
    if not isinstance(frame, dict):
        raise _BadFrameError("frame is not a JSON object")
    return frame


def _bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header."""
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def add_uplink_routes(
    app: web.Application,
    store: UplinkStore,
    hub: SiteHub,
    *,
    hello_timeout: float = 30.0,
    heartbeat: float = 30.0,
) -> None:
    """Serve ``GET /uplink/v1`` on ``app`` and close the site connections when it shuts down."""
    endpoint = _Endpoint(store, hub, hello_timeout=hello_timeout, heartbeat=heartbeat)
    app.router.add_get(UPLINK_PATH, endpoint.handle)

    async def close_connections(_app: web.Application) -> None:
        await hub.close()

    # aiohttp 3.11 types its signals against an older aiosignal: the ignore is for that pairing only
    app.on_shutdown.append(close_connections)  # type: ignore[arg-type]


__all__ = [
    "COMMAND_NAMES",
    "COMMAND_RESULTS",
    "EVENT_KINDS",
    "CommandResult",
    "Listener",
    "SiteHub",
    "UplinkEvent",
    "UplinkStore",
    "add_uplink_routes",
]
