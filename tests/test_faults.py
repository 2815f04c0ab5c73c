"""Faults, each with a clear message while the app and the other sessions go on: a run killed
mid-epoch, a device that stops responding, a download cut off halfway, a damaged data cache,
weights of another network, and (through the URL's run count) a session the server lost.

Faults are injected, never waited for: a run's step raises after a few steps (the first
run trained in this test, through the engine's ``make_recipe``), the network is a patched
``urllib.request.urlopen`` serving files from memory, a cache is damaged by rewriting its
files. The server's restart itself is a browser test (tests/test_browser_restart.py).
"""
from __future__ import annotations

import dataclasses
import gzip
import hashlib
import itertools
import threading
import time
import urllib.error
import urllib.request

import pytest
import torch
import torchvision
from streamlit.testing.v1 import AppTest

from cnnviz.models import build
from cnnviz.presets import PRESETS
from cnnviz.specs.url import spec_to_token
from cnnviz.training import engine
from cnnviz.training.checkpoint import state_dict_bytes
from cnnviz.training.config import DEVICE_CHOICES, TrainConfig
from cnnviz.training.data import (cache_problems, clear_cache, is_downloaded, load_dataset,
                                  remove_damaged)
from cnnviz.training.datasets import DATASETS, DataError
from cnnviz.training import config, faults
from cnnviz.training.config import lost_devices
from cnnviz.training.faults import lost_device
from cnnviz.training.files import IMAGES_MAGIC, LABELS_MAGIC
from cnnviz.training.idx import random_idx_dataset, raw_folder
from cnnviz.training.queue import DeviceQueue
from cnnviz.ui.state import RUNS, _SPEC as SPEC_KEY
from cnnviz.ui import train_view
from cnnviz.ui.train_results import TRAINED_MODEL
from tests.test_data import _Response
from tests.test_maps_page import charts, open_page, train_briefly
from tests.test_pages import routed_as_served, table  # noqa: F401 (autouse: reruns as served)
from tests.test_train_page import (APP, errors, offline, open_train,  # noqa: F401 (autouse)
                                   run_to_end, settings, start, upload)

LENET = PRESETS["lenet"].spec
LENET_BN = PRESETS["lenet-bn"].spec
# 300 digits in batches of 64: 5 steps an epoch (metric points after steps 1, 2 and 4 and
# at each epoch's end), so the 7th step is the 2nd of epoch 2, 1.2 epochs done.
SHORT = TrainConfig(dataset="digits", epochs=3, batch_size=64, lr=0.5, limit=300, device="cpu")
FAULT_STEP = 7
WHERE = "in epoch 2 of 3, after 1.2 epochs"
CUDA_GONE = "CUDA error: unspecified launch failure\nCUDA kernel errors might be " \
            "asynchronously reported at some other API call, so the stacktrace below might be " \
            "incorrect."


@pytest.fixture(autouse=True)
def devices_lost_here_only(monkeypatch):
    """The simulated losses are not the process's: other tests still see every device."""
    monkeypatch.setattr(config, "LOST_DEVICES", {})


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", limit=300)


class Fault:
    """Makes the first run trained in a training thread raise ``error`` in its step number
    ``at``, once the test sets :attr:`go` (so it can line up a second run behind it first).
    Run-time estimates, made in the page's thread, step unharmed."""

    def __init__(self, monkeypatch, error: BaseException, at: int = FAULT_STEP):
        self.error, self.at = error, at
        self.go = threading.Event()
        self.armed = False
        real = engine.make_recipe

        def make_recipe(*args, **kwargs):
            recipe = real(*args, **kwargs)
            if threading.current_thread().name.startswith("cnnviz-training") \
                    and not self.armed:
                self.armed = True
                self._arm(recipe)
            return recipe

        monkeypatch.setattr(engine, "make_recipe", make_recipe)

    def _arm(self, recipe) -> None:
        step, count = recipe.step, itertools.count(1)

        def faulty(*args, **kwargs):
            if next(count) == self.at:
                assert self.go.wait(60), "the test never let the fault happen"
                raise self.error
            return step(*args, **kwargs)

        recipe.step = faulty


def shown(at: AppTest, key: str, value: str) -> str:
    """How the selectbox ``key`` shows its option ``value``."""
    values = DEVICE_CHOICES if key == "train.device" else list(DATASETS)
    return dict(zip(values, at.selectbox(key=key).options))[value]


def wait_for(condition, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.05)


def kept_points(run) -> list[float]:
    """The epochs of a run's points at its fixed marks (steps 1, 2 and 4 of 5, each epoch's
    end). A busy machine adds points between them: one at least every 2 s."""
    return [p.epoch for p in run.points()
            if p.test_acc is not None or round(p.epoch % 1, 4) in (0.2, 0.4, 0.8)]


def failed_with_a_second_run_behind(fault: Fault, data) -> tuple[engine.TrainingRun,
                                                                 engine.TrainingRun]:
    """A run that meets ``fault`` while a second run waits for the same device."""
    queue = DeviceQueue()
    first = engine.TrainingRun(LENET, SHORT, dataset=data, queue=queue).start()
    wait_for(lambda: first.queue_position() == 0, "the first run holds the device")
    second = engine.TrainingRun(LENET, SHORT, dataset=data, queue=queue).start()
    wait_for(lambda: second.queue_position() == 1, "the second run waits behind it")
    fault.go.set()
    assert first.join(60) and second.join(120)
    assert first.queue_position() == second.queue_position() == -1  # nothing holds the device
    return first, second


# -- 1. a run killed mid-epoch ----------------------------------------------------------------

@pytest.mark.parametrize("error, said", [
    (RuntimeError("injected fault"), "training broke off " + WHERE +
     " — RuntimeError: injected fault."),
    # A signal never reaches a worker thread, but code in it may raise these; before, the run
    # ended looking as if it still trained, and KeyboardInterrupt printed a traceback.
    (KeyboardInterrupt(), "training was interrupted " + WHERE + " — KeyboardInterrupt."),
    (SystemExit(3), "training was interrupted " + WHERE + " — SystemExit: 3."),
])
def test_a_run_killed_mid_epoch_fails_at_its_epoch_keeps_its_points_and_frees_the_device(
        monkeypatch, digits, capsys, error, said):
    first, second = failed_with_a_second_run_behind(Fault(monkeypatch, error), digits)
    assert first.state == "failed"
    assert first.message == said + " Its curves up to there are kept; Start again to retry."
    assert kept_points(first) == [0.2, 0.4, 0.8, 1.0, 1.2]
    assert [p.epoch for p in first.points() if p.test_acc is not None] == [1.0]  # its test too
    assert first.model is None and first.result is None and first.done
    assert second.state == "finished" and second.message == "done"
    assert second.points()[-1].epoch == 3.0
    assert "Traceback" not in capsys.readouterr().err


def test_a_run_that_breaks_while_testing_says_so(monkeypatch, digits):
    def broken_test(*args, **kwargs):
        raise ValueError("test split unreadable")

    monkeypatch.setattr(engine, "evaluate", broken_test)
    run = engine.TrainingRun(LENET, SHORT, dataset=digits, queue=DeviceQueue()).start()
    assert run.join(60) and run.state == "failed"
    assert run.message.startswith("training broke off while testing what it learned after 1 "
                                  "of 3 epochs — ValueError: test split unreadable.")
    assert kept_points(run) == [0.2, 0.4, 0.8]


def failed_on_the_page_with_another_session_waiting(fault: Fault, theirs: str = "lenet"):
    """Two sessions of the Train page: the first's run meets ``fault`` while the second's
    (network ``theirs``) waits for the device. Returns both pages, the first's run ended."""
    mine, other = open_train(), open_train(theirs)
    settings(mine, epochs=3, limit=300)
    settings(other, epochs=1, limit=300)
    # Both on the CPU, named: on a GPU machine "auto (cuda)" becomes "auto (cpu)" once cuda is
    # lost, and AppTest (not a browser) finds a selectbox's choice by that label.
    for page in (mine, other):
        page.selectbox(key="train.device").select("cpu").run()
    job = start(mine).session_state["train.active"]
    wait_for(lambda: job.state == "running", "the first session's run trains")
    waiting = start(other).session_state["train.active"]
    wait_for(lambda: waiting.queue_position() == 1, "the other session's run waits")
    fault.go.set()
    return run_to_end(mine), other


def test_the_page_shows_the_failure_keeps_the_curves_and_the_other_session_trains(monkeypatch):
    mine, theirs = failed_on_the_page_with_another_session_waiting(
        Fault(monkeypatch, RuntimeError("injected fault")), "lenet-bn")
    [message] = errors(mine)
    assert message.startswith(f"**Run #1 failed:** training broke off {WHERE} — RuntimeError: "
                              "injected fault.")
    assert "Traceback" not in message and "\n" not in message
    history = table(mine, "state")
    assert history["state"].tolist() == ["failed"] and history["epochs"].tolist() == [1.2]
    assert "train.curves" in charts(mine)
    assert not mine.button(key="train.start").disabled  # Start again
    run_to_end(theirs)
    assert not errors(theirs)
    assert any(s.value.startswith("Run #1 finished") for s in theirs.success)


# -- 5. the device stops responding -----------------------------------------------------------

@pytest.mark.parametrize("error", [torch.AcceleratorError(CUDA_GONE), RuntimeError(CUDA_GONE)],
                         ids=["AcceleratorError", "RuntimeError"])
def test_a_device_that_stops_responding_fails_the_run_and_the_next_one_trains(
        monkeypatch, digits, error):
    first, second = failed_with_a_second_run_behind(Fault(monkeypatch, error), digits)
    assert first.state == "failed"
    assert first.message == (
        f"the device cuda stopped responding {WHERE} — {type(error).__name__}: CUDA error: "
        "unspecified launch failure. Its curves up to there are kept; choose cpu and Start "
        "again (cuda may only come back when the server restarts).")
    assert kept_points(first) == [0.2, 0.4, 0.8, 1.0, 1.2]
    assert second.state == "finished"
    # Lost for the rest of the process (CUDA's context stays broken): pages can say so.
    assert lost_devices() == {"cuda": f"{type(error).__name__}: CUDA error: unspecified "
                                      "launch failure"}


@pytest.mark.parametrize("error", [
    torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    # what an H200 raised when CUDA itself (not the caching allocator) found no memory
    torch.AcceleratorError("CUDA error: out of memory"),
    RuntimeError("cuDNN error: CUDNN_STATUS_ALLOC_FAILED"),
], ids=["OutOfMemoryError", "AcceleratorError", "cuDNN"])
def test_out_of_memory_is_said_as_such_and_loses_no_device(monkeypatch, digits, error):
    first, second = failed_with_a_second_run_behind(Fault(monkeypatch, error), digits)
    assert first.state == "failed"
    assert first.message == ("out of memory at batch size 64 on cpu; try batch size 32 or a "
                             "smaller input size")
    assert lost_device(error, "cuda") is None and lost_devices() == {}
    assert second.state == "finished"


def test_a_run_that_fails_otherwise_loses_no_device(monkeypatch, digits):
    first, _ = failed_with_a_second_run_behind(
        Fault(monkeypatch, RuntimeError("mat1 and mat2 shapes cannot be multiplied")), digits)
    assert first.state == "failed" and lost_devices() == {}


def test_what_counts_as_a_device_that_went_away():
    assert lost_device(RuntimeError(CUDA_GONE), "cuda:1") == "cuda:1"
    assert lost_device(torch.AcceleratorError("CUDA error: device not ready"), "") == "cuda"
    assert lost_device(RuntimeError("Found no NVIDIA driver on your system."), "cuda") == "cuda"
    assert lost_device(RuntimeError("CUDA driver error: unknown error"), "cuda") == "cuda"
    assert lost_device(RuntimeError("mat1 and mat2 shapes cannot be multiplied"), "cuda") is None
    assert lost_device(ValueError("CUDA error: not a RuntimeError"), "cuda") is None


def test_a_gpu_gone_between_the_settings_and_start_is_refused_by_name(monkeypatch):
    gone = threading.Event()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: not gone.is_set())
    # The GPU goes as Start is pressed. (Between two reruns AppTest could not even send the
    # Device choice: it finds the selected option by its label, which has just changed.)
    press = train_view._start

    def start_as_the_gpu_goes(spec):
        gone.set()
        press(spec)

    monkeypatch.setattr(train_view, "_start", start_as_the_gpu_goes)
    at = open_train()
    settings(at, epochs=1, limit=300)
    at.selectbox(key="train.device").select("cuda").run()
    assert shown(at, "train.device", "cuda") == "cuda"
    start(at)
    gone_text = "Device cuda is not available on this machine; choose auto or cpu."
    assert errors(at) == [gone_text, f"The run did not start: {gone_text}"]
    assert "train.active" not in at.session_state  # no run was made
    assert shown(at, "train.device", "cuda") == "cuda — not available here"
    at.selectbox(key="train.device").select("cpu").run()
    run_to_end(start(at))
    assert not errors(at) and any(s.value.startswith("Run #1 finished") for s in at.success)


def test_a_device_lost_mid_run_is_named_on_the_page_and_the_other_session_trains(monkeypatch):
    mine, theirs = failed_on_the_page_with_another_session_waiting(
        Fault(monkeypatch, torch.AcceleratorError(CUDA_GONE)))
    [message] = errors(mine)
    assert message.startswith(f"**Run #1 failed:** the device cuda stopped responding {WHERE}")
    assert message.endswith("choose cpu and Start again (cuda may only come back when the "
                            "server restarts).")
    run_to_end(theirs)
    assert any(s.value.startswith("Run #1 finished") for s in theirs.success)


# -- 2. a download cut off halfway ------------------------------------------------------------

class _Dropped(_Response):
    """A response whose connection drops after ``cut`` bytes."""

    def __init__(self, url, payload, cut):
        super().__init__(url, payload)
        self.cut = cut

    def read(self, size=-1):
        left = self.cut - self.tell()
        if left <= 0:
            raise ConnectionResetError(104, "Connection reset by peer")
        return super().read(left if size is None or size < 0 else min(size, left))


class FashionServer:
    """Fashion-MNIST's four files, small and gzipped, served from memory by a patched
    ``urlopen``; ``drop`` names a file whose connection breaks halfway."""

    def __init__(self, monkeypatch, source):
        random_idx_dataset(source, "fashion-mnist", n_train=600, n_test=100)
        fashion = torchvision.datasets.FashionMNIST
        raw = raw_folder(source, "fashion-mnist")
        self.files = {name: gzip.compress((raw / name.removesuffix(".gz")).read_bytes())
                      for name, _ in fashion.resources}  # in torchvision's order
        resources = [(name, hashlib.md5(data).hexdigest()) for name, data in self.files.items()]
        monkeypatch.setattr(fashion, "mirrors", ["http://mirror.test/"])
        monkeypatch.setattr(fashion, "resources", resources)
        monkeypatch.setattr(urllib.request, "urlopen", self.serve)
        self.drop: str | None = None
        self.served: list[str] = []

    def serve(self, request, *args, **kwargs):
        url = request.full_url
        name = url.rsplit("/", 1)[1]
        self.served.append(name)
        if name == self.drop:
            return _Dropped(url, self.files[name], len(self.files[name]) // 2)
        return _Response(url, self.files[name])


TRAIN_IMAGES = "train-images-idx3-ubyte.gz"


def test_a_download_cut_off_halfway_says_where_and_the_next_start_downloads_cleanly(
        monkeypatch, tmp_path):
    server = FashionServer(monkeypatch, tmp_path / "source")
    server.drop = TRAIN_IMAGES
    root = tmp_path / "cache"
    size = len(server.files[TRAIN_IMAGES])
    with pytest.raises(DataError) as caught:
        load_dataset("fashion-mnist", root)
    assert str(caught.value) == (
        f"The download of Fashion-MNIST stopped after {size // 2 / 1e6:.1f} MB of "
        f"{size / 1e6:.1f} MB ({TRAIN_IMAGES}, file 1 of 4: Connection reset by peer). Start "
        f"again to retry, or use the offline Digits data set ('digits').")
    raw = raw_folder(root, "fashion-mnist")
    assert not (raw / TRAIN_IMAGES).exists()  # the half file is gone
    assert not is_downloaded("fashion-mnist", root)

    server.drop = None  # the connection is back
    data = load_dataset("fashion-mnist", root)
    assert is_downloaded("fashion-mnist", root)
    assert data.train_images.shape == (600, 1, 28, 28) and len(data.test_labels) == 100
    # Two requests a try (torchvision asks for a redirect first): the cut one, then this one.
    assert server.served.count(TRAIN_IMAGES) == 4


def test_the_train_page_says_the_download_stopped_and_start_again_trains(monkeypatch,
                                                                           tmp_path):
    server = FashionServer(monkeypatch, tmp_path / "source")
    server.drop = TRAIN_IMAGES
    at = open_train()
    settings(at, dataset="fashion-mnist", epochs=1, limit=300)
    run_to_end(start(at))
    [message] = errors(at)
    assert message.startswith("**Run #1 failed:** The download of Fashion-MNIST stopped after ")
    assert "Start again to retry, or use the offline Digits" in message
    assert at.button(key="train.use_digits")  # the page offers the offline set
    server.drop = None
    job = start(at).session_state["train.active"]
    # Waited for here, not by rerunning the page: once downloaded, the data set's label in
    # the Data set box changes, and AppTest finds a selected option by its label.
    assert job.join(120) and job.state == "finished" and job.number == 2, job.message
    assert job.points()[-1].epoch == 1.0
    again = open_train()  # the next session finds it downloaded and starts from it
    assert again.selectbox(key="train.dataset").value == "fashion-mnist"
    assert shown(again, "train.dataset", "fashion-mnist") == "Fashion-MNIST (downloaded)"


# -- 3. a damaged data cache ------------------------------------------------------------------

def _header(magic: int, *dims: int) -> bytes:
    return b"".join(n.to_bytes(4, "big") for n in (magic, *dims))


def _cut(path):
    path.write_bytes(path.read_bytes()[:1000])


def _zeros(path):
    path.write_bytes(bytes(path.stat().st_size))


def _labels_magic(path):
    path.write_bytes(_header(LABELS_MAGIC) + path.read_bytes()[4:])


def _one_label_short(path):
    labels = path.with_name("train-labels-idx1-ubyte")
    labels.write_bytes(_header(LABELS_MAGIC, 39) + labels.read_bytes()[8:-1])


def _longer(path):
    path.write_bytes(path.read_bytes() + b"\0" * 10)


def _wrong_side(path):
    path.write_bytes(_header(IMAGES_MAGIC, 40, 32, 32) + bytes(40 * 32 * 32))


def _missing(path):
    path.with_name("t10k-labels-idx1-ubyte").unlink()


SIZE = 16 + 40 * 28 * 28  # the training images' file: 40 images
DAMAGE = {
    "truncated": (_cut, f"train-images-idx3-ubyte is cut short: 1,000 of {SIZE:,} bytes"),
    "zeros": (_zeros, "train-images-idx3-ubyte is not an IDX file of images: its magic "
                      "number is 0, not 2051 (it starts with zeros)"),
    "wrong magic": (_labels_magic, "train-images-idx3-ubyte is not an IDX file of images: its "
                                   "magic number is 2049, not 2051"),
    "counts disagree": (_one_label_short, "train-images-idx3-ubyte holds 40 images but "
                                          "train-labels-idx1-ubyte 39 labels"),
    "longer": (_longer, f"train-images-idx3-ubyte is longer than its header says: "
                        f"{SIZE + 10:,} bytes, not {SIZE:,}"),
    "wrong size": (_wrong_side, "train-images-idx3-ubyte holds 32×32 images, not 28×28"),
    "missing": (_missing, "t10k-labels-idx1-ubyte is missing"),
}


def damaged_cache(root, damage: str):
    random_idx_dataset(root, "fashion-mnist", n_train=40, n_test=20)
    images = raw_folder(root, "fashion-mnist") / "train-images-idx3-ubyte"
    DAMAGE[damage][0](images)
    clear_cache()
    return images.parent


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_cache_is_not_downloaded_and_its_message_names_the_file(tmp_path,
                                                                           damage):
    folder = damaged_cache(tmp_path, damage)
    problem = DAMAGE[damage][1]
    assert not is_downloaded("fashion-mnist", tmp_path)
    assert [p.problem for p in cache_problems("fashion-mnist", tmp_path)] == [problem]
    with pytest.raises(DataError) as caught:
        load_dataset("fashion-mnist", tmp_path, download=False)
    if damage == "missing":
        assert str(caught.value) == (
            f"Fashion-MNIST is incomplete under {folder}: {problem}. Download it again with a "
            f"network connection, place the files there, or choose the offline 'digits' "
            f"data set.")
    else:
        assert str(caught.value) == (
            f"Could not read Fashion-MNIST from {folder} ({problem}). Delete that folder to "
            f"download it again, or choose the offline 'digits' data set.")


@pytest.mark.parametrize("damage", ["truncated", "missing"])
def test_a_damaged_cache_with_no_network_names_the_file_too(tmp_path, damage):
    # the offline fixture: urlopen fails at once, as with no network
    folder = damaged_cache(tmp_path, damage)
    with pytest.raises(DataError) as caught:
        load_dataset("fashion-mnist", tmp_path)
    message = str(caught.value)
    assert DAMAGE[damage][1] in message and str(folder) in message and "\n" not in message
    if damage == "missing":  # a missing file is downloaded again; a damaged one is not
        assert message.startswith("Could not download Fashion-MNIST (no network connection")


def test_removing_the_damaged_files_touches_nothing_else_and_a_download_repairs_the_cache(
        monkeypatch, tmp_path):
    server = FashionServer(monkeypatch, tmp_path / "source")
    root = tmp_path / "cache"
    folder = damaged_cache(root, "truncated")
    healthy = {p.name: p.read_bytes() for p in folder.iterdir() if "train-images" not in p.name}
    (folder / "notes.txt").write_text("mine")
    # A link named as torchvision's file, to a damaged file outside the cache: not followed.
    outside = tmp_path / "elsewhere.idx"
    outside.write_bytes(b"\0" * 100)
    (folder / "t10k-images-idx3-ubyte").unlink()
    (folder / "t10k-images-idx3-ubyte").symlink_to(outside)
    assert {p.path.name for p in cache_problems("fashion-mnist", root)} == \
        {"train-images-idx3-ubyte", "t10k-images-idx3-ubyte"}

    assert remove_damaged("fashion-mnist", root) == [folder / "train-images-idx3-ubyte"]
    assert outside.read_bytes() == b"\0" * 100 and (folder / "notes.txt").read_text() == "mine"
    assert all((folder / name).read_bytes() == data for name, data in healthy.items()
               if name != "t10k-images-idx3-ubyte")
    (folder / "t10k-images-idx3-ubyte").unlink()  # the learner removes their own link
    data = load_dataset("fashion-mnist", root)  # downloads what is missing, rewrites the rest
    assert is_downloaded("fashion-mnist", root) and len(data.train_labels) == 600
    assert TRAIN_IMAGES in server.served


def test_a_cifar_batch_that_fails_its_checksum_is_named(tmp_path, monkeypatch):
    cifar = torchvision.datasets.CIFAR10
    folder = tmp_path / cifar.base_folder
    folder.mkdir()
    for name in ["data_batch_1", "batches.meta"]:
        (folder / name).write_bytes(b"written " + name.encode())
    monkeypatch.setattr(cifar, "train_list", [["data_batch_1", "0" * 32]])
    monkeypatch.setattr(cifar, "test_list", [])
    monkeypatch.setattr(cifar, "meta", {**cifar.meta, "md5": hashlib.md5(
        b"written batches.meta").hexdigest()})
    assert [p.problem for p in cache_problems("cifar10", tmp_path)] == [
        "data_batch_1 is damaged (its checksum is not torchvision's)"]
    assert not is_downloaded("cifar10", tmp_path)


def test_the_train_page_does_not_call_a_damaged_cache_downloaded(tmp_path):
    damaged_cache(tmp_path / "data", "truncated")  # where the offline fixture points the app
    at = open_train()
    assert at.selectbox(key="train.dataset").value == "digits"  # the default never fails
    assert shown(at, "train.dataset", "fashion-mnist") == "Fashion-MNIST (download ~30 MB)"
    settings(at, dataset="fashion-mnist", epochs=1, limit=300)
    run_to_end(start(at))
    [message] = errors(at)
    assert message.startswith("**Run #1 failed:** Could not read Fashion-MNIST from ")
    assert "train-images-idx3-ubyte is cut short: 1,000 of" in message
    assert "Delete that folder to download it again" in message


# -- 4. weights of another network ------------------------------------------------------------

def test_the_train_pages_load_weights_refuses_another_networks_and_keeps_the_model():
    at = open_train("lenet-bn")
    upload(at, "mine.pt", state_dict_bytes(build(LENET_BN)))
    loaded = at.session_state[TRAINED_MODEL]
    assert loaded["label"] == "mine.pt (loaded)"
    upload(at, "lenet.pt", state_dict_bytes(build(LENET)))
    [message] = errors(at)
    assert message.startswith("**lenet.pt was not loaded:** ")
    assert "weights are for a different network" in message
    # it names what does not match: BatchNorm's tensors, and a layer of another shape
    assert "b1.1.weight" in message and "head.1.weight is 120×400 in the file but 120×256 " \
                                       "here" in message
    assert at.session_state[SPEC_KEY] == LENET_BN
    assert at.session_state[TRAINED_MODEL] is loaded  # the model loaded before stays


def test_the_model_chooser_refuses_weights_of_a_reshaped_network_by_tensor():
    wider = dataclasses.replace(LENET, dense=(100, 84))
    at = open_page("lenet", "pages/maps.py", "Feature maps")
    at.radio(key="maps.model").set_value("upload weights (.pt)").run()
    at.file_uploader(key="maps.weights").set_value(
        ("mine.pt", state_dict_bytes(build(LENET)), "application/octet-stream")).run()
    assert at.radio(key="maps.model").value == "uploaded: mine.pt"
    at.radio(key="maps.model").set_value("upload weights (.pt)").run()
    at.file_uploader(key="maps.weights").set_value(
        ("wider.pt", state_dict_bytes(build(wider)), "application/octet-stream")).run()
    assert not at.exception
    [message] = [e.value for e in at.main.error]
    assert message.startswith("wider.pt was not loaded: ")
    assert "weights are for a different network" in message
    assert "100×400 in the file but 120×400 here" in message
    assert at.session_state[SPEC_KEY] == LENET
    assert "uploaded: mine.pt" in at.radio(key="maps.model").options  # still there
    at.radio(key="maps.model").set_value("uploaded: mine.pt").run()
    assert not at.exception and "maps.grid" in charts(at)


# -- 6. the URL counts the session's runs, so a lost session is noticed -----------------------

def lost_notice(at: AppTest) -> list[str]:
    return [w.value for w in at.sidebar.warning if "earlier session is gone" in w.value]


def test_the_url_counts_the_runs_and_a_session_without_them_says_they_are_lost():
    at = train_briefly(open_page("lenet", "pages/maps.py", "Feature maps"), "pages/maps.py",
                       "Feature maps")
    assert dict(at.query_params) == {"preset": "lenet", RUNS: "1"}
    assert not lost_notice(at)

    # The server restarted: the browser comes back with the same URL to a new session.
    edited = dataclasses.replace(LENET, dense=(100, 84))
    again = AppTest.from_file(APP, default_timeout=60)
    again.query_params["net"] = spec_to_token(edited)
    again.query_params[RUNS] = "2"
    again.run()
    assert not again.exception
    assert lost_notice(again) == [
        "This page's earlier session is gone — the server restarted, the session expired or "
        "the page was reloaded — and with it its 2 runs (curves, results and weights). The "
        "network is kept because it is in the link; download a run's weights to keep them."]
    assert again.session_state[SPEC_KEY] == edited
    assert dict(again.query_params) == {"net": spec_to_token(edited)}  # said once
    again.run()
    assert not lost_notice(again)


@pytest.mark.parametrize("runs", ["0", "-1", "abc", "1e3", "9" * 40, ""])
def test_a_run_count_that_is_not_one_says_nothing(runs):
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["preset"] = "vgg"
    at.query_params[RUNS] = runs
    at.run()
    assert not at.exception and not lost_notice(at)
    assert dict(at.query_params) == {"preset": "vgg"}


# -- with the Train page's offers (the lead's files) ------------------------------------------

def test_the_train_page_deletes_only_the_damaged_files_and_start_downloads_them(monkeypatch,
                                                                                tmp_path):
    server = FashionServer(monkeypatch, tmp_path / "source")
    folder = damaged_cache(tmp_path / "data", "truncated")  # the offline fixture's data folder
    labels = (folder / "train-labels-idx1-ubyte").read_bytes()
    at = open_train()
    settings(at, dataset="fashion-mnist", epochs=1, limit=300)
    run_to_end(start(at))
    assert "train-images-idx3-ubyte is cut short" in errors(at)[0]
    at.button(key="train.remove_damaged").click().run()
    assert [i.value for i in at.main.info] == [
        "Deleted train-images-idx3-ubyte: Start downloads it again."]
    assert not (folder / "train-images-idx3-ubyte").exists()
    assert (folder / "train-labels-idx1-ubyte").read_bytes() == labels
    job = start(at).session_state["train.active"]
    assert job.join(120) and job.state == "finished", job.message  # (label: see above)
    assert TRAIN_IMAGES in server.served and is_downloaded("fashion-mnist")


def test_auto_passes_over_a_lost_device_and_naming_it_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # it still says so
    assert config.resolve_device("auto").type == "cuda"
    faults.remember_if_lost(torch.AcceleratorError(CUDA_GONE), "cuda:0")
    assert config.resolve_device("auto").type == "cpu"
    with pytest.raises(config.TrainingError, match="device cuda stopped responding during an "
                                                   "earlier run"):
        config.resolve_device("cuda")


def test_a_device_a_run_lost_is_not_available_on_the_train_page(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # it still says so
    fault = Fault(monkeypatch, torch.AcceleratorError(CUDA_GONE))
    at = open_train()
    settings(at, epochs=3, limit=300)
    at.selectbox(key="train.device").select("cpu").run()
    assert shown(at, "train.device", "cuda") == "cuda"
    fault.go.set()
    run_to_end(start(at))
    assert "the device cuda stopped responding" in errors(at)[0]
    assert shown(at, "train.device", "cuda") == "cuda — not available here"


def test_a_job_interrupted_while_loading_ends_failed(monkeypatch):
    from cnnviz.training import job as job_module

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt()

    monkeypatch.setattr(job_module, "load_dataset", interrupted)
    job = job_module.TrainingJob(1, "lenet", LENET, SHORT).start()
    assert job.join(30) and job.state == "failed" and job.message == "KeyboardInterrupt"
