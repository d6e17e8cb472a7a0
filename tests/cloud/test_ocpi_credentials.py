"""Stage 3: versions and the credentials handshake, both ways; rotation; unregistration."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from aiohttp import web
import pytest

from .emsp import Emsp
from .harness import Cpo, fetch, running_cpo

pytestmark = pytest.mark.usefixtures("socket_enabled")


@asynccontextmanager
async def cpo_and_emsp(tmp_path: Path, *, plain_tokens: bool = False) -> AsyncIterator[tuple[Cpo, Emsp]]:
    async with running_cpo(tmp_path) as cpo, Emsp(plain_tokens=plain_tokens) as msp:
        await cpo.party()
        yield cpo, msp


async def test_versions_and_details(tmp_path: Path) -> None:
    async with cpo_and_emsp(tmp_path) as (cpo, _):
        peer = await cpo.ok("create-peer", "--name", "msp")
        assert peer["versions_url"] == f"{cpo.url}/ocpi/versions"
        status, body, headers = await fetch("GET", peer["versions_url"], token=peer["token"])
        assert status == 200
        assert body["data"] == [{"version": "2.2.1", "url": f"{cpo.url}/ocpi/2.2.1"}]
        assert body["status_code"] == 1000
        assert body["timestamp"].endswith("Z")
        assert "OCPI-from-party-id" not in headers  # configuration modules are not routed
        status, body, _ = await fetch("GET", f"{cpo.url}/ocpi/2.2.1", token=peer["token"])
        endpoints = {(e["identifier"], e["role"]): e["url"] for e in body["data"]["endpoints"]}
        assert body["data"]["version"] == "2.2.1"
        assert endpoints[("credentials", "SENDER")] == f"{cpo.url}/ocpi/2.2.1/credentials"
        assert endpoints[("locations", "SENDER")] == f"{cpo.url}/ocpi/cpo/2.2.1/locations"
        assert endpoints[("tokens", "RECEIVER")] == f"{cpo.url}/ocpi/cpo/2.2.1/tokens"
        assert ("commands", "RECEIVER") in endpoints
        assert ("hubclientinfo", "RECEIVER") in endpoints
        status, body, _ = await fetch("GET", f"{cpo.url}/ocpi/versions")
        assert status == 401


async def test_emsp_registers_with_token_a_which_then_stops_working(tmp_path: Path) -> None:
    async with cpo_and_emsp(tmp_path) as (cpo, msp):
        peer = await cpo.ok("create-peer", "--name", "msp")
        ours = await msp.register(peer["versions_url"], peer["token"])
        assert ours["url"] == peer["versions_url"]
        assert ours["roles"] == [
            {"role": "CPO", "business_details": {"name": "Cariflex"}, "party_id": "CAR", "country_code": "FR"}
        ]
        assert ours["token"] != peer["token"]
        # The CPO fetched our versions and details with our token B.
        paths = [r.path for r in msp.state.received]
        assert paths[-2:] == ["/ocpi/versions", "/ocpi/2.2.1"]
        (listed,) = await cpo.ok("list-peers")
        assert listed["status"] == "REGISTERED"
        assert listed["parties"] == ["NL*EMS"]
        assert listed["roles"] == ["EMSP"]
        assert listed["versions_url"] == msp.versions_url
        # Token A is thrown away; token C works, and GET credentials shows it.
        status, _, _ = await fetch("GET", peer["versions_url"], token=peer["token"])
        assert status == 401
        status, body, _ = await msp.call("GET", msp.state.cpo_endpoints["credentials"])
        assert (status, body["data"]["token"]) == (200, ours["token"])
        # A second POST from a registered peer: 405.
        status, body, _ = await msp.call(
            "POST", msp.state.cpo_endpoints["credentials"], body=msp.credentials(msp.state.token_in or "")
        )
        assert status == 405
        assert body["status_code"] == 2000


async def test_token_a_is_refused_on_functional_modules(tmp_path: Path) -> None:
    async with cpo_and_emsp(tmp_path) as (cpo, _):
        peer = await cpo.ok("create-peer", "--name", "msp")
        status, body, _ = await fetch("GET", f"{cpo.url}/ocpi/cpo/2.2.1/locations", token=peer["token"])
        assert status == 401
        assert body["status_code"] == 2000
        status, body, _ = await fetch("GET", f"{cpo.url}/ocpi/2.2.1/credentials", token=peer["token"])
        assert (status, body["data"]["token"]) == (200, peer["token"])


async def test_put_and_delete_need_a_registration(tmp_path: Path) -> None:
    async with cpo_and_emsp(tmp_path) as (cpo, msp):
        peer = await cpo.ok("create-peer", "--name", "msp")
        url = f"{cpo.url}/ocpi/2.2.1/credentials"
        status, body, _ = await fetch("PUT", url, token=peer["token"], body=msp.credentials("x"))
        assert (status, body["status_code"]) == (405, 2000)
        status, _, _ = await fetch("DELETE", url, token=peer["token"])
        assert status == 405
        status, _, _ = await fetch("PATCH", url, token=peer["token"], body={})
        assert status == 405


async def test_rotation_started_by_the_emsp(tmp_path: Path) -> None:
    async with cpo_and_emsp(tmp_path) as (cpo, msp):
        peer = await cpo.ok("create-peer", "--name", "msp")
        first = await msp.register(peer["versions_url"], peer["token"])
        second = await msp.rotate()
        assert second["token"] != first["token"]
        status, _, _ = await msp.call("GET", f"{cpo.url}/ocpi/2.2.1", token=first["token"])
        assert status == 401
        status, _, _ = await msp.call("GET", f"{cpo.url}/ocpi/2.2.1")
        assert status == 200
        # The CPO now calls us with the new token we gave it (it fetched our endpoints again).
        assert msp.state.received[-1].path == "/ocpi/2.2.1"


async def test_unregistration_started_by_the_emsp(tmp_path: Path) -> None:
    async with cpo_and_emsp(tmp_path) as (cpo, msp):
        peer = await cpo.ok("create-peer", "--name", "msp")
        await msp.register(peer["versions_url"], peer["token"])
        status, body = await msp.unregister()
        assert (status, body["status_code"]) == (200, 1000)
        assert "data" not in body
        (listed,) = await cpo.ok("list-peers")
        assert listed["status"] == "UNREGISTERED"
        status, _ = await msp.unregister()
        assert status == 401  # the token died with the registration


async def test_cpo_registers_rotates_and_unregisters(tmp_path: Path) -> None:
    async with cpo_and_emsp(tmp_path) as (cpo, msp):
        token_a = msp.issue_token_a()
        peer = await cpo.ok("register-peer", "--name", "msp", "--versions-url", msp.versions_url, f"--token={token_a}")
        assert peer["status"] == "REGISTERED"
        assert peer["parties"] == ["NL*EMS"]
        assert peer["last_exchange"] is not None
        # The eMSP learnt our endpoints with the token B we sent and answered with its token C.
        assert msp.state.cpo_endpoints["locations"] == f"{cpo.url}/ocpi/cpo/2.2.1/locations"
        assert msp.state.token_a is None
        old_in = msp.state.token_in
        status, _, _ = await msp.call("GET", f"{cpo.url}/ocpi/2.2.1")
        assert status == 200

        rotated = await cpo.ok("rotate-peer", str(peer["peer_id"]))
        assert rotated["status"] == "REGISTERED"
        assert msp.state.token_in != old_in
        status, _, _ = await msp.call("GET", f"{cpo.url}/ocpi/2.2.1")
        assert status == 200  # the eMSP uses the token our PUT gave it

        assert await cpo.ok("unregister-peer", str(peer["peer_id"])) == {
            "peer_id": peer["peer_id"],
            "status": "UNREGISTERED",
        }
        assert msp.state.token_in is None
        status, _, _ = await msp.call("GET", f"{cpo.url}/ocpi/2.2.1", token=msp.state.token_out or "gone")
        assert status == 401
        code, _, err = await cpo.cli("rotate-peer", str(peer["peer_id"]))
        assert code == 1
        assert "not registered" in err
        code, _, err = await cpo.cli("unregister-peer", str(peer["peer_id"]))
        assert code == 0  # already forgotten: nothing to ask the eMSP


async def test_cpo_registration_failures_leave_no_peer(tmp_path: Path) -> None:
    async with cpo_and_emsp(tmp_path) as (cpo, msp):
        code, _, err = await cpo.cli(
            "register-peer", "--name", "x", "--versions-url", msp.versions_url, "--token", "wrong"
        )
        assert code == 1
        assert "3001" not in err
        assert "cannot read your versions" in err
        code, _, err = await cpo.cli(
            "register-peer", "--name", "x", "--versions-url", f"{msp.url}/nothing-here", "--token", "wrong"
        )
        assert code == 1
        assert await cpo.ok("list-peers") == []


async def test_rotation_failure_keeps_the_current_tokens(tmp_path: Path) -> None:
    async with cpo_and_emsp(tmp_path) as (cpo, msp):
        token_a = msp.issue_token_a()
        peer = await cpo.ok("register-peer", "--name", "msp", "--versions-url", msp.versions_url, f"--token={token_a}")
        await msp.go_down()
        code, _, err = await cpo.cli("rotate-peer", str(peer["peer_id"]))
        assert code == 1
        assert "ClientConnectorError" in err
        code, _, err = await cpo.cli("unregister-peer", str(peer["peer_id"]))
        assert code == 1
        await msp.start()
        status, _, _ = await msp.call("GET", f"{cpo.url}/ocpi/2.2.1")
        assert status == 200
        (listed,) = await cpo.ok("list-peers")
        assert listed["status"] == "REGISTERED"
        assert "failed" in listed["last_exchange"]
        await msp.go_down()
        assert (await cpo.ok("unregister-peer", str(peer["peer_id"]), "--force"))["status"] == "UNREGISTERED"


async def test_peer_refusing_our_delete(tmp_path: Path) -> None:
    async with cpo_and_emsp(tmp_path) as (cpo, msp):
        token_a = msp.issue_token_a()
        peer = await cpo.ok("register-peer", "--name", "msp", "--versions-url", msp.versions_url, f"--token={token_a}")
        msp.state.token_in = "something else"  # the eMSP no longer knows our token
        code, _, err = await cpo.cli("unregister-peer", str(peer["peer_id"]))
        assert code == 1
        assert "DELETE credentials: HTTP 401" in err
        code, _, err = await cpo.cli("rotate-peer", str(peer["peer_id"]))
        assert "PUT credentials: HTTP 401" in err


async def test_plain_token_peers_are_detected(tmp_path: Path) -> None:
    async with cpo_and_emsp(tmp_path, plain_tokens=True) as (cpo, msp):
        token_a = msp.issue_token_a()
        peer = await cpo.ok("register-peer", "--name", "old", "--versions-url", msp.versions_url, f"--token={token_a}")
        assert peer["status"] == "REGISTERED"
        # We learnt to send it plain tokens; it sends us plain tokens too, which we accept.
        rows = await cpo.ctx.db.fetchall("SELECT plain_auth FROM peers")
        assert rows == [{"plain_auth": 1}]
        status, _, _ = await msp.call("GET", f"{cpo.url}/ocpi/2.2.1")
        assert status == 200


@pytest.mark.parametrize(
    ("change", "code", "message"),
    [
        ("no-version", 3002, "no mutual version"),
        ("no-credentials", 3003, "no credentials endpoint"),
        ("bad-details", 3001, "cannot read your 2.2.1 endpoints"),
        ("details-error", 3001, "version details: HTTP 500, status 3000"),
        ("down", 3001, "cannot read your versions"),
    ],
)
async def test_registration_errors_answer_3xxx(tmp_path: Path, change: str, code: int, message: str) -> None:
    async with cpo_and_emsp(tmp_path) as (cpo, msp):
        peer = await cpo.ok("create-peer", "--name", "msp")
        endpoints = msp.endpoints()
        if change == "no-version":
            msp._versions = _answer(msp, [{"version": "2.1.1", "url": msp.url + "/ocpi/2.1.1"}])  # type: ignore[method-assign]
        elif change == "no-credentials":
            details = {"version": "2.2.1", "endpoints": [e for e in endpoints if e["identifier"] != "credentials"]}
            msp._details = _answer(msp, details)  # type: ignore[method-assign]
        elif change == "bad-details":
            msp._details = _answer(msp, {"version": "2.2.1", "endpoints": "none"})  # type: ignore[method-assign]
        elif change == "details-error":

            async def failing(request: web.Request) -> web.Response:
                return msp._reply(None, 3000, http=500)

            msp._details = failing  # type: ignore[method-assign]
        await msp.go_down()
        await msp.start()
        msp.state.token_in = "b-token"
        if change == "down":
            await msp.go_down()
        status, body, _ = await fetch(
            "POST", f"{cpo.url}/ocpi/2.2.1/credentials", token=peer["token"], body=msp.credentials("b-token")
        )
        assert status == 200
        assert body["status_code"] == code
        assert message in body["status_message"]
        # Still not registered: token A still works for a new attempt.
        (listed,) = await cpo.ok("list-peers")
        assert listed["status"] == "PENDING"


async def test_registration_needs_a_cpo_party(tmp_path: Path) -> None:
    async with running_cpo(tmp_path) as cpo, Emsp() as msp:
        peer = await cpo.ok("create-peer", "--name", "msp")
        msp.state.token_in = "b-token"
        status, body, _ = await fetch(
            "POST", f"{cpo.url}/ocpi/2.2.1/credentials", token=peer["token"], body=msp.credentials("b-token")
        )
        assert (status, body["status_code"]) == (200, 3000)
        code, _, err = await cpo.cli("register-peer", "--name", "x", "--versions-url", msp.versions_url, "--token", "t")
        assert (code, err) == (1, "error: no CPO party is configured\n")


@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [
        (b"{not json", 400, 2000),
        (b'{"token": 5, "url": "x", "roles": []}', 200, 2001),
        (b'{"token": "has space", "url": "http://x", "roles": [{}]}', 200, 2001),
        (b'{"url": "http://x", "roles": []}', 200, 2001),
        (b"[]", 200, 2001),
    ],
)
async def test_bad_credentials_bodies(tmp_path: Path, raw: bytes, status: int, code: int) -> None:
    async with cpo_and_emsp(tmp_path) as (cpo, _):
        peer = await cpo.ok("create-peer", "--name", "msp")
        got, body, _ = await fetch("POST", f"{cpo.url}/ocpi/2.2.1/credentials", token=peer["token"], raw=raw)
        assert (got, body["status_code"]) == (status, code)
        (listed,) = await cpo.ok("list-peers")
        assert listed["status"] == "PENDING"


def _answer(msp: Emsp, data: object):  # type: ignore[no-untyped-def]
    async def handler(request: object) -> object:
        return msp._reply(data)

    return handler


async def test_our_credentials_carry_the_business_details(tmp_path: Path) -> None:
    async with running_cpo(tmp_path) as cpo, Emsp() as msp:
        await cpo.ok(
            "create-party",
            "--country-code",
            "FR",
            "--party-id",
            "CAR",
            "--name",
            "Cariflex",
            "--website",
            "https://cariflex.fr",
        )
        peer = await cpo.ok("create-peer", "--name", "msp")
        ours = await msp.register(peer["versions_url"], peer["token"])
        assert ours["roles"][0]["business_details"] == {"name": "Cariflex", "website": "https://cariflex.fr"}


async def test_peers_answering_oddly_during_our_registration(tmp_path: Path) -> None:
    async with cpo_and_emsp(tmp_path) as (cpo, msp):
        code, _, err = await cpo.cli(
            "register-peer", "--name", "x", "--versions-url", f"{cpo.url}/healthz", "--token", "t"
        )
        assert "not an OCPI response" in err
        msp._credentials = _answer(msp, {"token": 5})  # type: ignore[method-assign]
        await msp.go_down()
        await msp.start()
        code, _, err = await cpo.cli(
            "register-peer", "--name", "x", "--versions-url", msp.versions_url, f"--token={msp.issue_token_a()}"
        )
        assert (code, "POST credentials: token: must match") == (1, err.split("[")[0].removeprefix("error: ").strip())
        assert await cpo.ok("list-peers") == []
        code, _, err = await cpo.cli("unregister-peer", "99")
        assert (code, err) == (1, "error: peer 99 is not registered\n")


async def test_a_peer_may_answer_with_another_versions_url(tmp_path: Path) -> None:
    async with cpo_and_emsp(tmp_path) as (cpo, msp):
        original = msp.credentials

        def moved(token: str) -> dict[str, object]:
            return {**original(token), "url": msp.versions_url + "?moved=1"}

        msp.credentials = moved  # type: ignore[method-assign]
        peer = await cpo.ok(
            "register-peer", "--name", "x", "--versions-url", msp.versions_url, f"--token={msp.issue_token_a()}"
        )
        assert peer["versions_url"] == msp.versions_url + "?moved=1"
        assert msp.state.received[-1].path == "/ocpi/2.2.1"  # fetched again, with its token C
