"""OCPI 2.2.1 Tariff objects, parsed and validated from the wire JSON (``Tariff.from_ocpi``).

Numbers become ``Decimal`` (a JSON float goes through its shortest ``repr``, so ``0.25`` stays ``0.25``).
Only the fields that matter for pricing are kept, plus the identifiers; ``tariff_alt_text``,
``tariff_alt_url`` and ``energy_mix`` are accepted and ignored.

Stricter than the spec's text in a few places, so that a tariff we publish can always be priced:
negative prices, a price component twice in one element, an empty range (``min_* > max_*``,
``start_date >= end_date``) and reservation elements with other dimensions than FLAT/TIME are rejected.
``last_updated`` is optional (the spec's own PUT example has none).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from enum import StrEnum
import re

from .errors import InvalidTariffError

ZERO = Decimal(0)
HUNDRED = Decimal(100)
END_OF_DAY_SECONDS = 24 * 3600

_TIME_RE = re.compile(r"([0-1][0-9]|2[0-3]):[0-5][0-9]")
_DATE_RE = re.compile(r"([12][0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])")
_CURRENCY_RE = re.compile(r"[A-Z]{3}")


class TariffDimension(StrEnum):
    """What a price component prices (TariffDimensionType)."""

    ENERGY = "ENERGY"
    FLAT = "FLAT"
    PARKING_TIME = "PARKING_TIME"
    TIME = "TIME"


class DayOfWeek(StrEnum):
    """Day of the week, in ``date.weekday()`` order."""

    MONDAY = "MONDAY"
    TUESDAY = "TUESDAY"
    WEDNESDAY = "WEDNESDAY"
    THURSDAY = "THURSDAY"
    FRIDAY = "FRIDAY"
    SATURDAY = "SATURDAY"
    SUNDAY = "SUNDAY"

    @classmethod
    def of(cls, day: date) -> DayOfWeek:
        """The day of week of a (local) date."""
        return _WEEKDAYS[day.weekday()]


_WEEKDAYS = tuple(DayOfWeek)


class ReservationRestriction(StrEnum):
    """ReservationRestrictionType: the element prices a reservation (or an expired one)."""

    RESERVATION = "RESERVATION"
    RESERVATION_EXPIRES = "RESERVATION_EXPIRES"


class TariffType(StrEnum):
    """TariffType (informational here: the caller picks the tariff)."""

    AD_HOC_PAYMENT = "AD_HOC_PAYMENT"
    PROFILE_CHEAP = "PROFILE_CHEAP"
    PROFILE_FAST = "PROFILE_FAST"
    PROFILE_GREEN = "PROFILE_GREEN"
    REGULAR = "REGULAR"


@dataclass(frozen=True, slots=True)
class PriceLimit:
    """A tariff's ``min_price`` / ``max_price`` (OCPI Price: ``incl_vat`` is optional there)."""

    excl_vat: Decimal
    incl_vat: Decimal | None = None


@dataclass(frozen=True, slots=True)
class PriceComponent:
    """Price per unit of one dimension: kWh (ENERGY), hour (TIME, PARKING_TIME) or session (FLAT).

    ``step_size`` is in Wh for ENERGY and seconds for the times; 0 means "no rounding".
    """

    type: TariffDimension
    price: Decimal
    vat: Decimal | None
    step_size: int

    def with_vat(self, excl_vat: Decimal) -> Decimal:
        """``excl_vat`` plus this component's VAT (no VAT field means no VAT applies)."""
        if self.vat is None:
            return excl_vat
        return excl_vat * (HUNDRED + self.vat) / HUNDRED


@dataclass(frozen=True, slots=True)
class TariffRestrictions:
    """When a tariff element applies; all set fields must match (logical AND)."""

    start_time: time | None = None
    end_time: time | None = None
    start_date: date | None = None
    end_date: date | None = None
    min_kwh: Decimal | None = None
    max_kwh: Decimal | None = None
    min_current: Decimal | None = None
    max_current: Decimal | None = None
    min_power: Decimal | None = None
    max_power: Decimal | None = None
    min_duration: int | None = None
    max_duration: int | None = None
    day_of_week: frozenset[DayOfWeek] = frozenset()
    reservation: ReservationRestriction | None = None

    def matches_local(self, local: datetime) -> bool:
        """Time of day, date and day of week, at a local (location time zone) instant.

        ``end_time`` 00:00 means the end of the day; ``end_time`` before ``start_time`` wraps past midnight;
        ``start_time == end_time`` covers the whole day.
        """
        if self.day_of_week and DayOfWeek.of(local.date()) not in self.day_of_week:
            return False
        if self.start_date is not None and local.date() < self.start_date:
            return False
        if self.end_date is not None and local.date() >= self.end_date:
            return False
        if self.start_time is None and self.end_time is None:
            return True
        now = _seconds(local.time())
        start = 0 if self.start_time is None else _seconds(self.start_time)
        end = END_OF_DAY_SECONDS if self.end_time is None or self.end_time == time(0) else _seconds(self.end_time)
        if start < end:
            return start <= now < end
        if start > end:
            return now >= start or now < end
        return True

    def matches_state(
        self,
        *,
        energy_kwh: Decimal,
        duration_s: Decimal,
        power_kw: tuple[Decimal | None, Decimal | None],
        current_a: tuple[Decimal | None, Decimal | None],
    ) -> bool:
        """kWh and duration so far (at the period's start), and the period's (min, max) power and current.

        A power or current that is not known does not exclude the element.
        """
        checks = (
            _at_least(energy_kwh, self.min_kwh),
            _below(energy_kwh, self.max_kwh),
            _at_least(duration_s, None if self.min_duration is None else Decimal(self.min_duration)),
            _below(duration_s, None if self.max_duration is None else Decimal(self.max_duration)),
            _at_least(_first(power_kw[0], power_kw[1]), self.min_power),
            _below(_first(power_kw[1], power_kw[0]), self.max_power),
            _at_least(_first(current_a[0], current_a[1]), self.min_current),
            _below(_first(current_a[1], current_a[0]), self.max_current),
        )
        return all(checks)


def _seconds(moment: time) -> int:
    return moment.hour * 3600 + moment.minute * 60 + moment.second


def _first(value: Decimal | None, fallback: Decimal | None) -> Decimal | None:
    return fallback if value is None else value


def _at_least(value: Decimal | None, limit: Decimal | None) -> bool:
    return limit is None or value is None or value >= limit


def _below(value: Decimal | None, limit: Decimal | None) -> bool:
    return limit is None or value is None or value < limit


@dataclass(frozen=True, slots=True)
class TariffElement:
    """Price components that share one set of restrictions."""

    price_components: tuple[PriceComponent, ...]
    restrictions: TariffRestrictions

    def component(self, dimension: TariffDimension) -> PriceComponent | None:
        """This element's price component for ``dimension``, if any."""
        for component in self.price_components:
            if component.type is dimension:
                return component
        return None


@dataclass(frozen=True, slots=True)
class Tariff:
    """An OCPI 2.2.1 Tariff, as needed to price a session."""

    country_code: str
    party_id: str
    id: str
    currency: str
    elements: tuple[TariffElement, ...]
    type: TariffType | None = None
    min_price: PriceLimit | None = None
    max_price: PriceLimit | None = None
    start_date_time: datetime | None = None
    end_date_time: datetime | None = None
    last_updated: datetime | None = None

    @classmethod
    def from_ocpi(cls, data: Mapping[str, object]) -> Tariff:
        """Parse and validate an OCPI Tariff object (``InvalidTariffError`` names the faulty field)."""
        if not isinstance(data, Mapping):
            raise InvalidTariffError("tariff: expected a JSON object")
        raw_elements = _require(data, "elements", "tariff")
        if not isinstance(raw_elements, list) or not raw_elements:
            raise InvalidTariffError("tariff.elements: expected a non-empty list")
        currency = _as_str(_require(data, "currency", "tariff"), "tariff.currency", max_len=3)
        if not _CURRENCY_RE.fullmatch(currency):
            raise InvalidTariffError(f"tariff.currency: expected an ISO 4217 code, got {currency!r}")
        tariff = cls(
            country_code=_as_str(_require(data, "country_code", "tariff"), "tariff.country_code", max_len=2),
            party_id=_as_str(_require(data, "party_id", "tariff"), "tariff.party_id", max_len=3),
            id=_as_str(_require(data, "id", "tariff"), "tariff.id", max_len=36),
            currency=currency,
            elements=tuple(_parse_element(raw, f"tariff.elements[{i}]") for i, raw in enumerate(raw_elements)),
            type=_optional(data, "type", lambda v, p: _as_enum(TariffType, v, p), "tariff"),
            min_price=_optional(data, "min_price", _as_price_limit, "tariff"),
            max_price=_optional(data, "max_price", _as_price_limit, "tariff"),
            start_date_time=_optional(data, "start_date_time", parse_datetime, "tariff"),
            end_date_time=_optional(data, "end_date_time", parse_datetime, "tariff"),
            last_updated=_optional(data, "last_updated", parse_datetime, "tariff"),
        )
        if tariff.min_price is not None and tariff.max_price is not None:
            low, high = tariff.min_price, tariff.max_price
            if low.excl_vat > high.excl_vat or (
                low.incl_vat is not None and high.incl_vat is not None and low.incl_vat > high.incl_vat
            ):
                raise InvalidTariffError("tariff.min_price: greater than max_price")
        if (
            tariff.start_date_time is not None
            and tariff.end_date_time is not None
            and tariff.start_date_time >= tariff.end_date_time
        ):
            raise InvalidTariffError("tariff.start_date_time: not before end_date_time")
        return tariff

    def is_valid_at(self, moment: datetime) -> bool:
        """Whether a session starting at ``moment`` may use this tariff (``start_date_time``/``end_date_time``)."""
        if self.start_date_time is not None and moment < self.start_date_time:
            return False
        return self.end_date_time is None or moment <= self.end_date_time


def _parse_element(raw: object, path: str) -> TariffElement:
    if not isinstance(raw, Mapping):
        raise InvalidTariffError(f"{path}: expected a JSON object")
    raw_components = _require(raw, "price_components", path)
    if not isinstance(raw_components, list) or not raw_components:
        raise InvalidTariffError(f"{path}.price_components: expected a non-empty list")
    components = tuple(_parse_component(item, f"{path}.price_components[{i}]") for i, item in enumerate(raw_components))
    seen: set[TariffDimension] = set()
    for i, component in enumerate(components):
        if component.type in seen:
            raise InvalidTariffError(f"{path}.price_components[{i}].type: {component.type} appears twice")
        seen.add(component.type)
    restrictions = _optional(raw, "restrictions", _parse_restrictions, path) or TariffRestrictions()
    if restrictions.reservation is not None and not seen <= {TariffDimension.FLAT, TariffDimension.TIME}:
        raise InvalidTariffError(f"{path}: a reservation element may only have FLAT and TIME price components")
    return TariffElement(price_components=components, restrictions=restrictions)


def _parse_component(raw: object, path: str) -> PriceComponent:
    if not isinstance(raw, Mapping):
        raise InvalidTariffError(f"{path}: expected a JSON object")
    return PriceComponent(
        type=_as_enum(TariffDimension, _require(raw, "type", path), f"{path}.type"),
        price=parse_number(_require(raw, "price", path), f"{path}.price"),
        vat=_optional(raw, "vat", parse_number, path),
        step_size=_as_int(_require(raw, "step_size", path), f"{path}.step_size"),
    )


def _parse_restrictions(raw: object, path: str) -> TariffRestrictions:
    if not isinstance(raw, Mapping):
        raise InvalidTariffError(f"{path}: expected a JSON object")
    raw_days = raw.get("day_of_week")
    if raw_days is not None and not isinstance(raw_days, list):
        raise InvalidTariffError(f"{path}.day_of_week: expected a list")
    restrictions = TariffRestrictions(
        start_time=_optional(raw, "start_time", _as_time, path),
        end_time=_optional(raw, "end_time", _as_time, path),
        start_date=_optional(raw, "start_date", _as_date, path),
        end_date=_optional(raw, "end_date", _as_date, path),
        min_kwh=_optional(raw, "min_kwh", parse_number, path),
        max_kwh=_optional(raw, "max_kwh", parse_number, path),
        min_current=_optional(raw, "min_current", parse_number, path),
        max_current=_optional(raw, "max_current", parse_number, path),
        min_power=_optional(raw, "min_power", parse_number, path),
        max_power=_optional(raw, "max_power", parse_number, path),
        min_duration=_optional(raw, "min_duration", _as_int, path),
        max_duration=_optional(raw, "max_duration", _as_int, path),
        day_of_week=frozenset(
            _as_enum(DayOfWeek, day, f"{path}.day_of_week[{i}]") for i, day in enumerate(raw_days or [])
        ),
        reservation=_optional(raw, "reservation", lambda v, p: _as_enum(ReservationRestriction, v, p), path),
    )
    for name in ("kwh", "current", "power", "duration"):
        low, high = getattr(restrictions, f"min_{name}"), getattr(restrictions, f"max_{name}")
        if low is not None and high is not None and low > high:
            raise InvalidTariffError(f"{path}.min_{name}: greater than max_{name}")
    if (
        restrictions.start_date is not None
        and restrictions.end_date is not None
        and restrictions.start_date >= restrictions.end_date
    ):
        raise InvalidTariffError(f"{path}.start_date: not before end_date (the element could never apply)")
    return restrictions


def _require(data: Mapping[str, object], key: str, path: str) -> object:
    value = data.get(key)
    if value is None:
        raise InvalidTariffError(f"{path}.{key}: missing")
    return value


def _optional[T](data: Mapping[str, object], key: str, parse: Callable[[object, str], T], path: str) -> T | None:
    value = data.get(key)
    return None if value is None else parse(value, f"{path}.{key}")


def _as_str(value: object, path: str, *, max_len: int) -> str:
    if not isinstance(value, str) or not value or len(value) > max_len:
        raise InvalidTariffError(f"{path}: expected a string of 1 to {max_len} characters, got {value!r}")
    return value


def parse_number(value: object, path: str) -> Decimal:
    """A non-negative JSON number."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise InvalidTariffError(f"{path}: expected a number, got {value!r}")
    number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    if not number.is_finite() or number < ZERO:
        raise InvalidTariffError(f"{path}: expected a finite number >= 0, got {value!r}")
    return number


def _as_int(value: object, path: str) -> int:
    """A non-negative JSON integer (``300.0`` is accepted)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidTariffError(f"{path}: expected an integer >= 0, got {value!r}")
    return value


def _as_enum[E: StrEnum](enum: type[E], value: object, path: str) -> E:
    for member in enum:
        if member.value == value:
            return member
    allowed = ", ".join(member.value for member in enum)
    raise InvalidTariffError(f"{path}: expected one of {allowed}, got {value!r}")


def _as_time(value: object, path: str) -> time:
    if not isinstance(value, str) or not _TIME_RE.fullmatch(value):
        raise InvalidTariffError(f"{path}: expected a time of day HH:MM, got {value!r}")
    return time(int(value[:2]), int(value[3:]))


def _as_date(value: object, path: str) -> date:
    if not isinstance(value, str) or not _DATE_RE.fullmatch(value):
        raise InvalidTariffError(f"{path}: expected a date YYYY-MM-DD, got {value!r}")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise InvalidTariffError(f"{path}: no such date {value!r}") from None


def parse_datetime(value: object, path: str) -> datetime:
    """An OCPI DateTime (RFC 3339, UTC; no designator means UTC)."""
    if not isinstance(value, str):
        raise InvalidTariffError(f"{path}: expected an RFC 3339 timestamp, got {value!r}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidTariffError(f"{path}: expected an RFC 3339 timestamp, got {value!r}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _as_price_limit(value: object, path: str) -> PriceLimit:
    if not isinstance(value, Mapping):
        raise InvalidTariffError(f"{path}: expected a JSON object")
    return PriceLimit(
        excl_vat=parse_number(_require(value, "excl_vat", path), f"{path}.excl_vat"),
        incl_vat=_optional(value, "incl_vat", parse_number, path),
    )
