"""ModbusDevice against real pymodbus servers (ProfileSimulator) on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
import contextlib
import time
from typing import Any

import pytest

from custom_components.cariflex.modbus import (
    TCP,
    ModbusConnectionError,
    ModbusDevice,
    ModbusResponseError,
    Profile,
    Quantity,
    RegisterType,
    Serial,
    available_profiles,
    generic_profile,
    load_profile,
    profile_from_dict,
)
from custom_components.cariflex.modbus.client import UNIT_KEYWORD, ReadBlock
from custom_components.cariflex.modbus.simulator import ProfileSimulator, ServedRequest

from .conftest import SimulatorFactory

Q = Quantity
HOLD, INP = RegisterType.HOLDING, RegisterType.INPUT
DeviceFactory = Callable[..., ModbusDevice]

# Values on every profile's resolution grid (0.1 V, 0.01 A, 10 Wh...), so they read back exactly.
SAMPLE: dict[Quantity, float] = {
    Q.POWER_W: 1500.0,
    Q.POWER_W_L1: 400.0,
    Q.POWER_W_L2: 500.0,
    Q.POWER_W_L3: 600.0,
    Q.CURRENT_A_L1: 6.5,
    Q.CURRENT_A_L2: 7.25,
    Q.CURRENT_A_L3: 8.0,
    Q.VOLTAGE_V_L1: 230.1,
    Q.VOLTAGE_V_L2: 231.2,
    Q.VOLTAGE_V_L3: 229.9,
    Q.ENERGY_IMPORT_WH: 1_234_560.0,
    Q.ENERGY_EXPORT_WH: 78_910.0,
    Q.FREQUENCY_HZ: 50.02,
    Q.SOC_PERCENT: 55.0,
    Q.PV_POWER_W: 3200.0,
    Q.BATTERY_POWER_W: -1200.0,
}
# A second set, with the signs reversed where they can be (export, discharge).
SAMPLE_2: dict[Quantity, float] = {
    **SAMPLE,
    Q.POWER_W: -2500.0,
    Q.POWER_W_L1: -800.0,
    Q.POWER_W_L2: -900.0,
    Q.POWER_W_L3: -800.0,
    Q.VOLTAGE_V_L1: 241.3,
    Q.FREQUENCY_HZ: 49.98,
    Q.SOC_PERCENT: 12.0,
    Q.PV_POWER_W: 0.0,
    Q.BATTERY_POWER_W: 900.0,
    Q.ENERGY_EXPORT_WH: 80_000.0,
}


def _expected(profile: Profile, values: dict[Quantity, float]) -> dict[Quantity, float]:
    expected = {q: v for q, v in values.items() if q in profile.quantities}
    if Q.POWER_W not in profile.quantities and all(
        q in profile.quantities for q in (Q.POWER_W_L1, Q.POWER_W_L2, Q.POWER_W_L3)
    ):
        expected[Q.POWER_W] = values[Q.POWER_W_L1] + values[Q.POWER_W_L2] + values[Q.POWER_W_L3]
    return expected


@pytest.mark.parametrize("profile_id", available_profiles())
async def test_every_profile_round_trips(profile_id: str, simulators: SimulatorFactory, devices: DeviceFactory) -> None:
    profile = load_profile(profile_id)
    sim = await simulators(profile, {q: v for q, v in SAMPLE.items() if q in profile.quantities})
    device = devices(profile, TCP("127.0.0.1", sim.port), timeout=2)
    reading = await device.read()
    assert reading.profile_id == profile_id
    assert reading.as_dict() == pytest.approx(_expected(profile, SAMPLE), rel=1e-6, abs=1e-6)
    assert reading.unavailable == frozenset()

    # Values change at run time; the next read sees them.
    sim.set_many({q: v for q, v in SAMPLE_2.items() if q in profile.quantities})
    reading = await device.read()
    assert reading.as_dict() == pytest.approx(_expected(profile, SAMPLE_2), rel=1e-6, abs=1e-6)
    assert reading.requests == len(device.blocks)
    assert [ServedRequest(b.register_type, b.address, b.count) for b in device.blocks] == sim.requests[
        -len(device.blocks) :
    ]


async def test_sdm630_reads_in_three_requests(simulators: SimulatorFactory, devices: DeviceFactory) -> None:
    profile = load_profile("eastron_sdm630")
    sim = await simulators(profile, {Q.POWER_W: 42.0})
    device = devices(profile, TCP("127.0.0.1", sim.port))
    assert device.blocks == (ReadBlock(INP, 0, 18), ReadBlock(INP, 52, 2), ReadBlock(INP, 70, 6))
    reading = await device.read()
    assert reading.power_w == 42.0
    assert reading.requests == 3
    assert sim.requests == [ServedRequest(INP, 0, 18), ServedRequest(INP, 52, 2), ServedRequest(INP, 70, 6)]
    # Never set: the float registers hold NaN, reported as unavailable rather than 0.
    assert Q.VOLTAGE_V_L1 in reading.unavailable
    assert reading.voltage_v_l1 is None


async def test_readable_ranges_batch_across_gaps(simulators: SimulatorFactory, devices: DeviceFactory) -> None:
    huawei = load_profile("huawei_sun2000")
    sim = await simulators(huawei, {Q.POWER_W: 100.0, Q.FREQUENCY_HZ: 50.0})
    device = devices(huawei, TCP("127.0.0.1", sim.port))
    await device.read()
    # The whole meter block (37101-37137, with gaps at 37115-37117 and 37123-37131) is one request.
    assert ServedRequest(HOLD, 37101, 37) in sim.requests
    assert len(sim.requests) == 4

    entries = [
        {"quantity": "power_w", "address": 0, "data_type": "int16"},
        {"quantity": "frequency_hz", "address": 10, "data_type": "uint16", "gain": 100},
    ]
    strict = generic_profile(entries, defaults={"register_type": "holding"})
    assert len(ModbusDevice(strict, TCP("127.0.0.1")).blocks) == 2
    bridged = generic_profile(
        entries, defaults={"register_type": "holding"}, readable=[{"register_type": "holding", "start": 0, "end": 20}]
    )
    sim = await simulators(bridged, {Q.POWER_W: -5.0, Q.FREQUENCY_HZ: 50.01})
    device = devices(bridged, TCP("127.0.0.1", sim.port))
    reading = await device.read()
    assert (reading.power_w, reading.frequency_hz, reading.requests) == (-5.0, 50.01, 1)
    assert sim.requests == [ServedRequest(HOLD, 0, 11)]
    limited = generic_profile(
        entries,
        defaults={"register_type": "holding"},
        readable=[{"register_type": "holding", "start": 0, "end": 20}],
        max_registers_per_request=8,
    )
    assert len(ModbusDevice(limited, TCP("127.0.0.1")).blocks) == 2


# --------------------------------------------------------------------------- SunSpec


async def test_sunspec_discovery_and_identity(simulators: SimulatorFactory, devices: DeviceFactory) -> None:
    profile = load_profile("sunspec")
    sim = await simulators(
        profile, {Q.PV_POWER_W: 4321.0, Q.POWER_W: -1000.0}, identity={"manufacturer": "Fronius", "serial": "12345678"}
    )
    device = devices(profile, TCP("127.0.0.1", sim.port))
    assert device.blocks == ()
    chain = await device.discover()
    assert [(m.model_id, m.address, m.length) for m in chain] == [
        (1, 40002, 66),
        (103, 40070, 50),
        (124, 40122, 24),
        (203, 40148, 105),
        (802, 40255, 62),
    ]
    assert chain == sim.sunspec_layout
    assert device.sunspec_base == 40000
    assert device.identity == {
        "manufacturer": "Fronius",
        "model": "Simulator",
        "options": "",
        "version": "1.0",
        "serial": "12345678",
    }
    # marker + 6 headers (5 models and the end) + identity
    assert device.requests == 8
    reading = await device.read()
    assert (reading.pv_power_w, reading.power_w) == (4321.0, -1000.0)
    # The chain is readable end to end, so the points need only two requests (125 registers max).
    assert reading.requests == len(device.blocks) == 2
    # Never set: SunSpec "not implemented" values.
    assert {Q.SOC_PERCENT, Q.VOLTAGE_V_L1, Q.BATTERY_POWER_W} <= reading.unavailable


async def test_sunspec_first_read_discovers(simulators: SimulatorFactory, devices: DeviceFactory) -> None:
    profile = load_profile("sunspec")
    sim = await simulators(
        profile, {Q.SOC_PERCENT: 80.0}, sunspec_base=50000, sunspec_models=[1, 101, 124], end_marker=False
    )
    device = devices(profile, TCP("127.0.0.1", sim.port))
    reading = await device.read()
    assert reading.soc_percent == 80.0, "from model 124: the device has no 802"
    assert device.sunspec_base == 50000, "40000 and 0 answer illegal address"
    assert [m.model_id for m in device.sunspec_models] == [1, 101, 124]
    # Discovery (3 base addresses, 4 headers - the last one refused -, identity) + 1 read
    assert reading.requests == 3 + 4 + 1 + 1
    assert reading.voltage_v_l2 is None, "never set: served as SunSpec 'not implemented'"
    assert Q.POWER_W not in reading.unavailable, "no meter model: not mapped at all"
    assert (await device.read()).requests == 1


async def test_sunspec_scale_factors_follow_the_value(simulators: SimulatorFactory, devices: DeviceFactory) -> None:
    profile = load_profile("sunspec")
    sim = await simulators(profile, {Q.PV_POWER_W: 12.34, Q.FREQUENCY_HZ: 50.0}, sunspec_models=[1, 103])
    device = devices(profile, TCP("127.0.0.1", sim.port))
    await device.discover()
    w, w_sf = 40072 + 12, 40072 + 13
    reading = await device.read()
    assert reading.pv_power_w == 12.34
    assert (sim.registers(HOLD)[w], sim.registers(HOLD)[w_sf]) == (1234, 0xFFFE)  # 1234 x 10^-2
    sim.set(Q.PV_POWER_W, 250_000)  # does not fit an int16 unless scaled up
    reading = await device.read()
    assert reading.pv_power_w == 250_000
    assert (sim.registers(HOLD)[w], sim.registers(HOLD)[w_sf]) == (25000, 1)
    sim.set(Q.PV_POWER_W, -3.5)
    assert (await device.read()).pv_power_w == -3.5
    # A scale factor reported as not implemented makes its values unavailable.
    sim.set_register(HOLD, w_sf, 0x8000)
    reading = await device.read()
    assert reading.pv_power_w is None
    assert Q.PV_POWER_W in reading.unavailable
    sim.set_register(HOLD, w_sf, None)
    assert (await device.read()).pv_power_w == -3.5


async def test_sunspec_without_marker(simulators: SimulatorFactory, devices: DeviceFactory) -> None:
    meter = load_profile("generic")
    sim = await simulators(meter, {Q.POWER_W: 1.0})
    device = devices(load_profile("sunspec"), TCP("127.0.0.1", sim.port), unit_id=1)
    with pytest.raises(ModbusResponseError, match=r"no SunSpec map on unit 1: no 'SunS' marker at 40000, 0, 50000"):
        await device.read()
    # A holding register 0 that is not "SunS" is not taken for the marker either.
    assert sim.registers(HOLD)[0] != 0x5375
    with pytest.raises(ValueError, match="not a SunSpec profile"):
        await devices(meter, TCP("127.0.0.1", sim.port)).discover()


async def test_sunspec_rediscovers_after_a_failure(simulators: SimulatorFactory, devices: DeviceFactory) -> None:
    profile = load_profile("sunspec")
    sim = await simulators(profile, {Q.PV_POWER_W: 100.0}, sunspec_models=[1, 103])
    device = devices(profile, TCP("127.0.0.1", sim.port), timeout=0.5)
    await device.read()
    # The device is replaced by one with another chain on the same port.
    await sim.stop()
    replacement = await simulators(
        profile, {Q.PV_POWER_W: 200.0, Q.POWER_W: 5.0}, sunspec_models=[1, 203, 103], port=sim.port
    )
    reading = await device.read()
    assert [m.model_id for m in device.sunspec_models] == [1, 203, 103]
    assert (reading.pv_power_w, reading.power_w) == (200.0, 5.0)
    assert replacement.port == sim.port


async def test_sunspec_chain_edge_cases(simulators: SimulatorFactory, devices: DeviceFactory) -> None:
    profile = load_profile("sunspec")
    # "SunS" and nothing after it: the first header is refused, which is an error.
    empty = await simulators(profile, {}, sunspec_models=[], end_marker=False)
    with pytest.raises(ModbusResponseError, match=r"refused holding registers 40002\.\.40003"):
        await devices(profile, TCP("127.0.0.1", empty.port)).read()
    # No common model: no identity, the values are still read.
    no_common = await simulators(profile, {Q.PV_POWER_W: 7.0}, sunspec_models=[103])
    device = devices(profile, TCP("127.0.0.1", no_common.port))
    assert (await device.read()).pv_power_w == 7.0
    assert device.identity == {}
    # A SunSpec profile without an identity section.
    bare = profile_from_dict(
        {
            "id": "pv_only",
            "name": "PV only",
            "sunspec": {"models": {"103": {"name": "inverter", "length": 50}}},
            "registers": [
                {"quantity": "pv_power_w", "models": 103, "offset": 12, "data_type": "int16", "sf_offset": 13}
            ],
        }
    )
    sim = await simulators(bare, {Q.PV_POWER_W: 9.5})
    device = devices(bare, TCP("127.0.0.1", sim.port))
    assert (await device.read()).pv_power_w == 9.5
    assert device.identity == {}
    assert [m.model_id for m in device.sunspec_models] == [103]


# --------------------------------------------------------------------------- word order, signs, units


async def test_word_and_byte_order(simulators: SimulatorFactory, devices: DeviceFactory) -> None:
    profile = generic_profile(
        [
            {"quantity": "power_w", "address": 0, "data_type": "int32", "word_order": "little"},
            {"quantity": "power_w_l1", "address": 2, "data_type": "int32", "word_order": "big"},
            {
                "quantity": "voltage_v_l1",
                "address": 4,
                "data_type": "float32",
                "word_order": "little",
                "byte_order": "little",
            },
            {
                "quantity": "energy_import_wh",
                "address": 6,
                "data_type": "uint64",
                "word_order": "little",
                "unit": "kWh",
                "scale": 0.001,
            },
        ],
        defaults={"register_type": "input"},
    )
    sim = await simulators(
        profile, {Q.POWER_W: -70000.0, Q.POWER_W_L1: -70000.0, Q.VOLTAGE_V_L1: 200.0, Q.ENERGY_IMPORT_WH: 2**40}
    )
    words = sim.registers(INP)
    assert [words[0], words[1]] == [0xEE90, 0xFFFE]  # -70000 = 0xFFFEEE90, low word first
    assert [words[2], words[3]] == [0xFFFE, 0xEE90]
    assert [words[4], words[5]] == [0x0000, 0x4843]  # 200.0 = 0x43480000, words and bytes swapped
    assert [words[6], words[7], words[8], words[9]] == [0, 0, 0x0100, 0]
    reading = await devices(profile, TCP("127.0.0.1", sim.port)).read()
    assert (reading.power_w, reading.power_w_l1, reading.voltage_v_l1) == (-70000, -70000, 200.0)
    assert reading.energy_import_wh == 2**40


async def test_vendor_signs_are_flipped_on_the_wire(simulators: SimulatorFactory, devices: DeviceFactory) -> None:
    huawei = load_profile("huawei_sun2000")
    sim = await simulators(huawei, {Q.POWER_W: 1500.0, Q.BATTERY_POWER_W: 800.0})
    words = sim.registers(HOLD)
    assert [words[37113], words[37114]] == [0xFFFF, 0xFA24], "Huawei: import is negative (-1500)"
    assert [words[37765], words[37766]] == [0xFFFF, 0xFCE0], "Huawei: discharge is negative (-800)"
    reading = await devices(huawei, TCP("127.0.0.1", sim.port)).read()
    assert (reading.power_w, reading.battery_power_w) == (1500.0, 800.0)

    victron = load_profile("victron_gx")
    sim = await simulators(
        victron,
        {Q.BATTERY_POWER_W: -300.0, Q.PV_POWER_W: 1000.0, Q.POWER_W_L1: -10.0, Q.POWER_W_L2: 0.0, Q.POWER_W_L3: 20.0},
    )
    assert sim.registers(HOLD)[842] == 300, "Victron: charging is positive"
    assert sim.registers(HOLD)[808] == 1000, "the sum is carried by one register"
    assert sim.registers(HOLD)[850] == 0
    reading = await devices(victron, TCP("127.0.0.1", sim.port)).read()
    assert (reading.battery_power_w, reading.pv_power_w, reading.power_w) == (-300.0, 1000.0, 10.0)
    assert reading.derived == frozenset({Q.POWER_W})
    sim.set_register(HOLD, 850, 250)  # DC-coupled PV adds to the AC-coupled PV
    assert (await devices(victron, TCP("127.0.0.1", sim.port)).read()).pv_power_w == 1250.0


async def test_sma_not_a_number_is_unavailable(simulators: SimulatorFactory, devices: DeviceFactory) -> None:
    sma = load_profile("sma_native")
    sim = await simulators(sma, {Q.PV_POWER_W: 5000.0, Q.POWER_W: -1200.0, Q.BATTERY_POWER_W: 300.0})
    device = devices(sma, TCP("127.0.0.1", sim.port))
    reading = await device.read()
    assert (reading.pv_power_w, reading.power_w, reading.battery_power_w) == (5000.0, -1200.0, 300.0)
    assert sim.registers(INP)[30866] == 1200, "fed in: TotWOut carries it"
    assert sim.registers(INP)[30868] == 0
    assert reading.voltage_v_l1 is None
    assert {Q.VOLTAGE_V_L1, Q.FREQUENCY_HZ, Q.SOC_PERCENT, Q.ENERGY_IMPORT_WH} <= reading.unavailable
    assert [sim.registers(INP)[30775], sim.registers(INP)[30776]] == [0x0000, 0x1388]
    sim.set(Q.PV_POWER_W, None)
    assert [sim.registers(INP)[30775], sim.registers(INP)[30776]] == [0x8000, 0x0000], "S32 NaN"
    assert (await device.read()).pv_power_w is None


# --------------------------------------------------------------------------- failures


async def test_server_stop_then_recovery(simulators: SimulatorFactory, devices: DeviceFactory) -> None:
    profile = load_profile("eastron_sdm120")
    sim = await simulators(profile, {Q.POWER_W: 10.0})
    device = devices(profile, TCP("127.0.0.1", sim.port), timeout=0.5)
    assert (await device.read()).power_w == 10.0
    assert device.connected
    await sim.stop()
    assert not sim.running
    with pytest.raises(ModbusConnectionError, match=rf"127\.0\.0\.1:{sim.port}"):
        await device.read()
    assert not device.connected
    with pytest.raises(ModbusConnectionError, match="cannot connect"):
        await device.connect()
    sim.set(Q.POWER_W, 20.0)
    await sim.start()  # same port
    assert (await device.read()).power_w == 20.0
    assert device.reconnects == 1
    assert device.connected


@pytest.fixture
async def silent_server() -> AsyncIterator[tuple[int, list[int]]]:
    """A TCP server that accepts connections and never answers; yields (port, connections)."""
    connections: list[int] = []
    handlers: set[asyncio.Task[Any]] = set()

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        connections.append(1)
        with contextlib.suppress(ConnectionError):
            while await reader.read(256):
                pass
        writer.close()

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    yield int(server.sockets[0].getsockname()[1]), connections
    server.close()
    for task in handlers:
        task.cancel()
    await asyncio.gather(*handlers, return_exceptions=True)
    await server.wait_closed()


async def test_timeout_retries_once_on_a_new_connection(
    silent_server: tuple[int, list[int]], devices: DeviceFactory
) -> None:
    port, connections = silent_server
    device = devices(load_profile("eastron_sdm120"), TCP("127.0.0.1", port), timeout=0.2)
    started = time.monotonic()
    with pytest.raises(
        ModbusConnectionError, match=r"no answer from 127\.0\.0\.1:\d+ unit 1 \(input 0\+2\) after 2 attempt"
    ):
        await device.read()
    assert time.monotonic() - started < 2.5
    assert len(connections) == 2, "the retry reconnects"
    assert device.requests == 2
    device_no_retry = devices(load_profile("eastron_sdm120"), TCP("127.0.0.1", port), timeout=0.2, retries=0)
    with pytest.raises(ModbusConnectionError, match="after 1 attempt"):
        await device_no_retry.read_registers("input", 0, 2)


async def test_wrong_unit_id_is_a_response_error(simulators: SimulatorFactory, devices: DeviceFactory) -> None:
    profile = load_profile("eastron_sdm630")
    sim = await simulators(profile, {Q.POWER_W: 1.0}, unit_id=1)
    device = devices(profile, TCP("127.0.0.1", sim.port), unit_id=7, timeout=1)
    with pytest.raises(ModbusResponseError, match="of unit 7") as info:
        await device.read()
    assert info.value.unit_id == 7
    # pymodbus < 3.13: illegal address; 3.13+: gateway target failed to respond
    assert info.value.exception_code in {2, 11}
    assert device.requests == 1, "an exception answer is not retried"
    assert (await devices(profile, TCP("127.0.0.1", sim.port), unit_id=1).read()).power_w == 1.0


async def test_illegal_address_is_a_response_error(simulators: SimulatorFactory, devices: DeviceFactory) -> None:
    profile = load_profile("eastron_sdm630")
    sim = await simulators(profile, {Q.FREQUENCY_HZ: 50.0})
    device = devices(profile, TCP("127.0.0.1", sim.port))
    with pytest.raises(
        ModbusResponseError, match=r"refused input registers 20\.\.21 of unit 1: illegal data address"
    ) as info:
        await device.read_registers("input", 20, 2)
    assert (info.value.exception_code, info.value.address, info.value.count) == (2, 20, 2)
    with pytest.raises(ModbusResponseError, match="illegal data address"):
        await device.read_registers(RegisterType.HOLDING, 0, 2)  # the meter only has input registers
    # The connection stays usable.
    served = sim.registers(INP)
    assert await device.read_registers("input", 70, 2) == [served[70], served[71]]
    assert (await device.read()).frequency_hz == 50.0
    # A profile that does not match the device fails the same way.
    wrong = generic_profile([{"quantity": "power_w", "address": 500, "register_type": "input", "data_type": "float32"}])
    with pytest.raises(ModbusResponseError, match="illegal data address"):
        await devices(wrong, TCP("127.0.0.1", sim.port)).read()
    with pytest.raises(ValueError, match="cannot read 0 registers"):
        await device.read_registers("input", 0, 0)
    with pytest.raises(ValueError, match="cannot read 2 registers at 65535"):
        await device.read_registers("input", 65535, 2)


# --------------------------------------------------------------------------- transports


async def test_rtu_framing_over_tcp(simulators: SimulatorFactory, devices: DeviceFactory) -> None:
    profile = load_profile("eastron_sdm630")
    sim = await simulators(profile, {Q.POWER_W_L2: 123.5}, rtu_framing=True, unit_id=5)
    device = devices(profile, TCP("127.0.0.1", sim.port, rtu_framing=True), unit_id=5)
    assert "RTU over TCP" in device.transport.describe()
    assert (await device.read()).power_w_l2 == 123.5


async def test_serial_rtu_through_a_pyserial_url(simulators: SimulatorFactory, devices: DeviceFactory) -> None:
    pytest.importorskip("serial")
    profile = load_profile("eastron_sdm120")
    sim = await simulators(profile, {Q.VOLTAGE_V_L1: 229.5}, rtu_framing=True)
    transport = Serial(f"socket://127.0.0.1:{sim.port}", baudrate=19200, parity="E")
    assert transport.describe().endswith("19200/8E1")
    device = devices(profile, transport, timeout=1)
    assert (await device.read()).voltage_v_l1 == 229.5
    missing = devices(profile, Serial("/dev/cariflex-no-such-tty"), timeout=0.3, retries=0)
    with pytest.raises(ModbusConnectionError, match="cannot connect to /dev/cariflex-no-such-tty 9600/8N1"):
        await missing.read()


def test_parameters_are_checked() -> None:
    profile = load_profile("eastron_sdm120")
    with pytest.raises(ValueError, match="host is required"):
        TCP("")
    with pytest.raises(ValueError, match="port 0 is out of range"):
        TCP("h", 0)
    with pytest.raises(ValueError, match="port is required"):
        Serial("")
    with pytest.raises(ValueError, match="baudrate 0"):
        Serial("p", baudrate=0)
    with pytest.raises(ValueError, match="parity 'X'"):
        Serial("p", parity="X")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="stopbits 3"):
        Serial("p", stopbits=3)
    with pytest.raises(ValueError, match="bytesize 9"):
        Serial("p", bytesize=9)
    with pytest.raises(ValueError, match="timeout"):
        ModbusDevice(profile, TCP("h"), timeout=0)
    with pytest.raises(ValueError, match="retries"):
        ModbusDevice(profile, TCP("h"), retries=-1)
    with pytest.raises(ValueError, match="unit id 256"):
        ModbusDevice(profile, TCP("h"), unit_id=256)
    device = ModbusDevice(profile, TCP("meter.local"))
    assert repr(device) == "<ModbusDevice eastron_sdm120 meter.local:502 unit 1>"
    assert UNIT_KEYWORD in {"slave", "device_id"}


# --------------------------------------------------------------------------- simulator


async def test_simulator_refuses_values_it_cannot_serve() -> None:
    victron = load_profile("victron_gx")
    sim = ProfileSimulator(victron, {Q.POWER_W_L1: 100.0})
    with pytest.raises(ValueError, match="has no current_a_l1"):
        sim.set(Q.CURRENT_A_L1, 1.0)
    with pytest.raises(ValueError, match=r"power_w_l2=40000\.0 does not fit int16 at holding 821"):
        sim.set_many({Q.POWER_W_L1: 5.0, Q.POWER_W_L2: 40000.0})
    assert sim.values == {Q.POWER_W_L1: 100.0}, "all or nothing"
    with pytest.raises(ValueError, match="not a finite number"):
        sim.set(Q.POWER_W_L1, float("nan"))
    with pytest.raises(ValueError, match="no scale factor fits"):
        ProfileSimulator(load_profile("sunspec"), {Q.PV_POWER_W: 1e20})
    with pytest.raises(ValueError, match="model 160 is not in profile sunspec"):
        ProfileSimulator(load_profile("sunspec"), sunspec_models=[1, 160])
    assert sim.get(Q.POWER_W_L1) == 100.0
    assert not sim.running
    await sim.stop()  # stopping a stopped simulator is harmless


async def test_simulator_context_manager_and_request_log(devices: DeviceFactory) -> None:
    profile = load_profile("eastron_sdm120")
    async with ProfileSimulator(profile, {Q.POWER_W: 5.0}) as sim:
        assert sim.running
        await sim.start()  # already running: no-op
        device = devices(profile, TCP("127.0.0.1", sim.port))
        await device.read()
        assert len(sim.requests) == 4
        sim.clear_requests()
        assert sim.requests == []
    assert not sim.running
    async with device:
        pass
    assert not device.connected
