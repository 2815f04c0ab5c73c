"""The graph figure: one trace and legend entry per edge kind present, the nodes one trace
whose customdata are their keys (what a click in Streamlit returns), the selected node
highlighted, ⊕ for add and a diamond for cat, channel counts where they change, top to
bottom."""
from __future__ import annotations

import pytest

from cnnviz.figures_graph import EDGE_NAMES, FULL_LABELS_UP_TO, graph_figure
from cnnviz.graph import connections as connections_module
from cnnviz.graph.connections import Graph
from cnnviz.graph.layout import layout
from cnnviz.presets import PRESETS
from tests.test_graph_layout import HAND_BUILT, dense, residual

LEGEND = {"main": "main path", "identity": "residual shortcut (identity)",
          "projection": "residual shortcut (1×1 projection)", "dense": "dense concatenation",
          "branch": "Inception branch", "transition": "transition"}


def _figure(graph: Graph, **kwargs):
    return graph_figure(graph, layout(graph), **kwargs)


def _nodes(fig):
    [trace] = [t for t in fig.data if t.name == "nodes"]
    return trace


def _edges(fig):
    return [t for t in fig.data if t.mode == "lines"]


def test_legend_names_are_the_books_words():
    assert EDGE_NAMES == LEGEND


@pytest.mark.parametrize("name", sorted(HAND_BUILT))
def test_one_trace_per_edge_kind_present(name):
    graph = HAND_BUILT[name]
    fig = _figure(graph)
    kinds = {e.kind for e in graph.edges}
    edges = _edges(fig)
    assert sorted(t.name for t in edges) == sorted(LEGEND[k] for k in kinds)
    assert all(t.showlegend is not False for t in edges)
    assert len({t.line.color for t in edges}) == len(edges)
    # Every segment of a kind in its trace: a route's points, then a None.
    for trace in edges:
        kind = next(k for k, v in LEGEND.items() if v == trace.name)
        routes = [r for e, r in layout(graph).routes if e.kind == kind]
        assert list(trace.x).count(None) == len(routes)
        assert len(trace.x) == sum(len(r) + 1 for r in routes)


def test_nodes_are_one_trace_with_their_keys_as_customdata_and_hover():
    graph = residual(projection=True)
    fig = _figure(graph)
    nodes = _nodes(fig)
    assert list(nodes.customdata) == [n.key for n in graph.nodes]
    lay = layout(graph)
    assert list(nodes.x) == [lay.positions[n.key][0] for n in graph.nodes]
    conv = [n.key for n in graph.nodes].index("b2.0.body.conv1")
    assert "b2.0.body.conv1" in nodes.hovertext[conv] and "64×24×24" in nodes.hovertext[conv]


def test_add_and_cat_have_their_own_symbols_and_groups_are_boxes():
    for graph in (residual(), dense()):
        nodes = _nodes(_figure(graph))
        symbols = dict(zip(nodes.customdata, nodes.marker.symbol))
        sizes = dict(zip(nodes.customdata, nodes.marker.size))
        kinds = {n.key: n.kind for n in graph.nodes}
        for key, kind in kinds.items():
            if kind == "add":
                assert symbols[key].startswith("circle-cross")
            elif kind == "cat":
                assert symbols[key] == "diamond"
            elif kind == "group":
                assert symbols[key] == "square"
                assert sizes[key] > max(s for k, s in sizes.items() if kinds[k] == "layer")
            elif kind == "layer":
                assert symbols[key] == "circle"


def test_selected_node_is_highlighted_and_only_it():
    graph = residual()
    plain = _nodes(_figure(graph))
    nodes = _nodes(_figure(graph, selected="b2.0.body.conv2"))
    i = list(nodes.customdata).index("b2.0.body.conv2")
    assert nodes.marker.size[i] > plain.marker.size[i]
    assert nodes.marker.line.width[i] > max(w for j, w in enumerate(nodes.marker.line.width)
                                            if j != i)
    assert nodes.marker.color[i] != plain.marker.color[i]
    others = [j for j in range(len(graph.nodes)) if j != i]
    assert [nodes.marker.size[j] for j in others] == [plain.marker.size[j] for j in others]
    assert _nodes(_figure(graph, selected="no-such-node")).marker.size == plain.marker.size


def test_top_to_bottom_with_a_height_that_grows_with_the_layers():
    small, tall = _figure(residual()), _figure(dense(layers=12))
    for fig in (small, tall):
        lo, hi = fig.layout.yaxis.range
        assert lo > hi  # reversed: layer 0 at the top
        assert fig.layout.xaxis.visible is False and fig.layout.yaxis.visible is False
    assert small.layout.height >= 400
    assert tall.layout.height > small.layout.height
    assert _figure(residual(), height=321).layout.height == 321


def test_channel_counts_label_edges_into_cat_and_shortcuts_into_add():
    texts = [t for t in _figure(dense()).data if t.name == "channels"]
    assert texts and all(s.endswith(" ch") for s in texts[0].text)
    # One on each of the 4 dense concatenations' two inputs.
    assert len(texts[0].text) >= 8
    [labels] = [t for t in _figure(residual()).data if t.name == "channels"]
    assert list(labels.text) == ["64 ch"]  # the identity shortcut into the add


def test_large_graphs_keep_labels_only_for_non_trivial_nodes():
    graph = dense(layers=FULL_LABELS_UP_TO // 4 + 1)
    assert len(graph.nodes) > FULL_LABELS_UP_TO
    nodes = _nodes(_figure(graph))
    assert any(nodes.text) and not all(nodes.text)
    small = _nodes(_figure(dense()))
    kinds = {n.key: n.kind for n in dense().nodes}
    assert all(t for k, t in zip(small.customdata, small.text) if kinds[k] != "cat")


connections = getattr(connections_module, "connections", None)


@pytest.mark.skipif(connections is None, reason="connections() not there yet")
@pytest.mark.parametrize("name, opened", [("resnet18", {"b3"}), ("resnet18", {"b3", "b3.0"}),
                                          ("googlenet", {"b3", "b3.0"}), ("densenet", {"b2"})])
def test_preset_figures_have_a_legend_entry_per_edge_kind_and_keys_on_nodes(name, opened):
    graph = connections(PRESETS[name].spec, open=frozenset(opened))
    fig = _figure(graph, selected=graph.nodes[1].key)
    assert sorted(t.name for t in _edges(fig)) == sorted(LEGEND[k]
                                                         for k in {e.kind for e in graph.edges})
    nodes = _nodes(fig)
    assert list(nodes.customdata) == [n.key for n in graph.nodes]
    assert nodes.marker.size[1] == max(nodes.marker.size) or graph.nodes[1].kind == "group"
