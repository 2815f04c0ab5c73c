"""What the workbench shows about the current network: status, numbers, tables, export."""
from __future__ import annotations

import dataclasses

import streamlit as st

from cnnviz.codegen import pytorch_source
from cnnviz.errors import SpecError, fmt_shape
from cnnviz.figures import shape_flow_figure
from cnnviz.specs import spec_from_json, spec_to_json
from cnnviz.ui.state import pin, pinned, preset_name, replace_spec, unpin
from cnnviz.workbench import Analysis, analyse, compare, human, layer_label


def _use_size_buttons(spec, sizes: tuple[int | None, int | None], where: str) -> None:
    for n in sizes:
        if n is not None and st.button(f"Use input size {n}", key=f"{where}.use.{n}"):
            replace_spec(dataclasses.replace(spec, input_size=n))
            st.rerun()


def show_status(a: Analysis) -> None:
    """Why the network does not run, where the user looks first; nothing when it runs."""
    spec = a.spec
    if a.problems:
        st.error("**This network cannot be built:**\n\n" +
                 "\n".join(f"- `{p.path or 'spec'}`: {p.message}" for p in a.problems))
        if a.nearest[1] is not None:
            st.info(f"It builds from input size {a.nearest[1]} up.")
        _use_size_buttons(spec, a.nearest, "problems")
    elif a.failure is not None:
        f = a.failure
        below, above = a.nearest
        near = " or ".join(str(n) for n in a.nearest if n is not None) or "none up to 1024"
        st.error(f"**Does not run at {a.size[0]}×{a.size[1]}.** "
                 f"{layer_label(f.layer, f.layer_type)}: {f.reason}.\n\n"
                 f"Nearest sizes that work: **{near}**.")
        _use_size_buttons(spec, a.nearest, "failure")


def show_numbers(a: Analysis) -> None:
    s = a.summary
    cols = st.columns(4)
    cols[0].metric("parameters", human(s.total_params), help=f"{s.total_params:,}")
    cols[1].metric("mult-adds", human(s.mult_adds), help=f"{s.mult_adds:,} for one example")
    cols[2].metric("memory", f"{s.total_bytes / 1e6:,.0f} MB",
                   help=f"torchinfo's estimate for batch size 1 ({s.total_bytes / 1e6:,.1f} "
                        "MB): input, activations kept for the backward pass, and parameters, "
                        "as float32")
    cols[3].metric("output", fmt_shape(s.layers[-1].output_shape))
    for warning in s.warnings:
        st.warning(warning)


def show_layers(a: Analysis) -> None:
    s = a.summary
    deepest = max(r.depth for r in s.rows)
    depth = deepest
    if deepest > 1:
        depth = st.select_slider("Show blocks down to depth", list(range(1, deepest + 1)),
                                 value=deepest, key="build.depth",
                                 help="1 shows the stages (b1, b2, ...); deeper levels open "
                                      "the blocks inside them")
    rows = [{"layer": "  " * (r.depth - 1) + r.name, "type": r.type,
             "output shape": fmt_shape(r.output_shape), "params": r.params,
             "mult-adds": r.mult_adds,
             "kernel": f"{r.kernel[0]}×{r.kernel[1]}" if r.kernel else "",
             "arithmetic": r.arithmetic}
            for r in s.rows if r.depth <= depth]
    st.dataframe(rows, hide_index=True, key="build.layers", height=420,
                 column_config={"params": st.column_config.NumberColumn(format="localized"),
                                "mult-adds": st.column_config.NumberColumn(format="localized")})


def show_flow(a: Analysis) -> None:
    st.plotly_chart(shape_flow_figure(a.summary), key="build.flow")


def show_arithmetic(a: Analysis) -> None:
    rows = [{"layer": r.name, "type": r.type, "input": fmt_shape(r.input_shape),
             "output": fmt_shape(r.output_shape), "arithmetic": r.arithmetic}
            for r in a.summary.layers if r.arithmetic]
    st.caption("Output size of every convolution and pooling layer: ⌊(n + 2·padding − kernel) "
               "/ stride⌋ + 1, with each layer's own numbers; Flatten and Linear show the "
               "feature counts the notes checked by hand (6400 ?= 5·5·256).")
    st.dataframe(rows, hide_index=True, key="build.arithmetic")


def show_export(spec) -> None:
    name = preset_name(spec) or f"{spec.family}-edited"
    left, right = st.columns(2)
    left.download_button("Download the spec (JSON)", spec_to_json(spec), f"{name}.json",
                         "application/json", key="build.download.json", icon=":material/download:")
    try:
        source = pytorch_source(spec)
    except SpecError:  # the network cannot be built; the status above says why
        source = None
    right.download_button("Download PyTorch code (.py)", source or "", f"{name}.py",
                          "text/x-python", key="build.download.code", disabled=source is None,
                          icon=":material/code:")
    upload = st.file_uploader("Open a spec (JSON)", type=["json"], key="build.upload",
                              help="a file downloaded from here, or written by hand as in "
                                   "docs/config.md")
    if upload is not None and st.session_state.get("build.upload.done") != upload.file_id:
        st.session_state["build.upload.done"] = upload.file_id
        try:
            replace_spec(spec_from_json(upload.getvalue()))
            st.session_state["build.upload.message"] = f"Opened {upload.name}."
            st.rerun()
        except SpecError as exc:
            st.session_state["build.upload.message"] = None
            st.error(f"**{upload.name} was not opened** (your network is unchanged):\n\n" +
                     "\n".join(f"- `{p.path or 'file'}`: {p.message}" for p in exc.problems))
    message = st.session_state.pop("build.upload.message", None)
    if message:
        st.success(message)
    if source:
        with st.expander("The PyTorch code"):
            st.code(source, language="python")


def show_compare(a: Analysis) -> None:
    other = pinned()
    left, right = st.columns(2)
    if left.button("Pin this network", key="build.pin", icon=":material/push_pin:",
                   help="keep it here to compare with what you build next"):
        pin(a.spec)
        other = a.spec
    if other is not None and right.button("Unpin", key="build.unpin"):
        unpin()
        other = None
    if other is None:
        st.caption("Pin a network, change it (or pick another), and see both side by side.")
        return
    st.dataframe(compare(analyse(other), a), hide_index=True, key="build.compare")
