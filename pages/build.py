"""Build: edit the current network with block sliders and see every shape update."""

import streamlit as st

from cnnviz.errors import SpecError
from cnnviz.models.convert import conversion_note, to_custom
from cnnviz.specs import FAMILIES, SPEC_CLASSES
from cnnviz.ui import results
from cnnviz.ui.editor import edit_custom_spec, edit_family_spec
from cnnviz.ui.routing import require_app
from cnnviz.ui.state import current_spec, edit_spec, replace_spec, widget_key
from cnnviz.workbench import analyse

require_app()
CONVERTED = "build.converted"  # the note after a switch to custom, for the next run

spec = current_spec()
st.title("Build")

family = st.columns(3)[0].selectbox(
    "Family", FAMILIES, index=FAMILIES.index(spec.family), key=widget_key("build.family"),
    help="custom: this network written out as custom layers and blocks, the same network with "
         "every layer editable; another family starts from the book's version of that family "
         "(a custom network is not converted back)")
if family != spec.family:
    if family == "custom":
        try:
            converted = to_custom(spec)
            st.session_state[CONVERTED] = ("info", conversion_note(spec, converted))
        except SpecError as exc:  # kept as it is; the selectbox goes back to its family
            converted = spec
            st.session_state[CONVERTED] = (
                "warning", f"The network stays a {spec.title}: {exc}")
        replace_spec(converted)
    else:
        replace_spec(SPEC_CLASSES[family]())
    st.rerun()
if CONVERTED in st.session_state:  # shown once, right after the switch
    kind, note = st.session_state.pop(CONVERTED)
    getattr(st, kind)(note)

editor, view = st.columns([2, 3], gap="large")
with editor:
    st.subheader("Blocks", anchor=False)
    if spec.family == "custom":
        edited = edit_custom_spec(spec, results.card_shapes(analyse(spec)))
    else:
        edited = edit_family_spec(spec)
if edited != spec:
    edit_spec(edited)
    if spec.family == "custom":  # the shapes shown beside the layers follow the edit
        st.rerun()
    spec = edited

analysis = analyse(spec)
with view:  # stays in view while a long layer list scrolls past
    with results.sticky():
        results.show_status(analysis)
        if analysis.ok:
            results.show_numbers(analysis)
        if analysis.table is not None and spec.family != "custom":
            results.show_stages(analysis)  # a custom network shows them on its cards
# The tabs take the page's full width, so every column of the layer table reads in full.
# Lazy tabs: only the open one is computed, so a knob move pays for what is on screen.
layers, flow, arithmetic, export, compare = st.tabs(
    ["Layers", "Shape flow", "Conv arithmetic", "Export", "Compare"], key="build.tab",
    on_change="rerun")
for tab, show in ((layers, results.show_layers), (flow, results.show_flow),
                  (arithmetic, results.show_arithmetic)):
    if tab.open:
        with tab:
            if analysis.table is not None:  # up to the failing layer when it does not run
                show(analysis)
            else:
                st.info("Fix the problem above to see this.")
if export.open:
    with export:
        results.show_export(spec)
if compare.open:
    with compare:
        results.show_compare(analysis)
