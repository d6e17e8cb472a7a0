"""The site's decision for a roaming badge (pure): OCPI 2.2.1 WhitelistType, case by case."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from custom_components.cariflex.access import AuthStatus
from custom_components.cariflex.access.roaming import (
    CloudAnswer,
    DecisionSource,
    RoamingDecision,
    RoamingStatus,
    RoamingToken,
    TokenInfo,
    Whitelist,
    decide,
    list_is_stale,
    local_decision,
)

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def wire(uid: str = "BADGE1", whitelist: str = "ALLOWED_OFFLINE", valid: bool = True, **extra: Any) -> dict[str, Any]:
    return {
        "country_code": "NL",
        "party_id": "EMS",
        "uid": uid,
        "type": "RFID",
        "contract_id": f"NL-EMS-C{uid}",
        "issuer": "Test eMSP",
        "whitelist": whitelist,
        "valid": valid,
        "last_updated": "2026-11-26T09:00:00Z",
        **extra,
    }


def entry(whitelist: str, valid: bool = True) -> RoamingToken:
    return RoamingToken.from_wire(wire(whitelist=whitelist, valid=valid))


ACCEPT = CloudAnswer(status=RoamingStatus.ACCEPTED, reason="eMSP: ALLOWED")  # the list names the token
BLOCK = CloudAnswer(status=RoamingStatus.BLOCKED, reason="eMSP: BLOCKED")
OK, NO, UNK = RoamingStatus.ACCEPTED, RoamingStatus.INVALID, RoamingStatus.UNKNOWN
CLOUD, LIST, NONE = DecisionSource.CLOUD, DecisionSource.LIST, DecisionSource.NONE

# (list entry: (whitelist, valid) or None, cloud: "accepts"/"blocks"/"silent") -> (cloud asked, status, source)
# "silent" is every way of not getting an answer: not connected, timeout, error, connection lost.
CASES: list[tuple[tuple[str, bool] | None, str, bool, RoamingStatus, DecisionSource]] = [
    # ALWAYS: real-time authorization is not allowed; the list decides, valid or not.
    (("ALWAYS", True), "accepts", False, OK, LIST),
    (("ALWAYS", True), "blocks", False, OK, LIST),
    (("ALWAYS", True), "silent", False, OK, LIST),
    (("ALWAYS", False), "accepts", False, NO, LIST),
    (("ALWAYS", False), "silent", False, NO, LIST),
    # ALLOWED: the CPO may choose; the cloud would decide from the same list, so the list decides.
    (("ALLOWED", True), "blocks", False, OK, LIST),
    (("ALLOWED", True), "silent", False, OK, LIST),
    (("ALLOWED", False), "accepts", False, NO, LIST),
    (("ALLOWED", False), "silent", False, NO, LIST),
    # ALLOWED_OFFLINE: real-time first; allowed from the list only without an answer.
    (("ALLOWED_OFFLINE", True), "accepts", True, OK, CLOUD),
    (("ALLOWED_OFFLINE", True), "blocks", True, RoamingStatus.BLOCKED, CLOUD),
    (("ALLOWED_OFFLINE", True), "silent", True, OK, LIST),
    (("ALLOWED_OFFLINE", False), "accepts", True, OK, CLOUD),  # "the state of the Token might have changed"
    (("ALLOWED_OFFLINE", False), "silent", True, NO, LIST),  # never accept what the eMSP invalidated
    # NEVER: real-time only.
    (("NEVER", True), "accepts", True, OK, CLOUD),
    (("NEVER", True), "blocks", True, RoamingStatus.BLOCKED, CLOUD),
    (("NEVER", True), "silent", True, NO, NONE),
    (("NEVER", False), "accepts", True, OK, CLOUD),
    (("NEVER", False), "silent", True, NO, NONE),
    # Not on the list: only the cloud can say.
    (None, "accepts", True, OK, CLOUD),
    (None, "blocks", True, RoamingStatus.BLOCKED, CLOUD),
    (None, "silent", True, UNK, NONE),
]


@pytest.mark.parametrize(("listed", "cloud", "asked", "status", "source"), CASES)
def test_whitelist_rules(
    listed: tuple[str, bool] | None, cloud: str, asked: bool, status: RoamingStatus, source: DecisionSource
) -> None:
    token = entry(*listed) if listed else None
    assert (local_decision(token) is None) is asked
    answer = {"accepts": ACCEPT, "blocks": BLOCK, "silent": None}[cloud]
    decision = decide(token, answer if asked else None, unanswered="no answer within 5 s")
    assert (decision.status, decision.source) == (status, source), decision.reason
    assert decision.accepted is (status is OK)
    if source is not CLOUD and asked:
        assert "no answer within 5 s" in decision.reason
    if token is not None:
        assert decision.token == token.info
        assert decision.whitelist == token.whitelist


def test_the_cloud_answer_names_the_token() -> None:
    info = TokenInfo.from_wire(wire("X1", group_id="GROUP-1"))
    answer = CloudAnswer(status=RoamingStatus.ACCEPTED, whitelist=Whitelist.NEVER, token=info)
    decision = decide(None, answer)
    assert decision.token == info
    assert decision.parent_id_tag == "GROUP-1"
    assert decision.reason == "cloud: ACCEPTED"
    assert (decision.whitelist, decision.source) == (Whitelist.NEVER, DecisionSource.CLOUD)
    # Without a token in the answer, the list's own entry names it.
    listed = entry("NEVER")
    decision = decide(listed, CloudAnswer(status=RoamingStatus.NO_CREDIT))
    assert (decision.token, decision.whitelist, decision.parent_id_tag) == (listed.info, Whitelist.NEVER, None)
    assert decide(None, None).reason == "not listed; the cloud could not be asked"


@pytest.mark.parametrize(
    ("status", "ocpp"),
    [
        (RoamingStatus.ACCEPTED, AuthStatus.ACCEPTED),
        (RoamingStatus.BLOCKED, AuthStatus.BLOCKED),
        (RoamingStatus.EXPIRED, AuthStatus.EXPIRED),
        (RoamingStatus.INVALID, AuthStatus.INVALID),
        (RoamingStatus.NO_CREDIT, AuthStatus.INVALID),
        (RoamingStatus.NOT_ALLOWED, AuthStatus.INVALID),
        (RoamingStatus.UNKNOWN, AuthStatus.INVALID),
    ],
)
def test_ocpp_status(status: RoamingStatus, ocpp: AuthStatus) -> None:
    assert RoamingDecision(status=status, source=DecisionSource.CLOUD, reason="").ocpp_status is ocpp


def test_wire_forms_round_trip() -> None:
    token = RoamingToken.from_wire(wire(group_id="G", last_updated="2026-11-26T09:00:00.250+00:00"))
    assert token.as_wire() == wire(group_id="G", last_updated="2026-11-26T09:00:00.250000Z")
    assert token.info.key == ("NL", "EMS", "BADGE1", "RFID")
    assert "group_id" not in entry("ALWAYS").as_wire()
    frame = {"allowed": "EXPIRED", "whitelist": "ALWAYS", "token": wire(), "reason": "eMSP: EXPIRED"}
    answer = CloudAnswer.from_wire(frame)
    assert (answer.status, answer.whitelist, answer.reason) == (
        RoamingStatus.EXPIRED,
        Whitelist.ALWAYS,
        frame["reason"],
    )
    assert answer.token == TokenInfo.from_wire(wire())
    assert CloudAnswer.from_wire({"allowed": "UNKNOWN", "whitelist": None, "token": None}) == CloudAnswer(
        status=RoamingStatus.UNKNOWN
    )


@pytest.mark.parametrize(
    "changes",
    [
        {"whitelist": "SOMETIMES"},
        {"whitelist": ["ALWAYS"]},  # not even hashable
        {"valid": "yes"},
        {"last_updated": "yesterday"},
        {"last_updated": "2026-11-26T09:00:00"},  # no zone
        {"last_updated": 0},
        {"uid": ""},
        {"issuer": None},
        {"group_id": 5},
    ],
)
def test_malformed_entries_are_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(changes))):
        RoamingToken.from_wire(wire() | changes)


@pytest.mark.parametrize(
    ("frame", "field"),
    [
        ({"allowed": "ALLOWED"}, "allowed"),  # OCPI's word, not the uplink's
        ({"allowed": None}, "allowed"),
        ({"allowed": "ACCEPTED", "whitelist": "SOMETIMES"}, "whitelist"),
        ({"allowed": "ACCEPTED", "token": "BADGE1"}, "token"),
        ({"allowed": "ACCEPTED", "token": {"uid": "BADGE1"}}, "country_code"),
    ],
)
def test_malformed_answers_are_refused(frame: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        CloudAnswer.from_wire(frame)


@pytest.mark.parametrize(
    ("fresh_at", "max_age", "stale"),
    [
        (NOW - timedelta(days=30), None, False),  # no limit
        (None, timedelta(hours=1), False),  # never synced: the list is empty anyway
        (NOW - timedelta(minutes=59), timedelta(hours=1), False),
        (NOW - timedelta(hours=1), timedelta(hours=1), False),
        (NOW - timedelta(hours=1, seconds=1), timedelta(hours=1), True),
    ],
)
def test_list_is_stale(fresh_at: datetime | None, max_age: timedelta | None, stale: bool) -> None:
    assert list_is_stale(fresh_at, NOW, max_age) is stale
