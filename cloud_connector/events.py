"""What a site's events do to our data: inventory, statuses, sessions and their CDRs.

Each function runs inside the transaction that also records the event (``store.CloudStore.apply_event``)
and returns the :class:`Changes` the OCPI layer pushes afterwards. Data that cannot be used raises
:class:`UnusableEvent`: the event is then recorded without effect, so one bad event never blocks a site.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
import hashlib
import logging
import re
from typing import Any
import uuid

from . import billing
from .ocpi.objects import coordinate, tariff_object
from .repo.core import Site
from .repo.inventory import Connector, Evse, InventoryRepo
from .repo.sessions import Cdr, Session, SessionRepo
from .repo.tariffs import TariffRepo
from .repo.tokens import TokenRepo
from .storage import Executor
from .timeutil import format_dt

_LOGGER = logging.getLogger(__name__)

HINT_WINDOW = timedelta(minutes=30)  # a command's token or an authorization waits this long for its session
SESSION_NAMESPACE = uuid.UUID("5b1c2a0e-57b8-4d44-9d1f-8c7cf5a3c0de")

CONNECTOR_TYPES = frozenset(
    [
        "CHADEMO",
        "CHAOJI",
        "DOMESTIC_A",
        "DOMESTIC_B",
        "DOMESTIC_C",
        "DOMESTIC_D",
        "DOMESTIC_E",
        "DOMESTIC_F",
        "DOMESTIC_G",
        "DOMESTIC_H",
        "DOMESTIC_I",
        "DOMESTIC_J",
        "DOMESTIC_K",
        "DOMESTIC_L",
        "DOMESTIC_M",
        "DOMESTIC_N",
        "DOMESTIC_O",
        "GBT_AC",
        "GBT_DC",
        "IEC_60309_2_single_16",
        "IEC_60309_2_three_16",
        "IEC_60309_2_three_32",
        "IEC_60309_2_three_64",
        "IEC_62196_T1",
        "IEC_62196_T1_COMBO",
        "IEC_62196_T2",
        "IEC_62196_T2_COMBO",
        "IEC_62196_T3A",
        "IEC_62196_T3C",
        "NEMA_5_20",
        "NEMA_6_30",
        "NEMA_6_50",
        "NEMA_10_30",
        "NEMA_10_50",
        "NEMA_14_30",
        "NEMA_14_50",
        "PANTOGRAPH_BOTTOM_UP",
        "PANTOGRAPH_TOP_DOWN",
        "TESLA_R",
        "TESLA_S",
    ]
)
POWER_TYPES = frozenset({"AC_1_PHASE", "AC_2_PHASE", "AC_2_PHASE_SPLIT", "AC_3_PHASE", "DC"})
AUTH_METHODS = frozenset({"AUTH_REQUEST", "COMMAND", "WHITELIST"})

# OCPP 1.6 ChargePointStatus / 2.0.1 ConnectorStatus -> OCPI EVSE status.
_OCPP_TO_OCPI = {
    "Available": "AVAILABLE",
    "Preparing": "CHARGING",
    "Charging": "CHARGING",
    "SuspendedEV": "CHARGING",
    "SuspendedEVSE": "CHARGING",
    "Finishing": "CHARGING",
    "Occupied": "CHARGING",
    "Reserved": "RESERVED",
    "Unavailable": "INOPERATIVE",
    "Faulted": "OUTOFORDER",
}
# A charger-wide status that overrides its connectors'.
_CHARGER_OVERRIDE = {"Offline": "UNKNOWN", "Unavailable": "INOPERATIVE", "Faulted": "OUTOFORDER"}
# Which connector status wins for the EVSE (an EVSE is busy when any of its connectors is).
_PRIORITY = ["CHARGING", "RESERVED", "AVAILABLE", "BLOCKED", "OUTOFORDER", "INOPERATIVE", "UNKNOWN"]


class UnusableEvent(ValueError):
    """The event's data cannot be applied."""


@dataclass
class Changes:
    """What an event changed, for the pushes."""

    locations: set[str] = field(default_factory=set)  # PUT the whole Location
    evses: dict[str, str] = field(default_factory=dict)  # EVSE uid -> Location id: PATCH the status
    sessions_put: set[str] = field(default_factory=set)
    sessions_patch: set[str] = field(default_factory=set)
    cdrs: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.locations or self.evses or self.sessions_put or self.sessions_patch or self.cdrs)


def evse_uid(site_id: str, charger_id: str, evse_id: int) -> str:
    """The EVSE's OCPI uid: readable when it fits in a CiString(36), a digest otherwise; never changes."""
    raw = f"{site_id}-{charger_id}-{evse_id}"
    if len(raw) <= 36 and all("!" <= ch <= "~" for ch in raw):
        return raw
    return "E" + hashlib.sha256(raw.encode()).hexdigest()[:31]


def evse_code(country_code: str, party_id: str, site_id: str, charger_id: str, evse_id: int) -> str:
    """An eMI3 EVSE ID: ``FR*CAR*E<site>*<charger>*<evse>`` (alphanumerics, at most 31 after the E)."""
    parts = [re.sub(r"[^A-Za-z0-9]", "", part).upper() for part in (site_id, charger_id, str(evse_id))]
    outlet = "*".join(parts)
    if len(outlet) > 30 or not all(parts):
        outlet = hashlib.sha256(f"{site_id}-{charger_id}-{evse_id}".encode()).hexdigest()[:16].upper()
    return f"{country_code}*{party_id}*E{outlet}"


def session_id(site_id: str, site_session_id: str) -> str:
    """The OCPI Session.id of a site's session (36 characters, the same every time)."""
    return str(uuid.uuid5(SESSION_NAMESPACE, f"{site_id}/{site_session_id}"))


def evse_status(connectors: list[Connector], charger_status: str | None) -> str:
    """The OCPI status of an EVSE from its connectors' OCPP statuses and its charger's."""
    if charger_status in _CHARGER_OVERRIDE:
        return _CHARGER_OVERRIDE[charger_status]
    found = {_OCPP_TO_OCPI.get(c.ocpp_status or "", "UNKNOWN") for c in connectors} or {"UNKNOWN"}
    return next(status for status in _PRIORITY if status in found)


# --- inventory ---------------------------------------------------------------------------------------


def _text(value: Any, name: str, limit: int, *, required: bool = True) -> str | None:
    if value is None or value == "":
        if required:
            raise UnusableEvent(f"{name} is missing")
        return None
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise UnusableEvent(f"{name} must be text")
    return " ".join(str(value).split())[:limit]


def _int(value: Any, name: str, *, minimum: int = 0) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise UnusableEvent(f"{name} must be an integer >= {minimum}")
    return value


def _site_info(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise UnusableEvent("site must be an object")
    country = _text(raw.get("country"), "site.country", 3)
    if not re.fullmatch(r"[A-Z]{3}", country or ""):
        raise UnusableEvent("site.country must be an ISO 3166 alpha-3 code")
    try:
        latitude, longitude = coordinate(raw.get("latitude")), coordinate(raw.get("longitude"))
    except (TypeError, ValueError):
        raise UnusableEvent("site.latitude and site.longitude must be numbers") from None
    info = {
        "name": _text(raw.get("name"), "site.name", 255, required=False),
        "address": _text(raw.get("address"), "site.address", 45),
        "city": _text(raw.get("city"), "site.city", 45),
        "postal_code": _text(raw.get("postal_code"), "site.postal_code", 10, required=False),
        "country": country,
        "latitude": latitude,
        "longitude": longitude,
        "time_zone": _text(raw.get("time_zone"), "site.time_zone", 255),
    }
    return {key: value for key, value in info.items() if value is not None}


def _connector(raw: Any, uid: str, now: datetime) -> Connector | None:
    """A connector of the inventory; None (and a warning) when it does not fit OCPI."""
    try:
        if not isinstance(raw, dict):
            raise UnusableEvent("connector must be an object")
        standard, fmt, power = raw.get("standard"), raw.get("format"), raw.get("power_type")
        if standard not in CONNECTOR_TYPES or fmt not in {"SOCKET", "CABLE"} or power not in POWER_TYPES:
            raise UnusableEvent(f"connector {raw.get('id')}: standard/format/power_type not OCPI values")
        power_w = raw.get("max_electric_power")
        return Connector(
            evse_uid=uid,
            connector_id=str(_int(raw.get("id"), "connector.id", minimum=1)),
            standard=standard,
            format=fmt,
            power_type=power,
            max_voltage=_int(raw.get("max_voltage"), "connector.max_voltage"),
            max_amperage=_int(raw.get("max_amperage"), "connector.max_amperage"),
            max_electric_power=None if power_w is None else _int(power_w, "connector.max_electric_power"),
            ocpp_status=None,
            last_updated=now,
        )
    except UnusableEvent as err:
        _LOGGER.warning("Inventory of EVSE %s: %s", uid, err, extra={"evse": uid})
        return None


async def _inventory(tx: Executor, site: Site, data: dict[str, Any], now: datetime) -> Changes:
    info = _site_info(data.get("site"))
    chargers = data.get("chargers")
    if not isinstance(chargers, list) or not all(isinstance(c, dict) for c in chargers):
        raise UnusableEvent("chargers must be a list of objects")
    inv = InventoryRepo(tx)
    changed = site.info != info
    existing = {evse.uid: evse for evse in await inv.evses(site.id)}
    old_connectors = await inv.connectors(list(existing))
    seen: set[str] = set()
    charger_ids: list[str] = []
    for charger in chargers:
        charger_id = _text(charger.get("id"), "charger.id", 48)
        assert charger_id is not None
        charger_ids.append(charger_id)
        await inv.upsert_charger(site.id, {**charger, "id": charger_id})
        charger_status = await inv.charger_status(site.id, charger_id)
        evses = charger.get("evses")
        for raw_evse in evses if isinstance(evses, list) else []:
            if not isinstance(raw_evse, dict) or not isinstance(raw_evse.get("evse_id"), int):
                continue
            number = _int(raw_evse["evse_id"], "evse_id", minimum=1)
            uid = evse_uid(site.id, charger_id, number)
            raw_connectors = raw_evse.get("connectors")
            connectors = [
                c
                for c in (_connector(r, uid, now) for r in (raw_connectors if isinstance(raw_connectors, list) else []))
                if c
            ]
            if not connectors:
                continue
            seen.add(uid)
            changed |= await _put_evse(
                inv,
                site,
                charger_id=charger_id,
                number=number,
                uid=uid,
                connectors=connectors,
                old=existing.get(uid),
                old_connectors=old_connectors.get(uid, []),
                charger_status=charger_status,
                now=now,
            )
    await inv.retire_chargers(site.id, charger_ids)
    for uid, evse in existing.items():
        if uid not in seen and not evse.removed:
            await inv.set_evse_state(uid, "REMOVED", True, now)
            changed = True
    if not changed:
        return Changes()
    await inv.set_site_info(site.id, info, now)
    return Changes(locations={site.id})


def _same(a: Connector, b: Connector) -> bool:
    keys = ("standard", "format", "power_type", "max_voltage", "max_amperage", "max_electric_power")
    return all(getattr(a, key) == getattr(b, key) for key in keys)


async def _put_evse(
    inv: InventoryRepo,
    site: Site,
    *,
    charger_id: str,
    number: int,
    uid: str,
    connectors: list[Connector],
    old: Evse | None,
    old_connectors: list[Connector],
    charger_status: str | None,
    now: datetime,
) -> bool:
    """Create or update one EVSE of the inventory; whether anything changed."""
    if old is None:
        code = evse_code(site.country_code, site.party_id, site.id, charger_id, number)
        await inv.insert_evse(
            Evse(
                uid=uid,
                site_id=site.id,
                charger_id=charger_id,
                evse_id=number,
                evse_code=code,
                status="UNKNOWN",
                removed=False,
                last_updated=now,
            )
        )
    before = {c.connector_id: c for c in old_connectors}
    changed = old is None or old.removed
    for connector in connectors:
        previous = before.get(connector.connector_id)
        if previous is None or not _same(previous, connector):
            await inv.upsert_connector(connector)
            changed = True
    if await inv.drop_connectors(uid, [c.connector_id for c in connectors]):
        changed = True
    if not changed:
        return False
    current = (await inv.connectors([uid]))[uid]
    await inv.set_evse_state(uid, evse_status(current, charger_status), False, now)
    return True


# --- statuses ----------------------------------------------------------------------------------------


async def _status(tx: Executor, site: Site, data: dict[str, Any], now: datetime) -> Changes:
    charger_id = _text(data.get("charger_id"), "charger_id", 48)
    status = _text(data.get("status"), "status", 32)
    assert charger_id is not None
    assert status is not None
    inv = InventoryRepo(tx)
    evse_number = data.get("evse_id")
    before = await inv.charger_status(site.id, charger_id)
    if evse_number in (None, 0):
        # The whole charger (OCPP 1.6 connector 0, or the site saying it went offline).
        if not await inv.set_charger_status(site.id, charger_id, None if status == "Available" else status):
            raise UnusableEvent(f"unknown charger {charger_id}")
        targets = await inv.charger_evses(site.id, charger_id)
    else:
        evse = await inv.evse_at(site.id, charger_id, _int(evse_number, "evse_id", minimum=1))
        if evse is None:
            raise UnusableEvent(f"unknown EVSE {charger_id}/{evse_number}")
        connector = data.get("connector_id")
        await inv.set_connector_status(evse.uid, None if connector in (None, 0) else str(connector), status)
        targets = [evse]
        if before == "Offline":  # it talks again
            await inv.set_charger_status(site.id, charger_id, None)
            targets = await inv.charger_evses(site.id, charger_id)
    charger_status = await inv.charger_status(site.id, charger_id)
    connectors = await inv.connectors([evse.uid for evse in targets])
    changes = Changes()
    for evse in targets:
        if evse.removed:
            continue
        status_now = evse_status(connectors[evse.uid], charger_status)
        if status_now != evse.status:
            await inv.set_evse_state(evse.uid, status_now, False, now)
            changes.evses[evse.uid] = site.id
    if changes:
        await inv.touch_site(site.id, now)
    return changes


# --- sessions ----------------------------------------------------------------------------------------


def _moment(value: Any, name: str) -> datetime:
    if not isinstance(value, str):
        raise UnusableEvent(f"{name} must be an ISO 8601 time")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise UnusableEvent(f"{name} must be an ISO 8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _number(value: Any, name: str, *, required: bool = True) -> float | None:
    if value is None and not required:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise UnusableEvent(f"{name} must be a number")
    return float(value)


async def _session_start(tx: Executor, site: Site, data: dict[str, Any], now: datetime, currency: str) -> Changes:
    site_session = _text(data.get("session_id"), "session_id", 64)
    charger_id = _text(data.get("charger_id"), "charger_id", 48)
    id_tag = _text(data.get("id_tag"), "id_tag", 36)
    assert site_session is not None
    assert charger_id is not None
    assert id_tag is not None
    inv = InventoryRepo(tx)
    evse = await inv.evse_at(site.id, charger_id, _int(data.get("evse_id"), "evse_id", minimum=1))
    if evse is None:
        raise UnusableEvent(f"unknown EVSE {charger_id}/{data.get('evse_id')}")
    connectors = (await inv.connectors([evse.uid]))[evse.uid]
    wanted = str(data.get("connector_id"))
    # An EVSE always has a connector (the inventory skips those without); an unknown id means the first.
    connector = next((c for c in connectors if c.connector_id == wanted), connectors[0])
    start = _moment(data.get("start"), "start")
    sessions = SessionRepo(tx)
    hint = await sessions.take_hint(site.id, id_tag, now - HINT_WINDOW)
    token: dict[str, Any] | None = hint.token if hint else None
    peer_id = hint.peer_id if hint else None
    if token is None:
        known = await TokenRepo(tx).by_uid(id_tag)
        if known:
            token, peer_id = known[0].body, known[0].peer_id
    if token is not None:
        cdr_token = {key: token[key] for key in ("country_code", "party_id", "uid", "type", "contract_id")}
    else:  # a local badge: the session stays ours, no eMSP sees it
        cdr_token = {
            "country_code": site.country_code,
            "party_id": site.party_id,
            "uid": id_tag,
            "type": "OTHER",
            "contract_id": id_tag,
        }
        peer_id = None
    tariff_ids = await inv.tariff_ids(site.id)
    tariffs = [tariff_object(t) for t in await TariffRepo(tx).many(tariff_ids.get(evse.uid) or tariff_ids.get("", []))]
    chosen = billing.choose_tariff(tariffs, start)
    info = site.info or {}
    cdr_location = {
        "id": site.id,
        "name": info.get("name") or site.name,
        "address": info.get("address", ""),
        "city": info.get("city", ""),
        "postal_code": info.get("postal_code"),
        "country": info.get("country", ""),
        "coordinates": {"latitude": info.get("latitude"), "longitude": info.get("longitude")},
        "evse_uid": evse.uid,
        "evse_id": evse.evse_code,
        "connector_id": connector.connector_id,
        "connector_standard": connector.standard,
        "connector_format": connector.format,
        "connector_power_type": connector.power_type,
    }
    method = data.get("auth_method")
    session = Session(
        id=session_id(site.id, site_session),
        site_id=site.id,
        site_session_id=site_session,
        charger_id=charger_id,
        evse_uid=evse.uid,
        connector_id=connector.connector_id,
        id_tag=id_tag,
        auth_method=method if method in AUTH_METHODS else "WHITELIST",
        authorization_reference=hint.authorization_reference if hint else None,
        peer_id=peer_id,
        cdr_token=cdr_token,
        currency=chosen.currency if chosen else currency,
        start_at=start,
        end_at=None,
        meter_start_wh=_number(data.get("meter_start_wh", 0), "meter_start_wh") or 0.0,
        energy_wh=0.0,
        power_w=None,
        current_a=None,
        status="ACTIVE",
        cdr_location={key: value for key, value in cdr_location.items() if value is not None},
        tariffs=tariffs,
        meter_curve=[],
        limit_w=None,
        profile_peer_id=None,
        last_updated=now,
    )
    if not await sessions.insert(session):
        return Changes()
    return Changes(sessions_put={session.id})


async def _session_update(tx: Executor, site: Site, data: dict[str, Any], now: datetime) -> Changes:
    sessions = SessionRepo(tx)
    session = await sessions.by_site_id(site.id, str(data.get("session_id")))
    if session is None or session.status != "ACTIVE":
        raise UnusableEvent(f"no active session {data.get('session_id')}")
    energy = _number(data.get("energy_wh"), "energy_wh")
    assert energy is not None
    at = _moment(data.get("at"), "at")
    await sessions.update_meter(
        session.id,
        energy_wh=energy,
        power_w=_number(data.get("power_w"), "power_w", required=False),
        current_a=_number(data.get("current_a"), "current_a", required=False),
        point=[format_dt(at), energy],
        now=now,
    )
    return Changes(sessions_patch={session.id})


async def _session_end(tx: Executor, site: Site, data: dict[str, Any], now: datetime) -> Changes:
    sessions = SessionRepo(tx)
    session = await sessions.by_site_id(site.id, str(data.get("session_id")))
    if session is None or session.status != "ACTIVE":
        raise UnusableEvent(f"no active session {data.get('session_id')}")
    stop = max(_moment(data.get("stop"), "stop"), session.start_at)
    energy = _number(data.get("energy_wh"), "energy_wh")
    assert energy is not None
    raw_curve = data.get("meter_curve")
    curve: list[list[Any]] = list(session.meter_curve)
    if isinstance(raw_curve, list) and raw_curve:
        curve = []
        for point in raw_curve:
            if isinstance(point, list) and len(point) == 2:
                try:
                    curve.append([format_dt(_moment(point[0], "meter_curve")), _number(point[1], "meter_curve")])
                except UnusableEvent:
                    continue
    await sessions.finish(session.id, stop, energy, curve, now)
    changes = Changes(sessions_put={session.id})
    if session.peer_id is not None:
        finished = await sessions.get(session.id)
        assert finished is not None
        zone = billing.time_zone((site.info or {}).get("time_zone"))
        body = billing.cdr_body(
            finished, finished.id, zone=zone, country_code=site.country_code, party_id=site.party_id, now=now
        )
        await sessions.add_cdr(
            Cdr(
                id=finished.id,
                session_id=finished.id,
                peer_id=finished.peer_id,
                body=body,
                credit=False,
                credited_by=None,
                emsp_url=None,
                delivered_at=None,
                last_updated=now,
            )
        )
        changes.cdrs.append(finished.id)
    return changes


async def apply(tx: Executor, site: Site, kind: str, data: dict[str, Any], *, now: datetime, currency: str) -> Changes:
    """Apply one event's effect; :class:`UnusableEvent` when its data cannot be used."""
    if kind == "inventory":
        return await _inventory(tx, site, data, now)
    if kind == "status":
        return await _status(tx, site, data, now)
    if kind == "session_start":
        return await _session_start(tx, site, data, now, currency)
    if kind == "session_update":
        return await _session_update(tx, site, data, now)
    if kind == "session_end":
        return await _session_end(tx, site, data, now)
    raise UnusableEvent(f"unknown event kind {kind!r}")
