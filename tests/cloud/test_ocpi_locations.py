"""Stage 4: Locations (Sender interface) built from the sites' inventory and statuses, pushed to eMSPs."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from cloud_connector.events import evse_code, evse_status, evse_uid
from cloud_connector.repo.inventory import Connector
from cloud_connector.timeutil import parse_dt, utcnow

from .harness import add_site, connected, connector, inventory

pytestmark = pytest.mark.usefixtures("socket_enabled")


def pushes(msp: Any, method: str | None = None) -> list[tuple[str, str, Any]]:
    return [
        (r.method, r.path, r.body)
        for r in msp.state.received
        if "/emsp/" in r.path and (method is None or r.method == method)
    ]


async def test_inventory_becomes_a_location_pushed_and_served(tmp_path: Path) -> None:
    async with connected(tmp_path) as (cpo, msp):
        site = await add_site(cpo, "s1")
        ((method, path, body),) = pushes(msp)
        assert (method, path) == ("PUT", "/ocpi/emsp/2.2.1/locations/FR/CAR/s1")
        assert body["id"] == "s1"
        assert body["country"] == "MTQ"
        assert body["coordinates"] == {"latitude": "14.603600", "longitude": "-61.071900"}
        assert body["time_zone"] == "America/Martinique"
        (evse,) = body["evses"]
        assert evse["uid"] == "s1-CP1-1"
        assert evse["evse_id"] == "FR*CAR*ES1*CP1*1"
        assert evse["status"] == "UNKNOWN"  # no status yet
        assert evse["connectors"][0] == {
            "id": "1",
            "standard": "IEC_62196_T2",
            "format": "SOCKET",
            "power_type": "AC_3_PHASE",
            "max_voltage": 230,
            "max_amperage": 32,
            "max_electric_power": 22000,
            "last_updated": evse["connectors"][0]["last_updated"],
        }
        status, got, headers = await msp.module("GET", "locations", "/s1")
        assert status == 200
        assert got["data"] == msp.state.locations["s1"]
        # Routing headers: the answer comes from our party, to the eMSP.
        assert (headers["OCPI-from-country-code"], headers["OCPI-from-party-id"]) == ("FR", "CAR")
        assert (headers["OCPI-to-country-code"], headers["OCPI-to-party-id"]) == ("NL", "EMS")
        # The same inventory again changes nothing and pushes nothing.
        assert await site.send("inventory", inventory())
        assert len(pushes(msp)) == 1


async def test_status_changes_patch_the_evse_and_update_parents(tmp_path: Path) -> None:
    async with connected(tmp_path) as (cpo, msp):
        site = await add_site(cpo, "s1")
        before = msp.state.locations["s1"]["last_updated"]
        assert await site.status("Charging")
        method, path, body = pushes(msp)[-1]
        assert (method, path) == ("PATCH", "/ocpi/emsp/2.2.1/locations/FR/CAR/s1/s1-CP1-1")
        assert body["status"] == "CHARGING"
        assert set(body) == {"status", "last_updated"}
        _, got, _ = await msp.module("GET", "locations", "/s1")
        location = got["data"]
        assert location["evses"][0]["status"] == "CHARGING"
        assert location["last_updated"] == location["evses"][0]["last_updated"] == body["last_updated"]
        assert parse_dt(location["last_updated"]) > parse_dt(before)
        # The same status again: no push.
        count = len(pushes(msp))
        await site.status("SuspendedEV")
        assert len(pushes(msp)) == count
        await site.status("Faulted")
        assert pushes(msp)[-1][2]["status"] == "OUTOFORDER"


async def test_charger_wide_statuses(tmp_path: Path) -> None:
    two = {
        "id": "CP1",
        "evses": [{"evse_id": 1, "connectors": [connector()]}, {"evse_id": 2, "connectors": [connector()]}],
    }
    async with connected(tmp_path) as (cpo, msp):
        site = await add_site(cpo, "s1", data=inventory(two))
        await site.status("Available", evse=1)
        await site.status("Charging", evse=2)
        await site.status("Offline", evse=None, connector_id=None)
        statuses = {e["uid"]: e["status"] for e in msp.state.locations["s1"]["evses"]}
        assert statuses == {"s1-CP1-1": "UNKNOWN", "s1-CP1-2": "UNKNOWN"}
        await site.status("Available", evse=1)  # it talks again: the others show what they last said
        statuses = {e["uid"]: e["status"] for e in msp.state.locations["s1"]["evses"]}
        assert statuses == {"s1-CP1-1": "AVAILABLE", "s1-CP1-2": "CHARGING"}
        await site.status("Unavailable", evse=0, connector_id=0)
        assert {e["status"] for e in msp.state.locations["s1"]["evses"]} == {"INOPERATIVE"}
        await site.status("Available", evse=0, connector_id=0)
        statuses = {e["uid"]: e["status"] for e in msp.state.locations["s1"]["evses"]}
        assert statuses == {"s1-CP1-1": "AVAILABLE", "s1-CP1-2": "CHARGING"}
        # Unknown chargers and EVSEs: recorded, no effect.
        count = len(pushes(msp))
        assert await site.status("Faulted", charger="CPX", evse=None)
        assert await site.status("Faulted", evse=9)
        assert len(pushes(msp)) == count


async def test_inventory_changes_add_and_remove_evses(tmp_path: Path) -> None:
    async with connected(tmp_path) as (cpo, msp):
        site = await add_site(cpo, "s1")
        bigger = inventory(
            {"id": "CP1", "evses": [{"evse_id": 1, "connectors": [connector(), connector(2, standard="DOMESTIC_E")]}]},
            {
                "id": "CP2",
                "evses": [
                    {
                        "evse_id": 1,
                        "connectors": [connector(power_type="DC", standard="IEC_62196_T2_COMBO", format="CABLE")],
                    }
                ],
            },
        )
        await site.send("inventory", bigger)
        evses = {e["uid"]: e for e in msp.state.locations["s1"]["evses"]}
        assert set(evses) == {"s1-CP1-1", "s1-CP2-1"}
        assert [c["id"] for c in evses["s1-CP1-1"]["connectors"]] == ["1", "2"]
        assert "START_SESSION_CONNECTOR_REQUIRED" in evses["s1-CP1-1"]["capabilities"]
        # CP2 leaves: its EVSE stays, REMOVED (EVSEs are never deleted); connector 2 of CP1 goes.
        await site.send(
            "inventory", inventory({"id": "CP1", "evses": [{"evse_id": 1, "connectors": [connector()]}]}, name="Home 2")
        )
        evses = {e["uid"]: e for e in msp.state.locations["s1"]["evses"]}
        assert evses["s1-CP2-1"]["status"] == "REMOVED"
        assert [c["id"] for c in evses["s1-CP1-1"]["connectors"]] == ["1"]
        assert msp.state.locations["s1"]["name"] == "Home 2"
        # It comes back.
        await site.send("inventory", bigger)
        evses = {e["uid"]: e for e in msp.state.locations["s1"]["evses"]}
        assert evses["s1-CP2-1"]["status"] == "UNKNOWN"
        count = len(pushes(msp))
        await site.send("inventory", bigger)
        assert len(pushes(msp)) == count  # nothing changed


@pytest.mark.parametrize(
    "data",
    [
        {"site": "nope", "chargers": []},
        {"site": {**inventory()["site"], "country": "FR"}, "chargers": []},
        {"site": {**inventory()["site"], "latitude": "north"}, "chargers": []},
        {"site": {**inventory()["site"], "address": None}, "chargers": []},
        {"site": {**inventory()["site"], "city": ["x"]}, "chargers": []},
        {"site": inventory()["site"], "chargers": "CP1"},
    ],
)
async def test_unusable_inventories_are_recorded_without_effect(tmp_path: Path, data: dict[str, Any]) -> None:
    async with connected(tmp_path) as (cpo, msp):
        site = await add_site(cpo, "s1", send=False)
        assert await site.send("inventory", data)
        assert pushes(msp) == []
        assert await cpo.service.store.last_seq("s1") == 1
        status, body, _ = await msp.module("GET", "locations", "/s1")
        assert (status, body["status_code"]) == (404, 2003)


async def test_connectors_that_do_not_fit_ocpi_are_left_out(tmp_path: Path) -> None:
    odd = {
        "id": "CP1",
        "evses": [
            {
                "evse_id": 1,
                "connectors": [connector(), connector(2, standard="SCHUKO"), "x", connector(3, max_voltage="230")],
            },
            {"evse_id": 2, "connectors": [connector(standard="NOPE")]},
            {"evse_id": "3", "connectors": [connector()]},
            "junk",
        ],
    }
    async with connected(tmp_path) as (cpo, msp):
        await add_site(cpo, "s1", data=inventory(odd, {"id": "CP2", "evses": "none"}))
        (evse,) = msp.state.locations["s1"]["evses"]
        assert [c["id"] for c in evse["connectors"]] == ["1"]


async def test_get_list_pagination(tmp_path: Path) -> None:
    async with connected(tmp_path, ocpi={"page_limit": 2}) as (cpo, msp):
        status, body, headers = await msp.module("GET", "locations")
        assert (status, body["data"], headers["X-Total-Count"], headers["X-Limit"]) == (200, [], "0", "2")
        assert "Link" not in headers
        for n in range(5):
            await add_site(cpo, f"site{n}")
        await add_site(cpo, "silent", send=False)  # no inventory: no Location
        status, body, headers = await msp.module("GET", "locations", "?limit=50")
        assert [loc["id"] for loc in body["data"]] == ["site0", "site1"]
        assert (headers["X-Total-Count"], headers["X-Limit"]) == ("5", "2")
        assert headers["Link"] == f'<{cpo.url}/ocpi/cpo/2.2.1/locations?offset=2&limit=2>; rel="next"'
        # Follow the links to the end.
        seen = [loc["id"] for loc in body["data"]]
        while "Link" in headers:
            url = headers["Link"].split(">")[0].lstrip("<")
            status, body, headers = await msp.call("GET", url, routed=True)
            seen += [loc["id"] for loc in body["data"]]
        assert seen == [f"site{n}" for n in range(5)]
        # Past the end: an empty page, no link.
        status, body, headers = await msp.module("GET", "locations", "?offset=10")
        assert (body["data"], headers["X-Total-Count"]) == ([], "5")
        assert "Link" not in headers
        # Trailing slash as in the specification's examples.
        status, body, _ = await msp.module("GET", "locations", "/?offset=4&limit=1")
        assert [loc["id"] for loc in body["data"]] == ["site4"]


async def test_get_list_by_date(tmp_path: Path) -> None:
    async with connected(tmp_path) as (cpo, msp):
        site = await add_site(cpo, "a")
        await asyncio.sleep(0.005)  # timestamps have millisecond precision
        middle = utcnow()
        await asyncio.sleep(0.005)
        await add_site(cpo, "b")
        _, body, headers = await msp.module("GET", "locations", f"?date_from={_q(middle)}")
        assert [loc["id"] for loc in body["data"]] == ["b"]
        _, body, headers = await msp.module("GET", "locations", f"?date_to={_q(middle)}")
        assert [loc["id"] for loc in body["data"]] == ["a"]
        # An EVSE change moves its Location's last_updated.
        await site.status("Charging")
        _, body, _ = await msp.module("GET", "locations", f"?date_from={_q(middle)}&limit=1")
        assert [loc["id"] for loc in body["data"]] == ["a"]
        _, body, headers = await msp.module("GET", "locations", f"?date_from={_q(middle)}&limit=1")
        assert "date_from=" in headers["Link"]


@pytest.mark.parametrize("query", ["?offset=-1", "?limit=ten", "?date_from=yesterday", "?date_to=2026-13-01T00:00:00Z"])
async def test_bad_pagination_parameters(tmp_path: Path, query: str) -> None:
    async with connected(tmp_path) as (_, msp):
        status, body, _ = await msp.module("GET", "locations", query)
        assert (status, body["status_code"]) == (200, 2001)


async def test_get_single_objects_and_unknown_ids(tmp_path: Path) -> None:
    async with connected(tmp_path) as (cpo, msp):
        await add_site(cpo, "s1")
        status, body, _ = await msp.module("GET", "locations", "/S1/S1-cp1-1")  # CiString: any case
        assert status == 200
        assert body["data"]["uid"] == "s1-CP1-1"
        status, body, _ = await msp.module("GET", "locations", "/s1/s1-CP1-1/1")
        assert body["data"]["id"] == "1"
        for suffix in ("/nope", "/s1/nope", "/s1/s1-CP1-1/9", "/nope/x/y", "/s1/nope/1"):
            status, body, _ = await msp.module("GET", "locations", suffix)
            assert (status, body["status_code"]) == (404, 2003), suffix
            assert "data" not in body


def _q(moment: Any) -> str:
    from cloud_connector.timeutil import format_dt

    return format_dt(moment)


def test_evse_ids_fit_ocpi() -> None:
    assert evse_uid("s1", "CP1", 1) == "s1-CP1-1"
    long_uid = evse_uid("site-with-a-long-name", "CHARGER-WITH-LONG-ID-0001", 2)
    assert len(long_uid) <= 36
    assert long_uid == evse_uid("site-with-a-long-name", "CHARGER-WITH-LONG-ID-0001", 2)
    assert evse_code("FR", "CAR", "s-1", "cp_1", 2) == "FR*CAR*ES1*CP1*2"
    assert len(evse_code("FR", "CAR", "s" * 20, "c" * 20, 1)) <= 48
    assert evse_code("FR", "CAR", "--", "cp", 1).startswith("FR*CAR*E")


def test_evse_status_from_connectors() -> None:
    def c(status: str | None) -> Connector:
        return Connector(
            evse_uid="u",
            connector_id="1",
            standard="IEC_62196_T2",
            format="SOCKET",
            power_type="AC_3_PHASE",
            max_voltage=230,
            max_amperage=16,
            max_electric_power=None,
            ocpp_status=status,
            last_updated=utcnow(),
        )

    assert evse_status([c("Available"), c("Charging")], None) == "CHARGING"
    assert evse_status([c("Available"), c("Reserved")], None) == "RESERVED"
    assert evse_status([c("Occupied")], None) == "CHARGING"
    assert evse_status([c("Faulted")], None) == "OUTOFORDER"
    assert evse_status([c(None)], None) == "UNKNOWN"
    assert evse_status([c("Weird")], None) == "UNKNOWN"
    assert evse_status([c("Available")], "Offline") == "UNKNOWN"
    assert evse_status([c("Available")], "Faulted") == "OUTOFORDER"
    assert json.dumps(evse_status([], None)) == '"UNKNOWN"'
