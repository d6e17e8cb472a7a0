"""What request handlers, background tasks and admin commands share."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from dataclasses import dataclass, field
import logging
from typing import TYPE_CHECKING, Any

import aiohttp

from .config import Config
from .ocpi.views import LocationCache
from .ports import SiteHubPort
from .repo.core import CoreRepo, Party
from .storage import Database
from .timeutil import Clock, utcnow

if TYPE_CHECKING:
    from .ocpi.client import OcpiClient

_LOGGER = logging.getLogger(__name__)

OCPI_VERSION = "2.2.1"


@dataclass(kw_only=True)
class Context:
    """Configuration, database, HTTP client, site hub and clock."""

    config: Config
    db: Database
    http: aiohttp.ClientSession
    client: OcpiClient
    hub: SiteHubPort
    clock: Clock = utcnow
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    locations: LocationCache = field(default_factory=LocationCache)

    def spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        """Run ``work`` after the current request (a command's result); kept until done, logged if it fails."""
        task = asyncio.create_task(work, name=name)
        self.tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            _LOGGER.error("Background task %s failed", task.get_name(), exc_info=task.exception())

    async def drain(self, *, cancel: bool = False) -> None:
        """Wait for the background tasks (or cancel them).

        Only tasks not done yet are waited for: a finished task stays in ``tasks`` until its done callback
        runs, and waiting for done tasks would never yield to let it run.
        """
        while pending := [task for task in self.tasks if not task.done()]:
            if cancel:
                for task in pending:
                    task.cancel()
            await asyncio.wait(pending)

    def url(self, path: str) -> str:
        """Public URL of one of our paths."""
        return f"{self.config.public_url}{path}"

    @property
    def versions_url(self) -> str:
        return self.url("/ocpi/versions")

    async def parties(self) -> list[Party]:
        return await CoreRepo(self.db).parties()

    async def default_party(self) -> tuple[str, str] | None:
        """Our first CPO party, for routing headers when nothing more specific is known."""
        parties = await self.parties()
        return (parties[0].country_code, parties[0].party_id) if parties else None
