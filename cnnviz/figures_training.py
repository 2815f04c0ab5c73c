"""Plotly figures of training runs: pure functions of the engine's metric points and results."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from cnnviz.training.engine import SPEED_WINDOW_SECONDS, Point

# Plotly's default qualitative colours: run n keeps its colour in every panel.
RUN_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
               "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
PANELS = ("train loss", "accuracy (solid: train, dashed: test)",
          "training examples / s (tests excluded)")


def curves_figure(runs: Sequence[tuple[str, Sequence[Point]]], height: int = 360) -> go.Figure:
    """Train loss, train and test accuracy, and speed against epochs, one colour per run.

    ``runs`` is a list of (label, points). Test accuracy exists only at the end of an epoch,
    so its curve has a marker per epoch; the others have a point a few times per epoch.
    The speed is the engine's: training only, averaged over the last
    ``SPEED_WINDOW_SECONDS`` of training time, so it neither zigzags nor counts the tests.
    """
    fig = make_subplots(rows=1, cols=3, subplot_titles=PANELS, horizontal_spacing=0.07)
    for i, (label, points) in enumerate(runs):
        colour = RUN_COLOURS[i % len(RUN_COLOURS)]
        epochs = [p.epoch for p in points]
        tested = [p for p in points if p.test_acc is not None]
        common = {"legendgroup": label, "line": {"color": colour}}
        fig.add_trace(go.Scatter(x=epochs, y=[p.train_loss for p in points], mode="lines",
                                 name=label, meta="train loss",
                                 hovertemplate="epoch %{x:.2f}<br>loss %{y:.4f}", **common),
                      row=1, col=1)
        fig.add_trace(go.Scatter(x=epochs, y=[p.train_acc for p in points], mode="lines",
                                 name=label, meta="train acc", showlegend=False,
                                 hovertemplate="epoch %{x:.2f}<br>train acc %{y:.2%}",
                                 **common), row=1, col=2)
        fig.add_trace(go.Scatter(x=[p.epoch for p in tested], y=[p.test_acc for p in tested],
                                 mode="lines+markers", name=label, meta="test acc",
                                 showlegend=False, legendgroup=label,
                                 line={"color": colour, "dash": "dash"},
                                 hovertemplate="epoch %{x:.2f}<br>test acc %{y:.2%}"),
                      row=1, col=2)
        fig.add_trace(go.Scatter(x=epochs, y=[p.examples_per_sec for p in points],
                                 mode="lines", name=label, meta="examples/s", showlegend=False,
                                 hovertemplate="epoch %{x:.2f}<br>%{y:,.0f} examples/s<br>"
                                               f"training only, mean of the last "
                                               f"{SPEED_WINDOW_SECONDS:g} s of training",
                                 **common), row=1, col=3)
    fig.update_xaxes(title_text="epoch", rangemode="tozero")
    fig.update_yaxes(rangemode="tozero", row=1, col=1)
    fig.update_yaxes(range=[0, 1.02], tickformat=".0%", row=1, col=2)
    fig.update_yaxes(rangemode="tozero", row=1, col=3)
    if not any(points for _, points in runs):
        fig.add_annotation(text="no metric points yet", showarrow=False, xref="paper",
                           yref="paper", x=0.5, y=0.5, font={"color": "#888"})
    fig.update_layout(height=height, margin={"l": 10, "r": 10, "t": 40, "b": 10},
                      legend={"orientation": "h", "yanchor": "top", "y": -0.18, "x": 0},
                      showlegend=True, hovermode="closest")
    return fig


def confusion_figure(confusion, classes: Sequence[str], height: int = 460) -> go.Figure:
    """Counts of (true, predicted) classes: rows are the true class, top to bottom."""
    z = np.asarray(confusion.tolist() if hasattr(confusion, "tolist") else confusion,
                   dtype=np.int64)
    labels = [str(c) for c in classes]
    totals = z.sum(axis=1, keepdims=True)
    share = np.divide(z, totals, out=np.zeros(z.shape, dtype=float), where=totals > 0)
    fig = go.Figure(go.Heatmap(
        z=z, x=labels, y=labels, customdata=share, colorscale="Blues", showscale=False,
        text=z, texttemplate="%{text}", xgap=1, ygap=1,
        hovertemplate="true %{y}<br>predicted %{x}<br>%{z} images "
                      "(%{customdata:.1%} of this class)<extra></extra>"))
    slanted = max((len(label) for label in labels), default=0) > 3  # Fashion-MNIST's names
    fig.update_xaxes(title_text="predicted", side="bottom", type="category",
                     tickangle=-40 if slanted else 0)
    fig.update_yaxes(title_text="true", autorange="reversed", type="category")
    fig.update_layout(height=height, margin={"l": 10, "r": 10, "t": 10, "b": 10})
    return fig


def mistake_tiles(mistakes, classes: Sequence[str], side: int = 84
                  ) -> tuple[list[np.ndarray], list[str]]:
    """Misclassified images as uint8 arrays enlarged to about ``side`` pixels (nearest
    neighbour, so an 8×8 digit stays crisp), with "true → predicted" captions."""
    images, captions = [], []
    for image, true, predicted in mistakes:
        array = np.asarray(image, dtype=np.uint8)
        array = array[0] if array.shape[0] == 1 else np.transpose(array, (1, 2, 0))
        factor = max(1, side // max(array.shape[:2]))
        images.append(array.repeat(factor, axis=0).repeat(factor, axis=1))
        captions.append(f"{classes[true]} → {classes[predicted]}")
    return images, captions
