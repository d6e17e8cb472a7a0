"""SQLite backend (aiosqlite, WAL) with forward-only numbered migrations."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine, Sequence
from contextlib import asynccontextmanager
from importlib import resources
import logging
import re
import sqlite3
from typing import Any

import aiosqlite

from ..timeutil import db_dt, utcnow
from . import Executor, MigrationError, Row, Work

_LOGGER = logging.getLogger(__name__)
# aiosqlite logs every statement it runs at DEBUG (with the repr of a callable): far too much for a service.
logging.getLogger("aiosqlite").setLevel(logging.INFO)
_MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, SQL) of every migration shipped with the program, in order."""
    found: list[tuple[int, str, str]] = []
    for entry in resources.files(__package__).joinpath("migrations", "sqlite").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    found.sort()
    return found


class _Tx:
    """The executor handed out inside a transaction (the lock is already held).

    One trip to aiosqlite's thread per statement (``execute_fetchall``; a write's cursor is not closed
    through another trip): every trip costs a future and a thread hand-off.
    """

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return [dict(row) for row in await self._conn.execute_fetchall(sql, params)]

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        cursor = await self._conn.execute(sql, params)
        return cursor.rowcount


class _ThreadTx:
    """The executor of :meth:`SqliteDatabase.run_transactions`: plain ``sqlite3`` calls in the database
    thread, so the works' coroutines never suspend."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return [dict(row) for row in self._conn.execute(sql, params).fetchall()]

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self._conn.execute(sql, params).rowcount


def _run_through[T](coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends to its end, without an event loop."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    coro.close()
    raise RuntimeError("a work of run_transactions awaited something else than its executor")


def _run_all[T](conn: sqlite3.Connection, works: Sequence[Work[T]]) -> list[T | Exception]:
    """In the database thread: each work in its own transaction."""
    tx = _ThreadTx(conn)
    results: list[T | Exception] = []
    for work in works:
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = _run_through(work(tx))
            conn.execute("COMMIT")
        except Exception as err:  # noqa: BLE001 - handed back as the work's outcome
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            results.append(err)
            continue
        except BaseException:  # pragma: no cover - KeyboardInterrupt and the like in a work
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        results.append(result)
    return results


class SqliteDatabase:
    """One aiosqlite connection; an asyncio lock keeps statements and transactions apart."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn
        self._tx = _Tx(conn)
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: str) -> SqliteDatabase:
        """Open (or create) the database file, switch to WAL and apply pending migrations."""
        conn = await aiosqlite.connect(path, isolation_level=None)
        conn.row_factory = sqlite3.Row
        try:
            await conn.execute("PRAGMA journal_mode=WAL")
            await conn.execute("PRAGMA foreign_keys=ON")
            await conn.execute("PRAGMA busy_timeout=5000")
            await conn.execute("PRAGMA synchronous=NORMAL")
            await _migrate(conn)
        except BaseException:
            await conn.close()
            raise
        return cls(conn)

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        async with self._lock:
            return await self._tx.fetchall(sql, params)

    async def fetchone(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        async with self._lock:
            return await self._tx.fetchone(sql, params)

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        async with self._lock:
            return await self._tx.execute(sql, params)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Executor]:
        async with self._lock:
            await self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._tx
            except BaseException:
                await self._conn.execute("ROLLBACK")
                raise
            await self._conn.execute("COMMIT")

    async def run_transactions[T](self, works: Sequence[Work[T]]) -> list[T | Exception]:
        """Each work in its own transaction, all of them in ONE trip to aiosqlite's thread.

        A statement through aiosqlite is a trip (a future, a queue, two thread wake-ups): a site event
        runs about 20. Here the works' coroutines are run to their end in the database thread, on plain
        ``sqlite3`` (``_ThreadTx``): the event loop is free meanwhile, and the works must not await anything
        else than their executor (``RuntimeError`` otherwise).
        """
        if not works:
            return []
        async with self._lock:
            # aiosqlite has no public way to run a function with its connection in its thread.
            raw = self._conn._conn
            result: list[T | Exception] = await self._conn._execute(_run_all, raw, works)  # type: ignore[no-untyped-call]
            return result

    async def close(self) -> None:
        await self._conn.close()
        # aiosqlite answers the close just before its worker thread returns: join it, so that nothing
        # outlives the database (a few instructions at most; tests check for stray threads).
        worker = getattr(self._conn, "_thread", None)
        if worker is not None:
            worker.join(timeout=1.0)


async def _migrate(conn: aiosqlite.Connection) -> None:
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    async with conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations") as cursor:
        row = await cursor.fetchone()
    current = int(row[0]) if row else 0
    known = migrations()
    latest = known[-1][0] if known else 0
    if current > latest:
        raise MigrationError(f"database schema {current} is newer than this program ({latest})")
    for version, name, sql in known:
        if version <= current:
            continue
        _LOGGER.info("Applying migration %04d_%s", version, name, extra={"migration": version})
        script = (
            f"BEGIN IMMEDIATE;\n{sql}\n"
            f"INSERT INTO schema_migrations (version, name, applied_at) VALUES ({version}, '{name}', '{db_dt(utcnow())}');\n"
            "COMMIT;"
        )
        try:
            await conn.executescript(script)
        except sqlite3.Error as err:
            if conn.in_transaction:
                await conn.execute("ROLLBACK")
            raise MigrationError(f"migration {version:04d}_{name} failed: {err}") from err
