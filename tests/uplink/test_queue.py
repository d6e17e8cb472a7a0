"""The site's store-and-forward queue on real SQLite files."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta, timezone
import logging
import math
from pathlib import Path
import sqlite3
from typing import Any
import uuid

import pytest

from custom_components.cariflex.uplink import (
    AsyncUplinkQueue,
    QueueClosedError,
    QueuedEvent,
    QueueError,
    Reconciliation,
    UplinkQueue,
)

AT = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 26, 12, 30, tzinfo=UTC)


def clock() -> datetime:
    return NOW


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "uplink.db"


def open_queue(path: Path) -> UplinkQueue:
    return UplinkQueue(path, now=clock)


def fill(queue: UplinkQueue, count: int) -> list[QueuedEvent]:
    return queue.append_many(("status", {"n": n}, AT) for n in range(count))


def seqs(queue: UplinkQueue) -> list[int]:
    return [event.seq for event in queue.pending(0, 1000)]


def test_append_assigns_the_next_seq_and_a_uuid4_and_persists(path: Path) -> None:
    queue = open_queue(path)
    first = queue.append("status", {"charger_id": "CP1", "status": "Available"}, AT)
    second = queue.append("session_start", {"session_id": "s1"}, AT.astimezone(timezone(timedelta(hours=-4))))
    assert (first.seq, second.seq) == (1, 2)
    assert uuid.UUID(first.id).version == 4
    assert first.id != second.id
    assert second.at == "2026-11-26T10:00:00Z"
    assert first.frame() == {
        "type": "event",
        "seq": 1,
        "id": first.id,
        "kind": "status",
        "at": "2026-11-26T10:00:00Z",
        "data": {"charger_id": "CP1", "status": "Available"},
    }
    assert (queue.length, queue.last_seq, queue.last_ack_time) == (2, 2, None)
    queue.close()

    again = open_queue(path)
    assert again.pending() == [first, second]
    assert (again.length, again.last_seq) == (2, 2)
    assert again.append("status", {}, AT).seq == 3
    again.close()


def test_pending_after_and_limit(path: Path) -> None:
    queue = open_queue(path)
    fill(queue, 10)
    assert [e.seq for e in queue.pending(3, 4)] == [4, 5, 6, 7]
    assert [e.data["n"] for e in queue.pending(8)] == [8, 9]
    assert queue.pending(10) == []
    queue.close()


def test_ack_deletes_up_to_seq_and_the_counter_goes_on(path: Path) -> None:
    queue = open_queue(path)
    fill(queue, 5)
    assert queue.ack(3) == 3
    assert seqs(queue) == [4, 5]
    assert (queue.length, queue.last_ack_time) == (2, NOW)
    assert queue.ack(3) == 0
    assert queue.ack(5) == 2
    queue.close()

    again = open_queue(path)
    assert (again.length, again.last_seq, again.last_ack_time) == (0, 5, NOW)
    assert again.append("status", {}, AT).seq == 6  # never reused, even with an empty queue
    again.close()


@pytest.mark.parametrize(
    ("kind", "data", "at", "message"),
    [
        ("", {}, AT, "non-empty string"),
        ("status", {}, datetime(2026, 11, 26, 10, 0), "naive"),
        ("status", {"power": math.nan}, AT, "not JSON"),
        ("status", {"when": AT}, AT, "not JSON"),
        ("status", {"curve": "x" * (1 << 20)}, AT, "over 1048576"),
    ],
)
def test_events_that_could_not_be_sent_are_refused(
    path: Path, kind: str, data: dict[str, Any], at: datetime, message: str
) -> None:
    queue = open_queue(path)
    queue.append("status", {}, AT)
    with pytest.raises(ValueError, match=message):
        queue.append_many([("status", {"ok": True}, AT), (kind, data, at)])
    assert (queue.length, queue.last_seq) == (1, 1)  # all or nothing
    queue.close()


# -- reconciliation with the cloud's welcome -------------------------------------------------


def synced_queue(path: Path, count: int, acked: int) -> UplinkQueue:
    """A queue that has seen a welcome, with events 1..count of which 1..acked were acknowledged."""
    queue = open_queue(path)
    fill(queue, count)
    assert queue.reconcile(0) == Reconciliation(0, 0, None)
    queue.ack(acked)
    return queue


def test_welcome_drops_what_the_cloud_applied(path: Path) -> None:
    queue = synced_queue(path, 6, acked=1)
    assert queue.reconcile(3) == Reconciliation(2, 0, None)
    assert seqs(queue) == [4, 5, 6]
    assert queue.last_seq == 6
    assert queue.reconcile(6) == Reconciliation(3, 0, None)
    assert queue.length == 0
    queue.close()


def test_fresh_queue_in_line_with_the_cloud_is_left_alone(path: Path) -> None:
    queue = open_queue(path)
    fill(queue, 3)
    assert queue.reconcile(0) == Reconciliation(0, 0, None)
    assert seqs(queue) == [1, 2, 3]
    queue.close()


def test_fresh_queue_never_drops_even_when_the_numbers_match(path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A new queue file whose 1..5 coincide with the cloud's last_seq 5: new events, not duplicates."""
    queue = open_queue(path)
    events = fill(queue, 5)
    result = queue.reconcile(5)
    assert result.dropped == 0
    assert result.renumbered == 5
    assert "never synced" in str(result.reason)
    pending = queue.pending()
    assert [e.seq for e in pending] == [6, 7, 8, 9, 10]
    assert [e.id for e in pending] == [e.id for e in events]  # same events, new numbers
    assert queue.last_seq == 10
    assert queue.append("status", {}, AT).seq == 11
    assert "renumbered from 6" in caplog.text
    queue.close()
    again = open_queue(path)  # synced now: a later welcome drops normally
    assert again.reconcile(8) == Reconciliation(3, 0, None)
    again.close()


def test_site_behind_the_cloud_renumbers(path: Path) -> None:
    queue = synced_queue(path, 5, acked=3)
    result = queue.reconcile(9)
    assert result == Reconciliation(0, 2, "the site is behind the cloud (its counter is 5, the cloud is at 9)")
    assert seqs(queue) == [10, 11]
    assert queue.last_seq == 11
    queue.close()


def test_site_behind_the_cloud_with_nothing_queued_moves_its_counter(path: Path) -> None:
    queue = synced_queue(path, 5, acked=5)
    assert queue.reconcile(8).renumbered == 0
    assert queue.last_seq == 8
    assert queue.append("status", {}, AT).seq == 9
    queue.close()


def test_cloud_that_lost_events_gets_the_queue_from_its_last_seq(path: Path) -> None:
    queue = synced_queue(path, 5, acked=3)
    assert queue.reconcile(1) == Reconciliation(0, 2, "the cloud lost events 2..3 it had acknowledged")
    assert seqs(queue) == [2, 3]
    assert queue.last_seq == 3
    queue.close()


def test_cloud_that_lost_events_with_nothing_queued(path: Path) -> None:
    queue = synced_queue(path, 5, acked=5)
    assert queue.reconcile(2).reason == "the cloud lost events 3..5 it had acknowledged"
    assert queue.append("status", {}, AT).seq == 3
    queue.close()


def test_fresh_empty_queue_starts_after_the_cloud(path: Path) -> None:
    queue = open_queue(path)
    assert queue.reconcile(7).reason is not None
    assert queue.last_ack_time == NOW
    assert queue.append("status", {}, AT).seq == 8
    queue.close()


# -- corruption and errors -----------------------------------------------------------------------


def test_garbage_file_is_set_aside(path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path.write_bytes(b"garbage" * 1000)
    queue = open_queue(path)
    assert queue.set_aside == [path.with_name("uplink.db.corrupt-20261126T123000000000Z")]
    assert queue.set_aside[0].read_bytes() == b"garbage" * 1000
    assert (queue.length, queue.last_seq) == (0, 0)
    assert queue.append("status", {}, AT).seq == 1
    assert "is corrupt" in caplog.text
    assert caplog.records[0].levelno == logging.ERROR
    queue.close()


def test_damaged_pages_are_found_at_open(path: Path) -> None:
    queue = open_queue(path)
    fill(queue, 400)
    queue.close()
    with path.open("r+b") as raw:  # a b-tree page's cell pointers
        raw.seek(4096 * 2 + 8)
        raw.write(b"\xff" * 6)
    queue = open_queue(path)
    assert len(queue.set_aside) == 1
    assert queue.length == 0
    queue.close()


def test_corruption_found_while_running(path: Path) -> None:
    queue = open_queue(path)
    fill(queue, 300)
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as other:  # makes the queue re-read its pages
        other.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        other.execute("INSERT OR REPLACE INTO meta VALUES ('touched', '1')")
        size = path.stat().st_size
        with path.open("r+b") as raw:
            raw.seek(8192)
            raw.write(b"\x5a" * (size - 8192))
        event = queue.append("status", {"after": True}, AT)
    assert len(queue.set_aside) == 1
    aside = queue.set_aside[0]
    assert aside.with_name(aside.name + "-wal").exists()  # the WAL goes aside with its database
    assert event.seq == 1  # on the fresh queue
    assert [e.data for e in queue.pending()] == [{"after": True}]
    queue.close()


def test_unusable_path_is_a_queue_error(tmp_path: Path) -> None:
    with pytest.raises(QueueError, match="unable to open"):
        UplinkQueue(tmp_path)


def test_closed_queue_is_a_queue_error(path: Path) -> None:
    queue = open_queue(path)
    queue.close()
    assert queue.closed
    with pytest.raises(QueueClosedError, match="is closed"):
        queue.pending()
    with pytest.raises(QueueError):
        queue.append("status", {"charger_id": "CP1"}, clock())


# -- the event loop wrapper ----------------------------------------------------------------------


async def test_async_queue_keeps_call_order_and_notifies(path: Path) -> None:
    queue = await AsyncUplinkQueue.open(path, now=clock)
    appended: list[int] = []
    unsubscribe = queue.on_append(lambda: appended.append(queue.length))
    events = await asyncio.gather(*(queue.append("status", {"n": n}, AT) for n in range(30)))
    assert [e.seq for e in events] == list(range(1, 31))
    assert [e.data["n"] for e in events] == list(range(30))
    assert appended == list(range(1, 31))
    unsubscribe()
    batch = await queue.append_many([("status", {"n": 30}, AT), ("status", {"n": 31}, AT)])
    assert [e.seq for e in batch] == [31, 32]
    assert len(appended) == 30
    assert [e.seq for e in await queue.pending(30, 5)] == [31, 32]
    assert await queue.ack(10) == 10
    assert (queue.length, queue.last_seq, queue.last_ack_time) == (22, 32, NOW)
    assert await queue.reconcile(10) == Reconciliation(0, 0, None)
    assert (await queue.reconcile(12)).dropped == 2
    await queue.close()
