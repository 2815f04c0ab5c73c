"""The network as the graph it is, from torch.fx: layers and the ``add`` / ``cat`` operations
as nodes, with their output shapes, and edges typed by the connection they make (the main
path, a residual identity shortcut, a residual 1×1 projection, a dense concatenation, an
Inception branch, a transition). Nested modules fold into one node per stage or block, and
unfold on request. No builder is consulted for an edge: everything here is read from the
traced graph of the built model.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field

from torch import fx, nn

from cnnviz.graph.trace import fx_shapes, symbolic_graph
from cnnviz.models import build_meta
from cnnviz.models.blocks import (PLAIN_CONTAINERS, DenseBlock, Inception, Residual, Transition,
                                  VGGBlock)

EDGE_KINDS = ("main", "identity", "projection", "dense", "branch", "transition")
NODE_KINDS = ("input", "output", "layer", "add", "cat", "group")


@dataclass(frozen=True)
class Node:
    """One node of the drawn graph."""

    key: str                         # module path ("b2.0.body.conv1"), fx node name ("add_3",
                                     # "cat_1"), a folded group's path ("b2", "b2.0"),
                                     # "input" or "output"
    label: str                       # short text for the drawing: "Conv2d 3×3 · 64",
                                     # "add", "cat", "2 × Residual", "input 1×96×96"
    kind: str                        # one of NODE_KINDS
    shape: tuple[int, ...] | None    # output shape for one image (C, H, W) or (F,)
    depth: int                       # dots in the key + 1 (0 for input/output)
    members: tuple[str, ...] = ()    # the leaf layers a group holds (empty otherwise)


@dataclass(frozen=True)
class Edge:
    """A tensor flowing from one node to another."""

    source: str
    target: str
    kind: str                        # one of EDGE_KINDS
    shape: tuple[int, ...] | None    # the tensor's shape for one image


@dataclass
class Graph:
    nodes: list[Node]
    edges: list[Edge]
    counts: dict[str, int] = field(default_factory=dict)  # additions, projections,
                                     # concatenations, dense, branches, transitions, inception


# -- reading the traced graph ------------------------------------------------------------------

COUNT_KEYS = ("additions", "projections", "concatenations", "dense blocks", "transitions",
              "inception blocks", "branches")
INPUT, OUTPUT = "input", "output"


@dataclass(frozen=True)
class _Full:
    """The fully unfolded graph of one spec, with what folding needs to know about it."""

    nodes: dict[str, Node]               # in fx order, "input" first and "output" last
    edges: tuple[Edge, ...]
    groups: dict[str, tuple[str, ...]]   # key → the group paths holding it, outermost first
    group_labels: dict[str, str]         # group path → its label
    counts: dict[str, int]


def connections(spec, open: frozenset[str] | set[str] = frozenset(),  # noqa: A002 (the API)
                depth: int | None = 1) -> Graph:
    """The network as a graph, folded at ``depth``: 1 shows the stages (b1…b5, head) as
    groups; a group whose path is in ``open`` shows one level deeper (``{"b2"}`` shows b2.0
    and b2.1; ``{"b2", "b2.0"}`` shows b2.0's layers and its add). ``None`` (or any depth
    past the deepest group) unfolds everything: every leaf layer and every add and cat.

    Groups are the stages and the blocks in them (a module every ancestor of which is a plain
    ``nn.Sequential``); a block opens onto all its layers at once, since the containers inside
    it (a Residual's body, an Inception path) are not steps a learner picks. An edge between
    two nodes of one folded group vanishes; every edge that crosses a fold stays, once per
    (source, target, kind). Counts always describe the whole network.
    """
    full = _full_graph(spec)
    opened = frozenset(open)

    def expanded(path: str) -> bool:
        return depth is None or path.count(".") + 1 < depth or path in opened

    def shown_as(key: str) -> str:
        for path in full.groups.get(key, ()):
            if not expanded(path):
                return path
        return key

    shown = {key: shown_as(key) for key in full.nodes}
    members: dict[str, list[str]] = {}
    for key, rep in shown.items():
        if rep != key and full.nodes[key].kind == "layer":
            members.setdefault(rep, []).append(key)
    edges: dict[tuple[str, str, str], Edge] = {}
    for edge in full.edges:
        source, target = shown[edge.source], shown[edge.target]
        if source != target:
            edges.setdefault((source, target, edge.kind),
                             Edge(source, target, edge.kind, edge.shape))
    last: dict[str, str] = {rep: key for key, rep in shown.items()}  # a group's output node
    nodes: dict[str, Node] = {}
    for key, rep in shown.items():
        if rep in nodes:
            continue
        if rep == key:
            nodes[key] = full.nodes[key]
        else:
            nodes[rep] = Node(rep, full.group_labels[rep], "group", full.nodes[last[rep]].shape,
                              rep.count(".") + 1, tuple(members.get(rep, ())))
    return Graph(list(nodes.values()), list(edges.values()), dict(full.counts))


def openable(spec) -> list[str]:
    """The group paths a learner can open, stages before the blocks in them, in forward
    order: ``["b1", "b2", "b2.0", "b2.1", …]``."""
    full = _full_graph(spec)
    seen: dict[str, None] = {}
    for key in full.nodes:
        for path in full.groups.get(key, ()):
            seen.setdefault(path)
    return sorted(seen, key=list(seen).index)


def _full_graph(spec) -> _Full:
    try:
        return _cached_full_graph(spec)
    except TypeError:  # an unhashable spec: nothing to cache it by
        return _build_full_graph(spec)


@functools.lru_cache(maxsize=32)
def _cached_full_graph(spec) -> _Full:
    return _build_full_graph(spec)


def _build_full_graph(spec) -> _Full:
    model = build_meta(spec)
    modules = dict(model.named_modules())
    input_shape = (spec.in_channels, spec.input_size, spec.input_size)
    try:
        shapes = fx_shapes(model, input_shape)
    except RuntimeError:  # the network does not run at its own size: draw it without shapes
        shapes = {}
    fx_nodes = [n for n in symbolic_graph(model).graph.nodes if n.op != "get_attr"]
    key_of: dict[fx.Node, str] = {}
    where: dict[str, str] = {}   # key → module path it sits in (a layer: its own path)
    nodes: dict[str, Node] = {}
    for n in fx_nodes:
        if n.op == "placeholder":
            key, kind, shape, depth = INPUT, "input", input_shape, 0
            label = "input " + _dims(shape)
            where[key] = ""
        elif n.op == "output":
            source = n.all_input_nodes[0] if n.all_input_nodes else None
            shape = nodes[key_of[source]].shape if source is not None else None
            key, kind, depth = OUTPUT, "output", 0
            label = "output" + (" " + _dims(shape) if shape else "")
            where[key] = ""
        elif n.op == "call_module":
            key, kind = str(n.target), "layer"
            shape, depth = shapes.get(key), key.count(".") + 1
            label = layer_label(modules[key])
            where[key] = key
        else:
            key = n.name
            name = getattr(n.target, "__name__", str(n.target))
            kind = name if name in ("add", "cat") else "layer"
            owner = _owner(n)
            shape, label = shapes.get(key), name
            depth = owner.count(".") + 2 if owner else 1
            where[key] = owner
        key_of[n] = key
        nodes[key] = Node(key, label, kind, shape, depth)
    edges = tuple(Edge(key_of[u], key_of[v], _edge_kind(u, v, key_of, where, modules),
                       nodes[key_of[u]].shape)
                  for v in fx_nodes for u in v.all_input_nodes)
    groups = {key: _groups_holding(key, nodes[key].kind, where[key], modules) for key in nodes}
    paths = {p for held in groups.values() for p in held}
    labels = {p: group_label(p, modules[p]) for p in paths}
    return _Full(nodes, edges, groups, labels, _counts(nodes, edges, where, modules))


def _owner(node: fx.Node) -> str:
    """The module a call_function node runs inside: the innermost entry of fx's module stack
    (torch ≥ 2.1 records it while tracing); the whole model where there is none."""
    stack = node.meta.get("nn_module_stack") or {}
    return str(next(reversed(stack))) if stack else ""


def _inside(location: str, path: str) -> bool:
    return location == path or location.startswith(path + ".")


def _ancestors(location: str, modules: dict[str, nn.Module], cls: type) -> list[str]:
    """The module paths holding ``location`` (itself included) whose module is a ``cls``,
    innermost first."""
    parts = location.split(".") if location else []
    prefixes = [".".join(parts[:i]) for i in range(len(parts), 0, -1)]
    return [p for p in prefixes if isinstance(modules.get(p), cls)]


def _innermost(location: str, modules: dict[str, nn.Module], cls: type) -> str | None:
    found = _ancestors(location, modules, cls)
    return found[0] if found else None


def _shortcut_kind(residual: nn.Module) -> str:
    has_conv = any(isinstance(m, nn.Conv2d) for m in residual.shortcut.modules())
    return "projection" if has_conv else "identity"


def _edge_kind(u: fx.Node, v: fx.Node, key_of: dict[fx.Node, str], where: dict[str, str],
               modules: dict[str, nn.Module]) -> str:
    """The connection an edge makes, read from where its two ends sit in the model."""
    src, dst = where[key_of[u]], where[key_of[v]]
    v_kind = getattr(v.target, "__name__", "") if v.op == "call_function" else ""
    if v_kind == "add" and isinstance(modules.get(dst), Residual):
        # Into a residual addition: the body's side is the main path, the other the shortcut.
        return "main" if _inside(src, dst + ".body") else _shortcut_kind(modules[dst])
    residual = _innermost(dst, modules, Residual)
    if residual is not None and _inside(dst, residual + ".shortcut"):
        return _shortcut_kind(modules[residual])
    if v_kind == "cat" and isinstance(modules.get(dst), DenseBlock):
        return "dense"
    if v_kind == "cat" and isinstance(modules.get(dst), Inception):
        return "branch"
    block = _innermost(dst, modules, Inception)
    if block is not None and not _inside(src, block) and dst != block:
        return "branch"    # the block's input fanning out into its paths
    if _innermost(src, modules, Transition) or _innermost(dst, modules, Transition):
        return "transition"
    return "main"


def _groups_holding(key: str, kind: str, location: str,
                    modules: dict[str, nn.Module]) -> tuple[str, ...]:
    """The groups (stages and blocks) a node belongs to, outermost first. A layer's own path
    is not a group; an add or a cat belongs to the module it runs in, too."""
    if kind in ("input", "output") or not location:
        return ()
    parts = location.split(".")
    last = len(parts) if kind != "layer" or location != key else len(parts) - 1
    held: list[str] = []
    for i in range(1, last + 1):
        path = ".".join(parts[:i])
        held.append(path)
        if type(modules[path]) not in PLAIN_CONTAINERS:
            break   # a block: the containers inside it are not groups of their own
    return tuple(held)


def _counts(nodes: dict[str, Node], edges: tuple[Edge, ...], where: dict[str, str],
            modules: dict[str, nn.Module]) -> dict[str, int]:
    used = {p for loc in where.values() for p in _prefixes(loc)}

    def blocks(cls: type) -> int:
        return sum(1 for p in used if isinstance(modules.get(p), cls))

    adds = [k for k, n in nodes.items() if n.kind == "add"]
    projected = {e.target for e in edges if e.kind == "projection" and e.target in adds
                 and _one_by_one(modules[where[e.target]])}
    inception = blocks(Inception)
    return {"additions": len(adds), "projections": len(projected),
            "concatenations": sum(1 for n in nodes.values() if n.kind == "cat"),
            "dense blocks": blocks(DenseBlock), "transitions": blocks(Transition),
            "inception blocks": inception, "branches": 4 * inception}


def _prefixes(location: str) -> list[str]:
    parts = location.split(".") if location else []
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def _one_by_one(residual: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) and tuple(m.kernel_size) == (1, 1)
               for m in residual.shortcut.modules())


# -- labels ------------------------------------------------------------------------------------

def _dims(shape) -> str:
    return "×".join(str(d) for d in shape) if shape else ""


def _pair(value) -> tuple[int, int]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def layer_label(module: nn.Module) -> str:
    """A leaf layer in a few characters: "Conv2d 3×3 s2 · 64", "MaxPool2d 3×3 s2",
    "Linear · 10", "BatchNorm2d"."""
    name = type(module).__name__
    if isinstance(module, nn.Conv2d):
        (kh, kw), (sh, sw) = _pair(module.kernel_size), _pair(module.stride)
        stride = "" if (sh, sw) == (1, 1) else f" s{sh}" if sh == sw else f" s{sh}×{sw}"
        return f"{name} {kh}×{kw}{stride} · {module.out_channels}"
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        (kh, kw), (sh, sw) = _pair(module.kernel_size), _pair(module.stride)
        stride = "" if (sh, sw) == (1, 1) else f" s{sh}" if sh == sw else f" s{sh}×{sw}"
        return f"{name} {kh}×{kw}{stride}"
    if isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
        h, w = _pair(module.output_size)
        return f"{name} → {h}×{w}"
    if isinstance(module, nn.Linear):
        return f"{name} · {module.out_features}"
    if isinstance(module, nn.Dropout):
        return f"{name} {module.p:g}"
    return name


def _block_name(module: nn.Module) -> str:
    """A block as one phrase: "Residual", "DenseBlock (4 conv blocks)", "VGGBlock (2 convs)"."""
    name = type(module).__name__
    if isinstance(module, DenseBlock):
        n = len(module.layers)
        return f"{name} ({n} conv block{'s' if n != 1 else ''})"
    if isinstance(module, Residual):
        return f"{name} (1×1 projection)" if _one_by_one(module) else name
    if isinstance(module, VGGBlock):
        n = sum(1 for m in module.children() if isinstance(m, nn.Conv2d))
        return f"{name} ({n} conv{'s' if n != 1 else ''})"
    return name


def group_label(path: str, module: nn.Module) -> str:
    """"b2 · 2 × Residual", "b3 · 2 × Inception, MaxPool2d", "b1 · Conv2d, BatchNorm2d, ReLU,
    MaxPool2d": a stage as its children, a run of equal ones counted; a block by its kind."""
    if type(module) not in PLAIN_CONTAINERS:
        return f"{path} · {_block_name(module)}"
    runs: list[list] = []
    for child in module.children():
        # A stage names its blocks by kind alone, so two Residuals count as "2 × Residual"
        # whether or not the first one projects.
        name = (type(child).__name__ if isinstance(child, Residual) or not child._modules
                else _block_name(child))
        if runs and runs[-1][0] == name:
            runs[-1][1] += 1
        else:
            runs.append([name, 1])
    return f"{path} · " + ", ".join(name if n == 1 else f"{n} × {name}" for name, n in runs)
