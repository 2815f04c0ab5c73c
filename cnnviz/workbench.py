"""Everything a page shows about one network at one input size, computed once per spec.

Pages call :func:`analyse` on every rerun; it is cached by (spec, size), never builds real
weights, and turns every failure into data the page can show (problems, the failing layer,
the nearest sizes that work) instead of an exception.
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

from cnnviz.errors import Problem, ShapeError, SpecError, fmt_shape
from cnnviz.models import build_meta
from cnnviz.models.arithmetic import output_shape
from cnnviz.shapes.sizes import SizeReport, find_valid_sizes
from cnnviz.shapes.summary import Summary, summarize

MAX_SIZE = 1024


@dataclass(frozen=True)
class Analysis:
    spec: object
    size: tuple[int, int]
    summary: Summary | None = None
    problems: tuple[Problem, ...] = ()   # the spec cannot be built
    failure: ShapeError | None = None     # it builds, but does not run at this size
    sizes: SizeReport | None = None       # valid square sizes 1..MAX_SIZE
    nearest: tuple[int | None, int | None] = (None, None)  # working sizes below / above

    @property
    def ok(self) -> bool:
        return self.summary is not None


@functools.lru_cache(maxsize=256)
def analyse(spec, size: tuple[int, int] | None = None) -> Analysis:
    """The summary at ``size`` (default: the spec's input size), or why there is none."""
    size = size or (spec.input_size, spec.input_size)
    try:
        model = build_meta(spec)
    except SpecError as exc:
        return Analysis(spec, size, problems=tuple(exc.problems),
                        nearest=(None, _smallest_buildable_size(spec, exc)))
    sizes = find_valid_sizes(model, spec.in_channels, MAX_SIZE)
    try:
        return Analysis(spec, size, summary=summarize(spec, size), sizes=sizes)
    except ShapeError as exc:
        n = size[0]
        below = max((min(hi, n - 1) for lo, hi in sizes.valid if lo < n), default=None)
        above = min((lo for lo, _ in sizes.valid if lo > n), default=None)
        return Analysis(spec, size, failure=exc, sizes=sizes, nearest=(below, above))


def _smallest_buildable_size(spec, exc: SpecError) -> int | None:
    """Families that size their Linear from ``input_size`` cannot be built below the size
    their convolutions need; binary-search the smallest ``input_size`` that builds."""
    if not any(p.path == "input_size" for p in exc.problems):
        return None

    def builds(n: int) -> bool:
        try:
            build_meta(dataclasses.replace(spec, input_size=n))
            return True
        except SpecError:
            return False

    lo, hi = spec.input_size + 1, MAX_SIZE
    if not builds(hi):
        return None
    while lo < hi:
        mid = (lo + hi) // 2
        if builds(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def layer_label(name: str, layer_type: str) -> str:
    """How a page names a layer: "MaxPool2d `b3.2`", or "Linear (layer 12)" in a custom chain,
    whose modules are numbered like nn.Sequential's."""
    return f"{layer_type} (layer {name})" if name.isdigit() else f"{layer_type} `{name}`"


def human(n: int) -> str:
    """A count in a few characters: 61.7 K, 46.8 M, 2.83 G."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            value = n / scale
            return f"{value:.3g} {unit}" if value < 100 else f"{value:.0f} {unit}"
    return str(n)


def describe_sizes(report: SizeReport | None) -> str:
    """One phrase for the valid sizes: "193–224", "67 and up", "none up to 1024"."""
    if report is None or not report.valid:
        return f"none up to {report.checked_up_to if report else MAX_SIZE}"
    if report.max is None:
        return f"{report.min} and up"
    return ", ".join(f"{lo}–{hi}" if lo != hi else str(lo) for lo, hi in report.valid)


def stage_shapes(summary: Summary) -> dict[str, str]:
    return {r.name: fmt_shape(r.output_shape) for r in summary.rows if r.depth == 1}


def compare(pinned: Analysis, current: Analysis) -> list[dict[str, str]]:
    """Rows of a side-by-side comparison: the headline numbers, then each stage's shape."""
    def numbers(a: Analysis) -> dict[str, str]:
        s = a.summary
        out = {"family": a.spec.family,
               "input": f"{a.spec.in_channels}×{a.size[0]}×{a.size[1]}",
               "valid sizes": describe_sizes(a.sizes)}
        if s is None:
            return out | {"params": "—", "mult-adds": "—", "memory (MB)": "—"}
        return out | {"params": f"{s.total_params:,}", "mult-adds": f"{s.mult_adds:,}",
                      "memory (MB)": f"{s.total_bytes / 1e6:.1f}",
                      "output": fmt_shape(s.layers[-1].output_shape)}

    left, right = numbers(pinned), numbers(current)
    if pinned.summary and current.summary:
        a, b = stage_shapes(pinned.summary), stage_shapes(current.summary)
        for name in list(a) + [n for n in b if n not in a]:
            left[f"stage {name}"] = a.get(name, "")
            right[f"stage {name}"] = b.get(name, "")
    keys = list(left) + [k for k in right if k not in left]
    return [{"": k, "pinned": left.get(k, ""), "current": right.get(k, "")} for k in keys]


def features_before(spec, index: int) -> int | None:
    """How many values reach layer ``index`` of a custom spec at its input size (what its
    Linear's in_features must be), or None where the layers before it do not run."""
    if index == 0:
        return None
    head = dataclasses.replace(spec, layers=spec.layers[:index])
    try:
        shape = output_shape(build_meta(head), (spec.in_channels, spec.input_size,
                                                spec.input_size))
    except (SpecError, ShapeError):
        return None
    total = 1
    for d in shape:
        total *= d
    return total
