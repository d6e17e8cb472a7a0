"""Badges (RFID id tags) and the authorization decision. Never imports Home Assistant."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class AuthStatus(StrEnum):
    """Authorization outcome, with the OCPP 1.6 idTagInfo words as values."""

    ACCEPTED = "Accepted"
    BLOCKED = "Blocked"
    EXPIRED = "Expired"
    INVALID = "Invalid"
    CONCURRENT_TX = "ConcurrentTx"


class AuthMode(StrEnum):
    """How a site treats id tags it does not know."""

    OPEN = "open"  # any badge is accepted (a private garage)
    LIST = "list"  # only badges on the site's list


@dataclass(slots=True, frozen=True)
class AuthResult:
    """What a charger is told about an id tag."""

    status: AuthStatus
    expiry: datetime | None = None
    parent_id_tag: str | None = None


@dataclass(slots=True)
class Badge:
    """A badge on the site's list."""

    id_tag: str
    name: str = ""
    blocked: bool = False
    expiry: datetime | None = None
    parent_id_tag: str | None = None
    pv_excluded: bool = False  # its sessions never wait for PV surplus (seed 004 A.7)
    guaranteed_min_a: float | None = None  # a current its sessions always get, within the site's limits

    def as_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "id_tag": self.id_tag,
            "name": self.name,
            "blocked": self.blocked,
            "expiry": self.expiry.isoformat() if self.expiry else None,
            "parent_id_tag": self.parent_id_tag,
            "pv_excluded": self.pv_excluded,
            "guaranteed_min_a": self.guaranteed_min_a,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Badge:
        """Inverse of :meth:`as_dict`."""
        expiry = data.get("expiry")
        return cls(
            id_tag=data["id_tag"],
            name=data.get("name", ""),
            blocked=bool(data.get("blocked", False)),
            expiry=_aware(datetime.fromisoformat(expiry)) if expiry else None,
            parent_id_tag=data.get("parent_id_tag"),
            pv_excluded=bool(data.get("pv_excluded", False)),
            guaranteed_min_a=float(data["guaranteed_min_a"]) if data.get("guaranteed_min_a") is not None else None,
        )


def _aware(moment: datetime) -> datetime:
    """Stored times without a zone are UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class BadgeList:
    """The site's badges and the decision rule."""

    def __init__(self, mode: AuthMode = AuthMode.OPEN) -> None:
        self.mode = mode
        self._badges: dict[str, Badge] = {}

    def __len__(self) -> int:
        return len(self._badges)

    def upsert(self, badge: Badge) -> None:
        """Add or replace a badge (id tags compare case-insensitively, as OCPP CiStrings)."""
        self._badges[badge.id_tag.casefold()] = badge

    def remove(self, id_tag: str) -> bool:
        """Remove a badge; False when it was not there."""
        return self._badges.pop(id_tag.casefold(), None) is not None

    def get(self, id_tag: str) -> Badge | None:
        """The badge with this id tag."""
        return self._badges.get(id_tag.casefold())

    def all(self) -> list[Badge]:
        """Every badge, sorted by id tag."""
        return sorted(self._badges.values(), key=lambda b: b.id_tag)

    def authorize(self, id_tag: str, now: datetime) -> AuthResult:
        """Decide for ``id_tag`` at ``now``."""
        badge = self.get(id_tag)
        if badge is None:
            if self.mode is AuthMode.OPEN:
                return AuthResult(AuthStatus.ACCEPTED)
            return AuthResult(AuthStatus.INVALID)
        if badge.blocked:
            return AuthResult(AuthStatus.BLOCKED, badge.expiry, badge.parent_id_tag)
        if badge.expiry is not None and badge.expiry <= now:
            return AuthResult(AuthStatus.EXPIRED, badge.expiry, badge.parent_id_tag)
        return AuthResult(AuthStatus.ACCEPTED, badge.expiry, badge.parent_id_tag)
