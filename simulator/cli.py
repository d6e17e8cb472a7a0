"""Command line charger simulator: N simulated OCPP chargers against any central system.

    python -m simulator --url ws://127.0.0.1:9000 --count 3 --id-prefix SIM --password PW \
        [--sessions 1] [--interval 10] [--ocpp 1.6|2.0.1|mixed] [--cafile PATH] [--duration SECONDS]

Each charger (ids PREFIX1..PREFIXN) connects, boots, reports every connector (EVSE)
Available, sends heartbeats at the interval the central system gave, and the first
``--sessions`` chargers start a session and report a rising energy register every
``--interval`` seconds:

* OCPP 1.6: Preparing, StartTransaction, Charging, then MeterValues;
* OCPP 2.0.1: Occupied, TransactionEvent Started, then TransactionEvent Updated (seqNo 1, 2...);
* ``--ocpp mixed``: odd chargers (PREFIX1, PREFIX3...) speak 1.6, even ones 2.0.1.

A dropped connection is retried with a growing delay; the open transaction carries on
after the reconnection (same transaction id; in 2.0.1 the seqNo continues).
SIGINT/SIGTERM (or the end of ``--duration``) stops the running sessions
(StopTransaction, or TransactionEvent Ended) and closes the connections.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
import argparse
import asyncio
from collections.abc import Awaitable, Iterable, Iterator, Sequence
import contextlib
from dataclasses import dataclass
import logging
import math
import random
import signal
import ssl
from typing import Any, ClassVar

from ocpp.exceptions import OCPPError
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from .charger16 import SimCharger16, SimConfig, SimConnector, connect
from .charger201 import SimCharger201, SimConfig201, SimEvse, connect201

_LOGGER = logging.getLogger("simulator")

V16 = "1.6"
V201 = "2.0.1"
MIXED = "mixed"
VERSIONS = (V16, V201)
OCPP_CHOICES = (*VERSIONS, MIXED)
EXIT_OK = 0
STOP_TIMEOUT_S = 5.0
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
CONNECT_ERRORS = (OSError, TimeoutError, InvalidHandshake, ssl.SSLError)


@dataclass(slots=True)
class Options:
    """Parsed command line."""

    url: str
    count: int = 1
    id_prefix: str = "SIM"
    password: str | None = None
    sessions: int = 1
    interval: float = 10.0
    ocpp: str = V16
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

    def version_of(self, index: int) -> str:
        """OCPP version of the charger at ``index`` (0-based): ``mixed`` alternates 1.6 and 2.0.1."""
        if self.ocpp == MIXED:
            return VERSIONS[index % len(VERSIONS)]
        if self.ocpp in VERSIONS:
            return self.ocpp
        raise ValueError(f"unknown OCPP version {self.ocpp!r} (choose from {', '.join(OCPP_CHOICES)})")

    def versions(self) -> dict[str, str]:
        """Charger id -> OCPP version."""
        return {charger_id: self.version_of(index) for index, charger_id in enumerate(self.charger_ids())}


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
        "--interval",
        type=_positive_float,
        default=10.0,
        help="seconds between MeterValues / TransactionEvent Updated (default 10)",
    )
    parser.add_argument(
        "--ocpp",
        choices=OCPP_CHOICES,
        default=V16,
        help="OCPP version; mixed alternates 1.6 and 2.0.1 (default 1.6)",
    )
    parser.add_argument("--cafile", default=None, help="CA certificate that signed the central system's (wss://)")
    parser.add_argument("--duration", type=_positive_float, default=None, help="stop after this many seconds")
    parser.add_argument("--connectors", type=_count, default=1, help="connectors (EVSEs) per charger (default 1)")
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
    if isinstance(err, InvalidStatus):
        code = err.response.status_code
        hint = {401: " (wrong or missing password)", 404: " (the central system refuses this charger)"}.get(code, "")
        return f"HTTP {code}{hint}"
    return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__


def offered_power(charger: SimCharger16, connector: SimConnector) -> float:
    """The power the charger may draw under the central system's current limit (W)."""
    amps = charger.config.max_current if connector.limit_a is None else connector.limit_a
    return amps * connector.voltage * connector.active_phases


@contextlib.contextmanager
def stop_on_signals(stop: asyncio.Event) -> Iterator[None]:
    """SIGINT and SIGTERM set ``stop`` while inside; the previous handlers come back afterwards."""
    loop = asyncio.get_running_loop()
    previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, stop.set)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            loop.remove_signal_handler(signum)
            if handler is not None:
                signal.signal(signum, handler)


class ChargerRunner[C: SimCharger16 | SimCharger201](ABC):
    """One simulated charger for its whole life: connect, boot, work, reconnect, stop.

    The subclasses speak one OCPP version each (:class:`Runner16`, :class:`Runner201`).
    """

    version: ClassVar[str]
    outlet: ClassVar[str]  # what the version calls a connector, for the logs

    def __init__(self, charger_id: str, options: Options, stop: asyncio.Event, *, charging: bool) -> None:
        self.charger_id = charger_id
        self.options = options
        self.stop = stop
        self.charging = charging
        self.charger: C | None = None
        self.connections = 0
        self.boots = 0
        self.meter_values_sent = 0  # MeterValues (1.6) or TransactionEvent Updated (2.0.1)
        self.transactions: list[str] = []
        self.stopped_transactions: list[str] = []

    def log(self, level: int, message: str, *args: Any) -> None:
        """Log a line prefixed with the charger id."""
        if _LOGGER.isEnabledFor(level):
            _LOGGER.log(level, "%s: %s", self.charger_id, message % args if args else message)

    def power_w(self) -> float:
        """What the charger's cars draw now (W); 0 while it is offline."""
        if self.charger is None:
            return 0.0
        return float(sum(outlet.power_w for outlet in self._outlets(self.charger)))

    # ------------------------------------------------------------ per version
    @staticmethod
    @abstractmethod
    def _outlets(charger: C) -> Iterable[Any]:
        """The charger's connectors (1.6) or EVSEs (2.0.1)."""

    @abstractmethod
    async def _connect(self) -> tuple[C, Any, asyncio.Task[None]]:
        """Open the websocket; returns the charger, its websocket and its message loop task."""

    @abstractmethod
    def _adopt(self, charger: C) -> None:
        """Give a new connection's charger the state kept across reconnections."""

    @abstractmethod
    def _idle_outlets(self, charger: C) -> list[int]:
        """Connectors (EVSEs) without a transaction."""

    @abstractmethod
    def _transactions(self, charger: C) -> dict[int, str]:
        """Connector (EVSE) id -> its open transaction."""

    @abstractmethod
    async def _start(self, charger: C, outlet_id: int) -> bool:
        """Start a transaction (or resume the open one); False when the central system refused it."""

    @abstractmethod
    async def _sample(self, charger: C, outlet_id: int, seconds: float) -> str:
        """Advance the register by ``seconds`` and report it; returns a log line."""

    @abstractmethod
    async def _end(self, charger: C, outlet_id: int) -> None:
        """End the transaction on the way out."""

    # ------------------------------------------------------------------ life
    async def run(self) -> None:
        """Connect and serve until the stop event, reconnecting with a growing delay."""
        delay = self.options.retry_min
        while not self.stop.is_set():
            try:
                charger, ws, loop_task = await self._connect()
            except CONNECT_ERRORS as err:
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
            self._adopt(charger)
            self.charger = charger
            self.log(logging.INFO, "connected to %s (OCPP %s)", self.options.url, self.version)
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

    async def _serve(self, charger: C, loop_task: asyncio.Task[None]) -> None:
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

    async def _boot_and_work(self, charger: C, workers: set[asyncio.Task[Any]]) -> None:
        while True:
            result = await charger.boot()
            self.boots += 1
            interval = max(1, int(result.interval or 0))
            if result.status == "Accepted":
                self.log(logging.INFO, "BootNotification Accepted, heartbeat every %d s", interval)
                break
            self.log(logging.WARNING, "BootNotification %s, booting again in %d s", result.status, interval)
            await asyncio.sleep(interval)
        idle = self._idle_outlets(charger)
        for outlet_id in idle:
            await charger.status(outlet_id, "Available")
        self.log(logging.INFO, "%d %s(s) Available", len(idle), self.outlet)
        workers.add(asyncio.create_task(self._heartbeats(charger, interval)))
        if self.charging:
            workers.add(asyncio.create_task(self._session(charger, 1)))

    async def _answered(self, what: str, request: Awaitable[Any]) -> bool:
        """Await one request; False (logged) when the central system answered with a CALLERROR."""
        try:
            await request
        except OCPPError as err:
            self.log(logging.WARNING, "%s answered with an error: %s", what, err)
            return False
        return True

    async def _heartbeats(self, charger: C, interval: int) -> None:
        while True:
            await asyncio.sleep(interval)
            if await self._answered("Heartbeat", charger.heartbeat()):
                self.log(logging.INFO, "Heartbeat")

    async def _session(self, charger: C, outlet_id: int) -> None:
        if not await self._start(charger, outlet_id):
            return
        interval = self.options.interval
        while True:
            await asyncio.sleep(interval)
            line = await self._sample(charger, outlet_id, interval)
            if line:
                self.meter_values_sent += 1
                self.log(logging.INFO, "%s", line)

    async def _stop_sessions(self, charger: C) -> None:
        """End every running session (on the way out)."""
        for outlet_id, transaction_id in self._transactions(charger).items():
            try:
                async with asyncio.timeout(STOP_TIMEOUT_S):
                    await self._end(charger, outlet_id)
            except (OCPPError, TimeoutError, ConnectionClosed) as err:
                self.log(logging.WARNING, "could not stop transaction %s: %s", transaction_id, _describe(err))
            else:
                self.stopped_transactions.append(transaction_id)

    async def _close(self, ws: Any, loop_task: asyncio.Task[None]) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.close(), STOP_TIMEOUT_S)
        loop_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await loop_task
        if self.stop.is_set():
            self.log(logging.INFO, "disconnected")


class Runner16(ChargerRunner[SimCharger16]):
    """An OCPP 1.6 charger: StartTransaction, MeterValues, StopTransaction."""

    version = V16
    outlet = "connector"

    @staticmethod
    def _outlets(charger: SimCharger16) -> Iterable[SimConnector]:
        return charger.connectors.values()

    def __init__(self, charger_id: str, options: Options, stop: asyncio.Event, *, charging: bool) -> None:
        super().__init__(charger_id, options, stop, charging=charging)
        self.connectors: dict[int, SimConnector] | None = None  # kept across reconnections
        self.energy_exact: dict[int, float] = {}  # register with its fractions, per connector

    async def _connect(self) -> tuple[SimCharger16, Any, asyncio.Task[None]]:
        return await connect(
            self.options.url,
            self.charger_id,
            password=self.options.password,
            ssl_context=client_ssl_context(self.options),
            config=SimConfig(serial=f"{self.charger_id}-SN", connectors=self.options.connectors),
        )

    def _adopt(self, charger: SimCharger16) -> None:
        if self.connectors is not None:
            charger.connectors = self.connectors
        self.connectors = charger.connectors

    def _idle_outlets(self, charger: SimCharger16) -> list[int]:
        return [cid for cid, connector in charger.connectors.items() if connector.transaction_id is None]

    def _transactions(self, charger: SimCharger16) -> dict[int, str]:
        return {
            cid: str(connector.transaction_id)
            for cid, connector in charger.connectors.items()
            if connector.transaction_id is not None
        }

    async def _start(self, charger: SimCharger16, outlet_id: int) -> bool:
        connector = charger.connectors[outlet_id]
        if connector.transaction_id is None:
            await charger.status(outlet_id, "Preparing")
            result = await charger.start_transaction(outlet_id, self.options.id_tag)
            if connector.transaction_id is None:
                self.log(logging.WARNING, "StartTransaction refused: %s", result.id_tag_info.get("status"))
                await charger.status(outlet_id, "Available")
                return False
            self.transactions.append(str(connector.transaction_id))
            self.log(
                logging.INFO,
                "session started on connector %d, transaction %s, id tag %s",
                outlet_id,
                connector.transaction_id,
                self.options.id_tag,
            )
        else:
            self.log(logging.INFO, "resuming transaction %s on connector %d", connector.transaction_id, outlet_id)
        connector.power_w = self.options.power_w
        await charger.status(outlet_id, "Charging")
        return True

    async def _sample(self, charger: SimCharger16, outlet_id: int, seconds: float) -> str:
        connector = charger.connectors[outlet_id]
        connector.power_w = min(self.options.power_w, offered_power(charger, connector))
        # Whole watt-hours on the register, as real meters report it: MeterValues
        # (rounded) and StopTransaction (truncated) then always agree.
        exact = self.energy_exact.get(outlet_id, connector.energy_wh) + connector.power_w * seconds / 3600
        self.energy_exact[outlet_id] = exact
        connector.energy_wh = float(math.floor(exact))
        if not await self._answered("MeterValues", charger.meter_values(outlet_id)):
            return ""
        return f"MeterValues connector {outlet_id}: {connector.power_w:.0f} W, register {connector.energy_wh:.0f} Wh"

    async def _end(self, charger: SimCharger16, outlet_id: int) -> None:
        connector = charger.connectors[outlet_id]
        transaction_id = connector.transaction_id
        await charger.stop_transaction(outlet_id, reason="Local")
        self.log(
            logging.INFO,
            "StopTransaction %s on connector %d at %.0f Wh",
            transaction_id,
            outlet_id,
            connector.energy_wh,
        )
        await charger.status(outlet_id, "Finishing")


class Runner201(ChargerRunner[SimCharger201]):
    """An OCPP 2.0.1 charging station: TransactionEvent Started, Updated (seqNo 1, 2...), Ended."""

    version = V201
    outlet = "EVSE"

    @staticmethod
    def _outlets(charger: SimCharger201) -> Iterable[SimEvse]:
        return charger.evses.values()

    def __init__(self, charger_id: str, options: Options, stop: asyncio.Event, *, charging: bool) -> None:
        super().__init__(charger_id, options, stop, charging=charging)
        self.evses: dict[int, SimEvse] | None = None  # kept across reconnections (transaction id, seqNo, register)

    async def _connect(self) -> tuple[SimCharger201, Any, asyncio.Task[None]]:
        return await connect201(
            self.options.url,
            self.charger_id,
            password=self.options.password,
            ssl_context=client_ssl_context(self.options),
            config=SimConfig201(serial=f"{self.charger_id}-SN", evses=self.options.connectors),
        )

    def _adopt(self, charger: SimCharger201) -> None:
        if self.evses is not None:
            charger.evses = self.evses
        self.evses = charger.evses
        charger.session_power_w = self.options.power_w

    def _idle_outlets(self, charger: SimCharger201) -> list[int]:
        return [evse_id for evse_id, evse in charger.evses.items() if evse.transaction_id is None]

    def _transactions(self, charger: SimCharger201) -> dict[int, str]:
        return {
            evse_id: evse.transaction_id for evse_id, evse in charger.evses.items() if evse.transaction_id is not None
        }

    async def _start(self, charger: SimCharger201, outlet_id: int) -> bool:
        evse = charger.evses[outlet_id]
        await charger.status(outlet_id, "Occupied")
        if evse.transaction_id is not None:
            self.log(
                logging.INFO,
                "resuming transaction %s on EVSE %d at seqNo %d",
                evse.transaction_id,
                outlet_id,
                evse.seq_no,
            )
            return True
        result = await charger.transaction_started(
            outlet_id, self.options.id_tag, "Authorized", power_w=self.options.power_w
        )
        status = (getattr(result, "id_token_info", None) or {}).get("status", "Accepted")
        if status != "Accepted":
            self.log(logging.WARNING, "TransactionEvent Started refused: %s", status)
            await charger.transaction_ended(outlet_id, stopped_reason="DeAuthorized", trigger_reason="Deauthorized")
            await charger.status(outlet_id, "Available")
            return False
        self.transactions.append(str(evse.transaction_id))
        self.log(
            logging.INFO,
            "session started on EVSE %d, transaction %s, id token %s",
            outlet_id,
            evse.transaction_id,
            self.options.id_tag,
        )
        return True

    async def _sample(self, charger: SimCharger201, outlet_id: int, seconds: float) -> str:
        evse = charger.evses[outlet_id]
        seq_no = evse.seq_no
        if not await self._answered("TransactionEvent", charger.transaction_updated(outlet_id, seconds)):
            return ""
        return (
            f"TransactionEvent Updated EVSE {outlet_id} seqNo {seq_no}: "
            f"{evse.power_w:.0f} W, register {evse.energy_wh:.0f} Wh"
        )

    async def _end(self, charger: SimCharger201, outlet_id: int) -> None:
        evse = charger.evses[outlet_id]
        transaction_id = evse.transaction_id
        await charger.transaction_ended(outlet_id, stopped_reason="Local", trigger_reason="StopAuthorized")
        self.log(
            logging.INFO,
            "TransactionEvent Ended %s on EVSE %d at %.0f Wh (seqNo %d)",
            transaction_id,
            outlet_id,
            evse.energy_wh,
            evse.seq_no - 1,
        )


RUNNERS: dict[str, type[Runner16] | type[Runner201]] = {V16: Runner16, V201: Runner201}


class Simulation:
    """All the chargers of one command line."""

    def __init__(self, options: Options, stop: asyncio.Event | None = None) -> None:
        self.options = options
        self.stop = stop or asyncio.Event()
        self.runners: list[Runner16 | Runner201] = [
            RUNNERS[options.version_of(index)](charger_id, options, self.stop, charging=index < options.sessions)
            for index, charger_id in enumerate(options.charger_ids())
        ]

    async def run(self) -> int:
        """Run every charger until the stop event (or ``--duration``); returns the exit code."""
        _LOGGER.info(
            "%d charger(s) %s -> %s, %d charging, sampled every %g s",
            len(self.runners),
            ", ".join(f"{runner.charger_id} (OCPP {runner.version})" for runner in self.runners),
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

    def power_w(self) -> float:
        """What every simulated car draws now (W)."""
        return sum(runner.power_w() for runner in self.runners)


def configure_logging(verbose: bool = False) -> None:
    """Readable one-line logs on stderr."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(message)s",
        datefmt="%H:%M:%S",
    )
    if not verbose:
        for noisy in ("ocpp", "websockets", "simulator.charger16", "simulator.charger201"):
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
        with stop_on_signals(stop):
            return await Simulation(options, stop).run()

    return asyncio.run(_run())
