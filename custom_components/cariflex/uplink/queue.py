"""Store-and-forward queue of uplink events in SQLite (WAL, synchronous=FULL).

:class:`UplinkQueue` is synchronous and thread-safe: its methods are meant to run in an
executor thread. :class:`AsyncUplinkQueue` wraps it for the event loop; it runs one
operation at a time, in call order, so events keep the order in which they were appended.

Every event gets the next ``seq`` of a persisted counter (strictly +1, across restarts) and a
uuid4 ``id``, and is on disk before :meth:`UplinkQueue.append` returns. A file that SQLite
reports as corrupt is renamed aside (``<name>.corrupt-<UTC time>``, with its ``-wal``) and a
fresh queue starts in its place; the welcome of the next session then renumbers its events
(``docs/uplink.md``, "Reconciling the queue with the welcome").
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator, Mapping
import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime
import json
import logging
from pathlib import Path
import sqlite3
import threading
from typing import Any
import uuid

from .protocol import MAX_EVENT_DATA_BYTES, format_time

_LOGGER = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    at TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
_CORRUPTION_CODES = frozenset({sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB})


class QueueError(Exception):
    """The queue cannot do what was asked (disk full, file locked, unreadable...)."""


class QueueClosedError(QueueError):
    """The queue was closed (the site is stopping): nothing more can be queued."""


class _CorruptError(Exception):
    """SQLite says the file is not a sound database."""


@dataclass(frozen=True, slots=True)
class QueuedEvent:
    """One event waiting in the queue."""

    seq: int
    id: str
    kind: str
    at: str
    data: dict[str, Any]

    def frame(self) -> dict[str, Any]:
        """The ``event`` frame of this event."""
        return {"type": "event", "seq": self.seq, "id": self.id, "kind": self.kind, "at": self.at, "data": self.data}


@dataclass(frozen=True, slots=True)
class Reconciliation:
    """What a welcome did to the queue."""

    dropped: int
    """Events the cloud had already applied, removed."""
    renumbered: int
    """Events given new numbers after the cloud's ``last_seq``."""
    reason: str | None
    """Why they were renumbered (None when they were not)."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _is_corruption(exc: sqlite3.DatabaseError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in _CORRUPTION_CODES


class UplinkQueue:
    """The site's persistent event queue (one SQLite file)."""

    def __init__(self, path: str | Path, *, now: Callable[[], datetime] = _utcnow) -> None:
        self.path = Path(path)
        self.set_aside: list[Path] = []
        """Corrupt files renamed aside by this object (the Home Assistant glue reports them)."""
        self._now = now
        self._lock = threading.Lock()
        self.closed = False
        self._length = 0
        self._last_seq = 0
        self._last_ack_time: datetime | None = None
        try:
            self._conn = self._connect()
        except _CorruptError as exc:
            self._conn = self._start_afresh(exc)

    # -- state, read without touching the file ------------------------------------------------

    @property
    def length(self) -> int:
        """Number of events waiting for an ack."""
        return self._length

    @property
    def last_seq(self) -> int:
        """The last ``seq`` assigned (the counter)."""
        return self._last_seq

    @property
    def last_ack_time(self) -> datetime | None:
        """When the cloud last confirmed events (an ack or a welcome); None if never."""
        return self._last_ack_time

    # -- operations ---------------------------------------------------------------------------

    def append(self, kind: str, data: Mapping[str, Any], at: datetime) -> QueuedEvent:
        """Persist a new event and return it with its ``seq`` and ``id``.

        ``ValueError`` when the event cannot be sent: empty kind, naive ``at``, ``data`` that is
        not JSON (NaN, values JSON cannot encode) or over 1 MiB of JSON.
        """
        return self.append_many([(kind, data, at)])[0]

    def append_many(self, events: Iterable[tuple[str, Mapping[str, Any], datetime]]) -> list[QueuedEvent]:
        """Persist several ``(kind, data, at)`` events in one transaction (all or none), in order."""
        rows = [_encode(kind, data, at) for kind, data, at in events]

        def op(conn: sqlite3.Connection) -> list[QueuedEvent]:
            with _transaction(conn):
                first = _meta_int(conn, "last_seq") + 1
                conn.executemany(
                    "INSERT INTO events (seq, id, kind, at, data) VALUES (?, ?, ?, ?, ?)",
                    [(seq, event_id, kind, at, text) for seq, (event_id, kind, at, text, _) in enumerate(rows, first)],
                )
                _set_meta(conn, "last_seq", first + len(rows) - 1)
            self._last_seq = first + len(rows) - 1
            self._length += len(rows)
            return [
                QueuedEvent(seq, event_id, kind, at, decoded)
                for seq, (event_id, kind, at, _, decoded) in enumerate(rows, first)
            ]

        return self._run(op)

    def pending(self, after_seq: int = 0, limit: int = 100) -> list[QueuedEvent]:
        """Up to ``limit`` queued events with ``seq > after_seq``, in order."""

        def op(conn: sqlite3.Connection) -> list[QueuedEvent]:
            rows = conn.execute(
                "SELECT seq, id, kind, at, data FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (after_seq, limit)
            ).fetchall()
            return [QueuedEvent(seq, eid, kind, at, json.loads(data)) for seq, eid, kind, at, data in rows]

        return self._run(op)

    def ack(self, seq: int) -> int:
        """Delete every event with ``seq`` at most ``seq`` (the cloud applied them); how many."""

        def op(conn: sqlite3.Connection) -> int:
            now = self._now()
            with _transaction(conn):
                deleted = conn.execute("DELETE FROM events WHERE seq <= ?", (seq,)).rowcount
                _set_meta(conn, "last_ack_time", now.isoformat())
            self._length -= deleted
            self._last_ack_time = now
            return deleted

        return self._run(op)

    def reconcile(self, cloud_last_seq: int) -> Reconciliation:
        """Bring the queue in line with the welcome's ``last_seq`` (see ``docs/uplink.md``)."""
        n = cloud_last_seq

        def op(conn: sqlite3.Connection) -> Reconciliation:
            now = self._now()
            dropped = 0
            with _transaction(conn):
                counter = _meta_int(conn, "last_seq")
                synced = bool(_meta_int(conn, "synced"))
                if synced and n <= counter:
                    dropped = conn.execute("DELETE FROM events WHERE seq <= ?", (n,)).rowcount
                seqs = [row[0] for row in conn.execute("SELECT seq FROM events ORDER BY seq")]
                first = seqs[0] if seqs else counter + 1
                reason: str | None = None
                if first != n + 1:
                    if not synced:
                        reason = "the queue was never synced (new or set-aside file, restored backup)"
                    elif n > counter:
                        reason = f"the site is behind the cloud (its counter is {counter}, the cloud is at {n})"
                    else:
                        reason = f"the cloud lost events {n + 1}..{first - 1} it had acknowledged"
                    conn.execute("UPDATE events SET seq = -seq")
                    conn.executemany(
                        "UPDATE events SET seq = ? WHERE seq = ?",
                        [(n + index, -old) for index, old in enumerate(seqs, start=1)],
                    )
                    counter = n + len(seqs)
                _set_meta(conn, "last_seq", counter)
                _set_meta(conn, "synced", 1)
                _set_meta(conn, "last_ack_time", now.isoformat())
            self._last_seq = counter
            self._length = len(seqs)
            self._last_ack_time = now
            if reason is not None:
                _LOGGER.warning(
                    "Uplink queue %s: %s; %d queued events renumbered from %d", self.path, reason, len(seqs), n + 1
                )
            return Reconciliation(dropped, len(seqs) if reason else 0, reason)

        return self._run(op)

    def close(self) -> None:
        """Close the file (the queue cannot be used afterwards: :class:`QueueClosedError`)."""
        with self._lock:
            self.closed = True
            self._conn.close()

    # -- plumbing -----------------------------------------------------------------------------

    def _run[T](self, op: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            if self.closed:
                raise QueueClosedError(f"uplink queue {self.path} is closed")
            try:
                return op(self._conn)
            except sqlite3.DatabaseError as exc:
                if not _is_corruption(exc):
                    raise QueueError(f"uplink queue {self.path}: {exc}") from exc
                self._conn.close()
                self._conn = self._start_afresh(_CorruptError(str(exc)))
            return op(self._conn)  # once more, on the fresh queue

    def _connect(self) -> sqlite3.Connection:
        """Open (or create) the file; ``_CorruptError`` if SQLite finds it unsound."""
        conn: sqlite3.Connection | None = None
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10.0)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            check = conn.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise _CorruptError(check)
            conn.executescript(_SCHEMA)
            self._last_seq = _meta_int(conn, "last_seq")
            self._length = conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
            ack_time = _meta(conn, "last_ack_time")
            self._last_ack_time = datetime.fromisoformat(ack_time) if ack_time else None
        except (sqlite3.DatabaseError, _CorruptError) as exc:
            if conn is not None:
                conn.close()
            if isinstance(exc, _CorruptError):
                raise
            if _is_corruption(exc):
                raise _CorruptError(str(exc)) from exc
            raise QueueError(f"uplink queue {self.path}: {exc}") from exc
        return conn

    def _start_afresh(self, exc: _CorruptError) -> sqlite3.Connection:
        """Rename the corrupt file (and its WAL) aside and open a new, empty queue."""
        stamp = self._now().astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        aside = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        self.path.rename(aside)
        for suffix in ("-wal", "-shm"):
            companion = self.path.with_name(self.path.name + suffix)
            with contextlib.suppress(FileNotFoundError):
                companion.rename(aside.with_name(aside.name + suffix))
        self.set_aside.append(aside)
        _LOGGER.error(
            "Uplink queue %s is corrupt (%s): kept aside as %s; a new queue starts, "
            "events still waiting in the old file are not sent",
            self.path,
            exc,
            aside,
        )
        return self._connect()


def _encode(kind: str, data: Mapping[str, Any], at: datetime) -> tuple[str, str, str, str, dict[str, Any]]:
    """``(id, kind, at, data as JSON, data decoded)`` of a new event; ``ValueError`` if it cannot be sent."""
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"event kind must be a non-empty string, not {kind!r}")
    try:
        text = json.dumps(dict(data), allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{kind} event data is not JSON: {exc}") from exc
    size = len(text.encode())
    if size > MAX_EVENT_DATA_BYTES:
        raise ValueError(f"{kind} event data is {size} bytes, over {MAX_EVENT_DATA_BYTES}")
    return str(uuid.uuid4()), kind, format_time(at), text, json.loads(text)


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _meta(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else str(row[0])


def _meta_int(conn: sqlite3.Connection, key: str) -> int:
    return int(_meta(conn, key) or 0)


def _set_meta(conn: sqlite3.Connection, key: str, value: object) -> None:
    conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, str(value)))


class AsyncUplinkQueue:
    """:class:`UplinkQueue` for the event loop: each call runs in a worker thread, one at a time."""

    def __init__(self, queue: UplinkQueue) -> None:
        self.queue = queue
        self._lock = asyncio.Lock()
        self._append_listeners: list[Callable[[], None]] = []

    @classmethod
    async def open(cls, path: str | Path, *, now: Callable[[], datetime] = _utcnow) -> AsyncUplinkQueue:
        """Open (or create) the queue file in a worker thread."""
        return cls(await asyncio.to_thread(UplinkQueue, path, now=now))

    @property
    def length(self) -> int:
        """Number of events waiting for an ack."""
        return self.queue.length

    @property
    def last_seq(self) -> int:
        """The last ``seq`` assigned."""
        return self.queue.last_seq

    @property
    def last_ack_time(self) -> datetime | None:
        """When the cloud last confirmed events."""
        return self.queue.last_ack_time

    def on_append(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback()`` after each append; returns the function that unsubscribes."""
        self._append_listeners.append(callback)
        return lambda: self._append_listeners.remove(callback)

    async def append(self, kind: str, data: Mapping[str, Any], at: datetime) -> QueuedEvent:
        """See :meth:`UplinkQueue.append`."""
        return (await self.append_many([(kind, data, at)]))[0]

    async def append_many(self, events: Iterable[tuple[str, Mapping[str, Any], datetime]]) -> list[QueuedEvent]:
        """See :meth:`UplinkQueue.append_many`."""
        batch = list(events)
        async with self._lock:
            queued = await asyncio.to_thread(self.queue.append_many, batch)
        for callback in list(self._append_listeners):
            callback()
        return queued

    async def pending(self, after_seq: int = 0, limit: int = 100) -> list[QueuedEvent]:
        """See :meth:`UplinkQueue.pending`."""
        async with self._lock:
            return await asyncio.to_thread(self.queue.pending, after_seq, limit)

    async def ack(self, seq: int) -> int:
        """See :meth:`UplinkQueue.ack`."""
        async with self._lock:
            return await asyncio.to_thread(self.queue.ack, seq)

    async def reconcile(self, cloud_last_seq: int) -> Reconciliation:
        """See :meth:`UplinkQueue.reconcile`."""
        async with self._lock:
            return await asyncio.to_thread(self.queue.reconcile, cloud_last_seq)

    async def close(self) -> None:
        """See :meth:`UplinkQueue.close`."""
        async with self._lock:
            await asyncio.to_thread(self.queue.close)
