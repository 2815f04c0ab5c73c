"""Plotly figures of BatchNorm: pure functions of :mod:`cnnviz.batchnorm.stats` results,
:mod:`cnnviz.batchnorm.recorder` entries and training points. Tensors or numpy arrays are
accepted wherever values are; every trace carries a ``meta`` naming what it draws."""
from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from cnnviz.batchnorm.recorder import Entry
from cnnviz.batchnorm.stats import BatchOfOne, EvalGap, LayerStats
from cnnviz.figures_maps import channel_large
from cnnviz.figures_training import RUN_COLOURS
from cnnviz.training.engine import Point

MARGIN = {"l": 10, "r": 10, "t": 70, "b": 10}
BATCH_COLOUR = "#1f77b4"
RUNNING_COLOUR = "#ff7f0e"
UNBIASED_COLOUR = "#2ca02c"
GAMMA_COLOUR = "#9467bd"
BETA_COLOUR = "#8c564b"
SELECTED_COLOUR = "#d62728"
MEAN_COLOUR = "#111111"
STATS_PANELS = ("mean: batch (μ_B) vs running",
                "variance: batch (biased σ²_B, unbiased) vs running_var", "γ and β")
EVOLVING = {"running_mean": "running_mean", "running_var": "running_var",
            "gamma": "γ", "beta": "β"}
ALIASES = {"γ": "gamma", "β": "beta", "weight": "gamma", "bias": "beta"}
MAX_CHANNELS = 16
BINS = 30
AXES = ("examples", "seconds")
WITHOUT_MARKS = ("no batchnorm", "without batchnorm", "no bn", "without bn", "w/o")


def _np(values) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().double().numpy()
    return np.asarray(values, dtype=np.float64)


def _title(text: str, sub: str = "") -> dict:
    full = f"{text}<br><sup>{sub}</sup>" if sub else text
    return {"text": full, "x": 0, "xanchor": "left", "font": {"size": 14}}


def _g(value: float) -> str:
    """Four significant digits, no "-0"."""
    value = float(value)
    if not np.isfinite(value):
        return "n/a"
    return f"{value + 0.0:.4g}"


def channel_stats_figure(stats: LayerStats, selected: int | None = None,
                         height: int = 380) -> go.Figure:
    """Per channel (x = channel index) of one BatchNorm layer on one batch: the batch mean
    next to running_mean, the biased and unbiased batch variance next to running_var, and γ
    and β; the ``selected`` channel marked by a vertical line in each panel, its numbers in
    the subtitle. Running statistics are those before the batch."""
    channels = np.arange(stats.channels)
    fig = make_subplots(rows=1, cols=3, subplot_titles=STATS_PANELS, horizontal_spacing=0.06)
    has_running = stats.running_mean is not None and stats.running_var is not None

    def line(y, name, colour, col, dash=None):
        fig.add_trace(go.Scatter(
            x=channels, y=_np(y), mode="markers+lines", name=name, meta=name,
            line={"color": colour, "width": 1.5, "dash": dash}, marker={"size": 5},
            hovertemplate=f"channel %{{x}}<br>{name} %{{y:.4g}}<extra></extra>"),
            row=1, col=col)

    line(stats.batch_mean, "batch mean μ_B", BATCH_COLOUR, 1)
    if has_running:
        line(stats.running_mean, "running_mean", RUNNING_COLOUR, 1)
    line(stats.batch_var_biased, "batch σ²_B (biased: normalises)", BATCH_COLOUR, 2)
    line(stats.batch_var_unbiased, "batch variance (unbiased: updates running_var)",
         UNBIASED_COLOUR, 2, "dot")
    if has_running:
        line(stats.running_var, "running_var", RUNNING_COLOUR, 2)
    line(stats.gamma, "γ (weight)", GAMMA_COLOUR, 3)
    line(stats.beta, "β (bias)", BETA_COLOUR, 3)

    momentum = "None (cumulative average)" if stats.momentum is None else _g(stats.momentum)
    parts = [f"{stats.count} values per channel", f"ε = {stats.eps:g}",
             f"momentum {momentum}", f"{stats.batches_tracked} batches tracked before"]
    if not has_running:
        parts = [f"{stats.count} values per channel", f"ε = {stats.eps:g}",
                 "no running statistics (track_running_stats=False): eval mode normalises "
                 "with batch statistics too"]
    sub = " · ".join(parts)
    if selected is not None:
        c = int(selected)
        if not 0 <= c < stats.channels:
            raise ValueError(f"{stats.path} has channels 0…{stats.channels - 1}, not {c}")
        for col in (1, 2, 3):
            fig.add_vline(x=c, line={"color": SELECTED_COLOUR, "width": 1.5, "dash": "dash"},
                          row=1, col=col)
        numbers = [f"μ_B {_g(stats.batch_mean[c])}"]
        if has_running:
            numbers.append(f"running_mean {_g(stats.running_mean[c])}")
        numbers.append(f"σ²_B {_g(stats.batch_var_biased[c])}")
        if has_running:
            numbers.append(f"running_var {_g(stats.running_var[c])}")
        numbers += [f"γ {_g(stats.gamma[c])}", f"β {_g(stats.beta[c])}"]
        sub += f"<br>channel {c}: " + ", ".join(numbers)
    fig.update_xaxes(title_text="channel")
    fig.update_layout(
        title=_title(f"{stats.path} ({stats.kind}, {stats.channels} channels) on this batch",
                     sub),
        # room for the title's two lines above the panels' own titles, and the legend below
        # the axis titles (both overlapped at 1400 px)
        height=height + 60, margin={**MARGIN, "t": 130 if selected is not None else 110},
        legend={"orientation": "h", "yanchor": "top", "y": -0.3, "x": 0},
        hovermode="closest", plot_bgcolor="white")
    fig.update_annotations(font={"size": 12})
    return fig


def _edges(values: np.ndarray, bins: int) -> dict:
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
    if not high > low:
        low, high = low - 0.5, high + 0.5
    size = (high - low) / bins
    return {"start": low, "end": high + size * 1e-6, "size": size}


def histograms_figure(x, x_hat, y, channel: int, gamma: float, beta: float,
                      bins: int = BINS, height: int = 320) -> go.Figure:
    """One channel's values as training mode transforms them (see
    :func:`cnnviz.batchnorm.stats.normalised`): x, x̂ and y = γ·x̂ + β, three histograms of
    ``bins`` bins each, each over its own x range, each titled with its mean and std."""
    arrays = [_np(v).reshape(-1) for v in (x, x_hat, y)]
    names = ("x (the layer's input)", "x̂ = (x − μ_B)/√(σ²_B + ε)",
             f"y = γ·x̂ + β (γ = {_g(gamma)}, β = {_g(beta)})")
    colours = (BATCH_COLOUR, UNBIASED_COLOUR, GAMMA_COLOUR)
    titles = [f"{name}<br>mean {_g(a.mean())} · std {_g(a.std())}" if a.size else name
              for name, a in zip(names, arrays)]
    fig = make_subplots(rows=1, cols=3, subplot_titles=titles, horizontal_spacing=0.06)
    for k, (a, name, colour) in enumerate(zip(arrays, ("x", "x̂", "y"), colours)):
        fig.add_trace(go.Histogram(x=a, xbins=_edges(a, bins), autobinx=False, name=name,
                                   meta=name, marker={"color": colour}, showlegend=False,
                                   hovertemplate=f"{name} %{{x}}<br>%{{y}} values"
                                                 "<extra></extra>"), row=1, col=k + 1)
    fig.update_yaxes(title_text="values", row=1, col=1)
    fig.update_layout(
        title=_title(f"Channel {channel}: {arrays[0].size} values, step by step",
                     "std is the biased one (÷ n), as training normalises with it"),
        height=height, margin={**MARGIN, "t": 110}, bargap=0.05, plot_bgcolor="white")
    fig.update_annotations(font={"size": 12})
    return fig


def output_map_figure(map2d, title: str, height: int = 420) -> go.Figure:
    """One channel of a layer's output for one image: a heatmap, diverging around 0 when it
    has both signs, square pixels, rows downwards, values on hover."""
    return channel_large(_np(map2d), title, signed_centre=True, height=height)


def eval_gap_figure(gap: EvalGap, height: int | None = None) -> go.Figure:
    """Per BatchNorm layer (top to bottom in forward order), how much its output differs
    between train mode (batch statistics) and eval mode (running statistics): mean
    |difference| over the RMS of the train-mode output."""
    paths = [g.path for g in gap.layers]
    relative = [g.relative if np.isfinite(g.relative) else None for g in gap.layers]
    fig = go.Figure(go.Bar(
        y=paths, x=relative, orientation="h", meta="relative difference",
        marker={"color": RUNNING_COLOUR},
        text=[f"{r:.1%}" if r is not None else "n/a" for r in relative], textposition="auto",
        customdata=[g.mean_abs_diff for g in gap.layers],
        hovertemplate="%{y}<br>mean |train − eval| %{customdata:.4g}<br>"
                      "%{x:.2%} of the train-mode RMS<extra></extra>"))
    fig.update_xaxes(title_text="mean |train − eval output| / RMS of the train-mode output",
                     tickformat=".0%", rangemode="tozero")
    fig.update_yaxes(autorange="reversed", type="category")
    share = gap.changed / gap.total if gap.total else 0.0
    fig.update_layout(
        title=_title(f"{gap.changed} of {gap.total} predictions change between train and "
                     f"eval mode ({share:.0%})",
                     "train: this batch's statistics · eval: the running ones"),
        height=height or 120 + 32 * max(len(paths), 1), margin=MARGIN, plot_bgcolor="white")
    return fig


def _value(running_mean, channel: int) -> float | None:
    if running_mean is None:
        return None
    values = _np(running_mean).reshape(-1)
    return float(values[channel] if values.size > 1 else values[0])


def spread_figure(spread: Mapping[int, torch.Tensor | BatchOfOne], running_mean,
                  channel: int, height: int = 360) -> go.Figure:
    """For one channel, the batch means of many random batches per batch size (one box with
    its points per size, x = the size as a category) and the running mean as a horizontal
    line. ``running_mean`` is the layer's (C,) vector, a single value or None. A size whose
    entry is a :class:`BatchOfOne` (training mode refused) is an annotation instead."""
    sizes = sorted(spread)
    level = _value(running_mean, channel)
    fig = go.Figure()
    spreads, refusals = [], []
    for size in sizes:
        entry = spread[size]
        label = str(size)
        if isinstance(entry, BatchOfOne):
            # an invisible point keeps the size's place on the category axis
            fig.add_trace(go.Scatter(x=[label], y=[level if level is not None else 0.0],
                                     mode="markers", marker={"opacity": 0}, showlegend=False,
                                     hoverinfo="skip", meta="keeps the batch-1 category"))
            text = "<br>".join(textwrap.wrap(f"batch {size}: {entry.message}", 28))
            refusals.append(dict(x=label, y=0.5, xref="x", yref="paper", text=text,
                                 showarrow=False, font={"size": 11, "color": SELECTED_COLOUR},
                                 bgcolor="rgba(255,255,255,0.85)"))
            continue
        means = _np(entry)
        means = means[:, channel] if means.ndim == 2 else means.reshape(-1)
        spreads.append(f"batch {size}: {_g(means.std())}")
        fig.add_trace(go.Box(x=[label] * len(means), y=means, name=f"batch {size}",
                             meta=f"batch {size}", boxpoints="all", jitter=0.4, pointpos=0,
                             marker={"color": BATCH_COLOUR, "size": 4},
                             line={"color": BATCH_COLOUR}, fillcolor="rgba(31,119,180,0.15)",
                             showlegend=False,
                             hovertemplate=f"batch {size}<br>μ_B %{{y:.4g}}<extra></extra>"))
    if level is not None:
        fig.add_hline(y=level, line={"color": RUNNING_COLOUR, "width": 2},
                      annotation_text=f"running_mean {_g(level)}",
                      annotation_position="top left")
    for annotation in refusals:
        fig.add_annotation(**annotation)
    draws = {len(_np(spread[s])) for s in sizes if not isinstance(spread[s], BatchOfOne)}
    heading = f"Channel {channel}: the batch mean μ_B of random batches, per batch size"
    if len(draws) == 1:
        heading += f" ({draws.pop()} batches each)"
    sub = "std across batches: " + " · ".join(spreads) if spreads else ""
    if level is None:
        sub += (" · " if sub else "") + "no running_mean (track_running_stats=False)"
    fig.update_xaxes(title_text="batch size", type="category", categoryorder="array",
                     categoryarray=[str(s) for s in sizes])
    fig.update_yaxes(title_text="μ_B of this channel")
    fig.update_layout(title=_title(heading, sub), height=height, margin=MARGIN,
                      plot_bgcolor="white", hovermode="closest")
    return fig


def evolution_figure(entries: Sequence[Entry], what: str,
                     channels: Sequence[int] | None = None, height: int = 340) -> go.Figure:
    """One BatchNorm layer's running_mean, running_var, γ or β (``what``: "running_mean",
    "running_var", "gamma" or "beta"; "γ", "β" also do) over a run's metric points
    (x = epoch): a thin line per channel, the first 16 or ``channels``, and a bold line for
    the mean over all the layer's channels."""
    key = ALIASES.get(what, what)
    if key not in EVOLVING:
        raise ValueError(f"what must be one of {', '.join(EVOLVING)}, not {what!r}")
    name = EVOLVING[key]
    kept = [(e, getattr(e, key)) for e in entries if getattr(e, key) is not None]
    fig = go.Figure()
    if not kept:
        why = ("no metric points yet" if not entries else
               f"this layer keeps no {name}" + (" (track_running_stats=False)"
                                                if key.startswith("running") else
                                                " (affine=False)"))
        fig.add_annotation(text=why, showarrow=False, xref="paper", yref="paper", x=0.5,
                           y=0.5, font={"color": "#888"})
        fig.update_layout(title=_title(f"{name} over the run"), height=height,
                          margin=MARGIN, plot_bgcolor="white")
        return fig
    epochs = [e.epoch for e, _ in kept]
    examples = [e.examples for e, _ in kept]
    values = np.stack([_np(v).reshape(-1) for _, v in kept])  # (points, C)
    total = values.shape[1]
    shown = list(range(min(total, MAX_CHANNELS))) if channels is None else [
        int(c) for c in channels]
    for c in shown:
        if not 0 <= c < total:
            raise ValueError(f"the layer has channels 0…{total - 1}, not {c}")
    for i, c in enumerate(shown):
        fig.add_trace(go.Scatter(
            x=epochs, y=values[:, c], mode="lines", name=f"channel {c}", meta=f"channel {c}",
            customdata=examples, opacity=0.6,
            line={"width": 1, "color": RUN_COLOURS[i % len(RUN_COLOURS)]},
            hovertemplate=f"channel {c}<br>epoch %{{x:.2f}} (%{{customdata:,}} examples)"
                          f"<br>{name} %{{y:.4g}}<extra></extra>"))
    fig.add_trace(go.Scatter(
        x=epochs, y=values.mean(axis=1), mode="lines", name=f"mean over all {total} channels",
        meta="mean", customdata=examples, line={"width": 4, "color": MEAN_COLOUR},
        hovertemplate="mean over channels<br>epoch %{x:.2f} (%{customdata:,} examples)"
                      f"<br>{name} %{{y:.4g}}<extra></extra>"))
    first, last = values[0].mean(), values[-1].mean()
    sub = (f"{len(shown)} of {total} channels drawn · mean over channels "
           f"{_g(first)} → {_g(last)} from epoch {epochs[0]:g} to {epochs[-1]:g}")
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(title_text=name)
    fig.update_layout(title=_title(f"{name} per channel over the run", sub), height=height,
                      margin=MARGIN, plot_bgcolor="white", hovermode="closest",
                      legend={"font": {"size": 10}})
    return fig


def is_without(label: str) -> bool:
    """Whether a run's label names a network without BatchNorm (its lines are dashed)."""
    lowered = label.lower()
    return any(mark in lowered for mark in WITHOUT_MARKS)


def with_without_figure(runs: Sequence[tuple[str, Sequence[Point]]], x: str = "examples",
                        examples_per_epoch: Mapping[str, int] | None = None,
                        height: int = 340) -> go.Figure:
    """Train loss and test accuracy of runs side by side, against training examples seen
    (epoch × ``examples_per_epoch[label]``) or against seconds since training started
    (tests included); one colour per run, dashed where the label says "no BatchNorm"."""
    if x not in AXES:
        raise ValueError(f"x must be one of {AXES}, not {x!r}")
    if x == "examples":
        missing = [label for label, _ in runs if label not in (examples_per_epoch or {})]
        if missing:
            raise ValueError(f"examples_per_epoch lacks {', '.join(map(repr, missing))}")
    fig = make_subplots(rows=1, cols=2, subplot_titles=("train loss", "test accuracy"),
                        horizontal_spacing=0.08)
    finals = []
    against = "examples seen" if x == "examples" else "time"
    for i, (label, points) in enumerate(runs):
        colour = RUN_COLOURS[i % len(RUN_COLOURS)]
        dash = "dash" if is_without(label) else None

        def where(p: Point) -> float:
            return p.epoch * examples_per_epoch[label] if x == "examples" else p.seconds

        tested = [p for p in points if p.test_acc is not None]
        hover = ("%{x:,.0f} examples" if x == "examples" else "%{x:.1f} s")
        fig.add_trace(go.Scatter(
            x=[where(p) for p in points], y=[p.train_loss for p in points], mode="lines",
            name=label, legendgroup=label, meta=f"{label}: train loss",
            line={"color": colour, "dash": dash},
            hovertemplate=f"{label}<br>{hover}<br>loss %{{y:.4f}}<extra></extra>"),
            row=1, col=1)
        fig.add_trace(go.Scatter(
            x=[where(p) for p in tested], y=[p.test_acc for p in tested],
            mode="lines+markers", name=label, legendgroup=label, showlegend=False,
            meta=f"{label}: test acc", line={"color": colour, "dash": dash},
            hovertemplate=f"{label}<br>{hover}<br>test acc %{{y:.2%}}<extra></extra>"),
            row=1, col=2)
        if tested:
            end = where(tested[-1])
            at = f"{end:,.0f} examples" if x == "examples" else f"{end:.1f} s"
            finals.append(f"{label}: {tested[-1].test_acc:.1%} after {at}")
    title = ("training examples seen" if x == "examples"
             else "seconds since training started (tests included)")
    fig.update_xaxes(title_text=title, rangemode="tozero")
    fig.update_yaxes(rangemode="tozero", row=1, col=1)
    fig.update_yaxes(range=[0, 1.02], tickformat=".0%", row=1, col=2)
    if not any(points for _, points in runs):
        fig.add_annotation(text="no metric points yet", showarrow=False, xref="paper",
                           yref="paper", x=0.5, y=0.5, font={"color": "#888"})
    fig.update_layout(
        title=_title(f"With and without BatchNorm, against {against}",
                     "final test accuracy: " + " · ".join(finals) if finals else ""),
        height=height + 40, margin={**MARGIN, "t": 90},
        legend={"orientation": "h", "yanchor": "top", "y": -0.3, "x": 0},  # under the x title
        hovermode="closest", plot_bgcolor="white")
    fig.update_annotations(font={"size": 12})
    return fig
