"""Pushes to peers' Receiver interfaces, and the re-push of objects a peer may have missed.

A change first flags the object for each peer (``push_state``), then is pushed at once (a PATCH for an
EVSE status or a session's meter, the whole object otherwise). A push that fails is not queued: the flag
stays, and a background loop later sends the object's *latest* state in full, with exponential back-off,
until the peer takes it (offline behaviour of ``transport_and_format``). A success clears the flag only if
nothing changed since, and a PATCH never clears a flag left by a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import timedelta
import logging
from typing import Any

from ..context import Context
from ..events import Changes
from ..repo.core import CoreRepo
from ..repo.peers import REGISTERED, Peer, PeerRepo
from ..repo.push import PushRepo
from ..repo.sessions import SessionRepo
from ..repo.tariffs import TariffRepo
from . import views
from .client import PeerCallError
from .objects import tariff_object
from .transport import MISSING

_LOGGER = logging.getLogger(__name__)

type Delta = tuple[str, str, dict[str, Any]]  # (method, URL suffix, body)

_SITE_MODULES = ("locations", "sessions", "cdrs")  # what a site's events change


@dataclass(frozen=True)
class Job:
    peer_id: int
    module: str
    object_id: str
    version: int
    delta: Delta | None = None  # None: send the whole object


@dataclass(frozen=True)
class Request:
    method: str
    url: str
    body: Any
    owner: tuple[str, str]


async def mark_changed(
    ctx: Context,
    module: str,
    object_id: str,
    *,
    only_peer: int | None = None,
    due_in: float = 0.0,
    peers: list[Peer] | None = None,
) -> list[Job]:
    """Flag an object as changed for every peer that takes it; the full-object jobs (for the retry loop).

    Used by admin commands too (another process): the running service's loop pushes within
    ``ocpi.retry_interval``. ``peers``: the registered peers, when the caller just read them.
    """
    jobs: list[Job] = []
    now = ctx.clock()
    for peer in await PeerRepo(ctx.db).registered() if peers is None else peers:
        if peer.endpoint(module, "RECEIVER") is None or (only_peer is not None and peer.id != only_peer):
            continue
        async with ctx.db.transaction() as tx:
            version, _ = await PushRepo(tx).mark(peer.id, module, object_id, now + timedelta(seconds=due_in))
        jobs.append(Job(peer.id, module, object_id, version))
    return jobs


class Pusher:
    """One worker per peer keeps that peer's pushes in order; one loop re-pushes flagged objects."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._queues: dict[int, asyncio.Queue[Job]] = {}
        self._workers: dict[int, asyncio.Task[None]] = {}
        self._loop: asyncio.Task[None] | None = None

    # --- lifecycle ---

    async def start(self) -> None:
        await self._recover()
        self._loop = asyncio.create_task(self._retry_loop(), name="ocpi-repush")

    async def stop(self) -> None:
        tasks = [*self._workers.values(), *([self._loop] if self._loop else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._workers.clear()
        self._queues.clear()
        self._loop = None

    async def flush(self) -> None:
        """Wait until every queued push has been tried (tests, shutdown)."""
        for queue in list(self._queues.values()):
            await queue.join()

    async def _recover(self) -> None:
        """CDRs are billing: one created just before a crash gets flagged again."""
        repo = PushRepo(self.ctx.db)
        for cdr in await SessionRepo(self.ctx.db).undelivered_cdrs():
            assert cdr.peer_id is not None
            if not await repo.has(cdr.peer_id, "cdrs", cdr.id):
                await mark_changed(self.ctx, "cdrs", cdr.id, only_peer=cdr.peer_id)

    # --- changes ---

    async def on_changes(self, site_id: str, changes: Changes) -> None:
        """Flag and push what a site event changed (called by the store after its commit).

        Only for the modules some registered peer takes (a Receiver): otherwise there is nothing to flag,
        and nothing is read. An EVSE status change builds only that EVSE (what its PATCH sends).
        """
        peers = await PeerRepo(self.ctx.db).registered()
        takers = {module for module in _SITE_MODULES if any(peer.endpoint(module, "RECEIVER") for peer in peers)}
        if not takers:
            return
        if "locations" in takers:
            for location_id in changes.locations:
                await self.changed("locations", location_id, peers=peers)
            for uid, location_id in changes.evses.items():
                site = await CoreRepo(self.ctx.db).site(location_id)
                if site is None or site.info is None:  # pragma: no cover - a status needs an inventory
                    continue
                evse = await views.evse(self.ctx.db, site, uid)
                assert evse is not None
                delta = ("PATCH", f"/{uid}", {"status": evse["status"], "last_updated": evse["last_updated"]})
                await self.changed("locations", location_id, delta, peers=peers)
        sessions = SessionRepo(self.ctx.db)
        if "sessions" in takers:
            for session_id in changes.sessions_put | changes.sessions_patch:
                session = await sessions.get(session_id)
                assert session is not None
                if session.peer_id is None:
                    continue  # a local badge: nobody to tell
                update: Delta | None = None
                if session_id not in changes.sessions_put:
                    body = await views.session(self.ctx.db, session)
                    patch: dict[str, Any] = {
                        key: body[key] for key in ("kwh", "total_cost", "last_updated") if key in body
                    }
                    update = ("PATCH", "", patch)
                await self.changed("sessions", session_id, update, only_peer=session.peer_id, peers=peers)
        if "cdrs" in takers:
            for cdr_id in changes.cdrs:
                cdr = await sessions.cdr(cdr_id)
                assert cdr is not None
                assert cdr.peer_id is not None
                await self.changed("cdrs", cdr_id, only_peer=cdr.peer_id, peers=peers)

    async def changed(
        self,
        module: str,
        object_id: str,
        delta: Delta | None = None,
        *,
        only_peer: int | None = None,
        peers: list[Peer] | None = None,
    ) -> None:
        """Flag ``object_id`` for the peers that take ``module`` and push it now (``peers``: the registered
        peers, when the caller just read them)."""
        grace = self.ctx.config.ocpi.retry_initial + self.ctx.config.ocpi.request_timeout
        jobs = await mark_changed(self.ctx, module, object_id, only_peer=only_peer, due_in=grace, peers=peers)
        for job in jobs:
            self._enqueue(Job(job.peer_id, job.module, job.object_id, job.version, delta))

    def _enqueue(self, job: Job) -> None:
        queue = self._queues.get(job.peer_id)
        if queue is None:
            queue = self._queues[job.peer_id] = asyncio.Queue()
            self._workers[job.peer_id] = asyncio.create_task(self._worker(queue), name=f"ocpi-push-{job.peer_id}")
        queue.put_nowait(job)

    # --- sending ---

    async def _worker(self, queue: asyncio.Queue[Job]) -> None:
        while True:
            job = await queue.get()
            try:
                await self._attempt(job)
            except Exception:  # a bug must not stop the peer's pushes
                _LOGGER.exception("Push %s/%s to peer %s crashed", job.module, job.object_id, job.peer_id)
            finally:
                queue.task_done()

    def _delay(self, attempts: int) -> timedelta:
        o = self.ctx.config.ocpi
        return timedelta(seconds=min(o.retry_max, o.retry_initial * 2 ** max(attempts - 1, 0)))

    async def _attempt(self, job: Job) -> None:
        ctx = self.ctx
        peer = await PeerRepo(ctx.db).get(job.peer_id)
        if peer is None or peer.status != REGISTERED:
            return
        repo = PushRepo(ctx.db)
        full = job.delta is None or await self._failed_before(job)
        request = await self._request(peer, job, full)
        if request is None:
            await repo.done(job.peer_id, job.module, job.object_id, job.version, full=True)
            return
        to_party = (peer.parties("EMSP") or peer.parties())[0]
        try:
            answer = await ctx.client.call(
                peer,
                request.method,
                request.url,
                module=job.module,
                body=request.body,
                routing=(request.owner, to_party),
            )
            if not answer.ok:
                raise PeerCallError(
                    f"HTTP {answer.http_status}, status {answer.status_code} {answer.message or ''}".strip()
                )
        except PeerCallError as err:
            now = ctx.clock()
            async with ctx.db.transaction() as tx:
                row = await tx.fetchone(
                    "SELECT attempts FROM push_state WHERE peer_id = ? AND module = ? AND object_id = ?",
                    (job.peer_id, job.module, job.object_id),
                )
                attempts = (row["attempts"] if row else 0) + 1
                await PushRepo(tx).failed(job.peer_id, job.module, job.object_id, str(err), now + self._delay(attempts))
            _LOGGER.warning(
                "Push %s %s to peer %s failed (%s): flagged for a later full push",
                request.method,
                job.module,
                peer.id,
                err,
                extra={"peer": peer.id, "ocpi_module": job.module, "object": job.object_id},
            )
            return
        if job.module == "cdrs":
            await SessionRepo(ctx.db).cdr_delivered(job.object_id, answer.headers.get("Location"), ctx.clock())
        await repo.done(job.peer_id, job.module, job.object_id, job.version, full=full)

    async def _failed_before(self, job: Job) -> bool:
        row = await self.ctx.db.fetchone(
            "SELECT attempts FROM push_state WHERE peer_id = ? AND module = ? AND object_id = ?",
            (job.peer_id, job.module, job.object_id),
        )
        return row is not None and row["attempts"] > 0

    async def _request(self, peer: Peer, job: Job, full: bool) -> Request | None:
        """The HTTP request for a job; None when there is nothing (any more) to send."""
        base = peer.endpoint(job.module, "RECEIVER")
        if base is None:
            return None
        db = self.ctx.db
        if job.module == "locations":
            site = await CoreRepo(db).site(job.object_id)
            if site is None or site.info is None:  # no Location (yet)
                return None
            url = f"{base}/{site.country_code}/{site.party_id}/{site.id}"
            owner = (site.country_code, site.party_id)
            if not full:  # a PATCH sends what the change gave it: no need to build the Location
                assert job.delta is not None
                method, suffix, body = job.delta
                return Request(method, url + suffix, body, owner)
            location = await views.location(db, job.object_id)
            assert location is not None
            return Request("PUT", url, location, owner)
        if job.module == "sessions":
            session = await SessionRepo(db).get(job.object_id)
            if session is None:  # pragma: no cover - sessions are never deleted
                return None
            body = await views.session(db, session)
            url = f"{base}/{body['country_code']}/{body['party_id']}/{session.id}"
            owner = (body["country_code"], body["party_id"])
            if not full:
                assert job.delta is not None
                _, _, patch = job.delta
                return Request("PATCH", url, patch, owner)
            return Request("PUT", url, body, owner)
        if job.module == "cdrs":
            cdr = await SessionRepo(db).cdr(job.object_id)
            if cdr is None or cdr.delivered_at is not None:
                return None
            return Request("POST", base, cdr.body, (cdr.body["country_code"], cdr.body["party_id"]))
        assert job.module == "tariffs"
        tariff = await TariffRepo(db).get(job.object_id)
        if tariff is None:
            return None
        url = f"{base}/{tariff.country_code}/{tariff.party_id}/{tariff.id}"
        owner = (tariff.country_code, tariff.party_id)
        if tariff.deleted:
            return Request("DELETE", url, MISSING, owner)
        return Request("PUT", url, tariff_object(tariff), owner)

    # --- retry loop ---

    async def _retry_loop(self) -> None:
        interval = self.ctx.config.ocpi.retry_interval
        while True:
            await asyncio.sleep(interval)
            try:
                await self.retry_due()
            except Exception:
                _LOGGER.exception("Re-push loop failed")

    async def retry_due(self) -> int:
        """Queue a full push of every flagged object whose time has come; how many."""
        now = self.ctx.clock()
        repo = PushRepo(self.ctx.db)
        due = await repo.due(now)
        for dirty in due:
            await repo.postpone(dirty.peer_id, dirty.module, dirty.object_id, now + self._delay(dirty.attempts + 1))
            self._enqueue(Job(dirty.peer_id, dirty.module, dirty.object_id, dirty.version))
        return len(due)
