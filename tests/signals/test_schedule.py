"""HP/HC schedule: grammar, errors, wall-clock semantics across DST (Europe/Paris) and without (Martinique)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings, strategies as st
import pytest

from custom_components.cariflex.signals import OffPeakSchedule, ScheduleError, SignalConfigError, parse_schedule

PARIS = ZoneInfo("Europe/Paris")
MARTINIQUE = ZoneInfo("America/Martinique")
SECOND = timedelta(seconds=1)


def at(year: int, month: int, day: int, hour: int, minute: int = 0, *, tz: ZoneInfo = PARIS, fold: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=tz, fold=fold)


def utc(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2025, month, day, hour, minute, tzinfo=UTC)


# 2025-03-10 is a Monday.
MON, TUE, WED, FRI, SAT, SUN = 10, 11, 12, 14, 15, 16


def march(day: int, hour: int, minute: int = 0) -> datetime:
    return at(2025, 3, day, hour, minute)


def test_every_night() -> None:
    schedule = parse_schedule("22:00-06:00", "Europe/Paris")
    assert schedule.is_offpeak(march(WED, 23))
    assert schedule.is_offpeak(march(WED, 5, 59))
    assert not schedule.is_offpeak(march(WED, 6))
    assert not schedule.is_offpeak(march(WED, 21, 59))
    assert schedule.is_offpeak(march(WED, 22))
    assert schedule.is_offpeak(march(WED, 22).astimezone(UTC))  # any zone in, local time decides


def test_weekdays_and_weekend() -> None:
    schedule = parse_schedule("mon-fri 22:00-06:00; sat,sun 00:00-24:00", PARIS)
    assert schedule.is_offpeak(march(FRI, 23))
    assert schedule.is_offpeak(march(SAT, 5))  # Friday's night
    assert schedule.is_offpeak(march(SAT, 12))
    assert schedule.is_offpeak(march(SUN, 23, 59))
    assert not schedule.is_offpeak(march(MON, 5))  # Sunday has no night range into Monday
    assert not schedule.is_offpeak(march(MON, 12))
    assert schedule.is_offpeak(march(MON, 22))


def test_french_names_and_h_times() -> None:
    schedule = parse_schedule("lun-ven 1h30-7h30, 12h30-14h30\nsam-dim 0h-24h", PARIS)
    assert schedule == parse_schedule(
        "Monday-FRIDAY 01:30-07:30 , 12:30 - 14:30; SATURDAY , dimanche 00:00-24:00;", PARIS
    )
    assert schedule.is_offpeak(march(TUE, 1, 30))
    assert not schedule.is_offpeak(march(TUE, 1, 29))
    assert not schedule.is_offpeak(march(TUE, 7, 30))
    assert schedule.is_offpeak(march(TUE, 14, 29))
    assert schedule.is_offpeak(march(SUN, 3))
    assert parse_schedule("LUNDI 22H-6H", PARIS).is_offpeak(march(TUE, 5))


def test_day_spans_wrap_around_the_week() -> None:
    schedule = parse_schedule("fri-mon 10:00-11:00", PARIS)
    assert [schedule.is_offpeak(march(day, 10, 30)) for day in range(MON, MON + 7)] == [
        True,
        False,
        False,
        False,
        True,
        True,
        True,
    ]
    night = parse_schedule("sun 22:00-06:00", PARIS)
    assert night.is_offpeak(march(MON + 7, 5, 59))  # Sunday night into Monday
    assert not night.is_offpeak(march(MON + 7, 6))
    assert parse_schedule("mer 12:00-13:00", PARIS).is_offpeak(march(WED, 12))
    assert parse_schedule("mar 12:00-13:00", PARIS).is_offpeak(march(TUE, 12))  # French "mardi"


def test_rules_add_up_and_merge() -> None:
    overlapping = parse_schedule("mon 10:00-12:00; mon 11:00-13:00", PARIS)
    assert overlapping.next_change(march(MON, 10, 30)) == march(MON, 13).astimezone(UTC)
    adjacent = parse_schedule("mon 10:00-11:00, 11:00-12:00", PARIS)
    assert adjacent.next_change(march(MON, 10, 30)) == march(MON, 12).astimezone(UTC)
    assert adjacent.next_change(march(MON, 9)) == march(MON, 10).astimezone(UTC)
    assert parse_schedule("22:00-24:00", PARIS).next_change(march(MON, 23)) == march(TUE, 0).astimezone(UTC)


def test_always_offpeak_never_changes() -> None:
    schedule = parse_schedule("00:00-24:00", PARIS)
    assert schedule.is_offpeak(march(MON, 12))
    assert schedule.next_change(march(MON, 12)) is None
    assert schedule.offpeak_slots(march(MON, 0)) == [True] * 96
    week = parse_schedule("sun 12:00-24:00; mon-sat 00:00-24:00; sun 0h-12h", PARIS)
    assert week.next_change(march(SUN, 23, 59)) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        (" ; \n ", "empty"),
        ("mox 22:00-06:00", "unknown day 'mox'"),
        ("mon- 22:00-06:00", "'mon-' is not a day or a day span"),
        ("mon-tue-wed 01:00-02:00", "is not a day or a day span"),
        ("mon", "no time range"),
        ("22:00", "'22:00' is not a time range"),
        ("10-12", "'10-12' is not a time range"),
        ("mon 22:00-06:00 xyz", "is not a time range"),
        ("25:00-06:00", "25:00 is not a time of day"),
        ("22:60-06:00", "22:60 is not a time of day"),
        ("22:00-24:30", "24:30 is not a time of day"),
        ("24:00-06:00", "24:00 can only end a range"),
        ("10:00-10:00", "is empty; a whole day is 00:00-24:00"),
        ("mon 22:00-06:00; tue 7:00", "'tue 7:00'"),
    ],
)
def test_errors_name_the_rule(text: str, message: str) -> None:
    with pytest.raises(ScheduleError, match=message) as caught:
        parse_schedule(text, PARIS)
    assert isinstance(caught.value, SignalConfigError)
    assert isinstance(caught.value, ValueError)
    assert caught.value.field == "schedule"


def test_other_bad_inputs() -> None:
    with pytest.raises(ScheduleError, match="must be a string"):
        OffPeakSchedule.parse(None, PARIS)  # type: ignore[arg-type]
    with pytest.raises(SignalConfigError, match="unknown time zone") as caught:
        parse_schedule("22:00-06:00", "Europe/Atlantis")
    assert caught.value.field == "time_zone"
    schedule = parse_schedule("22:00-06:00", PARIS)
    with pytest.raises(ValueError, match="timezone-aware"):
        schedule.is_offpeak(datetime(2025, 3, 10, 12))
    with pytest.raises(ValueError, match="count"):
        schedule.offpeak_slots(march(MON, 0), count=-1)
    with pytest.raises(ValueError, match="slot"):
        schedule.offpeak_slots(march(MON, 0), slot=timedelta(0))


# -- Europe/Paris DST ------------------------------------------------------------------------
# 2025-03-30 (Sunday): 02:00 CET -> 03:00 CEST at 01:00Z. 2025-10-26 (Sunday): 03:00 CEST -> 02:00 CET at 01:00Z.


def test_spring_forward_night_is_one_hour_shorter() -> None:
    schedule = parse_schedule("22:00-06:00", PARIS)
    start = at(2025, 3, 29, 22)  # 21:00Z
    assert schedule.next_change(at(2025, 3, 29, 23)) == utc(3, 30, 4)  # 06:00 CEST
    flags = schedule.offpeak_slots(start)
    assert flags[:28] == [True] * 28  # 7 hours
    assert flags[28:92] == [False] * 64
    assert flags[92:] == [True] * 4  # Sunday 22:00 CEST is 20:00Z, 23 h after the start
    assert schedule.changes(start, start + timedelta(hours=24)) == [utc(3, 30, 4), utc(3, 30, 20)]


def test_fall_back_night_is_one_hour_longer() -> None:
    schedule = parse_schedule("22:00-06:00", PARIS)
    start = at(2025, 10, 25, 22)  # 20:00Z
    flags = schedule.offpeak_slots(start)
    assert flags[:36] == [True] * 36  # 9 hours, to 06:00 CET = 05:00Z
    assert flags[36:] == [False] * 60
    assert schedule.next_change(start) == utc(10, 26, 5)


def test_a_bound_inside_the_spring_gap_takes_effect_at_the_jump() -> None:
    schedule = parse_schedule("sun 02:30-04:00", PARIS)
    before = at(2025, 3, 30, 1, 30)  # 00:30Z
    assert not schedule.is_offpeak(before)
    assert schedule.next_change(before) == utc(3, 30, 1)  # the clocks jump to 03:00 CEST
    assert schedule.is_offpeak(utc(3, 30, 1))
    assert schedule.next_change(utc(3, 30, 1)) == utc(3, 30, 2)  # 04:00 CEST
    # Any other Sunday keeps its 90 minutes.
    assert schedule.next_change(at(2025, 4, 6, 1)) == at(2025, 4, 6, 2, 30).astimezone(UTC)


def test_a_repeated_hour_repeats_the_range() -> None:
    schedule = parse_schedule("sun 02:30-02:45", PARIS)
    changes = schedule.changes(utc(10, 26, 0), utc(10, 26, 3))
    assert changes == [utc(10, 26, 0, 30), utc(10, 26, 0, 45), utc(10, 26, 1, 30), utc(10, 26, 1, 45)]
    assert schedule.is_offpeak(at(2025, 10, 26, 2, 40, fold=1))


def test_a_bound_at_the_fall_back_instant() -> None:
    schedule = parse_schedule("sun 02:00-02:30", PARIS)
    # 02:00-02:30 CEST (00:00Z-00:30Z) and again 02:00-02:30 CET (01:00Z-01:30Z).
    assert schedule.changes(utc(10, 25, 23), utc(10, 26, 3)) == [
        utc(10, 26, 0),
        utc(10, 26, 0, 30),
        utc(10, 26, 1),
        utc(10, 26, 1, 30),
    ]


# -- America/Martinique: UTC-4 all year -----------------------------------------------------------


def test_martinique_without_dst() -> None:
    schedule = parse_schedule("mon-fri 22:00-06:00", "America/Martinique")
    assert schedule.is_offpeak(utc(3, 11, 2))  # Monday 22:00 local
    assert schedule.next_change(utc(3, 11, 2)) == utc(3, 11, 10)
    monday = at(2025, 3, 10, 0, tz=MARTINIQUE)
    flags = schedule.offpeak_slots(monday)
    assert flags == [False] * 88 + [True] * 8  # Sunday night is not off-peak; Monday 22:00-24:00 is
    # The French DST days change nothing here.
    assert schedule.offpeak_slots(at(2025, 3, 30, 0, tz=MARTINIQUE)) == [False] * 96  # a Sunday
    assert (
        parse_schedule("22:00-06:00", MARTINIQUE).offpeak_slots(at(2025, 3, 29, 22, tz=MARTINIQUE))[:32] == [True] * 32
    )


def test_slots_that_a_change_cuts_are_not_offpeak() -> None:
    schedule = parse_schedule("22:10-05:50", MARTINIQUE)
    flags = schedule.offpeak_slots(at(2025, 3, 10, 22, tz=MARTINIQUE), count=32)
    assert flags[0] is False  # 22:00-22:15 starts peak
    assert flags[1:31] == [True] * 30
    assert flags[31] is False  # 05:45-06:00 ends peak
    assert schedule.offpeak_slots(at(2025, 3, 10, 22, tz=MARTINIQUE), count=0) == []
    hourly = schedule.offpeak_slots(at(2025, 3, 10, 23, tz=MARTINIQUE), count=3, slot=timedelta(hours=1))
    assert hourly == [True, True, True]


# -- properties ----------------------------------------------------------------------------------

_times = st.tuples(st.integers(0, 23), st.sampled_from([0, 15, 30, 45, 10]))
_ranges = st.tuples(_times, _times).filter(lambda pair: pair[0] != pair[1])
_days = st.sampled_from(["", "mon ", "sat,sun ", "fri-mon ", "lun-ven ", "dim "])
_rules = st.lists(st.tuples(_days, _ranges), min_size=1, max_size=3)
_instants = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2026, 12, 31), timezones=st.just(UTC))


def _text(rules: list[tuple[str, tuple[tuple[int, int], tuple[int, int]]]]) -> str:
    return "; ".join(f"{days}{a[0]:02d}:{a[1]:02d}-{b[0]:02d}:{b[1]:02d}" for days, (a, b) in rules)


@settings(max_examples=60, deadline=None)
@given(rules=_rules, now=_instants, zone=st.sampled_from([PARIS, MARTINIQUE]))
def test_next_change_is_the_first_change(
    rules: list[tuple[str, tuple[tuple[int, int], tuple[int, int]]]], now: datetime, zone: ZoneInfo
) -> None:
    schedule = parse_schedule(_text(rules), zone)
    state = schedule.is_offpeak(now)
    change = schedule.next_change(now)
    if change is None:
        samples = [now + timedelta(minutes=37 * step) for step in range(400)]
        assert all(schedule.is_offpeak(moment) == state for moment in samples)
        return
    assert change > now
    assert schedule.is_offpeak(change) != state
    assert schedule.is_offpeak(max(now, change - SECOND)) == state
    middle = now + (change - now) / 2
    assert schedule.is_offpeak(middle) == state


@settings(max_examples=40, deadline=None)
@given(rules=_rules, start=_instants)
def test_slot_flags_mean_offpeak_throughout(
    rules: list[tuple[str, tuple[tuple[int, int], tuple[int, int]]]], start: datetime
) -> None:
    schedule = parse_schedule(_text(rules), PARIS)
    flags = schedule.offpeak_slots(start)
    assert len(flags) == 96
    for index, flag in enumerate(flags):
        slot_start = start + timedelta(minutes=15 * index)
        # Bounds fall on whole minutes (DST jumps on whole seconds): the minutes and the last microsecond cover it.
        end = slot_start + timedelta(minutes=15) - timedelta(microseconds=1)
        minutes = [slot_start + timedelta(minutes=m) for m in range(15)] + [end]
        assert flag == all(schedule.is_offpeak(moment) for moment in minutes)
