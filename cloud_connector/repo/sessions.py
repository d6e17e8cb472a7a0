"""Charging sessions, what we know before they start, and their CDRs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
import json
from typing import Any

from ..storage import Executor, Row
from ..timeutil import db_dt, from_db
from .query import page, window


@dataclass(frozen=True, kw_only=True)
class Session:
    id: str
    site_id: str
    site_session_id: str
    charger_id: str
    evse_uid: str
    connector_id: str
    id_tag: str
    auth_method: str
    authorization_reference: str | None
    peer_id: int | None
    cdr_token: dict[str, Any]
    currency: str
    start_at: datetime
    end_at: datetime | None
    meter_start_wh: float
    energy_wh: float
    power_w: float | None
    current_a: float | None
    status: str
    cdr_location: dict[str, Any]
    tariffs: list[dict[str, Any]]
    meter_curve: list[list[Any]]
    limit_w: float | None
    profile_peer_id: int | None
    last_updated: datetime


def _session(row: Row) -> Session:
    return Session(
        id=row["id"],
        site_id=row["site_id"],
        site_session_id=row["site_session_id"],
        charger_id=row["charger_id"],
        evse_uid=row["evse_uid"],
        connector_id=row["connector_id"],
        id_tag=row["id_tag"],
        auth_method=row["auth_method"],
        authorization_reference=row["authorization_reference"],
        peer_id=row["peer_id"],
        cdr_token=json.loads(row["cdr_token"]),
        currency=row["currency"],
        start_at=from_db(row["start_at"]),
        end_at=from_db(row["end_at"]) if row["end_at"] else None,
        meter_start_wh=row["meter_start_wh"],
        energy_wh=row["energy_wh"],
        power_w=row["power_w"],
        current_a=row["current_a"],
        status=row["status"],
        cdr_location=json.loads(row["cdr_location"]),
        tariffs=json.loads(row["tariffs"]),
        meter_curve=json.loads(row["meter_curve"]),
        limit_w=row["limit_w"],
        profile_peer_id=row["profile_peer_id"],
        last_updated=from_db(row["last_updated"]),
    )


@dataclass(frozen=True, kw_only=True)
class Hint:
    peer_id: int | None
    token: dict[str, Any] | None
    authorization_reference: str | None


@dataclass(frozen=True, kw_only=True)
class Cdr:
    id: str
    session_id: str | None
    peer_id: int | None
    body: dict[str, Any]
    credit: bool
    credited_by: str | None
    emsp_url: str | None
    delivered_at: datetime | None
    last_updated: datetime


def _cdr(row: Row) -> Cdr:
    return Cdr(
        id=row["id"],
        session_id=row["session_id"],
        peer_id=row["peer_id"],
        body=json.loads(row["body"]),
        credit=bool(row["credit"]),
        credited_by=row["credited_by"],
        emsp_url=row["emsp_url"],
        delivered_at=from_db(row["delivered_at"]) if row["delivered_at"] else None,
        last_updated=from_db(row["last_updated"]),
    )


class SessionRepo:
    def __init__(self, ex: Executor) -> None:
        self.ex = ex

    # --- hints ---

    async def add_hint(
        self,
        site_id: str,
        uid: str,
        *,
        peer_id: int | None,
        token: dict[str, Any] | None,
        reference: str | None,
        now: datetime,
        command: bool = False,
    ) -> None:
        await self.ex.execute(
            "INSERT INTO session_hints (site_id, uid_key, peer_id, token, authorization_reference, command, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (site_id, uid.upper(), peer_id, json.dumps(token) if token else None, reference, int(command), db_dt(now)),
        )

    async def recent_hint(self, site_id: str, uid: str, since: datetime) -> bool:
        """Whether a command for this badge at this site came since ``since``."""
        row = await self.ex.fetchone(
            "SELECT 1 AS x FROM session_hints WHERE site_id = ? AND uid_key = ? AND created_at >= ? AND command = 1",
            (site_id, uid.upper(), db_dt(since)),
        )
        return row is not None

    async def take_hint(self, site_id: str, uid: str, since: datetime) -> Hint | None:
        """The latest hint for this badge at this site since ``since``; consumed (with older ones)."""
        row = await self.ex.fetchone(
            "SELECT * FROM session_hints WHERE site_id = ? AND uid_key = ? AND created_at >= ? ORDER BY id DESC LIMIT 1",
            (site_id, uid.upper(), db_dt(since)),
        )
        await self.ex.execute("DELETE FROM session_hints WHERE site_id = ? AND uid_key = ?", (site_id, uid.upper()))
        await self.ex.execute("DELETE FROM session_hints WHERE created_at < ?", (db_dt(since),))
        if row is None:
            return None
        return Hint(
            peer_id=row["peer_id"],
            token=json.loads(row["token"]) if row["token"] else None,
            authorization_reference=row["authorization_reference"],
        )

    # --- sessions ---

    async def insert(self, session: Session) -> bool:
        """False when the site already reported this session."""
        changed = await self.ex.execute(
            "INSERT INTO sessions (id, site_id, site_session_id, charger_id, evse_uid, connector_id, id_tag, auth_method, "
            "authorization_reference, peer_id, cdr_token, currency, start_at, end_at, meter_start_wh, energy_wh, power_w, "
            "current_a, status, cdr_location, tariffs, meter_curve, limit_w, profile_peer_id, last_updated) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (
                session.id,
                session.site_id,
                session.site_session_id,
                session.charger_id,
                session.evse_uid,
                session.connector_id,
                session.id_tag,
                session.auth_method,
                session.authorization_reference,
                session.peer_id,
                json.dumps(session.cdr_token),
                session.currency,
                db_dt(session.start_at),
                db_dt(session.end_at) if session.end_at else None,
                session.meter_start_wh,
                session.energy_wh,
                session.power_w,
                session.current_a,
                session.status,
                json.dumps(session.cdr_location),
                json.dumps(session.tariffs),
                json.dumps(session.meter_curve),
                session.limit_w,
                session.profile_peer_id,
                db_dt(session.last_updated),
            ),
        )
        return changed == 1

    async def get(self, session_id: str) -> Session | None:
        row = await self.ex.fetchone("SELECT * FROM sessions WHERE id = ?", (session_id,))
        return None if row is None else _session(row)

    async def matching(self, session_id: str) -> Session | None:
        """The session whose id equals ``session_id`` ignoring case (CiString)."""
        row = await self.ex.fetchone("SELECT * FROM sessions WHERE lower(id) = lower(?)", (session_id,))
        return None if row is None else _session(row)

    async def by_site_id(self, site_id: str, site_session_id: str) -> Session | None:
        row = await self.ex.fetchone(
            "SELECT * FROM sessions WHERE site_id = ? AND site_session_id = ?", (site_id, site_session_id)
        )
        return None if row is None else _session(row)

    async def update_meter(
        self,
        session_id: str,
        *,
        energy_wh: float,
        power_w: float | None,
        current_a: float | None,
        point: list[Any],
        now: datetime,
    ) -> None:
        row = await self.ex.fetchone("SELECT meter_curve FROM sessions WHERE id = ?", (session_id,))
        curve = json.loads(row["meter_curve"]) if row else []
        curve.append(point)
        await self.ex.execute(
            "UPDATE sessions SET energy_wh = ?, power_w = ?, current_a = ?, meter_curve = ?, last_updated = ? WHERE id = ?",
            (energy_wh, power_w, current_a, json.dumps(curve), db_dt(now), session_id),
        )

    async def finish(
        self, session_id: str, end_at: datetime, energy_wh: float, curve: list[list[Any]], now: datetime
    ) -> None:
        await self.ex.execute(
            "UPDATE sessions SET status = 'COMPLETED', end_at = ?, energy_wh = ?, power_w = NULL, current_a = NULL, "
            "meter_curve = ?, last_updated = ? WHERE id = ?",
            (db_dt(end_at), energy_wh, json.dumps(curve), db_dt(now), session_id),
        )

    async def set_limit(self, session_id: str, limit_w: float | None, peer_id: int | None) -> None:
        await self.ex.execute(
            "UPDATE sessions SET limit_w = ?, profile_peer_id = ? WHERE id = ?", (limit_w, peer_id, session_id)
        )

    async def for_peer(
        self, peer_id: int | None, date_from: datetime | None, date_to: datetime | None, offset: int, limit: int
    ) -> tuple[list[Session], int]:
        """Sessions of one eMSP (all when ``peer_id`` is None), oldest first."""
        where, params = _of_peer(peer_id, date_from, date_to)
        rows, total = await page(self.ex, "sessions", where, params, order="start_at, id", offset=offset, limit=limit)
        return [_session(row) for row in rows], total

    # --- CDRs ---

    async def add_cdr(self, cdr: Cdr) -> None:
        await self.ex.execute(
            "INSERT INTO cdrs (id, session_id, peer_id, body, credit, credited_by, emsp_url, delivered_at, last_updated) "
            "VALUES (?, ?, ?, ?, ?, NULL, NULL, NULL, ?)",
            (cdr.id, cdr.session_id, cdr.peer_id, json.dumps(cdr.body), int(cdr.credit), db_dt(cdr.last_updated)),
        )

    async def cdr(self, cdr_id: str) -> Cdr | None:
        row = await self.ex.fetchone("SELECT * FROM cdrs WHERE id = ?", (cdr_id,))
        return None if row is None else _cdr(row)

    async def set_credited(self, cdr_id: str, credit_id: str) -> None:
        await self.ex.execute("UPDATE cdrs SET credited_by = ? WHERE id = ?", (credit_id, cdr_id))

    async def cdr_delivered(self, cdr_id: str, emsp_url: str | None, now: datetime) -> None:
        await self.ex.execute(
            "UPDATE cdrs SET delivered_at = ?, emsp_url = ? WHERE id = ?", (db_dt(now), emsp_url, cdr_id)
        )

    async def undelivered_cdrs(self) -> list[Cdr]:
        rows = await self.ex.fetchall(
            "SELECT c.* FROM cdrs c JOIN peers p ON p.id = c.peer_id WHERE c.delivered_at IS NULL "
            "AND p.status = 'REGISTERED' ORDER BY c.last_updated"
        )
        return [_cdr(row) for row in rows]

    async def cdrs_for_peer(
        self, peer_id: int | None, date_from: datetime | None, date_to: datetime | None, offset: int, limit: int
    ) -> tuple[list[Cdr], int]:
        where, params = _of_peer(peer_id, date_from, date_to)
        rows, total = await page(self.ex, "cdrs", where, params, order="last_updated, id", offset=offset, limit=limit)
        return [_cdr(row) for row in rows], total


def _of_peer(peer_id: int | None, date_from: datetime | None, date_to: datetime | None) -> tuple[str, list[Any]]:
    """The rows of one eMSP (all when ``peer_id`` is None) last updated in [date_from, date_to)."""
    where, params = window("last_updated", date_from, date_to)
    if peer_id is not None:
        where += " AND peer_id = ?"
        params.append(peer_id)
    return "1 = 1" + where, params
