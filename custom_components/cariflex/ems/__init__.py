"""Cariflex's energy manager: pure Python, no Home Assistant, no I/O, no clock.

* :mod:`.tree`: the site (main board, sub-boards, groups, chargers) with limits and meter readings;
* :mod:`.allocator`: one allocation cycle (:func:`allocate`);
* :mod:`.regulator`: allocation across cycles (:class:`Regulator`: deadband, hold, rotation, fail-safe).

See README.md in this directory for the algorithm.
"""

from .allocator import (
    Allocation,
    LimitTracker,
    NodeAllocation,
    NodeBudget,
    Reason,
    Session,
    SessionAllocation,
    SessionError,
    Strategy,
    allocate,
    limit_reason,
    meter_stale_reason,
)
from .regulator import Regulator, RegulatorConfig, RegulatorResult, SessionSetpoint, SessionState
from .tree import (
    PHASES,
    Charger,
    EmsError,
    Node,
    NodeKind,
    PerPhase,
    Phase,
    SiteTree,
    Timestamp,
    TreeError,
    non_ev_load,
    per_phase,
    to_seconds,
)

__all__ = [
    "PHASES",
    "Allocation",
    "Charger",
    "EmsError",
    "LimitTracker",
    "Node",
    "NodeAllocation",
    "NodeBudget",
    "NodeKind",
    "PerPhase",
    "Phase",
    "Reason",
    "Regulator",
    "RegulatorConfig",
    "RegulatorResult",
    "Session",
    "SessionAllocation",
    "SessionError",
    "SessionSetpoint",
    "SessionState",
    "SiteTree",
    "Strategy",
    "Timestamp",
    "TreeError",
    "allocate",
    "limit_reason",
    "meter_stale_reason",
    "non_ev_load",
    "per_phase",
    "to_seconds",
]
