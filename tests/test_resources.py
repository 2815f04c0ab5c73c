"""Resources follow the sessions (issue 12, point 1): a closed tab's run is stopped and frees
its device, a session keeps the weights of its last runs only, downloads are made when asked,
the estimate never takes a busy device, and a run's seed and cuDNN settings touch nothing
process-wide."""
from __future__ import annotations

import time

import torch

from cnnviz.activations.capture import fresh_model
from cnnviz.models import build
from cnnviz.presets import PRESETS
from cnnviz.training.config import TrainConfig, resolve_device
from cnnviz.training.data import load_dataset
from cnnviz.training.engine import Point, Result
from cnnviz.training.job import FinishedRun, TrainingJob, Watchdog, keep_weights
from cnnviz.training.queue import DEVICES, DeviceQueue
from cnnviz.training.recipe import make_model
from tests.test_train_page import (errors, offline, open_train, routed_as_served,  # noqa: F401
                                   run_to_end, settings, start)

LENET = PRESETS["lenet"].spec
SHORT = TrainConfig(dataset="digits", epochs=1, batch_size=64, lr=0.5, limit=300, device="cpu")
LONG = TrainConfig(dataset="digits", epochs=100, batch_size=16, lr=0.5, device="cpu")


def wait_for(condition, what: str, timeout: float = 60.0) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` did not happen in time."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.05)


# -- a closed tab's run -------------------------------------------------------------------

def test_a_run_whose_session_is_gone_is_stopped_untested_and_frees_its_device(monkeypatch):
    monkeypatch.setenv("CNNVIZ_ABANDON_SECONDS", "5")
    connected = {"yes": True}
    job = TrainingJob(1, "lenet", LENET, LONG, alive=lambda: connected["yes"]).start()
    behind = TrainingJob(2, "lenet", LENET, SHORT).start()
    wait_for(lambda: job.points(), "the run's first point")
    watchdog = Watchdog()
    watchdog.watch(job)
    watchdog.check(now=100.0)
    connected["yes"] = False            # the tab closes
    watchdog.check(now=101.0)           # gone since 101
    watchdog.check(now=105.5)           # 4.5 s: not yet
    assert not job.abandoned and job.state == "running"
    watchdog.check(now=106.0)           # 5 s: stopped
    assert job.abandoned
    assert job.join(60)
    assert job.state == "stopped"
    assert "browser tab was closed for 5 s" in job.message and "freed cpu" in job.message
    assert "CNNVIZ_ABANDON_SECONDS" in job.message
    # It skipped the test of what it learned (nobody would see it) ...
    assert job.points()[-1].test_acc is None
    # ... and the run waiting behind it got the device.
    assert behind.join(60) and behind.state == "finished"
    watchdog.check(now=107.0)
    assert watchdog.watched() == 0      # an ended job is forgotten


def test_a_session_that_comes_back_in_time_keeps_its_run(monkeypatch):
    monkeypatch.setenv("CNNVIZ_ABANDON_SECONDS", "5")
    answers = iter([False, True, False, True])
    job = TrainingJob(1, "lenet", LENET, SHORT, alive=lambda: next(answers))
    watchdog = Watchdog()
    watchdog.watch(job)
    for now in (0.0, 4.0, 8.0, 12.0):  # gone, back, gone, back: never 5 s on end
        watchdog.check(now=now)
    assert not job.abandoned


def test_a_queued_run_whose_session_is_gone_leaves_the_queue(monkeypatch):
    monkeypatch.setenv("CNNVIZ_ABANDON_SECONDS", "1")
    other = object()  # another session's run trains on the CPU
    assert DEVICES.try_acquire("cpu", other)
    try:
        job = TrainingJob(1, "lenet", LENET, SHORT, alive=lambda: False).start()
        wait_for(lambda: job.state == "queued", "the run waits in the queue")
        assert DEVICES.waiting("cpu") == 1
        watchdog = Watchdog()
        watchdog.watch(job)
        watchdog.check(now=0.0)
        watchdog.check(now=2.0)
        assert job.join(60) and job.state == "stopped"
        assert job.message.startswith("stopped while waiting in the queue: its browser tab")
        assert DEVICES.waiting("cpu") == 0
    finally:
        DEVICES.release("cpu", other)


def test_the_watchdog_thread_stops_a_gone_sessions_run_by_itself(monkeypatch):
    monkeypatch.setenv("CNNVIZ_ABANDON_SECONDS", "1")
    job = TrainingJob(1, "lenet", LENET, LONG, alive=lambda: False).start()
    assert job.join(60)
    assert job.state == "stopped" and job.abandoned


# -- weights of the last runs only ----------------------------------------------------------

def finished(number: int, with_model: bool = True) -> FinishedRun:
    # A run that failed or stopped before training has no result at all (as the engine makes it)
    result = Result(build(LENET), torch.eye(10, dtype=torch.long), []) if with_model else None
    return FinishedRun(number, "lenet", LENET, SHORT, tuple("0123456789"), "finished", "done",
                       "cpu", (Point(1.0, 1.0, 0.5, 0.5, 100.0, 1.0),), result)


def test_a_history_keeps_the_weights_of_its_last_runs_only():
    history = keep_weights([finished(n) for n in range(1, 6)], keep=3)
    assert [r.weights is not None for r in history] == [False, False, True, True, True]
    assert all(r.weights_dropped for r in history[:2])
    dropped = history[0]
    assert dropped.points and torch.equal(dropped.result.confusion, torch.eye(10).long())
    # runs without a model (failed, stopped before training) do not count against the cap
    mixed = keep_weights([finished(1), finished(2, with_model=False), finished(3)], keep=2)
    assert [r.weights is not None for r in mixed] == [True, False, True]
    assert not mixed[1].weights_dropped


def test_the_train_page_lets_old_weights_go_and_says_so(monkeypatch):
    monkeypatch.setenv("CNNVIZ_KEEP_WEIGHTS", "1")
    at = open_train()
    settings(at, epochs=1, limit=200)
    for _ in range(2):
        run_to_end(start(at))
    first, second = at.session_state["train.history"]
    assert first.weights is None and second.weights is not None
    keys = [b.key for b in at.get("download_button")]
    assert "train.download.weights.2" in keys
    at.selectbox(key="train.results_of").select(first.title).run()
    assert not errors(at)
    [note] = [i.value for i in at.info if "weights were let go" in i.value]
    assert "last 1 runs" in note and "CNNVIZ_KEEP_WEIGHTS" in note
    assert "train.download.weights.1" not in [b.key for b in at.get("download_button")]
    # Feature maps offers only the run that kept its weights.
    at.switch_page("pages/maps.py").run()
    options = at.radio(key="maps.model").options
    assert any(second.title in o for o in options) and not any(first.title in o for o in options)


def test_weights_are_serialised_when_downloaded_not_on_every_rerun(monkeypatch):
    calls = []
    from cnnviz.training import checkpoint
    real = checkpoint.state_dict_bytes
    monkeypatch.setattr("cnnviz.ui.train_results.state_dict_bytes",
                        lambda model: calls.append(model) or real(model))
    at = open_train()
    settings(at, epochs=1, limit=200)
    run_to_end(start(at))
    for _ in range(3):
        at.run()
    [button] = [b for b in at.get("download_button") if b.key == "train.download.weights.1"]
    assert calls == []  # three reruns, a download button, and no serialisation


# -- the estimate and a busy device --------------------------------------------------------

def test_the_estimate_waits_for_a_free_device_and_holds_it_while_timing(monkeypatch):
    seen = []

    here = str(resolve_device("auto"))  # the page's default device: the GPU where there is one

    def timed(spec, config, steps=5, threads=None):
        seen.append(DEVICES.busy(here))
        return 12.0

    monkeypatch.setattr("cnnviz.ui.train_view.estimate_seconds", timed)
    other = object()  # another session's run holds the device
    assert DEVICES.try_acquire(here, other)
    try:
        at = open_train()
        assert seen == []
        assert any(f"estimated when {here} is free" in c.value for c in at.caption)
    finally:
        DEVICES.release(here, other)
    at.run()
    assert seen == [True]  # it timed with the device held through the queue ...
    assert not DEVICES.busy(here)  # ... and gave it back
    assert any("Estimated run time" in m.value for m in at.markdown)


def test_a_device_taken_by_an_estimate_queues_a_run_behind_it():
    queue = DeviceQueue()
    estimate = object()
    assert queue.try_acquire("cpu", estimate)
    assert not queue.try_acquire("cpu", object())  # one at a time
    queue.release("cpu", estimate)
    assert queue.try_acquire("cpu", object())


# -- seeds and cuDNN are the run's own ------------------------------------------------------

def test_a_run_leaves_the_process_random_state_and_cudnn_flags_as_they_were():
    torch.manual_seed(1234)
    before = torch.get_rng_state()
    benchmark = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = not benchmark  # whatever another thread chose
    try:
        job = TrainingJob(1, "lenet", LENET, SHORT).start()
        assert job.join(60) and job.state == "finished"
        assert torch.equal(torch.get_rng_state(), before)
        assert torch.backends.cudnn.benchmark is (not benchmark)
    finally:
        torch.backends.cudnn.benchmark = benchmark


def test_the_same_seed_gives_the_same_network_whatever_else_draws():
    first = make_model(LENET, torch.device("cpu"), seed=7).state_dict()
    torch.rand(1000)  # another session's thread drawing meanwhile
    second = make_model(LENET, torch.device("cpu"), seed=7).state_dict()
    other = make_model(LENET, torch.device("cpu"), seed=8).state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)
    # Feature maps' "freshly initialised" model is the one a run of seed 0 starts from.
    fresh = fresh_model(LENET).state_dict()
    start = make_model(LENET, torch.device("cpu"), seed=0).state_dict()
    assert all(torch.equal(fresh[k], start[k]) for k in fresh)


def test_digits_load_without_touching_the_process_random_state():
    torch.manual_seed(5)
    before = torch.get_rng_state()
    load_dataset("digits", limit=100)
    assert torch.equal(torch.get_rng_state(), before)
