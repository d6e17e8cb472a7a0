"""The day simulator's count of PV starts and stops (benchmarks/ems_sim.py, ``pv-clouds`` day).

Every setpoint on/off of a PV-mode session counts in ``transitions``; ``pv_transitions`` leaves
out what the PV did not decide: the start on the session's first cycle (``min_pv`` gets its
minimum on arrival) and any on/off sent to a car already full (it charges neither way; since a
full car says so, SuspendedEV, the PV controller no longer toggles it).
"""

from __future__ import annotations

from benchmarks.ems_sim import DayConfig, format_day, simulate

DAY = DayConfig(
    day="pv-clouds",
    sessions=6,
    seed=3,
    start_s=9 * 3600,
    duration_s=5 * 3600,
    pv_kw=36.0,
    base_kw=6.0,
    clouds_per_day=40,
)
"""09:00-14:00: two pv sessions (one fills up), two min_pv, two now."""


def test_pv_transitions_leave_out_arrival_starts_and_full_cars() -> None:
    report = simulate(DAY)
    pv = report.pv
    assert pv is not None
    by_mode: dict[str, list[tuple[int, int]]] = {}
    for session in report.sessions:
        by_mode.setdefault(session.mode, []).append((session.transitions, session.pv_transitions))
    # min_pv and now start on arrival and never stop: one setpoint on, no PV decision.
    assert by_mode["min_pv"] == [(1, 0), (1, 0)]
    assert by_mode["now"] == [(1, 0), (1, 0)]
    # The pv session that fills up: once full, the car says so (SuspendedEV) and is no longer
    # started and stopped, so every on/off of it was a PV decision.
    full = [s for s in report.sessions if s.mode == "pv" and s.delivered_kwh >= s.requested_kwh * 0.999]
    assert [(s.transitions, s.pv_transitions) for s in full] == [(5, 5)]
    following = [s for s in report.sessions if s.mode in ("pv", "min_pv")]
    assert pv.transitions == sum(s.transitions for s in following) == 8
    assert pv.pv_transitions == sum(s.pv_transitions for s in following) == 6
    hours = sum((s.departure_s - s.arrival_s) / 3600 for s in following)
    assert pv.pv_transitions_per_ev_hour == round(6 / hours, 3)
    assert pv.pv_transitions_per_ev_hour < pv.transitions_per_ev_hour  # the min_pv starts on arrival
    assert pv.pv_transitions_per_ev_hour_max <= pv.transitions_per_ev_hour_max <= 2
    assert "starts/stops of PV-mode sessions decided by the PV" in format_day(report)
