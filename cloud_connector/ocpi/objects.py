"""OCPI objects built from what we store: only fields the specification defines, never null ones."""

from __future__ import annotations

from typing import Any

from ..repo.core import Site
from ..repo.inventory import Connector, Evse
from ..repo.sessions import Session
from ..repo.tariffs import Tariff
from ..timeutil import format_dt

# What every site can do through the uplink (commands and profiles go to the charger).
BASE_CAPABILITIES = [
    "CHARGING_PROFILE_CAPABLE",
    "REMOTE_START_STOP_CAPABLE",
    "RESERVABLE",
    "RFID_READER",
    "UNLOCK_CAPABLE",
]


def coordinate(value: Any) -> str:
    """A GeoLocation string: decimal degrees with 6 decimals."""
    return f"{float(value):.6f}"


def connector_object(connector: Connector, tariff_ids: list[str]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": connector.connector_id,
        "standard": connector.standard,
        "format": connector.format,
        "power_type": connector.power_type,
        "max_voltage": connector.max_voltage,
        "max_amperage": connector.max_amperage,
    }
    if connector.max_electric_power is not None:
        body["max_electric_power"] = connector.max_electric_power
    if tariff_ids:
        body["tariff_ids"] = tariff_ids
    body["last_updated"] = format_dt(connector.last_updated)
    return body


def evse_object(evse: Evse, connectors: list[Connector], tariff_ids: list[str]) -> dict[str, Any]:
    capabilities = list(BASE_CAPABILITIES)
    if len(connectors) > 1:
        capabilities.append("START_SESSION_CONNECTOR_REQUIRED")
    return {
        "uid": evse.uid,
        "evse_id": evse.evse_code,
        "status": evse.status,
        "capabilities": sorted(capabilities),
        "connectors": [connector_object(connector, tariff_ids) for connector in connectors],
        "last_updated": format_dt(evse.last_updated),
    }


def location_object(
    site: Site, evses: list[Evse], connectors: dict[str, list[Connector]], tariffs: dict[str, list[str]]
) -> dict[str, Any]:
    """The Location of a site (which has sent its inventory)."""
    info = site.info or {}
    body: dict[str, Any] = {
        "country_code": site.country_code,
        "party_id": site.party_id,
        "id": site.id,
        "publish": site.publish,
        "name": info.get("name") or site.name,
        "address": info["address"],
        "city": info["city"],
    }
    if info.get("postal_code"):
        body["postal_code"] = info["postal_code"]
    body["country"] = info["country"]
    body["coordinates"] = {"latitude": coordinate(info["latitude"]), "longitude": coordinate(info["longitude"])}
    body["evses"] = [
        evse_object(evse, connectors.get(evse.uid, []), tariffs.get(evse.uid) or tariffs.get("", []))
        for evse in evses
        if connectors.get(evse.uid)
    ]
    body["time_zone"] = info["time_zone"]
    assert site.last_updated is not None
    body["last_updated"] = format_dt(site.last_updated)
    return body


def tariff_object(tariff: Tariff) -> dict[str, Any]:
    return {
        "country_code": tariff.country_code,
        "party_id": tariff.party_id,
        "id": tariff.id,
        **tariff.body,
        "last_updated": format_dt(tariff.last_updated),
    }


def session_object(
    session: Session, country_code: str, party_id: str, periods: list[dict[str, Any]], total_cost: dict[str, Any] | None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "country_code": country_code,
        "party_id": party_id,
        "id": session.id,
        "start_date_time": format_dt(session.start_at),
    }
    if session.end_at is not None:
        body["end_date_time"] = format_dt(session.end_at)
    body["kwh"] = round(session.energy_wh / 1000, 4)
    body["cdr_token"] = session.cdr_token
    body["auth_method"] = session.auth_method
    if session.authorization_reference:
        body["authorization_reference"] = session.authorization_reference
    body["location_id"] = session.cdr_location["id"]
    body["evse_uid"] = session.evse_uid
    body["connector_id"] = session.connector_id
    body["currency"] = session.currency
    if periods:
        body["charging_periods"] = periods
    if total_cost is not None:
        body["total_cost"] = total_cost
    body["status"] = session.status
    body["last_updated"] = format_dt(session.last_updated)
    return body
