"""Stage 7: commands, charging profiles and hub client info, through a real site connected over the uplink."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from cloud_connector.ocpi.chargingprofiles import limit_now
from cloud_connector.timeutil import format_dt, utcnow

from .emsp import Emsp
from .harness import Cpo, RemoteSite, connected, connector, inventory, remote_site
from .test_ocpi_tokens import put

pytestmark = pytest.mark.usefixtures("socket_enabled")

STATUS = {"charger_id": "CP1", "evse_id": 1, "connector_id": 1, "error_code": "NoError"}
TWO = inventory(
    {
        "id": "CP1",
        "evses": [
            {"evse_id": 1, "connectors": [connector()]},
            {"evse_id": 2, "connectors": [connector(), connector(2)]},
        ],
    }
)


@asynccontextmanager
async def online(tmp_path: Path, data: dict[str, Any] | None = None) -> AsyncIterator[tuple[Cpo, Emsp, RemoteSite]]:
    async with connected(tmp_path) as (cpo, msp), remote_site(cpo, tmp_path, data=data or TWO) as site:
        await site.send("status", {**STATUS, "status": "Available"})
        yield cpo, msp, site


def respond(msp: Emsp, ref: str, kind: str = "commands/START_SESSION") -> str:
    return f"{msp.url}/ocpi/emsp/2.2.1/{kind}/{ref}"


async def command(cpo: Cpo, msp: Emsp, name: str, body: dict[str, Any]) -> dict[str, Any]:
    status, answer, _ = await msp.module("POST", "commands", f"/{name}", body)
    assert status == 200, answer
    await cpo.ctx.drain()
    return dict(answer)


async def test_start_session_accepted_then_session_carries_the_command_token(tmp_path: Path) -> None:
    async with online(tmp_path) as (cpo, msp, site):
        token = msp.add_token("APP1", whitelist="NEVER", type="APP_USER")
        answer = await command(
            cpo,
            msp,
            "START_SESSION",
            {
                "response_url": respond(msp, "r1"),
                "token": token,
                "location_id": "s1",
                "authorization_reference": "auth-1",
            },
        )
        assert answer["data"] == {"result": "ACCEPTED", "timeout": 30}
        assert site.commands == [("start_session", "CP1", {"evse_id": 1, "connector_id": 1, "id_tag": "APP1"})]
        assert msp.state.command_results["r1"] == [{"result": "ACCEPTED"}]
        result_request = next(r for r in msp.state.received if r.path.endswith("/r1"))
        assert result_request.headers["OCPI-from-party-id"] == "CAR"
        # The charger reads the same badge within 15 minutes: no question to the eMSP.
        decision = await cpo.service.authorizer.authorize("s1", "APP1")
        assert (decision.allowed, decision.auth_method) == (True, "COMMAND")
        await site.send(
            "session_start",
            {
                "session_id": "9",
                "charger_id": "CP1",
                "evse_id": 1,
                "connector_id": 1,
                "id_tag": "APP1",
                "auth_method": "COMMAND",
                "start": "2026-11-26T10:00:00Z",
                "meter_start_wh": 0,
            },
        )
        (session,) = msp.state.sessions.values()
        assert session["cdr_token"]["type"] == "APP_USER"
        assert session["authorization_reference"] == "auth-1"
        assert session["auth_method"] == "COMMAND"
        # STOP_SESSION of that session.
        answer = await command(
            cpo,
            msp,
            "STOP_SESSION",
            {"response_url": respond(msp, "r2", "commands/STOP_SESSION"), "session_id": session["id"]},
        )
        assert answer["data"]["result"] == "ACCEPTED"
        assert site.commands[-1] == ("stop_session", "CP1", {"session_id": "9"})
        assert msp.state.command_results["r2"] == [{"result": "ACCEPTED"}]


async def test_start_session_choices_and_refusals(tmp_path: Path) -> None:
    async with online(tmp_path) as (cpo, msp, site):
        token = msp.add_token("APP1", type="APP_USER")
        base = {"response_url": respond(msp, "r"), "token": token, "location_id": "s1"}
        answer = await command(cpo, msp, "START_SESSION", {**base, "evse_uid": "s1-CP1-2"})
        assert answer["status_code"] == 2001  # two connectors: connector_id needed
        answer = await command(cpo, msp, "START_SESSION", {**base, "evse_uid": "s1-CP1-2", "connector_id": "2"})
        assert answer["data"]["result"] == "ACCEPTED"
        assert site.commands[-1][2] == {"evse_id": 2, "connector_id": 2, "id_tag": "APP1"}
        for change in ({"location_id": "nope"}, {"evse_uid": "nope"}, {"evse_uid": "s1-CP1-1", "connector_id": "7"}):
            answer = await command(cpo, msp, "START_SESSION", {**base, **change})
            assert answer["status_code"] == 2003, change
            assert "data" not in answer
        await site.send("status", {**STATUS, "status": "Charging"})
        answer = await command(cpo, msp, "START_SESSION", base)  # no EVSE is AVAILABLE
        assert answer["data"] == {
            "result": "REJECTED",
            "timeout": 30,
            "message": [{"language": "en", "text": "no EVSE available"}],
        }
        # The charger refuses: the EVSE is busy, so EVSE_OCCUPIED.
        site.answers["start_session"] = ("rejected", "occupied")
        await command(cpo, msp, "START_SESSION", {**base, "evse_uid": "s1-CP1-1", "response_url": respond(msp, "busy")})
        assert msp.state.command_results["busy"] == [
            {"result": "EVSE_OCCUPIED", "message": [{"language": "en", "text": "occupied"}]}
        ]
        await site.send("status", {**STATUS, "status": "Faulted"})
        await command(
            cpo, msp, "START_SESSION", {**base, "evse_uid": "s1-CP1-1", "response_url": respond(msp, "broken")}
        )
        assert msp.state.command_results["broken"][0]["result"] == "EVSE_INOPERATIVE"


@pytest.mark.parametrize(
    ("site_answer", "expected"),
    [("failed", "FAILED"), ("unknown_charger", "FAILED"), ("timeout", "TIMEOUT"), ("odd", "FAILED")],
)
async def test_site_answers_become_command_results(tmp_path: Path, site_answer: str, expected: str) -> None:
    async with online(tmp_path) as (cpo, msp, site):
        site.answers["unlock_connector"] = (site_answer, "")
        body = {
            "response_url": respond(msp, "u", "commands/UNLOCK_CONNECTOR"),
            "location_id": "s1",
            "evse_uid": "s1-CP1-1",
            "connector_id": "1",
        }
        await command(cpo, msp, "UNLOCK_CONNECTOR", body)
        assert site.commands[-1] == ("unlock_connector", "CP1", {"evse_id": 1, "connector_id": 1})
        (result,) = msp.state.command_results["u"]
        assert result["result"] == expected


async def test_no_answer_from_the_site_is_a_timeout(tmp_path: Path) -> None:
    async with connected(tmp_path, ocpi={"command_timeout": 1}) as (cpo, msp), remote_site(cpo, tmp_path) as site:
        site.hold["unlock_connector"] = asyncio.Event()
        body = {"response_url": respond(msp, "slow"), "location_id": "s1", "evse_uid": "s1-CP1-1", "connector_id": "1"}
        answer = await command(cpo, msp, "UNLOCK_CONNECTOR", body)
        assert answer["data"]["timeout"] == 1
        assert msp.state.command_results["slow"][0]["result"] == "TIMEOUT"
        site.hold["unlock_connector"].set()


async def test_reservations(tmp_path: Path) -> None:
    async with online(tmp_path) as (cpo, msp, site):
        token = msp.add_token("R1")
        expiry = format_dt(utcnow() + timedelta(hours=1))
        body = {
            "response_url": respond(msp, "rv"),
            "token": token,
            "expiry_date": expiry,
            "reservation_id": "res-1",
            "location_id": "s1",
        }
        answer = await command(cpo, msp, "RESERVE_NOW", body)
        assert answer["data"]["result"] == "ACCEPTED"
        name, charger, args = site.commands[-1]
        assert (name, charger, args["evse_id"], args["id_tag"], args["expiry"]) == (
            "reserve_now",
            "CP1",
            1,
            "R1",
            expiry,
        )
        first_id = args["reservation_id"]
        assert isinstance(first_id, int)  # ours, not the eMSP's
        await command(cpo, msp, "RESERVE_NOW", {**body, "evse_uid": "s1-CP1-1"})  # same reservation, replaced
        assert site.commands[-1][2]["reservation_id"] == first_id
        # Cancelled; then unknown to the charger; then unknown to us.
        await command(cpo, msp, "CANCEL_RESERVATION", {"response_url": respond(msp, "c1"), "reservation_id": "RES-1"})
        assert site.commands[-1] == ("cancel_reservation", "CP1", {"reservation_id": first_id})
        site.answers["cancel_reservation"] = ("rejected", "")
        await command(cpo, msp, "CANCEL_RESERVATION", {"response_url": respond(msp, "c2"), "reservation_id": "res-1"})
        assert msp.state.command_results["c2"] == [{"result": "UNKNOWN_RESERVATION"}]
        answer = await command(
            cpo, msp, "CANCEL_RESERVATION", {"response_url": respond(msp, "c3"), "reservation_id": "res-9"}
        )
        assert answer["data"]["result"] == "REJECTED"
        answer = await command(cpo, msp, "RESERVE_NOW", {**body, "expiry_date": "2020-01-01T00:00:00Z"})
        assert answer["status_code"] == 2001


async def test_stop_session_refusals_and_bad_commands(tmp_path: Path) -> None:
    async with online(tmp_path) as (cpo, msp, site), Emsp("DE", "OTH") as other:
        peer = await cpo.ok("create-peer", "--name", "other")
        await other.register(peer["versions_url"], peer["token"])
        await put(other, other.add_token("B2"))
        start = {
            "session_id": "5",
            "charger_id": "CP1",
            "evse_id": 1,
            "connector_id": 1,
            "id_tag": "B2",
            "auth_method": "WHITELIST",
            "start": "2026-11-26T10:00:00Z",
            "meter_start_wh": 0,
        }
        await site.send("session_start", start)
        (theirs,) = other.state.sessions
        url = respond(msp, "s")
        assert (await command(cpo, msp, "STOP_SESSION", {"response_url": url, "session_id": "nope"}))["data"][
            "result"
        ] == "UNKNOWN_SESSION"
        assert (await command(cpo, msp, "STOP_SESSION", {"response_url": url, "session_id": theirs}))["data"][
            "result"
        ] == "REJECTED"
        await site.send(
            "session_end", {"session_id": "5", "stop": "2026-11-26T11:00:00Z", "energy_wh": 1, "meter_stop_wh": 1}
        )
        assert (await command(cpo, other, "STOP_SESSION", {"response_url": url, "session_id": theirs}))["data"][
            "result"
        ] == "REJECTED"
        answer = await command(cpo, msp, "REBOOT", {"response_url": url})
        assert answer["data"]["result"] == "NOT_SUPPORTED"
        answer = await command(cpo, msp, "STOP_SESSION", {"response_url": url})
        assert answer["status_code"] == 2001
        status, answer, _ = await msp.module("GET", "commands", "/STOP_SESSION")
        assert status == 405


async def test_commands_to_an_offline_site_are_rejected_at_once(tmp_path: Path) -> None:
    async with online(tmp_path) as (cpo, msp, site):
        await site.stop()
        async with asyncio.timeout(5):
            while cpo.service.hub.connected("s1"):
                await asyncio.sleep(0.01)
        body = {"response_url": respond(msp, "x"), "location_id": "s1", "evse_uid": "s1-CP1-1", "connector_id": "1"}
        answer = await command(cpo, msp, "UNLOCK_CONNECTOR", body)
        assert answer["data"]["result"] == "REJECTED"
        assert answer["data"]["message"][0]["text"] == "the site is offline"
        assert "x" not in msp.state.command_results


async def test_results_the_emsp_does_not_take_are_dropped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async with online(tmp_path) as (cpo, msp, _):
        body = {"response_url": f"{msp.url}/nowhere", "location_id": "s1", "evse_uid": "s1-CP1-1", "connector_id": "1"}
        await command(cpo, msp, "UNLOCK_CONNECTOR", body)
        assert "not delivered: POST" in caplog.text
        msp.fail_next = [500]
        await command(cpo, msp, "UNLOCK_CONNECTOR", {**body, "response_url": respond(msp, "refused")})
        assert "not delivered: HTTP 500, status 3000" in caplog.text
        assert "refused" not in msp.state.command_results


# --- charging profiles -------------------------------------------------------------------------------


async def _session(cpo: Cpo, msp: Emsp, site: RemoteSite) -> str:
    await put(msp, msp.add_token("B1"))
    await site.send(
        "session_start",
        {
            "session_id": "7",
            "charger_id": "CP1",
            "evse_id": 1,
            "connector_id": 1,
            "id_tag": "B1",
            "auth_method": "WHITELIST",
            "start": format_dt(utcnow()),
            "meter_start_wh": 0,
        },
    )
    (session_id,) = msp.state.sessions
    return session_id


async def profile(cpo: Cpo, msp: Emsp, method: str, suffix: str, body: Any = None) -> dict[str, Any]:
    status, answer, _ = await msp.module(method, "chargingprofiles", suffix, body)
    assert status == 200, answer
    await cpo.ctx.drain()
    return dict(answer)


async def test_set_get_and_clear_profiles(tmp_path: Path) -> None:
    async with online(tmp_path) as (cpo, msp, site):
        session_id = await _session(cpo, msp, site)
        url = f"{msp.url}/ocpi/emsp/2.2.1/chargingprofiles/p1"
        answer = await profile(
            cpo,
            msp,
            "PUT",
            f"/{session_id}",
            {
                "response_url": url,
                "charging_profile": {
                    "charging_rate_unit": "A",
                    "charging_profile_period": [{"start_period": 0, "limit": 16}],
                },
            },
        )
        assert answer["data"] == {"result": "ACCEPTED", "timeout": 30}
        assert site.commands[-1] == (
            "set_charging_profile",
            "CP1",
            {"session_id": "7", "limit_w": 11040.0},
        )  # 16 A x 230 V x 3
        assert msp.state.profile_results["p1"] == [{"result": "ACCEPTED"}]
        answer = await profile(cpo, msp, "GET", f"/{session_id}?duration=900&response_url={url}")
        assert answer["data"]["result"] == "ACCEPTED"
        active = msp.state.profile_results["p1"][-1]
        assert active["result"] == "ACCEPTED"
        assert active["profile"]["charging_profile"] == {
            "charging_rate_unit": "W",
            "duration": 900,
            "charging_profile_period": [{"start_period": 0, "limit": 11040.0}],
        }
        await profile(cpo, msp, "DELETE", f"/{session_id}?response_url={url}")
        assert site.commands[-1] == ("clear_charging_profile", "CP1", {"session_id": "7"})
        assert msp.state.profile_results["p1"][-1] == {"result": "ACCEPTED"}
        await profile(cpo, msp, "GET", f"/{session_id}?duration=60&response_url={url}")
        assert (
            msp.state.profile_results["p1"][-1]["profile"]["charging_profile"]["charging_profile_period"][0]["limit"]
            == 22000.0
        )
        site.answers["clear_charging_profile"] = ("rejected", "")
        await profile(cpo, msp, "DELETE", f"/{session_id}?response_url={url}")
        assert msp.state.profile_results["p1"][-1] == {"result": "UNKNOWN"}
        site.answers["set_charging_profile"] = ("timeout", "")
        await profile(
            cpo,
            msp,
            "PUT",
            f"/{session_id}",
            {
                "response_url": url,
                "charging_profile": {
                    "charging_rate_unit": "W",
                    "charging_profile_period": [{"start_period": 0, "limit": 5000}],
                },
            },
        )
        assert msp.state.profile_results["p1"][-1] == {"result": "REJECTED"}


async def test_profile_refusals(tmp_path: Path) -> None:
    async with online(tmp_path) as (cpo, msp, site):
        session_id = await _session(cpo, msp, site)
        url = f"{msp.url}/ocpi/emsp/2.2.1/chargingprofiles/p2"
        good = {
            "response_url": url,
            "charging_profile": {
                "charging_rate_unit": "W",
                "charging_profile_period": [{"start_period": 0, "limit": 3000}],
            },
        }
        assert (await profile(cpo, msp, "PUT", "/nope", good))["data"]["result"] == "UNKNOWN_SESSION"
        assert (await profile(cpo, msp, "GET", f"/nope?duration=1&response_url={url}"))["data"][
            "result"
        ] == "UNKNOWN_SESSION"
        assert (await profile(cpo, msp, "DELETE", f"/nope?response_url={url}"))["data"]["result"] == "UNKNOWN_SESSION"
        async with Emsp("DE", "OTH") as other:
            peer = await cpo.ok("create-peer", "--name", "other")
            await other.register(peer["versions_url"], peer["token"])
            _, answer, _ = await other.module("PUT", "chargingprofiles", f"/{session_id}", good)
            assert answer["data"]["result"] == "REJECTED"  # not its session
        assert (
            await profile(
                cpo,
                msp,
                "PUT",
                f"/{session_id}",
                {"response_url": url, "charging_profile": {"charging_rate_unit": "W"}},
            )
        )["status_code"] == 2001
        assert (await profile(cpo, msp, "PUT", f"/{session_id}", {"response_url": url}))["status_code"] == 2001
        assert (await profile(cpo, msp, "GET", f"/{session_id}?response_url={url}"))["status_code"] == 2001
        assert (await profile(cpo, msp, "GET", f"/{session_id}?duration=-5&response_url={url}"))["status_code"] == 2001
        assert (await profile(cpo, msp, "GET", f"/{session_id}?duration=5"))["status_code"] == 2001
        await site.stop()
        async with asyncio.timeout(5):
            while cpo.service.hub.connected("s1"):
                await asyncio.sleep(0.01)
        assert (await profile(cpo, msp, "PUT", f"/{session_id}", good))["data"]["result"] == "REJECTED"


def test_the_period_in_force() -> None:
    start = utcnow()
    profile_ = {
        "charging_rate_unit": "W",
        "charging_profile_period": [{"start_period": 600, "limit": 2}, {"start_period": 0, "limit": 1}],
    }
    assert limit_now(profile_, start, start) == 1.0
    assert limit_now(profile_, start, start + timedelta(minutes=11)) == 2.0
    absolute = {**profile_, "start_date_time": format_dt(start + timedelta(hours=1))}
    assert limit_now(absolute, start, start + timedelta(minutes=11)) == 1.0  # before it starts: its first period
    assert limit_now({"charging_rate_unit": "W"}, start, start) is None


# --- hub client info ---------------------------------------------------------------------------------


async def test_hub_client_info(tmp_path: Path) -> None:
    async with connected(tmp_path) as (_, msp):
        info = {
            "party_id": "ALL",
            "country_code": "NL",
            "role": "CPO",
            "status": "PLANNED",
            "last_updated": "2026-11-26T10:00:00Z",
        }
        status, body, headers = await msp.module("PUT", "hubclientinfo", "/NL/ALL", info)
        assert (status, body["status_code"]) == (201, 1000)
        assert "OCPI-from-party-id" not in headers  # a configuration module
        status, body, _ = await msp.module("PUT", "hubclientinfo", "/NL/ALL", {**info, "status": "CONNECTED"})
        assert status == 200
        status, body, _ = await msp.module("GET", "hubclientinfo", "/nl/all")
        assert body["data"] == {**info, "status": "CONNECTED"}
        status, body, _ = await msp.module("GET", "hubclientinfo", "/NL/NOP")
        assert (status, body["status_code"]) == (404, 2000)
        status, body, _ = await msp.module("PUT", "hubclientinfo", "/NL/XXX", info)
        assert body["status_code"] == 2001
        status, body, _ = await msp.module("PUT", "hubclientinfo", "/NL/ALL", {**info, "status": "GONE"})
        assert body["status_code"] == 2001
