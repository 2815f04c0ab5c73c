"""The valid-size finder against real forward passes, on random networks and on the presets."""
from __future__ import annotations

import dataclasses

import pytest
import torch
from hypothesis import given, settings

from cnnviz.models import build
from cnnviz.presets import PRESETS
from cnnviz.shapes.sizes import (SMALLEST_RANGE, find_valid_sizes, range_choices, range_for,
                                 runs_forward, spec_sizes, sweep_forward, valid_sizes)
from tests.strategies import custom_specs

MAX = 48


def cpu_sweep(model: torch.nn.Module, channels: int, max_size: int, train: bool = False
              ) -> list[int]:
    """Sizes at which a real CPU forward pass (batch 1) runs."""
    model.train(train)
    ok = []
    with torch.no_grad():
        for n in range(1, max_size + 1):
            try:
                model(torch.zeros(1, channels, n, n))
                ok.append(n)
            except (RuntimeError, ValueError):
                pass
    return ok


def expand(intervals) -> list[int]:
    return [n for lo, hi in intervals for n in range(lo, hi + 1)]


@settings(max_examples=220)
@given(custom_specs(max_reference=MAX))
def test_finder_equals_exhaustive_forward_sweep(spec):
    model = build(spec)
    report = find_valid_sizes(build(spec, "meta"), spec.in_channels, MAX)
    real = cpu_sweep(model, spec.in_channels, MAX)
    assert expand(report.valid) == real
    if report.valid and report.min > 1:
        assert report.below_min is not None and report.below_min.size == report.min - 1
        assert not runs_forward(build(spec, "meta").eval(), spec.in_channels, report.min - 1)
    # Batch size 1 in training mode: BatchNorm needs more than one value per channel.
    trainable = cpu_sweep(model, spec.in_channels, MAX, train=True)
    b = report.batch_one
    if b.always:
        assert trainable == []
    elif report.valid:
        start = b.min_size if b.min_size is not None else (MAX + 1 if b.below else report.min)
        assert trainable == [n for n in real if n >= start]


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_match_real_forward_passes(name):
    """Every size up to 40, both edges of the valid range and the default size, on the CPU."""
    spec = PRESETS[name].spec
    report = valid_sizes(spec)
    model = build(spec).eval()
    sizes = set(range(1, 41)) | {spec.input_size}
    for edge in (report.min, report.max):
        if edge is not None:
            sizes |= set(range(edge - 2, edge + 3))
    with torch.no_grad():
        for n in sorted(s for s in sizes if 1 <= s <= 1024):
            try:
                model(torch.zeros(1, spec.in_channels, n, n))
                runs = True
            except RuntimeError:
                runs = False
            assert report.accepts(n) == runs, n


def test_meta_forward_sweep_agrees_on_the_notes_alexnet_band():
    spec = PRESETS["notes-alexnet"].spec
    assert sweep_forward(build(spec, "meta"), 1, 260) == valid_sizes(spec, 260).valid


@pytest.mark.parametrize("name, valid, max_", [
    ("lenet", [(28, 31)], 31),
    ("lenet-bn", [(28, 31)], 31),
    ("alexnet", [(193, 224)], 224),
    ("notes-alexnet", [(193, 224)], 224),
    ("vgg", [(224, 255)], 255),
    ("nin", [(67, 1024)], None),
    ("notes-nin", [(67, 1024)], None),
    ("googlenet", [(1, 1024)], None),
    ("resnet18", [(1, 1024)], None),
    ("densenet", [(29, 1024)], None),
    ("alexnet-imagenet", [(63, 1024)], None),
])
def test_preset_valid_sizes(name, valid, max_):
    report = valid_sizes(PRESETS[name].spec)
    assert report.valid == valid
    assert report.max == max_


def test_band_diagnosis_names_the_linear_and_both_sizes():
    report = valid_sizes(PRESETS["notes-alexnet"].spec)
    below, above = report.below_min, report.above_max
    assert (below.size, below.layer, below.layer_type) == (192, "12", "Linear")
    assert below.reason == "expects 6400 input features but gets 4096 (256×4×4 after Flatten)"
    assert (above.size, above.layer) == (225, "12")
    assert "gets 9216 (256×6×6 after Flatten)" in above.reason


def test_global_pooling_network_has_a_minimum_only_and_names_the_pool():
    report = valid_sizes(PRESETS["nin"].spec)
    assert report.max is None and report.above_max is None
    assert report.below_min.to_json() == {
        "size": 66, "layer": "b3.1", "reason": "input 2×2 is smaller than kernel 3"}
    assert report.below_min.layer_type == "MaxPool2d"


def test_densenet_fails_below_min_at_the_transition_pool():
    below = valid_sizes(PRESETS["densenet"].spec).below_min
    assert (below.size, below.layer, below.layer_type) == (28, "b4.transition.3", "AvgPool2d")


def test_no_valid_size_reports_the_failure():
    from cnnviz.specs import CustomSpec
    from cnnviz.specs import custom as L
    # 3×3 conv output grows by one per size, Flatten gives n²-ish features: 5 never fits.
    spec = CustomSpec(1, 10, 8, (L.Conv(1, 2, padding=0), L.Flatten(), L.Linear(5, 10)))
    report = valid_sizes(spec, 64)
    assert report.valid == [] and report.min is None and report.max is None
    assert report.below_min.layer == "2" and report.above_max.layer == "2"


def test_batch_one_training_limits():
    assert valid_sizes(PRESETS["lenet-bn"].spec).batch_one.always == ("head.2", "head.5")
    b = valid_sizes(PRESETS["resnet18"].spec).batch_one
    assert b.always == () and b.min_size == 33
    assert (b.below.size, b.below.layer) == (32, "b5.0.body.bn1")
    assert not valid_sizes(PRESETS["alexnet"].spec).batch_one.applies


# --- the range a page checks (issue 8, item 2) ------------------------------------------------

def from_451():
    """A custom network that runs only from 451 up: one 451×451 kernel, then global pooling."""
    from cnnviz.specs import CustomSpec
    from cnnviz.specs import custom as L
    return CustomSpec(1, 10, 451, (L.Conv(4, 451), L.ReLU(), L.AdaptiveAvgPool(1), L.Flatten(),
                                   L.Linear(4, 10)))


@pytest.mark.parametrize("input_size", [1, 28, 96, 224, 255, 451, 1000, 4096, 8192])
def test_the_range_holds_the_networks_own_size_with_a_margin(input_size):
    top = range_for(input_size)
    assert top >= input_size + input_size // 4 and top >= SMALLEST_RANGE
    assert top & (top - 1) == 0  # a power of two: a round end on the log axis
    choices = range_choices(top, input_size)
    assert choices[0] == top and all(b == 2 * a for a, b in zip(choices, choices[1:]))


def test_a_network_that_runs_from_451_up_is_reported_as_such():
    spec = from_451()
    report = spec_sizes(spec)
    assert report.checked_up_to >= 451 and report.accepts(451)
    assert (report.min, report.max) == (451, None)
    assert report.below_min.size == 450 and report.below_min.layer_type == "Conv2d"
    # the finder on the same range says the same, and a forward pass agrees at the edge
    assert find_valid_sizes(build(spec, "meta"), 1, report.checked_up_to) == report
    model = build(spec, "meta").eval()
    assert runs_forward(model, 1, 451) and not runs_forward(model, 1, 450)


def test_a_range_with_no_valid_size_grows_until_one_runs():
    # meant for 28, but runs only from 451 up: 1..256 holds no size that runs
    spec = dataclasses.replace(from_451(), input_size=28)
    assert valid_sizes(spec, range_for(28)).valid == []
    report = spec_sizes(spec)
    assert report.min == 451 and report.checked_up_to == 512


def test_asking_for_more_checks_further_and_never_less():
    spec = PRESETS["notes-alexnet"].spec
    assert spec_sizes(spec).checked_up_to == range_for(224) == 512
    assert spec_sizes(spec, 2048).checked_up_to == 2048
    assert spec_sizes(spec, 64).checked_up_to == 512  # never below the network's own size
    assert spec_sizes(spec, 2048).valid == spec_sizes(spec).valid == [(193, 224)]


# --- networks whose valid sizes are not one interval (issue 13, item 4) ----------------------
# No spec builds one: every conv and pool maps a larger input to an output at least as large,
# so a window that is too large fails at every smaller size too, and a Linear after Flatten
# gets more features at every larger size: the sizes that run form one interval. The size
# finder's check of every size is for a network that breaks this, such as a residual block
# whose two paths agree only at some sizes, built here from the book's Residual by hand.

def parity_network() -> torch.nn.Module:
    """A residual block whose paths agree only on even maps: the main path (2×2 conv, stride
    2) gives ⌊(m − 2)/2⌋ + 1 and the 1×1 stride-2 shortcut ⌊(m − 1)/2⌋ + 1, m/2 both for even
    m, one apart for odd m. The padded 1×1 conv before it makes m = n + 4, so only even sizes
    n run, and the two paths never give a 1×1 map that PyTorch would broadcast in the sum.
    The BatchNorm sees the pooled ⌊m/4⌋×⌊m/4⌋ map: 1×1 at n = 2, 2×2 at n = 4."""
    from cnnviz.models.blocks import Residual
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(1, 1, 1, padding=2),
        Residual(nn.Conv2d(1, 2, 2, stride=2), nn.Conv2d(1, 2, 1, stride=2)),
        nn.MaxPool2d(2), nn.BatchNorm2d(2), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(2, 3))


def test_sizes_that_are_no_interval_are_found_by_checking_every_size():
    model = parity_network()
    report = find_valid_sizes(model, 1, MAX)
    real = cpu_sweep(model, 1, MAX)
    assert real == list(range(2, MAX + 1, 2))  # real forward passes: the even sizes
    assert expand(report.valid) == real and len(report.valid) == MAX // 2
    assert (report.min, report.below_min.size, report.below_min.layer) == (2, 1, "1")
    assert report.accepts(48) and not report.accepts(47)
    # Batch size 1 in training mode: the BatchNorm needs a map larger than 1×1, from 4 up
    trainable = cpu_sweep(model, 1, MAX, train=True)
    assert trainable == list(range(4, MAX + 1, 2))
    b = report.batch_one
    assert (b.min_size, b.below.size, b.below.layer) == (4, 2, "3")
    assert not b.everywhere
