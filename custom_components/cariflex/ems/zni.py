"""ZNI (non-interconnected zones): the EDF-SEI grid signal caps every charger, whatever the strategy.

Signal 1: normal operation. Signal 0: every charger is limited to ``fraction`` (default half)
of its nominal power, at most ``max_sessions`` sessions charge (the others are delayed). An
unavailable signal counts as ``safe_default`` (0 by default). A change announced by the
signal's schedule is applied ``anticipation_s`` early when it lowers the cap, so that the cars
are down when the 0 slot begins. The cap holds in every EMS mode (the glue applies
:meth:`ZniGuard.evaluate` on its own when the strategy is not used).

Every change of the signal, of the caps or of the delayed sessions is recorded as an
:class:`EvidenceEntry` (Advenir evidence): the glue persists them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
import math
from typing import Any, Literal

from .tree import EmsError, Timestamp, to_seconds


class ZniSource(StrEnum):
    """Where the applied signal value comes from."""

    SIGNAL = "signal"  # the signal as published
    DEFAULT = "default"  # the signal is unavailable: the configured safe default
    ANTICIPATED = "anticipated"  # a 0 announced for the next seconds, applied early
    OFF = "off"  # the site is not a ZNI site


@dataclass(frozen=True, slots=True)
class ZniConfig:
    """ZNI settings of a site.

    ``enabled``: the site follows the EDF-SEI signal. ``fraction``: share of each charger's
    nominal power allowed when the signal is 0. ``max_sessions``: at most this many sessions
    charge at once when it is 0 (None: no cap). ``safe_default``: the value used when the
    signal is unavailable. ``anticipation_s``: how early an announced 0 is applied.
    """

    enabled: bool = False
    fraction: float = 0.5
    max_sessions: int | None = None
    safe_default: Literal[0, 1] = 0
    anticipation_s: float = 30.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.fraction) and 0 <= self.fraction <= 1):
            raise EmsError(f"ZNI fraction must be within [0, 1], got {self.fraction!r}")
        if self.max_sessions is not None and self.max_sessions < 0:
            raise EmsError(f"ZNI max_sessions must be >= 0, got {self.max_sessions!r}")
        if self.safe_default not in (0, 1):
            raise EmsError(f"ZNI safe_default must be 0 or 1, got {self.safe_default!r}")
        if not (math.isfinite(self.anticipation_s) and self.anticipation_s >= 0):
            raise EmsError("ZNI anticipation_s must be finite and >= 0")


@dataclass(frozen=True, slots=True)
class ZniCandidate:
    """A session the ZNI guard ranks: who charges first when the number of sessions is capped.

    ``wants`` is False for a session that does not charge anyway (mode off): it takes no slot.
    ``was_charging`` keeps a running session ahead of a newcomer of the same priority.
    """

    session_id: str
    charger_id: str
    nominal_w: float
    priority: int = 0
    arrival: float = 0.0
    was_charging: bool = False
    wants: bool = True


@dataclass(frozen=True, slots=True)
class EvidenceEntry:
    """One line of the ZNI evidence: at ``time``, the signal received, the one applied and the caps.

    ``signal`` is the value received (None: unavailable); ``applied`` the one used (``source``
    says why); ``caps_w`` the power cap of each charger (empty when the signal is 1);
    ``max_sessions`` the cap on simultaneous sessions and ``delayed`` the chargers held back.
    """

    time: float
    signal: int | None
    applied: int
    source: ZniSource
    caps_w: tuple[tuple[str, float], ...] = ()
    max_sessions: int | None = None
    delayed: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (the glue stores it)."""
        return {
            "time": self.time,
            "signal": self.signal,
            "applied": self.applied,
            "source": str(self.source),
            "caps_w": dict(self.caps_w),
            "max_sessions": self.max_sessions,
            "delayed": list(self.delayed),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvidenceEntry:
        """The inverse of :meth:`as_dict`."""
        return cls(
            time=float(data["time"]),
            signal=None if data["signal"] is None else int(data["signal"]),
            applied=int(data["applied"]),
            source=ZniSource(data["source"]),
            caps_w=tuple(sorted((str(k), float(v)) for k, v in data["caps_w"].items())),
            max_sessions=None if data["max_sessions"] is None else int(data["max_sessions"]),
            delayed=tuple(str(item) for item in data["delayed"]),
        )


@dataclass(frozen=True, slots=True)
class ZniDecision:
    """The ZNI constraint of one cycle: power caps per charger and the sessions delayed."""

    signal: int | None
    applied: int
    source: ZniSource
    caps_w: Mapping[str, float]
    delayed: frozenset[str]
    evidence: EvidenceEntry | None = None

    @property
    def active(self) -> bool:
        """Whether the signal-0 constraint applies this cycle."""
        return self.applied == 0 and self.source is not ZniSource.OFF

    def cap_w(self, charger_id: str) -> float:
        """The power cap of a charger (``inf`` when none)."""
        return self.caps_w.get(charger_id, math.inf)


class ZniGuard:
    """Applies the ZNI signal; each change gives an evidence entry (the caller stores them)."""

    def __init__(self, config: ZniConfig | None = None) -> None:
        """``config`` defaults to a site outside a ZNI (the guard then does nothing)."""
        self.config = config or ZniConfig()
        self._last: tuple[object, ...] | None = None

    def applied_signal(
        self, now: float, signal: int | None, next_change: tuple[Timestamp, int] | None = None
    ) -> tuple[int, ZniSource]:
        """The value to apply now and why."""
        config = self.config
        if not config.enabled:
            return 1, ZniSource.OFF
        if signal not in (0, 1):
            return config.safe_default, ZniSource.DEFAULT
        if (
            signal == 1
            and next_change is not None
            and next_change[1] == 0
            and to_seconds(next_change[0]) - now <= config.anticipation_s
        ):
            return 0, ZniSource.ANTICIPATED
        return signal, ZniSource.SIGNAL

    def evaluate(
        self,
        now: Timestamp,
        signal: int | None,
        candidates: Iterable[ZniCandidate],
        next_change: tuple[Timestamp, int] | None = None,
    ) -> ZniDecision:
        """The caps and delayed sessions for this cycle; records evidence when anything changed."""
        now_s = to_seconds(now)
        applied, source = self.applied_signal(now_s, signal, next_change)
        caps: dict[str, float] = {}
        delayed: list[ZniCandidate] = []
        config = self.config
        if applied == 0 and source is not ZniSource.OFF:
            ranked = sorted(candidates, key=lambda c: (-c.priority, not c.was_charging, c.arrival, c.session_id))
            for candidate in ranked:
                caps[candidate.charger_id] = round(candidate.nominal_w * config.fraction, 3)
            if config.max_sessions is not None:
                delayed = [c for c in ranked if c.wants][config.max_sessions :]
        evidence = self._record(
            now=now_s,
            signal=signal,
            applied=applied,
            source=source,
            caps=caps,
            delayed=sorted(c.charger_id for c in delayed),
        )
        return ZniDecision(signal, applied, source, caps, frozenset(c.session_id for c in delayed), evidence)

    def _record(
        self,
        *,
        now: float,
        signal: int | None,
        applied: int,
        source: ZniSource,
        caps: Mapping[str, float],
        delayed: list[str],
    ) -> EvidenceEntry | None:
        if source is ZniSource.OFF:
            return None
        caps_t = tuple(sorted(caps.items()))
        max_sessions = self.config.max_sessions if applied == 0 else None
        key: tuple[object, ...] = (signal, applied, source, caps_t, max_sessions, tuple(delayed))
        if key == self._last:
            return None
        self._last = key
        return EvidenceEntry(now, signal, applied, source, caps_t, max_sessions, tuple(delayed))


__all__ = ["EvidenceEntry", "ZniCandidate", "ZniConfig", "ZniDecision", "ZniGuard", "ZniSource"]
