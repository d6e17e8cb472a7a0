"""The EMS day simulator (benchmarks/ems_sim.py): report shape, limits, energy, scale mode, CLI.

Short windows (2 h, 5 sessions) keep every test well under a second; the simulator drives the
real regulator (custom_components/cariflex/ems), so these are also end-to-end checks of it.
"""

from __future__ import annotations

from dataclasses import replace
import json
import random

import pytest

from benchmarks.ems_sim import (
    ZNI_SLOT_S,
    DayConfig,
    DayReport,
    build_scale_site,
    jain_index,
    main,
    scale,
    simulate,
    zni_schedule,
)
from custom_components.cariflex.ems import Charger, Node, Regulator, Session, SiteTree, Strategy

SHORT = DayConfig(sessions=5, seed=3, start_s=8 * 3600, duration_s=7200)
"""08:00-10:00, five sessions, default site, ramp delays, spikes and clouds."""

TIGHT = replace(SHORT, ramp_delay_s=0, spikes=False, clouds=False, limit_factor=0.3)
"""No ramp delay, no spikes, no clouds, and every limit at 30 %: the limits bind."""

AMPLE = replace(SHORT, limit_factor=20.0)
"""Every limit x20: the site never constrains the cars."""


def _figures(report: DayReport) -> dict[str, object]:
    """The report without the measured compute times."""
    data = report.to_dict()
    del data["cycle"], data["wall_s"]
    return data


def test_report_shape() -> None:
    report = simulate(SHORT)

    assert report.mode == "day"
    assert report.nodes[0].node_id == "tgbt"
    assert report.nodes[0].parent is None
    assert report.nodes[0].limit_a == 125.0
    assert report.nodes[0].limit_w == 50_000.0
    assert report.nodes[0].chargers == report.chargers
    assert {"td1", "td2", "g1"} <= {node.node_id for node in report.nodes}
    assert all(node.parent is not None for node in report.nodes[1:])
    assert len(report.sessions) == 5
    for session in report.sessions:
        assert 8 * 3600 <= session.arrival_s < session.departure_s <= 10 * 3600
        assert 0 < session.delivered_kwh <= session.requested_kwh + 1e-6
        assert session.setpoints_sent >= 1
        assert session.draw_phases <= session.charger_phases
    assert report.requested_kwh == pytest.approx(sum(s.requested_kwh for s in report.sessions), abs=0.01)
    assert report.delivered_kwh == pytest.approx(sum(s.delivered_kwh for s in report.sessions), abs=0.01)
    assert report.delivered_ratio == pytest.approx(report.delivered_kwh / report.requested_kwh, abs=1e-4)
    assert report.setpoints_sent == sum(s.setpoints_sent for s in report.sessions)
    assert 0 < report.jain_index <= 1
    assert 0 < report.reserved_used_ratio <= 1
    assert set(report.reserved_unused_kwh) == {"car_full", "phase_mismatch", "below_setpoint"}
    assert sum(entry["sessions"] for entry in report.by_car.values()) == 5
    assert report.cycle.cycles == 7200 // 5
    assert 0 < report.cycle.p50_ms <= report.cycle.p99_ms <= report.cycle.max_ms
    for node in report.nodes:
        assert node.over_s == node.over_s_ramp + node.over_s_load
        assert node.over_wh == pytest.approx(node.over_wh_ramp + node.over_wh_load, abs=0.002)
        assert node.over_at_cycle <= node.over_s
        assert (node.over_s == 0) == (node.over_wh == 0)

    assert report.pv is None
    assert report.zni is None

    data = json.loads(json.dumps(report.to_dict()))
    assert data["mode"] == "day"
    assert data["config"]["sessions"] == 5
    assert data["config"]["strategy"] == "equal"
    assert data["nodes"][0]["node_id"] == "tgbt"
    assert set(data["cycle"]) == {"cycles", "p50_ms", "p99_ms", "max_ms"}


def test_same_seed_same_figures_and_options_leave_the_rest_alone() -> None:
    first = simulate(SHORT)
    assert _figures(simulate(SHORT)) == _figures(first)

    other_seed = simulate(replace(SHORT, seed=4))
    assert [s.requested_kwh for s in other_seed.sessions] != [s.requested_kwh for s in first.sessions]

    # The ramp delay has its own random stream: the sessions and the site stay the same.
    no_ramp = simulate(replace(SHORT, ramp_delay_s=0))
    assert [(s.arrival_s, s.requested_kwh, s.charger_id) for s in no_ramp.sessions] == [
        (s.arrival_s, s.requested_kwh, s.charger_id) for s in first.sessions
    ]
    assert [(n.node_id, n.limit_a, n.limit_w) for n in no_ramp.nodes] == [
        (n.node_id, n.limit_a, n.limit_w) for n in first.nodes
    ]


@pytest.mark.parametrize(("seed", "strategy"), [(1, Strategy.EQUAL), (2, Strategy.EQUAL), (3, Strategy.FCFS)])
def test_no_limit_exceeded_at_any_cycle_instant_without_ramp_delay_or_spikes(seed: int, strategy: Strategy) -> None:
    report = simulate(replace(TIGHT, seed=seed, strategy=strategy))

    root = report.nodes[0]
    assert root.limit_w is not None
    # The limits do bind (otherwise this would prove nothing)...
    assert root.peak_w >= 0.95 * root.limit_w
    assert report.delivered_ratio < 0.9
    # ...yet right after every cycle every node is within its limits; between cycles only the
    # building load can move (no ramp delay: every overshoot is a load one).
    for node in report.nodes:
        assert node.over_at_cycle == 0, node
        assert node.over_s_ramp == 0, node
        assert node.over_s == node.over_s_load


def test_ramp_delays_and_spikes_cause_counted_overshoots() -> None:
    with_ramp = simulate(replace(TIGHT, seed=2, ramp_delay_s=5))
    root = with_ramp.nodes[0]
    assert root.limit_w is not None
    assert root.over_s_ramp > 0
    assert root.over_at_cycle > 0  # decreases not applied yet at the cycle instant
    assert root.over_wh_ramp > 0
    assert root.max_over_w > 0
    assert root.peak_w > root.limit_w + root.max_over_w - 1

    spikes = simulate(replace(TIGHT, seed=2, spikes=True, clouds=True))
    quiet = simulate(replace(TIGHT, seed=2))
    assert spikes.nodes[0].over_s_load > quiet.nodes[0].over_s_load
    assert spikes.nodes[0].over_at_cycle == 0
    assert spikes.nodes[0].over_s_ramp == 0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_all_requested_energy_delivered_when_the_site_has_enough_power(seed: int) -> None:
    report = simulate(replace(AMPLE, seed=seed))

    assert report.sessions_complete == 5
    assert report.delivered_ratio >= 0.999
    for session in report.sessions:
        assert session.delivered_kwh == pytest.approx(session.requested_kwh, abs=0.002)
    assert report.jain_index == pytest.approx(1.0, abs=1e-3)
    assert all(node.over_s == 0 for node in report.nodes)


def test_a_tight_site_delivers_less_and_shares_it() -> None:
    ample = simulate(AMPLE)
    tight = simulate(replace(SHORT, limit_factor=0.3))

    assert tight.requested_kwh == ample.requested_kwh
    assert tight.delivered_kwh < ample.delivered_kwh
    assert 0.2 < tight.jain_index < 1


def test_setpoint_of_a_car_below_its_charger_max_is_stable() -> None:
    tree = SiteTree.build(
        [Node("tgbt", max_current_a=100.0, measured_load=(0.0, 0.0, 0.0), measured_at=0.0)],
        [Charger("c1", "tgbt", max_current_a=32.0)],
    )
    regulator = Regulator()
    draw = 0.0
    sent: list[float] = []
    for k in range(8):
        now = 5.0 * k
        tree = tree.with_measurement("tgbt", (0.0, 0.0, 0.0), at=now)
        result = regulator.cycle(tree, [Session("s1", "c1", measured_a=(draw, draw, draw))], now)
        sent += [result.setpoint(s) for s in result.changed]
        draw = min(result.setpoint("s1"), 16.0)  # the car takes 16 A at most

    assert len(sent) <= 3, sent


def test_few_setpoint_messages_when_the_site_has_enough_power() -> None:
    report = simulate(replace(AMPLE, seed=2))

    assert max(s.setpoints_sent for s in report.sessions) <= 60  # in 2 h; 964 with the flip-flop


def test_scale_mode_runs() -> None:
    tree = build_scale_site(random.Random(1), 600)
    assert len(tree.chargers) == 600
    assert len(tree.nodes) == 1 + 10 + 60
    assert {tree.depth(charger.node) for charger in tree.chargers.values()} == {2}
    assert max(len([c for c in tree.chargers.values() if c.node == g]) for g in tree.nodes) == 10

    report = scale(60, cycles=10, seed=1)
    assert report.mode == "scale"
    assert report.chargers == 60
    assert report.nodes == 1 + 6 + 6
    assert report.cycle.cycles == 10
    assert 0 < report.sessions_mean <= 60
    assert report.changed_mean > 0
    assert 0 < report.cycle.p50_ms <= report.cycle.p99_ms <= report.cycle.max_ms
    assert json.loads(json.dumps(report.to_dict()))["cycle"]["cycles"] == 10


def test_jain_index() -> None:
    assert jain_index([]) == 1.0
    assert jain_index([0.0, 0.0]) == 1.0
    assert jain_index([0.5, 0.5, 0.5]) == pytest.approx(1.0)
    assert jain_index([1.0, 0.0]) == pytest.approx(0.5)
    assert jain_index([1.0, 0.0, 0.0, 0.0]) == pytest.approx(0.25)


def test_cli_table_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--sessions", "2", "--seed", "1", "--start", "8", "--hours", "1", "--cycle", "10"]) == 0
    table = capsys.readouterr().out
    assert "2 sessions" in table
    assert "cycle 10 s" in table
    assert "tgbt" in table
    assert "Jain index" in table
    assert "setpoints sent" in table

    assert main(["--sessions", "2", "--start", "8", "--hours", "1", "--no-spikes", "--no-clouds", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["config"]["spikes"] is False
    assert data["config"]["clouds"] is False
    assert data["cycle"]["cycles"] == 3600 // 5
    assert len(data["sessions"]) == 2

    assert main(["--scale", "20", "--scale-cycles", "3"]) == 0
    assert "20 chargers" in capsys.readouterr().out
    assert main(["--scale", "20", "--scale-cycles", "3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["chargers"] == 20


def test_invalid_configs_are_refused() -> None:
    with pytest.raises(ValueError, match="cycle_s"):
        DayConfig(cycle_s=0)
    with pytest.raises(ValueError, match="limit_factor"):
        DayConfig(limit_factor=0)
    with pytest.raises(ValueError, match="chargers"):
        scale(0)


# ------------------------------------------------------------------------- strategy days

PV_DAY = DayConfig(
    day="pv-clouds",
    sessions=5,
    seed=2,
    start_s=9 * 3600,
    duration_s=3 * 3600,
    pv_kw=36.0,
    base_kw=6.0,
    clouds_per_day=40,
)
"""09:00-12:00 on a workplace with more PV than load, and many clouds."""

ZNI_DAY = DayConfig(day="zni", sessions=4, seed=4, start_s=16 * 3600 + 1800, duration_s=2 * 3600)
"""16:30-18:30: the start of the evening signal-0 period (17:30-21:00)."""


def test_pv_day_uses_the_surplus_without_flapping() -> None:
    report = simulate(PV_DAY)
    pv = report.pv
    assert pv is not None
    assert report.zni is None
    assert pv.pv_kwh > 0
    assert pv.building_self_consumption < pv.self_consumption <= 1
    assert pv.exported_kwh == pytest.approx(pv.pv_kwh * (1 - pv.self_consumption), abs=0.01)
    assert 0 < pv.ev_from_pv_kwh <= pv.ev_kwh
    assert pv.ev_kwh == pytest.approx(report.delivered_kwh, abs=0.01)
    assert pv.transitions == sum(s.transitions for s in report.sessions if s.mode in ("pv", "min_pv"))
    assert pv.transitions_per_ev_hour <= 2
    assert {s.mode for s in report.sessions} <= {"pv", "min_pv", "now"}
    assert sum(int(entry["sessions"]) for entry in pv.by_mode.values()) == 5
    for node in report.nodes:  # the strategy never pushes a node over its limit at a cycle instant
        assert node.over_at_cycle == 0, node
    assert json.loads(json.dumps(report.to_dict()))["pv"]["pv_kwh"] == pv.pv_kwh

    # The same day with every car charging at once uses less of the PV.
    now = simulate(replace(PV_DAY, pv_modes="now"))
    assert now.pv is not None
    assert now.pv.transitions == 0
    assert now.pv.self_consumption < pv.self_consumption
    assert now.pv.ev_from_pv_kwh < pv.ev_from_pv_kwh
    assert now.delivered_kwh > report.delivered_kwh


def test_zni_day_never_exceeds_the_cap_in_a_0_slot() -> None:
    report = simulate(ZNI_DAY)
    zni = report.zni
    assert zni is not None
    assert report.pv is None
    assert zni.zero_slots == 6  # 17:30-18:30
    assert zni.zero_slot_hours == 1.0
    assert 0 < zni.zero_slot_kwh < zni.day_kwh
    assert zni.over_cap_s == 0
    assert zni.slots_over_cap == 0
    assert zni.max_over_cap_w == 0
    assert 0.5 < zni.max_power_to_cap <= 1.0  # the cap binds, and holds
    assert zni.evidence_entries >= 2
    assert zni.delayed_session_s == 0

    # Without anticipation, cars still above the cap when a 0 slot begins (ramp delay): counted.
    late = simulate(replace(ZNI_DAY, zni_anticipation_s=0.0))
    assert late.zni is not None
    assert late.zni.over_cap_s > 0
    assert late.zni.max_over_cap_w > 0

    # One session at a time in 0 slots: the others wait, less energy in them.
    one = simulate(replace(ZNI_DAY, zni_max_sessions=1))
    assert one.zni is not None
    assert one.zni.delayed_session_s > 0
    assert one.zni.zero_slot_kwh < zni.zero_slot_kwh
    assert one.zni.over_cap_s == 0


def test_zni_schedule() -> None:
    published, received = zni_schedule(DayConfig(day="zni"), random.Random(1))
    per_hour = 3600 // ZNI_SLOT_S
    assert len(published) == len(received) == 24 * per_hour
    assert published[6 * per_hour : 7 * per_hour + 3] == [0] * 9
    assert published[17 * per_hour + 3 : 21 * per_hour] == [0] * 21
    assert published[5 * per_hour] == published[21 * per_hour] == published[23 * per_hour] == 1
    lost = [k for k, value in enumerate(received) if value is None]
    assert len(lost) == 3
    assert lost == list(range(lost[0], lost[0] + 3))
    assert 10 * per_hour <= lost[0] < 16 * per_hour
    assert all(published[k] == 1 for k in lost)
    assert [v for k, v in enumerate(received) if k not in lost] == [v for k, v in enumerate(published) if k not in lost]


def test_cli_strategy_days(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--day", "pv-clouds", "--start", "10", "--hours", "1", "--sessions", "2", "--cycle", "10"]) == 0
    table = capsys.readouterr().out
    assert "day pv-clouds" in table
    assert "self-consumption" in table
    assert "per EV and hour" in table
    assert "PV 36 kWp" in table  # the day's preset fills what the command line left unset

    assert (
        main(["--day", "zni", "--start", "17", "--hours", "1", "--sessions", "2", "--json", "--zni-max-sessions", "1"])
        == 0
    )
    data = json.loads(capsys.readouterr().out)
    assert data["config"]["day"] == "zni"
    assert data["config"]["zni_max_sessions"] == 1
    assert data["zni"]["over_cap_s"] == 0
    assert data["pv"] is None

    assert main(["--day", "zni", "--start", "17", "--hours", "1", "--sessions", "2"]) == 0
    assert "signal-0 slots" in capsys.readouterr().out


def test_invalid_day_is_refused() -> None:
    with pytest.raises(ValueError, match="day"):
        DayConfig(day="storm")
    with pytest.raises(ValueError, match="pv_modes"):
        DayConfig(pv_modes="solar")
