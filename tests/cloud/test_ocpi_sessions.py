"""Stage 6: sessions (Sender + push), CDRs (Sender + POST push, immutable, credit CDRs)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from .emsp import Emsp
from .harness import Site, add_site, connected
from .test_ocpi_push import FAST, wait_for
from .test_ocpi_tokens import put

pytestmark = pytest.mark.usefixtures("socket_enabled")

ENERGY_TARIFF = {
    "currency": "EUR",
    "elements": [{"price_components": [{"type": "ENERGY", "price": 0.25, "vat": 8.5, "step_size": 1}]}],
}


def start(session: str = "1", badge: str = "B1", **extra: Any) -> dict[str, Any]:
    return {
        "session_id": session,
        "charger_id": "CP1",
        "evse_id": 1,
        "connector_id": 1,
        "id_tag": badge,
        "auth_method": "WHITELIST",
        "start": "2026-11-26T10:00:00Z",
        "meter_start_wh": 1200,
        **extra,
    }


def end(session: str = "1", **extra: Any) -> dict[str, Any]:
    return {
        "session_id": session,
        "stop": "2026-11-26T11:30:00Z",
        "meter_stop_wh": 11200,
        "energy_wh": 10000,
        "reason": "Local",
        "meter_curve": [["2026-11-26T10:30:00Z", 5000], ["2026-11-26T11:00:00Z", 10000]],
        **extra,
    }


async def run_session(site: Site, session: str = "1", badge: str = "B1") -> None:
    await site.send("session_start", start(session, badge))
    await site.send(
        "session_update",
        {"session_id": session, "energy_wh": 5000, "power_w": 11000, "current_a": 48, "at": "2026-11-26T10:30:00Z"},
    )
    await site.send("session_end", end(session))


async def with_tariff(cpo: Any, tmp_path: Path) -> None:
    path = tmp_path / "tariff.json"
    path.write_text(json.dumps(ENERGY_TARIFF), encoding="utf-8")
    await cpo.ok("set-tariff", "--id", "T1", "--file", str(path))
    await cpo.ok("assign-tariff", "T1", "--site", "s1")


async def test_a_roaming_session_is_pushed_to_its_emsp(tmp_path: Path) -> None:
    async with connected(tmp_path) as (cpo, msp):
        site = await add_site(cpo)
        await with_tariff(cpo, tmp_path)
        await put(msp, msp.add_token("B1"))
        await site.send("session_start", start())
        (session,) = msp.state.sessions.values()
        assert session["status"] == "ACTIVE"
        assert session["kwh"] == 0
        assert (session["location_id"], session["evse_uid"], session["connector_id"]) == ("s1", "s1-CP1-1", "1")
        assert session["currency"] == "EUR"
        assert session["cdr_token"]["contract_id"] == "NL-EMS-CB1"
        await site.send(
            "session_update",
            {"session_id": "1", "energy_wh": 5000, "power_w": 11000, "current_a": 48, "at": "2026-11-26T10:30:00Z"},
        )
        method, path, patch = [(r.method, r.path, r.body) for r in msp.state.received if "/sessions/" in r.path][-1]
        assert (method, path) == ("PATCH", f"/ocpi/emsp/2.2.1/sessions/FR/CAR/{session['id']}")
        assert set(patch) == {"kwh", "total_cost", "last_updated"}
        assert patch["kwh"] == 5.0
        assert patch["total_cost"] == {"excl_vat": 1.25, "incl_vat": 1.3563}  # 5 kWh so far, at 0.25 + 8.5 %
        await site.send("session_end", end())
        session = msp.state.sessions[session["id"]]
        assert session["status"] == "COMPLETED"
        assert session["end_date_time"] == "2026-11-26T11:30:00Z"
        assert session["kwh"] == 10.0
        assert session["total_cost"] == {"excl_vat": 2.5, "incl_vat": 2.7125}
        assert [p["tariff_id"] for p in session["charging_periods"]] == ["T1", "T1"]
        # ...and its CDR, POSTed, with the Location the eMSP answered kept.
        (cdr,) = msp.state.cdrs.values()
        assert cdr["session_id"] == session["id"]
        assert cdr["total_cost"] == {"excl_vat": 2.5, "incl_vat": 2.7125}
        assert (cdr["total_energy"], cdr["total_time"], cdr["total_parking_time"]) == (10.0, 1.5, 0.5)
        assert cdr["tariffs"][0]["id"] == "T1"
        assert cdr["cdr_location"]["evse_id"] == "FR*CAR*ES1*CP1*1"
        rows = await cpo.ctx.db.fetchall("SELECT emsp_url, delivered_at FROM cdrs")
        assert rows[0]["emsp_url"] == f"{msp.url}/ocpi/emsp/2.2.1/cdrs/{cdr['id']}"
        assert rows[0]["delivered_at"] is not None
        # Pull: the same objects.
        _, body, headers = await msp.module("GET", "sessions", "?date_from=2026-01-01T00:00:00Z")
        assert body["data"] == [session]
        assert headers["X-Total-Count"] == "1"
        _, body, _ = await msp.module("GET", "cdrs")
        assert body["data"] == [cdr]


async def test_without_a_tariff_the_session_is_free(tmp_path: Path) -> None:
    async with connected(tmp_path) as (cpo, msp):
        site = await add_site(cpo)
        await put(msp, msp.add_token("B1"))
        await run_session(site)
        (session,) = msp.state.sessions.values()
        assert "total_cost" not in session
        assert [[d["type"] for d in p["dimensions"]] for p in session["charging_periods"]] == [
            ["ENERGY", "TIME"],
            ["PARKING_TIME"],
        ]
        (cdr,) = msp.state.cdrs.values()
        assert cdr["total_cost"] == {"excl_vat": 0.0, "incl_vat": 0.0}
        assert cdr["remark"] == "no tariff applies: free of charge"
        assert "tariffs" not in cdr
        assert (cdr["total_energy"], cdr["total_time"], cdr["total_parking_time"]) == (10.0, 1.5, 0.5)


async def test_local_badges_stay_local_and_emsps_see_only_their_sessions(tmp_path: Path) -> None:
    async with connected(tmp_path) as (cpo, msp), Emsp("DE", "OTH") as other:
        peer = await cpo.ok("create-peer", "--name", "other")
        await other.register(peer["versions_url"], peer["token"])
        site = await add_site(cpo)
        await put(msp, msp.add_token("B1"))
        await put(other, other.add_token("B2"))
        await run_session(site, "1", "B1")
        await run_session(site, "2", "B2")
        await run_session(site, "3", "LOCAL-BADGE")
        assert len(msp.state.sessions) == len(other.state.sessions) == 1
        assert len(msp.state.cdrs) == len(other.state.cdrs) == 1
        _, body, _ = await msp.module("GET", "sessions")
        assert [s["cdr_token"]["uid"] for s in body["data"]] == ["B1"]
        _, body, _ = await other.module("GET", "cdrs")
        assert [c["cdr_token"]["uid"] for c in body["data"]] == ["B2"]
        rows = await cpo.ctx.db.fetchall("SELECT id_tag, peer_id FROM sessions ORDER BY id_tag")
        assert [r["peer_id"] is None for r in rows] == [False, False, True]


async def test_session_pagination(tmp_path: Path) -> None:
    async with connected(tmp_path, ocpi={"page_limit": 2}) as (cpo, msp):
        site = await add_site(cpo)
        await put(msp, msp.add_token("B1"))
        for n in range(3):
            await site.send("session_start", start(str(n)))
        _, body, headers = await msp.module("GET", "sessions", "?limit=1000")
        assert (len(body["data"]), headers["X-Total-Count"], headers["X-Limit"]) == (2, "3", "2")
        assert "offset=2" in headers["Link"]
        _, body, headers = await msp.module("GET", "sessions", "/?offset=2")
        assert len(body["data"]) == 1
        assert "Link" not in headers
        _, body, _ = await msp.module("GET", "sessions", "?date_to=2000-01-01T00:00:00Z")
        assert body["data"] == []


async def test_charging_preferences_are_not_supported(tmp_path: Path) -> None:
    async with connected(tmp_path) as (cpo, msp):
        site = await add_site(cpo)
        await put(msp, msp.add_token("B1"))
        await site.send("session_start", start())
        (session_id,) = msp.state.sessions
        status, body, _ = await msp.module(
            "PUT", "sessions", f"/{session_id}/charging_preferences", {"profile_type": "FAST"}
        )
        assert (status, body["status_code"]) == (404, 2001)
        status, body, _ = await msp.module("PUT", "sessions", "/nope/charging_preferences", {"profile_type": "FAST"})
        assert (status, body["status_code"]) == (404, 2001)
        status, body, _ = await msp.module(
            "PUT", "sessions", f"/{session_id}/charging_preferences", {"profile_type": "SLOW"}
        )
        assert (status, body["status_code"]) == (200, 2001)


@pytest.mark.parametrize(
    ("kind", "data"),
    [
        ("session_start", start(evse_id=9)),
        ("session_start", start(start="soon")),
        ("session_start", start(start=17)),
        ("session_start", start(meter_start_wh="x")),
        ("session_update", {"session_id": "nope", "energy_wh": 1, "at": "2026-11-26T10:30:00Z"}),
        ("session_update", {"session_id": "1", "energy_wh": "lots", "at": "2026-11-26T10:30:00Z"}),
        ("session_end", end("nope")),
        ("mystery", {}),
    ],
)
async def test_unusable_session_events_have_no_effect(tmp_path: Path, kind: str, data: dict[str, Any]) -> None:
    async with connected(tmp_path) as (cpo, msp):
        site = await add_site(cpo)
        await put(msp, msp.add_token("B1"))
        if kind != "session_start":
            await site.send("session_start", start())
        before = await cpo.ctx.db.fetchall("SELECT * FROM sessions")
        assert await site.send(kind, data)
        assert await cpo.ctx.db.fetchall("SELECT * FROM sessions") == before


async def test_session_details(tmp_path: Path) -> None:
    async with connected(tmp_path) as (cpo, msp):
        site = await add_site(cpo)
        await put(msp, msp.add_token("B1"))
        await site.send(
            "session_start", start(auth_method="SOMETHING", connector_id=7, start="2026-11-26T14:00:00+04:00")
        )
        await site.send("session_start", start())  # a duplicate start: ignored
        (session,) = msp.state.sessions.values()
        assert session["auth_method"] == "WHITELIST"
        assert session["connector_id"] == "1"  # the EVSE's only connector
        assert session["start_date_time"] == "2026-11-26T10:00:00Z"
        # An end with an odd curve keeps what can be used; an end before the start ends at the start.
        await site.send(
            "session_end",
            end(stop="2026-11-26T09:00:00Z", meter_curve=[["bad", 1], [1], "x", ["2026-11-26T10:10:00Z", 50]]),
        )
        session = msp.state.sessions[session["id"]]
        assert session["end_date_time"] == session["start_date_time"]
        assert await site.send("session_end", end())  # already completed: no effect


async def test_cdrs_survive_an_emsp_outage_and_a_restart(tmp_path: Path) -> None:
    async with connected(tmp_path, ocpi=FAST) as (cpo, msp):
        site = await add_site(cpo)
        await put(msp, msp.add_token("B1"))
        await msp.go_down()
        await run_session(site)
        rows = await cpo.ctx.db.fetchall("SELECT module FROM push_state ORDER BY module")
        assert [r["module"] for r in rows] == ["cdrs", "sessions"]
        # A crash between the CDR's commit and its flag: the next start flags it again.
        await cpo.ctx.db.execute("DELETE FROM push_state")
        await cpo.service.pusher.stop()
        await cpo.service.pusher.start()
        rows = await cpo.ctx.db.fetchall("SELECT module FROM push_state")
        assert [r["module"] for r in rows] == ["cdrs"]
        await msp.start()
        await wait_for(lambda: bool(msp.state.cdrs))
        await asyncio.sleep(0)


async def test_credit_cdrs(tmp_path: Path) -> None:
    async with connected(tmp_path, ocpi=FAST) as (cpo, msp):
        site = await add_site(cpo)
        await with_tariff(cpo, tmp_path)
        await put(msp, msp.add_token("B1"))
        await run_session(site)
        (original,) = msp.state.cdrs.values()
        path = tmp_path / "cheaper.json"
        cheaper = {
            "currency": "EUR",
            "elements": [{"price_components": [{"type": "ENERGY", "price": 0.2, "step_size": 1}]}],
        }
        path.write_text(json.dumps(cheaper), encoding="utf-8")
        await cpo.ok("set-tariff", "--id", "T2", "--file", str(path))
        made = await cpo.ok("credit-cdr", original["id"], "--reissue", "--tariff", "T2")
        assert made["credit"] == f"{original['id']}-C"
        await wait_for(lambda: len(msp.state.cdrs) == 3)
        credit = msp.state.cdrs[made["credit"]]
        assert credit["credit"] is True
        assert credit["credit_reference_id"] == original["id"]
        assert credit["total_cost"] == {"excl_vat": -2.5, "incl_vat": -2.7125}
        assert credit["total_energy_cost"] == {"excl_vat": -2.5, "incl_vat": -2.7125}
        assert {k: v for k, v in credit.items() if not k.startswith(("total_", "credit", "id", "last_updated"))} == {
            k: v for k, v in original.items() if not k.startswith(("total_", "id", "last_updated"))
        }
        fixed = msp.state.cdrs[made["reissued"]]
        assert fixed["total_cost"] == {"excl_vat": 2.0, "incl_vat": 2.0}
        assert fixed["tariffs"][0]["id"] == "T2"
        assert "credit" not in fixed
        # The original never changed.
        rows = await cpo.ctx.db.fetchall("SELECT body, credited_by FROM cdrs WHERE id = ?", (original["id"],))
        assert json.loads(rows[0]["body"]) == original
        assert rows[0]["credited_by"] == made["credit"]
        for argv, problem in (
            ([original["id"]], "already credited"),
            ([made["credit"]], "a Credit CDR cannot be credited"),
            (["nope"], "no CDR nope"),
            ([made["reissued"], "--reissue", "--tariff", "T9"], "no tariff T9"),
        ):
            code, _, err = await cpo.cli("credit-cdr", *argv)
            assert (code, problem in err) == (1, True), err
        made2 = await cpo.ok("credit-cdr", made["reissued"])
        assert made2["reissued"] is None
        # A CDR without its session cannot be reissued.
        await run_session(site, "2")
        await cpo.ctx.db.execute("UPDATE cdrs SET session_id = NULL WHERE credited_by IS NULL AND credit = 0")
        (row,) = await cpo.ctx.db.fetchall("SELECT id FROM cdrs WHERE session_id IS NULL")
        code, _, err = await cpo.cli("credit-cdr", row["id"], "--reissue")
        assert (code, err) == (1, "error: no finished session to issue a new CDR from\n")
