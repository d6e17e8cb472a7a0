"""What the sites told us about their hardware: site details, chargers, EVSEs, connectors, tariffs on them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
import json
from typing import Any

from ..storage import Executor, Row
from ..timeutil import db_dt, from_db
from .query import page, window


@dataclass(frozen=True, kw_only=True)
class Evse:
    uid: str
    site_id: str
    charger_id: str
    evse_id: int
    evse_code: str
    status: str
    removed: bool
    last_updated: datetime


@dataclass(frozen=True, kw_only=True)
class Connector:
    evse_uid: str
    connector_id: str
    standard: str
    format: str
    power_type: str
    max_voltage: int
    max_amperage: int
    max_electric_power: int | None
    ocpp_status: str | None
    last_updated: datetime


def _evse(row: Row) -> Evse:
    return Evse(
        uid=row["uid"],
        site_id=row["site_id"],
        charger_id=row["charger_id"],
        evse_id=row["evse_id"],
        evse_code=row["evse_code"],
        status=row["status"],
        removed=bool(row["removed"]),
        last_updated=from_db(row["last_updated"]),
    )


def _connector(row: Row) -> Connector:
    return Connector(
        evse_uid=row["evse_uid"],
        connector_id=row["connector_id"],
        standard=row["standard"],
        format=row["format"],
        power_type=row["power_type"],
        max_voltage=row["max_voltage"],
        max_amperage=row["max_amperage"],
        max_electric_power=row["max_electric_power"],
        ocpp_status=row["ocpp_status"],
        last_updated=from_db(row["last_updated"]),
    )


class InventoryRepo:
    """Sites' details, chargers, EVSEs and connectors."""

    def __init__(self, ex: Executor) -> None:
        self.ex = ex

    # --- sites ---

    async def set_site_info(self, site_id: str, info: dict[str, Any], now: datetime) -> None:
        await self.ex.execute(
            "UPDATE sites SET info = ?, last_updated = ? WHERE id = ?", (json.dumps(info), db_dt(now), site_id)
        )

    async def touch_site(self, site_id: str, now: datetime) -> None:
        await self.ex.execute("UPDATE sites SET last_updated = ? WHERE id = ?", (db_dt(now), site_id))

    async def advance_seq(self, site_id: str, seq: int, now: datetime) -> None:
        await self.ex.execute(
            "UPDATE sites SET last_seq = ?, last_event_at = ? WHERE id = ?", (seq, db_dt(now), site_id)
        )

    async def record_event(
        self, site_id: str, seq: int, *, event_id: str, kind: str, at: str, data: Any, now: datetime
    ) -> None:
        await self.ex.execute(
            "INSERT INTO uplink_events (site_id, seq, event_id, kind, at, data, applied_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (site_id, seq, event_id, kind, at, json.dumps(data), db_dt(now)),
        )

    async def location_sites(
        self, date_from: datetime | None, date_to: datetime | None, offset: int, limit: int
    ) -> tuple[list[tuple[str, int]], int]:
        """(id, revision) of sites with an inventory, oldest first, whose Location changed in [date_from, date_to),
        and how many there are in all. ``revision`` changes with anything in the Location (migration 0002)."""
        where, params = window("last_updated", date_from, date_to)
        rows, total = await page(
            self.ex,
            "sites",
            "info IS NOT NULL" + where,
            params,
            order="created_at, id",
            offset=offset,
            limit=limit,
            columns="id, revision",
        )
        return [(row["id"], row["revision"]) for row in rows], total

    async def site_id_matching(self, location_id: str) -> str | None:
        """The site whose id equals ``location_id`` ignoring case (CiString), if it has an inventory."""
        row = await self.ex.fetchone(
            "SELECT id FROM sites WHERE lower(id) = lower(?) AND info IS NOT NULL", (location_id,)
        )
        return None if row is None else str(row["id"])

    # --- chargers ---

    async def chargers(self, site_id: str) -> list[Row]:
        return await self.ex.fetchall("SELECT * FROM chargers WHERE site_id = ? ORDER BY charger_id", (site_id,))

    async def upsert_charger(self, site_id: str, charger: dict[str, Any]) -> None:
        await self.ex.execute(
            "INSERT INTO chargers (site_id, charger_id, vendor, model, ocpp_version, present) VALUES (?, ?, ?, ?, ?, 1) "
            "ON CONFLICT (site_id, charger_id) DO UPDATE SET vendor = excluded.vendor, model = excluded.model, "
            "ocpp_version = excluded.ocpp_version, present = 1",
            (site_id, charger["id"], charger.get("vendor"), charger.get("model"), charger.get("ocpp_version")),
        )

    async def retire_chargers(self, site_id: str, keep: Sequence[str]) -> None:
        marks = ",".join("?" * len(keep)) or "''"
        await self.ex.execute(
            f"UPDATE chargers SET present = 0 WHERE site_id = ? AND charger_id NOT IN ({marks})",  # noqa: S608
            [site_id, *keep],
        )

    async def charger_status(self, site_id: str, charger_id: str) -> str | None:
        row = await self.ex.fetchone(
            "SELECT status FROM chargers WHERE site_id = ? AND charger_id = ?", (site_id, charger_id)
        )
        return None if row is None else row["status"]

    async def set_charger_status(self, site_id: str, charger_id: str, status: str | None) -> bool:
        """False when the charger is unknown."""
        changed = await self.ex.execute(
            "UPDATE chargers SET status = ? WHERE site_id = ? AND charger_id = ?", (status, site_id, charger_id)
        )
        return changed == 1

    # --- EVSEs ---

    async def evses(self, site_id: str) -> list[Evse]:
        rows = await self.ex.fetchall("SELECT * FROM evses WHERE site_id = ? ORDER BY charger_id, evse_id", (site_id,))
        return [_evse(row) for row in rows]

    async def evses_of_sites(self, site_ids: Sequence[str]) -> dict[str, list[Evse]]:
        """The EVSEs of each site (ordered as :meth:`evses` orders them)."""
        found: dict[str, list[Evse]] = {site_id: [] for site_id in site_ids}
        if site_ids:
            marks = ",".join("?" * len(site_ids))
            rows = await self.ex.fetchall(
                f"SELECT * FROM evses WHERE site_id IN ({marks}) ORDER BY site_id, charger_id, evse_id",  # noqa: S608
                list(site_ids),
            )
            for row in rows:
                found[row["site_id"]].append(_evse(row))
        return found

    async def evse_matching(self, site_id: str, uid: str) -> Evse | None:
        """The site's EVSE whose uid equals ``uid`` ignoring case."""
        row = await self.ex.fetchone("SELECT * FROM evses WHERE site_id = ? AND lower(uid) = lower(?)", (site_id, uid))
        return None if row is None else _evse(row)

    async def evse_at(self, site_id: str, charger_id: str, evse_id: int) -> Evse | None:
        row = await self.ex.fetchone(
            "SELECT * FROM evses WHERE site_id = ? AND charger_id = ? AND evse_id = ?", (site_id, charger_id, evse_id)
        )
        return None if row is None else _evse(row)

    async def charger_evses(self, site_id: str, charger_id: str) -> list[Evse]:
        rows = await self.ex.fetchall(
            "SELECT * FROM evses WHERE site_id = ? AND charger_id = ? ORDER BY evse_id", (site_id, charger_id)
        )
        return [_evse(row) for row in rows]

    async def insert_evse(self, evse: Evse) -> None:
        await self.ex.execute(
            "INSERT INTO evses (uid, site_id, charger_id, evse_id, evse_code, status, removed, last_updated) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                evse.uid,
                evse.site_id,
                evse.charger_id,
                evse.evse_id,
                evse.evse_code,
                evse.status,
                int(evse.removed),
                db_dt(evse.last_updated),
            ),
        )

    async def set_evse_state(self, uid: str, status: str, removed: bool, now: datetime) -> None:
        await self.ex.execute(
            "UPDATE evses SET status = ?, removed = ?, last_updated = ? WHERE uid = ?",
            (status, int(removed), db_dt(now), uid),
        )

    # --- connectors ---

    async def connectors(self, evse_uids: Sequence[str]) -> dict[str, list[Connector]]:
        if not evse_uids:
            return {}
        marks = ",".join("?" * len(evse_uids))
        rows = await self.ex.fetchall(
            f"SELECT * FROM connectors WHERE evse_uid IN ({marks}) ORDER BY evse_uid, connector_id",  # noqa: S608
            list(evse_uids),
        )
        found: dict[str, list[Connector]] = {uid: [] for uid in evse_uids}
        for row in rows:
            found[row["evse_uid"]].append(_connector(row))
        return found

    async def connectors_of_sites(self, site_ids: Sequence[str]) -> dict[str, list[Connector]]:
        """The connectors of every EVSE of the sites, per EVSE uid (ordered as :meth:`connectors` orders them)."""
        found: dict[str, list[Connector]] = {}
        if site_ids:
            marks = ",".join("?" * len(site_ids))
            rows = await self.ex.fetchall(
                "SELECT c.* FROM connectors c JOIN evses e ON e.uid = c.evse_uid "  # noqa: S608
                f"WHERE e.site_id IN ({marks}) ORDER BY c.evse_uid, c.connector_id",
                list(site_ids),
            )
            for row in rows:
                found.setdefault(row["evse_uid"], []).append(_connector(row))
        return found

    async def upsert_connector(self, connector: Connector) -> None:
        await self.ex.execute(
            "INSERT INTO connectors (evse_uid, connector_id, standard, format, power_type, max_voltage, max_amperage, "
            "max_electric_power, ocpp_status, last_updated) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (evse_uid, connector_id) DO UPDATE SET standard = excluded.standard, format = excluded.format, "
            "power_type = excluded.power_type, max_voltage = excluded.max_voltage, max_amperage = excluded.max_amperage, "
            "max_electric_power = excluded.max_electric_power, last_updated = excluded.last_updated",
            (
                connector.evse_uid,
                connector.connector_id,
                connector.standard,
                connector.format,
                connector.power_type,
                connector.max_voltage,
                connector.max_amperage,
                connector.max_electric_power,
                connector.ocpp_status,
                db_dt(connector.last_updated),
            ),
        )

    async def drop_connectors(self, evse_uid: str, keep: Sequence[str]) -> int:
        marks = ",".join("?" * len(keep)) or "''"
        return await self.ex.execute(
            f"DELETE FROM connectors WHERE evse_uid = ? AND connector_id NOT IN ({marks})",  # noqa: S608
            [evse_uid, *keep],
        )

    async def set_connector_status(self, evse_uid: str, connector_id: str | None, status: str) -> int:
        if connector_id is None:
            return await self.ex.execute("UPDATE connectors SET ocpp_status = ? WHERE evse_uid = ?", (status, evse_uid))
        return await self.ex.execute(
            "UPDATE connectors SET ocpp_status = ? WHERE evse_uid = ? AND connector_id = ?",
            (status, evse_uid, connector_id),
        )

    # --- tariffs on the inventory ---

    async def touch_connectors(self, site_id: str, evse_uid: str | None, now: datetime) -> None:
        """The connectors' tariffs changed (of one EVSE, or the whole site): new last_updated up the tree."""
        stamp = db_dt(now)
        if evse_uid is None:
            await self.ex.execute(
                "UPDATE connectors SET last_updated = ? WHERE evse_uid IN (SELECT uid FROM evses WHERE site_id = ?)",
                (stamp, site_id),
            )
            await self.ex.execute("UPDATE evses SET last_updated = ? WHERE site_id = ?", (stamp, site_id))
        else:
            await self.ex.execute("UPDATE connectors SET last_updated = ? WHERE evse_uid = ?", (stamp, evse_uid))
            await self.ex.execute("UPDATE evses SET last_updated = ? WHERE uid = ?", (stamp, evse_uid))
        await self.ex.execute("UPDATE sites SET last_updated = ? WHERE id = ?", (stamp, site_id))

    async def tariff_ids(self, site_id: str) -> dict[str, list[str]]:
        """Tariff ids per EVSE uid ('' for the whole site), live tariffs only."""
        rows = await self.ex.fetchall(
            "SELECT a.evse_uid, a.tariff_id FROM tariff_assignments a JOIN tariffs t ON t.id = a.tariff_id "
            "WHERE a.site_id = ? AND t.deleted = 0 ORDER BY a.tariff_id",
            (site_id,),
        )
        found: dict[str, list[str]] = {}
        for row in rows:
            found.setdefault(row["evse_uid"], []).append(row["tariff_id"])
        return found

    async def tariff_ids_of_sites(self, site_ids: Sequence[str]) -> dict[str, dict[str, list[str]]]:
        """:meth:`tariff_ids` of each site."""
        found: dict[str, dict[str, list[str]]] = {site_id: {} for site_id in site_ids}
        if site_ids:
            marks = ",".join("?" * len(site_ids))
            rows = await self.ex.fetchall(
                "SELECT a.site_id, a.evse_uid, a.tariff_id FROM tariff_assignments a "  # noqa: S608
                f"JOIN tariffs t ON t.id = a.tariff_id WHERE a.site_id IN ({marks}) AND t.deleted = 0 "
                "ORDER BY a.site_id, a.tariff_id",
                list(site_ids),
            )
            for row in rows:
                found[row["site_id"]].setdefault(row["evse_uid"], []).append(row["tariff_id"])
        return found
