"""What the Train page shows once runs have ended: how the last one ended, its results
(confusion matrix, misclassified images, weights), the session's run history, and loading
weights back."""
from __future__ import annotations

from functools import partial

import streamlit as st

from cnnviz.batchnorm.compare import recorded
from cnnviz.figures_training import confusion_figure, mistake_tiles
from cnnviz.limits import limit
from cnnviz.training.advice import chance_advice, format_epochs
from cnnviz.training.checkpoint import CheckpointError, check_size, load_weights, state_dict_bytes
from cnnviz.training.data import cache_problems, remove_damaged
from cnnviz.training.datasets import DATASETS
from cnnviz.training.job import FinishedRun, format_seconds, metrics_csv

RESULTS_OF = "train.results_of"
# {"spec", "model", "label", "dataset"}: the session's latest trained or loaded model, which
# the Feature maps page offers beside the run history.
TRAINED_MODEL = "cnnviz.trained_model"
UPLOAD, UPLOAD_RESULT = "train.upload", "train.upload.result"
REMOVED = "train.removed_damaged"  # the damaged files the learner had deleted


def make_trained_model(run: FinishedRun) -> None:
    """Keep ``run``'s model as the session's latest trained one."""
    st.session_state[TRAINED_MODEL] = {"spec": run.spec, "model": run.result.model,
                                       "label": run.title, "dataset": run.config.dataset}


def _use_digits() -> None:
    st.session_state["train.dataset"] = "digits"


def _offer_to_remove_damaged(run: FinishedRun) -> None:
    """A data set whose files are damaged: delete them (only them), so Start downloads them."""
    removed = st.session_state.pop(REMOVED, None)
    if removed:
        st.info(f"Deleted {removed}: Start downloads {'it' if ',' not in removed else 'them'} "
                f"again.", icon=":material/delete:")
        return
    damaged = [p for p in cache_problems(run.config.dataset, run.config.data_root)
               if not p.missing]
    if damaged and not run.points:
        st.button(f"Delete the damaged file{'s' if len(damaged) > 1 else ''} and download "
                  f"again", key="train.remove_damaged", icon=":material/delete:",
                  on_click=_remove_damaged, args=(run.config.dataset, run.config.data_root),
                  help=", ".join(p.problem for p in damaged))


def _remove_damaged(name: str, root) -> None:
    st.session_state[REMOVED] = ", ".join(p.name for p in remove_damaged(name, root))


def show_outcome(run: FinishedRun) -> None:
    """How the latest run ended: an error keeps the rest of the page as it was."""
    if run.state == "failed":
        st.error(f"**Run #{run.number} failed:** {run.message}", icon=":material/error:")
        if not DATASETS[run.config.dataset].offline and not run.points and \
                "download" in run.message.lower():
            st.button("Use the offline Digits data set", key="train.use_digits",
                      on_click=_use_digits, icon=":material/wifi_off:")
        _offer_to_remove_damaged(run)
    elif run.state == "stopped":
        how = run.message if run.message.startswith("stopped") else f"stopped ({run.message})"
        learned = ("; below is what it had learned by then, tested on the test split"
                   if run.result is not None else "")
        st.info(f"Run #{run.number} was {how}{learned}.", icon=":material/stop_circle:")
    else:
        why = "" if run.message == "done" else f" ({run.message})"
        st.success(f"Run #{run.number} finished{why} on {run.device}.",
                   icon=":material/check_circle:")


def show_history(history: list[FinishedRun], network_name) -> None:
    if not history:
        return
    by_title = {r.title: r for r in history}
    st.subheader("Results", anchor=False)
    if st.session_state.get(RESULTS_OF) not in by_title:
        st.session_state[RESULTS_OF] = history[-1].title
    run = by_title[st.selectbox("Results of", list(by_title), key=RESULTS_OF)]
    _show_results(run)
    _show_batchnorm_line(run)

    st.subheader("Run history", anchor=False)
    st.dataframe([_summary_row(r, network_name) for r in history], hide_index=True,
                 key="train.history.table",
                 column_config={"test acc": st.column_config.NumberColumn(format="percent"),
                                "train acc": st.column_config.NumberColumn(format="percent")})
    # Made when clicked, not on every rerun of the page (a deferred download).
    st.download_button("Download the metrics (CSV)", partial(metrics_csv, history, network_name),
                       "cnnviz-runs.csv", "text/csv", key="train.download.csv",
                       icon=":material/table_view:",
                       help="one row per metric point per run")


def _final(run: FinishedRun):
    tested = [p for p in run.points if p.test_acc is not None]
    return run.points[-1], (tested[-1].test_acc if tested else None)


def _train_seconds(point) -> float:
    return point.seconds if point.train_seconds is None else point.train_seconds


def _summary_row(run: FinishedRun, network_name) -> dict:
    last, test_acc = _final(run)
    return {"run": run.number, "network": network_name(run.spec), "data set": run.config.dataset,
            "settings": run.label.split(" · ", 2)[-1], "state": run.state,
            "epochs": round(last.epoch, 2), "train loss": round(last.train_loss, 4),
            "train acc": last.train_acc, "test acc": test_acc,
            "training s": round(_train_seconds(last), 1), "device": run.device}


def _show_batchnorm_line(run: FinishedRun) -> None:
    """Where to see the BatchNorm statistics the run recorded (a network with BatchNorm)."""
    history = recorded(run)
    if history:
        points = len(next(iter(history.values())))
        st.caption(f"BatchNorm statistics were recorded at each of its {points} metric "
                   f"points: see them on the **BatchNorm** page.")


def _show_results(run: FinishedRun) -> None:
    last, test_acc = _final(run)
    cols = st.columns(5)
    cols[0].metric("test accuracy", "—" if test_acc is None else f"{test_acc:.1%}",
                   help="of the weights at the end of the run" if last.test_acc is not None
                   else "at the last test, before the run's final steps")
    cols[1].metric("train accuracy", f"{last.train_acc:.1%}",
                   help="mean over the last epoch's batches while they trained")
    cols[2].metric("train loss", f"{last.train_loss:.3f}")
    cols[3].metric("epochs", format_epochs(last.epoch))
    training = _train_seconds(last)
    cols[4].metric("training time", format_seconds(training),
                   help=f"{format_seconds(last.seconds - training)} more went to testing "
                        f"on the test split; {last.examples_per_sec:,.0f} training examples/s "
                        f"at the end, on {run.device}")
    advice = chance_advice(run.spec, run.config, last.epoch, last.train_loss, test_acc)
    if advice:
        st.warning(advice, icon=":material/lightbulb:")
    if run.result is None:
        st.info("No model to keep from this run: it failed, or stopped before it trained.")
        return
    if run.weights_dropped:
        st.info(f"Run #{run.number}'s weights were let go to save the server's memory: a "
                f"session keeps the weights of its last {limit('kept_weights')} runs "
                "(CNNVIZ_KEEP_WEIGHTS). Its curves, metrics, confusion matrix and mistakes "
                "stay; download a run's weights while it is among the last to keep them.",
                icon=":material/memory:")
    confusion, mistakes = st.columns([3, 2], gap="large")
    with confusion:
        st.markdown("**Confusion matrix** (test split, last evaluation)")
        st.plotly_chart(confusion_figure(run.result.confusion, run.classes),
                        key=f"train.confusion.{run.number}")
    with mistakes:
        st.markdown(f"**Misclassified test images** (true → predicted, first "
                    f"{len(run.result.mistakes)})")
        if run.result.mistakes:
            images, captions = mistake_tiles(run.result.mistakes, run.classes)
            st.image(images, caption=captions)
        else:
            st.caption("none: every test image is classified correctly")
    if run.weights is None:
        return
    left, right, _ = st.columns([1, 1, 2])
    name = run.label.split(" · ", 1)[0].replace(" ", "-")
    # Serialised when clicked (a deferred download), not on every rerun: AlexNet's are 200 MB.
    left.download_button("Download weights (.pt)", partial(state_dict_bytes, run.weights),
                         f"{name}-run{run.number}.pt", "application/octet-stream",
                         key=f"train.download.weights.{run.number}",
                         icon=":material/download:",
                         help="the model's state_dict: torch.load(path, weights_only=True), "
                              "then load_state_dict, or load it back below")
    right.caption("**Feature maps** shows what this model's layers compute on a picture. The "
                  "weights live only in this browser session: download them to keep them, and "
                  "load them back under **Load weights**.")


def show_upload(spec, name: str) -> None:
    st.subheader("Load weights", anchor=False)
    upload = st.file_uploader(f"A state_dict for {name} (.pt or .pth)", type=["pt", "pth"],
                              key=UPLOAD, max_upload_size=limit("weights_mb"),
                              help="read with weights_only=True: a file can carry no code")
    if upload is None:
        return
    outcome = st.session_state.get(UPLOAD_RESULT)
    if outcome is None or outcome[0] != upload.file_id:
        try:
            check_size(upload.size)  # before its bytes are copied
            model = load_weights(spec, upload.getvalue())
        except CheckpointError as exc:
            outcome = (upload.file_id, False, f"**{upload.name} was not loaded:** {exc}")
        else:
            st.session_state[TRAINED_MODEL] = {"spec": spec, "model": model.eval(),
                                               "label": f"{upload.name} (loaded)",
                                               "dataset": None}
            tensors = len(model.state_dict())
            outcome = (upload.file_id, True, f"Loaded {upload.name} into {name}: all "
                                             f"{tensors} tensors match the network.")
        st.session_state[UPLOAD_RESULT] = outcome
    (st.success if outcome[1] else st.error)(outcome[2])
