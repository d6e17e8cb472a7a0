"""Declarative checks of incoming OCPI objects.

:func:`validate` returns a clean copy: known fields only (unknown ones are tolerated and dropped, so they
are never stored nor sent on), the right JSON types, lengths and enum values as the specification gives
them. Any problem raises :class:`Invalid` naming the field, which the transport turns into status 2001.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
import re
from typing import Any

from ..timeutil import format_dt, parse_dt


class Invalid(ValueError):
    """An object does not match its OCPI definition."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}" if path else problem)
        self.path = path


class Kind:
    """A field type."""

    def check(self, value: Any, path: str) -> Any:
        raise NotImplementedError


@dataclass(frozen=True)
class Str(Kind):
    """``string(n)`` (printable UTF-8) or ``CiString(n)`` (printable ASCII)."""

    max_len: int
    ascii: bool = False

    def check(self, value: Any, path: str) -> Any:
        if not isinstance(value, str):
            raise Invalid(path, "expected a string")
        if len(value) > self.max_len:
            raise Invalid(path, f"longer than {self.max_len} characters")
        if self.ascii and not all(" " <= ch <= "~" for ch in value):
            raise Invalid(path, "only printable ASCII is allowed")
        if not value.isprintable():
            raise Invalid(path, "only printable characters are allowed")
        return value


def ci(max_len: int) -> Str:
    """CiString(max_len)."""
    return Str(max_len, ascii=True)


URL = Str(255)


@dataclass(frozen=True)
class Enum(Kind):
    """One of the listed values."""

    values: frozenset[str]

    def check(self, value: Any, path: str) -> Any:
        if value not in self.values:
            raise Invalid(path, f"expected one of {', '.join(sorted(self.values))}")
        return value


def enum(*values: str) -> Enum:
    return Enum(frozenset(values))


@dataclass(frozen=True)
class Int(Kind):
    """A JSON integer (not a boolean)."""

    minimum: int | None = None

    def check(self, value: Any, path: str) -> Any:
        if not isinstance(value, int) or isinstance(value, bool):
            raise Invalid(path, "expected an integer")
        if self.minimum is not None and value < self.minimum:
            raise Invalid(path, f"must be at least {self.minimum}")
        return value


class Number(Kind):
    """A JSON number."""

    def check(self, value: Any, path: str) -> Any:
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise Invalid(path, "expected a number")
        return value


class Bool(Kind):
    def check(self, value: Any, path: str) -> Any:
        if not isinstance(value, bool):
            raise Invalid(path, "expected true or false")
        return value


class DateTime(Kind):
    """An OCPI DateTime; normalised to the ``...Z`` form."""

    def check(self, value: Any, path: str) -> Any:
        if not isinstance(value, str):
            raise Invalid(path, "expected a DateTime string")
        try:
            return format_dt(parse_dt(value))
        except ValueError:
            raise Invalid(path, "not an RFC 3339 UTC DateTime") from None


@dataclass(frozen=True)
class Pattern(Kind):
    """A string matching a regular expression."""

    regex: str

    def check(self, value: Any, path: str) -> Any:
        if not isinstance(value, str) or not re.fullmatch(self.regex, value):
            raise Invalid(path, f"must match {self.regex}")
        return value


@dataclass(frozen=True)
class Obj(Kind):
    """An object; ``fields`` maps a name to (cardinality, kind) with cardinality ``1 ? * +``."""

    fields: Mapping[str, tuple[str, Kind]]

    def check(self, value: Any, path: str) -> Any:
        return _object(self, value, path, partial=False)


def _object(spec: Obj, value: Any, path: str, *, partial: bool) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise Invalid(path, "expected an object")
    out: dict[str, Any] = {}
    for name, (card, kind) in spec.fields.items():
        where = f"{path}.{name}" if path else name
        item = value.get(name)
        if item is None:
            if card in {"1", "+"} and not partial:
                raise Invalid(where, "missing")
            continue
        if card in {"*", "+"}:
            if not isinstance(item, list):
                raise Invalid(where, "expected a list")
            if card == "+" and not item:
                raise Invalid(where, "must not be empty")
            out[name] = [kind.check(element, f"{where}[{index}]") for index, element in enumerate(item)]
        else:
            out[name] = kind.check(item, where)
    return out


def obj(**fields: tuple[str, Kind]) -> Obj:
    return Obj(fields)


def validate(spec: Obj, value: Any, *, partial: bool = False) -> dict[str, Any]:
    """Check ``value`` against ``spec``; ``partial`` (PATCH) makes top-level fields optional."""
    return _object(spec, value, "", partial=partial)


# --- shared types ----------------------------------------------------------------------------------

ROLE = enum("CPO", "EMSP", "HUB", "NAP", "NSP", "OTHER", "SCSP")
DISPLAY_TEXT = obj(language=("1", Str(2)), text=("1", Str(512)))
PRICE = obj(excl_vat=("1", Number()), incl_vat=("?", Number()))
IMAGE = obj(
    url=("1", URL),
    thumbnail=("?", URL),
    category=("1", enum("CHARGER", "ENTRANCE", "LOCATION", "NETWORK", "OPERATOR", "OTHER", "OWNER")),
    type=("1", ci(4)),
    width=("?", Int(0)),
    height=("?", Int(0)),
)
BUSINESS_DETAILS = obj(name=("1", Str(100)), website=("?", URL), logo=("?", IMAGE))
ENERGY_MIX = obj(
    is_green_energy=("1", Bool()),
    energy_sources=(
        "*",
        obj(
            source=("1", enum("NUCLEAR", "GENERAL_FOSSIL", "COAL", "GAS", "GENERAL_GREEN", "SOLAR", "WIND", "WATER")),
            percentage=("1", Number()),
        ),
    ),
    environ_impact=("*", obj(category=("1", enum("NUCLEAR_WASTE", "CARBON_DIOXIDE")), amount=("1", Number()))),
    supplier_name=("?", Str(64)),
    energy_product_name=("?", Str(64)),
)

# --- versions and credentials ----------------------------------------------------------------------

VERSION = obj(version=("1", Str(10)), url=("1", URL))
ENDPOINT = obj(identifier=("1", Str(32)), role=("1", enum("SENDER", "RECEIVER")), url=("1", URL))
VERSION_DETAILS = obj(version=("1", Str(10)), endpoints=("+", ENDPOINT))
CREDENTIALS_ROLE = obj(
    role=("1", ROLE), business_details=("1", BUSINESS_DETAILS), party_id=("1", ci(3)), country_code=("1", ci(2))
)
CREDENTIALS = obj(
    token=("1", Pattern(r"[\x21-\x7e]{1,64}")),
    url=("1", URL),
    roles=("+", CREDENTIALS_ROLE),
)

# --- tokens ----------------------------------------------------------------------------------------

TOKEN_TYPE = enum("AD_HOC_USER", "APP_USER", "OTHER", "RFID")
WHITELIST = enum("ALWAYS", "ALLOWED", "ALLOWED_OFFLINE", "NEVER")
PROFILE_TYPE = enum("CHEAP", "FAST", "GREEN", "REGULAR")
TOKEN = obj(
    country_code=("1", ci(2)),
    party_id=("1", ci(3)),
    uid=("1", ci(36)),
    type=("1", TOKEN_TYPE),
    contract_id=("1", ci(36)),
    visual_number=("?", Str(64)),
    issuer=("1", Str(64)),
    group_id=("?", ci(36)),
    valid=("1", Bool()),
    whitelist=("1", WHITELIST),
    language=("?", Str(2)),
    default_profile_type=("?", PROFILE_TYPE),
    energy_contract=("?", obj(supplier_name=("1", Str(64)), contract_id=("?", Str(64)))),
    last_updated=("1", DateTime()),
)
LOCATION_REFERENCES = obj(location_id=("1", ci(36)), evse_uids=("*", ci(36)))
AUTHORIZATION_INFO = obj(
    allowed=("1", enum("ALLOWED", "BLOCKED", "EXPIRED", "NO_CREDIT", "NOT_ALLOWED")),
    token=("1", TOKEN),
    location=("?", LOCATION_REFERENCES),
    authorization_reference=("?", ci(36)),
    info=("?", DISPLAY_TEXT),
)

# --- commands --------------------------------------------------------------------------------------

START_SESSION = obj(
    response_url=("1", URL),
    token=("1", TOKEN),
    location_id=("1", ci(36)),
    evse_uid=("?", ci(36)),
    connector_id=("?", ci(36)),
    authorization_reference=("?", ci(36)),
)
STOP_SESSION = obj(response_url=("1", URL), session_id=("1", ci(36)))
RESERVE_NOW = obj(
    response_url=("1", URL),
    token=("1", TOKEN),
    expiry_date=("1", DateTime()),
    reservation_id=("1", ci(36)),
    location_id=("1", ci(36)),
    evse_uid=("?", ci(36)),
    authorization_reference=("?", ci(36)),
)
CANCEL_RESERVATION = obj(response_url=("1", URL), reservation_id=("1", ci(36)))
UNLOCK_CONNECTOR = obj(
    response_url=("1", URL), location_id=("1", ci(36)), evse_uid=("1", ci(36)), connector_id=("1", ci(36))
)

# --- sessions --------------------------------------------------------------------------------------

CHARGING_PREFERENCES = obj(
    profile_type=("1", PROFILE_TYPE),
    departure_time=("?", DateTime()),
    energy_need=("?", Number()),
    discharge_allowed=("?", Bool()),
)

# --- charging profiles -----------------------------------------------------------------------------

CHARGING_PROFILE = obj(
    start_date_time=("?", DateTime()),
    duration=("?", Int(0)),
    charging_rate_unit=("1", enum("W", "A")),
    min_charging_rate=("?", Number()),
    charging_profile_period=("*", obj(start_period=("1", Int(0)), limit=("1", Number()))),
)
SET_CHARGING_PROFILE = obj(charging_profile=("1", CHARGING_PROFILE), response_url=("1", URL))

# --- hub client info -------------------------------------------------------------------------------

CLIENT_INFO = obj(
    party_id=("1", ci(3)),
    country_code=("1", ci(2)),
    role=("1", ROLE),
    status=("1", enum("CONNECTED", "OFFLINE", "PLANNED", "SUSPENDED")),
    last_updated=("1", DateTime()),
)

# --- tariffs (operator input) ----------------------------------------------------------------------

_TIME = r"([0-1][0-9]|2[0-3]):[0-5][0-9]"
_DATE = r"([12][0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
TARIFF_RESTRICTIONS = obj(
    start_time=("?", Pattern(_TIME)),
    end_time=("?", Pattern(_TIME)),
    start_date=("?", Pattern(_DATE)),
    end_date=("?", Pattern(_DATE)),
    min_kwh=("?", Number()),
    max_kwh=("?", Number()),
    min_current=("?", Number()),
    max_current=("?", Number()),
    min_power=("?", Number()),
    max_power=("?", Number()),
    min_duration=("?", Int(0)),
    max_duration=("?", Int(0)),
    day_of_week=("*", enum("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY")),
    reservation=("?", enum("RESERVATION", "RESERVATION_EXPIRES")),
)
PRICE_COMPONENT = obj(
    type=("1", enum("ENERGY", "FLAT", "PARKING_TIME", "TIME")),
    price=("1", Number()),
    vat=("?", Number()),
    step_size=("1", Int(0)),
)
TARIFF_ELEMENT = obj(price_components=("+", PRICE_COMPONENT), restrictions=("?", TARIFF_RESTRICTIONS))
# What an operator gives: the Tariff object minus what we fill in (owner, id, last_updated).
TARIFF_INPUT = obj(
    currency=("1", Pattern(r"[A-Z]{3}")),
    type=("?", enum("AD_HOC_PAYMENT", "PROFILE_CHEAP", "PROFILE_FAST", "PROFILE_GREEN", "REGULAR")),
    tariff_alt_text=("*", DISPLAY_TEXT),
    tariff_alt_url=("?", URL),
    min_price=("?", PRICE),
    max_price=("?", PRICE),
    elements=("+", TARIFF_ELEMENT),
    start_date_time=("?", DateTime()),
    end_date_time=("?", DateTime()),
    energy_mix=("?", ENERGY_MIX),
)
