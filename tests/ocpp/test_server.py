"""The central system on a real aiohttp server, with real websocket clients."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
import contextlib
import itertools
import json
import os
from pathlib import Path
import socket
import ssl
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

from custom_components.cariflex.ocpp import server as server_module
from custom_components.cariflex.ocpp.backend import Admission, BootStatus
from custom_components.cariflex.ocpp.errors import CallTimeoutError, ChargerOfflineError
from custom_components.cariflex.ocpp.rpc import CALL, CALLERROR, CALLRESULT, V16
from custom_components.cariflex.ocpp.server import (
    MAX_FRAME_BYTES,
    CentralSystem,
    build_ssl_context,
    charger_id_from_path,
    parse_basic_auth,
)
from custom_components.cariflex.ocpp.site import (
    ChargerConfig,
    SiteBackend,
    UnknownChargerPolicy,
    hash_password,
)
from custom_components.cariflex.ocpp.v16 import V16Adapter
from custom_components.cariflex.ocpp.v201 import V201Adapter
from simulator.charger16 import SimCharger16, basic_auth_header, connect as sim_connect
from tests.conftest import free_port, wait_for
from tests.tls import self_signed_cert

PASSWORD = "correct horse"
BOOT = {"chargePointVendor": "Acme", "chargePointModel": "X1"}


class RecordingBackend(SiteBackend):
    """A SiteBackend that remembers how each upgrade was admitted."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.admissions: list[tuple[str, str | None, bool, Admission]] = []
        self.connection_events: list[tuple[str, bool]] = []

    async def admit(self, charger_id: str, password: str | None, secure: bool) -> Admission:
        decision = await super().admit(charger_id, password, secure)
        self.admissions.append((charger_id, password, secure, decision))
        return decision

    def connection_changed(self, charger: Any) -> None:
        self.connection_events.append((charger.charger_id, charger.connected))
        super().connection_changed(charger)


class Central:
    """A running CentralSystem and the clients connected to it."""

    def __init__(self) -> None:
        self.backend = RecordingBackend(policy=UnknownChargerPolicy.ACCEPT)
        self.backend.set_known([ChargerConfig("CP1"), ChargerConfig("SECURE", password_hash=hash_password(PASSWORD))])
        self.port = free_port()
        self.url = f"ws://127.0.0.1:{self.port}"
        self.system = CentralSystem(self.backend, host="127.0.0.1", port=self.port, call_timeout=2.0)
        self.clients: list[ClientConnection] = []
        self.sims: list[tuple[SimCharger16, Any, asyncio.Task[None]]] = []
        self._ids = itertools.count(1)

    async def raw(
        self,
        charger_id: str,
        *,
        subprotocols: list[str] | None = None,
        headers: dict[str, str] | None = None,
        url: str | None = None,
    ) -> ClientConnection:
        """A bare websocket client (default subprotocol ocpp1.6)."""
        offered = ["ocpp1.6"] if subprotocols is None else subprotocols
        ws = await ws_connect(
            f"{url or self.url}/{charger_id}",
            subprotocols=[Subprotocol(p) for p in offered] or None,
            additional_headers=headers,
            proxy=None,
            open_timeout=5,
        )
        self.clients.append(ws)
        return ws

    async def sim(self, charger_id: str, **kwargs: Any) -> SimCharger16:
        charger, ws, task = await sim_connect(self.url, charger_id, response_timeout=5, **kwargs)
        self.sims.append((charger, ws, task))
        return charger

    async def request(self, ws: ClientConnection, action: str, payload: Any, timeout: float = 2.0) -> list[Any]:
        """Send a CALL and return its answer (CALLs from the central system are skipped)."""
        unique_id = f"r{next(self._ids)}"
        await ws.send(json.dumps([CALL, unique_id, action, payload]))
        return await self.answer_to(ws, unique_id, timeout)

    async def answer_to(self, ws: ClientConnection, unique_id: str, timeout: float = 2.0) -> list[Any]:
        async with asyncio.timeout(timeout):
            while True:
                frame = json.loads(await ws.recv())
                if frame[0] != CALL and frame[1] == unique_id:
                    return list(frame)

    async def close(self) -> None:
        for charger, ws, task in self.sims:
            await charger.stop_tasks()
            task.cancel()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await task
            with contextlib.suppress(Exception):
                await ws.close()
        for client in self.clients:
            with contextlib.suppress(Exception):
                await client.close()
        await self.system.stop()
        await self.backend.cancel_tasks()


@pytest.fixture
async def central(socket_enabled: None) -> AsyncIterator[Central]:
    """A central system on a free port; knows CP1 (no password) and SECURE (password)."""
    running = Central()
    await running.system.start()
    yield running
    await running.close()


async def closed_code(ws: ClientConnection, timeout: float = 2.0) -> int | None:
    async with asyncio.timeout(timeout):
        await ws.wait_closed()
    return ws.close_code


# ------------------------------------------------------------------------------ helpers
@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("Bearer abc", None),
        ("Basic !!!", None),
        ("Basic " + "Q1AxOnNlY3JldA==", ("CP1", "secret")),
        ("basic " + "Q1AxOnNlY3JldA==", ("CP1", "secret")),
        ("Basic " + "Q1AxOnNlOmNyZXQ=", ("CP1", "se:cret")),  # a colon in the password
        ("Basic " + "Q1Ax", None),  # no colon
    ],
)
def test_parse_basic_auth(header: str | None, expected: tuple[str, str] | None) -> None:
    assert parse_basic_auth(header) == expected


@pytest.mark.parametrize(
    ("path", "charger_id"),
    [("/CP1", "CP1"), ("/ocpp/v16/CP1", "CP1"), ("/ocpp/CP1/", "CP1"), ("/CP%201", "CP 1"), ("/", ""), ("", "")],
)
def test_charger_id_from_path(path: str, charger_id: str) -> None:
    assert charger_id_from_path(path) == charger_id


# ---------------------------------------------------------------------------- handshake
async def test_sim_charger_boots_and_is_served(central: Central) -> None:
    charger = await central.sim("CP1")
    answer = await charger.boot()
    assert answer.status == "Accepted"
    assert answer.interval == 300
    model = central.backend.chargers["CP1"]
    assert model.connected
    assert model.ocpp_version == V16
    assert isinstance(central.system.adapter("CP1"), V16Adapter)
    assert model.info.vendor == "Cariflex"
    # the follow-up reads the configuration once the boot is answered
    await wait_for(lambda: model.configuration.get("HeartbeatInterval") == "300")
    assert any(action == "GetConfiguration" for action, _ in charger.received)
    assert (await charger.heartbeat()).current_time
    assert central.backend.connection_events == [("CP1", True)]
    assert central.backend.admissions == [("CP1", None, False, Admission.ACCEPT)]


async def test_command_through_the_server(central: Central) -> None:
    charger = await central.sim("CP1")
    await charger.boot()
    adapter = central.system.adapter("CP1")
    assert isinstance(adapter, V16Adapter)
    assert await adapter.set_current_limit(1, 21.4) == "Accepted"
    assert charger.connectors[1].limit_a == pytest.approx(21.4)


@pytest.mark.parametrize(
    "password",
    [None, "wrong", ""],
)
async def test_wrong_password_is_401(central: Central, password: str | None) -> None:
    headers = basic_auth_header("SECURE", password) if password is not None else None
    with pytest.raises(InvalidStatus) as info:
        await central.raw("SECURE", headers=headers)
    assert info.value.response.status_code == 401
    assert info.value.response.headers["WWW-Authenticate"] == 'Basic realm="cariflex"'
    assert "SECURE" not in central.system.connections


async def test_password_of_another_user_is_401(central: Central) -> None:
    with pytest.raises(InvalidStatus) as info:
        await central.raw("SECURE", headers=basic_auth_header("CP1", PASSWORD))
    assert info.value.response.status_code == 401


async def test_right_password_connects(central: Central) -> None:
    charger = await central.sim("SECURE", password=PASSWORD)
    assert (await charger.boot()).status == "Accepted"
    assert central.backend.admissions[-1] == ("SECURE", PASSWORD, False, Admission.ACCEPT)


async def test_non_ascii_password(central: Central) -> None:
    central.backend.set_known([ChargerConfig("SECURE", password_hash=hash_password("pässwörd"))])
    charger = await central.sim("SECURE", password="pässwörd")
    assert (await charger.boot()).status == "Accepted"


async def test_refused_charger_is_404(central: Central) -> None:
    central.backend.policy = UnknownChargerPolicy.REFUSE
    with pytest.raises(InvalidStatus) as info:
        await central.raw("STRANGER")
    assert info.value.response.status_code == 404
    assert "STRANGER" not in central.backend.chargers


async def test_missing_charger_id_is_404(central: Central) -> None:
    with pytest.raises(InvalidStatus) as info:
        await central.raw("")
    assert info.value.response.status_code == 404
    assert central.backend.admissions == []


async def test_path_prefix_and_percent_encoding(central: Central) -> None:
    ws = await central.raw("CP%201", url=f"{central.url}/ocpp/v16")
    assert (await central.request(ws, "Heartbeat", {}))[0] == CALLRESULT
    assert "CP 1" in central.system.connections


@pytest.mark.parametrize(
    ("offered", "selected", "adapter"),
    [
        ([], None, V16Adapter),
        (["ocpp1.6"], "ocpp1.6", V16Adapter),
        (["ocpp2.0.1"], "ocpp2.0.1", V201Adapter),
        (["ocpp2.0.1", "ocpp1.6"], "ocpp2.0.1", V201Adapter),
        (["ocpp1.5", "ocpp1.6"], "ocpp1.6", V16Adapter),
    ],
)
async def test_subprotocol_negotiation(
    central: Central, offered: list[str], selected: str | None, adapter: type[Any]
) -> None:
    ws = await central.raw("CP1", subprotocols=offered)
    assert ws.subprotocol == selected
    assert (await central.request(ws, "Heartbeat", {}))[0] == CALLRESULT
    assert isinstance(central.system.adapter("CP1"), adapter)
    assert central.backend.chargers["CP1"].ocpp_version == adapter.version


async def test_unsupported_subprotocol_is_closed(central: Central) -> None:
    ws = await central.raw("CP1", subprotocols=["ocpp1.5"])
    assert ws.subprotocol is None
    assert await closed_code(ws) == 1002
    assert central.system.connections == {}
    assert not central.backend.charger("CP1").connected


async def test_served_versions_limited_by_adapters(socket_enabled: None) -> None:
    backend = SiteBackend()
    port = free_port()
    system = CentralSystem(backend, host="127.0.0.1", port=port, adapters={V16: V16Adapter})
    assert system.subprotocols == {"ocpp1.6": V16}
    await system.start()
    try:
        ws = await ws_connect(f"ws://127.0.0.1:{port}/CP1", subprotocols=[Subprotocol("ocpp2.0.1")], proxy=None)
        assert ws.subprotocol is None
        assert await closed_code(ws) == 1002
    finally:
        await system.stop()


# ------------------------------------------------------------------------------ frames
async def test_malformed_frame_gets_callerror_and_connection_keeps_working(central: Central) -> None:
    ws = await central.raw("CP1")
    await ws.send("this is not json")
    frame = json.loads(await asyncio.wait_for(ws.recv(), 2))
    assert frame[:3] == [CALLERROR, "-1", "ProtocolError"]
    await ws.send('[2, "x1", "Heartbeat", {"unexpected": true}]')
    frame = json.loads(await asyncio.wait_for(ws.recv(), 2))
    assert frame[:3] == [CALLERROR, "x1", "FormatViolation"]
    answer = await central.request(ws, "Heartbeat", {})
    assert answer[0] == CALLRESULT
    assert "currentTime" in answer[2]
    # a binary frame is read as text
    await ws.send(b'[2, "b1", "Heartbeat", {}]')
    assert (await central.answer_to(ws, "b1"))[0] == CALLRESULT


async def test_oversized_frame_closes_only_that_connection(central: Central) -> None:
    other = await central.sim("CP1")
    await other.boot()
    ws = await central.raw("BIG")
    await wait_for(lambda: "BIG" in central.system.connections)
    padding = "x" * (MAX_FRAME_BYTES + 10)
    with contextlib.suppress(ConnectionClosed):
        await ws.send(json.dumps([CALL, "big", "DataTransfer", {"vendorId": "v", "data": padding}]))
    assert await closed_code(ws) == 1009
    await wait_for(lambda: not central.backend.chargers["BIG"].connected)
    assert (await other.heartbeat()).current_time


async def test_deeply_nested_frame_keeps_the_connection(central: Central) -> None:
    ws = await central.raw("CP1")
    await ws.send("[" * 100_000)
    frame = json.loads(await asyncio.wait_for(ws.recv(), 2))
    assert frame[:3] == [CALLERROR, "-1", "ProtocolError"]


# ------------------------------------------------------------------------- isolation
async def test_silent_or_flooding_charger_does_not_delay_others(central: Central) -> None:
    fast = await central.sim("CP1")
    await fast.boot()
    slow = await central.raw("SLOW")
    await wait_for(lambda: "SLOW" in central.system.connections)
    slow_adapter = central.system.adapter("SLOW")
    assert slow_adapter is not None
    pending = asyncio.ensure_future(slow_adapter.call("GetConfiguration", {}, timeout=10))
    call_frame = json.loads(await asyncio.wait_for(slow.recv(), 2))
    assert call_frame[2] == "GetConfiguration"  # SLOW never answers it
    # SLOW also floods the central system with requests it does not read the answers of
    await asyncio.gather(*(slow.send(json.dumps([CALL, f"f{n}", "Heartbeat", {}])) for n in range(300)))
    loop = asyncio.get_running_loop()
    for _ in range(3):
        started = loop.time()
        await fast.heartbeat()
        assert loop.time() - started < 1.0
    # commands to the fast charger are not queued behind SLOW's unanswered call either
    fast_adapter = central.system.adapter("CP1")
    assert isinstance(fast_adapter, V16Adapter)
    started = loop.time()
    assert await fast_adapter.unlock(1) == "Unlocked"
    assert loop.time() - started < 1.0
    assert not pending.done(), "SLOW's call is still waiting all along"
    # every flooded request was answered, in order
    answers = [json.loads(await asyncio.wait_for(slow.recv(), 2)) for _ in range(300)]
    assert [a[1] for a in answers] == [f"f{n}" for n in range(300)]
    assert {a[0] for a in answers} == {CALLRESULT}
    await slow.close()
    with pytest.raises(ChargerOfflineError):
        await asyncio.wait_for(pending, 2)


# ------------------------------------------------------------------------- keepalive
async def silent_socket(port: int, charger_id: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A websocket handshake over a bare TCP socket that then never answers anything (half-open)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET /{charger_id} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Protocol: ocpp1.6\r\n\r\n"
        ).encode()
    )
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
    assert head.startswith(b"HTTP/1.1 101")
    return reader, writer


async def read_server_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One unmasked frame from the server: (opcode, payload)."""
    first, second = await asyncio.wait_for(reader.readexactly(2), 2)
    length = second & 0x7F
    if length == 126:
        length = int.from_bytes(await reader.readexactly(2), "big")
    return first & 0x0F, await reader.readexactly(length)


async def test_silent_connection_is_pinged_then_closed(central: Central, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_module, "PING_INTERVAL_S", 0.1)
    reader, writer = await silent_socket(central.port, "HALFOPEN")
    try:
        await wait_for(lambda: "HALFOPEN" in central.system.connections)
        opcode, _ = await read_server_frame(reader)
        assert opcode == 0x9, "a silent charger is pinged first"
        opcodes = [opcode]
        while opcode != 0x8:
            opcode, payload = await read_server_frame(reader)
            opcodes.append(opcode)
        assert int.from_bytes(payload[:2], "big") == 1011
        assert set(opcodes) <= {0x9, 0x8}
        await wait_for(lambda: not central.backend.chargers["HALFOPEN"].connected)
        assert "HALFOPEN" not in central.system.connections
    finally:
        writer.close()


async def test_charger_ping_is_answered(central: Central) -> None:
    ws = await central.raw("CP1")
    pong = await ws.ping(b"are you there")
    await asyncio.wait_for(pong, 2)
    assert (await central.request(ws, "Heartbeat", {}))[0] == CALLRESULT


# ----------------------------------------------------------------------- connections
async def test_second_connection_replaces_the_first(central: Central) -> None:
    first = await central.raw("CP1")
    await wait_for(lambda: "CP1" in central.system.connections)
    first_adapter = central.system.adapter("CP1")
    assert first_adapter is not None
    pending = asyncio.ensure_future(first_adapter.call("ClearCache", {}))
    await asyncio.wait_for(first.recv(), 2)
    second = await central.raw("CP1")
    assert await closed_code(first) == 1000
    with pytest.raises(ChargerOfflineError):
        await asyncio.wait_for(pending, 2)
    second_adapter = central.system.adapter("CP1")
    assert second_adapter is not None
    assert second_adapter is not first_adapter
    model = central.backend.chargers["CP1"]
    assert model.connected, "closing the replaced socket does not disconnect the charger"
    assert model.link is second_adapter
    assert (await central.request(second, "Heartbeat", {}))[0] == CALLRESULT
    await second.close()
    await wait_for(lambda: not model.connected)
    assert central.system.connections == {}
    assert model.link is None
    assert central.backend.connection_events[-1] == ("CP1", False)


async def test_replacement_does_not_flap_connected(central: Central) -> None:
    await central.raw("CP1")
    await wait_for(lambda: "CP1" in central.system.connections)
    model = central.backend.chargers["CP1"]
    seen: list[bool] = []
    model.add_listener(lambda c: seen.append(c.connected))
    second = await central.raw("CP1")
    assert (await central.request(second, "Heartbeat", {}))[0] == CALLRESULT
    assert False not in seen
    assert central.backend.connection_events == [("CP1", True), ("CP1", True)]


async def test_reconnect_of_accepted_charger_needs_no_boot(central: Central) -> None:
    ws = await central.raw("CP1")
    assert (await central.request(ws, "BootNotification", BOOT))[2]["status"] == "Accepted"
    await ws.close()
    model = central.backend.chargers["CP1"]
    await wait_for(lambda: not model.connected)
    again = await central.raw("CP1")
    assert model.boot_status is BootStatus.ACCEPTED
    assert (await central.request(again, "Heartbeat", {}))[0] == CALLRESULT


async def test_pending_charger_stays_pending_after_reconnect(central: Central) -> None:
    central.backend.policy = UnknownChargerPolicy.ASK
    ws = await central.raw("NEW")
    assert (await central.request(ws, "BootNotification", BOOT))[2]["status"] == "Pending"
    assert (await central.request(ws, "Heartbeat", {}))[2] == "SecurityError"
    await ws.close()
    await wait_for(lambda: not central.backend.chargers["NEW"].connected)
    again = await central.raw("NEW")
    assert (await central.request(again, "Heartbeat", {}))[2] == "SecurityError"
    assert (await central.request(again, "BootNotification", BOOT))[2]["status"] == "Pending"


async def test_unconfirmed_charger_cannot_skip_boot(central: Central) -> None:
    central.backend.policy = UnknownChargerPolicy.ASK
    ws = await central.raw("NEW")
    start = {"connectorId": 1, "idTag": "TAG", "meterStart": 0, "timestamp": "2024-05-01T12:00:00Z"}
    frame = await central.request(ws, "StartTransaction", start)
    assert frame[:3] == [CALLERROR, frame[1], "SecurityError"]


async def test_call_to_a_disconnected_charger_fails(central: Central) -> None:
    ws = await central.raw("CP1")
    await wait_for(lambda: "CP1" in central.system.connections)
    adapter = central.system.adapter("CP1")
    assert adapter is not None
    await ws.close()
    await wait_for(lambda: central.system.adapter("CP1") is None)
    with pytest.raises((ChargerOfflineError, CallTimeoutError)):
        await adapter.call("ClearCache", {}, timeout=0.1)


async def test_stop_closes_connections_and_frees_the_port(central: Central) -> None:
    ws = await central.raw("CP1")
    charger = await central.sim("SECURE", password=PASSWORD)
    await charger.boot()
    await wait_for(lambda: len(central.system.connections) == 2)
    await central.system.stop()
    assert await closed_code(ws) == 1001
    await wait_for(lambda: not any(c.connected for c in central.backend.chargers.values()))
    assert central.system.connections == {}
    with pytest.raises(ConnectionRefusedError):
        await central.raw("CP1")
    await central.system.stop()  # stopping twice is harmless
    await central.system.start()  # the port can be opened again
    assert (await central.request(await central.raw("CP1"), "Heartbeat", {}))[0] == CALLRESULT


async def test_start_on_a_taken_port_raises(socket_enabled: None) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        system = CentralSystem(SiteBackend(), host="127.0.0.1", port=port)
        with pytest.raises(OSError, match=r"(?i)address already in use"):
            await system.start()
        assert system._runner is None
        assert system._sites == []


# -------------------------------------------------------------------------------- TLS
def test_build_ssl_context(tmp_path: Path) -> None:
    cert, key = self_signed_cert(tmp_path)
    context = build_ssl_context(str(cert), str(key))
    assert context.minimum_version is ssl.TLSVersion.TLSv1_2
    combined = tmp_path / "combined.pem"
    combined.write_bytes(cert.read_bytes() + key.read_bytes())
    assert build_ssl_context(str(combined), None).minimum_version is ssl.TLSVersion.TLSv1_2
    assert build_ssl_context(str(combined), "").minimum_version is ssl.TLSVersion.TLSv1_2


async def test_tls_connection_is_secure(socket_enabled: None, tmp_path: Path) -> None:
    cert, key = self_signed_cert(tmp_path)
    backend = RecordingBackend()
    backend.set_known([ChargerConfig("SECURE", password_hash=hash_password(PASSWORD))])
    ws_port, tls_port = free_port(), free_port()
    system = CentralSystem(
        backend, host="127.0.0.1", port=ws_port, tls_port=tls_port, ssl_context=build_ssl_context(str(cert), str(key))
    )
    await system.start()
    client_context = ssl.create_default_context(cafile=str(cert))
    try:
        charger, ws, task = await sim_connect(
            f"wss://127.0.0.1:{tls_port}", "SECURE", password=PASSWORD, ssl_context=client_context
        )
        try:
            assert (await charger.boot()).status == "Accepted"
            assert backend.admissions == [("SECURE", PASSWORD, True, Admission.ACCEPT)]
        finally:
            task.cancel()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await task
            await ws.close()
        # the plain port is served too, and reported as not secure
        plain = await ws_connect(
            f"ws://127.0.0.1:{ws_port}/SECURE", additional_headers=basic_auth_header("SECURE", PASSWORD), proxy=None
        )
        await plain.close()
        assert backend.admissions[-1] == ("SECURE", PASSWORD, False, Admission.ACCEPT)
    finally:
        await system.stop()
        await backend.cancel_tasks()


async def test_tls_port_without_context_is_not_opened(socket_enabled: None) -> None:
    tls_port = free_port()
    system = CentralSystem(SiteBackend(), host="127.0.0.1", port=None, tls_port=tls_port)
    await system.start()
    try:
        assert system._sites == []
        with pytest.raises(ConnectionRefusedError):
            await ws_connect(f"ws://127.0.0.1:{tls_port}/CP1", proxy=None, open_timeout=2)
    finally:
        await system.stop()
