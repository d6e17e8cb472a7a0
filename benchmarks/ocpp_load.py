"""Load benchmark: N OCPP 1.6 chargers against a central system, as users run it.

By default it starts a real Home Assistant (recorder on, Cariflex configured, its own
throwaway config dir) and points N light-weight simulated chargers at it. Each charger
boots, reports its status, starts a session, then sends MeterValues every ``--interval``
seconds (energy, power, current per phase, voltage) and a Heartbeat every
``--heartbeat`` seconds, and answers the central system's own requests.

It prints, for the measured window after the ramp-up: p50/p99/max response time per
message type, messages/s, errors, and the CPU and memory of the Home Assistant process.

    python -m benchmarks.ocpp_load --chargers 200 --duration 60
    python -m benchmarks.ocpp_load --url ws://127.0.0.1:9000 --chargers 50   # any central system

Numbers, not pass/fail: nothing here is a test.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
import json
import os
from pathlib import Path
import random
import statistics
import sys
import tempfile
import time
from typing import Any
import uuid

import psutil
import websockets
from websockets.typing import Subprotocol


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class Stats:
    """Response times (s) per action, counted only inside the measured window."""

    measuring: bool = False
    times: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    sent: int = 0
    connected: int = 0
    failed_connections: int = 0

    def record(self, action: str, seconds: float) -> None:
        if self.measuring:
            self.times.setdefault(action, []).append(seconds)
            self.sent += 1

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


class LightCharger:
    """A minimal OCPP 1.6 client: prebuilt frames, one outstanding CALL, answers the server."""

    def __init__(self, url: str, charger_id: str, stats: Stats, interval: float, heartbeat: float) -> None:
        self.url = url
        self.charger_id = charger_id
        self.stats = stats
        self.interval = interval
        self.heartbeat = heartbeat
        self.energy = random.uniform(0, 50_000)
        self.power = random.choice([3700.0, 7400.0, 11000.0])
        self.transaction_id: int | None = None
        self._pending: dict[str, asyncio.Future[Any]] = {}
        self._ws: Any = None

    async def call(self, action: str, payload: dict[str, Any]) -> Any:
        unique_id = uuid.uuid4().hex[:16]
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[unique_id] = future
        started = time.perf_counter()
        await self._ws.send(json.dumps([2, unique_id, action, payload]))
        try:
            async with asyncio.timeout(30):
                result = await future
        except TimeoutError:
            self.stats.error(f"{action} timeout")
            return None
        finally:
            self._pending.pop(unique_id, None)
        self.stats.record(action, time.perf_counter() - started)
        return result

    async def _reader(self) -> None:
        async for raw in self._ws:
            frame = json.loads(raw)
            if frame[0] == 3 and frame[1] in self._pending:
                self._pending[frame[1]].set_result(frame[2])
            elif frame[0] == 4 and frame[1] in self._pending:
                self.stats.error(f"CALLERROR {frame[2]}")
                self._pending[frame[1]].set_result(None)
            elif frame[0] == 2:
                answer: dict[str, Any] = {"status": "Accepted"}
                if frame[2] == "GetConfiguration":
                    answer = {"configurationKey": [{"key": "NumberOfConnectors", "readonly": True, "value": "1"}]}
                await self._ws.send(json.dumps([3, frame[1], answer]))

    def _meter_payload(self) -> dict[str, Any]:
        per_phase = self.power / 230 / 3
        sampled = [
            {"value": f"{self.energy:.0f}", "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
            {"value": f"{self.power:.0f}", "measurand": "Power.Active.Import", "unit": "W"},
            *(
                {"value": f"{per_phase:.1f}", "measurand": "Current.Import", "unit": "A", "phase": phase}
                for phase in ("L1", "L2", "L3")
            ),
            {"value": "230", "measurand": "Voltage", "unit": "V", "phase": "L1-N"},
        ]
        return {
            "connectorId": 1,
            "transactionId": self.transaction_id,
            "meterValue": [{"timestamp": _now(), "sampledValue": sampled}],
        }

    async def run(self, stop: asyncio.Event) -> None:
        try:
            self._ws = await websockets.connect(
                f"{self.url.rstrip('/')}/{self.charger_id}",
                subprotocols=[Subprotocol("ocpp1.6")],
                open_timeout=60,
                max_queue=None,
            )
        except Exception:
            self.stats.failed_connections += 1
            return
        self.stats.connected += 1
        reader = asyncio.create_task(self._reader())
        try:
            await self.call("BootNotification", {"chargePointVendor": "Bench", "chargePointModel": "Light"})
            await self.call(
                "StatusNotification",
                {"connectorId": 1, "errorCode": "NoError", "status": "Charging", "timestamp": _now()},
            )
            started = await self.call(
                "StartTransaction",
                {"connectorId": 1, "idTag": f"T{self.charger_id}", "meterStart": int(self.energy), "timestamp": _now()},
            )
            self.transaction_id = started["transactionId"] if started else None
            next_heartbeat = time.monotonic() + random.uniform(0, self.heartbeat)
            await asyncio.sleep(random.uniform(0, self.interval))  # spread the load
            while not stop.is_set():
                self.energy += self.power * self.interval / 3600
                await self.call("MeterValues", self._meter_payload())
                if time.monotonic() >= next_heartbeat:
                    await self.call("Heartbeat", {})
                    next_heartbeat += self.heartbeat
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.interval):
                        await stop.wait()
        except websockets.ConnectionClosed:
            self.stats.error("connection closed")
        finally:
            reader.cancel()
            with contextlib.suppress(Exception):
                await self._ws.close()


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def run_load(args: argparse.Namespace, url: str, hass_pid: int | None) -> dict[str, Any]:
    """Connect the chargers, ramp up, measure, report."""
    stats = Stats()
    stop = asyncio.Event()
    chargers = [LightCharger(url, f"BENCH{i:04d}", stats, args.interval, args.heartbeat) for i in range(args.chargers)]
    tasks: list[asyncio.Task[None]] = []
    ramp_started = time.monotonic()
    for index, charger in enumerate(chargers):
        tasks.append(asyncio.create_task(charger.run(stop)))
        if args.ramp:
            await asyncio.sleep(args.ramp / args.chargers)
        if index % 50 == 49:
            print(f"  {index + 1} chargers started", flush=True)
    await asyncio.sleep(args.settle)
    print(f"ramp-up done in {time.monotonic() - ramp_started:.0f} s; measuring {args.duration} s...", flush=True)
    hass = psutil.Process(hass_pid) if hass_pid else None
    me = psutil.Process(os.getpid())
    if hass:
        hass.cpu_percent(None)
    me.cpu_percent(None)
    stats.measuring = True
    window_start = time.monotonic()
    await asyncio.sleep(args.duration)
    stats.measuring = False
    window = time.monotonic() - window_start
    hass_cpu = hass.cpu_percent(None) if hass else None
    hass_rss = hass.memory_info().rss / 2**20 if hass else None
    load_cpu = me.cpu_percent(None)
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    every = [t for values in stats.times.values() for t in values]
    result: dict[str, Any] = {
        "chargers": args.chargers,
        "connected": stats.connected,
        "failed_connections": stats.failed_connections,
        "window_s": round(window, 1),
        "messages": stats.sent,
        "messages_per_s": round(stats.sent / window, 1),
        "p50_ms": round(statistics.median(every) * 1000, 1) if every else None,
        "p99_ms": round(_percentile(every, 0.99) * 1000, 1) if every else None,
        "max_ms": round(max(every) * 1000, 1) if every else None,
        "per_action": {
            action: {
                "n": len(values),
                "p50_ms": round(statistics.median(values) * 1000, 1),
                "p99_ms": round(_percentile(values, 0.99) * 1000, 1),
            }
            for action, values in sorted(stats.times.items())
        },
        "errors": stats.errors,
        "hass_cpu_percent": hass_cpu,
        "hass_rss_mib": round(hass_rss, 0) if hass_rss else None,
        "load_generator_cpu_percent": load_cpu,
    }
    return result


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    """Start Home Assistant unless a URL is given, then run the load."""
    if args.url:
        return await run_load(args, args.url, args.pid)
    from simulator.hass_runner import HassInstance, SiteSettings

    with tempfile.TemporaryDirectory(prefix="cariflex-bench-") as config_dir:
        instance = HassInstance(
            Path(config_dir),
            port=args.http_port,
            ui=False,
            components=["recorder", "history", "logbook"],
            logs={"custom_components.cariflex": "warning"},
        )
        print(f"starting Home Assistant (recorder on) in {config_dir}...", flush=True)
        await instance.start_site(SiteSettings(ws_port=args.ocpp_port, unknown_chargers="accept"))
        try:
            result = await run_load(args, f"ws://127.0.0.1:{args.ocpp_port}", instance.pid)
            states = await instance.states()
            result["entities"] = sum(
                1
                for state in states
                if "cariflex" in str(state.get("attributes", {}))
                or state["entity_id"].split(".", 1)[1].startswith("bench")
            )
            database = Path(config_dir) / "home-assistant_v2.db"
            result["recorder_db_mib"] = round(database.stat().st_size / 2**20, 1) if database.exists() else None
            return result
        finally:
            await instance.stop()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chargers", type=int, default=200)
    parser.add_argument("--duration", type=float, default=60, help="measured window (s)")
    parser.add_argument("--interval", type=float, default=10, help="MeterValues interval (s)")
    parser.add_argument("--heartbeat", type=float, default=60, help="Heartbeat interval (s)")
    parser.add_argument("--ramp", type=float, default=30, help="spread the connections over this many seconds")
    parser.add_argument("--settle", type=float, default=20, help="wait after the ramp-up before measuring (s)")
    parser.add_argument("--url", help="an already running central system (skips starting Home Assistant)")
    parser.add_argument("--pid", type=int, help="with --url: the central system's process id, for CPU figures")
    parser.add_argument("--http-port", type=int, default=18123)
    parser.add_argument("--ocpp-port", type=int, default=19000)
    parser.add_argument("--json", action="store_true", help="print the result as JSON only")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = asyncio.run(main_async(args))
    if args.json:
        print(json.dumps(result))
        return 0
    print(json.dumps(result, indent=2))
    return 0 if result["connected"] == args.chargers else 1


if __name__ == "__main__":
    sys.exit(main())
