"""Receptive fields: which input pixels can influence one output position of a layer.

Walks the torch.fx graph of record with the classic recurrence, per layer with kernel k,
stride s, padding p and dilation d::

    r_out = r_in + (k − 1)·d·j_in          (size: input pixels one position sees)
    j_out = j_in·s                         (jump: input pixels between neighbouring positions)
    start_out = start_in + ((k − 1)/2·d − p)·j_in   (centre of position 0, input coordinates)

The input image is r = 1, j = 1, start = 0 (pixel i has its centre at i). Layers that keep
positions (activations, BatchNorm, Dropout, Identity) keep the field; an addition or a
concatenation sees the union of its inputs' fields; global pooling, Flatten and Linear see
every position of the map they get, as a pooling window over the whole map would.

Near the right and bottom borders the box can hold a few pixels that a stride's rounding
down never reaches (AlexNet's first 11×11/4 convolution drops the last two columns at 224),
so there the box is an upper bound; away from the borders it is exact for convolutions and
average pooling, and max pooling picks one pixel of each window inside it.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass

import torch
from torch import fx, nn

from cnnviz.graph.trace import symbolic_graph

# Leaf layers that map each position to the same position: the field passes through.
KEEPS_POSITION = (nn.ReLU, nn.Sigmoid, nn.GELU, nn.Tanh, nn.LeakyReLU, nn.ELU, nn.SiLU,
                  nn.Softmax, nn.BatchNorm1d, nn.BatchNorm2d, nn.Dropout, nn.Dropout2d,
                  nn.Identity, nn.LocalResponseNorm)
# Functions and methods after which there are no positions left: they see the whole map.
_FLATTENS = {torch.flatten, torch.mean, torch.nn.functional.adaptive_avg_pool2d,
             "flatten", "view", "reshape", "mean"}
_MERGE_NAMES = {operator.add: "adds", torch.add: "adds", torch.cat: "concatenates"}


@dataclass(frozen=True)
class Field:
    """The receptive field of one output position of a layer, in input pixels.

    ``size`` r and ``jump`` j are pixels; ``start`` is the centre of position 0 (it may be
    half a pixel, or negative when padding reaches outside the image). ``side`` is the
    layer's map side (1 once flattened). ``whole``: every position sees the entire image.
    """

    size: int
    jump: int
    start: float
    side: int
    whole: bool

    @property
    def first(self) -> float:
        """The first input pixel (unclipped) that position 0 sees."""
        return self.start - (self.size - 1) / 2


@dataclass(frozen=True)
class _Step:
    field: Field
    parent: str | None  # the input on the path of the largest field
    line: str | None  # the recurrence written out, for layers that change the field
    keep_line: str  # said when the layer itself is asked about and keeps the field


def _square(value, what: str, layer: str) -> int:
    if isinstance(value, (tuple, list)):
        if len(set(value)) != 1:
            raise ValueError(f"{layer}: receptive fields need a square {what}, got {value}")
        value = value[0]
    return int(value)


def _num(x: float) -> str:
    return f"{x:g}"


def _window(r: int, j: int, start: float, n: int, k: int, s: int, p: int, d: int,
            ceil_mode: bool) -> tuple[int, int, float, int]:
    """The recurrence for a k×k window; also the output side by PyTorch's size formula."""
    span = n + 2 * p - d * (k - 1) - 1
    out = (-(-span // s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= n + p:  # PyTorch: the last window starts inside
        out -= 1
    return r + (k - 1) * d * j, j * s, start + ((k - 1) / 2 * d - p) * j, max(out, 0)


def _window_line(name: str, r: int, j: int, start: float, k: int, s: int, p: int, d: int,
                 new: tuple[int, int, float], label: str | None = None) -> str:
    dil = f"·{d}" if d != 1 else ""
    half = f"(({k} − 1)/2{dil} − {p})"
    label = label or f"k={k}, s={s}, p={p}" + (f", d={d}" if d != 1 else "")
    return (f"{name} ({label}): r = {r} + ({k} − 1){dil}·{j} = {new[0]}, "
            f"j = {j}·{s} = {new[1]}, start = {_num(start)} + {half}·{j} = {_num(new[2])}")


def _walk(model: nn.Module, input_size: int) -> dict[str, _Step]:
    graph = symbolic_graph(model)
    steps: dict[str, _Step] = {}  # by key (module path or node name)
    key_of: dict[fx.Node, str] = {}
    for node in graph.graph.nodes:
        if node.op in ("output", "get_attr"):
            continue
        key = str(node.target) if node.op == "call_module" else node.name
        if node.op == "placeholder":
            steps[key] = _Step(_make(1, 1, 0.0, input_size, input_size), None, None, "")
            key_of[node] = key
            continue
        inputs = [key_of[a] for a in node.all_input_nodes if a in key_of]
        if not inputs:
            continue
        step = _node_step(node, key, graph, [(k, steps[k].field) for k in inputs], input_size)
        steps[key] = step
        key_of[node] = key
    return steps


def _make(r: int, j: int, start: float, side: int, input_size: int) -> Field:
    first = start - (r - 1) / 2
    whole = first + (side - 1) * j <= 0 and first + r >= input_size
    return Field(int(r), int(j), float(start), int(side), bool(whole))


def _node_step(node: fx.Node, key: str, graph: fx.GraphModule,
               inputs: list[tuple[str, Field]], input_size: int) -> _Step:
    if node.op == "call_module":
        module = graph.get_submodule(str(node.target))
        kind = type(module).__name__
        parent, f = inputs[0]
        if isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
            k = _square(module.kernel_size, "kernel", key)
            s = _square(module.stride, "stride", key)
            d = _square(getattr(module, "dilation", 1), "dilation", key)
            pad = module.padding
            if pad == "valid":
                pad = 0
            elif pad == "same":
                pad = d * (k - 1) // 2
            p = _square(pad, "padding", key)
            ceil = bool(getattr(module, "ceil_mode", False))
            return _window_step(key, kind, parent, f, k, s, p, d, ceil, input_size)
        if isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
            outs = module.output_size
            outs = outs if isinstance(outs, (tuple, list)) else (outs,)
            out = _square(tuple(f.side if o is None else o for o in outs), "output size", key)
            if out == f.side:
                return _keep(key, kind, parent, f)
            if f.side % out == 0:
                k = f.side // out
                return _window_step(key, kind, parent, f, k, k, 0, 1, False, input_size,
                                    f"{k}×{k} windows, s={k}")
            return _uneven_step(key, kind, parent, f, out, input_size)
        if isinstance(module, nn.Flatten) or (isinstance(module, nn.Linear) and f.side > 1):
            return _whole_step(key, kind, parent, f, input_size)
        if isinstance(module, KEEPS_POSITION) or isinstance(module, nn.Linear):
            return _keep(key, kind, parent, f)
        raise ValueError(f"{key}: no receptive-field rule for {kind}")
    parent, f = inputs[0]
    if node.target in _FLATTENS:
        return _whole_step(key, str(node.target), parent, f, input_size)
    return _merge_step(key, _MERGE_NAMES.get(node.target, "combines"), inputs, input_size)


def _keep(key: str, kind: str, parent: str, f: Field) -> _Step:
    return _Step(f, parent, None, f"{key} {kind} keeps every position: r = {f.size}, "
                                  f"j = {f.jump}, start = {_num(f.start)}")


def _window_step(key: str, kind: str, parent: str, f: Field, k: int, s: int, p: int, d: int,
                 ceil: bool, input_size: int, label: str | None = None) -> _Step:
    r, j, start, side = _window(f.size, f.jump, f.start, f.side, k, s, p, d, ceil)
    line = _window_line(f"{key} {kind}", f.size, f.jump, f.start, k, s, p, d, (r, j, start),
                        label)
    new = _make(r, j, start, side, input_size)
    return _Step(new, parent, line, line)


def _whole_step(key: str, kind: str, parent: str, f: Field, input_size: int) -> _Step:
    # Every position of the map feeds the output: a window as large as the map.
    n = f.side
    return _window_step(key, kind, parent, f, n, n, 0, 1, False, input_size,
                        f"the whole {n}×{n} map, like k={n}, s={n}")


def _uneven_step(key: str, kind: str, parent: str, f: Field, out: int,
                 input_size: int) -> _Step:
    # Adaptive pooling into uneven bins (7 → 3: bins of 3, 3 and 3 overlapping by one) has no
    # single stride: each of the out×out positions is given the whole map, an upper bound,
    # with jump 0 (every position sees the same region, and so does every layer after it).
    n = f.side
    r, _, start, _ = _window(f.size, f.jump, f.start, f.side, n, n, 0, 1, False)
    new = _make(r, 0, start, out, input_size)
    line = (f"{key} {kind} ({n}×{n} → {out}×{out} in uneven bins, no single stride): each "
            f"output is given the whole map, an upper bound: r = {r}, j = 0, "
            f"start = {_num(start)}")
    return _Step(new, parent, line, line)


def _merge_step(key: str, verb: str, inputs: list[tuple[str, Field]], input_size: int) -> _Step:
    jumps = {f.jump for _, f in inputs}
    if len(jumps) != 1:
        raise ValueError(f"{key}: its inputs have different jumps {sorted(jumps)}; their "
                         "positions do not line up")
    first = min(f.first for _, f in inputs)
    last = max(f.first + f.size for _, f in inputs)
    widest, wf = max(inputs, key=lambda kf: kf[1].size)
    r = int(round(last - first))
    start = first + (r - 1) / 2
    new = _make(r, wf.jump, start, max(f.side for _, f in inputs), input_size)
    line = (f"{key} ({verb} {len(inputs)} inputs and sees what any of them sees; the widest "
            f"is {widest}): r = {r}, j = {new.jump}, start = {_num(start)}")
    return _Step(new, widest, line, line)


def fields(model: nn.Module, input_size: int) -> dict[str, Field]:
    """Each fx node's receptive field for a square ``input_size`` input: ``call_module``
    nodes keyed by module path (``b2.0.body.conv1``), the others by node name (``add_3``,
    ``cat``), the input itself by its placeholder name (``x`` or ``input``)."""
    return {key: step.field for key, step in _walk(model, input_size).items()}


def region(field: Field, row: int, col: int, input_size: int) -> tuple[int, int, int, int]:
    """``(top, left, bottom, right)``: the box of input pixels that can influence output
    position (row, col), clipped to the image, ends excluded (``image[top:bottom,
    left:right]``). Empty (top == bottom) if padding alone feeds that position."""
    if not (0 <= row < field.side and 0 <= col < field.side):
        raise ValueError(f"position ({row}, {col}) is outside the {field.side}×{field.side} "
                         "map")
    def span(i: int) -> tuple[int, int]:
        lo = int(round(field.first + i * field.jump))
        a = min(max(lo, 0), input_size)
        return a, max(min(lo + field.size, input_size), a)

    (top, bottom), (left, right) = span(row), span(col)
    return top, left, bottom, right


def arithmetic(model: nn.Module, layer_key: str, input_size: int) -> list[str]:
    """The recurrence written out, one line per layer that changes the field, on the path
    from the input to ``layer_key`` (through additions and concatenations, the input with
    the largest field), ending with ``layer_key`` itself."""
    steps = _walk(model, input_size)
    if layer_key not in steps:
        raise KeyError(f"{layer_key!r} is not a layer of this network")
    lines: list[str] = [steps[layer_key].keep_line]
    key = steps[layer_key].parent
    while key is not None:
        if steps[key].line:
            lines.append(steps[key].line)
        key = steps[key].parent
    return [line for line in reversed(lines) if line]

