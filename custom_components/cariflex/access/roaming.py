"""Roaming badges: tokens that eMSPs push to the cloud over OCPI, and the site's decision for one.

Pure (no I/O, never imports Home Assistant). The rules are OCPI 2.2.1 ``mod_tokens`` WhitelistType,
applied at the site, where "asking the eMSP" means asking the cloud, which relays the real-time
authorization (``POST tokens/{uid}/authorize``) and already applies the same rules towards the eMSP:

========================  ===================================  =========================================
whitelist of the token    asked to the cloud?                  when the cloud gives no answer in time
========================  ===================================  =========================================
ALWAYS                    never ("real-time not allowed")      (the list decides: ``valid`` or INVALID)
ALLOWED                   never (the CPO may choose: the       (the list decides: ``valid`` or INVALID)
                          cloud decides it from the same list)
ALLOWED_OFFLINE           yes, real-time first                 the list allows it (``valid``) or INVALID
NEVER                     yes, always                          refused (INVALID)
not on the list           yes                                  refused (UNKNOWN)
========================  ===================================  =========================================

The cloud's answer, when it comes, is final. ``valid = false`` does not change whether the cloud is
asked (spec: "the state of the Token might have changed"), but a token the eMSP invalidated is never
accepted from the list: invalidating is how an eMSP withdraws a token ("deleting is not possible").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from . import AuthStatus


class Whitelist(StrEnum):
    """OCPI WhitelistType."""

    ALWAYS = "ALWAYS"
    ALLOWED = "ALLOWED"
    ALLOWED_OFFLINE = "ALLOWED_OFFLINE"
    NEVER = "NEVER"


class RoamingStatus(StrEnum):
    """The ``allowed`` word of an ``authorize_result`` (OCPI AllowedType, plus INVALID and UNKNOWN)."""

    ACCEPTED = "ACCEPTED"
    BLOCKED = "BLOCKED"
    EXPIRED = "EXPIRED"
    INVALID = "INVALID"
    NO_CREDIT = "NO_CREDIT"
    NOT_ALLOWED = "NOT_ALLOWED"
    UNKNOWN = "UNKNOWN"


class DecisionSource(StrEnum):
    """Who decided."""

    CLOUD = "cloud"  # the cloud's real-time answer
    LIST = "list"  # the site's synced roaming list, by the token's whitelist rule
    NONE = "none"  # nobody could: refused


_OCPP: dict[RoamingStatus, AuthStatus] = {
    RoamingStatus.ACCEPTED: AuthStatus.ACCEPTED,
    RoamingStatus.BLOCKED: AuthStatus.BLOCKED,
    RoamingStatus.EXPIRED: AuthStatus.EXPIRED,
}


def _member(value: object, enum: type[StrEnum]) -> bool:
    return isinstance(value, str) and value in enum.__members__


def _text(data: Mapping[str, Any], key: str, *, required: bool = True) -> str | None:
    value = data.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key} must be a non-empty string, not {value!r}")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenInfo:
    """Who a roaming token is (what a session needs to name it)."""

    country_code: str
    party_id: str
    uid: str
    type: str
    contract_id: str
    issuer: str
    group_id: str | None = None

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> TokenInfo:
        """Parse the ``token`` of an ``authorize_result`` or a ``tokens`` entry; ``ValueError`` if malformed."""
        return cls(
            country_code=_text(data, "country_code") or "",
            party_id=_text(data, "party_id") or "",
            uid=_text(data, "uid") or "",
            type=_text(data, "type") or "",
            contract_id=_text(data, "contract_id") or "",
            issuer=_text(data, "issuer") or "",
            group_id=_text(data, "group_id", required=False),
        )

    def as_wire(self) -> dict[str, Any]:
        """JSON form (``group_id`` only when set)."""
        data = {
            "country_code": self.country_code,
            "party_id": self.party_id,
            "uid": self.uid,
            "type": self.type,
            "contract_id": self.contract_id,
            "issuer": self.issuer,
        }
        return data | ({"group_id": self.group_id} if self.group_id else {})

    @property
    def key(self) -> tuple[str, str, str, str]:
        """OCPI's identity of a token: country, party, uid (case-insensitive), type."""
        return self.country_code.upper(), self.party_id.upper(), self.uid.upper(), self.type


@dataclass(frozen=True, slots=True, kw_only=True)
class RoamingToken:
    """An entry of the site's roaming list."""

    info: TokenInfo
    whitelist: Whitelist
    valid: bool
    last_updated: datetime
    """Aware."""

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> RoamingToken:
        """Parse an entry of a ``tokens`` frame; ``ValueError`` if malformed."""
        whitelist, valid, updated = data.get("whitelist"), data.get("valid"), data.get("last_updated")
        if not _member(whitelist, Whitelist):
            raise ValueError(f"whitelist must be a WhitelistType, not {whitelist!r}")
        if not isinstance(valid, bool):
            raise ValueError(f"valid must be a boolean, not {valid!r}")
        try:
            moment = datetime.fromisoformat(updated) if isinstance(updated, str) else None
        except ValueError:
            moment = None
        if moment is None or moment.utcoffset() is None:
            raise ValueError(f"last_updated must be an ISO 8601 UTC time, not {updated!r}")
        return cls(
            info=TokenInfo.from_wire(data), whitelist=Whitelist(str(whitelist)), valid=valid, last_updated=moment
        )

    def as_wire(self) -> dict[str, Any]:
        """JSON form (the ``tokens`` entry it was parsed from, normalised)."""
        return self.info.as_wire() | {
            "whitelist": self.whitelist.value,
            "valid": self.valid,
            "last_updated": self.last_updated.isoformat().replace("+00:00", "Z"),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class CloudAnswer:
    """The cloud's real-time answer (an ``authorize_result`` without ``error``)."""

    status: RoamingStatus
    whitelist: Whitelist | None = None
    token: TokenInfo | None = None
    reason: str = ""

    @classmethod
    def from_wire(cls, frame: Mapping[str, Any]) -> CloudAnswer:
        """Parse an ``authorize_result`` that carries ``allowed``; ``ValueError`` if malformed."""
        allowed, whitelist, token = frame.get("allowed"), frame.get("whitelist"), frame.get("token")
        if not _member(allowed, RoamingStatus):
            raise ValueError(f"allowed must be one of {sorted(RoamingStatus)}, not {allowed!r}")
        if whitelist is not None and not _member(whitelist, Whitelist):
            raise ValueError(f"whitelist must be a WhitelistType, not {whitelist!r}")
        if token is not None and not isinstance(token, Mapping):
            raise ValueError(f"token must be an object, not {token!r}")
        return cls(
            status=RoamingStatus(str(allowed)),
            whitelist=Whitelist(str(whitelist)) if whitelist is not None else None,
            token=TokenInfo.from_wire(token) if token is not None else None,
            reason=str(frame.get("reason") or ""),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class RoamingDecision:
    """What the site does with a roaming badge."""

    status: RoamingStatus
    source: DecisionSource
    reason: str
    whitelist: Whitelist | None = None
    token: TokenInfo | None = None

    @property
    def accepted(self) -> bool:
        """True when the badge may charge."""
        return self.status is RoamingStatus.ACCEPTED

    @property
    def ocpp_status(self) -> AuthStatus:
        """The OCPP idTagInfo status: Accepted, Blocked, Expired, or Invalid for every other refusal."""
        return _OCPP.get(self.status, AuthStatus.INVALID)

    @property
    def parent_id_tag(self) -> str | None:
        """The token's ``group_id``, for OCPP's parentIdTag."""
        return self.token.group_id if self.token else None


def local_decision(entry: RoamingToken | None) -> RoamingDecision | None:
    """The list's own decision for ALWAYS and ALLOWED tokens; None when the cloud must be asked first."""
    if entry is None or entry.whitelist not in (Whitelist.ALWAYS, Whitelist.ALLOWED):
        return None
    return _from_list(entry, f"whitelist {entry.whitelist.value}")


def decide(entry: RoamingToken | None, answer: CloudAnswer | None, *, unanswered: str = "") -> RoamingDecision:
    """The decision for a badge whose list entry is ``entry`` (None: not on the list, or no usable list).

    ``answer`` is the cloud's real-time answer, None when the cloud could not be asked or did not
    answer in time (``unanswered`` says why, for the reason text). ALWAYS and ALLOWED tokens are
    decided by the list even when an answer is given: :func:`local_decision` tells to not ask.
    """
    local = local_decision(entry)
    if local is not None:
        return local
    if answer is not None:
        return RoamingDecision(
            status=answer.status,
            source=DecisionSource.CLOUD,
            reason=answer.reason or f"cloud: {answer.status.value}",
            whitelist=answer.whitelist or (entry.whitelist if entry else None),
            token=answer.token or (entry.info if entry else None),
        )
    why = unanswered or "the cloud could not be asked"
    if entry is None:
        return RoamingDecision(status=RoamingStatus.UNKNOWN, source=DecisionSource.NONE, reason=f"not listed; {why}")
    if entry.whitelist is Whitelist.ALLOWED_OFFLINE:
        return _from_list(entry, f"whitelist ALLOWED_OFFLINE; {why}")
    return RoamingDecision(
        status=RoamingStatus.INVALID,
        source=DecisionSource.NONE,
        reason=f"whitelist NEVER needs real-time authorization; {why}",
        whitelist=entry.whitelist,
        token=entry.info,
    )


def _from_list(entry: RoamingToken, rule: str) -> RoamingDecision:
    status = RoamingStatus.ACCEPTED if entry.valid else RoamingStatus.INVALID
    return RoamingDecision(
        status=status,
        source=DecisionSource.LIST,
        reason=f"{rule}, token {'valid' if entry.valid else 'not valid'}",
        whitelist=entry.whitelist,
        token=entry.info,
    )


def list_is_stale(fresh_at: datetime | None, now: datetime, max_age: timedelta | None) -> bool:
    """Whether a roaming list last known current at ``fresh_at`` is too old to use at ``now``.

    No limit (``max_age`` None), or a list never synced (``fresh_at`` None: it is empty), is never stale.
    """
    return max_age is not None and fresh_at is not None and now - fresh_at > max_age


__all__ = [
    "CloudAnswer",
    "DecisionSource",
    "RoamingDecision",
    "RoamingStatus",
    "RoamingToken",
    "TokenInfo",
    "Whitelist",
    "decide",
    "list_is_stale",
    "local_decision",
]
