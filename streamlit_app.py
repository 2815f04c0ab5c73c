"""cnnviz: the entry point. Navigation over the pages and the sidebar they share."""
import streamlit as st

from cnnviz.ui.routing import mark_routed
from cnnviz.ui.sidebar import show_sidebar
from cnnviz.ui.state import sync_url

st.set_page_config(page_title="cnnviz", page_icon="🧱", layout="wide")

PAGES = [
    st.Page("pages/home.py", title="Home", icon=":material/grid_view:", default=True),
    st.Page("pages/build.py", title="Build", icon=":material/construction:"),
    st.Page("pages/sizes.py", title="Input size", icon=":material/straighten:"),
    st.Page("pages/train.py", title="Train", icon=":material/model_training:"),
    st.Page("pages/maps.py", title="Feature maps", icon=":material/layers:"),
    st.Page("pages/graph.py", title="Connections", icon=":material/account_tree:"),
    st.Page("pages/batchnorm.py", title="BatchNorm", icon=":material/equalizer:"),
]
# .streamlit/config.toml hides the sidebar navigation, so the very first run after the server
# starts (Streamlit runs it the old pages/-folder way, see cnnviz/ui/routing.py) never shows
# the old page list; the app's own navigation is switched back on here, for every run that
# comes through this file.
st.set_option("client.showSidebarNavigation", True)
page = st.navigation(PAGES, position="sidebar")
mark_routed()
page.run()
show_sidebar()  # after the page: it shows the network as the page left it
sync_url()
