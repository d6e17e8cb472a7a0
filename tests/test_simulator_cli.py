"""The charger simulator command line against a real central system (no Home Assistant)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
import itertools
import logging
from pathlib import Path
import re
import signal
import socket
import ssl
import sys

import pytest

from custom_components.cariflex.ocpp.model import Charger, Session
from custom_components.cariflex.ocpp.server import CentralSystem
from custom_components.cariflex.ocpp.site import ChargerConfig, SiteBackend, UnknownChargerPolicy, hash_password
from simulator.cli import Options, Simulation, client_ssl_context, main as cli_main, main_async, parse_args
from simulator.hass_runner import (
    HassError,
    HassInstance,
    SiteSettings,
    build_parser as build_demo_parser,
    frontend_requirement,
    recreate_demo_dir,
)
from tests.conftest import free_port, wait_for

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "pw-of-the-sim"


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


def test_tls_context() -> None:
    assert client_ssl_context(parse_args(["--url", "ws://h"])) is None
    import certifi

    context = client_ssl_context(parse_args(["--url", "wss://h", "--cafile", certifi.where()]))
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.minimum_version is ssl.TLSVersion.TLSv1_2


async def test_ocpp_201_not_supported_yet(capsys: pytest.CaptureFixture[str]) -> None:
    assert await main_async(["--url", "ws://127.0.0.1:1", "--ocpp", "2.0.1"]) == 2
    assert "not supported yet" in capsys.readouterr().err


# ------------------------------------------------------------ against a real CS
async def test_chargers_boot_heartbeat_and_charge(central: Central) -> None:
    code = await main_async(argv(central, "--sessions", "1", "--interval", "0.2", "--duration", "2"))
    assert code == 0
    t1, t2 = central.charger("T1"), central.charger("T2")
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


async def test_wrong_password_is_retried_and_logged(central: Central, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="simulator")
    options = parse_args(
        ["--url", central.url, "--id-prefix", "T", "--password", "wrong", "--duration", "0.6", "--retry-min", "0.1"]
    )
    assert await Simulation(options).run() == 0
    assert central.charger("T1").boot_status is None
    failures = [r.getMessage() for r in caplog.records if "HTTP 401 (wrong or missing password)" in r.getMessage()]
    assert len(failures) >= 2  # retried


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
        assert simulation.runners[0].transactions == [int(session.transaction_id)]
    finally:
        stop.set()
        assert await asyncio.wait_for(run, 5) == 0
    assert [charger_id for charger_id, _ in central.ended] == ["T1"]


async def test_sigint_stops_the_session_and_exits(central: Central) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "simulator",
        *argv(central, "--count", "1", "--interval", "0.1"),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await wait_for(lambda: len(central.energy["T1"]) >= 2, timeout=8)
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = await asyncio.wait_for(process.communicate(), 5)
    log = stderr.decode()
    assert process.returncode == 0, log
    assert "StopTransaction" in log
    assert "simulator stopped" in log
    assert [charger_id for charger_id, _ in central.ended] == ["T1"]
    assert not central.charger("T1").connected


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


async def test_start_reports_an_early_exit(tmp_path: Path, socket_enabled: None) -> None:
    instance = HassInstance(tmp_path / "ha", port=free_port(), python="/bin/false")
    with pytest.raises(HassError, match="exited with code 1"):
        await instance.start(timeout=10)
    assert instance.returncode == 1
    assert await instance.stop() == 1
    assert await instance.stop() == 1  # idempotent


async def test_start_refuses_a_busy_port(tmp_path: Path, socket_enabled: None) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        instance = HassInstance(tmp_path / "ha", port=busy.getsockname()[1])
        with pytest.raises(HassError, match="already in use"):
            await instance.start()
    assert instance.process is None


def test_demo_options_and_frontend_pin() -> None:
    args = build_demo_parser().parse_args([])
    assert (args.port, args.ocpp_port, args.chargers, args.sessions, args.interval) == (8123, 9000, 3, 1, 10.0)
    args = build_demo_parser().parse_args(["--port", "8124", "--ocpp-port", "9100", "--chargers", "5"])
    assert (args.port, args.ocpp_port, args.chargers) == (8124, 9100, 5)
    assert re.fullmatch(r"home-assistant-frontend==\d{8}\.\d+", frontend_requirement())


async def test_real_home_assistant_with_a_site_and_the_cli(tmp_path: Path, socket_enabled: None) -> None:
    """Onboarding, the config flow and the login flow of a real Home Assistant process."""
    ocpp_port = free_port()
    instance = HassInstance(tmp_path / "ha", port=free_port(), ui=False)
    try:
        entry = await instance.start_site(SiteSettings(site_name="Bench", ws_port=ocpp_port))
        assert (entry["domain"], entry["title"], entry["state"]) == ("cariflex", "Bench", "loaded")
        assert instance.pid is not None
        assert instance.returncode is None
        assert all((await instance.onboarding_steps()).values())
        with pytest.raises(HassError, match="onboarding already started"):
            await instance.onboard()
        domains = [e["domain"] for e in await instance.request("GET", "/api/config/config_entries/entry")]
        assert "google_translate" not in domains  # removed: it cannot load offline
        with pytest.raises(HassError, match="login refused"):
            await instance.login("demo", "wrong")
        token = await instance.login("demo", "demo")
        assert token == instance.access_token
        refreshed = await instance.refresh()
        assert len(await instance.request("GET", "/api/states", token=refreshed)) > 0

        stop = asyncio.Event()
        options = parse_args(["--url", f"ws://127.0.0.1:{ocpp_port}", "--count", "2", "--interval", "0.1"])
        run = asyncio.create_task(Simulation(options, stop).run())
        states: dict[str, str] = {}

        async def sim1_charging() -> bool:
            states.update({state["entity_id"]: state["state"] for state in await instance.states()})
            return (
                states.get("binary_sensor.sim1_connected") == "on"
                and states.get("binary_sensor.sim2_connected") == "on"
                and states.get("sensor.sim1_energy") not in (None, "unknown", "unavailable", "0.0")
            )

        try:
            async with asyncio.timeout(5):
                while not await sim1_charging():
                    await asyncio.sleep(0.1)
        finally:
            stop.set()
            assert await run == 0
        assert float(states["sensor.sim1_power"]) == 7.4
        assert float(states["sensor.sim1_energy"]) > 0
        assert states["sensor.sim2_status"] == "available"
    finally:
        assert await instance.stop() == 0
    assert instance.returncode == 0


def test_main_entry_point(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["--url", "ws://127.0.0.1:1", "--ocpp", "2.0.1"]) == 2
    assert "OCPP 2.0.1 is not supported yet" in capsys.readouterr().err
