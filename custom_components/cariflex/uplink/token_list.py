"""The site's copy of the roaming tokens the cloud syncs (``tokens`` frames, ``docs/uplink.md``), in SQLite.

Kept in its own file next to the queue, so that it survives restarts and a site that lost the
cloud can still apply the whitelist rules (:mod:`..access.roaming`). :class:`RoamingTokenStore`
is synchronous and thread-safe (run it in an executor); :class:`AsyncRoamingTokenStore` wraps it
for the event loop. A file SQLite reports as corrupt is renamed aside and a fresh, empty list
starts: the next welcome brings the full list again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime
import json
import logging
from pathlib import Path
import sqlite3
import threading

from ..access.roaming import RoamingToken
from .queue import _is_corruption, _transaction

_LOGGER = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tokens (
    country_code TEXT NOT NULL,
    party_id TEXT NOT NULL,
    uid_key TEXT NOT NULL,
    type TEXT NOT NULL,
    last_updated TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (country_code, party_id, uid_key, type)
);
CREATE INDEX IF NOT EXISTS tokens_by_uid ON tokens (uid_key, last_updated);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class TokenListError(Exception):
    """The list cannot do what was asked (disk full, file locked...)."""


def _row(token: RoamingToken) -> tuple[str, str, str, str, str, str]:
    updated = token.last_updated.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # sorts as text
    return (*token.info.key, updated, json.dumps(token.as_wire(), separators=(",", ":")))


@dataclass(frozen=True, slots=True)
class _Figures:
    """What the list holds and when it was synced: replaced as a whole, so that a reader on
    another thread never sees a count from one write with a time from another."""

    count: int = 0
    synced_at: datetime | None = None
    fresh_at: datetime | None = None


class RoamingTokenStore:
    """The synced roaming list of a site (one SQLite file)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.set_aside: list[Path] = []
        """Corrupt files renamed aside by this object."""
        self._lock = threading.Lock()
        self._figures = _Figures()
        self._conn = self._open()

    @property
    def count(self) -> int:
        """Tokens on the list."""
        return self._figures.count

    @property
    def synced_at(self) -> datetime | None:
        """When the last complete full list was stored (None: never)."""
        return self._figures.synced_at

    @property
    def fresh_at(self) -> datetime | None:
        """The last moment the list was known equal to the cloud's (None: never synced)."""
        return self._figures.fresh_at

    def replace(self, tokens: Iterable[RoamingToken], at: datetime) -> None:
        """Make ``tokens`` the whole list (a complete full sync received at ``at``), in one transaction."""
        rows = [_row(token) for token in tokens]

        def op(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                conn.execute("DELETE FROM tokens")
                conn.executemany("INSERT OR REPLACE INTO tokens VALUES (?, ?, ?, ?, ?, ?)", rows)
                self._write_times(conn, at, synced=True)
            self._committed(conn, at, synced=True)

        self._run(op)

    def upsert(self, tokens: Iterable[RoamingToken], at: datetime) -> None:
        """Add or replace ``tokens`` (a delta received at ``at``)."""
        rows = [_row(token) for token in tokens]

        def op(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                conn.executemany("INSERT OR REPLACE INTO tokens VALUES (?, ?, ?, ?, ?, ?)", rows)
                self._write_times(conn, at, synced=False)
            self._committed(conn, at, synced=False)

        self._run(op)

    def mark_fresh(self, at: datetime) -> None:
        """The list was still equal to the cloud's at ``at`` (a synced connection ends)."""

        def op(conn: sqlite3.Connection) -> None:
            with _transaction(conn):
                self._write_times(conn, at, synced=False)
            self._committed(conn, at, synced=False, tokens_changed=False)

        self._run(op)

    def lookup(self, uid: str) -> RoamingToken | None:
        """The entry for the badge ``uid`` (case-insensitive; the most recently updated if several)."""

        def op(conn: sqlite3.Connection) -> RoamingToken | None:
            row = conn.execute(
                "SELECT body FROM tokens WHERE uid_key = ? ORDER BY last_updated DESC LIMIT 1", (uid.upper(),)
            ).fetchone()
            return None if row is None else RoamingToken.from_wire(json.loads(row[0]))

        return self._run(op)

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._conn.close()

    # -- plumbing -----------------------------------------------------------------------------

    def _write_times(self, conn: sqlite3.Connection, at: datetime, *, synced: bool) -> None:
        stamp = at.astimezone(UTC).isoformat()
        keys = ("synced_at", "fresh_at") if synced else ("fresh_at",)
        conn.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", [(key, stamp) for key in keys])

    def _committed(self, conn: sqlite3.Connection, at: datetime, *, synced: bool, tokens_changed: bool = True) -> None:
        # Once the transaction is in: readers on the event loop see the old figures or the new ones.
        old = self._figures
        count = conn.execute("SELECT COUNT(*) FROM tokens").fetchone()[0] if tokens_changed else old.count
        self._figures = _Figures(count, at if synced else old.synced_at, at)

    def _run[T](self, op: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            try:
                return op(self._conn)
            except sqlite3.DatabaseError as exc:
                if not _is_corruption(exc):
                    raise TokenListError(f"roaming token list {self.path}: {exc}") from exc
                self._conn.close()
                self._set_aside(exc)
                self._conn = self._open()
            return op(self._conn)  # once more, on the fresh list

    def _open(self) -> sqlite3.Connection:
        try:
            return self._connect()
        except sqlite3.DatabaseError as exc:
            if not _is_corruption(exc):
                raise TokenListError(f"roaming token list {self.path}: {exc}") from exc
            self._set_aside(exc)
            return self._connect()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10.0)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)
            times = dict(conn.execute("SELECT key, value FROM meta").fetchall())
            count = conn.execute("SELECT COUNT(*) FROM tokens").fetchone()[0]
        except sqlite3.DatabaseError:
            conn.close()
            raise
        self._figures = _Figures(
            count,
            datetime.fromisoformat(times["synced_at"]) if "synced_at" in times else None,
            datetime.fromisoformat(times["fresh_at"]) if "fresh_at" in times else None,
        )
        return conn

    def _set_aside(self, exc: sqlite3.DatabaseError) -> None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        self.path.rename(aside)
        for suffix in ("-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                self.path.with_name(self.path.name + suffix).rename(aside.with_name(aside.name + suffix))
        self.set_aside.append(aside)
        _LOGGER.error("Roaming token list %s is corrupt (%s): kept aside as %s, starting empty", self.path, exc, aside)


class AsyncRoamingTokenStore:
    """:class:`RoamingTokenStore` for the event loop: each call runs in a worker thread, one at a time."""

    def __init__(self, store: RoamingTokenStore) -> None:
        self.store = store
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: str | Path) -> AsyncRoamingTokenStore:
        """Open (or create) the list file in a worker thread."""
        return cls(await asyncio.to_thread(RoamingTokenStore, path))

    @property
    def count(self) -> int:
        """Tokens on the list."""
        return self.store.count

    @property
    def synced_at(self) -> datetime | None:
        """See :attr:`RoamingTokenStore.synced_at`."""
        return self.store.synced_at

    @property
    def fresh_at(self) -> datetime | None:
        """See :attr:`RoamingTokenStore.fresh_at`."""
        return self.store.fresh_at

    async def replace(self, tokens: list[RoamingToken], at: datetime) -> None:
        """See :meth:`RoamingTokenStore.replace`."""
        async with self._lock:
            await asyncio.to_thread(self.store.replace, tokens, at)

    async def upsert(self, tokens: list[RoamingToken], at: datetime) -> None:
        """See :meth:`RoamingTokenStore.upsert`."""
        async with self._lock:
            await asyncio.to_thread(self.store.upsert, tokens, at)

    async def mark_fresh(self, at: datetime) -> None:
        """See :meth:`RoamingTokenStore.mark_fresh`."""
        async with self._lock:
            await asyncio.to_thread(self.store.mark_fresh, at)

    async def lookup(self, uid: str) -> RoamingToken | None:
        """See :meth:`RoamingTokenStore.lookup`."""
        async with self._lock:
            return await asyncio.to_thread(self.store.lookup, uid)

    async def close(self) -> None:
        """See :meth:`RoamingTokenStore.close`."""
        async with self._lock:
            await asyncio.to_thread(self.store.close)
