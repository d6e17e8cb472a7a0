"""Heures pleines / heures creuses (HP/HC): a weekly off-peak schedule in local wall-clock time.

Grammar (case-insensitive; blanks are free around separators)::

    schedule := rule { (";" | newline) rule }
    rule     := [ days ] ranges               no days: every day
    days     := dayspec { "," dayspec }
    dayspec  := day | day "-" day              a span wraps: "fri-mon" is fri, sat, sun, mon
    day      := mon | tue | wed | thu | fri | sat | sun        (or monday ... sunday)
              | lun | mar | mer | jeu | ven | sam | dim        (or lundi ... dimanche)
    ranges   := range { "," range }
    range    := time "-" time                  start included, end excluded
    time     := H[H]:MM | H[H]hMM | H[H]h       00:00 to 23:59; 24:00 only as an end

Examples::

    22:00-06:00                                every day, 22:00 to 06:00 the next morning
    mon-fri 22:00-06:00; sat,sun 00:00-24:00   weekend entirely off-peak
    lun-ven 1h30-7h30, 12h30-14h30; sam-dim 0h-24h

A range whose end comes before its start crosses midnight and belongs to the day it starts
on: ``fri 22:00-06:00`` runs from Friday 22:00 to Saturday 06:00. A range cannot be empty
(start = end); a whole day is ``00:00-24:00``. Rules add up: the off-peak time is their union.

Times are wall-clock times in the schedule's time zone, as a meter counts them: across a DST
change a range keeps its wall-clock bounds, so that night is one hour shorter or longer, and
a bound that does not exist that day (02:30 when clocks jump from 02:00 to 03:00) takes effect
when the clocks jump.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import ScheduleError, SignalConfigError
from .timeutil import require_aware

DAY_MINUTES = 24 * 60
WEEK_MINUTES = 7 * DAY_MINUTES
SLOT = timedelta(minutes=15)
"""The planner's slot length."""
HORIZON_SLOTS = 96
"""The planner's horizon: 96 slots of 15 minutes, 24 hours."""
_SEARCH = timedelta(days=15)
"""How far :meth:`OffPeakSchedule.next_change` looks (two weeks and a margin for DST)."""

_DAY_NAMES: dict[str, int] = {}
for _index, _names in enumerate(
    (
        ("mon", "monday", "lun", "lundi"),
        ("tue", "tuesday", "mar", "mardi"),
        ("wed", "wednesday", "mer", "mercredi"),
        ("thu", "thursday", "jeu", "jeudi"),
        ("fri", "friday", "ven", "vendredi"),
        ("sat", "saturday", "sam", "samedi"),
        ("sun", "sunday", "dim", "dimanche"),
    )
):
    _DAY_NAMES.update(dict.fromkeys(_names, _index))

_TIME = r"(\d{1,2})(?::(\d{2})|h(\d{2})?)"
_RANGE = re.compile(rf"^{_TIME}\s*-\s*{_TIME}$", re.IGNORECASE)
_RULE = re.compile(r"^(?P<days>[^\d]*?)\s*(?P<ranges>\d.*)$", re.DOTALL)


def _time_minutes(hour: str, colon_minutes: str | None, h_minutes: str | None, *, is_end: bool, rule: str) -> int:
    """Minutes since midnight of one parsed time."""
    hours, minutes = int(hour), int(colon_minutes or h_minutes or 0)
    text = f"{hours:02d}:{minutes:02d}"
    if minutes > 59 or hours > 24 or (hours == 24 and minutes != 0):
        raise ScheduleError(f"{rule!r}: {text} is not a time of day (00:00 to 23:59, or 24:00 as an end)", rule=rule)
    if hours == 24 and not is_end:
        raise ScheduleError(f"{rule!r}: 24:00 can only end a range", rule=rule)
    return hours * 60 + minutes


def _parse_days(text: str, rule: str) -> list[int]:
    """Weekday numbers (0 = Monday) of a ``days`` part."""
    if not text:
        return list(range(7))
    days: list[int] = []
    for spec in text.split(","):
        names = [name.strip().lower() for name in spec.split("-")]
        if len(names) > 2 or not all(names):
            raise ScheduleError(f"{rule!r}: {spec.strip()!r} is not a day or a day span like mon-fri", rule=rule)
        for name in names:
            if name not in _DAY_NAMES:
                raise ScheduleError(
                    f"{rule!r}: unknown day {name!r}; use mon tue wed thu fri sat sun or lun mar mer jeu ven sam dim",
                    rule=rule,
                )
        first, last = _DAY_NAMES[names[0]], _DAY_NAMES[names[-1]]
        days.extend((first + offset) % 7 for offset in range((last - first) % 7 + 1))
    return days


def _parse_rule(rule: str) -> list[tuple[int, int]]:
    """Week-minute intervals ``[start, end)`` of one rule; ``end`` may pass the end of the week."""
    match = _RULE.match(rule)
    if match is None:
        raise ScheduleError(f"{rule!r}: no time range (like 22:00-06:00)", rule=rule)
    days = _parse_days(match["days"].strip(), rule)
    intervals: list[tuple[int, int]] = []
    for part in match["ranges"].split(","):
        found = _RANGE.match(part.strip())
        if found is None:
            raise ScheduleError(f"{rule!r}: {part.strip()!r} is not a time range like 22:00-06:00 or 22h-6h", rule=rule)
        start = _time_minutes(*found.group(1, 2, 3), is_end=False, rule=rule)
        end = _time_minutes(*found.group(4, 5, 6), is_end=True, rule=rule)
        if start == end:
            raise ScheduleError(f"{rule!r}: {part.strip()!r} is empty; a whole day is 00:00-24:00", rule=rule)
        length = end - start if end > start else DAY_MINUTES - start + end
        intervals.extend((day * DAY_MINUTES + start, day * DAY_MINUTES + start + length) for day in days)
    return intervals


def _merge(intervals: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """Sorted, disjoint, non-adjacent intervals within ``[0, WEEK_MINUTES)``."""
    pieces: list[tuple[int, int]] = []
    for start, end in intervals:
        if end > WEEK_MINUTES:  # Sunday night into Monday morning
            pieces.extend(((start, WEEK_MINUTES), (0, end - WEEK_MINUTES)))
        else:
            pieces.append((start, end))
    merged: list[tuple[int, int]] = []
    for start, end in sorted(pieces):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return tuple(merged)


def _zone(tz: ZoneInfo | str) -> ZoneInfo:
    if isinstance(tz, ZoneInfo):
        return tz
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, TypeError) as err:
        raise SignalConfigError(f"unknown time zone {tz!r}", field="time_zone") from err


@dataclass(frozen=True, slots=True)
class OffPeakSchedule:
    """Off-peak (heures creuses) intervals of the week in ``tz`` wall-clock minutes (0 = Monday 00:00)."""

    intervals: tuple[tuple[int, int], ...]
    tz: ZoneInfo

    @classmethod
    def parse(cls, text: str, tz: ZoneInfo | str) -> OffPeakSchedule:
        """Parse ``text`` (see the module's grammar); raise :class:`ScheduleError` with the faulty rule."""
        zone = _zone(tz)
        if not isinstance(text, str):
            raise ScheduleError(f"the schedule must be a string, not {type(text).__name__}")
        rules = [rule.strip() for rule in re.split(r"[;\n]", text) if rule.strip()]
        if not rules:
            raise ScheduleError("the schedule is empty; write for example 22:00-06:00")
        intervals = [interval for rule in rules for interval in _parse_rule(rule)]
        return cls(intervals=_merge(intervals), tz=zone)

    # -- state --------------------------------------------------------------------------

    def _contains(self, minute: int) -> bool:
        index = bisect_right(self.intervals, (minute, WEEK_MINUTES + 1)) - 1
        return index >= 0 and self.intervals[index][0] <= minute < self.intervals[index][1]

    def is_offpeak(self, now: datetime) -> bool:
        """Whether ``now`` (any aware datetime) is in off-peak hours."""
        local = require_aware(now).astimezone(self.tz)
        return self._contains(local.weekday() * DAY_MINUTES + local.hour * 60 + local.minute)

    # -- changes ------------------------------------------------------------------------

    def _boundaries(self) -> list[int]:
        """Week minutes where the state changes."""
        points = {point % WEEK_MINUTES for interval in self.intervals for point in interval}
        return sorted(p for p in points if self._contains(p) != self._contains((p - 1) % WEEK_MINUTES))

    def _transition(self, day: date) -> datetime | None:
        """The UTC instant (to the second) the offset of ``tz`` changes during ``day``, if it does."""
        low = int(datetime.combine(day, time(), self.tz).timestamp())
        high = int(datetime.combine(day + timedelta(days=1), time(), self.tz).timestamp())
        before = datetime.fromtimestamp(low, self.tz).utcoffset()
        if datetime.fromtimestamp(high, self.tz).utcoffset() == before:
            return None
        while high - low > 1:
            middle = (low + high) // 2
            if datetime.fromtimestamp(middle, self.tz).utcoffset() == before:
                low = middle
            else:
                high = middle
        return datetime.fromtimestamp(high, UTC)

    def _candidates(self, start: datetime, end: datetime) -> list[datetime]:
        """Every instant in ``(start, end]`` where the state may change, sorted."""
        boundaries = self._boundaries()
        first = start.astimezone(self.tz).date() - timedelta(days=1)
        last = end.astimezone(self.tz).date() + timedelta(days=1)
        found: set[datetime] = set()
        day = first
        while day <= last:
            for point in boundaries:
                if point // DAY_MINUTES != day.weekday():
                    continue
                minute = point % DAY_MINUTES
                wall = datetime.combine(day, time(minute // 60, minute % 60))
                for fold in (0, 1):
                    local = wall.replace(tzinfo=self.tz, fold=fold)
                    if local.astimezone(UTC).astimezone(self.tz).replace(tzinfo=None) == wall:  # it exists
                        found.add(local.astimezone(UTC))
            transition = self._transition(day)
            if transition is not None:
                found.add(transition)
            day += timedelta(days=1)
        return sorted(moment for moment in found if start < moment <= end)

    def changes(self, start: datetime, end: datetime) -> list[datetime]:
        """The instants in ``(start, end]`` where off-peak begins or ends, in UTC, sorted."""
        require_aware(start, "start")
        require_aware(end, "end")
        state = self.is_offpeak(start)
        changes: list[datetime] = []
        for moment in self._candidates(start, end):
            if self.is_offpeak(moment) != state:
                state = not state
                changes.append(moment)
        return changes

    def next_change(self, now: datetime) -> datetime | None:
        """When off-peak next begins or ends after ``now`` (UTC), None if it never changes."""
        now = require_aware(now).astimezone(UTC)
        changes = self.changes(now, now + _SEARCH)
        return changes[0] if changes else None

    def offpeak_slots(self, start: datetime, count: int = HORIZON_SLOTS, slot: timedelta = SLOT) -> list[bool]:
        """One flag per slot ``[start + i*slot, start + (i+1)*slot)``: True when off-peak for the whole slot.

        Slots are in absolute time (a DST night has the same number of slots as any other);
        a slot that off-peak starts or ends inside is not off-peak.
        """
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"count must be a non-negative integer, not {count!r}")
        if slot <= timedelta(0):
            raise ValueError(f"slot must be positive, not {slot!r}")
        start = require_aware(start, "start").astimezone(UTC)  # slots in absolute time, not wall-clock
        changes = self.changes(start, start + slot * count)
        state = self.is_offpeak(start)
        flags: list[bool] = []
        index = 0
        for number in range(count):
            slot_start = start + slot * number
            while index < len(changes) and changes[index] <= slot_start:
                state = not state
                index += 1
            flags.append(state and (index == len(changes) or changes[index] >= slot_start + slot))
        return flags


def parse_schedule(text: str, tz: ZoneInfo | str) -> OffPeakSchedule:
    """Shortcut for :meth:`OffPeakSchedule.parse`."""
    return OffPeakSchedule.parse(text, tz)
