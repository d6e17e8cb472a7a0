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
    DayConfig,
    DayReport,
    build_scale_site,
    jain_index,
    main,
    scale,
    simulate,
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
