"""Stage 8: the operator's read-only JSON API."""

from __future__ import annotations

from pathlib import Path

import pytest

from .harness import add_site, connected, fetch, remote_site
from .test_ocpi_sessions import end, start
from .test_ocpi_tokens import put

pytestmark = pytest.mark.usefixtures("socket_enabled")


async def test_operator_views(tmp_path: Path) -> None:
    async with connected(tmp_path) as (cpo, msp):
        admin = (await cpo.ok("create-admin-token", "--name", "ops"))["token"]
        auth = {"Authorization": f"Bearer {admin}"}
        async with remote_site(cpo, tmp_path, "live") as live:
            await live.send(
                "status",
                {"charger_id": "CP1", "evse_id": 1, "connector_id": 1, "status": "Charging", "error_code": "NoError"},
            )
            site = await add_site(cpo, "s1")
            await put(msp, msp.add_token("B1"))
            await site.send("session_start", start())
            await site.send("session_end", end())
            await site.send("session_start", start("2", "LOCAL"))
            msp.fail_next = [500]
            await site.status("Faulted")
            info = {
                "party_id": "ALL",
                "country_code": "NL",
                "role": "CPO",
                "status": "OFFLINE",
                "last_updated": "2026-11-26T10:00:00Z",
            }
            await msp.module("PUT", "hubclientinfo", "/NL/ALL", info)

            _, body, _ = await fetch("GET", f"{cpo.url}/api/sites", headers=auth)
            assert body["total"] == 2
            by_id = {s["site_id"]: s for s in body["items"]}
            assert by_id["live"]["connected"] is True
            assert by_id["s1"]["connected"] is False
            assert by_id["live"]["evses"] == {"CHARGING": 1}
            assert by_id["s1"]["last_seq"] == 5
            _, body, _ = await fetch("GET", f"{cpo.url}/api/sites?limit=1&offset=1", headers=auth)
            assert [s["site_id"] for s in body["items"]] == ["s1"]
            _, body, _ = await fetch("GET", f"{cpo.url}/api/sites/s1", headers=auth)
            assert body["location"]["id"] == "s1"
            assert body["info"]["city"] == "Fort-de-France"
            status, body, _ = await fetch("GET", f"{cpo.url}/api/sites/nope", headers=auth)
            assert (status, body) == (404, {"error": "unknown site"})

            _, body, _ = await fetch("GET", f"{cpo.url}/api/chargers", headers=auth)
            assert [(c["site_id"], c["charger_id"], c["evses"]) for c in body["items"]] == [
                ("live", "CP1", {"1": "CHARGING"}),
                ("s1", "CP1", {"1": "OUTOFORDER"}),
            ]
            _, body, _ = await fetch("GET", f"{cpo.url}/api/status", headers=auth)
            assert body["by_status"] == {"CHARGING": 1, "OUTOFORDER": 1}
            assert body["items"][0]["connectors"] == {"1": "Charging"}

            _, body, _ = await fetch("GET", f"{cpo.url}/api/sessions", headers=auth)
            assert body["total"] == 2
            assert [(s["status"], s["peer_id"] is None) for s in body["items"]] == [
                ("COMPLETED", False),
                ("ACTIVE", True),
            ]
            _, body, _ = await fetch("GET", f"{cpo.url}/api/cdrs", headers=auth)
            (cdr,) = body["items"]
            assert cdr["delivered_at"] is not None
            assert cdr["cdr"]["session_id"] == cdr["cdr"]["id"]

            _, body, _ = await fetch("GET", f"{cpo.url}/api/peers", headers=auth)
            (peer,) = body["items"]
            assert peer["status"] == "REGISTERED"
            assert peer["parties"] == ["NL*EMS"]
            assert peer["pending_pushes"] == 1
            assert peer["last_error"] == "down"
            assert peer["last_exchange"].startswith("PATCH locations -> 500/3000")
            assert peer["hub_clients"] == [info]
            assert peer["endpoints"]["locations/RECEIVER"].endswith("/locations")


@pytest.mark.parametrize(
    ("method", "path", "headers", "status"),
    [
        ("GET", "/api/sites", {}, 401),
        ("GET", "/api/sites", {"Authorization": "Bearer wrong"}, 401),
        ("GET", "/api/sites", {"Authorization": "Token {token}"}, 401),
        ("POST", "/api/sites", {"Authorization": "Bearer {token}"}, 405),
        ("DELETE", "/api/peers", {"Authorization": "Bearer {token}"}, 405),
        ("GET", "/api/sites?limit=x", {"Authorization": "Bearer {token}"}, 400),
    ],
)
async def test_api_needs_an_admin_token_and_only_reads(
    tmp_path: Path, method: str, path: str, headers: dict[str, str], status: int
) -> None:
    async with connected(tmp_path) as (cpo, msp):
        token = (await cpo.ok("create-admin-token", "--name", "ops"))["token"]
        send = {k: v.format(token=token) for k, v in headers.items()}
        got, _, _ = await fetch(method, f"{cpo.url}{path}", headers=send)
        assert got == status
        # An OCPI token is not an admin token.
        got, _, _ = await fetch(
            "GET", f"{cpo.url}/api/peers", headers={"Authorization": f"Bearer {msp.state.token_out}"}
        )
        assert got == 401
