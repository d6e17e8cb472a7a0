"""Benchmark the Cariflex cloud connector as a user runs it (issue 6).

The service runs in its own process (``python -m cloud_connector --config cloud.toml serve``) on
127.0.0.1, its SQLite file in a temporary directory, set up with the admin CLI (``create-party``,
``register-site``, ``create-peer``). The sites and the eMSP live in this process:

* **inventory**: ``--sites`` sites, each a real ``UplinkClient`` with its own SQLite queue file,
  send their ``inventory`` event (``--evses-per-site`` EVSEs, two per charger) through the uplink;
* **OCPI latency**: an eMSP registers with the token A (credentials handshake), then times, one
  request at a time, ``GET locations?offset=...&limit=100`` at several offsets, one Location and one
  EVSE (p50/p99/max, from the request to the last byte of the answer);
* **ingest**: every site queues ``--events`` status/session events at once; events/s until the
  last one is acknowledged (and deleted from its queue);
* **resync after 24 h offline**: the service stops, ``--resync-sites`` sites queue a day of events
  (``--day-sessions`` sessions: statuses, a ``session_update`` every minute, the meter curve at the
  end), the service starts again: time until every event is acknowledged.

    python -m benchmarks.cloud
    python -m benchmarks.cloud --sites 20 --evses-per-site 10 --events 50 --requests 30
    python -m benchmarks.cloud --emsp push          # the eMSP takes pushes (Receiver interfaces)
    python -m benchmarks.cloud --profile /tmp/cloud  # the service under cProfile, top functions printed

Only 127.0.0.1; everything stops by itself (``--timeout``). Numbers, not pass/fail:
tests/cloud/test_cloud_bench.py only checks that this runs and reports sane figures.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
from collections import Counter
from collections.abc import Sequence
import contextlib
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
import io
import json
import math
import os
from pathlib import Path
import platform
import pstats
import random
import secrets
import signal
import socket
import sqlite3
import sys
import tempfile
import time
from typing import Any, TextIO

import aiohttp
from aiohttp import web
import psutil

from cloud_connector import cli
from custom_components.cariflex.uplink import AsyncUplinkQueue, UplinkClient

ROOT = Path(__file__).resolve().parents[1]
PAGE_AIM_MS = 50.0
INGEST_AIM = 2000.0
EVSES_PER_CHARGER = 2
UPDATE_EVERY = timedelta(minutes=1)

type Event = tuple[str, dict[str, Any], datetime]


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def free_port() -> int:
    """A TCP port of 127.0.0.1 free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (``fraction`` in (0, 1]); 0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


# --- what a site says ----------------------------------------------------------------------------------


@dataclass
class _Session:
    session_id: str
    charger_id: str
    evse_id: int
    start: datetime
    energy_wh: float = 0.0
    power_w: float = 0.0
    curve: list[list[Any]] = field(default_factory=list)


class SiteSim:
    """The events of one site: its inventory, and sessions with their statuses and meter updates."""

    def __init__(self, site_id: str, evses: int, rng: random.Random) -> None:
        self.site_id = site_id
        self.rng = rng
        chargers = math.ceil(evses / EVSES_PER_CHARGER)
        self.chargers = [
            (f"CP{n + 1:02d}", min(EVSES_PER_CHARGER, evses - n * EVSES_PER_CHARGER)) for n in range(chargers)
        ]
        self.evses = [(charger, number) for charger, count in self.chargers for number in range(1, count + 1)]
        self.active: dict[tuple[str, int], _Session] = {}
        self._sessions = 0

    def inventory(self) -> dict[str, Any]:
        """The ``inventory`` event's data."""
        connector = {
            "id": 1,
            "standard": "IEC_62196_T2",
            "format": "SOCKET",
            "power_type": "AC_3_PHASE",
            "max_voltage": 230,
            "max_amperage": 32,
            "max_electric_power": 22000,
        }
        return {
            "site": {
                "name": f"Bench {self.site_id}",
                "address": "1 rue Victor Hugo",
                "city": "Fort-de-France",
                "postal_code": "97200",
                "country": "MTQ",
                "latitude": 14.6036 + self.rng.uniform(-0.1, 0.1),
                "longitude": -61.0719 + self.rng.uniform(-0.1, 0.1),
                "time_zone": "America/Martinique",
            },
            "chargers": [
                {
                    "id": charger,
                    "vendor": "Bench",
                    "model": "AC22-2",
                    "ocpp_version": "1.6",
                    "evses": [{"evse_id": n, "connectors": [connector]} for n in range(1, count + 1)],
                }
                for charger, count in self.chargers
            ],
        }

    def _status(self, key: tuple[str, int], status: str, at: datetime) -> Event:
        charger, evse = key
        data = {"charger_id": charger, "evse_id": evse, "connector_id": 1, "status": status, "error_code": "NoError"}
        return ("status", data, at)

    def start(self, key: tuple[str, int], at: datetime) -> list[Event]:
        """Plug in and start: Preparing, session_start, Charging."""
        self._sessions += 1
        session = _Session(
            f"{self.site_id}-{self._sessions}", key[0], key[1], at, power_w=self.rng.uniform(3700, 22000)
        )
        self.active[key] = session
        start = {
            "session_id": session.session_id,
            "charger_id": key[0],
            "evse_id": key[1],
            "connector_id": 1,
            "id_tag": f"BADGE{self.rng.randrange(10_000):04d}",
            "auth_method": "WHITELIST",
            "start": _iso(at),
            "meter_start_wh": 0,
        }
        return [self._status(key, "Preparing", at), ("session_start", start, at), self._status(key, "Charging", at)]

    def update(self, key: tuple[str, int], at: datetime) -> Event:
        """One meter update of the session on ``key`` (energy since the start, power, current)."""
        session = self.active[key]
        session.energy_wh = round(session.power_w * (at - session.start).total_seconds() / 3600.0, 1)
        session.curve.append([_iso(at), session.energy_wh])
        data = {
            "session_id": session.session_id,
            "energy_wh": session.energy_wh,
            "power_w": round(session.power_w, 1),
            "current_a": round(session.power_w / 690.0, 2),
            "at": _iso(at),
        }
        return ("session_update", data, at)

    def end(self, key: tuple[str, int], at: datetime) -> list[Event]:
        """Stop: session_end (with the meter curve), Finishing, Available."""
        session = self.active.pop(key)
        data = {
            "session_id": session.session_id,
            "stop": _iso(at),
            "meter_stop_wh": session.energy_wh,
            "energy_wh": session.energy_wh,
            "reason": "EVDisconnected",
            "meter_curve": session.curve,
        }
        return [("session_end", data, at), self._status(key, "Finishing", at), self._status(key, "Available", at)]

    def burst(self, count: int, start: datetime) -> list[Event]:
        """``count`` events as a busy site sends them: mostly meter updates, statuses, starts and stops."""
        events: list[Event] = []
        at = start
        while len(events) < count:
            at += timedelta(seconds=1)
            room = count - len(events)
            idle = [key for key in self.evses if key not in self.active]
            roll = self.rng.random()
            if idle and room >= 3 and (not self.active or roll < 0.08):
                events += self.start(self.rng.choice(idle), at)
            elif self.active and room >= 3 and roll < 0.14:
                events += self.end(self.rng.choice(list(self.active)), at)
            elif idle and (roll < 0.4 or not self.active):
                events.append(self._status(self.rng.choice(idle), "Available", at))
            else:
                events.append(self.update(self.rng.choice(list(self.active)), at))
        return events

    def day(self, sessions: int, start: datetime, hours: float = 24.0) -> list[Event]:
        """A day of events from ``start``: ``sessions`` sessions of 30 min to 4 h, a meter update every minute."""
        timeline: list[tuple[datetime, int, Event]] = []

        def add(events: list[Event]) -> None:
            timeline.extend((event[2], len(timeline), event) for event in events)

        for key in list(self.active):  # what the last burst left charging stops first
            add(self.end(key, start))
        span = hours * 3600.0
        free_at = dict.fromkeys(self.evses, start)
        for offset in sorted(self.rng.uniform(0.0, max(span - 1800.0, 0.0)) for _ in range(sessions)):
            begin = start + timedelta(seconds=int(offset))
            free = [key for key in self.evses if free_at[key] <= begin]
            if not free:
                continue
            key = self.rng.choice(free)
            stop = min(begin + timedelta(seconds=self.rng.uniform(1800.0, 4 * 3600.0)), start + timedelta(seconds=span))
            free_at[key] = stop + UPDATE_EVERY
            add(self.start(key, begin))
            at = begin + UPDATE_EVERY
            while at < stop:
                add([self.update(key, at)])
                at += UPDATE_EVERY
            add(self.end(key, stop))
        timeline.sort(key=lambda item: (item[0], item[1]))
        return [event for _, _, event in timeline]


# --- the service, the eMSP, the sites ------------------------------------------------------------------


class CloudProcess:
    """``python -m cloud_connector --config ... serve`` in its own process (optionally under cProfile)."""

    def __init__(self, config: Path, port: int, log: Path, profile: Path | None) -> None:
        self.config = config
        self.port = port
        self.log = log
        self.profile = profile
        self.url = f"http://127.0.0.1:{port}"
        self.proc: asyncio.subprocess.Process | None = None
        self.runs = 0
        self.profiles: list[Path] = []

    async def start(self, http: aiohttp.ClientSession, timeout: float = 60.0) -> float:
        """Start and wait until ``/healthz`` answers; the seconds that took."""
        self.runs += 1
        command = [sys.executable]
        if self.profile is not None:
            target = self.profile.with_name(f"{self.profile.name}-{self.runs}.prof")
            target.parent.mkdir(parents=True, exist_ok=True)
            self.profiles.append(target)
            command += ["-m", "cProfile", "-o", str(target)]
        command += ["-m", "cloud_connector", "--config", str(self.config), "serve"]
        env = {key: value for key, value in os.environ.items() if not key.startswith("CARIFLEX_CLOUD_")}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        began = time.perf_counter()
        with self.log.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                *command, cwd=ROOT, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log
            )
        async with asyncio.timeout(timeout):
            while True:
                if self.proc.returncode is not None:
                    raise RuntimeError(f"the cloud connector exited with {self.proc.returncode}: {self.log_tail()}")
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"{self.url}/healthz") as response:
                        if response.status == 200:
                            return time.perf_counter() - began
                await asyncio.sleep(0.02)

    async def stop(self) -> None:
        """SIGTERM (a clean stop: sites get 1001), SIGKILL after 20 s."""
        proc, self.proc = self.proc, None
        if proc is None or proc.returncode is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 20.0)
        except TimeoutError:
            proc.kill()
            await proc.wait()

    def cpu_seconds(self) -> float:
        """User + system CPU time of the service process so far."""
        if self.proc is None or self.proc.returncode is not None:
            return 0.0
        try:
            times = psutil.Process(self.proc.pid).cpu_times()
        except psutil.Error:
            return 0.0
        return float(times.user + times.system)

    def log_tail(self, lines: int = 15) -> str:
        return "\n".join(self.log.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


def _envelope(data: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"status_code": 1000, "timestamp": _iso(datetime.now(UTC))}
    if data is not None:
        body["data"] = data
    return body


class Emsp:
    """A bare OCPI 2.2.1 eMSP: versions, credentials, and (``push``) Receivers that take everything."""

    def __init__(self, *, push: bool) -> None:
        self.push = push
        self.pushes: Counter[str] = Counter()
        self.token_b = secrets.token_urlsafe(32)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._runner: web.AppRunner | None = None

    def endpoints(self) -> list[dict[str, str]]:
        found = [{"identifier": "credentials", "role": "SENDER", "url": f"{self.url}/ocpi/2.2.1/credentials"}]
        if self.push:
            found += [
                {"identifier": module, "role": "RECEIVER", "url": f"{self.url}/ocpi/emsp/2.2.1/{module}"}
                for module in ("locations", "sessions", "cdrs", "tariffs")
            ]
        return found

    def credentials(self) -> dict[str, Any]:
        role = {"role": "EMSP", "business_details": {"name": "Bench eMSP"}, "party_id": "EMS", "country_code": "NL"}
        return {"token": self.token_b, "url": f"{self.url}/ocpi/versions", "roles": [role]}

    async def start(self) -> None:
        async def versions(_: web.Request) -> web.Response:
            return web.json_response(_envelope([{"version": "2.2.1", "url": f"{self.url}/ocpi/2.2.1"}]))

        async def details(_: web.Request) -> web.Response:
            return web.json_response(_envelope({"version": "2.2.1", "endpoints": self.endpoints()}))

        async def credentials(_: web.Request) -> web.Response:
            return web.json_response(_envelope(self.credentials()))

        async def receiver(request: web.Request) -> web.Response:
            await request.read()
            self.pushes[f"{request.method} {request.match_info['module']}"] += 1
            return web.json_response(_envelope())

        app = web.Application()
        app.router.add_get("/ocpi/versions", versions)
        app.router.add_get("/ocpi/2.2.1", details)
        app.router.add_get("/ocpi/2.2.1/credentials", credentials)
        app.router.add_route("*", "/ocpi/emsp/2.2.1/{module}/{tail:.*}", receiver)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def register(self, http: aiohttp.ClientSession, versions_url: str, token_a: str) -> tuple[str, str]:
        """The credentials handshake with the CPO; (token C, the CPO's locations URL)."""
        auth = {"Authorization": "Token " + base64.b64encode(token_a.encode()).decode()}
        async with http.get(versions_url, headers=auth) as response:
            listing = (await response.json())["data"]
        version_url = next(item["url"] for item in listing if item["version"] == "2.2.1")
        async with http.get(version_url, headers=auth) as response:
            endpoints = {item["identifier"]: item["url"] for item in (await response.json())["data"]["endpoints"]}
        async with http.post(endpoints["credentials"], json=self.credentials(), headers=auth) as response:
            answer = await response.json()
        if answer.get("status_code") != 1000:
            raise RuntimeError(f"the CPO refused the registration: {answer}")
        return str(answer["data"]["token"]), endpoints["locations"]


@dataclass
class Site:
    """One site: its queue file, its uplink client and what it says."""

    id: str
    sim: SiteSim
    queue: AsyncUplinkQueue
    client: UplinkClient


async def _admin(config: Path, *argv: str) -> Any:
    """``python -m cloud_connector --config ... admin ...``, in-process, as JSON."""
    out, err = io.StringIO(), io.StringIO()
    code = await cli.run(["--config", str(config), "admin", *argv], environ={}, out=out, err=err)
    if code != 0:
        raise RuntimeError(f"admin {' '.join(argv)}: {err.getvalue().strip()}")
    return json.loads(out.getvalue())


async def _until(predicate: Any, what: str, timeout: float, step: float = 0.005) -> float:
    """Poll ``predicate()`` until true; seconds waited. ``TimeoutError`` naming ``what``."""
    began = time.perf_counter()
    while not predicate():
        if time.perf_counter() - began > timeout:
            raise TimeoutError(f"{what}: not done after {timeout:g} s")
        await asyncio.sleep(step)
    return time.perf_counter() - began


# --- figures --------------------------------------------------------------------------------------------


@dataclass
class Latency:
    """Times (s) of one kind of request, and the mean size of the answers."""

    seconds: list[float] = field(default_factory=list)
    bytes: int = 0

    def summary(self) -> dict[str, Any]:
        ms = [value * 1000.0 for value in self.seconds]
        return {
            "requests": len(ms),
            "p50_ms": round(percentile(ms, 0.5), 2),
            "p99_ms": round(percentile(ms, 0.99), 2),
            "max_ms": round(max(ms, default=0.0), 2),
            "mean_bytes": self.bytes,
        }


@dataclass
class Report:
    """Everything measured."""

    sites: int
    evses_per_site: int
    events_per_site: int
    emsp: str
    log_level: str
    machine: str
    inventory_s: float = 0.0
    pages: Latency = field(default_factory=Latency)
    location: Latency = field(default_factory=Latency)
    evse: Latency = field(default_factory=Latency)
    page_offsets: list[int] = field(default_factory=list)
    page_size: int = 0
    ingest_events: int = 0
    ingest_s: float = 0.0
    ingest_server_cpu_s: float = 0.0
    ingest_sites_cpu_s: float = 0.0
    ingest_kinds: dict[str, int] = field(default_factory=dict)
    push_pending: int = 0
    push_drain_s: float | None = None
    resync_sites: int = 0
    resync_events: int = 0
    resync_start_s: float = 0.0
    resync_welcome_s: float = 0.0
    resync_drain_s: float = 0.0
    resync_server_cpu_s: float = 0.0
    applied_events: int = 0
    unusable_events: int = 0
    pushes: dict[str, int] = field(default_factory=dict)
    profile: str = ""

    @property
    def ingest_rate(self) -> float:
        return self.ingest_events / self.ingest_s if self.ingest_s else 0.0

    @property
    def resync_rate(self) -> float:
        return self.resync_events / self.resync_drain_s if self.resync_drain_s else 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for name in ("pages", "location", "evse"):
            data[name] = getattr(self, name).summary()
        data["ingest_rate"] = round(self.ingest_rate, 1)
        data["resync_rate"] = round(self.resync_rate, 1)
        data["page_aim_met"] = self.pages.summary()["p99_ms"] < PAGE_AIM_MS
        data["ingest_aim_met"] = self.ingest_rate >= INGEST_AIM
        return data

    def render(self) -> str:
        evses = self.sites * self.evses_per_site
        lines = [
            f"Cariflex cloud connector: {self.sites} sites x {self.evses_per_site} EVSEs = {evses:,} EVSEs; "
            f"eMSP {self.emsp}; service log level {self.log_level}",
            f"  {self.machine}",
            "",
            f"inventory through the uplink: {self.sites} inventory events ({evses:,} EVSEs) applied in "
            f"{self.inventory_s:.2f} s",
            "",
            f"{'OCPI GET (eMSP token C, sequential)':<44}{'n':>6}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}{'bytes':>12}",
        ]
        for latency, label in (
            (self.pages, f"page of {self.page_size} (offsets {','.join(map(str, self.page_offsets))})"),
            (self.location, "locations/{id}"),
            (self.evse, "locations/{id}/{evse_uid}"),
        ):
            s = latency.summary()
            lines.append(
                f"  {label:<42}{s['requests']:>6}{s['p50_ms']:>10.1f}{s['p99_ms']:>10.1f}{s['max_ms']:>10.1f}"
                f"{s['mean_bytes']:>12,}"
            )
        page_p99 = self.pages.summary()["p99_ms"]
        lines += [
            f"  aim: page p99 < {PAGE_AIM_MS:g} ms -> {'met' if page_p99 < PAGE_AIM_MS else 'MISSED'}",
            "",
            f"uplink ingest: {self.sites} sites x {self.events_per_site} events = {self.ingest_events:,} events "
            f"acknowledged in {self.ingest_s:.2f} s = {self.ingest_rate:,.0f} events/s "
            f"(aim >= {INGEST_AIM:,.0f}: {'met' if self.ingest_rate >= INGEST_AIM else 'MISSED'})",
            f"  CPU: service {self.ingest_server_cpu_s:.2f} s ({_share(self.ingest_server_cpu_s, self.ingest_s)} of one core), "
            f"sites {self.ingest_sites_cpu_s:.2f} s ({_share(self.ingest_sites_cpu_s, self.ingest_s)})",
            "  events: " + ", ".join(f"{kind} {count:,}" for kind, count in sorted(self.ingest_kinds.items())),
        ]
        if self.emsp == "push":
            drained = (
                "not all within 120 s" if self.push_drain_s is None else f"all pushed {self.push_drain_s:.1f} s later"
            )
            lines.append(
                f"  pushes: {self.push_pending:,} objects still to push when the last event was acknowledged; {drained}"
            )
        lines += [
            "",
            f"resync after 24 h offline: {self.resync_sites} site(s), {self.resync_events:,} queued events; "
            f"service up in {self.resync_start_s:.2f} s, sites welcomed {self.resync_welcome_s:.2f} s later, "
            f"all acknowledged {self.resync_drain_s:.2f} s after start-up ({self.resync_rate:,.0f} events/s, "
            f"service CPU {self.resync_server_cpu_s:.2f} s)",
            "",
            f"checks: {self.applied_events:,} events applied in the database, {self.unusable_events} without effect; "
            f"pushes received by the eMSP: {sum(self.pushes.values()):,}",
        ]
        if self.profile:
            lines += ["", self.profile]
        return "\n".join(lines)


def _share(cpu: float, wall: float) -> str:
    return f"{100 * cpu / wall:.0f} %" if wall else "-"


# --- the run ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Options:
    """What to run (the command line)."""

    sites: int = 200
    evses_per_site: int = 50
    events: int = 100
    requests: int = 100
    page_limit: int = 100
    server_page_limit: int = 0
    day_sessions: int = 20
    resync_sites: int = 1
    emsp: str = "pull"
    log_level: str = "INFO"
    seed: int = 1
    timeout: float = 900.0
    profile: Path | None = None
    keep: bool = False
    progress: TextIO | None = None


def _say(options: Options, text: str) -> None:
    if options.progress is not None:
        print(text, file=options.progress, flush=True)


async def run(options: Options) -> Report:
    """Run every phase on a fresh service in a temporary directory; stops by itself after ``options.timeout``."""
    if options.keep:
        root = Path(tempfile.mkdtemp(prefix="cariflex-cloud-bench-"))
        async with asyncio.timeout(options.timeout):
            return await _run(options, root)
    with tempfile.TemporaryDirectory(prefix="cariflex-cloud-bench-") as tmp:
        async with asyncio.timeout(options.timeout):
            return await _run(options, Path(tmp))


async def _run(options: Options, root: Path) -> Report:
    rng = random.Random(options.seed)
    port = free_port()
    config = root / "cloud.toml"
    database = root / "cloud.sqlite3"
    config.write_text(
        f'[server]\nhost = "127.0.0.1"\nport = {port}\n'
        f"[database]\npath = {json.dumps(str(database))}\n"
        f'[logging]\nlevel = "{options.log_level}"\n'
        + (f"[ocpi]\npage_limit = {options.server_page_limit}\n" if options.server_page_limit else ""),
        encoding="utf-8",
    )
    report = Report(
        sites=options.sites,
        evses_per_site=options.evses_per_site,
        events_per_site=options.events,
        emsp=options.emsp,
        log_level=options.log_level,
        machine=f"Python {platform.python_version()}, {os.cpu_count()} CPUs, {platform.machine()}, "
        f"SQLite {sqlite3.sqlite_version}, files in {root}",
    )
    _say(options, f"setting up {options.sites} sites with the admin CLI...")
    await _admin(config, "create-party", "--country-code", "FR", "--party-id", "CAR", "--name", "Cariflex")
    tokens: dict[str, str] = {}
    for n in range(options.sites):
        site_id = f"site{n + 1:04d}"
        tokens[site_id] = (await _admin(config, "register-site", "--name", f"Site {n + 1}", "--id", site_id))["token"]
    peer = await _admin(config, "create-peer", "--name", "bench-emsp")

    cloud = CloudProcess(config, port, root / "cloud.log", options.profile)
    emsp = Emsp(push=options.emsp == "push")
    site_http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    http = aiohttp.ClientSession()
    sites: list[Site] = []
    try:
        await cloud.start(http)
        await emsp.start()
        token_c, locations_url = await emsp.register(http, peer["versions_url"], peer["token"])
        ws_url = cloud.url.replace("http://", "ws://") + "/uplink/v1"
        for site_id, token in tokens.items():
            queue = await AsyncUplinkQueue.open(root / f"{site_id}.queue.db")
            client = UplinkClient(
                site_http, ws_url, token, queue, _refuse, heartbeat=30.0, backoff_initial=0.05, backoff_max=0.5
            )
            sites.append(Site(site_id, SiteSim(site_id, options.evses_per_site, rng), queue, client))
        for site in sites:
            site.client.start()
        await _until(lambda: all(site.client.connected for site in sites), "sites connecting", 60.0)

        _say(options, "inventory through the uplink...")
        began = time.perf_counter()
        now = datetime.now(UTC)
        await asyncio.gather(*(site.queue.append("inventory", site.sim.inventory(), now) for site in sites))
        await _until(lambda: not any(site.queue.length for site in sites), "inventory", options.timeout)
        report.inventory_s = time.perf_counter() - began

        _say(options, "OCPI latency...")
        await _latencies(
            options, report=report, http=http, locations_url=locations_url, token_c=token_c, sites=sites, rng=rng
        )

        _say(options, f"ingest: {options.sites} x {options.events} events...")
        # simulated time: the burst, then a day offline that ends now (the service ignores event times)
        burst_start = datetime.now(UTC) - timedelta(hours=24, seconds=options.events + 120)
        day_start = burst_start + timedelta(seconds=options.events + 60)
        bursts = [site.sim.burst(options.events, burst_start) for site in sites]
        report.ingest_kinds = dict(Counter(kind for burst in bursts for kind, _, _ in burst))
        report.ingest_events = sum(len(burst) for burst in bursts)
        cpu, own = cloud.cpu_seconds(), _own_cpu()
        began = time.perf_counter()
        await asyncio.gather(*(site.queue.append_many(burst) for site, burst in zip(sites, bursts, strict=True)))
        await _until(lambda: not any(site.queue.length for site in sites), "ingest", options.timeout)
        report.ingest_s = time.perf_counter() - began
        report.ingest_server_cpu_s = cloud.cpu_seconds() - cpu
        report.ingest_sites_cpu_s = _own_cpu() - own
        if emsp.push:
            await _push_backlog(options, report, database)

        await _resync(options, report=report, cloud=cloud, http=http, sites=sites, day_start=day_start)
        report.applied_events = _count(database, "uplink_events")
    finally:
        await asyncio.gather(*(site.client.stop() for site in sites), return_exceptions=True)
        await asyncio.gather(*(site.queue.close() for site in sites), return_exceptions=True)
        await site_http.close()
        await cloud.stop()
        await emsp.stop()
        await http.close()
    report.unusable_events = cloud.log.read_text(encoding="utf-8", errors="replace").count("has no effect")
    report.pushes = dict(emsp.pushes)
    if cloud.profiles:
        report.profile = _profile_summary(cloud.profiles)
    return report


async def _refuse(name: str, charger_id: str, args: dict[str, Any]) -> tuple[str, str]:
    """The sites' command handler (the benchmark sends no commands)."""
    return "rejected", "benchmark site"


async def _latencies(
    options: Options,
    *,
    report: Report,
    http: aiohttp.ClientSession,
    locations_url: str,
    token_c: str,
    sites: list[Site],
    rng: random.Random,
) -> None:
    headers = {"Authorization": "Token " + base64.b64encode(token_c.encode()).decode()}

    async def get(url: str, latency: Latency | None) -> Any:
        began = time.perf_counter()
        async with http.get(url, headers=headers) as response:
            raw = await response.read()
        elapsed = time.perf_counter() - began
        body = json.loads(raw)
        if response.status != 200 or body.get("status_code") != 1000:
            raise RuntimeError(f"GET {url}: HTTP {response.status} {body.get('status_code')}")
        if latency is not None:
            latency.seconds.append(elapsed)
            latency.bytes += len(raw)
        return body["data"], response.headers

    limit = options.page_limit
    first, headers_first = await get(f"{locations_url}?offset=0&limit={limit}", None)
    total = int(headers_first["X-Total-Count"])
    if total != len(sites) or any(len(item["evses"]) != options.evses_per_site for item in first):
        raise RuntimeError(f"the CPO lists {total} Locations, not the {len(sites)} sites with their EVSEs")
    report.page_size = len(first)  # the service caps the limit at its ocpi.page_limit (X-Limit)
    highest = max(total - report.page_size, 0)
    report.page_offsets = sorted({round(i * highest / 3) for i in range(4)})
    evses = [(item["id"], evse["uid"]) for item in first for evse in item["evses"]]
    for n in range(3):  # warm-up, not counted
        await get(f"{locations_url}?offset={report.page_offsets[n % len(report.page_offsets)]}&limit={limit}", None)
    for n in range(options.requests):
        offset = report.page_offsets[n % len(report.page_offsets)]
        await get(f"{locations_url}?offset={offset}&limit={limit}", report.pages)
    for _ in range(options.requests):
        await get(f"{locations_url}/{rng.choice(sites).id}", report.location)
    for _ in range(options.requests):
        location_id, uid = rng.choice(evses)
        await get(f"{locations_url}/{location_id}/{uid}", report.evse)
    for latency in (report.pages, report.location, report.evse):
        latency.bytes //= max(len(latency.seconds), 1)


async def _resync(
    options: Options,
    *,
    report: Report,
    cloud: CloudProcess,
    http: aiohttp.ClientSession,
    sites: list[Site],
    day_start: datetime,
) -> None:
    chosen = sites[: max(0, min(options.resync_sites, len(sites)))]
    _say(options, f"resync: the service stops, {len(chosen)} site(s) queue a day of events...")
    await cloud.stop()
    await _until(lambda: not any(site.client.connected for site in sites), "sites noticing the stop", 30.0)
    days = [site.sim.day(options.day_sessions, day_start) for site in chosen]
    for site, events in zip(chosen, days, strict=True):
        await site.queue.append_many(events)
    report.resync_sites = len(chosen)
    report.resync_events = sum(len(events) for events in days)
    _say(options, f"resync: {report.resync_events:,} events queued, the service starts again...")
    report.resync_start_s = await cloud.start(http)
    cpu = cloud.cpu_seconds()
    began = time.perf_counter()
    report.resync_welcome_s = await _until(
        lambda: all(site.client.connected for site in chosen), "resync welcome", options.timeout
    )
    await _until(lambda: not any(site.queue.length for site in chosen), "resync", options.timeout)
    report.resync_drain_s = time.perf_counter() - began
    report.resync_server_cpu_s = cloud.cpu_seconds() - cpu
    await _until(lambda: all(site.client.connected for site in sites), "sites reconnecting", 60.0)


async def _push_backlog(options: Options, report: Report, database: Path) -> None:
    """With a push eMSP: objects still flagged for it when the ingest ends, and how long they take to go."""
    report.push_pending = _count(database, "push_state")
    _say(options, f"ingest done, {report.push_pending} objects still to push to the eMSP...")
    try:
        report.push_drain_s = await _until(
            lambda: _count(database, "push_state") == 0, "pushes", min(120.0, options.timeout), step=0.1
        )
    except TimeoutError:
        report.push_drain_s = None


def _own_cpu() -> float:
    """User + system CPU time of this process (the sites, their queues, the eMSP)."""
    times = psutil.Process().cpu_times()
    return float(times.user + times.system)


def _count(database: Path, table: str) -> int:
    """Rows of a table of the service's database (read-only, next to the running service)."""
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as conn:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])  # noqa: S608 - our own names


def _profile_summary(paths: list[Path], top: int = 25) -> str:
    """The service's functions with the most time of their own, over every run of the profile."""
    existing = [str(path) for path in paths if path.exists()]
    if not existing:
        return "profile: the service wrote no profile"
    stream = io.StringIO()
    stats = pstats.Stats(*existing, stream=stream)
    stats.strip_dirs().sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)
    return f"profile of the service ({', '.join(existing)}):\n{stream.getvalue()}"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sites", type=int, default=200, help="sites, each with its uplink client (default 200)")
    parser.add_argument("--evses-per-site", type=int, default=50, help="EVSEs per site, two per charger (default 50)")
    parser.add_argument("--events", type=int, default=100, help="events per site in the ingest phase (default 100)")
    parser.add_argument("--requests", type=int, default=100, help="timed requests per kind of GET (default 100)")
    parser.add_argument("--page-limit", type=int, default=100, help="limit of the locations pages (default 100)")
    parser.add_argument(
        "--server-page-limit", type=int, default=0, help="the service's ocpi.page_limit (default: its own, 100)"
    )
    parser.add_argument("--day-sessions", type=int, default=20, help="sessions in the offline day (default 20)")
    parser.add_argument("--resync-sites", type=int, default=1, help="sites that queue a day offline (default 1)")
    parser.add_argument("--emsp", choices=("pull", "push"), default="pull", help="push: the eMSP has Receivers")
    parser.add_argument("--log-level", default="INFO", help="the service's log level (default INFO)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=900.0, help="stop after this many seconds (default 900)")
    parser.add_argument("--profile", type=Path, help="run the service under cProfile, files PROFILE-<run>.prof")
    parser.add_argument("--keep", action="store_true", help="keep the files (database, logs, queues) afterwards")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    if min(args.sites, args.evses_per_site, args.events, args.requests, args.page_limit) < 1:
        parser.error("sizes must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run, print the table (progress on stderr); 0, or 1 when it ran out of time."""
    args = parse_args(argv)
    options = Options(
        sites=args.sites,
        evses_per_site=args.evses_per_site,
        events=args.events,
        requests=args.requests,
        page_limit=args.page_limit,
        server_page_limit=args.server_page_limit,
        day_sessions=args.day_sessions,
        resync_sites=args.resync_sites,
        emsp=args.emsp,
        log_level=args.log_level.upper(),
        seed=args.seed,
        timeout=args.timeout,
        profile=args.profile.resolve() if args.profile else None,
        keep=args.keep,
        progress=sys.stderr,
    )
    try:
        report = asyncio.run(run(options))
    except TimeoutError as err:
        print(f"stopped: {str(err) or f'not done after {options.timeout:g} s'}", file=sys.stderr)
        return 1
    print(report.render())
    if args.json:
        args.json.write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
