"""A real Home Assistant with a Cariflex site, from a throwaway config directory.

:class:`HassInstance` writes ``configuration.yaml``, runs ``python -m homeassistant -c DIR``
as a subprocess (same interpreter), waits for the HTTP API, completes onboarding through
the real onboarding API, creates the Cariflex site through the config-flow REST API and
stops Home Assistant again. The demo (``scripts/demo``, ``python -m simulator.hass_runner``)
and the benchmarks use it::

    hass = HassInstance("/tmp/ha", port=18123, ui=False, components=["recorder"])
    await hass.start_site(SiteSettings(ws_port=19000))  # start(), onboard(), create_site()
    states = await hass.states()                        # hass.pid, hass.access_token, hass.base_url
    await hass.stop()

    async with HassInstance("/tmp/ha2", port=18124) as hass:  # start() ... stop()
        await hass.onboard()

Each HTTP call opens its own client session, so the object is not bound to an event loop:
``hass.run(hass.start())`` style use from synchronous code works too (see :meth:`run`).

The demo (:func:`demo`) starts one, creates the site, then runs the simulated chargers
of :mod:`simulator.cli` (SIM1..SIMn) until Ctrl-C; ``--ocpp 1.6|2.0.1|mixed`` chooses
their OCPP version (mixed: SIM1 1.6, SIM2 2.0.1, SIM3 1.6...).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Sequence
import contextlib
from dataclasses import asdict, dataclass, field
import importlib.metadata
import json
import logging
import os
from pathlib import Path
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from typing import Any, Protocol, Self, TypeVar

import aiohttp

from .cli import MIXED, OCPP_CHOICES, V16, Options, Simulation, configure_logging, stop_on_signals
from .cloud_runner import CloudError, CloudService
from .site_meters import SiteMeters

_LOGGER = logging.getLogger("simulator.hass")

ROOT = Path(__file__).resolve().parents[1]
INTEGRATION_DIR = ROOT / "custom_components" / "cariflex"
DEMO_MARKER = ".cariflex-demo"
DEFAULT_HTTP_PORT = 8123
DEFAULT_OCPP_PORT = 9000
START_TIMEOUT_S = 300.0
STOP_TIMEOUT_S = 60.0
CHARGERS_STOP_TIMEOUT_S = 20.0
SUPERVISE_POLL_S = 1.0
DEFAULT_CLOUD_PORT = 8180
DEFAULT_SUBSCRIBED_KW = 9.0  # two cars at 7.4 kW plus the household do not fit: they share
DEFAULT_SOLAR_START_H = 11.5
ZNI_SIGNAL_ENTITY = "input_boolean.edf_sei_signal"
ZNI_DEMO_FRACTION = 25  # % of a charger's nominal 22 kW: low enough to bite on the demo's 7.4 kW cars
PV_CHARGER = "SIM1"  # the demo's charger in PV-surplus mode
DEMO_YAML = """
# The EDF-SEI grid signal of the demo's island site: turn it off to see every charger halve.
input_boolean:
  edf_sei_signal:
    name: EDF-SEI grid signal
    initial: true
    icon: mdi:transmission-tower
"""
METER_STEP_S = (
    1.0  # how often the simulated meters follow the cars  # how often the demo checks that Home Assistant still runs
)
DEMO_USER = "demo"
DEMO_PASSWORD = "demo"  # noqa: S105 - the demo's published credentials

# default_config without what needs the network, extra Python packages or hardware
# (cloud, bluetooth, dhcp, ssdp, zeroconf, usb, mobile_app, stream, go2rtc,
# homeassistant_alerts): Home Assistant runs with --skip-pip and never touches the venv.
UI_COMPONENTS = ("frontend", "config", "energy", "history", "logbook", "my", "sun", "system_health")
CORE_COMPONENTS = ("api", "onboarding", "person")

ONBOARDING_DOMAINS = ("google_translate", "met", "radio_browser")
SETTLING = ("not_loaded", "setup_in_progress")
FAILED = ("setup_error", "setup_retry", "migration_error")

T = TypeVar("T")


class HassError(RuntimeError):
    """Home Assistant did not start, or an API call failed."""


@dataclass(slots=True)
class SiteSettings:
    """The answers to the Cariflex config flow's user step."""

    site_name: str = "Demo"
    ws_port: int = DEFAULT_OCPP_PORT
    wss_port: int = 9043  # only opened with a certificate
    unknown_chargers: str = "accept"
    auth_mode: str = "open"
    phases: str = "3"
    voltage: int = 230
    subscribed_power_kw: float = 36
    heartbeat_interval: int = 300
    extra: dict[str, Any] = field(default_factory=dict)

    def flow_input(self) -> dict[str, Any]:
        """The JSON body of the user step."""
        data = asdict(self)
        extra = data.pop("extra")
        if self.wss_port == self.ws_port:
            data["wss_port"] = self.ws_port + 1
        return {**data, **extra}


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether ``host:port`` can be bound right now."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def frontend_requirement() -> str:
    """The pinned frontend package of the installed Home Assistant (from its manifest)."""
    from homeassistant.components import frontend

    manifest = json.loads((Path(frontend.__file__).parent / "manifest.json").read_text())
    return str(manifest["requirements"][0])


def frontend_missing() -> str | None:
    """The pinned frontend requirement when this venv lacks that version, else None."""
    requirement = frontend_requirement()
    name, _, wanted = requirement.partition("==")
    try:
        installed: str | None = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        installed = None
    return None if installed == wanted else requirement


def ensure_frontend(python: str = sys.executable) -> None:
    """Install the Home Assistant frontend package into this venv when it is missing."""
    requirement = frontend_missing()
    if requirement is None:
        return
    _LOGGER.info("installing %s (the web interface, once)...", requirement)
    subprocess.run(  # noqa: S603 - fixed command line
        [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", requirement], check=True
    )


class HassInstance:
    """One Home Assistant process on ``host:port`` with its own config directory."""

    def __init__(
        self,
        config_dir: str | Path,
        *,
        port: int = DEFAULT_HTTP_PORT,
        host: str = "127.0.0.1",
        python: str = sys.executable,
        ui: bool = True,
        components: Sequence[str] = (),
        log_level: str = "warning",
        logs: dict[str, str] | None = None,
        extra_yaml: str = "",
        integration_dir: Path = INTEGRATION_DIR,
    ) -> None:
        self.config_dir = Path(config_dir).resolve()
        self.port = port
        self.host = host
        self.python = python
        self.components = [*CORE_COMPONENTS, *(UI_COMPONENTS if ui else ()), *components]
        self.log_level = log_level
        self.logs = {"custom_components.cariflex": "info", **(logs or {})}
        self.extra_yaml = extra_yaml
        self.integration_dir = integration_dir
        self.process: subprocess.Popen[bytes] | None = None
        self.access_token: str | None = None
        self.refresh_token: str | None = None
        self.entry_id: str | None = None
        self._console: Any = None
        self._reaped = False

    # ------------------------------------------------------------------ basics
    @property
    def base_url(self) -> str:
        """``http://host:port``."""
        return f"http://{self.host}:{self.port}"

    @property
    def client_id(self) -> str:
        """The OAuth client id used for onboarding and logins (the frontend's)."""
        return f"{self.base_url}/"

    @property
    def pid(self) -> int | None:
        """Process id of Home Assistant while it runs."""
        return self.process.pid if self.process is not None else None

    @property
    def returncode(self) -> int | None:
        """Exit code once Home Assistant has exited."""
        return self.process.poll() if self.process is not None else None

    @property
    def log_file(self) -> Path:
        """Home Assistant's own log."""
        return self.config_dir / "home-assistant.log"

    @property
    def console_file(self) -> Path:
        """Home Assistant's stdout and stderr."""
        return self.config_dir / "hass-console.log"

    @staticmethod
    def run(awaitable: Awaitable[T]) -> T:
        """Run one coroutine from synchronous code (``HassInstance.run(hass.start())``)."""

        async def _wrap() -> T:
            return await awaitable

        return asyncio.run(_wrap())

    # -------------------------------------------------------------- config dir
    def write_config(self) -> None:
        """``configuration.yaml`` and the link to the integration under test."""
        self.config_dir.mkdir(parents=True, exist_ok=True)
        custom = self.config_dir / "custom_components"
        custom.mkdir(exist_ok=True)
        link = custom / "cariflex"
        if not link.exists():
            link.symlink_to(self.integration_dir, target_is_directory=True)
        for name in ("automations.yaml", "scripts.yaml", "scenes.yaml"):
            path = self.config_dir / name
            if not path.exists():
                path.write_text("[]\n" if name != "scripts.yaml" else "{}\n")
        components = "\n".join(f"{name}:" for name in dict.fromkeys(self.components))
        logs = "\n".join(f"    {name}: {level}" for name, level in self.logs.items())
        (self.config_dir / "configuration.yaml").write_text(
            textwrap.dedent(
                """\
                # Written by simulator/hass_runner.py: a throwaway Home Assistant for Cariflex.
                homeassistant:
                  name: Cariflex demo
                  unit_system: metric
                  currency: EUR

                http:
                  server_host: {host}
                  server_port: {port}

                logger:
                  default: {level}
                  logs:
                {logs}

                automation: !include automations.yaml
                script: !include scripts.yaml
                scene: !include scenes.yaml
                """
            ).format(host=self.host, port=self.port, level=self.log_level, logs=logs)
            + components
            + "\n"
            + self.extra_yaml
        )

    # ---------------------------------------------------------------- process
    async def start(self, timeout: float = START_TIMEOUT_S) -> None:
        """Write the config, start Home Assistant and wait until its HTTP API answers."""
        if self.process is not None and not self._reaped:
            raise HassError("already started")
        if not port_free(self.port, self.host):
            raise HassError(f"port {self.host}:{self.port} is already in use")
        self.write_config()
        self.process = self._spawn()
        self._reaped = False
        _LOGGER.info("Home Assistant starting (pid %s, config %s)", self.process.pid, self.config_dir)
        try:
            await self.wait_ready(timeout)
        except BaseException:
            await self.stop()
            raise

    def _spawn(self) -> subprocess.Popen[bytes]:
        self._console = self.console_file.open("ab")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        return subprocess.Popen(  # noqa: S603 - fixed command line
            [
                self.python,
                "-m",
                "homeassistant",
                "--config",
                str(self.config_dir),
                "--skip-pip",
                "--log-file",
                str(self.log_file),
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._console,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # Ctrl-C in the terminal reaches us, not Home Assistant
        )

    async def wait_ready(self, timeout: float = START_TIMEOUT_S) -> None:
        """Wait until ``/api/onboarding`` answers (the HTTP server is up, onboarding loaded)."""
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while True:
                if self.returncode is not None:
                    raise HassError(f"Home Assistant exited with code {self.returncode}\n{self.console_tail()}")
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with session.get(
                        f"{self.base_url}/api/onboarding", timeout=aiohttp.ClientTimeout(total=5)
                    ) as response:
                        if response.status == 200:
                            _LOGGER.info("Home Assistant answers on %s", self.base_url)
                            return
                if time.monotonic() > deadline:
                    raise HassError(f"Home Assistant did not answer within {timeout:.0f} s\n{self.console_tail()}")
                await asyncio.sleep(0.1)

    def console_tail(self, lines: int = 30) -> str:
        """The last lines Home Assistant wrote (for error messages)."""
        # The console has everything (the log too, and what is printed before logging starts).
        for path in (self.console_file, self.log_file):
            if path.exists() and (text := path.read_text(errors="replace")).strip():
                return "\n".join(text.splitlines()[-lines:])
        return ""

    async def stop(self, timeout: float = STOP_TIMEOUT_S) -> int | None:
        """SIGTERM, wait for a clean exit (SIGKILL after ``timeout``); returns the exit code."""
        process = self.process
        if process is None:
            return None
        if self._reaped:
            return process.returncode
        if process.poll() is None:
            _LOGGER.info("stopping Home Assistant (pid %s)", process.pid)
            process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                await asyncio.to_thread(process.wait, timeout)
            if process.poll() is None:
                _LOGGER.warning("Home Assistant did not stop within %.0f s: killing it", timeout)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        # Anything it started in its session goes with it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        if self._console is not None:
            self._console.close()
            self._console = None
        self._reaped = True
        _LOGGER.info("Home Assistant exited with code %s", process.returncode)
        return process.returncode

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------- HTTP
    async def request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        form: dict[str, str] | None = None,
        token: str | None = None,
        auth: bool = True,
        expect: Sequence[int] = (200,),
    ) -> Any:
        """One HTTP call to Home Assistant; returns the decoded JSON (or text)."""
        headers = {}
        bearer = token or (self.access_token if auth else None)
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                method,
                f"{self.base_url}{path}",
                json=json_body,
                data=form,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=60),
            ) as response,
        ):
            text = await response.text()
            if response.status not in expect:
                raise HassError(f"{method} {path}: HTTP {response.status}: {text[:500]}")
            if response.content_type == "application/json":
                return json.loads(text)
            return text

    async def _token_from_code(self, code: str) -> dict[str, Any]:
        tokens: dict[str, Any] = await self.request(
            "POST",
            "/auth/token",
            form={"grant_type": "authorization_code", "code": code, "client_id": self.client_id},
            auth=False,
        )
        self.access_token = tokens["access_token"]
        self.refresh_token = tokens.get("refresh_token")
        return tokens

    async def refresh(self) -> str:
        """A fresh access token from the refresh token (access tokens last 30 minutes)."""
        if not self.refresh_token:
            raise HassError("no refresh token: onboard() or login() first")
        tokens = await self.request(
            "POST",
            "/auth/token",
            form={"grant_type": "refresh_token", "refresh_token": self.refresh_token, "client_id": self.client_id},
            auth=False,
        )
        self.access_token = str(tokens["access_token"])
        return self.access_token

    # ------------------------------------------------------------- onboarding
    async def onboarding_steps(self) -> dict[str, bool]:
        """Step name -> done."""
        steps = await self.request("GET", "/api/onboarding", auth=False)
        return {step["step"]: step["done"] for step in steps}

    async def onboard(
        self,
        name: str = "Demo",
        username: str = DEMO_USER,
        password: str = DEMO_PASSWORD,
        language: str = "en",
        *,
        cleanup: bool = True,
    ) -> str:
        """Complete onboarding (user, core config, analytics, integration); returns an access token.

        ``cleanup`` removes the entries onboarding adds that cannot load without their
        packages (see :meth:`remove_failed_onboarding_entries`).
        """
        steps = await self.onboarding_steps()
        if steps.get("user"):
            raise HassError("onboarding already started: use login()")
        created = await self.request(
            "POST",
            "/api/onboarding/users",
            json_body={
                "client_id": self.client_id,
                "name": name,
                "username": username,
                "password": password,
                "language": language,
            },
            auth=False,
        )
        await self._token_from_code(created["auth_code"])
        await self.request("POST", "/api/onboarding/core_config", json_body={})
        await self.request("POST", "/api/onboarding/analytics", json_body={})
        integration = await self.request(
            "POST",
            "/api/onboarding/integration",
            json_body={"client_id": self.client_id, "redirect_uri": f"{self.base_url}/?auth_callback=1"},
        )
        await self._token_from_code(integration["auth_code"])
        remaining = [step for step, done in (await self.onboarding_steps()).items() if not done]
        if remaining:
            raise HassError(f"onboarding steps not done: {remaining}")
        _LOGGER.info("onboarded: user %r", username)
        if cleanup:
            await self.remove_failed_onboarding_entries()
        assert self.access_token is not None
        return self.access_token

    async def remove_failed_onboarding_entries(self, timeout: float = 5.0) -> list[str]:
        """Delete the entries onboarding created that failed to load; returns their domains.

        Finishing the core-config step creates Google Translate, Met and Radio Browser
        entries. With ``--skip-pip`` their packages are missing (and they would reach the
        internet anyway), so they fail: removing them keeps the demo's UI free of errors.
        """
        removed: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            entries = await self.request("GET", "/api/config/config_entries/entry")
            mine = {e["domain"]: e for e in entries if e["domain"] in ONBOARDING_DOMAINS}
            settled = "google_translate" in mine and all(e["state"] not in SETTLING for e in mine.values())
            if settled or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        for domain, entry in mine.items():
            if entry["state"] in FAILED:
                await self.request("DELETE", f"/api/config/config_entries/entry/{entry['entry_id']}")
                removed.append(domain)
        if removed:
            _LOGGER.info("removed onboarding entries that cannot load offline: %s", ", ".join(removed))
        return removed

    async def login(self, username: str = DEMO_USER, password: str = DEMO_PASSWORD) -> str:
        """Log in through the login flow, as the frontend does; returns an access token."""
        flow = await self.request(
            "POST",
            "/auth/login_flow",
            json_body={
                "client_id": self.client_id,
                "handler": ["homeassistant", None],
                "redirect_uri": f"{self.base_url}/?auth_callback=1",
            },
            auth=False,
        )
        result = await self.request(
            "POST",
            f"/auth/login_flow/{flow['flow_id']}",
            json_body={"client_id": self.client_id, "username": username, "password": password},
            auth=False,
        )
        if result.get("type") != "create_entry":
            raise HassError(f"login refused: {result.get('errors') or result}")
        await self._token_from_code(result["result"])
        assert self.access_token is not None
        return self.access_token

    # --------------------------------------------------------------- Cariflex
    async def create_site(self, settings: SiteSettings | None = None, timeout: float = 60) -> dict[str, Any]:
        """Create the Cariflex site through the config flow and wait until it is loaded."""
        settings = settings or SiteSettings()
        form = await self.request(
            "POST",
            "/api/config/config_entries/flow",
            json_body={"handler": "cariflex", "show_advanced_options": False},
        )
        if form.get("type") != "form" or form.get("step_id") != "user":
            raise HassError(f"unexpected first step of the Cariflex config flow: {form}")
        result = await self.request(
            "POST", f"/api/config/config_entries/flow/{form['flow_id']}", json_body=settings.flow_input()
        )
        if result.get("type") != "create_entry":
            raise HassError(f"the Cariflex config flow did not create the site: {result.get('errors') or result}")
        entry: dict[str, Any] = result["result"]
        self.entry_id = entry["entry_id"]
        deadline = time.monotonic() + timeout
        while entry.get("state") != "loaded":
            if entry.get("state") in ("setup_error", "migration_error", "failed_unload"):
                raise HassError(f"the Cariflex site failed to load: {entry}\n{self.console_tail()}")
            if time.monotonic() > deadline:
                raise HassError(f"the Cariflex site is not loaded after {timeout:.0f} s: {entry}")
            await asyncio.sleep(0.3)
            entries = await self.request("GET", "/api/config/config_entries/entry?domain=cariflex")
            entry = next((e for e in entries if e["entry_id"] == self.entry_id), entry)
        _LOGGER.info("Cariflex site %r loaded, OCPP on ws://%s:%s", settings.site_name, self.host, settings.ws_port)
        return entry

    async def start_site(self, settings: SiteSettings | None = None) -> dict[str, Any]:
        """``start()``, ``onboard()`` and ``create_site()`` in one call; returns the site entry."""
        await self.start()
        await self.onboard()
        return await self.create_site(settings)

    async def states(self) -> list[dict[str, Any]]:
        """``GET /api/states``."""
        states: list[dict[str, Any]] = await self.request("GET", "/api/states")
        return states

    async def add_meter(self, meter: MeterSettings) -> dict[str, Any]:
        """Add a Modbus device to the site through the sub-entry flow (Home Assistant reads it once)."""
        if self.entry_id is None:
            raise HassError("create the site first")
        form = await self.request(
            "POST",
            "/api/config/config_entries/subentries/flow",
            json_body={"handler": [self.entry_id, "meter"], "show_advanced_options": False},
        )
        if form.get("type") != "menu" or "tcp" not in form.get("menu_options", ()):
            raise HassError(f"unexpected first step of the meter flow: {form}")
        form = await self.request(
            "POST", f"/api/config/config_entries/subentries/flow/{form['flow_id']}", json_body={"next_step_id": "tcp"}
        )
        result: dict[str, Any] = await self.request(
            "POST", f"/api/config/config_entries/subentries/flow/{form['flow_id']}", json_body=meter.flow_input()
        )
        if result.get("type") != "create_entry":
            raise HassError(f"the meter {meter.name!r} was not added: {result.get('errors') or result}")
        _LOGGER.info("Modbus %s %r added (127.0.0.1:%s)", meter.role, meter.name, meter.port)
        return result

    async def set_options_page(self, page: str, values: dict[str, Any]) -> dict[str, Any]:
        """Submit one page of the site's options (``site``, ``pv``, ``zni``, ``tariffs``); the site reloads."""
        menu = await self.request(
            "POST", "/api/config/config_entries/options/flow", json_body={"handler": self.entry_id}
        )
        form = await self.request(
            "POST", f"/api/config/config_entries/options/flow/{menu['flow_id']}", json_body={"next_step_id": page}
        )
        result: dict[str, Any] = await self.request(
            "POST", f"/api/config/config_entries/options/flow/{form['flow_id']}", json_body=values
        )
        if result.get("type") != "create_entry":
            raise HassError(f"the site options ({page}) were refused: {result.get('errors') or result}")
        await self.wait_loaded()
        return result

    async def wait_loaded(self, timeout: float = 60) -> None:
        """Wait until the site entry is loaded again (after a reload)."""
        deadline = time.monotonic() + timeout
        while True:
            entries = await self.request("GET", "/api/config/config_entries/entry?domain=cariflex")
            if any(e["entry_id"] == self.entry_id and e["state"] == "loaded" for e in entries):
                return
            if time.monotonic() > deadline:
                raise HassError(f"the Cariflex site is not loaded after {timeout:.0f} s: {entries}")
            await asyncio.sleep(0.3)

    async def start_cloud(self, url: str, token: str) -> None:
        """Link the site to a cloud connector (its options page); the site reloads and connects."""
        await self.set_options_page(
            "cloud",
            {
                "cloud_url": url,
                "cloud_token": token,
                "address": "1 rue Victor Hugo",
                "postal_code": "97200",
                "city": "Fort-de-France",
                "country": "FRA",
            },
        )
        _LOGGER.info("site linked to the cloud connector %s", url)

    async def set_charge_mode(self, charger_id: str, mode: str, timeout: float = 60) -> None:
        """Set a charger's charging mode once it has connected (its select appears then)."""
        entity_id = f"select.{charger_id.lower()}_charging_mode"
        deadline = time.monotonic() + timeout
        while not any(s["entity_id"] == entity_id for s in await self.states()):
            if time.monotonic() > deadline:
                raise HassError(f"{entity_id} did not appear")
            await asyncio.sleep(0.5)
        await self.call_service("select", "select_option", {"entity_id": entity_id, "option": mode})
        _LOGGER.info("%s charges in mode %s", charger_id, mode)

    async def call_service(self, domain: str, service: str, data: dict[str, Any]) -> Any:
        """``POST /api/services/<domain>/<service>``."""
        return await self.request("POST", f"/api/services/{domain}/{service}", json_body=data)

    async def start_energy(self, grid_port: int, pv_port: int) -> None:
        """The demo's energy manager: a Modbus grid meter and PV inverter, the ZNI signal, then the EMS on."""
        await self.add_meter(MeterSettings("Grid meter", "eastron_sdm630", grid_port, "grid"))
        await self.add_meter(MeterSettings("PV inverter", "sunspec", pv_port, "pv"))
        await self.set_options_page(
            "zni", {"zni_enabled": True, "zni_entity": ZNI_SIGNAL_ENTITY, "zni_fraction": ZNI_DEMO_FRACTION}
        )
        await self.set_options_page("pv", {"pv_enable_delay_s": 30, "pv_disable_delay_s": 60})
        deadline = time.monotonic() + 30
        while True:
            select = next(
                (
                    s["entity_id"]
                    for s in await self.states()
                    if s["entity_id"].startswith("select.") and s["attributes"].get("options") == ["off", "on"]
                ),
                None,
            )
            if select is not None:
                break
            if time.monotonic() > deadline:
                raise HassError("the energy manager's mode select did not appear")
            await asyncio.sleep(0.3)
        await self.call_service("select", "select_option", {"entity_id": select, "option": "on"})
        _LOGGER.info("energy manager on (%s)", select)


@dataclass(slots=True)
class MeterSettings:
    """The answers to the meter sub-entry flow for a Modbus TCP device on 127.0.0.1."""

    name: str
    profile: str
    port: int
    role: str
    unit_id: int = 1
    host: str = "127.0.0.1"

    def flow_input(self) -> dict[str, Any]:
        """The JSON body of the meter flow's user step."""
        return {
            "name": self.name,
            "profile": self.profile,
            "host": self.host,
            "port": self.port,
            "unit_id": self.unit_id,
            "role": self.role,
        }


# --------------------------------------------------------------------- demo
class DemoHost(Protocol):
    """What the demo creates the site on and runs the chargers against (a :class:`HassInstance`)."""

    config_dir: Path

    @property
    def base_url(self) -> str: ...

    @property
    def pid(self) -> int | None: ...

    @property
    def returncode(self) -> int | None: ...

    async def start_site(self, settings: SiteSettings | None = None) -> dict[str, Any]: ...

    async def start_energy(self, grid_port: int, pv_port: int) -> None: ...

    async def set_charge_mode(self, charger_id: str, mode: str, timeout: float = 60) -> None: ...

    async def start_cloud(self, url: str, token: str) -> None: ...

    async def stop(self, timeout: float = STOP_TIMEOUT_S) -> int | None: ...

    def console_tail(self, lines: int = 30) -> str: ...


def recreate_demo_dir(path: Path) -> None:
    """Empty ``path`` for a new demo run (refuses directories the demo did not make)."""
    if path.exists():
        if any(path.iterdir()) and not (path / DEMO_MARKER).exists():
            raise HassError(f"{path} exists and was not made by the demo: remove it or pick another --config-dir")
        shutil.rmtree(path)
    path.mkdir(parents=True)
    (path / DEMO_MARKER).write_text("made by scripts/demo; deleted at the next run\n")


def build_parser() -> argparse.ArgumentParser:
    """Options of the demo."""
    parser = argparse.ArgumentParser(
        prog="scripts/demo",
        description="Home Assistant with a Cariflex site and simulated chargers, in one command (Ctrl-C stops).",
    )
    parser.add_argument("--port", type=int, default=DEFAULT_HTTP_PORT, help="Home Assistant HTTP port (8123)")
    parser.add_argument("--ocpp-port", type=int, default=DEFAULT_OCPP_PORT, help="OCPP ws:// port (9000)")
    parser.add_argument("--chargers", type=int, default=3, help="simulated chargers (3)")
    parser.add_argument("--sessions", type=int, default=2, help="chargers that charge (2)")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between meter values (10)")
    parser.add_argument(
        "--ocpp",
        choices=OCPP_CHOICES,
        default=V16,
        help="OCPP version of the chargers; mixed alternates 1.6 and 2.0.1 (1.6)",
    )
    parser.add_argument(
        "--subscribed-power",
        type=float,
        default=DEFAULT_SUBSCRIBED_KW,
        help=f"the site's subscribed power in kW, shared by the chargers ({DEFAULT_SUBSCRIBED_KW:g})",
    )
    parser.add_argument(
        "--solar-start",
        type=float,
        default=DEFAULT_SOLAR_START_H,
        help=f"hour of the simulated sun at start; it then runs in real time ({DEFAULT_SOLAR_START_H:g})",
    )
    parser.add_argument(
        "--no-energy",
        action="store_true",
        help="no Modbus grid meter / PV inverter and the energy manager left off",
    )
    parser.add_argument(
        "--cloud-port", type=int, default=DEFAULT_CLOUD_PORT, help=f"cloud connector HTTP port ({DEFAULT_CLOUD_PORT})"
    )
    parser.add_argument("--no-cloud", action="store_true", help="no cloud connector (OCPI) beside the site")
    parser.add_argument("--config-dir", type=Path, default=ROOT / "demo-config", help="recreated at each run")
    parser.add_argument("--no-ui", action="store_true", help="no web interface (faster; the API still works)")
    parser.add_argument("--debug", action="store_true", help="debug logs of Cariflex in Home Assistant")
    return parser


def busy_port(args: argparse.Namespace) -> str | None:
    """Why the demo cannot start (a port in use), or None."""
    ports = [("--port", args.port), ("--ocpp-port", args.ocpp_port)]
    if not args.no_cloud:
        ports.append(("--cloud-port", args.cloud_port))
    for label, port in ports:
        if not port_free(port):
            return f"demo: port {port} ({label}) is already in use; pick another with {label}"
    return None


def demo_instance(args: argparse.Namespace) -> HassInstance:
    """The demo's Home Assistant, in a freshly recreated ``--config-dir``."""
    recreate_demo_dir(args.config_dir)
    return HassInstance(
        args.config_dir,
        port=args.port,
        ui=not args.no_ui,
        logs={"custom_components.cariflex": "debug" if args.debug else "info"},
        extra_yaml=DEMO_YAML,
    )


def simulator_options(args: argparse.Namespace) -> Options:
    """The simulated chargers of the demo (SIM1..SIMn)."""
    return Options(
        url=f"ws://127.0.0.1:{args.ocpp_port}",
        count=args.chargers,
        id_prefix="SIM",
        sessions=args.sessions,
        interval=args.interval,
        ocpp=args.ocpp,
    )


def banner(
    host: DemoHost,
    args: argparse.Namespace,
    options: Options,
    meters: SiteMeters | None = None,
    cloud: CloudService | None = None,
) -> str:
    """What the demo prints once everything runs."""
    if options.ocpp == MIXED:
        versions = ", ".join(f"{charger_id} {version}" for charger_id, version in options.versions().items())
    else:
        versions = f"{options.ocpp}   (--ocpp {' | '.join(OCPP_CHOICES)})"
    return textwrap.dedent(
        f"""
        ================================================================
         Cariflex demo is running
           Home Assistant  {host.base_url}   (pid {host.pid})
           log in with     {DEMO_USER} / {DEMO_PASSWORD}
           OCPP (ws)       ws://127.0.0.1:{args.ocpp_port}/<charger id>
           chargers        {", ".join(options.charger_ids())} ({min(args.sessions, args.chargers)} charging)
           OCPP versions   {versions}
           config dir      {host.config_dir}
           {energy_line(args, meters)}
           {cloud_line(cloud)}
         Press Ctrl-C to stop the chargers, then Home Assistant.
        ================================================================
        """
    )


def cloud_line(cloud: CloudService | None) -> str:
    """The banner's line about the cloud connector."""
    if cloud is None:
        return "cloud connector off (--no-cloud)"
    return (
        f"cloud connector {cloud.base_url} (OCPI versions {cloud.peer.get('versions_url')}, "
        f"eMSP token A {cloud.peer.get('token')})"
    )


def energy_line(args: argparse.Namespace, meters: SiteMeters | None) -> str:
    """The banner's line about the energy manager."""
    if meters is None:
        return "energy manager  off (--no-energy)"
    return (
        f"energy manager  on, {args.subscribed_power:g} kW shared; Modbus grid meter 127.0.0.1:{meters.grid_port}, "
        f"PV 127.0.0.1:{meters.pv_port}; {PV_CHARGER} in PV mode; ZNI signal: {ZNI_SIGNAL_ENTITY}"
    )


async def start_site(host: DemoHost, args: argparse.Namespace, stop: asyncio.Event) -> bool:
    """Start the host and create the site, unless ``stop`` comes first (then False)."""
    if stop.is_set():
        return False
    settings = SiteSettings(site_name="Demo", ws_port=args.ocpp_port, subscribed_power_kw=args.subscribed_power)
    startup = asyncio.create_task(host.start_site(settings))
    stop_waiter = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({startup, stop_waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        interrupted = not startup.done()
        startup.cancel()  # a start-up cut short stops what it started
        stop_waiter.cancel()
        await asyncio.gather(startup, stop_waiter, return_exceptions=True)
    if interrupted:
        return False
    startup.result()
    return True


async def supervise(
    host: DemoHost, simulation: asyncio.Task[int], stop: asyncio.Event, meters: SiteMeters | None = None
) -> int:
    """Wait for ``stop`` (0); 1 when the host exits first. The simulated meters follow the cars meanwhile."""
    stop_waiter = asyncio.create_task(stop.wait())
    poll = min(SUPERVISE_POLL_S, METER_STEP_S)
    try:
        while not stop.is_set() and not simulation.done():
            await asyncio.wait({stop_waiter, simulation}, timeout=poll, return_when=asyncio.FIRST_COMPLETED)
            if meters is not None:
                meters.step()
            if host.returncode is not None:
                _LOGGER.error("Home Assistant exited (code %s)\n%s", host.returncode, host.console_tail())
                return 1
        return 0
    finally:
        stop_waiter.cancel()
        await asyncio.gather(stop_waiter, return_exceptions=True)


async def shut_down(host: DemoHost | None, simulation: asyncio.Task[int] | None, stop: asyncio.Event) -> None:
    """Stop the chargers (their sessions end cleanly), then the host."""
    stop.set()
    try:
        if simulation is not None:
            _LOGGER.info("stopping the chargers")
            try:
                await asyncio.wait_for(simulation, CHARGERS_STOP_TIMEOUT_S)
            except TimeoutError:
                _LOGGER.warning("the chargers did not stop in time")
    finally:
        if host is not None:
            await host.stop()
        _LOGGER.info("demo stopped")


async def demo(args: argparse.Namespace, *, host: DemoHost | None = None, stop: asyncio.Event | None = None) -> int:
    """Start Home Assistant, onboard, create the site, run the chargers; Ctrl-C stops all.

    ``host`` defaults to :func:`demo_instance`; SIGINT and SIGTERM set ``stop``.
    Returns the exit code: 0 after Ctrl-C, 1 on an error, 130 when interrupted during start-up.
    """
    if problem := busy_port(args):
        print(problem, file=sys.stderr)
        return 1
    stop = stop if stop is not None else asyncio.Event()
    simulation: asyncio.Task[int] | None = None
    meters: SiteMeters | None = None
    cloud: CloudService | None = None
    with stop_on_signals(stop):
        try:
            host = host if host is not None else demo_instance(args)
            if not await start_site(host, args, stop):
                _LOGGER.info("interrupted during start-up")
                return 130
            options = simulator_options(args)
            chargers = Simulation(options, stop)
            if not args.no_energy:
                meters = SiteMeters(chargers.power_w, solar_start=args.solar_start)
                await meters.start()
                await host.start_energy(meters.grid_port, meters.pv_port)
            if not args.no_cloud:
                cloud = CloudService(host.config_dir / "cloud", args.cloud_port)
                await cloud.start()
                assert cloud.site_token is not None
                await host.start_cloud(cloud.uplink_url, cloud.site_token)
            simulation = asyncio.create_task(chargers.run())
            if meters is not None:
                await host.set_charge_mode(PV_CHARGER, "pv")
            print(banner(host, args, options, meters, cloud), flush=True)
            return await supervise(host, simulation, stop, meters)
        except (HassError, CloudError) as err:
            _LOGGER.error("%s", err)
            return 1
        finally:
            await shut_down(host, simulation, stop)
            if meters is not None:
                await meters.stop()
            if cloud is not None:
                await cloud.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m simulator.hass_runner`` (the demo)."""
    args = build_parser().parse_args(argv)
    configure_logging()
    if not args.no_ui:
        ensure_frontend()
    return asyncio.run(demo(args))


if __name__ == "__main__":
    sys.exit(main())
