"""Command line charger simulator: N simulated OCPP chargers against any central system.

    python -m simulator --url ws://127.0.0.1:9000 --count 3 --id-prefix SIM --password PW \
        [--sessions 1] [--interval 10] [--ocpp 1.6] [--cafile PATH] [--duration SECONDS]

Each charger (ids PREFIX1..PREFIXN) connects, boots, reports every connector Available,
sends heartbeats at the interval the central system gave, and the first ``--sessions``
chargers start a session (Preparing, StartTransaction, Charging) and send MeterValues
every ``--interval`` seconds with a rising energy register. A dropped connection is
retried with a growing delay; SIGINT/SIGTERM (or the end of ``--duration``) stops the
running sessions with StopTransaction and closes the connections.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
import contextlib
from dataclasses import dataclass
import logging
import math
import random
import signal
import ssl
import sys
from typing import Any

from ocpp.exceptions import OCPPError
import websockets

from .charger16 import SimCharger16, SimConfig, SimConnector, connect

_LOGGER = logging.getLogger("simulator")

SUPPORTED_OCPP = ("1.6",)
EXIT_OK = 0
EXIT_UNSUPPORTED = 2
STOP_TIMEOUT_S = 5.0


@dataclass(slots=True)
class Options:
    """Parsed command line."""

    url: str
    count: int = 1
    id_prefix: str = "SIM"
    password: str | None = None
    sessions: int = 1
    interval: float = 10.0
    ocpp: str = "1.6"
    cafile: str | None = None
    duration: float | None = None
    connectors: int = 1
    power_w: float = 7400.0
    id_tag: str = "SIMTAG"
    retry_min: float = 0.5
    retry_max: float = 30.0
    verbose: bool = False

    def charger_ids(self) -> list[str]:
        """PREFIX1..PREFIXN."""
        return [f"{self.id_prefix}{index}" for index in range(1, self.count + 1)]


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, not {text}")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, not {text}")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, not {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m simulator`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="python -m simulator",
        description="Simulated OCPP chargers that connect to a central system, boot, heartbeat and charge.",
    )
    parser.add_argument(
        "--url", required=True, help="central system URL, e.g. ws://127.0.0.1:9000 (the id is appended)"
    )
    parser.add_argument("--count", type=_count, default=1, help="number of chargers (default 1)")
    parser.add_argument("--id-prefix", default="SIM", help="charger ids are PREFIX1..PREFIXN (default SIM)")
    parser.add_argument("--password", default=None, help="HTTP Basic password (OCPP security profile 1/2)")
    parser.add_argument(
        "--sessions", type=_non_negative, default=1, help="how many chargers start a session (default 1)"
    )
    parser.add_argument(
        "--interval", type=_positive_float, default=10.0, help="seconds between MeterValues (default 10)"
    )
    parser.add_argument("--ocpp", choices=["1.6", "2.0.1"], default="1.6", help="OCPP version (default 1.6)")
    parser.add_argument("--cafile", default=None, help="CA certificate that signed the central system's (wss://)")
    parser.add_argument("--duration", type=_positive_float, default=None, help="stop after this many seconds")
    parser.add_argument("--connectors", type=_count, default=1, help="connectors per charger (default 1)")
    parser.add_argument("--power", dest="power_w", type=_positive_float, default=7400.0, help="session power in W")
    parser.add_argument("--id-tag", default="SIMTAG", help="id tag the sessions start with (default SIMTAG)")
    parser.add_argument(
        "--retry-min", type=_positive_float, default=0.5, help="first reconnection delay in s (doubles each try)"
    )
    parser.add_argument("--retry-max", type=_positive_float, default=30.0, help="longest reconnection delay in s")
    parser.add_argument("-v", "--verbose", action="store_true", help="also log every OCPP frame")
    return parser


def parse_args(argv: Sequence[str] | None = None) -> Options:
    """Parse the command line into :class:`Options` (exits 2 on bad arguments)."""
    parser = build_parser()
    namespace = parser.parse_args(argv)
    if not namespace.url.startswith(("ws://", "wss://")):
        parser.error(f"--url must start with ws:// or wss://, not {namespace.url!r}")
    if namespace.cafile and not namespace.url.startswith("wss://"):
        parser.error("--cafile needs a wss:// URL")
    return Options(**vars(namespace))


def client_ssl_context(options: Options) -> ssl.SSLContext | None:
    """TLS context for wss:// URLs (the system CAs, or only ``--cafile``)."""
    if not options.url.startswith("wss://"):
        return None
    context = ssl.create_default_context(cafile=options.cafile)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _describe(err: BaseException) -> str:
    if isinstance(err, websockets.exceptions.InvalidStatus):
        code = err.response.status_code
        hint = {401: " (wrong or missing password)", 404: " (the central system refuses this charger)"}.get(code, "")
        return f"HTTP {code}{hint}"
    return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__


def offered_power(charger: SimCharger16, connector: SimConnector) -> float:
    """The power the charger may draw under the central system's current limit (W)."""
    amps = charger.config.max_current if connector.limit_a is None else connector.limit_a
    return amps * connector.voltage * connector.phases


class ChargerRunner:
    """One simulated charger for its whole life: connect, boot, work, reconnect, stop."""

    def __init__(self, charger_id: str, options: Options, stop: asyncio.Event, *, charging: bool) -> None:
        self.charger_id = charger_id
        self.options = options
        self.stop = stop
        self.charging = charging
        self.connectors: dict[int, SimConnector] | None = None  # kept across reconnections
        self.charger: SimCharger16 | None = None
        self.connections = 0
        self.boots = 0
        self.meter_values_sent = 0
        self.energy_exact: dict[int, float] = {}  # register with its fractions, per connector
        self.transactions: list[int] = []
        self.stopped_transactions: list[int] = []

    def log(self, level: int, message: str, *args: Any) -> None:
        """Log a line prefixed with the charger id."""
        if _LOGGER.isEnabledFor(level):
            _LOGGER.log(level, "%s: %s", self.charger_id, message % args if args else message)

    async def run(self) -> None:
        """Connect and serve until the stop event, reconnecting with a growing delay."""
        delay = self.options.retry_min
        while not self.stop.is_set():
            try:
                charger, ws, loop_task = await connect(
                    self.options.url,
                    self.charger_id,
                    password=self.options.password,
                    ssl_context=client_ssl_context(self.options),
                    config=SimConfig(serial=f"{self.charger_id}-SN", connectors=self.options.connectors),
                )
            except (OSError, TimeoutError, websockets.exceptions.InvalidHandshake, ssl.SSLError) as err:
                wait = min(delay, self.options.retry_max) * random.uniform(0.8, 1.2)
                self.log(
                    logging.WARNING,
                    "cannot connect to %s: %s; retrying in %.1f s",
                    self.options.url,
                    _describe(err),
                    wait,
                )
                delay = min(delay * 2, self.options.retry_max)
                await self._sleep(wait)
                continue
            delay = self.options.retry_min
            self.connections += 1
            if self.connectors is not None:
                charger.connectors = self.connectors
            self.connectors = charger.connectors
            self.charger = charger
            self.log(logging.INFO, "connected to %s", self.options.url)
            try:
                await self._serve(charger, loop_task)
            finally:
                await self._close(ws, loop_task)
                self.charger = None
            if not self.stop.is_set():
                wait = min(delay, self.options.retry_max) * random.uniform(0.8, 1.2)
                self.log(logging.WARNING, "connection lost; reconnecting in %.1f s", wait)
                delay = min(delay * 2, self.options.retry_max)
                await self._sleep(wait)

    async def _sleep(self, seconds: float) -> None:
        """Sleep, but wake up at once when asked to stop."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop.wait(), seconds)

    async def _serve(self, charger: SimCharger16, loop_task: asyncio.Task[None]) -> None:
        """Boot, then heartbeat and charge until the connection drops or the stop event."""
        workers: set[asyncio.Task[Any]] = set()
        stop_waiter = asyncio.create_task(self.stop.wait())
        workers.add(asyncio.create_task(self._boot_and_work(charger, workers)))
        try:
            while True:
                done, _ = await asyncio.wait({loop_task, stop_waiter, *workers}, return_when=asyncio.FIRST_COMPLETED)
                if loop_task in done or stop_waiter in done:
                    break
                failed = [task for task in done if task.exception() is not None]
                for task in failed:
                    self.log(logging.WARNING, "%s", _describe(task.exception() or RuntimeError("worker failed")))
                if failed:
                    break
                workers -= done  # finished normally (a refused session): keep serving
            if self.stop.is_set() and not loop_task.done():
                for task in workers:
                    task.cancel()
                await asyncio.gather(*workers, return_exceptions=True)
                await self._stop_sessions(charger)
        finally:
            stop_waiter.cancel()
            for task in workers:
                task.cancel()
            await asyncio.gather(stop_waiter, *workers, return_exceptions=True)

    async def _boot_and_work(self, charger: SimCharger16, workers: set[asyncio.Task[Any]]) -> None:
        while True:
            result = await charger.boot()
            self.boots += 1
            interval = max(1, int(result.interval or 0))
            if result.status == "Accepted":
                self.log(logging.INFO, "BootNotification Accepted, heartbeat every %d s", interval)
                break
            self.log(logging.WARNING, "BootNotification %s, booting again in %d s", result.status, interval)
            await asyncio.sleep(interval)
        for connector_id, connector in charger.connectors.items():
            if connector.transaction_id is None:
                await charger.status(connector_id, "Available")
        self.log(logging.INFO, "%d connector(s) Available", len(charger.connectors))
        workers.add(asyncio.create_task(self._heartbeats(charger, interval)))
        if self.charging:
            for connector_id in charger.connectors:
                workers.add(asyncio.create_task(self._session(charger, connector_id)))
                break

    async def _heartbeats(self, charger: SimCharger16, interval: int) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await charger.heartbeat()
            except OCPPError as err:
                self.log(logging.WARNING, "Heartbeat answered with an error: %s", err)
            else:
                self.log(logging.INFO, "Heartbeat")

    async def _session(self, charger: SimCharger16, connector_id: int) -> None:
        connector = charger.connectors[connector_id]
        if connector.transaction_id is None:
            await charger.status(connector_id, "Preparing")
            result = await charger.start_transaction(connector_id, self.options.id_tag)
            if connector.transaction_id is None:
                self.log(logging.WARNING, "StartTransaction refused: %s", result.id_tag_info.get("status"))
                await charger.status(connector_id, "Available")
                return
            self.transactions.append(connector.transaction_id)
            self.log(
                logging.INFO,
                "session started on connector %d, transaction %s, id tag %s",
                connector_id,
                connector.transaction_id,
                self.options.id_tag,
            )
        else:
            self.log(logging.INFO, "resuming transaction %s on connector %d", connector.transaction_id, connector_id)
        connector.power_w = self.options.power_w
        await charger.status(connector_id, "Charging")
        interval = self.options.interval
        while True:
            await asyncio.sleep(interval)
            connector.power_w = min(self.options.power_w, offered_power(charger, connector))
            # Whole watt-hours on the register, as real meters report it: MeterValues
            # (rounded) and StopTransaction (truncated) then always agree.
            exact = self.energy_exact.get(connector_id, connector.energy_wh) + connector.power_w * interval / 3600
            self.energy_exact[connector_id] = exact
            connector.energy_wh = float(math.floor(exact))
            try:
                await charger.meter_values(connector_id)
            except OCPPError as err:
                self.log(logging.WARNING, "MeterValues answered with an error: %s", err)
                continue
            self.meter_values_sent += 1
            self.log(
                logging.INFO,
                "MeterValues connector %d: %.0f W, register %.0f Wh",
                connector_id,
                connector.power_w,
                connector.energy_wh,
            )

    async def _stop_sessions(self, charger: SimCharger16) -> None:
        """StopTransaction for every running session (on the way out)."""
        for connector_id, connector in charger.connectors.items():
            if connector.transaction_id is None:
                continue
            transaction_id = connector.transaction_id
            try:
                async with asyncio.timeout(STOP_TIMEOUT_S):
                    await charger.stop_transaction(connector_id, reason="Local")
                    self.stopped_transactions.append(transaction_id)
                    self.log(
                        logging.INFO,
                        "StopTransaction %s on connector %d at %.0f Wh",
                        transaction_id,
                        connector_id,
                        connector.energy_wh,
                    )
                    await charger.status(connector_id, "Finishing")
            except (OCPPError, TimeoutError, websockets.exceptions.ConnectionClosed) as err:
                self.log(logging.WARNING, "could not stop transaction %s: %s", transaction_id, _describe(err))

    async def _close(self, ws: Any, loop_task: asyncio.Task[None]) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.close(), STOP_TIMEOUT_S)
        loop_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await loop_task
        if self.stop.is_set():
            self.log(logging.INFO, "disconnected")


class Simulation:
    """All the chargers of one command line."""

    def __init__(self, options: Options, stop: asyncio.Event | None = None) -> None:
        self.options = options
        self.stop = stop or asyncio.Event()
        self.runners = [
            ChargerRunner(charger_id, options, self.stop, charging=index < options.sessions)
            for index, charger_id in enumerate(options.charger_ids())
        ]

    async def run(self) -> int:
        """Run every charger until the stop event (or ``--duration``); returns the exit code."""
        if self.options.ocpp not in SUPPORTED_OCPP:
            print(f"OCPP {self.options.ocpp} is not supported yet (only {', '.join(SUPPORTED_OCPP)})", file=sys.stderr)
            return EXIT_UNSUPPORTED
        _LOGGER.info(
            "%d charger(s) %s -> %s, %d charging, MeterValues every %g s",
            len(self.runners),
            ", ".join(runner.charger_id for runner in self.runners),
            self.options.url,
            min(self.options.sessions, len(self.runners)),
            self.options.interval,
        )
        timer: asyncio.TimerHandle | None = None
        if self.options.duration is not None:
            timer = asyncio.get_running_loop().call_later(self.options.duration, self.stop.set)
        try:
            await asyncio.gather(*(runner.run() for runner in self.runners))
        finally:
            if timer is not None:
                timer.cancel()
        _LOGGER.info("simulator stopped")
        return EXIT_OK


def configure_logging(verbose: bool = False) -> None:
    """Readable one-line logs on stderr."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(message)s",
        datefmt="%H:%M:%S",
    )
    if not verbose:
        for noisy in ("ocpp", "websockets", "simulator.charger16"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


async def main_async(argv: Sequence[str] | None = None, stop: asyncio.Event | None = None) -> int:
    """Parse ``argv`` and run the simulation until ``stop`` is set (or the duration ends)."""
    options = parse_args(argv)
    return await Simulation(options, stop).run()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m simulator``: SIGINT/SIGTERM stop the chargers cleanly."""
    options = parse_args(argv)
    configure_logging(options.verbose)

    async def _run() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        return await Simulation(options, stop).run()

    return asyncio.run(_run())
