"""The BatchNorm figures, built from real statistics of lenet-bn on digits, hand-made recorder
entries and training points."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from cnnviz.batchnorm.recorder import Entry
from cnnviz.batchnorm.stats import (BatchOfOne, batch_spread, batch_statistics, layer_outputs,
                                    normalised, train_vs_eval)
from cnnviz.figures_batchnorm import (STATS_PANELS, channel_stats_figure, eval_gap_figure,
                                      evolution_figure, histograms_figure, is_without,
                                      output_map_figure, spread_figure, with_without_figure)
from cnnviz.models import build
from cnnviz.presets import PRESETS
from cnnviz.training.batches import prepare
from cnnviz.training.data import load_dataset
from cnnviz.training.engine import Point


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build(PRESETS["lenet-bn"].spec)


@pytest.fixture(scope="module")
def batch():
    torch.manual_seed(1)
    return torch.randn(16, 1, 28, 28)


@pytest.fixture(scope="module")
def stats(model, batch):
    return batch_statistics(model, batch)


def _title(fig) -> str:
    return fig.layout.title.text


def _metas(fig) -> list:
    return [t.meta for t in fig.data]


def test_channel_stats_draws_batch_running_and_affine_per_channel(stats):
    layer = stats["b2.1"]
    fig = channel_stats_figure(layer, selected=3)
    assert len(fig.data) == 7
    assert [a.text for a in fig.layout.annotations][:3] == list(STATS_PANELS)
    by = {t.meta: t for t in fig.data}
    assert list(by["batch mean μ_B"].x) == list(range(16))
    np.testing.assert_allclose(by["batch mean μ_B"].y, layer.batch_mean.numpy(), rtol=1e-6)
    np.testing.assert_allclose(by["running_var"].y, layer.running_var.numpy())
    assert {t.xaxis for t in fig.data} == {"x", "x2", "x3"}
    assert all("markers" in t.mode and "lines" in t.mode for t in fig.data)
    # the selected channel: a vertical line in each panel, its numbers in the title
    assert sorted(s.x0 for s in fig.layout.shapes) == [3, 3, 3]
    assert f"μ_B {float(layer.batch_mean[3]):.4g}" in _title(fig)
    assert "channel 3:" in _title(fig) and "b2.1" in _title(fig)
    assert "16 channels" in _title(fig)
    plain = channel_stats_figure(layer)
    assert len(plain.layout.shapes) == 0 and "channel 3:" not in _title(plain)
    with pytest.raises(ValueError, match="channels 0…15"):
        channel_stats_figure(layer, selected=16)


def test_channel_stats_without_running_statistics_says_so(stats):
    layer = copy.copy(stats["b1.1"])
    object.__setattr__(layer, "running_mean", None)
    object.__setattr__(layer, "running_var", None)
    fig = channel_stats_figure(layer, selected=0)
    assert len(fig.data) == 5
    assert "running_mean" not in _metas(fig)
    assert "track_running_stats=False" in _title(fig)


def test_histograms_share_bins_and_carry_mean_and_std(stats):
    layer = stats["b1.1"]
    x, x_hat, y = normalised(layer, 2)
    gamma, beta = 1.5, -0.25
    y = gamma * x_hat + beta
    fig = histograms_figure(x, x_hat, y.numpy(), 2, gamma, beta, bins=20)
    assert len(fig.data) == 3 and all(t.type == "histogram" for t in fig.data)
    titles = [a.text for a in fig.layout.annotations]
    assert titles[0].startswith("x (the layer's input)")
    assert titles[1].startswith("x̂ = (x − μ_B)/√(σ²_B + ε)")
    assert titles[2].startswith("y = γ·x̂ + β (γ = 1.5, β = -0.25)")
    assert f"mean {float(x.mean()):.4g}" in titles[0]
    assert "std 1" in titles[1]  # x̂ has std √(σ²/(σ²+ε)) ≈ 1
    assert f"std {float(y.std(correction=0)):.4g}" in titles[2]
    for trace, values in zip(fig.data, (x, x_hat, y)):
        span = float(values.max() - values.min())
        assert trace.xbins.size == pytest.approx(span / 20)
    # independent ranges: the panels do not share x axes
    assert fig.layout.xaxis2.matches is None and fig.layout.xaxis3.matches is None
    assert "Channel 2" in _title(fig) and f"{x.numel()} values" in _title(fig)


def test_histograms_survive_a_constant_channel():
    fig = histograms_figure(np.ones(10), np.zeros(10), np.zeros(10), 0, 1.0, 0.0)
    assert all(t.xbins.size > 0 for t in fig.data)


def test_output_map_is_a_square_heatmap_with_rows_down(model, batch):
    out = layer_outputs(model, batch[:2])["b1.1"][0, 4]
    fig = output_map_figure(out, "b1.1, channel 4, γ = 2")
    assert len(fig.data) == 1 and fig.data[0].type == "heatmap"
    assert np.asarray(fig.data[0].z).shape == tuple(out.shape)
    assert fig.layout.yaxis.autorange == "reversed" and fig.layout.yaxis.scaleanchor == "x"
    assert fig.data[0].colorscale is not None and fig.data[0].zmin == -fig.data[0].zmax
    assert "value" in fig.data[0].hovertemplate
    assert _title(fig) == "b1.1, channel 4, γ = 2"


def test_eval_gap_bars_per_layer_and_changed_predictions(model, batch):
    gap = train_vs_eval(model, batch)
    fig = eval_gap_figure(gap)
    assert len(fig.data) == 1 and fig.data[0].orientation == "h"
    assert list(fig.data[0].y) == [g.path for g in gap.layers]
    np.testing.assert_allclose(fig.data[0].x, [g.relative for g in gap.layers])
    assert f"{gap.changed} of {gap.total} predictions change" in _title(fig)
    assert gap.total == 16


def test_spread_draws_boxes_per_size_and_batch_of_one_as_a_note(digits):
    torch.manual_seed(0)
    lenet = build(PRESETS["lenet-bn"].spec)
    pool = prepare(digits.train_images[:256], channels=1, size=28)
    gen = torch.Generator().manual_seed(0)
    spread = batch_spread(lenet, pool, "head.2", [1, 4, 32], 10, gen)
    assert isinstance(spread[1], BatchOfOne)
    running = dict(lenet.named_modules())["head.2"].running_mean
    fig = spread_figure(spread, running, channel=5)
    boxes = [t for t in fig.data if t.type == "box"]
    assert [b.meta for b in boxes] == ["batch 4", "batch 32"]
    assert all(list(b.x) == [str(b.meta.split()[1])] * 10 for b in boxes)
    np.testing.assert_allclose(boxes[0].y, spread[4][:, 5].numpy(), rtol=1e-6)
    notes = [a.text for a in fig.layout.annotations]
    assert any(n.replace("<br>", " ").startswith("batch 1: ") for n in notes)
    assert any("refuses" in n.replace("<br>", " ") for n in notes)
    assert [s.y0 for s in fig.layout.shapes] == [pytest.approx(float(running[5]))]
    assert list(fig.layout.xaxis.categoryarray) == ["1", "4", "32"]
    assert "(10 batches each)" in _title(fig)
    assert f"batch 32: {float(spread[32][:, 5].double().std(correction=0)):.4g}" in _title(fig)

    conv = batch_spread(lenet, pool, "b1.1", [1, 8], 6, gen)  # a 28×28 map: 1 trains
    fig = spread_figure(conv, None, channel=0)
    assert [t.meta for t in fig.data] == ["batch 1", "batch 8"]
    assert len(fig.layout.shapes) == 0 and "no running_mean" in _title(fig)


def _entries(points: int = 4, channels: int = 20) -> list[Entry]:
    out = []
    for k in range(points):
        base = torch.arange(channels, dtype=torch.float32)
        out.append(Entry(0.5 * (k + 1), 100 * (k + 1), base * k, base + k,
                         torch.full((channels,), 1.0 + k), None))
    return out


def test_evolution_draws_a_line_per_channel_and_the_mean():
    entries = _entries()
    fig = evolution_figure(entries, "running_mean")
    assert len(fig.data) == 16 + 1
    assert fig.data[-1].meta == "mean" and fig.data[-1].line.width > fig.data[0].line.width
    assert list(fig.data[0].x) == [0.5, 1.0, 1.5, 2.0]
    np.testing.assert_allclose(fig.data[3].y, [0, 3, 6, 9])
    np.testing.assert_allclose(fig.data[-1].y, [0, 9.5, 19, 28.5])  # mean of all 20
    assert "16 of 20 channels" in _title(fig)
    chosen = evolution_figure(entries, "γ", channels=[2, 19])
    assert len(chosen.data) == 3 and [t.meta for t in chosen.data] == [
        "channel 2", "channel 19", "mean"]
    assert _title(chosen).startswith("γ per channel")
    assert len(evolution_figure(entries, "running_var", channels=[0]).data) == 2
    absent = evolution_figure(entries, "beta")
    assert len(absent.data) == 0 and "affine=False" in absent.layout.annotations[0].text
    with pytest.raises(ValueError, match="what must be"):
        evolution_figure(entries, "momentum")
    with pytest.raises(ValueError, match="channels 0…19"):
        evolution_figure(entries, "gamma", channels=[20])


def _points(speed: float) -> list[Point]:
    return [Point(e / 2, 2.0 / e, 0.1 * e, 0.2 * e if e % 2 == 0 else None, 1000.0,
                  speed * e, speed * e * 0.9) for e in range(1, 5)]


def test_with_without_against_examples_and_seconds():
    runs = [("lenet-bn", _points(1.0)), ("lenet (no BatchNorm)", _points(0.5))]
    fig = with_without_figure(runs, "examples",
                              {"lenet-bn": 1000, "lenet (no BatchNorm)": 1000})
    assert len(fig.data) == 4
    loss_bn, acc_bn, loss_plain, acc_plain = fig.data
    assert list(loss_bn.x) == [500, 1000, 1500, 2000]
    assert list(acc_bn.x) == [1000, 2000] and acc_bn.mode == "lines+markers"
    assert loss_bn.line.dash is None and loss_plain.line.dash == "dash"
    assert acc_plain.line.dash == "dash" and loss_bn.line.color != loss_plain.line.color
    assert "lenet-bn: 80.0% after 2,000 examples" in _title(fig)
    assert fig.layout.xaxis.title.text == "training examples seen"

    by_time = with_without_figure(runs, "seconds")
    assert list(by_time.data[0].x) == [1.0, 2.0, 3.0, 4.0]
    assert list(by_time.data[2].x) == [0.5, 1.0, 1.5, 2.0]
    assert "after 2.0 s" in _title(by_time)
    assert by_time.layout.xaxis.title.text.startswith("seconds")
    with pytest.raises(ValueError, match="examples_per_epoch lacks"):
        with_without_figure(runs, "examples", {"lenet-bn": 1000})
    with pytest.raises(ValueError, match="x must be"):
        with_without_figure(runs, "epochs")
    assert is_without("VGG without BatchNorm") and not is_without("VGG with BatchNorm")
