"""The Connections page: the current network drawn as the graph torch.fx traces — stages folded
until opened, edges coloured by the connection they make — with a selected node's numbers from
the layer table and each connection explained with the network's own numbers.

The graph, its layout and the explanations come from :mod:`cnnviz.graph` (cached per network
and set of opened groups); the figure from :mod:`cnnviz.figures_graph`.
"""
from __future__ import annotations

import streamlit as st

from cnnviz.figures_graph import graph_figure
from cnnviz.graph.connections import Graph, connections, openable
from cnnviz.graph.explain import explanations
from cnnviz.graph.layout import layout
from cnnviz.ui.maps_view import go_to_maps_if_asked, open_maps_at
from cnnviz.ui.results import cannot_show
from cnnviz.ui.state import current_spec, network_name
from cnnviz.workbench import analyse, human

KEY = "graph."
KIND_TITLES = {"identity": "Residual shortcut (identity): x + F(x)",
               "projection": "Residual shortcut with a 1×1 projection",
               "dense": "Dense concatenation and transition",
               "branch": "Inception paths, concatenated",
               "main": "The main path"}


def show_graph_page() -> None:
    go_to_maps_if_asked()
    spec = current_spec()
    st.title("Connections")
    st.caption(f"**{network_name(spec)}** as the graph torch.fx traces from the built model: "
               "layers, additions (⊕) and concatenations (◆), each edge coloured by the "
               "connection it makes. Open a stage to see its blocks, a block to see its layers; "
               "click a node for its numbers.")
    analysis = analyse(spec)
    if cannot_show(analysis):  # torch.fx traces a forward pass at the input size
        return
    key = repr(spec)
    groups = _openable(key, spec)
    a, b = st.columns([4, 1])
    everything = b.toggle("Unfold everything", key=KEY + "all",
                          help="every layer, addition and concatenation")
    opened = a.multiselect("Open", groups, key=KEY + f"open.{key}", disabled=everything,
                           placeholder="stages and blocks to unfold",
                           help="a stage opens into its blocks, a block into its layers")
    graph = _graph(key, spec, None if everything else tuple(sorted(opened)))
    st.caption(_counts_line(graph))
    selected = st.session_state.get(KEY + "selected")
    if selected not in {n.key for n in graph.nodes}:
        selected = None
    event = st.plotly_chart(graph_figure(graph, _layout(key, graph, everything,
                                                        tuple(sorted(opened))),
                                         selected=selected),
                            key=KEY + "figure", on_select="rerun", selection_mode="points")
    picked = _picked(event)
    if picked and picked != selected:
        st.session_state[KEY + "selected"] = picked
        st.rerun()
    if selected:
        _show_node(spec, graph, selected, analysis)
    _show_explanations(key, spec, selected)


@st.cache_data(max_entries=32, show_spinner=False)
def _openable(spec_key: str, _spec) -> list[str]:
    return openable(_spec)


@st.cache_data(max_entries=64, show_spinner="Tracing the network…")
def _graph(spec_key: str, _spec, opened: tuple[str, ...] | None) -> Graph:
    if opened is None:
        return connections(_spec, depth=None)
    return connections(_spec, open=frozenset(opened))


@st.cache_data(max_entries=64, show_spinner="Laying the graph out…")
def _layout(spec_key: str, _graph_arg: Graph, everything: bool, opened: tuple[str, ...]):
    return layout(_graph_arg)


def _picked(event) -> str | None:
    try:
        points = event.selection.points
    except AttributeError:
        return None
    for point in points or []:
        data = point.get("customdata")
        if isinstance(data, (list, tuple)):
            data = data[0] if data else None
        if isinstance(data, str):
            return data
    return None


def _counts_line(graph: Graph) -> str:
    c = graph.counts
    parts = []
    if c.get("additions"):
        parts.append(f"{c['additions']} additions ({c.get('projections', 0)} through a 1×1 "
                     "projection)")
    if c.get("concatenations"):
        parts.append(f"{c['concatenations']} concatenations")
    if c.get("dense blocks"):
        parts.append(f"{c['dense blocks']} dense blocks, {c.get('transitions', 0)} transitions")
    if c.get("inception blocks"):
        parts.append(f"{c['inception blocks']} Inception blocks of 4 paths")
    shown = f"{len(graph.nodes)} nodes and {len(graph.edges)} edges shown"
    return " · ".join(parts + [shown]) if parts else f"A chain: no shortcut, no concatenation " \
                                                       f"· {shown}"


def _show_node(spec, graph: Graph, key: str, analysis) -> None:
    node = next(n for n in graph.nodes if n.key == key)
    rows = {row.name: row for row in analysis.summary.rows}
    st.subheader(f"{key}", anchor=False)
    shape = "×".join(map(str, node.shape)) if node.shape else "—"
    row = rows.get(key)
    left, right = st.columns([2, 1])
    with left:
        if row is not None:
            st.markdown(f"**{row.type}** · input {'×'.join(map(str, row.input_shape))} → output "
                        f"{'×'.join(map(str, row.output_shape))} · {human(row.params)} parameters "
                        f"· {human(row.mult_adds)} mult-adds")
            if row.arithmetic:
                st.code(row.arithmetic, language=None, wrap_lines=True)
        elif node.kind in ("add", "cat"):
            what = "adds its inputs element by element (the shapes must match)" \
                if node.kind == "add" else "stacks its inputs along the channels"
            ins = [e for e in graph.edges if e.target == key]
            sizes = " and ".join("×".join(map(str, e.shape)) for e in ins if e.shape)
            st.markdown(f"**{node.kind}** {what}: {sizes} → {shape}.")
        else:
            st.markdown(f"**{node.label}** · output {shape}")
        if node.members:
            st.caption(f"holds {len(node.members)} layers: open it above to see them")
    with right:
        target = key if row is not None else None
        if target:
            st.button("Open in Feature maps", key=KEY + "to.maps", icon=":material/layers:",
                      on_click=open_maps_at, args=(spec, target),
                      help="what this layer computes on a picture")


def _show_explanations(key: str, spec, selected: str | None) -> None:
    """One expander per kind of connection; the one of the selected node's block opens, with
    that block's sentence first and in bold."""
    st.subheader("How the connections work here", anchor=False)
    found = _explanations(key, spec)
    focus = next((e for e in found if selected and e.path and
                  (selected == e.path or selected.startswith(e.path + "."))), None)
    by_kind: dict[str, list] = {}
    for e in found:
        by_kind.setdefault(e.kind, []).append(e)
    for i, (kind, items) in enumerate(by_kind.items()):
        opened = kind == focus.kind if focus else i == 0
        with st.expander(f"{KIND_TITLES[kind]} ({len(items)})", expanded=opened):
            for e in sorted(items, key=lambda e: e is not focus):
                st.markdown(f"- **{e.text}**" if e is focus else f"- {e.text}")


@st.cache_data(max_entries=32, show_spinner=False)
def _explanations(spec_key: str, _spec):
    return explanations(_spec)
