"""The connections view's graph, read from torch.fx: the additions, projections and
concatenations the book counts, edges typed by the connection they make, and folding that
never hides an edge crossing a fold."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cnnviz.errors import ShapeError, SpecError
from cnnviz.graph.connections import (COUNT_KEYS, EDGE_KINDS, NODE_KINDS, Graph, connections,
                                      openable)
from cnnviz.graph.trace import fx_shapes
from cnnviz.models import build_meta
from cnnviz.presets import PRESETS
from cnnviz.shapes.summary import summarize
from tests.strategies import FAMILY_STRATEGIES

NONE = dict.fromkeys(COUNT_KEYS, 0)


def _spec(name: str):
    return PRESETS[name].spec


def _check_well_formed(graph: Graph) -> None:
    keys = [n.key for n in graph.nodes]
    assert len(keys) == len(set(keys))
    assert keys[0] == "input" and keys[-1] == "output"
    assert {n.kind for n in graph.nodes} <= set(NODE_KINDS)
    for e in graph.edges:
        assert e.source in keys and e.target in keys, e
        assert e.source != e.target, e
        assert e.kind in EDGE_KINDS
    triples = [(e.source, e.target, e.kind) for e in graph.edges]
    assert len(triples) == len(set(triples))


@pytest.mark.parametrize("name, expected", [
    ("resnet18", {"additions": 8, "projections": 3}),
    ("resnet18-imagenet", {"additions": 8, "projections": 3}),
    ("googlenet", {"inception blocks": 9, "branches": 36, "concatenations": 9}),
    ("googlenet-imagenet", {"inception blocks": 9, "branches": 36, "concatenations": 9}),
    ("densenet", {"concatenations": 16, "dense blocks": 4, "transitions": 3}),
    ("densenet121-imagenet", {"concatenations": 6 + 12 + 24 + 16, "dense blocks": 4,
                              "transitions": 3}),
    ("lenet", {}), ("alexnet", {}), ("vgg", {}), ("nin", {}),
])
def test_counts_are_the_books(name, expected):
    for graph in (connections(_spec(name)), connections(_spec(name), depth=None)):
        assert graph.counts == {**NONE, **expected}


def test_resnet18_additions_each_take_one_shortcut_five_identity_three_projection():
    graph = connections(_spec("resnet18"), depth=None)
    adds = [n.key for n in graph.nodes if n.kind == "add"]
    assert len(adds) == 8
    shortcut_kinds = []
    for add in adds:
        into = [e for e in graph.edges if e.target == add]
        assert sorted(e.kind == "main" for e in into) == [False, True]
        shortcut = [e for e in into if e.kind != "main"]
        assert len(shortcut) == 1
        shortcut_kinds.append(shortcut[0].kind)
        assert shortcut[0].shape == next(n.shape for n in graph.nodes if n.key == add)
    assert sorted(shortcut_kinds) == ["identity"] * 5 + ["projection"] * 3
    # b2.0 adds its block input through nn.Identity; b3.0 projects it with a 1×1 conv and
    # every edge along that shortcut is a projection.
    kinds = {(e.source, e.target): e.kind for e in graph.edges}
    assert kinds[("b1.3", "b2.0.shortcut")] == "identity"
    assert kinds[("b2.1.act", "b3.0.shortcut.conv")] == "projection"
    assert kinds[("b2.1.act", "b3.0.body.conv1")] == "main"


def test_projection_path_with_batch_norm_is_projection_all_along():
    graph = connections(_spec("resnet18-imagenet"), depth=None)
    kinds = {(e.source, e.target): e.kind for e in graph.edges}
    assert kinds[("b3.0.shortcut.conv", "b3.0.shortcut.bn")] == "projection"
    into_add = [e for e in graph.edges if e.source == "b3.0.shortcut.bn"]
    assert [(e.target.startswith("add"), e.kind) for e in into_add] == [(True, "projection")]


@pytest.mark.parametrize("name", ["densenet", "densenet121-imagenet"])
def test_dense_concatenations_take_dense_edges(name):
    graph = connections(_spec(name), depth=None)
    cats = [n.key for n in graph.nodes if n.kind == "cat"]
    for cat in cats:
        into = [e for e in graph.edges if e.target == cat]
        assert [e.kind for e in into] == ["dense", "dense"]
    # The transition's edges, in and out, are transitions (except into the next dense cat).
    kinds = {(e.source, e.target): e.kind for e in graph.edges}
    assert kinds[("b2.transition.0", "b2.transition.1")] == "transition"
    assert kinds[("b2.transition.3", "b3.dense.layers.0.0")] == "transition"
    assert sum(e.kind == "dense" for e in graph.edges) == 2 * len(cats)


@pytest.mark.parametrize("name", ["googlenet", "googlenet-imagenet"])
def test_inception_blocks_fan_out_into_four_branches_and_back(name):
    graph = connections(_spec(name), depth=None)
    blocks = [p for p in openable(_spec(name)) if p.count(".") == 1 and
              type(dict(build_meta(_spec(name)).named_modules())[p]).__name__ == "Inception"]
    assert len(blocks) == 9
    for block in blocks:
        fan_out = [e for e in graph.edges if e.kind == "branch"
                   and e.target.startswith(block + ".p")]
        assert sorted(e.target.split(".")[2] for e in fan_out) == ["p1", "p2", "p3", "p4"]
        assert len({e.source for e in fan_out}) == 1          # all from the block input
    cats = [n.key for n in graph.nodes if n.kind == "cat"]
    for cat in cats:
        assert [e.kind for e in graph.edges if e.target == cat] == ["branch"] * 4


@pytest.mark.parametrize("name", ["lenet", "alexnet", "vgg", "nin", "notes-alexnet"])
def test_plain_chains_are_one_main_path(name):
    graph = connections(_spec(name), depth=None)
    assert {e.kind for e in graph.edges} == {"main"}
    assert len(graph.edges) == len(graph.nodes) - 1


def test_resnet18_at_depth_one_is_its_stages_chained_by_main_edges():
    graph = connections(_spec("resnet18"))
    keys = [n.key for n in graph.nodes]
    assert keys == ["input", "b1", "b2", "b3", "b4", "b5", "head", "output"]
    main = [(e.source, e.target) for e in graph.edges if e.kind == "main"]
    assert main == list(zip(keys, keys[1:]))
    # The shortcuts cross the folds too: nothing hides them.
    assert ("b1", "b2", "identity") in {(e.source, e.target, e.kind) for e in graph.edges}
    assert ("b2", "b3", "projection") in {(e.source, e.target, e.kind) for e in graph.edges}
    assert [n.kind for n in graph.nodes[1:-1]] == ["group"] * 6
    assert graph.nodes[2].label == "b2 · 2 × Residual"
    assert graph.nodes[1].label == "b1 · Conv2d, BatchNorm2d, ReLU, MaxPool2d"
    assert graph.nodes[2].members[:2] == ("b2.0.body.conv1", "b2.0.body.bn1")
    assert graph.nodes[3].shape == (128, 12, 12)


def test_opening_a_stage_then_a_block():
    spec = _spec("resnet18")
    graph = connections(spec, open={"b3"})
    keys = [n.key for n in graph.nodes]
    assert keys == ["input", "b1", "b2", "b3.0", "b3.1", "b4", "b5", "head", "output"]
    graph = connections(spec, open={"b3", "b3.0", "not-a-group", "b1.0"})
    keys = [n.key for n in graph.nodes]
    assert keys[:3] == ["input", "b1", "b2"] and "b3.1" in keys and "b3" not in keys
    inside = [n for n in graph.nodes if n.key.startswith("b3.0.")]
    assert [n.key for n in inside] == ["b3.0.body.conv1", "b3.0.body.bn1", "b3.0.body.relu1",
                                       "b3.0.body.conv2", "b3.0.body.bn2",
                                       "b3.0.shortcut.conv", "b3.0.act"]
    assert inside[0].label == "Conv2d 3×3 s2 · 128"
    adds = [n.key for n in graph.nodes if n.kind == "add"]
    assert len(adds) == 1
    assert [e.kind for e in graph.edges if e.target == adds[0]] == ["main", "projection"]
    # Opening a block whose stage stays folded shows nothing more.
    assert [n.key for n in connections(spec, open={"b3.0"}).nodes] == \
        [n.key for n in connections(spec).nodes]


def test_depth_two_shows_the_blocks_and_labels_are_honest():
    graph = connections(_spec("densenet"), depth=2)
    labels = {n.key: n.label for n in graph.nodes}
    assert labels["b2.dense"] == "b2.dense · DenseBlock (4 conv blocks)"
    assert labels["b2.transition"] == "b2.transition · Transition"
    assert connections(_spec("densenet")).nodes[2].label == \
        "b2 · DenseBlock (4 conv blocks), Transition"
    g = {n.key: n.label for n in connections(_spec("googlenet")).nodes}
    assert g["b3"] == "b3 · 2 × Inception, MaxPool2d"
    g = {n.key: n.label for n in connections(_spec("resnet18"), depth=2).nodes}
    assert g["b3.0"] == "b3.0 · Residual (1×1 projection)" and g["b3.1"] == "b3.1 · Residual"
    g = {n.key: n.label for n in connections(_spec("vgg")).nodes}
    assert g["b3"] == "b3 · VGGBlock (2 convs)"
    assert g["head"].startswith("head · Flatten, Linear")


def test_openable_lists_stages_and_blocks_in_forward_order():
    assert openable(_spec("resnet18"))[:5] == ["b1", "b2", "b2.0", "b2.1", "b3"]
    assert openable(_spec("densenet"))[:4] == ["b1", "b2", "b2.dense", "b2.transition"]
    assert openable(_spec("notes-alexnet")) == []
    assert openable(_spec("notes-nin")) == ["0", "2", "4", "7"]


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_folds_and_unfolds_with_fx_shapes(name):
    spec = _spec(name)
    shapes = fx_shapes(build_meta(spec), (spec.in_channels, spec.input_size, spec.input_size))
    full = connections(spec, depth=None)
    _check_well_formed(full)
    for node in full.nodes:
        if node.kind not in ("input", "output"):
            assert node.shape == shapes[node.key], node.key
    assert full.nodes[-1].shape == shapes[next(reversed(shapes))]
    for edge in full.edges:
        assert edge.shape == next(n.shape for n in full.nodes if n.key == edge.source)
    for graph in (connections(spec), connections(spec, depth=2),
                  connections(spec, open=set(openable(spec)))):
        _check_well_formed(graph)
        assert graph.counts == full.counts
    # Every group opened is the fully unfolded graph.
    opened = connections(spec, open=set(openable(spec)))
    assert [n.key for n in opened.nodes] == [n.key for n in full.nodes]
    assert opened.edges == full.edges


def _crossing(full: Graph, folded: Graph) -> set[tuple[str, str, str]]:
    """The full graph's edges between layers (and input, output) as the folded graph must
    show them: an add or a cat folded away has no member to find it by."""
    where = {}
    for node in folded.nodes:
        where[node.key] = node.key
        for member in node.members:
            where[member] = node.key
    out = set()
    for e in full.edges:
        s, t = where.get(e.source), where.get(e.target)
        if s is not None and t is not None and s != t:
            out.add((s, t, e.kind))
    return out


@pytest.mark.parametrize("family", list(FAMILY_STRATEGIES))
@settings(max_examples=10, deadline=None,
          suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(data=st.data())
def test_generated_specs_unfold_to_the_layer_tables_leaves(family, data):
    spec = data.draw(FAMILY_STRATEGIES[family], label="spec")
    try:
        build_meta(spec)
    except SpecError:
        assume(False)
    try:
        rows = summarize(spec).rows
    except ShapeError:
        assume(False)
    full = connections(spec, depth=None)
    _check_well_formed(full)
    assert [n.key for n in full.nodes if n.kind == "layer"] == \
        [r.name for r in rows if r.is_leaf]
    assert {n.key: n.shape for n in full.nodes if n.kind == "layer"} == \
        {r.name: r.output_shape for r in rows if r.is_leaf}
    for folded in (connections(spec), connections(spec, depth=2)):
        _check_well_formed(folded)
        assert folded.counts == full.counts
        assert {(e.source, e.target, e.kind) for e in folded.edges} >= _crossing(full, folded)
        # A group's members are leaf layers it holds, each shown in exactly one place.
        shown = [m for n in folded.nodes for m in (n.members or (n.key,))
                 if n.kind in ("layer", "group")]
        assert sorted(shown) == sorted(n.key for n in full.nodes if n.kind == "layer")
