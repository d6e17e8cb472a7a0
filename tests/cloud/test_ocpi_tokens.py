"""Stage 5: tokens pushed by eMSPs, real-time authorization, whitelist rules (also with the eMSP down)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cloud_connector.authorization import Decision

from .harness import Cpo, add_site, connected
from .test_ocpi_push import FAST

pytestmark = pytest.mark.usefixtures("socket_enabled")


async def put(msp: Any, token: dict[str, Any], query: str = "") -> tuple[int, Any]:
    status, body, _ = await msp.module(
        "PUT", "tokens", f"/{token['country_code']}/{token['party_id']}/{token['uid']}{query}", token
    )
    return status, body


async def authorize(cpo: Cpo, uid: str, evse: str | None = "s1-CP1-1") -> Decision:
    decision: Decision = await cpo.service.authorizer.authorize("s1", uid, evse_uid=evse)
    return decision


def asked(msp: Any) -> list[Any]:
    return [r for r in msp.state.received if r.path.endswith("/authorize")]


async def test_put_get_patch(tmp_path: Path) -> None:
    async with connected(tmp_path) as (_, msp):
        token = msp.add_token("012345678", group_id="DF000-2001-8999", extension={"unknown": "field"})
        status, body = await put(msp, token)
        assert (status, body["status_code"]) == (201, 1000)  # created
        assert "data" not in body
        status, body = await put(msp, token)
        assert status == 200  # replaced
        status, body, _ = await msp.module("GET", "tokens", "/NL/EMS/012345678")
        assert status == 200
        assert body["data"] == {k: v for k, v in token.items() if k != "extension"}  # unknown fields dropped
        status, body, _ = await msp.module("GET", "tokens", "/nl/ems/012345678?type=RFID")  # CiString
        assert status == 200
        status, body, _ = await msp.module(
            "PATCH", "tokens", "/NL/EMS/012345678", {"valid": False, "last_updated": "2026-11-26T12:00:00Z"}
        )
        assert (status, body["status_code"]) == (200, 1000)
        _, body, _ = await msp.module("GET", "tokens", "/NL/EMS/012345678")
        assert body["data"]["valid"] is False
        assert body["data"]["last_updated"] == "2026-11-26T12:00:00Z"
        assert body["data"]["group_id"] == "DF000-2001-8999"
        # Same uid, other type: another token.
        status, body, _ = await msp.module("GET", "tokens", "/NL/EMS/012345678?type=APP_USER")
        assert (status, body["status_code"]) == (404, 2004)


@pytest.mark.parametrize(
    "case",
    [
        ("PUT", "/NL/EMS/T1", {"uid": "T1"}, 200, 2001),  # missing fields
        ("PUT", "/NL/EMS/T1", "replace-uid", 200, 2001),  # the URL and the object disagree
        ("PUT", "/NL/EMS/T1", "replace-type", 200, 2001),
        ("PUT", "/NL/EMS/T1?type=CARD", None, 200, 2001),
        ("PUT", "/DE/XYZ/T1", None, 404, 2000),  # not the peer's party
        ("PUT", "/NL/EMS/T1", "valid-string", 200, 2001),
        ("PATCH", "/NL/EMS/T1", {"valid": False}, 200, 2001),  # no last_updated
        ("PATCH", "/NL/EMS/T1", {"valid": "no", "last_updated": "2026-11-26T12:00:00Z"}, 200, 2001),
        ("PATCH", "/NL/EMS/T1", {"uid": "T2", "last_updated": "2026-11-26T12:00:00Z"}, 200, 2001),
        ("PATCH", "/NL/EMS/NOPE", {"valid": False, "last_updated": "2026-11-26T12:00:00Z"}, 404, 2004),
        ("GET", "/NL/EMS/NOPE", None, 404, 2004),
    ],
)
async def test_bad_token_requests_store_nothing(tmp_path: Path, case: tuple[str, str, Any, int, int]) -> None:
    method, suffix, body, status, code = case
    async with connected(tmp_path) as (cpo, msp):
        token = msp.add_token("T1")
        if body is None:
            body = token
        elif body == "replace-uid":
            body = {**token, "uid": "T2"}
        elif body == "replace-type":
            body = {**token, "type": "APP_USER"}
        elif body == "valid-string":
            body = {**token, "valid": "true"}
        if method == "PATCH":
            await put(msp, token)
        before = await cpo.ctx.db.fetchall("SELECT body FROM tokens")
        got, answer, _ = await msp.module(method, "tokens", suffix, body)
        assert (got, answer["status_code"]) == (status, code)
        assert await cpo.ctx.db.fetchall("SELECT body FROM tokens") == before


async def test_malformed_json_is_a_400(tmp_path: Path) -> None:
    from .harness import fetch

    async with connected(tmp_path) as (cpo, msp):
        url = msp.state.cpo_endpoints["tokens"] + "/NL/EMS/T1"
        status, body, _ = await fetch("PUT", url, token=msp.state.token_out, raw=b'{"uid": ')
        assert (status, body["status_code"]) == (400, 2000)
        assert await cpo.ctx.db.fetchall("SELECT * FROM tokens") == []


@pytest.mark.parametrize(
    "case",
    [
        ("ALWAYS", True, False, True, "WHITELIST", False),
        ("ALWAYS", False, True, False, "WHITELIST", False),
        ("ALLOWED", True, False, True, "WHITELIST", False),
        ("ALLOWED_OFFLINE", True, True, True, "AUTH_REQUEST", True),
        ("ALLOWED_OFFLINE", False, True, False, "AUTH_REQUEST", True),
        ("ALLOWED_OFFLINE", True, False, True, "WHITELIST", False),
        ("NEVER", True, True, True, "AUTH_REQUEST", True),
        ("NEVER", False, False, False, "AUTH_REQUEST", False),
        ("NEVER", True, False, False, "AUTH_REQUEST", False),
    ],
)
async def test_whitelist_rules(tmp_path: Path, case: tuple[str, bool, bool, bool, str, bool]) -> None:
    """(whitelist, token valid, eMSP up) -> (allowed, auth method, whether the eMSP is asked)."""
    whitelist, valid, emsp_up, allowed, method, asks = case
    async with connected(tmp_path, ocpi=FAST) as (cpo, msp):
        await add_site(cpo)
        token = msp.add_token("BADGE1", whitelist=whitelist, valid=valid)
        await put(msp, token)
        if not emsp_up:
            await msp.go_down()
        decision = await authorize(cpo, "badge1")  # the reader's case does not matter
        assert (decision.allowed, decision.auth_method) == (allowed, method), decision.reason
        if emsp_up:
            assert bool(asked(msp)) is asks
        if asks:
            request = asked(msp)[0]
            assert request.path == "/ocpi/emsp/2.2.1/tokens/BADGE1/authorize"
            assert request.body == {"location_id": "s1", "evse_uids": ["s1-CP1-1"]}
            assert request.headers["OCPI-to-party-id"] == "EMS"
            assert decision.authorization_reference is not None


async def test_unknown_tokens_are_asked_to_every_emsp(tmp_path: Path) -> None:
    async with connected(tmp_path, ocpi=FAST) as (cpo, msp):
        await add_site(cpo)
        msp.add_token("NOT-PUSHED", whitelist="ALWAYS")  # the eMSP knows it but never pushed it
        decision = await authorize(cpo, "NOT-PUSHED", evse=None)
        assert (decision.allowed, decision.auth_method) == (True, "AUTH_REQUEST")
        assert asked(msp)[0].body == {"location_id": "s1"}
        # It is now known (the eMSP said ALWAYS): next time, no question.
        count = len(asked(msp))
        assert (await authorize(cpo, "NOT-PUSHED")).allowed
        assert len(asked(msp)) == count
        decision = await authorize(cpo, "STRANGER")
        assert (decision.allowed, decision.reason) == (False, "unknown token")
        msp.authorize_answer["BLOCKED1"] = {"allowed": "BLOCKED"}
        msp.add_token("BLOCKED1", whitelist="NEVER")
        assert not (await authorize(cpo, "BLOCKED1")).allowed
        await msp.go_down()
        decision = await authorize(cpo, "STRANGER")
        assert (decision.allowed, decision.reason) == (False, "no eMSP reachable")


async def test_odd_emsp_answers(tmp_path: Path) -> None:
    async with connected(tmp_path, ocpi=FAST) as (cpo, msp):
        await add_site(cpo)
        token = msp.add_token("N1", whitelist="NEVER")
        await put(msp, token)
        msp.authorize_answer["N1"] = {"allowed": "MAYBE"}  # not an AllowedType
        assert (await authorize(cpo, "N1")).reason == "eMSP unreachable, NEVER"
        msp.authorize_answer["N1"] = {"token": {**token, "country_code": "DE", "party_id": "XYZ"}}
        decision = await authorize(cpo, "N1")
        assert decision.allowed  # answered, but the token it returned is not the eMSP's to give: not kept
        rows = await cpo.ctx.db.fetchall("SELECT country_code FROM tokens")
        assert rows == [{"country_code": "NL"}]
        msp.authorize_status["N1"] = (200, 2002)
        assert (await authorize(cpo, "N1")).reason == "eMSP answered 2002"
        msp.authorize_status["N1"] = (503, 3000)
        assert (await authorize(cpo, "N1")).reason == "eMSP unreachable, NEVER"
        msp.authorize_status["N1"] = (404, 2004)
        decision = await authorize(cpo, "N1")
        assert (decision.allowed, decision.reason) == (False, "unknown to its eMSP")


async def test_authorization_binds_the_coming_session(tmp_path: Path) -> None:
    async with connected(tmp_path, ocpi=FAST) as (cpo, msp):
        site = await add_site(cpo)
        token = msp.add_token("N2", whitelist="NEVER")
        await put(msp, token)
        decision = await authorize(cpo, "N2")
        await site.send(
            "session_start",
            {
                "session_id": "42",
                "charger_id": "CP1",
                "evse_id": 1,
                "connector_id": 1,
                "id_tag": "N2",
                "auth_method": "AUTH_REQUEST",
                "start": "2026-11-26T10:00:00Z",
                "meter_start_wh": 1000,
            },
        )
        (session,) = msp.state.sessions.values()
        assert session["authorization_reference"] == decision.authorization_reference
        assert session["cdr_token"] == {
            "country_code": "NL",
            "party_id": "EMS",
            "uid": "N2",
            "type": "RFID",
            "contract_id": token["contract_id"],
        }
        assert session["auth_method"] == "AUTH_REQUEST"
        await site.send(
            "session_end",
            {"session_id": "42", "stop": "2026-11-26T11:00:00Z", "energy_wh": 2000, "meter_stop_wh": 3000},
        )
        (cdr,) = msp.state.cdrs.values()
        assert cdr["authorization_reference"] == decision.authorization_reference


async def test_offline_list_for_sites(tmp_path: Path) -> None:
    async with connected(tmp_path) as (cpo, msp):
        for uid, whitelist, valid in (
            ("A", "ALWAYS", True),
            ("B", "ALLOWED", True),
            ("C", "ALLOWED_OFFLINE", True),
            ("D", "NEVER", True),
            ("E", "ALWAYS", False),
        ):
            await put(msp, msp.add_token(uid, whitelist=whitelist, valid=valid))
        listed = await cpo.service.authorizer.offline_tokens()
        assert [(t["uid"], t["whitelist"]) for t in listed] == [
            ("A", "ALWAYS"),
            ("B", "ALLOWED"),
            ("C", "ALLOWED_OFFLINE"),
        ]
        assert set(listed[0]) == {"country_code", "party_id", "uid", "type", "contract_id", "whitelist"}
        await msp.unregister()
        assert await cpo.service.authorizer.offline_tokens() == []
