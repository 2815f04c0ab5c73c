"""Training's behaviour that only the page tests (AppTest) and the fault tests exercised, held
here where ``scripts/mutation training`` runs it: the job's status line, ETA and progress, the
watchdog, the run history and its CSV, what a failed run says, the device queue.

Each test names the mutants it kills (docs/testing.md). Runs are stood in for by small objects
with the engine's attributes, so every number is set by the test and the expected text is
worked out by hand; no thread trains.
"""
from __future__ import annotations

import time

import pytest
import torch
from torch import nn

from cnnviz.presets import PRESETS
from cnnviz.training import config as config_module
from cnnviz.training import faults
from cnnviz.training.config import TrainConfig
from cnnviz.training.engine import Point, Result
from cnnviz.training.job import (FinishedRun, TrainingJob, Watchdog, format_seconds,
                                 keep_weights, metrics_csv)
from cnnviz.training.queue import DeviceQueue

LENET = PRESETS["lenet"].spec


class FakeRun:
    """What a TrainingJob reads of its engine run, set by the test."""

    def __init__(self, state="running", device="cpu", position=0, progress=0.0, eta=None,
                 started_at=None, message="", done=False, result=None, points=()):
        self.state, self.device, self.position = state, device, position
        self.progress, self.eta, self.started_at = progress, eta, started_at
        self.message, self.done, self.result, self._points = message, done, result, points
        self.stops = 0

    def queue_position(self):
        return self.position

    def eta_seconds(self):
        return self.eta

    def points(self):
        return list(self._points)

    def stop(self):
        self.stops += 1


def job_with(run=None, **config) -> TrainingJob:
    """A job on the digits (never started): its run, if any, is the test's."""
    job = TrainingJob(1, "lenet", LENET, TrainConfig(dataset="digits", **config), threads=1)
    job.run = run
    return job


@pytest.mark.parametrize("seconds, text", [
    (0.4, "under a second"), (1, "1 s"), (89.4, "89 s"),
    (90, "2 min"),          # 1.5 min, rounded to even
    (5399, "90 min"),       # 89.98 min
    (5400, "1.5 h"), (7200, "2.0 h"),
])
def test_format_seconds_at_its_boundaries(seconds, text):
    """Kills format_seconds's mutants (< 1, < 90, < 90·60, /60, /3600, the formats)."""
    assert format_seconds(seconds) == text


def test_the_status_line_while_loading_and_queued():
    """Kills status()'s loading and queued mutants: the data message (or "loading data…"),
    the stop note, the queue position only when it is ahead of others, the device or "the
    device"."""
    job = job_with()
    job._state = "loading data"
    assert job.status() == "loading data…"
    job.data_message = "Downloading… file 2 of 4"
    assert job.status() == "Downloading… file 2 of 4"
    job._stop.set()
    assert job.status() == "Downloading… file 2 of 4 (stopping once it is loaded)"

    job = job_with(FakeRun(state="created", position=2, device="cpu"))
    assert job.state == "queued"
    assert job.status() == "queued (position 2): another run is using cpu"
    job.run.position, job.run.device = 0, ""
    assert job.status() == "queued: another run is using the device"
    assert job_with().queue_position() == -1  # no run yet
    assert job_with(FakeRun(state="loading")).state == "loading data"


def test_the_status_line_while_running_says_progress_and_time_left():
    """Kills the running branch's mutants: the percentage and the time left. A run of epochs
    has the server's cap (CNNVIZ_MAX_RUN_SECONDS, 1,800 s) as its budget, so without an
    estimate of its own the time left is what remains of the cap."""
    job = job_with(FakeRun(progress=0.4, eta=150.0, started_at=time.monotonic()))
    assert job.status() == "running on cpu: 40%, about 2 min left"  # 150 s = 2.5 min → 2
    job.run.eta = None
    assert job.status() == "running on cpu: 40%, about 30 min left"  # 1,800 s


def test_a_time_budget_bounds_the_eta_and_drives_the_progress():
    """Kills eta_seconds's and progress's mutants: with a budget of 100 s and 40 s trained,
    60 s are left at most (the run's own estimate if smaller), the progress is at least
    40 / 100 and never above 1; nothing before training started or after it ended."""
    now = time.monotonic()
    job = job_with(FakeRun(progress=0.1, eta=500.0, started_at=now - 40), time_budget=100)
    assert job.eta_seconds() == pytest.approx(60, abs=1)
    assert job.progress == pytest.approx(0.4, abs=0.01)
    job.run.eta = 20.0
    assert job.eta_seconds() == 20.0
    job.run.eta = None
    assert job.eta_seconds() == pytest.approx(60, abs=1)
    job.run.started_at = now - 400  # past the budget: nothing left, progress full
    assert job.eta_seconds() == 0.0 and job.progress == 1.0
    job.run.progress = 0.9  # the steps count when they are ahead of the clock
    job.run.started_at = now - 10
    assert job.progress == pytest.approx(0.9)
    job.run.state = "finished"
    assert job.eta_seconds() is None
    assert job.elapsed() == pytest.approx(10, abs=1)
    job.run.started_at = None
    assert job.elapsed() is None and job.eta_seconds() is None
    # a run of epochs is capped at 1,800 s: its own estimate and steps count until then
    capped = job_with(FakeRun(progress=0.25, eta=30.0, started_at=now - 5))
    assert (capped.eta_seconds(), capped.progress) == (30.0, 0.25)
    assert job_with().progress == 0.0


def test_the_message_of_a_capped_and_of_an_abandoned_run(monkeypatch):
    """Kills the message's mutants: a run stopped by the server's cap names the cap, and an
    abandoned run says why after its own message; abandon() names the device, and stops twice
    (the second stop skips the test)."""
    monkeypatch.setenv("CNNVIZ_MAX_RUN_SECONDS", "300")
    job = job_with(FakeRun(state="stopped", message="the time budget is spent", done=True))
    assert job.capped
    assert job.message == ("stopped at this server's cap of 300 s per run "
                           "(CNNVIZ_MAX_RUN_SECONDS; see docs/teaching.md)")
    assert job.status() == f"stopped: {job.message}"
    own = job_with(FakeRun(state="stopped", message="the time budget is spent", done=True),
                   time_budget=100)
    assert not own.capped and own.message == "the time budget is spent"

    run = FakeRun(state="running", device="cuda:0")
    job = job_with(run)
    job.abandon(61.4)
    assert run.stops == 2
    assert job.abandoned == ("its browser tab was closed for 61 s, so the server stopped it "
                             "and freed cuda:0 (CNNVIZ_ABANDON_SECONDS)")
    assert job.message == ""  # not done yet: nothing said
    run.done, run.message = True, "stopped"
    assert job.message == f"stopped: {job.abandoned}"
    run.message = ""
    assert job.message == job.abandoned


def test_abandon_before_a_device_was_chosen_says_its_device():
    """Kills the mutant of the device fallback in abandon()'s sentence."""
    job = job_with()
    job.abandon(5)
    assert job.abandoned == ("its browser tab was closed for 5 s, so the server stopped it "
                             "and freed its device (CNNVIZ_ABANDON_SECONDS)")
    assert job.status() == "created"  # no run, no message: the state alone


class Gone:
    """A job the watchdog watches: alive() as the test says, done when the test says."""

    def __init__(self, alive=True):
        self._alive, self.done, self.abandoned, self.abandons = alive, False, "", []

    def alive(self):
        if isinstance(self._alive, Exception):
            raise self._alive
        return self._alive

    def abandon(self, seconds):
        self.abandons.append(seconds)
        self.abandoned = "gone"


def test_the_watchdog_stops_a_job_gone_for_its_patience_only(monkeypatch):
    """Kills Watchdog.check's mutants: a job gone is timed from the first round that finds it
    gone, abandoned once gone for CNNVIZ_ABANDON_SECONDS (60 here) and not before, once only;
    a job back in time starts over; a broken alive() counts as alive; ended jobs are
    forgotten."""
    monkeypatch.setenv("CNNVIZ_ABANDON_SECONDS", "60")
    dog = Watchdog(every=3600)  # its own thread sleeps: the test makes every round
    gone, back, broken = Gone(alive=False), Gone(alive=False), Gone(alive=RuntimeError("x"))
    for job in (gone, back, broken):
        dog.watch(job)
    assert dog.watched() == 3
    dog.check(now=1000)   # first seen gone
    dog.check(now=1059)   # 59 s: not yet
    assert gone.abandons == [] and back.abandons == []
    back._alive = True
    dog.check(now=1059.5)  # back in time
    back._alive = False
    dog.check(now=1060)   # gone has been gone 60 s; back only 0.5 s
    assert gone.abandons == [60] and back.abandons == [] and broken.abandons == []
    dog.check(now=1200)   # abandoned jobs are not abandoned again
    assert gone.abandons == [60]
    assert back.abandons == [pytest.approx(140)]
    gone.done = back.done = True
    dog.check(now=1300)
    assert dog.watched() == 1  # only the broken one is left


def finished(number, model=True, points=()) -> FinishedRun:
    result = Result(nn.Linear(2, 2) if model else None, torch.zeros(2, 2))
    return FinishedRun(number, f"run {number}", LENET, TrainConfig(dataset="digits"),
                       ("a", "b"), "finished", "", "cpu", tuple(points), result)


def test_the_history_keeps_the_weights_of_the_last_runs_that_have_them(monkeypatch):
    """Kills keep_weights's mutants: of runs 1–5, where run 4 has no weights, keeping 2 keeps
    those of runs 3 and 5; keep 0 lets all go; without keep, CNNVIZ_KEEP_WEIGHTS says."""
    history = [finished(1), finished(2), finished(3), finished(4, model=False), finished(5)]
    kept = keep_weights(history, 2)
    assert [r.weights is not None for r in kept] == [False, False, True, False, True]
    assert [r.weights_dropped for r in kept] == [True, True, False, True, False]
    assert kept[2] is history[2] and kept[4] is history[4]  # untouched, not copied
    assert kept[0].number == 1 and kept[0].result.confusion is history[0].result.confusion
    assert all(r.weights is None for r in keep_weights(history, 0))
    assert keep_weights(history, 10) == history
    monkeypatch.setenv("CNNVIZ_KEEP_WEIGHTS", "1")
    assert [r.weights is not None for r in keep_weights(history)] == [False] * 4 + [True]
    no_result = FinishedRun(6, "failed", LENET, TrainConfig(dataset="digits"), (), "failed",
                            "broke", "cpu", (), None)
    assert no_result.without_weights() is no_result and not no_result.weights_dropped
    assert no_result.weights is None and no_result.title == "#6 failed"


def test_a_finished_run_is_taken_from_its_job_without_gradients():
    """Kills FinishedRun.of's mutants: every field comes from the job, points and classes as
    tuples, and the model's gradients are let go (set to None, not zeroed)."""
    model = nn.Linear(2, 2)
    model(torch.ones(1, 2)).sum().backward()
    assert model.weight.grad is not None
    points = [Point(1.0, 0.5, 0.8, 0.75, 100.0, 2.0, 1.5)]
    run = FakeRun(state="finished", message="done", done=True,
                  result=Result(model, torch.zeros(10, 10)), points=points)
    job = job_with(run)
    record = FinishedRun.of(job)
    assert model.weight.grad is None and model.bias.grad is None
    assert (record.number, record.label, record.spec, record.state, record.message,
            record.device) == (1, "lenet", LENET, "finished", "done", "cpu")
    assert record.config == job.config and record.points == tuple(points)
    assert record.classes == tuple(job.classes) and len(record.classes) == 10
    assert record.result is run.result and record.callbacks == ()
    empty = FinishedRun.of(job_with(FakeRun(state="failed", message="broke", done=True)))
    assert empty.result is None and empty.state == "failed"


def test_metrics_csv_has_one_row_per_point_in_the_documented_columns():
    """Kills metrics_csv's mutants: the header, one row per point of every run, the number
    formats, empty cells for a missing test accuracy or training time."""
    points = (Point(0.5, 1.23456789, 0.5, None, 1234.5678, 1.23456, None),
              Point(1.0, 0.5, 0.75, 0.8, 2000.0, 2.5, 2.25))
    text = metrics_csv([finished(3, points=points), finished(4)], lambda spec: "LeNet")
    assert text.splitlines() == [
        "run,label,network,dataset,state,epoch,train_loss,train_acc,test_acc,"
        "examples_per_sec,seconds,train_seconds",
        "3,run 3,LeNet,digits,finished,0.5,1.23457,0.5,,1234.57,1.235,",
        "3,run 3,LeNet,digits,finished,1.0,0.5,0.75,0.8,2000,2.5,2.25",
    ]
    assert text.endswith("\n") and "\r" not in text


@pytest.mark.parametrize("error, device, gone", [
    (RuntimeError("CUDA error: unspecified launch failure"), "cuda:1", "cuda:1"),
    (RuntimeError("CUDA driver error: device not ready"), "", "cuda"),
    (RuntimeError("cuDNN error: CUDNN_STATUS_EXECUTION_FAILED"), "cpu", "cuda"),
    (RuntimeError("no CUDA-capable device is detected"), "cuda:0", "cuda:0"),
    (RuntimeError("all CUDA-capable devices are busy or unavailable"), "cuda", "cuda"),
    (RuntimeError("Found no NVIDIA driver on your system"), "cuda", "cuda"),
    (RuntimeError("CUDA error: out of memory"), "cuda:0", None),
    (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), "cuda", None),
    (RuntimeError("CUBLAS_STATUS_ALLOC_FAILED when calling cublasCreate"), "cuda", None),
    (ValueError("CUDA error: unspecified launch failure"), "cuda", None),  # not torch's
    (RuntimeError("mat1 and mat2 shapes cannot be multiplied"), "cuda", None),
])
def test_what_counts_as_a_lost_device(error, device, gone):
    """Kills lost_device's and out_of_memory's mutants: the words of a device that went
    away, out of memory in any form is not one, only RuntimeErrors count, and a run not on a
    GPU is said to have lost "cuda"."""
    assert faults.lost_device(error, device) == gone


def test_a_lost_device_is_remembered_under_its_name_and_its_kind(monkeypatch):
    """Kills remember_if_lost's mutants: "cuda:1" is noted as "cuda:1" and as "cuda", with
    the error's first line; another error notes nothing."""
    monkeypatch.setattr(config_module, "LOST_DEVICES", {})
    faults.remember_if_lost(RuntimeError("shapes do not match"), "cuda:1")
    assert config_module.lost_devices() == {}
    faults.remember_if_lost(RuntimeError("CUDA error: launch failure.\nCompile with ..."),
                            "cuda:1")
    said = "RuntimeError: CUDA error: launch failure"
    assert config_module.lost_devices() == {"cuda:1": said, "cuda": said}


@pytest.mark.parametrize("args, text", [
    ((None, 3, False), "before its first training step"),
    ((1.5, 3, False), "in epoch 2 of 3, after 1.5 epochs"),
    ((2.0, 3, False), "in epoch 3 of 3, after 2 epochs"),
    ((3.0, 3, False), "in epoch 3 of 3, after 3 epochs"),  # the last epoch, not a 4th
    ((2.5, 3, True), "while testing what it learned after 2.5 of 3 epochs"),
    ((None, 3, True), "while testing what it learned after 0 of 3 epochs"),
])
def test_where_a_run_was(args, text):
    """Kills where()'s mutants (the epoch counted from 1, clamped to the last, the testing
    sentence)."""
    assert faults.where(*args) == text


def test_what_a_failed_run_says():
    """Kills explain()'s and _text()'s mutants: a lost device, an interruption and any other
    error each get their sentence, with what is kept; an error's text is its type and first
    line without its full stop, cut to 200 characters, or its type alone."""
    at = "in epoch 2 of 3, after 1.5 epochs"
    assert faults.explain(RuntimeError("CUDA error: launch failure\n\nmore"), at, "cuda:0",
                          True) == (
        "the device cuda:0 stopped responding in epoch 2 of 3, after 1.5 epochs — "
        "RuntimeError: CUDA error: launch failure. Its curves up to there are kept; choose "
        "cpu and Start again (cuda:0 may only come back when the server restarts).")
    assert faults.explain(KeyboardInterrupt(), at, "cpu", False) == (
        "training was interrupted in epoch 2 of 3, after 1.5 epochs — KeyboardInterrupt. It "
        "had not reached its first metric point; Start again to retry.")
    assert faults.explain(ValueError("bad value."), at, "cpu", True) == (
        "training broke off in epoch 2 of 3, after 1.5 epochs — ValueError: bad value. Its "
        "curves up to there are kept; Start again to retry.")
    long = faults._text(RuntimeError("x" * 300))
    assert long == "RuntimeError: " + "x" * 199 + "…"
    assert faults._text(RuntimeError("y" * 200)) == "RuntimeError: " + "y" * 200
    assert faults._text(RuntimeError("  \n  first  \nsecond")) == "RuntimeError: first"


def test_the_queue_counts_waiting_runs_and_an_estimate_takes_only_a_free_device():
    """Kills DeviceQueue's waiting, busy and try_acquire mutants."""
    import threading
    queue = DeviceQueue()
    assert queue.waiting() == 0 and not queue.busy("cpu")
    first, second, estimate = object(), object(), object()
    assert queue.acquire("cpu", first, threading.Event())
    assert queue.busy("cpu") and not queue.busy("cuda")
    assert not queue.try_acquire("cpu", estimate)  # a run trains
    cancelled = threading.Event()
    waiter = threading.Thread(target=queue.acquire, args=("cpu", second, cancelled),
                              daemon=True)
    waiter.start()
    try:
        deadline = time.monotonic() + 5
        while queue.waiting("cpu") != 1:
            assert time.monotonic() < deadline, "the second run never queued"
            time.sleep(0.01)
        assert (queue.waiting(), queue.waiting("cpu"), queue.waiting("cuda")) == (1, 1, 0)
        assert queue.position("cpu", second) == 1  # next: no run ahead of it
        queue.release("cpu", first)
        waiter.join(5)
        assert not waiter.is_alive(), "the second run did not get the freed device"
    finally:
        cancelled.set()  # a failed assertion leaves no thread waiting
    assert queue.position("cpu", second) == 0
    queue.release("cpu", second)
    assert not queue.busy("cpu") and queue.try_acquire("cpu", estimate)
    assert queue.busy("cpu") and not queue.try_acquire("cpu", object())
    assert queue.try_acquire("cuda", object())  # another device is free


# -- weights files (checkpoint.py); tests/test_hostile_uploads.py holds more, with the pages --

from cnnviz.models import build  # noqa: E402
from cnnviz.training.checkpoint import (MB, CheckpointError, check_size,  # noqa: E402
                                        load_weights, state_dict_bytes)


def saved(obj) -> bytes:
    import io
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def refused(data: bytes, spec=LENET) -> str:
    with pytest.raises(CheckpointError) as info:
        load_weights(spec, data)
    return str(info.value)


def test_an_empty_file_and_a_one_byte_file_are_told_apart():
    """Kills check_size's mutants of the empty file (size == 1, no message)."""
    assert refused(b"").startswith("the file is empty; choose a .pt file saved with "
                                   "torch.save(model.state_dict(), path)")
    assert refused(b"x").startswith("not a PyTorch state_dict file")


def test_the_weights_cap_counts_whole_megabytes(monkeypatch):
    """Kills check_size's cap mutants: with CNNVIZ_MAX_WEIGHTS_MB=1 a file of 1 MB passes and
    one byte more is refused, naming the variable."""
    monkeypatch.setenv("CNNVIZ_MAX_WEIGHTS_MB", "1")
    check_size(MB)
    with pytest.raises(CheckpointError) as info:
        check_size(MB + 1)
    assert "CNNVIZ_MAX_WEIGHTS_MB" in str(info.value) and "2 MB" in str(info.value)


def rezipped(data: bytes, compression: int) -> bytes:
    """torch.save's zip with every entry written again with ``compression``."""
    import io
    import zipfile
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w") as target:
        for entry in source.infolist():
            target.writestr(entry, source.read(entry), compress_type=compression)
    return out.getvalue()


def declaring_size(data: bytes, size: int) -> bytes:
    """A stored zip whose first central directory record declares ``size`` bytes."""
    import struct
    at = data.index(b"PK\x01\x02")
    return data[:at + 24] + struct.pack("<I", size) + data[at + 28:]


def test_a_zip_is_checked_before_torch_reads_it():
    """Kills _check_zip's and _read's mutants: a torch.save zip truncated, with compressed
    entries, or declaring more bytes than the file holds is refused with its reason, before
    torch.load; one declaring exactly the file's size is not refused for its size."""
    import zipfile
    good = state_dict_bytes(build(LENET))
    assert good.startswith(b"PK\x03\x04")
    assert refused(good[:3000]).startswith("the file is a damaged or truncated zip "
                                           "(torch.save writes a zip)")
    assert refused(rezipped(good, zipfile.ZIP_DEFLATED)).startswith(
        "the file has compressed entries, which torch.save never writes")
    one = rezipped(saved({"w": torch.ones(3)}), zipfile.ZIP_STORED)
    assert refused(declaring_size(one, len(one) + 1)).startswith(
        "the file's entries declare more bytes than the file holds")
    # every entry's size summed: the first one's declared as the whole file is just enough
    with zipfile.ZipFile(__import__("io").BytesIO(one)) as archive:
        others = sum(e.file_size for e in archive.infolist()[1:])
    said = refused(declaring_size(one, len(one) - others))
    assert not said.startswith("the file's entries declare more bytes"), said


def test_code_in_a_weights_file_never_runs_whatever_the_environment(monkeypatch, tmp_path):
    """Kills _read's weights_only mutants (None, left out): TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD
    turns torch.load's default to running pickles, but cnnviz asks for weights_only=True."""
    import pickle

    marker = tmp_path / "ran"

    class Touch:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    said = refused(pickle.dumps({"0.weight": Touch()}, protocol=2))
    assert not marker.exists(), "loading the weights ran the file's code"
    assert said.startswith("the file holds more than tensors: it asks for"), said


@pytest.mark.parametrize("obj, said", [
    ({}, "the file holds no state_dict (a dict of tensors)"),
    ({"0.weight": 3}, "the file holds no state_dict (a dict of tensors)"),
    ({"epoch": 3, "model": {"w": torch.ones(1)}, "optimizer": {"s": torch.ones(1)}},
     "the file holds no state_dict (a dict of tensors); its 'model' may hold one: save that "
     "itself"),
])
def test_a_file_that_holds_no_state_dict_says_so(obj, said):
    """Kills _read's state_dict mutants (an empty dict let through, a non-tensor value let
    through, the hint naming the first inner dict, or none)."""
    assert refused(saved(obj)) == said


def test_weights_of_a_network_over_the_cap_are_refused(monkeypatch):
    """Kills load_weights's cap mutants: LeNet has 61,706 parameters; with
    CNNVIZ_MAX_PARAMS=1000 its own weights are refused, naming the variable."""
    monkeypatch.setenv("CNNVIZ_MAX_PARAMS", "1000")
    said = refused(state_dict_bytes(build(LENET, device="meta").to_empty(device="cpu")))
    assert "CNNVIZ_MAX_PARAMS" in said and "61,706" in said, said


def test_weights_for_another_network_name_what_does_not_fit():
    """Kills load_weights's listing mutants: up to 3 missing tensors are named, more are
    counted with the first 3; unknown ones are counted and the first 3 named; at most 3
    shapes are listed; a scalar is said as such."""
    state = build(LENET).state_dict()
    names = list(state)  # 10 tensors: 5 layers' weight and bias
    three = {k: v for k, v in state.items() if k not in names[:3]}
    assert refused(saved(three)) == ("these weights are for a different network: missing "
                                     f"{', '.join(names[:3])}")
    four = {k: v for k, v in state.items() if k not in names[:4]}
    assert refused(saved(four)) == ("these weights are for a different network: 4 tensors "
                                    f"missing ({', '.join(names[:3])}…)")
    extra = dict(state, **{f"x{i}": torch.ones(1) for i in range(4)})
    assert refused(saved(extra)) == ("these weights are for a different network: 4 unknown "
                                     "tensors (x0, x1, x2)")
    wrong = {k: (v[..., :1] if v.dim() > 1 else v) for k, v in state.items()}
    said = refused(saved(wrong))
    assert said.count(" in the file but ") == 3, said  # 5 weights are wrong: 3 are listed
    scalar = dict(state, **{names[1]: torch.tensor(0.5)})
    assert refused(saved(scalar)) == (
        f"these weights are for a different network: {names[1]} is a scalar in the file but "
        f"{state[names[1]].shape[0]} here")


@pytest.mark.filterwarnings("ignore::UserWarning")  # quantized tensors are deprecated
def test_tensors_that_cannot_be_copied_in_are_refused_with_torchs_first_line():
    """Kills the mutants of the last refusal: quantized tensors of the right shapes load
    with weights_only but do not copy into float weights; the message is torch's own first
    line."""
    if not hasattr(torch, "quantize_per_tensor"):
        pytest.skip("this torch has no quantized tensors")
    state = {k: torch.quantize_per_tensor(v, 0.1, 0, torch.qint8)
             for k, v in build(LENET).state_dict().items()}
    try:
        build(LENET).load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
    else:
        pytest.fail("torch copied quantized tensors into float weights")
    assert refused(saved(state)) == f"the tensors do not load into this network: {first}"


# -- augmentation (batches.random_crop_flip) ---------------------------------------------------

from cnnviz.training.batches import random_crop_flip  # noqa: E402


def numbered(b: int, side: int) -> torch.Tensor:
    """b copies of a side×side image whose pixels are 1, 2, … row by row: every pixel says
    where it came from."""
    return torch.arange(1, side * side + 1, dtype=torch.float32).view(1, 1, side, side).repeat(
        b, 1, 1, 1)


def offsets(out: torch.Tensor, side: int, pad: int) -> tuple[list[int], list[int], list[bool]]:
    """Each crop's (dy, dx) in 0..2·pad and whether it is mirrored, read off the centre pixel
    (always inside the image, |d − pad| ≤ pad < side/2) and its right neighbour."""
    c = side // 2
    dys, dxs, flips = [], [], []
    for image in out[:, 0]:
        value = int(image[c, c].item()) - 1
        row, col = divmod(value, side)
        mirrored = image[c, c + 1] < image[c, c]
        dys.append(row - c + pad)
        # mirrored, output column c shows padded column dx + (side − 1 − c)
        dxs.append(col - (side - 1 - c) + pad if mirrored else col - c + pad)
        flips.append(bool(mirrored))
    return dys, dxs, flips


@pytest.mark.parametrize("side, padding, pad", [(16, None, 2), (8, None, 1), (16, 3, 3)])
def test_crops_take_every_offset_of_their_padding(side, padding, pad):
    """Kills random_crop_flip's offset mutants (padding ignored, max(2, …), h // 9, offsets
    from 1 or up to 2·pad − 2, rows − steps): the zero padding is 1/8 of the side (at least 1)
    unless given, and over 400 crops every offset 0..2·pad occurs in both directions."""
    out = random_crop_flip(numbered(400, side), padding=padding,
                           generator=torch.Generator().manual_seed(0), flip=False)
    assert out.shape == (400, 1, side, side)
    dys, dxs, flips = offsets(out, side, pad)
    assert set(dys) == set(dxs) == set(range(2 * pad + 1)), (sorted(set(dys)), sorted(set(dxs)))
    assert not any(flips)
    # each crop is the padded image's window at its offset
    padded = torch.nn.functional.pad(numbered(1, side), (pad,) * 4)[0, 0]
    for image, dy, dx in zip(out[:20, 0], dys, dxs):
        assert torch.equal(image, padded[dy:dy + side, dx:dx + side])


def test_about_half_the_crops_are_mirrored_and_by_default():
    """Kills the flip mutants (off by default, always, or never): with flip (the default)
    between 40 % and 60 % of 400 crops are mirrored, each the mirror of its window."""
    side, pad = 16, 2
    out = random_crop_flip(numbered(400, side), generator=torch.Generator().manual_seed(1))
    dys, dxs, flips = offsets(out, side, pad)
    assert 160 <= sum(flips) <= 240, sum(flips)
    padded = torch.nn.functional.pad(numbered(1, side), (pad,) * 4)[0, 0]
    for image, dy, dx, mirrored in list(zip(out[:, 0], dys, dxs, flips))[:20]:
        window = padded[dy:dy + side, dx:dx + side]
        assert torch.equal(image, window.flip(1) if mirrored else window)


def test_the_same_generator_gives_the_same_crops_and_draws_nothing_else():
    """Kills the mutants that draw offsets or flips from torch's global stream (generator=None
    anywhere): two runs with generators of one seed crop alike whatever the global stream
    does, and the global stream is left as it was."""
    images = numbered(64, 16)
    torch.manual_seed(123)
    first = random_crop_flip(images, generator=torch.Generator().manual_seed(7))
    state = torch.get_rng_state()
    torch.manual_seed(456)
    second = random_crop_flip(images, generator=torch.Generator().manual_seed(7))
    assert torch.equal(first, second)
    torch.manual_seed(123)
    random_crop_flip(images, generator=torch.Generator().manual_seed(7))
    assert torch.equal(torch.get_rng_state(), state)
    other = random_crop_flip(images, generator=torch.Generator().manual_seed(8))
    assert not torch.equal(first, other)


# -- the advice for a run that ended near chance (advice.py) ----------------------------------

from cnnviz.training.advice import chance_advice, chance_level, near_chance  # noqa: E402
from cnnviz.specs import LeNetSpec  # noqa: E402

GUESS_10 = 2.302585  # ln 10


def advice_for(spec=LENET, epochs=2.0, loss=2.0, acc=0.1, **config):
    cfg = TrainConfig(dataset="digits", **config).resolved(spec)
    return chance_advice(spec, cfg, epochs, loss, acc)


def test_chance_is_one_in_the_classes_and_near_it_is_five_points_above():
    """Kills chance_level's and near_chance's mutants: one class is always right; 10 classes
    give 0.1, and 0.1 + 0.05 still counts as chance."""
    assert (chance_level(1), chance_level(0), chance_level(10)) == (1.0, 1.0, 0.1)
    assert near_chance(0.1 + 0.05, 10) and not near_chance(0.151, 10)
    assert not near_chance(None, 10)
    assert advice_for(acc=0.151) is None and advice_for(acc=0.15) is not None


def test_the_advice_counts_the_steps_and_says_only_below_a_thousand():
    """Kills the steps sentence's mutants: the digits' 1,437 training images in one batch of
    1,437 make one step an epoch, so 999 epochs are "only 999 steps", 1,000 are not "only",
    and one epoch is one step, not "steps"."""
    assert "it took only **999 optimizer steps** (999 epochs of 1 batches of up to 1,437 " \
           "from 1,437 training images) with plain SGD (the book recipe)" in advice_for(
               epochs=999, batch_size=1437)
    assert "it took **1,000 optimizer steps**" in advice_for(epochs=1000, batch_size=1437)
    assert "it took only **1 optimizer step** (1 epochs" in advice_for(epochs=1,
                                                                      batch_size=1437)
    assert "with the fast recipe" in advice_for(recipe="fast")


def test_the_loss_sentence_only_when_the_loss_is_still_about_ln_classes():
    """Kills the loss sentence's mutants: within 10 % of ln 10 = 2.30 (0.23) it is said,
    further it is not."""
    assert "The training loss, 2.40, is still about ln 10 = 2.30" in advice_for(
        loss=GUESS_10 + 0.1)
    assert "The training loss" not in advice_for(loss=GUESS_10 + 0.24)
    assert "The training loss" not in advice_for(loss=GUESS_10 - 0.24)


def test_what_to_try_depends_on_the_network_and_the_recipe():
    """Kills the why/try mutants: sigmoids without BatchNorm are blamed, LeNet is pointed to
    lenet-bn and other families to Build, the book recipe to the fast one, a network with
    BatchNorm to another learning rate, and more steps always."""
    lenet = advice_for()
    assert "its sigmoid activations pass back small gradients" in lenet
    assert "- **BatchNorm**: the **lenet-bn** preset" in lenet
    assert "- the **fast** recipe: momentum and a one-cycle learning rate" in lenet
    assert "- **more steps**: more epochs" in lenet and "learning rate** than" not in lenet
    assert lenet.startswith("**Test accuracy 10.0% is about chance** (guessing among 10 "
                            "classes gives 10.0%)")

    bn = advice_for(PRESETS["lenet-bn"].spec, recipe="fast", lr=0.05)
    assert "sigmoid" not in bn and "lenet-bn" not in bn and "**fast** recipe" not in bn
    assert bn.rstrip().endswith("- another **learning rate** than 0.05")

    alexnet = advice_for(PRESETS["alexnet"].spec)
    assert "- **BatchNorm** after the convolutions (in **Build**)" in alexnet
    assert "sigmoid" not in alexnet  # AlexNet's ReLUs

    # a network that does not build (too small an input) is taken as plain: no BatchNorm,
    # no sigmoids
    broken = advice_for(LeNetSpec(input_size=4))
    assert "- **BatchNorm**: the **lenet-bn** preset" in broken and "sigmoid" not in broken


# -- what a download failure says (download.py) -----------------------------------------------

from urllib.error import HTTPError, URLError  # noqa: E402

from cnnviz.training.download import _size, short_reason  # noqa: E402


@pytest.mark.parametrize("count, text", [
    (999, "999 bytes"), (1000, "1 KB"), (1499, "1 KB"), (1500, "2 KB"), (99_999, "100 KB"),
    (100_000, "0.1 MB"), (1_500_000, "1.5 MB"), (30_000_000, "30.0 MB"),
])
def test_sizes_are_said_in_bytes_kb_or_mb(count, text):
    """Kills _size's mutants (≥ 1000 and ≥ 100,000 as the switches, /1e3 and /1e6)."""
    assert _size(count) == text


@pytest.mark.parametrize("error, text", [
    (URLError("[Errno -2] Name or service not known"),
     "no network connection: Name or service not known"),
    (URLError(OSError(113, "No route to host")), "no network connection: No route to host"),
    (HTTPError("http://x", 404, "Not Found", {}, None), "the server answered 404 Not Found"),
    (RuntimeError("Error downloading train.gz:\nTried http://a, got 503\n"
                  "Tried http://b, got Connection reset"),
     "Tried http://b, got Connection reset"),
    (RuntimeError(""), "RuntimeError"),
    (RuntimeError("x" * 160), "x" * 160),
    (RuntimeError("y" * 161), "y" * 157 + "..."),
])
def test_a_download_failure_is_one_short_line(error, text):
    """Kills short_reason's mutants: a URLError's reason, an HTTP error's code and phrase, the
    last line of a long text, the type for an empty one, "no network connection" whatever the
    case of the words, and 160 characters at most."""
    assert short_reason(error) == text


# -- the data cache, damaged files and the IDX writer (data.py, files.py, idx.py) -------------

import numpy as np  # noqa: E402

from cnnviz.training.data import clear_cache, load_dataset, remove_damaged  # noqa: E402
from cnnviz.training.datasets import dataset_info  # noqa: E402
from cnnviz.training.files import (IMAGES_MAGIC, LABELS_MAGIC, FileProblem,  # noqa: E402
                                   _idx_header, problems)
from cnnviz.training.idx import _class_templates, random_idx_dataset, raw_folder  # noqa: E402
from cnnviz.training.idx import write_idx_dataset  # noqa: E402
from tests.test_data import _write_random  # noqa: E402


def test_clearing_one_sets_cache_keeps_the_others(tmp_path, monkeypatch):
    """Kills clear_cache's mutants that clear more than asked (``or`` for ``and``, ``is not
    None``): two sets under one folder; forgetting MNIST must keep Fashion-MNIST in memory."""
    _write_random(tmp_path, "fashion-mnist", n_train=12)
    _write_random(tmp_path, "mnist", n_train=12)
    fashion = load_dataset("fashion-mnist", tmp_path, download=False)
    digits = load_dataset("mnist", tmp_path, download=False)
    clear_cache("mnist", tmp_path)
    assert load_dataset("fashion-mnist", tmp_path, download=False) is fashion
    assert load_dataset("mnist", tmp_path, download=False) is not digits
    clear_cache(None, tmp_path / "elsewhere")  # another folder: nothing of this one goes
    assert load_dataset("fashion-mnist", tmp_path, download=False) is fashion
    clear_cache("fashion-mnist", tmp_path)


def test_only_damaged_plain_files_under_the_data_folder_are_removed(tmp_path):
    """Kills every remove_damaged mutant (no selected test reached it): a file cut short is
    removed and listed, a whole file stays, and a damaged file that is a link is left alone
    with its target, whether that lies outside the folder or inside it."""
    _write_random(tmp_path, n_train=12)
    raw = raw_folder(tmp_path, "fashion-mnist")
    cut = raw / "train-images-idx3-ubyte"
    cut.write_bytes(cut.read_bytes()[:100])
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    target = outside / "t10k-images-idx3-ubyte"
    target.write_bytes(b"\0" * 40)
    linked = raw / "t10k-images-idx3-ubyte"
    linked.unlink()
    linked.symlink_to(target)
    inside = raw / "t10k-labels-idx1-ubyte"  # a link to a damaged file in the folder
    (raw / "my-copy").write_bytes(inside.read_bytes()[:9])
    inside.unlink()
    inside.symlink_to(raw / "my-copy")
    removed = remove_damaged("fashion-mnist", tmp_path)
    assert removed == [cut] and not cut.exists()
    assert linked.is_symlink() and target.read_bytes() == b"\0" * 40
    assert inside.is_symlink() and (raw / "my-copy").is_file()
    assert (raw / "train-labels-idx1-ubyte").is_file()  # whole: kept
    assert remove_damaged("fashion-mnist", tmp_path) == []  # nothing damaged is a plain file


def test_remove_damaged_looks_under_the_folder_it_is_given(tmp_path, monkeypatch):
    """Kills the mutant that asks cnnviz's default folder instead of ``root``."""
    monkeypatch.setenv("CNNVIZ_DATA", str(tmp_path / "default"))
    _write_random(tmp_path, n_train=12)
    cut = raw_folder(tmp_path, "fashion-mnist") / "t10k-labels-idx1-ubyte"
    cut.write_bytes(cut.read_bytes()[:9])
    assert remove_damaged("fashion-mnist", tmp_path) == [cut]


@pytest.mark.parametrize("data, magic, said", [
    (b"", IMAGES_MAGIC, "is empty"),
    (b"\0\0\0\0" + b"\0" * 12, IMAGES_MAGIC,
     "is not an IDX file of images: its magic number is 0, not 2051 (it starts with zeros)"),
    (b"\xff\xff\xff\xff\0\0\0\1", LABELS_MAGIC,
     "is not an IDX file of labels: its magic number is 4294967295, not 2049"),
    ((2049).to_bytes(4, "big") + b"\0\0", LABELS_MAGIC,
     "is cut short: 6 bytes, less than its 8-byte header"),
])
def test_an_idx_headers_problem_in_words(tmp_path, data, magic, said):
    """Kills _read_idx_header's mutants: the empty file's words, labels called images,
    the magic number read signed (">i"), the zeros remark, a count of 1 for a cut header."""
    path = tmp_path / "file"
    path.write_bytes(data)
    assert _idx_header(path, magic, 28) == (0, said)


def test_images_and_labels_that_disagree_in_number_are_named(tmp_path):
    """Kills _idx_problems's mutants: the images/labels count check ("XX-images-XX") and a
    damaged file's ``missing`` left None instead of False."""
    _write_random(tmp_path, n_train=12)
    raw = raw_folder(tmp_path, "fashion-mnist")
    labels = raw / "train-labels-idx1-ubyte"
    data = labels.read_bytes()
    labels.write_bytes(data[:4] + (11).to_bytes(4, "big") + data[8:-1])
    found = problems(dataset_info("fashion-mnist"), tmp_path)
    assert found == [FileProblem(raw / "train-images-idx3-ubyte",
                                 "train-images-idx3-ubyte holds 12 images but "
                                 "train-labels-idx1-ubyte 11 labels", False)]
    assert found[0].missing is False
    labels.write_bytes(data[:-1])
    cut, = problems(dataset_info("fashion-mnist"), tmp_path)
    assert cut.missing is False and cut.problem.startswith("train-labels-idx1-ubyte is cut")


def test_the_idx_writer_refuses_what_is_not_28_by_28_grey(tmp_path):
    """Kills _images's ``or`` mutant (any 4-d array, or any array with one row, squeezed):
    colour images are refused, not silently cut to their first channel; a label over the
    classes names the range 0..9; the folder's name for an unknown set is refused in words."""
    ok = np.zeros((2, 28, 28), np.uint8)
    labels = np.zeros(2, np.uint8)
    with pytest.raises(ValueError, match=r"train images must be \(N, 28, 28\), got \(2, 3, 28, 28\)"):
        write_idx_dataset(tmp_path, "mnist", np.zeros((2, 3, 28, 28), np.uint8), labels,
                          ok, labels)
    with pytest.raises(ValueError, match=r"got \(2, 1, 28\)"):
        write_idx_dataset(tmp_path, "mnist", np.zeros((2, 1, 28), np.uint8), labels, ok,
                          labels)
    with pytest.raises(ValueError, match=r"train images must be whole numbers in 0\.\.255"):
        write_idx_dataset(tmp_path, "mnist", np.full((2, 28, 28), 255.5), labels, ok, labels)
    with pytest.raises(ValueError, match=r"train images must be whole numbers in 0\.\.255"):
        write_idx_dataset(tmp_path, "mnist", np.full((2, 28, 28), 256.0), labels, ok, labels)
    with pytest.raises(ValueError, match=r"t10k labels must lie in 0\.\.9"):
        write_idx_dataset(tmp_path, "mnist", ok, labels, ok, np.array([0, 10]))
    with pytest.raises(ValueError, match="IDX files exist only for fashion-mnist, mnist, "
                                         "not 'cifar10'"):
        raw_folder(tmp_path, "cifar10")


def test_the_synthetic_sets_classes_are_blobs_on_black_with_every_shift_and_brightness(tmp_path):
    """Kills the synthetic set's mutants that change what a learner's test data looks like:
    templates clipped to 0..1 with dark background and full-bright blobs, pixels clipped at
    0 (black stays 0, not 1), brightness over 0.6..1 (not only 1.0, or 0.6..1 reversed),
    and the shifts 0..6 (the first row and column of a template's padded canvas used)."""
    templates = _class_templates(np.random.default_rng(0), 10)
    assert templates.shape == (10, 34, 34)
    assert float(templates.min()) == 0.0 and float(templates.max()) == 1.0
    assert all(float((t == 0).mean()) > 0.2 and float((t == 1).mean()) > 0.01
               for t in templates)
    random_idx_dataset(tmp_path, "fashion-mnist", n_train=400, n_test=10, seed=3)
    data = load_dataset("fashion-mnist", tmp_path, download=False)
    images = data.train_images.to(torch.int64).reshape(-1, 28, 28)
    # noise alone gives at most 0.35·255 ≈ 89; a blob at brightness 0.6 at most
    # 0.65·0.6·255 + 89 ≈ 188, at full brightness up to 255
    brightest = images.flatten(1).max(dim=1).values
    assert int(brightest.min()) < 200 < int(brightest.max()), (brightest.min(), brightest.max())
    assert int(images.min()) == 0
    # Each image is its class's template seen through a 28×28 window at some shift: find the
    # shift by correlation. Every shift 0..6 each way occurs, and each image matches its
    # window well (a reversed window, rows = top − steps, does not).
    templates = _class_templates(np.random.default_rng(3), 10)  # the set's first draw
    windows = np.lib.stride_tricks.sliding_window_view(templates, (28, 28), axis=(1, 2))
    seen = windows[data.train_labels.numpy()].astype(np.float64)  # (N, 7, 7, 28, 28)
    pixels = images.numpy().astype(np.float64)[:, None, None]

    def centred(a):
        a = a - a.mean(axis=(-2, -1), keepdims=True)
        return a / np.maximum(np.sqrt((a * a).sum(axis=(-2, -1), keepdims=True)), 1e-9)

    corr = (centred(seen) * centred(pixels)).sum(axis=(-2, -1)).reshape(len(pixels), 49)
    best = corr.argmax(axis=1)
    assert set((best // 7).tolist()) == set(range(7)) == set((best % 7).tolist())
    assert float(corr.max(axis=1).min()) > 0.6, float(corr.max(axis=1).min())


# -- the download's progress bar and its failure sentence (download.py) ------------------------

from cnnviz.training.download import _DownloadProgress, _failure  # noqa: E402
from cnnviz.training.files import expected_files  # noqa: E402


def test_the_download_progress_says_file_bytes_and_share_and_skips_tiny_steps(tmp_path):
    """Kills _DownloadProgress._send's mutants: the share (0.9 of the bar for the download,
    split evenly between files: / for *), sizes in MB (× or 1000001 for / 1e6), and the
    throttle (a step under half a percent is not reported, a file's end always is)."""
    said = []
    bar = _DownloadProgress("Fashion-MNIST", 2, lambda text, share: said.append((text, share)))
    assert bar.interrupted() is None
    bar.begin(tmp_path / "a.gz")
    with bar.start_file(2_000_000) as f:
        f.update(1_050_000)  # 1.05 MB: "1.1" (and "1.0" if divided by 1,000,001)
        f.update(1000)  # 0.9·0.0005/2 more: under half a percent, not reported
    assert said == [("Downloading Fashion-MNIST… file 1 of 2, 1.1 of 2.0 MB",
                     pytest.approx(0.9 * 0.525 / 2)),
                    ("Downloading Fashion-MNIST… file 1 of 2, 1.1 of 2.0 MB", 0.45)]
    assert bar.short and bar.interrupted() == ("a.gz", 1_051_000, 2_000_000)
    bar.begin(tmp_path / "b.gz")
    assert not bar.short
    with bar.start_file(None) as f:
        f.update(3_500_000)
    assert said[-1] == ("Downloading Fashion-MNIST… file 2 of 2, 3.5 MB", 0.9)
    assert bar.where() == "b.gz, file 2 of 2"


def test_a_failed_download_with_some_files_there_names_the_first_missing(tmp_path):
    """Kills _failure's before[1] mutant: with two of four files there, the sentence names
    the first file that is missing and its folder."""
    info = dataset_info("fashion-mnist")
    paths = expected_files(info, tmp_path)
    before = [FileProblem(p, f"{p.name} is missing", True) for p in paths[:2]]
    bar = _DownloadProgress(info.title, 4, lambda *_: None)
    said = _failure(info, tmp_path, URLError("[Errno -2] Name or service not known"), bar,
                    before, before)
    assert said == (f"Could not download Fashion-MNIST (no network connection: Name or service "
                    f"not known); {paths[0].name} is missing under {paths[0].parent}. Choose "
                    f"the offline 'digits' data set, or place the files under {tmp_path}.")


# -- the job's own work before its run (job.py) -----------------------------------------------

import os  # noqa: E402

from cnnviz.training import job as job_module  # noqa: E402
from cnnviz.training.datasets import DataError  # noqa: E402
from cnnviz.training.job import app_threads  # noqa: E402


@pytest.mark.parametrize("cpus, default, threads", [
    (1, 4, 1), (2, 4, 2), (3, 4, 2), (8, 4, 4), (8, 16, 7), (16, 8, 8),
])
def test_app_threads_leave_one_core_only_above_two(cpus, default, threads):
    """Kills app_threads's mutants (cpus − 2, ≥ 2, the given count ignored)."""
    assert app_threads(cpus, default) == threads


def test_app_threads_count_the_cores_this_process_may_use():
    usable = len(os.sched_getaffinity(0))
    assert app_threads(None, 64) == max(1, usable - 1 if usable > 2 else usable)


class RecordedRun:
    """Stands in for TrainingRun: records what the job gave it."""
    made: list = []

    def __init__(self, spec, cfg, *, dataset, callbacks, threads):
        RecordedRun.made.append({"dataset": dataset, "threads": threads})
        self.state, self.message, self.done = "running", "", False

    def start(self):
        return self

    def stop(self):
        self.state = "stopped"


def run_job(monkeypatch, load, **config) -> TrainingJob:
    monkeypatch.setattr(job_module, "load_dataset", load)
    monkeypatch.setattr(job_module, "TrainingRun", RecordedRun)
    RecordedRun.made = []
    job = TrainingJob(1, "lenet", LENET, TrainConfig(dataset="digits", **config), threads=3)
    assert (job.state, job.message) == ("created", "")
    job.start()
    assert job._thread.daemon  # a job never keeps the server from exiting
    job._thread.join(10)
    assert not job._thread.is_alive()
    return job


def test_a_job_hands_its_limit_and_threads_on(monkeypatch):
    """Kills _work's mutants that drop the data limit or the threads (None for each)."""
    asked = {}

    def load(name, root, *, progress, limit):
        asked.update(name=name, limit=limit)
        return "the data"

    job = run_job(monkeypatch, load, limit=200)
    assert asked == {"name": "digits", "limit": 200}
    assert RecordedRun.made == [{"dataset": "the data", "threads": 3}]
    assert job.state == "running"


@pytest.mark.parametrize("error, said", [
    (DataError("Could not read the digits"), "Could not read the digits"),
    (RuntimeError("disk on fire"), "RuntimeError: disk on fire"),
    (RuntimeError(""), "RuntimeError"),
])
def test_a_job_whose_data_does_not_load_fails_saying_why(monkeypatch, error, said):
    """Kills _work's failure mutants (the state or message None, type(None)'s name)."""
    def load(*args, **kwargs):
        raise error

    job = run_job(monkeypatch, load)
    assert (job.state, job.message, job.done) == ("failed", said, True)
    assert RecordedRun.made == []


def test_a_stop_while_the_data_loads_ends_the_job_before_its_run(monkeypatch):
    """Kills _work's "stopped while loading the data" mutants (None, the words altered)."""
    job = None

    def load(*args, **kwargs):
        job.stop()
        return "the data"

    monkeypatch.setattr(job_module, "load_dataset", load)
    monkeypatch.setattr(job_module, "TrainingRun", RecordedRun)
    RecordedRun.made = []
    job = TrainingJob(1, "lenet", LENET, TrainConfig(dataset="digits"), threads=1)
    job.start()
    job._thread.join(10)
    assert (job.state, job.message, job.done) == ("stopped", "stopped while loading the data",
                                                  True)
    assert RecordedRun.made == []


# -- reading a data set that is there but not right (data.py), a run's queue place and the
# estimate of a run shorter than its timed steps (engine.py) ---------------------------------

from cnnviz.training.engine import TrainingRun, estimate_seconds  # noqa: E402


def test_damaged_files_are_named_one_or_the_first_and_how_many_more(tmp_path):
    """Kills _load_torchvision's mutant that adds "XXXX" after a single damaged file."""
    _write_random(tmp_path, n_train=12)
    raw = raw_folder(tmp_path, "fashion-mnist")
    images = raw / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:1000])
    tail = "Delete that folder"
    with pytest.raises(DataError) as one:
        load_dataset("fashion-mnist", tmp_path, download=False)
    assert (f"Could not read Fashion-MNIST from {raw} (train-images-idx3-ubyte is cut short: "
            f"1,000 of 9,424 bytes). {tail}") in str(one.value)
    labels = raw / "t10k-labels-idx1-ubyte"
    labels.write_bytes(labels.read_bytes()[:10])
    with pytest.raises(DataError) as two:
        load_dataset("fashion-mnist", tmp_path, download=False)
    assert "9,424 bytes (and 1 more)). Delete that folder" in str(two.value)


def test_whole_files_that_do_not_hold_the_set_are_refused_naming_the_folder(tmp_path):
    """Kills _load_torchvision's mutants of the last refusal (the folder from
    ``expected_files(info, )``, ``short_reason(None)``): whole IDX files whose labels run past
    the ten classes load in torchvision, then are refused in one line."""
    _write_random(tmp_path, n_train=12)
    raw = raw_folder(tmp_path, "fashion-mnist")
    labels = raw / "train-labels-idx1-ubyte"
    data = bytearray(labels.read_bytes())
    data[8] = 10  # the first label: class 10 of 0..9
    labels.write_bytes(bytes(data))
    with pytest.raises(DataError) as caught:
        load_dataset("fashion-mnist", tmp_path, download=False)
    assert str(caught.value).startswith(
        f"Could not read Fashion-MNIST from {raw} (labels outside 0..9). Delete that folder")


def test_a_run_not_yet_on_a_device_has_no_queue_place():
    """Kills queue_position's +1 for −1 (a run with no device is in no queue)."""
    run = TrainingRun(LENET, TrainConfig(dataset="digits"))
    assert run.device == "" and run.queue_position() == -1


def test_the_estimate_of_a_run_shorter_than_its_timed_steps_still_runs():
    """Kills _estimate's schedule mutant (warm_up − steps): a run of one step is timed over
    2 + 5 steps, so the one-cycle schedule must span 7 (OneCycleLR refuses a step past its
    end)."""
    cfg = TrainConfig(dataset="digits", epochs=1, batch_size=512, limit=300, recipe="fast")
    assert estimate_seconds(LENET, cfg, threads=1) > 0


# -- how a run that stops or fails mid-epoch says where it was, and how often it reports
# (engine.py) ---------------------------------------------------------------------------------

from cnnviz.training import recipe as recipe_module  # noqa: E402
from cnnviz.training.engine import POINT_SECONDS, Callback  # noqa: E402
from tests.test_training import TINY  # noqa: E402

# 1,437 digits in batches of 64: 23 steps an epoch (the last batch of 29 kept); points after
# steps 6, 12 and 17 (points_per_epoch 4) and at the epoch's end.
DIGITS = dict(dataset="digits", batch_size=64, device="cpu", seed=1)


def finished_run(config: TrainConfig, callbacks=()) -> TrainingRun:
    run = TrainingRun(TINY, config, dataset=load_dataset("digits"), callbacks=callbacks,
                      threads=1)
    run.start()
    assert run.join(120), "the run did not end in time"
    return run


class StopTwiceAt(Callback):
    """At the point of ``epoch``, Stop and Stop again: training ends, and its test is cut."""

    def __init__(self, epoch: float):
        self.epoch = epoch

    def on_metrics(self, run, point):
        if abs(point.epoch - self.epoch) < 1e-3:  # points keep 4 decimals
            run.stop()
            run.stop()


def test_a_run_stopped_twice_says_its_test_was_skipped_and_which_figures_stand():
    """Kills _train's stop-message mutants (``=`` for ``+=``, the tested epoch dropped, the
    words altered): stopped at the point 1 + 6/23 after one full test (the run ends after its
    6 · 64 = 384 of 1,437 examples: epoch 1.27), then at 6/23 in the first epoch, before any."""
    run = finished_run(TrainConfig(epochs=2, **DIGITS), [StopTwiceAt(1 + 6 / 23)])
    assert (run.state, run.message) == (
        "stopped", "stopped at epoch 1.27; the test was skipped, the test figures are from "
                   "epoch 1")
    run = finished_run(TrainConfig(epochs=2, **DIGITS), [StopTwiceAt(6 / 23)])
    assert (run.state, run.message) == ("stopped",
                                        "stopped at epoch 0.27; the test was skipped")


def test_a_run_that_fails_mid_epoch_says_in_which_epoch_and_after_how_much(monkeypatch):
    """Kills _train's ``step * steps`` for ``step / steps``: the fifth step of the second
    epoch fails, after 1 + 4/23 epochs."""
    real, calls = recipe_module.Recipe.step, []

    def fifth_of_the_second_epoch_fails(self, images, labels, generator=None):
        calls.append(1)
        if len(calls) == 23 + 5:
            raise RuntimeError("a step that breaks")
        return real(self, images, labels, generator)

    monkeypatch.setattr(recipe_module.Recipe, "step", fifth_of_the_second_epoch_fails)
    run = finished_run(TrainConfig(epochs=2, **DIGITS))
    assert run.state == "failed"
    assert "in epoch 2 of 2, after 1.17 epochs" in run.message, run.message


def test_a_run_reports_at_its_marks_and_on_time_not_after_every_step():
    """Kills _train's ``now + last_time`` (a point after every step): an epoch of 23 steps
    gives its three marks and its end, and a timed point at most every POINT_SECONDS."""
    run = finished_run(TrainConfig(epochs=2, **DIGITS))
    seconds = run.points()[-1].seconds
    assert 8 <= len(run.points()) <= 8 + seconds / POINT_SECONDS + 2, (
        len(run.points()), seconds)


def test_prepare_crops_from_the_runs_generator_alone():
    """Kills prepare's mutant that crops without the run's generator (from torch's global
    stream, which every session's thread shares)."""
    from cnnviz.training.batches import prepare
    images = torch.randint(0, 256, (16, 1, 8, 8), dtype=torch.uint8)
    torch.manual_seed(0)
    before = torch.get_rng_state()
    first = prepare(images, channels=1, size=16, augment=True, flip=True,
                    generator=torch.Generator().manual_seed(4))
    assert torch.equal(torch.get_rng_state(), before)
    again = prepare(images, channels=1, size=16, augment=True, flip=True,
                    generator=torch.Generator().manual_seed(4))
    assert torch.equal(first, again)



def test_the_near_chance_advice_joins_its_reasons():
    """Kills chance_advice's "XX; XX" join: the book's LeNet (sigmoid, no BatchNorm) on the
    book recipe has two reasons, joined by "; "."""
    assert ("with plain SGD (the book recipe); its sigmoid activations pass back small "
            "gradients") in advice_for(recipe="book")


def test_an_unknown_device_is_refused_naming_the_choices():
    """Kills resolved's ``', '.join(None)``."""
    from cnnviz.training.config import TrainingError
    with pytest.raises(TrainingError, match="^device must be one of auto, cpu, cuda, mps, "
                                            "got 'tpu'$"):
        TrainConfig(device="tpu").resolved(LENET)


def test_a_run_trains_with_its_own_threads_and_says_it_loads_first(monkeypatch):
    """Kills TrainingRun's mutants that drop its threads (None) or its "loading" state:
    torch runs the run's steps on the threads it was given, and while its data loads the run
    says "loading"."""
    from cnnviz.training import engine
    seen = {}
    real = engine.load_dataset

    def load(*args, **kwargs):
        seen["state"] = run.state
        return real(*args, **kwargs)

    class Threads(Callback):
        def on_metrics(self, run, point):
            seen.setdefault("threads", torch.get_num_threads())

    monkeypatch.setattr(engine, "load_dataset", load)
    previous = torch.get_num_threads()
    try:
        run = TrainingRun(TINY, TrainConfig(epochs=1, limit=300, **DIGITS),
                          callbacks=[Threads()], threads=3)
        run.start()
        assert run.join(120)
    finally:
        torch.set_num_threads(previous)
    assert run.state == "finished", run.message
    assert seen == {"state": "loading", "threads": 3}


def test_the_augmentation_help_lists_each_data_set_on_its_own_line_chosen_first():
    """Kills augmentation_help's "XX\\nXX" join."""
    from cnnviz.training.datasets import DATASETS, augmentation_help
    intro, listing = augmentation_help("cifar10").split("\n\n")
    assert intro.startswith("Training batches only, drawn per example on the device")
    lines = listing.split("\n")
    assert [line.split("**")[1] for line in lines] == \
        ["CIFAR-10"] + [i.title for i in DATASETS.values() if i.name != "cifar10"]
    assert all(line.startswith("- **") for line in lines)
