"""Objects a peer may not hold in their latest state (the "dirty" flags of pushes)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ..storage import Executor
from ..timeutil import db_dt, from_db


@dataclass(frozen=True, kw_only=True)
class Dirty:
    peer_id: int
    module: str
    object_id: str
    version: int
    attempts: int
    next_attempt_at: datetime
    last_error: str | None


class PushRepo:
    def __init__(self, ex: Executor) -> None:
        self.ex = ex

    async def mark(self, peer_id: int, module: str, object_id: str, next_attempt: datetime) -> tuple[int, int]:
        """Flag the object as changed for the peer; (new version, failed attempts so far)."""
        row = await self.ex.fetchone(
            "INSERT INTO push_state (peer_id, module, object_id, version, attempts, next_attempt_at) "
            "VALUES (?, ?, ?, 1, 0, ?) ON CONFLICT (peer_id, module, object_id) DO UPDATE SET "
            "version = push_state.version + 1 RETURNING version, attempts",
            (peer_id, module, object_id, db_dt(next_attempt)),
        )
        assert row is not None
        return int(row["version"]), int(row["attempts"])

    async def done(self, peer_id: int, module: str, object_id: str, version: int, *, full: bool) -> None:
        """The peer took version ``version``: clear the flag unless the object changed since, or unless a
        failure left it and this was only a partial update (``full`` False)."""
        await self.ex.execute(
            "DELETE FROM push_state WHERE peer_id = ? AND module = ? AND object_id = ? AND version = ? "
            "AND (attempts = 0 OR ? = 1)",
            (peer_id, module, object_id, version, int(full)),
        )

    async def failed(self, peer_id: int, module: str, object_id: str, error: str, next_attempt: datetime) -> int:
        """Count a failed attempt; the number of failures so far."""
        row = await self.ex.fetchone(
            "UPDATE push_state SET attempts = attempts + 1, last_error = ?, next_attempt_at = ? "
            "WHERE peer_id = ? AND module = ? AND object_id = ? RETURNING attempts",
            (error, db_dt(next_attempt), peer_id, module, object_id),
        )
        return int(row["attempts"]) if row else 0

    async def postpone(self, peer_id: int, module: str, object_id: str, until: datetime) -> None:
        await self.ex.execute(
            "UPDATE push_state SET next_attempt_at = ? WHERE peer_id = ? AND module = ? AND object_id = ?",
            (db_dt(until), peer_id, module, object_id),
        )

    async def due(self, now: datetime) -> list[Dirty]:
        rows = await self.ex.fetchall(
            "SELECT s.* FROM push_state s JOIN peers p ON p.id = s.peer_id WHERE p.status = 'REGISTERED' "
            "AND s.next_attempt_at <= ? ORDER BY s.next_attempt_at",
            (db_dt(now),),
        )
        return [
            Dirty(
                peer_id=row["peer_id"],
                module=row["module"],
                object_id=row["object_id"],
                version=row["version"],
                attempts=row["attempts"],
                next_attempt_at=from_db(row["next_attempt_at"]),
                last_error=row["last_error"],
            )
            for row in rows
        ]

    async def has(self, peer_id: int, module: str, object_id: str) -> bool:
        row = await self.ex.fetchone(
            "SELECT 1 AS x FROM push_state WHERE peer_id = ? AND module = ? AND object_id = ?",
            (peer_id, module, object_id),
        )
        return row is not None
