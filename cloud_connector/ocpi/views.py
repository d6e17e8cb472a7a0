"""Read our data as OCPI objects (shared by the Sender interfaces and the pushes)."""

from __future__ import annotations

from typing import Any

from .. import billing
from ..repo.core import CoreRepo, Site
from ..repo.inventory import InventoryRepo
from ..repo.sessions import Session
from ..storage import Executor
from .objects import connector_object, evse_object, location_object, session_object


async def location(ex: Executor, site_id: str) -> dict[str, Any] | None:
    """The Location of a site, None when the site never sent its inventory."""
    site = await CoreRepo(ex).site(site_id)
    if site is None or site.info is None:
        return None
    inv = InventoryRepo(ex)
    evses = await inv.evses(site.id)
    connectors = await inv.connectors([evse.uid for evse in evses])
    return location_object(site, evses, connectors, await inv.tariff_ids(site.id))


async def evse(ex: Executor, site: Site, uid: str) -> dict[str, Any] | None:
    inv = InventoryRepo(ex)
    found = await inv.evse_matching(site.id, uid)
    if found is None:
        return None
    connectors = (await inv.connectors([found.uid]))[found.uid]
    if not connectors:  # pragma: no cover - the inventory never stores an EVSE without connectors
        return None
    tariffs = await inv.tariff_ids(site.id)
    return evse_object(found, connectors, tariffs.get(found.uid) or tariffs.get("", []))


async def connector(ex: Executor, site: Site, uid: str, connector_id: str) -> dict[str, Any] | None:
    inv = InventoryRepo(ex)
    found = await inv.evse_matching(site.id, uid)
    if found is None:
        return None
    tariffs = await inv.tariff_ids(site.id)
    for item in (await inv.connectors([found.uid]))[found.uid]:
        if item.connector_id.lower() == connector_id.lower():
            return connector_object(item, tariffs.get(found.uid) or tariffs.get("", []))
    return None


async def session(ex: Executor, item: Session) -> dict[str, Any]:
    site = await CoreRepo(ex).site(item.site_id)
    assert site is not None
    zone = billing.time_zone((site.info or {}).get("time_zone"))
    periods, total_cost = billing.session_costs(item, zone)
    return session_object(item, site.country_code, site.party_id, periods, total_cost)
