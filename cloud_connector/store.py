"""The storage side of the site uplink (``uplink.UplinkStore``), and who hears about applied events."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
import functools
import json
import logging

from . import events
from .events import Changes, UnusableEvent
from .repo.core import CoreRepo
from .repo.inventory import InventoryRepo
from .secrets_util import hash_token
from .storage import Database, Executor
from .timeutil import Clock
from .uplink import UplinkEvent

_LOGGER = logging.getLogger(__name__)

type ChangeListener = Callable[[str, Changes], Awaitable[None]]


class CloudStore:
    """Sites authenticate here; their events are applied here, each in one transaction, in ``seq`` order."""

    def __init__(self, db: Database, clock: Clock, *, currency: str) -> None:
        self.db = db
        self.clock = clock
        self.currency = currency
        self._listeners: list[ChangeListener] = []
        self._pending: list[_Pending] = []
        self._batch_lock = asyncio.Lock()

    def add_listener(self, callback: ChangeListener) -> None:
        """``await callback(site_id, changes)`` after each event that changed something (after the commit)."""
        self._listeners.append(callback)

    async def authenticate_site(self, token: str) -> str | None:
        return await CoreRepo(self.db).site_by_token(hash_token(token))

    async def last_seq(self, site_id: str) -> int:
        site = await CoreRepo(self.db).site(site_id)
        return site.last_seq if site else 0

    async def apply_event(self, site_id: str, event: UplinkEvent) -> bool:
        """Apply ``event`` exactly once (see ``uplink.UplinkStore``); True when it was new.

        Events of many sites arrive together: those waiting for the database are applied as one batch
        (``Database.run_transactions``: one transaction each, one trip to the database thread for all).
        """
        item = _Pending(site_id, event, self.clock(), asyncio.get_running_loop().create_future())
        self._pending.append(item)
        try:
            async with self._batch_lock:
                if not item.outcome.done():
                    batch, self._pending = self._pending, []
                    # shielded: a cancelled caller must not leave the others of its batch without an answer
                    await asyncio.shield(self._run_batch(batch))
        except asyncio.CancelledError:
            if item in self._pending:  # not applied: the caller is gone
                self._pending.remove(item)
            raise
        applied, changes = item.outcome.result()
        if changes:
            for listener in self._listeners:
                try:
                    await listener(site_id, changes)
                except Exception:
                    _LOGGER.exception("Listener failed after event %d of site %s", event.seq, site_id)
        return applied

    async def _run_batch(self, batch: list[_Pending]) -> None:
        try:
            results = await self.db.run_transactions(
                [functools.partial(self._apply, item.site_id, item.event, item.now) for item in batch]
            )
        except Exception as err:  # noqa: BLE001 - the database failed: every caller of the batch gets the error
            results = [err] * len(batch)
        for item, result in zip(batch, results, strict=True):
            if item.outcome.done():  # pragma: no cover - its caller was cancelled meanwhile
                continue
            if isinstance(result, Exception):
                item.outcome.set_exception(result)
            else:
                item.outcome.set_result(result)

    async def _apply(self, site_id: str, event: UplinkEvent, now: datetime, tx: Executor) -> tuple[bool, Changes]:
        """The transaction of one event: (whether it was new, what it changed)."""
        site = await CoreRepo(tx).site(site_id)
        if site is None:
            raise ValueError(f"unknown site {site_id}")
        if event.seq <= site.last_seq:
            return False, Changes()
        if event.seq > site.last_seq + 1:
            raise ValueError(f"site {site_id}: event {event.seq} after {site.last_seq}")
        inventory = InventoryRepo(tx)
        seen = await tx.fetchone(
            "SELECT seq FROM uplink_events WHERE site_id = ? AND event_id = ?", (site_id, event.id)
        )
        await inventory.advance_seq(site_id, event.seq, now)
        if seen is not None:
            _LOGGER.warning("Site %s sent event id %s again as %d", site_id, event.id, event.seq)
            return False, Changes()
        await inventory.record_event(
            site_id,
            event.seq,
            event_id=event.id,
            kind=event.kind,
            at=event.at.isoformat(),
            data=event.data,
            now=now,
        )
        changes = Changes()
        await tx.execute("SAVEPOINT effect")
        try:
            changes = await events.apply(tx, site, event.kind, event.data, now=now, currency=self.currency)
        except UnusableEvent as err:
            await tx.execute("ROLLBACK TO SAVEPOINT effect")
            _LOGGER.warning(
                "Site %s event %d (%s) has no effect: %s",
                site_id,
                event.seq,
                event.kind,
                err,
                extra={"site": site_id, "seq": event.seq, "data": json.dumps(event.data)[:500]},
            )
        await tx.execute("RELEASE SAVEPOINT effect")
        return True, changes


@dataclass(eq=False)
class _Pending:
    """An event waiting for its batch."""

    site_id: str
    event: UplinkEvent
    now: datetime
    outcome: asyncio.Future[tuple[bool, Changes]]
