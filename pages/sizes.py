"""Input size: which square sizes the current network accepts, and why the others fail."""
import streamlit as st

from cnnviz.errors import ShapeError
from cnnviz.figures import size_line_figure
from cnnviz.shapes.sizes import advice, valid_sizes
from cnnviz.shapes.summary import summarize
from cnnviz.ui.routing import require_app
from cnnviz.ui.state import current_spec, preset_name
from cnnviz.workbench import analyse, describe_sizes

require_app()

spec = current_spec()
st.title("Input size")
name = preset_name(spec) or "the edited network"
st.caption(f"Which square inputs {name} accepts: found by binary search on the size "
           "arithmetic (once a feature map gets smaller than a kernel, every smaller input "
           "fails too; a Flatten → Linear needs one exact flattened size).")

analysis = analyse(spec)
if analysis.problems:
    st.error("This network cannot be built; fix it in **Build** first:\n\n" +
             "\n".join(f"- `{p.path}`: {p.message}" for p in analysis.problems))
    st.stop()

left, right = st.columns([3, 1], vertical_alignment="bottom")
top = left.select_slider("Check sizes up to", [32, 64, 128, 256, 512, 1024], value=256,
                         key="sizes.max")
log = right.toggle("logarithmic axis", True, key="sizes.log",
                   help="small sizes get room on a log axis; a band shows its true width on "
                        "a linear one")
report = valid_sizes(spec, top)
st.plotly_chart(size_line_figure(report, current=spec.input_size, log=log), key="sizes.line")

cols = st.columns(4)
cols[0].metric("smallest size", report.min if report.min is not None else "none")
cols[1].metric("largest size", report.max if report.max is not None else
               ("none" if not report.valid else "no limit"))
cols[2].metric("valid sizes", describe_sizes(report))
cols[3].metric("the network's size", spec.input_size)

if report.below_min is not None:
    b = report.below_min
    st.error(f"**Below {report.min or top}** (size {b.size}): {b.layer_type} `{b.layer}` — "
             f"{b.reason}.")
if report.above_max is not None:
    b = report.above_max
    st.error(f"**Above {report.max}** (size {b.size}): {b.layer_type} `{b.layer}` — "
             f"{b.reason}.")
for tip in advice(report, spec.family):
    st.info(f"**To widen the range:** {tip}.")

st.subheader("Batch size 1 in training mode", anchor=False)
b1 = report.batch_one
if b1.always:
    st.warning(f"Fails at every size: {', '.join(f'`{n}`' for n in b1.always)} "
               "(BatchNorm1d) would normalise one value per feature. Train with batch size "
               "≥ 2, or use eval mode for single examples.")
elif b1.everywhere:
    st.warning(f"Fails at every valid size up to {b1.below.size}: {b1.below.layer_type} "
               f"`{b1.below.layer}` sees a 1×1 map, one value per channel. Training mode "
               "needs more than one value per channel to compute a variance.")
elif b1.below is not None:
    st.warning(f"Needs input size ≥ {b1.min_size}: at {b1.below.size}, {b1.below.layer_type} "
               f"`{b1.below.layer}` sees a 1×1 map, one value per channel. Training mode "
               "needs more than one value per channel to compute a variance.")
elif any(r.type.startswith("BatchNorm") for r in (analysis.summary.rows if analysis.ok else [])):
    st.success("Works at every valid size: each BatchNorm sees more than one value per channel.")
else:
    st.success("No BatchNorm in this network: batch size 1 trains like any other.")

st.subheader("Try a size", anchor=False)
h, w = st.columns(2)
height = h.number_input("height", 1, 4096, spec.input_size, key="sizes.try.h")
width = w.number_input("width", 1, 4096, spec.input_size, key="sizes.try.w")
try:
    s = summarize(spec, (int(height), int(width)))
    st.success(f"{int(height)}×{int(width)} runs: output "
               f"{'×'.join(map(str, s.layers[-1].output_shape))}, "
               f"{s.mult_adds:,} mult-adds.")
except ShapeError as exc:
    st.error(f"{int(height)}×{int(width)} does not run: {exc}.")
