"""The figures show the library's numbers: checked on the figure data, no browser needed."""
from __future__ import annotations

import math

import plotly.graph_objects as go
import pytest

from cnnviz.figures import MAX_LAYER_TICKS, shape_flow_figure, size_line_figure
from cnnviz.presets import PRESETS
from cnnviz.shapes.sizes import SizeFailure, SizeReport, valid_sizes
from cnnviz.shapes.summary import summarize, summarize_until_failure
from cnnviz.specs import CustomSpec
from cnnviz.specs import custom as L

FLOW_PRESETS = ["lenet", "notes-nin", "notes-alexnet", "googlenet", "densenet121-imagenet"]


def trace(fig: go.Figure, name: str):
    (found,) = [t for t in fig.data if t.name == name]
    return found


def segments(trace) -> list[tuple[int, int]]:
    """The (lo, hi) size intervals a number-line trace draws, from its customdata."""
    pairs = [tuple(d) for d in trace.customdata if d is not None]
    return pairs[::2]


# -- shape flow ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", FLOW_PRESETS)
def test_shape_flow_plots_every_layers_output_shape(name):
    summary = summarize(PRESETS[name].spec)
    fig = shape_flow_figure(summary)
    shapes = [summary.input_shape[1:]] + [r.output_shape for r in summary.layers]
    height = trace(fig, "height")
    channels = trace(fig, "channels (features after Flatten)")
    assert list(height.x) == list(range(len(shapes))) == list(channels.x)
    assert list(height.y) == [s[1] if len(s) == 3 else None for s in shapes]
    assert list(channels.y) == [s[0] for s in shapes]
    assert height.text[0].startswith("input: ")
    for row, text in zip(summary.layers, height.text[1:]):
        assert text == f"{row.type} {row.name}: {'×'.join(map(str, row.output_shape))}"
    # after Flatten there is no height: a gap in the line, not a zero
    flat = [i for i, s in enumerate(shapes) if len(s) == 1]
    assert all(height.y[i] is None for i in flat)
    assert height.connectgaps is False
    assert fig.layout.yaxis.type == fig.layout.yaxis2.type == "log"


def test_title_names_the_input_and_the_output():
    fig = shape_flow_figure(summarize(PRESETS["alexnet"].spec))
    assert fig.layout.title.text == "Shape flow: 1×1×224×224 → 10"
    fig = shape_flow_figure(summarize(PRESETS["densenet121-imagenet"].spec))
    assert fig.layout.title.text == "Shape flow: 1×3×224×224 → 1000"


def test_stages_are_marked_where_their_layers_are():
    summary = summarize(PRESETS["resnet18"].spec)
    fig = shape_flow_figure(summary)
    labels = [a.text for a in fig.layout.annotations]
    assert labels == ["b1", "b2", "b3", "b4", "b5", "head"]
    bands = [s for s in fig.layout.shapes if s.type == "rect"]
    assert len(bands) == 6
    positions = {r.name: i for i, r in enumerate(summary.layers, 1)}
    for band, label in zip(bands, labels):
        inside = [p for n, p in positions.items() if n.split(".")[0] == label]
        assert (band.x0, band.x1) == (min(inside) - 0.5, max(inside) + 0.5)


def test_densenet121_stays_one_bar_and_one_point_per_layer():
    summary = summarize(PRESETS["densenet121-imagenet"].spec)
    fig = shape_flow_figure(summary)
    assert len(summary.layers) > 360
    # not one trace per layer (keeps 370 layers responsive): bars, line, and one trace each
    # for the concatenations and the transitions
    assert [t.name for t in fig.data] == ["channels (features after Flatten)", "height",
                                          "concatenation", "transition"]
    assert len(trace(fig, "height").x) == len(summary.layers) + 1
    assert [a.text for a in fig.layout.annotations] == ["b1", "b2", "b3", "b4", "b5", "head"]


def test_shape_flow_is_tall_and_names_its_layers_on_the_axis():
    summary = summarize(PRESETS["lenet"].spec)
    fig = shape_flow_figure(summary)
    assert fig.layout.height >= 600
    assert list(fig.layout.xaxis.tickvals) == list(range(len(summary.layers) + 1))
    assert fig.layout.xaxis.ticktext[0] == "input"
    assert list(fig.layout.xaxis.ticktext[1:]) == [f"{r.name} {r.type}" for r in summary.layers]
    assert fig.layout.xaxis.ticktext[1] == "b1.0 Conv2d"


def test_a_deep_network_labels_each_block_where_it_starts():
    summary = summarize(PRESETS["densenet121-imagenet"].spec)
    assert len(summary.layers) > MAX_LAYER_TICKS
    fig = shape_flow_figure(summary)
    ticks = dict(zip(fig.layout.xaxis.ticktext, fig.layout.xaxis.tickvals))
    for name in ("b2.dense DenseBlock", "b2.transition Transition", "b5.dense DenseBlock"):
        assert name in ticks
    # each block's tick sits at its first layer
    first = next(i for i, r in enumerate(summary.layers, 1) if r.name.startswith("b2.transition"))
    assert ticks["b2.transition Transition"] == first
    assert len(ticks) < 30


def test_densenet_concatenations_and_transitions_are_marked():
    spec = PRESETS["densenet"].spec
    summary = summarize(spec)
    fig = shape_flow_figure(summary)
    concat, transition = trace(fig, "concatenation"), trace(fig, "transition")
    blocks = spec.num_convs_in_dense_blocks
    assert len(concat.x) == sum(blocks) and len(transition.x) == len(blocks) - 1
    channels = dict(zip(trace(fig, "height").x, trace(fig, "channels (features after Flatten)").y))
    growth = spec.growth_rate
    # each concatenation adds growth_rate channels, as the next layer's input shows
    for x, y, text in zip(concat.x, concat.y, concat.text):
        assert text.endswith(f" + {growth} new = {y} channels")
        if x + 1 in channels and summary.layers[x].type == "BatchNorm2d":
            assert channels[x + 1] == y
    first = summarize(spec).rows
    block = next(r for r in first if r.type == "DenseBlock")
    assert concat.y[blocks[0] - 1] == block.output_shape[0]
    # each transition halves the channels and the size
    for x, y, text in zip(transition.x, transition.y, transition.text):
        assert channels[x] == y
        layer = summary.layers[x - 1]
        assert layer.name.endswith(".3") and layer.type == "AvgPool2d"
        assert "transition" in text and "size" in text
    t = next(r for r in first if r.type == "Transition")
    assert t.output_shape == (t.input_shape[0] // 2, t.input_shape[1] // 2,
                              t.input_shape[2] // 2)
    assert f"channels {t.input_shape[0]} → {t.output_shape[0]}" in transition.text[0]
    # networks without dense blocks get no such traces
    names = [t.name for t in shape_flow_figure(summarize(PRESETS["resnet18"].spec)).data]
    assert "concatenation" not in names and "transition" not in names


def test_the_flow_of_a_network_that_stops_marks_the_failing_layer():
    summary = summarize_until_failure(PRESETS["notes-alexnet"].spec, 100)
    fig = shape_flow_figure(summary)
    assert fig.layout.title.text == "Shape flow: 1×1×100×100 → stops at Linear 12"
    stop = trace(fig, "does not run")
    assert list(stop.x) == [len(summary.layers)] and list(stop.y) == [1024]
    assert "expects 6400 input features but gets 1024" in stop.text[0]
    assert trace(fig, "height").text[-1] == "Linear 12: does not run"
    assert trace(fig, "channels (features after Flatten)").y[-1] is None
    assert list(trace(fig, "channels (features after Flatten)").y[-2:-1]) == [1024]


def test_custom_chain_of_plain_layers_has_no_stage_bands():
    fig = shape_flow_figure(summarize(PRESETS["notes-alexnet"].spec))
    assert not fig.layout.shapes and not fig.layout.annotations


def test_custom_chain_labels_its_blocks_by_type_and_index():
    fig = shape_flow_figure(summarize(PRESETS["notes-nin"].spec))
    assert [a.text for a in fig.layout.annotations] == [
        "NiNBlock 0", "NiNBlock 2", "NiNBlock 4", "NiNBlock 7"]


# -- size number line ---------------------------------------------------------------------

@pytest.mark.parametrize("name", ["lenet", "notes-alexnet", "nin", "densenet121-imagenet"])
def test_size_line_draws_the_valid_intervals(name):
    report = valid_sizes(PRESETS[name].spec)
    fig = size_line_figure(report)
    valid = trace(fig, "runs")
    assert segments(valid) == report.valid
    xs = [x for x in valid.x if x is not None]
    assert xs == [v for lo, hi in report.valid for v in (lo - 0.5, hi + 0.5)]
    # valid and invalid together cover 1..checked_up_to exactly once
    covered = sorted(segments(valid) + segments(trace(fig, "does not run")))
    assert covered[0][0] == 1 and covered[-1][1] == report.checked_up_to
    assert all(a[1] + 1 == b[0] for a, b in zip(covered, covered[1:]))
    assert fig.layout.xaxis.type == "log"


def test_band_of_sizes_marks_min_and_max():
    report = valid_sizes(PRESETS["notes-alexnet"].spec)
    fig = size_line_figure(report)
    assert fig.layout.title.text == f"Valid input sizes: min {report.min}, max {report.max}"
    texts = {a.text: a.x for a in fig.layout.annotations}
    assert texts[f"min {report.min}"] == pytest.approx(math.log10(report.min))
    assert texts[f"max {report.max}"] == pytest.approx(math.log10(report.max))
    assert list(trace(fig, "min").x) == [report.min]
    assert list(trace(fig, "max").x) == [report.max]


def test_no_maximum_is_said_not_drawn():
    report = valid_sizes(PRESETS["nin"].spec)
    assert report.max is None
    fig = size_line_figure(report)
    assert "no maximum" in fig.layout.title.text
    assert any("no maximum" in a.text for a in fig.layout.annotations)
    assert not [t for t in fig.data if t.name == "max"]


@pytest.mark.parametrize("current,runs", [(96, False), (200, True), (224, True), (225, False)])
def test_current_size_is_coloured_by_whether_it_runs(current, runs):
    report = valid_sizes(PRESETS["notes-alexnet"].spec)
    fig = size_line_figure(report, current)
    marker = trace(fig, "current")
    assert list(marker.x) == [current]
    assert marker.marker.color == ("#2ca02c" if runs else "#d62728")
    assert report.accepts(current) is runs
    assert any(a.text == f"current {current}: {'runs' if runs else 'does not run'}"
               for a in fig.layout.annotations)


def test_current_beyond_the_checked_range_runs_when_there_is_no_maximum():
    report = valid_sizes(PRESETS["nin"].spec, max_size=256)
    fig = size_line_figure(report, 300)
    assert trace(fig, "current").marker.color == "#2ca02c"
    assert fig.layout.xaxis.range[1] > math.log10(300)


def test_no_valid_size_says_so():
    spec = CustomSpec(1, 10, 32, (L.Conv(3, 3), L.Flatten(), L.Linear(7, 10)))
    report = valid_sizes(spec)
    assert report.valid == []
    fig = size_line_figure(report, 32)
    assert fig.layout.title.text == "No input size from 1 to 1024 runs this network"
    assert segments(trace(fig, "runs")) == []
    assert segments(trace(fig, "does not run")) == [(1, 1024)]
    assert trace(fig, "current").marker.color == "#d62728"
    assert not [t for t in fig.data if t.name in ("min", "max")]


def test_several_ranges_and_the_reason_a_size_fails():
    below = SizeFailure(2, "0", "Conv2d", "kernel 3 is larger than the 2×2 map")
    report = SizeReport([(3, 5), (10, 20)], 64, below, None, 20)
    fig = size_line_figure(report)
    assert segments(trace(fig, "runs")) == [(3, 5), (10, 20)]
    assert segments(trace(fig, "does not run")) == [(1, 2), (6, 9), (21, 64)]
    assert "kernel 3 is larger" in trace(fig, "does not run").text[0]
    assert fig.layout.title.text == "Valid input sizes: min 3, max 20 in 2 separate ranges"


def test_a_size_below_one_is_refused():
    with pytest.raises(ValueError):
        size_line_figure(valid_sizes(PRESETS["lenet"].spec), 0)


def test_size_line_linear_axis_places_marks_at_their_sizes():
    from cnnviz.figures import size_line_figure
    from cnnviz.presets import PRESETS
    from cnnviz.shapes.sizes import valid_sizes

    fig = size_line_figure(valid_sizes(PRESETS["notes-alexnet"].spec, 256), 224, log=False)
    assert fig.layout.xaxis.type == "linear"
    assert [a.x for a in fig.layout.annotations] == [193, 224, 224]
