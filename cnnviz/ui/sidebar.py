"""The sidebar every page shares: the current network at a glance, and the preset switcher."""
from __future__ import annotations

import streamlit as st

from cnnviz.presets import PRESETS
from cnnviz.ui.state import (current_spec, preset_name, replace_spec, shown_sizes, take_notice,
                             widget_key)
from cnnviz.workbench import analyse, describe_sizes, layer_label

EDITED = "(edited network)"


def _switch_preset(key: str) -> None:
    choice = st.session_state[key]
    if choice != EDITED:
        replace_spec(PRESETS[choice].spec)


def show_sidebar() -> None:
    """Drawn after the page, so it shows the network as the page just edited it."""
    spec = current_spec()
    notice = take_notice()
    if notice:
        st.sidebar.warning(notice)
    name = preset_name(spec)
    options = list(PRESETS) if name else [EDITED, *PRESETS]
    # The key follows the network shown: an edit turns "vgg" into "(edited network)".
    key = widget_key(f"sidebar.preset.{name or 'edited'}")
    st.sidebar.selectbox("Network", options, index=options.index(name or EDITED), key=key,
                         on_change=_switch_preset, args=(key,),
                         format_func=lambda n: n if n == EDITED else
                         f"{n} — {PRESETS[n].spec.family}")
    analysis = analyse(spec)
    box = st.sidebar.container(border=True)
    box.markdown(f"**{name or 'edited network'}** · family `{spec.family}`")
    box.caption(PRESETS[name].description if name else "changed in the workbench")
    if analysis.ok:
        box.markdown(f"params **{analysis.summary.total_params:,}**  \n"
                     f"input **{spec.in_channels}×{spec.input_size}×{spec.input_size}**  \n"
                     f"valid sizes **{describe_sizes(shown_sizes(spec))}**")
    else:
        box.markdown(f"input **{spec.in_channels}×{spec.input_size}×{spec.input_size}**")
        box.error(f"does not run as it is — see Build: {_why(analysis)}", icon="⚠️")


def _why(a) -> str:
    """The first reason, short: the field and its problem, or the layer that fails."""
    if a.problems:
        p = a.problems[0]
        more = f" (and {len(a.problems) - 1} more)" if len(a.problems) > 1 else ""
        return f"`{p.path or 'spec'}`: {p.message}{more}"
    f = a.failure
    return f"{layer_label(f.layer, f.layer_type)} — {f.reason}"
