"""Plotly figures of the Feature maps page: pure functions of activations, weights and images.

A grid of maps is one pair of axes holding one image trace per channel, each placed with its
own offset: one axis instead of 64 subplots keeps the figure fast to build and light to send,
and palette PNGs (the colour map applied here) keep the JSON of a 64-map page far under 3 MB.
"""
from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping, Sequence
from functools import lru_cache

import numpy as np
import plotly.graph_objects as go
import torch
from PIL import Image
from plotly.colors import sample_colorscale
from plotly.subplots import make_subplots

SCOPES = ("per map", "per layer", "global")
MAX_GRID = 64          # channels on one page of the grid
DIVERGING = "RdBu_r"   # negative blue, 0 white, positive red
SEQUENTIAL = "Viridis"
THUMB_SIDE = 64        # grid cells larger than this are averaged down: the large view has them
GRID_COLUMNS = 8
PRODUCER_COLOURS = ("#7f7f7f", "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                    "#8c564b", "#e377c2", "#bcbd22", "#17becf")
BOX_COLOUR = "#00e5ff"
MARGIN = {"l": 10, "r": 10, "t": 60, "b": 10}


def _array(values) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=np.float32)


def is_signed(low: float, high: float) -> bool:
    return low < 0 < high


@lru_cache(maxsize=4)
def _palette(colorscale: str) -> bytes:
    """256 RGB triples sampled from a plotly colour scale, as a PNG palette."""
    colours = sample_colorscale(colorscale, [i / 255 for i in range(256)])
    triples = [int(v) for c in colours for v in c[4:-1].split(",")]
    return bytes(triples)


def _png(indices: np.ndarray, palette: bytes | None = None) -> str:
    """A data URI of a uint8 image: (H, W) indexed through ``palette`` (grey without one)
    or (H, W, 3) RGB. One byte a pixel before compression, not three as in RGB."""
    indices = np.ascontiguousarray(indices)
    if palette is None:
        image = Image.fromarray(indices)
    else:
        image = Image.frombytes("P", (indices.shape[1], indices.shape[0]), indices.tobytes())
        image.putpalette(palette)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _indices(z: np.ndarray, low: float, high: float) -> np.ndarray:
    span = high - low if high > low else 1.0
    scaled = np.nan_to_num((z - low) * (255.0 / span), nan=0.0, posinf=255.0, neginf=0.0)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _shrink(maps: np.ndarray) -> tuple[np.ndarray, int]:
    """(C, H, W) maps averaged down by an integer factor so their larger side is at most
    ``THUMB_SIDE``; the factor is returned so the axes keep counting input pixels."""
    factor = math.ceil(max(maps.shape[1:]) / THUMB_SIDE)
    if factor <= 1:
        return maps, 1
    size = (math.ceil(maps.shape[1] / factor), math.ceil(maps.shape[2] / factor))
    pooled = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(maps), size)
    return pooled.numpy(), factor


def _decimals(reach: float) -> int:
    """Decimals that give about 3 significant digits to the largest value shown, so that all
    captions of a grid round alike and a mean of 1e-10 reads 0."""
    if not math.isfinite(reach) or reach <= 0:
        return 2
    return max(0, 2 - math.floor(math.log10(reach)))


def _fmt(value: float, decimals: int) -> str:
    return f"{round(float(value), decimals) + 0.0:.{decimals}f}"  # + 0.0: no "-0.00"


def _tiles(n: int, columns: int, height: int, width: int) -> tuple[list[tuple[float, float]],
                                                                   float, float]:
    """Top-left corners of ``n`` cells of ``height``×``width`` pixels, row by row, with gaps
    wide enough for a two-line caption above each cell; the grid's total width and height."""
    gap_x, gap_y = max(1.0, 0.1 * width), max(3.0, 0.65 * height)  # three caption lines
    rows = math.ceil(n / columns)
    corners = [((i % columns) * (width + gap_x), gap_y + (i // columns) * (height + gap_y))
               for i in range(n)]
    return corners, columns * (width + gap_x) - gap_x, rows * (height + gap_y)


def _grid_layout(title: str, total_w: float, total_h: float, height: int | None,
                 annotations: list[dict], page_px: int = 780) -> dict:
    """One pair of axes for a grid of ``total_w``×``total_h`` pixels; without a ``height``,
    the height that fits the grid drawn ``page_px`` wide (or less, to stay readable): about
    the plot area of a wide page's chart at 1400 px, less the colour bar, so no band of empty
    space is left under the grid."""
    fit = MARGIN["t"] + MARGIN["b"] + page_px * total_h / total_w
    return {
        "title": {"text": title, "x": 0, "xanchor": "left", "font": {"size": 14}},
        "height": height or int(fit),
        "margin": MARGIN,
        "xaxis": {"visible": False, "range": [-0.5, total_w - 0.5], "constrain": "domain",
                  "constraintoward": "left"},
        "yaxis": {"visible": False, "range": [total_h - 0.5, -0.5], "scaleanchor": "x",
                  "constrain": "domain", "constraintoward": "top"},
        "annotations": annotations, "plot_bgcolor": "white", "hovermode": "closest",
    }


def _caption(x: float, y: float, text: str, width: float) -> dict:
    return {"x": x + (width - 1) / 2, "y": y - 0.5, "xref": "x", "yref": "y", "text": text,
            "showarrow": False, "yanchor": "bottom", "font": {"size": 10}}


def _colourbar(colorscale: str, low: float, high: float, ticks: Sequence[float] | None = None,
               labels: Sequence[str] | None = None) -> tuple[go.Scatter, dict]:
    """An invisible trace that only draws the colour bar of the image traces' colour map."""
    axis = {"colorscale": colorscale, "cmin": low, "cmax": high,
            "colorbar": {"thickness": 12, "len": 0.6, "outlinewidth": 0}}
    if ticks is not None:
        axis["colorbar"].update(tickvals=list(ticks), ticktext=list(labels or ()))
    marker = {"color": [low], "coloraxis": "coloraxis", "size": 0.1, "opacity": 0}
    return go.Scatter(x=[None], y=[None], mode="markers", marker=marker, showlegend=False,
                      hoverinfo="skip", meta="colour bar"), axis


def scale_range(act, scope: str, global_range: tuple[float, float] | None = None
                ) -> tuple[float, float] | None:
    """The (low, high) of one colour scale for a scope; None for "per map" (each its own)."""
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, not {scope!r}")
    if scope == "global":
        if global_range is None:
            raise ValueError('scope "global" needs global_range')
        return float(global_range[0]), float(global_range[1])
    if scope == "per layer":
        values = _array(act)
        return float(np.nanmin(values)), float(np.nanmax(values))
    return None


def channel_grid(act, channels: Sequence[int], scope: str, title: str = "",
                 columns: int | None = None, global_range: tuple[float, float] | None = None,
                 height: int | None = None) -> go.Figure:
    """One small image per listed channel of a (C, H, W) activation, captioned with its mean
    and max. ``scope`` picks the colour range: each map's own ("per map"), the whole layer's
    ("per layer", all C channels, not only those shown) or ``global_range`` ("global").
    A range with values of both signs gets a diverging scale centred on 0 (per map: each map
    from −max|map| to +max|map|); otherwise a sequential one. Each image trace's ``meta``
    holds its channel, range and colour scale."""
    values = _array(act)
    if values.ndim != 3:
        raise ValueError(f"expected a (C, H, W) activation, got shape {tuple(values.shape)}")
    shared = scale_range(values, scope, global_range)
    channels = [int(c) for c in channels]
    maps = values[channels] if channels else np.zeros((0,) + values.shape[1:], np.float32)
    means = maps.mean(axis=(1, 2)) if channels else np.zeros(0)
    peaks = maps.max(axis=(1, 2)) if channels else np.zeros(0)
    lows = maps.min(axis=(1, 2)) if channels else np.zeros(0)
    if shared is None:
        signed = bool(channels) and is_signed(float(lows.min()), float(peaks.max()))
    else:
        signed = is_signed(*shared)
    colorscale = DIVERGING if signed else SEQUENTIAL
    if shared is not None and signed:
        reach = max(abs(shared[0]), abs(shared[1]))
        shared = (-reach, reach)

    reach_shown = float(np.abs(maps).max()) if channels else 0.0
    decimals = _decimals(reach_shown)
    thumbs, factor = _shrink(maps)
    columns = max(1, min(columns or GRID_COLUMNS, max(len(channels), 1)))
    height_px, width_px = values.shape[1], values.shape[2]
    corners, total_w, total_h = _tiles(len(channels), columns, height_px, width_px)
    palette = _palette(colorscale)
    traces, captions = [], []
    for i, c in enumerate(channels):
        if shared is not None:
            low, high = shared
        elif signed:
            reach = float(max(abs(lows[i]), abs(peaks[i])))
            low, high = -reach, reach
        else:
            low, high = float(lows[i]), float(peaks[i])
        x0, y0 = corners[i]
        traces.append(go.Image(
            source=_png(_indices(thumbs[i], low, high), palette), x0=x0 + (factor - 1) / 2,
            y0=y0 + (factor - 1) / 2, dx=factor, dy=factor,
            hovertemplate=f"c{c}<extra></extra>",
            meta={"channel": c, "zmin": low, "zmax": high, "colorscale": colorscale}))
        # one value a line: "mean −0.163 · max 0.067" on one line ran into the next caption
        captions.append(_caption(x0, y0, f"c{c}<br>mean {_fmt(means[i], decimals)}<br>"
                                         f"max {_fmt(peaks[i], decimals)}", width_px))
    if shared is not None:
        scale = f"{scope} scale {shared[0]:.3g} … {shared[1]:.3g}"
        bar, axis = _colourbar(colorscale, *shared)
    elif signed:
        scale = "per-map scale: each map −max|map| … +max|map|"
        bar, axis = _colourbar(colorscale, -1, 1, [-1, 0, 1], ["−max|map|", "0", "+max|map|"])
    else:
        scale = "per-map scale: each map min … max"
        bar, axis = _colourbar(colorscale, 0, 1, [0, 1], ["min", "max"])
    scale += ", 0 white" if signed else ""
    if factor > 1:
        scale += f" · maps averaged {factor}×{factor} in the grid"
    heading = f"{title}<br><sup>{scale}</sup>" if title else scale
    layout = _grid_layout(heading, total_w, total_h, height, captions,
                          page_px=int(1000 * min(columns, 8) / 8))
    layout["coloraxis"] = axis
    return go.Figure(data=[bar, *traces], layout=layout)


def _image_axes(fig: go.Figure, panels: int = 1) -> None:
    """Square pixels and rows counted downwards, like an image, in each panel."""
    for k in range(1, panels + 1):
        suffix = "" if k == 1 else str(k)
        fig.layout[f"xaxis{suffix}"].update(showgrid=False, zeroline=False, constrain="domain")
        fig.layout[f"yaxis{suffix}"].update(showgrid=False, zeroline=False, constrain="domain",
                                            autorange="reversed", scaleanchor=f"x{suffix}")


def channel_large(act2d, title: str, signed_centre: bool = True,
                  height: int = 520) -> go.Figure:
    """One channel as a heatmap with its row, column and value on hover; a diverging scale
    centred on 0 when ``signed_centre`` and the map has both signs."""
    z = _array(act2d)
    low, high = float(np.nanmin(z)), float(np.nanmax(z))
    colour: dict = {"colorscale": SEQUENTIAL, "zmin": low, "zmax": high}
    if signed_centre and is_signed(low, high):
        reach = max(-low, high)
        colour = {"colorscale": DIVERGING, "zmin": -reach, "zmax": reach}
    fig = go.Figure(go.Heatmap(
        z=z, hovertemplate="row %{y}<br>col %{x}<br>value %{z:.4g}<extra></extra>",
        colorbar={"thickness": 12}, **colour))
    _image_axes(fig)
    fig.update_layout(title={"text": title, "x": 0, "xanchor": "left", "font": {"size": 14}},
                      height=height, margin=MARGIN, plot_bgcolor="white")
    return fig


def kernels_figure(weight, max_kernels: int = 64, columns: int | None = None,
                   height: int | None = None) -> go.Figure:
    """The first convolution's kernels: RGB (each scaled to [0, 1] on its own) when it reads
    3 channels, otherwise a diverging heatmap (of the mean over its inputs when more than 1)."""
    w = _array(weight)
    if w.ndim != 4:
        raise ValueError(f"expected (out, in, k, k) weights, got shape {tuple(w.shape)}")
    shown = w[:max_kernels]
    n, inputs, kh, kw = shown.shape
    columns = max(1, min(columns or 16, n))
    corners, total_w, total_h = _tiles(n, columns, kh, kw)
    captions = [_caption(x0, y0, f"k{i}", kw) for i, (x0, y0) in enumerate(corners)]
    traces: list = []
    if inputs == 3:
        flat = shown.reshape(n, -1)
        low, high = flat.min(axis=1), flat.max(axis=1)
        scaled = (shown - low[:, None, None, None]) / np.maximum(high - low, 1e-12)[
            :, None, None, None]
        rgb = np.rint(np.transpose(scaled, (0, 2, 3, 1)) * 255).astype(np.uint8)
        for i, (x0, y0) in enumerate(corners):
            traces.append(go.Image(source=_png(rgb[i]), x0=x0, y0=y0, meta={"kernel": i},
                                   hovertemplate=f"k{i}<extra></extra>"))
        note = "each kernel's RGB scaled to [0, 1] on its own"
        axis = None
    else:
        z = shown.mean(axis=1)
        reach = float(np.abs(z).max()) or 1.0
        for i, (x0, y0) in enumerate(corners):
            traces.append(go.Heatmap(z=z[i], x0=x0, y0=y0, coloraxis="coloraxis",
                                     meta={"kernel": i},
                                     hovertemplate=f"k{i}<br>weight %{{z:.4g}}<extra></extra>"))
        axis = {"colorscale": DIVERGING, "cmin": -reach, "cmax": reach,
                "colorbar": {"thickness": 12, "len": 0.6}}
        note = "weights, 0 white" + (f", mean over the {inputs} inputs" if inputs > 1 else "")
    title = (f"First convolution: {len(w)} kernels of {kh}×{kw}"
             + (f" (first {n} shown)" if n < len(w) else "") + f"<br><sup>{note}</sup>")
    layout = _grid_layout(title, total_w, total_h, height, captions,
                          page_px=int(1000 * min(columns, 16) / 16))
    if axis is not None:
        layout["coloraxis"] = axis
    return go.Figure(data=traces, layout=layout)


def picture_figure(pixels, title: str, box: tuple[int, int, int, int] | None = None,
                   overlay=None, overlay_opacity: float = 0.45,
                   height: int = 420) -> go.Figure:
    """A uint8 image, (H, W) grey or (H, W, 3) RGB, with an optional rectangle ``box`` =
    (top, left, bottom, right), inclusive pixel bounds (a receptive field), and an optional
    map in [0, 1] laid over it in jet colours (Grad-CAM). An overlay of another size is
    stretched over the whole image, smoothly."""
    image = np.asarray(pixels.numpy() if isinstance(pixels, torch.Tensor) else pixels,
                       dtype=np.uint8)
    rows, cols = image.shape[:2]
    fig = go.Figure(go.Image(source=_png(image), meta="picture",
                             hovertemplate="row %{y}<br>col %{x}<extra></extra>"))
    if overlay is not None:
        z = _array(overlay)
        dy, dx = rows / z.shape[0], cols / z.shape[1]
        fig.add_trace(go.Heatmap(
            z=z, x0=dx / 2 - 0.5, dx=dx, y0=dy / 2 - 0.5, dy=dy, zmin=0, zmax=1,
            colorscale="Jet", opacity=overlay_opacity, zsmooth="best" if dx > 1 else False,
            colorbar={"thickness": 12, "len": 0.8}, meta="overlay",
            hovertemplate="value %{z:.2f}<extra></extra>"))
    if box is not None:
        top, left, bottom, right = box
        fig.add_shape(type="rect", x0=left - 0.5, x1=right + 0.5, y0=top - 0.5,
                      y1=bottom + 0.5, line={"color": BOX_COLOUR, "width": 2})
    fig.update_xaxes(visible=False, range=[-0.5, cols - 0.5], constrain="domain")
    fig.update_yaxes(visible=False, range=[rows - 0.5, -0.5], scaleanchor="x",
                     constrain="domain")
    fig.update_layout(title={"text": title, "x": 0, "xanchor": "left", "font": {"size": 14}},
                      height=height, margin=MARGIN, plot_bgcolor="white")
    return fig


def _norm_text(norms: Mapping[str, float], key: str, label: str) -> str:
    return f"‖{label}‖ = {norms[key]:.3g}" if key in norms else ""


def residual_figure(x2d, fx2d, sum2d, out2d, norms: Mapping[str, float],
                    projection2d=None, height: int = 340) -> go.Figure:
    """One channel of a residual block: x (or its 1×1 projection), F(x), x + F(x) on one
    diverging scale, and ReLU(x + F(x)) on its own. ``norms`` holds the L2 norms by the
    keys "x", "F(x)", "x + F(x)" and optionally "projection" and "out"."""
    first = projection2d if projection2d is not None else x2d
    if projection2d is None:
        first_title = "x (the shortcut)<br>" + _norm_text(norms, "x", "x")
    else:
        first_title = ("1×1 conv projection of x<br>"
                       + (_norm_text(norms, "projection", "projection(x)")
                          or _norm_text(norms, "x", "x")))
    titles = (first_title, "F(x) (the body)<br>" + _norm_text(norms, "F(x)", "F(x)"),
              "x + F(x)<br>" + _norm_text(norms, "x + F(x)", "x + F(x)"),
              "ReLU(x + F(x)) (the output)<br>" + _norm_text(norms, "out", "out"))
    panels = [_array(a) for a in (first, fx2d, sum2d, out2d)]
    fig = make_subplots(rows=1, cols=4, subplot_titles=[t.removesuffix("<br>") for t in titles],
                        horizontal_spacing=0.04)
    for k, z in enumerate(panels):
        fig.add_trace(go.Heatmap(z=z, coloraxis="coloraxis2" if k == 3 else "coloraxis",
                                 meta=["shortcut", "F(x)", "x + F(x)", "out"][k],
                                 hovertemplate="row %{y}<br>col %{x}<br>value %{z:.4g}"
                                               "<extra></extra>"), row=1, col=k + 1)
    _image_axes(fig, 4)
    reach = max(float(np.abs(z).max()) for z in panels[:3]) or 1.0
    top = float(panels[3].max()) or 1.0
    fig.update_layout(
        coloraxis={"colorscale": DIVERGING, "cmin": -reach, "cmax": reach,
                   "colorbar": {"thickness": 10, "len": 0.9, "x": 1.0, "title": {"text": ""}}},
        coloraxis2={"colorscale": SEQUENTIAL, "cmin": 0, "cmax": top,
                    "colorbar": {"thickness": 10, "len": 0.9, "x": 1.07}},
        height=height, margin={"l": 10, "r": 10, "t": 50, "b": 10}, plot_bgcolor="white")
    fig.update_annotations(font={"size": 12})
    return fig


def _sum_text(counts: Sequence[int]) -> str:
    """64 + 4 × 32 = 192: the first count, then the rest grouped when they are equal."""
    first, rest = counts[0], list(counts[1:])
    if rest and len(set(rest)) == 1 and len(rest) > 1:
        parts = [str(first), f"{len(rest)} × {rest[0]}"]
    else:
        parts = [str(c) for c in counts]
    return " + ".join(parts) + f" = {sum(counts)}"


def dense_figure(channel_means: Sequence[float], producers: Sequence[tuple[str, int, int]],
                 transition: tuple[int, int, int, int] | None = None,
                 height: int = 340) -> go.Figure:
    """A dense block's output channels as bars of their mean activation, coloured by what
    produced them: ``producers`` = (label, first channel, end channel), in order from 0.
    ``transition`` = (in channels, out channels, in size, out size) of the one after it."""
    means = _array(channel_means).reshape(-1)
    expected = 0
    for label, first, end in producers:
        if first != expected or end <= first:
            raise ValueError(f"producer {label!r} covers {first}..{end}, expected to start "
                             f"at {expected}")
        expected = end
    if expected != len(means):
        raise ValueError(f"producers cover {expected} channels, the block has {len(means)}")
    fig = go.Figure()
    for k, (label, first, end) in enumerate(producers):
        fig.add_trace(go.Bar(x=np.arange(first, end), y=means[first:end], name=label,
                             marker={"color": PRODUCER_COLOURS[k % len(PRODUCER_COLOURS)],
                                     "line": {"width": 0}},
                             hovertemplate=f"c%{{x}}<br>mean %{{y:.4g}}<br>{label}"
                                           "<extra></extra>"))
    title = _sum_text([end - first for _, first, end in producers]) + " channels"
    if transition is not None:
        c_in, c_out, s_in, s_out = transition
        title += (f"<br><sup>then the transition: {c_in} → {c_out} channels (1×1 conv), "
                  f"{s_in}×{s_in} → {s_out}×{s_out} (average pooling)</sup>")
    fig.update_xaxes(title_text="output channel", range=[-0.5, len(means) - 0.5])
    fig.update_yaxes(title_text="mean activation")
    fig.update_layout(title={"text": title, "x": 0, "xanchor": "left", "font": {"size": 14}},
                      height=height + 40, margin={"l": 10, "r": 10, "t": 60, "b": 10},
                      bargap=0,
                      # below the axis: a title with the transition's line reaches the right
                      legend={"orientation": "h", "yanchor": "top", "y": -0.22, "x": 0,
                              "xanchor": "left"})
    return fig


def inception_figure(branches: Sequence[tuple[str, object]], height: int = 320) -> go.Figure:
    """An Inception block's branch outputs before their concatenation, one column each: the
    mean over each branch's channels, all on one colour scale."""
    labels = [label for label, _ in branches]
    maps = [_array(t) for _, t in branches]
    means = [m.mean(axis=0) if m.ndim == 3 else m for m in maps]
    fig = make_subplots(rows=1, cols=max(len(branches), 1), subplot_titles=labels,
                        horizontal_spacing=0.03)
    for k, z in enumerate(means):
        fig.add_trace(go.Heatmap(z=z, coloraxis="coloraxis", meta=labels[k],
                                 hovertemplate="row %{y}<br>col %{x}<br>mean %{z:.4g}"
                                               "<extra></extra>"), row=1, col=k + 1)
    _image_axes(fig, len(means))
    low = min((float(z.min()) for z in means), default=0.0)
    high = max((float(z.max()) for z in means), default=1.0)
    axis = {"colorscale": SEQUENTIAL, "cmin": low, "cmax": high}
    if is_signed(low, high):
        reach = max(-low, high)
        axis = {"colorscale": DIVERGING, "cmin": -reach, "cmax": reach}
    counts = [m.shape[0] for m in maps if m.ndim == 3]
    title = "Branches before concatenation (mean over each branch's channels)"
    if counts and len(counts) == len(maps):
        title += f": {' + '.join(map(str, counts))} = {sum(counts)} channels"
    axis["colorbar"] = {"thickness": 10}
    fig.update_layout(title={"text": title, "x": 0, "xanchor": "left", "font": {"size": 14}},
                      coloraxis=axis, height=height, plot_bgcolor="white",
                      margin={"l": 10, "r": 10, "t": 70, "b": 10})
    fig.update_annotations(font={"size": 12})
    return fig


def prediction_figure(top: Sequence[tuple[str, float]], height: int | None = None
                      ) -> go.Figure:
    """The top classes as horizontal bars of their probability (in %), the first on top."""
    names = [str(name) for name, _ in top]
    percent = [100.0 * float(p) for _, p in top]
    fig = go.Figure(go.Bar(x=percent, y=names, orientation="h", marker={"color": "#1f77b4"},
                           text=[f"{p:.1f} %" for p in percent], textposition="outside",
                           cliponaxis=False,
                           hovertemplate="%{y}: %{x:.2f} %<extra></extra>"))
    fig.update_xaxes(range=[0, 112], ticksuffix=" %", title_text="probability")
    fig.update_yaxes(autorange="reversed", type="category", automargin=True)
    fig.update_layout(height=height or 80 + 32 * max(len(names), 1),
                      margin={"l": 10, "r": 10, "t": 10, "b": 10}, bargap=0.25)
    return fig


MAX_FEATURES = 1024  # a vector longer than this shows its first MAX_FEATURES values


def vector_figure(values, title: str, height: int = 300) -> go.Figure:
    """A layer's output that is a vector (after Flatten or a Linear layer): one bar per
    feature, the first ``MAX_FEATURES`` of them, signed values blue below 0 and red above."""
    flat = np.asarray(values, dtype=np.float32).reshape(-1)
    shown = flat[:MAX_FEATURES]
    colours = np.where(shown < 0, "#2166ac", "#b2182b")
    fig = go.Figure(go.Bar(x=np.arange(len(shown)), y=shown, marker={"color": colours},
                           hovertemplate="feature %{x}: %{y:.4g}<extra></extra>"))
    more = f" (the first {MAX_FEATURES:,} of {len(flat):,})" if len(flat) > MAX_FEATURES else ""
    fig.update_layout(title={"text": title + more}, height=height, bargap=0,
                      margin={"l": 10, "r": 10, "t": 40, "b": 10})
    fig.update_xaxes(title_text="feature")
    return fig
