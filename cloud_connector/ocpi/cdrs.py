"""CDRs module, Sender interface: the requesting eMSP's CDRs (never changed once made)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any
import uuid

from aiohttp import web

from .. import billing
from ..context import Context
from ..repo.core import CoreRepo
from ..repo.sessions import Cdr, SessionRepo
from ..repo.tariffs import TariffRepo
from .common import ENDPOINTS, peer_of, sender_list
from .objects import tariff_object
from .push import mark_changed
from .transport import Page


async def list_cdrs(request: web.Request) -> web.Response:
    async def fetch(ctx: Context, page: Page) -> tuple[list[dict[str, Any]], int]:
        found, total = await SessionRepo(ctx.db).cdrs_for_peer(
            peer_of(request).id, page.date_from, page.date_to, page.offset, page.limit
        )
        return [cdr.body for cdr in found], total

    return await sender_list(request, fetch)


def routes() -> list[web.RouteDef]:
    path = ENDPOINTS["cdrs"][1]
    return [
        web.get(path, list_cdrs, name="ocpi.cdrs.list"),
        web.get(path + "/", list_cdrs, name="ocpi.cdrs.list-slash"),
    ]


# --- corrections (admin CLI) -------------------------------------------------------------------------


class CdrAdminError(Exception):
    """A CDR command cannot be done."""


async def credit_cdr(ctx: Context, cdr_id: str, *, reissue: bool = False, tariff_id: str | None = None) -> list[str]:
    """Credit a CDR (its costs negated, ``credit_reference_id`` set) and optionally issue a corrected one.

    CDRs are never changed: a correction is a Credit CDR then a new CDR with a new id. ``tariff_id`` prices
    the new CDR with that tariff instead of the ones valid when the session started. Returns the new ids.
    """
    repo = SessionRepo(ctx.db)
    original = await repo.cdr(cdr_id)
    if original is None:
        raise CdrAdminError(f"no CDR {cdr_id}")
    if original.credit:
        raise CdrAdminError("a Credit CDR cannot be credited")
    if original.credited_by:
        raise CdrAdminError(f"already credited by {original.credited_by}")
    now = ctx.clock()
    made = [f"{original.id}-C"]
    new_body: dict[str, Any] | None = None
    if reissue:
        session = await repo.get(original.session_id or "")
        if session is None or session.end_at is None:
            raise CdrAdminError("no finished session to issue a new CDR from")
        if tariff_id is not None:
            tariff = await TariffRepo(ctx.db).get(tariff_id)
            if tariff is None or tariff.deleted:
                raise CdrAdminError(f"no tariff {tariff_id}")
            session = replace(session, tariffs=[tariff_object(tariff)], currency=tariff.body["currency"])
        site = await CoreRepo(ctx.db).site(session.site_id)
        assert site is not None
        new_id = str(uuid.uuid4())
        new_body = billing.cdr_body(
            session,
            new_id,
            zone=billing.time_zone((site.info or {}).get("time_zone")),
            country_code=original.body["country_code"],
            party_id=original.body["party_id"],
            now=now,
        )
        made.append(new_id)
    async with ctx.db.transaction() as tx:
        writer = SessionRepo(tx)
        for cdr_body in [billing.credit_body(original.body, made[0], now), *([new_body] if new_body else [])]:
            await writer.add_cdr(
                Cdr(
                    id=cdr_body["id"],
                    session_id=original.session_id,
                    peer_id=original.peer_id,
                    body=cdr_body,
                    credit=bool(cdr_body.get("credit")),
                    credited_by=None,
                    emsp_url=None,
                    delivered_at=None,
                    last_updated=now,
                )
            )
        await writer.set_credited(original.id, made[0])
    for new in made:
        await mark_changed(ctx, "cdrs", new, only_peer=original.peer_id)
    return made
