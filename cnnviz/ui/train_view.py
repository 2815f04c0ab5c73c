"""The Train page: settings, an estimate, Start/Stop, and the live run.

A run is a :class:`~cnnviz.training.job.TrainingJob` kept in session state; its threads never
call Streamlit. While it runs, a fragment polls it once a second and redraws the progress bar
and the curves; when it ends, the fragment reruns the whole page so the results appear.
What a finished run shows (results, history, weights) is in :mod:`cnnviz.ui.train_results`.
"""
from __future__ import annotations

import time

import streamlit as st
import torch

from cnnviz.batchnorm.recorder import BatchNormRecorder
from cnnviz.batchnorm.twins import has_batch_norm
from cnnviz.errors import CnnvizError, fmt_shape
from cnnviz.limits import limit, network_over, over
from cnnviz.figures_training import curves_figure
from cnnviz.training.config import (DEVICE_CHOICES, MAX_BATCH_SIZE, MAX_LR, MAX_SIZE,
                                    TrainConfig, book_batch_size, book_help, book_lr,
                                    resolve_device)
from cnnviz.training.data import is_downloaded
from cnnviz.training.datasets import DATASETS, augmentation_help
from cnnviz.training.engine import estimate_seconds
from cnnviz.training.faults import out_of_memory
from cnnviz.training.config import lost_devices
from cnnviz.training.job import (FinishedRun, TrainingJob, app_threads, format_seconds,
                                 import_loaders, keep_weights)
from cnnviz.training.queue import DEVICES
from cnnviz.ui import train_results
from cnnviz.ui.state import (LIVE_RUN, RUN_HISTORY, current_spec, nearest_sizes, network_name,
                             session_alive, sync_url)
from cnnviz.workbench import analyse

import_loaders()  # once per process, when the Train page first opens

ACTIVE, HISTORY = LIVE_RUN, RUN_HISTORY  # state.py counts them for the URL
LAST, COUNT = "train.last", "train.count"
ESTIMATES, START_ERROR, DEFAULTS_FOR = "train.estimates", "train.start_error", "train.for"
COMPARE, LIVE_CURVES = "train.compare", "train.live_curves"
# Every poll redraws the run's part of the page in the server and in the browser, which share
# the machine with the training: on 2 cores, polling every 0.5 s cost a quarter of a 4-s run's
# training speed, every 1 s about a tenth (docs/benchmarks.md). The first point still shows
# within about a second of being made.
POLL_SECONDS = 1.0
# Of a poll's cost in the browser most is redrawing the curves (about 0.1 s of its main
# thread against 0.02 s for the progress bar, measured on 2 cores): a run's curves are redrawn
# every CURVE_SECONDS, and the polls between send the same figure, which the browser keeps.
CURVE_SECONDS = 2.0
BUDGET_EPOCHS = 1000  # with a time budget the budget ends the run, not the epochs
# Estimate without being asked when a batch costs at most this many mult-adds (LeNet-sized):
# the estimate times real steps, which for AlexNet at 224 on a CPU takes tens of seconds.
AUTO_ESTIMATE_MULT_ADDS = 3e8


def show_train_page() -> None:
    spec = current_spec()
    st.title("Train")
    st.caption(f"Short training runs of **{network_name(spec)}** in the browser, d2l's "
               "`train_ch6` made fast: the images stay on the device as bytes and each batch "
               "is resized there.")
    _collect_finished()
    analysis = analyse(spec)
    if analysis.problems:
        st.error("This network cannot be built; fix it in **Build** first:\n\n" +
                 "\n".join(f"- `{p.path}`: {p.message}" for p in analysis.problems))
    else:
        config, problems = _controls(spec)
        for problem in problems:
            st.error(problem)
        _estimate(spec, config, problems)
        _buttons(spec, problems)
    _curves()
    job = st.session_state.get(ACTIVE)
    last = st.session_state.get(LAST)
    if job is None and last is not None:
        train_results.show_outcome(last)
    train_results.show_history(st.session_state.get(HISTORY, []), network_name)
    train_results.show_upload(spec, network_name(spec))
    if job is not None:
        job.page_drawn()  # a short run's first second is not spent beside the page's drawing


# -- settings -----------------------------------------------------------------------------

BOOK_DATASET = "fashion-mnist"


def _default_dataset() -> str:
    """The book's data set when it is here, else the offline digits: the default never fails."""
    return BOOK_DATASET if is_downloaded(BOOK_DATASET) else "digits"


def _dataset_label(name: str) -> str:
    info = DATASETS[name]
    if info.offline:
        return f"{info.title} (offline)"
    where = "downloaded" if is_downloaded(name) else f"download ~{info.download_mb} MB"
    return f"{info.title} ({where})"


def _use_book_dataset() -> None:
    st.session_state["train.dataset"] = BOOK_DATASET


def _dataset_help() -> str:
    lines = []
    for name, info in DATASETS.items():
        where = ("bundled with scikit-learn, no network needed" if info.offline else
                 "downloaded" if is_downloaded(name) else
                 f"downloads about {info.download_mb} MB on the first run")
        lines.append(f"- **{info.title}**: {info.channels}×{info.size}×{info.size}, {where}")
    return "The book trains on Fashion-MNIST.\n\n" + "\n".join(lines)


def _device_available(name: str) -> bool:
    if name in lost_devices():  # a run lost it: CUDA's context stays broken until a restart
        return False
    if name == "cuda":
        return torch.cuda.is_available()
    if name == "mps":
        mps = getattr(torch.backends, "mps", None)
        return mps is not None and mps.is_available()
    return True


def _device_label(name: str) -> str:
    if name == "auto":
        return f"auto ({next(d for d in ('cuda', 'mps', 'cpu') if _device_available(d))})"
    return name if _device_available(name) else f"{name} — not available here"


def _defaults(spec) -> None:
    """The settings that follow the network start from the book's values for it."""
    state = st.session_state
    if state.get(DEFAULTS_FOR) != spec:
        state[DEFAULTS_FOR] = spec
        state["train.size"] = spec.input_size
        state["train.batch"] = book_batch_size(spec)
        state["train.lr"] = float(book_lr(spec))
    for key, value in (("train.dataset", _default_dataset()), ("train.stop_after", "epochs"),
                       ("train.epochs", min(10, limit("epochs"))),
                       ("train.budget", min(60, limit("run_seconds"))), ("train.recipe", "book"),
                       ("train.device", "auto"), ("train.augment", False),
                       ("train.limit", 0)):
        state.setdefault(key, value)


def _controls(spec) -> tuple[TrainConfig, list[str]]:
    _defaults(spec)
    keep = {"persist_state": "session"}
    running = st.session_state.get(ACTIVE) is not None
    row = st.columns(4)
    dataset = row[0].selectbox("Data set", list(DATASETS), key="train.dataset",
                               format_func=_dataset_label, disabled=running, **keep,
                               help=_dataset_help())
    if dataset != BOOK_DATASET and not is_downloaded(BOOK_DATASET):
        book = DATASETS[BOOK_DATASET]
        row[0].button(f"Use {book.title} ({book.download_mb} MB)", key="train.use_book_dataset",
                      type="tertiary", disabled=running, icon=":material/download:",
                      on_click=_use_book_dataset,
                      help=f"the book's data set: choose it, and Start downloads about "
                           f"{book.download_mb} MB once")
    row[1].number_input("Input size", 1, MAX_SIZE, step=1, key="train.size", **keep,
                        disabled=running,
                        help=f"images are resized to size × size on the device; "
                             f"the network's own size is {spec.input_size}")
    row[2].number_input("Batch size", 1, MAX_BATCH_SIZE, step=1, key="train.batch", **keep,
                        disabled=running,
                        help=book_help(spec, "batch_size"))
    row[3].number_input("Learning rate", 1e-6, MAX_LR, step=0.01, format="%g",
                        key="train.lr", disabled=running, **keep,
                        help=book_help(spec, "lr"))
    row = st.columns(4)
    stop_after = row[0].radio("Stop after", ["epochs", "time budget"], key="train.stop_after",
                              horizontal=True, disabled=running, **keep)
    if stop_after == "epochs":
        row[1].number_input("Epochs", 1, BUDGET_EPOCHS, step=1, key="train.epochs",
                            disabled=running, **keep)
    else:
        row[1].number_input("Time budget (seconds)", 1, 24 * 3600, step=10,
                            key="train.budget", disabled=running, **keep,
                            help="the run stops cleanly when the time is spent")
    row[2].radio("Recipe", ["book", "fast"], key="train.recipe", horizontal=True,
                 disabled=running, **keep,
                 help="book: Xavier init and plain SGD, as in d2l. fast: Nesterov "
                      "momentum, a one-cycle learning rate and label smoothing")
    row[3].selectbox("Device", list(DEVICE_CHOICES), key="train.device",
                     format_func=_device_label, disabled=running, **keep,
                     help="auto picks CUDA, then Apple's MPS, then the CPU")
    left, right = st.columns([1, 3], vertical_alignment="center")
    left.toggle("Augmentation", key="train.augment", disabled=running, **keep,
                help=augmentation_help(dataset))
    with right.expander("More options"):
        st.number_input("Use only the first N examples of each split (0 = all)", 0,
                        1_000_000, step=100, key="train.limit", disabled=running,
                        **keep, help="a quick look at a big data set")
    config = _config()
    return config, _problems(spec, config)


def _config() -> TrainConfig:
    """The settings as the widgets hold them now. Start reads them again when clicked: a value
    typed just before the click arrives with the click, after the button was drawn."""
    state = st.session_state
    budget = state.get("train.budget", 60) if state.get("train.stop_after") == "time budget" \
        else None
    return TrainConfig(dataset=state["train.dataset"],
                       epochs=BUDGET_EPOCHS if budget else int(state.get("train.epochs", 10)),
                       batch_size=int(state["train.batch"]), lr=float(state["train.lr"]),
                       size=int(state["train.size"]), device=state["train.device"],
                       recipe=state["train.recipe"],
                       time_budget=float(budget) if budget else None,
                       augment=bool(state["train.augment"]),
                       limit=int(state.get("train.limit", 0)) or None)


def _problems(spec, config: TrainConfig) -> list[str]:
    problems = []
    if not _device_available(config.device):
        problems.append(f"Device {config.device} is not available on this machine; choose "
                        "auto or cpu.")
    for capped in (over("input_size", config.size),
                   None if config.time_budget else over("epochs", config.epochs),
                   over("run_seconds", config.time_budget or 0)):
        if capped:
            problems.append(capped)
    at_size = analyse(spec, (config.size, config.size))
    if at_size.summary is not None:
        problems += network_over(at_size.summary.total_params, at_size.summary.mult_adds)
    if not at_size.ok and at_size.failure is not None:
        f = at_size.failure
        near = nearest_sizes(at_size)
        problems.append(f"The network does not run at input size {config.size}: "
                        f"{f.layer_type} `{f.layer}` — {f.reason}. Sizes that work nearby: "
                        f"{near}.")
    classes = DATASETS[config.dataset].num_classes
    summary = at_size.summary
    if summary is not None and at_size.ok:  # a custom chain's last layer decides its outputs
        out = tuple(summary.layers[-1].output_shape)
        if summary.total_params == 0:
            problems.append(f"{network_name(spec)} has no parameters to train; add a conv or "
                            "linear layer in Build.")
        elif len(out) != 1 or out[0] < classes:
            problems.append(f"{network_name(spec)} outputs {fmt_shape(out)} per image, but "
                            f"{DATASETS[config.dataset].title} has {classes} classes: its last "
                            f"layer must give {classes} class scores (a head: adaptive average "
                            "pooling, flatten, linear) — change it in Build.")
    if spec.num_classes < classes:
        problems.append(f"The network has {spec.num_classes} outputs but "
                        f"{DATASETS[config.dataset].title} has {classes} classes; set "
                        f"num_classes to at least {classes} in Build.")
    return problems


# -- estimate, start, stop ----------------------------------------------------------------

def _estimate(spec, config: TrainConfig, problems: list[str]) -> None:
    if problems:
        return
    cache = st.session_state.setdefault(ESTIMATES, {})
    key = (spec, config)
    running = st.session_state.get(ACTIVE) is not None
    box = st.container()
    if key not in cache:
        summary = analyse(spec, (config.size, config.size)).summary
        cheap = summary is not None and summary.mult_adds * config.batch_size \
            <= AUTO_ESTIMATE_MULT_ADDS
        device = str(resolve_device(config.device))
        if running or DEVICES.busy(device) or DEVICES.waiting(device):
            box.caption(f"The run time is estimated when {device} is free: a run (yours or "
                        "another session's) uses it now, and timing steps beside it would "
                        "slow that run and time the wrong thing.")
            return
        if not cheap and not box.button("Estimate the run time", key="train.estimate",
                                        icon=":material/timer:",
                                        help="times a few training steps on random data"):
            return
        estimate = _timed_estimate(spec, config, device)
        if estimate is None:
            box.caption(f"A run has just taken {device}: the run time is estimated when it "
                        "is free.")
            return
        cache[key] = estimate
    seconds = cache[key]
    if isinstance(seconds, str):
        box.warning(f"No estimate: {seconds}.")
        return
    download = "" if is_downloaded(config.dataset) else \
        f", plus downloading about {DATASETS[config.dataset].download_mb} MB once"
    limit = " (the time budget)" if config.time_budget and seconds >= config.time_budget else ""
    box.markdown(f":material/timer: Estimated run time: **{format_seconds(seconds)}**{limit}"
                 f"{download}.")


def _timed_estimate(spec, config: TrainConfig, device: str) -> float | str | None:
    """Seconds, or why there is no estimate; None when the device was taken meanwhile. The
    estimate holds the device through the run queue while it times, as a run would."""
    owner = object()
    if not DEVICES.try_acquire(device, owner):
        return None
    try:
        with st.spinner("Timing a few training steps…"):
            return estimate_seconds(spec, config, threads=app_threads())
    except (CnnvizError, RuntimeError) as exc:  # torch.OutOfMemoryError is a RuntimeError
        if out_of_memory(exc):
            return f"a batch of {config.batch_size} does not fit in memory"
        return f"{exc}"
    finally:
        DEVICES.release(device, owner)


def _queue_full() -> str | None:
    waiting, most = DEVICES.waiting(), limit("queue")
    if waiting < most:
        return None
    return (f"{waiting} runs already wait for a device on this server, its cap (the teacher "
            f"raises it with the environment variable CNNVIZ_MAX_QUEUE; see "
            f"docs/teaching.md). Start again when one has finished.")


def _start(spec) -> None:
    state = st.session_state
    if state.get(ACTIVE) is not None:
        return
    config = _config()  # as the click left the widgets, not as they were drawn
    problems = _problems(spec, config)
    full = _queue_full()
    if problems or full:
        state[START_ERROR] = problems[0] if problems else full
        return
    number = state.get(COUNT, 0) + 1
    try:
        # A network with BatchNorm has its statistics recorded at every metric point, for
        # the BatchNorm page (read back from the run's history with batchnorm.compare.recorded).
        recorders = [BatchNormRecorder()] if has_batch_norm(spec) else []
        job = TrainingJob(number, _label(spec, config), spec, config, callbacks=recorders,
                          watched=True, alive=session_alive())
    except CnnvizError as exc:
        state[START_ERROR] = str(exc)
        return
    state[COUNT] = number
    state[ACTIVE] = job.start()
    state.pop(START_ERROR, None)


def _stop() -> None:
    job = st.session_state.get(ACTIVE)
    if job is not None:
        job.stop()


def _buttons(spec, problems: list[str]) -> None:
    job = st.session_state.get(ACTIVE)
    left, right, _ = st.columns([1, 1, 4])
    left.button("Start", key="train.start", type="primary", icon=":material/play_arrow:",
                disabled=job is not None or bool(problems), on_click=_start,
                args=(spec,), width="stretch")
    right.button("Stop", key="train.stop", icon=":material/stop:", disabled=job is None,
                 on_click=_stop, width="stretch")
    error = st.session_state.pop(START_ERROR, None)
    if error:
        st.error(f"The run did not start: {error}")


def _label(spec, config: TrainConfig) -> str:
    length = f"{config.time_budget:g} s" if config.time_budget else f"{config.epochs} ep"
    extras = "".join([" · aug" if config.augment else "",
                      f" · first {config.limit:,}" if config.limit else ""])
    return (f"{network_name(spec)} · {config.dataset} · {config.size}px · {length} · "
            f"bs {config.batch_size} · lr {config.lr:g} · {config.recipe}{extras}")


# -- the live run and the history ---------------------------------------------------------

def _collect_finished() -> None:
    """Move a run that has ended into the history (on a full rerun, never in the fragment)."""
    state = st.session_state
    job = state.get(ACTIVE)
    if job is None or not job.done:
        return
    finished = FinishedRun.of(job)
    state[ACTIVE] = None
    state[LAST] = finished
    if finished.points:
        # Only the last few runs keep their weights: 30 students × many runs would not fit.
        state[HISTORY] = keep_weights([*state.get(HISTORY, []), finished])
        shown = [t for t in state.get(COMPARE, []) if any(r.title == t for r in state[HISTORY])]
        state[COMPARE] = [*shown, finished.title]
        state[train_results.RESULTS_OF] = finished.title
    if finished.result is not None:
        train_results.make_trained_model(finished)


def _curves() -> None:
    job = st.session_state.get(ACTIVE)
    history = st.session_state.get(HISTORY, [])
    st.subheader("Curves", anchor=False)
    if job is None and not history:
        # Empty axes now: the browser loads its chart code before Start, so the first
        # point of a run shows the moment it exists.
        st.caption("Loss, accuracy and speed of your runs appear here as they train.")
    if history:
        st.multiselect("Runs to show", [r.title for r in history], key=COMPARE,
                       help="compare runs, e.g. LeNet with and without BatchNorm")
    if job is not None:
        _live()
    else:  # laid out as the live fragment is, so Start updates the chart, not redraws it
        with st.container():
            st.empty()  # where the progress bar will be
            _draw_curves(None)


def _draw_curves(job: TrainingJob | None) -> None:
    st.plotly_chart(_curves_figure(job), key="train.curves")


def _curves_figure(job: TrainingJob | None):
    """The curves of the chosen runs and the live one; while a run is live, the figure drawn
    less than ``CURVE_SECONDS`` ago again (unless the chosen runs changed)."""
    state = st.session_state
    chosen = [t for t in state.get(COMPARE, [])]
    now = time.monotonic()
    if job is not None:
        drawn = state.get(LIVE_CURVES)
        if drawn and drawn[0] == (job.number, chosen) and now - drawn[1] < CURVE_SECONDS:
            return drawn[2]
    runs = [(r.title, r.points) for r in state.get(HISTORY, []) if r.title in set(chosen)]
    if job is not None:
        runs.append((f"#{job.number} {job.label} (this run)", job.points()))
    figure = curves_figure(runs)
    state[LIVE_CURVES] = ((job.number, chosen), now, figure) if job is not None else None
    return figure


@st.fragment(run_every=POLL_SECONDS)
def _live() -> None:
    _show_live(st.session_state.get(ACTIVE))


def _show_live(job: TrainingJob | None) -> None:
    if job is None:
        return
    if job.done:  # the results belong to the whole page: redraw it
        st.rerun(scope="app")
    if job.state == "loading data":
        st.progress(min(max(job.data_fraction, 0.0), 1.0), text=job.status())
    else:
        st.progress(job.progress, text=job.status())
    _draw_curves(job)
    sync_url()  # a poll does not run streamlit_app.py: keep the URL on the network here too

