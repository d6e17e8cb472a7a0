"""Tokens pushed by eMSPs (the CPO's cache for authorization)."""

from __future__ import annotations

from dataclasses import dataclass
import json
from typing import Any

from ..storage import Executor, Row
from ..timeutil import db_dt, parse_dt


@dataclass(frozen=True, kw_only=True)
class StoredToken:
    peer_id: int
    body: dict[str, Any]  # the Token object

    @property
    def whitelist(self) -> str:
        return str(self.body["whitelist"])

    @property
    def valid(self) -> bool:
        return bool(self.body["valid"])


def _token(row: Row) -> StoredToken:
    return StoredToken(peer_id=row["peer_id"], body=json.loads(row["body"]))


class TokenRepo:
    def __init__(self, ex: Executor) -> None:
        self.ex = ex

    async def get(self, country_code: str, party_id: str, uid: str, token_type: str) -> StoredToken | None:
        row = await self.ex.fetchone(
            "SELECT * FROM tokens WHERE country_code = ? AND party_id = ? AND uid_key = ? AND type = ?",
            (country_code.upper(), party_id.upper(), uid.upper(), token_type),
        )
        return None if row is None else _token(row)

    async def put(self, peer_id: int, body: dict[str, Any]) -> bool:
        """Insert or replace; True when the token is new."""
        key = (body["country_code"].upper(), body["party_id"].upper(), body["uid"].upper(), body["type"])
        existed = await self.ex.fetchone(
            "SELECT 1 AS x FROM tokens WHERE country_code = ? AND party_id = ? AND uid_key = ? AND type = ?", key
        )
        await self.ex.execute(
            "INSERT INTO tokens (country_code, party_id, uid_key, type, peer_id, body, valid, whitelist, last_updated) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (country_code, party_id, uid_key, type) DO UPDATE SET "
            "peer_id = excluded.peer_id, body = excluded.body, valid = excluded.valid, whitelist = excluded.whitelist, "
            "last_updated = excluded.last_updated",
            (
                *key,
                peer_id,
                json.dumps(body),
                int(body["valid"]),
                body["whitelist"],
                db_dt(parse_dt(body["last_updated"])),
            ),
        )
        return existed is None

    async def by_uid(self, uid: str) -> list[StoredToken]:
        """Every token with this uid (any eMSP, any type), most recently updated first."""
        rows = await self.ex.fetchall(
            "SELECT t.* FROM tokens t JOIN peers p ON p.id = t.peer_id WHERE t.uid_key = ? AND p.status = 'REGISTERED' "
            "ORDER BY t.last_updated DESC",
            (uid.upper(),),
        )
        return [_token(row) for row in rows]

    async def offline_list(self) -> list[StoredToken]:
        """Valid tokens that a site may accept on its own (whitelist ALWAYS, ALLOWED, ALLOWED_OFFLINE)."""
        rows = await self.ex.fetchall(
            "SELECT t.* FROM tokens t JOIN peers p ON p.id = t.peer_id WHERE p.status = 'REGISTERED' AND t.valid = 1 "
            "AND t.whitelist IN ('ALWAYS', 'ALLOWED', 'ALLOWED_OFFLINE') ORDER BY t.uid_key, t.type",
        )
        return [_token(row) for row in rows]
