"""Every folder of shared/reference/ocpi-tariff-vectors priced by the engine.

A folder holds ``tariff.json`` and zero or more CDRs with known totals (TandemDrive's test vectors); each CDR
is re-priced from its charging periods. The sessions that the OCPI text describes for these tariffs are in
``fixtures/tariffs/spec_scenarios.json`` and are priced from a meter curve. Every folder must have at least
one priced case.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
import json
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from cloud_connector.tariffs import (
    CdrCosts,
    MeterSample,
    SessionInput,
    Tariff,
    price_cdr,
    price_expired_reservation,
    price_session,
)

VECTORS = Path(__file__).parents[2].parent / "shared" / "reference" / "ocpi-tariff-vectors"
SCENARIOS: dict[str, Any] = json.loads(
    (Path(__file__).parent / "fixtures" / "tariffs" / "spec_scenarios.json").read_text(encoding="utf-8")
)
FOLDERS = sorted(path.name for path in VECTORS.iterdir() if path.is_dir()) if VECTORS.is_dir() else []
COST_FIELDS = (
    "total_cost",
    "total_fixed_cost",
    "total_energy_cost",
    "total_time_cost",
    "total_parking_cost",
    "total_reservation_cost",
)
VOLUME_FIELDS = ("total_energy", "total_time", "total_parking_time")
CENT = Decimal("0.01")


def test_vectors_are_there() -> None:
    """The shared vectors sit beside the repository; all of them are covered by a scenario or a CDR."""
    assert len(FOLDERS) >= 20, VECTORS
    assert set(FOLDERS) <= SCENARIOS.keys() | {name for name in FOLDERS if _cdr_files(name)}
    assert set(SCENARIOS) - {"_doc"} <= set(FOLDERS)


def _cdr_files(folder: str) -> list[Path]:
    return sorted(path for path in (VECTORS / folder).glob("*.json") if path.name != "tariff.json")


def _tariff(folder: str) -> Tariff:
    return Tariff.from_ocpi(json.loads((VECTORS / folder / "tariff.json").read_text(encoding="utf-8")))


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _number(value: object) -> Decimal:
    return Decimal(str(value))


def _pair(value: Any) -> tuple[Decimal, Decimal]:
    """An expected price: an OCPI Price object (CDR files) or ``[excl, incl]`` (scenarios)."""
    if isinstance(value, dict):
        return _number(value["excl_vat"]), _number(value["incl_vat"])
    return _number(value[0]), _number(value[1])


def _price_scenario(tariff: Tariff, scenario: dict[str, Any]) -> CdrCosts:
    zone = ZoneInfo(scenario["time_zone"])
    quantum = Decimal(scenario.get("money_quantum", "0.0001"))
    if "expired_reservation" in scenario:
        expired = scenario["expired_reservation"]
        return price_expired_reservation(
            tariff, start=_when(expired["start"]), end=_when(expired["end"]), time_zone=zone, money_quantum=quantum
        )
    raw = scenario["session"]
    session = SessionInput(
        start=_when(raw["start"]),
        end=_when(raw["end"]),
        reservation_start=_when(raw["reservation_start"]) if raw.get("reservation_start") else None,
        samples=[
            MeterSample(
                timestamp=_when(at),
                energy_kwh=Decimal(kwh),
                power_kw=None if kw is None else Decimal(kw),
                current_a=None if amps is None else Decimal(amps),
            )
            for at, kwh, kw, amps in raw["samples"]
        ],
    )
    return price_session(tariff, session, time_zone=zone, money_quantum=quantum)


def _assert_totals(result: CdrCosts, expected: dict[str, Any], *, exact: bool, label: str) -> None:
    """Costs to the cent (and exactly at 4 decimals when ``exact``); absent cost fields must be zero."""
    for name in COST_FIELDS:
        price = getattr(result, name)
        got = (Decimal(0), Decimal(0)) if price is None else (price.excl_vat, price.incl_vat)
        want = _pair(expected.get(name, (0, 0)))
        assert tuple(v.quantize(CENT) for v in got) == tuple(v.quantize(CENT) for v in want), (label, name, got)
        if exact:
            assert got == want, (label, name, got, want)
    for name in VOLUME_FIELDS:
        if name in expected:
            assert getattr(result, name) == _number(expected[name]), (label, name)


@pytest.mark.parametrize("folder", FOLDERS)
def test_vector_folder(folder: str) -> None:
    """Re-price the folder's CDRs and the spec's sessions for its tariff."""
    tariff = _tariff(folder)
    cases = 0
    for path in _cdr_files(folder):
        cdr = json.loads(path.read_text(encoding="utf-8"))
        result = price_cdr(tariff, cdr, time_zone=ZoneInfo("UTC"))
        _assert_totals(result, cdr, exact=True, label=path.name)
        output = result.to_ocpi()
        for name in COST_FIELDS:
            if name in cdr:
                assert output[name] == {
                    "excl_vat": float(cdr[name]["excl_vat"]),
                    "incl_vat": float(cdr[name]["incl_vat"]),
                }
        cases += 1
    for scenario in SCENARIOS.get(folder, []):
        result = _price_scenario(tariff, scenario)
        _assert_totals(result, scenario["expected"], exact=True, label=scenario["source"])
        # The CDR we produce prices the same when read back (to the cent: volumes travel with 4 decimals).
        if "session" in scenario:
            again = price_cdr(tariff, result.to_ocpi(), time_zone=ZoneInfo(scenario["time_zone"]))
            assert again.total_cost.quantize(CENT) == result.total_cost.quantize(CENT), scenario["source"]
        cases += 1
    assert cases, f"{folder}: no CDR and no scenario"
