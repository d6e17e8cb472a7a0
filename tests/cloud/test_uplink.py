"""Both ends of the uplink together: the site's queue and client against the cloud endpoint.

Real aiohttp servers on 127.0.0.1, real SQLite files for the site queue and the cloud store.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import logging
import shutil
from typing import Any

import aiohttp
import pytest

from cloud_connector.uplink import CommandResult, UplinkEvent
from custom_components.cariflex.uplink import UplinkState
from tests.cloud.uplink_harness import AT, SITE_A, SITE_B, Cloud, Site, Sites, event_frame
from tests.conftest import free_port, wait_for


@pytest.fixture
async def session(socket_enabled: None) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client_session:
        yield client_session


@pytest.fixture
async def cloud(tmp_path: Any, socket_enabled: None) -> AsyncIterator[Cloud]:
    """A running cloud (start it again after ``stop`` to simulate a restart)."""
    instance = Cloud(tmp_path / "cloud.db", free_port())
    await instance.start()
    yield instance
    await instance.stop()


@pytest.fixture
async def sites(session: aiohttp.ClientSession, tmp_path: Any) -> AsyncIterator[Sites]:
    factory = Sites(session, tmp_path)
    yield factory
    await factory.close_all()


async def drained(site: Site, timeout: float = 10.0) -> None:
    """Wait until the cloud acknowledged every queued event."""
    await wait_for(lambda: site.client.connected and site.queue.length == 0, timeout)


async def raw_connect(
    session: aiohttp.ClientSession, cloud: Cloud, token: str = SITE_A[1]
) -> tuple[aiohttp.ClientWebSocketResponse, dict[str, Any]]:
    """A hand-driven site connection: hello sent, welcome returned."""
    ws = await session.ws_connect(cloud.url, headers={"Authorization": f"Bearer {token}"})
    await ws.send_json({"type": "hello", "protocol": 1, "software": "test"})
    welcome = await ws.receive_json(timeout=5)
    return ws, welcome


async def closed_with(ws: aiohttp.ClientWebSocketResponse) -> int | None:
    """Read until the cloud closes; its close code."""
    while True:
        msg = await ws.receive(timeout=5)
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
            return ws.close_code


# -- store and forward ----------------------------------------------------------------------------


async def test_cloud_down_then_back_applies_every_event_once_in_order(tmp_path: Any, sites: Sites) -> None:
    cloud = Cloud(tmp_path / "cloud.db", free_port())
    site = await sites(cloud)
    await wait_for(lambda: site.client.state is UplinkState.BACKOFF)
    await site.append(250)  # more than two windows of 100 in flight
    assert site.queue.length == 250
    assert site.client.last_sync is None
    assert not site.client.connected
    await cloud.start()
    try:
        await drained(site)
        assert cloud.applied_ns() == list(range(250))
        assert [seq for seq, _, _ in cloud.effects()] == list(range(1, 251))
        assert site.client.site_id == "site-a"
        assert site.client.last_sync is not None
        assert site.client.queue_length == 0
        assert await cloud.store.last_seq("site-a") == 250
        # live events go straight through
        await site.append(5, start=250)
        await drained(site)
        assert cloud.applied_ns() == list(range(255))
    finally:
        await cloud.stop()


async def test_server_restart_mid_stream_loses_and_doubles_nothing(cloud: Cloud, sites: Sites) -> None:
    reached = asyncio.Event()

    def watch(site_id: str, event: UplinkEvent) -> None:
        if event.seq >= 300:
            reached.set()

    cloud.hub.add_listener(watch)
    site = await sites(cloud, start=False)
    await site.fill(1000)
    site.client.start()
    await asyncio.wait_for(reached.wait(), 10)
    await cloud.stop()
    stopped_at = len(cloud.applied_ns())
    assert stopped_at < 1000, "the stream ended before the restart: the test proves nothing"
    await wait_for(lambda: not site.client.connected)
    await cloud.start()
    await drained(site)
    assert cloud.applied_ns() == list(range(1000))


async def test_site_restart_continues_the_sequence(cloud: Cloud, sites: Sites) -> None:
    site = await sites(cloud)
    await site.append(50)
    await drained(site)
    await sites.close(site)

    site = await sites(cloud, start=False)  # same file, new queue object
    assert site.queue.last_seq == 50
    event = await site.queue.append("status", {"n": 50}, AT)
    assert event.seq == 51
    await site.append(9, start=51)
    site.client.start()
    await drained(site)
    assert [seq for seq, _, _ in cloud.effects()] == list(range(1, 61))
    assert cloud.applied_ns() == list(range(60))


async def test_acks_are_flushed_while_streaming(cloud: Cloud, sites: Sites) -> None:
    """The queue shrinks during a long stream, not only at its end."""
    site = await sites(cloud, start=False)
    await site.fill(600)
    lengths: list[int] = []
    site.client.add_listener(lambda: lengths.append(site.queue.length))
    site.client.start()
    await drained(site)
    # The queue's length drops in its worker thread; listeners hear of it once the ack returns.
    await wait_for(lambda: lengths[-1] == 0)
    assert any(0 < length < 600 for length in lengths)


# -- reconciliation after a reset on either side --------------------------------------------------


async def test_corrupt_site_queue_starts_afresh_and_is_renumbered(
    cloud: Cloud, sites: Sites, caplog: pytest.LogCaptureFixture
) -> None:
    site = await sites(cloud)
    await site.append(40)
    await drained(site)
    await sites.close(site)
    site.path.write_bytes(b"this is not a database" * 100)

    site = await sites(cloud, start=False)
    assert len(site.queue.queue.set_aside) == 1
    await site.append(10, start=40)
    assert [e.seq for e in await site.queue.pending()] == list(range(1, 11))
    site.client.start()
    await drained(site)
    # without renumbering, events 1..10 would have been taken for duplicates and lost
    assert cloud.applied_ns() == list(range(50))
    assert [seq for seq, _, _ in cloud.effects()] == list(range(1, 51))
    assert site.queue.last_seq == 50
    assert "never synced" in caplog.text


async def test_restored_site_backup_neither_loses_nor_doubles(cloud: Cloud, sites: Sites) -> None:
    site = await sites(cloud, start=False)
    await site.append(20)
    site.client.start()
    await drained(site)
    await site.client.stop()
    await site.append(10, start=20)  # 21..30 queued, not sent yet
    backup = site.path.with_name("backup.db")
    await asyncio.to_thread(_backup, site.path, backup)
    site.client.start()
    await drained(site)
    await site.append(15, start=30)  # 31..45 applied
    await drained(site)
    await sites.close(site)

    shutil.copy(backup, site.path)  # Home Assistant restores the backup: counter 30, 21..30 queued
    for suffix in ("-wal", "-shm"):
        site.path.with_name(site.path.name + suffix).unlink(missing_ok=True)
    site = await sites(cloud, start=False)
    assert site.queue.last_seq == 30
    await site.append(5, start=100)  # new events after the restore
    site.client.start()
    await drained(site)
    # 21..30 were already applied: known ids, no second effect; the new events are not lost
    assert cloud.applied_ns() == [*range(45), *range(100, 105)]
    assert site.queue.last_seq == 60


def _backup(source: Any, target: Any) -> None:
    import sqlite3

    src, dst = sqlite3.connect(source), sqlite3.connect(target)
    with src, dst:
        src.backup(dst)
    src.close()
    dst.close()


async def test_restored_cloud_backup_renumbers_the_queue(cloud: Cloud, sites: Sites) -> None:
    site = await sites(cloud)
    await site.append(10)
    await drained(site)
    await cloud.stop()
    backup = cloud.path.with_name("cloud-backup.db")
    await asyncio.to_thread(_backup, cloud.path, backup)
    await cloud.start()
    await site.append(10, start=10)  # 11..20 applied, then lost with the restore
    await drained(site)
    await cloud.stop()
    shutil.copy(backup, cloud.path)
    for suffix in ("-wal", "-shm"):
        cloud.path.with_name(cloud.path.name + suffix).unlink(missing_ok=True)
    await wait_for(lambda: not site.client.connected)
    await site.append(5, start=20)  # queued while the cloud is down
    await cloud.start()
    await drained(site)
    # 10..19 are lost with the cloud's backup; what the site still held goes on at seq 11
    assert cloud.applied_ns() == [*range(10), *range(20, 25)]
    assert [seq for seq, _, _ in cloud.effects()] == list(range(1, 16))
    assert site.queue.last_seq == 15
    await site.append(1, start=25)
    await drained(site)
    assert cloud.effects()[-1][0] == 16


# -- the wire, driven by hand ---------------------------------------------------------------------


async def test_duplicates_and_gaps(cloud: Cloud, session: aiohttp.ClientSession) -> None:
    ws, welcome = await raw_connect(session, cloud)
    assert welcome == {"type": "welcome", "site_id": "site-a", "last_seq": 0}
    first = event_frame(1, 1)
    replies = []
    for frame in (first, first, event_frame(3, 3), event_frame(2, 2), event_frame(3, 3), event_frame(5, 5)):
        await ws.send_json(frame)
        replies.append(await ws.receive_json(timeout=5))
    assert replies == [
        {"type": "ack", "seq": 1},
        {"type": "ack", "seq": 1},
        {"type": "nack", "expected": 2},
        {"type": "ack", "seq": 2},
        {"type": "ack", "seq": 3},
        {"type": "nack", "expected": 4},
    ]
    # a known id under a new seq (a renumbered, already applied event): counted, not applied again
    await ws.send_json(event_frame(4, 1, event_id=first["id"]))
    assert await ws.receive_json(timeout=5) == {"type": "ack", "seq": 4}
    await ws.send_json(event_frame(5, 5))
    assert await ws.receive_json(timeout=5) == {"type": "ack", "seq": 5}
    assert cloud.applied_ns() == [1, 2, 3, 5]
    await ws.close()

    ws, welcome = await raw_connect(session, cloud)
    assert welcome["last_seq"] == 5
    await ws.close()


@pytest.mark.parametrize(
    "frame",
    [
        "not json",
        "[1, 2]",
        event_frame(0),
        event_frame(1 << 63),
        event_frame(True),
        event_frame("1"),
        event_frame(1, id=""),
        event_frame(1, kind=7),
        event_frame(1, at="2026-11-26T10:00:00"),
        event_frame(1, at="yesterday"),
        event_frame(1, at=None),
        event_frame(1, data=[1]),
        b"binary",
    ],
)
async def test_malformed_frames_close_with_4002(
    cloud: Cloud, session: aiohttp.ClientSession, frame: str | bytes | dict[str, Any]
) -> None:
    ws, _ = await raw_connect(session, cloud)
    if isinstance(frame, bytes):
        await ws.send_bytes(frame)
    elif isinstance(frame, str):
        await ws.send_str(frame)
    else:
        await ws.send_json(frame)
    assert await closed_with(ws) == 4002
    assert cloud.applied_ns() == []


async def test_hello_rules(tmp_path: Any, session: aiohttp.ClientSession, socket_enabled: None) -> None:
    cloud = Cloud(tmp_path / "cloud.db", free_port(), hello_timeout=0.2)
    await cloud.start()
    try:
        headers = {"Authorization": f"Bearer {SITE_A[1]}"}
        async with session.ws_connect(cloud.url, headers=headers) as ws:
            assert await closed_with(ws) == 4002  # no hello in time
        async with session.ws_connect(cloud.url, headers=headers) as ws:
            await ws.send_json({"type": "hello", "protocol": 2})
            assert await closed_with(ws) == 4002
        async with session.ws_connect(cloud.url, headers=headers) as ws:
            await ws.close()  # gone before its hello: nothing to do
        assert not cloud.hub.connected("site-a")
    finally:
        await cloud.stop()


async def test_cloud_ignores_unknown_frames_and_bad_results(cloud: Cloud, session: aiohttp.ClientSession) -> None:
    ws, _ = await raw_connect(session, cloud)
    await ws.send_json({"type": "telemetry", "x": 1})
    await ws.send_json({"type": "command_result", "id": "nobody-asked", "result": "accepted"})
    command = asyncio.create_task(cloud.hub.command("site-a", "unlock_connector", "CP1", {"evse_id": 1}))
    frame = await ws.receive_json(timeout=5)
    assert (frame["type"], frame["name"], frame["charger_id"]) == ("command", "unlock_connector", "CP1")
    assert frame["args"] == {"evse_id": 1}
    await ws.send_json({"type": "command_result", "id": frame["id"], "result": "maybe"})
    assert await command == CommandResult("failed", "the site answered 'maybe'")
    await ws.send_json(event_frame(1, 1))
    assert await ws.receive_json(timeout=5) == {"type": "ack", "seq": 1}
    await ws.close()


async def test_store_failure_closes_1011_and_the_site_resends(
    cloud: Cloud, sites: Sites, caplog: pytest.LogCaptureFixture
) -> None:
    cloud.store.fail_next_apply = RuntimeError("disk I/O error")
    site = await sites(cloud, start=False)
    await site.append(30)
    site.client.start()
    await drained(site)
    assert cloud.applied_ns() == list(range(30))
    assert "disk I/O error" in caplog.text


async def test_listeners(cloud: Cloud, sites: Sites, caplog: pytest.LogCaptureFixture) -> None:
    seen: list[tuple[str, int]] = []
    awaited: list[int] = []

    async def slow_listener(site_id: str, event: UplinkEvent) -> None:
        await asyncio.sleep(0)
        awaited.append(event.seq)

    def broken(site_id: str, event: UplinkEvent) -> None:
        raise RuntimeError("listener bug")

    unsubscribe = cloud.hub.add_listener(lambda site_id, event: seen.append((site_id, event.seq)))
    cloud.hub.add_listener(slow_listener)
    cloud.hub.add_listener(broken)
    site = await sites(cloud)
    await site.append(3)
    await drained(site)
    assert seen == [("site-a", 1), ("site-a", 2), ("site-a", 3)]
    assert awaited == [1, 2, 3]
    assert "listener bug" in caplog.text
    unsubscribe()
    await site.append(1, start=3)
    await drained(site)
    assert len(seen) == 3
    assert awaited == [1, 2, 3, 4]


# -- authentication and isolation -----------------------------------------------------------------


@pytest.mark.parametrize("header", [None, "Bearer wrong", "Bearer ", "Basic dG9rZW4tYQ==", "token-a"])
async def test_wrong_token_is_401(cloud: Cloud, session: aiohttp.ClientSession, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await session.ws_connect(cloud.url, headers=headers)
    assert info.value.status == 401


async def test_client_with_a_wrong_token_reports_auth_failed_until_fixed(cloud: Cloud, sites: Sites) -> None:
    delays: list[float] = []

    async def sleep(delay: float) -> None:
        delays.append(delay)
        await asyncio.sleep(0.01)

    site = await sites(cloud, "token-new", sleep=sleep, rand=lambda: 0.5)
    states: list[UplinkState] = []
    site.client.add_listener(lambda: states.append(site.client.state))
    await wait_for(lambda: len(delays) >= 3)
    assert site.client.state is UplinkState.AUTH_FAILED
    assert states[:2] == [UplinkState.CONNECTING, UplinkState.AUTH_FAILED]
    assert UplinkState.CONNECTING not in states[2:]  # no flicker between attempts
    assert set(delays) == {0.1}  # always the longest delay, not 0.02, 0.04...
    await cloud.store.add_site("site-c", "token-new")  # the operator registers the token
    await wait_for(lambda: site.client.connected)


async def test_two_sites_are_isolated(cloud: Cloud, session: aiohttp.ClientSession) -> None:
    ws_a, welcome_a = await raw_connect(session, cloud, SITE_A[1])
    ws_b, welcome_b = await raw_connect(session, cloud, SITE_B[1])
    assert (welcome_a["site_id"], welcome_b["site_id"]) == ("site-a", "site-b")
    # a site's events land under its own id, whatever the frame says
    await ws_a.send_json({**event_frame(1, 1), "site_id": "site-b"})
    assert await ws_a.receive_json(timeout=5) == {"type": "ack", "seq": 1}
    assert cloud.applied_ns("site-a") == [1]
    assert cloud.applied_ns("site-b") == []
    # B's command goes to B only, and A cannot answer it
    command = asyncio.create_task(cloud.hub.command("site-b", "stop_session", "CP1", {"session_id": "s1"}))
    frame = await ws_b.receive_json(timeout=5)
    await ws_a.send_json({"type": "command_result", "id": frame["id"], "result": "accepted", "detail": "forged"})
    await ws_a.send_json(event_frame(2, 2))
    assert await ws_a.receive_json(timeout=5) == {"type": "ack", "seq": 2}  # A's frames were all handled
    assert not command.done()
    await ws_b.send_json({"type": "command_result", "id": frame["id"], "result": "rejected", "detail": "no session"})
    assert await command == CommandResult("rejected", "no session")
    # B's sequence is its own
    await ws_b.send_json(event_frame(1, 100))
    assert await ws_b.receive_json(timeout=5) == {"type": "ack", "seq": 1}
    assert cloud.applied_ns("site-b") == [100]
    assert await cloud.store.last_seq("site-a") == 2
    await ws_a.close()
    await ws_b.close()


async def test_a_new_connection_replaces_the_old(cloud: Cloud, sites: Sites, caplog: pytest.LogCaptureFixture) -> None:
    delays: list[float] = []

    async def sleep(delay: float) -> None:
        delays.append(delay)
        await asyncio.sleep(delay)

    first = await sites(cloud, name="first", backoff_max=60.0, rand=lambda: 0.5, sleep=sleep)
    await wait_for(lambda: first.client.connected)
    second = await sites(cloud, name="second")
    await wait_for(lambda: second.client.connected and not first.client.connected)
    assert first.client.state is UplinkState.BACKOFF
    assert delays == [60.0]  # a twin with the same token: wait long, do not fight over the connection
    assert "replaced" in caplog.text
    assert cloud.hub.connected("site-a")
    await second.append(3)
    await drained(second)
    assert cloud.applied_ns() == [0, 1, 2]


# -- commands -------------------------------------------------------------------------------------


async def test_commands(cloud: Cloud, sites: Sites) -> None:
    calls: list[tuple[str, str, dict[str, Any]]] = []

    async def handler(name: str, charger_id: str, args: dict[str, Any]) -> tuple[str, str]:
        calls.append((name, charger_id, args))
        if charger_id == "slow":
            await asyncio.sleep(60)
        if charger_id == "broken":
            raise RuntimeError("boom")
        if charger_id == "odd":
            return "perhaps", ""
        if charger_id == "nobody":
            return "unknown_charger", "no such charger"
        return "accepted", "started"

    hub = cloud.hub
    assert await hub.command("site-a", "start_session", "CP1", {}) == CommandResult("failed", "site offline")
    site = await sites(cloud, handler=handler, command_timeout=0.3)
    await wait_for(lambda: hub.connected("site-a"))
    args = {"evse_id": 1, "connector_id": 1, "id_tag": "ABC"}
    assert await hub.command("site-a", "start_session", "CP1", args) == CommandResult("accepted", "started")
    assert calls == [("start_session", "CP1", args)]
    assert await hub.command("site-a", "unlock_connector", "nobody", {}) == CommandResult(
        "unknown_charger", "no such charger"
    )
    assert await hub.command("site-a", "stop_session", "broken", {}) == CommandResult("failed", "boom")
    assert await hub.command("site-a", "stop_session", "odd", {}) == CommandResult(
        "failed", "the site answered 'perhaps'"
    )
    # the site gives up first and says so...
    assert await hub.command("site-a", "reserve_now", "slow", {}) == CommandResult("timeout", "no answer within 0.3 s")
    # ...or the cloud does, and the late answer is ignored
    assert await hub.command("site-a", "reserve_now", "slow", {}, timeout=0.1) == CommandResult(
        "timeout", "no result from the site within 0.1 s"
    )
    with pytest.raises(ValueError, match="unknown uplink command"):
        await hub.command("site-a", "format_disk", "CP1", {})
    await wait_for(lambda: calls[-1][1] == "slow")
    await site.append(1)
    await drained(site)  # a late result does not disturb the stream


async def test_command_fails_when_the_site_drops_before_answering(cloud: Cloud, sites: Sites) -> None:
    started = asyncio.Event()

    async def handler(name: str, charger_id: str, args: dict[str, Any]) -> tuple[str, str]:
        started.set()
        await asyncio.sleep(60)
        return "accepted", ""

    site = await sites(cloud, handler=handler)
    await wait_for(lambda: cloud.hub.connected("site-a"))
    command = asyncio.create_task(cloud.hub.command("site-a", "clear_charging_profile", "CP1", {"session_id": "s"}))
    await started.wait()
    await site.client.stop()
    assert await command == CommandResult("failed", "connection lost")
    assert not cloud.hub.connected("site-a")
    assert await cloud.hub.command("site-a", "cancel_reservation", "CP1", {}) == CommandResult("failed", "site offline")


async def test_command_to_a_closing_connection(cloud: Cloud, session: aiohttp.ClientSession) -> None:
    ws, _ = await raw_connect(session, cloud)
    await wait_for(lambda: cloud.hub.connected("site-a"))
    closing = asyncio.create_task(cloud.hub._connections["site-a"].ws.close())
    await asyncio.sleep(0)
    assert not cloud.hub.connected("site-a")
    assert await cloud.hub.command("site-a", "unlock_connector", "CP1", {}) == CommandResult("failed", "site offline")
    assert await closed_with(ws) == 1000
    await closing


async def test_uplink_event_parsing() -> None:
    event = UplinkEvent.from_frame(event_frame(3, at="2026-11-26T12:00:00+02:00"))
    assert event.at == AT
    assert event.at.utcoffset() == AT.utcoffset()
    assert (event.kind, event.seq) == ("status", 3)


async def test_cloud_shutdown_closes_sites_with_1001(
    cloud: Cloud, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    ws, _ = await raw_connect(session, cloud)
    stop = asyncio.create_task(cloud.stop())
    assert await closed_with(ws) == 1001
    await stop
    await cloud.start()  # for the fixture's stop


async def test_site_vanishing_while_its_event_is_applied(cloud: Cloud) -> None:
    session = aiohttp.ClientSession()
    ws, _ = await raw_connect(session, cloud)

    async def vanish(site_id: str, event: UplinkEvent) -> None:
        await session.close()  # the TCP connection drops, no close frame
        await asyncio.sleep(0.05)  # the cloud sees it go before it acknowledges

    cloud.hub.add_listener(vanish)
    await ws.send_json(event_frame(1, 1))
    await wait_for(lambda: not cloud.hub._connections)
    assert cloud.applied_ns() == [1]
    await ws.close()  # releases the client's side


def test_both_ends_speak_the_same_protocol() -> None:
    """The cloud and the site keep their own copy of the protocol's words (neither may import the other)."""
    from cloud_connector import uplink as cloud
    from custom_components.cariflex.uplink import protocol as site

    assert cloud.PROTOCOL_VERSION == site.PROTOCOL_VERSION
    assert cloud.EVENT_KINDS == site.EVENT_KINDS
    assert cloud.COMMAND_NAMES == site.COMMAND_NAMES
    assert cloud.COMMAND_RESULTS == site.COMMAND_RESULTS
