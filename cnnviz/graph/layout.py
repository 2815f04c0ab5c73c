"""Where each node of a network's graph is drawn: igraph's Sugiyama layered layout, top to
bottom, the main path kept straight.

igraph puts every node on a layer (the longest path from the input, so a layer is one step
down the network), orders each layer to reduce crossings, and routes an edge that spans
several layers through one dummy point per layer it crosses. Those dummy points keep a
residual shortcut or a dense concatenation beside the main path instead of through its
nodes: a dummy takes a slot in its layer like a node, at least ``HGAP`` from its neighbours.

Then two post-passes. Where igraph left two slots of a layer closer than ``HGAP`` (it does,
rarely), they are pushed apart in order. And the spine (the path from input to output with
the most ``main`` edges, the longest such) is made straight by sliding each layer sideways as
a whole, so that its spine node (or the spine edge's dummy) sits at x = 0. Sliding a whole
layer keeps its order and its gaps, so no two nodes come closer than ``HGAP``, and a skip
edge beside the spine runs parallel to it.

No Streamlit, no Plotly: the figure (``cnnviz.figures_graph``) scales these units to pixels.
"""
from __future__ import annotations

from dataclasses import dataclass

import igraph

from cnnviz.graph.connections import Edge, Graph

HGAP = 1.0          # the least distance between two nodes (or dummies) of one layer, in x
VGAP = 1.0          # the distance between two layers, in y (downward)
MAX_ITER = 100      # igraph's crossing-reduction sweeps; crossings barely drop after ~30

Point = tuple[float, float]


@dataclass
class Layout:
    positions: dict[str, Point]            # node key → (x, y); y grows downward, layer × VGAP
    routes: list[tuple[Edge, list[Point]]]  # each edge: source, its dummy points, target
    width: float                           # max x − min x (min x is 0)
    height: float                          # the last layer's y (the first layer is at 0)

    @property
    def layers(self) -> int:
        return round(self.height / VGAP) + 1 if self.positions else 0


def _spine(n: int, edges: list[tuple[int, int]], kinds: list[str], order: list[int],
           start: list[int], ends: list[int]) -> list[int]:
    """The edge indices of the path with the most ``main`` edges (ties: the most edges) from
    one of ``start`` to one of ``ends``: the path drawn straight."""
    score: list[tuple[int, int] | None] = [None] * n
    via: list[int] = [-1] * n
    for v in start:
        score[v] = (0, 0)
    out: list[list[int]] = [[] for _ in range(n)]
    for i, (s, _) in enumerate(edges):
        out[s].append(i)
    for u in order:
        if score[u] is None:
            continue
        for i in out[u]:
            t = edges[i][1]
            main, length = score[u]  # type: ignore[misc]
            cand = (main + (kinds[i] == "main"), length + 1)
            if score[t] is None or cand > score[t]:  # type: ignore[operator]
                score[t], via[t] = cand, i
    reached = [v for v in ends if score[v] is not None]
    if not reached:
        return []
    v = max(reached, key=lambda k: score[k])  # type: ignore[arg-type,return-value]
    path: list[int] = []
    while via[v] >= 0:
        path.append(via[v])
        v = edges[via[v]][0]
    return path[::-1]


def _spread(coords: list[Point], routing: list[list[Point]]) -> None:
    """Push apart, in place, the nodes and dummy points of a layer that igraph left closer than
    ``HGAP`` (it does, on GoogLeNet fully unfolded: two paths' nodes half a gap apart),
    keeping their left-to-right order."""
    layers: dict[float, list[tuple[float, int, int]]] = {}
    for i, (x, y) in enumerate(coords):
        layers.setdefault(y, []).append((x, -1, i))
    for e, points in enumerate(routing):
        for j, (x, y) in enumerate(points):
            layers.setdefault(y, []).append((x, e, j))
    for y, items in layers.items():
        items.sort()
        least = None
        for x, e, j in items:
            if least is not None and x < least:
                x = least
                if e < 0:
                    coords[j] = (x, y)
                else:
                    routing[e][j] = (x, y)
            least = x + HGAP


def layout(graph: Graph) -> Layout:
    """Lay ``graph`` out top to bottom: layer index → y (downward), the nodes of a layer spread
    on x at least ``HGAP`` apart, long edges routed through dummy points."""
    keys = [node.key for node in graph.nodes]
    if not keys:
        return Layout({}, [], 0.0, 0.0)
    index = {key: i for i, key in enumerate(keys)}
    edges = [(index[e.source], index[e.target]) for e in graph.edges]
    kinds = [e.kind for e in graph.edges]
    g = igraph.Graph(n=len(keys), edges=edges, directed=True)
    result = g.layout_sugiyama(hgap=HGAP, vgap=VGAP, maxiter=MAX_ITER)
    coords = [(float(x), float(y)) for x, y in result.coords]
    routing = [[(float(x), float(y)) for x, y in points] for points in result.edge_routing]
    _spread(coords, routing)

    # The spine's point in each layer: its nodes, and the dummies of its multi-layer edges.
    order = g.topological_sorting() if g.is_dag() else list(range(len(keys)))
    sources = [v for v in range(len(keys)) if g.indegree(v) == 0]
    sinks = [v for v in range(len(keys)) if g.outdegree(v) == 0]
    start = [index["input"]] if "input" in index else sources
    ends = [index["output"]] if "output" in index else sinks
    shift: dict[float, float] = {}
    spine = _spine(len(keys), edges, kinds, order, start, ends)
    for i in spine:
        s, t = edges[i]
        for x, y in [coords[s], *routing[i], coords[t]]:
            shift.setdefault(y, -x)

    def moved(p: Point) -> Point:
        return (p[0] + shift.get(p[1], 0.0), p[1])

    coords = [moved(p) for p in coords]
    routing = [[moved(p) for p in points] for points in routing]
    xs = [x for x, _ in coords] + [x for points in routing for x, _ in points]
    left = min(xs)
    coords = [(x - left, y) for x, y in coords]
    routes = [(edge, [coords[s], *[(x - left, y) for x, y in points], coords[t]])
              for edge, (s, t), points in zip(graph.edges, edges, routing)]
    return Layout(positions=dict(zip(keys, coords)), routes=routes,
                  width=max(xs) - left, height=max(y for _, y in coords))
