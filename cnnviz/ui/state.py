"""The current network lives in session state and in the URL, so a link reopens it.

``?preset=NAME`` when the network is a preset, ``?net=TOKEN`` (compressed JSON) otherwise.
The URL is written in one place, :func:`sync_url`, at the end of every run that drew the
network: the full app run (``streamlit_app.py``) and each poll of the Train page's live run.
So it changes together with what the page shows, never ahead of it (a callback that swapped
the network used to write it before a slow rerun had drawn anything), and it is sent every
time: Streamlit compares with its own copy of the query, which can differ from the browser's
(a poll or a page switch that carried an old query string), and then a changed URL was never
sent and the browser kept a stale or empty one.
Widgets that edit the spec are keyed with a *version* that changes whenever the spec is
replaced from outside (preset, upload, link), so they start from the new spec's values.

Runs live only in the server's memory, with the session. While a session has runs the URL also
says how many (``&runs=N``), so a new session that arrives with the count but none of the runs
(the server restarted and the browser reconnected, the session expired, the page was reloaded)
tells the learner what was lost instead of silently forgetting. The network is in the link.
"""
from __future__ import annotations

import streamlit as st

from cnnviz.errors import SpecError
from cnnviz.presets import PRESETS
from cnnviz.shapes.sizes import SizeReport
from cnnviz.specs.url import spec_from_token, spec_to_token
from cnnviz.workbench import Analysis, describe_sizes, size_report

DEFAULT_PRESET = "lenet"
_SPEC, _VERSION, _PINNED, _NOTICE = "cnnviz.spec", "cnnviz.version", "cnnviz.pinned", "cnnviz.notice"
# The Train page's run history and live run (cnnviz.ui.train_view keeps them under these keys).
RUN_HISTORY, LIVE_RUN = "train.history", "train.active"
RUNS = "runs"  # the URL's count of the session's runs
_MOST_RUNS = 6  # digits of a count the URL may carry: more is not a count this app wrote


def preset_name(spec) -> str | None:
    return next((name for name, p in PRESETS.items() if p.spec == spec), None)


def network_name(spec) -> str:
    """How a page names the network: its preset, or what it was edited from."""
    return preset_name(spec) or f"edited {spec.family}"


def _from_url():
    params = st.query_params
    if "preset" in params:
        name = params["preset"]
        if name in PRESETS:
            return PRESETS[name].spec
        shown = name if len(name) <= 60 else name[:60] + "…"
        st.session_state[_NOTICE] = f"The link names an unknown preset ({shown!r}); showing " \
                                    f"{DEFAULT_PRESET} instead."
    elif "net" in params:
        try:
            return spec_from_token(params["net"])
        except SpecError as exc:
            st.session_state[_NOTICE] = f"The network in the link could not be opened: {exc}"
    return PRESETS[DEFAULT_PRESET].spec


def _lost_runs() -> None:
    """A new session whose link counts runs it does not have: say they are gone."""
    text = st.query_params.get(RUNS, "")
    if not (text.isdigit() and len(text) <= _MOST_RUNS and int(text) > 0) or session_runs():
        return
    count = int(text)
    lost = (f"This page's earlier session is gone — the server restarted, the session "
            f"expired or the page was reloaded — and with it its {count} "
            f"run{'s' if count != 1 else ''} (curves, results and weights). The network is "
            f"kept because it is in the link; download a run's weights to keep them.")
    held = st.session_state.get(_NOTICE)
    st.session_state[_NOTICE] = f"{held}\n\n{lost}" if held else lost


def current_spec():
    """The network every page shows; on a session's first run it comes from the URL."""
    if _SPEC not in st.session_state:
        st.session_state[_SPEC] = _from_url()
        st.session_state[_VERSION] = 0
        _lost_runs()
    return st.session_state[_SPEC]


def take_notice() -> str | None:
    """A message for the user from loading the URL (shown once)."""
    return st.session_state.pop(_NOTICE, None)


def session_runs() -> int:
    """The session's runs: those in its history and the one training now."""
    state = st.session_state
    return len(state.get(RUN_HISTORY) or ()) + (state.get(LIVE_RUN) is not None)


def replace_spec(spec) -> None:
    """Put a new network in place (preset, upload, family switch): editors start afresh."""
    st.session_state[_SPEC] = spec
    st.session_state[_VERSION] = st.session_state.get(_VERSION, 0) + 1


def edit_spec(spec) -> None:
    """The editors changed the network: keep their widgets (the URL follows at the end of
    the run)."""
    if spec != st.session_state.get(_SPEC):
        st.session_state[_SPEC] = spec


def widget_key(path: str) -> str:
    """A key for a widget editing ``path`` of the current spec."""
    return f"edit{st.session_state.get(_VERSION, 0)}.{path}"


def url_params(spec) -> dict[str, str]:
    name = preset_name(spec)
    return {"preset": name} if name else {"net": spec_to_token(spec)}


def sync_url() -> None:
    """Put the current network in the URL, and the session's count of runs while it has
    any; call it after the network has been drawn.

    Always sent, even when ``st.query_params`` already holds it: that is the server's copy,
    and the browser's URL may differ from it (see the module's docstring). The browser only
    pushes a history entry when its URL changes, so an unchanged URL costs one small message.
    """
    params = url_params(current_spec())
    runs = session_runs()
    if runs:
        params[RUNS] = str(runs)
    st.query_params.from_dict(params)


def open_in(page: str, spec) -> None:
    """Make ``spec`` the current network and go to ``page``, keeping it in the URL."""
    replace_spec(spec)
    st.switch_page(page, query_params=url_params(spec))


def pinned():
    return st.session_state.get(_PINNED)


def pin(spec) -> None:
    st.session_state[_PINNED] = spec


def unpin() -> None:
    st.session_state.pop(_PINNED, None)


# The range of sizes the learner grew to on Input size, with the network it was grown for.
SIZE_RANGE = "sizes.range"


def shown_sizes(spec) -> SizeReport:
    """The one report of valid sizes that every page shows (Input size, the sidebar, and
    Build and Train when no size near a failing one works)."""
    held = st.session_state.get(SIZE_RANGE)
    return size_report(spec, held[1] if held and held[0] == spec else None)


def nearest_sizes(a: Analysis) -> str:
    """The sizes that work nearest to the one that failed, or the valid sizes in words."""
    return " or ".join(str(n) for n in a.nearest if n is not None) or \
        describe_sizes(shown_sizes(a.spec))


def session_alive():
    """A function saying whether this browser session is still connected (it asks Streamlit's
    runtime, safe from any thread), for a job's ``alive``; None outside a server (AppTest),
    where nobody closes a tab."""
    from streamlit.runtime import Runtime, exists
    from streamlit.runtime.scriptrunner import get_script_run_ctx
    ctx = get_script_run_ctx()
    if ctx is None or not exists():
        return None
    runtime, session = Runtime.instance(), ctx.session_id
    return lambda: runtime.is_active_session(session)
