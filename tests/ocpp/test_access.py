"""Badges and the authorization rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from custom_components.cariflex.access import AuthMode, AuthResult, AuthStatus, Badge, BadgeList

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def test_open_mode_accepts_unknown_badges() -> None:
    badges = BadgeList()
    assert badges.mode is AuthMode.OPEN
    assert badges.authorize("ANYTHING", NOW) == AuthResult(AuthStatus.ACCEPTED)


def test_list_mode_refuses_unknown_badges() -> None:
    badges = BadgeList(AuthMode.LIST)
    badges.upsert(Badge("TAG1", "Alice"))
    assert badges.authorize("TAG2", NOW) == AuthResult(AuthStatus.INVALID)
    assert badges.authorize("TAG1", NOW).status is AuthStatus.ACCEPTED


@pytest.mark.parametrize("mode", list(AuthMode))
def test_blocked_badge_refused_in_both_modes(mode: AuthMode) -> None:
    badges = BadgeList(mode)
    expiry = NOW + timedelta(days=1)
    badges.upsert(Badge("TAG1", blocked=True, expiry=expiry, parent_id_tag="FLEET"))
    assert badges.authorize("TAG1", NOW) == AuthResult(AuthStatus.BLOCKED, expiry, "FLEET")


@pytest.mark.parametrize("mode", list(AuthMode))
def test_expired_badge(mode: AuthMode) -> None:
    badges = BadgeList(mode)
    badges.upsert(Badge("TAG1", expiry=NOW))
    assert badges.authorize("TAG1", NOW) == AuthResult(AuthStatus.EXPIRED, NOW, None)
    assert badges.authorize("TAG1", NOW - timedelta(seconds=1)) == AuthResult(AuthStatus.ACCEPTED, NOW, None)


def test_accepted_badge_carries_expiry_and_parent() -> None:
    badges = BadgeList(AuthMode.LIST)
    expiry = NOW + timedelta(days=30)
    badges.upsert(Badge("TAG1", expiry=expiry, parent_id_tag="FLEET"))
    assert badges.authorize("TAG1", NOW) == AuthResult(AuthStatus.ACCEPTED, expiry, "FLEET")


def test_ids_are_case_insensitive() -> None:
    badges = BadgeList(AuthMode.LIST)
    badges.upsert(Badge("AbCd01", "Alice"))
    assert badges.authorize("abcd01", NOW).status is AuthStatus.ACCEPTED
    found = badges.get("ABCD01")
    assert found is not None
    assert found.name == "Alice"
    badges.upsert(Badge("abcd01", "Bob"))  # replaces, not duplicates
    assert len(badges) == 1
    assert [b.name for b in badges.all()] == ["Bob"]
    assert badges.remove("ABCD01")
    assert not badges.remove("ABCD01")
    assert len(badges) == 0
    assert badges.get("abcd01") is None


def test_all_sorted_by_id() -> None:
    badges = BadgeList()
    for tag in ("C", "A", "B"):
        badges.upsert(Badge(tag))
    assert [b.id_tag for b in badges.all()] == ["A", "B", "C"]


def test_badge_round_trip() -> None:
    full = Badge("TAG1", "Alice", blocked=True, expiry=NOW, parent_id_tag="FLEET", pv_excluded=True, guaranteed_min_a=8)
    data = full.as_dict()
    assert data == {
        "id_tag": "TAG1",
        "name": "Alice",
        "blocked": True,
        "expiry": "2024-05-01T12:00:00+00:00",
        "parent_id_tag": "FLEET",
        "pv_excluded": True,
        "guaranteed_min_a": 8,
    }
    assert Badge.from_dict(data) == full
    bare = Badge("TAG2")
    assert bare.as_dict()["expiry"] is None
    assert Badge.from_dict(bare.as_dict()) == bare


def test_from_dict_defaults_and_naive_expiry_is_utc() -> None:
    badge = Badge.from_dict({"id_tag": "TAG1", "expiry": "2024-05-01T12:00:00"})
    assert badge == Badge("TAG1", "", False, NOW, None)
    assert badge.expiry is not None
    assert badge.expiry.tzinfo is UTC
    # an aware expiry keeps its zone
    aware = Badge.from_dict({"id_tag": "T", "expiry": "2024-05-01T14:00:00+02:00", "blocked": 1})
    assert aware.expiry == NOW
    assert aware.blocked is True
