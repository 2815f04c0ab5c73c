"""Which model a page that looks inside a network shows: the network as a training run starts
it, a finished run of this very network from the Train page (or its latest trained model), or
uploaded weights. Feature maps and BatchNorm share it; each keeps its own choice (its key
prefix), and an upload is kept per session for every page.
"""
from __future__ import annotations

import streamlit as st
import torch

from cnnviz.activations.capture import fresh_model
from cnnviz.errors import CnnvizError
from cnnviz.limits import limit
from cnnviz.training.checkpoint import check_size, load_weights
from cnnviz.training.datasets import DATASETS
from cnnviz.ui.train_results import TRAINED_MODEL
from cnnviz.ui.train_view import HISTORY

FRESH = "freshly initialised (seed 0, as a training run starts)"
UPLOAD = "upload weights (.pt)"
UPLOADED = "cnnviz.maps.uploaded"  # {"spec", "model", "label", "dataset"} of uploaded weights


@st.cache_resource(max_entries=16, show_spinner=False)
def fresh(spec_key: str, _spec) -> torch.nn.Module:
    """The network as a training run starts it, kept per network."""
    return fresh_model(_spec)


def trained_choices(spec) -> dict[str, dict]:
    """Trained models of this very network: the Train page's runs that keep their weights
    (the last few of the session), and uploaded weights."""
    found: dict[str, dict] = {}
    for run in reversed(st.session_state.get(HISTORY, [])):
        if run.spec == spec and run.weights is not None:
            found[f"trained: {run.title}"] = {"model": run.weights, "label": run.title,
                                              "dataset": run.config.dataset, "run": run}
    latest = st.session_state.get(TRAINED_MODEL)
    if latest and latest["spec"] == spec and latest["label"] not in \
            {v["label"] for v in found.values()}:
        found[f"trained: {latest['label']}"] = latest
    uploaded = st.session_state.get(UPLOADED)
    if uploaded and uploaded["spec"] == spec:
        found[f"uploaded: {uploaded['label']}"] = uploaded
    return found


def choose_model(spec, prefix: str):
    """(model, cache key, what it is in words, class names) from the learner's choice under
    widget keys starting with ``prefix``; (None, "", "", None) while weights are awaited."""
    st.subheader("Model", anchor=False)
    trained = trained_choices(spec)
    options = [FRESH, *trained, UPLOAD]
    if st.session_state.get(prefix + "model") not in options:
        st.session_state[prefix + "model"] = options[1] if trained else FRESH
    choice = st.radio("Weights", options, key=prefix + "model", label_visibility="collapsed")
    if choice == UPLOAD:
        _upload_weights(spec, prefix)
        return None, "", "", None
    if choice == FRESH:
        model = fresh(repr(spec), spec)
        st.caption("Untrained: every layer computes with the random weights a training run "
                   "starts from. Train it on **Train**, then pick the run here.")
        return model, f"fresh|{spec!r}", "freshly initialised", None
    entry = trained[choice]
    dataset = entry.get("dataset")
    classes = DATASETS[dataset].classes if dataset in DATASETS else None
    where = f" on {DATASETS[dataset].title}" if dataset in DATASETS else ""
    st.caption(f"Trained{where}: {entry['label']}.")
    return entry["model"], f"{choice}|{id(entry['model'])}", f"trained ({entry['label']})", classes


def _upload_weights(spec, prefix: str) -> None:
    st.file_uploader("A state_dict saved from this network (`torch.save(model.state_dict(), "
                     "path)`, e.g. the Train page's download)", type=["pt", "pth"],
                     key=prefix + "weights", on_change=_weights_uploaded, args=(spec, prefix),
                     max_upload_size=limit("weights_mb"))
    error = st.session_state.get(prefix + "weights.error")
    if error:
        st.error(error)
    else:
        st.info("Upload weights, or pick another model above.")


def _weights_uploaded(spec, prefix: str) -> None:
    """Load the uploaded weights (before the page draws: the model choice then names them)."""
    state = st.session_state
    upload = state.get(prefix + "weights")
    state.pop(prefix + "weights.error", None)
    if upload is None:
        return
    try:
        check_size(upload.size)  # before its bytes are copied
        model = load_weights(spec, upload.getvalue())
    except CnnvizError as exc:
        state[prefix + "weights.error"] = f"{upload.name} was not loaded: {exc}"
        return
    state[UPLOADED] = {"spec": spec, "model": model.eval(), "label": upload.name,
                       "dataset": None}
    state[prefix + "model"] = f"uploaded: {upload.name}"
