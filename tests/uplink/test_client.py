"""The uplink client against scripted clouds: a real aiohttp server whose every connection runs a script.

The normal paths run against the real cloud endpoint in ``tests/cloud/test_uplink.py``; here the
cloud misbehaves on purpose (bad welcome, stray acks, a nack storm, odd commands...).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
import json
import logging
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
import pytest

from custom_components.cariflex.uplink import AsyncUplinkQueue, UplinkClient, UplinkState, backoff_delay
from tests.conftest import free_port, wait_for

AT = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
FAST: dict[str, Any] = {"backoff_initial": 0.02, "backoff_max": 0.1, "handshake_timeout": 2.0, "rand": lambda: 0.5}
Script = Callable[[web.WebSocketResponse], Awaitable[None]]


class Peer:
    """A scripted cloud on 127.0.0.1: ``script(ws)`` runs after the site's hello."""

    def __init__(self, script: Script, *, status: int = 0) -> None:
        self.script = script
        self.status = status
        self.hellos: list[dict[str, Any]] = []
        self.headers: list[str | None] = []
        self.port = free_port()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/uplink/v1"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/uplink/v1", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.headers.append(request.headers.get("Authorization"))
        if self.status:
            return web.Response(status=self.status)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.hellos.append(await ws.receive_json())
        await self.script(ws)
        await ws.close()
        return ws


async def events_of(ws: web.WebSocketResponse) -> AsyncIterator[dict[str, Any]]:
    """The event frames a site sends, until it closes."""
    async for msg in ws:
        frame = json.loads(msg.data)
        if frame["type"] == "event":
            yield frame


def welcome(last_seq: int = 0) -> dict[str, Any]:
    return {"type": "welcome", "site_id": "site-x", "last_seq": last_seq}


async def wait_closed(ws: web.WebSocketResponse) -> None:
    async for _ in ws:
        pass


async def stop_between_attempts(client: UplinkClient) -> None:
    """Stop the client while it is connected or waiting, not in the middle of an upgrade.

    aiohttp 3.11 leaves its response unclosed when a request is cancelled inside ``req.send``
    (a warning that Home Assistant's test plugin turns into an error).
    """
    await wait_for(lambda: client.state is not UplinkState.CONNECTING)
    await client.stop()


@pytest.fixture
async def queue(tmp_path: Path) -> AsyncIterator[AsyncUplinkQueue]:
    instance = await AsyncUplinkQueue.open(tmp_path / "queue.db")
    yield instance
    await instance.close()


Handler = Callable[[str, str, dict[str, Any]], Awaitable[tuple[str, str]]]


async def accept(name: str, charger_id: str, args: dict[str, Any]) -> tuple[str, str]:
    return "accepted", ""


@pytest.fixture
async def run(queue: AsyncUplinkQueue) -> AsyncIterator[Callable[..., Awaitable[tuple[Peer, UplinkClient]]]]:
    """``peer, client = await run(script, **client_kwargs)``: both started, stopped at the end."""
    started: list[tuple[Peer, UplinkClient]] = []
    async with aiohttp.ClientSession() as session:

        async def start(
            script: Script, *, status: int = 0, handler: Handler = accept, **kwargs: Any
        ) -> tuple[Peer, UplinkClient]:
            peer = Peer(script, status=status)
            await peer.start()
            client = UplinkClient(session, peer.url, "secret", queue, handler, **{**FAST, **kwargs})
            started.append((peer, client))
            client.start()
            return peer, client

        yield start
        for peer, client in started:
            await stop_between_attempts(client)
            await peer.stop()


def test_backoff_delay() -> None:
    assert [backoff_delay(n, rand=lambda: 0.5) for n in range(11)] == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]
    assert backoff_delay(0, rand=lambda: 0.0) == pytest.approx(0.8)
    assert backoff_delay(3, rand=lambda: 1.0) == pytest.approx(9.6)
    assert backoff_delay(10_000, rand=lambda: 1.0) == pytest.approx(360)
    assert backoff_delay(2, initial=0.5, maximum=1.5, jitter=0.0) == 1.5


async def test_hello_and_welcome(run: Any, queue: AsyncUplinkQueue) -> None:
    async def script(ws: web.WebSocketResponse) -> None:
        await ws.send_json(welcome())
        await wait_closed(ws)

    peer, client = await run(script, software="cariflex/9.9")
    await wait_for(lambda: client.connected)
    assert peer.hellos == [{"type": "hello", "protocol": 1, "software": "cariflex/9.9"}]
    assert peer.headers == ["Bearer secret"]
    assert client.site_id == "site-x"
    assert client.state is UplinkState.CONNECTED
    await client.stop()
    assert client.state.value == "stopped"
    client.start()
    client.start()  # already running: no second task
    await wait_for(lambda: client.connected)
    assert len(peer.hellos) == 2


async def test_backoff_grows_while_the_cloud_is_unreachable_and_resets_after_a_welcome(
    queue: AsyncUplinkQueue,
) -> None:
    delays: list[float] = []
    states: set[UplinkState] = set()

    async def sleep(delay: float) -> None:
        delays.append(delay)
        states.add(client.state)
        await asyncio.sleep(0.001)

    async def script(ws: web.WebSocketResponse) -> None:
        await ws.send_json(welcome())  # and close at once

    peer = Peer(script)
    async with aiohttp.ClientSession() as session:
        client = UplinkClient(session, peer.url, "secret", queue, accept, **{**FAST, "sleep": sleep})
        client.start()
        await wait_for(lambda: len(delays) >= 6)
        assert delays[:6] == pytest.approx([0.02, 0.04, 0.08, 0.1, 0.1, 0.1])
        assert states == {UplinkState.BACKOFF}
        await peer.start()
        count = len(delays)
        await wait_for(lambda: len(peer.hellos) >= 3)
        await stop_between_attempts(client)
        await peer.stop()
    assert len(delays) > count + 1
    assert set(delays[count + 1 :]) == {0.02}  # reset by every welcome


@pytest.mark.parametrize(
    "first_frame",
    [
        {"type": "ack", "seq": 0},
        {"type": "welcome", "site_id": "site-x", "last_seq": -1},
        {"type": "welcome", "site_id": "site-x", "last_seq": "0"},
        {"type": "welcome", "last_seq": 0},
        "not json",
        "[]",
        b"binary",
    ],
)
async def test_bad_welcome_means_reconnect(run: Any, first_frame: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)

    async def script(ws: web.WebSocketResponse) -> None:
        if isinstance(first_frame, bytes):
            await ws.send_bytes(first_frame)
        elif isinstance(first_frame, str):
            await ws.send_str(first_frame)
        else:
            await ws.send_json(first_frame)
        await wait_closed(ws)

    peer, client = await run(script)
    await wait_for(lambda: len(peer.hellos) >= 2)
    assert client.site_id is None
    assert client.state is not UplinkState.CONNECTED


async def test_no_welcome_in_time(run: Any) -> None:
    async def script(ws: web.WebSocketResponse) -> None:
        await wait_closed(ws)

    peer, client = await run(script, handshake_timeout=0.1)
    await wait_for(lambda: len(peer.hellos) >= 2)
    assert not client.connected


async def test_http_errors_at_the_upgrade(run: Any) -> None:
    peer, client = await run(lambda ws: asyncio.sleep(0), status=503)
    await wait_for(lambda: len(peer.headers) >= 2)
    assert client.state is not UplinkState.AUTH_FAILED  # only a 401 means a bad token
    assert client.site_id is None


@pytest.mark.parametrize(
    "reply",
    [
        {"type": "ack", "seq": "1"},
        {"type": "nack", "expected": None},
        {"type": "ack", "seq": 1, "extra": "but twice"},
    ],
)
async def test_bad_replies_mean_reconnect(run: Any, queue: AsyncUplinkQueue, reply: dict[str, Any]) -> None:
    await queue.append("status", {"n": 0}, AT)

    async def script(ws: web.WebSocketResponse) -> None:
        await ws.send_json(welcome())
        async for _ in events_of(ws):
            await ws.send_json(reply)
            if "extra" in reply:
                await ws.send_json(reply)  # a second answer to the same frame

    peer, _client = await run(script)
    await wait_for(lambda: len(peer.hellos) >= 2)


async def test_a_nack_storm_rewinds_once(run: Any, queue: AsyncUplinkQueue) -> None:
    """The cloud answers the whole first window with nack(1): the site resends the stream once, not 100 times."""
    await queue.append_many(("status", {"n": n}, AT) for n in range(150))
    received: list[int] = []

    async def script(ws: web.WebSocketResponse) -> None:
        await ws.send_json(welcome())
        async for frame in events_of(ws):
            received.append(frame["seq"])
            if len(received) <= 100:
                await ws.send_json({"type": "nack", "expected": 1})
            else:
                await ws.send_json({"type": "ack", "seq": frame["seq"]})

    _, client = await run(script)
    await wait_for(lambda: queue.length == 0)
    assert received == [*range(1, 101), *range(1, 151)]
    assert client.connected


async def test_nack_for_an_event_the_site_no_longer_holds(run: Any, queue: AsyncUplinkQueue) -> None:
    await queue.append_many(("status", {"n": n}, AT) for n in range(3))
    sessions: list[list[int]] = []

    async def script(ws: web.WebSocketResponse) -> None:
        last = queue.queue.pending()[0].seq - 1 if queue.length else queue.last_seq
        await ws.send_json(welcome(last))
        sessions.append([])
        async for frame in events_of(ws):
            sessions[-1].append(frame["seq"])
            if len(sessions) == 1 and frame["seq"] == 3:
                await ws.send_json({"type": "nack", "expected": 1})  # after acking 1 and 2
            else:
                await ws.send_json({"type": "ack", "seq": frame["seq"]})

    _, _client = await run(script)
    await wait_for(lambda: queue.length == 0 and len(sessions) == 2)
    assert sessions == [[1, 2, 3], [3]]


async def test_commands_the_site_cannot_run(run: Any, caplog: pytest.LogCaptureFixture) -> None:
    results: list[dict[str, Any]] = []
    calls: list[str] = []

    async def handler(name: str, charger_id: str, args: dict[str, Any]) -> tuple[str, str]:
        calls.append(name)
        return "accepted", "done"

    async def script(ws: web.WebSocketResponse) -> None:
        await ws.send_json(welcome())
        await ws.send_json({"type": "news", "text": "ignored"})
        await ws.send_json({"type": "command", "name": "stop_session", "charger_id": "CP1", "args": {}})  # no id
        commands: list[dict[str, Any]] = [
            {"name": "self_destruct", "charger_id": "CP1", "args": {}},
            {"name": "stop_session", "charger_id": 7, "args": {}},
            {"name": "stop_session", "charger_id": "CP1", "args": []},
            {"name": "stop_session", "charger_id": "CP1"},
        ]
        for index, command in enumerate(commands):
            await ws.send_json({"type": "command", "id": f"c{index}", **command})
        async for msg in ws:
            results.append(json.loads(msg.data))

    _, _client = await run(script, handler=handler)
    await wait_for(lambda: len(results) == 4)
    by_id = {result["id"]: (result["result"], result["detail"]) for result in results}
    assert by_id == {
        "c0": ("rejected", "unknown command 'self_destruct'"),
        "c1": ("rejected", "charger_id must be a string and args an object"),
        "c2": ("rejected", "charger_id must be a string and args an object"),
        "c3": ("accepted", "done"),
    }
    assert calls == ["stop_session"]
    assert "command without an id" in caplog.text


async def test_queue_failure_means_reconnect(
    run: Any, queue: AsyncUplinkQueue, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    queue.queue.close()  # the file is gone from under the client

    async def script(ws: web.WebSocketResponse) -> None:
        await ws.send_json(welcome())
        await wait_closed(ws)

    peer, client = await run(script)
    await wait_for(lambda: len(peer.hellos) >= 2)
    assert not client.connected
    assert "is closed" in caplog.text


async def test_listeners_hear_about_state_and_queue(run: Any, queue: AsyncUplinkQueue) -> None:
    async def script(ws: web.WebSocketResponse) -> None:
        await ws.send_json(welcome())
        async for frame in events_of(ws):
            await ws.send_json({"type": "ack", "seq": frame["seq"]})

    _peer, client = await run(script)
    seen: list[tuple[UplinkState, int]] = []
    unsubscribe = client.add_listener(lambda: seen.append((client.state, client.queue_length)))
    await wait_for(lambda: client.connected)
    await queue.append("status", {}, AT)
    # The queue's length drops in its worker thread; the listener hears of it once the ack returns.
    await wait_for(lambda: bool(seen) and seen[-1] == (UplinkState.CONNECTED, 0))
    assert (UplinkState.CONNECTED, 1) in seen
    assert client.last_sync is not None
    unsubscribe()
    count = len(seen)
    await queue.append("status", {}, AT)
    await wait_for(lambda: client.queue_length == 0)
    assert len(seen) == count


async def test_a_frame_over_the_size_limit_breaks_the_connection(run: Any) -> None:
    async def script(ws: web.WebSocketResponse) -> None:
        await ws.send_json(welcome())
        await ws.send_str(json.dumps({"type": "news", "text": "x" * (4 << 20)}))
        await wait_closed(ws)

    peer, _client = await run(script)
    await wait_for(lambda: len(peer.hellos) >= 2)


async def test_unexpected_errors_do_not_end_the_client(run: Any, caplog: pytest.LogCaptureFixture) -> None:
    async def script(ws: web.WebSocketResponse) -> None:
        await ws.send_json(welcome(1 << 64))  # more than SQLite can store
        await wait_closed(ws)

    peer, client = await run(script)

    def broken() -> None:
        raise RuntimeError("listener bug")

    client.add_listener(broken)
    await wait_for(lambda: len(peer.hellos) >= 2)
    assert "unexpected error, reconnecting" in caplog.text
    assert "listener bug" in caplog.text
