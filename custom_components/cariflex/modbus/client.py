"""Async reader of one Modbus device (TCP or RTU serial), driven by a :class:`Profile`.

``await ModbusDevice(profile, TCP(host), unit_id).read()`` returns a :class:`Reading` with
every quantity of the profile. The registers are read in as few requests as possible:
contiguous (or overlapping) registers share one request, and so do registers separated by a
gap inside a range the device is known to read whole (the profile's ``readable`` ranges, the
SunSpec model chain), up to ``max_registers_per_request``.

Every request has a timeout and is retried once after a reconnection; a device that
answers with a Modbus exception raises :class:`ModbusResponseError` at once (no retry: the
answer would be the same). The connection is re-opened by the next call after a failure, so
a caller that polls keeps working when the device comes back.

SunSpec profiles discover the model chain first (``"SunS"`` at 40000, else the other base
addresses of the profile, then the ID/L headers until 0xFFFF) and locate every entry from
that; the discovery is redone after any failure, in case the device was replaced.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
import importlib
import inspect
import logging
import math
from typing import Any, Literal

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException
from pymodbus.framer import FramerType

from .errors import EXCEPTION_NAMES, ModbusConnectionError, ModbusResponseError
from .models import PHASE_POWERS, Quantity, Reading
from .profiles import (
    SUNSPEC_END_MODEL,
    SUNSPEC_MARKER,
    SUNSPEC_SF_NOT_IMPLEMENTED,
    DataType,
    Profile,
    ReadableRange,
    RegisterSpec,
    RegisterType,
    decode_words,
    raw_unsigned,
)

_LOGGER = logging.getLogger(__name__)

# =============================================================================================
# pymodbus compatibility.
#
# Home Assistant 2025.4 ships pymodbus 3.8.3, 2026.10 ships 3.13.x; we require >= 3.8.3. Every
# difference between those versions is handled here, by testing for the feature (signature,
# attribute, import), never by comparing version strings:
#
# * the unit keyword of the client calls: ``slave=`` (<= 3.9) became ``device_id=`` (3.10+);
# * client constructor keywords: only those the installed version accepts are passed;
# * server datastore: up to 3.12 a device context is a class with ``getValues``
#   (``ModbusBaseSlaveContext``, later ``ModbusBaseDeviceContext``) held by
#   ``ModbusServerContext(slaves=...)`` / ``(devices=...)``; 3.8 validates a request with
#   ``validate()`` first, 3.9+ let ``getValues`` refuse it with an ``ExcCodes`` member;
#   3.13 replaced all this by ``pymodbus.simulator.SimDevice``/``SimData`` with an ``action``
#   hook (the old classes remain as shims that copy the values once, so they cannot serve
#   changing values).
# =============================================================================================


def _accepts(func: Callable[..., Any], name: str) -> bool:
    """Whether ``func`` takes a parameter called ``name``."""
    try:
        return name in inspect.signature(func).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
        return False


UNIT_KEYWORD = "device_id" if _accepts(AsyncModbusTcpClient.read_holding_registers, "device_id") else "slave"
"""The keyword the installed pymodbus uses for the unit id (``device_id`` or ``slave``)."""

_FUNCTION_TABLES = {3: RegisterType.HOLDING, 4: RegisterType.INPUT}


def _client_kwargs(cls: type[Any], **kwargs: Any) -> dict[str, Any]:
    """The keywords ``cls`` accepts, of those we would like to pass."""
    return {key: value for key, value in kwargs.items() if _accepts(cls.__init__, key)}


async def _read_registers(client: Any, register_type: RegisterType, address: int, count: int, unit_id: int) -> Any:
    method = client.read_holding_registers if register_type is RegisterType.HOLDING else client.read_input_registers
    kwargs: dict[str, Any] = {"count": count, UNIT_KEYWORD: unit_id}
    return await method(address, **kwargs)


RegisterSource = Callable[[RegisterType, int, int, bool], "list[int] | None"]
"""``source(table, address, count, record)``: the words, or None for an illegal address."""


def build_server_context(unit_id: int, source: RegisterSource, extents: Mapping[RegisterType, tuple[int, int]]) -> Any:
    """A pymodbus server datastore answering read requests for ``unit_id`` from ``source``.

    ``extents`` gives, per table, the lowest and highest address ``source`` may serve.
    Writes are refused (illegal address); requests for another unit id get an exception
    response (gateway target failed to respond on 3.13+, illegal address before).
    """
    datastore = importlib.import_module("pymodbus.datastore")
    legacy_base = getattr(datastore, "ModbusBaseDeviceContext", None) or getattr(
        datastore, "ModbusBaseSlaveContext", None
    )
    if legacy_base is not None and hasattr(legacy_base, "getValues"):
        return _legacy_server_context(datastore, legacy_base, unit_id, source)
    return _simdevice_context(unit_id, source, extents)


def _legacy_server_context(datastore: Any, base: type[Any], unit_id: int, source: RegisterSource) -> Any:
    # 3.8 checks a request with validate() before getValues(); 3.9+ only call getValues(),
    # which refuses a request by returning an exception code: an int in 3.9-3.10, an
    # ExcCodes member (absent before 3.11) from 3.11 on.
    exc_codes = getattr(importlib.import_module("pymodbus.constants"), "ExcCodes", None)
    refused: Any = 2 if exc_codes is None else exc_codes.ILLEGAL_ADDRESS

    class SourceContext(base):  # type: ignore[misc, valid-type]
        """A device context that reads through ``source``; ``known=False`` refuses everything."""

        def __init__(self, known: bool) -> None:
            self.known = known

        def reset(self) -> None:
            """Nothing to reset."""

        def validate(self, fc_as_hex: int, address: int, count: int = 1) -> bool:
            table = _FUNCTION_TABLES.get(fc_as_hex)
            return self.known and table is not None and source(table, address, count, False) is not None

        def getValues(self, fc_as_hex: int, address: int, count: int = 1) -> Any:
            table = _FUNCTION_TABLES.get(fc_as_hex)
            words = source(table, address, count, True) if self.known and table is not None else None
            return refused if words is None else words

        def setValues(self, fc_as_hex: int, address: int, values: Sequence[int]) -> Any:
            """Read-only (3.8 already refused the write in ``validate``)."""
            return refused

    server_context = datastore.ModbusServerContext
    keyword = "devices" if _accepts(server_context.__init__, "devices") else "slaves"
    # Unknown unit ids get a context that answers "illegal address": pymodbus < 3.13 sends
    # its "no such device" exception with function code 0, which its own client cannot decode.
    contexts = {uid: SourceContext(uid == unit_id) for uid in range(256)}
    return server_context(**{keyword: contexts, "single": False})


def _simdevice_context(unit_id: int, source: RegisterSource, extents: Mapping[RegisterType, tuple[int, int]]) -> Any:
    simulator = importlib.import_module("pymodbus.simulator")
    exc_codes = importlib.import_module("pymodbus.constants").ExcCodes
    sim_data, sim_device, data_type = simulator.SimData, simulator.SimDevice, simulator.DataType

    def blocks(table: RegisterType) -> list[Any]:
        if table not in extents:
            return [sim_data(0, datatype=data_type.INVALID)]
        low, high = extents[table]
        return [sim_data(low, count=high - low + 1, values=0, datatype=data_type.REGISTERS)]

    async def serve(  # noqa: PLR0917 - pymodbus calls the action with six positional arguments
        function_code: int, start: int, address: int, count: int, registers: list[int], set_values: object
    ) -> Any:
        table = _FUNCTION_TABLES.get(function_code)
        words = None if table is None or set_values is not None else source(table, address, count, True)
        if words is None:
            return exc_codes.ILLEGAL_ADDRESS
        registers[address - start : address - start + count] = words
        return None

    async def no_such_device(*_args: object) -> Any:
        return exc_codes.GATEWAY_NO_RESPONSE

    def device(uid: int, action: Callable[..., Awaitable[Any]]) -> Any:
        bits = [sim_data(0, values=False, datatype=data_type.BITS)]
        simdata = (bits, list(bits), blocks(RegisterType.HOLDING), blocks(RegisterType.INPUT))
        return sim_device(id=uid, simdata=simdata, action=action)

    devices = [device(unit_id, serve)]
    if unit_id != 0:
        devices.append(device(0, no_such_device))  # id 0 = every other unit id
    return devices


async def start_tcp_server(context: Any, host: str, port: int, *, rtu_framing: bool = False) -> tuple[Any, int]:
    """Start a pymodbus TCP server in the background; returns it and the port it listens on."""
    server_module = importlib.import_module("pymodbus.server")
    server = server_module.ModbusTcpServer(
        context, framer=FramerType.RTU if rtu_framing else FramerType.SOCKET, address=(host, port)
    )
    if _accepts(server.serve_forever, "background"):
        await server.serve_forever(background=True)
    else:  # pragma: no cover - every supported version has background=
        asyncio.get_running_loop().create_task(server.serve_forever())
        await asyncio.sleep(0.05)
    listener = server.transport
    if listener is None:  # pragma: no cover - serve_forever raises first
        raise OSError(f"the Modbus server could not listen on {host}:{port}")
    return server, int(listener.sockets[0].getsockname()[1])


# =============================================================================================
# Transports
# =============================================================================================


@dataclass(frozen=True, slots=True)
class TCP:
    """Modbus TCP; ``rtu_framing`` for RS485-Ethernet gateways that pass RTU frames through."""

    host: str
    port: int = 502
    rtu_framing: bool = False

    def __post_init__(self) -> None:
        if not self.host:
            raise ValueError("host is required")
        if not 1 <= self.port <= 65535:
            raise ValueError(f"port {self.port} is out of range 1..65535")

    def describe(self) -> str:
        """``host:port`` for messages."""
        return f"{self.host}:{self.port}" + (" (RTU over TCP)" if self.rtu_framing else "")


@dataclass(frozen=True, slots=True)
class Serial:
    """Modbus RTU on a serial line (``port`` is a device path or a pyserial URL)."""

    port: str
    baudrate: int = 9600
    parity: Literal["N", "E", "O"] = "N"
    stopbits: int = 1
    bytesize: int = 8

    def __post_init__(self) -> None:
        if not self.port:
            raise ValueError("port is required")
        if self.baudrate <= 0:
            raise ValueError(f"baudrate {self.baudrate} must be > 0")
        if self.parity not in ("N", "E", "O"):
            raise ValueError(f"parity {self.parity!r} must be N, E or O")
        if self.stopbits not in (1, 2):
            raise ValueError(f"stopbits {self.stopbits} must be 1 or 2")
        if self.bytesize not in (7, 8):
            raise ValueError(f"bytesize {self.bytesize} must be 7 or 8")

    def describe(self) -> str:
        """``port baud/8N1`` for messages."""
        return f"{self.port} {self.baudrate}/{self.bytesize}{self.parity}{self.stopbits}"


Transport = TCP | Serial


def _make_client(transport: Transport, timeout: float) -> Any:
    common = {"timeout": timeout, "retries": 0, "reconnect_delay": 0, "reconnect_delay_max": 0, "name": "cariflex"}
    if isinstance(transport, TCP):
        framer = FramerType.RTU if transport.rtu_framing else FramerType.SOCKET
        kwargs = _client_kwargs(AsyncModbusTcpClient, port=transport.port, framer=framer, **common)
        return AsyncModbusTcpClient(transport.host, **kwargs)
    kwargs = _client_kwargs(
        AsyncModbusSerialClient,
        framer=FramerType.RTU,
        baudrate=transport.baudrate,
        parity=transport.parity,
        stopbits=transport.stopbits,
        bytesize=transport.bytesize,
        **common,
    )
    try:
        return AsyncModbusSerialClient(transport.port, **kwargs)
    except RuntimeError as err:  # pymodbus raises this when pyserial is missing
        raise ModbusConnectionError(f"Modbus RTU needs pyserial: {err}") from err


# =============================================================================================
# Planning: which registers, in which requests
# =============================================================================================


@dataclass(frozen=True, slots=True)
class ReadBlock:
    """One read request."""

    register_type: RegisterType
    address: int
    count: int

    @property
    def stop(self) -> int:
        """One past the last address."""
        return self.address + self.count


def plan_blocks(
    spans: Iterable[tuple[RegisterType, int, int]],
    *,
    max_count: int = 125,
    readable: Sequence[ReadableRange] = (),
) -> list[ReadBlock]:
    """The fewest read requests covering every ``(table, address, count)`` span.

    Two spans share a request when they touch or overlap, or when the gap between them lies
    inside one ``readable`` range, and the request stays within ``max_count`` registers.
    (Scanning the sorted spans and extending the current request while allowed is optimal.)
    """
    blocks: list[ReadBlock] = []
    by_table: dict[RegisterType, list[tuple[int, int]]] = {}
    for table, address, count in spans:
        if count > max_count:
            raise ValueError(f"a {count}-register value cannot be read with at most {max_count} registers per request")
        by_table.setdefault(table, []).append((address, address + count))
    for table in sorted(by_table):
        current: tuple[int, int] | None = None
        for start, stop in sorted(by_table[table]):
            if current is not None:
                cur_start, cur_stop = current
                joinable = start <= cur_stop or any(r.covers(table, cur_stop, start) for r in readable)
                if joinable and max(stop, cur_stop) - cur_start <= max_count:
                    current = (cur_start, max(stop, cur_stop))
                    continue
                blocks.append(ReadBlock(table, cur_start, cur_stop - cur_start))
            current = (start, stop)
        if current is not None:
            blocks.append(ReadBlock(table, current[0], current[1] - current[0]))
    return blocks


@dataclass(frozen=True, slots=True)
class SunSpecModelInstance:
    """One model found in a device's SunSpec chain (``address`` is the ID register)."""

    model_id: int
    address: int
    length: int

    @property
    def body(self) -> int:
        """Address of the first register after ID and L."""
        return self.address + 2


@dataclass(frozen=True, slots=True)
class Point:
    """A profile entry placed at absolute addresses."""

    spec: RegisterSpec
    address: int
    sf_address: int | None = None

    def spans(self) -> list[tuple[RegisterType, int, int]]:
        """The registers to read for this point."""
        spans = [(self.spec.register_type, self.address, self.spec.words)]
        if self.sf_address is not None:
            spans.append((self.spec.register_type, self.sf_address, 1))
        return spans


def fixed_points(profile: Profile) -> list[Point]:
    """The points of a fixed-address profile."""
    return [Point(spec, spec.address, spec.sf_address) for spec in profile.registers if spec.address is not None]


def sunspec_points(
    profile: Profile, chain: Sequence[SunSpecModelInstance], *, alternatives: bool = False
) -> list[Point]:
    """The points of a SunSpec profile on a discovered chain.

    For each quantity, entries combined with ``"sum"`` all count; otherwise the first entry
    (in profile order) whose model the device has wins (``alternatives=True`` keeps them all:
    the simulator serves every one). An entry uses the first instance of one of its models in
    the chain; entries that do not fit the device's model length are skipped.
    """
    points: list[Point] = []
    chosen: set[Quantity] = set()
    for spec in profile.registers:
        if spec.quantity in chosen and spec.combine != "sum" and not alternatives:
            continue
        instance = next((m for m in chain if m.model_id in spec.models), None)
        if instance is None or spec.offset is None:
            continue
        if spec.offset + spec.words > instance.length or (
            spec.sf_offset is not None and spec.sf_offset >= instance.length
        ):
            _LOGGER.debug(
                "SunSpec model %s at %s is too short for %s", instance.model_id, instance.address, spec.quantity
            )
            continue
        sf_address = None if spec.sf_offset is None else instance.body + spec.sf_offset
        points.append(Point(spec, instance.body + spec.offset, sf_address))
        chosen.add(spec.quantity)
    return points


def sunspec_readable(
    register_type: RegisterType, base: int, chain: Sequence[SunSpecModelInstance]
) -> list[ReadableRange]:
    """The whole chain is readable: marker, headers and bodies."""
    if not chain:
        return []
    last = chain[-1]
    return [ReadableRange(register_type, base, last.body + last.length - 1)]


def _scaled(raw: float, factor: float, sf: int) -> float:
    # Divide for negative exponents: 2301 / 100 is exactly 23.01, 2301 * 0.01 is not.
    value = raw * float(10**sf) if sf >= 0 else raw / float(10 ** (-sf))
    return round(value * factor, 6)


def point_value(point: Point, registers: Mapping[tuple[RegisterType, int], int]) -> float | None:
    """The value of one point in canonical units, or None when the device says "not available"."""
    spec = point.spec
    table = spec.register_type
    words = [registers[(table, a)] for a in range(point.address, point.address + spec.words)]
    if spec.invalid and raw_unsigned(words, spec.word_order, spec.byte_order) in spec.invalid:
        return None
    raw = decode_words(words, spec.data_type, spec.word_order, spec.byte_order)
    if isinstance(raw, float) and not math.isfinite(raw):
        return None
    sf = 0
    if point.sf_address is not None:
        sf = int(decode_words([registers[(table, point.sf_address)]], DataType.INT16))
        if sf == SUNSPEC_SF_NOT_IMPLEMENTED or not -10 <= sf <= 10:
            return None
    return _scaled(raw, spec.factor, sf)


def decode_reading(
    profile: Profile, points: Sequence[Point], registers: Mapping[tuple[RegisterType, int], int], *, requests: int = 0
) -> Reading:
    """A :class:`Reading` from the words read for ``points``."""
    parts: dict[Quantity, list[float | None]] = {}
    for point in points:
        parts.setdefault(point.spec.quantity, []).append(point_value(point, registers))
    values: dict[Quantity, float | None] = {}
    unavailable: set[Quantity] = set()
    for quantity, found in parts.items():
        present = [v for v in found if v is not None]
        if present:
            values[quantity] = round(math.fsum(present), 6)
        else:
            unavailable.add(quantity)
    derived: set[Quantity] = set()
    if values.get(Quantity.POWER_W) is None and all(values.get(q) is not None for q in PHASE_POWERS):
        values[Quantity.POWER_W] = round(math.fsum(v for q in PHASE_POWERS if (v := values[q]) is not None), 6)
        derived.add(Quantity.POWER_W)
        unavailable.discard(Quantity.POWER_W)
    return Reading.from_values(
        values,
        measured_at=datetime.now(UTC),
        profile_id=profile.id,
        unavailable=frozenset(unavailable),
        derived=frozenset(derived),
        requests=requests,
    )


def _words_to_text(words: Sequence[int]) -> str:
    data = b"".join(w.to_bytes(2, "big") for w in words)
    return data.split(b"\x00", 1)[0].decode("latin-1").strip()


# =============================================================================================
# The device
# =============================================================================================

_CONNECTION_ERRORS = (TimeoutError, OSError, ModbusException)


class ModbusDevice:
    """One Modbus device read through a profile.

    ``unit_id`` defaults to the profile's. ``timeout`` bounds each connection attempt and
    each request; ``retries`` is how many times a request is re-sent after a reconnection.
    Counters: ``requests`` (sent), ``reconnects``.
    """

    def __init__(
        self,
        profile: Profile,
        transport: Transport,
        unit_id: int | None = None,
        *,
        timeout: float = 3.0,
        retries: int = 1,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be > 0")
        if retries < 0:
            raise ValueError("retries must be >= 0")
        self.profile = profile
        self.transport = transport
        self.unit_id = profile.unit_id if unit_id is None else unit_id
        if not 0 <= self.unit_id <= 255:
            raise ValueError(f"unit id {self.unit_id} is out of range 0..255")
        self.timeout = timeout
        self.retries = retries
        self.requests = 0
        self.reconnects = 0
        self.sunspec_base: int | None = None
        self.sunspec_models: tuple[SunSpecModelInstance, ...] = ()
        self.identity: dict[str, str] = {}
        self._client: Any = None
        self._ever_connected = False
        self._lock = asyncio.Lock()
        self._points: list[Point] | None = None
        self._blocks: list[ReadBlock] = []
        if not profile.is_sunspec:
            self._set_points(fixed_points(profile), profile.readable)

    def __repr__(self) -> str:
        return f"<ModbusDevice {self.profile.id} {self.transport.describe()} unit {self.unit_id}>"

    @property
    def connected(self) -> bool:
        """Whether a connection is open."""
        return self._client is not None and bool(self._client.connected)

    @property
    def blocks(self) -> tuple[ReadBlock, ...]:
        """The requests one :meth:`read` sends (empty before a SunSpec discovery)."""
        return tuple(self._blocks)

    @property
    def points(self) -> tuple[Point, ...]:
        """The located profile entries (empty before a SunSpec discovery)."""
        return tuple(self._points or ())

    async def __aenter__(self) -> ModbusDevice:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    # ----------------------------------------------------------------- connection

    async def connect(self) -> None:
        """Open the connection if it is not open (raises :class:`ModbusConnectionError`)."""
        if self.connected:
            return
        self._drop_client()
        client = _make_client(self.transport, self.timeout)
        try:
            async with asyncio.timeout(self.timeout + 1):
                ok = bool(await client.connect())
        except _CONNECTION_ERRORS as err:
            _LOGGER.debug("connect to %s failed: %r", self.transport.describe(), err)
            ok = False
        if not ok or not client.connected:
            client.close()
            raise ModbusConnectionError(f"cannot connect to {self.transport.describe()}")
        if self._ever_connected:
            self.reconnects += 1
        self._ever_connected = True
        self._client = client

    async def close(self) -> None:
        """Close the connection (a later call reconnects)."""
        self._drop_client()
        await asyncio.sleep(0)

    def _drop_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()
        if self.profile.is_sunspec:
            self._points = None  # rediscover: the device may have been replaced

    # ----------------------------------------------------------------- requests

    async def read_registers(self, register_type: RegisterType | str, address: int, count: int) -> list[int]:
        """Read ``count`` raw registers (with the same timeout, retry and error mapping)."""
        table = RegisterType(register_type)
        if not 0 <= address <= 65535 or not 1 <= count <= 125 or address + count > 65536:
            raise ValueError(f"cannot read {count} registers at {address}")
        async with self._lock:
            return await self._request(table, address, count)

    async def _request(self, table: RegisterType, address: int, count: int) -> list[int]:
        last: BaseException | None = None
        for attempt in range(self.retries + 1):
            try:
                await self.connect()
            except ModbusConnectionError as err:
                last = err
                continue
            self.requests += 1
            try:
                async with asyncio.timeout(self.timeout * 1.5):
                    response = await _read_registers(self._client, table, address, count, self.unit_id)
            except _CONNECTION_ERRORS as err:
                _LOGGER.debug("%s %s %s+%s attempt %s failed: %r", self, table, address, count, attempt + 1, err)
                last = err
                self._drop_client()
                continue
            return self._check(response, table, address, count)
        raise ModbusConnectionError(
            f"no answer from {self.transport.describe()} unit {self.unit_id} ({table} {address}+{count}) "
            f"after {self.retries + 1} attempt(s): {last or 'no connection'}"
        ) from last

    def _check(self, response: Any, table: RegisterType, address: int, count: int) -> list[int]:
        where = f"{table} registers {address}..{address + count - 1} of unit {self.unit_id}"
        if response is None or response.isError():
            code = getattr(response, "exception_code", None)
            name = EXCEPTION_NAMES.get(code, f"exception {code}") if code is not None else "no exception code"
            raise ModbusResponseError(
                f"{self.transport.describe()} refused {where}: {name}",
                exception_code=code,
                unit_id=self.unit_id,
                address=address,
                count=count,
            )
        registers = [int(w) & 0xFFFF for w in getattr(response, "registers", [])]
        if len(registers) != count:
            raise ModbusResponseError(
                f"{self.transport.describe()} returned {len(registers)} registers for {where}",
                unit_id=self.unit_id,
                address=address,
                count=count,
            )
        return registers

    # ----------------------------------------------------------------- SunSpec

    async def discover(self) -> tuple[SunSpecModelInstance, ...]:
        """Find the SunSpec model chain (and the identity strings); SunSpec profiles only."""
        async with self._lock:
            await self._discover()
        return self.sunspec_models

    async def _discover(self) -> None:
        sunspec = self.profile.sunspec
        if sunspec is None:
            raise ValueError(f"profile {self.profile.id} is not a SunSpec profile")
        table = sunspec.register_type
        base: int | None = None
        for candidate in sunspec.base_addresses:
            try:
                marker = await self._request(table, candidate, 2)
            except ModbusResponseError:
                continue
            if tuple(marker) == SUNSPEC_MARKER:
                base = candidate
                break
        if base is None:
            bases = ", ".join(str(b) for b in sunspec.base_addresses)
            raise ModbusResponseError(
                f"no SunSpec map on unit {self.unit_id}: no 'SunS' marker at {bases}", unit_id=self.unit_id
            )
        chain: list[SunSpecModelInstance] = []
        address = base + 2
        while address + 1 <= 65535 and len(chain) < 100:
            try:
                model_id, length = await self._request(table, address, 2)
            except ModbusResponseError as err:
                if chain and err.exception_code == 2:
                    break  # some devices end the chain without the 0xFFFF model
                raise
            if model_id == SUNSPEC_END_MODEL:
                break
            chain.append(SunSpecModelInstance(model_id, address, length))
            address += 2 + length
        self.sunspec_base = base
        self.sunspec_models = tuple(chain)
        self.identity = await self._read_identity(chain)
        self._set_points(sunspec_points(self.profile, chain), sunspec_readable(table, base, chain))
        _LOGGER.debug("%s: SunSpec at %s, models %s", self, base, [m.model_id for m in chain])

    async def _read_identity(self, chain: Sequence[SunSpecModelInstance]) -> dict[str, str]:
        sunspec = self.profile.sunspec
        if sunspec is None or not sunspec.identity:
            return {}
        model = next((m for m in chain if m.model_id == sunspec.identity_model), None)
        if model is None:
            return {}
        fields = [(name, offset, size) for name, offset, size in sunspec.identity if offset + size <= model.length]
        if not fields:
            return {}
        end = max(offset + size for _name, offset, size in fields)
        step = self.profile.max_registers_per_request
        words: list[int] = []
        for start in range(0, end, step):
            words += await self._request(sunspec.register_type, model.body + start, min(step, end - start))
        return {name: _words_to_text(words[offset : offset + size]) for name, offset, size in fields}

    # ----------------------------------------------------------------- reading

    def _set_points(self, points: list[Point], readable: Sequence[ReadableRange]) -> None:
        spans = [span for point in points for span in point.spans()]
        self._blocks = plan_blocks(spans, max_count=self.profile.max_registers_per_request, readable=readable)
        self._points = points

    async def read(self) -> Reading:
        """Read every quantity of the profile."""
        async with self._lock:
            sent_before = self.requests
            if not self.connected:
                self._drop_client()  # a SunSpec chain is rediscovered on every new connection
            try:
                for _attempt in range(2):
                    if self._points is None:
                        await self._discover()
                    points = self._points
                    registers: dict[tuple[RegisterType, int], int] = {}
                    for block in self._blocks:
                        words = await self._request(block.register_type, block.address, block.count)
                        registers.update(((block.register_type, block.address + i), w) for i, w in enumerate(words))
                    if points is self._points:
                        break
                    # Reconnected during the read, maybe to another device: discover again.
                else:  # pragma: no cover - the connection dropped during two reads in a row
                    raise ModbusConnectionError(
                        f"the connection to {self.transport.describe()} kept dropping during the read"
                    )
            except ModbusResponseError:
                if self.profile.is_sunspec:
                    self._points = None
                raise
            return decode_reading(self.profile, points or [], registers, requests=self.requests - sent_before)
