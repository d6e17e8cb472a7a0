"""A small SQLite implementation of ``UplinkStore`` for the uplink tests (sqlite3, real transactions).

Its "effects" are a log: every application of an event adds one row to ``effects``, so an
event applied twice, or out of order, shows there. ``status`` events also upsert a
``statuses`` row, the way the real store updates its connector table.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
import sqlite3
from typing import Any

from cloud_connector.uplink import UplinkEvent

SCHEMA = """
CREATE TABLE IF NOT EXISTS sites (site_id TEXT PRIMARY KEY, token TEXT NOT NULL UNIQUE, last_seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    site_id TEXT NOT NULL, seq INTEGER NOT NULL, id TEXT NOT NULL, kind TEXT NOT NULL, at TEXT NOT NULL,
    data TEXT NOT NULL, PRIMARY KEY (site_id, seq), UNIQUE (site_id, id)
);
CREATE TABLE IF NOT EXISTS effects (n INTEGER PRIMARY KEY, site_id TEXT NOT NULL, seq INTEGER NOT NULL,
    id TEXT NOT NULL, kind TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS statuses (site_id TEXT NOT NULL, charger_id TEXT NOT NULL, status TEXT NOT NULL,
    PRIMARY KEY (site_id, charger_id));
"""


class SqliteUplinkStore:
    """``UplinkStore`` over one SQLite file.

    Plain sqlite3 called from the event loop: each call is a few tens of microseconds, and it
    keeps the store free of threads. Every ``apply_event`` is one ``BEGIN IMMEDIATE`` transaction.
    """

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.fail_next_apply: Exception | None = None
        """Raised by the next ``apply_event`` (to test a store failure)."""

    @classmethod
    async def open(cls, path: Path | str) -> SqliteUplinkStore:
        db = sqlite3.connect(path, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(SCHEMA)
        return cls(db)

    async def close(self) -> None:
        self.db.close()

    async def add_site(self, site_id: str, token: str) -> None:
        self.db.execute("INSERT OR IGNORE INTO sites VALUES (?, ?, 0)", (site_id, token))

    async def authenticate_site(self, token: str) -> str | None:
        row = self.db.execute("SELECT site_id FROM sites WHERE token = ?", (token,)).fetchone()
        return None if row is None else str(row[0])

    async def last_seq(self, site_id: str) -> int:
        return int(self.db.execute("SELECT last_seq FROM sites WHERE site_id = ?", (site_id,)).fetchone()[0])

    async def apply_event(self, site_id: str, event: UplinkEvent) -> bool:
        if self.fail_next_apply is not None:
            exc, self.fail_next_apply = self.fail_next_apply, None
            raise exc
        self.db.execute("BEGIN IMMEDIATE")
        try:
            applied = self._apply(site_id, event)
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")
        return applied

    def _apply(self, site_id: str, event: UplinkEvent) -> bool:
        last = int(self.db.execute("SELECT last_seq FROM sites WHERE site_id = ?", (site_id,)).fetchone()[0])
        if event.seq <= last:
            return False
        if event.seq > last + 1:
            raise ValueError(f"gap: event {event.seq} after {last}")
        self.db.execute("UPDATE sites SET last_seq = ? WHERE site_id = ?", (event.seq, site_id))
        if self.db.execute("SELECT 1 FROM events WHERE site_id = ? AND id = ?", (site_id, event.id)).fetchone():
            return False
        self.db.execute(
            "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?)",
            (site_id, event.seq, event.id, event.kind, event.at.isoformat(), json.dumps(event.data)),
        )
        self.db.execute(
            "INSERT INTO effects (site_id, seq, id, kind) VALUES (?, ?, ?, ?)",
            (site_id, event.seq, event.id, event.kind),
        )
        if event.kind == "status" and isinstance(event.data.get("charger_id"), str):
            self.db.execute(
                "INSERT OR REPLACE INTO statuses VALUES (?, ?, ?)",
                (site_id, event.data["charger_id"], str(event.data.get("status"))),
            )
        return True


def read_effects(path: Path, site_id: str) -> list[tuple[int, str, dict[str, Any]]]:
    """``(seq, id, data)`` of every application of an event of ``site_id``, in application order.

    Read with plain sqlite3 (any process may read the file while the server writes it).
    """
    with contextlib.closing(sqlite3.connect(path)) as conn:
        rows = conn.execute(
            "SELECT f.seq, f.id, e.data FROM effects f JOIN events e ON e.site_id = f.site_id AND e.id = f.id "
            "WHERE f.site_id = ? ORDER BY f.n",
            (site_id,),
        ).fetchall()
    return [(seq, event_id, json.loads(data)) for seq, event_id, data in rows]


def count_effects(path: Path) -> int:
    """How many events were applied so far (0 before the schema exists)."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        try:
            return int(conn.execute("SELECT COUNT(*) FROM effects").fetchone()[0])
        except sqlite3.OperationalError:
            return 0
