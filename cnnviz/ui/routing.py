"""Every page runs inside ``streamlit_app.py`` (navigation, sidebar, wide layout).

Streamlit treats a top-level ``pages/`` folder as an old-style multipage app until
``st.navigation`` has run once in the process; until then a first visit straight to
``/build`` would run ``pages/build.py`` alone. ``streamlit_app.py`` marks each run it routes,
and a page that finds no mark switches Streamlit to ``st.navigation`` and reruns. That first
run would show the pages folder's own page list; ``.streamlit/config.toml`` hides the sidebar
navigation until ``streamlit_app.py`` switches it on for the app's own ``st.navigation``.
"""
from __future__ import annotations

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

_ROUTED = "cnnviz.routed"


def mark_routed() -> None:
    """Called by ``streamlit_app.py`` before it runs the page."""
    st.session_state[_ROUTED] = True


def require_app() -> None:
    """Called first by every page: rerun through ``streamlit_app.py`` if it was skipped."""
    if not st.session_state.pop(_ROUTED, False):
        PagesManager.uses_pages_directory = False
        st.rerun()
