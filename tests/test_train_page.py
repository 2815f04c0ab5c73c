"""The Train page, driven through ``streamlit_app.py`` with Streamlit's AppTest.

Runs are real but short: scikit-learn's bundled digits (no network), a few hundred examples.
AppTest does not fire ``st.fragment(run_every=...)`` timers, so the tests rerun the app until
the run has ended, as a user's browser would by polling. No test touches the network: the data
folder is an empty temporary one and ``urllib.request.urlopen`` fails at once.
"""
from __future__ import annotations

import csv
import io
import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from streamlit.runtime.pages_manager import PagesManager
from streamlit.testing.v1 import AppTest

from cnnviz.models import build
from cnnviz.presets import PRESETS
from cnnviz.specs import CustomSpec
from cnnviz.specs import custom as L
from cnnviz.training.checkpoint import state_dict_bytes
from cnnviz.training.config import TrainConfig, book_help
from cnnviz.training.engine import Point
from cnnviz.training.job import CSV_COLUMNS, FinishedRun, metrics_csv

APP = str(Path(__file__).resolve().parents[1] / "streamlit_app.py")
RUN_TIMEOUT_S = 90


@pytest.fixture(autouse=True)
def routed_as_served(monkeypatch):
    """Every rerun goes through ``streamlit_app.py``, as on a server (see test_pages.py)."""
    init = PagesManager.__init__

    def served_init(self, *args, **kwargs):
        init(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", served_init)


@pytest.fixture(autouse=True)
def offline(monkeypatch, tmp_path):
    """An empty data folder, and a network that answers nothing."""
    monkeypatch.setenv("CNNVIZ_DATA", str(tmp_path / "data"))

    def no_network(*args, **kwargs):
        raise urllib.error.URLError(OSError(-3, "Temporary failure in name resolution"))

    monkeypatch.setattr(urllib.request, "urlopen", no_network)


# --- helpers -------------------------------------------------------------------------------

def open_train(preset: str = "lenet") -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["preset"] = preset
    at.run()
    at.switch_page("pages/train.py").run()
    assert_ok(at)
    return at


def assert_ok(at: AppTest) -> None:
    assert not at.exception, [e.message for e in at.exception]
    assert at.title[0].value == "Train"


def settings(at: AppTest, *, dataset="digits", epochs=2, batch=64, lr=0.5, limit=500,
             **more) -> AppTest:
    at.selectbox(key="train.dataset").select(dataset)
    at.number_input(key="train.epochs").set_value(epochs)
    at.number_input(key="train.batch").set_value(batch)
    at.number_input(key="train.lr").set_value(lr)
    at.number_input(key="train.limit").set_value(limit)
    for key, value in more.items():
        at.number_input(key=f"train.{key}").set_value(value)
    at.run()
    assert_ok(at)
    return at


def start(at: AppTest) -> AppTest:
    at.button(key="train.start").click().run()
    assert_ok(at)
    return at


def run_to_end(at: AppTest) -> AppTest:
    """Rerun (as the page's polling fragment does) until the run has left the page."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while at.session_state["train.active"] is not None:
        assert time.monotonic() < deadline, "the run did not end in time"
        time.sleep(0.3)
        at.run()
        assert_ok(at)
    return at


def charts(at: AppTest) -> list[str]:
    """The keys of the page's Plotly charts."""
    return [c.proto.id.rsplit("-", 1)[-1] for c in at.get("plotly_chart")]


def download_keys(at: AppTest) -> list[str]:
    return [b.key for b in at.get("download_button")]


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.main.error]


def upload(at: AppTest, name: str, data: bytes) -> AppTest:
    at.file_uploader(key="train.upload").set_value((name, data, "application/octet-stream"))
    at.run()
    assert_ok(at)
    return at


# --- default state -------------------------------------------------------------------------

def test_default_state_offers_the_books_settings():
    at = open_train()
    dataset = at.selectbox(key="train.dataset")
    # Fashion-MNIST is not downloaded here: the default is a data set that is here.
    assert dataset.value == "digits"
    assert dataset.options == ["Fashion-MNIST (download ~30 MB)", "MNIST (download ~12 MB)",
                               "CIFAR-10 (download ~170 MB)", "Digits (offline)"]
    assert at.number_input(key="train.size").value == 28
    assert at.number_input(key="train.batch").value == 256
    assert at.number_input(key="train.lr").value == pytest.approx(0.9)  # d2l's LeNet
    assert at.number_input(key="train.batch").help == "the book uses 256 for this network " \
                                                      "(section 6.6)"
    assert at.number_input(key="train.epochs").value == 10
    assert at.radio(key="train.recipe").value == "book"
    assert at.selectbox(key="train.device").value == "auto"
    assert not at.toggle(key="train.augment").value
    assert not at.button(key="train.start").disabled and at.button(key="train.stop").disabled
    assert any("Estimated run time" in m.value and "downloading" not in m.value
               for m in at.markdown)
    assert not errors(at) and charts(at) == ["train.curves"]  # empty axes before a run
    # The book's data set is one click away, its download said before it starts.
    book = at.button(key="train.use_book_dataset")
    assert book.label == "Use Fashion-MNIST (30 MB)" and "downloads about 30 MB" in book.help
    book.click().run()
    assert_ok(at)
    assert at.selectbox(key="train.dataset").value == "fashion-mnist"
    assert any("Estimated run time" in m.value and "downloading about 30 MB" in m.value
               for m in at.markdown)
    assert not [b for b in at.button if b.key == "train.use_book_dataset"]


def test_fashion_mnist_is_the_default_once_downloaded(tmp_path):
    from cnnviz.training.idx import random_idx_dataset
    random_idx_dataset(tmp_path / "data", "fashion-mnist", n_train=20, n_test=10)
    at = open_train()
    assert at.selectbox(key="train.dataset").value == "fashion-mnist"
    assert at.selectbox(key="train.dataset").options[0] == "Fashion-MNIST (downloaded)"
    assert not [b for b in at.button if b.key == "train.use_book_dataset"]


def test_the_augmentation_help_says_what_each_data_set_gets():
    at = open_train()
    help_text = at.toggle(key="train.augment").help
    chosen = help_text.split("\n\n")[1].splitlines()[0]
    assert chosen == "- **Digits**: random crop, no flip (a mirrored digit is not the same digit)"
    at.selectbox(key="train.dataset").select("fashion-mnist").run()
    assert_ok(at)
    chosen = at.toggle(key="train.augment").help.split("\n\n")[1].splitlines()[0]
    assert chosen == "- **Fashion-MNIST**: random crop and horizontal flip"

def test_the_defaults_follow_the_network():
    at = open_train()
    at.sidebar.selectbox[0].select("resnet18").run()
    assert_ok(at)
    assert at.number_input(key="train.size").value == 96
    assert at.number_input(key="train.batch").value == 256  # d2l's ResNet (7.6)
    assert at.number_input(key="train.lr").value == pytest.approx(0.05)
    spec = PRESETS["resnet18"].spec
    assert at.number_input(key="train.batch").help == book_help(spec, "batch_size")
    assert at.number_input(key="train.lr").help == book_help(spec, "lr")
    # resnet is too big to time on every rerun: the estimate waits for a button
    assert at.button(key="train.estimate")


def test_settings_survive_a_page_switch():
    at = open_train()
    settings(at, epochs=3)
    at.switch_page("pages/build.py").run()
    at.switch_page("pages/train.py").run()
    assert_ok(at)
    assert at.selectbox(key="train.dataset").value == "digits"
    assert at.number_input(key="train.epochs").value == 3
    assert at.number_input(key="train.lr").value == pytest.approx(0.5)


def test_a_size_the_network_cannot_take_is_refused_before_start():
    at = open_train()
    at.number_input(key="train.size").set_value(20).run()
    assert_ok(at)
    [message] = errors(at)
    assert "does not run at input size 20" in message and "28" in message
    assert at.button(key="train.start").disabled


def test_a_time_budget_replaces_epochs_and_ends_the_run():
    at = open_train()
    at.radio(key="train.stop_after").set_value("time budget").run()
    assert_ok(at)
    assert not [n for n in at.number_input if n.key == "train.epochs"]
    assert at.number_input(key="train.budget").value == 60
    at.number_input(key="train.budget").set_value(2)
    at.selectbox(key="train.dataset").select("digits")
    at.number_input(key="train.limit").set_value(200).run()
    run_to_end(start(at))
    assert any("finished (the time budget is spent)" in s.value for s in at.success)
    [history] = at.session_state["train.history"]
    assert " · 2 s · " in history.title and history.points


# --- a whole run ---------------------------------------------------------------------------

def test_a_short_run_shows_curves_results_history_and_weights():
    at = open_train()
    at.sidebar.selectbox[0].select("lenet-bn").run()
    settings(at)
    start(at)
    assert "train.curves" in charts(at) or at.session_state["train.active"].done
    run_to_end(at)

    assert not errors(at)
    assert any(s.value.startswith("Run #1 finished") for s in at.success)
    assert {"train.curves", "train.confusion.1"} <= set(charts(at))
    [history] = at.session_state["train.history"]
    assert history.title.startswith("#1 lenet-bn · digits · 28px · 2 ep · bs 64 · lr 0.5")
    assert history.points[-1].epoch == 2.0 and history.points[-1].test_acc is not None
    assert at.multiselect(key="train.compare").value == [history.title]
    table = [d.value for d in at.dataframe if "test acc" in d.value.columns]
    assert len(table) == 1 and list(table[0]["run"]) == [1]
    assert {"train.download.csv", "train.download.weights.1"} <= set(download_keys(at))
    [mistakes] = at.image  # misclassified test images, captioned "true → predicted"
    assert mistakes.captions and all(" → " in c for c in mistakes.captions)
    assert len(mistakes.value) == len(history.result.mistakes)
    assert not at.button(key="train.start").disabled and at.button(key="train.stop").disabled
    trained = at.session_state["cnnviz.trained_model"]
    assert trained["spec"] == PRESETS["lenet-bn"].spec and trained["label"] == history.title
    # The page names the page that inspects the model, and promises nothing vaguer.
    assert not any("other page" in text for text in page_texts(at))
    assert any("**Feature maps** shows what this model's layers compute" in c.value
               for c in at.caption)
    assert any("download them to keep them" in c.value for c in at.caption)

    # the run's own weights load back into the network; garbage and another network's do not
    upload(at, "lenet-bn-run1.pt", state_dict_bytes(history.result.model))
    assert any("Loaded lenet-bn-run1.pt into lenet-bn" in s.value for s in at.success)
    assert not any("other page" in text for text in page_texts(at))
    assert at.session_state["cnnviz.trained_model"]["label"] == "lenet-bn-run1.pt (loaded)"

    upload(at, "garbage.pt", b"this is not a checkpoint")
    [message] = errors(at)
    assert "garbage.pt was not loaded" in message and "not a PyTorch state_dict file" in message

    upload(at, "lenet.pt", state_dict_bytes(build(PRESETS["lenet"].spec)))
    [message] = errors(at)
    assert "lenet.pt was not loaded" in message and "different network" in message
    assert at.session_state["cnnviz.trained_model"]["label"] == "lenet-bn-run1.pt (loaded)"


def test_a_second_run_overlays_the_first():
    at = open_train()
    settings(at, epochs=1, lr=0.9, limit=200)
    run_to_end(start(at))
    at.sidebar.selectbox[0].select("lenet-bn").run()
    settings(at, epochs=1, limit=200)
    run_to_end(start(at))
    titles = [r.title for r in at.session_state["train.history"]]
    assert [t.split(" · ")[0] for t in titles] == ["#1 lenet", "#2 lenet-bn"]
    assert at.multiselect(key="train.compare").value == titles
    assert at.selectbox(key="train.results_of").value == titles[1]
    figure = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert [t["name"] for t in figure["data"] if t.get("meta") == "train loss"] == titles


def test_stop_ends_a_run_and_keeps_what_it_learned():
    at = open_train()
    settings(at, epochs=100, limit=None)  # the default cap (CNNVIZ_MAX_EPOCHS)
    start(at)
    assert at.button(key="train.start").disabled and not at.button(key="train.stop").disabled
    assert at.number_input(key="train.lr").disabled  # the settings are the run's now
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while not at.session_state["train.active"].points():  # let it learn something first
        assert time.monotonic() < deadline
        time.sleep(0.2)
    at.button(key="train.stop").click().run()
    run_to_end(at)
    [history] = at.session_state["train.history"]
    last = history.points[-1]
    assert history.state == "stopped" and last.epoch < 100
    # What it learned is tested when it stops: the test figure is of the same weights.
    assert last.test_acc is not None
    epochs = f"{last.epoch:.2f}".rstrip("0").rstrip(".")
    [stopped] = [i.value for i in at.info if "was stopped" in i.value]
    assert stopped.startswith(f"Run #1 was stopped at epoch {epochs};")
    assert stopped.count("stopped") == 1
    shown = {m.label: m.value for m in at.metric}
    assert shown["epochs"] == epochs and len(epochs.partition(".")[2]) <= 2
    assert shown["test accuracy"] == f"{last.test_acc:.1%}"


def test_a_run_that_ends_near_chance_says_why_and_what_to_try():
    at = open_train()  # the book's LeNet (sigmoids, plain SGD) on 1,437 digits: 12 steps
    settings(at, epochs=2, batch=256, lr=0.9, limit=0)
    run_to_end(start(at))
    [history] = at.session_state["train.history"]
    assert history.points[-1].test_acc <= 0.15
    [advice] = [w.value for w in at.warning if "about chance" in w.value]
    assert "**12 optimizer steps** (2 epochs of 6 batches" in advice
    assert "sigmoid" in advice and "lenet-bn" in advice and "**fast** recipe" in advice


def page_texts(at: AppTest) -> list[str]:
    return [e.value for kind in ("markdown", "caption", "success", "info", "warning", "error")
            for e in getattr(at, kind)] + [b.label for b in at.button]

# --- failures ------------------------------------------------------------------------------

def test_a_diverging_run_says_so_and_keeps_the_page():
    at = open_train()  # LeNet without BatchNorm: lr 90 blows up within the first epoch
    settings(at, lr=90.0)
    run_to_end(start(at))
    [message] = errors(at)
    assert "Run #1 failed" in message and "diverged — lower the learning rate" in message
    assert at.number_input(key="train.lr").value == 90.0  # the settings are still there
    assert not at.button(key="train.start").disabled


def test_a_data_set_that_cannot_be_downloaded_explains_and_offers_digits():
    at = open_train()
    settings(at, dataset="fashion-mnist")
    run_to_end(start(at))
    [message] = errors(at)
    assert "Could not download Fashion-MNIST (no network connection" in message
    assert "offline 'digits' data set" in message
    at.button(key="train.use_digits").click().run()
    assert_ok(at)
    assert at.selectbox(key="train.dataset").value == "digits"


# --- the CSV -------------------------------------------------------------------------------

def test_metrics_csv_has_a_row_per_point_per_run():
    spec = PRESETS["lenet"].spec
    first = FinishedRun(1, "lenet · digits", spec, TrainConfig(dataset="digits"), ("0",),
                        "finished", "done", "cpu",
                        (Point(0.5, 2.0, 0.3, None, 900.0, 1.0),
                         Point(1.0, 1.5, 0.5, 0.55, 950.0, 2.0)), None)
    second = FinishedRun(2, "lenet · mnist", spec, TrainConfig(dataset="mnist"), ("0",),
                         "stopped", "stopped", "cpu",
                         (Point(0.25, 2.2, 0.2, None, 800.0, 0.5),), None)
    rows = list(csv.DictReader(io.StringIO(metrics_csv([first, second], lambda s: "lenet"))))
    assert list(rows[0]) == list(CSV_COLUMNS)
    assert [(r["run"], r["epoch"], r["test_acc"]) for r in rows] == \
        [("1", "0.5", ""), ("1", "1.0", "0.55"), ("2", "0.25", "")]
    assert rows[2]["dataset"] == "mnist" and rows[2]["state"] == "stopped"
    assert float(rows[1]["train_loss"]) == 1.5


def test_a_live_run_redraws_its_curves_every_few_seconds_not_every_poll(monkeypatch):
    """A poll between redraws sends the figure it sent before, which the browser keeps:
    redrawing the curves is most of what a poll costs the browser (and the training)."""
    from types import SimpleNamespace

    from cnnviz.ui import train_view

    state, clock = {}, [100.0]
    monkeypatch.setattr(train_view.st, "session_state", state)
    monkeypatch.setattr(train_view.time, "monotonic", lambda: clock[0])
    points = [Point(0.25, 2.0, 0.2, None, 1000.0, 0.1, 0.1)]
    job = SimpleNamespace(number=1, label="lenet", points=lambda: list(points))
    first = train_view._curves_figure(job)
    points.append(Point(0.5, 1.5, 0.4, None, 1000.0, 0.2, 0.2))
    clock[0] += train_view.CURVE_SECONDS / 2
    assert train_view._curves_figure(job) is first  # a poll in between: the same figure
    clock[0] += train_view.CURVE_SECONDS
    later = train_view._curves_figure(job)
    assert later is not first and len(later.data[0].x) == 2
    state[train_view.HISTORY] = []
    state[train_view.COMPARE] = ["#0 an earlier run"]  # the learner changed the runs shown
    assert train_view._curves_figure(job) is not later
    assert train_view._curves_figure(None) is not later and state[train_view.LIVE_CURVES] is None


def test_a_run_with_batchnorm_records_its_statistics_and_points_to_the_batchnorm_page():
    from cnnviz.batchnorm.compare import recorded
    from cnnviz.batchnorm.recorder import batch_norm_layers

    line = "BatchNorm statistics were recorded at each of its"
    at = open_train()
    settings(at, epochs=1, lr=0.9, limit=200)
    run_to_end(start(at))
    [plain] = at.session_state["train.history"]
    assert recorded(plain) is None and not any(line in c.value for c in at.caption)

    at.sidebar.selectbox[0].select("lenet-bn").run()
    settings(at, epochs=1, limit=200)
    run_to_end(start(at))
    bn = at.session_state["train.history"][-1]
    history = recorded(bn)
    layers = [path for path, _ in batch_norm_layers(bn.result.model)]
    assert list(history) == layers and len(layers) == 4  # 2 BatchNorm2d, 2 BatchNorm1d
    assert all([e.epoch for e in entries] == [p.epoch for p in bn.points]
               for entries in history.values())
    assert [c.value for c in at.caption if line in c.value] == [
        f"{line} {len(bn.points)} metric points: see them on the **BatchNorm** page."]
    # the first run's results show no such line
    at.selectbox(key="train.results_of").select(plain.title).run()
    assert not any(line in c.value for c in at.caption)


@pytest.mark.parametrize("layers, says", [
    ((L.MaxPool(2),), "edited custom has no parameters to train"),
    ((L.AdaptiveAvgPool(1), L.Flatten(), L.Linear(1, 1)),
     "edited custom outputs 1 per image, but Digits has 10 classes"),
])
def test_a_network_that_could_only_break_off_is_refused_before_start(layers, says):
    """Found by the page fuzz: the estimate raised "empty parameter list" and "Target out of
    bounds" on the page; a custom chain's last layer decides its outputs, not num_classes."""
    at = open_train()
    at.session_state["cnnviz.spec"] = CustomSpec(1, 10, 32, layers)
    at.run()
    assert_ok(at)
    assert any(e.startswith(says) for e in errors(at)) and at.button(key="train.start").disabled
