"""Roaming badges over the uplink: ``authorize`` round trips, the synced token list, the whitelist rules offline.

Both ends are real: the cloud's endpoint (``cloud_connector.uplink``) on 127.0.0.1 with the SQLite test
store, the site's client with its SQLite queue and token list. A scripted cloud checks how the site
copes with broken ``tokens`` and ``authorize_result`` frames.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
import contextlib
from datetime import UTC, datetime, timedelta
import json
import logging
from pathlib import Path
import sqlite3
from typing import Any

import aiohttp
from aiohttp import web
import pytest

from cloud_connector.uplink import TOKENS_PER_FRAME, AuthorizationAnswer
from custom_components.cariflex.access.roaming import DecisionSource, RoamingDecision, RoamingStatus, Whitelist
from custom_components.cariflex.uplink import (
    AsyncRoamingTokenStore,
    AsyncUplinkQueue,
    RoamingTokenStore,
    TokenListError,
    UplinkClient,
    UplinkState,
)
from tests.cloud.uplink_harness import AT, SITE_A, Cloud, accept_all, status
from tests.conftest import free_port, wait_for

FAST: dict[str, Any] = {"backoff_initial": 0.02, "backoff_max": 0.1, "handshake_timeout": 5.0, "heartbeat": 10.0}
ACCEPTED, INVALID, UNKNOWN = RoamingStatus.ACCEPTED, RoamingStatus.INVALID, RoamingStatus.UNKNOWN
CLOUD, LIST, NONE = DecisionSource.CLOUD, DecisionSource.LIST, DecisionSource.NONE


def token(
    uid: str, whitelist: str = "ALWAYS", valid: bool = True, updated: str = "2026-11-26T09:00:00Z"
) -> dict[str, Any]:
    """A ``tokens`` entry, as the cloud sends it."""
    return {
        "country_code": "NL",
        "party_id": "EMS",
        "uid": uid,
        "type": "RFID",
        "contract_id": f"NL-EMS-C{uid}",
        "issuer": "Test eMSP",
        "whitelist": whitelist,
        "valid": valid,
        "last_updated": updated,
    }


LIST_OF_FOUR = [token("A1"), token("O1", "ALLOWED_OFFLINE"), token("N1", "NEVER"), token("W1", "ALLOWED")]


class FakeAuthorizer:
    """What the hub calls for an ``authorize`` frame: answers per uid, records the calls, can hold or fail."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str | None, int | None]] = []
        self.answers: dict[str, AuthorizationAnswer] = {}
        self.hold: asyncio.Event | None = None
        self.fail: Exception | None = None

    async def __call__(
        self, site_id: str, uid: str, charger_id: str | None, evse_id: int | None
    ) -> AuthorizationAnswer:
        self.calls.append((site_id, uid, charger_id, evse_id))
        if self.hold is not None:
            await self.hold.wait()
        if self.fail is not None:
            raise self.fail
        return self.answers.get(uid, AuthorizationAnswer("UNKNOWN", reason="unknown token"))


class Roaming:
    """The cloud's side of roaming for a test: authorizer and full list, installed on each (re)start."""

    def __init__(self, cloud: Cloud) -> None:
        self.cloud = cloud
        self.authorizer = FakeAuthorizer()
        self.tokens: list[dict[str, Any]] = []
        self.provider_error: Exception | None = None

    async def provide(self) -> list[dict[str, Any]]:
        if self.provider_error is not None:
            raise self.provider_error
        return list(self.tokens)

    async def start(self) -> None:
        await self.cloud.start()
        self.cloud.hub.set_authorizer(self.authorizer)
        self.cloud.hub.set_token_provider(self.provide)


class RoamingSite:
    """A site with its queue, its roaming list and its client."""

    def __init__(self, queue: AsyncUplinkQueue, roaming: AsyncRoamingTokenStore | None, client: UplinkClient) -> None:
        self.queue = queue
        self.roaming = roaming
        self.client = client

    @property
    def store(self) -> AsyncRoamingTokenStore:
        assert self.roaming is not None
        return self.roaming

    async def close(self) -> None:
        await wait_for(lambda: self.client.state is not UplinkState.CONNECTING)
        await self.client.stop()
        await self.queue.close()
        if self.roaming is not None:
            await self.roaming.close()


@pytest.fixture
async def cloud(tmp_path: Path) -> AsyncIterator[Cloud]:
    instance = Cloud(tmp_path / "cloud.db", free_port())
    yield instance
    await instance.stop()


@pytest.fixture
async def roaming(cloud: Cloud) -> Roaming:
    side = Roaming(cloud)
    await side.start()
    return side


@pytest.fixture
async def open_site(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[RoamingSite]]]:
    """``site = await open_site(url, **client_kwargs)``: a started site on files in tmp_path (same files each time)."""
    opened: list[RoamingSite] = []
    async with aiohttp.ClientSession() as session:

        async def start(url: str, *, keep_list: bool = True, token: str = SITE_A[1], **kwargs: Any) -> RoamingSite:
            queue = await AsyncUplinkQueue.open(tmp_path / "site.queue.db")
            store = await AsyncRoamingTokenStore.open(tmp_path / "site.tokens.db") if keep_list else None
            client = UplinkClient(session, url, token, queue, accept_all, roaming=store, **{**FAST, **kwargs})
            site = RoamingSite(queue, store, client)
            opened.append(site)
            client.start()
            return site

        yield start
        for site in opened:
            if site.client.state is not UplinkState.STOPPED:
                await site.close()


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.01)


async def listed(site: RoamingSite, uid: str) -> dict[str, Any] | None:
    entry = await site.store.lookup(uid)
    return None if entry is None else entry.as_wire()


def outcome(decision: RoamingDecision) -> tuple[RoamingStatus, DecisionSource]:
    return decision.status, decision.source


# -- the round trip ---------------------------------------------------------------------------------


async def test_authorize_round_trip(roaming: Roaming, open_site: Any) -> None:
    answer_token = {k: v for k, v in token("N7").items() if k not in ("whitelist", "valid", "last_updated")}
    roaming.authorizer.answers["N7"] = AuthorizationAnswer("ACCEPTED", "NEVER", answer_token, "eMSP: ALLOWED")
    roaming.authorizer.answers["B7"] = AuthorizationAnswer("BLOCKED", "NEVER", None, "eMSP: BLOCKED")
    site = await open_site(roaming.cloud.url)
    await wait_for(lambda: site.store.synced_at is not None)
    decision = await site.client.authorize("N7", "CP1", evse_id=2)
    assert outcome(decision) == (ACCEPTED, CLOUD)
    assert (decision.whitelist, decision.reason) == (Whitelist.NEVER, "eMSP: ALLOWED")
    assert decision.token is not None
    assert decision.token.as_wire() == answer_token
    decision = await site.client.authorize("B7", "CP2")
    assert outcome(decision) == (RoamingStatus.BLOCKED, CLOUD)
    assert decision.ocpp_status.value == "Blocked"
    decision = await site.client.authorize("stranger")
    assert (decision.status, decision.source, decision.reason) == (UNKNOWN, CLOUD, "unknown token")
    assert roaming.authorizer.calls == [
        ("site-a", "N7", "CP1", 2),
        ("site-a", "B7", "CP2", None),
        ("site-a", "stranger", None, None),
    ]


async def test_events_flow_while_the_cloud_thinks(roaming: Roaming, open_site: Any) -> None:
    roaming.authorizer.hold = asyncio.Event()
    site = await open_site(roaming.cloud.url)
    await wait_for(lambda: site.client.connected)
    pending = asyncio.create_task(site.client.authorize("SLOW", "CP1", timeout=10))
    await wait_for(lambda: bool(roaming.authorizer.calls))
    await site.queue.append("status", status(1), AT)
    await wait_for(lambda: site.queue.length == 0)  # the eMSP's seconds do not hold the events back
    assert not pending.done()
    roaming.authorizer.hold.set()
    assert outcome(await pending) == (UNKNOWN, CLOUD)
    assert roaming.cloud.applied_ns() == [1]


# -- the list: full after the welcome, deltas after -----------------------------------------------


async def test_list_after_the_welcome_then_deltas(roaming: Roaming, open_site: Any) -> None:
    roaming.tokens = LIST_OF_FOUR
    site = await open_site(roaming.cloud.url)
    await wait_for(lambda: site.store.count == 4)
    assert site.store.synced_at is not None
    assert await listed(site, "a1") == token("A1")  # badge readers send any case
    # ALWAYS and ALLOWED: the list decides, the cloud is not asked.
    assert outcome(await site.client.authorize("A1", "CP1")) == (ACCEPTED, LIST)
    assert outcome(await site.client.authorize("W1", "CP1")) == (ACCEPTED, LIST)
    assert roaming.authorizer.calls == []
    # An eMSP invalidates A1 and adds D1: a delta.
    delta = [token("A1", valid=False, updated="2026-11-26T10:00:00Z"), token("D1", "ALLOWED_OFFLINE")]
    assert await roaming.cloud.hub.broadcast_tokens(delta) == 1
    await eventually(lambda: _count_is(site, 5))
    assert await listed(site, "A1") == delta[0]
    decision = await site.client.authorize("A1", "CP1")
    assert (decision.status, decision.source, decision.reason) == (INVALID, LIST, "whitelist ALWAYS, token not valid")
    assert roaming.authorizer.calls == []
    # A full list replaces everything.
    assert await roaming.cloud.hub.send_tokens("site-a", [token("Z1")], True)
    await eventually(lambda: _count_is(site, 1))
    assert await listed(site, "A1") is None
    assert not await roaming.cloud.hub.send_tokens("site-b", [token("Z1")], False)  # not connected
    assert await roaming.cloud.hub.broadcast_tokens([]) == 0


async def _count_is(site: RoamingSite, count: int) -> bool:
    return site.store.count == count


async def test_a_long_list_comes_in_parts(roaming: Roaming, open_site: Any) -> None:
    count = 2 * TOKENS_PER_FRAME + 7
    roaming.tokens = [token(f"T{n:05}") for n in range(count)]
    site = await open_site(roaming.cloud.url)
    await wait_for(lambda: site.store.count == count)
    assert await listed(site, f"T{count - 1:05}") == token(f"T{count - 1:05}")


async def test_an_empty_list_empties_the_site(roaming: Roaming, open_site: Any) -> None:
    roaming.tokens = LIST_OF_FOUR
    site = await open_site(roaming.cloud.url)
    await wait_for(lambda: site.store.count == 4)
    synced = site.store.synced_at
    await roaming.cloud.stop()
    roaming.tokens = []  # every eMSP left while the site was away
    await roaming.start()
    await wait_for(lambda: site.store.count == 0)
    assert site.store.synced_at != synced


async def test_a_provider_failure_leaves_the_list_and_the_link(
    roaming: Roaming, open_site: Any, caplog: pytest.LogCaptureFixture
) -> None:
    roaming.provider_error = RuntimeError("database down")
    site = await open_site(roaming.cloud.url)
    await wait_for(lambda: site.client.connected)
    await site.queue.append("status", status(1), AT)
    await wait_for(lambda: site.queue.length == 0)
    assert "cannot read the roaming tokens for site site-a" in caplog.text
    assert site.store.synced_at is None
    assert await roaming.cloud.hub.broadcast_tokens([token("D1")]) == 1  # deltas still go
    await wait_for(lambda: site.store.count == 1)
    assert site.store.synced_at is None


# -- no answer in time: the whitelist rules on the list ------------------------------------------


@pytest.mark.parametrize(
    ("uid", "expected"),
    [
        ("O1", (ACCEPTED, LIST)),  # ALLOWED_OFFLINE: allowed when the eMSP cannot be asked
        ("N1", (INVALID, NONE)),  # NEVER: real-time or nothing
        ("X1", (UNKNOWN, NONE)),  # not on the list
    ],
)
async def test_timeout_applies_the_whitelist_rule(
    roaming: Roaming, open_site: Any, uid: str, expected: tuple[RoamingStatus, DecisionSource]
) -> None:
    roaming.tokens = LIST_OF_FOUR
    roaming.authorizer.hold = asyncio.Event()
    site = await open_site(roaming.cloud.url, authorize_timeout=0.2)
    await wait_for(lambda: site.store.count == 4)
    started = asyncio.get_running_loop().time()
    decision = await site.client.authorize(uid, "CP1")
    elapsed = asyncio.get_running_loop().time() - started
    assert outcome(decision) == expected
    assert "no answer from the cloud within 0.2 s" in decision.reason
    assert 0.2 <= elapsed < 3.0
    decision = await site.client.authorize(uid, "CP1", timeout=0.05)  # a per-call timeout
    assert "within 0.05 s" in decision.reason
    roaming.authorizer.hold.set()  # the late answers are dropped
    await wait_for(lambda: len(roaming.authorizer.calls) == 2)
    await asyncio.sleep(0.05)
    assert site.client.connected


async def test_cloud_errors_apply_the_rule_at_once(roaming: Roaming, open_site: Any) -> None:
    roaming.tokens = LIST_OF_FOUR
    site = await open_site(roaming.cloud.url)  # the default 5 s timeout: never reached below
    await wait_for(lambda: site.store.count == 4)
    roaming.authorizer.fail = RuntimeError("database down")
    decision = await site.client.authorize("O1", "CP1")
    assert outcome(decision) == (ACCEPTED, LIST)
    assert "the cloud could not decide: database down" in decision.reason
    roaming.authorizer.fail = None
    roaming.authorizer.answers["N1"] = AuthorizationAnswer("MAYBE")
    decision = await site.client.authorize("N1", "CP1")
    assert outcome(decision) == (INVALID, NONE)
    assert "the authorizer answered 'MAYBE'" in decision.reason
    roaming.authorizer.answers["N1"] = AuthorizationAnswer("ACCEPTED", whitelist="SOMETIMES")
    assert outcome(await site.client.authorize("N1", "CP1")) == (INVALID, NONE)
    roaming.cloud.hub.set_authorizer(None)
    decision = await site.client.authorize("X1")
    assert outcome(decision) == (UNKNOWN, NONE)
    assert "this cloud does not authorize badges" in decision.reason


async def test_connection_lost_while_waiting(roaming: Roaming, open_site: Any) -> None:
    roaming.tokens = LIST_OF_FOUR
    roaming.authorizer.hold = asyncio.Event()
    site = await open_site(roaming.cloud.url, authorize_timeout=30.0)
    await wait_for(lambda: site.store.count == 4)
    pending = asyncio.create_task(site.client.authorize("O1", "CP1"))
    await wait_for(lambda: bool(roaming.authorizer.calls))
    await roaming.cloud.stop()
    async with asyncio.timeout(5):
        decision = await pending
    assert outcome(decision) == (ACCEPTED, LIST)
    assert "connection to the cloud lost" in decision.reason


async def test_list_survives_a_site_restart(roaming: Roaming, open_site: Any) -> None:
    roaming.tokens = [*LIST_OF_FOUR, token("V1", "ALLOWED_OFFLINE", valid=False)]
    site = await open_site(roaming.cloud.url)
    await wait_for(lambda: site.store.count == 5)
    synced = site.store.synced_at
    await site.close()
    assert site.store.store.fresh_at is not None
    assert synced is not None
    assert site.store.store.fresh_at >= synced  # the synced connection ended after the list came
    await roaming.cloud.stop()
    site = await open_site(roaming.cloud.url)  # same files, the cloud is down
    assert site.store.count == 5
    assert site.store.synced_at == synced
    expected = {
        "A1": (ACCEPTED, LIST),
        "W1": (ACCEPTED, LIST),
        "O1": (ACCEPTED, LIST),
        "V1": (INVALID, LIST),
        "N1": (INVALID, NONE),
        "X1": (UNKNOWN, NONE),
    }
    decisions = {uid: await site.client.authorize(uid, "CP1") for uid in expected}
    assert {uid: outcome(d) for uid, d in decisions.items()} == expected
    assert "not connected to the cloud" in decisions["O1"].reason
    assert roaming.authorizer.calls == []


async def test_a_stale_list_is_not_used(roaming: Roaming, open_site: Any) -> None:
    now = [datetime(2026, 11, 26, 10, 0, tzinfo=UTC)]
    roaming.tokens = LIST_OF_FOUR
    site = await open_site(roaming.cloud.url, max_list_age=timedelta(hours=1), now=lambda: now[0])
    # Stored, then marked current once the last part is in (the list counts before the flag is set).
    await wait_for(lambda: site.store.count == 4 and site.client.roaming_list_current)
    now[0] += timedelta(days=3)  # connected and synced: the list is current, however long ago it came
    assert outcome(await site.client.authorize("A1", "CP1")) == (ACCEPTED, LIST)
    await roaming.cloud.stop()
    await wait_for(lambda: not site.client.connected)
    await wait_for(lambda: site.store.fresh_at == now[0])  # the list was current until the link ended
    now[0] += timedelta(minutes=59)
    assert outcome(await site.client.authorize("A1", "CP1")) == (ACCEPTED, LIST)
    assert outcome(await site.client.authorize("O1", "CP1")) == (ACCEPTED, LIST)
    now[0] += timedelta(minutes=2)
    decision = await site.client.authorize("A1", "CP1")
    assert outcome(decision) == (UNKNOWN, NONE)
    assert decision.reason == "not listed; not connected to the cloud; the roaming list is stale"


async def test_a_site_without_a_list_asks_the_cloud(roaming: Roaming, open_site: Any) -> None:
    roaming.tokens = LIST_OF_FOUR
    roaming.authorizer.answers["A1"] = AuthorizationAnswer("ACCEPTED", "ALWAYS")
    site = await open_site(roaming.cloud.url, keep_list=False)
    await wait_for(lambda: site.client.connected)
    assert site.client.roaming is None
    assert outcome(await site.client.authorize("A1", "CP1")) == (ACCEPTED, CLOUD)
    await roaming.cloud.stop()
    await wait_for(lambda: not site.client.connected)
    assert outcome(await site.client.authorize("A1", "CP1")) == (UNKNOWN, NONE)


async def test_list_failures_are_logged_not_fatal(
    roaming: Roaming, open_site: Any, caplog: pytest.LogCaptureFixture
) -> None:
    roaming.tokens = LIST_OF_FOUR
    roaming.authorizer.answers["A1"] = AuthorizationAnswer("ACCEPTED", "ALWAYS")
    site = await open_site(roaming.cloud.url)
    await wait_for(lambda: site.store.count == 4)
    site.store.store._conn.close()  # the file is gone from under the client
    assert outcome(await site.client.authorize("A1", "CP1")) == (ACCEPTED, CLOUD)
    assert "cannot read the roaming list for badge A1" in caplog.text
    await roaming.cloud.hub.broadcast_tokens([token("D1")])
    await wait_for(lambda: "cannot store the roaming tokens" in caplog.text)
    await roaming.cloud.stop()
    await wait_for(lambda: "cannot store the roaming list's time" in caplog.text)


async def test_a_send_failure_is_a_lost_connection(
    roaming: Roaming, open_site: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    roaming.tokens = LIST_OF_FOUR
    site = await open_site(roaming.cloud.url)
    await wait_for(lambda: site.store.count == 4)
    link = site.client._link
    assert link is not None

    async def closing(*args: Any, **kwargs: Any) -> None:
        raise ConnectionResetError("Cannot write to closing transport")  # what aiohttp raises then

    monkeypatch.setattr(link.ws, "send_str", closing)
    decision = await site.client.authorize("O1", "CP1")
    assert outcome(decision) == (ACCEPTED, LIST)
    assert "connection to the cloud lost" in decision.reason
    assert roaming.authorizer.calls == []
    # The cloud's end of a connection that breaks: the tokens do not go, and the hub says so.
    monkeypatch.setattr(roaming.cloud.hub._connections["site-a"].ws, "send_str", closing)
    assert not await roaming.cloud.hub.send_tokens("site-a", [token("D1")], False)
    assert await roaming.cloud.hub.broadcast_tokens([token("D1")]) == 0


# -- the cloud's side of the protocol ---------------------------------------------------------------


async def raw_site(session: aiohttp.ClientSession, cloud: Cloud) -> aiohttp.ClientWebSocketResponse:
    ws = await session.ws_connect(cloud.url, headers={"Authorization": f"Bearer {SITE_A[1]}"})
    await ws.send_json({"type": "hello", "protocol": 1, "software": "test"})
    assert (await ws.receive_json(timeout=5))["type"] == "welcome"
    assert (await ws.receive_json(timeout=5))["type"] == "tokens"  # the (empty) full list
    return ws


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "authorize", "uid": "A1"},
        {"type": "authorize", "id": "", "uid": "A1"},
        {"type": "authorize", "id": "r1", "uid": ""},
        {"type": "authorize", "id": "r1", "uid": "A" * 37},
        {"type": "authorize", "id": "r1", "uid": 5},
        {"type": "authorize", "id": "r1", "uid": "A1", "charger_id": 7},
        {"type": "authorize", "id": "r1", "uid": "A1", "evse_id": 0},
        {"type": "authorize", "id": "r1", "uid": "A1", "evse_id": "1"},
    ],
)
async def test_a_malformed_authorize_closes_with_4002(roaming: Roaming, frame: dict[str, Any]) -> None:
    async with aiohttp.ClientSession() as session:
        ws = await raw_site(session, roaming.cloud)
        await ws.send_json(frame)
        async with asyncio.timeout(5):
            async for _ in ws:
                pass
        assert ws.close_code == 4002
    assert roaming.authorizer.calls == []


async def test_too_many_authorizations_at_once(roaming: Roaming) -> None:
    roaming.authorizer.hold = asyncio.Event()
    async with aiohttp.ClientSession() as session:
        ws = await raw_site(session, roaming.cloud)
        for n in range(33):
            await ws.send_json({"type": "authorize", "id": f"r{n}", "uid": "A1", "charger_id": "CP1"})
        busy = await ws.receive_json(timeout=5)
        assert busy == {"type": "authorize_result", "id": "r32", "error": "too many at once"}
        await wait_for(lambda: len(roaming.authorizer.calls) == 32)
        roaming.authorizer.hold.set()
        answered = {(await ws.receive_json(timeout=5))["id"] for _ in range(32)}
        assert answered == {f"r{n}" for n in range(32)}
        await ws.close()


# -- a scripted cloud: what the site does with broken frames --------------------------------------


class ScriptedCloud:
    """A cloud on 127.0.0.1 whose every connection runs ``script(ws)`` after the welcome."""

    def __init__(self, script: Callable[[web.WebSocketResponse], Awaitable[None]]) -> None:
        self.script = script
        self.port = free_port()
        self.runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/uplink/v1"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/uplink/v1", self._handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        assert self.runner is not None
        await self.runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.receive_json()
        await ws.send_json({"type": "welcome", "site_id": "site-x", "last_seq": 0})
        await self.script(ws)
        await ws.close()
        return ws


def full(sync: str, part: int, parts: int, *tokens: dict[str, Any]) -> dict[str, Any]:
    return {"type": "tokens", "full": True, "sync": sync, "part": part, "parts": parts, "tokens": list(tokens)}


async def test_broken_token_frames(open_site: Any, caplog: pytest.LogCaptureFixture) -> None:
    step = asyncio.Event()
    connections: list[int] = []

    async def script(ws: web.WebSocketResponse) -> None:
        connections.append(1)
        if len(connections) == 1:
            await ws.send_json(full("s1", 1, 1, token("OLD1"), token("OLD2")))
            await step.wait()
            await ws.send_json({"type": "tokens", "full": "yes", "tokens": []})  # malformed: ignored
            await ws.send_json({"type": "tokens", "full": False, "tokens": "A1"})  # malformed: ignored
            await ws.send_json(full("s2", 2, 2, token("LOST")))  # part 2 without part 1
            await ws.send_json(full("s3", 1, 2, token("LOST")))
            await ws.send_json(full("s4", 2, 2, token("LOST")))  # another sync's part 2
            await ws.send_json({"type": "tokens", "full": True, "tokens": [token("LOST")]})  # no sync/part/parts
            await ws.send_json(full("s5", 2, 1, token("LOST")))  # part over parts
            # one good entry, two bad ones: the good one is kept
            await ws.send_json({"type": "tokens", "full": False, "tokens": [token("NEW1"), {"uid": "BAD"}, "BAD"]})
            await ws.send_json(full("s6", 1, 2, token("HALF")))  # then the connection drops
            return
        await ws.send_json({"type": "pong"})  # unknown frames are ignored
        async for _ in ws:
            pass

    scripted = ScriptedCloud(script)
    await scripted.start()
    site = await open_site(scripted.url)
    try:
        await wait_for(lambda: site.store.count == 2)
        step.set()
        await wait_for(lambda: len(connections) == 2)
        assert site.store.count == 3
        assert {uid: bool(await listed(site, uid)) for uid in ("OLD1", "OLD2", "NEW1", "LOST", "HALF")} == {
            "OLD1": True,
            "OLD2": True,
            "NEW1": True,
            "LOST": False,
            "HALF": False,
        }
        assert caplog.text.count("ignoring a malformed tokens frame") == 2
        assert caplog.text.count("out of order, dropped") == 2
        assert caplog.text.count("without sync/part/parts") == 2
        assert caplog.text.count("skipping a roaming token") == 2
    finally:
        await site.close()
        await scripted.stop()


async def test_broken_authorize_results(open_site: Any) -> None:
    async def script(ws: web.WebSocketResponse) -> None:
        async for msg in ws:
            frame = json.loads(msg.data)
            if frame["type"] != "authorize":
                continue
            await ws.send_json({"type": "authorize_result", "id": "not-yours", "allowed": "ACCEPTED"})
            if frame["uid"] == "ODD":
                await ws.send_json({"type": "authorize_result", "id": frame["id"], "allowed": "ALLOWED"})
            else:
                await ws.send_json({"type": "authorize_result", "id": frame["id"], "allowed": "NOT_ALLOWED"})
                await ws.send_json({"type": "authorize_result", "id": frame["id"], "allowed": "ACCEPTED"})  # twice

    scripted = ScriptedCloud(script)
    await scripted.start()
    site = await open_site(scripted.url)
    try:
        await wait_for(lambda: site.client.connected)
        decision = await site.client.authorize("ODD", "CP1")
        assert outcome(decision) == (UNKNOWN, NONE)
        assert "unreadable answer from the cloud: allowed must be one of" in decision.reason
        decision = await site.client.authorize("X1", "CP1")
        assert outcome(decision) == (RoamingStatus.NOT_ALLOWED, CLOUD)
        assert decision.ocpp_status.value == "Invalid"
        await asyncio.sleep(0.05)
        assert site.client.connected
    finally:
        await site.close()
        await scripted.stop()


# -- the list's file --------------------------------------------------------------------------------


def test_store_keys_and_lookups(tmp_path: Path) -> None:
    from custom_components.cariflex.access.roaming import RoamingToken

    store = RoamingTokenStore(tmp_path / "tokens.db")
    at = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
    older = token("Dup1", updated="2026-11-26T09:00:00.5Z")
    newer = {**token("DUP1", "NEVER", updated="2026-11-26T09:00:01Z"), "party_id": "OTH"}
    store.replace([RoamingToken.from_wire(older), RoamingToken.from_wire(newer)], at)
    found = store.lookup("dup1")
    assert found is not None
    assert found.info.party_id == "OTH"  # two eMSPs' tokens with one uid: the latest update wins
    store.upsert([RoamingToken.from_wire({**older, "uid": "DUP1", "last_updated": "2026-11-26T11:00:00Z"})], at)
    assert store.count == 2  # same key (uid case-insensitive): replaced
    found = store.lookup("Dup1")
    assert found is not None
    assert found.info.party_id == "EMS"
    store.close()


def test_a_corrupt_list_is_set_aside(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from custom_components.cariflex.access.roaming import RoamingToken

    path = tmp_path / "tokens.db"
    path.write_bytes(b"this is not a database" * 100)
    store = RoamingTokenStore(path)
    assert store.count == 0
    assert store.synced_at is None
    assert len(store.set_aside) == 1
    assert store.set_aside[0].read_bytes().startswith(b"this is not")
    assert "is corrupt" in caplog.text
    at = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
    store.replace([RoamingToken.from_wire(token("A1"))], at)
    store.close()
    store = RoamingTokenStore(path)  # reopened: what was stored is there
    assert (store.count, store.synced_at, store.fresh_at) == (1, at, at)
    store.replace([RoamingToken.from_wire(token(f"T{n:04}")) for n in range(500)], at)
    # Corrupted while open: set aside at the next operation, which then runs on a fresh list.
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as other:  # makes the store re-read its pages
        other.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        other.execute("INSERT OR REPLACE INTO meta VALUES ('touched', '1')")
        size = path.stat().st_size
        with path.open("r+b") as raw:
            raw.seek(8192)
            raw.write(b"\x5a" * (size - 8192))
        assert store.lookup("T0001") is None
    assert len(store.set_aside) == 1  # this object's first
    store.upsert([RoamingToken.from_wire(token("A2"))], at)
    assert store.count == 1
    store.close()


def test_a_list_that_cannot_be_opened(tmp_path: Path) -> None:
    with pytest.raises(TokenListError, match="roaming token list"):
        RoamingTokenStore(tmp_path / "missing-dir" / "tokens.db")
    store = RoamingTokenStore(tmp_path / "tokens.db")
    store.close()
    with pytest.raises(TokenListError):
        store.lookup("A1")


@pytest.fixture(autouse=True)
def _info_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
