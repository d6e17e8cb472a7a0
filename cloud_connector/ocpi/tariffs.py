"""Tariffs module, Sender interface (the operator's tariffs), and their administration."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..context import Context
from ..repo.core import CoreRepo
from ..repo.inventory import InventoryRepo
from ..repo.tariffs import Tariff, TariffRepo
from ..tariffs import Tariff as PricingTariff, TariffError
from .common import ENDPOINTS, sender_list
from .objects import tariff_object
from .push import mark_changed
from .schema import TARIFF_INPUT, Invalid, ci, validate
from .transport import Page


async def list_tariffs(request: web.Request) -> web.Response:
    async def fetch(ctx: Context, page: Page) -> tuple[list[dict[str, Any]], int]:
        found, total = await TariffRepo(ctx.db).live(page.date_from, page.date_to, page.offset, page.limit)
        return [tariff_object(tariff) for tariff in found], total

    return await sender_list(request, fetch)


def routes() -> list[web.RouteDef]:
    path = ENDPOINTS["tariffs"][1]
    return [
        web.get(path, list_tariffs, name="ocpi.tariffs.list"),
        web.get(path + "/", list_tariffs, name="ocpi.tariffs.list-slash"),
    ]


# --- administration (admin CLI) ----------------------------------------------------------------------


class TariffAdminError(Exception):
    """A tariff command cannot be done."""


async def set_tariff(ctx: Context, tariff_id: str, raw: Any, party: tuple[str, str]) -> dict[str, Any]:
    """Create or replace a tariff (flagged for every eMSP: the running service pushes it)."""
    try:
        ci(36).check(tariff_id, "id")
        body = validate(TARIFF_INPUT, raw)
    except Invalid as err:
        raise TariffAdminError(str(err)) from None
    tariff = Tariff(
        id=tariff_id, country_code=party[0], party_id=party[1], body=body, deleted=False, last_updated=ctx.clock()
    )
    try:
        PricingTariff.from_ocpi(tariff_object(tariff))
    except TariffError as err:
        raise TariffAdminError(str(err)) from None
    existing = await TariffRepo(ctx.db).get(tariff_id)
    if existing is not None and not existing.deleted and (existing.country_code, existing.party_id) != party:
        raise TariffAdminError(f"tariff {tariff_id} belongs to {existing.country_code}*{existing.party_id}")
    await TariffRepo(ctx.db).put(tariff)
    await mark_changed(ctx, "tariffs", tariff_id)
    return tariff_object(tariff)


async def delete_tariff(ctx: Context, tariff_id: str) -> None:
    repo = TariffRepo(ctx.db)
    sites = await repo.sites_using(tariff_id)
    async with ctx.db.transaction() as tx:
        if not await TariffRepo(tx).mark_deleted(tariff_id, ctx.clock()):
            raise TariffAdminError(f"no tariff {tariff_id}")
        for site_id in sites:
            await InventoryRepo(tx).touch_connectors(site_id, None, ctx.clock())
    await mark_changed(ctx, "tariffs", tariff_id)
    for site_id in sites:
        await mark_changed(ctx, "locations", site_id)


async def assign_tariff(
    ctx: Context, tariff_id: str, site_id: str, evse_uid: str | None, *, remove: bool = False
) -> None:
    """Put a tariff on a site (all its connectors) or one EVSE, or take it off (``remove``)."""
    tariff = await TariffRepo(ctx.db).get(tariff_id)
    if tariff is None or tariff.deleted:
        raise TariffAdminError(f"no tariff {tariff_id}")
    site = await CoreRepo(ctx.db).site(site_id)
    if site is None:
        raise TariffAdminError(f"no site {site_id}")
    if (site.country_code, site.party_id) != (tariff.country_code, tariff.party_id):
        raise TariffAdminError("the tariff and the site belong to different parties")
    if evse_uid is not None:
        evse = await InventoryRepo(ctx.db).evse_matching(site.id, evse_uid)
        if evse is None:
            raise TariffAdminError(f"no EVSE {evse_uid} at {site_id}")
        evse_uid = evse.uid
    async with ctx.db.transaction() as tx:
        repo = TariffRepo(tx)
        changed = await (repo.unassign if remove else repo.assign)(tariff_id, site.id, evse_uid or "")
        if not changed:
            raise TariffAdminError("nothing to change")
        await InventoryRepo(tx).touch_connectors(site.id, evse_uid, ctx.clock())
    await mark_changed(ctx, "locations", site.id)
