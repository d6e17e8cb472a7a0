"""Session inputs of the pricing engine, cut into periods over which the tariff's conditions do not change.

Two sources:

- a meter curve (``SessionInput``): cumulative energy samples, optionally with power and current. The
  session is cut at every sample, at every local time of day named by the tariff (and at local midnight),
  at every ``min/max_duration`` and at the instant the energy reaches every ``min/max_kwh`` (linear
  interpolation between samples). Between two samples the energy grows linearly and the power and current
  hold the earlier sample's values (the average power ``delta E / delta t`` stands in for a missing power).
  A stretch is PARKING_TIME when neither its average power nor its power sample exceeds
  ``parking_power_threshold_kw``.
- the ``charging_periods`` of an OCPI CDR: durations come from the TIME, PARKING_TIME and RESERVATION_TIME
  volumes (not from the timestamps, which only place the period in time), energy from ENERGY.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from itertools import pairwise

from .errors import InvalidSessionError, InvalidTariffError
from .model import ZERO, Tariff, parse_datetime, parse_number

DEFAULT_PARKING_THRESHOLD_KW = Decimal("0.05")
ENERGY_QUANTUM = Decimal("1e-9")  # kWh (a micro-watt-hour): energies are kept on this grid, sums stay exact
SECONDS_PER_HOUR = Decimal(3600)
_US = timedelta(microseconds=1)
_US_PER_SECOND = Decimal(1_000_000)
_US_PER_HOUR = Decimal(3_600_000_000)

# CdrDimensionType values that only describe a Session, not a CDR: ignored when pricing.
_SESSION_ONLY = frozenset({"CURRENT", "ENERGY_EXPORT", "ENERGY_IMPORT", "POWER", "STATE_OF_CHARGE"})


@dataclass(frozen=True, slots=True, kw_only=True)
class MeterSample:
    """One meter reading: cumulative energy (any origin), and the power / current at that instant if known.

    ``current_a`` is the sum over all phases, as OCPI's current restrictions mean it.
    """

    timestamp: datetime
    energy_kwh: Decimal
    power_kw: Decimal | None = None
    current_a: Decimal | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionInput:
    """A finished charging session: times (aware), meter curve, optional reservation that preceded it.

    The first sample must be at ``start`` and the last at ``end`` (meter start / meter stop).
    """

    start: datetime
    end: datetime
    samples: Sequence[MeterSample]
    reservation_start: datetime | None = None
    parking_power_threshold_kw: Decimal = DEFAULT_PARKING_THRESHOLD_KW


@dataclass(frozen=True, slots=True, kw_only=True)
class Usage:
    """One period of the session with uniform conditions: what it consumed, and the power/current range."""

    start: datetime
    end: datetime
    reservation: bool = False
    energy_kwh: Decimal = ZERO
    charging_s: Decimal = ZERO
    parking_s: Decimal = ZERO
    reservation_s: Decimal = ZERO
    min_power_kw: Decimal | None = None
    max_power_kw: Decimal | None = None
    min_current_a: Decimal | None = None
    max_current_a: Decimal | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Timeline:
    """The periods of one session (reservation periods first), and its bounds."""

    usages: tuple[Usage, ...]
    session_start: datetime | None  # None: a reservation that expired without a session
    end: datetime
    reservation_start: datetime | None = None
    expired_reservation: bool = False
    fine_grained: bool = False  # cut by the engine itself: adjacent periods with equal prices may merge


def aware_utc(moment: datetime, what: str) -> datetime:
    """``moment`` in UTC; a naive datetime is refused (its time zone would be a guess)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidSessionError(f"{what}: a time zone aware datetime is required")
    return moment.astimezone(UTC)


def from_meter_curve(session: SessionInput, tariff: Tariff, time_zone: tzinfo) -> Timeline:
    """Cut a metered session into periods (see the module docstring)."""
    start, end = aware_utc(session.start, "start"), aware_utc(session.end, "end")
    if end <= start:
        raise InvalidSessionError("end: must be after start")
    samples = session.samples
    if len(samples) < 2:
        raise InvalidSessionError("samples: at least two readings are needed (at start and at end)")
    times = [(aware_utc(s.timestamp, f"samples[{i}].timestamp") - start) // _US for i, s in enumerate(samples)]
    total_us = (end - start) // _US
    if times[0] != 0 or times[-1] != total_us:
        raise InvalidSessionError("samples: the first reading must be at start and the last at end")
    if any(later <= earlier for earlier, later in pairwise(times)):
        raise InvalidSessionError("samples: timestamps must be strictly increasing")
    origin = samples[0].energy_kwh
    energies = [(s.energy_kwh - origin).quantize(ENERGY_QUANTUM, ROUND_FLOOR) for s in samples]
    if any(later < earlier for earlier, later in pairwise(energies)):
        raise InvalidSessionError("samples: the cumulative energy must not decrease")
    curve = _Curve(times, energies)

    reservation_start = None
    usages: list[Usage] = []
    if session.reservation_start is not None:
        reservation_start = aware_utc(session.reservation_start, "reservation_start")
        if reservation_start > start:
            raise InvalidSessionError("reservation_start: must not be after start")
        usages.extend(_reservation_usages(tariff, reservation_start, start, time_zone))

    cuts = set(times)
    cuts.update((cut - start) // _US for cut in _local_cuts(tariff, time_zone, start, end))
    for element in tariff.elements:
        if element.restrictions.reservation is not None:
            continue
        for seconds in (element.restrictions.min_duration, element.restrictions.max_duration):
            if seconds is not None and 0 < seconds * 1_000_000 < total_us:
                cuts.add(seconds * 1_000_000)
        for kwh in (element.restrictions.min_kwh, element.restrictions.max_kwh):
            if kwh is not None:
                cuts.update(curve.reaching(kwh.quantize(ENERGY_QUANTUM, ROUND_CEILING)))
    points = sorted(cuts)
    threshold = session.parking_power_threshold_kw
    for lo, hi in pairwise(points):
        index = bisect_right(times, lo) - 1
        sample = samples[index]
        span_us = times[index + 1] - times[index]
        average_kw = (energies[index + 1] - energies[index]) * _US_PER_HOUR / span_us
        power = average_kw if sample.power_kw is None else sample.power_kw
        charging = average_kw > threshold or (sample.power_kw is not None and sample.power_kw > threshold)
        span_s = Decimal(hi - lo) / _US_PER_SECOND
        usages.append(
            Usage(
                start=start + lo * _US,
                end=start + hi * _US,
                energy_kwh=curve.energy_at(index, hi) - curve.energy_at(index, lo),
                charging_s=span_s if charging else ZERO,
                parking_s=ZERO if charging else span_s,
                min_power_kw=power,
                max_power_kw=power,
                min_current_a=sample.current_a,
                max_current_a=sample.current_a,
            )
        )
    return Timeline(
        usages=tuple(usages), session_start=start, end=end, reservation_start=reservation_start, fine_grained=True
    )


def expired_reservation(tariff: Tariff, start: datetime, end: datetime, time_zone: tzinfo) -> Timeline:
    """A reservation from ``start`` that expired at ``end`` without a charging session."""
    start, end = aware_utc(start, "start"), aware_utc(end, "end")
    if end <= start:
        raise InvalidSessionError("end: must be after start")
    return Timeline(
        usages=tuple(_reservation_usages(tariff, start, end, time_zone)),
        session_start=None,
        end=end,
        reservation_start=start,
        expired_reservation=True,
        fine_grained=True,
    )


def _reservation_usages(tariff: Tariff, start: datetime, end: datetime, time_zone: tzinfo) -> list[Usage]:
    cuts = {start, end, *_local_cuts(tariff, time_zone, start, end)}
    for element in tariff.elements:
        if element.restrictions.reservation is None:
            continue
        for seconds in (element.restrictions.min_duration, element.restrictions.max_duration):
            if seconds is not None and start < start + timedelta(seconds=seconds) < end:
                cuts.add(start + timedelta(seconds=seconds))
    points = sorted(cuts)
    return [
        Usage(start=lo, end=hi, reservation=True, reservation_s=Decimal((hi - lo) // _US) / _US_PER_SECOND)
        for lo, hi in pairwise(points)
    ]


def _local_cuts(tariff: Tariff, time_zone: tzinfo, lo: datetime, hi: datetime) -> Iterable[datetime]:
    """Instants strictly inside (lo, hi) where a restriction may change: local midnight, a time of day that a
    restriction names (both occurrences on the night clocks go back), and the clock changes themselves."""
    moments = {time(0)}
    for element in tariff.elements:
        moments.update(t for t in (element.restrictions.start_time, element.restrictions.end_time) if t is not None)
    day = lo.astimezone(time_zone).date() - timedelta(days=1)
    last = hi.astimezone(time_zone).date() + timedelta(days=1)
    while day <= last:
        for moment in moments:
            for fold in (0, 1):
                cut = datetime.combine(day, moment.replace(fold=fold), tzinfo=time_zone).astimezone(UTC)
                if lo < cut < hi:
                    yield cut
        day += timedelta(days=1)
    yield from _clock_changes(time_zone, lo, hi)


def _clock_changes(time_zone: tzinfo, lo: datetime, hi: datetime) -> Iterable[datetime]:
    """Instants inside (lo, hi) where the zone's UTC offset changes (found to the second, zones change on it)."""
    probe = lo.replace(minute=0, second=0, microsecond=0)
    while probe < hi:
        later = probe + _PROBE
        before = probe.astimezone(time_zone).utcoffset()
        if later.astimezone(time_zone).utcoffset() != before:
            low, high = 0, int(_PROBE.total_seconds())
            while high - low > 1:
                middle = (low + high) // 2
                if (probe + timedelta(seconds=middle)).astimezone(time_zone).utcoffset() == before:
                    low = middle
                else:
                    high = middle
            change = probe + timedelta(seconds=high)
            if lo < change < hi:
                yield change
        probe = later


_PROBE = timedelta(hours=6)  # no zone changes its offset twice within 6 hours


class _Curve:
    """Cumulative energy (kWh from the session start) against microseconds from the session start."""

    def __init__(self, times: list[int], energies: list[Decimal]) -> None:
        self._times = times
        self._energies = energies

    def energy_at(self, index: int, at_us: int) -> Decimal:
        """Energy at ``at_us``, inside the sample interval ``index`` (floored onto the energy grid)."""
        t0, t1 = self._times[index], self._times[index + 1]
        e0, e1 = self._energies[index], self._energies[index + 1]
        if at_us == t1:
            return e1
        exact = (e0 * (t1 - at_us) + e1 * (at_us - t0)) / (t1 - t0)
        return exact.quantize(ENERGY_QUANTUM, ROUND_FLOOR)

    def reaching(self, kwh: Decimal) -> list[int]:
        """The first microsecond at which the energy reaches ``kwh`` (none if never, or from the start)."""
        if kwh <= ZERO or kwh > self._energies[-1]:
            return []
        index = next(i for i, e in enumerate(self._energies) if e >= kwh) - 1
        t0, t1 = self._times[index], self._times[index + 1]
        e0, e1 = self._energies[index], self._energies[index + 1]
        offset = ((kwh - e0) * (t1 - t0) / (e1 - e0)).to_integral_value(ROUND_CEILING)
        return [t0 + int(offset)]


def from_ocpi_cdr(cdr: Mapping[str, object]) -> Timeline:
    """The charging periods of an OCPI CDR (a period is a reservation if it has RESERVATION_TIME)."""
    try:
        return _from_ocpi_cdr(cdr)
    except InvalidTariffError as err:  # raised by the shared JSON helpers; the message names the CDR field
        raise InvalidSessionError(str(err)) from None


def _from_ocpi_cdr(cdr: Mapping[str, object]) -> Timeline:
    if not isinstance(cdr, Mapping):
        raise InvalidSessionError("cdr: expected a JSON object")
    end = parse_datetime(cdr.get("end_date_time"), "cdr.end_date_time")
    raw_periods = cdr.get("charging_periods")
    if not isinstance(raw_periods, list) or not raw_periods:
        raise InvalidSessionError("cdr.charging_periods: expected a non-empty list")
    starts: list[datetime] = []
    for i, raw in enumerate(raw_periods):
        if not isinstance(raw, Mapping):
            raise InvalidSessionError(f"cdr.charging_periods[{i}]: expected a JSON object")
        starts.append(parse_datetime(raw.get("start_date_time"), f"cdr.charging_periods[{i}].start_date_time"))
    if any(later < earlier for earlier, later in zip(starts, [*starts[1:], end], strict=True)):
        raise InvalidSessionError("cdr.charging_periods: start_date_time must not decrease, nor pass end_date_time")
    usages = tuple(
        _usage(raw, start, stop, f"cdr.charging_periods[{i}]")
        for i, (raw, start, stop) in enumerate(zip(raw_periods, starts, [*starts[1:], end], strict=True))
    )
    session_starts = [u.start for u in usages if not u.reservation]
    reservations = [u.start for u in usages if u.reservation]
    return Timeline(
        usages=usages,
        session_start=session_starts[0] if session_starts else None,
        end=end,
        reservation_start=reservations[0] if reservations else None,
        expired_reservation=not session_starts,
    )


def _usage(raw: Mapping[str, object], start: datetime, end: datetime, path: str) -> Usage:
    dimensions = raw.get("dimensions")
    if not isinstance(dimensions, list) or not dimensions:
        raise InvalidSessionError(f"{path}.dimensions: expected a non-empty list")
    values: dict[str, Decimal] = {}
    for i, dimension in enumerate(dimensions):
        where = f"{path}.dimensions[{i}]"
        if not isinstance(dimension, Mapping) or not isinstance(dimension.get("type"), str):
            raise InvalidSessionError(f"{where}: expected an object with a type")
        kind = str(dimension["type"])
        if kind in _SESSION_ONLY:
            continue
        if kind not in _CDR_FIELDS:
            raise InvalidSessionError(f"{where}.type: unknown dimension {kind!r}")
        values[kind] = parse_number(dimension.get("volume"), f"{where}.volume")
    reservation = "RESERVATION_TIME" in values
    if reservation and values.keys() != {"RESERVATION_TIME"}:
        raise InvalidSessionError(f"{path}: RESERVATION_TIME mixed with other dimensions")
    return Usage(
        start=start,
        end=end,
        reservation=reservation,
        energy_kwh=values.get("ENERGY", ZERO),
        charging_s=values.get("TIME", ZERO) * SECONDS_PER_HOUR,
        parking_s=values.get("PARKING_TIME", ZERO) * SECONDS_PER_HOUR,
        reservation_s=values.get("RESERVATION_TIME", ZERO) * SECONDS_PER_HOUR,
        min_power_kw=values.get("MIN_POWER"),
        max_power_kw=values.get("MAX_POWER"),
        min_current_a=values.get("MIN_CURRENT"),
        max_current_a=values.get("MAX_CURRENT"),
    )


_CDR_FIELDS = frozenset(
    {"ENERGY", "TIME", "PARKING_TIME", "RESERVATION_TIME", "MIN_POWER", "MAX_POWER", "MIN_CURRENT", "MAX_CURRENT"}
)
