"""The site's websocket client to the cloud connector (protocol: ``docs/uplink.md``).

One background task keeps one websocket open: hello/welcome, reconcile the queue, stream the
queued events in order with at most 100 unanswered, delete what the cloud acknowledges, run
the cloud's commands through ``command_handler``, keep the roaming token list the cloud syncs,
answer :meth:`UplinkClient.authorize` (the cloud in real time, else the whitelist rules on that
list), reconnect with exponential backoff.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
import json
import logging
import random
from typing import Any
import uuid

import aiohttp

from ..access.roaming import CloudAnswer, RoamingDecision, RoamingToken, decide, list_is_stale, local_decision
from .protocol import (
    AUTHORIZE_TIMEOUT,
    CLOSE_REPLACED,
    COMMAND_NAMES,
    COMMAND_RESULTS,
    MAX_FRAME_BYTES,
    MAX_IN_FLIGHT,
    PROTOCOL_VERSION,
    SOFTWARE,
)
from .queue import AsyncUplinkQueue, QueueError
from .token_list import AsyncRoamingTokenStore, TokenListError

_LOGGER = logging.getLogger(__name__)

CommandHandler = Callable[[str, str, dict[str, Any]], Awaitable[tuple[str, str]]]
"""``await handler(name, charger_id, args) -> (result, detail)``; ``result`` one of ``COMMAND_RESULTS``."""


class UplinkState(StrEnum):
    """Where the client stands (the Home Assistant glue shows it and raises a repair on auth_failed)."""

    STOPPED = "stopped"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    BACKOFF = "backoff"
    AUTH_FAILED = "auth_failed"


class _ProtocolError(Exception):
    """The cloud broke the protocol, or the queue cannot follow it: reconnect."""


class _AuthFailedError(Exception):
    """HTTP 401 at the upgrade."""


class _ReplacedError(Exception):
    """The cloud closed this connection for a newer one with the same token."""


def backoff_delay(
    attempt: int,
    *,
    initial: float = 1.0,
    maximum: float = 300.0,
    jitter: float = 0.2,
    rand: Callable[[], float] = random.random,
) -> float:
    """Delay before reconnect ``attempt`` (0-based): ``initial * 2**attempt`` capped at ``maximum``, ±``jitter``."""
    base = min(initial * 2.0 ** min(attempt, 64), maximum)
    return base * (1.0 + jitter * (2.0 * rand() - 1.0))


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(eq=False)
class _FullSync:
    """The parts of a full token list received so far on this connection."""

    sync: str
    parts: int
    received: int = 0
    tokens: list[RoamingToken] = field(default_factory=list)


@dataclass(eq=False)
class _Link:
    """The state of one connected session."""

    ws: aiohttp.ClientWebSocketResponse
    next_seq: int
    acked: int
    flushed: int
    in_flight: deque[int] = field(default_factory=deque)
    """Generation of each event frame sent and not answered yet, oldest first."""
    generation: int = 0
    """Bumped by each nack that rewinds the stream; frames carry the generation they were read in."""
    rewind_to: int | None = None
    """Where the last fresh nack asks the sender to resume (only the sender moves ``next_seq``)."""
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    send_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    commands: set[asyncio.Task[None]] = field(default_factory=set)
    authorizations: dict[str, asyncio.Future[CloudAnswer | str]] = field(default_factory=dict)
    """Authorize frames waiting for their result: a :class:`CloudAnswer`, or why there is none."""
    tokens_synced: bool = False
    """A complete full token list arrived on this connection: the list is current while it lasts."""
    full_sync: _FullSync | None = None


class UplinkClient:
    """Drains an :class:`AsyncUplinkQueue` to the cloud and runs the cloud's commands."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        url: str,
        token: str,
        queue: AsyncUplinkQueue,
        command_handler: CommandHandler,
        *,
        software: str = SOFTWARE,
        heartbeat: float = 30.0,
        handshake_timeout: float = 30.0,
        command_timeout: float = 25.0,
        max_in_flight: int = MAX_IN_FLIGHT,
        backoff_initial: float = 1.0,
        backoff_max: float = 300.0,
        jitter: float = 0.2,
        rand: Callable[[], float] = random.random,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        roaming: AsyncRoamingTokenStore | None = None,
        authorize_timeout: float = AUTHORIZE_TIMEOUT,
        max_list_age: timedelta | None = None,
        now: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._session = session
        self._url = url
        self._token = token
        self._queue = queue
        self._handler = command_handler
        self._software = software
        self._heartbeat = heartbeat
        self._handshake_timeout = handshake_timeout
        self._command_timeout = command_timeout
        self._max_in_flight = max_in_flight
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._jitter = jitter
        self._rand = rand
        self._sleep = sleep
        self._roaming = roaming
        self._authorize_timeout = authorize_timeout
        self._max_list_age = max_list_age
        self._now = now
        self._state = UplinkState.STOPPED
        self._site_id: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._link: _Link | None = None
        self._welcomed = False
        self._listeners: list[Callable[[], None]] = []

    # -- what Home Assistant shows ------------------------------------------------------------

    @property
    def state(self) -> UplinkState:
        """Connection state."""
        return self._state

    @property
    def connected(self) -> bool:
        """True while a welcomed session is up."""
        return self._state is UplinkState.CONNECTED

    @property
    def site_id(self) -> str | None:
        """The site id the cloud gave in its last welcome."""
        return self._site_id

    @property
    def queue_length(self) -> int:
        """Events not acknowledged yet."""
        return self._queue.length

    @property
    def last_sync(self) -> datetime | None:
        """When the cloud last confirmed events (``datetime`` or None)."""
        return self._queue.last_ack_time

    @property
    def roaming(self) -> AsyncRoamingTokenStore | None:
        """The synced roaming token list (its ``count``, ``synced_at``, ``fresh_at``), if the client keeps one."""
        return self._roaming

    def add_listener(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback()`` when the state, queue length or last sync may have changed."""
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback)

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the background task (no-op when running)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"cariflex uplink {self._url}")

    async def stop(self) -> None:
        """Close the connection and end every task of the client."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._set_state(UplinkState.STOPPED)

    # -- roaming badges -----------------------------------------------------------------------

    @property
    def roaming_list_current(self) -> bool:
        """Whether the roaming list is the cloud's current one (connected, and the full list received)."""
        link = self._link
        return link is not None and link.tokens_synced

    async def authorize(
        self, uid: str, charger_id: str | None = None, timeout: float | None = None, *, evse_id: int | None = None
    ) -> RoamingDecision:
        """Decide whether the roaming badge ``uid`` may charge at ``charger_id`` (never raises).

        ALWAYS and ALLOWED tokens of the synced list are decided at once from the list. Otherwise
        the cloud is asked when connected and given ``timeout`` s (default ``authorize_timeout``);
        without its answer the whitelist rules apply to the list (:func:`..access.roaming.decide`).
        """
        entry, stale = await self._list_entry(uid)
        local = local_decision(entry)
        if local is not None:
            return local
        answer = await self._ask_cloud(
            uid, charger_id, evse_id, self._authorize_timeout if timeout is None else timeout
        )
        if isinstance(answer, str):
            why = f"{answer}; the roaming list is stale" if stale else answer
            return decide(entry, None, unanswered=why)
        return decide(entry, answer)

    async def _list_entry(self, uid: str) -> tuple[RoamingToken | None, bool]:
        """The list's entry for ``uid`` (None when not there or the list is stale) and whether it is stale."""
        if self._roaming is None:
            return None, False
        if not self.roaming_list_current and list_is_stale(self._roaming.fresh_at, self._now(), self._max_list_age):
            return None, True
        try:
            return await self._roaming.lookup(uid), False
        except (TokenListError, ValueError):
            _LOGGER.exception("Uplink: cannot read the roaming list for badge %s", uid)
            return None, False

    async def _ask_cloud(
        self, uid: str, charger_id: str | None, evse_id: int | None, timeout: float
    ) -> CloudAnswer | str:
        """The cloud's answer, or why there is none."""
        link = self._link
        if link is None:
            return "not connected to the cloud"
        request_id = str(uuid.uuid4())
        future: asyncio.Future[CloudAnswer | str] = asyncio.get_running_loop().create_future()
        link.authorizations[request_id] = future
        frame: dict[str, Any] = {"type": "authorize", "id": request_id, "uid": uid, "charger_id": charger_id}
        if evse_id is not None:
            frame["evse_id"] = evse_id
        try:
            await self._send(link, frame)
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            return f"no answer from the cloud within {timeout:g} s"
        except ConnectionError:
            return "connection to the cloud lost"
        finally:
            link.authorizations.pop(request_id, None)

    def _authorize_result(self, link: _Link, frame: dict[str, Any]) -> None:
        future = link.authorizations.get(str(frame.get("id")))
        if future is None or future.done():
            _LOGGER.debug("Uplink %s: result for an unknown or expired authorize: %r", self._url, frame)
            return
        if "error" in frame:
            future.set_result(f"the cloud could not decide: {frame['error']}")
            return
        try:
            future.set_result(CloudAnswer.from_wire(frame))
        except ValueError as exc:
            future.set_result(f"unreadable answer from the cloud: {exc}")

    async def _on_tokens(self, link: _Link, frame: dict[str, Any]) -> None:
        """Apply a ``tokens`` frame to the list (a delta, or one part of a full list)."""
        full, entries = frame.get("full"), frame.get("tokens")
        if not isinstance(full, bool) or not isinstance(entries, list):
            _LOGGER.warning("Uplink %s: ignoring a malformed tokens frame", self._url)
            link.full_sync = None
            return
        tokens: list[RoamingToken] = []
        for entry in entries:
            try:
                tokens.append(RoamingToken.from_wire(entry if isinstance(entry, dict) else {}))
            except ValueError as exc:
                _LOGGER.warning("Uplink %s: skipping a roaming token: %s", self._url, exc)
        if self._roaming is None:
            return
        try:
            if not full:
                await self._roaming.upsert(tokens, self._now())
                return
            sync, part, parts = frame.get("sync"), frame.get("part"), frame.get("parts")
            if not isinstance(sync, str) or type(part) is not int or type(parts) is not int or not 1 <= part <= parts:
                _LOGGER.warning("Uplink %s: ignoring a full token list part without sync/part/parts", self._url)
                link.full_sync = None
                return
            staged = link.full_sync
            if part == 1:
                staged = link.full_sync = _FullSync(sync, parts)
            elif staged is None or (staged.sync, staged.parts, staged.received) != (sync, parts, part - 1):
                _LOGGER.warning("Uplink %s: full token list part %d/%d out of order, dropped", self._url, part, parts)
                link.full_sync = None
                return
            staged.tokens.extend(tokens)
            staged.received = part
            if part == parts:
                link.full_sync = None
                await self._roaming.replace(staged.tokens, self._now())
                link.tokens_synced = True
                _LOGGER.info("Uplink %s: roaming list synced, %d tokens", self._url, len(staged.tokens))
        except TokenListError:
            _LOGGER.exception("Uplink %s: cannot store the roaming tokens", self._url)
        finally:
            self._notify()

    async def _end_link(self, link: _Link) -> None:
        """Answer the authorizations still waiting, and remember until when the list was current."""
        for future in link.authorizations.values():
            if not future.done():
                future.set_result("connection to the cloud lost")
        if link.tokens_synced and self._roaming is not None:
            try:
                await self._roaming.mark_fresh(self._now())
            except TokenListError:
                _LOGGER.exception("Uplink %s: cannot store the roaming list's time", self._url)

    # -- internals ----------------------------------------------------------------------------

    def _notify(self) -> None:
        for callback in list(self._listeners):
            try:
                callback()
            except Exception:
                _LOGGER.exception("Uplink listener %r failed", callback)

    def _set_state(self, state: UplinkState) -> None:
        if state is not self._state:
            self._state = state
            self._notify()

    def _on_append(self) -> None:
        if self._link is not None:
            self._link.wake.set()
        self._notify()

    async def _run(self) -> None:
        unsubscribe = self._queue.on_append(self._on_append)
        attempt = 0
        try:
            while True:
                # auth_failed stays until a welcome, so that the repair issue does not flicker
                auth_failed = self._state is UplinkState.AUTH_FAILED
                if not auth_failed:
                    self._set_state(UplinkState.CONNECTING)
                self._welcomed = slow = False
                try:
                    await self._connect_once()
                except _AuthFailedError:
                    _LOGGER.error("Uplink %s refused the site token (HTTP 401)", self._url)
                    auth_failed = slow = True
                except _ReplacedError:
                    _LOGGER.warning("Uplink %s: another site connected with this token and replaced us", self._url)
                    slow = True
                except (aiohttp.ClientError, OSError, TimeoutError, _ProtocolError, QueueError) as exc:
                    _LOGGER.info("Uplink %s: %s", self._url, exc or type(exc).__name__)
                except Exception:
                    _LOGGER.exception("Uplink %s: unexpected error, reconnecting", self._url)
                if self._welcomed:
                    attempt, auth_failed = 0, False
                delay = backoff_delay(
                    64 if slow else attempt,
                    initial=self._backoff_initial,
                    maximum=self._backoff_max,
                    jitter=self._jitter,
                    rand=self._rand,
                )
                attempt += 1
                self._set_state(UplinkState.AUTH_FAILED if auth_failed else UplinkState.BACKOFF)
                await self._sleep(delay)
        finally:
            unsubscribe()

    async def _connect_once(self) -> None:
        """One connection, until it closes or breaks (always by an exception)."""
        try:
            async with asyncio.timeout(self._handshake_timeout):
                ws = await self._session.ws_connect(
                    self._url,
                    headers={"Authorization": f"Bearer {self._token}"},
                    heartbeat=self._heartbeat,
                    max_msg_size=MAX_FRAME_BYTES,
                )
        except aiohttp.WSServerHandshakeError as exc:
            if exc.status == 401:
                raise _AuthFailedError from exc
            raise
        link: _Link | None = None
        try:
            await ws.send_json({"type": "hello", "protocol": PROTOCOL_VERSION, "software": self._software})
            async with asyncio.timeout(self._handshake_timeout):
                welcome = await _receive_json(ws)
            last_seq = welcome.get("last_seq")
            site_id = welcome.get("site_id")
            if welcome.get("type") != "welcome" or type(last_seq) is not int or last_seq < 0:
                raise _ProtocolError(f"expected a welcome, got {welcome!r}")
            if not isinstance(site_id, str):
                raise _ProtocolError(f"welcome without a site id: {welcome!r}")
            await self._queue.reconcile(last_seq)
            self._site_id = site_id
            link = self._link = _Link(ws, next_seq=last_seq + 1, acked=last_seq, flushed=last_seq)
            self._welcomed = True
            self._set_state(UplinkState.CONNECTED)
            _LOGGER.info("Uplink %s: connected as site %s, cloud at event %d", self._url, site_id, last_seq)
            await self._serve(link)
        finally:
            self._link = None
            if link is not None:
                for task in link.commands:
                    task.cancel()
                await asyncio.gather(*link.commands, return_exceptions=True)
                await self._end_link(link)
            await ws.close()
            _disarm_heartbeat(ws)

    async def _serve(self, link: _Link) -> None:
        """Send and receive until the connection closes or breaks."""
        sender = asyncio.create_task(self._send_loop(link))
        receiver = asyncio.create_task(self._receive_loop(link))
        try:
            await asyncio.wait((sender, receiver), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sender, receiver):
                task.cancel()
            results = await asyncio.gather(sender, receiver, return_exceptions=True)
        for result in results:
            if isinstance(result, Exception):
                raise result

    async def _send_loop(self, link: _Link) -> None:
        while True:
            link.wake.clear()
            if link.rewind_to is not None:
                link.next_seq, link.rewind_to = link.rewind_to, None
            if link.acked > link.flushed:
                acked = link.acked
                await self._queue.ack(acked)
                link.flushed = acked
                self._notify()
            room = self._max_in_flight - len(link.in_flight)
            if room > 0:
                generation, start = link.generation, link.next_seq
                events = await self._queue.pending(start - 1, room)
                if events and events[0].seq != start:
                    raise _ProtocolError(f"the queue no longer holds event {start}; reconnecting")
                # a nack during these awaits leaves the rest of the batch stale: it still goes out,
                # tagged with its old generation, and the nacks it gets are ignored
                for event in events:
                    link.in_flight.append(generation)
                    link.next_seq = event.seq + 1
                    await self._send(link, event.frame())
                if events:
                    continue
            await link.wake.wait()

    async def _receive_loop(self, link: _Link) -> None:
        while True:
            frame = await _receive_json(link.ws)
            kind = frame.get("type")
            if kind in ("ack", "nack"):
                if not link.in_flight:
                    raise _ProtocolError(f"{kind} without an event in flight: {frame!r}")
                generation = link.in_flight.popleft()
                if kind == "ack":
                    seq = frame.get("seq")
                    if type(seq) is not int:
                        raise _ProtocolError(f"bad ack {frame!r}")
                    link.acked = max(link.acked, seq)
                    if len(link.in_flight) <= self._max_in_flight // 2:
                        link.wake.set()
                else:
                    expected = frame.get("expected")
                    if type(expected) is not int:
                        raise _ProtocolError(f"bad nack {frame!r}")
                    if generation == link.generation:
                        _LOGGER.info("Uplink %s: the cloud expects event %d, resending from there", self._url, expected)
                        link.generation += 1
                        link.rewind_to = expected
                        link.wake.set()
            elif kind == "command":
                task = asyncio.create_task(self._run_command(link, frame))
                link.commands.add(task)
                task.add_done_callback(link.commands.discard)
            elif kind == "authorize_result":
                self._authorize_result(link, frame)
            elif kind == "tokens":
                await self._on_tokens(link, frame)
            else:
                _LOGGER.debug("Uplink %s: ignoring frame %r", self._url, frame)

    async def _run_command(self, link: _Link, frame: dict[str, Any]) -> None:
        command_id = frame.get("id")
        name = frame.get("name")
        charger_id = frame.get("charger_id")
        args = frame.get("args", {})
        if not isinstance(command_id, str):
            _LOGGER.warning("Uplink %s: command without an id: %r", self._url, frame)
            return
        if name not in COMMAND_NAMES:
            result, detail = "rejected", f"unknown command {name!r}"
        elif not isinstance(charger_id, str) or not isinstance(args, dict):
            result, detail = "rejected", "charger_id must be a string and args an object"
        else:
            result, detail = await self._call_handler(str(name), charger_id, args)
        with contextlib.suppress(ConnectionError):
            await self._send(link, {"type": "command_result", "id": command_id, "result": result, "detail": detail})

    async def _call_handler(self, name: str, charger_id: str, args: dict[str, Any]) -> tuple[str, str]:
        try:
            async with asyncio.timeout(self._command_timeout):
                result, detail = await self._handler(name, charger_id, args)
        except TimeoutError:
            return "timeout", f"no answer within {self._command_timeout:g} s"
        except Exception as exc:
            _LOGGER.exception("Uplink command %s for %s failed", name, charger_id)
            return "failed", str(exc) or type(exc).__name__
        if result not in COMMAND_RESULTS:
            return "failed", f"the site answered {result!r}"
        return result, str(detail)

    async def _send(self, link: _Link, frame: dict[str, Any]) -> None:
        async with link.send_lock:
            await link.ws.send_str(json.dumps(frame, separators=(",", ":")))


async def _receive_json(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    """The next text frame as a JSON object; raises when the connection ends or breaks."""
    msg = await ws.receive()
    if msg.type is aiohttp.WSMsgType.TEXT:
        try:
            frame = json.loads(msg.data)
        except ValueError as exc:
            raise _ProtocolError(f"frame is not JSON: {msg.data[:200]!r}") from exc
        if not isinstance(frame, dict):
            raise _ProtocolError(f"frame is not an object: {msg.data[:200]!r}")
        return frame
    if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
        if ws.close_code == CLOSE_REPLACED:
            raise _ReplacedError
        raise ConnectionError(f"closed by the cloud (code {ws.close_code}, {msg.extra or ''})")
    if msg.type is aiohttp.WSMsgType.ERROR:
        raise ConnectionError(f"websocket error: {msg.data}")
    raise _ProtocolError(f"unexpected {msg.type.name} frame")


def _disarm_heartbeat(ws: aiohttp.ClientWebSocketResponse) -> None:
    """Cancel the heartbeat timer a closed websocket may have re-armed.

    aiohttp 3.14 re-arms it for data read while closing (the peer's close frame): the timer then
    outlives the connection until it fires. Harmless, but a stopped client must leave nothing.
    """
    cancel = getattr(ws, "_cancel_heartbeat", None)
    if callable(cancel):
        cancel()
