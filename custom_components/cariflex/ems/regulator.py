"""The regulator: the allocator run cycle after cycle, with memory.

The allocator alone would send a new setpoint whenever a measurement moves, start and stop
cars every few seconds at the edge of a limit and leave the last-come car paused forever. The
regulator adds, without ever letting a limit be exceeded:

* a deadband: a setpoint moves only by at least ``deadband_a`` (decreases needed to respect a
  limit, or a session's strategy cap, are applied at once, whatever their size);
* a hold time: a session is not restarted less than ``hold_s`` after it was paused, and not
  paused (except to respect a limit) less than ``hold_s`` after it started;
* rotation: when there is not enough current for every session's minimum, a session paused for
  ``rotation_interval_s`` takes the place of the one that has been running the longest;
* fail-safe: stale meter readings are replaced by the node's fallback load (see
  :func:`~.allocator.allocate`), and flagged in every affected session's ``degraded``.

Time is passed in on every :meth:`Regulator.cycle`; nothing reads a clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
import math
from types import MappingProxyType

from .allocator import (
    Allocation,
    LimitTracker,
    Reason,
    Session,
    Strategy,
    allocate,
    effective_priority,
    session_phases,
    strategy_order,
)
from .tree import EmsError, SiteTree, Timestamp, to_seconds


@dataclass(frozen=True, slots=True)
class RegulatorConfig:
    """Settings of a :class:`Regulator` (currents in A, durations in s)."""

    strategy: Strategy = Strategy.EQUAL
    voltage_v: float = 230.0
    step_a: float = 0.1
    deadband_a: float = 1.0
    hold_s: float = 60.0
    rotation_interval_s: float | None = 900.0
    residual_margin_a: float = 2.0
    meter_timeout_s: float | None = 60.0

    def __post_init__(self) -> None:
        if self.deadband_a < 0 or self.hold_s < 0:
            raise EmsError("deadband_a and hold_s must be >= 0")
        if self.rotation_interval_s is not None and self.rotation_interval_s <= 0:
            raise EmsError("rotation_interval_s must be > 0 (or None to disable rotation)")


@dataclass(frozen=True, slots=True)
class SessionState:
    """What the regulator remembers of a session: its last setpoint, since when it runs/waits, its phases."""

    setpoint_a: float
    since: float
    number_of_phases: int | None = None

    @property
    def running(self) -> bool:
        """Whether the last setpoint let the session charge."""
        return self.setpoint_a > 0


@dataclass(frozen=True, slots=True)
class SessionSetpoint:
    """The setpoint to apply to one session after this cycle.

    ``target_a`` is what the allocator computed; ``setpoint_a`` is what to send (they differ
    when the deadband or the hold time kept the previous value). ``previous_a`` is None for a
    session seen for the first time. ``number_of_phases`` is what the session uses (the strategy
    may switch a three-phase charger to one phase); ``previous_phases`` what it used last cycle.
    """

    session_id: str
    charger_id: str
    setpoint_a: float
    target_a: float
    previous_a: float | None
    reason: str
    limited_by: str | None = None
    degraded: tuple[str, ...] = ()
    number_of_phases: int | None = None
    previous_phases: int | None = None

    @property
    def changed(self) -> bool:
        """Whether a new setpoint (current or number of phases) must be sent to the charger."""
        return (
            self.previous_a is None
            or self.previous_a != self.setpoint_a
            or (self.previous_phases is not None and self.previous_phases != self.number_of_phases)
        )

    @property
    def paused(self) -> bool:
        """Whether the session gets no current."""
        return self.setpoint_a == 0


@dataclass(frozen=True, slots=True)
class RegulatorResult:
    """The outcome of one :meth:`Regulator.cycle`."""

    time: float
    setpoints: Mapping[str, SessionSetpoint]
    allocation: Allocation

    @property
    def changed(self) -> tuple[str, ...]:
        """Ids of the sessions whose setpoint must be sent."""
        return tuple(key for key, value in self.setpoints.items() if value.changed)

    def setpoint(self, session_id: str) -> float:
        """The setpoint of one session, in A."""
        return self.setpoints[session_id].setpoint_a


# Rotation groups, in admission order within a priority.
_RUNNING_IN_TURN = 0
_WAITED_A_TURN = 1
_RUNNING_PAST_TURN = 2
_WAITING = 3


class Regulator:
    """Allocation across cycles with deadband, hold time, rotation and fail-safe."""

    def __init__(self, config: RegulatorConfig | None = None) -> None:
        self.config = config or RegulatorConfig()
        self._state: dict[str, SessionState] = {}

    @property
    def state(self) -> Mapping[str, SessionState]:
        """What the regulator remembers, by session id."""
        return MappingProxyType(self._state)

    def forget(self, session_id: str) -> None:
        """Drop a session's memory (it restarts as new: no hold time, no deadband)."""
        self._state.pop(session_id, None)

    def reset(self) -> None:
        """Forget every session."""
        self._state.clear()

    def _group(self, state: SessionState | None, now: float) -> tuple[int, float]:
        """Rotation group of a session and its tie-break within the group."""
        interval = self.config.rotation_interval_s
        if state is None:
            return _WAITING, 0.0
        elapsed = now - state.since
        if interval is None:
            return (_RUNNING_IN_TURN, 0.0) if state.running else (_WAITING, 0.0)
        if state.running:
            # Past its turn, the most recently started keeps its place the longest.
            return (_RUNNING_IN_TURN, 0.0) if elapsed < interval else (_RUNNING_PAST_TURN, -state.since)
        return (_WAITED_A_TURN, state.since) if elapsed >= interval else (_WAITING, 0.0)

    def cycle(self, tree: SiteTree, sessions: Iterable[Session], now: Timestamp) -> RegulatorResult:
        """Compute this cycle's setpoints for ``sessions`` (the active ones) at time ``now``."""
        config = self.config
        now_s = to_seconds(now)
        prepared: list[Session] = []
        for session in sessions:
            state = self._state.get(session.id)
            prepared.append(session if state is None else replace(session, setpoint_a=state.setpoint_a))

        held_paused: set[str] = set()
        keep_running: set[str] = set()
        for session in prepared:
            state = self._state.get(session.id)
            if state is not None and now_s - state.since < config.hold_s:
                (keep_running if state.running else held_paused).add(session.id)
        candidates = [session for session in prepared if session.id not in held_paused]

        groups = {session.id: self._group(self._state.get(session.id), now_s) for session in candidates}
        ranked = strategy_order(tree, candidates, config.strategy)
        order: list[str] | None = None
        if config.strategy is not Strategy.FCFS:
            position = {session.id: index for index, session in enumerate(ranked)}
            ranked = sorted(
                ranked,
                key=lambda s: (-effective_priority(tree, s), *groups[s.id], position[s.id]),
            )
            order = [session.id for session in ranked]

        allocation = allocate(
            tree,
            candidates,
            config.strategy,
            now_s,
            voltage_v=config.voltage_v,
            step_a=config.step_a,
            residual_margin_a=config.residual_margin_a,
            meter_timeout_s=config.meter_timeout_s,
            order=order,
            keep_running=keep_running,
        )

        final = allocation.setpoints
        reasons = {key: value.reason for key, value in allocation.sessions.items()}
        self._apply_deadband(tree, allocation, ranked, final, reasons)
        if order is not None:
            self._mark_rotation(allocation, ranked, groups, reasons)

        results: dict[str, SessionSetpoint] = {}
        new_state: dict[str, SessionState] = {}
        for session in prepared:
            state = self._state.get(session.id)
            result = allocation.sessions.get(session.id)
            setpoint = final.get(session.id, 0.0)
            phases = len(session_phases(tree.charger(session.charger_id), session))
            results[session.id] = SessionSetpoint(
                session_id=session.id,
                charger_id=session.charger_id,
                setpoint_a=setpoint,
                target_a=0.0 if result is None else result.setpoint_a,
                previous_a=None if state is None else state.setpoint_a,
                reason=reasons.get(session.id, str(Reason.PAUSED_HOLD)),
                limited_by=None if result is None else result.limited_by,
                degraded=() if result is None else result.degraded,
                number_of_phases=phases,
                previous_phases=None if state is None else state.number_of_phases,
            )
            since = now_s if state is None or state.running != (setpoint > 0) else state.since
            new_state[session.id] = SessionState(setpoint, since, phases)
        self._state = new_state
        return RegulatorResult(time=now_s, setpoints=MappingProxyType(results), allocation=allocation)

    def _apply_deadband(
        self,
        tree: SiteTree,
        allocation: Allocation,
        ranked: list[Session],
        final: dict[str, float],
        reasons: dict[str, str],
    ) -> None:
        """Keep previous setpoints where the change is below the deadband and limits allow it."""
        deadband = self.config.deadband_a
        tracker = LimitTracker(tree, allocation, final)
        decreases: list[tuple[Session, float]] = []
        for session in ranked:
            state = self._state.get(session.id)
            previous = None if state is None else state.setpoint_a
            target = final[session.id]
            result = allocation.sessions[session.id]
            if (
                previous is None
                or previous == 0
                or target == 0
                or previous < result.min_a
                or state is None
                or (state.number_of_phases is not None and state.number_of_phases != len(result.phases))
            ):
                continue
            change = target - previous
            if 0 < change < deadband:
                # Keeping a lower value is always within limits.
                tracker.add(session.id, -change)
                final[session.id] = previous
                reasons[session.id] = str(Reason.DEADBAND)
            elif -deadband < change < 0:
                decreases.append((session, previous))
        for session, previous in decreases:
            charger = tree.charger(session.charger_id)
            hard_cap = min(
                charger.max_current_a,
                math.inf if session.ev_max_current_a is None else session.ev_max_current_a,
                math.inf if session.strategy_max_a is None else session.strategy_max_a,
            )
            raise_by = previous - final[session.id]
            if previous <= hard_cap and tracker.fits(session.id, raise_by):
                tracker.add(session.id, raise_by)
                final[session.id] = previous
                reasons[session.id] = str(Reason.DEADBAND)

    def _mark_rotation(
        self,
        allocation: Allocation,
        ranked: list[Session],
        groups: Mapping[str, tuple[int, float]],
        reasons: dict[str, str],
    ) -> None:
        """Tell apart sessions paused to give a waiting session its turn."""
        rotated_in = any(groups[s.id][0] == _WAITED_A_TURN and not allocation.sessions[s.id].paused for s in ranked)
        if not rotated_in:
            return
        for session in ranked:
            result = allocation.sessions[session.id]
            if (
                groups[session.id][0] == _RUNNING_PAST_TURN
                and result.paused
                and result.reason == Reason.PAUSED_MIN_NOT_REACHABLE
            ):
                reasons[session.id] = str(Reason.PAUSED_ROTATION)


__all__ = ["Regulator", "RegulatorConfig", "RegulatorResult", "SessionSetpoint", "SessionState"]
