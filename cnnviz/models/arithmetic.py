"""Output sizes of a network by arithmetic alone: no tensors, no forward pass.

:func:`trace` walks a built model (on any device, the meta device included) and applies the
size formulas PyTorch uses, layer by layer. It is exact (the tests compare it with real forward
passes) and cheap enough to run hundreds of times per slider move. When a layer cannot run it
raises :class:`~cnnviz.errors.ShapeError` naming the layer and the arithmetic that failed.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field

from torch import nn

from cnnviz.errors import Shape, ShapeError, fmt_shape
from cnnviz.models.blocks import PLAIN_CONTAINERS

SHAPE_PRESERVING = (nn.ReLU, nn.Sigmoid, nn.GELU, nn.Tanh, nn.Dropout, nn.Identity)


@dataclass
class Row:
    """One module of the trace, in execution order (containers before their children)."""

    name: str
    type: str
    depth: int
    is_leaf: bool
    module: nn.Module = field(repr=False)
    input_shape: Shape
    output_shape: Shape = ()
    arithmetic: str = ""


def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _window_formula(n: int, k: int, s: int, p: int, d: int, ceil: bool, out: int) -> str:
    pad = f" + 2·{p}" if p else ""
    kern = f" − {d}·({k} − 1) − 1" if d != 1 else f" − {k}"
    left, right = ("⌈", "⌉") if ceil else ("⌊", "⌋")
    return f"{left}({n}{pad}{kern}) / {s}{right} + 1 = {out}"


def _per_dim(texts: list[str]) -> str:
    if texts[0] == texts[1]:
        return texts[0]
    return f"H: {texts[0]}; W: {texts[1]}"


class Tracer:
    """Propagates shapes; with ``record=True`` it also keeps a :class:`Row` per module."""

    def __init__(self, record: bool = False):
        self.rows: list[Row] | None = [] if record else None
        self._flattened_from: Shape | None = None

    # -- containers -------------------------------------------------------------------------
    def run(self, module: nn.Module, shape: Shape, name: str = "", depth: int = 0) -> Shape:
        cls = type(module)
        leaf_rule = _LEAF_RULES.get(cls)
        row = None
        if self.rows is not None and depth > 0:
            row = Row(name, cls.__name__, depth, leaf_rule is not None, module, shape)
            self.rows.append(row)
        if leaf_rule is not None:
            out, text = leaf_rule(self, module, shape, name)
        else:
            out, text = self._container(module, cls, shape, name, depth), ""
        if row is not None:
            row.output_shape, row.arithmetic = out, text
        return out

    def _container(self, module: nn.Module, cls: type, shape: Shape, name: str,
                   depth: int) -> Shape:
        """A block follows its own shape rule; torch's plain containers run their children in
        order. Anything else (a subclass of nn.Sequential with a forward of its own included)
        is refused rather than guessed at."""
        children = module._modules
        if cls in PLAIN_CONTAINERS:  # the most common container: no rule to look up
            for child_name, child in children.items():
                shape = self.run(child, shape, _join(name, child_name), depth + 1)
            return shape

        def trace_child(child: str, child_shape: Shape) -> Shape:
            sub = children.get(child)
            if sub is None:  # a dotted path such as "layers.0"
                sub = module
                for part in child.split("."):
                    sub = sub._modules[part]
            return self.run(sub, child_shape, _join(name, child), depth + 1)

        rule = _shape_rule(cls)
        if rule is not None:
            return rule(module, shape, trace_child, name)
        raise ShapeError(name, cls.__name__,
                         "cnnviz cannot compute this layer's output size (a container needs a "
                         "shape_rule beside its forward)", "other")

    # -- leaves -----------------------------------------------------------------------------
    def _needs_map(self, module: nn.Module, shape: Shape, name: str, channels: int) -> None:
        kind = type(module).__name__
        if len(shape) != 3:
            raise ShapeError(name, kind, f"needs a C×H×W feature map but gets {shape[0]} flat "
                             "features (it comes after Flatten)", "other")
        if shape[0] != channels:
            raise ShapeError(name, kind, f"expects {channels} input channels but gets "
                             f"{shape[0]}", "other")

    def _conv(self, m: nn.Conv2d, shape: Shape, name: str) -> tuple[Shape, str]:
        self._needs_map(m, shape, name, m.in_channels)
        if isinstance(m.padding, str):
            raise ShapeError(name, "Conv2d", "string padding is not supported", "other")
        sizes, texts = [], []
        for n, k, s, p, d in zip(shape[1:], m.kernel_size, m.stride, m.padding, m.dilation):
            span = d * (k - 1) + 1
            if n + 2 * p < span:
                raise ShapeError(name, "Conv2d", _too_small(shape, m.kernel_size, m.padding,
                                                            m.dilation), "small")
            out = (n + 2 * p - span) // s + 1
            sizes.append(out)
            texts.append(_window_formula(n, k, s, p, d, False, out))
        return (m.out_channels, *sizes), _per_dim(texts)

    def _pool(self, m: nn.MaxPool2d | nn.AvgPool2d, shape: Shape, name: str
              ) -> tuple[Shape, str]:
        kind = type(m).__name__
        if len(shape) != 3:
            raise ShapeError(name, kind, "needs a C×H×W feature map but gets flat features",
                             "other")
        kernel, padding = _pair(m.kernel_size), _pair(m.padding)
        stride = _pair(m.stride if m.stride else m.kernel_size)
        dilation = _pair(getattr(m, "dilation", 1))
        sizes, texts = [], []
        for n, k, s, p, d in zip(shape[1:], kernel, stride, padding, dilation):
            span = d * (k - 1) + 1
            if p > span // 2:
                raise ShapeError(name, kind, f"padding {p} is more than half the kernel "
                                 f"{span}", "other")
            out = (n + 2 * p - span + (s - 1 if m.ceil_mode else 0)) // s + 1
            note = ""
            if m.ceil_mode and (out - 1) * s >= n + p:
                out -= 1
                note = " − 1 (the last window would start in the padding)"
            if out < 1:
                raise ShapeError(name, kind, _too_small(shape, kernel, padding, dilation),
                                 "small")
            text = _window_formula(n, k, s, p, d, m.ceil_mode, out)
            if note:
                text = text.replace(f" = {out}", f"{note} = {out}")
            sizes.append(out)
            texts.append(text)
        return (shape[0], *sizes), _per_dim(texts)

    def _adaptive(self, m: nn.AdaptiveAvgPool2d, shape: Shape, name: str) -> tuple[Shape, str]:
        if len(shape) != 3:
            raise ShapeError(name, type(m).__name__, "needs a C×H×W feature map but gets flat "
                             "features", "other")
        size = m.output_size  # an int, or a pair whose None keeps that side of the input
        oh, ow = (size, size) if isinstance(size, int) else size
        oh, ow = oh or shape[1], ow or shape[2]
        return (shape[0], oh, ow), f"average of each region: {fmt_shape(shape[1:])} → {oh}×{ow}"

    def _batchnorm2d(self, m: nn.BatchNorm2d, shape: Shape, name: str) -> tuple[Shape, str]:
        self._needs_map(m, shape, name, m.num_features)
        return shape, ""

    def _batchnorm1d(self, m: nn.BatchNorm1d, shape: Shape, name: str) -> tuple[Shape, str]:
        if shape != (m.num_features,):
            raise ShapeError(name, "BatchNorm1d", f"expects {m.num_features} features but "
                             f"gets {fmt_shape(shape)}", "other")
        return shape, ""

    def _flatten(self, m: nn.Flatten, shape: Shape, name: str) -> tuple[Shape, str]:
        if len(shape) == 1:
            return shape, ""
        self._flattened_from = shape
        total = 1
        for d in shape:
            total *= d
        return (total,), f"{'·'.join(str(d) for d in shape)} = {total}"

    def _linear(self, m: nn.Linear, shape: Shape, name: str) -> tuple[Shape, str]:
        if len(shape) != 1:
            raise ShapeError(name, "Linear", f"gets a {fmt_shape(shape)} feature map; add a "
                             "Flatten before it", "other")
        got = shape[0]
        if got != m.in_features:
            source = self._flattened_from
            detail = f" ({fmt_shape(source)} after Flatten)" if source else ""
            raise ShapeError(name, "Linear", f"expects {m.in_features} input features but "
                             f"gets {got}{detail}", "small" if got < m.in_features else "large")
        return (m.out_features,), f"{m.in_features} → {m.out_features}"

    def _same(self, m: nn.Module, shape: Shape, name: str) -> tuple[Shape, str]:
        return shape, ""


@functools.cache
def _shape_rule(cls: type):
    """A container class's shape rule, looked up once per class (on the class: an instance
    lookup of a missing attribute goes through nn.Module.__getattr__, which is slow)."""
    return getattr(cls, "shape_rule", None)


def _too_small(shape: Shape, kernel, padding, dilation) -> str:
    kernel, padding, dilation = _pair(kernel), _pair(padding), _pair(dilation)
    size = fmt_shape(shape[1:])
    padded = ""
    if any(padding):
        padded = f" (padded to {shape[1] + 2 * padding[0]}×{shape[2] + 2 * padding[1]})"
    if kernel[0] == kernel[1]:
        kern = f"kernel {kernel[0]}"
    else:
        kern = f"kernel {kernel[0]}×{kernel[1]}"
    if any(d != 1 for d in dilation):
        spans = [d * (k - 1) + 1 for d, k in zip(dilation, kernel)]
        if dilation[0] == dilation[1] and spans[0] == spans[1]:
            kern += f" (spanning {spans[0]} with dilation {dilation[0]})"
        else:
            kern += f" (spanning {spans[0]}×{spans[1]} with dilation {dilation[0]}×{dilation[1]})"
    return f"input {size}{padded} is smaller than {kern}"


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


_LEAF_RULES = {
    nn.Conv2d: Tracer._conv,
    nn.MaxPool2d: Tracer._pool,
    nn.AvgPool2d: Tracer._pool,
    nn.AdaptiveAvgPool2d: Tracer._adaptive,
    nn.BatchNorm2d: Tracer._batchnorm2d,
    nn.BatchNorm1d: Tracer._batchnorm1d,
    nn.Flatten: Tracer._flatten,
    nn.Linear: Tracer._linear,
    **{cls: Tracer._same for cls in SHAPE_PRESERVING},
}


def output_shape(model: nn.Module, input_shape: Shape) -> Shape:
    """The output shape for one input ``(C, H, W)``; raises ShapeError where it fails."""
    return Tracer().run(model, tuple(input_shape))


def trace(model: nn.Module, input_shape: Shape) -> list[Row]:
    """Every module with its input/output shape and conv/pool arithmetic, in execution order."""
    rows, failure = trace_until_failure(model, input_shape)
    if failure is not None:
        raise failure
    return rows


def trace_until_failure(model: nn.Module, input_shape: Shape
                        ) -> tuple[list[Row], ShapeError | None]:
    """The rows :func:`trace` gives, up to and including the layer that cannot run, and its
    :class:`ShapeError` (None when the whole network runs).

    The failing module's row and the rows of the blocks around it keep an empty
    ``output_shape``: they never produced one. Only the recording tracer pays for this; the
    size search's ``output_shape`` is unchanged.
    """
    tracer = Tracer(record=True)
    try:
        tracer.run(model, tuple(input_shape))
    except ShapeError as exc:
        return tracer.rows or [], exc
    return tracer.rows or [], None
