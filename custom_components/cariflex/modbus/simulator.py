"""A real pymodbus TCP server that serves a profile with values you set.

For tests, the demo and the benchmark::

    async with ProfileSimulator(load_profile("eastron_sdm630"), {Quantity.POWER_W: 1500}) as sim:
        device = ModbusDevice(sim.profile, TCP("127.0.0.1", sim.port))
        reading = await device.read()
        sim.set(Quantity.POWER_W, -800)          # takes effect at the next request

The registers are laid out exactly as the profile describes: fixed addresses as they are;
for SunSpec the ``"SunS"`` marker, a common model (1) with identity strings, one instance of
each model family the profile reads (1, 103, 124, 203, 802 by default, or ``sunspec_models``)
and the end model (unless ``end_marker=False``), each with its standard length. Scale factors are chosen per value (the
most precise exponent >= ``min_scale_factor`` that fits), so changing a value may change its
scale factor, as real devices may. Values that were never set are served as the entry's
"not available" sentinel (SunSpec's unimplemented value, NaN for floats), or 0.

Only the registers the profile maps (plus its ``readable`` ranges and the SunSpec chain) are
served: any other address answers "illegal data address", as a strict device would, and so
does a request for another unit id. ``requests`` records every read served.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence, Set as AbstractSet
from dataclasses import dataclass
import math
from typing import Any

from .client import Point, SunSpecModelInstance, build_server_context, fixed_points, start_tcp_server, sunspec_points
from .models import Quantity
from .profiles import (
    SUNSPEC_END_MODEL,
    SUNSPEC_MARKER,
    DataType,
    Profile,
    RegisterType,
    encode_raw,
    encode_value,
    int_range,
)

_DEFAULT_IDENTITY = {"manufacturer": "Cariflex", "model": "Simulator", "version": "1.0", "serial": "SIM0001"}


@dataclass(frozen=True, slots=True)
class ServedRequest:
    """One read the simulator answered."""

    register_type: RegisterType
    address: int
    count: int


class ProfileSimulator:
    """Serve ``profile`` on ``host:port`` (port 0 = a free one, see :attr:`port`)."""

    def __init__(
        self,
        profile: Profile,
        values: Mapping[Quantity | str, float] | None = None,
        *,
        unit_id: int | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        rtu_framing: bool = False,
        sunspec_base: int | None = None,
        sunspec_models: Sequence[int] | None = None,
        identity: Mapping[str, str] | None = None,
        min_scale_factor: int = -2,
        end_marker: bool = True,
    ) -> None:
        self.profile = profile
        self.unit_id = profile.unit_id if unit_id is None else unit_id
        self.host = host
        self.rtu_framing = rtu_framing
        self.min_scale_factor = min_scale_factor
        self.end_marker = end_marker
        self.requests: list[ServedRequest] = []
        self.sunspec_layout: tuple[SunSpecModelInstance, ...] = ()
        self._port = port
        self._server: Any = None
        self._values: dict[Quantity, float] = {}
        self._overrides: dict[tuple[RegisterType, int], int] = {}
        self._fixed_words: dict[tuple[RegisterType, int], int] = {}
        self._zeros: set[tuple[RegisterType, int]] = set()
        self._image: dict[tuple[RegisterType, int], int] = {}
        if profile.sunspec is not None:
            self._points = self._layout_sunspec(sunspec_base, sunspec_models, identity)
        else:
            self._points = fixed_points(profile)
            for readable in profile.readable:
                self._zeros.update((readable.register_type, a) for a in range(readable.start, readable.end + 1))
        self.set_many(values or {})

    # ----------------------------------------------------------------- layout

    def _layout_sunspec(
        self, base: int | None, models: Sequence[int] | None, identity: Mapping[str, str] | None
    ) -> list[Point]:
        sunspec = self.profile.sunspec
        assert sunspec is not None
        table = sunspec.register_type
        base = sunspec.base_addresses[0] if base is None else base
        if models is None:
            # The identity model, then one model per family in id order (1, 103, 124, 203, 802):
            # the three-phase variant of [101, 102, 103], as most devices have it.
            families = {max(spec.models) for spec in self.profile.registers}
            models = ([] if sunspec.identity_model is None else [sunspec.identity_model]) + sorted(
                families - {sunspec.identity_model}
            )
        chain: list[SunSpecModelInstance] = []
        address = base + 2
        for model_id in models:
            model = sunspec.model(model_id)
            if model is None:
                raise ValueError(f"model {model_id} is not in profile {self.profile.id}")
            chain.append(SunSpecModelInstance(model_id, address, model.length))
            address += 2 + model.length
        words = self._fixed_words
        words[(table, base)], words[(table, base + 1)] = SUNSPEC_MARKER
        for instance in chain:
            words[(table, instance.address)] = instance.model_id
            words[(table, instance.address + 1)] = instance.length
            self._zeros.update((table, a) for a in range(instance.body, instance.body + instance.length))
        if self.end_marker:
            words[(table, address)], words[(table, address + 1)] = SUNSPEC_END_MODEL, 0
        strings = {**_DEFAULT_IDENTITY, **(identity or {})}
        model_1 = next((m for m in chain if m.model_id == sunspec.identity_model), None)
        if model_1 is not None:
            for name, offset, size in sunspec.identity:
                data = strings.get(name, "").encode("latin-1")[: 2 * size].ljust(2 * size, b"\x00")
                for i in range(size):
                    words[(table, model_1.body + offset + i)] = int.from_bytes(data[2 * i : 2 * i + 2], "big")
        self.sunspec_layout = tuple(chain)
        # Serve every alternative entry, so whichever the client prefers carries the value.
        return sunspec_points(self.profile, chain, alternatives=True)

    # ----------------------------------------------------------------- values

    @property
    def values(self) -> dict[Quantity, float]:
        """The values currently served."""
        return dict(self._values)

    def get(self, quantity: Quantity | str) -> float | None:
        """The value served for one quantity."""
        return self._values.get(Quantity(quantity))

    def set(self, quantity: Quantity | str, value: float | None) -> None:
        """Serve a new value (None: "not available"); raises ValueError if it cannot be encoded."""
        self.set_many({quantity: value})

    def set_many(self, values: Mapping[Quantity | str, float | None]) -> None:
        """Change several values at once (all or none)."""
        new = dict(self._values)
        for key, value in values.items():
            quantity = Quantity(key)
            if quantity not in self.profile.quantities:
                raise ValueError(f"profile {self.profile.id} has no {quantity}")
            if value is None:
                new.pop(quantity, None)
            elif not math.isfinite(value):
                raise ValueError(f"{quantity}: {value!r} is not a finite number")
            else:
                new[quantity] = float(value)
        self._image = self._render(new)
        self._values = new

    def set_register(self, register_type: RegisterType | str, address: int, value: int | None) -> None:
        """Force one raw register word (None removes the override); for fault injection."""
        key = (RegisterType(register_type), address)
        if value is None:
            self._overrides.pop(key, None)
        else:
            self._overrides[key] = value & 0xFFFF
        self._image = self._render(self._values)

    def registers(self, register_type: RegisterType | str) -> dict[int, int]:
        """The words served in one table, by address."""
        table = RegisterType(register_type)
        return {address: word for (t, address), word in sorted(self._image.items()) if t is table}

    def _render(self, values: Mapping[Quantity, float]) -> dict[tuple[RegisterType, int], int]:
        image = dict.fromkeys(self._zeros, 0)
        image.update(self._fixed_words)
        by_sf: dict[tuple[RegisterType, int], list[Point]] = {}
        plain: list[Point] = []
        for point in self._points:
            if point.sf_address is not None:
                by_sf.setdefault((point.spec.register_type, point.sf_address), []).append(point)
            else:
                plain.append(point)
        carriers = _carriers(self._points, values)
        for point in plain:
            _write(image, point, _raw_for(point, carriers, values, 0))
        for sf_key, points in by_sf.items():
            exponent = self._scale_factor(points, carriers, values)
            image[sf_key] = encode_value(exponent, DataType.INT16)[0]
            for point in points:
                _write(image, point, _raw_for(point, carriers, values, exponent))
        image.update(self._overrides)
        return image

    def _scale_factor(
        self, points: Sequence[Point], carriers: AbstractSet[Point], values: Mapping[Quantity, float]
    ) -> int:
        if not any(p in carriers for p in points):
            return 0
        for exponent in range(self.min_scale_factor, 11):
            try:
                for point in points:
                    _raw_for(point, carriers, values, exponent)
            except ValueError:
                continue
            return exponent
        raise ValueError(f"no scale factor fits {[values.get(p.spec.quantity) for p in points]}")

    # ----------------------------------------------------------------- server

    def _serve(self, table: RegisterType, address: int, count: int, record: bool) -> list[int] | None:
        keys = [(table, a) for a in range(address, address + count)]
        image = self._image
        if any(key not in image for key in keys):
            return None
        if record:
            self.requests.append(ServedRequest(table, address, count))
        return [image[key] for key in keys]

    @property
    def port(self) -> int:
        """The TCP port (known once started)."""
        return self._port

    @property
    def running(self) -> bool:
        """Whether the server listens."""
        return self._server is not None

    async def start(self) -> None:
        """Listen (again, on the same port after a stop)."""
        if self._server is not None:
            return
        extents: dict[RegisterType, tuple[int, int]] = {}
        for table, address in self._image:
            low, high = extents.get(table, (address, address))
            extents[table] = (min(low, address), max(high, address))
        context = build_server_context(self.unit_id, self._serve, extents)
        self._server, self._port = await start_tcp_server(context, self.host, self._port, rtu_framing=self.rtu_framing)

    async def stop(self) -> None:
        """Stop listening and drop the open connections."""
        server, self._server = self._server, None
        if server is None:
            return
        await server.shutdown()
        listener = getattr(server, "transport", None)
        if listener is not None:  # pragma: no cover - shutdown() clears it on the versions we know
            listener.close()
        await asyncio.sleep(0.01)  # let both ends run their connection_lost callbacks

    async def __aenter__(self) -> ProfileSimulator:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.stop()

    def clear_requests(self) -> None:
        """Forget the recorded requests."""
        self.requests.clear()


def _carriers(points: Iterable[Point], values: Mapping[Quantity, float]) -> set[Point]:
    """The points that carry a value; for summed entries, one point carries the whole value."""
    carriers: set[Point] = set()
    summed: dict[Quantity, list[Point]] = {}
    for point in points:
        if point.spec.quantity not in values:
            continue
        if point.spec.combine == "sum":
            summed.setdefault(point.spec.quantity, []).append(point)
        else:
            carriers.add(point)
    for quantity, group in summed.items():
        value = values[quantity]
        same_sign = [p for p in group if value == 0 or (value > 0) == (p.spec.factor > 0)]
        carriers.add((same_sign or group)[0])
    return carriers


def _raw_for(
    point: Point, carriers: AbstractSet[Point], values: Mapping[Quantity, float], exponent: int
) -> int | float | None:
    """The raw number to serve (None: the "not available" sentinel); ValueError if it does not fit."""
    spec = point.spec
    if spec.quantity not in values:
        return None
    if point not in carriers:
        return 0
    raw = values[spec.quantity] / spec.factor
    raw = raw / float(10**exponent) if exponent >= 0 else raw * float(10 ** (-exponent))
    if spec.data_type.is_float:
        return raw
    number = round(raw)
    low, high = int_range(spec.data_type)
    sentinels = spec.invalid
    if not low <= number <= high or _as_unsigned(number, spec.data_type) in sentinels:
        raise ValueError(f"{spec.quantity}={values[spec.quantity]} does not fit {spec.data_type} at {spec.where()}")
    return number


def _as_unsigned(number: int, data_type: DataType) -> int:
    return number & ((1 << (16 * data_type.words)) - 1)


def _write(image: dict[tuple[RegisterType, int], int], point: Point, raw: int | float | None) -> None:
    spec = point.spec
    if raw is None:
        if spec.invalid:
            words = encode_raw(min(spec.invalid), spec.data_type, spec.word_order, spec.byte_order)
        elif spec.data_type.is_float:
            words = encode_value(math.nan, spec.data_type, spec.word_order, spec.byte_order)
        else:
            words = [0] * spec.words
    else:
        words = encode_value(raw, spec.data_type, spec.word_order, spec.byte_order)
    for i, word in enumerate(words):
        image[(spec.register_type, point.address + i)] = word
