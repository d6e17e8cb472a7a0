"""The charging strategy: per-session targets (min, max, phases, reason) for the allocator.

Called every EMS cycle, before the regulator, with the time, the site tree and sessions the
regulator gets, the site's readings (:class:`SiteInputs`) and each session's settings
(:class:`SessionSettings`). :meth:`StrategyEngine.cycle` returns a :class:`SessionTarget` per
session; :meth:`StrategyResult.apply` puts them on the sessions (``strategy_min_a``,
``strategy_max_a``, ``number_of_phases``, ``strategy_reason``) and the allocator then fits them
under the site tree's limits.

Precedence, enforced in :func:`decide` and nowhere else (highest first, :data:`PRECEDENCE`):

1. the physical limits of the tree (the allocator, after this module);
2. the ZNI grid signal (a power cap per charger, delayed sessions);
3. the user/badge settings: mode ``off``, a guaranteed minimum, exclusion from PV;
4. the planner's target for the slot, else the tariff policy (they rule the grid energy);
5. the PV surplus;
6. the default: as fast as the tree allows.

A higher rule overrides a lower one when they disagree; PV surplus is free energy, so a tariff
block or a planner target of 0 leaves a PV session its surplus (never its grid minimum).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, tzinfo
from enum import StrEnum
import math
from types import MappingProxyType
from typing import Literal

from .allocator import Session, Strategy, effective_priority, session_cap, strategy_order
from .pv import PV_MODES, ChargeMode, PvConfig, PvController, PvOutcome, PvReason, PvRequest, pv_surplus_w
from .tariff import TariffOption, TariffReason, TariffState, tariff_block
from .tree import Charger, EmsError, SiteTree, Timestamp, to_seconds
from .zni import EvidenceEntry, ZniCandidate, ZniConfig, ZniDecision, ZniGuard


class Rule(StrEnum):
    """The rules of the strategy, in :data:`PRECEDENCE` order."""

    TREE = "tree"
    ZNI = "zni"
    USER = "user"
    PLANNER_TARIFF = "planner_tariff"
    PV = "pv"
    DEFAULT = "default"


PRECEDENCE: tuple[Rule, ...] = tuple(Rule)
"""Highest first: a rule overrides every rule after it."""


class StrategyReason(StrEnum):
    """Why a session got its target (besides :class:`~.pv.PvReason` and :class:`~.tariff.TariffReason`)."""

    ZNI_CAP = "zni_cap"
    ZNI_DELAYED = "zni_delayed"
    MODE_OFF = "mode_off"
    BADGE_MINIMUM = "badge_minimum"
    PV_EXCLUDED = "pv_excluded"
    PLANNER = "planner"
    PLANNER_WAIT = "planner_wait"
    PV_DATA_LOST = "pv_data_lost"
    MODE_NOW = "mode_now"


REASONS: frozenset[str] = frozenset(
    {str(r) for r in StrategyReason} | {str(r) for r in PvReason} | {str(r) for r in TariffReason}
)
"""Every reason a target may carry (for the glue's translations)."""


@dataclass(frozen=True, slots=True)
class StrategyConfig:
    """Settings of the strategy: voltage, PV, ZNI, the local time zone (weekdays vs weekends)."""

    voltage_v: float = 230.0
    pv: PvConfig = field(default_factory=PvConfig)
    zni: ZniConfig = field(default_factory=ZniConfig)
    timezone: tzinfo = UTC
    residual_margin_a: float = 2.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.voltage_v) and self.voltage_v > 0):
            raise EmsError("voltage_v must be > 0")


@dataclass(frozen=True, slots=True)
class SiteInputs:
    """The site's readings of this cycle (None: unknown).

    ``grid_power_w``: grid meter, import +, export -; ``grid_measured_at``: when it was read
    (None: now). ``pv_power_w`` is informative. ``battery_power_w``: discharge +, charge -;
    ``battery_soc`` in %. ``zni_signal``: 1, 0 or None (unavailable); ``zni_next``: the next
    announced change (time, value). ``tariff``: the decoded tariff signals. What the cars draw
    comes from the sessions' ``measured_a``.
    """

    grid_power_w: float | None = None
    grid_measured_at: Timestamp | None = None
    pv_power_w: float | None = None
    battery_power_w: float | None = None
    battery_soc: float | None = None
    zni_signal: int | None = None
    zni_next: tuple[Timestamp, int] | None = None
    tariff: TariffState = field(default_factory=TariffState)


@dataclass(frozen=True, slots=True)
class SessionSettings:
    """A session's strategy settings (from its charger, its user or badge, and the planner).

    ``phase_switching``: the charger may switch between 1 and 3 phases (OCPP 2.0.1
    numberPhases; 1.6 only when the charger declares it); ``active_phases``: what it uses when
    first seen (None: all of its phases). ``pv_excluded``: the user/badge is excluded from PV
    modes (standard EMS instead). ``guaranteed_min_a``: a minimum current the user/badge always
    gets (within the ZNI cap and the tree). ``planner_target_w``: the planner's power for the
    current slot. ``nominal_power_w``: the charger's nominal power for the ZNI cap (None: its
    maximum current on all its phases). ``car_idle``: the car takes nothing though it may (OCPP
    SuspendedEV), so a PV mode keeps no surplus for it.
    """

    mode: ChargeMode = ChargeMode.NOW
    tariff: TariffOption = field(default_factory=TariffOption)
    phase_switching: bool = False
    active_phases: Literal[1, 3] | None = None
    pv_excluded: bool = False
    guaranteed_min_a: float | None = None
    planner_target_w: float | None = None
    nominal_power_w: float | None = None
    car_idle: bool = False


DEFAULT_SETTINGS = SessionSettings()


@dataclass(frozen=True, slots=True)
class SessionTarget:
    """What the strategy wants for one session this cycle.

    ``max_a`` per phase (0: do not charge), ``min_a`` a floor before the rest is shared (0:
    none), ``phases`` the number of phases to use, ``reason`` why and ``rule`` which rule
    decided; ``timer_s`` the seconds left on a running PV or phase-switch delay; ``zni_cap_w``
    the charger's ZNI power cap when the signal is 0.
    """

    session_id: str
    charger_id: str
    min_a: float
    max_a: float
    phases: Literal[1, 3]
    reason: str
    rule: Rule
    mode: ChargeMode
    timer_s: float | None = None
    zni_cap_w: float | None = None

    @property
    def paused(self) -> bool:
        """Whether the strategy holds the session back."""
        return self.max_a == 0

    def apply(self, session: Session) -> Session:
        """The session with these targets for the allocator."""
        return replace(
            session,
            strategy_min_a=self.min_a or None,
            strategy_max_a=self.max_a,
            number_of_phases=self.phases,
            strategy_reason=self.reason,
        )


@dataclass(frozen=True, slots=True)
class StrategyResult:
    """The outcome of one :meth:`StrategyEngine.cycle`.

    ``surplus_w`` is the PV surplus (None without a fresh grid reading); ``pv_data_lost`` is
    True when sessions in a PV mode fell back to the standard EMS for that reason (the glue
    raises a repair issue); ``zni`` the ZNI decision and ``evidence`` its new entries (to store).
    """

    time: float
    targets: Mapping[str, SessionTarget]
    surplus_w: float | None
    pv_budget_w: float | None
    pv_data_lost: bool
    weekend: bool
    zni: ZniDecision
    evidence: tuple[EvidenceEntry, ...] = ()

    @property
    def zni_cap_active(self) -> bool:
        """Whether the ZNI signal-0 caps apply this cycle."""
        return self.zni.active

    def apply(self, sessions: Iterable[Session]) -> list[Session]:
        """The sessions with their targets (sessions without one unchanged)."""
        result: list[Session] = []
        for session in sessions:
            target = self.targets.get(session.id)
            result.append(session if target is None else target.apply(session))
        return result


@dataclass(frozen=True, slots=True)
class _GridRule:
    """The planner's or the tariff's say on the grid energy: a power (0: none), why, on how many phases."""

    power_w: float
    reason: str
    phases: int

    @property
    def charges(self) -> bool:
        """Whether the rule lets the session take grid energy."""
        return self.power_w > 0


@dataclass(frozen=True, slots=True)
class _Facts:
    """What the chain needs to know about one session."""

    session: Session
    charger: Charger
    settings: SessionSettings
    car_cap_a: float
    phases: int
    switchable: bool
    floor_a: float
    grid: _GridRule | None
    pv_mode: bool


def decide(
    facts: _Facts,
    zni: ZniDecision,
    pv: PvOutcome | None,
    pv_data_lost: bool,
    voltage_v: float,
) -> tuple[float, float, str, Rule, int]:
    """The precedence chain for one session: (min_a, max_a, reason, rule, phases), before the tree.

    The one place where the rules meet; see the module docstring for the order.
    """
    charger = facts.charger
    mode = facts.settings.mode
    phases = facts.phases
    if mode is ChargeMode.OFF:
        return 0.0, 0.0, StrategyReason.MODE_OFF, Rule.USER, phases
    if facts.session.id in zni.delayed:
        return 0.0, 0.0, StrategyReason.ZNI_DELAYED, Rule.ZNI, phases
    # Lower rules first; each higher one may override what they said.
    max_a: float
    reason: str
    rule: Rule
    if facts.grid is not None and facts.grid.charges:
        max_a, reason, rule = facts.grid.power_w / (voltage_v * phases), facts.grid.reason, Rule.PLANNER_TARIFF
        if max_a + 1e-9 < charger.min_current_a:
            max_a, reason = 0.0, StrategyReason.PLANNER_WAIT
        max_a = min(max_a, charger.max_current_a)
    elif pv is not None:
        max_a, reason, rule, phases = pv.max_a, str(pv.reason), Rule.PV, pv.phases
        if not pv.charging and facts.grid is not None:
            reason, rule = facts.grid.reason, Rule.PLANNER_TARIFF
    elif facts.grid is not None:
        max_a, reason, rule = 0.0, facts.grid.reason, Rule.PLANNER_TARIFF
    else:
        max_a, rule = charger.max_current_a, Rule.DEFAULT
        if mode in PV_MODES:
            reason = StrategyReason.PV_DATA_LOST if pv_data_lost and facts.pv_mode else StrategyReason.PV_EXCLUDED
        else:
            reason = StrategyReason.MODE_NOW
    min_a = 0.0
    if facts.floor_a > 0:
        min_a = facts.floor_a
        if max_a < facts.floor_a or (pv is not None and pv.reason is PvReason.MINIMUM):
            max_a, reason, rule = max(max_a, facts.floor_a), StrategyReason.BADGE_MINIMUM, Rule.USER
    cap_w = zni.caps_w.get(charger.id)
    if cap_w is not None:
        cap_a = math.floor(cap_w / (voltage_v * phases) * 1000) / 1000
        if max_a >= cap_a:
            max_a, reason, rule = cap_a, StrategyReason.ZNI_CAP, Rule.ZNI
    return min(min_a, max_a), round(max_a, 3), str(reason), rule, phases


class StrategyEngine:
    """Runs the strategy cycle after cycle; keeps the PV delays, phase switches and ZNI evidence state."""

    def __init__(self, config: StrategyConfig | None = None) -> None:
        self.config = config or StrategyConfig()
        self.pv = PvController(self.config.pv, self.config.voltage_v)
        self.zni = ZniGuard(self.config.zni)
        self._charging: dict[str, bool] = {}

    def reset(self) -> None:
        """Forget every session (delays, phases, ZNI slots); the ZNI evidence chain goes on."""
        self.pv.keep_only(set())
        self._charging.clear()

    def cycle(
        self,
        now: Timestamp,
        tree: SiteTree,
        sessions: Sequence[Session],
        site: SiteInputs,
        settings: Mapping[str, SessionSettings] | None = None,
    ) -> StrategyResult:
        """This cycle's targets for ``sessions`` (the ones the regulator will get)."""
        config = self.config
        volts = config.voltage_v
        now_s = to_seconds(now)
        settings = settings or {}
        weekend = datetime.fromtimestamp(now_s, config.timezone).weekday() >= 5
        ranked = strategy_order(tree, sessions, Strategy.EQUAL)
        present = {s.id for s in ranked}
        self.pv.keep_only(present)
        self._charging = {key: value for key, value in self._charging.items() if key in present}

        draws = {s.id: _draw_w(s, volts) for s in ranked}
        grid_lost = site.grid_power_w is None or (
            site.grid_measured_at is not None and now_s - to_seconds(site.grid_measured_at) > config.pv.data_timeout_s
        )
        surplus: float | None = None
        if site.grid_power_w is not None and not grid_lost:
            surplus = pv_surplus_w(
                site.grid_power_w, sum(draws.values()), config.pv, site.battery_power_w, site.battery_soc
            )

        facts = [self._facts(tree, s, settings.get(s.id, DEFAULT_SETTINGS), site, weekend) for s in ranked]
        zni = self.zni.evaluate(
            now_s,
            site.zni_signal,
            [
                ZniCandidate(
                    f.session.id,
                    f.charger.id,
                    f.settings.nominal_power_w or f.charger.max_current_a * f.charger.phases * volts,
                    effective_priority(tree, f.session),
                    to_seconds(f.session.arrival),
                    self._charging.get(f.session.id, False),
                    f.settings.mode is not ChargeMode.OFF,
                )
                for f in facts
            ],
            site.zni_next,
        )

        followers = [
            f
            for f in facts
            if f.pv_mode
            and surplus is not None
            and f.settings.mode is not ChargeMode.OFF
            and f.session.id not in zni.delayed
            and not (f.grid is not None and f.grid.charges)
        ]
        outcomes: dict[str, PvOutcome] = {}
        budget: float | None = None
        if surplus is not None:
            following = {f.session.id for f in followers}
            budget = surplus - sum(w for key, w in draws.items() if key not in following)
            requests = [self._request(f, zni) for f in followers]
            outcomes = self.pv.distribute(now_s, budget, requests)

        targets: dict[str, SessionTarget] = {}
        for f in facts:
            pv = outcomes.get(f.session.id)
            timer = None if pv is None else pv.timer_s
            if pv is None and f.switchable:
                phases, timer = self._phases_for(f, zni, now_s)
                f = replace(f, phases=phases)  # noqa: PLW2901 - the phases this cycle
            min_a, max_a, reason, rule, phases = decide(f, zni, pv, surplus is None, volts)
            if pv is None:
                self.pv.hold(f.session.id, max_a > 0)
            cap = zni.caps_w.get(f.charger.id)
            targets[f.session.id] = SessionTarget(
                session_id=f.session.id,
                charger_id=f.charger.id,
                min_a=min(min_a, max_a),
                max_a=max_a,
                phases=1 if phases == 1 else 3,
                reason=reason,
                rule=rule,
                mode=f.settings.mode,
                timer_s=None if timer is None else round(timer, 3),
                zni_cap_w=cap,
            )
            self._charging[f.session.id] = max_a > 0
        return StrategyResult(
            time=now_s,
            targets=MappingProxyType(targets),
            surplus_w=None if surplus is None else round(surplus, 3),
            pv_budget_w=None if budget is None else round(budget, 3),
            pv_data_lost=surplus is None and any(f.pv_mode and f.settings.mode in PV_MODES for f in facts),
            weekend=weekend,
            zni=zni,
            evidence=() if zni.evidence is None else (zni.evidence,),
        )

    def _facts(
        self, tree: SiteTree, session: Session, settings: SessionSettings, site: SiteInputs, weekend: bool
    ) -> _Facts:
        """The per-session inputs of the chain (the planner/tariff rule is decided here)."""
        volts = self.config.voltage_v
        charger = tree.charger(session.charger_id)
        switchable = settings.phase_switching and charger.phases == 3
        initial = settings.active_phases if switchable and settings.active_phases is not None else charger.phases
        state = self.pv.state(session.id, initial, enabled=_draw_w(session, volts) >= charger.min_current_a * volts / 2)
        phases = state.phases if switchable else charger.phases
        if session.measured_a is not None and phases == 3:
            top = max(session.measured_a)
            if top >= 1.0:  # it draws: learn on how many phases (a one-phase car on a three-phase charger)
                state.car_phases = sum(value >= top / 2 for value in session.measured_a)
        plain = session if session.strategy_max_a is None else replace(session, strategy_max_a=None)
        car_cap_a, _ = session_cap(tree, plain, self.config.residual_margin_a)
        floor = settings.guaranteed_min_a or 0.0
        if floor > 0:
            floor = min(max(floor, charger.min_current_a), charger.max_current_a)
        grid: _GridRule | None = None
        if settings.planner_target_w is not None:
            target_w = max(settings.planner_target_w, 0.0)
            minimum = charger.min_current_a * volts
            wanted = phases
            if switchable:
                wanted = 1 if minimum <= target_w < minimum * 3 else 3
            if target_w + 1e-6 < minimum * wanted:
                grid = _GridRule(0.0, StrategyReason.PLANNER_WAIT, phases)
            else:
                grid = _GridRule(target_w, StrategyReason.PLANNER, wanted)
        else:
            block = tariff_block(settings.tariff.policy(weekend), site.tariff)
            if block is not None:
                grid = _GridRule(0.0, str(block), phases)
        return _Facts(
            session=session,
            charger=charger,
            settings=settings,
            car_cap_a=car_cap_a,
            phases=phases,
            switchable=switchable,
            floor_a=floor,
            grid=grid,
            pv_mode=settings.mode in PV_MODES and not settings.pv_excluded,
        )

    def _request(self, facts: _Facts, zni: ZniDecision) -> PvRequest:
        """The PV request of a session that follows the surplus."""
        charger = facts.charger
        keeps_minimum = facts.settings.mode is ChargeMode.MIN_PV and facts.grid is None
        return PvRequest(
            session_id=facts.session.id,
            mode=ChargeMode.MIN_PV if keeps_minimum or facts.floor_a > 0 else ChargeMode.PV,
            min_a=max(charger.min_current_a, facts.floor_a),
            cap_a=max(facts.car_cap_a, charger.min_current_a),
            phases=facts.phases,
            max_phases=charger.phases,
            switchable=facts.switchable,
            cap_w=zni.cap_w(charger.id),
            car_phases=self.pv.state(facts.session.id, facts.phases).car_phases,
            idle=facts.settings.car_idle,
        )

    def _phases_for(self, facts: _Facts, zni: ZniDecision, now: float) -> tuple[int, float | None]:
        """Phases of a switchable session that does not follow the surplus this cycle.

        The planner's choice when it sets the power; else all phases, or one when the ZNI cap
        leaves room for the minimum on one phase only; unchanged while the session cannot charge.
        """
        state = self.pv.state(facts.session.id, facts.phases)
        minimum = facts.charger.min_current_a * self.config.voltage_v
        cap = zni.cap_w(facts.charger.id)
        if facts.grid is not None and facts.grid.charges:
            wanted = facts.grid.phases
        elif facts.settings.mode is ChargeMode.OFF or facts.session.id in zni.delayed or facts.grid is not None:
            wanted = state.phases
        else:
            wanted = 1 if minimum <= cap < minimum * 3 else 3
        wait = self.pv.switcher.request(state, wanted, now, 0.0)
        return state.phases, wait


def _draw_w(session: Session, voltage_v: float) -> float:
    """What a session draws now, in W (0 when not measured)."""
    if session.measured_a is None:
        return 0.0
    return max(sum(session.measured_a), 0.0) * voltage_v


__all__ = [
    "DEFAULT_SETTINGS",
    "PRECEDENCE",
    "REASONS",
    "Rule",
    "SessionSettings",
    "SessionTarget",
    "SiteInputs",
    "StrategyConfig",
    "StrategyEngine",
    "StrategyReason",
    "StrategyResult",
    "decide",
]
