"""The storage side of the site uplink (``uplink.UplinkStore``), and who hears about applied events."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
import json
import logging

from . import events
from .events import Changes, UnusableEvent
from .repo.core import CoreRepo
from .repo.inventory import InventoryRepo
from .secrets_util import hash_token
from .storage import Database
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

    def add_listener(self, callback: ChangeListener) -> None:
        """``await callback(site_id, changes)`` after each event that changed something (after the commit)."""
        self._listeners.append(callback)

    async def authenticate_site(self, token: str) -> str | None:
        return await CoreRepo(self.db).site_by_token(hash_token(token))

    async def last_seq(self, site_id: str) -> int:
        site = await CoreRepo(self.db).site(site_id)
        return site.last_seq if site else 0

    async def apply_event(self, site_id: str, event: UplinkEvent) -> bool:
        """Apply ``event`` exactly once (see ``uplink.UplinkStore``); True when it was new."""
        now = self.clock()
        changes = Changes()
        async with self.db.transaction() as tx:
            site = await CoreRepo(tx).site(site_id)
            if site is None:
                raise ValueError(f"unknown site {site_id}")
            if event.seq <= site.last_seq:
                return False
            if event.seq > site.last_seq + 1:
                raise ValueError(f"site {site_id}: event {event.seq} after {site.last_seq}")
            inventory = InventoryRepo(tx)
            seen = await tx.fetchone(
                "SELECT seq FROM uplink_events WHERE site_id = ? AND event_id = ?", (site_id, event.id)
            )
            await inventory.advance_seq(site_id, event.seq, now)
            if seen is not None:
                _LOGGER.warning("Site %s sent event id %s again as %d", site_id, event.id, event.seq)
                return False
            await inventory.record_event(
                site_id,
                event.seq,
                event_id=event.id,
                kind=event.kind,
                at=event.at.isoformat(),
                data=event.data,
                now=now,
            )
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
        if changes:
            for listener in self._listeners:
                try:
                    await listener(site_id, changes)
                except Exception:
                    _LOGGER.exception("Listener failed after event %d of site %s", event.seq, site_id)
        return True
