"""Profiles: the shipped register maps, the schema validator and the register codec."""

from __future__ import annotations

from collections.abc import Callable
import copy
import json
import math
from pathlib import Path
import shutil
import struct
from typing import Any

from hypothesis import given, strategies as st
import pytest

from custom_components.cariflex.modbus import (
    DataType,
    ModbusResponseError,
    ProfileError,
    Quantity,
    Reading,
    RegisterType,
    WordOrder,
    available_profiles,
    generic_profile,
    load_all_profiles,
    load_profile,
    profile_from_dict,
)
from custom_components.cariflex.modbus.models import CANONICAL_UNITS
from custom_components.cariflex.modbus.profiles import (
    PROFILE_DIR,
    decode_words,
    encode_raw,
    encode_value,
    int_range,
    raw_unsigned,
)

SHIPPED = {"eastron_sdm630", "eastron_sdm120", "sunspec", "huawei_sun2000", "victron_gx", "sma_native", "generic"}


def test_every_shipped_profile_loads_and_names_its_source() -> None:
    profiles = load_all_profiles()
    assert set(profiles) == SHIPPED == set(available_profiles())
    for profile_id, profile in profiles.items():
        assert profile.id == profile_id, "the file name is the profile id"
        assert profile.name
        assert len(profile.source) > 20, f"{profile_id} must say where its addresses come from"
        assert profile.origin == f"{profile_id}.json"


def test_sdm630_map() -> None:
    profile = load_profile("eastron_sdm630")
    assert profile.unit_id == 1
    assert {s.register_type for s in profile.registers} == {RegisterType.INPUT}
    assert {s.data_type for s in profile.registers} == {DataType.FLOAT32}
    addresses = {s.quantity: s.address for s in profile.registers}
    assert addresses[Quantity.VOLTAGE_V_L1] == 0
    assert addresses[Quantity.CURRENT_A_L3] == 10
    assert addresses[Quantity.POWER_W_L1] == 12
    assert addresses[Quantity.POWER_W] == 52
    assert addresses[Quantity.FREQUENCY_HZ] == 70
    assert addresses[Quantity.ENERGY_IMPORT_WH] == 72
    assert addresses[Quantity.ENERGY_EXPORT_WH] == 74
    (energy,) = profile.entries("energy_import_wh")
    assert energy.unit == "kWh"
    assert energy.factor == 1000.0
    assert profile.quantities == frozenset(Quantity) - {
        Quantity.SOC_PERCENT,
        Quantity.PV_POWER_W,
        Quantity.BATTERY_POWER_W,
    }


def test_sign_conventions_of_vendor_profiles() -> None:
    huawei = load_profile("huawei_sun2000")
    (grid,) = huawei.entries(Quantity.POWER_W)
    (battery,) = huawei.entries(Quantity.BATTERY_POWER_W)
    assert grid.address == 37113
    assert grid.factor == -1.0, "Huawei's meter is positive on feed-in"
    assert battery.factor == -1.0, "Huawei's battery is positive when charging"
    victron = load_profile("victron_gx")
    assert victron.unit_id == 100
    (victron_battery,) = victron.entries(Quantity.BATTERY_POWER_W)
    assert victron_battery.address == 842
    assert victron_battery.invert
    assert sorted(s.address or 0 for s in victron.entries(Quantity.PV_POWER_W)) == [808, 809, 810, 811, 812, 813, 850]
    sma = load_profile("sma_native")
    assert sma.unit_id == 3
    assert {(s.address, s.factor) for s in sma.entries(Quantity.POWER_W)} == {(30867, 1.0), (30865, -1.0)}


def test_sunspec_profile_models() -> None:
    profile = load_profile("sunspec")
    assert profile.is_sunspec
    sunspec = profile.sunspec
    assert sunspec is not None
    assert sunspec.base_addresses == (40000, 0, 50000)
    assert {m.model_id: m.length for m in sunspec.models} == {
        1: 66, 101: 50, 102: 50, 103: 50, 201: 105, 202: 105, 203: 105, 124: 24, 802: 62,
    }  # fmt: skip
    # The meter's voltage first, the inverter's as the fallback.
    assert [s.models for s in profile.entries(Quantity.VOLTAGE_V_L1)] == [(201, 202, 203), (101, 102, 103)]
    (pv,) = profile.entries(Quantity.PV_POWER_W)
    assert (pv.offset, pv.sf_offset, pv.data_type) == (12, 13, DataType.INT16)
    assert pv.invalid == frozenset({0x8000}), "SunSpec's unimplemented int16 by default"
    assert pv.has_scale_factor
    assert pv.register_type.function_code == 3
    assert RegisterType.INPUT.function_code == 4
    (energy,) = profile.entries(Quantity.ENERGY_EXPORT_WH)
    assert energy.invalid == frozenset(), "acc32 counters may be 0"


def test_unverified_addresses_are_flagged() -> None:
    """The addresses not confirmed in vendor documentation (reported to the user)."""
    flagged = {
        (profile.id, spec.quantity.value, spec.address if spec.address is not None else spec.offset)
        for profile in load_all_profiles().values()
        for spec in profile.unverified()
    }
    assert flagged == {
        ("sma_native", "power_w", 30865),
        ("sma_native", "power_w", 30867),
        ("sma_native", "energy_import_wh", 30581),
        ("sma_native", "energy_export_wh", 30583),
        ("sma_native", "battery_power_w", 31393),
        ("sma_native", "battery_power_w", 31395),
        ("sunspec", "battery_power_w", 45),
    }


# --------------------------------------------------------------------------- validation

VALID: dict[str, Any] = {
    "schema": 1,
    "id": "test_meter",
    "name": "Test meter",
    "source": "tests",
    "registers": [
        {"quantity": "power_w", "address": 10, "register_type": "holding", "data_type": "int32"},
        {
            "quantity": "energy_import_wh",
            "address": 20,
            "register_type": "holding",
            "data_type": "uint32",
            "unit": "kWh",
            "gain": 100,
        },
    ],
}

SUNSPEC_VALID: dict[str, Any] = {
    "id": "ss",
    "name": "SunSpec test",
    "sunspec": {"models": {"1": {"name": "common", "length": 66}, "103": {"name": "inverter", "length": 50}}},
    "registers": [{"quantity": "pv_power_w", "models": [103], "offset": 12, "data_type": "int16", "sf_offset": 13}],
}


def _set(path: str, value: object) -> Callable[[dict[str, Any]], None]:
    """A change to a profile dict: set (or delete) the value at a dotted path."""

    def change(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        key: Any = int(last) if isinstance(node, list) else last
        if value is _DELETE:
            del node[key]
        else:
            node[key] = value

    return change


_DELETE = object()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_set("id", _DELETE), r"id: is required"),
        (_set("id", "Bad-Id"), r"id: 'Bad-Id' must match"),
        (_set("name", ""), r"name: expected a non-empty string"),
        (_set("registres", []), r"unknown key\(s\) 'registres'"),
        (_set("schema", 2), r"schema: unsupported schema 2"),
        (_set("unit_id", 300), r"unit_id: 300 is out of range 0\.\.255"),
        (_set("max_registers_per_request", 200), r"max_registers_per_request: 200 is out of range"),
        (_set("notes", "text"), r"notes: expected a list of strings"),
        (_set("registers", []), r"registers: at least one register is required"),
        (_set("registers", _DELETE), r"registers: is required"),
        (_set("registers.0", "power_w"), r"registers\[0\]: expected an object, got str"),
        (_set("registers.0.quantity", "power_kw"), r"registers\[0\]\.quantity: 'power_kw' is not one of: power_w, "),
        (_set("registers.0.quantity", _DELETE), r"registers\[0\]\.quantity: is required"),
        (_set("registers.0.quantity", 5), r"registers\[0\]\.quantity: 5 is not one of"),
        (_set("registers.0.data_type", "float"), r"registers\[0\]\.data_type: 'float' is not one of: int16, uint16"),
        (_set("registers.0.data_type", _DELETE), r"registers\[0\]\.data_type: is required"),
        (_set("registers.0.word_order", "middle"), r"registers\[0\]\.word_order: 'middle' is not one of: big, little"),
        (_set("registers.0.address", _DELETE), r"registers\[0\]\.address: is required"),
        (_set("registers.0.address", 70000), r"registers\[0\]\.address: 70000 is out of range 0\.\.65535"),
        (_set("registers.0.address", 65535), r"int32 at 65535 runs past register 65535"),
        (_set("registers.0.address", "10"), r"registers\[0\]\.address: expected an integer, got '10'"),
        (_set("registers.0.register_type", _DELETE), r"register_type: is required \(holding or input\)"),
        (_set("registers.0.register_type", "coil"), r"'coil' is not one of: holding, input"),
        (
            _set("registers.0.unit", "kWh"),
            r"registers\[0\]\.unit: 'kWh' is not a unit of power_w \(one of: W, kW, MW\)",
        ),
        (_set("registers.0.scale", 0), r"registers\[0\]\.scale: must not be 0"),
        (_set("registers.0.scale", math.inf), r"registers\[0\]\.scale: expected a finite number"),
        (
            _set("registers.1.scale", 2),
            r"registers\[1\]: give either scale \(multiplier\) or gain \(divisor\), not both",
        ),
        (_set("registers.1.gain", -1), r"registers\[1\]\.gain: must be > 0"),
        (_set("registers.0.invert", "yes"), r"registers\[0\]\.invert: expected true or false, got 'yes'"),
        (_set("registers.0.verified", 1), r"registers\[0\]\.verified: expected true or false"),
        (_set("registers.0.invalid", ["0xZZ"]), r"registers\[0\]\.invalid\[0\]: '0xZZ' is not an integer"),
        (_set("registers.0.invalid", 5), r"registers\[0\]\.invalid: expected a list"),
        (_set("registers.0.combine", "max"), r"registers\[0\]\.combine: 'max' is not supported"),
        (_set("registers.0.models", [103]), r"registers\[0\]\.models: only SunSpec profiles"),
        (
            _set("registers.1", {"quantity": "power_w", "address": 30, "register_type": "input", "data_type": "int16"}),
            r"registers\[1\]: quantity 'power_w' is mapped by registers\[0\] and registers\[1\]; mark each",
        ),
        (
            _set("readable", [{"register_type": "holding", "start": 10, "end": 5}]),
            r"readable\[0\]: end 5 is before start 10",
        ),
        (_set("readable", [{"start": 1, "end": 5}]), r"readable\[0\]\.register_type: is required"),
        (_set("defaults", {"address": 4}), r"defaults: unknown key\(s\) 'address'"),
    ],
)
def test_validation_errors_name_the_field(change: Callable[[dict[str, Any]], None], message: str) -> None:
    data = copy.deepcopy(VALID)
    change(data)
    with pytest.raises(ProfileError, match=message) as info:
        profile_from_dict(data, origin="meter.json")
    assert str(info.value).startswith("meter.json: ")
    assert isinstance(info.value, ValueError)


def test_partial_combine_is_refused() -> None:
    data = copy.deepcopy(VALID)
    data["registers"][1].update(quantity="power_w", combine="sum", unit="W")
    del data["registers"][1]["gain"]
    with pytest.raises(ProfileError, match=r"either every entry has \"combine\": \"sum\" or none"):
        profile_from_dict(data)
    data["registers"][0]["combine"] = "sum"
    assert len(profile_from_dict(data).entries("power_w")) == 2


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_set("sunspec.models", []), r"sunspec\.models: expected an object"),
        (_set("sunspec.models", {}), r"sunspec\.models: at least one model"),
        (_set("sunspec.models.abc", {"name": "x", "length": 3}), r"sunspec\.models\.abc: model ids are integers"),
        (_set("sunspec.models.103.length", 0), r"sunspec\.models\.103\.length: 0 is out of range"),
        (_set("sunspec.base_addresses", []), r"sunspec\.base_addresses: at least one"),
        (
            _set("sunspec.identity", {"model": 7, "fields": {}}),
            r"sunspec\.identity\.model: model 7 is not in sunspec\.models",
        ),
        (_set("sunspec.identity", {"model": 1, "fields": {"serial": [60, 16]}}), r"runs past model 1 \(length 66\)"),
        (_set("sunspec.identity", {"model": 1, "fields": {"serial": 48}}), r"expected \[offset, length\]"),
        (_set("registers.0.address", 40084), r"registers\[0\]\.address: SunSpec entries use models \+ offset"),
        (_set("registers.0.models", []), r"registers\[0\]\.models: at least one model"),
        (_set("registers.0.models", [160]), r"model 160 is not declared in sunspec\.models"),
        (
            _set("registers.0.offset", 50),
            r"registers\[0\]\.offset: int16 at offset 50 runs past model 103 \(length 50\)",
        ),
        (_set("registers.0.offset", _DELETE), r"registers\[0\]\.offset: is required"),
        (_set("registers.0.sf_offset", 50), r"registers\[0\]\.sf_offset: offset 50 is outside model 103"),
        (_set("registers.0.register_type", "input"), r"SunSpec registers are holding registers"),
        (
            _set("registers.1", {"quantity": "pv_power_w", "models": 103, "offset": 14, "data_type": "uint16"}),
            r"mapped twice in model\(s\) \[103\]",
        ),
    ],
)
def test_sunspec_validation_errors(change: Callable[[dict[str, Any]], None], message: str) -> None:
    data = copy.deepcopy(SUNSPEC_VALID)
    data["registers"].append(
        {"quantity": "frequency_hz", "models": [103], "offset": 14, "data_type": "uint16", "sf_offset": 15}
    )
    change(data)
    with pytest.raises(ProfileError, match=message):
        profile_from_dict(data)


def test_sunspec_variants_that_load() -> None:
    data = copy.deepcopy(SUNSPEC_VALID)
    data["sunspec"]["register_type"] = "input"
    data["registers"][0]["offset"] = 49  # the last register of the model
    data["registers"].append(
        {"quantity": "pv_power_w", "models": 1, "offset": 0, "data_type": "uint16", "invalid": ["0xFFFF", 7]}
    )
    profile = profile_from_dict(data)
    first, second = profile.entries("pv_power_w")
    assert first.register_type is RegisterType.INPUT
    assert second.models == (1,)
    assert second.invalid == frozenset({0xFFFF, 7})
    assert "SunSpec model 1 offset 0" in second.where()


def test_load_profile_from_files(tmp_path: Path) -> None:
    copied = tmp_path / "mine.json"
    shutil.copy(PROFILE_DIR / "generic.json", copied)
    profile = load_profile(copied)
    assert profile.id == "generic"
    assert profile.origin == str(copied)

    broken = tmp_path / "broken.json"
    broken.write_text('{"id": "x",\n  "name": }', encoding="utf-8")
    with pytest.raises(ProfileError, match=r"broken\.json: invalid JSON at line 2 column"):
        load_profile(broken)
    listed = tmp_path / "list.json"
    listed.write_text("[]", encoding="utf-8")
    with pytest.raises(ProfileError, match="a profile is a JSON object"):
        load_profile(listed)
    with pytest.raises(ProfileError, match=r"cannot read the file"):
        load_profile(tmp_path / "missing.json")
    with pytest.raises(
        ProfileError, match=r"no profile 'fronius'; shipped profiles: eastron_sdm120, eastron_sdm630, generic"
    ):
        load_profile("fronius")


def test_generic_profile_from_user_data() -> None:
    profile = generic_profile(
        [
            {
                "quantity": "power_w",
                "address": 100,
                "register_type": "input",
                "data_type": "int32",
                "word_order": "little",
                "unit": "kW",
                "scale": 0.001,
                "invert": True,
            },
            {"quantity": "voltage_v_l1", "address": 102, "register_type": "input", "data_type": "uint16", "gain": 10},
            {
                "quantity": "energy_export_wh",
                "address": 200,
                "register_type": "holding",
                "data_type": "float32",
                "unit": "kWh",
            },
        ],
        name="Shed meter",
        unit_id=7,
        readable=[{"register_type": "input", "start": 100, "end": 110}],
    )
    assert (profile.id, profile.name, profile.unit_id) == ("user_generic", "Shed meter", 7)
    power, voltage, energy = profile.registers
    assert power.word_order is WordOrder.LITTLE
    assert power.factor == pytest.approx(-1.0)  # 0.001 kW per unit = 1 W, inverted
    assert voltage.factor == pytest.approx(0.1)
    assert energy.factor == 1000.0
    assert profile.readable[0].covers(RegisterType.INPUT, 103, 110)
    assert not profile.readable[0].covers(RegisterType.HOLDING, 103, 110)
    with pytest.raises(ProfileError, match=r"<user_generic>: registers\[0\]\.data_type: is required"):
        generic_profile([{"quantity": "power_w", "address": 1, "register_type": "input"}])


def test_every_quantity_has_a_canonical_unit() -> None:
    assert set(CANONICAL_UNITS) == set(Quantity)
    assert Quantity.ENERGY_IMPORT_WH.unit == "Wh"
    assert Quantity.SOC_PERCENT.unit == "%"


# --------------------------------------------------------------------------- codec


@pytest.mark.parametrize(
    ("words", "data_type", "word_order", "byte_order", "expected"),
    [
        ([0x4348, 0x0000], DataType.FLOAT32, "big", "big", 200.0),
        ([0x0000, 0x4348], DataType.FLOAT32, "little", "big", 200.0),
        ([0x4843, 0x0000], DataType.FLOAT32, "big", "little", 200.0),
        ([0x0000, 0x4843], DataType.FLOAT32, "little", "little", 200.0),
        ([0xFFFF, 0xFFFE], DataType.INT32, "big", "big", -2),
        ([0xFFFE, 0xFFFF], DataType.INT32, "little", "big", -2),
        ([0x0001, 0x0002], DataType.UINT32, "big", "big", 0x00010002),
        ([0x0001, 0x0002], DataType.UINT32, "little", "big", 0x00020001),
        ([0x8000], DataType.INT16, "big", "big", -32768),
        ([0x8000], DataType.UINT16, "big", "big", 32768),
        ([0, 0, 0, 1], DataType.UINT64, "big", "big", 1),
        ([1, 0, 0, 0], DataType.INT64, "little", "big", 1),
        ([0x4059, 0, 0, 0], DataType.FLOAT64, "big", "big", 100.0),
    ],
)
def test_decode_known_words(
    words: list[int], data_type: DataType, word_order: str, byte_order: str, expected: float
) -> None:
    assert decode_words(words, data_type, WordOrder(word_order), WordOrder(byte_order)) == expected
    assert encode_value(expected, data_type, WordOrder(word_order), WordOrder(byte_order)) == words


def test_codec_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="float32 needs 2 registers, got 1"):
        decode_words([1], DataType.FLOAT32)
    with pytest.raises(ValueError, match="does not fit in int16"):
        encode_value(40000, DataType.INT16)
    with pytest.raises(ValueError, match="is not an integer"):
        encode_value(1.5, DataType.UINT16)
    assert int_range(DataType.INT16) == (-32768, 32767)
    assert int_range(DataType.UINT32) == (0, 0xFFFFFFFF)


_INT_TYPES = [t for t in DataType if not t.is_float]


@given(
    data_type=st.sampled_from(_INT_TYPES),
    word_order=st.sampled_from(list(WordOrder)),
    byte_order=st.sampled_from(list(WordOrder)),
    data=st.data(),
)
def test_integers_round_trip(
    data_type: DataType, word_order: WordOrder, byte_order: WordOrder, data: st.DataObject
) -> None:
    low, high = int_range(data_type)
    value = data.draw(st.integers(low, high))
    words = encode_value(value, data_type, word_order, byte_order)
    assert len(words) == data_type.words
    assert all(0 <= w <= 0xFFFF for w in words)
    assert decode_words(words, data_type, word_order, byte_order) == value
    raw = raw_unsigned(words, word_order, byte_order)
    assert raw == value & ((1 << (16 * data_type.words)) - 1)
    assert encode_raw(raw, data_type, word_order, byte_order) == words


@given(
    value=st.floats(allow_nan=False, width=32),
    word_order=st.sampled_from(list(WordOrder)),
    byte_order=st.sampled_from(list(WordOrder)),
)
def test_float32_round_trip(value: float, word_order: WordOrder, byte_order: WordOrder) -> None:
    words = encode_value(value, DataType.FLOAT32, word_order, byte_order)
    assert decode_words(words, DataType.FLOAT32, word_order, byte_order) == value
    assert struct.unpack(">f", struct.pack(">f", value))[0] == value


def test_profile_json_files_are_tidy() -> None:
    """Profiles are data: every file parses as JSON and lists its registers in a list."""
    for path in PROFILE_DIR.glob("*.json"):
        data = json.loads(path.read_text(encoding="utf-8"))
        assert data["schema"] == 1
        assert isinstance(data["registers"], list)


# --------------------------------------------------------------------------- models and errors


def test_reading_accessors() -> None:
    reading = Reading.from_values(
        {Quantity.POWER_W: 1.5, Quantity.POWER_W_L2: -2.0, Quantity.SOC_PERCENT: None}, profile_id="x"
    )
    assert reading.get("power_w") == 1.5
    assert reading[Quantity.POWER_W_L2] == -2.0
    assert "power_w" in reading
    assert "soc_percent" not in reading
    assert "no_such_quantity" not in reading
    with pytest.raises(KeyError):
        reading["soc_percent"]
    assert list(reading) == [Quantity.POWER_W, Quantity.POWER_W_L2]
    assert reading.as_dict() == {Quantity.POWER_W: 1.5, Quantity.POWER_W_L2: -2.0}
    assert reading.phase_powers == (None, -2.0, None)
    assert reading.phase_currents == (None, None, None)
    assert reading.phase_voltages == (None, None, None)
    changed = reading.replace(power_w=3.0)
    assert (changed.power_w, reading.power_w) == (3.0, 1.5)
    assert reading.measured_at.tzinfo is not None


def test_response_error_names_the_exception() -> None:
    assert ModbusResponseError("x", exception_code=2).exception_name == "illegal data address"
    assert ModbusResponseError("x", exception_code=99).exception_name == "exception 99"
    assert ModbusResponseError("x").exception_name is None
