"""Which square input sizes a network accepts, found by binary search on size arithmetic.

Every layer's output size is a non-decreasing function of its input size, and a layer fails
either because its input is too small (a kernel larger than the map: fails for every smaller
size too) or because a Linear gets the wrong number of flattened features (too few below a
band, too many above it). So the sizes that run form one interval, found with a few binary
searches over :func:`~cnnviz.models.arithmetic.output_shape` — the study notes' "use binary
search: once the feature map gets smaller than a kernel, it fails". A failure of neither kind
(a block whose paths disagree, layers whose channels do not fit) breaks that structure, and
then the finder checks every size, and claims no largest size past the range it checked
(``SizeReport.swept``: such valid sizes can come back after a gap). No spec builds such a
network (its blocks' paths agree at every size, and its channels are checked when it is
built); a module written by hand can be one (tests/test_sizes.py: a residual block whose
paths agree only at even sizes).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from cnnviz.errors import ShapeError
from cnnviz.models import build_meta
from cnnviz.models.arithmetic import output_shape, trace

# Sizes beyond the checked range are probed up to here to tell a band from "no maximum".
UNBOUNDED = 1 << 30


@dataclass(frozen=True)
class SizeFailure:
    size: int
    layer: str
    layer_type: str
    reason: str

    def to_json(self) -> dict:
        return {"size": self.size, "layer": self.layer, "reason": self.reason}

    def __str__(self) -> str:
        return f"size {self.size}: {self.layer_type} {self.layer}: {self.reason}"


@dataclass(frozen=True)
class BatchOneReport:
    """Where BatchNorm in training mode fails with batch size 1 (one value per channel)."""

    always: tuple[str, ...] = ()      # BatchNorm1d layers: one value per feature, any size
    min_size: int | None = None       # smallest valid size where every BatchNorm2d has >1
    below: SizeFailure | None = None  # the BatchNorm2d that sees a 1×1 map just below it

    @property
    def applies(self) -> bool:
        return bool(self.always) or self.below is not None

    @property
    def everywhere(self) -> bool:
        """A BatchNorm2d sees a 1×1 map at every valid size that was checked."""
        return self.below is not None and self.min_size is None


@dataclass
class SizeReport:
    valid: list[tuple[int, int]]
    checked_up_to: int
    below_min: SizeFailure | None
    above_max: SizeFailure | None
    true_max: int | None  # the largest size that runs, even past checked_up_to
    batch_one: BatchOneReport = field(default_factory=BatchOneReport)
    # The sizes were checked one by one (failures that follow no pattern): nothing is known
    # past checked_up_to, so there is no known largest size (``max`` is None).
    swept: bool = False

    @property
    def min(self) -> int | None:
        return self.valid[0][0] if self.valid else None

    @property
    def max(self) -> int | None:
        """The largest size that runs (it may lie beyond ``checked_up_to``); None: no limit,
        or, when ``swept``, not known (a size past the range checked may run again)."""
        return self.true_max if self.valid else None

    @property
    def why_no_max(self) -> str:
        """Why a swept report claims no largest size, in one clause."""
        return (f"every size up to {self.checked_up_to} was checked one by one: the failures "
                "follow no pattern, so a larger size may run")

    @property
    def max_in_range(self) -> int | None:
        """The largest size that runs if the valid sizes end within 1..checked_up_to."""
        return self.max if self.max is not None and self.max <= self.checked_up_to else None

    def accepts(self, size: int) -> bool:
        return any(lo <= size <= hi for lo, hi in self.valid)

    def to_json(self) -> dict:
        return {"valid": [list(v) for v in self.valid], "min": self.min,
                "max": self.max_in_range,
                "checked_up_to": self.checked_up_to,
                "below_min": self.below_min.to_json() if self.below_min else None}


def _classify(model: nn.Module, channels: int, n: int) -> tuple[str, ShapeError | None]:
    try:
        output_shape(model, (channels, n, n))
        return "ok", None
    except ShapeError as exc:
        return exc.direction, exc


def _failure(n: int, exc: ShapeError) -> SizeFailure:
    return SizeFailure(n, exc.layer, exc.layer_type, exc.reason)


class _NotMonotone(Exception):
    pass


def _first(lo: int, hi: int, pred) -> int:
    """Smallest n in [lo, hi] with pred(n) true, for pred false…false true…true; hi+1 if none."""
    while lo <= hi:
        mid = (lo + hi) // 2
        if pred(mid):
            hi = mid - 1
        else:
            lo = mid + 1
    return lo


def find_valid_sizes(model: nn.Module, channels: int, max_size: int = 1024) -> SizeReport:
    """The exact set of square sizes in 1..max_size on which ``model`` runs."""
    cache: dict[int, tuple[str, ShapeError | None]] = {}

    def cls(n: int) -> str:
        if n not in cache:
            cache[n] = _classify(model, channels, n)
        if cache[n][0] == "other":
            raise _NotMonotone
        return cache[n][0]

    try:
        lo = _first(1, max_size, lambda n: cls(n) != "small")
        if lo > max_size:  # too small everywhere in range
            return SizeReport([], max_size, _failure(max_size, cache[max_size][1]), None, None)
        below = _failure(lo - 1, cache[lo - 1][1]) if lo > 1 else None
        if cls(lo) == "large":  # jumped over a band that holds no integer size
            return SizeReport([], max_size, below, _failure(lo, cache[lo][1]), None)
        end = _first(lo, UNBOUNDED, lambda n: cls(n) == "large")
    except _NotMonotone:
        return _sweep(model, channels, max_size)
    true_max = end - 1 if end <= UNBOUNDED else None
    above = _failure(end, cache[end][1]) if true_max is not None else None
    valid = [(lo, min(end - 1, max_size))]
    return SizeReport(valid, max_size, below, above, true_max,
                      _batch_one(model, channels, valid))


def _sweep(model: nn.Module, channels: int, max_size: int) -> SizeReport:
    """Check every size: only for networks whose failures do not follow the monotone pattern.

    It knows the sizes 1..max_size only. Such a network's valid sizes can come back after a
    gap (tests/test_mutants_shapes.py: runs of two sizes in every four), so where the last
    size checked fails, the last size that ran is the largest *in the range*, not the
    largest that runs: the report has no maximum and says it was swept."""
    results = [_classify(model, channels, n) for n in range(1, max_size + 1)]
    valid: list[tuple[int, int]] = []
    for n, (kind, _) in enumerate(results, 1):
        if kind == "ok":
            if valid and valid[-1][1] == n - 1:
                valid[-1] = (valid[-1][0], n)
            else:
                valid.append((n, n))
    if not valid:
        return SizeReport([], max_size, _failure(max_size, results[-1][1]), None, None,
                          swept=True)
    lo, hi = valid[0][0], valid[-1][1]
    below = _failure(lo - 1, results[lo - 2][1]) if lo > 1 else None
    above = _failure(hi + 1, results[hi][1]) if hi < max_size else None
    return SizeReport(valid, max_size, below, above, None, _batch_one(model, channels, valid),
                      swept=True)


def _batch_one(model: nn.Module, channels: int,
               valid: list[tuple[int, int]]) -> BatchOneReport:
    """BatchNorm in training mode needs more than one value per channel: with batch size 1,
    a BatchNorm1d always fails and a BatchNorm2d fails where its map is 1×1.

    ``valid``: the valid sizes as intervals, in order. Maps grow with the input, so the sizes
    where no BatchNorm2d sees a 1×1 map are those from some size up: searched interval by
    interval (one interval unless the sizes were found by checking every size)."""
    norms = [r for r in trace(model, (channels, valid[0][0], valid[0][0]))
             if isinstance(r.module, (nn.BatchNorm1d, nn.BatchNorm2d))]
    if not norms:
        return BatchOneReport()
    always = tuple(r.name for r in norms if isinstance(r.module, nn.BatchNorm1d))

    def single(n: int):
        for r in trace(model, (channels, n, n)):
            if isinstance(r.module, nn.BatchNorm2d) and r.input_shape[1] * r.input_shape[2] == 1:
                return r
        return None

    min_size, last_single = None, None
    for lo, hi in valid:
        first_ok = _first(lo, hi, lambda n: single(n) is None)
        if first_ok > lo:
            last_single = first_ok - 1
        if first_ok <= hi:
            min_size = first_ok
            break
    below = None
    if last_single is not None:
        r = single(last_single)
        below = SizeFailure(last_single, r.name, r.type, "a 1×1 map gives one value per "
                            "channel with batch size 1; training mode needs more than one")
    return BatchOneReport(always, min_size, below)


def valid_sizes(spec, max_size: int = 1024) -> SizeReport:
    """The valid square input sizes of a spec, 1..max_size."""
    return find_valid_sizes(build_meta(spec), spec.in_channels, max_size)


# The range a page checks by default holds at least 1..SMALLEST_RANGE; when no size runs in
# it, it doubles by itself up to GROW_TO (beyond that, only when the learner asks).
SMALLEST_RANGE = 256
GROW_TO = 1024


def range_for(input_size: int, at_least: int = SMALLEST_RANGE) -> int:
    """The range 1..N checked for a network meant for ``input_size``: N is a power of two at
    least ``at_least`` that holds the network's own size with a margin of a quarter above it
    (so a band just above the size is seen too)."""
    need = max(at_least, input_size + max(1, input_size // 4))
    return 1 << (need - 1).bit_length()


def range_choices(start: int, input_size: int) -> list[int]:
    """The ranges a learner can grow to from ``start``: doubling up to four times the
    network's size, and at least to 16384."""
    top = max(16384, 4 * range_for(input_size))
    choices = [start]
    while choices[-1] < top:
        choices.append(choices[-1] * 2)
    return choices


def spec_sizes(spec, up_to: int | None = None) -> SizeReport:
    """The valid sizes a page shows for ``spec``: 1..:func:`range_for` its own size (or
    1..``up_to`` when that is larger); a range in which no size runs doubles up to GROW_TO,
    so a network that runs only from, say, 451 up is reported as such, not as "none"."""
    model = build_meta(spec)
    top = max(range_for(spec.input_size), up_to or 0)
    report = find_valid_sizes(model, spec.in_channels, top)
    while not report.valid and top < GROW_TO:
        top *= 2
        report = find_valid_sizes(model, spec.in_channels, top)
    return report


def runs_forward(model: nn.Module, channels: int, n: int) -> bool:
    """Whether a real (meta-device) forward pass succeeds at n×n: the reference the tests and
    benchmarks compare the arithmetic with."""
    try:
        with torch.no_grad():
            model(torch.empty(1, channels, n, n, device="meta"))
        return True
    except RuntimeError:
        return False


def sweep_forward(model: nn.Module, channels: int, max_size: int) -> list[tuple[int, int]]:
    """Valid sizes by trying every size with a forward pass (slow; the baseline)."""
    model = model.eval()
    valid: list[tuple[int, int]] = []
    for n in range(1, max_size + 1):
        if runs_forward(model, channels, n):
            if valid and valid[-1][1] == n - 1:
                valid[-1] = (valid[-1][0], n)
            else:
                valid.append((n, n))
    return valid


def advice(report: SizeReport, family: str = "custom") -> list[str]:
    """What to change to widen the range of sizes, in the book's terms."""
    tips: list[str] = []
    above = report.above_max
    if above is not None and above.layer_type == "Linear":
        how = ("add an adaptive_avg_pool layer before the flatten" if family == "custom" else
               "set adaptive_pool (e.g. 1, or torchvision's 6 for AlexNet and 7 for VGG)")
        tips.append(f"{above.layer_type} {above.layer} fixes the flattened size, so only a band "
                    f"of sizes fits: {how}; with pooling to a fixed size before the flatten, "
                    "as NiN and GoogLeNet do, every size from the minimum up works")
    below = report.below_min
    if below is not None and below.layer_type in ("Conv2d", "MaxPool2d", "AvgPool2d"):
        tips.append(f"to accept smaller inputs: pad or shrink the kernel of {below.layer_type} "
                    f"{below.layer}, or reduce a stride or remove a pooling layer before it")
    return tips
