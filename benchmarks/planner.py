"""Time and score the charging planner (custom_components/cariflex/ems/planner.py) on random days.

Each seed draws one site and one day (96 quarter-hours from 07:00):

* **Site**: a main board (TGBT) with a current limit per phase that moves with the building's
  load, sub-boards (TD, 10-20 chargers each) with their own breaker, a subscribed power at the
  root. Chargers are three-phase 6-32 A (cars limited to 16 or 32 A) or single-phase on a random
  phase.
* **Sessions**: commuters (arrive 07:00-10:00, leave 16:00-19:00), visitors (1-3 h), residents
  (arrive 17:00-21:00, stay past the horizon); about one in eight is already plugged in at 07:00.
  Needs of 4-60 kWh, a few more than the car can take in its stay.
* **Prices**: a day-ahead-like curve (cheap night, morning and evening peaks) with noise per
  quarter-hour; **PV**: a bell curve around 13:00 with clouds; **ZNI**: on one seed in two, the
  EDF-SEI signal is 0 (half power) from 18:00 to 21:00.

For every seed and size it runs the MILP (minimum current, on/off binaries), the LP relaxation
(minimum current ignored, for comparison), the greedy "charge now" plan and the greedy
earliest-deadline plan, and prints model build and solve times (p50/p95/max), the MIP gap, the
cost against both greedy plans, the unmet energy and how often the planner fell back.

    python -m benchmarks.planner
    python -m benchmarks.planner --seeds 20 --sizes 50,400
    python -m benchmarks.planner --sizes 50 --seeds 3 --backend highspy --json

Numbers, not pass/fail: tests/test_planner_bench.py only checks that this runs.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
import json
import math
import random
import statistics
import sys
import time
from typing import Any, Literal

from custom_components.cariflex.ems.planner import (
    Backend,
    Plan,
    PlanMethod,
    PlannerConfig,
    PlanNode,
    PlanProblem,
    PlanSession,
    greedy_plan,
    plan,
)
from custom_components.cariflex.ems.tree import Phase

SLOT_S = 900.0
START_S = 7 * 3600.0
"""The horizon starts at 07:00 (seconds since midnight)."""
VOLTAGE_V = 230.0


def make_problem(sessions: int, seed: int, *, slots: int = 96, loose_root: bool = False) -> PlanProblem:
    """A random site and day with ``sessions`` charging sessions (deterministic per seed).

    ``loose_root``: no limit at the main board and no PV, so that the sub-boards are independent
    (the planner then solves them one by one).
    """
    rng = random.Random(f"{sessions}:{seed}")
    hours = [(START_S + (t + 0.5) * SLOT_S) / 3600.0 for t in range(slots)]
    boards = max(1, math.ceil(sessions / rng.choice((10, 20))))
    nodes: list[PlanNode] = []
    building = [8.0 + 12.0 * math.exp(-(((h % 24) - 12.5) ** 2) / 18.0) + rng.uniform(0, 4) for h in hours]
    site_a = 0.12 * sessions * 32.0 + 30.0
    if loose_root:
        nodes.append(PlanNode("tgbt"))
    else:
        nodes.append(
            PlanNode(
                "tgbt",
                max_current_a=[max(site_a - load, 0.0) for load in building],
                max_power_w=0.75 * site_a * 3 * VOLTAGE_V,
            )
        )
    per_board = math.ceil(sessions / boards)
    for board in range(boards):
        nodes.append(PlanNode(f"td{board}", "tgbt", max_current_a=0.35 * per_board * 32.0 + 16.0))
    horizon_end = START_S + slots * SLOT_S
    plan_sessions: list[PlanSession] = []
    for index in range(sessions):
        kind = rng.choices(("commuter", "visitor", "resident"), weights=(5, 2, 3))[0]
        if kind == "commuter":
            arrival = rng.uniform(7.0, 10.0) * 3600
            departure = rng.uniform(16.0, 19.0) * 3600
        elif kind == "visitor":
            arrival = rng.uniform(8.0, 20.0) * 3600
            departure = arrival + rng.uniform(1.0, 3.0) * 3600
        else:
            arrival = rng.uniform(17.0, 21.0) * 3600
            departure = horizon_end + 3600
        if rng.random() < 0.125:
            arrival = START_S - 3600
        three_phase = rng.random() < 0.8
        plan_sessions.append(
            PlanSession(
                id=f"s{index}",
                node=f"td{index % boards}",
                arrival=arrival,
                departure=min(departure, horizon_end),
                energy_kwh=round(rng.uniform(4.0, 60.0 if three_phase else 25.0), 1),
                max_current_a=rng.choice((16.0, 32.0)) if three_phase else 32.0,
                phases=3 if three_phase else 1,
                phase=rng.choice(list(Phase)),
            )
        )
    price = []
    for h in hours:
        hour = h % 24
        value = 0.11 + 0.10 * math.exp(-((hour - 8.0) ** 2) / 2.0) + 0.16 * math.exp(-((hour - 19.5) ** 2) / 3.0)
        value += 0.05 if 6 <= hour < 22 else 0.0
        price.append(round(value + rng.uniform(-0.01, 0.01), 4))
    pv_peak_w = sessions * 1500.0 * rng.uniform(0.5, 1.0)
    pv = []
    cloud = 1.0
    for h in hours:
        cloud = min(1.0, max(0.2, cloud + rng.uniform(-0.15, 0.15)))
        pv.append(max(0.0, pv_peak_w * math.exp(-(((h % 24) - 13.0) ** 2) / 8.0) * cloud))
    zni_evening = seed % 2 == 1
    zni = [0.5 if zni_evening and 18.0 <= (h % 24) < 21.0 else 1.0 for h in hours]
    return PlanProblem(
        start=START_S,
        sessions=plan_sessions,
        nodes=nodes,
        price=price,
        pv_w=0.0 if loose_root else pv,
        zni=zni,
        slots=slots,
        slot_s=SLOT_S,
        voltage_v=VOLTAGE_V,
    )


@dataclass(slots=True)
class Run:
    """One plan's figures."""

    method: str
    build_s: float
    solve_s: float
    total_s: float
    gap: float | None
    cost_eur: float
    objective: float
    unmet_kwh: float
    grid_kwh: float
    variables: int
    binaries: int
    rows: int
    components: int

    @classmethod
    def of(cls, result: Plan) -> Run:
        return cls(
            method=str(result.method),
            build_s=result.build_s,
            solve_s=result.solve_s,
            total_s=result.total_s,
            gap=result.gap,
            cost_eur=result.cost_eur,
            objective=result.objective,
            unmet_kwh=result.unmet_kwh,
            grid_kwh=result.grid_import_kwh,
            variables=result.variables,
            binaries=result.binaries,
            rows=result.rows,
            components=result.components,
        )


@dataclass(slots=True)
class SizeReport:
    """Every seed of one size."""

    sessions: int
    slots: int
    need_kwh: list[float] = field(default_factory=list)
    unreachable_kwh: list[float] = field(default_factory=list)
    milp: list[Run] = field(default_factory=list)
    lp: list[Run] = field(default_factory=list)
    now: list[Run] = field(default_factory=list)
    edf: list[Run] = field(default_factory=list)


def run_size(
    sessions: int,
    seeds: Sequence[int],
    config: PlannerConfig,
    *,
    slots: int = 96,
    lp: bool = True,
    loose_root: bool = False,
) -> SizeReport:
    """Plan ``sessions`` sessions for every seed with the MILP, the LP relaxation and both greedy plans."""
    report = SizeReport(sessions, slots)
    for seed in seeds:
        problem = make_problem(sessions, seed, slots=slots, loose_root=loose_root)
        report.need_kwh.append(sum(session.energy_kwh for session in problem.sessions))
        began = time.perf_counter()
        result = plan(problem, config)
        if result.total_s > config.time_limit_s + 0.5:  # pragma: no cover (a figure, not a test)
            print(f"  seed {seed}: {result.total_s:.2f} s, beyond the time limit", file=sys.stderr)
        report.milp.append(Run.of(result))
        report.unreachable_kwh.append(sum(s.need_kwh - s.reachable_kwh for s in result.sessions.values()))
        report.milp[-1].total_s = time.perf_counter() - began
        if lp:
            report.lp.append(Run.of(plan(problem, replace(config, relax=True))))
        report.now.append(Run.of(greedy_plan(problem, config, order="now")))
        report.edf.append(Run.of(greedy_plan(problem, config, order="edf")))
    return report


def percentile(values: Sequence[float], share: float) -> float:
    """The ``share`` percentile (0..1) of ``values``, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))]


def spread(values: Sequence[float]) -> dict[str, float]:
    """p50, p95 and max."""
    return {"p50": percentile(values, 0.5), "p95": percentile(values, 0.95), "max": max(values)}


def summary(report: SizeReport) -> dict[str, Any]:
    """The figures of one size as a dict (what --json prints)."""
    milp, lp, now, edf = report.milp, report.lp, report.now, report.edf
    methods = {method.value: sum(run.method == method for run in milp) for method in PlanMethod}
    gaps = [run.gap for run in milp if run.gap is not None]
    data: dict[str, Any] = {
        "sessions": report.sessions,
        "slots": report.slots,
        "seeds": len(milp),
        "need_kwh_mean": statistics.fmean(report.need_kwh),
        "unreachable_kwh_mean": statistics.fmean(report.unreachable_kwh),
        "model": {
            "variables_mean": statistics.fmean(run.variables for run in milp),
            "binaries_mean": statistics.fmean(run.binaries for run in milp),
            "rows_mean": statistics.fmean(run.rows for run in milp),
            "components_mean": statistics.fmean(run.components for run in milp),
        },
        "milp": {
            "build_s": spread([run.build_s for run in milp]),
            "solve_s": spread([run.solve_s for run in milp]),
            "total_s": spread([run.total_s for run in milp]),
            "gap": spread(gaps) if gaps else None,
            "methods": methods,
            "fallback": methods[PlanMethod.GREEDY_EDF.value],
            "cost_eur_mean": statistics.fmean(run.cost_eur for run in milp),
            "unmet_kwh_mean": statistics.fmean(run.unmet_kwh for run in milp),
            "grid_kwh_mean": statistics.fmean(run.grid_kwh for run in milp),
        },
        "greedy_now": _baseline(now, milp),
        "greedy_edf": _baseline(edf, milp),
    }
    if lp:
        data["lp"] = {
            "total_s": spread([run.total_s for run in lp]),
            "cost_eur_mean": statistics.fmean(run.cost_eur for run in lp),
            "unmet_kwh_mean": statistics.fmean(run.unmet_kwh for run in lp),
            "milp_vs_lp_objective": _ratio(milp, lp),
        }
    return data


def _baseline(runs: list[Run], milp: list[Run]) -> dict[str, Any]:
    return {
        "total_s": spread([run.total_s for run in runs]),
        "cost_eur_mean": statistics.fmean(run.cost_eur for run in runs),
        "unmet_kwh_mean": statistics.fmean(run.unmet_kwh for run in runs),
        "milp_cost_saving": 1.0 - _cost_ratio(milp, runs),
        "milp_vs_objective": _ratio(milp, runs),
    }


def _cost_ratio(milp: list[Run], other: list[Run]) -> float:
    total = sum(run.cost_eur for run in other)
    return sum(run.cost_eur for run in milp) / total if total else 1.0


def _ratio(milp: list[Run], other: list[Run]) -> float:
    """Mean of MILP objective / other objective over the seeds (objective = cost + unmet penalty)."""
    return statistics.fmean(a.objective / b.objective if b.objective else 1.0 for a, b in zip(milp, other, strict=True))


def _line(name: str, values: dict[str, float], unit: Literal["s", ""] = "s") -> str:
    return f"    {name:<10} p50 {values['p50']:.3f}{unit}  p95 {values['p95']:.3f}{unit}  max {values['max']:.3f}{unit}"


def render(data: dict[str, Any]) -> str:
    """A short human-readable report of one size."""
    milp = data["milp"]
    model = data["model"]
    lines = [
        f"{data['sessions']} EVs x {data['slots']} slots, {data['seeds']} seeds, mean need {data['need_kwh_mean']:.0f} kWh"
        f" ({data['unreachable_kwh_mean']:.1f} kWh beyond what the cars can take in their stay)",
        f"  model: {model['variables_mean']:.0f} columns ({model['binaries_mean']:.0f} binaries), "
        f"{model['rows_mean']:.0f} rows, {model['components_mean']:.1f} independent parts",
        "  MILP (minimum current):",
        _line("build", milp["build_s"]),
        _line("solve", milp["solve_s"]),
        _line("total", milp["total_s"]),
    ]
    if milp["gap"] is not None:
        lines.append(_line("gap", milp["gap"], ""))
    lines.append(
        f"    methods {milp['methods']}; cost {milp['cost_eur_mean']:.2f} EUR, unmet {milp['unmet_kwh_mean']:.2f} kWh,"
        f" grid {milp['grid_kwh_mean']:.0f} kWh (means)"
    )
    if "lp" in data:
        lp = data["lp"]
        lines.append(
            f"  LP relaxation: total p50 {lp['total_s']['p50']:.3f}s p95 {lp['total_s']['p95']:.3f}s,"
            f" cost {lp['cost_eur_mean']:.2f} EUR, unmet {lp['unmet_kwh_mean']:.2f} kWh;"
            f" MILP/LP objective {lp['milp_vs_lp_objective']:.4f}"
        )
    for key, name in (("greedy_now", "greedy charge-now"), ("greedy_edf", "greedy earliest-deadline")):
        base = data[key]
        lines.append(
            f"  {name}: cost {base['cost_eur_mean']:.2f} EUR, unmet {base['unmet_kwh_mean']:.2f} kWh,"
            f" time p95 {base['total_s']['p95']:.3f}s; MILP saves {100 * base['milp_cost_saving']:.1f} % of its cost,"
            f" MILP/greedy objective {base['milp_vs_objective']:.3f}"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=20, help="seeds per size (default 20)")
    parser.add_argument("--sizes", default="50,400", help="comma-separated session counts (default 50,400)")
    parser.add_argument("--slots", type=int, default=96, help="slots of 15 min (default 96)")
    parser.add_argument("--time-limit", type=float, default=5.0, help="planner time limit in s (default 5)")
    parser.add_argument("--backend", choices=[b.value for b in Backend], default=Backend.PULP.value)
    parser.add_argument("--no-lp", action="store_true", help="skip the LP relaxation")
    parser.add_argument("--no-symmetry", action="store_true", help="no symmetry-breaking rows")
    parser.add_argument("--no-decompose", action="store_true", help="one model for the whole site")
    parser.add_argument(
        "--no-warm-start", action="store_true", help="plain MILP: no LP-based plans, no starting plan for HiGHS"
    )
    parser.add_argument("--loose-root", action="store_true", help="no main-board limit, no PV: independent boards")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the figures."""
    args = parse_args(argv)
    config = PlannerConfig(
        time_limit_s=args.time_limit,
        backend=Backend(args.backend),
        symmetry_breaking=not args.no_symmetry,
        decompose=not args.no_decompose,
        warm_start=not args.no_warm_start,
    )
    sizes = [int(size) for size in args.sizes.split(",") if size]
    results = []
    for size in sizes:
        report = run_size(
            size, range(args.seeds), config, slots=args.slots, lp=not args.no_lp, loose_root=args.loose_root
        )
        data = summary(report)
        results.append(data)
        if not args.json:
            print(render(data), flush=True)
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
