"""Request planning and decoding, without a network: batching, SunSpec placement, scaling."""

from __future__ import annotations

import itertools

from hypothesis import given, strategies as st
import pytest

from custom_components.cariflex.modbus import Quantity, RegisterType, load_profile, plan_blocks
from custom_components.cariflex.modbus.client import (
    Point,
    ReadBlock,
    SunSpecModelInstance,
    decode_reading,
    fixed_points,
    point_value,
    sunspec_points,
    sunspec_readable,
)
from custom_components.cariflex.modbus.profiles import ReadableRange, encode_value, generic_profile

HOLD, INP = RegisterType.HOLDING, RegisterType.INPUT


def test_contiguous_and_overlapping_registers_share_a_request() -> None:
    spans = [(INP, 0, 2), (INP, 2, 2), (INP, 4, 2), (INP, 3, 2), (INP, 10, 2), (HOLD, 0, 1)]
    assert plan_blocks(spans) == [ReadBlock(HOLD, 0, 1), ReadBlock(INP, 0, 6), ReadBlock(INP, 10, 2)]


def test_gaps_are_bridged_only_inside_readable_ranges() -> None:
    spans = [(HOLD, 100, 2), (HOLD, 110, 2), (HOLD, 200, 2)]
    assert len(plan_blocks(spans)) == 3
    readable = [ReadableRange(HOLD, 100, 150)]
    assert plan_blocks(spans, readable=readable) == [ReadBlock(HOLD, 100, 12), ReadBlock(HOLD, 200, 2)]
    # A range of the other table does not help.
    assert len(plan_blocks(spans, readable=[ReadableRange(INP, 0, 1000)])) == 3


def test_requests_stay_within_the_limit() -> None:
    spans = [(HOLD, a, 2) for a in range(0, 300, 2)]
    blocks = plan_blocks(spans, max_count=125)
    assert [b.count for b in blocks] == [124, 124, 52]
    assert blocks[1].address == 124
    assert blocks[-1].stop == 300
    with pytest.raises(ValueError, match="a 4-register value cannot be read with at most 2"):
        plan_blocks([(HOLD, 0, 4)], max_count=2)


@given(
    starts=st.lists(st.integers(0, 400), min_size=1, max_size=40),
    sizes=st.lists(st.sampled_from([1, 2, 4]), min_size=40, max_size=40),
    max_count=st.integers(4, 125),
    readable_start=st.integers(0, 400),
    readable_len=st.integers(0, 200),
)
def test_plan_properties(
    starts: list[int], sizes: list[int], max_count: int, readable_start: int, readable_len: int
) -> None:
    spans = [(HOLD, start, size) for start, size in zip(starts, sizes, strict=False)]
    readable = [ReadableRange(HOLD, readable_start, readable_start + readable_len)]
    blocks = plan_blocks(spans, max_count=max_count, readable=readable)
    wanted = {a for _t, start, size in spans for a in range(start, start + size)}
    covered = [a for b in blocks for a in range(b.address, b.stop)]
    assert wanted <= set(covered), "every register is read"
    # (A register is read twice only when overlapping values cannot share one request.)
    assert all(1 <= b.count <= max_count for b in blocks)
    for block in blocks:
        # A block only reads registers the profile wants, or gaps inside the readable range.
        extra = set(range(block.address, block.stop)) - wanted
        assert all(readable[0].start <= a <= readable[0].end for a in extra)
        assert block.address in wanted
        assert block.stop - 1 in wanted
    for first, second in itertools.pairwise(blocks):
        # Greedy is optimal: the next block could not have been joined to this one.
        gap_ok = second.address <= first.stop or readable[0].covers(HOLD, first.stop, second.address)
        assert not gap_ok or second.stop - first.address > max_count


def test_fixed_points_and_decoding() -> None:
    profile = generic_profile(
        [
            {
                "quantity": "power_w_l1",
                "address": 0,
                "register_type": "holding",
                "data_type": "int16",
                "combine": "sum",
            },
            {
                "quantity": "power_w_l1",
                "address": 1,
                "register_type": "holding",
                "data_type": "int16",
                "combine": "sum",
            },
            {"quantity": "power_w_l2", "address": 2, "register_type": "holding", "data_type": "int16"},
            {
                "quantity": "power_w_l3",
                "address": 3,
                "register_type": "holding",
                "data_type": "int16",
                "invalid": ["0x8000"],
            },
            {"quantity": "voltage_v_l1", "address": 4, "register_type": "holding", "data_type": "float32"},
            {
                "quantity": "energy_import_wh",
                "address": 6,
                "register_type": "holding",
                "data_type": "int16",
                "sf_address": 7,
            },
        ]
    )
    points = fixed_points(profile)
    registers = {(HOLD, a): 0 for a in range(8)}
    registers[(HOLD, 0)], registers[(HOLD, 1)], registers[(HOLD, 2)] = 100, 0xFFFF, 50  # 100 + (-1), 50
    registers[(HOLD, 3)] = 7
    registers[(HOLD, 4)], registers[(HOLD, 5)] = encode_value(float("nan"), profile.registers[4].data_type)
    registers[(HOLD, 6)], registers[(HOLD, 7)] = 1234, encode_value(-2, profile.registers[0].data_type)[0]
    reading = decode_reading(profile, points, registers, requests=1)
    assert reading.power_w_l1 == 99
    assert reading.power_w == 99 + 50 + 7
    assert reading.derived == frozenset({Quantity.POWER_W})
    assert reading.energy_import_wh == 12.34
    assert reading.voltage_v_l1 is None
    assert reading.unavailable == frozenset({Quantity.VOLTAGE_V_L1})
    # The "not available" sentinel hides the phase, so the total cannot be derived.
    registers[(HOLD, 3)] = 0x8000
    reading = decode_reading(profile, points, registers)
    assert (reading.power_w_l3, reading.power_w) == (None, None)
    assert reading.unavailable == frozenset({Quantity.VOLTAGE_V_L1, Quantity.POWER_W_L3})
    # A scale factor out of the SunSpec range (-10..10) is garbage: no value.
    registers[(HOLD, 7)] = 42
    assert decode_reading(profile, points, registers).energy_import_wh is None


def test_sunspec_points_follow_the_chain() -> None:
    profile = load_profile("sunspec")
    chain = [
        SunSpecModelInstance(1, 40002, 66),
        SunSpecModelInstance(101, 40070, 50),
        SunSpecModelInstance(203, 40122, 105),
    ]
    points = {p.spec.quantity: p for p in sunspec_points(profile, chain)}
    # The meter wins for voltage and frequency; PV comes from the single-phase inverter.
    assert points[Quantity.VOLTAGE_V_L1].address == 40124 + 6
    assert points[Quantity.VOLTAGE_V_L1].sf_address == 40124 + 13
    assert points[Quantity.FREQUENCY_HZ].address == 40124 + 14
    assert points[Quantity.PV_POWER_W].address == 40072 + 12
    assert points[Quantity.PV_POWER_W].sf_address == 40072 + 13
    assert Quantity.SOC_PERCENT not in points
    assert len(sunspec_points(profile, chain, alternatives=True)) == len(points) + 4  # inverter V x3, Hz
    # Without a meter the inverter's voltage is used.
    inverter_only = [SunSpecModelInstance(1, 40002, 66), SunSpecModelInstance(103, 40070, 50)]
    points = {p.spec.quantity: p for p in sunspec_points(profile, inverter_only)}
    assert points[Quantity.VOLTAGE_V_L2].address == 40072 + 9
    assert Quantity.POWER_W not in points
    # A model shorter than the profile expects drops the entries that do not fit.
    short = [SunSpecModelInstance(802, 40002, 40)]
    assert {p.spec.quantity for p in sunspec_points(profile, short)} == set()
    assert sunspec_readable(HOLD, 40000, chain) == [ReadableRange(HOLD, 40000, 40124 + 104)]
    assert sunspec_readable(HOLD, 40000, []) == []


def test_point_value_scaling() -> None:
    profile = load_profile("sunspec")
    (pv,) = profile.entries(Quantity.PV_POWER_W)
    point = Point(pv, 10, 11)
    assert point.spans() == [(HOLD, 10, 1), (HOLD, 11, 1)]
    assert point_value(point, {(HOLD, 10): 2301, (HOLD, 11): 0xFFFE}) == 23.01  # exact, not 23.010000000000002
    assert point_value(point, {(HOLD, 10): 2301, (HOLD, 11): 2}) == 230100
    assert point_value(point, {(HOLD, 10): 0x8000, (HOLD, 11): 0}) is None  # unimplemented int16
    assert point_value(point, {(HOLD, 10): 5, (HOLD, 11): 0x8000}) is None  # unimplemented scale factor
