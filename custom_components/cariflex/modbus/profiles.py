"""Profiles: register maps kept as data (``profiles/*.json``), loaded and validated here.

A profile says, for one kind of device, which register holds which :class:`Quantity`,
how to decode it and how to scale it. Two kinds exist:

* **fixed maps** (Eastron, Huawei, Victron, SMA, generic): every entry has an absolute
  ``address``;
* **SunSpec** (a ``"sunspec"`` section): entries name a SunSpec ``models`` list and an
  ``offset`` inside the model body (0 = the first register after the model's ID and L); the
  client discovers the model chain at run time (``"SunS"`` marker, then ID/L headers) and
  finds each model's address. Entries may name a scale-factor register (``sf_offset``) whose
  int16 value ``sf`` multiplies the point by ``10**sf``.

The schema (``schema`` 1) - unknown keys are refused, keys starting with ``_`` are comments::

    {
      "schema": 1,
      "id": "eastron_sdm630",             # [a-z0-9_]+
      "name": "Eastron SDM630", "manufacturer": "Eastron", "description": "...",
      "source": "where the addresses come from",
      "unit_id": 1,                        # default Modbus unit id (0-255)
      "max_registers_per_request": 125,    # 1-125
      "readable": [{"register_type": "holding", "start": 37100, "end": 37137}],
                                           # ranges the device reads whole: the client may
                                           # read across gaps inside them to batch requests
      "defaults": {...register fields...},
      "sunspec": {"base_addresses": [40000, 0, 50000], "register_type": "holding",
                  "models": {"103": {"name": "inverter", "length": 50}, ...},
                  "identity": {"model": 1, "fields": {"manufacturer": [0, 16], ...}}},
      "registers": [
        {"quantity": "power_w",            # one of models.Quantity
         "address": 52,                    # fixed maps: absolute 0-based PDU address
         "models": [203], "offset": 16,    # SunSpec instead of address
         "register_type": "input",         # holding | input
         "data_type": "float32",           # int16 uint16 int32 uint32 int64 uint64 float32 float64
         "word_order": "big",              # big = high word first (ABCD); little = CDAB
         "byte_order": "big",              # little swaps the two bytes of each word
         "scale": 1, "gain": 10,           # value = raw * scale (or raw / gain), then * 10**sf
         "unit": "kWh",                    # unit after scaling; converted to the canonical one
         "invert": false,                  # flip the device's sign into ours (models.py)
         "sf_address": 40100, "sf_offset": 13,   # scale-factor register (int16 exponent)
         "invalid": [65535, "0x8000"],     # raw values meaning "not available"
         "combine": "sum",                 # several entries of one quantity are added
         "verified": true,                 # false: address not confirmed in vendor docs
         "name": "vendor's register name", "note": "free text"}
      ],
      "notes": ["free text"]
    }

The same quantity may appear more than once: with ``"combine": "sum"`` on every entry the
values are added (Victron's PV on AC input + AC output + DC); in a SunSpec profile, without
``combine``, the entries are alternatives in order of preference (the first whose model the
device has wins: the meter's voltage before the inverter's).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
import json
import math
from pathlib import Path
import re
import struct
from typing import Any

from .errors import ProfileError
from .models import CANONICAL_UNITS, UNIT_FACTORS, Quantity

PROFILE_DIR = Path(__file__).with_name("profiles")
SCHEMA_VERSION = 1
MAX_REGISTERS_PER_REQUEST = 125
"""The Modbus limit for one read of holding or input registers."""


class RegisterType(StrEnum):
    """The two register tables a profile may read."""

    HOLDING = "holding"
    INPUT = "input"

    @property
    def function_code(self) -> int:
        """The Modbus read function code of the table."""
        return 3 if self is RegisterType.HOLDING else 4


class DataType(StrEnum):
    """How the words of a register are decoded."""

    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    INT64 = "int64"
    UINT64 = "uint64"
    FLOAT32 = "float32"
    FLOAT64 = "float64"

    @property
    def words(self) -> int:
        """Number of 16-bit registers."""
        return _TYPE_INFO[self][1]

    @property
    def is_float(self) -> bool:
        """IEEE 754 type."""
        return self in (DataType.FLOAT32, DataType.FLOAT64)

    @property
    def struct_code(self) -> str:
        """The :mod:`struct` code (big-endian)."""
        return _TYPE_INFO[self][0]


_TYPE_INFO: dict[DataType, tuple[str, int]] = {
    DataType.INT16: ("h", 1),
    DataType.UINT16: ("H", 1),
    DataType.INT32: ("i", 2),
    DataType.UINT32: ("I", 2),
    DataType.INT64: ("q", 4),
    DataType.UINT64: ("Q", 4),
    DataType.FLOAT32: ("f", 2),
    DataType.FLOAT64: ("d", 4),
}


class WordOrder(StrEnum):
    """Order of the 16-bit words of a multi-register value (``BIG``: most significant first)."""

    BIG = "big"
    LITTLE = "little"


ByteOrder = WordOrder
"""Order of the two bytes inside each word (Modbus itself is big-endian; ``LITTLE`` swaps)."""

#: SunSpec "not implemented" values per type (SunSpec Information Model, "Unimplemented").
SUNSPEC_NOT_IMPLEMENTED: dict[DataType, int] = {
    DataType.INT16: 0x8000,
    DataType.UINT16: 0xFFFF,
    DataType.INT32: 0x80000000,
    DataType.UINT32: 0xFFFFFFFF,
    DataType.INT64: 0x8000000000000000,
    DataType.UINT64: 0xFFFFFFFFFFFFFFFF,
}
SUNSPEC_SF_NOT_IMPLEMENTED = -0x8000
SUNSPEC_MARKER = (0x5375, 0x6E53)  # "SunS"
SUNSPEC_END_MODEL = 0xFFFF


# --------------------------------------------------------------------------- codec


def _to_bytes(words: Sequence[int], word_order: WordOrder, byte_order: WordOrder) -> bytes:
    ordered = list(words) if word_order is WordOrder.BIG else list(reversed(words))
    data = bytearray()
    for word in ordered:
        pair = (word & 0xFFFF).to_bytes(2, "big")
        data += pair if byte_order is WordOrder.BIG else pair[::-1]
    return bytes(data)


def _from_bytes(data: bytes, word_order: WordOrder, byte_order: WordOrder) -> list[int]:
    words = []
    for i in range(0, len(data), 2):
        pair = data[i : i + 2] if byte_order is WordOrder.BIG else data[i : i + 2][::-1]
        words.append(int.from_bytes(pair, "big"))
    return words if word_order is WordOrder.BIG else list(reversed(words))


def decode_words(
    words: Sequence[int],
    data_type: DataType,
    word_order: WordOrder = WordOrder.BIG,
    byte_order: WordOrder = WordOrder.BIG,
) -> int | float:
    """Decode ``data_type.words`` registers into a number."""
    if len(words) != data_type.words:
        raise ValueError(f"{data_type} needs {data_type.words} registers, got {len(words)}")
    value: int | float = struct.unpack(">" + data_type.struct_code, _to_bytes(words, word_order, byte_order))[0]
    return value


def raw_unsigned(
    words: Sequence[int], word_order: WordOrder = WordOrder.BIG, byte_order: WordOrder = WordOrder.BIG
) -> int:
    """The registers as one unsigned integer (most significant word first, after reordering)."""
    return int.from_bytes(_to_bytes(words, word_order, byte_order), "big")


def encode_value(
    value: float,
    data_type: DataType,
    word_order: WordOrder = WordOrder.BIG,
    byte_order: WordOrder = WordOrder.BIG,
) -> list[int]:
    """The registers that hold ``value`` (integer types need an integral ``value`` in range)."""
    if data_type.is_float:
        data = struct.pack(">" + data_type.struct_code, float(value))
    else:
        if value != int(value):
            raise ValueError(f"{value!r} is not an integer")
        try:
            data = struct.pack(">" + data_type.struct_code, int(value))
        except struct.error as err:
            raise ValueError(f"{value!r} does not fit in {data_type}") from err
    return _from_bytes(data, word_order, byte_order)


def encode_raw(
    raw: int, data_type: DataType, word_order: WordOrder = WordOrder.BIG, byte_order: WordOrder = WordOrder.BIG
) -> list[int]:
    """The registers whose :func:`raw_unsigned` is ``raw`` (used to serve sentinels)."""
    data = raw.to_bytes(2 * data_type.words, "big")
    return _from_bytes(data, word_order, byte_order)


def int_range(data_type: DataType) -> tuple[int, int]:
    """Smallest and largest value of an integer type."""
    bits = 16 * data_type.words
    if data_type.struct_code.islower():
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


# --------------------------------------------------------------------------- data model


@dataclass(frozen=True, slots=True)
class RegisterSpec:
    """One profile entry: where a quantity lives and how to turn the words into it."""

    quantity: Quantity
    data_type: DataType
    register_type: RegisterType
    address: int | None = None
    models: tuple[int, ...] = ()
    offset: int | None = None
    word_order: WordOrder = WordOrder.BIG
    byte_order: WordOrder = WordOrder.BIG
    scale: float = 1.0
    unit: str = ""
    invert: bool = False
    sf_address: int | None = None
    sf_offset: int | None = None
    invalid: frozenset[int] = frozenset()
    combine: str | None = None
    verified: bool = True
    name: str = ""
    note: str = ""

    @property
    def words(self) -> int:
        """Number of registers."""
        return self.data_type.words

    @property
    def factor(self) -> float:
        """Multiplier from the raw number to the canonical unit, sign included (before ``10**sf``)."""
        unit_factor = UNIT_FACTORS[self.quantity.unit][self.unit or self.quantity.unit]
        return self.scale * unit_factor * (-1.0 if self.invert else 1.0)

    @property
    def has_scale_factor(self) -> bool:
        """The value is multiplied by ``10**sf`` read from another register."""
        return self.sf_address is not None or self.sf_offset is not None

    def where(self) -> str:
        """A short human description of the location."""
        if self.address is not None:
            return f"{self.register_type} {self.address}"
        models = "/".join(str(m) for m in self.models)
        return f"SunSpec model {models} offset {self.offset}"


@dataclass(frozen=True, slots=True)
class ReadableRange:
    """Addresses the device answers as one block, gaps included (inclusive bounds)."""

    register_type: RegisterType
    start: int
    end: int

    def covers(self, register_type: RegisterType, start: int, stop: int) -> bool:
        """Whether ``[start, stop)`` lies inside the range."""
        return register_type is self.register_type and self.start <= start and stop - 1 <= self.end


@dataclass(frozen=True, slots=True)
class SunSpecModelDef:
    """A SunSpec model the profile knows: its id, a name and the standard length L."""

    model_id: int
    name: str
    length: int


@dataclass(frozen=True, slots=True)
class SunSpecSpec:
    """Where to look for the SunSpec map and what the profile knows of its models."""

    base_addresses: tuple[int, ...]
    register_type: RegisterType
    models: tuple[SunSpecModelDef, ...]
    identity_model: int | None = None
    identity: tuple[tuple[str, int, int], ...] = ()
    """Strings of the identity model: (field, offset in the body, length in registers)."""

    def model(self, model_id: int) -> SunSpecModelDef | None:
        """The definition of one model."""
        return next((m for m in self.models if m.model_id == model_id), None)


@dataclass(frozen=True, slots=True)
class Profile:
    """A validated register map."""

    id: str
    name: str
    registers: tuple[RegisterSpec, ...]
    manufacturer: str = ""
    description: str = ""
    source: str = ""
    unit_id: int = 1
    max_registers_per_request: int = MAX_REGISTERS_PER_REQUEST
    readable: tuple[ReadableRange, ...] = ()
    sunspec: SunSpecSpec | None = None
    notes: tuple[str, ...] = ()
    origin: str = field(default="<profile>", compare=False)

    @property
    def is_sunspec(self) -> bool:
        """Addresses come from SunSpec discovery."""
        return self.sunspec is not None

    @property
    def quantities(self) -> frozenset[Quantity]:
        """Every quantity the profile maps."""
        return frozenset(spec.quantity for spec in self.registers)

    def entries(self, quantity: Quantity | str) -> tuple[RegisterSpec, ...]:
        """The entries of one quantity, in profile order."""
        q = Quantity(quantity)
        return tuple(spec for spec in self.registers if spec.quantity is q)

    def unverified(self) -> tuple[RegisterSpec, ...]:
        """Entries whose address is not confirmed by the vendor's documentation."""
        return tuple(spec for spec in self.registers if not spec.verified)


# --------------------------------------------------------------------------- validation

_ID_RE = re.compile(r"^[a-z0-9_]+$")
_TOP_KEYS = {
    "schema",
    "id",
    "name",
    "manufacturer",
    "description",
    "source",
    "unit_id",
    "max_registers_per_request",
    "readable",
    "defaults",
    "sunspec",
    "registers",
    "notes",
}
_REGISTER_KEYS = {
    "quantity",
    "address",
    "models",
    "offset",
    "register_type",
    "data_type",
    "word_order",
    "byte_order",
    "scale",
    "gain",
    "unit",
    "invert",
    "sf_address",
    "sf_offset",
    "invalid",
    "combine",
    "verified",
    "name",
    "note",
}
_DEFAULT_KEYS = _REGISTER_KEYS - {"quantity", "address", "offset", "name", "note"}
_SUNSPEC_KEYS = {"base_addresses", "register_type", "models", "identity"}


class _Checker:
    """Small typed accessors that raise :class:`ProfileError` with the JSON path."""

    def __init__(self, origin: str) -> None:
        self.origin = origin

    def fail(self, path: str, message: str) -> ProfileError:
        return ProfileError(message, origin=self.origin, path=path)

    def obj(self, value: object, path: str, allowed: set[str] | None = None) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(path, f"expected an object, got {type(value).__name__}")
        if allowed is not None:
            unknown = sorted(k for k in value if not str(k).startswith("_") and k not in allowed)
            if unknown:
                raise self.fail(
                    path, f"unknown key(s) {', '.join(map(repr, unknown))}; allowed: {', '.join(sorted(allowed))}"
                )
        return value

    def string(self, data: Mapping[str, Any], key: str, path: str, *, required: bool = False, default: str = "") -> str:
        if key not in data:
            if required:
                raise self.fail(f"{path}.{key}".lstrip("."), "is required")
            return default
        value = data[key]
        if not isinstance(value, str) or (required and not value.strip()):
            raise self.fail(f"{path}.{key}".lstrip("."), f"expected a non-empty string, got {value!r}")
        return value

    def integer(self, value: object, path: str, lo: int, hi: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(path, f"expected an integer, got {value!r}")
        if not lo <= value <= hi:
            raise self.fail(path, f"{value} is out of range {lo}..{hi}")
        return value

    def number(self, value: object, path: str) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise self.fail(path, f"expected a finite number, got {value!r}")
        return float(value)

    def boolean(self, value: object, path: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(path, f"expected true or false, got {value!r}")
        return value

    def choice[E: StrEnum](self, value: object, path: str, enum: type[E]) -> E:
        try:
            if not isinstance(value, str):
                raise ValueError(value)
            return enum(value)
        except ValueError:
            raise self.fail(path, f"{value!r} is not one of: {', '.join(e.value for e in enum)}") from None

    def raw_value(self, value: object, path: str) -> int:
        if isinstance(value, str):
            try:
                value = int(value, 0)
            except ValueError:
                raise self.fail(path, f"{value!r} is not an integer (decimal or 0x hex)") from None
        return self.integer(value, path, 0, (1 << 64) - 1)


def profile_from_dict(data: Mapping[str, Any], *, origin: str = "<user>") -> Profile:
    """Validate a profile given as a dictionary (a parsed JSON file, or user data)."""
    c = _Checker(origin)
    top = c.obj(dict(data) if isinstance(data, Mapping) else data, "", _TOP_KEYS)
    if "schema" in top and top["schema"] != SCHEMA_VERSION:
        raise c.fail("schema", f"unsupported schema {top['schema']!r} (this version reads {SCHEMA_VERSION})")
    profile_id = c.string(top, "id", "", required=True)
    if not _ID_RE.match(profile_id):
        raise c.fail("id", f"{profile_id!r} must match [a-z0-9_]+")
    name = c.string(top, "name", "", required=True)
    unit_id = c.integer(top.get("unit_id", 1), "unit_id", 0, 255)
    max_count = c.integer(
        top.get("max_registers_per_request", MAX_REGISTERS_PER_REQUEST),
        "max_registers_per_request",
        1,
        MAX_REGISTERS_PER_REQUEST,
    )
    notes_raw = top.get("notes", [])
    if not isinstance(notes_raw, list) or not all(isinstance(n, str) for n in notes_raw):
        raise c.fail("notes", "expected a list of strings")

    sunspec = _sunspec(c, top["sunspec"]) if "sunspec" in top else None
    readable = tuple(
        _readable(c, item, f"readable[{i}]") for i, item in enumerate(_list(c, top.get("readable", []), "readable"))
    )
    defaults = c.obj(top.get("defaults", {}), "defaults", _DEFAULT_KEYS)

    raw_registers = _list(c, top.get("registers"), "registers")
    if not raw_registers:
        raise c.fail("registers", "at least one register is required")
    registers = tuple(_register(c, item, f"registers[{i}]", defaults, sunspec) for i, item in enumerate(raw_registers))
    _check_duplicates(c, registers, sunspec is not None)

    return Profile(
        id=profile_id,
        name=name,
        registers=registers,
        manufacturer=c.string(top, "manufacturer", ""),
        description=c.string(top, "description", ""),
        source=c.string(top, "source", ""),
        unit_id=unit_id,
        max_registers_per_request=max_count,
        readable=readable,
        sunspec=sunspec,
        notes=tuple(notes_raw),
        origin=origin,
    )


def _list(c: _Checker, value: object, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise c.fail(path, f"expected a list, got {type(value).__name__}" if value is not None else "is required")
    return value


def _readable(c: _Checker, item: object, path: str) -> ReadableRange:
    data = c.obj(item, path, {"register_type", "start", "end"})
    if "register_type" not in data:
        raise c.fail(f"{path}.register_type", "is required")
    register_type = c.choice(data["register_type"], f"{path}.register_type", RegisterType)
    start = c.integer(data.get("start"), f"{path}.start", 0, 65535)
    end = c.integer(data.get("end"), f"{path}.end", 0, 65535)
    if end < start:
        raise c.fail(path, f"end {end} is before start {start}")
    return ReadableRange(register_type, start, end)


def _sunspec(c: _Checker, value: object) -> SunSpecSpec:
    data = c.obj(value, "sunspec", _SUNSPEC_KEYS)
    bases = _list(c, data.get("base_addresses", [40000, 0, 50000]), "sunspec.base_addresses")
    if not bases:
        raise c.fail("sunspec.base_addresses", "at least one base address is required")
    base_addresses = tuple(c.integer(b, f"sunspec.base_addresses[{i}]", 0, 65533) for i, b in enumerate(bases))
    register_type = c.choice(data.get("register_type", "holding"), "sunspec.register_type", RegisterType)
    models_raw = c.obj(data.get("models"), "sunspec.models")
    models = []
    for key, item in models_raw.items():
        path = f"sunspec.models.{key}"
        try:
            model_id = int(key)
        except ValueError:
            raise c.fail(path, f"model ids are integers, got {key!r}") from None
        c.integer(model_id, path, 1, 65534)
        model = c.obj(item, path, {"name", "length"})
        models.append(
            SunSpecModelDef(
                model_id,
                c.string(model, "name", path, required=True),
                c.integer(model.get("length"), f"{path}.length", 1, 65535),
            )
        )
    if not models:
        raise c.fail("sunspec.models", "at least one model is required")
    identity_model: int | None = None
    identity: list[tuple[str, int, int]] = []
    if "identity" in data:
        ident = c.obj(data["identity"], "sunspec.identity", {"model", "fields"})
        identity_model = c.integer(ident.get("model"), "sunspec.identity.model", 1, 65534)
        if identity_model not in {m.model_id for m in models}:
            raise c.fail("sunspec.identity.model", f"model {identity_model} is not in sunspec.models")
        length = next(m.length for m in models if m.model_id == identity_model)
        for fname, loc in c.obj(ident.get("fields", {}), "sunspec.identity.fields").items():
            path = f"sunspec.identity.fields.{fname}"
            if not isinstance(loc, list) or len(loc) != 2:
                raise c.fail(path, "expected [offset, length]")
            offset = c.integer(loc[0], path, 0, 65535)
            size = c.integer(loc[1], path, 1, 125)
            if offset + size > length:
                raise c.fail(
                    path, f"offset {offset} + {size} registers runs past model {identity_model} (length {length})"
                )
            identity.append((fname, offset, size))
    return SunSpecSpec(base_addresses, register_type, tuple(models), identity_model, tuple(identity))


def _register(
    c: _Checker, item: object, path: str, defaults: Mapping[str, Any], sunspec: SunSpecSpec | None
) -> RegisterSpec:
    own = c.obj(item, path, _REGISTER_KEYS)
    data = {**defaults, **own}
    if "quantity" not in data:
        raise c.fail(f"{path}.quantity", "is required")
    quantity = c.choice(data["quantity"], f"{path}.quantity", Quantity)
    if "data_type" not in data:
        raise c.fail(f"{path}.data_type", "is required")
    data_type = c.choice(data["data_type"], f"{path}.data_type", DataType)
    word_order = c.choice(data.get("word_order", "big"), f"{path}.word_order", WordOrder)
    byte_order = c.choice(data.get("byte_order", "big"), f"{path}.byte_order", WordOrder)

    if "scale" in data and "gain" in data:
        raise c.fail(path, "give either scale (multiplier) or gain (divisor), not both")
    scale = 1.0
    if "scale" in data:
        scale = c.number(data["scale"], f"{path}.scale")
        if scale == 0:
            raise c.fail(f"{path}.scale", "must not be 0")
    if "gain" in data:
        gain = c.number(data["gain"], f"{path}.gain")
        if gain <= 0:
            raise c.fail(f"{path}.gain", "must be > 0")
        scale = 1.0 / gain
    canonical = CANONICAL_UNITS[quantity]
    unit = data.get("unit", canonical)
    if unit not in UNIT_FACTORS[canonical]:
        raise c.fail(
            f"{path}.unit", f"{unit!r} is not a unit of {quantity} (one of: {', '.join(UNIT_FACTORS[canonical])})"
        )
    invert = c.boolean(data.get("invert", False), f"{path}.invert")
    verified = c.boolean(data.get("verified", True), f"{path}.verified")
    combine = data.get("combine")
    if combine is not None and combine != "sum":
        raise c.fail(f"{path}.combine", f'{combine!r} is not supported (only "sum")')
    name = c.string(data, "name", path)
    note = c.string(data, "note", path)

    if sunspec is None:
        for key in ("models", "offset", "sf_offset"):
            if key in data:
                raise c.fail(
                    f"{path}.{key}", 'only SunSpec profiles (with a "sunspec" section) use models/offset/sf_offset'
                )
        if "address" not in data:
            raise c.fail(f"{path}.address", "is required")
        address = c.integer(data["address"], f"{path}.address", 0, 65535)
        if address + data_type.words - 1 > 65535:
            raise c.fail(f"{path}.address", f"{data_type} at {address} runs past register 65535")
        if "register_type" not in data:
            raise c.fail(f"{path}.register_type", "is required (holding or input)")
        register_type = c.choice(data["register_type"], f"{path}.register_type", RegisterType)
        sf_address = c.integer(data["sf_address"], f"{path}.sf_address", 0, 65535) if "sf_address" in data else None
        invalid = frozenset(
            c.raw_value(v, f"{path}.invalid[{i}]")
            for i, v in enumerate(_list(c, data.get("invalid", []), f"{path}.invalid"))
        )
        return RegisterSpec(
            quantity, data_type, register_type, address=address, word_order=word_order, byte_order=byte_order, scale=scale,
            unit=unit, invert=invert, sf_address=sf_address, invalid=invalid, combine=combine, verified=verified, name=name, note=note,
        )  # fmt: skip

    for key in ("address", "sf_address"):
        if key in data:
            raise c.fail(f"{path}.{key}", "SunSpec entries use models + offset (and sf_offset), not absolute addresses")
    if "register_type" in data and data["register_type"] != sunspec.register_type.value:
        raise c.fail(f"{path}.register_type", f"SunSpec registers are {sunspec.register_type} registers")
    models_raw = data.get("models")
    model_list = (
        [models_raw]
        if isinstance(models_raw, int) and not isinstance(models_raw, bool)
        else _list(c, models_raw, f"{path}.models")
    )
    if not model_list:
        raise c.fail(f"{path}.models", "at least one model is required")
    models = tuple(c.integer(m, f"{path}.models[{i}]", 1, 65534) for i, m in enumerate(model_list))
    if "offset" not in data:
        raise c.fail(f"{path}.offset", "is required")
    offset = c.integer(data["offset"], f"{path}.offset", 0, 65535)
    sf_offset = c.integer(data["sf_offset"], f"{path}.sf_offset", 0, 65535) if "sf_offset" in data else None
    for model_id in models:
        model = sunspec.model(model_id)
        if model is None:
            raise c.fail(f"{path}.models", f"model {model_id} is not declared in sunspec.models")
        if offset + data_type.words > model.length:
            raise c.fail(
                f"{path}.offset", f"{data_type} at offset {offset} runs past model {model_id} (length {model.length})"
            )
        if sf_offset is not None and sf_offset >= model.length:
            raise c.fail(f"{path}.sf_offset", f"offset {sf_offset} is outside model {model_id} (length {model.length})")
    if "invalid" in data:
        invalid = frozenset(
            c.raw_value(v, f"{path}.invalid[{i}]") for i, v in enumerate(_list(c, data["invalid"], f"{path}.invalid"))
        )
    else:
        sentinel = SUNSPEC_NOT_IMPLEMENTED.get(data_type)
        invalid = frozenset() if sentinel is None else frozenset({sentinel})
    return RegisterSpec(
        quantity, data_type, sunspec.register_type, models=models, offset=offset, word_order=word_order, byte_order=byte_order,
        scale=scale, unit=unit, invert=invert, sf_offset=sf_offset, invalid=invalid, combine=combine, verified=verified, name=name,
        note=note,
    )  # fmt: skip


def _check_duplicates(c: _Checker, registers: Sequence[RegisterSpec], sunspec: bool) -> None:
    seen: dict[Quantity, list[int]] = {}
    for index, spec in enumerate(registers):
        seen.setdefault(spec.quantity, []).append(index)
    for quantity, indexes in seen.items():
        if len(indexes) < 2:
            continue
        specs = [registers[i] for i in indexes]
        combined = [s.combine == "sum" for s in specs]
        if all(combined):
            continue
        where = " and ".join(f"registers[{i}]" for i in indexes)
        if any(combined):
            raise c.fail(
                f"registers[{indexes[0]}]",
                f"quantity '{quantity}' ({where}): either every entry has " + '"combine": "sum" or none',
            )
        if sunspec:
            models: set[int] = set()
            for i, spec in zip(indexes, specs, strict=True):
                if models & set(spec.models):
                    raise c.fail(
                        f"registers[{i}].models",
                        f"quantity '{quantity}' is mapped twice in model(s) {sorted(models & set(spec.models))}",
                    )
                models |= set(spec.models)
            continue
        raise c.fail(
            f"registers[{indexes[1]}]",
            f"quantity '{quantity}' is mapped by {where}; mark each with " + '"combine": "sum" to add them',
        )


# --------------------------------------------------------------------------- loading


def available_profiles() -> list[str]:
    """The ids of the profiles shipped in ``profiles/``."""
    return sorted(path.stem for path in PROFILE_DIR.glob("*.json"))


def load_profile(name_or_path: str | Path) -> Profile:
    """A shipped profile by id (``"eastron_sdm630"``), or a profile file by path (``*.json``)."""
    path = Path(name_or_path)
    if not (isinstance(name_or_path, Path) or path.suffix == ".json" or len(path.parts) > 1):
        path = PROFILE_DIR / f"{name_or_path}.json"
        if not path.is_file():
            raise ProfileError(
                f"no profile {str(name_or_path)!r}; shipped profiles: {', '.join(available_profiles())}",
                origin=str(name_or_path),
            )
    origin = path.name if path.parent == PROFILE_DIR else str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ProfileError(f"cannot read the file: {err.strerror or err}", origin=origin) from err
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ProfileError(f"invalid JSON at line {err.lineno} column {err.colno}: {err.msg}", origin=origin) from err
    if not isinstance(data, dict):
        raise ProfileError("a profile is a JSON object", origin=origin)
    return profile_from_dict(data, origin=origin)


def load_all_profiles() -> dict[str, Profile]:
    """Every shipped profile, by id."""
    return {name: load_profile(name) for name in available_profiles()}


def generic_profile(
    registers: Iterable[Mapping[str, Any]],
    *,
    name: str = "Generic Modbus device",
    profile_id: str = "user_generic",
    unit_id: int = 1,
    **extra: Any,
) -> Profile:
    """A profile from user data: a list of registers in the schema's entry format.

    ``extra`` takes the other top-level keys (``manufacturer``, ``readable``,
    ``max_registers_per_request``, ``defaults``...).
    """
    data: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "id": profile_id,
        "name": name,
        "unit_id": unit_id,
        "source": "user configuration",
        **extra,
        "registers": [dict(r) for r in registers],
    }
    return profile_from_dict(data, origin=f"<{profile_id}>")
