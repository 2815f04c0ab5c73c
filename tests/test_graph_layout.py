"""The layered layout of a network's graph: no two nodes overlap, every edge's route runs from
its source to its target, and a skip edge (residual shortcut, dense concatenation, Inception
branch) bends around the nodes it passes instead of through them. On hand-built graphs of each
block's shape, and on every preset folded at depth 1 and fully unfolded."""
from __future__ import annotations

import math

import pytest

from cnnviz.graph import connections as connections_module
from cnnviz.graph.connections import Edge, Graph, Node
from cnnviz.graph.layout import HGAP, VGAP, Layout, layout
from cnnviz.presets import PRESETS

MIN_GAP = 0.99 * HGAP
# A route must stay this far (in layout units) from every node it does not start or end at.
CLEARANCE = 0.25


def _node(key: str, kind: str = "layer", label: str | None = None,
          shape: tuple[int, ...] | None = (64, 24, 24)) -> Node:
    depth = 0 if kind in ("input", "output") else key.count(".") + 1
    return Node(key, label or key, kind, shape, depth)


def _graph(nodes: list[Node], edges: list[tuple[str, str, str]]) -> Graph:
    shapes = {n.key: n.shape for n in nodes}
    return Graph(nodes, [Edge(s, t, k, shapes[s]) for s, t, k in edges])


def chain(n: int = 6) -> Graph:
    keys = ["input", *[f"b{i}" for i in range(1, n - 1)], "output"]
    nodes = [_node(k, "input" if k == "input" else "output" if k == "output" else "group")
             for k in keys]
    return _graph(nodes, [(a, b, "main") for a, b in zip(keys, keys[1:])])


def residual(projection: bool = False) -> Graph:
    """One Residual fully unfolded: the body, its add, an identity or a 1×1 projection."""
    body = ["b2.0.body.conv1", "b2.0.body.bn1", "b2.0.body.relu", "b2.0.body.conv2",
            "b2.0.body.bn2"]
    nodes = [_node("input", "input"), _node("b1"), *[_node(k) for k in body],
             _node("add", "add"), _node("b2.0.relu"), _node("output", "output")]
    edges = [("input", "b1", "main"), ("b1", body[0], "main")]
    edges += [(a, b, "main") for a, b in zip(body, body[1:])]
    edges += [(body[-1], "add", "main"), ("add", "b2.0.relu", "main"),
              ("b2.0.relu", "output", "main")]
    if projection:
        nodes.append(_node("b2.0.shortcut.0"))
        edges += [("b1", "b2.0.shortcut.0", "projection"),
                  ("b2.0.shortcut.0", "add", "projection")]
    else:
        edges.append(("b1", "add", "identity"))
    return _graph(nodes, edges)


def dense(layers: int = 4) -> Graph:
    """A DenseBlock fully unfolded: x = cat(x, layer(x)) per layer, then a transition."""
    nodes = [_node("input", "input"), _node("b1")]
    edges: list[tuple[str, str, str]] = [("input", "b1", "main")]
    x = "b1"
    for i in range(layers):
        inner = [f"b2.layers.{i}.{j}" for j in range(3)]
        labels = ["BatchNorm2d", "ReLU", "Conv2d 3×3 · 32"]
        nodes += [_node(k, label=t) for k, t in zip(inner, labels)] + [_node(f"cat_{i}", "cat")]
        edges.append((x, inner[0], "main"))
        edges += [(a, b, "main") for a, b in zip(inner, inner[1:])]
        edges += [(inner[-1], f"cat_{i}", "main"), (x, f"cat_{i}", "dense")]
        x = f"cat_{i}"
    nodes += [_node("t1", "group"), _node("output", "output")]
    edges += [(x, "t1", "transition"), ("t1", "output", "main")]
    return _graph(nodes, edges)


def inception() -> Graph:
    """One Inception block fully unfolded: four paths p1..p4 of different lengths, one cat."""
    paths = {"p1": ["b3.0.p1.0", "b3.0.p1.1"],
             "p2": ["b3.0.p2.0", "b3.0.p2.1", "b3.0.p2.2", "b3.0.p2.3"],
             "p3": ["b3.0.p3.0", "b3.0.p3.1", "b3.0.p3.2", "b3.0.p3.3"],
             "p4": ["b3.0.p4.0", "b3.0.p4.1", "b3.0.p4.2"]}
    nodes = [_node("input", "input"), _node("b2", "group"), _node("cat", "cat"),
             _node("b4", "group"), _node("output", "output")]
    edges = [("input", "b2", "main"), ("cat", "b4", "main"), ("b4", "output", "main")]
    for keys in paths.values():
        nodes += [_node(k) for k in keys]
        edges.append(("b2", keys[0], "branch"))
        edges += [(a, b, "branch") for a, b in zip(keys, keys[1:])]
        edges.append((keys[-1], "cat", "branch"))
    return _graph(nodes, edges)


HAND_BUILT = {"chain": chain(), "residual": residual(), "projection": residual(True),
              "dense": dense(), "inception": inception()}


def _segment_distance(p: tuple[float, float], a: tuple[float, float],
                      b: tuple[float, float]) -> float:
    (px, py), (ax, ay), (bx, by) = p, a, b
    dx, dy = bx - ax, by - ay
    t = 0.0 if dx == dy == 0 else max(0.0, min(1.0, ((px - ax) * dx + (py - ay) * dy)
                                               / (dx * dx + dy * dy)))
    return math.hypot(px - ax - t * dx, py - ay - t * dy)


def check_layout(graph: Graph, lay: Layout) -> None:
    assert set(lay.positions) == {n.key for n in graph.nodes}
    # No overlap: one layer per distinct y, nodes in a layer at least HGAP apart in x.
    by_layer: dict[float, list[float]] = {}
    for x, y in lay.positions.values():
        assert y == pytest.approx(round(y / VGAP) * VGAP)
        by_layer.setdefault(y, []).append(x)
    for y, xs in by_layer.items():
        xs.sort()
        gaps = [b - a for a, b in zip(xs, xs[1:])]
        assert all(gap >= MIN_GAP for gap in gaps), (y, xs)
    assert min(x for x, _ in lay.positions.values()) >= 0
    assert max(x for x, _ in lay.positions.values()) <= lay.width + 1e-9
    assert max(y for _, y in lay.positions.values()) == pytest.approx(lay.height)
    # Every edge drawn once, from its source's position to its target's, downward.
    assert [edge for edge, _ in lay.routes] == graph.edges
    positions = list(lay.positions.items())
    for edge, points in lay.routes:
        assert points[0] == lay.positions[edge.source]
        assert points[-1] == lay.positions[edge.target]
        ys = [y for _, y in points]
        assert ys == sorted(ys) and len(set(ys)) == len(ys), (edge, points)
        # Through every layer it crosses: no segment spans a layer holding a node.
        assert all(b - a == pytest.approx(VGAP) for a, b in zip(ys, ys[1:])), (edge, ys)
        top, bottom = ys[0], ys[-1]
        for key, p in positions:
            if key in (edge.source, edge.target) or not top <= p[1] <= bottom:
                continue
            near = min(_segment_distance(p, a, b) for a, b in zip(points, points[1:]))
            assert near >= CLEARANCE, (edge, key, p, points)


@pytest.mark.parametrize("name", sorted(HAND_BUILT))
def test_hand_built_graphs_have_no_overlap_and_clean_routes(name):
    graph = HAND_BUILT[name]
    check_layout(graph, layout(graph))


def test_chain_is_one_straight_column():
    lay = layout(chain(7))
    assert {x for x, _ in lay.positions.values()} == {0.0}
    assert sorted(y for _, y in lay.positions.values()) == [i * VGAP for i in range(7)]
    assert lay.width == 0 and lay.height == 6 * VGAP and lay.layers == 7


@pytest.mark.parametrize("name", ["residual", "projection", "dense"])
def test_main_path_is_straight_and_skip_edges_bend_beside_it(name):
    graph = HAND_BUILT[name]
    lay = layout(graph)
    main = {k for e in graph.edges if e.kind == "main" for k in (e.source, e.target)}
    assert len({lay.positions[k][0] for k in main}) == 1
    spine_x = lay.positions["input"][0]
    for edge, points in lay.routes:
        if edge.kind in ("identity", "dense") and len(points) > 2:
            assert all(x != spine_x for x, _ in points[1:-1])


def test_inception_paths_sit_side_by_side_between_their_ends():
    lay = layout(inception())
    # The spine runs straight through the block: from b2 through a longest path to its cat.
    assert lay.positions["b2"][0] == lay.positions["cat"][0] == lay.positions["output"][0]
    first = [lay.positions[f"b3.0.{p}.0"] for p in ("p1", "p2", "p3", "p4")]
    assert len({y for _, y in first}) == 1 and len({x for x, _ in first}) == 4
    assert lay.positions["cat"][1] > max(y for _, y in first)


def test_empty_graph_and_a_lone_node():
    assert layout(Graph([], [])) == Layout({}, [], 0.0, 0.0)
    lone = layout(Graph([_node("input", "input")], []))
    assert lone.positions == {"input": (0.0, 0.0)} and lone.routes == []


def test_parallel_edges_each_get_a_route():
    graph = _graph([_node("input", "input"), _node("a"), _node("output", "output")],
                   [("input", "a", "main"), ("input", "a", "identity"), ("a", "output", "main")])
    lay = layout(graph)
    check_layout(graph, lay)
    assert len(lay.routes) == 3


connections = getattr(connections_module, "connections", None)
needs_connections = pytest.mark.skipif(connections is None, reason="connections() not there yet")


@needs_connections
@pytest.mark.parametrize("name", sorted(PRESETS))
@pytest.mark.parametrize("depth", [1, None], ids=["stages", "unfolded"])
def test_every_preset_lays_out_without_overlap(name, depth):
    graph = connections(PRESETS[name].spec, depth=depth)
    lay = layout(graph)
    check_layout(graph, lay)
    # The main path is one straight column: input and output one above the other.
    assert lay.positions["input"][0] == lay.positions["output"][0]


@needs_connections
@pytest.mark.parametrize("name, opened", [("resnet18", {"b3", "b3.0"}),
                                          ("googlenet", {"b3", "b3.0"}),
                                          ("densenet", {"b2"})])
def test_opened_blocks_lay_out_without_overlap(name, opened):
    graph = connections(PRESETS[name].spec, open=frozenset(opened))
    check_layout(graph, layout(graph))
