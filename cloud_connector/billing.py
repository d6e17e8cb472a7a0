"""Charging periods, costs and CDRs of sessions (pricing by :mod:`cloud_connector.tariffs`)."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from decimal import Decimal
from itertools import pairwise
import logging
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .repo.sessions import Session
from .tariffs import CdrCosts, MeterSample, SessionInput, Tariff, TariffError, price_session
from .timeutil import format_dt, parse_dt

_LOGGER = logging.getLogger(__name__)
_SESSION_FIELDS = frozenset({"start_date_time", "end_date_time", "currency"})  # ours, not the engine's
_COST_FIELDS = (
    "total_cost",
    "total_fixed_cost",
    "total_energy_cost",
    "total_time_cost",
    "total_parking_cost",
    "total_reservation_cost",
)


def time_zone(name: str | None) -> tzinfo:
    """The location's zone; UTC when it is missing or unknown."""
    try:
        return ZoneInfo(name) if name else UTC
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def curve(session: Session) -> list[tuple[datetime, float]]:
    """(time, Wh since start) from the start to the end (or the last reading), never decreasing."""
    points: list[tuple[datetime, float]] = [(session.start_at, 0.0)]
    for moment_text, wh in session.meter_curve:
        moment = parse_dt(moment_text)
        if moment <= points[-1][0]:
            continue
        points.append((moment, max(float(wh), points[-1][1])))
    end = session.end_at
    if end is not None:
        points = [p for p in points if p[0] < end] or points[:1]
        points.append((max(end, points[-1][0]), max(session.energy_wh, points[-1][1])))
    return points


def choose_tariff(tariffs: list[dict[str, Any]], start: datetime) -> Tariff | None:
    """The tariff that prices a session started at ``start``: valid then, REGULAR (or untyped) first."""
    usable: list[Tariff] = []
    for body in tariffs:
        try:
            tariff = Tariff.from_ocpi(body)
        except TariffError as err:
            _LOGGER.warning("Tariff %s cannot price sessions: %s", body.get("id"), err)
            continue
        if tariff.is_valid_at(start):
            usable.append(tariff)
    usable.sort(key=lambda t: 0 if t.type is None or t.type.value == "REGULAR" else 1)
    return usable[0] if usable else None


def price(session: Session, zone: tzinfo) -> CdrCosts | None:
    """The costs of the session up to its end (or last reading); None without a usable tariff."""
    tariff = choose_tariff(session.tariffs, session.start_at)
    points = curve(session)
    if tariff is None or len(points) < 2:
        return None
    samples = [MeterSample(timestamp=t, energy_kwh=Decimal(str(wh)) / 1000) for t, wh in points]
    try:
        return price_session(
            tariff, SessionInput(start=points[0][0], end=points[-1][0], samples=samples), time_zone=zone
        )
    except TariffError as err:
        _LOGGER.error("Session %s cannot be priced: %s", session.id, err, extra={"session": session.id})
        return None


def plain_periods(points: list[tuple[datetime, float]]) -> list[dict[str, Any]]:
    """Charging periods without a tariff: charging (ENERGY, TIME) and parking (PARKING_TIME) stretches."""
    periods: list[dict[str, Any]] = []
    kind: str | None = None
    for (t0, e0), (t1, e1) in pairwise(points):
        hours = (t1 - t0).total_seconds() / 3600
        charging = e1 > e0
        if charging != (kind == "charging") or kind is None:
            kind = "charging" if charging else "parking"
            periods.append({"start_date_time": format_dt(t0), "_energy": 0.0, "_hours": 0.0, "_kind": kind})
        periods[-1]["_energy"] += (e1 - e0) / 1000
        periods[-1]["_hours"] += hours
    out = []
    for period in periods:
        if period["_kind"] == "charging":
            dimensions = [
                {"type": "ENERGY", "volume": round(period["_energy"], 4)},
                {"type": "TIME", "volume": round(period["_hours"], 4)},
            ]
        else:
            dimensions = [{"type": "PARKING_TIME", "volume": round(period["_hours"], 4)}]
        out.append({"start_date_time": period["start_date_time"], "dimensions": dimensions})
    return out


def session_costs(session: Session, zone: tzinfo) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Charging periods and total cost up to the end, or the last meter reading of an active session
    (total cost None without a tariff)."""
    costs = price(session, zone)
    if costs is None:
        return plain_periods(curve(session)), None
    return [period.to_ocpi() for period in costs.charging_periods], costs.total_cost.to_ocpi()


def cdr_body(
    session: Session, cdr_id: str, *, zone: tzinfo, country_code: str, party_id: str, now: datetime
) -> dict[str, Any]:
    """The CDR of a finished session: Location, EVSE, tariffs and token as they were at its start."""
    assert session.end_at is not None
    costs = price(session, zone)
    body: dict[str, Any] = {
        "country_code": country_code,
        "party_id": party_id,
        "id": cdr_id,
        "start_date_time": format_dt(session.start_at),
        "end_date_time": format_dt(session.end_at),
        "session_id": session.id,
        "cdr_token": session.cdr_token,
        "auth_method": session.auth_method,
    }
    if session.authorization_reference:
        body["authorization_reference"] = session.authorization_reference
    body["cdr_location"] = session.cdr_location
    body["currency"] = session.currency
    if session.tariffs:
        body["tariffs"] = session.tariffs
    points = curve(session)
    if costs is not None:
        priced = costs.to_ocpi()
        body.update({name: value for name, value in priced.items() if name not in _SESSION_FIELDS})
    else:
        periods = plain_periods(points)
        body["charging_periods"] = periods
        body["total_cost"] = {"excl_vat": 0.0, "incl_vat": 0.0}
        body["total_energy"] = round(session.energy_wh / 1000, 4)
        body["total_time"] = round((session.end_at - session.start_at).total_seconds() / 3600, 4)
        parking = sum(d["volume"] for p in periods for d in p["dimensions"] if d["type"] == "PARKING_TIME")
        body["total_parking_time"] = round(parking, 4)
        body["remark"] = "no tariff applies: free of charge"
    body["last_updated"] = format_dt(now)
    return _ordered(body)


def credit_body(original: dict[str, Any], credit_id: str, now: datetime) -> dict[str, Any]:
    """The Credit CDR of ``original``: the same data, negative costs, ``credit`` and its reference."""
    body = dict(original)
    body["id"] = credit_id
    for name in _COST_FIELDS:
        if name in body:
            body[name] = {key: -value for key, value in body[name].items()}
    body["credit"] = True
    body["credit_reference_id"] = original["id"]
    body["last_updated"] = format_dt(now)
    return _ordered(body)


_ORDER = [
    "country_code",
    "party_id",
    "id",
    "start_date_time",
    "end_date_time",
    "session_id",
    "cdr_token",
    "auth_method",
    "authorization_reference",
    "cdr_location",
    "meter_id",
    "currency",
    "tariffs",
    "charging_periods",
    "signed_data",
    "total_cost",
    "total_fixed_cost",
    "total_energy",
    "total_energy_cost",
    "total_time",
    "total_time_cost",
    "total_parking_time",
    "total_parking_cost",
    "total_reservation_cost",
    "remark",
    "invoice_reference_id",
    "credit",
    "credit_reference_id",
    "home_charging_compensation",
    "last_updated",
]


def _ordered(body: dict[str, Any]) -> dict[str, Any]:
    """The CDR's fields in the specification's order (for people reading them)."""
    return {name: body[name] for name in _ORDER if name in body}
