"""Shapes' behaviour the suite left unchecked, found by ``scripts/mutation shapes``: the
size finder's fallback sweep (runs of sizes, a last valid size, no valid size), the advice,
the JSON of a size report, the ranges a learner can grow to, and the size text of ``summary``.

Each test names the mutants it kills (docs/testing.md). Valid sizes are checked against real
forward passes of torch; the other numbers are worked out by hand in the comments or taken
from docs/config.md.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnviz.errors import SpecError
from cnnviz.models.blocks import Residual
from cnnviz.presets import PRESETS
from cnnviz.shapes.sizes import advice, find_valid_sizes, range_choices, spec_sizes
from cnnviz.shapes.summary import MAX_SIDE, parse_size
from cnnviz.specs import CustomSpec, LeNetSpec
from cnnviz.specs import custom as L


def real_valid_sizes(model: nn.Module, channels: int, max_size: int) -> list[tuple[int, int]]:
    """The runs of sizes 1..max_size at which a real CPU forward pass (batch 2) runs."""
    model.eval()
    ok = []
    with torch.no_grad():
        for n in range(1, max_size + 1):
            try:
                model(torch.zeros(2, channels, n, n))
            except (RuntimeError, ValueError):
                continue
            if ok and ok[-1][1] == n - 1:
                ok[-1] = (ok[-1][0], n)
            else:
                ok.append((n, n))
    return ok


def stride4_residual(padding: int) -> nn.Sequential:
    """A residual block whose paths agree on two sizes in four: on an m×m map the main path
    (3×3 conv, stride 4) gives ⌊(m − 3)/4⌋ + 1 and the shortcut (1×1, stride 4)
    ⌊(m − 1)/4⌋ + 1; for m = 4q + r they are equal for r = 3 and r = 0 (q + 1 and q), and one
    apart for r = 1, 2. The padded 1×1 conv first makes m = n + 2·padding: with padding 2 or
    more, m ≥ 5 and the main path's 1×1 map (which torch would broadcast in the sum) only
    meets a 1×1 or a mismatch that the next layers refuse as well."""
    return nn.Sequential(
        nn.Conv2d(1, 1, 1, padding=padding),
        Residual(nn.Conv2d(1, 2, 3, stride=4), nn.Conv2d(1, 2, 1, stride=4)))


def test_runs_of_sizes_that_are_no_interval_are_found_whole():
    """Kills the _sweep mutants that merge runs wrongly (n + 1 for n − 1, valid[+1],
    valid[-2], the run's start taken from its end), report a size below 1, or report a
    largest size when the runs go on to the end of the range.

    padding 3: m = n + 6, valid where m % 4 is 3 or 0: n = 1, 2 (m = 7, 8), 5, 6 (11, 12),
    9, 10 (15, 16)."""
    model = nn.Sequential(stride4_residual(3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(2, 3))
    report = find_valid_sizes(model, 1, 10)
    assert real_valid_sizes(model, 1, 10) == [(1, 2), (5, 6), (9, 10)]
    assert report.valid == [(1, 2), (5, 6), (9, 10)]
    assert report.checked_up_to == 10
    assert report.below_min is None  # size 1 runs: nothing below it to explain
    assert report.above_max is None and report.max is None  # runs on past the range
    assert (report.min, report.max_in_range) == (1, None)


def test_sizes_checked_one_by_one_claim_no_largest_size_past_the_range():
    """The finder's fallback used to report the end of the last run in the range as the
    largest size that runs: here, with the range 1..8, 6, while 9 and 10 run (padding 3:
    n = 1, 2, 5, 6, 9, 10, … run). It knows nothing past its range, and says so, in the
    report, the CLI's words, the page's phrases and the figure."""
    from cnnviz.figures import size_line_figure
    from cnnviz.workbench import describe_sizes, largest_size
    model = nn.Sequential(stride4_residual(3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(2, 3))
    assert real_valid_sizes(model, 1, 10) == [(1, 2), (5, 6), (9, 10)]
    report = find_valid_sizes(model, 1, 8)
    assert report.valid == [(1, 2), (5, 6)] and report.swept
    assert report.max is None and report.max_in_range is None
    assert report.above_max.size == 7  # size 7 fails, and that is all that is claimed
    assert largest_size(report) == "unknown past 8"
    assert describe_sizes(report) == "1–2, 5–6 (of 1–8)"
    texts = [a.text for a in size_line_figure(report, current=5).layout.annotations]
    assert "largest size unknown past 8 (checked one by one)" in texts, texts
    assert not any("no maximum" in t or "max 6" in t for t in texts), texts


def test_the_clis_words_for_sizes_checked_one_by_one(capsys):
    """No spec builds such a network, but the CLI's printer takes any report."""
    from cnnviz.cli import _print_sizes
    model = nn.Sequential(stride4_residual(3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(2, 3))
    _print_sizes("residual", "custom", find_valid_sizes(model, 1, 8))
    out = capsys.readouterr().out
    assert "minimum: 1   maximum: unknown (every size up to 8 was checked one by one" in out
    assert "above: size 7" in out, out


def test_a_last_valid_size_below_the_end_of_the_range_is_reported_with_its_failure():
    """Kills the _sweep mutants of the upper end: the failure just above the last valid size
    (its size hi + 1, its reason), the largest size that runs, hi < max_size.

    padding 2: m = n + 4; the Linear takes 2·3·3 = 18 features, so the residual's output is
    3×3: ⌊(m − 3)/4⌋ + 1 = 3 for m = 11..14, of which m = 11, 12 (r = 3, 0) agree: n = 7, 8.
    At n = 9 (m = 13) the two paths give 3×3 and 4×4."""
    model = nn.Sequential(stride4_residual(2), nn.Flatten(), nn.Linear(18, 3))
    report = find_valid_sizes(model, 1, 20)
    assert real_valid_sizes(model, 1, 20) == [(7, 8)]
    assert report.valid == [(7, 8)]
    # the last size that ran is the largest in the range; the finder cannot know whether a
    # size past 20 runs again, so it claims no maximum
    assert (report.min, report.max, report.max_in_range, report.checked_up_to) == (
        7, None, None, 20)
    assert report.swept
    assert report.below_min.size == 6 and report.above_max.size == 9
    # at 6, m = 10: the paths give ⌊7/4⌋ + 1 = 2 and ⌊9/4⌋ + 1 = 3
    assert "2×2" in report.below_min.reason and "3×3" in report.below_min.reason, (
        report.below_min.reason)
    assert "3×3" in report.above_max.reason and "4×4" in report.above_max.reason, (
        report.above_max.reason)
    assert report.accepts(8) and not report.accepts(9)


def test_a_network_that_runs_at_no_size_reports_the_failure_at_the_end_of_the_range():
    """Kills the _sweep mutants of the no-valid-size report (None for the list, the range or
    the failure, the failure of another size): a conv expecting 3 channels given 1 fails the
    same way at every size, so the finder checks every size and reports the last one."""
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten())
    report = find_valid_sizes(model, 1, 5)
    assert real_valid_sizes(model, 1, 5) == []
    assert report.valid == [] and report.checked_up_to == 5 and report.swept
    assert (report.min, report.max, report.above_max) == (None, None, None)
    failure = report.below_min
    assert (failure.size, failure.layer, failure.layer_type) == (5, "0", "Conv2d")
    assert "3 input channels but gets 1" in failure.reason


def test_a_size_reports_json_is_the_documented_band():
    """Kills SizeReport.to_json's mutants. docs/config.md: LeNet at 28 has the band 28–31
    (Linear(400, 120) needs 16×5×5); the range checked is 1..256 (the smallest range), and
    just below the band, at 27, the Linear gets 16×4×4 = 256 features."""
    report = spec_sizes(PRESETS["lenet"].spec)
    data = report.to_json()
    assert data["valid"] == [[28, 31]]
    assert (data["min"], data["max"], data["checked_up_to"]) == (28, 31, 256)
    below = data["below_min"]
    assert (below["size"], below["layer"]) == (27, report.below_min.layer)
    assert "400" in below["reason"] and "256" in below["reason"]
    assert set(data) == {"valid", "min", "max", "checked_up_to", "below_min"}
    # no band: the largest size is past the range, so "max" says none within it
    pooled = spec_sizes(LeNetSpec(adaptive_pool=5)).to_json()
    assert pooled["max"] is None and pooled["below_min"]["size"] == pooled["min"] - 1
    # runs from size 1: nothing below
    assert find_valid_sizes(global_pool_after(1), 1, 8).to_json()["below_min"] is None


def test_advice_names_the_layer_and_the_remedy_for_a_band_and_for_a_minimum():
    """Kills advice()'s mutants: a Linear fixing the flattened size gets the adaptive
    pooling tip in the family's own terms (a layer for custom, the adaptive_pool knob for the
    families), a conv or pool failing below the minimum gets the padding/kernel/stride tip, and
    a network without a band or a minimum gets none."""
    lenet = spec_sizes(PRESETS["lenet"].spec)
    # below 28 the Linear fails too, and a Linear gets no "smaller inputs" tip: one tip only
    band_tip, = advice(lenet, "lenet")
    assert band_tip.startswith(f"Linear {lenet.above_max.layer} fixes the flattened size")
    assert "set adaptive_pool" in band_tip and "adaptive_avg_pool layer" not in band_tip
    custom_band, = advice(lenet, "custom")
    assert "add an adaptive_avg_pool layer before the flatten" in custom_band
    assert advice(lenet) == [custom_band]  # custom is the default family

    pooled = CustomSpec(in_channels=1, input_size=28, layers=(
        L.Conv(8, 5), L.MaxPool(2), L.Conv(16, 5), L.AdaptiveAvgPool(1), L.Flatten(),
        L.Linear(16, 10)))
    report = spec_sizes(pooled)
    # 5×5 conv (n − 4), 2×2 pool (⌊(n − 4)/2⌋), 5×5 conv (needs 5): n ≥ 14 (14 → 10 → 5 → 1);
    # at 13: 9 → 4, too small for the second conv's 5×5 kernel
    assert (report.min, report.below_min.size, report.below_min.layer_type) == (14, 13, "Conv2d")
    tip, = advice(report, "custom")
    assert tip.startswith("to accept smaller inputs: pad or shrink the kernel of Conv2d "
                          f"{report.below_min.layer}")
    assert report.above_max is None  # global pooling: no band, so no pooling tip


@pytest.mark.parametrize("start, input_size, expected", [
    # at least to 16384: 256 doubled six times
    (256, 28, [256, 512, 1024, 2048, 4096, 8192, 16384]),
    # four times the network's range: input 8192 needs 8192 + 2048 → range 16384, × 4
    (16384, 8192, [16384, 32768, 65536]),
    # a start past the top is kept alone
    (32768, 28, [32768]),
])
def test_the_ranges_a_learner_can_grow_to(start, input_size, expected):
    """Kills range_choices's mutants (16385 for 16384, 5× or 4/ for 4×, ≤ for <)."""
    assert range_choices(start, input_size) == expected


@pytest.mark.parametrize("text, size", [
    ("1", (1, 1)), (f"{MAX_SIDE}", (MAX_SIDE, MAX_SIDE)), ("1x100000", (1, 100_000)),
    ("0" * 18 + "96", (96, 96)),  # 20 characters: still read
])
def test_sizes_at_the_bounds_are_read(text, size):
    """Kills parse_size's bound mutants (2 ≤ v, 1 < v, v < MAX_SIDE, len < 20)."""
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["0" * 19 + "96", "100001", "0x5"])
def test_sizes_past_the_bounds_are_refused_with_the_size_path(text):
    """Kills parse_size's mutants that read more than 20 characters or lose the problem's
    path or message."""
    with pytest.raises(SpecError) as info:
        parse_size(text)
    problem, = info.value.problems
    assert problem.path == "size"
    assert problem.message == (f"{text!r} is not a size; use N or HxW with integers from 1 "
                               "to 100,000, e.g. 224 or 96x128")


def test_a_long_size_text_is_quoted_to_forty_characters():
    """Kills the mutant that quotes 41 characters."""
    with pytest.raises(SpecError) as info:
        parse_size("9" * 45)
    assert info.value.problems[0].message.startswith(repr("9" * 40) + " is not a size")


def batch_one_trains(model: nn.Module, n: int) -> bool:
    """Whether one n×n example trains (a forward pass in training mode, batch size 1)."""
    model.train()
    try:
        model(torch.zeros(1, 1, n, n))
        return True
    except (RuntimeError, ValueError):  # "Expected more than 1 value per channel ..."
        return False


def test_batch_one_is_fine_when_every_batchnorm_map_is_larger_than_one_pixel():
    """Kills the _batch_one mutant that reports "" (not None) below: a BatchNorm2d before a
    2×2 conv sees the whole input, 2×2 at the smallest size 2, so nothing applies."""
    model = nn.Sequential(nn.BatchNorm2d(1), nn.Conv2d(1, 8, 2), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(8, 10))
    report = find_valid_sizes(model, 1, 16).batch_one
    assert batch_one_trains(model, 2) and not batch_one_trains(model, 1)  # 1: too small anyway
    assert (report.always, report.min_size, report.below) == ((), 2, None)
    assert not report.applies and not report.everywhere


def test_batch_one_below_names_the_batchnorm_that_sees_one_pixel():
    """Kills the _batch_one mutants that lose the failing layer's type or reason: a 3×3 conv
    then BatchNorm2d sees 1×1 at the smallest size 3 and 2×2 at 4."""
    model = nn.Sequential(nn.Conv2d(1, 8, 3), nn.BatchNorm2d(8), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(8, 10))
    report = find_valid_sizes(model, 1, 16).batch_one
    assert not batch_one_trains(model, 3) and batch_one_trains(model, 4)
    assert report.min_size == 4
    below = report.below
    assert (below.size, below.layer, below.layer_type) == (3, "1", "BatchNorm2d")
    assert below.reason == ("a 1×1 map gives one value per channel with batch size 1; "
                            "training mode needs more than one")
    assert report.applies and not report.everywhere


@pytest.mark.parametrize("input_size, at_least, expected", [
    (3, 1, 4),        # 3 + max(1, 3 // 4 = 0) = 4: the power of two 4
    (820, 256, 2048),  # 820 + 205 = 1025: past 1024, so 2048
    (206, 256, 512),   # 206 + 51 = 257: past 256, so 512
    (204, 256, 256),   # 204 + 51 = 255: 256 holds it
])
def test_the_range_for_a_size_is_the_power_of_two_holding_a_quarter_more(input_size, at_least,
                                                                         expected):
    """Kills range_for's mutants (a margin of at least 2, a fifth for a quarter,
    (need − 2).bit_length())."""
    from cnnviz.shapes.sizes import range_for
    assert range_for(input_size, at_least) == expected


def test_a_network_that_runs_only_past_1024_is_not_searched_further_unasked():
    """Kills spec_sizes's mutant that doubles past GROW_TO (1024): two 600×600 convs need
    n − 599 − 599 ≥ 1, so the network runs from 1199 up; unasked the page checks 1..1024 and
    finds nothing, asked for 2048 it finds 1199."""
    spec = CustomSpec(in_channels=1, input_size=28, layers=(
        L.Conv(1, 600), L.Conv(1, 600), L.AdaptiveAvgPool(1), L.Flatten(), L.Linear(1, 10)))
    unasked = spec_sizes(spec)
    assert (unasked.valid, unasked.checked_up_to) == ([], 1024)
    assert spec_sizes(spec, up_to=2048).min == 1199


def test_the_forward_sweep_checks_every_size_from_1_to_the_last():
    """Kills sweep_forward's range mutants (from 0 or 2, to max − 2 or max + 1): global
    pooling runs at every size, so the sweep is the whole range."""
    from cnnviz.shapes.sizes import sweep_forward
    model = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1, 2)).to("meta")
    assert sweep_forward(model, 1, 5) == [(1, 5)]


def test_memory_counts_a_layer_with_a_single_parameter():
    """Kills the mutant that counts outputs only of layers with more than one parameter:
    a 1×1 conv 1 → 1 without bias has 1 parameter. On 1×4×4: the conv's 16 values and the
    Linear(16, 2)'s 2 values, each stored and its gradient: 2 × 4 bytes × 18 = 144."""
    from cnnviz.shapes.summary import summarize
    spec = CustomSpec(in_channels=1, input_size=4, layers=(
        L.Conv(1, 1, bias=False), L.Flatten(), L.Linear(16, 2)))
    summary = summarize(spec)
    assert [r.params for r in summary.layers] == [1, 0, 34]
    assert summary.forward_backward_bytes == 144
    # each row says what it receives: the conv the 1×4×4 input, the Linear 16 features
    assert [r.input_shape for r in summary.layers] == [(1, 4, 4), (1, 4, 4), (16,)]


def test_a_network_ending_in_an_inception_block_is_said_to_output_its_concatenation():
    """Kills the _warnings mutants that read the output off the last leaf (path 4's 1×1 conv)
    or a depth-2 row instead of the last top-level block: the Inception block concatenates
    4 + 8 + 4 + 4 = 20 channels, at 8×8 (every path keeps the size)."""
    from cnnviz.shapes.summary import summarize
    spec = CustomSpec(in_channels=1, input_size=8, num_classes=10, layers=(
        L.InceptionLayer(4, (4, 8), (2, 4), 4),))
    assert summarize(spec).warnings == [
        "the output is a 20×8×8 feature map, not 10 class scores: end with global average "
        "pooling and flatten, or flatten and linear"]


def global_pool_after(kernel: int) -> nn.Sequential:
    """A k×k conv, then global pooling: runs from n = k up, at every larger size."""
    return nn.Sequential(nn.Conv2d(1, 2, kernel), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(2, 3))


def test_the_finder_checks_1_to_1024_unless_told():
    """Kills the mutant of find_valid_sizes's default range (1025)."""
    report = find_valid_sizes(global_pool_after(3), 1)
    assert (report.checked_up_to, report.valid, report.max) == (1024, [(3, 1024)], None)


def test_a_network_that_runs_only_at_the_last_size_of_the_range():
    """Kills the mutant that takes a first valid size equal to the range's end for "too
    small everywhere": an 8×8 conv runs from 8 up, and the range is 1..8."""
    model = global_pool_after(8)
    assert real_valid_sizes(model, 1, 8) == [(8, 8)]
    report = find_valid_sizes(model, 1, 8)
    assert report.valid == [(8, 8)] and report.below_min.size == 7


def test_a_network_too_small_everywhere_reports_the_end_of_the_range():
    """Kills the mutants that drop the failure (or its size) when no size in range is large
    enough: an 8×8 conv in the range 1..5 fails at 5, the largest size tried."""
    report = find_valid_sizes(global_pool_after(8), 1, 5)
    assert report.valid == [] and report.checked_up_to == 5
    assert (report.below_min.size, report.below_min.layer, report.below_min.layer_type) == (
        5, "0", "Conv2d")
    assert report.above_max is None


def test_a_band_that_holds_no_integer_size_reports_both_sides():
    """Kills the mutants of the empty band's report (no range, no size above): a 1×1 conv
    then Flatten gives n² features, and Linear(5, 2) wants 5, which no square is: at 2 the
    Linear gets 4 (too few), at 3 it gets 9 (too many)."""
    model = nn.Sequential(nn.Conv2d(1, 1, 1), nn.Flatten(), nn.Linear(5, 2))
    assert real_valid_sizes(model, 1, 16) == []
    report = find_valid_sizes(model, 1, 16)
    assert report.valid == [] and report.checked_up_to == 16
    assert (report.below_min.size, report.above_max.size) == (2, 3)
    assert report.below_min.layer == report.above_max.layer == "2"


def test_runs_of_three_sizes_keep_their_first_size():
    """Kills the _sweep mutant that starts a growing run at its previous end: with a 2×2 main
    path the residual's paths agree when m % 4 is 2, 3 or 0 (⌊(m − 2)/4⌋ = ⌊(m − 1)/4⌋), runs
    of three. padding 3, m = n + 6: n = 1, 2 (m = 7, 8), 4–6 (10–12), 8–10 (14–16)."""
    model = nn.Sequential(
        nn.Conv2d(1, 1, 1, padding=3),
        Residual(nn.Conv2d(1, 2, 2, stride=4), nn.Conv2d(1, 2, 1, stride=4)),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 3))
    assert real_valid_sizes(model, 1, 10) == [(1, 2), (4, 6), (8, 10)]
    assert find_valid_sizes(model, 1, 10).valid == [(1, 2), (4, 6), (8, 10)]


@pytest.mark.parametrize("max_size", [11, 12])
def test_no_valid_size_and_no_interval_report_the_last_sizes_own_failure(max_size):
    """Kills the _sweep mutants that check one size past the range or report another size's
    failure (results[+1], results[-2]). A 5×5 conv (m = n − 4), the stride-4 residual, and
    Linear(3, 2), which 2·s² features never fit. At n = 11, 12 (m = 7, 8) both paths give 2×2,
    so the Linear gets 2·2·2 = 8 and fails; at 10 and 13 (m = 6, 9) the paths disagree (1 and
    2, 2 and 3); at 2 the 5×5 conv does not fit."""
    model = nn.Sequential(nn.Conv2d(1, 1, 5), stride4_residual(0), nn.Flatten(),
                          nn.Linear(3, 2))
    assert real_valid_sizes(model, 1, max_size) == []
    report = find_valid_sizes(model, 1, max_size)
    failure = report.below_min
    assert report.valid == [] and (failure.size, failure.layer) == (max_size, "3")
    assert "gets 8" in failure.reason, failure.reason


@pytest.mark.parametrize("pool, kind", [(nn.MaxPool2d, "MaxPool2d"), (nn.AvgPool2d, "AvgPool2d")])
def test_a_minimum_set_by_a_pooling_layer_gets_the_smaller_inputs_tip(pool, kind):
    """Kills advice()'s mutants that no longer recognise MaxPool2d or AvgPool2d: a 4×4 pool
    (after a 1×1 conv) needs n ≥ 4, so at 3 the pool fails."""
    model = nn.Sequential(nn.Conv2d(1, 2, 1), pool(4), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(2, 3))
    report = find_valid_sizes(model, 1, 16)
    assert (report.min, report.below_min.size, report.below_min.layer_type) == (4, 3, kind)
    tip, = advice(report)
    assert tip.startswith(f"to accept smaller inputs: pad or shrink the kernel of {kind} 1")


def test_the_advice_for_a_band_of_sizes_in_the_books_words():
    """Kills advice()'s word mutants: a Flatten → Linear head fixes a band; the tip names the
    layer and what to set, for a custom network and for a family."""
    report = spec_sizes(PRESETS["alexnet"].spec)
    assert report.above_max.layer_type == "Linear"
    tip = advice(report, "alexnet")[0]
    layer = f"Linear {report.above_max.layer}"
    assert tip == (f"{layer} fixes the flattened size, so only a band of sizes fits: set "
                   "adaptive_pool (e.g. 1, or torchvision's 6 for AlexNet and 7 for VGG); with "
                   "pooling to a fixed size before the flatten, as NiN and GoogLeNet do, every "
                   "size from the minimum up works")
    assert advice(report, "custom")[0].startswith(
        f"{layer} fixes the flattened size, so only a band of sizes fits: add an "
        "adaptive_avg_pool layer before the flatten; with pooling")
