"""The training figures: pure functions of metric points, confusion matrices and images."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from cnnviz.figures_training import (RUN_COLOURS, confusion_figure, curves_figure,
                                     mistake_tiles)
from cnnviz.training.engine import SPEED_WINDOW_SECONDS, Point


def points(n_epochs: int = 2, per_epoch: int = 2, loss0: float = 2.3) -> list[Point]:
    out = []
    for k in range(1, n_epochs * per_epoch + 1):
        epoch = k / per_epoch
        end = k % per_epoch == 0
        out.append(Point(epoch, loss0 / k, 0.1 * k, 0.09 * k if end else None, 1000.0 + k,
                         0.5 * k))
    return out


def traces(fig, meta: str):
    return [t for t in fig.data if t.meta == meta]


def test_curves_follow_the_points():
    run = points()
    fig = curves_figure([("lenet", run)])
    assert len(fig.data) == 4
    [loss] = traces(fig, "train loss")
    [train] = traces(fig, "train acc")
    [test] = traces(fig, "test acc")
    [speed] = traces(fig, "examples/s")
    assert list(loss.x) == [p.epoch for p in run] == [0.5, 1.0, 1.5, 2.0]
    assert list(loss.y) == [p.train_loss for p in run]
    assert list(train.y) == [p.train_acc for p in run]
    assert list(speed.y) == [p.examples_per_sec for p in run]
    # test accuracy exists at the end of each epoch only
    assert list(test.x) == [1.0, 2.0]
    assert list(test.y) == pytest.approx([0.18, 0.36])
    assert loss.xaxis == "x" and train.xaxis == test.xaxis == "x2" and speed.xaxis == "x3"
    assert [a.text for a in fig.layout.annotations] == \
        ["train loss", "accuracy (solid: train, dashed: test)",
         "training examples / s (tests excluded)"]


def test_the_speed_curve_says_it_counts_training_only():
    [speed] = traces(curves_figure([("lenet", points())]), "examples/s")
    assert "training only" in speed.hovertemplate
    assert f"last {SPEED_WINDOW_SECONDS:g} s of training" in speed.hovertemplate


def test_two_runs_overlay_in_their_own_colours():
    a, b = points(), points(n_epochs=3, loss0=1.0)
    fig = curves_figure([("lenet", a), ("lenet-bn", b)])
    assert len(fig.data) == 8
    assert [t.name for t in traces(fig, "train loss")] == ["lenet", "lenet-bn"]
    for meta in ("train loss", "train acc", "test acc", "examples/s"):
        first, second = traces(fig, meta)
        assert first.line.color == RUN_COLOURS[0] and second.line.color == RUN_COLOURS[1]
        assert first.legendgroup == "lenet" and second.legendgroup == "lenet-bn"
    assert list(traces(fig, "train loss")[1].y) == [p.train_loss for p in b]
    assert max(traces(fig, "train loss")[1].x) == 3.0
    # one legend entry per run: only the loss traces show in the legend
    assert [t.name for t in fig.data if t.showlegend is not False] == ["lenet", "lenet-bn"]


def test_no_points_yet_draws_empty_axes_with_a_note():
    fig = curves_figure([("lenet", [])])
    assert len(fig.data) == 4 and all(len(t.x) == 0 for t in fig.data)
    assert "no metric points yet" in [a.text for a in fig.layout.annotations]
    assert len(curves_figure([]).data) == 0


def test_confusion_matrix_values_and_labels():
    confusion = torch.tensor([[5, 1, 0], [2, 3, 0], [0, 0, 4]])
    classes = ("cat", "dog", "bird")
    fig = confusion_figure(confusion, classes)
    [heat] = fig.data
    assert heat.type == "heatmap"
    assert np.array_equal(np.asarray(heat.z), confusion.numpy())
    assert list(heat.x) == list(heat.y) == list(classes)
    assert fig.layout.xaxis.tickangle == -40  # long names slant; digits stay upright
    assert confusion_figure(confusion, ("0", "1", "2")).layout.xaxis.tickangle == 0
    assert np.allclose(np.asarray(heat.customdata)[0], [5 / 6, 1 / 6, 0])
    assert fig.layout.yaxis.autorange == "reversed"  # the first class on top
    assert fig.layout.xaxis.title.text == "predicted" and fig.layout.yaxis.title.text == "true"


def test_confusion_matrix_with_an_empty_class():
    fig = confusion_figure([[0, 0], [1, 1]], ["a", "b"])
    assert np.allclose(np.asarray(fig.data[0].customdata), [[0, 0], [0.5, 0.5]])


def test_mistake_tiles_enlarge_and_caption():
    grey = torch.arange(64, dtype=torch.uint8).reshape(1, 8, 8)
    colour = torch.zeros(3, 32, 32, dtype=torch.uint8)
    images, captions = mistake_tiles([(grey, 3, 8), (colour, 0, 1)], [str(d) for d in range(10)])
    assert images[0].shape == (80, 80) and images[0].dtype == np.uint8
    assert images[0][0, 9] == 0 and images[0][0, 10] == 1  # nearest neighbour, 10× wider
    assert images[1].shape == (64, 64, 3)
    assert captions == ["3 → 8", "0 → 1"]
