"""The layer table of a network at one input size: torchinfo's numbers, by arithmetic.

Each row has torchinfo's columns (output shape, parameters, mult-adds, kernel) plus the conv
or pool arithmetic written out with the layer's own numbers. The tests check every number
against ``torchinfo.summary``; this path is about ten times faster because it needs no
forward pass, which matters when it runs on every slider move.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from cnnviz.errors import Problem, ShapeError, SpecError, fmt_shape
from cnnviz.models import build_meta
from cnnviz.models.arithmetic import Row, trace_until_failure

BYTES_PER_VALUE = 4  # float32, as torchinfo assumes
MAX_SIDE = 100_000  # the largest height or width a summary accepts


@dataclass
class LayerRow:
    name: str
    type: str
    depth: int
    is_leaf: bool
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    params: int
    mult_adds: int
    kernel: tuple[int, int] | None
    arithmetic: str


@dataclass
class Summary:
    input_shape: tuple[int, int, int, int]
    rows: list[LayerRow]
    total_params: int
    trainable_params: int
    mult_adds: int
    input_bytes: int
    forward_backward_bytes: int
    param_bytes: int
    warnings: list[str] = field(default_factory=list)
    # Set by summarize_until_failure when the network stops: the rows end at the failing
    # layer, whose output_shape (and that of the blocks around it) is empty.
    failure: ShapeError | None = None

    @property
    def failing_row(self) -> LayerRow | None:
        """The row of the layer (or block) that cannot run, or None when it all runs."""
        if self.failure is None:
            return None
        return next((r for r in reversed(self.rows) if r.name == self.failure.layer), None)

    @property
    def layers(self) -> list[LayerRow]:
        """The leaf modules in execution order."""
        return [r for r in self.rows if r.is_leaf]

    @property
    def total_bytes(self) -> int:
        return self.input_bytes + self.forward_backward_bytes + self.param_bytes

    def to_json(self) -> dict:
        return {
            "input_shape": list(self.input_shape),
            "layers": [{"name": r.name, "type": r.type, "output_shape": [1, *r.output_shape],
                        "params": r.params} for r in self.layers],
            "total_params": self.total_params,
            "mult_adds": self.mult_adds,
        }


def parse_size(text: str) -> tuple[int, int]:
    """``"96"`` or ``"96x128"`` (height × width) → (H, W); SpecError when malformed."""
    parts = text.lower().replace("×", "x").split("x")
    try:
        values = [int(p) for p in parts] if len(text) <= 20 else []
    except ValueError:
        values = []
    if len(values) not in (1, 2) or any(not 1 <= v <= MAX_SIDE for v in values):
        raise SpecError([Problem("size", f"{text[:40]!r} is not a size; use N or HxW with "
                                         f"integers from 1 to {MAX_SIDE:,}, e.g. 224 or 96x128")])
    return (values[0], values[-1])


def summarize(spec, size: int | tuple[int, int] | None = None) -> Summary:
    """The summary at ``size`` (default: the spec's input size).

    Raises :class:`~cnnviz.errors.ShapeError` when the network does not run at that size.
    """
    summary = summarize_until_failure(spec, size)
    if summary.failure is not None:
        raise summary.failure
    return summary


def summarize_until_failure(spec, size: int | tuple[int, int] | None = None) -> Summary:
    """The summary at ``size``, or where the network does not run, the rows up to the
    failing layer with ``failure`` set: what a page shows to explain the failure.

    Parameters count the whole network; mult-adds and memory only the layers that ran.
    """
    h, w = (size, size) if isinstance(size, int) else size or (spec.input_size,) * 2
    model = build_meta(spec)
    rows, failure = trace_until_failure(model, (spec.in_channels, h, w))
    table = [_layer_row(r) for r in rows]
    _fill_containers(table)
    leaves = [r for r in table if r.is_leaf]
    total = sum(p.numel() for p in model.parameters())
    out_values = sum(_numel(r.output_shape) for r in leaves if r.params > 0 and r.output_shape)
    return Summary(
        input_shape=(1, spec.in_channels, h, w),
        rows=table,
        total_params=total,
        trainable_params=sum(p.numel() for p in model.parameters() if p.requires_grad),
        mult_adds=sum(r.mult_adds for r in leaves),
        input_bytes=BYTES_PER_VALUE * spec.in_channels * h * w,
        forward_backward_bytes=2 * BYTES_PER_VALUE * out_values,  # x2: gradients too
        param_bytes=BYTES_PER_VALUE * total,
        warnings=_warnings(spec, rows) if failure is None else [],
        failure=failure,
    )


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _layer_row(row: Row) -> LayerRow:
    module = row.module
    params, mult_adds = 0, 0
    if row.is_leaf:
        params = sum(p.numel() for p in module.parameters())
        # torchinfo's rule: a conv's parameters act at every output position; other layers'
        # once per example (batch size 1 here).
        spatial = _numel(row.output_shape[1:]) if isinstance(module, nn.Conv2d) else 1
        mult_adds = params * spatial if row.output_shape else 0  # a layer that cannot run
    kernel = getattr(module, "kernel_size", None) if row.is_leaf else None
    if isinstance(kernel, int):
        kernel = (kernel, kernel)
    return LayerRow(row.name, row.type, row.depth, row.is_leaf, row.input_shape,
                    row.output_shape, params, mult_adds, tuple(kernel) if kernel else None,
                    row.arithmetic)


def _fill_containers(table: list[LayerRow]) -> None:
    """A container's params and mult-adds are the sums over the leaves inside it."""
    stack: list[LayerRow] = []
    for row in table:
        while stack and stack[-1].depth >= row.depth:
            stack.pop()
        if row.is_leaf:
            for parent in stack:
                parent.params += row.params
                parent.mult_adds += row.mult_adds
        else:
            stack.append(row)


def _warnings(spec, rows: list[Row]) -> list[str]:
    if not rows:
        return []
    final = rows[-1].output_shape
    top = [r for r in rows if r.depth == 1]
    final = top[-1].output_shape if top else final
    if len(final) == 3:
        return [f"the output is a {fmt_shape(final)} feature map, not {spec.num_classes} class "
                "scores: end with global average pooling and flatten, or flatten and linear"]
    if final[0] != spec.num_classes:
        return [f"the output has {final[0]} values but num_classes is {spec.num_classes}"]
    return []
