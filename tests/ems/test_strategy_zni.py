"""ZNI grid signal (custom_components/cariflex/ems/zni.py): caps, delayed sessions, safe default, evidence."""

from __future__ import annotations

import json

import pytest

from custom_components.cariflex.ems.allocator import Session
from custom_components.cariflex.ems.pv import ChargeMode
from custom_components.cariflex.ems.regulator import Regulator
from custom_components.cariflex.ems.strategy import SessionSettings, SiteInputs, StrategyConfig, StrategyEngine
from custom_components.cariflex.ems.tree import Charger, EmsError, Node, Phase, SiteTree
from custom_components.cariflex.ems.zni import EvidenceEntry, ZniCandidate, ZniConfig, ZniGuard, ZniSource

V = 230.0


def _tree() -> SiteTree:
    return SiteTree.build(
        [Node("site", max_current_a=200.0, measured_load=(0.0, 0.0, 0.0), measured_at=0.0)],
        [
            Charger("c22", "site", max_current_a=32.0),  # 22 kW
            Charger("c11", "site", max_current_a=16.0),  # 11 kW
            Charger("c7", "site", max_current_a=32.0, phases=1, phase=Phase.L3),  # 7.4 kW
        ],
    )


SESSIONS = [Session("a", "c22", arrival=0.0), Session("b", "c11", arrival=1.0), Session("c", "c7", arrival=2.0)]


def _engine(**zni: object) -> StrategyEngine:
    return StrategyEngine(StrategyConfig(zni=ZniConfig(enabled=True, **zni)))  # type: ignore[arg-type]


def test_signal_0_caps_every_charger_at_half_its_nominal_power() -> None:
    engine = _engine()
    tree = _tree()
    one = engine.cycle(0.0, tree, SESSIONS, SiteInputs(zni_signal=1))
    assert not one.zni_cap_active
    assert {key: t.max_a for key, t in one.targets.items()} == {"a": 32.0, "b": 16.0, "c": 32.0}

    zero = engine.cycle(600.0, tree, SESSIONS, SiteInputs(zni_signal=0))
    assert zero.zni_cap_active
    assert {key: (t.max_a, t.reason, t.zni_cap_w) for key, t in zero.targets.items()} == {
        "a": (16.0, "zni_cap", 11_040.0),
        "b": (8.0, "zni_cap", 5_520.0),
        "c": (16.0, "zni_cap", 3_680.0),
    }
    # Through the regulator, every charger stays within its cap.
    result = Regulator().cycle(tree, zero.apply(SESSIONS), 600.0)
    for session in SESSIONS:
        charger = tree.charger(session.charger_id)
        assert result.setpoint(session.id) * V * charger.phases <= zero.targets[session.id].zni_cap_w + 1e-6  # type: ignore[operator]


def test_the_cap_applies_in_every_mode_and_over_the_planner_and_the_surplus() -> None:
    engine = _engine()
    settings = {
        "a": SessionSettings(mode=ChargeMode.PV),
        "b": SessionSettings(mode=ChargeMode.MIN_PV, planner_target_w=11_000.0),
        "c": SessionSettings(mode=ChargeMode.NOW, guaranteed_min_a=32.0),
    }
    result = None
    for t in range(0, 120, 10):
        result = engine.cycle(float(t), _tree(), SESSIONS, SiteInputs(grid_power_w=-40_000.0, zni_signal=0), settings)
    assert result is not None
    assert {key: (t.max_a, t.reason) for key, t in result.targets.items()} == {
        "a": (16.0, "zni_cap"),
        "b": (8.0, "zni_cap"),
        "c": (16.0, "zni_cap"),
    }
    assert result.targets["c"].min_a == 16.0  # the badge floor, cut to the cap


def test_fraction_nominal_power_and_a_cap_below_the_minimum() -> None:
    engine = _engine(fraction=0.25)
    settings = {"a": SessionSettings(nominal_power_w=18_000.0)}
    result = engine.cycle(0.0, _tree(), SESSIONS, SiteInputs(zni_signal=0), settings)
    assert result.targets["a"].zni_cap_w == 4_500.0
    assert result.targets["a"].max_a == pytest.approx(4500 / 690, abs=1e-3)
    # 11.04 kW / 4 = 2.76 kW: 4 A per phase, below the 6 A minimum: the allocator pauses it.
    assert result.targets["b"].max_a == 4.0
    allocation = Regulator().cycle(_tree(), result.apply(SESSIONS), 0.0)
    assert allocation.setpoint("b") == 0
    assert allocation.setpoints["b"].reason == "zni_cap"


def test_a_switchable_charger_goes_to_one_phase_when_the_cap_leaves_room_only_there() -> None:
    engine = _engine(fraction=0.25)
    settings = {"b": SessionSettings(phase_switching=True)}
    result = engine.cycle(0.0, _tree(), SESSIONS, SiteInputs(zni_signal=0), settings)
    target = result.targets["b"]
    assert (target.phases, target.max_a, target.reason) == (1, 12.0, "zni_cap")
    back = engine.cycle(900.0, _tree(), SESSIONS, SiteInputs(zni_signal=1), settings)
    assert (back.targets["b"].phases, back.targets["b"].max_a) == (3, 16.0)


def test_unavailable_signal_uses_the_safe_default() -> None:
    result = _engine().cycle(0.0, _tree(), SESSIONS, SiteInputs(zni_signal=None))
    assert result.zni.source is ZniSource.DEFAULT
    assert result.zni.applied == 0
    assert result.targets["a"].reason == "zni_cap"
    lenient = _engine(safe_default=1).cycle(0.0, _tree(), SESSIONS, SiteInputs(zni_signal=None))
    assert not lenient.zni_cap_active
    assert lenient.targets["a"].max_a == 32.0


def test_an_announced_0_is_applied_early() -> None:
    engine = _engine(anticipation_s=30.0)
    early = engine.cycle(0.0, _tree(), SESSIONS, SiteInputs(zni_signal=1, zni_next=(40.0, 0)))
    assert not early.zni_cap_active
    now = engine.cycle(10.0, _tree(), SESSIONS, SiteInputs(zni_signal=1, zni_next=(40.0, 0)))
    assert now.zni_cap_active
    assert now.zni.source is ZniSource.ANTICIPATED
    # A coming 1 is not anticipated: the cap holds until the signal changes.
    held = engine.cycle(50.0, _tree(), SESSIONS, SiteInputs(zni_signal=0, zni_next=(60.0, 1)))
    assert held.zni.source is ZniSource.SIGNAL
    assert held.zni_cap_active


def test_a_cap_on_simultaneous_sessions_delays_the_last_ones() -> None:
    engine = _engine(max_sessions=2)
    settings = {"b": SessionSettings(mode=ChargeMode.OFF)}
    result = engine.cycle(0.0, _tree(), SESSIONS, SiteInputs(zni_signal=0), settings)
    # b is off (takes no slot): a and c charge.
    assert {key: t.reason for key, t in result.targets.items()} == {"a": "zni_cap", "b": "mode_off", "c": "zni_cap"}
    result = engine.cycle(10.0, _tree(), SESSIONS, SiteInputs(zni_signal=0))
    # b wants to charge now: it came after a and c, which are charging: b waits.
    assert result.targets["b"].reason == "zni_delayed"
    assert result.targets["b"].max_a == 0
    assert result.zni.delayed == frozenset({"b"})
    # A higher priority goes first, even over a running session.
    vip = [SESSIONS[0], Session("b", "c11", arrival=1.0, priority=3), SESSIONS[2]]
    result = engine.cycle(20.0, _tree(), vip, SiteInputs(zni_signal=0))
    assert result.zni.delayed == frozenset({"c"})
    assert result.evidence[0].delayed == ("c7",)
    # Signal back to 1: nobody is delayed.
    result = engine.cycle(30.0, _tree(), vip, SiteInputs(zni_signal=1))
    assert result.zni.delayed == frozenset()
    assert all(t.reason == "mode_now" for t in result.targets.values())


def test_evidence_records_every_change_and_only_changes() -> None:
    engine = _engine(max_sessions=2)
    entries: list[EvidenceEntry] = []
    signals = [1, 1, 0, 0, None, None, 0, 1, 1]
    for k, signal in enumerate(signals):
        result = engine.cycle(600.0 * k, _tree(), SESSIONS[:2], SiteInputs(zni_signal=signal))
        entries.extend(result.evidence)
    assert [(e.time, e.signal, e.applied, e.source) for e in entries] == [
        (0.0, 1, 1, ZniSource.SIGNAL),
        (1200.0, 0, 0, ZniSource.SIGNAL),
        (2400.0, None, 0, ZniSource.DEFAULT),
        (3600.0, 0, 0, ZniSource.SIGNAL),
        (4200.0, 1, 1, ZniSource.SIGNAL),
    ]
    assert entries[1].caps_w == (("c11", 5520.0), ("c22", 11040.0))
    assert entries[1].max_sessions == 2
    assert entries[0].caps_w == ()
    assert entries[0].max_sessions is None
    # A new session during a 0 slot changes the caps: recorded.
    more = engine.cycle(6000.0, _tree(), SESSIONS, SiteInputs(zni_signal=0))
    assert more.evidence[0].caps_w == (("c11", 5520.0), ("c22", 11040.0), ("c7", 3680.0))
    assert more.evidence[0].delayed == ("c7",)
    # JSON round trip for the glue's store.
    stored = json.loads(json.dumps([entry.as_dict() for entry in [*entries, *more.evidence]]))
    assert [EvidenceEntry.from_dict(item) for item in stored] == [*entries, *more.evidence]
    assert stored[1]["caps_w"] == {"c11": 5520.0, "c22": 11040.0}


def test_guard_alone_for_a_manual_mode() -> None:
    """The glue applies the guard on its own when the strategy does not run (manual mode)."""
    guard = ZniGuard(ZniConfig(enabled=True, max_sessions=1))
    decision = guard.evaluate(
        0.0,
        0,
        [
            ZniCandidate("s1", "c1", 22_000.0, was_charging=True),
            ZniCandidate("s2", "c2", 7_400.0),
        ],
    )
    assert decision.active
    assert decision.cap_w("c1") == 11_000.0
    assert decision.cap_w("c9") == float("inf")
    assert decision.delayed == frozenset({"s2"})
    off = ZniGuard().evaluate(0.0, 0, [ZniCandidate("s1", "c1", 22_000.0)])
    assert not off.active
    assert off.source is ZniSource.OFF
    assert off.evidence is None
    assert off.caps_w == {}


@pytest.mark.parametrize(
    "kwargs",
    [{"fraction": 1.5}, {"fraction": float("nan")}, {"max_sessions": -1}, {"safe_default": 2}, {"anticipation_s": -1}],
)
def test_invalid_zni_config(kwargs: dict[str, object]) -> None:
    with pytest.raises(EmsError, match="ZNI"):
        ZniConfig(**kwargs)  # type: ignore[arg-type]
