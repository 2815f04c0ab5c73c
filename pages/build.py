"""Build: edit the current network with block sliders and see every shape update."""

import streamlit as st

from cnnviz.presets import PRESETS
from cnnviz.specs import FAMILIES, SPEC_CLASSES
from cnnviz.ui import results
from cnnviz.ui.editor import edit_custom_spec, edit_family_spec
from cnnviz.ui.routing import require_app
from cnnviz.ui.state import current_spec, edit_spec, replace_spec, widget_key
from cnnviz.workbench import analyse

require_app()

spec = current_spec()
st.title("Build")

family = st.columns(3)[0].selectbox("Family", FAMILIES, index=FAMILIES.index(spec.family),
                      key=widget_key("build.family"),
                      help="switching starts from the book's version of that family")
if family != spec.family:
    replace_spec(PRESETS["notes-nin"].spec if family == "custom" else SPEC_CLASSES[family]())
    st.rerun()

editor, view = st.columns([2, 3], gap="large")
with editor:
    st.subheader("Blocks", anchor=False)
    if spec.family == "custom":
        shapes = {}
        before = analyse(spec)
        if before.summary:
            shapes = {r.name: "×".join(map(str, r.output_shape))
                      for r in before.summary.rows if r.depth == 1}
        edited = edit_custom_spec(spec, shapes)
    else:
        edited = edit_family_spec(spec)
if edited != spec:
    edit_spec(edited)
    if spec.family == "custom":  # the shapes shown beside the layers follow the edit
        st.rerun()
    spec = edited

analysis = analyse(spec)
with view:
    results.show_status(analysis)
    if analysis.ok:
        results.show_numbers(analysis)
    # Lazy tabs: only the open one is computed, so a knob move pays for what is on screen.
    layers, flow, arithmetic, export, compare = st.tabs(
        ["Layers", "Shape flow", "Conv arithmetic", "Export", "Compare"], key="build.tab",
        on_change="rerun")
    for tab, show in ((layers, results.show_layers), (flow, results.show_flow),
                      (arithmetic, results.show_arithmetic)):
        if tab.open:
            with tab:
                if analysis.ok:
                    show(analysis)
                else:
                    st.info("Fix the problem above to see this.")
    if export.open:
        with export:
            results.show_export(spec)
    if compare.open:
        with compare:
            results.show_compare(analysis)
