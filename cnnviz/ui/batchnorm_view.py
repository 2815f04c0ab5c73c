"""The BatchNorm page: the current network's BatchNorm layers on a real batch of the digits —
batch against running statistics per channel, x → x̂ → γ·x̂ + β with γ and β to move, train
against eval mode, how the statistics scatter as the batch shrinks, what a run recorded, and
the network trained with and without BatchNorm.

A network without BatchNorm is shown through its BatchNorm twin (:mod:`cnnviz.batchnorm.twins`).
Everything is computed in :mod:`cnnviz.batchnorm` on copies of the model and drawn by
:mod:`cnnviz.figures_batchnorm`; the batch's statistics are kept per (model, batch), so a
slider only redraws.
"""
from __future__ import annotations

import streamlit as st
import torch

from cnnviz import figures_batchnorm as fb
from cnnviz.batchnorm import stats as bs
from cnnviz.batchnorm.compare import (examples_per_epoch, examples_to_reach, plan, recorded,
                                      start_jobs)
from cnnviz.batchnorm.twins import has_batch_norm, twin
from cnnviz.errors import CnnvizError
from cnnviz.models import build_meta
from cnnviz.limits import limit, over
from cnnviz.training.batches import prepare
from cnnviz.training.data import load_dataset
from cnnviz.training.queue import DEVICES
from cnnviz.ui.model_choice import choose_model
from cnnviz.ui.results import cannot_show
from cnnviz.ui.sizes_view import show_batch_one
from cnnviz.ui.state import current_spec, edit_spec, network_name, session_alive, shown_sizes
from cnnviz.ui.train_view import HISTORY
from cnnviz.workbench import analyse

KEY = "bn."
SIZES = (1, 2, 4, 8, 16, 32, 64, 128)
DRAWS = 40


def show_batchnorm_page() -> None:
    spec = current_spec()
    st.title("BatchNorm")
    st.caption(f"What the BatchNorm layers of **{network_name(spec)}** do on a real batch of "
               "the digits: the batch's statistics against the running ones, γ and β, train "
               "against eval mode, and the batch size.")
    if cannot_show(analyse(spec), builds_weights=True):
        return
    shown = _shown_spec(spec)
    if shown is None:
        return
    left, right = st.columns(2)
    with left:
        model, model_key, model_text, _ = choose_model(shown, KEY)
    with right:
        batch_size, seed = _batch_controls(shown)
    if model is None or batch_size is None:
        return
    x, labels = _batch(shown.in_channels, shown.input_size, batch_size, seed)
    layers = _bn_layers(model_key, _model=model)
    path = st.selectbox("BatchNorm layer", layers, key=KEY + f"layer.{shown!r}",
                        help="in the order the forward pass meets them")
    tabs = st.tabs(["Statistics", "γ and β", "Train vs eval", "Batch size",
                    "During training", "With vs without"])
    if batch_size == 1:
        found = _batch_of_one_found(model_key, shown.input_size, shown.in_channels, _model=model)
        refused = [b for b in found if not b.ok]
        if refused:
            with tabs[0]:
                _batch_of_one(found, shown)
            with tabs[3]:
                _show_batch_size(model, model_key, shown, path)
            return
    stats = _statistics(model_key, batch_size, seed, path, _model=model, _x=x)
    with tabs[0]:
        _show_statistics(stats, model_text)
    with tabs[1]:
        _show_affine(stats)
    with tabs[2]:
        _show_train_vs_eval(model, model_key, x, batch_size, seed, model_text)
    with tabs[3]:
        _show_batch_size(model, model_key, shown, path)
    with tabs[4]:
        _show_recorded(shown, path)
    with tabs[5]:
        _show_with_without(spec)


def _shown_spec(spec):
    """The network itself when it has BatchNorm, else its twin (said so, one click to adopt)."""
    if _has_batch_norm(repr(spec), spec):
        return spec
    other = _twin(repr(spec), spec)
    if other.spec is None:
        st.info(f"This network has no BatchNorm, and no twin with it: {other.what}.")
        return None
    st.info(f"**{network_name(spec)}** has no BatchNorm layer, so this page shows its "
            f"BatchNorm twin, **{network_name(other.spec)}**: it {other.what}")
    st.button("Make the twin the current network", key=KEY + "adopt",
              on_click=edit_spec, args=(other.spec,), icon=":material/swap_horiz:")
    return other.spec


# Every tab is computed when the page draws: a batch of 64 at 224 px through VGG is tens of
# seconds on a CPU, so networks with large inputs start from a smaller batch.
LARGE_INPUT = 64


def _batch_controls(spec) -> tuple[int | None, int]:
    """The batch size and which batch; sizes whose memory is over the server's cap are not
    offered (None, said why, when not even one image fits)."""
    st.subheader("Batch", anchor=False)
    per_image = _per_image(repr(spec), spec)
    sizes = [s for s in SIZES + (256,) if s * per_image <= limit("batch_mb") * 2**20]
    if not sizes:
        st.error(f"One image through this network's BatchNorm layers needs about "
                 f"{per_image / 2**20:,.0f} MB. " + over("batch_mb", per_image / 2**20))
        return None, 0
    a, b = st.columns(2)
    default = min(16 if spec.input_size > LARGE_INPUT else 64, sizes[-1])
    size = a.select_slider("Batch size", sizes, value=default, key=KEY + "batch",
                           help="images of the digits' training split, resized to the network's "
                                "input as in training")
    seed = b.number_input("Which batch", 0, 999, 0, key=KEY + "seed",
                          help="another number draws another batch")
    st.caption(f"{size} images of scikit-learn's digits, drawn at random (batch {seed}).")
    if sizes[-1] < 256:
        st.caption(_left_out("offered", sizes[-1], per_image * sizes[-1] * 2 / 2**20))
    return int(size), int(seed)


def _left_out(what: str, largest: int, next_mb: float) -> str:
    """Why batches above ``largest`` are not offered (or drawn): the next size's estimate is
    over the server's cap."""
    capped = over("batch_mb", next_mb) or ""
    return (f"Batches above {largest} are not {what}: for {largest * 2} images, "
            f"{capped[:1].lower()}{capped[1:]}")


@st.cache_data(max_entries=64, show_spinner=False)
def _per_image(spec_key: str, _spec) -> int:
    return bs.batch_memory(build_meta(_spec), (_spec.in_channels, _spec.input_size,
                                               _spec.input_size))


@st.cache_data(max_entries=8, show_spinner=False)  # a pool of 256 at 224 px is 150 MB
def _batch(channels: int, size: int, batch_size: int, seed: int):
    data = load_dataset("digits")
    order = torch.randperm(len(data.train_labels),
                           generator=torch.Generator().manual_seed(seed))[:batch_size]
    return prepare(data.train_images[order], channels=channels, size=size), \
        data.train_labels[order]


@st.cache_data(max_entries=32, show_spinner=False)
def _twin(spec_key: str, _spec):
    return twin(_spec)


@st.cache_data(max_entries=32, show_spinner=False)
def _has_batch_norm(spec_key: str, _spec) -> bool:
    return has_batch_norm(_spec)


@st.cache_data(max_entries=32, show_spinner=False)
def _bn_layers(model_key: str, _model) -> list[str]:
    return bs.bn_layers(_model)


@st.cache_data(max_entries=32, show_spinner=False)
def _batch_of_one_found(model_key: str, size: int, channels: int, _model):
    return bs.batch_of_one(_model, size, channels)


@st.cache_resource(max_entries=16, show_spinner="Running the batch through the network…")
def _statistics(model_key: str, batch_size: int, seed: int, path: str, _model, _x):
    # one layer's input at a time: every layer's at once is gigabytes on DenseNet-121
    return bs.batch_statistics(_model, _x, paths=[path])[path]


# -- statistics ---------------------------------------------------------------------------------

def _show_statistics(stats: bs.LayerStats, model_text: str) -> None:
    channel = st.number_input("Channel", 0, stats.channels - 1, 0,
                              key=KEY + f"channel.{stats.path}")
    st.plotly_chart(fb.channel_stats_figure(stats, selected=channel), key=KEY + "stats")
    mean, var = bs.after_step_running(stats)
    c = channel
    mu, v_b, v_u = (float(stats.batch_mean[c]), float(stats.batch_var_biased[c]),
                    float(stats.batch_var_unbiased[c]))
    over = "N·H·W" if stats.kind == "BatchNorm2d" else "N"
    lines = [f"**Channel {c} of `{stats.path}`** ({stats.kind}, the {model_text} network), "
             f"over {over} = {stats.count:,} values of this batch:",
             f"- batch mean μ_B = {mu:.4f}; batch variance σ²_B = {v_b:.4f} **(biased: ÷ "
             f"{stats.count:,}; training normalises with this one)**, unbiased {v_u:.4f} "
             f"(÷ {stats.count - 1:,}; the running variance is updated with this one)."]
    if stats.running_mean is not None:
        rm, rv = float(stats.running_mean[c]), float(stats.running_var[c])
        if stats.momentum is None:
            rule = (f"momentum None: a cumulative average over the {stats.batches_tracked} "
                    "batches so far and this one")
        else:
            m = stats.momentum
            rule = (f"momentum {m:g}: running = {1 - m:g}·running + {m:g}·batch, so "
                    f"running_mean becomes {1 - m:g}·{rm:.4f} + {m:g}·{mu:.4f} = "
                    f"{float(mean[c]):.4f} and running_var {1 - m:g}·{rv:.4f} + "
                    f"{m:g}·{v_u:.4f} = {float(var[c]):.4f}")
        lines.append(f"- running_mean = {rm:.4f}, running_var = {rv:.4f}: what eval mode "
                     f"normalises with. After a training step on this batch ({rule}).")
    lines.append(f"- γ = {float(stats.gamma[c]):.4f}, β = {float(stats.beta[c]):.4f}, "
                 f"ε = {stats.eps:g}.")
    st.markdown("\n".join(lines))
    x, x_hat, y = bs.normalised(stats, c)
    st.plotly_chart(fb.histograms_figure(x, x_hat, y, c, float(stats.gamma[c]),
                                         float(stats.beta[c])), key=KEY + "hist")


def _batch_of_one(found, spec) -> None:
    """Which layers can train on a batch of one image, and why not where they cannot."""
    if any(not b.ok for b in found):
        st.warning("At batch size 1 a BatchNorm layer in training mode has only one image's "
                   "values per channel; PyTorch refuses it where that is a single value:")
    else:
        st.info("At batch size 1 every BatchNorm layer here still has several values per "
                "channel (one image's height × width), so training runs, but each layer's "
                "statistics then come from a single image:")
    st.table([{"layer": b.path, "kind": b.kind, "values per channel": b.values_per_channel,
               "trains at batch 1": "yes" if b.ok else "no", "why": b.message}
              for b in found])
    show_batch_one(spec, shown_sizes(spec))  # the Input size page's own words and numbers


# -- γ and β ------------------------------------------------------------------------------------

def _show_affine(stats: bs.LayerStats) -> None:
    c = st.session_state.get(KEY + f"channel.{stats.path}", 0)
    x, x_hat, _ = bs.normalised(stats, c)
    undo_gamma, undo_beta = bs.undo(stats)
    g_key, b_key = KEY + f"gamma.{stats.path}.{c}", KEY + f"beta.{stats.path}.{c}"
    if g_key not in st.session_state:
        st.session_state[g_key] = round(float(stats.gamma[c]), 3)
        st.session_state[b_key] = round(float(stats.beta[c]), 3)
    st.markdown(f"Channel {c} of `{stats.path}` (pick it under **Statistics**). γ scales x̂ "
                "and β shifts it: training learns both, so the layer can give back any scale "
                "and offset it needs — even the input itself. These sliders change a copy, "
                "never the model.")
    a, b = st.columns(2)
    reach = max(3.0, 2 * float(undo_gamma[c]), 2 * abs(float(undo_beta[c])))
    gamma = a.slider("γ (scale)", -reach, reach, key=g_key, step=reach / 300)
    beta = b.slider("β (shift)", -reach, reach, key=b_key, step=reach / 300)
    st.button(f"Undo the normalisation: γ = √(σ²_B + ε) = {float(undo_gamma[c]):.3f}, "
              f"β = μ_B = {float(undo_beta[c]):.3f}", key=KEY + "undo",
              on_click=_set_affine, args=(g_key, b_key, float(undo_gamma[c]),
                                          float(undo_beta[c])))
    y = gamma * x_hat + beta
    gap = float((y - x).abs().max())
    st.plotly_chart(fb.histograms_figure(x, x_hat, y, c, gamma, beta), key=KEY + "affine.hist")
    if stats.kind == "BatchNorm2d":
        first = stats.input[0, c]
        mu, var = stats.batch_mean[c], stats.batch_var_biased[c]
        out = gamma * (first - mu) / torch.sqrt(var + stats.eps) + beta
        st.plotly_chart(fb.output_map_figure(out, f"{stats.path} output, channel {c}, first "
                                             "image of the batch"), key=KEY + "affine.map")
    st.caption(f"Largest |y − x| over the batch: {gap:.2e}" +
               (" — the layer gives its input back." if gap < 1e-4 else "."))


def _set_affine(g_key: str, b_key: str, gamma: float, beta: float) -> None:
    st.session_state[g_key], st.session_state[b_key] = gamma, beta


# -- train vs eval ------------------------------------------------------------------------------

@st.cache_resource(max_entries=16, show_spinner=False)
def _gap(model_key: str, batch_size: int, seed: int, _model, _x) -> bs.EvalGap:
    return bs.train_vs_eval(_model, _x)


def _show_train_vs_eval(model, model_key: str, x, batch_size: int, seed: int,
                        model_text: str) -> None:
    gap = _gap(model_key, batch_size, seed, _model=model, _x=x)
    st.plotly_chart(fb.eval_gap_figure(gap), key=KEY + "gap")
    caught = ("an untrained network's running statistics are still the initial 0 and 1, so "
              "eval mode normalises with numbers that have nothing to do with the data"
              if model_text == "freshly initialised" else
              "after training, the running statistics have followed the batches: eval mode "
              "normalises with their average, close to each batch's own")
    st.markdown(f"The same {gap.total} images through the network in training mode (each "
                f"BatchNorm normalises with this batch's statistics) and in eval mode (with "
                f"running_mean and running_var): **{gap.changed} of {gap.total} predictions "
                f"change**. Here {caught}.")


# -- batch size ---------------------------------------------------------------------------------

@st.cache_resource(max_entries=16, show_spinner="Drawing batches…")
def _spread(model_key: str, spec_key: str, path: str, sizes: tuple[int, ...], _model, _images):
    return bs.batch_spread(_model, _images, path, sizes, DRAWS,
                           generator=torch.Generator().manual_seed(0))


def _show_batch_size(model, model_key: str, spec, path: str) -> None:
    asked = KEY + f"spread.{model_key}.{path}"
    sizes = _spread_sizes(repr(spec), limit("batch_mb"), spec)
    if not sizes:
        st.error("The pool of images the batches are drawn from does not fit: "
                 + over("batch_mb", _spread_mb(spec, 1)))
    elif not st.session_state.get(asked):
        images = DRAWS * sum(sizes)
        st.markdown(f"How the batch statistics scatter as the batch shrinks: {DRAWS} random "
                    f"batches of each size from 1 to {sizes[-1]} ({images:,} images through "
                    "the network).")
        if sizes[-1] < SIZES[-1]:
            st.caption(_left_out("drawn", sizes[-1], _spread_mb(spec, sizes[-1] * 2)))
        st.button("Draw the batches", key=KEY + "spread.go", icon=":material/casino:",
                  on_click=_ask, args=(asked,))
    else:
        _draw_spread(model, model_key, spec, path)
    _batch_of_one(_batch_of_one_found(model_key, spec.input_size, spec.in_channels,
                                      _model=model), spec)


POOL = 256


def _spread_mb(spec, size: int) -> float:
    return bs.spread_memory(build_meta(spec), (spec.in_channels, spec.input_size,
                                               spec.input_size), size, POOL) / 2**20


@st.cache_data(max_entries=64, show_spinner=False)
def _spread_sizes(spec_key: str, cap: int, _spec) -> tuple[int, ...]:
    """The batch sizes the Batch size tab draws: those within the server's memory cap."""
    return tuple(s for s in SIZES if _spread_mb(_spec, s) <= cap)


def _ask(key: str) -> None:
    st.session_state[key] = True


def _draw_spread(model, model_key: str, spec, path: str) -> None:
    pool, _ = _batch(spec.in_channels, spec.input_size, POOL, 1000)
    sizes = _spread_sizes(repr(spec), limit("batch_mb"), spec)
    spread = _spread(model_key, repr(spec), path, sizes, _model=model, _images=pool)
    channel = st.session_state.get(KEY + f"channel.{path}", 0)
    running = getattr(model.get_submodule(path), "running_mean", None)
    st.plotly_chart(fb.spread_figure(spread, running, channel), key=KEY + "spread")
    st.markdown(f"{DRAWS} random batches of each size: the smaller the batch, the further its "
                f"mean strays from the running mean (the line) — the noise BatchNorm adds to "
                f"training, and why a tiny batch trains badly.")


# -- during training ----------------------------------------------------------------------------

WHATS = {"running_mean": "running_mean", "running_var": "running_var", "γ": "gamma",
         "β": "beta"}


def _show_recorded(spec, path: str) -> None:
    runs = [r for r in reversed(st.session_state.get(HISTORY, []))
            if r.spec == spec and recorded(r)]
    if not runs:
        st.info("Every run of a network with BatchNorm on the **Train** page records each "
                "BatchNorm layer's running_mean, running_var, γ and β at its metric points. "
                "Train this network there, and its runs appear here.")
        return
    by_title = {r.title: r for r in runs}
    a, b = st.columns([3, 2])
    run = by_title[a.selectbox("Run", list(by_title), key=KEY + "run")]
    what = b.radio("What", list(WHATS), key=KEY + "what", horizontal=True)
    entries = recorded(run).get(path, [])
    st.plotly_chart(fb.evolution_figure(entries, WHATS[what]), key=KEY + "evolution")
    st.caption(f"{len(entries)} metric points of run #{run.number}: the running statistics "
               "follow the batches' (momentum 0.1 a step), while γ and β move only as fast "
               "as the learning rate lets them.")


# -- with vs without ----------------------------------------------------------------------------

COMPARE_JOBS = KEY + "compare.jobs"


def _show_with_without(spec) -> None:
    other = _twin(repr(spec), spec)
    if other.spec is None:
        st.info(f"No comparison for this network: {other.what}.")
        return
    st.markdown(f"Train **{network_name(spec)}** and its twin **{network_name(other.spec)}** "
                "on the digits with the same seed, epochs and batch size, each at the book's "
                "learning rate for it, and optionally both at one shared rate. The runs wait "
                "in the device queue like any other.")
    a, b, c = st.columns(3)
    epochs = a.number_input("Epochs", 1, 50, 10, key=KEY + "cmp.epochs")
    shared = b.number_input("Shared learning rate (0: none)", 0.0, 10.0, 0.0, step=0.1,
                            key=KEY + "cmp.lr")
    target = c.slider("Accuracy to reach", 0.5, 0.99, 0.9, key=KEY + "cmp.target")
    jobs = st.session_state.get(COMPARE_JOBS)
    running = jobs is not None and not all(j.done for j in jobs)
    capped = over("epochs", epochs)
    if capped:
        st.error(capped)
    if st.button("Train with and without BatchNorm", key=KEY + "cmp.start", type="primary",
                 disabled=running or bool(capped), icon=":material/play_arrow:"):
        try:
            runs = plan(spec, "digits", epochs=int(epochs), shared_lr=shared or None)
        except CnnvizError as exc:
            st.error(f"The comparison did not start: {exc}")
            return
        waiting, most = DEVICES.waiting(), limit("queue")
        if waiting + len(runs) > most:
            st.error(f"The comparison did not start: {waiting} runs already wait for a device "
                     f"on this server and its {len(runs)} runs would pass the cap of {most} "
                     "(the teacher raises it with CNNVIZ_MAX_QUEUE; see docs/teaching.md).")
            return
        try:  # watched for a closed tab, as Train's runs are
            st.session_state[COMPARE_JOBS] = start_jobs(runs, first_number=1,
                                                        alive=session_alive())
        except CnnvizError as exc:
            st.error(f"The comparison did not start: {exc}")
            return
        st.rerun()
    if jobs is None:
        return
    if running:
        _compare_progress()
        return
    _compare_results(jobs, target)


@st.fragment(run_every=1.0)
def _compare_progress() -> None:
    jobs = st.session_state.get(COMPARE_JOBS) or []
    if all(j.done for j in jobs):
        st.rerun(scope="app")
    for job in jobs:
        st.progress(job.progress, text=f"{job.label}: {job.status()}")


def _compare_results(jobs, target: float) -> None:
    failed = [j for j in jobs if j.state != "finished"]
    for job in failed:
        st.error(f"{job.label}: {job.state}: {job.message}")
    done = [j for j in jobs if j.state == "finished"]
    if not done:
        return
    axis = st.radio("Against", ["examples", "seconds"], key=KEY + "cmp.axis", horizontal=True)
    per_epoch = {j.label: examples_per_epoch(j.config) for j in done}
    st.plotly_chart(fb.with_without_figure([(j.label, j.points()) for j in done], x=axis,
                                           examples_per_epoch=per_epoch), key=KEY + "cmp.figure")
    rows = []
    for job in done:
        points = job.points()
        reached = examples_to_reach(points, target, per_epoch[job.label])
        final = points[-1].test_acc if points else None
        rows.append({"run": job.label,
                     "test accuracy": f"{final:.1%}" if final is not None else "—",
                     f"examples to reach {target:.0%}": f"{reached:,}" if reached else "not reached",
                     "seconds": f"{points[-1].seconds:.1f}" if points else "—"})
    st.table(rows)
