"""The network as a graph, drawn top to bottom: the figure of ``cnnviz.graph.connections``'
nodes and typed edges placed by ``cnnviz.graph.layout``.

Edges are lines along their routes, one trace per edge kind (one legend entry and one colour
each; every segment of a kind in that trace, separated by ``None``, so a thousand edges are
a handful of traces). Nodes are one scatter trace whose ``customdata`` is the node key: a page
makes them clickable with ``st.plotly_chart(fig, on_select="rerun", selection_mode="points")``
and reads the clicked key from the selection's ``points[i]["customdata"]``.
"""
from __future__ import annotations

import plotly.graph_objects as go

from cnnviz.errors import fmt_shape
from cnnviz.graph.connections import EDGE_KINDS, Graph, Node
from cnnviz.graph.layout import Layout

EDGE_NAMES = {"main": "main path",
              "identity": "residual shortcut (identity)",
              "projection": "residual shortcut (1×1 projection)",
              "dense": "dense concatenation",
              "branch": "Inception branch",
              "transition": "transition"}
EDGE_COLOURS = {"main": "#8c8c8c", "identity": "#2ca02c", "projection": "#ff7f0e",
                "dense": "#9467bd", "branch": "#1f77b4", "transition": "#8c564b"}
EDGE_WIDTHS = {"main": 2.0, "identity": 2.0, "projection": 2.0, "dense": 1.5,
               "branch": 1.8, "transition": 2.5}

NODE_SYMBOLS = {"input": "square", "output": "square", "layer": "circle",
                "add": "circle-cross-open", "cat": "diamond", "group": "square"}
NODE_SIZES = {"input": 14, "output": 14, "layer": 11, "add": 16, "cat": 13, "group": 26}
NODE_COLOURS = {"input": "#444444", "output": "#444444", "layer": "#1f4e79",
                "add": "#2ca02c", "cat": "#9467bd", "group": "#c6dbef"}
SELECTED_COLOUR = "#d62728"
SELECTED_SIZE = 8            # added to the marker's size
CHANNEL_COLOUR = "#555555"
FAN = 0.18                   # how far a parallel edge bows out, in layout units

# Above this many nodes (DenseNet-121 or ResNet-18 fully unfolded) the plain layers' labels
# (BatchNorm, ReLU, pooling glue, the add and cat marks) are left to the hover text: a label
# on each of hundreds of rows would only be noise; convolutions and groups keep theirs.
FULL_LABELS_UP_TO = 150
TRIVIAL = ("BatchNorm", "ReLU", "Dropout", "Flatten", "Identity", "Sigmoid", "add", "cat")
PX_PER_LAYER = 60            # a layer's height when every node is labelled
PX_PER_LAYER_DENSE = 30      # when only the non-trivial nodes are
MIN_HEIGHT = 400
SMALL_SIZE = 7               # a trivial layer's marker when labels are sparse
MARGIN = {"l": 10, "r": 10, "t": 40, "b": 10}


def _hover(node: Node) -> str:
    shape = fmt_shape(node.shape) if node.shape else "?"
    text = f"<b>{node.key}</b><br>{node.kind} · {node.label}<br>{shape}"
    if node.members:
        text += f"<br>{len(node.members)} layers"
    return text


def _text(node: Node, full: bool) -> str:
    if node.kind == "group":
        # connections' group labels already start with the path: "b2 · 2 × Residual"
        return node.label if node.label.startswith(node.key) else f"{node.key} · {node.label}"
    if node.kind in ("add", "cat"):
        return ""  # the symbol says it; the channels into it label its edges
    if not full and node.label.startswith(TRIVIAL):
        return ""
    return node.label


def _size(node: Node, full: bool) -> int:
    if not full and node.kind == "layer" and node.label.startswith(TRIVIAL):
        return SMALL_SIZE
    return NODE_SIZES.get(node.kind, 11)


def _side(layout: Layout) -> dict[str, str]:
    """Each node's label on the side of its layer with more room: to the left of a node with
    an edge's dummy point (or another node) just to its right and none to its left."""
    taken: dict[float, list[float]] = {}
    for _, points in layout.routes:
        for x, y in points[1:-1]:
            taken.setdefault(y, []).append(x)
    for x, y in layout.positions.values():
        taken.setdefault(y, []).append(x)
    sides = {}
    for key, (x, y) in layout.positions.items():
        right = any(0 < other - x < 1.5 for other in taken[y])
        left = any(0 < x - other < 1.5 for other in taken[y])
        sides[key] = "middle left" if right and not left else "middle right"
    return sides


def _channels(shape: tuple[int, ...] | None) -> int | None:
    return shape[0] if shape else None


def _channel_text(shape: tuple[int, ...]) -> str:
    return f"{shape[0]} ch" if len(shape) > 1 else str(shape[0])  # (F,): features, no "ch"


def _channel_labels(graph: Graph, layout: Layout) -> tuple[list[float], list[float], list[str]]:
    """``"128 ch"`` beside the middle of an edge into a ``cat``, of a shortcut into an
    ``add``, and of the first edge out of a node whose channel count is not that of the
    tensors into it: where the channel count changes, the reader sees it, once."""
    into: dict[str, set[int]] = {}
    for edge in graph.edges:
        c = _channels(edge.shape)
        if c is not None:
            into.setdefault(edge.target, set()).add(c)
    kinds = {node.key: node.kind for node in graph.nodes}
    said: set[tuple[str, int]] = set()
    xs: list[float] = []
    ys: list[float] = []
    texts: list[str] = []
    for edge, points in layout.routes:
        c = _channels(edge.shape)
        if c is None or kinds.get(edge.source) == "input":
            continue
        target = kinds.get(edge.target)
        changed = (edge.source in into and into[edge.source] != {c}
                   and (edge.source, c) not in said)
        if target == "cat" or (target == "add" and edge.kind != "main") or changed:
            said.add((edge.source, c))
            (x0, y0), (x1, y1) = _middle(points)
            xs.append((x0 + x1) / 2 + 0.04)  # beside the line, not on it
            ys.append((y0 + y1) / 2)
            texts.append(_channel_text(edge.shape))  # type: ignore[arg-type]
    return xs, ys, texts


def _middle(points: list[tuple[float, float]]) -> tuple[tuple[float, float], ...]:
    mid = (len(points) - 1) // 2
    return points[mid], points[mid + 1]


def _fanned(layout: Layout) -> list[tuple[str, list[tuple[float, float]]]]:
    """Each route with its kind; a second (third…) edge between the same two nodes (a folded
    stage reached by the main path and by a shortcut) bows out sideways instead of hiding
    under the first."""
    seen: dict[tuple[str, str], int] = {}
    fanned = []
    for edge, points in layout.routes:
        n = seen.get((edge.source, edge.target), 0)
        seen[(edge.source, edge.target)] = n + 1
        if n and len(points) == 2:
            (x0, y0), (x1, y1) = points
            bow = FAN * ((n + 1) // 2) * (1 if n % 2 else -1)
            points = [points[0], ((x0 + x1) / 2 + bow, (y0 + y1) / 2), points[1]]
        fanned.append((edge.kind, points))
    return fanned


def _edge_traces(layout: Layout) -> list[go.Scatter]:
    lines: dict[str, tuple[list, list]] = {}
    for kind, points in _fanned(layout):
        xs, ys = lines.setdefault(kind, ([], []))
        xs.extend([x for x, _ in points] + [None])
        ys.extend([y for _, y in points] + [None])
    order = [k for k in EDGE_KINDS if k in lines] + sorted(set(lines) - set(EDGE_KINDS))
    return [go.Scatter(x=lines[k][0], y=lines[k][1], mode="lines", name=EDGE_NAMES.get(k, k),
                       line={"color": EDGE_COLOURS.get(k, "#aaaaaa"),
                             "width": EDGE_WIDTHS.get(k, 1.5)},
                       hoverinfo="skip", legendgroup=k)
            for k in order]


def figure_height(layout: Layout, nodes: int) -> int:
    per_layer = PX_PER_LAYER if nodes <= FULL_LABELS_UP_TO else PX_PER_LAYER_DENSE
    return max(MIN_HEIGHT, per_layer * layout.layers + MARGIN["t"] + MARGIN["b"])


def graph_figure(graph: Graph, layout: Layout, selected: str | None = None,
                 height: int | None = None) -> go.Figure:
    """The graph top to bottom: edges along their routes (one trace and legend entry per edge
    kind), nodes as one scatter trace with ``customdata`` = node key, ``selected`` ringed in
    red and drawn larger. ``add`` is a ⊕ (circle-cross), ``cat`` a diamond, a folded group a
    large box with its name and label. Channel counts label the edges where they change.

    Height: 60 px a layer (at least 400) when every node is labelled; above 150 nodes only
    convolutions, pooling, linear layers and groups keep a label (BatchNorm, ReLU, add, cat
    are in the hover text) and a layer takes 30 px, so DenseNet-121 fully unfolded stays a
    readable scroll. ``height`` overrides it.
    """
    nodes = [n for n in graph.nodes if n.key in layout.positions]
    full = len(nodes) <= FULL_LABELS_UP_TO
    sides = _side(layout)
    fig = go.Figure(_edge_traces(layout))
    cx, cy, ctext = _channel_labels(graph, layout)
    if ctext:
        fig.add_trace(go.Scatter(x=cx, y=cy, text=ctext, mode="text", textposition="middle right",
                                 textfont={"size": 9, "color": CHANNEL_COLOUR},
                                 hoverinfo="skip", showlegend=False, name="channels"))
    is_selected = [n.key == selected for n in nodes]
    fig.add_trace(go.Scatter(
        x=[layout.positions[n.key][0] for n in nodes],
        y=[layout.positions[n.key][1] for n in nodes],
        mode="markers+text", name="nodes", showlegend=False,
        customdata=[n.key for n in nodes],
        text=[_text(n, full) for n in nodes],
        textposition=[sides[n.key] for n in nodes],
        textfont={"size": 11 if full else 10, "color": "#222222"},
        hovertext=[_hover(n) for n in nodes], hovertemplate="%{hovertext}<extra></extra>",
        marker={"symbol": [NODE_SYMBOLS.get(n.kind, "circle") for n in nodes],
                "size": [_size(n, full) + (SELECTED_SIZE if s else 0)
                         for n, s in zip(nodes, is_selected)],
                "color": [SELECTED_COLOUR if s else NODE_COLOURS.get(n.kind, "#1f4e79")
                          for n, s in zip(nodes, is_selected)],
                "line": {"color": [SELECTED_COLOUR if s else NODE_COLOURS["add"]
                                   if n.kind == "add" else "#1f4e79"
                                   for n, s in zip(nodes, is_selected)],
                         "width": [3 if s else 2 if n.kind == "add" else 1
                                   for n, s in zip(nodes, is_selected)]}}))
    fig.update_layout(
        height=height or figure_height(layout, len(nodes)), margin=MARGIN,
        plot_bgcolor="white", hovermode="closest", dragmode="pan",
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "x": 0},
        xaxis={"visible": False, "range": [-1.2, layout.width + 1.4]},
        yaxis={"visible": False, "range": [layout.height + 0.6, -0.6]})
    return fig
