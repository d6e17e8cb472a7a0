"""The charger simulator command line and the demo, against a real central system.

The simulator runs against Cariflex's own central system (``CentralSystem`` + ``SiteBackend``,
no Home Assistant) on a free port, over OCPP 1.6, 2.0.1 or both. The demo runs once against a
real Home Assistant process, and otherwise against that central system (``CentralHost``).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
import importlib.metadata
import itertools
import logging
import os
from pathlib import Path
import re
import signal
import socket
import ssl
import subprocess
import sys
import textwrap
from typing import Any

import aiohttp
import pytest

from custom_components.cariflex.access import AuthMode
from custom_components.cariflex.modbus import TCP, ModbusDevice, Quantity, load_profile
from custom_components.cariflex.ocpp.model import Charger, Session
from custom_components.cariflex.ocpp.server import CentralSystem
from custom_components.cariflex.ocpp.site import ChargerConfig, SiteBackend, UnknownChargerPolicy, hash_password
from simulator.cli import Options, Simulation, client_ssl_context, main as cli_main, main_async, parse_args
from simulator.hass_runner import (
    STOP_TIMEOUT_S,
    HassError,
    HassInstance,
    SiteSettings,
    banner,
    build_parser as build_demo_parser,
    busy_port,
    demo,
    demo_instance,
    ensure_frontend,
    frontend_missing,
    frontend_requirement,
    main as demo_main,
    recreate_demo_dir,
    simulator_options,
)
from simulator.site_meters import SiteShape, pv_power
from tests.conftest import free_port, wait_for

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "pw-of-the-sim"
SEQ_NO = re.compile(r"T1: TransactionEvent Updated EVSE 1 seqNo (\d+)")


@dataclass
class Central:
    """A running central system with its site policy and what it saw."""

    backend: SiteBackend
    system: CentralSystem
    port: int
    energy: dict[str, list[float]] = field(default_factory=dict)
    ended: list[tuple[str, Session]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def charger(self, charger_id: str) -> Charger:
        return self.backend.chargers[charger_id]

    def watch(self, charger_id: str) -> None:
        """Record every energy register value the central system's model takes."""
        seen = self.energy.setdefault(charger_id, [])

        def listener(charger: Charger) -> None:
            connector = charger.connectors.get(1)
            value = connector.readings.energy_wh if connector else None
            if value is not None and (not seen or seen[-1] != value):
                seen.append(value)

        self.backend.charger(charger_id).add_listener(listener)

    def seq_nos(self, charger_id: str, transaction_id: str) -> list[int]:
        """The seqNos of the transaction's TransactionEvents the central system applied."""
        return sorted(seq for tid, seq in self.charger(charger_id).seen_events if tid == transaction_id)

    async def restart(self) -> None:
        """Drop every connection and listen again on the same port."""
        await self.system.stop()
        self.system = CentralSystem(self.backend, host="127.0.0.1", port=self.port)
        await self.system.start()


@pytest.fixture
async def central(socket_enabled: None) -> AsyncIterator[Central]:
    """Central system that knows T1 and T2 (password protected) and refuses other chargers."""
    port = free_port()
    central: Central | None = None

    def ended(charger: Charger, session: Session) -> None:
        assert central is not None
        central.ended.append((charger.charger_id, session))

    backend = SiteBackend(policy=UnknownChargerPolicy.REFUSE, heartbeat_interval=1, on_session_ended=ended)
    digest = hash_password(PASSWORD)
    backend.set_known([ChargerConfig("T1", password_hash=digest), ChargerConfig("T2", password_hash=digest)])
    system = CentralSystem(backend, host="127.0.0.1", port=port)
    await system.start()
    central = Central(backend, system, port)
    central.watch("T1")
    central.watch("T2")
    yield central
    await central.system.stop()
    await backend.cancel_tasks()


def argv(central: Central, *extra: str) -> list[str]:
    return ["--url", central.url, "--count", "2", "--id-prefix", "T", "--password", PASSWORD, *extra]


def rising(values: list[float]) -> bool:
    return all(b > a for a, b in itertools.pairwise(values))


# ------------------------------------------------------------------ arguments
def test_parse_defaults() -> None:
    options = parse_args(["--url", "ws://127.0.0.1:9000"])
    assert options == Options(url="ws://127.0.0.1:9000")
    assert options.charger_ids() == ["SIM1"]
    assert options.password is None
    assert options.interval == 10.0
    assert options.ocpp == "1.6"


def test_parse_every_option() -> None:
    options = parse_args(
        [
            "--url",
            "wss://cs.example:9043/ocpp",
            "--count",
            "3",
            "--id-prefix",
            "BAY",
            "--password",
            "secret",
            "--sessions",
            "2",
            "--interval",
            "0.5",
            "--ocpp",
            "2.0.1",
            "--cafile",
            "ca.pem",
            "--duration",
            "12",
            "--connectors",
            "2",
            "--power",
            "11000",
            "--id-tag",
            "BADGE",
        ]
    )
    assert options.charger_ids() == ["BAY1", "BAY2", "BAY3"]
    assert (options.password, options.sessions, options.interval) == ("secret", 2, 0.5)
    assert (options.ocpp, options.cafile, options.duration) == ("2.0.1", "ca.pem", 12.0)
    assert (options.connectors, options.power_w, options.id_tag) == (2, 11000.0, "BADGE")


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--url", "http://127.0.0.1:9000"],
        ["--url", "ws://h", "--count", "0"],
        ["--url", "ws://h", "--sessions", "-1"],
        ["--url", "ws://h", "--interval", "0"],
        ["--url", "ws://h", "--duration", "-3"],
        ["--url", "ws://h", "--ocpp", "2.1"],
        ["--url", "ws://h", "--cafile", "ca.pem"],
    ],
)
def test_parse_rejects(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_args(args)
    assert exc.value.code == 2
    assert "error" in capsys.readouterr().err


def test_ocpp_version_of_each_charger() -> None:
    mixed = parse_args(["--url", "ws://h", "--count", "3", "--ocpp", "mixed"])
    assert mixed.versions() == {"SIM1": "1.6", "SIM2": "2.0.1", "SIM3": "1.6"}
    assert [runner.version for runner in Simulation(mixed).runners] == ["1.6", "2.0.1", "1.6"]
    assert parse_args(["--url", "ws://h", "--count", "2", "--ocpp", "2.0.1"]).versions() == {
        "SIM1": "2.0.1",
        "SIM2": "2.0.1",
    }
    assert parse_args(["--url", "ws://h"]).versions() == {"SIM1": "1.6"}
    with pytest.raises(ValueError, match=r"unknown OCPP version '2\.1' \(choose from 1\.6, 2\.0\.1, mixed\)"):
        Simulation(Options(url="ws://h", ocpp="2.1"))


def test_tls_context() -> None:
    assert client_ssl_context(parse_args(["--url", "ws://h"])) is None
    import certifi

    context = client_ssl_context(parse_args(["--url", "wss://h", "--cafile", certifi.where()]))
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.minimum_version is ssl.TLSVersion.TLSv1_2


# ------------------------------------------------------------ against a real CS
async def test_chargers_boot_heartbeat_and_charge(central: Central) -> None:
    code = await main_async(argv(central, "--sessions", "1", "--interval", "0.2", "--duration", "2"))
    assert code == 0
    t1, t2 = central.charger("T1"), central.charger("T2")
    assert (t1.ocpp_version, t2.ocpp_version) == ("1.6", "1.6")
    assert t1.boot_status == "Accepted"
    assert t2.boot_status == "Accepted"
    assert t1.info.serial == "T1-SN"
    assert t1.last_heartbeat is not None  # the central system asked for one every second
    assert t2.last_heartbeat is not None
    # T1 charged: its energy register rose sample after sample in the central system's model.
    energy = central.energy["T1"]
    assert len(energy) >= 3, energy
    assert rising(energy), energy
    # T2 stayed idle.
    assert t2.connectors[1].status == "available"
    assert t2.connectors[1].readings.energy_wh is None
    # The end of --duration stopped the session with StopTransaction and closed both connections.
    assert [charger_id for charger_id, _ in central.ended] == ["T1"]
    session = central.ended[0][1]
    assert session.stop_reason == "Local"
    assert session.meter_stop_wh is not None
    assert session.meter_stop_wh >= energy[-1] > session.meter_start_wh
    assert not t1.connected
    assert not t2.connected
    assert "T3" not in central.backend.chargers


async def test_201_stations_boot_heartbeat_and_charge(central: Central) -> None:
    simulation = Simulation(parse_args(argv(central, "--ocpp", "2.0.1", "--interval", "0.1", "--duration", "2")))
    assert await simulation.run() == 0
    t1, t2 = central.charger("T1"), central.charger("T2")
    assert (t1.ocpp_version, t2.ocpp_version) == ("2.0.1", "2.0.1")
    assert (t1.boot_status, t2.boot_status) == ("Accepted", "Accepted")
    assert (t1.info.model, t1.info.serial, t2.info.serial) == ("SimCharger201", "T1-SN", "T2-SN")
    assert t1.last_heartbeat is not None  # HeartbeatInterval 1 s from the BootNotification answer
    assert t2.last_heartbeat is not None
    # T1 charged: TransactionEvent Updated raised the register in the central system's model.
    energy = central.energy["T1"]
    assert len(energy) >= 4, energy
    assert rising(energy), energy
    # T2 reported its EVSE Available and stayed idle.
    assert t2.connectors[1].status == "available"
    assert t2.connectors[1].readings.energy_wh is None
    assert central.energy["T2"] == []
    # The end of --duration ended the transaction (TransactionEvent Ended) and closed both connections.
    assert [charger_id for charger_id, _ in central.ended] == ["T1"]
    session = central.ended[0][1]
    runner = simulation.runners[0]
    assert runner.transactions == runner.stopped_transactions == [session.transaction_id]
    assert session.stop_reason == "Local"
    assert session.id_tag == "SIMTAG"
    assert session.meter_stop_wh is not None
    assert session.meter_stop_wh >= energy[-1] > session.meter_start_wh
    seq_nos = central.seq_nos("T1", session.transaction_id)
    assert seq_nos[0] == 0  # Started
    assert len(seq_nos) >= 5  # Started, Updated..., Ended
    assert t1.connectors[1].session is None
    assert not t1.connected
    assert not t2.connected


async def test_mixed_site_charges_over_both_versions(central: Central) -> None:
    options = parse_args(argv(central, "--ocpp", "mixed", "--sessions", "2", "--interval", "0.1", "--duration", "3"))
    simulation = Simulation(options)
    assert await simulation.run() == 0
    assert {charger_id: central.charger(charger_id).ocpp_version for charger_id in ("T1", "T2")} == {
        "T1": "1.6",
        "T2": "2.0.1",
    }
    for charger_id in ("T1", "T2"):
        assert len(central.energy[charger_id]) >= 2, charger_id
        assert rising(central.energy[charger_id]), charger_id
    ended = dict(central.ended)
    assert sorted(ended) == ["T1", "T2"]
    assert ended["T1"].transaction_id.isdigit()  # 1.6: the central system's integer id
    assert re.fullmatch(r"[0-9a-f-]{36}", ended["T2"].transaction_id)  # 2.0.1: the station's uuid
    assert {session.stop_reason for session in ended.values()} == {"Local"}
    assert [runner.stopped_transactions for runner in simulation.runners] == [
        [ended["T1"].transaction_id],
        [ended["T2"].transaction_id],
    ]


async def test_refused_sessions_on_both_versions(central: Central, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="simulator")
    central.backend.badges.mode = AuthMode.LIST  # SIMTAG is not on the site's badge list
    stop = asyncio.Event()
    simulation = Simulation(parse_args(argv(central, "--ocpp", "mixed", "--sessions", "2", "--interval", "0.1")), stop)
    run = asyncio.create_task(simulation.run())
    try:
        await wait_for(
            lambda: (
                "T1: StartTransaction refused: Invalid" in caplog.text
                and "T2: TransactionEvent Started refused: Invalid" in caplog.text
            )
        )
        # The 2.0.1 station ended the refused transaction at once and freed its EVSE.
        await wait_for(lambda: central.charger("T2").connectors[1].status == "available")
        assert [(charger_id, session.stop_reason) for charger_id, session in central.ended] == [("T2", "DeAuthorized")]
        # Both chargers keep serving.
        assert central.charger("T1").connected
        assert central.charger("T2").connected
    finally:
        stop.set()
        assert await asyncio.wait_for(run, 5) == 0
    assert [runner.transactions for runner in simulation.runners] == [[], []]


async def test_wrong_password_is_retried_and_logged(central: Central, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="simulator")
    options = parse_args(
        ["--url", central.url, "--id-prefix", "T", "--password", "wrong", "--duration", "0.6", "--retry-min", "0.1"]
    )
    assert await Simulation(options).run() == 0
    assert central.charger("T1").boot_status is None
    failures = [r.getMessage() for r in caplog.records if "HTTP 401 (wrong or missing password)" in r.getMessage()]
    assert len(failures) >= 2  # retried


def test_main_retries_an_unreachable_central_system(socket_enabled: None, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="simulator")
    sigint_handler = signal.getsignal(signal.SIGINT)
    url = f"ws://127.0.0.1:{free_port()}"  # nobody listens there
    assert cli_main(["--url", url, "--ocpp", "2.0.1", "--duration", "0.5", "--retry-min", "0.05"]) == 0
    failures = [r.getMessage() for r in caplog.records if f"SIM1: cannot connect to {url}" in r.getMessage()]
    assert len(failures) >= 2, failures  # retried
    assert "ConnectionRefusedError" in failures[0]
    assert "simulator stopped" in caplog.text
    assert signal.getsignal(signal.SIGINT) is sigint_handler  # the handler in place before is back


async def test_reconnects_and_resumes_the_session(central: Central) -> None:
    stop = asyncio.Event()
    simulation = Simulation(
        parse_args(argv(central, "--interval", "0.1", "--retry-min", "0.1", "--retry-max", "0.2")), stop
    )
    run = asyncio.create_task(simulation.run())
    try:
        t1 = central.charger("T1")
        await wait_for(lambda: len(central.energy["T1"]) >= 2 and central.charger("T2").connected)
        session = t1.connectors[1].session
        assert session is not None
        before = central.energy["T1"][-1]
        await central.restart()
        assert not t1.connected
        await wait_for(lambda: t1.connected and central.charger("T2").connected)
        await wait_for(lambda: central.energy["T1"][-1] > before + 1)
        assert t1.connectors[1].session is session  # same transaction carried on after the reconnection
        assert [runner.connections for runner in simulation.runners] == [2, 2]
        assert simulation.runners[0].transactions == [session.transaction_id]
    finally:
        stop.set()
        assert await asyncio.wait_for(run, 5) == 0
    assert [charger_id for charger_id, _ in central.ended] == ["T1"]


async def test_201_reconnects_and_continues_the_transaction(central: Central, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="simulator")
    stop = asyncio.Event()
    options = parse_args(
        argv(central, "--ocpp", "2.0.1", "--interval", "0.1", "--retry-min", "0.1", "--retry-max", "0.2")
    )
    simulation = Simulation(options, stop)
    run = asyncio.create_task(simulation.run())
    try:
        t1 = central.charger("T1")
        await wait_for(lambda: len(central.energy["T1"]) >= 3 and central.charger("T2").connected)
        session = t1.connectors[1].session
        assert session is not None
        energy_before = central.energy["T1"][-1]
        seq_before = central.seq_nos("T1", session.transaction_id)[-1]
        await central.restart()
        assert not t1.connected
        await wait_for(lambda: t1.connected and central.charger("T2").connected)
        await wait_for(lambda: central.energy["T1"][-1] > energy_before + 0.5)
        # Same transaction: the central system's session carried on, with later seqNos.
        assert t1.connectors[1].session is session
        assert central.seq_nos("T1", session.transaction_id)[-1] > seq_before + 1
        assert [runner.connections for runner in simulation.runners] == [2, 2]
        assert simulation.runners[0].transactions == [session.transaction_id]
        assert f"T1: resuming transaction {session.transaction_id} on EVSE 1 at seqNo" in caplog.text
    finally:
        stop.set()
        assert await asyncio.wait_for(run, 5) == 0
    # What the station sent: one seqNo sequence across both connections, never restarted.
    sent = [int(number) for number in SEQ_NO.findall(caplog.text)]
    assert sent[0] == 1
    assert sent == sorted(set(sent)), sent
    assert max(sent) > seq_before + 1
    assert [(charger_id, ended.stop_reason) for charger_id, ended in central.ended] == [("T1", "Local")]
    assert central.ended[0][1] is session


async def test_sigint_stops_the_sessions_and_exits(central: Central) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "simulator",
        *argv(central, "--ocpp", "mixed", "--sessions", "2", "--interval", "0.1"),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await wait_for(lambda: len(central.energy["T1"]) >= 2 and len(central.energy["T2"]) >= 2, timeout=8)
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = await asyncio.wait_for(process.communicate(), 5)
    log = stderr.decode()
    assert process.returncode == 0, log
    assert "T1: StopTransaction" in log
    assert "T2: TransactionEvent Ended" in log
    assert "simulator stopped" in log
    assert sorted(charger_id for charger_id, _ in central.ended) == ["T1", "T2"]
    assert not central.charger("T1").connected
    assert not central.charger("T2").connected


# ------------------------------------------------- Home Assistant runner (no HA)
def test_site_settings_are_the_config_flow_answers() -> None:
    assert SiteSettings().flow_input() == {
        "site_name": "Demo",
        "ws_port": 9000,
        "wss_port": 9043,
        "unknown_chargers": "accept",
        "auth_mode": "open",
        "phases": "3",
        "voltage": 230,
        "subscribed_power_kw": 36,
        "heartbeat_interval": 300,
    }
    moved = SiteSettings(ws_port=9043, extra={"call_timeout": 5}).flow_input()
    assert (moved["ws_port"], moved["wss_port"], moved["call_timeout"]) == (9043, 9044, 5)


@pytest.mark.parametrize("ui", [True, False])
def test_written_configuration(tmp_path: Path, ui: bool) -> None:
    from homeassistant.util.yaml import load_yaml_dict

    instance = HassInstance(tmp_path / "ha", port=18555, ui=ui, logs={"simulator": "debug"})
    instance.write_config()
    instance.write_config()  # idempotent
    config = load_yaml_dict(str(tmp_path / "ha" / "configuration.yaml"))
    assert config["http"] == {"server_host": "127.0.0.1", "server_port": 18555}
    assert config["logger"]["logs"] == {"custom_components.cariflex": "info", "simulator": "debug"}
    assert config["automation"] == []
    assert {"api", "onboarding", "person"} <= set(config)
    assert ("frontend" in config) is ui
    assert "default_config" not in config  # it would pip-install and reach the internet
    link = tmp_path / "ha" / "custom_components" / "cariflex"
    assert (link / "manifest.json").samefile(ROOT / "custom_components" / "cariflex" / "manifest.json")
    assert instance.base_url == "http://127.0.0.1:18555"
    assert instance.pid is None
    assert instance.returncode is None


def test_demo_dir_is_recreated_but_never_a_foreign_one(tmp_path: Path) -> None:
    demo_dir = tmp_path / "demo-config"
    recreate_demo_dir(demo_dir)
    (demo_dir / "old.db").write_text("x")
    recreate_demo_dir(demo_dir)
    assert sorted(p.name for p in demo_dir.iterdir()) == [".cariflex-demo"]
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("x")
    with pytest.raises(HassError, match="not made by the demo"):
        recreate_demo_dir(foreign)
    assert (foreign / "keep.txt").exists()


def fake_python(tmp_path: Path, *, ignore_sigterm: bool = False) -> str:
    """An executable standing for the interpreter: it prints a line, then hangs (no HTTP server)."""
    script = tmp_path / ("stubborn-python" if ignore_sigterm else "slow-python")
    trap = "trap '' TERM\n" if ignore_sigterm else ""
    script.write_text(f"#!/bin/sh\n{trap}echo 'fake Home Assistant starting'\nexec sleep 30\n")
    script.chmod(0o755)
    return str(script)


def process_gone(pid: int) -> bool:
    """The process exited and was reaped."""
    return not Path(f"/proc/{pid}").exists()


async def test_start_reports_an_early_exit(tmp_path: Path, socket_enabled: None) -> None:
    instance = HassInstance(tmp_path / "ha", port=free_port(), python="/bin/false")
    with pytest.raises(HassError, match="exited with code 1"):
        await instance.start(timeout=10)
    assert instance.returncode == 1
    assert await instance.stop() == 1
    assert await instance.stop() == 1  # idempotent


async def test_start_gives_up_when_home_assistant_does_not_answer(tmp_path: Path, socket_enabled: None) -> None:
    instance = HassInstance(tmp_path / "ha", port=free_port(), python=fake_python(tmp_path))
    with pytest.raises(HassError, match=r"did not answer within 0 s\nfake Home Assistant starting"):
        await instance.start(timeout=0.4)
    assert instance.returncode == -signal.SIGTERM  # stopped, not left running
    assert instance.pid is not None
    assert process_gone(instance.pid)


async def test_stop_kills_what_ignores_sigterm(tmp_path: Path, socket_enabled: None) -> None:
    instance = HassInstance(tmp_path / "ha", port=free_port(), python=fake_python(tmp_path, ignore_sigterm=True))
    starting = asyncio.create_task(instance.start(timeout=10))
    await wait_for(lambda: "fake Home Assistant starting" in instance.console_tail())
    with pytest.raises(HassError, match="already started"):
        await instance.start()
    assert await instance.stop(timeout=0.2) == -signal.SIGKILL
    with pytest.raises(HassError, match="exited with code -9"):
        await starting
    assert await instance.stop() == -signal.SIGKILL
    assert instance.pid is not None
    assert process_gone(instance.pid)


def fake_hass(tmp_path: Path) -> str:
    """An executable standing for the interpreter: it answers HTTP 200 on the configured port, exits 0 on SIGTERM."""
    script = tmp_path / "answering-python"
    script.write_text(
        f"#!{sys.executable}\n"
        + textwrap.dedent(
            """\
            import http.server, pathlib, re, signal, sys

            config = pathlib.Path(sys.argv[sys.argv.index("--config") + 1]) / "configuration.yaml"
            port = int(re.search(r"server_port: (\\d+)", config.read_text()).group(1))


            class Handler(http.server.BaseHTTPRequestHandler):
                def do_GET(self):
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(b"[]")


            signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
            http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
            """
        )
    )
    script.chmod(0o755)
    return str(script)


async def test_async_with_starts_and_stops(tmp_path: Path, socket_enabled: None) -> None:
    async with HassInstance(tmp_path / "ha", port=free_port(), python=fake_hass(tmp_path)) as instance:
        assert instance.returncode is None  # it answered /api/onboarding
        assert await instance.onboarding_steps() == {}
        pid = instance.pid
    assert instance.returncode == 0  # stopped with SIGTERM
    assert pid is not None
    assert process_gone(pid)


async def test_start_refuses_a_busy_port(tmp_path: Path, socket_enabled: None) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        instance = HassInstance(tmp_path / "ha", port=busy.getsockname()[1])
        with pytest.raises(HassError, match="already in use"):
            await instance.start()
    assert instance.process is None


async def test_refresh_needs_a_login(tmp_path: Path) -> None:
    with pytest.raises(HassError, match="no refresh token"):
        await HassInstance(tmp_path / "ha").refresh()


def test_run_from_synchronous_code() -> None:
    async def answer() -> int:
        await asyncio.sleep(0)
        return 42

    assert HassInstance.run(answer()) == 42


def test_demo_options_and_frontend_pin() -> None:
    args = build_demo_parser().parse_args([])
    assert (args.port, args.ocpp_port, args.chargers, args.sessions, args.interval) == (8123, 9000, 3, 2, 10.0)
    assert (args.subscribed_power, args.solar_start, args.no_energy) == (9.0, 11.5, False)
    assert (args.cloud_port, args.no_cloud) == (8180, False)
    assert args.ocpp == "1.6"  # unchanged for existing users
    args = build_demo_parser().parse_args(["--port", "8124", "--ocpp-port", "9100", "--chargers", "5"])
    assert (args.port, args.ocpp_port, args.chargers) == (8124, 9100, 5)
    assert build_demo_parser().parse_args(["--ocpp", "mixed"]).ocpp == "mixed"
    assert build_demo_parser().parse_args(["--ocpp", "2.0.1"]).ocpp == "2.0.1"
    with pytest.raises(SystemExit):
        build_demo_parser().parse_args(["--ocpp", "2.1"])
    assert re.fullmatch(r"home-assistant-frontend==\d{8}\.\d+", frontend_requirement())


def test_frontend_is_installed_only_when_missing() -> None:
    requirement = frontend_requirement()
    name, _, wanted = requirement.partition("==")
    try:
        installed: str | None = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        installed = None
    missing = frontend_missing()
    assert missing == (None if installed == wanted else requirement)
    if missing is None:
        ensure_frontend(python="/bin/false")  # nothing to install: pip (here a failing one) is not run
    else:
        with pytest.raises(subprocess.CalledProcessError):
            ensure_frontend(python="/bin/false")  # it tried to run pip


def demo_args(tmp_path: Path, *extra: str) -> argparse.Namespace:
    """Demo options on free ports, without the web interface, in a config dir under ``tmp_path``."""
    return build_demo_parser().parse_args(
        [
            "--port",
            str(free_port()),
            "--ocpp-port",
            str(free_port()),
            "--cloud-port",
            str(free_port()),
            "--no-ui",
            "--config-dir",
            str(tmp_path / "demo"),
            *extra,
        ]
    )


def test_demo_chargers_and_banner(tmp_path: Path) -> None:
    args = build_demo_parser().parse_args(
        ["--ocpp-port", "9100", "--chargers", "3", "--sessions", "2", "--interval", "5", "--ocpp", "mixed"]
    )
    options = simulator_options(args)
    assert options == Options(
        url="ws://127.0.0.1:9100", count=3, id_prefix="SIM", sessions=2, interval=5.0, ocpp="mixed"
    )
    text = banner(HassInstance(tmp_path / "ha", port=8124), args, options)
    assert "Home Assistant  http://127.0.0.1:8124" in text
    assert "log in with     demo / demo" in text
    assert "OCPP (ws)       ws://127.0.0.1:9100/<charger id>" in text
    assert "chargers        SIM1, SIM2, SIM3 (2 charging)" in text
    assert "OCPP versions   SIM1 1.6, SIM2 2.0.1, SIM3 1.6" in text
    assert f"config dir      {(tmp_path / 'ha').resolve()}" in text
    default = build_demo_parser().parse_args([])
    text = banner(HassInstance(tmp_path / "ha"), default, simulator_options(default))
    assert "chargers        SIM1, SIM2, SIM3 (2 charging)" in text
    assert "energy manager  off (--no-energy)" in text
    assert "OCPP versions   1.6   (--ocpp 1.6 | 2.0.1 | mixed)" in text


def test_demo_instance_uses_a_fresh_config_dir(tmp_path: Path, socket_enabled: None) -> None:
    args = demo_args(tmp_path, "--debug")
    recreate_demo_dir(args.config_dir)
    (args.config_dir / "home-assistant_v2.db").write_text("previous run")
    instance = demo_instance(args)
    assert instance.config_dir == args.config_dir.resolve()
    assert sorted(p.name for p in args.config_dir.iterdir()) == [".cariflex-demo"]
    assert instance.port == args.port
    assert "frontend" not in instance.components  # --no-ui
    assert instance.logs == {"custom_components.cariflex": "debug"}
    assert (
        "frontend" in demo_instance(build_demo_parser().parse_args(["--config-dir", str(args.config_dir)])).components
    )


def test_demo_refuses_busy_ports(tmp_path: Path, socket_enabled: None, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        port = busy.getsockname()[1]
        code = demo_main(["--no-ui", "--port", str(port), "--config-dir", str(tmp_path / "demo")])
        assert code == 1
        assert f"demo: port {port} (--port) is already in use; pick another with --port" in capsys.readouterr().err
        args = demo_args(tmp_path, "--ocpp-port", str(port))
        assert busy_port(args) == f"demo: port {port} (--ocpp-port) is already in use; pick another with --ocpp-port"
    assert busy_port(args) is None
    assert not (tmp_path / "demo").exists()  # nothing started, nothing written


async def test_demo_refuses_a_foreign_config_dir(
    tmp_path: Path, socket_enabled: None, caplog: pytest.LogCaptureFixture
) -> None:
    args = demo_args(tmp_path)
    args.config_dir.mkdir()
    (args.config_dir / "configuration.yaml").write_text("# mine\n")
    assert await demo(args) == 1
    assert "was not made by the demo" in caplog.text
    assert (args.config_dir / "configuration.yaml").read_text() == "# mine\n"


async def test_demo_reports_a_home_assistant_that_cannot_start(
    tmp_path: Path, socket_enabled: None, caplog: pytest.LogCaptureFixture
) -> None:
    args = demo_args(tmp_path)
    host = HassInstance(tmp_path / "ha", port=args.port, python="/bin/false")
    assert await demo(args, host=host) == 1
    assert "Home Assistant exited with code 1" in caplog.text
    assert host.returncode == 1


async def test_demo_interrupted_during_start_up(
    tmp_path: Path, socket_enabled: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="simulator")
    args = demo_args(tmp_path)
    host = HassInstance(tmp_path / "ha", port=args.port, python=fake_python(tmp_path))
    stop = asyncio.Event()
    run = asyncio.create_task(demo(args, host=host, stop=stop))
    await wait_for(lambda: "fake Home Assistant starting" in host.console_tail())
    stop.set()  # Ctrl-C while Home Assistant starts
    assert await asyncio.wait_for(run, STOP_TIMEOUT_S) == 130
    assert "interrupted during start-up" in caplog.text
    assert host.returncode == -signal.SIGTERM  # the start-up stopped what it had started
    assert host.pid is not None
    assert process_gone(host.pid)
    # Interrupted before anything started: nothing starts.
    idle = HassInstance(tmp_path / "idle", port=args.port)
    assert await demo(args, host=idle, stop=stop) == 130
    assert idle.pid is None
    assert not idle.config_dir.exists()


class CentralHost:
    """The demo's host without Home Assistant: Cariflex's own central system and site policy."""

    def __init__(self, config_dir: Path) -> None:
        self.config_dir = config_dir
        self.ended: list[tuple[str, Session]] = []
        self.backend = SiteBackend(
            policy=UnknownChargerPolicy.ACCEPT,
            heartbeat_interval=1,
            on_session_ended=lambda charger, session: self.ended.append((charger.charger_id, session)),
        )
        self.system: CentralSystem | None = None
        self.port = 0
        self.exit_code: int | None = None
        self.stops = 0
        self.grid_meter: ModbusDevice | None = None
        self.pv_inverter: ModbusDevice | None = None
        self.charge_modes: dict[str, str] = {}
        self.cloud: tuple[str, str] | None = None

    @property
    def base_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return None

    @property
    def returncode(self) -> int | None:
        return self.exit_code

    async def start_site(self, settings: SiteSettings | None = None) -> dict[str, Any]:
        settings = settings or SiteSettings()
        self.port = settings.ws_port
        self.system = CentralSystem(self.backend, host="127.0.0.1", port=self.port)
        await self.system.start()
        return {"domain": "cariflex", "title": settings.site_name, "state": "loaded"}

    async def crash(self) -> None:
        """Go away as a Home Assistant that exits would."""
        assert self.system is not None
        await self.system.stop()
        self.system = None
        self.exit_code = 1

    async def stop(self, timeout: float = STOP_TIMEOUT_S) -> int | None:
        self.stops += 1
        if self.system is not None:
            await self.system.stop()
            self.system = None
        await self.backend.cancel_tasks()
        return self.exit_code

    def console_tail(self, lines: int = 30) -> str:
        return "the central system went away"

    async def set_charge_mode(self, charger_id: str, mode: str, timeout: float = 60) -> None:
        self.charge_modes[charger_id] = mode

    async def start_cloud(self, url: str, token: str) -> None:
        self.cloud = (url, token)

    async def start_energy(self, grid_port: int, pv_port: int) -> None:
        """What Home Assistant's meter sub-entries would read: the demo's two Modbus servers."""
        self.grid_meter = ModbusDevice(load_profile("eastron_sdm630"), TCP("127.0.0.1", grid_port))
        self.pv_inverter = ModbusDevice(load_profile("sunspec"), TCP("127.0.0.1", pv_port))

    def charging(self, charger_id: str) -> bool:
        """Connected, with a session whose power the central system has seen."""
        charger = self.backend.chargers.get(charger_id)
        connector = charger.connectors.get(1) if charger else None
        return bool(
            charger and charger.connected and connector and connector.session and (connector.readings.power_w or 0) > 0
        )


async def test_demo_runs_a_mixed_site_until_ctrl_c(
    tmp_path: Path, socket_enabled: None, capsys: pytest.CaptureFixture[str]
) -> None:
    sigint_handler = signal.getsignal(signal.SIGINT)
    args = demo_args(tmp_path, "--ocpp", "mixed", "--sessions", "2", "--interval", "0.1")
    host = CentralHost(tmp_path / "central")
    run = asyncio.create_task(demo(args, host=host))
    chargers = host.backend.chargers
    # The cloud connector starts first (its admin commands are processes of their own): allow for it.
    await wait_for(lambda: host.charging("SIM1") and host.charging("SIM2") and "SIM3" in chargers, timeout=60)
    await wait_for(lambda: chargers["SIM3"].connectors.get(1) is not None, timeout=10)
    assert {charger_id: charger.ocpp_version for charger_id, charger in chargers.items()} == {
        "SIM1": "1.6",
        "SIM2": "2.0.1",
        "SIM3": "1.6",
    }
    assert chargers["SIM3"].connectors[1].session is None
    out = capsys.readouterr().out
    assert "Cariflex demo is running" in out
    assert "chargers        SIM1, SIM2, SIM3 (2 charging)" in out
    assert "OCPP versions   SIM1 1.6, SIM2 2.0.1, SIM3 1.6" in out
    assert re.search(r"energy manager  on, 9 kW shared; Modbus grid meter 127.0.0.1:\d+, PV 127.0.0.1:\d+", out)
    # The simulated grid meter sees both cars (2 x 7.4 kW) + the household - the sun (11:30, clear sky).
    assert host.grid_meter is not None
    assert host.pv_inverter is not None
    await asyncio.sleep(1.5)  # a meter step after the cars' power is known
    grid = (await host.grid_meter.read()).get(Quantity.POWER_W)
    pv = (await host.pv_inverter.read()).get(Quantity.PV_POWER_W)
    await host.grid_meter.close()
    await host.pv_inverter.close()
    assert pv == pytest.approx(pv_power(SiteShape(), 11.5), abs=20)
    assert host.charge_modes == {"SIM1": "pv"}
    # The cloud connector runs beside the site, with the site registered and an eMSP token A issued.
    assert host.cloud is not None
    cloud_url, site_token = host.cloud
    assert cloud_url == f"ws://127.0.0.1:{args.cloud_port}/uplink/v1"
    assert site_token
    match = re.search(r"cloud connector http://127.0.0.1:(\d+) \(OCPI versions (\S+), eMSP token A (\S+)\)", out)
    assert match is not None
    assert match.group(2) == f"http://127.0.0.1:{args.cloud_port}/ocpi/versions"
    async with (
        aiohttp.ClientSession() as session,
        session.get(match.group(2), headers={"Authorization": f"Token {match.group(3)}"}) as response,
    ):
        assert response.status == 200  # token A opens the versions module
        assert (await response.json())["status_code"] == 1000
    assert grid is not None
    assert pv is not None
    assert 2 * 7400 + 1200 - pv - 1 <= grid <= 2 * 7400 + 1200 + 600 + 3000 - pv + 1
    assert not run.done()
    os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C
    assert await asyncio.wait_for(run, 10) == 0
    # The chargers ended their sessions (StopTransaction, TransactionEvent Ended), then the host stopped.
    assert sorted((charger_id, session.stop_reason) for charger_id, session in host.ended) == [
        ("SIM1", "Local"),
        ("SIM2", "Local"),
    ]
    assert not any(charger.connected for charger in chargers.values())
    assert host.stops == 1
    assert signal.getsignal(signal.SIGINT) is sigint_handler  # the handler in place before is back


async def test_demo_stops_when_home_assistant_exits(
    tmp_path: Path, socket_enabled: None, caplog: pytest.LogCaptureFixture
) -> None:
    args = demo_args(tmp_path, "--chargers", "1", "--ocpp", "2.0.1", "--interval", "0.1", "--no-energy", "--no-cloud")
    host = CentralHost(tmp_path / "central")
    stop = asyncio.Event()
    run = asyncio.create_task(demo(args, host=host, stop=stop))
    await wait_for(lambda: host.charging("SIM1"))
    await host.crash()
    assert await asyncio.wait_for(run, 5) == 1
    assert "Home Assistant exited (code 1)\nthe central system went away" in caplog.text
    assert stop.is_set()  # the chargers were told to stop
    assert host.stops == 1
    assert host.grid_meter is None  # --no-energy: no Modbus devices
    assert host.cloud is None  # --no-cloud
    assert host.charge_modes == {}


# ----------------------------------------------------- real Home Assistant
async def test_demo_with_a_real_home_assistant(
    tmp_path: Path, socket_enabled: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """The demo end to end: onboarding, the config flow, a mixed site charging, the login flow, the stop."""
    args = demo_args(tmp_path, "--chargers", "2", "--sessions", "2", "--interval", "0.1", "--ocpp", "mixed")
    stop = asyncio.Event()
    run = asyncio.create_task(demo(args, stop=stop))
    printed: list[str] = []

    def started() -> bool:
        printed.append(capsys.readouterr().out)
        return "Cariflex demo is running" in "".join(printed) or run.done()

    try:
        await wait_for(started, timeout=60)
        assert not run.done()
        match = re.search(r"\(pid (\d+)\)", "".join(printed))
        assert match is not None
        pid = int(match.group(1))
        client = HassInstance(args.config_dir, port=args.port)  # the same Home Assistant, through its API
        with pytest.raises(HassError, match="login refused"):
            await client.login("demo", "wrong")
        token = await client.login("demo", "demo")
        assert token == client.access_token
        assert all((await client.onboarding_steps()).values())
        with pytest.raises(HassError, match="onboarding already started"):
            await client.onboard()
        entries = await client.request("GET", "/api/config/config_entries/entry")
        assert [(e["title"], e["state"]) for e in entries if e["domain"] == "cariflex"] == [("Demo", "loaded")]
        assert "google_translate" not in [e["domain"] for e in entries]  # removed: it cannot load offline
        with pytest.raises(HassError, match="did not create the site"):
            await client.create_site(SiteSettings(ws_port=args.ocpp_port))  # the demo's site has that port
        with pytest.raises(HassError, match="HTTP 404"):
            await client.request("GET", "/api/states/sensor.nowhere")
        assert await client.request("POST", "/api/template", json_body={"template": "{{ 6 * 7 }}"}) == "42"
        assert await client.refresh() == client.access_token
        states: dict[str, str] = {}

        async def refresh() -> None:
            for state in await client.states():
                states[state["entity_id"]] = state["state"]
                attributes[state["entity_id"]] = state["attributes"]

        async def until(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
            try:
                async with asyncio.timeout(timeout):
                    while True:
                        await refresh()
                        if check():
                            return
                        await asyncio.sleep(0.3)
            except TimeoutError:
                pytest.fail(f"{what}: {sorted(states.items())}")

        def power(charger: str) -> float:
            return float(states.get(f"sensor.{charger}_power") or 0)

        attributes: dict[str, dict[str, Any]] = {}
        # SIM2 charges under the energy manager; SIM1 is in PV mode and follows the sun.
        await until(
            lambda: states.get("binary_sensor.sim1_connected") == "on" and power("sim2") > 0, "SIM2 does not charge"
        )
        assert states["sensor.sim2_status"] == "charging"  # OCPP 2.0.1
        assert states["select.demo_energy_manager"] == "on"
        assert states["select.sim1_charging_mode"] == "pv"
        assert float(states["sensor.pv_inverter_pv_power"]) > 5000  # 11:30 on the solar clock
        await until(
            lambda: (
                attributes.get("sensor.sim1_limit_reason", {}).get("strategy")
                in ("pv_waiting_surplus", "pv_surplus", "pv_minimum", "pv_disable_pending")
            ),
            "SIM1 does not follow the PV surplus",
        )
        assert states["binary_sensor.demo_zni_grid_constraint"] == "off"
        # The user flips the EDF-SEI signal to 0: every charger is capped at 25 % of 32 A.
        await client.call_service("input_boolean", "turn_off", {"entity_id": "input_boolean.edf_sei_signal"})
        await until(
            lambda: (
                states.get("binary_sensor.demo_zni_grid_constraint") == "on"
                and float(states.get("sensor.sim2_allocated_current") or 99) <= 8
                and 0 < power("sim2") <= 8 * 3 * 0.230 + 0.01
            ),
            "the ZNI signal does not cap the chargers",
        )
        assert attributes["sensor.sim2_limit_reason"]["strategy"] == "zni_cap"
        await client.call_service("input_boolean", "turn_on", {"entity_id": "input_boolean.edf_sei_signal"})
        await until(lambda: states.get("binary_sensor.demo_zni_grid_constraint") == "off", "the ZNI cap stays")
        # The site is linked to the demo's cloud connector: its events are delivered.
        await until(
            lambda: (
                states.get("binary_sensor.demo_cloud_connection") == "on"
                and states.get("sensor.demo_cloud_queue") == "0"
            ),
            "the site is not linked to the cloud connector",
        )
    finally:
        stop.set()
        code = await asyncio.wait_for(run, 70)
    assert code == 0
    assert process_gone(pid)  # Home Assistant exited and was reaped
