"""The electrical site tree the energy manager allocates over.

A site is a tree of *nodes*: the main board (TGBT) at the root, sub-boards (TD) and charger
groups below it. Each node may carry limits (a current per phase and/or a total power) and
the latest reading of its meter (the non-EV load on that node and any local production).
Chargers (one per connector/EVSE) are the leaves; each is attached to exactly one node.

Currents are in ampere, powers in watt, times in seconds (any epoch, as long as the caller is
consistent) or timezone-aware datetimes. Nothing here reads a clock or does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import IntEnum, StrEnum
import math
from types import MappingProxyType
from typing import Literal

type PerPhase = tuple[float, float, float]
"""A value per phase, in the order (L1, L2, L3)."""

type Timestamp = float | datetime
"""A point in time: seconds (float) or a timezone-aware datetime."""

ZERO: PerPhase = (0.0, 0.0, 0.0)


class EmsError(Exception):
    """Base class of the energy manager's errors."""


class TreeError(EmsError, ValueError):
    """The site tree (nodes and chargers) is not valid."""


class Phase(IntEnum):
    """A phase of the three-phase network; the value is its index in a :data:`PerPhase`."""

    L1 = 0
    L2 = 1
    L3 = 2

    def __str__(self) -> str:
        return self.name


PHASES: tuple[Phase, Phase, Phase] = (Phase.L1, Phase.L2, Phase.L3)


class NodeKind(StrEnum):
    """What a node stands for in the installation (informative; the algorithm treats all alike)."""

    MAIN_BOARD = "main_board"  # TGBT
    SUB_BOARD = "sub_board"  # TD
    GROUP = "group"  # a group of chargers sharing a feeder or a contractual limit


def per_phase(value: float) -> PerPhase:
    """The same ``value`` on the three phases."""
    return (value, value, value)


def to_seconds(when: Timestamp) -> float:
    """Seconds of a :data:`Timestamp`; a naive datetime is refused (it has no defined instant)."""
    if isinstance(when, datetime):
        if when.tzinfo is None or when.utcoffset() is None:
            raise EmsError(f"naive datetime {when.isoformat()} has no timezone")
        return when.timestamp()
    return float(when)


def non_ev_load(meter_total: PerPhase, ev_draws: Iterable[PerPhase]) -> PerPhase:
    """The non-EV load of a node from its meter's total and the EV draws below it (never < 0).

    Use it when a node's meter also measures the chargers below it: the allocator wants the
    load *without* them, otherwise the EVs would be counted twice.
    """
    total = list(meter_total)
    for draw in ev_draws:
        for index in range(3):
            total[index] -= draw[index]
    return (max(total[0], 0.0), max(total[1], 0.0), max(total[2], 0.0))


def _check_finite(owner: str, name: str, values: Sequence[float], *, non_negative: bool, phases: bool = True) -> None:
    if phases and len(values) != 3:
        raise TreeError(f"{owner}: {name} needs one value per phase (L1, L2, L3), got {len(values)}")
    for value in values:
        if not math.isfinite(value):
            raise TreeError(f"{owner}: {name} must be finite, got {value!r}")
        if non_negative and value < 0:
            raise TreeError(f"{owner}: {name} must be >= 0, got {value!r}")


@dataclass(frozen=True, slots=True)
class Node:
    """A board or group of the site, with its optional limits and its latest meter reading.

    ``max_current_a`` is a limit per phase (one number for the three phases, or one per phase);
    ``max_power_w`` is a limit on the total over the three phases, converted to current with the
    allocator's voltage. ``measured_load`` is the non-EV load on this node in A per phase (None: the
    node has no meter); ``production`` is local production or battery discharge behind this node,
    which reduces its load. ``measured_at`` is when ``measured_load`` was read; past the
    allocator's meter timeout the reading is stale and ``fallback_load`` (a conservative
    estimate) replaces it; with no fallback a stale node is treated as fully loaded.
    ``fallback_load`` is also the static load estimate of a node without a meter.
    """

    id: str
    parent: str | None = None
    kind: NodeKind = NodeKind.SUB_BOARD
    max_current_a: float | PerPhase | None = None
    max_power_w: float | None = None
    measured_load: PerPhase | None = None
    production: PerPhase | None = None
    measured_at: Timestamp | None = None
    fallback_load: float | PerPhase | None = None
    name: str = ""

    def __post_init__(self) -> None:
        owner = f"node {self.id!r}"
        if not self.id:
            raise TreeError("a node needs a non-empty id")
        if self.parent == self.id:
            raise TreeError(f"{owner} is its own parent")
        limit = self.current_limit
        if limit is not None:
            _check_finite(owner, "max_current_a", limit, non_negative=True)
        if self.max_power_w is not None:
            _check_finite(owner, "max_power_w", (self.max_power_w,), non_negative=True, phases=False)
        if self.measured_load is not None:
            _check_finite(owner, "measured_load", self.measured_load, non_negative=False)
        if self.production is not None:
            _check_finite(owner, "production", self.production, non_negative=True)
        fallback = self.fallback
        if fallback is not None:
            _check_finite(owner, "fallback_load", fallback, non_negative=False)
        if self.measured_at is not None:
            to_seconds(self.measured_at)

    @property
    def current_limit(self) -> PerPhase | None:
        """``max_current_a`` as one value per phase (None: no current limit)."""
        return _phases(self.max_current_a)

    @property
    def fallback(self) -> PerPhase | None:
        """``fallback_load`` as one value per phase."""
        return _phases(self.fallback_load)

    @property
    def limited(self) -> bool:
        """Whether this node has any limit at all."""
        return self.max_current_a is not None or self.max_power_w is not None


def _phases(value: float | PerPhase | None) -> PerPhase | None:
    if value is None or isinstance(value, tuple):
        return value
    return per_phase(float(value))


@dataclass(frozen=True, slots=True)
class Charger:
    """A charging point (one connector / EVSE), a leaf attached to node ``node``.

    A single-phase charger draws on ``phase`` only (the phase of the board it is wired to);
    a three-phase charger draws the same current on the three phases. ``priority`` is the
    charger's default priority (higher is served first); a session may override it.
    """

    id: str
    node: str
    max_current_a: float = 32.0
    min_current_a: float = 6.0
    phases: Literal[1, 3] = 3
    phase: Phase = Phase.L1
    priority: int = 0
    name: str = ""

    def __post_init__(self) -> None:
        owner = f"charger {self.id!r}"
        if not self.id:
            raise TreeError("a charger needs a non-empty id")
        _check_finite(
            owner, "current limits", (self.min_current_a, self.max_current_a), non_negative=True, phases=False
        )
        if self.min_current_a <= 0:
            raise TreeError(f"{owner}: min_current_a must be > 0, got {self.min_current_a!r}")
        if self.max_current_a < self.min_current_a:
            raise TreeError(f"{owner}: max_current_a {self.max_current_a} is below min_current_a {self.min_current_a}")
        if self.phases not in (1, 3):
            raise TreeError(f"{owner}: phases must be 1 or 3, got {self.phases!r}")

    @property
    def used_phases(self) -> tuple[Phase, ...]:
        """The phases this charger draws on."""
        return PHASES if self.phases == 3 else (self.phase,)


@dataclass(frozen=True, slots=True)
class SiteTree:
    """A validated site: nodes keyed by id, chargers keyed by id, and the root's id.

    Build it with :meth:`build`, which checks the structure. The tree is immutable; use
    :meth:`with_measurement` to get a copy with a node's new meter reading.
    """

    nodes: Mapping[str, Node]
    chargers: Mapping[str, Charger]
    root: str
    _paths: Mapping[str, tuple[str, ...]] = field(repr=False, compare=False)
    _children: Mapping[str, tuple[str, ...]] = field(repr=False, compare=False)

    @classmethod
    def build(cls, nodes: Iterable[Node], chargers: Iterable[Charger] = ()) -> SiteTree:
        """Validate and build a tree; raise :class:`TreeError` on the first problem found.

        Rules: node ids are unique, charger ids are unique and distinct from node ids, there is
        exactly one root (a node without parent), every parent exists, every node is reachable
        from the root (no cycles), every charger is attached to an existing node.
        """
        node_map: dict[str, Node] = {}
        for node in nodes:
            if node.id in node_map:
                raise TreeError(f"duplicate node id {node.id!r}")
            node_map[node.id] = node
        if not node_map:
            raise TreeError("a site tree needs at least one node")
        roots = [node.id for node in node_map.values() if node.parent is None]
        if not roots:
            raise TreeError("no root node (every node has a parent: there is a cycle)")
        if len(roots) > 1:
            raise TreeError(f"more than one root node: {', '.join(sorted(roots))}")
        children: dict[str, list[str]] = {node_id: [] for node_id in node_map}
        for node in node_map.values():
            if node.parent is None:
                continue
            if node.parent not in node_map:
                raise TreeError(f"node {node.id!r} has unknown parent {node.parent!r}")
            children[node.parent].append(node.id)
        root = roots[0]
        paths: dict[str, tuple[str, ...]] = {root: (root,)}
        stack = [root]
        while stack:
            current = stack.pop()
            for child in children[current]:
                paths[child] = (child, *paths[current])
                stack.append(child)
        unreachable = sorted(set(node_map) - set(paths))
        if unreachable:
            raise TreeError(f"nodes in a cycle, not under root {root!r}: {', '.join(unreachable)}")
        charger_map: dict[str, Charger] = {}
        for charger in chargers:
            if charger.id in charger_map:
                raise TreeError(f"duplicate charger id {charger.id!r}")
            if charger.id in node_map:
                raise TreeError(f"charger id {charger.id!r} is also a node id")
            if charger.node not in node_map:
                raise TreeError(f"charger {charger.id!r} is attached to unknown node {charger.node!r}")
            charger_map[charger.id] = charger
        return cls(
            nodes=MappingProxyType(node_map),
            chargers=MappingProxyType(charger_map),
            root=root,
            _paths=MappingProxyType(paths),
            _children=MappingProxyType({key: tuple(value) for key, value in children.items()}),
        )

    def path(self, node_id: str) -> tuple[str, ...]:
        """The node and its ancestors, from ``node_id`` up to the root."""
        try:
            return self._paths[node_id]
        except KeyError:
            raise TreeError(f"unknown node {node_id!r}") from None

    def charger_path(self, charger_id: str) -> tuple[str, ...]:
        """The nodes a charger's current flows through, from its own node up to the root."""
        return self.path(self.charger(charger_id).node)

    def charger(self, charger_id: str) -> Charger:
        """The charger ``charger_id``."""
        try:
            return self.chargers[charger_id]
        except KeyError:
            raise TreeError(f"unknown charger {charger_id!r}") from None

    def children(self, node_id: str) -> tuple[str, ...]:
        """The direct child nodes of ``node_id``."""
        self.path(node_id)
        return self._children[node_id]

    def depth(self, node_id: str) -> int:
        """0 for the root, 1 for its children, and so on."""
        return len(self.path(node_id)) - 1

    def with_measurement(
        self,
        node_id: str,
        load: PerPhase | None,
        at: Timestamp | None = None,
        production: PerPhase | None = None,
    ) -> SiteTree:
        """A copy of the tree with ``node_id``'s meter reading replaced."""
        node = replace(self.nodes[self.path(node_id)[0]], measured_load=load, measured_at=at, production=production)
        return self.with_node(node)

    def with_node(self, node: Node) -> SiteTree:
        """A copy of the tree with a node replaced (same id and parent: the shape cannot change)."""
        old = self.nodes.get(node.id)
        if old is None or old.parent != node.parent:
            raise TreeError(f"with_node can only replace an existing node in place, not {node.id!r}")
        nodes = dict(self.nodes)
        nodes[node.id] = node
        return replace(self, nodes=MappingProxyType(nodes))
