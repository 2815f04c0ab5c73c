"""Input size: which square sizes the current network accepts, and why the others fail."""
import streamlit as st

from cnnviz.ui.routing import require_app
from cnnviz.ui.sizes_view import show_sizes
from cnnviz.ui.state import current_spec, preset_name
from cnnviz.workbench import analyse

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
else:
    show_sizes(spec)
