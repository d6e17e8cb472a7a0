"""OCPI peers, the tokens we issued to them, and what we last exchanged with them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
import json
from typing import Any

from ..storage import Executor, Row
from ..timeutil import db_dt, from_db

PENDING = "PENDING"
REGISTERED = "REGISTERED"
UNREGISTERED = "UNREGISTERED"

TOKEN_A = "A"  # noqa: S105 - a token kind, not a secret
TOKEN_C = "C"  # noqa: S105


@dataclass(frozen=True, kw_only=True)
class Peer:
    """Another OCPI platform (eMSP, hub, ...)."""

    id: int
    name: str
    status: str
    versions_url: str | None
    version: str | None
    endpoints: list[dict[str, Any]]
    roles: list[dict[str, Any]]
    token_out: str | None
    plain_auth: bool
    created_at: datetime
    last_exchange_at: datetime | None
    last_exchange: str | None
    last_error: str | None

    def endpoint(self, identifier: str, role: str) -> str | None:
        """URL of the peer's ``identifier`` module in ``role`` (SENDER/RECEIVER), if it has one."""
        for endpoint in self.endpoints:
            if endpoint.get("identifier") == identifier and (
                identifier == "credentials" or endpoint.get("role") == role
            ):
                return str(endpoint["url"])
        return None

    def parties(self, *roles: str) -> list[tuple[str, str]]:
        """(country_code, party_id) of the peer's roles (all of them when ``roles`` is empty)."""
        return [
            (str(role["country_code"]).upper(), str(role["party_id"]).upper())
            for role in self.roles
            if not roles or role.get("role") in roles
        ]

    def owns(self, country_code: str, party_id: str) -> bool:
        """Whether the peer declared this country code / party id in its roles."""
        return (country_code.upper(), party_id.upper()) in self.parties()


def _peer(row: Row) -> Peer:
    return Peer(
        id=row["id"],
        name=row["name"],
        status=row["status"],
        versions_url=row["versions_url"],
        version=row["version"],
        endpoints=json.loads(row["endpoints"]),
        roles=json.loads(row["roles"]),
        token_out=row["token_out"],
        plain_auth=bool(row["plain_auth"]),
        created_at=from_db(row["created_at"]),
        last_exchange_at=from_db(row["last_exchange_at"]) if row["last_exchange_at"] else None,
        last_exchange=row["last_exchange"],
        last_error=row["last_error"],
    )


class PeerRepo:
    """Peers and their tokens."""

    def __init__(self, ex: Executor) -> None:
        self.ex = ex

    async def create(self, name: str, now: datetime, *, status: str = PENDING) -> int:
        row = await self.ex.fetchone(
            "INSERT INTO peers (name, status, created_at, updated_at) VALUES (?, ?, ?, ?) RETURNING id",
            (name, status, db_dt(now), db_dt(now)),
        )
        assert row is not None
        return int(row["id"])

    async def get(self, peer_id: int) -> Peer | None:
        row = await self.ex.fetchone("SELECT * FROM peers WHERE id = ?", (peer_id,))
        return None if row is None else _peer(row)

    async def all(self) -> list[Peer]:
        return [_peer(row) for row in await self.ex.fetchall("SELECT * FROM peers ORDER BY id")]

    async def registered(self) -> list[Peer]:
        rows = await self.ex.fetchall("SELECT * FROM peers WHERE status = ? ORDER BY id", (REGISTERED,))
        return [_peer(row) for row in rows]

    async def add_token(self, peer_id: int, token_hash: str, kind: str, now: datetime) -> None:
        await self.ex.execute(
            "INSERT INTO peer_tokens (token_hash, peer_id, kind, created_at) VALUES (?, ?, ?, ?)",
            (token_hash, peer_id, kind, db_dt(now)),
        )

    async def by_token(self, token_hash: str) -> tuple[Peer, str] | None:
        """The peer a token we issued belongs to, and the token's kind (A or C)."""
        row = await self.ex.fetchone(
            "SELECT p.*, t.kind AS token_kind FROM peer_tokens t JOIN peers p ON p.id = t.peer_id WHERE t.token_hash = ?",
            (token_hash,),
        )
        return None if row is None else (_peer(row), str(row["token_kind"]))

    async def drop_tokens(self, peer_id: int, *, keep: str | None = None) -> None:
        """Forget every token issued to the peer, except the one with hash ``keep``."""
        await self.ex.execute("DELETE FROM peer_tokens WHERE peer_id = ? AND token_hash != ?", (peer_id, keep or ""))

    async def drop_tokens_matching(self, peer_id: int, token_hash: str) -> None:
        await self.ex.execute("DELETE FROM peer_tokens WHERE peer_id = ? AND token_hash = ?", (peer_id, token_hash))

    async def register(
        self,
        peer_id: int,
        *,
        versions_url: str,
        version: str,
        endpoints: list[dict[str, Any]],
        roles: list[dict[str, Any]],
        token_out: str,
        now: datetime,
    ) -> None:
        """Store the outcome of a credentials exchange."""
        await self.ex.execute(
            "UPDATE peers SET status = ?, versions_url = ?, version = ?, endpoints = ?, roles = ?, token_out = ?, "
            "updated_at = ? WHERE id = ?",
            (
                REGISTERED,
                versions_url,
                version,
                json.dumps(endpoints),
                json.dumps(roles),
                token_out,
                db_dt(now),
                peer_id,
            ),
        )

    async def unregister(self, peer_id: int, now: datetime) -> None:
        await self.ex.execute(
            "UPDATE peers SET status = ?, token_out = NULL, updated_at = ? WHERE id = ?",
            (UNREGISTERED, db_dt(now), peer_id),
        )
        await self.drop_tokens(peer_id)
        await self.ex.execute("DELETE FROM push_state WHERE peer_id = ?", (peer_id,))

    async def delete(self, peer_id: int) -> None:
        """Remove a peer that never registered."""
        await self.drop_tokens(peer_id)
        await self.ex.execute("DELETE FROM peers WHERE id = ?", (peer_id,))

    async def set_plain_auth(self, peer_id: int, plain: bool) -> None:
        await self.ex.execute("UPDATE peers SET plain_auth = ? WHERE id = ?", (int(plain), peer_id))

    async def record_exchange(self, peer_id: int, summary: str, error: str | None, now: datetime) -> None:
        await self.ex.execute(
            "UPDATE peers SET last_exchange_at = ?, last_exchange = ?, last_error = ? WHERE id = ?",
            (db_dt(now), summary, error, peer_id),
        )
