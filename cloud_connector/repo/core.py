"""CPO parties, sites (with their uplink tokens) and operator tokens."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
import json
from typing import Any

from ..storage import Executor, Row
from ..timeutil import db_dt, from_db


@dataclass(frozen=True, kw_only=True)
class Party:
    """One of our CPO identities (country code + party id)."""

    country_code: str
    party_id: str
    name: str
    website: str | None


@dataclass(frozen=True, kw_only=True)
class Site:
    """An installation; its id is the OCPI Location.id."""

    id: str
    country_code: str
    party_id: str
    name: str
    publish: bool
    last_seq: int
    info: dict[str, Any] | None
    last_updated: datetime | None
    created_at: datetime
    last_event_at: datetime | None


def _party(row: Row) -> Party:
    return Party(country_code=row["country_code"], party_id=row["party_id"], name=row["name"], website=row["website"])


def _site(row: Row) -> Site:
    return Site(
        id=row["id"],
        country_code=row["country_code"],
        party_id=row["party_id"],
        name=row["name"],
        publish=bool(row["publish"]),
        last_seq=row["last_seq"],
        info=json.loads(row["info"]) if row["info"] else None,
        last_updated=from_db(row["last_updated"]) if row["last_updated"] else None,
        created_at=from_db(row["created_at"]),
        last_event_at=from_db(row["last_event_at"]) if row["last_event_at"] else None,
    )


class CoreRepo:
    """Parties, sites, operator tokens."""

    def __init__(self, ex: Executor) -> None:
        self.ex = ex

    async def add_party(self, party: Party, now: datetime) -> bool:
        """False when the party already exists."""
        changed = await self.ex.execute(
            "INSERT INTO parties (country_code, party_id, name, website, created_at) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING",
            (party.country_code, party.party_id, party.name, party.website, db_dt(now)),
        )
        return changed == 1

    async def parties(self) -> list[Party]:
        rows = await self.ex.fetchall("SELECT * FROM parties ORDER BY country_code, party_id")
        return [_party(row) for row in rows]

    async def add_site(self, site_id: str, party: Party, name: str, token_hash: str, now: datetime) -> bool:
        """False when the id is taken."""
        changed = await self.ex.execute(
            "INSERT INTO sites (id, country_code, party_id, name, token_hash, created_at) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING",
            (site_id, party.country_code, party.party_id, name, token_hash, db_dt(now)),
        )
        return changed == 1

    async def site(self, site_id: str) -> Site | None:
        row = await self.ex.fetchone("SELECT * FROM sites WHERE id = ?", (site_id,))
        return None if row is None else _site(row)

    async def sites_by_id(self, site_ids: list[str]) -> dict[str, Site]:
        """The sites among ``site_ids`` (at least one) that exist."""
        marks = ",".join("?" * len(site_ids))
        rows = await self.ex.fetchall(f"SELECT * FROM sites WHERE id IN ({marks})", site_ids)  # noqa: S608
        return {row["id"]: _site(row) for row in rows}

    async def sites(self) -> list[Site]:
        return [_site(row) for row in await self.ex.fetchall("SELECT * FROM sites ORDER BY created_at, id")]

    async def site_by_token(self, token_hash: str) -> str | None:
        row = await self.ex.fetchone("SELECT id FROM sites WHERE token_hash = ?", (token_hash,))
        return None if row is None else str(row["id"])

    async def set_site_token(self, site_id: str, token_hash: str) -> bool:
        return await self.ex.execute("UPDATE sites SET token_hash = ? WHERE id = ?", (token_hash, site_id)) == 1

    async def set_site_publish(self, site_id: str, publish: bool, now: datetime) -> bool:
        return (
            await self.ex.execute(
                "UPDATE sites SET publish = ?, last_updated = ? WHERE id = ?", (int(publish), db_dt(now), site_id)
            )
            == 1
        )

    async def add_admin_token(self, name: str, token_hash: str, now: datetime) -> None:
        await self.ex.execute(
            "INSERT INTO admin_tokens (token_hash, name, created_at) VALUES (?, ?, ?)", (token_hash, name, db_dt(now))
        )

    async def admin_token_name(self, token_hash: str) -> str | None:
        row = await self.ex.fetchone("SELECT name FROM admin_tokens WHERE token_hash = ?", (token_hash,))
        return None if row is None else str(row["name"])
