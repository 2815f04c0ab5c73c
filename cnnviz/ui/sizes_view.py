"""The Input size page's sections: the number line, the diagnosis, batch size 1, a probe."""
from __future__ import annotations

import streamlit as st

from cnnviz.errors import ShapeError
from cnnviz.figures import size_line_figure
from cnnviz.models import build_meta
from cnnviz.shapes.sizes import SizeReport, advice, range_choices
from cnnviz.shapes.summary import summarize
from cnnviz.ui.state import SIZE_RANGE, shown_sizes
from cnnviz.ui.state import widget_key
from cnnviz.workbench import builds_from, describe_sizes, largest_size, layer_label, size_report

# The largest size "Try a size" takes: past the largest input_size a spec may have (8192).
PROBE_MAX = 16384


def show_sizes(spec) -> None:
    left, right = st.columns([3, 1], vertical_alignment="bottom")
    report = size_range_control(spec, left)
    log = right.toggle("logarithmic axis", True, key="sizes.log",
                       help="small sizes get room on a log axis; a band shows its true width "
                            "on a linear one")
    st.plotly_chart(size_line_figure(report, current=spec.input_size, log=log),
                    key="sizes.line")
    cols = st.columns(4)
    cols[0].metric("smallest size", report.min if report.min is not None else "none")
    why = report.why_no_max
    cols[1].metric("largest size", largest_size(report),
                   help=f"{why[0].upper()}{why[1:]}." if report.swept and report.valid else None)
    cols[2].metric("valid sizes", describe_sizes(report))
    cols[3].metric("the network's size", spec.input_size)
    show_diagnosis(spec, report)
    show_building_and_running(spec, report)
    show_batch_one(spec, report)
    show_probe(spec)


def size_range_control(spec, where) -> SizeReport:
    """"Check sizes up to N": N starts where the range holds the network's own size with a
    margin (and some size that runs, up to 1024), and only grows. The sidebar shows the same
    report (``shown_sizes``)."""
    report = shown_sizes(spec)
    choices = range_choices(size_report(spec).checked_up_to, spec.input_size)
    top = where.select_slider(
        "Check sizes up to", choices, value=report.checked_up_to, key=widget_key("sizes.max"),
        help=f"The range always holds the network's own size ({spec.input_size}) with a "
             "margin above it; grow it to look for sizes further up.")
    if top != report.checked_up_to:
        st.session_state[SIZE_RANGE] = (spec, top)
        report = shown_sizes(spec)
    return report


def show_diagnosis(spec, report: SizeReport) -> None:
    b = report.below_min
    if b is not None and report.valid:
        st.error(f"**Below {report.min}** (size {b.size}): "
                 f"{layer_label(b.layer, b.layer_type)} — {b.reason}.")
    elif b is not None:
        st.error(f"**No size up to {report.checked_up_to} runs.** At {b.size}: "
                 f"{layer_label(b.layer, b.layer_type)} — {b.reason}.")
    a = report.above_max
    if a is not None:
        where = f"Above {report.valid[-1][1]}" if report.valid else "Just above"
        st.error(f"**{where}** (size {a.size}): {layer_label(a.layer, a.layer_type)} — "
                 f"{a.reason}.")
    for tip in advice(report, spec.family):
        st.info(f"**To widen the range:** {tip}.")


def show_building_and_running(spec, report: SizeReport) -> None:
    """Why Build can build a network at sizes where it then does not run."""
    above = report.above_max
    if above is None or above.layer_type != "Linear" or not report.valid:
        return
    start = builds_from(spec)  # a binary search of builds: only where the text needs it
    if start is None:
        return
    features = build_meta(spec).get_submodule(above.layer).in_features
    st.info(f"**Building is not running.** {spec.title} sizes its first Linear from "
            f"`input_size`: Build can build it for any input_size from **{start}** up, and "
            f"the Linear is then made to fit that size (at {spec.input_size}, "
            f"{layer_label(above.layer, above.layer_type)} gets in_features = {features:,}). "
            f"A built network runs only at the sizes that give that Linear exactly "
            f"{features:,} features: **{describe_sizes(report)}** here. To run at another "
            "size, change input_size in Build: the Linear is rebuilt for it.")


def show_batch_one(spec, report: SizeReport) -> None:
    if not report.valid:
        return
    st.subheader("Batch size 1 in training mode", anchor=False)
    b1 = report.batch_one
    why = ("one value per channel. Training mode needs more than one value per channel to "
           "compute a variance.")
    if b1.always:
        st.warning(f"Fails at every size: {', '.join(f'`{n}`' for n in b1.always)} "
                   "(BatchNorm1d) would normalise one value per feature. Train with batch "
                   "size ≥ 2, or use eval mode for single examples.")
    elif b1.everywhere:
        st.warning(f"Fails at every valid size up to {b1.below.size}: "
                   f"{layer_label(b1.below.layer, b1.below.layer_type)} sees a 1×1 map, {why}")
    elif b1.below is not None:
        st.warning(f"Needs input size ≥ {b1.min_size}: at {b1.below.size}, "
                   f"{layer_label(b1.below.layer, b1.below.layer_type)} sees a 1×1 map, {why}")
    elif any(type(m).__name__.startswith("BatchNorm") for m in build_meta(spec).modules()):
        st.success("Works at every valid size: each BatchNorm sees more than one value per "
                   "channel.")
    else:
        st.success("No BatchNorm in this network: batch size 1 trains like any other.")


def show_probe(spec) -> None:
    st.subheader("Try a size", anchor=False)
    h, w = st.columns(2)
    # Keyed by the network's version: another network starts from its own size.
    height = int(h.number_input("height", 1, PROBE_MAX, spec.input_size,
                                key=widget_key("sizes.try.h")))
    width = int(w.number_input("width", 1, PROBE_MAX, spec.input_size,
                               key=widget_key("sizes.try.w")))
    try:
        s = summarize(spec, (height, width))
        st.success(f"{height}×{width} runs: output "
                   f"{'×'.join(map(str, s.layers[-1].output_shape))}, "
                   f"{s.mult_adds:,} mult-adds.")
    except ShapeError as exc:
        st.error(f"{height}×{width} does not run: {exc}.")
