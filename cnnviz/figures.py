"""Plotly figures from the library's data: pure functions, testable without a browser."""
from __future__ import annotations

import math

import plotly.graph_objects as go

from cnnviz.errors import fmt_shape
from cnnviz.shapes.sizes import SizeReport
from cnnviz.shapes.summary import Summary

VALID_COLOUR = "#2ca02c"
INVALID_COLOUR = "#c7c7c7"
REJECTED_COLOUR = "#d62728"
HEIGHT_COLOUR = "#1f77b4"
CHANNEL_COLOUR = "#ff7f0e"
STAGE_FILL = "rgba(120, 120, 120, 0.08)"


def _final_shape(summary: Summary) -> tuple[int, ...]:
    # The last top-level row, not the last leaf: a DenseBlock's last leaf is one conv's
    # growth_rate channels, the block's output is the concatenation.
    top = [r for r in summary.rows if r.depth == 1]
    return top[-1].output_shape if top else summary.input_shape[1:]


def _powers_of_two(values: list[int]) -> dict:
    """Ticks at 1, 2, 4, ...: sizes and channel counts are mostly powers of two, and plotly's
    own log ticks over a short range come out as 1.068133 and 119.234."""
    if not values:
        return {}
    low, high = math.floor(math.log2(min(values))), math.ceil(math.log2(max(values)))
    step = 1 if high - low <= 12 else 2
    return {"tickvals": [2 ** k for k in range(low, high + 1, step)]}


def _stages(summary: Summary) -> list[tuple[str, int, int]]:
    """(name, first, last) leaf positions of each top-level container (b1, b2, ...).

    Positions count from 1; position 0 is the input. Top-level leaves (a custom chain of
    plain layers) are not stages: a band per layer would only add noise.
    """
    stages: list[tuple[str, int, int]] = []
    current: str | None = None
    position = 0
    for row in summary.rows:
        if row.depth == 1:  # a custom chain's stages are numbered: "NiNBlock 0" = layers[0]
            label = f"{row.type} {row.name}" if row.name.isdigit() else row.name
            current = None if row.is_leaf else label
        if not row.is_leaf:
            continue
        position += 1
        if current is None:
            continue
        if stages and stages[-1][0] == current:
            stages[-1] = (current, stages[-1][1], position)
        else:
            stages.append((current, position, position))
    return stages


def _last_leaf(summary: Summary) -> list[int]:
    """For each row, the position of the last leaf inside it (a leaf: its own position);
    0 (the input) for a block that ran none."""
    out = [0] * len(summary.rows)
    open_rows: list[int] = []
    position = 0
    for i, row in enumerate(summary.rows):
        while open_rows and summary.rows[open_rows[-1]].depth >= row.depth:
            open_rows.pop()
        if row.is_leaf:
            position += 1
            for j in open_rows + [i]:
                out[j] = position
        else:
            out[i] = position
            open_rows.append(i)
    return out


def _children(summary: Summary, index: int) -> list[int]:
    """Row indices of the direct children of row ``index``."""
    depth, found = summary.rows[index].depth, []
    for j in range(index + 1, len(summary.rows)):
        d = summary.rows[j].depth
        if d <= depth:
            break
        if d == depth + 1:
            found.append(j)
    return found


def dense_marks(summary: Summary) -> tuple[list[tuple[int, int, str]],
                                           list[tuple[int, int, str]]]:
    """Where DenseNet's channels jump: (position, channels, hover text) of each concatenation
    inside a dense block (a conv block's new channels joined to its input) and of each
    transition (channels and size cut, usually by half)."""
    last = _last_leaf(summary)
    concats, transitions = [], []
    for i, row in enumerate(summary.rows):
        if row.type == "DenseBlock":
            for j in _children(summary, i):
                child = summary.rows[j]
                if not child.output_shape:
                    break
                total = child.input_shape[0] + child.output_shape[0]
                concats.append((last[j], total, f"concatenation in {row.name}: "
                                f"{child.input_shape[0]} + {child.output_shape[0]} new = "
                                f"{total} channels"))
        elif row.type == "Transition" and row.output_shape:
            a, b = row.input_shape, row.output_shape
            transitions.append((last[i], b[0], f"transition {row.name}: {fmt_shape(a)} → "
                                f"{fmt_shape(b)} (channels {a[0]} → {b[0]}, size "
                                f"{a[1]} → {b[1]})"))
    return concats, transitions


MAX_LAYER_TICKS = 60  # more leaves than this: one tick per block instead of per layer


def _ticks(summary: Summary) -> tuple[list[int], list[str]]:
    """x-axis labels: every layer by name and type, or for a deep network each block where
    it starts (b3.dense, b3.transition, ...); the input is 0."""
    layers = summary.layers
    if len(layers) <= MAX_LAYER_TICKS:
        return ([0] + list(range(1, len(layers) + 1)),
                ["input"] + [f"{r.name} {r.type}" for r in layers])
    values, texts = [0], ["input"]
    leaves_before = 0
    for row in summary.rows:
        if row.depth <= 2:
            at, text = leaves_before + 1, f"{row.name} {row.type}"
            if values[-1] == at:  # a stage and its first block start together: the block
                texts[-1] = text
            else:
                values.append(at)
                texts.append(text)
        leaves_before += row.is_leaf
    return values, texts


def shape_flow_figure(summary: Summary) -> go.Figure:
    """Height and channels after every leaf layer, stages b1, b2, ... shaded behind, the
    layers named on the x-axis, DenseNet's concatenations and transitions marked, and where
    a network does not run (``summary.failure``), the layer where it stops.

    Height is on a log axis because it halves stage after stage (224 → 7): on a linear axis
    every stage after the first would be squashed at the bottom. After Flatten there is no
    height, so that line stops and only the features remain.
    """
    layers = summary.layers
    input_shape = summary.input_shape[1:]
    shapes = [input_shape] + [r.output_shape for r in layers]
    positions = list(range(len(shapes)))
    hover = [f"input: {fmt_shape(input_shape)}"] + [
        f"{r.type} {r.name}: {fmt_shape(r.output_shape) or 'does not run'}" for r in layers]
    heights = [s[1] if len(s) == 3 else None for s in shapes]
    channels = [s[0] if s else None for s in shapes]

    # The overlaying axis (y2) is drawn on top, so the height line goes there (on the left)
    # and the bars behind it, on the right.
    fig = go.Figure()
    fig.add_trace(go.Bar(
        x=positions, y=channels, name="channels (features after Flatten)",
        marker={"color": CHANNEL_COLOUR, "line": {"width": 0}}, opacity=0.45,
        text=hover, hovertemplate="%{text}<extra></extra>", textposition="none"))
    fig.add_trace(go.Scatter(
        x=positions, y=heights, name="height", mode="lines+markers", yaxis="y2",
        line={"color": HEIGHT_COLOUR, "width": 2, "shape": "hv"},
        marker={"size": 4 if len(shapes) < 100 else 2}, connectgaps=False,
        text=hover, hovertemplate="%{text}<extra></extra>"))
    concats, transitions = dense_marks(summary)
    for marks, name, symbol, colour in ((concats, "concatenation", "diamond", "#6a3d9a"),
                                        (transitions, "transition", "triangle-down",
                                         "#8c564b")):
        if marks:
            fig.add_trace(go.Scatter(
                x=[m[0] for m in marks], y=[m[1] for m in marks], name=name, mode="markers",
                marker={"symbol": symbol, "size": 9, "color": colour},
                text=[m[2] for m in marks], hovertemplate="%{text}<extra></extra>"))

    # Collected and set once: add_shape/add_annotation validate the whole layout each call.
    bands, labels = [], []
    for i, (name, first, last) in enumerate(_stages(summary)):
        bands.append({"type": "rect", "xref": "x", "yref": "paper", "x0": first - 0.5,
                      "x1": last + 0.5, "y0": 0, "y1": 1, "line": {"width": 0},
                      "layer": "below",
                      "fillcolor": STAGE_FILL if i % 2 == 0 else "rgba(0, 0, 0, 0)"})
        bands.append({"type": "line", "xref": "x", "yref": "paper", "x0": first - 0.5,
                      "x1": first - 0.5, "y0": 0, "y1": 1, "layer": "below",
                      "line": {"width": 1, "color": "rgba(120, 120, 120, 0.4)"}})
        labels.append({"x": (first + last) / 2, "y": 1, "xref": "x", "yref": "paper",
                       "text": name, "showarrow": False, "yanchor": "bottom",
                       "font": {"size": 11}})

    end = f"{fmt_shape(_final_shape(summary))}"
    failing = summary.failing_row
    if failing is not None:
        f = summary.failure
        at = _last_leaf(summary)[summary.rows.index(failing)] or len(shapes) - 1
        end = f"stops at {f.layer_type} {f.layer}"
        fig.add_trace(go.Scatter(
            x=[at], y=[failing.input_shape[0]], name="does not run", mode="markers",
            marker={"symbol": "x", "size": 14, "color": REJECTED_COLOUR},
            text=[f"{f.layer_type} {f.layer} does not run: {f.reason}"],
            hovertemplate="%{text}<extra></extra>"))
        bands.append({"type": "line", "xref": "x", "yref": "paper", "x0": at, "x1": at,
                      "y0": 0, "y1": 1, "line": {"width": 2, "color": REJECTED_COLOUR}})
    tickvals, ticktext = _ticks(summary)
    fig.update_layout(
        title={"text": f"Shape flow: {fmt_shape(summary.input_shape)} → {end}"},
        xaxis={"title": {"text": "layer (execution order), named as in the layer table"},
               "range": [-0.5, len(shapes) - 0.5], "tickvals": tickvals, "ticktext": ticktext,
               "tickangle": -90, "tickfont": {"size": 10}, "automargin": True},
        yaxis={"title": {"text": "channels / features"}, "type": "log", "side": "right",
               "color": CHANNEL_COLOUR, "showgrid": False,
               **_powers_of_two([c for c in channels if c])},
        yaxis2={"title": {"text": "height"}, "type": "log", "overlaying": "y", "side": "left",
                "color": HEIGHT_COLOUR, **_powers_of_two([h for h in heights if h])},
        legend={"orientation": "h", "y": 1.12, "x": 1, "xanchor": "right",
                "yanchor": "bottom"},
        height=640, bargap=0.1, margin={"t": 110}, hovermode="closest", shapes=bands,
        annotations=labels,
    )
    return fig


def _runs(report: SizeReport, size: int) -> bool:
    """Whether ``size`` runs. Past checked_up_to, the single interval may go on to the true
    maximum (or forever), which ``accepts`` cannot know from the intervals alone."""
    if report.accepts(size):
        return True
    return (size > report.checked_up_to and bool(report.valid) and not report.swept
            and report.valid[-1][1] == report.checked_up_to
            and (report.max is None or size <= report.max))


def _invalid_intervals(report: SizeReport) -> list[tuple[int, int]]:
    gaps, start = [], 1
    for lo, hi in report.valid:
        if lo > start:
            gaps.append((start, lo - 1))
        start = hi + 1
    if start <= report.checked_up_to:
        gaps.append((start, report.checked_up_to))
    return gaps


def _segments(fig: go.Figure, intervals, name: str, colour: str, hover) -> None:
    """One trace for all intervals; each integer size n owns the cell [n - ½, n + ½] so that
    neighbouring valid and invalid runs meet without a gap (and one size is still visible)."""
    x, y, data, text = [], [], [], []
    for lo, hi in intervals:
        x += [lo - 0.5, hi + 0.5, None]
        y += [0, 0, None]
        data += [[lo, hi]] * 2 + [None]
        text += [hover(lo, hi)] * 2 + [None]
    fig.add_trace(go.Scatter(x=x, y=y, customdata=data, text=text, name=name, mode="lines",
                             line={"color": colour, "width": 14},
                             hovertemplate="%{text}<extra></extra>"))


def _title(report: SizeReport) -> str:
    if not report.valid:
        return f"No input size from 1 to {report.checked_up_to} runs this network"
    upper = "no maximum" if report.max is None else f"max {report.max}"
    gaps = f" in {len(report.valid)} separate ranges" if len(report.valid) > 1 else ""
    return f"Valid input sizes: min {report.min}, {upper}{gaps}"


def size_line_figure(report: SizeReport, current: int | None = None,
                     log: bool = True) -> go.Figure:
    """The square input sizes 1..checked_up_to on a number line: which ones run.

    The axis is logarithmic by default: the minimum size usually sits among the small
    numbers, where a linear 1..1024 axis would give it a few pixels. A linear axis shows a
    band (such as 193–224) at its true width.
    """

    def at(x: float) -> float:  # annotations on a log axis take log10 positions
        return math.log10(x) if log else x

    if current is not None and current < 1:
        raise ValueError(f"an input size is at least 1, not {current}")
    upper = max(report.checked_up_to, current or 0)
    fig = go.Figure()

    def invalid_text(lo: int, hi: int) -> str:
        failure = report.below_min if report.min is None or hi < report.min else \
            report.above_max
        why = f"<br>{failure}" if failure is not None else ""
        return f"sizes {lo}–{hi} do not run{why}"

    _segments(fig, _invalid_intervals(report), "does not run", INVALID_COLOUR, invalid_text)
    _segments(fig, report.valid, "runs", VALID_COLOUR, lambda lo, hi: f"sizes {lo}–{hi} run")

    marks = [("min", report.min)] if report.valid else []
    if report.valid:
        marks.append(("max", report.max))
    for label, size in marks:
        if size is None:  # no maximum: say so at the right end, a row below the min label
            text = (f"largest size unknown past {report.checked_up_to} (checked one by one)"
                    if report.swept else f"no maximum (runs beyond {report.checked_up_to})")
            fig.add_annotation(x=at(report.checked_up_to), y=-0.75, showarrow=False,
                               text=text, xanchor="right")
            continue
        shown = min(size, upper)  # a true maximum past the checked range sits at the end
        text = f"{label} {size}" + (" (beyond the range shown)" if size > upper else "")
        fig.add_trace(go.Scatter(x=[shown], y=[-0.2], mode="markers", name=label,
                                 marker={"symbol": "triangle-up", "size": 12,
                                         "color": VALID_COLOUR}, showlegend=False,
                                 hovertemplate=f"{text}<extra></extra>"))
        # min to the left of its marker, max to the right: a narrow band keeps both readable
        fig.add_annotation(x=at(shown), y=-0.45, text=text, showarrow=False,
                           xanchor="right" if label == "min" else "left")

    if current is not None:
        runs = _runs(report, current)
        text = f"current {current}: " + ("runs" if runs else "does not run")
        fig.add_trace(go.Scatter(x=[current], y=[0.25], mode="markers", name="current",
                                 marker={"symbol": "triangle-down", "size": 16,
                                         "color": VALID_COLOUR if runs else REJECTED_COLOUR},
                                 hovertemplate=f"{text}<extra></extra>", showlegend=False))
        # centred on its marker, unless that would push it past an end of the axis
        where = (at(current) - at(0.6)) / (at(upper * 1.3) - at(0.6)) if log else \
            current / (upper * 1.05)
        anchor = "right" if where > 0.85 else "left" if where < 0.15 else "center"
        fig.add_annotation(x=at(current), y=0.5, text=text, showarrow=False, xanchor=anchor,
                           font={"color": VALID_COLOUR if runs else REJECTED_COLOUR})

    if log:
        xaxis = {"type": "log", "range": [math.log10(0.6), math.log10(upper * 1.3)],
                 "tickvals": [2 ** k for k in range(int(math.log2(upper)) + 1)]}
    else:
        xaxis = {"type": "linear", "range": [0, upper * 1.05]}
    fig.update_layout(
        title={"text": _title(report)},
        xaxis={**xaxis, "title": {"text": "input size (height = width)"}},
        yaxis={"visible": False, "range": [-0.95, 0.7]},
        height=280, showlegend=True, legend={"orientation": "h", "y": 1.15, "x": 1,
                                             "xanchor": "right"},
        margin={"t": 70, "b": 50},
    )
    return fig
