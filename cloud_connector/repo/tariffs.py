"""Operator-defined tariffs and where they apply."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
import json
from typing import Any

from ..storage import Executor, Row
from ..timeutil import db_dt, from_db
from .query import page, window


@dataclass(frozen=True, kw_only=True)
class Tariff:
    id: str
    country_code: str
    party_id: str
    body: dict[str, Any]
    deleted: bool
    last_updated: datetime


def _tariff(row: Row) -> Tariff:
    return Tariff(
        id=row["id"],
        country_code=row["country_code"],
        party_id=row["party_id"],
        body=json.loads(row["body"]),
        deleted=bool(row["deleted"]),
        last_updated=from_db(row["last_updated"]),
    )


class TariffRepo:
    def __init__(self, ex: Executor) -> None:
        self.ex = ex

    async def put(self, tariff: Tariff) -> None:
        await self.ex.execute(
            "INSERT INTO tariffs (id, country_code, party_id, body, deleted, last_updated) VALUES (?, ?, ?, ?, 0, ?) "
            "ON CONFLICT (id) DO UPDATE SET country_code = excluded.country_code, party_id = excluded.party_id, "
            "body = excluded.body, deleted = 0, last_updated = excluded.last_updated",
            (tariff.id, tariff.country_code, tariff.party_id, json.dumps(tariff.body), db_dt(tariff.last_updated)),
        )

    async def get(self, tariff_id: str) -> Tariff | None:
        row = await self.ex.fetchone("SELECT * FROM tariffs WHERE id = ?", (tariff_id,))
        return None if row is None else _tariff(row)

    async def many(self, ids: list[str]) -> list[Tariff]:
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        rows = await self.ex.fetchall(f"SELECT * FROM tariffs WHERE id IN ({marks}) ORDER BY id", ids)  # noqa: S608
        return [_tariff(row) for row in rows]

    async def mark_deleted(self, tariff_id: str, now: datetime) -> bool:
        changed = await self.ex.execute(
            "UPDATE tariffs SET deleted = 1, last_updated = ? WHERE id = ? AND deleted = 0", (db_dt(now), tariff_id)
        )
        await self.ex.execute("DELETE FROM tariff_assignments WHERE tariff_id = ?", (tariff_id,))
        return changed == 1

    async def live(
        self, date_from: datetime | None, date_to: datetime | None, offset: int, limit: int
    ) -> tuple[list[Tariff], int]:
        """Tariffs not deleted, oldest first, last updated in [date_from, date_to)."""
        where, params = window("last_updated", date_from, date_to)
        rows, total = await page(
            self.ex, "tariffs", "deleted = 0" + where, params, order="last_updated, id", offset=offset, limit=limit
        )
        return [_tariff(row) for row in rows], total

    async def all(self) -> list[Tariff]:
        return [_tariff(row) for row in await self.ex.fetchall("SELECT * FROM tariffs ORDER BY id")]

    async def assign(self, tariff_id: str, site_id: str, evse_uid: str) -> bool:
        changed = await self.ex.execute(
            "INSERT INTO tariff_assignments (tariff_id, site_id, evse_uid) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
            (tariff_id, site_id, evse_uid),
        )
        return changed == 1

    async def unassign(self, tariff_id: str, site_id: str, evse_uid: str) -> bool:
        changed = await self.ex.execute(
            "DELETE FROM tariff_assignments WHERE tariff_id = ? AND site_id = ? AND evse_uid = ?",
            (tariff_id, site_id, evse_uid),
        )
        return changed == 1

    async def sites_using(self, tariff_id: str) -> list[str]:
        rows = await self.ex.fetchall(
            "SELECT DISTINCT site_id FROM tariff_assignments WHERE tariff_id = ? ORDER BY site_id", (tariff_id,)
        )
        return [row["site_id"] for row in rows]
