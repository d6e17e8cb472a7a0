"""The cloud end of the site uplink: ``GET /uplink/v1`` and :class:`SiteHub` (``docs/uplink.md``).

Sites connect with their token, get a welcome with the last event the cloud applied, and
stream their events; each event is applied exactly once, in ``seq`` order, through
:class:`UplinkStore` (the only way this module touches storage). The rest of the service
sends commands to the sites and hears about applied events through :class:`SiteHub`, answers
the sites' roaming badge questions (``set_authorizer``) and syncs their roaming token lists
(``set_token_provider``, ``send_tokens``, ``broadcast_tokens``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
import contextlib
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
AUTHORIZE_RESULTS: Final = frozenset(
    {"ACCEPTED", "BLOCKED", "EXPIRED", "INVALID", "NO_CREDIT", "NOT_ALLOWED", "UNKNOWN"}
)
WHITELIST_TYPES: Final = frozenset({"ALWAYS", "ALLOWED", "ALLOWED_OFFLINE", "NEVER"})
TOKENS_PER_FRAME: Final = 2000
"""Entries per ``tokens`` frame (about 200 bytes each: far below the 4 MiB frame limit)."""
MAX_AUTHORIZING: Final = 32
"""Authorize frames of one connection answered at the same time; more get an ``error`` at once."""
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


@dataclass(frozen=True, slots=True)
class AuthorizationAnswer:
    """The cloud's answer to a site's ``authorize`` frame."""

    allowed: str
    """One of :data:`AUTHORIZE_RESULTS`."""
    whitelist: str | None = None
    """The token's WhitelistType, when the token is known."""
    token: Mapping[str, Any] | None = None
    """``country_code``, ``party_id``, ``uid``, ``type``, ``contract_id``, ``issuer`` (and ``group_id``)."""
    reason: str = ""


SiteAuthorizer = Callable[[str, str, str | None, int | None], Awaitable[AuthorizationAnswer]]
"""``await authorizer(site_id, uid, charger_id, evse_id) -> AuthorizationAnswer``."""
TokenProvider = Callable[[], Awaitable[Sequence[Mapping[str, Any]]]]
"""``await provider()``: the full roaming token list, as ``tokens`` entries."""


@dataclass(eq=False)
class _Connection:
    site_id: str
    ws: web.WebSocketResponse
    ready: bool = False
    """True once the welcome is sent: commands may go out."""
    pending: dict[str, asyncio.Future[CommandResult]] = field(default_factory=dict)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    closing: asyncio.Task[bool] | None = None
    tokens_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Held while a token list goes out, so that a delta never lands between the parts of a full list."""
    authorizing: set[asyncio.Task[None]] = field(default_factory=set)


class SiteHub:
    """The connected sites: their commands and the events they send."""

    def __init__(self) -> None:
        self._connections: dict[str, _Connection] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._listeners: list[Listener] = []
        self._authorizer: SiteAuthorizer | None = None
        self._token_provider: TokenProvider | None = None

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

    def set_authorizer(self, authorizer: SiteAuthorizer | None) -> None:
        """Answer the sites' ``authorize`` frames with ``await authorizer(site_id, uid, charger_id, evse_id)``."""
        self._authorizer = authorizer

    def set_token_provider(self, provider: TokenProvider | None) -> None:
        """Send ``await provider()`` to each site as its full roaming list, right after the welcome."""
        self._token_provider = provider

    async def send_tokens(self, site_id: str, tokens: Sequence[Mapping[str, Any]], full: bool) -> bool:
        """Send roaming tokens to a site: its whole list (``full``) or a delta; False when it is not connected."""
        conn = self._connections.get(site_id)
        if conn is None or not conn.ready:
            return False
        try:
            async with conn.tokens_lock:
                await _send_tokens(conn.ws, tokens, full)
        except ConnectionError:
            return False
        return True

    async def broadcast_tokens(self, tokens: Sequence[Mapping[str, Any]]) -> int:
        """Send a delta to every connected site; how many got it."""
        if not tokens:
            return 0
        sent = await asyncio.gather(*(self.send_tokens(site_id, tokens, False) for site_id in list(self._connections)))
        return sum(sent)

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

    async def _sync_tokens(self, conn: _Connection) -> None:
        """Send the full roaming list to a site that has just been welcomed (nothing without a provider)."""
        if self._token_provider is None:
            return
        async with conn.tokens_lock:  # read under the lock: a delta committed later goes out after the list
            try:
                tokens = await self._token_provider()
            except Exception:
                _LOGGER.exception("Uplink: cannot read the roaming tokens for site %s", conn.site_id)
                return
            await _send_tokens(conn.ws, tokens, True)

    def _authorize(self, conn: _Connection, frame: Mapping[str, Any]) -> None:
        """Answer an ``authorize`` frame in its own task (the eMSP may take seconds)."""
        request_id, uid, charger_id, evse_id = (frame.get(key) for key in ("id", "uid", "charger_id", "evse_id"))
        if not isinstance(request_id, str) or not request_id:
            raise _BadFrameError("authorize without an id")
        if not isinstance(uid, str) or not 1 <= len(uid) <= 36:
            raise _BadFrameError(f"authorize {request_id}: uid must be a string of 1 to 36 characters")
        if charger_id is not None and not isinstance(charger_id, str):
            raise _BadFrameError(f"authorize {request_id}: charger_id must be a string")
        if evse_id is not None and (type(evse_id) is not int or evse_id < 1):
            raise _BadFrameError(f"authorize {request_id}: evse_id must be a positive integer")
        if len(conn.authorizing) >= MAX_AUTHORIZING:
            work = self._reply(conn, {"type": "authorize_result", "id": request_id, "error": "too many at once"})
        else:
            work = self._answer(conn, request_id, uid, charger_id, evse_id)
        task = asyncio.create_task(work)
        conn.authorizing.add(task)
        task.add_done_callback(conn.authorizing.discard)

    async def _answer(
        self, conn: _Connection, request_id: str, uid: str, charger_id: str | None, evse_id: int | None
    ) -> None:
        reply: dict[str, Any] = {"type": "authorize_result", "id": request_id}
        try:
            if self._authorizer is None:
                raise LookupError("this cloud does not authorize badges")
            answer = await self._authorizer(conn.site_id, uid, charger_id, evse_id)
            if answer.allowed not in AUTHORIZE_RESULTS or answer.whitelist not in {None, *WHITELIST_TYPES}:
                raise ValueError(f"the authorizer answered {answer.allowed!r}, whitelist {answer.whitelist!r}")
        except Exception as exc:
            _LOGGER.exception("Uplink: cannot authorize badge %s for site %s", uid, conn.site_id)
            reply["error"] = str(exc) or type(exc).__name__
        else:
            reply |= {"allowed": answer.allowed, "whitelist": answer.whitelist, "reason": answer.reason}
            reply["token"] = dict(answer.token) if answer.token is not None else None
        await self._reply(conn, reply)

    @staticmethod
    async def _reply(conn: _Connection, frame: dict[str, Any]) -> None:
        with contextlib.suppress(ConnectionError):
            await conn.ws.send_str(json.dumps(frame))

    def _detach(self, conn: _Connection) -> None:
        if self._connections.get(conn.site_id) is conn:
            del self._connections[conn.site_id]
        for task in conn.authorizing:
            task.cancel()
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


async def _send_tokens(ws: web.WebSocketResponse, tokens: Sequence[Mapping[str, Any]], full: bool) -> None:
    """A delta in frames of :data:`TOKENS_PER_FRAME`; a full list as the parts of one ``sync``."""
    chunks = [list(tokens[i : i + TOKENS_PER_FRAME]) for i in range(0, len(tokens), TOKENS_PER_FRAME)]
    if not full:
        for chunk in chunks:
            await ws.send_str(json.dumps({"type": "tokens", "full": False, "tokens": chunk}))
        return
    sync = str(uuid.uuid4())
    chunks = chunks or [[]]
    for part, chunk in enumerate(chunks, start=1):
        frame = {"type": "tokens", "full": True, "sync": sync, "part": part, "parts": len(chunks), "tokens": chunk}
        await ws.send_str(json.dumps(frame))


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
        finally:
            _disarm_heartbeat(ws)
        return ws

    async def _serve(self, conn: _Connection) -> None:
        site_id, ws = conn.site_id, conn.ws
        last = await self._store.last_seq(site_id)
        await ws.send_str(json.dumps({"type": "welcome", "site_id": site_id, "last_seq": last}))
        conn.ready = True
        _LOGGER.info("Uplink: site %s connected, at event %d", site_id, last)
        await self._hub._sync_tokens(conn)
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
            elif kind == "authorize":
                self._hub._authorize(conn, frame)
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
    "AUTHORIZE_RESULTS",
    "COMMAND_NAMES",
    "COMMAND_RESULTS",
    "EVENT_KINDS",
    "WHITELIST_TYPES",
    "AuthorizationAnswer",
    "CommandResult",
    "Listener",
    "SiteAuthorizer",
    "SiteHub",
    "TokenProvider",
    "UplinkEvent",
    "UplinkStore",
    "add_uplink_routes",
]


def _disarm_heartbeat(ws: web.WebSocketResponse) -> None:
    """Cancel the heartbeat timer a closed websocket may have re-armed.

    aiohttp 3.14 re-arms it for data read while closing (the site's close frame): the timer then
    outlives the connection until it fires. Harmless, but a closed connection must leave nothing.
    """
    cancel = getattr(ws, "_cancel_heartbeat", None)
    if callable(cancel):
        cancel()
