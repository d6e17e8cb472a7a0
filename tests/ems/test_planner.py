"""The charging planner (custom_components/cariflex/ems/planner.py): one behaviour per test.

Most cases use 1-hour slots and single-phase sessions at 230 V, so that 1 A for one slot is
exactly 0.23 kWh and the expected plans can be worked out by hand (or by brute force).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
import itertools
import math
from typing import Any

import numpy as np
import pytest

from benchmarks.planner import make_problem
from custom_components.cariflex.ems import Charger, EmsError, Node, NodeKind, Phase, SiteTree, planner as planner_module
from custom_components.cariflex.ems.planner import (
    Backend,
    Plan,
    PlanError,
    PlanMethod,
    Planner,
    PlannerConfig,
    PlanNode,
    PlanProblem,
    PlanSession,
    check_plan,
    greedy_plan,
    nodes_from_tree,
    plan,
)

HOUR = 3600.0
KWH_PER_A_HOUR = 0.23
"""1 A on one phase for one hour at 230 V."""
EXACT = PlannerConfig(mip_gap=0.0)


def _session(
    session_id: str,
    first: int,
    last: int,
    need_a_h: float,
    *,
    node: str = "site",
    min_a: float = 6.0,
    max_a: float = 9.0,
    phase: Phase = Phase.L1,
    phases: int = 1,
) -> PlanSession:
    """A session present in slots first..last (1-hour slots) needing ``need_a_h`` A x h per phase."""
    return PlanSession(
        session_id,
        node,
        arrival=first * HOUR,
        departure=(last + 1) * HOUR,
        energy_kwh=need_a_h * KWH_PER_A_HOUR * phases,
        min_current_a=min_a,
        max_current_a=max_a,
        phases=phases,  # type: ignore[arg-type]
        phase=phase,
    )


def _problem(sessions: Sequence[PlanSession], slots: int, **fields: Any) -> PlanProblem:
    nodes = fields.pop("nodes", [PlanNode("site", max_current_a=fields.pop("limit", None))])
    return PlanProblem(start=0.0, sessions=sessions, nodes=nodes, slots=slots, slot_s=HOUR, **fields)


def _currents(result: Plan) -> dict[str, tuple[float, ...]]:
    return {session_id: session.current_a for session_id, session in result.sessions.items()}


# ---------------------------------------------------------------------------------------------
# Optimality against brute force

TINY_PRICES = [0.30, 0.10, 0.20, 0.15]
TINY_PV_W = [0.0, 0.0, 6 * 230.0, 0.0]
TINY_LIMIT_A = 14.0


def _tiny() -> PlanProblem:
    """Two sessions on L1 under a 14 A board: s1 in slots 0-3 needs 20 A h, s2 in slots 1-3
    needs 3 A h (less than one slot at its 6 A minimum), PV covers 6 A in slot 2."""
    return _problem(
        [_session("s1", 0, 3, 20.0), _session("s2", 1, 3, 3.0)],
        4,
        limit=TINY_LIMIT_A,
        price=TINY_PRICES,
        pv_w=TINY_PV_W,
    )


def _brute_force(feed_in: float = 0.0) -> float:
    """The best objective over every plan with whole amps: each cell off or 6..9 A (the PV a car
    takes gives up ``feed_in`` EUR/kWh)."""
    levels = (0.0, 6.0, 7.0, 8.0, 9.0)
    combos = np.array(list(itertools.product(levels, repeat=7)))
    first = combos[:, 0:4]
    second = np.concatenate((np.zeros((len(combos), 1)), combos[:, 4:7]), axis=1)
    total = first + second
    feasible = (total <= TINY_LIMIT_A).all(axis=1)
    unmet = np.maximum(20.0 - first.sum(axis=1), 0.0) + np.maximum(3.0 - second.sum(axis=1), 0.0)
    pv_a = np.array(TINY_PV_W) / 230.0
    grid_kwh = np.maximum(total - pv_a, 0.0) * KWH_PER_A_HOUR
    pv_kwh = total * KWH_PER_A_HOUR - grid_kwh
    objective = grid_kwh @ np.array(TINY_PRICES) + feed_in * pv_kwh.sum(axis=1) + 1000.0 * unmet * KWH_PER_A_HOUR
    return float(objective[feasible].min())


def test_tiny_instance_reaches_every_need_at_the_brute_force_minimum() -> None:
    result = plan(_tiny(), EXACT)

    assert result.method is PlanMethod.OPTIMAL
    assert result.unmet_kwh == pytest.approx(0.0, abs=1e-9)
    assert result.objective == pytest.approx(_brute_force(), abs=1e-4)
    assert result.cost_eur == pytest.approx(result.objective, abs=1e-9)  # nothing unmet: objective = cost
    for session in result.sessions.values():
        assert session.energy_kwh >= session.need_kwh - 1e-9
    assert not check_plan(_tiny(), result)


@pytest.mark.parametrize("feed_in", [0.05, 0.12, 0.18])
def test_with_a_feed_in_the_tiny_instance_still_reaches_the_brute_force_minimum(feed_in: float) -> None:
    problem = replace(_tiny(), feed_in=feed_in)
    result = plan(problem, EXACT)

    assert result.method is PlanMethod.OPTIMAL
    assert result.unmet_kwh == pytest.approx(0.0, abs=1e-9)
    assert result.objective == pytest.approx(_brute_force(feed_in), abs=1e-4)
    assert result.objective == pytest.approx(result.cost_eur + feed_in * result.pv_used_kwh, abs=1e-9)
    assert not check_plan(problem, result)


def test_the_minimum_current_costs_something_the_lp_relaxation_ignores() -> None:
    milp = plan(_tiny(), EXACT)
    relaxed = plan(_tiny(), replace(EXACT, relax=True))

    assert relaxed.relaxed
    assert relaxed.objective < milp.objective - 0.05
    below_minimum = [a for session in relaxed.sessions.values() for a in session.current_a if 0 < a < 6.0 - 1e-6]
    assert below_minimum  # the relaxation plans what no charger can draw; the MILP never does
    assert all(a == 0 or a >= 6.0 - 1e-9 for currents in _currents(milp).values() for a in currents)


# ---------------------------------------------------------------------------------------------
# Unmet energy


def test_a_need_beyond_the_car_reports_the_exact_shortfall() -> None:
    # Two hours at 10 A single-phase = 4.6 kWh; the car wants 6 kWh.
    session = replace(_session("s", 0, 1, 0.0, max_a=10.0), energy_kwh=6.0)
    result = plan(_problem([session], 2, price=0.2))

    assert result.sessions["s"].unmet_kwh == pytest.approx(1.4, abs=1e-9)
    assert result.sessions["s"].reachable_kwh == pytest.approx(4.6)
    assert result.sessions["s"].current_a == (10.0, 10.0)
    assert result.unmet_kwh == pytest.approx(1.4, abs=1e-9)
    assert result.method is PlanMethod.OPTIMAL


def test_a_board_too_small_for_two_minimums_leaves_one_need_unmet() -> None:
    # 10 A for two cars needing 5 A h each in the same hour: 5 + 5 fits the board, but each
    # car needs 6 A to charge at all, so only one charges (at 6 A: the car stops when full).
    sessions = [_session("a", 0, 0, 5.0, max_a=10.0), _session("b", 0, 0, 5.0, max_a=10.0)]
    problem = _problem(sessions, 1, limit=10.0, price=0.2)

    result = plan(problem)
    relaxed = plan(problem, PlannerConfig(relax=True))

    assert result.unmet_kwh == pytest.approx(5 * KWH_PER_A_HOUR, abs=1e-9)
    assert sorted(session.unmet_kwh for session in result.sessions.values()) == pytest.approx([0.0, 1.15])
    assert all(session.reachable_kwh == pytest.approx(1.15) for session in result.sessions.values())
    assert relaxed.unmet_kwh == pytest.approx(0.0, abs=1e-9)
    assert not check_plan(problem, result)


def test_a_session_that_cannot_charge_gets_nothing_and_all_its_need_unmet() -> None:
    gone = _session("gone", 0, -1, 10.0)  # departs before the horizon's first slot ends
    weak = _session("weak", 0, 1, 10.0, min_a=6.0, max_a=9.0)
    done = _session("done", 0, 1, 0.0)
    problem = _problem([gone, weak, done], 2, nodes=[PlanNode("site", max_current_a=(5.0, 32.0, 32.0))])

    result = plan(problem)

    assert result.sessions["gone"].current_a == (0.0, 0.0)
    assert result.sessions["gone"].unmet_kwh == pytest.approx(10 * KWH_PER_A_HOUR)
    assert result.sessions["weak"].current_a == (0.0, 0.0)  # 5 A on its phase: below its minimum
    assert result.sessions["done"].unmet_kwh == 0.0
    assert result.method is PlanMethod.OPTIMAL


def test_no_session_is_an_empty_optimal_plan() -> None:
    result = plan(_problem([], 4))

    assert result.method is PlanMethod.OPTIMAL
    assert result.gap == 0.0
    assert dict(result.sessions) == {}
    assert result.objective == 0.0


# ---------------------------------------------------------------------------------------------
# What the chargers can do


def test_currents_are_off_or_between_minimum_and_maximum_and_limits_hold() -> None:
    for seed in range(4):
        problem = make_problem(14, seed, slots=24)
        for result in (plan(problem), greedy_plan(problem), greedy_plan(problem, order="now")):
            assert not check_plan(problem, result), (seed, result.method)
            by_id = {session.id: session for session in problem.sessions}
            for session_id, session_plan in result.sessions.items():
                session = by_id[session_id]
                for current in session_plan.current_a:
                    assert current == 0 or session.min_current_a - 1e-9 <= current <= session.max_current_a + 1e-9


def test_node_limits_hold_on_every_phase_and_in_power_in_every_slot() -> None:
    l1 = [14.0, 20.0, 8.0, 30.0]
    nodes = [
        PlanNode("site", max_current_a=[(a, 24.0, 12.0) for a in l1]),
        PlanNode("td", "site", max_power_w=[9000.0, 5000.0, 9000.0, 9000.0]),
    ]
    sessions = [
        _session("l1a", 0, 3, 60.0, max_a=16.0),
        _session("l1b", 0, 3, 60.0, max_a=16.0, node="td"),
        _session("l2", 0, 3, 60.0, max_a=16.0, phase=Phase.L2, node="td"),
        _session("tri", 0, 3, 60.0, max_a=16.0, phases=3, node="td"),
    ]
    problem = _problem(sessions, 4, nodes=nodes, price=0.2)

    result = plan(problem)

    current = _currents(result)
    for slot in range(4):
        on_l1 = current["l1a"][slot] + current["l1b"][slot] + current["tri"][slot]
        on_l2 = current["l2"][slot] + current["tri"][slot]
        on_l3 = current["tri"][slot]
        assert on_l1 <= l1[slot] + 1e-6
        assert on_l2 <= 24.0 + 1e-6
        assert on_l3 <= 12.0 + 1e-6
        td_w = 230.0 * (current["l1b"][slot] + current["l2"][slot] + 3 * current["tri"][slot])
        assert td_w <= nodes[1].max_power_w[slot] + 1e-3  # type: ignore[index]
    assert result.unmet_kwh > 0  # the needs exceed the limits: the limits did bind
    assert sum(current["l1a"]) + sum(current["l1b"]) + sum(current["tri"]) > 0


def test_zni_half_power_slots_cap_every_session_at_half_its_maximum() -> None:
    zni = [1.0, 0.5, 0.5, 1.0]
    sessions = [
        _session("big", 0, 3, 200.0, max_a=32.0, phases=3),
        _session("small", 0, 3, 200.0, max_a=10.0, phase=Phase.L2),  # half of 10 A is below 6 A
    ]
    result = plan(_problem(sessions, 4, zni=zni, price=0.2))

    current = _currents(result)
    assert current["big"] == pytest.approx((32.0, 16.0, 16.0, 32.0))
    assert current["small"] == pytest.approx((10.0, 0.0, 0.0, 10.0))
    assert result.sessions["big"].power_w[1] == pytest.approx(16.0 * 3 * 230.0)


def test_pv_energy_is_used_first_because_it_is_free() -> None:
    # 10 A three-phase for one hour = 6.9 kWh; the PV covers exactly that in slots 2 and 3.
    pv = [0.0, 0.0, 6900.0, 6900.0, 0.0, 0.0]
    session = _session("s", 0, 5, 20.0, max_a=32.0, phases=3)  # 13.8 kWh
    result = plan(_problem([session], 6, pv_w=pv, price=[0.05, 0.05, 0.30, 0.30, 0.05, 0.05]))

    assert result.sessions["s"].current_a == pytest.approx((0.0, 0.0, 10.0, 10.0, 0.0, 0.0))
    assert result.cost_eur == pytest.approx(0.0, abs=1e-9)
    assert result.grid_import_kwh == pytest.approx(0.0, abs=1e-9)
    assert result.pv_used_kwh == pytest.approx(13.8)


def test_the_cheapest_slots_are_chosen_and_equal_prices_charge_earlier() -> None:
    session = _session("s", 0, 5, 18.0, max_a=9.0)
    result = plan(_problem([session], 6, price=[0.3, 0.1, 0.3, 0.1, 0.2, 0.2]))

    assert result.sessions["s"].current_a == pytest.approx((0.0, 9.0, 0.0, 9.0, 0.0, 0.0))
    flat = plan(_problem([session], 6, price=0.2))
    assert flat.sessions["s"].current_a == pytest.approx((9.0, 9.0, 0.0, 0.0, 0.0, 0.0))


def test_import_objective_ignores_prices_and_minimises_grid_energy() -> None:
    pv = [0.0, 2300.0, 0.0, 0.0]
    session = _session("s", 0, 3, 10.0, max_a=10.0)  # 2.3 kWh = one slot of PV
    problem = _problem([session], 4, pv_w=pv, price=[0.01, 0.5, 0.01, 0.01])

    by_import = plan(problem, PlannerConfig(cost_weight=0.0, import_weight=1.0))

    assert by_import.sessions["s"].current_a == pytest.approx((0.0, 10.0, 0.0, 0.0))
    assert by_import.grid_import_kwh == pytest.approx(0.0, abs=1e-9)
    assert by_import.objective == pytest.approx(0.0, abs=1e-9)


def test_a_minimum_current_above_the_surplus_makes_cost_and_import_goals_differ() -> None:
    # 6 A is the least the car takes (1.38 kWh an hour); the sun covers 0.69 kWh of it at noon.
    session = _session("s", 0, 1, 6.0, min_a=6.0, max_a=6.0)
    problem = _problem([session], 2, pv_w=[690.0, 0.0], price=[0.25, 0.10])

    cheapest = plan(problem, EXACT)
    # Noon costs 0.69 kWh x 0.25 = 0.17 EUR, the off-peak hour 1.38 kWh x 0.10 = 0.14 EUR.
    assert cheapest.sessions["s"].current_a == pytest.approx((0.0, 6.0))
    assert cheapest.grid_import_kwh == pytest.approx(1.38)

    # The grid import goal (the cost only breaks ties) takes the sun and imports half as much.
    leanest = plan(problem, replace(EXACT, cost_weight=0.01, import_weight=1.0))
    assert leanest.sessions["s"].current_a == pytest.approx((6.0, 0.0))
    assert leanest.grid_import_kwh == pytest.approx(0.69)
    assert leanest.cost_eur > cheapest.cost_eur


def test_a_feed_in_tariff_above_the_off_peak_price_sends_the_sun_to_the_grid() -> None:
    # Noon: the sun covers the whole draw, the grid costs 0.25; the night's off-peak hour costs 0.10.
    session = _session("s", 0, 1, 9.0, max_a=9.0)  # 2.07 kWh: one slot
    problem = _problem([session], 2, pv_w=[2300.0, 0.0], price=[0.25, 0.10])

    # Selling the PV at 0.04 (the surplus contract for small sites): the car takes the sun.
    small = plan(replace(problem, feed_in=0.04), EXACT)
    assert small.sessions["s"].current_a == pytest.approx((9.0, 0.0))
    assert small.grid_import_kwh == pytest.approx(0.0, abs=1e-9)
    assert small.objective == pytest.approx(0.04 * 2.07)  # the feed-in the car gave up

    # Selling it at 0.13 (an older contract): the sun goes to the grid, the car charges off-peak.
    old = plan(replace(problem, feed_in=[0.13, 0.13]), EXACT)
    assert old.sessions["s"].current_a == pytest.approx((0.0, 9.0))
    assert old.cost_eur == pytest.approx(0.10 * 2.07)
    assert old.pv_used_kwh == pytest.approx(0.0, abs=1e-9)
    # Both ways agree with the brute force: each plan's objective is the least of the two.
    assert old.objective == pytest.approx(min(0.10, 0.13) * 2.07)


def test_with_a_feed_in_a_partly_sunny_slot_prices_the_sun_and_the_grid_apart() -> None:
    # 6 A minimum (1.38 kWh an hour); the sun covers 0.69 kWh at noon where the grid costs 0.25;
    # the evening costs 1.38 x 0.15 = 0.207. Noon costs 0.69 x (feed-in + 0.25): 0.1725 without
    # feed-in, 0.2001 at 0.04 (noon still wins), 0.2415 at 0.10 (the evening wins).
    session = _session("s", 0, 1, 6.0, min_a=6.0, max_a=6.0)
    problem = _problem([session], 2, pv_w=[690.0, 0.0], price=[0.25, 0.15])

    assert plan(problem, EXACT).sessions["s"].current_a == pytest.approx((6.0, 0.0))
    small = plan(replace(problem, feed_in=0.04), EXACT)
    assert small.sessions["s"].current_a == pytest.approx((6.0, 0.0))
    assert small.objective == pytest.approx(0.69 * 0.29)
    dearer = plan(replace(problem, feed_in=0.10), EXACT)
    assert dearer.sessions["s"].current_a == pytest.approx((0.0, 6.0))
    assert dearer.objective == pytest.approx(0.15 * 1.38)
    # The greedy plan weighs the slots the same way.
    for feed_in, expected in ((0.04, (6.0, 0.0)), (0.10, (0.0, 6.0))):
        greedy = plan(replace(problem, feed_in=feed_in), replace(EXACT, time_limit_s=1e-9))
        assert greedy.method is PlanMethod.GREEDY_EDF
        assert greedy.sessions["s"].current_a == pytest.approx(expected)


def test_negative_prices_are_free_energy_but_the_cost_is_reported_as_is() -> None:
    session = _session("s", 0, 2, 9.0, max_a=9.0)
    result = plan(_problem([session], 3, price=[0.2, -0.1, 0.2]))

    assert result.sessions["s"].current_a == pytest.approx((0.0, 9.0, 0.0))
    assert result.cost_eur == pytest.approx(-0.1 * 9 * KWH_PER_A_HOUR)


def test_a_session_present_for_part_of_a_slot_draws_for_that_part_only() -> None:
    session = replace(_session("s", 0, 1, 0.0, max_a=10.0), arrival=0.5 * HOUR, energy_kwh=3.45)
    result = plan(_problem([session], 2, price=0.2))

    # Half of slot 0 at 10 A (1.15 kWh) + slot 1 at 10 A (2.3 kWh).
    assert result.sessions["s"].current_a == pytest.approx((10.0, 10.0))
    assert result.sessions["s"].energy_kwh == pytest.approx(3.45)
    assert result.sessions["s"].unmet_kwh == pytest.approx(0.0, abs=1e-9)


def test_a_remainder_below_the_minimum_is_delivered_at_the_minimum() -> None:
    # 20 A h in slots of 9 A max: 9 + 9 + 2 -> the last 2 A h become 6 A (or shift), never 2 A.
    session = _session("s", 0, 3, 20.0)
    for result in (plan(_problem([session], 4, price=[0.1, 0.1, 0.2, 0.3])), greedy_plan(_problem([session], 4))):
        currents = result.sessions["s"].current_a
        assert all(a == 0 or a >= 6.0 - 1e-9 for a in currents)
        assert result.sessions["s"].unmet_kwh == pytest.approx(0.0, abs=1e-9)


# ---------------------------------------------------------------------------------------------
# Always a plan in time


def test_no_time_for_the_solver_falls_back_to_greedy_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    problem = make_problem(50, 1)

    result = plan(problem, PlannerConfig(time_limit_s=1e-3))

    assert result.method is PlanMethod.GREEDY_EDF
    assert result.gap is None
    assert "no time left" in result.detail
    assert "greedy_edf" in caplog.text
    assert not check_plan(problem, result)
    assert result.objective == pytest.approx(greedy_plan(problem).objective)


def test_a_tight_time_limit_on_a_big_site_still_returns_a_valid_plan_in_time() -> None:
    problem = make_problem(400, 3)  # about 1.5 s without a limit

    result = plan(problem, PlannerConfig(time_limit_s=0.3))

    assert result.total_s < 0.3 + 0.5
    assert result.method in {PlanMethod.GREEDY_EDF, PlanMethod.FEASIBLE_TIMEOUT, PlanMethod.OPTIMAL}
    assert not check_plan(problem, result)
    assert result.objective <= greedy_plan(problem).objective + 1e-6


def test_a_solver_stopped_by_a_limit_gives_its_best_feasible_plan() -> None:
    problem = make_problem(20, 2, slots=32)
    stopped = PlannerConfig(mip_gap=0.0, warm_start=False, solver_options={"mip_max_improving_sols": 1})

    result = plan(problem, stopped)

    assert result.method is PlanMethod.FEASIBLE_TIMEOUT
    assert result.gap is not None
    assert result.gap > 0
    assert "Solution limit reached" in result.detail
    assert result.incumbent == "none"
    assert not check_plan(problem, result)


def test_a_solver_without_solution_at_its_time_limit_falls_back_to_greedy(monkeypatch: pytest.MonkeyPatch) -> None:
    def timed_out(self: Any, seconds: float) -> tuple[bool, bool, float, float]:
        return False, False, math.inf, -math.inf

    monkeypatch.setattr(planner_module._Loaded, "run", timed_out)
    monkeypatch.setattr(planner_module._Loaded, "status", property(lambda self: "Time limit reached"))
    problem = make_problem(10, 0, slots=16)

    result = plan(problem)

    assert result.method is PlanMethod.GREEDY_EDF
    assert "Time limit reached" in result.detail
    assert result.objective == pytest.approx(greedy_plan(problem).objective)


def test_a_failing_solver_falls_back_to_greedy(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(model: Any) -> Any:
        raise RuntimeError("HiGHS is gone")

    monkeypatch.setattr(planner_module, "_load_pulp", broken)
    problem = make_problem(10, 0, slots=16)

    result = plan(problem)

    assert result.method is PlanMethod.GREEDY_EDF
    assert "HiGHS is gone" in result.detail
    assert "the solver failed" in caplog.text
    assert not check_plan(problem, result)


def test_a_solver_plan_that_breaks_a_limit_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    # A faulty solver answering "everything on at its maximum, nothing unmet": the planner
    # checks the plan and refuses it.
    def everything(self: Any) -> Any:
        lp = self.highs.getLp()
        values = np.where(np.asarray(lp.col_cost_) >= 100.0, 0.0, np.asarray(lp.col_upper_))
        return values[self.order]

    monkeypatch.setattr(planner_module._Loaded, "values", everything)
    problem = _problem([_session("a", 0, 1, 30.0), _session("b", 0, 1, 30.0)], 2, limit=10.0)

    result = plan(problem, PlannerConfig(warm_start=False))

    assert result.method is PlanMethod.GREEDY_EDF
    assert "solver plan rejected" in result.detail
    assert not check_plan(problem, result)


# ---------------------------------------------------------------------------------------------
# Warm start and re-planning


def test_the_planner_starts_from_its_last_plan_and_highs_accepts_it() -> None:
    problem = make_problem(20, 4, slots=32)
    # Stop HiGHS at its first improving solution: if it took our starting plan, that is it.
    first_only = PlannerConfig(mip_gap=0.0, solver_options={"mip_max_improving_sols": 1})
    planner = Planner(EXACT)
    first = planner.plan(problem)
    assert planner.last is first
    planner.config = first_only

    second = planner.plan(problem)

    assert second.incumbent == "last_plan"
    assert second.objective == pytest.approx(first.objective, abs=1e-3)
    cold = plan(problem, replace(first_only, warm_start=False))
    assert cold.objective > second.objective + 1.0  # HiGHS's own first plan is worse
    planner.reset()
    assert planner.last is None


def _one_slot_later(problem: PlanProblem, done: Plan) -> PlanProblem:
    """The same site one slot later: forecasts shifted, needs reduced by what slot 0 delivered."""
    assert isinstance(problem.start, float)

    def rest(values: Any) -> Any:
        return list(values)[1:] if isinstance(values, list) else values

    slot_h = problem.slot_s / 3600.0
    return replace(
        problem,
        start=problem.start + problem.slot_s,
        slots=problem.slots - 1,
        price=rest(problem.price),
        pv_w=rest(problem.pv_w),
        zni=rest(problem.zni),
        nodes=[replace(node, max_current_a=rest(node.max_current_a)) for node in problem.nodes],
        sessions=[
            replace(s, energy_kwh=max(s.energy_kwh - done.sessions[s.id].power_w[0] * slot_h / 1000.0, 0.0))
            for s in problem.sessions
        ],
    )


def test_replanning_a_slot_later_reuses_the_shifted_plan() -> None:
    problem = make_problem(20, 4, slots=32)
    planner = Planner()
    first = planner.plan(problem)
    later = _one_slot_later(problem, first)

    second = planner.plan(later)

    assert second.method is PlanMethod.OPTIMAL
    assert second.incumbent in {"last_plan", "lp_rounding", "lp_neighbourhood"}
    assert not check_plan(later, second)
    assert second.slot_start(0) == first.slot_start(1)
    assert second.objective <= greedy_plan(later).objective


# ---------------------------------------------------------------------------------------------
# Formulation options give the same answers


def test_pulp_and_highspy_backends_agree() -> None:
    problem = make_problem(12, 5, slots=24)

    via_pulp = plan(problem, EXACT)
    via_highspy = plan(problem, replace(EXACT, backend=Backend.HIGHSPY))

    assert via_pulp.method is via_highspy.method is PlanMethod.OPTIMAL
    assert via_highspy.objective == pytest.approx(via_pulp.objective, rel=1e-6)


def test_identical_sessions_are_ordered_and_lose_nothing() -> None:
    twins = [_session(f"t{i}", 0, 5, 20.0, max_a=16.0) for i in range(4)]
    problem = _problem(twins, 6, limit=24.0, price=[0.3, 0.1, 0.2, 0.1, 0.3, 0.2])

    ordered = plan(problem, EXACT)
    plain = plan(problem, replace(EXACT, symmetry_breaking=False))

    assert ordered.objective == pytest.approx(plain.objective, abs=1e-6)
    assert ordered.rows == plain.rows + 3  # one ordering row per pair of twins
    mean_slot = [
        sum(t * a for t, a in enumerate(ordered.sessions[f"t{i}"].current_a)) / sum(ordered.sessions[f"t{i}"].current_a)
        for i in range(4)
    ]
    assert mean_slot == sorted(mean_slot)


def test_independent_boards_are_solved_separately(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(planner_module, "_PART_MIN_COLUMNS", 1)
    nodes = [PlanNode("site"), PlanNode("a", "site", max_current_a=20.0), PlanNode("b", "site", max_current_a=20.0)]
    sessions = [_session(f"{board}{i}", 0, 5, 30.0, node=board, max_a=16.0) for board in "ab" for i in range(3)]
    problem = _problem(sessions, 6, nodes=nodes, price=[0.3, 0.1, 0.2, 0.1, 0.3, 0.2])

    split = plan(problem, EXACT)
    whole = plan(problem, replace(EXACT, decompose=False))

    assert split.components == 2
    assert whole.components == 1
    assert split.method is whole.method is PlanMethod.OPTIMAL
    assert split.objective == pytest.approx(whole.objective, abs=1e-6)
    assert not check_plan(problem, split)


def test_small_independent_parts_are_solved_together() -> None:
    nodes = [PlanNode("site"), PlanNode("a", "site", max_current_a=20.0), PlanNode("b", "site", max_current_a=20.0)]
    sessions = [_session(f"{board}{i}", 0, 5, 30.0, node=board, max_a=16.0) for board in "ab" for i in range(3)]

    result = plan(_problem(sessions, 6, nodes=nodes, price=0.2))

    assert result.components == 1


# ---------------------------------------------------------------------------------------------
# Inputs and outputs


def test_plan_outputs_targets_power_and_slot_times() -> None:
    result = plan(_tiny(), EXACT)

    assert result.targets == {"s1": result.sessions["s1"].current_a[0], "s2": result.sessions["s2"].current_a[0]}
    assert result.sessions["s2"].target_a == 0.0  # not there yet in slot 0
    assert result.sessions["s1"].power_w == tuple(230.0 * a for a in result.sessions["s1"].current_a)
    assert result.slot_start(2) == 2 * HOUR
    assert result.slots == 4
    assert result.binaries > 0
    assert result.variables > result.binaries
    assert result.total_s >= result.solve_s


def test_a_tariff_function_prices_each_slot_from_its_start_time() -> None:
    def off_peak(start: float) -> float:
        return 0.1 if start >= 2 * HOUR else 0.3

    result = plan(_problem([_session("s", 0, 3, 18.0)], 4, price=off_peak))

    assert result.sessions["s"].current_a == pytest.approx((0.0, 0.0, 9.0, 9.0))
    assert result.cost_eur == pytest.approx(0.1 * 18 * KWH_PER_A_HOUR)


def test_nodes_from_the_site_tree_carry_its_limits() -> None:
    tree = SiteTree.build(
        [
            Node("tgbt", kind=NodeKind.MAIN_BOARD, max_current_a=40.0, max_power_w=20_000.0),
            Node("td1", "tgbt", max_current_a=(16.0, 20.0, 25.0)),
        ],
        [Charger("c1", "td1")],
    )

    nodes = {node.id: node for node in nodes_from_tree(tree)}

    assert nodes["tgbt"] == PlanNode("tgbt", None, (40.0, 40.0, 40.0), 20_000.0)
    assert nodes["td1"] == PlanNode("td1", "tgbt", (16.0, 20.0, 25.0), None)
    result = plan(
        PlanProblem(
            0.0, [_session("s", 0, 1, 50.0, node="td1", max_a=32.0)], list(nodes.values()), slots=2, slot_s=HOUR
        )
    )
    assert result.sessions["s"].current_a == (16.0, 16.0)


def test_times_may_be_timezone_aware_datetimes() -> None:
    start = datetime(2026, 3, 1, 18, tzinfo=UTC)
    session = PlanSession("s", "site", start, start + timedelta(hours=2), 2.3, max_current_a=10.0, phases=1)
    result = plan(PlanProblem(start, [session], [PlanNode("site")], slots=2, slot_s=HOUR, price=0.2))

    assert result.start == start.timestamp()
    assert sum(result.sessions["s"].current_a) == pytest.approx(10.0)
    with pytest.raises(EmsError, match="timezone"):
        plan(
            replace(PlanProblem(start, [session], [PlanNode("site")], slots=2, slot_s=HOUR), start=datetime(2026, 3, 1))
        )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"slots": 0}, "slots must be >= 1"),
        ({"slot_s": 0.0}, "slot_s must be > 0"),
        ({"voltage_v": -1.0}, "voltage_v must be > 0"),
        ({"price": [0.1, 0.2]}, "price needs one value per slot"),
        ({"price": math.nan}, "price must be finite"),
        ({"pv_w": -1.0}, "pv_w must be >= 0"),
        ({"feed_in": -0.1}, "feed_in must be >= 0"),
        ({"feed_in": [0.1]}, "feed_in needs one value per slot"),
        ({"zni": 0.0}, "zni factors"),
        ({"nodes": [PlanNode("site"), PlanNode("site")]}, "duplicate node id"),
        ({"nodes": [PlanNode("")]}, "non-empty id"),
        ({"nodes": [PlanNode("a"), PlanNode("b")]}, "exactly one root"),
        ({"nodes": [PlanNode("site"), PlanNode("x", "nowhere")]}, "unknown ancestor"),
        ({"nodes": [PlanNode("site"), PlanNode("x", "y"), PlanNode("y", "x")]}, "cycle"),
        ({"nodes": [PlanNode("site", max_current_a=[1.0, 2.0])]}, "one value per slot"),
        ({"nodes": [PlanNode("site", max_current_a=[(1.0, 2.0)] * 4)]}, "one value per phase"),  # type: ignore[list-item]
        ({"nodes": [PlanNode("site", max_current_a=-1.0)]}, "max_current_a must be >= 0"),
        ({"nodes": [PlanNode("site", max_power_w=-1.0)]}, "max_power_w must be >= 0"),
        ({"sessions": [_session("s", 0, 1, 1.0), _session("s", 0, 1, 1.0)]}, "unique"),
        ({"sessions": [_session("s", 0, 1, 1.0, node="elsewhere")]}, "unknown node"),
        ({"sessions": [replace(_session("s", 0, 1, 1.0), energy_kwh=math.inf)]}, "finite"),
        ({"sessions": [replace(_session("s", 0, 1, 1.0), energy_kwh=-1.0)]}, "energy_kwh must be >= 0"),
        ({"sessions": [_session("s", 0, 1, 1.0, min_a=10.0, max_a=6.0)]}, "min_current_a <= max_current_a"),
        ({"sessions": [replace(_session("s", 0, 1, 1.0), phases=2)]}, "phases must be 1 or 3"),  # type: ignore[arg-type]
    ],
)
def test_invalid_problems_are_refused(change: dict[str, Any], message: str) -> None:
    problem = replace(_problem([_session("ok", 0, 1, 1.0)], 4), **change)

    with pytest.raises(PlanError, match=message):
        plan(problem)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"time_limit_s": 0.0}, "time_limit_s"),
        ({"mip_gap": 1.0}, "mip_gap"),
        ({"cost_weight": -1.0}, "cost_weight"),
        ({"import_weight": math.inf}, "import_weight"),
        ({"unmet_penalty": 0.0}, "unmet_penalty"),
    ],
)
def test_invalid_configs_are_refused(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(PlanError, match=message):
        PlannerConfig(**fields)


def test_check_plan_names_every_broken_rule() -> None:
    problem = _problem([_session("a", 0, 1, 10.0), _session("b", 0, 1, 10.0)], 2, limit=12.0)
    result = plan(problem)
    broken = replace(
        result,
        sessions={
            "a": replace(result.sessions["a"], current_a=(3.0, 9.0)),
            "b": replace(result.sessions["b"], current_a=(12.0, 9.0)),
        },
    )
    power_problem = replace(problem, nodes=[PlanNode("site", max_power_w=3000.0)])

    problems = check_plan(problem, broken)

    assert any("a slot 0" in p and "below the minimum" in p for p in problems)
    assert any("b slot 0" in p and "above" in p for p in problems)
    assert any("node site L1 slot 1" in p for p in problems)
    assert any("node site slot 1" in p and "W over" in p for p in check_plan(power_problem, broken))
    assert not check_plan(problem, result)


def test_greedy_charge_now_charges_in_arrival_order_as_soon_as_possible() -> None:
    sessions = [_session("early", 0, 3, 18.0), _session("late", 1, 3, 18.0)]
    problem = _problem(sessions, 4, limit=12.0, price=[0.3, 0.3, 0.1, 0.1])

    now = greedy_plan(problem, order="now")
    edf = greedy_plan(problem)

    assert now.method is PlanMethod.GREEDY_EDF
    assert now.detail == "now"
    assert now.sessions["early"].current_a == pytest.approx((9.0, 9.0, 0.0, 0.0))
    assert edf.cost_eur < now.cost_eur
    assert not check_plan(problem, now)
    assert not check_plan(problem, edf)


class _FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_loading_the_model_past_the_deadline_falls_back_to_greedy(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _FakeClock()
    load = planner_module._load_pulp

    def slow_load(model: Any) -> Any:
        clock.now += 10.0
        return load(model)

    monkeypatch.setattr(planner_module, "_load_pulp", slow_load)
    problem = make_problem(10, 0, slots=16)

    result = plan(problem, clock=clock)

    assert result.method is PlanMethod.GREEDY_EDF
    assert "no time left once the model was loaded" in result.detail
    assert result.total_s == 10.0


def test_no_time_for_the_mip_keeps_the_best_rounded_lp_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _FakeClock()
    fit = planner_module._fit_ones

    def late_fit(*args: Any) -> Any:
        clock.now += 10.0  # rounding the LP took all the time left
        return fit(*args)

    monkeypatch.setattr(planner_module, "_fit_ones", late_fit)

    result = plan(_tiny(), EXACT, clock=clock)

    assert "no time left for the MIP" in result.detail
    assert result.method in {PlanMethod.FEASIBLE_TIMEOUT, PlanMethod.GREEDY_EDF}
    assert not check_plan(_tiny(), result)
    assert result.objective >= _brute_force() - 1e-4


def test_the_interrupt_callback_stops_highs_at_the_deadline() -> None:
    clock = _FakeClock()
    interrupted: list[bool] = []

    class Event:
        def interrupt(self) -> None:
            interrupted.append(True)

    callback = planner_module._interrupter(5.0, clock)
    callback(Event())
    assert not interrupted
    clock.now = 5.0
    callback(Event())
    assert interrupted == [True]
