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
from cnnviz.models import build, build_meta
from cnnviz.models.arithmetic import output_shape
from cnnviz.shapes.sizes import SizeReport, spec_sizes
from cnnviz.shapes.summary import Summary, summarize_until_failure

MAX_SIZE = 1024


@dataclass(frozen=True)
class Analysis:
    spec: object
    size: tuple[int, int]
    summary: Summary | None = None
    problems: tuple[Problem, ...] = ()   # the spec cannot be built
    sizes: SizeReport | None = None       # valid square sizes, from size_report(spec)
    nearest: tuple[int | None, int | None] = (None, None)  # working sizes below / above
    partial: Summary | None = None        # it builds but does not run: the rows up to the
                                          # failing layer

    @property
    def ok(self) -> bool:
        return self.summary is not None

    @property
    def failure(self) -> ShapeError | None:
        """Why it does not run at this size (it builds)."""
        return self.partial.failure if self.partial is not None else None

    @property
    def table(self) -> Summary | None:
        """What the layer table, the arithmetic and the shape flow show: the whole summary,
        or up to the failing layer (``failure`` set) when the network does not run."""
        return self.summary or self.partial


@functools.lru_cache(maxsize=256)
def size_report(spec, up_to: int | None = None) -> SizeReport:
    """The valid sizes that every page shows for a spec that builds (Input size, the sidebar,
    Build's nearest sizes): 1..N, N holding the spec's own size with a margin, or ``up_to``
    where the learner asked for more. One report, so no two places disagree."""
    return spec_sizes(spec, up_to)


@functools.lru_cache(maxsize=256)
def analyse(spec, size: tuple[int, int] | None = None) -> Analysis:
    """The summary at ``size`` (default: the spec's input size), or why there is none."""
    size = size or (spec.input_size, spec.input_size)
    try:
        build_meta(spec)
    except SpecError as exc:
        return Analysis(spec, size, problems=tuple(exc.problems),
                        nearest=(None, _smallest_buildable_size(spec, exc)))
    sizes = size_report(spec)
    summary = summarize_until_failure(spec, size)
    if summary.failure is None:
        return Analysis(spec, size, summary=summary, sizes=sizes)
    n = size[0]
    below = max((min(hi, n - 1) for lo, hi in sizes.valid if lo < n), default=None)
    above = min((lo for lo, _ in sizes.valid if lo > n), default=None)
    return Analysis(spec, size, sizes=sizes, nearest=(below, above), partial=summary)


def _smallest_buildable_size(spec, exc: SpecError) -> int | None:
    """Families that size their Linear from ``input_size`` cannot be built below the size
    their convolutions need; binary-search the smallest ``input_size`` that builds."""
    if not any(p.path == "input_size" for p in exc.problems):
        return None
    return builds_from(spec)  # it fails at its input_size, so at every smaller one too


@functools.lru_cache(maxsize=256)
def builds_from(spec) -> int | None:
    """The smallest ``input_size`` a family that sizes its first Linear from ``input_size``
    can be built for (LeNet: 12); the Linear is then made to fit that size. None where
    ``input_size`` does not decide how the network is built (a custom chain).

    Building is not running: a built network runs only at the sizes that give that Linear
    exactly its ``in_features`` (LeNet built for 28: 28–31)."""
    if _builds(spec, 1):
        return None
    return _first_building(spec, 2, max(spec.input_size, MAX_SIZE))


def _builds(spec, n: int) -> bool:
    try:  # uncached: the search's throwaway sizes must not push used models out of build_meta
        build(dataclasses.replace(spec, input_size=n), device="meta")
        return True
    except SpecError:
        return False


def _first_building(spec, lo: int, hi: int) -> int | None:
    """The smallest ``input_size`` in lo..hi the spec builds at (a size too small for the
    convolutions fails, and so does every smaller one), or None."""
    if not _builds(spec, hi):
        return None
    while lo < hi:
        mid = (lo + hi) // 2
        if _builds(spec, mid):
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


def human_bytes(n: int) -> str:
    """A size in bytes as people read it (decimal units, as torchinfo): 312 KB, 52.4 MB,
    1.2 GB; small values in KB or bytes, never "0 MB"."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            value = n / scale
            return f"{value:.3g} {unit}" if value < 100 else f"{value:,.0f} {unit}"
    return f"{n} B"


def describe_sizes(report: SizeReport | None) -> str:
    """One phrase for the valid sizes: "193–224", "67 and up", "none up to 1024"."""
    if report is None or not report.valid:
        return f"none up to {report.checked_up_to if report else MAX_SIZE}"
    if report.swept:  # checked one by one: the runs as found, nothing claimed past them
        return f"{_runs_text(report.valid)} (of 1–{report.checked_up_to})"
    if report.max is None:
        return f"{report.min} and up"
    # the last interval ends at the true maximum, which may lie past the range checked
    *first, (last, _) = report.valid
    return _runs_text([*first, (last, report.max)])


def _runs_text(runs: list[tuple[int, int]]) -> str:
    return ", ".join(f"{lo}–{hi}" if lo != hi else str(lo) for lo, hi in runs)


def largest_size(report: SizeReport) -> str:
    """The largest size that runs, in words: "224", "no limit", "none", or for sizes checked
    one by one "unknown past 1024"."""
    if not report.valid:
        return "none"
    if report.swept:
        return f"unknown past {report.checked_up_to}"
    return "no limit" if report.max is None else str(report.max)


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
            return out | {"params": "—", "mult-adds": "—", "memory": "—"}
        return out | {"params": f"{s.total_params:,}", "mult-adds": f"{s.mult_adds:,}",
                      "memory": human_bytes(s.total_bytes),
                      "output": fmt_shape(s.layers[-1].output_shape)}

    left, right = numbers(pinned), numbers(current)
    if pinned.summary and current.summary:
        a, b = stage_shapes(pinned.summary), stage_shapes(current.summary)
        for name in list(a) + [n for n in b if n not in a]:
            left[f"stage {name}"] = a.get(name, "")
            right[f"stage {name}"] = b.get(name, "")
    keys = list(left) + [k for k in right if k not in left]
    return [{"": k, "pinned": left.get(k, ""), "current": right.get(k, "")} for k in keys]


def features_before(spec, index: int, size: tuple[int, int] | None = None) -> int | None:
    """How many values reach layer ``index`` of a custom spec at ``size`` (default: its input
    size): what its Linear's in_features must be; None where the layers before it do not
    run."""
    if index == 0:
        return None
    height, width = size or (spec.input_size, spec.input_size)
    head = dataclasses.replace(spec, layers=spec.layers[:index])
    try:
        shape = output_shape(build_meta(head), (spec.in_channels, height, width))
    except (SpecError, ShapeError):
        return None
    total = 1
    for d in shape:
        total *= d
    return total


@dataclass(frozen=True)
class Fix:
    """A one-click change that makes the network run at the size it failed at."""

    label: str   # the button: "Set in_features to 9216"
    help: str    # why it works
    spec: object


def linear_fix(a: Analysis) -> Fix | None:
    """For a Flatten → Linear mismatch, the edit that makes the Linear take what reaches it
    at ``a.size``: a custom network sets that Linear's in_features; a family that sizes its
    Linear from ``input_size`` (LeNet, AlexNet, VGG) takes the size tried as its input size.
    None for any other failure, or where neither edit makes it run."""
    f = a.failure
    if f is None or f.layer_type != "Linear" or f.direction == "other":
        return None
    spec = a.spec
    if spec.family == "custom":
        if not f.layer.isdigit():
            return None
        index = int(f.layer)
        (fits,) = a.partial.failing_row.input_shape  # the flat features that reach it
        layers = list(spec.layers)
        layers[index] = dataclasses.replace(layers[index], in_features=fits)
        fixed = dataclasses.replace(spec, layers=tuple(layers))
        label = f"Set in_features of layer {index} to {fits}"
        why = (f"{fits} features reach this Linear at {a.size[0]}×{a.size[1]} (the flattened "
               "map); a Linear must take exactly that many")
    else:
        if a.size[0] != a.size[1] or a.size[0] == spec.input_size:
            return None
        fixed = dataclasses.replace(spec, input_size=a.size[0])
        label = f"Set input size to {a.size[0]}"
        why = (f"this family sizes its Linear from the input size: at {a.size[0]} it takes "
               "the features that reach it")
    try:
        build_meta(fixed)
    except SpecError:
        return None
    if summarize_until_failure(fixed, a.size).failure is not None:
        return None
    return Fix(label, why, fixed)
