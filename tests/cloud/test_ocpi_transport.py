"""Stage 2: the OCPI transport layer: envelope, authentication, ids and routing headers, errors, types."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
import logging
from pathlib import Path
from typing import Any

import pytest

from cloud_connector.ocpi import schema
from cloud_connector.ocpi.schema import Invalid, validate
from cloud_connector.ocpi.transport import authorization_header, token_candidates
from cloud_connector.timeutil import format_dt, parse_dt

from .harness import add_site, connected, fetch

pytestmark = pytest.mark.usefixtures("socket_enabled")


async def test_envelope_and_request_ids(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "cloud_connector.ocpi.transport")
    async with connected(tmp_path) as (_, msp):
        url = msp.state.cpo_endpoints["locations"]
        token = msp.state.token_out
        status, body, headers = await fetch(
            "GET", url, token=token, headers={"X-Request-ID": "req-1", "X-Correlation-ID": "cor-1"}
        )
        assert status == 200
        assert set(body) == {"data", "status_code", "timestamp"}
        assert body["status_code"] == 1000
        assert parse_dt(body["timestamp"]).tzinfo is UTC
        assert body["timestamp"].endswith("Z")
        assert (headers["X-Request-ID"], headers["X-Correlation-ID"]) == ("req-1", "cor-1")
        (access,) = [r for r in caplog.records if getattr(r, "request_id", None) == "req-1"]
        assert access.getMessage() == "GET /ocpi/cpo/2.2.1/locations -> 200"
        assert (access.peer, access.ocpi_module, access.correlation_id) == (1, "locations", "cor-1")  # type: ignore[attr-defined]
        _, _, headers = await fetch("GET", url, token=token)
        assert len(headers["X-Request-ID"]) == 36  # made up when missing
        assert headers["X-Request-ID"] != headers["X-Correlation-ID"]


async def test_tokens_base64_or_plain(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, "cloud_connector.ocpi.transport")
    async with connected(tmp_path) as (_, msp):
        url = msp.state.cpo_endpoints["locations"]
        token = msp.state.token_out
        assert token is not None
        status, _, _ = await fetch("GET", url, headers={"Authorization": f"Token {token}"})
        assert status == 200
        assert _auth_forms(caplog)[-1] == "plain"
        status, _, _ = await fetch("GET", url, headers={"Authorization": authorization_header(token)})
        assert status == 200
        assert _auth_forms(caplog)[-1] == "base64"
        for header in (None, "Token", f"Bearer {token}", "Token bm9wZQ==", "Token nope"):
            send = {"Authorization": header} if header else {}
            status, body, headers = await fetch("GET", url, headers=send)
            assert status == 401, header
            assert body["status_code"] == 2000
            assert "X-Request-ID" in headers


def _auth_forms(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.auth_header for r in caplog.records if hasattr(r, "auth_header")]


def test_token_header_forms() -> None:
    assert token_candidates("Token " + base64.b64encode(b"abc").decode()) == [("abc", "base64"), ("YWJj", "plain")]
    # The specification's own example encodes a trailing newline.
    assert token_candidates("Token ZXhhbXBsZS10b2tlbgo=")[0] == ("example-token", "base64")
    assert token_candidates("token a-b_c") == [("a-b_c", "plain")]
    assert token_candidates("Token " + base64.b64encode("é".encode()).decode())[-1][1] == "plain"
    assert token_candidates("") == []
    assert authorization_header("abc", plain=True) == "Token abc"


async def test_routing_headers_are_swapped_in_answers(tmp_path: Path) -> None:
    async with connected(tmp_path) as (_, msp):
        url = msp.state.cpo_endpoints["locations"]
        sent = {
            "OCPI-from-country-code": "DE",
            "OCPI-from-party-id": "HUB",
            "OCPI-to-country-code": "FR",
            "OCPI-to-party-id": "CAR",
        }
        _, _, headers = await fetch("GET", url, token=msp.state.token_out, headers=sent)
        assert (headers["OCPI-to-country-code"], headers["OCPI-to-party-id"]) == ("DE", "HUB")
        assert (headers["OCPI-from-country-code"], headers["OCPI-from-party-id"]) == ("FR", "CAR")
        # Without them: from our party, to the peer's.
        _, _, headers = await fetch("GET", url, token=msp.state.token_out)
        assert (headers["OCPI-to-country-code"], headers["OCPI-to-party-id"]) == ("NL", "EMS")
        # Configuration modules are not routed.
        _, _, headers = await fetch("GET", msp.state.cpo_endpoints["credentials"], token=msp.state.token_out)
        assert "OCPI-to-party-id" not in headers


async def test_unknown_paths_and_wrong_methods(tmp_path: Path) -> None:
    async with connected(tmp_path) as (cpo, msp):
        token = msp.state.token_out
        status, body, _ = await fetch("GET", f"{cpo.url}/ocpi/cpo/2.2.1/nothing", token=token)
        assert (status, body["status_code"]) == (404, 2000)
        status, body, headers = await fetch("POST", msp.state.cpo_endpoints["locations"], token=token, body={})
        assert (status, body["status_code"]) == (405, 2000)
        assert "GET" in headers["Allow"]
        status, _, _ = await fetch("GET", f"{cpo.url}/ocpi/cpo/2.2.1/nothing")
        assert status == 401  # who you are comes first
        status, _, _ = await fetch("GET", f"{cpo.url}/elsewhere")
        assert status == 404  # not OCPI: plain aiohttp


async def test_internal_errors_answer_3000(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cloud_connector.ocpi import views

    async def broken(*args: Any) -> None:
        raise RuntimeError("bug")

    async with connected(tmp_path) as (cpo, msp):
        await add_site(cpo)
        monkeypatch.setattr(views, "location", broken)
        status, body, _ = await msp.module("GET", "locations", "/s1")
        assert (status, body["status_code"], body["status_message"]) == (500, 3000, "internal error")


def test_datetimes() -> None:
    moment = datetime(2015, 6, 29, 20, 39, 9, tzinfo=UTC)
    for text in ("2015-06-29T20:39:09Z", "2015-06-29T20:39:09", "2015-06-29T22:39:09+02:00"):
        assert parse_dt(text) == moment
    assert parse_dt("2016-12-29T17:45:09.2Z").microsecond == 200000
    assert parse_dt("2018-01-01T01:08:01.123456789Z").microsecond == 123456
    assert format_dt(moment) == "2015-06-29T20:39:09Z"
    assert format_dt(moment.replace(microsecond=123000)) == "2015-06-29T20:39:09.123Z"
    for bad in ("2015-06-29", "2015-06-29 20:39:09Z", "yesterday", "2015-13-29T20:39:09Z"):
        with pytest.raises(ValueError, match=r"."):
            parse_dt(bad)


def test_schema_keeps_known_fields_and_names_problems() -> None:
    token = {
        "country_code": "NL",
        "party_id": "TNM",
        "uid": "012345678",
        "type": "RFID",
        "contract_id": "NL8ACC12E46L89",
        "issuer": "TheNewMotion",
        "valid": True,
        "whitelist": "ALWAYS",
        "last_updated": "2015-06-29T22:39:09+00:00",
        "vendor_extension": {"x": 1},
        "group_id": None,
    }
    clean = validate(schema.TOKEN, token)
    assert "vendor_extension" not in clean
    assert "group_id" not in clean
    assert clean["last_updated"] == "2015-06-29T22:39:09Z"
    cases: list[tuple[dict[str, Any], str]] = [
        ({"uid": 12}, "uid: expected a string"),
        ({"uid": "x" * 37}, "uid: longer than 36 characters"),
        ({"uid": "tab\there"}, "uid: only printable ASCII"),
        ({"issuer": "line\nbreak"}, "issuer: only printable characters"),
        ({"type": "CARD"}, "type: expected one of"),
        ({"valid": "yes"}, "valid: expected true or false"),
        ({"last_updated": "now"}, "last_updated: not an RFC 3339"),
        ({"last_updated": 5}, "last_updated: expected a DateTime"),
        ({"energy_contract": []}, "energy_contract: expected an object"),
        ({"energy_contract": {}}, "energy_contract.supplier_name: missing"),
        ({"contract_id": None}, "contract_id: missing"),
    ]
    for change, problem in cases:
        with pytest.raises(Invalid, match=problem):
            validate(schema.TOKEN, {**token, **change})
    assert validate(schema.TOKEN, {"valid": False, "last_updated": "2019-06-19T02:11:11Z"}, partial=True) == {
        "valid": False,
        "last_updated": "2019-06-19T02:11:11Z",
    }
    with pytest.raises(Invalid, match="expected an object"):
        validate(schema.TOKEN, [], partial=True)
    with pytest.raises(Invalid, match="roles: must not be empty"):
        validate(schema.CREDENTIALS, {"token": "t", "url": "http://x", "roles": []})
    with pytest.raises(Invalid, match="roles: expected a list"):
        validate(schema.CREDENTIALS, {"token": "t", "url": "http://x", "roles": {}})
    with pytest.raises(Invalid, match=r"charging_profile_period\[0\].limit: expected a number"):
        validate(
            schema.CHARGING_PROFILE,
            {"charging_rate_unit": "W", "charging_profile_period": [{"start_period": 0, "limit": True}]},
        )
    with pytest.raises(Invalid, match="start_period: expected an integer"):
        validate(
            schema.CHARGING_PROFILE,
            {"charging_rate_unit": "W", "charging_profile_period": [{"start_period": "0", "limit": 1}]},
        )
    with pytest.raises(Invalid, match="duration: must be at least 0"):
        validate(schema.CHARGING_PROFILE, {"charging_rate_unit": "A", "duration": -1})
