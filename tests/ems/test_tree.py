"""The site tree: structure, validation and helpers."""

from __future__ import annotations

from datetime import UTC, datetime
import math

import pytest

from custom_components.cariflex.ems import (
    PHASES,
    Charger,
    EmsError,
    Node,
    NodeKind,
    Phase,
    SiteTree,
    TreeError,
    non_ev_load,
    per_phase,
    to_seconds,
)


def _site() -> SiteTree:
    return SiteTree.build(
        [
            Node("tgbt", kind=NodeKind.MAIN_BOARD, max_current_a=63),
            Node("td1", parent="tgbt", max_current_a=(32, 32, 25)),
            Node("grp", parent="td1", kind=NodeKind.GROUP, max_power_w=11_000),
            Node("td2", parent="tgbt"),
        ],
        [
            Charger("c1", "grp"),
            Charger("c2", "td2", phases=1, phase=Phase.L2),
            Charger("c3", "tgbt", max_current_a=16),
        ],
    )


def test_structure() -> None:
    site = _site()
    assert site.root == "tgbt"
    assert site.path("grp") == ("grp", "td1", "tgbt")
    assert site.charger_path("c1") == ("grp", "td1", "tgbt")
    assert site.charger_path("c3") == ("tgbt",)
    assert sorted(site.children("tgbt")) == ["td1", "td2"]
    assert site.children("grp") == ()
    assert [site.depth(node) for node in ("tgbt", "td1", "grp")] == [0, 1, 2]
    assert site.charger("c2").used_phases == (Phase.L2,)
    assert site.charger("c1").used_phases == PHASES
    assert site.nodes["tgbt"].current_limit == (63.0, 63.0, 63.0)
    assert site.nodes["td1"].current_limit == (32, 32, 25)
    assert site.nodes["td2"].current_limit is None
    assert not site.nodes["td2"].limited
    assert site.nodes["grp"].limited
    assert str(Phase.L3) == "L3"


def test_lookups_of_unknown_ids_raise() -> None:
    site = _site()
    with pytest.raises(TreeError, match="unknown node 'nope'"):
        site.path("nope")
    with pytest.raises(TreeError, match="unknown node"):
        site.children("nope")
    with pytest.raises(TreeError, match="unknown charger 'nope'"):
        site.charger("nope")


def test_with_measurement_returns_a_new_tree() -> None:
    site = _site()
    measured = site.with_measurement("td1", (10.0, 11.0, 12.0), at=5.0, production=(1.0, 0.0, 0.0))
    assert measured.nodes["td1"].measured_load == (10.0, 11.0, 12.0)
    assert measured.nodes["td1"].measured_at == 5.0
    assert measured.nodes["td1"].production == (1.0, 0.0, 0.0)
    assert site.nodes["td1"].measured_load is None
    assert measured.path("grp") == ("grp", "td1", "tgbt")
    with pytest.raises(TreeError, match="unknown node"):
        site.with_measurement("nope", None)


def test_with_node_cannot_change_the_shape() -> None:
    site = _site()
    assert site.with_node(Node("td2", parent="tgbt", max_current_a=10)).nodes["td2"].current_limit == per_phase(10)
    with pytest.raises(TreeError, match="in place"):
        site.with_node(Node("td2", parent="td1"))
    with pytest.raises(TreeError, match="in place"):
        site.with_node(Node("new", parent="tgbt"))


@pytest.mark.parametrize(
    ("nodes", "chargers", "message"),
    [
        ([], [], "at least one node"),
        ([Node("a"), Node("a")], [], "duplicate node id 'a'"),
        ([Node("a"), Node("b")], [], "more than one root node: a, b"),
        ([Node("a", parent="b"), Node("b", parent="a")], [], "no root node"),
        ([Node("r"), Node("a", parent="b"), Node("b", parent="a")], [], "nodes in a cycle, not under root 'r': a, b"),
        ([Node("r"), Node("a", parent="x")], [], "node 'a' has unknown parent 'x'"),
        ([Node("r")], [Charger("c", "x")], "charger 'c' is attached to unknown node 'x'"),
        ([Node("r")], [Charger("c", "r"), Charger("c", "r")], "duplicate charger id 'c'"),
        ([Node("r")], [Charger("r", "r")], "charger id 'r' is also a node id"),
    ],
)
def test_invalid_trees(nodes: list[Node], chargers: list[Charger], message: str) -> None:
    with pytest.raises(TreeError, match=message):
        SiteTree.build(nodes, chargers)


def test_invalid_nodes() -> None:
    with pytest.raises(TreeError, match="non-empty id"):
        Node("")
    with pytest.raises(TreeError, match="its own parent"):
        Node("a", parent="a")
    with pytest.raises(TreeError, match="max_current_a must be >= 0"):
        Node("a", max_current_a=(10, -1, 10))
    with pytest.raises(TreeError, match="max_power_w must be finite"):
        Node("a", max_power_w=math.nan)
    with pytest.raises(TreeError, match="measured_load must be finite"):
        Node("a", measured_load=(1.0, math.inf, 0.0))
    with pytest.raises(TreeError, match="one value per phase"):
        Node("a", max_current_a=(10, 10))  # type: ignore[arg-type]
    with pytest.raises(TreeError, match="production must be >= 0"):
        Node("a", production=(-1.0, 0.0, 0.0))
    with pytest.raises(TreeError, match="fallback_load must be finite"):
        Node("a", fallback_load=math.nan)
    with pytest.raises(EmsError, match="no timezone"):
        Node("a", measured_load=(1.0, 1.0, 1.0), measured_at=datetime(2025, 1, 1))
    # A meter net of local production may read a negative load (export): allowed.
    assert Node("a", measured_load=(-3.0, 0.0, 0.0)).measured_load == (-3.0, 0.0, 0.0)
    assert Node("a", fallback_load=5).fallback == (5.0, 5.0, 5.0)


def test_invalid_chargers() -> None:
    with pytest.raises(TreeError, match="non-empty id"):
        Charger("", "r")
    with pytest.raises(TreeError, match="min_current_a must be > 0"):
        Charger("c", "r", min_current_a=0)
    with pytest.raises(TreeError, match="below min_current_a"):
        Charger("c", "r", min_current_a=10, max_current_a=8)
    with pytest.raises(TreeError, match="must be >= 0"):
        Charger("c", "r", min_current_a=-1)
    with pytest.raises(TreeError, match="phases must be 1 or 3"):
        Charger("c", "r", phases=2)  # type: ignore[arg-type]


def test_time_and_load_helpers() -> None:
    when = datetime(2025, 1, 1, tzinfo=UTC)
    assert to_seconds(when) == when.timestamp()
    assert to_seconds(12) == 12.0
    with pytest.raises(EmsError, match="no timezone"):
        to_seconds(datetime(2025, 1, 1))
    assert non_ev_load((20.0, 10.0, 5.0), [(8.0, 8.0, 8.0), (0.0, 4.0, 0.0)]) == (12.0, 0.0, 0.0)
    assert per_phase(7) == (7, 7, 7)
