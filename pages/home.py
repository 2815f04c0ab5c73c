"""Home: the zoo of the book's networks, one card each."""
import streamlit as st

from cnnviz.limits import bad_settings
from cnnviz.presets import BOOK_PRESETS, PRESETS
from cnnviz.ui.routing import require_app
from cnnviz.ui.state import open_in
from cnnviz.workbench import analyse, describe_sizes, human

require_app()

st.title("cnnviz — the classic CNNs of *Dive into Deep Learning*")
st.caption("Pick a network to take apart: change its blocks in **Build** and watch every "
           "shape, parameter and convolution sum update; see which input sizes it accepts "
           "in **Input size**.")

for setting in bad_settings():  # the teacher's caps (docs/teaching.md): a typo is said here
    st.warning(f"Server setting ignored: {setting}.", icon=":material/settings:")

CARDS_PER_ROW = 4
names = list(BOOK_PRESETS)
for row in range(0, len(names), CARDS_PER_ROW):  # a row of columns per row: cards line up
    for column, name in zip(st.columns(CARDS_PER_ROW), names[row:row + CARDS_PER_ROW]):
        spec = PRESETS[name].spec
        a = analyse(spec)
        with column.container(border=True, height="stretch"):
            st.subheader(name, anchor=False)
            st.caption(f"family `{spec.family}` · {PRESETS[name].description}")
            st.write(BOOK_PRESETS[name])
            st.markdown(f"**{human(a.summary.total_params)}** parameters · "
                        f"**{human(a.summary.mult_adds)}** mult-adds  \n"
                        f"input **{spec.in_channels}×{spec.input_size}×{spec.input_size}** · "
                        f"valid sizes **{describe_sizes(a.sizes)}**")
            if st.button("Open in the workbench", key=f"home.open.{name}", type="primary",
                         width="stretch"):
                open_in("pages/build.py", spec)

with st.expander("More networks: the study notes' versions and torchvision's ImageNet models"):
    rows = []
    for name, preset in PRESETS.items():
        if name in BOOK_PRESETS:
            continue
        a = analyse(preset.spec)
        rows.append({"network": name, "family": preset.spec.family,
                     "params": f"{a.summary.total_params:,}",
                     "mult-adds": f"{a.summary.mult_adds:,}",
                     "input": f"{preset.spec.in_channels}×{preset.spec.input_size}²",
                     "valid sizes": describe_sizes(a.sizes), "about": preset.description})
    st.dataframe(rows, hide_index=True, key="home.more",
                 column_config={c: st.column_config.TextColumn(alignment="right")
                                for c in ("params", "mult-adds")})
    others = [r["network"] for r in rows]
    pick, go = st.columns([3, 1], vertical_alignment="bottom")
    chosen = pick.selectbox("Open one of these", others, key="home.more.pick")
    if go.button("Open", key="home.more.open"):
        open_in("pages/build.py", PRESETS[chosen].spec)
