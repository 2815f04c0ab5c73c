"""What the workbench shows about the current network: status, numbers, tables, export."""
from __future__ import annotations

import dataclasses
import math

import pandas as pd
import streamlit as st

from cnnviz.codegen import pytorch_source
from cnnviz.errors import SpecError, fmt_shape
from cnnviz.figures import shape_flow_figure
from cnnviz.limits import network_over, over
from cnnviz.specs import check_spec_size, max_spec_bytes, spec_from_json, spec_to_json
from cnnviz.ui.state import nearest_sizes, pin, pinned, preset_name, replace_spec, unpin
from cnnviz.workbench import (Analysis, analyse, compare, human, human_bytes, layer_label,
                              linear_fix, stage_shapes)

FAILED_ROW_STYLE = "background-color: #fde0e0; color: #a50e0e"  # the layer that cannot run
ROW_HEIGHT = 35  # px, Streamlit's default
MAX_TABLE_HEIGHT = 10_000  # px: st.dataframe's "content" height stops here


def _use_size_buttons(spec, sizes: tuple[int | None, int | None], where: str) -> None:
    for n in sizes:
        if n is not None and st.button(f"Use input size {n}", key=f"{where}.use.{n}"):
            replace_spec(dataclasses.replace(spec, input_size=n))
            st.rerun()


def why_not_shown(a: Analysis, builds_weights: bool = False) -> str | None:
    """Why a page cannot show this network, naming the fields or the layer (markdown); None
    when it can. A page that builds the network's weights also refuses one over the server's
    caps (cnnviz.limits), before a weight is made."""
    if a.problems:
        return "This network cannot be built; fix it in **Build** first:\n\n" + \
            "\n".join(f"- `{p.path or 'spec'}`: {p.message}" for p in a.problems)
    f = a.failure
    if f is not None:
        return (f"This network does not run at its input size {a.size[0]}×{a.size[1]}: "
                f"{layer_label(f.layer, f.layer_type)} — {f.reason}. Fix it in **Build** or "
                "**Input size** first.")
    if builds_weights and a.summary is not None:
        capped = network_over(a.summary.total_params, a.summary.mult_adds)
        size = over("input_size", a.spec.input_size)
        if size:
            capped.append(size)
        if capped:
            return "This network is too large to build here: " + " ".join(capped)
    return None


def cannot_show(a: Analysis, builds_weights: bool = False) -> bool:
    """Show :func:`why_not_shown`'s reason as the page's error; True when there is one."""
    why = why_not_shown(a, builds_weights)
    if why is not None:
        st.error(why)
    return why is not None


def show_status(a: Analysis) -> None:
    """Why the network does not run, where the user looks first; nothing when it runs."""
    spec = a.spec
    if a.problems:
        st.error("**This network cannot be built:**\n\n" +
                 "\n".join(f"- `{p.path or 'spec'}`: {p.message}" for p in a.problems))
        if a.nearest[1] is not None:
            st.info(f"It builds from input size {a.nearest[1]} up: {spec.title} sizes its "
                    "first Linear from `input_size`, so any input_size from "
                    f"{a.nearest[1]} builds, and the Linear is made to fit that size. "
                    "Building is not running: a built network runs only at the sizes that "
                    "give its Linear exactly its in_features (once it builds, **Input size** "
                    "shows them).")
        _use_size_buttons(spec, a.nearest, "problems")
    elif a.failure is not None:
        f = a.failure
        near = nearest_sizes(a)
        st.error(f"**Does not run at {a.size[0]}×{a.size[1]}.** "
                 f"{layer_label(f.layer, f.layer_type)}: {f.reason}.\n\n"
                 f"Nearest sizes that work: **{near}**.")
        _use_size_buttons(spec, a.nearest, "failure")
        fix = linear_fix(a)
        if fix is not None:
            st.caption("Or keep this size and make the Linear take what reaches it:")
            if st.button(fix.label, key="failure.fix", help=fix.help, type="primary"):
                replace_spec(fix.spec)
                st.rerun()


STICKY_CSS = """<style>
.st-key-build-numbers {position: sticky; top: 3.75rem; z-index: 3;
                       background-color: var(--st-background-color, white);}
[data-testid="stColumn"]:has(.st-key-build-numbers) {align-self: stretch;}
</style>"""


def sticky():
    """A container that stays at the top of the window while the page scrolls beside it
    (the numbers while a long custom layer list is edited)."""
    st.html(STICKY_CSS)
    return st.container(key="build-numbers")


def card_shapes(a: Analysis) -> dict[str, str]:
    """What each top-level layer card of a custom network shows after its arrow: its output
    shape, and at the layer where the network stops, that it does not run and why."""
    s = a.table
    if s is None:
        return {}
    shapes = stage_shapes(s)
    f = a.failure
    if f is not None:
        top = f.layer.split(".")[0]
        shapes[top] = ":red[**✖ does not run** (why: the red box)]"
    return shapes


def show_numbers(a: Analysis) -> None:
    s = a.summary
    cols = st.columns(4)
    cols[0].metric("parameters", human(s.total_params), help=f"{s.total_params:,}")
    cols[1].metric("mult-adds", human(s.mult_adds), help=f"{s.mult_adds:,} for one example")
    cols[2].metric("memory", human_bytes(s.total_bytes),
                   help=f"torchinfo's estimate for batch size 1 ({s.total_bytes:,} bytes): "
                        "input, activations kept for the backward pass, and parameters, "
                        "as float32")
    cols[3].metric("output", fmt_shape(s.layers[-1].output_shape))
    for warning in s.warnings:
        st.warning(warning)
    capped = network_over(s.total_params, s.mult_adds)
    if capped:  # shapes cost nothing (meta device); weights would
        st.warning(" ".join(capped) + " Its shapes are shown here, but Train, Feature maps "
                   "and BatchNorm will not build its weights on this server.",
                   icon=":material/block:")


def _stops_here(a: Analysis) -> None:
    """Above a table or chart of a network that does not run: where it stops, and why."""
    f = a.failure
    if f is not None:
        st.markdown(f":red[**It stops at {layer_label(f.layer, f.layer_type)}**] (the red row "
                    f"below): {f.reason}. The layers before it run; those after it are not "
                    "reached.")


def _width(values, header: str) -> int:
    """A column wide enough for its longest value and its header (px): the grid sizes
    columns from the first rows only, which cut names such as ``b2.0.body.0``."""
    longest = max([len(str(v)) for v in values] + [len(header)])
    return 7 * longest + 16


def _highlight(table: pd.DataFrame, failed: list[bool]):
    """The table with the failing layer's row in red (a Styler), or as it is."""
    if not any(failed):
        return table
    return table.style.apply(
        lambda row: [FAILED_ROW_STYLE if failed[row.name] else ""] * len(row), axis=1)


def show_stages(a: Analysis) -> None:
    """Each stage's output beside the editor, so a knob's effect shows without scrolling."""
    s = a.table
    rows = [{"stage": r.name, "type": r.type,
             "output": "✖ does not run" if r is s.failing_row else
             fmt_shape(r.output_shape) or "✖ stops inside",
             "params": f"{r.params:,}"} for r in s.rows if r.depth == 1]
    table = pd.DataFrame(rows)
    failed = [not r.output_shape for r in s.rows if r.depth == 1]
    st.dataframe(_highlight(table, failed), hide_index=True, key="build.stages",
                 height="content",
                 column_config={c: st.column_config.Column(
                     width=_width(table[c], c), alignment="right" if c == "params" else None)
                     for c in table.columns})


def show_layers(a: Analysis) -> None:
    s = a.table
    if not s.rows:
        _stops_here(a)
        return
    deepest = max(r.depth for r in s.rows)
    depth = deepest
    if deepest > 1:
        depth = st.select_slider("Show blocks down to depth", list(range(1, deepest + 1)),
                                 value=deepest, key="build.depth",
                                 help="1 shows the stages (b1, b2, ...); deeper levels open "
                                      "the blocks inside them")
    failing = s.failing_row
    shown = [r for r in s.rows if r.depth <= depth or r is failing]
    rows = [{"layer": "  " * (r.depth - 1) + r.name, "type": r.type,
             "output shape": ("✖ does not run" if r is failing else
                              fmt_shape(r.output_shape) or "— (stops inside)"),
             "params": f"{r.params:,}", "mult-adds": f"{r.mult_adds:,}",
             "kernel": f"{r.kernel[0]}×{r.kernel[1]}" if r.kernel else "",
             "arithmetic": r.arithmetic}
            for r in shown]
    _stops_here(a)
    table = pd.DataFrame(rows)
    data = _highlight(table, [r is failing for r in shown])
    # Every row on the page (no box to scroll inside), every column as wide as its text.
    row_height = min(ROW_HEIGHT, MAX_TABLE_HEIGHT // (len(rows) + 1))
    right = {"params", "mult-adds"}
    st.dataframe(data, hide_index=True, key="build.layers", height="content",
                 row_height=row_height,
                 column_config={c: st.column_config.Column(
                     width=_width(table[c], c), alignment="right" if c in right else None)
                     for c in table.columns})


def show_flow(a: Analysis) -> None:
    _stops_here(a)
    st.plotly_chart(shape_flow_figure(a.table), key="build.flow")


def show_arithmetic(a: Analysis) -> None:
    s = a.table
    failing = s.failing_row
    shown = [r for r in s.rows if (r.is_leaf and r.arithmetic) or r is failing]
    rows = [{"layer": r.name, "type": r.type, "input": fmt_shape(r.input_shape),
             "output": "✖ does not run" if r is failing else fmt_shape(r.output_shape),
             "arithmetic": a.failure.reason if r is failing else r.arithmetic}
            for r in shown]
    st.caption("Output size of every convolution and pooling layer: ⌊(n + 2·padding − kernel) "
               "/ stride⌋ + 1, with each layer's own numbers; Flatten and Linear show the "
               "feature counts the notes checked by hand (6400 ?= 5·5·256).")
    _stops_here(a)
    if not rows:
        return
    table = pd.DataFrame(rows)
    data = _highlight(table, [r is failing for r in shown])
    st.dataframe(data, hide_index=True, key="build.arithmetic", height="content",
                 column_config={c: st.column_config.Column(width=_width(table[c], c))
                                for c in table.columns})


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
                                   "docs/config.md",
                              max_upload_size=max(1, math.ceil(max_spec_bytes() / 2**20)))
    if upload is not None and st.session_state.get("build.upload.done") != upload.file_id:
        st.session_state["build.upload.done"] = upload.file_id
        try:
            check_spec_size(upload.size)  # before its bytes are copied
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
