"""The Input size page's sections: the number line, the diagnosis, batch size 1, a probe."""
from __future__ import annotations

import streamlit as st

from cnnviz.errors import ShapeError
from cnnviz.figures import size_line_figure
from cnnviz.shapes.sizes import SizeReport, advice, valid_sizes
from cnnviz.shapes.summary import summarize
from cnnviz.workbench import Analysis, describe_sizes, layer_label


def show_sizes(spec, analysis: Analysis) -> None:
    left, right = st.columns([3, 1], vertical_alignment="bottom")
    top = left.select_slider("Check sizes up to", [32, 64, 128, 256, 512, 1024], value=256,
                             key="sizes.max")
    log = right.toggle("logarithmic axis", True, key="sizes.log",
                       help="small sizes get room on a log axis; a band shows its true width "
                            "on a linear one")
    report = valid_sizes(spec, top)
    st.plotly_chart(size_line_figure(report, current=spec.input_size, log=log),
                    key="sizes.line")
    cols = st.columns(4)
    cols[0].metric("smallest size", report.min if report.min is not None else "none")
    cols[1].metric("largest size", report.max if report.max is not None else
                   ("none" if not report.valid else "no limit"))
    cols[2].metric("valid sizes", describe_sizes(report))
    cols[3].metric("the network's size", spec.input_size)
    show_diagnosis(spec, report)
    show_batch_one(report, analysis)
    show_probe(spec)


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
        where = f"Above {report.max}" if report.valid else "Just above"
        st.error(f"**{where}** (size {a.size}): {layer_label(a.layer, a.layer_type)} — "
                 f"{a.reason}.")
    for tip in advice(report, spec.family):
        st.info(f"**To widen the range:** {tip}.")


def show_batch_one(report: SizeReport, analysis: Analysis) -> None:
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
    elif any(r.type.startswith("BatchNorm") for r in analysis.summary.rows):
        st.success("Works at every valid size: each BatchNorm sees more than one value per "
                   "channel.")
    else:
        st.success("No BatchNorm in this network: batch size 1 trains like any other.")


def show_probe(spec) -> None:
    st.subheader("Try a size", anchor=False)
    h, w = st.columns(2)
    height = int(h.number_input("height", 1, 4096, spec.input_size, key="sizes.try.h"))
    width = int(w.number_input("width", 1, 4096, spec.input_size, key="sizes.try.w"))
    try:
        s = summarize(spec, (height, width))
        st.success(f"{height}×{width} runs: output "
                   f"{'×'.join(map(str, s.layers[-1].output_shape))}, "
                   f"{s.mult_adds:,} mult-adds.")
    except ShapeError as exc:
        st.error(f"{height}×{width} does not run: {exc}.")
