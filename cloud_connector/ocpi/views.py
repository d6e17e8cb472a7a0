"""Read our data as OCPI objects (shared by the Sender interfaces and the pushes)."""

from __future__ import annotations

import json
from typing import Any

from .. import billing
from ..repo.core import CoreRepo, Site
from ..repo.inventory import InventoryRepo
from ..repo.sessions import Session
from ..storage import Executor
from .objects import connector_object, evse_object, location_object, session_object


async def location(ex: Executor, site_id: str) -> dict[str, Any] | None:
    """The Location of a site, None when the site never sent its inventory."""
    return (await locations(ex, [site_id])).get(site_id)


async def locations(ex: Executor, site_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The Locations of the sites that sent their inventory, by site id (4 queries for any number)."""
    sites = [site for site in (await CoreRepo(ex).sites_by_id(site_ids)).values() if site.info is not None]
    ids = [site.id for site in sites]
    inv = InventoryRepo(ex)
    evses = await inv.evses_of_sites(ids)
    connectors = await inv.connectors_of_sites(ids)
    tariffs = await inv.tariff_ids_of_sites(ids)
    return {site.id: location_object(site, evses[site.id], connectors, tariffs[site.id]) for site in sites}


class LocationCache:
    """Serialized Locations (JSON text) of the locations pages, per site, valid while the site's ``revision``
    (bumped by triggers on anything a Location shows) stays what it was when the entry was built.

    The revision is read before the Location it keys, so an entry is never older than its key says; one
    entry per site with an inventory (about 25 kB for 50 EVSEs).
    """

    def __init__(self) -> None:
        self._entries: dict[str, tuple[int, str]] = {}

    async def texts(self, ex: Executor, sites: list[tuple[str, int]]) -> list[str]:
        """The JSON text of each (site id, revision)'s Location, in order (sites without one left out)."""
        missing = [site_id for site_id, revision in sites if self._entries.get(site_id, (None,))[0] != revision]
        if missing:
            built = await locations(ex, missing)
            wanted = dict(sites)
            for site_id, body in built.items():
                self._entries[site_id] = (wanted[site_id], json.dumps(body))
        found: list[str] = []
        for site_id, revision in sites:
            entry = self._entries.get(site_id)
            if entry is not None and entry[0] == revision:
                found.append(entry[1])
        return found


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
