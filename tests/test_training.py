"""The training engine on tiny data: learning, stopping, budgets, divergence, the queue,
callbacks, the shared recipe and the estimate, the book's defaults, the job the Train page
holds, checkpoints, and the command line."""
from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import replace

import pytest
import torch

from cnnviz.cli import main
from cnnviz.presets import PRESETS
from cnnviz.specs import CustomSpec
from cnnviz.specs import custom as L
from cnnviz.training.batches import prepare, random_crop_flip
from cnnviz.training.checkpoint import CheckpointError, load_weights, state_dict_bytes
from cnnviz.specs import SPEC_CLASSES
from cnnviz.training import engine
from cnnviz.training.config import (BOOK, TrainConfig, TrainingError, book_batch_size,
                                    book_defaults_text, book_help, book_lr, resolve_device)
from cnnviz.training.data import load_dataset
from cnnviz.training.datasets import DataError
from cnnviz.training.engine import Callback, TrainingRun, estimate_seconds
from cnnviz.training import job as job_module
from cnnviz.training.job import TrainingJob
from cnnviz.training.queue import DeviceQueue
from cnnviz.training.recipe import (CPU_CHANNELS_LAST_FROM, BatchPlan, channels_last,
                                   make_model, make_recipe, plan_batches)

LENET_BN = PRESETS["lenet-bn"].spec
# A small network that trains on 8×8 digits at their own size in a blink.
TINY = CustomSpec(1, 10, 8, (L.Conv(8, 3, padding=1), L.BatchNorm(), L.ReLU(),
                             L.MaxPool(2), L.Flatten(), L.Linear(128, 10)))


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def run_to_end(spec, config, data, queue=None, timeout=120) -> TrainingRun:
    run = TrainingRun(spec, config, dataset=data, **({"queue": queue} if queue else {}))
    run.start()
    assert run.join(timeout), "the run did not finish in time"
    return run


def wait_for(condition, what: str, timeout: float = 60) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` did not happen in time."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.01)


def holds_for(condition, what: str, seconds: float) -> None:
    """``condition`` stays true for ``seconds`` (something that must not happen does not)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert condition(), f"{what} stopped holding"
        time.sleep(0.01)


def slow_steps(monkeypatch, seconds: float) -> None:
    """Each training step of the runs made from here on takes ``seconds`` longer, so an epoch
    has a known least length on any machine (the digits train far faster than a stop or a
    budget can be told from an epoch's end)."""
    real = engine.make_recipe

    def make_recipe(*args, **kwargs):
        recipe = real(*args, **kwargs)
        step = recipe.step

        def slow(*step_args, **step_kwargs):
            time.sleep(seconds)
            return step(*step_args, **step_kwargs)

        recipe.step = slow
        return recipe

    monkeypatch.setattr(engine, "make_recipe", make_recipe)


# Slow epochs: the 1,437 training digits in batches of 8 make 180 steps an epoch, and each
# step sleeps 20 ms more, so an epoch lasts 3.6 s at least.
SLOW_STEPS, SLOW_STEP_SECONDS = 180, 0.02
SLOW = TrainConfig(dataset="digits", epochs=10_000, batch_size=8, lr=0.05, device="cpu")


def test_lenet_bn_learns_the_digits(digits):
    run = run_to_end(LENET_BN, TrainConfig(dataset="digits", epochs=6, batch_size=64, lr=0.5,
                                           device="cpu"), digits)
    assert run.state == "finished", run.message
    points = run.points()
    epochs = [p for p in points if p.test_acc is not None]
    assert len(epochs) == 6 and epochs[-1].epoch == 6.0
    assert epochs[-1].train_loss < epochs[0].train_loss / 2
    assert epochs[-1].test_acc > 0.8
    assert all(p.examples_per_sec > 0 for p in points)
    result = run.result
    assert result.confusion.shape == (10, 10) and int(result.confusion.sum()) == 360
    assert int(result.confusion.trace()) == round(epochs[-1].test_acc * 360)
    for image, label, predicted in result.mistakes:
        assert image.shape == (1, 8, 8) and image.dtype == torch.uint8 and label != predicted


def test_points_come_several_times_per_epoch(digits):
    run = run_to_end(TINY, TrainConfig(dataset="digits", epochs=2, batch_size=32, lr=0.1,
                                       points_per_epoch=4, device="cpu"), digits)
    fractions = [p.epoch for p in run.points()]
    assert fractions == sorted(fractions) and len(fractions) >= 8
    # The quarter marks are always there (time-based points may come in between).
    for mark in (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0):
        assert any(abs(f - mark) < 0.03 for f in fractions), (mark, fractions)


def test_stop_takes_effect_within_a_batch(digits, monkeypatch):
    """A Stop pressed mid-epoch (from another thread, as a page presses it) ends training
    before the next batch: the run ends inside its first 3.6 s epoch, at once."""
    slow_steps(monkeypatch, SLOW_STEP_SECONDS)
    run = TrainingRun(TINY, SLOW, dataset=digits).start()
    wait_for(lambda: run.points(), "the run's first point (0.5 s into its first epoch)")
    run.stop()
    asked = time.monotonic()
    assert run.join(30)
    took = time.monotonic() - asked
    last = run.points()[-1]
    assert run.state == "stopped" and last.test_acc is not None
    # Mid-epoch: an end-of-epoch check would have trained on to epoch 1.0 (3 s more).
    assert 0 < last.epoch < 1, last.epoch
    # One 20 ms step, then a test of 360 digits by TINY (a few ms): 1 s is room for a busy
    # machine and is a third of what the rest of the epoch would take.
    assert took < 1.0, f"the stop took {took:.2f} s"


def test_a_stop_at_a_metric_point_takes_no_further_step(digits):
    """A stop asked for at a metric point ends training there: the last point (the test of
    what it learned) is at the very epoch of the stop, not a batch later."""
    class StopAtTheSecondPoint(Callback):
        def __init__(self):
            self.asked_at: list[float] = []

        def on_metrics(self, run, point):
            if len(run.points()) == 2:
                run.stop()
                self.asked_at.append(point.epoch)

    stopper = StopAtTheSecondPoint()
    # 1,437 digits in batches of 16: 90 steps an epoch, points after steps 22, 45 and 67.
    run = TrainingRun(TINY, TrainConfig(dataset="digits", epochs=3, batch_size=16, lr=0.1,
                                        points_per_epoch=4, device="cpu"), dataset=digits,
                      callbacks=[stopper]).start()
    assert run.join(60) and run.state == "stopped", run.message
    [asked_at] = stopper.asked_at
    last = run.points()[-1]
    assert last.test_acc is not None and last.epoch < 1
    # A point's epoch counts steps (of 90); the test's counts examples (of 1,437): the same
    # steps of 16 examples.
    assert round(last.epoch * 1437) == round(asked_at * 90) * 16, (asked_at, last.epoch)
    assert run.message == f"stopped at epoch {last.epoch:.2f}".rstrip("0").rstrip(".")


def test_time_budget_stops_cleanly(digits, monkeypatch):
    """The budget is checked before every step: a 1 s budget ends the run inside its first
    3.6 s epoch, one step past the budget at most, then tests it."""
    slow_steps(monkeypatch, SLOW_STEP_SECONDS)
    budget = 1.0
    run = run_to_end(TINY, replace(SLOW, time_budget=budget), digits)
    assert run.state == "finished" and run.message == "the time budget is spent"
    last = run.points()[-1]
    assert 0 < last.epoch < 1, last.epoch  # a budget checked per epoch ends at 1.0
    # Training time (the final test excluded) is the budget plus at most the step under way
    # (20 ms) and its bookkeeping; 0.5 s is room for a busy machine, where 5 × the budget
    # would be 4 s over it.
    assert budget <= last.train_seconds <= budget + 0.5, last.train_seconds
    assert last.test_acc is not None and run.progress == 1.0
    assert run.result is not None and run.result.confusion.sum() == 360


def test_divergence_is_reported(digits):
    run = run_to_end(TINY, TrainConfig(dataset="digits", epochs=3, batch_size=32, lr=90,
                                       device="cpu"), digits)
    assert run.state == "failed"
    assert run.message.startswith("diverged — lower the learning rate")


def test_a_nan_loss_is_reported_as_divergence(digits, monkeypatch):
    """A step whose loss is NaN (here a batch with a NaN pixel: the logits, the loss and,
    after the step, the weights are NaN) fails the run at the next metric point; a NaN
    compares false with every threshold, so only the finiteness check sees it."""
    from cnnviz.training import recipe as recipe_module
    real, calls = recipe_module.prepare, []

    def nan_in_the_third_batch(images, **kwargs):
        x = real(images, **kwargs)
        calls.append(1)
        if len(calls) == 3:
            x = x.clone()
            x[0, 0, 0, 0] = float("nan")
        return x

    monkeypatch.setattr(recipe_module, "prepare", nan_in_the_third_batch)
    # 1,437 digits in batches of 64: 23 steps an epoch, points after steps 6, 12 and 17.
    run = run_to_end(TINY, TrainConfig(dataset="digits", epochs=2, batch_size=64, lr=0.1,
                                       device="cpu"), digits)
    assert run.state == "failed" and run.result is None
    said = re.fullmatch(r"diverged — lower the learning rate \(the loss became NaN or "
                        r"infinite at epoch (0\.\d+) with learning rate 0\.1\)", run.message)
    assert said, run.message
    # Reported at the first point after the third step: the quarter mark (step 6 of 23), or
    # a timed point before it on a slow machine; never before the NaN.
    assert 3 / 23 - 0.005 <= float(said.group(1)) <= 6 / 23 + 0.005
    assert all(p.epoch < 3 / 23 for p in run.points())  # no NaN point joined the curve


def test_out_of_memory_frees_and_suggests_a_batch_size(digits, monkeypatch):
    def no_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory")
    monkeypatch.setattr("cnnviz.training.recipe.prepare", no_memory)
    run = run_to_end(TINY, TrainConfig(dataset="digits", epochs=1, batch_size=64, lr=0.1,
                                       device="cpu"), digits)
    assert run.state == "failed"
    assert run.message == ("out of memory at batch size 64 on cpu; try batch size 32 or a "
                           "smaller input size")


def test_a_second_run_waits_in_the_queue(digits):
    queue = DeviceQueue()
    first = TrainingRun(TINY, TrainConfig(dataset="digits", epochs=10_000, batch_size=16,
                                          lr=0.1, device="cpu"), dataset=digits,
                        queue=queue).start()
    wait_for(lambda: first.state == "running", "the first run trains")
    second = TrainingRun(TINY, TrainConfig(dataset="digits", epochs=1, batch_size=64, lr=0.1,
                                           device="cpu"), dataset=digits, queue=queue).start()
    wait_for(lambda: second.queue_position() == 1, "the second run waits behind the first")
    holds_for(lambda: second.state == "queued" and not second.points(),
              "the second run waiting", 0.3)
    assert first.queue_position() == 0 and first.state == "running"
    first.stop()
    assert second.join(60) and second.state == "finished"
    assert first.state == "stopped"


def test_a_queued_run_can_be_stopped(digits):
    queue = DeviceQueue()
    holder = threading.Event()
    queue.acquire("cpu", holder, threading.Event())
    waiting = TrainingRun(TINY, TrainConfig(dataset="digits", device="cpu"), dataset=digits,
                          queue=queue).start()
    wait_for(lambda: waiting.queue_position() == 1, "the run waits in the queue")
    waiting.stop()
    assert waiting.join(10) and waiting.state == "stopped"
    assert waiting.message == "stopped while waiting in the queue"
    queue.release("cpu", holder)


def test_checkpoint_round_trip_and_mismatch(digits):
    run = run_to_end(TINY, TrainConfig(dataset="digits", epochs=1, device="cpu", lr=0.1),
                     digits)
    data = state_dict_bytes(run.result.model)
    loaded = load_weights(TINY, data).eval()
    x = torch.rand(4, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(loaded(x), run.result.model(x))
    with pytest.raises(CheckpointError, match="these weights are for a different network"):
        load_weights(LENET_BN, data)
    wider = CustomSpec(1, 10, 8, (L.Conv(16, 3, padding=1), L.BatchNorm(), L.ReLU(),
                                  L.MaxPool(2), L.Flatten(), L.Linear(256, 10)))
    with pytest.raises(CheckpointError, match=r"0.weight is 8×1×3×3 in the file but "
                                              r"16×1×3×3 here"):
        load_weights(wider, data)
    with pytest.raises(CheckpointError, match="not a PyTorch state_dict file"):
        load_weights(TINY, b"not a checkpoint")


class MakesAFolder:
    """A pickled object whose unpickling calls ``os.mkdir(path)``: code a file carries."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return os.mkdir, (self.path,)


def test_a_pickled_object_is_refused(tmp_path):
    """A weights file that carries code is refused before any of it runs (torch.load with
    weights_only=True); the message names what it asked for."""
    ran = tmp_path / "the file's code ran"
    buffer = io.BytesIO()
    torch.save({"0.weight": torch.zeros(8, 1, 3, 3), "payload": MakesAFolder(ran)}, buffer)
    with pytest.raises(CheckpointError) as refused:
        load_weights(TINY, buffer.getvalue())
    assert not ran.exists(), "loading the weights ran the code the file carries"
    assert re.search(r"it asks for \w+\.mkdir .* nothing of it was run", str(refused.value)), \
        str(refused.value)


def test_weights_that_do_not_fit_are_refused_naming_what_is_wrong(digits):
    """A tensor too many, a tensor too few and another network's weights are each refused,
    saying which tensors; the right weights load."""
    model = make_model(TINY, torch.device("cpu"), seed=0)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def saved(state: dict) -> bytes:
        buffer = io.BytesIO()
        torch.save(state, buffer)
        return buffer.getvalue()

    loaded = load_weights(TINY, saved(state)).state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())
    extra = dict(state, **{"6.weight": torch.zeros(10, 10)})
    with pytest.raises(CheckpointError, match=r"^these weights are for a different network: "
                                              r"1 unknown tensors \(6\.weight\)$"):
        load_weights(TINY, saved(extra))
    short = {k: v for k, v in state.items() if k != "1.running_var"}
    with pytest.raises(CheckpointError, match=r"^these weights are for a different network: "
                                              r"missing 1\.running_var$"):
        load_weights(TINY, saved(short))
    # LeNet-BN's weights for TINY: all 9 of TINY's tensors (layers 0, 1 and 5; BatchNorm's
    # counter too) missing, LeNet-BN's stage names unknown.
    with pytest.raises(CheckpointError, match=r"^these weights are for a different network: "
                                              r"9 tensors missing \(0\.weight, 0\.bias, "
                                              r"1\.weight…\); \d+ unknown tensors \(b1\.0"):
        load_weights(TINY, state_dict_bytes(make_model(LENET_BN, torch.device("cpu"))))


def test_prepare_adapts_channels_and_size():
    grey = torch.randint(0, 256, (4, 1, 8, 8), dtype=torch.uint8)
    x = prepare(grey, channels=3, size=16)
    assert x.shape == (4, 3, 16, 16) and x.dtype == torch.float32
    assert 0 <= float(x.min()) and float(x.max()) <= 1
    assert torch.equal(x[:, 0], x[:, 2])
    colour = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    assert prepare(colour, channels=1, size=28).shape == (2, 1, 28, 28)
    same = prepare(grey, channels=1, size=8)
    assert torch.allclose(same * 255, grey.float())


def test_prepare_picks_the_layout_whatever_the_images_strides():
    # A slice of grey images can carry channels-last strides; before the fix the whole network
    # then ran channels-last on the CPU (LeNet-BN's steps 40 % slower) and the estimate, timed
    # on freshly made images, ran the other layout.
    grey = torch.randint(0, 256, (4, 8, 8, 1), dtype=torch.uint8).permute(0, 3, 1, 2)
    assert grey.is_contiguous(memory_format=torch.channels_last)
    conv = torch.nn.Conv2d(1, 6, 3)
    for size in (8, 28):
        plain = prepare(grey, channels=1, size=size)
        assert plain.stride() == (size * size, size * size, size, 1)
        assert conv(plain).is_contiguous()
        last = prepare(grey, channels=1, size=size, channels_last=True)
        assert conv.to(memory_format=torch.channels_last)(last).is_contiguous(
            memory_format=torch.channels_last)
        conv = torch.nn.Conv2d(1, 6, 3)


def test_channels_last_on_the_gpu_and_for_large_inputs_on_the_cpu():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert not channels_last(cpu, 28) and channels_last(cpu, 224) and channels_last(cuda, 28)
    small = make_model(PRESETS["lenet"].spec, cpu)
    assert next(small.parameters()).is_contiguous()
    large = make_model(PRESETS["lenet"].spec, cpu, size=CPU_CHANNELS_LAST_FROM)
    weight = next(p for p in large.parameters() if p.dim() == 4)
    assert weight.is_contiguous(memory_format=torch.channels_last)
    cfg = TrainConfig(dataset="digits", size=96, device="cpu").resolved(PRESETS["lenet"].spec)
    recipe = make_recipe(large, PRESETS["lenet"].spec, cfg, cpu, total_steps=1)
    assert recipe.prep["channels_last"]


def test_random_crop_flip_moves_pixels_not_values():
    x = torch.arange(2 * 1 * 8 * 8, dtype=torch.float32).reshape(2, 1, 8, 8) + 1
    out = random_crop_flip(x, padding=2, generator=torch.Generator().manual_seed(3))
    assert out.shape == x.shape
    for i in range(2):
        kept = out[i][out[i] > 0]
        assert set(kept.tolist()) <= set(x[i].flatten().tolist())


def test_config_defaults_and_checks():
    cfg = TrainConfig().resolved(LENET_BN)
    assert (cfg.batch_size, cfg.lr, cfg.size) == (256, 1.0, 28)
    assert book_lr(PRESETS["alexnet"].spec) == 0.01
    assert TrainConfig().resolved(PRESETS["resnet18"].spec).batch_size == 256
    with pytest.raises(TrainingError, match="epochs must be ≥ 1, got 0; learning rate"):
        TrainConfig(epochs=0, lr=-1).resolved(LENET_BN)
    # a zero asked for is refused, not taken as "not given" (the book's default)
    with pytest.raises(TrainingError, match="batch size must be between 1 and .*, got 0"):
        TrainConfig(batch_size=0).resolved(LENET_BN)
    with pytest.raises(TrainingError, match="input size must be between 1 and .*, got 0"):
        TrainConfig(size=0).resolved(LENET_BN)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_a_missing_device_is_a_clear_failure():
    with pytest.raises(TrainingError, match="no CUDA GPU is available here; use auto or cpu"):
        resolve_device("cuda")
    run = TrainingRun(TINY, TrainConfig(device="cuda")).start()
    assert run.join(10) and run.state == "failed" and "no CUDA GPU" in run.message
    assert resolve_device("auto").type in ("cpu", "mps")


def test_estimate_is_positive_and_respects_the_budget():
    cfg = TrainConfig(dataset="digits", epochs=2, batch_size=64, device="cpu")
    assert estimate_seconds(TINY, cfg) > 0
    budget = TrainConfig(dataset="digits", epochs=1000, batch_size=64, device="cpu",
                         time_budget=3.0)
    assert estimate_seconds(TINY, budget) <= 3.0


def test_estimate_reads_the_split_sizes_from_the_registry(monkeypatch):
    seen = []
    real = plan_batches

    def spy(examples, batch_size):
        seen.append(examples)
        return real(examples, batch_size)

    monkeypatch.setattr(engine, "plan_batches", spy)
    estimate_seconds(TINY, TrainConfig(dataset="digits", epochs=1, batch_size=64,
                                       device="cpu"), steps=1)
    assert seen[-1] == 1437  # the registry's digits training split
    estimate_seconds(TINY, TrainConfig(dataset="digits", epochs=1, batch_size=64, limit=300,
                                       device="cpu"), steps=1)
    assert seen[-1] == 300
    with pytest.raises(DataError, match="Unknown data set 'nope'"):
        estimate_seconds(TINY, TrainConfig(dataset="nope", device="cpu"))


# -- the recipe the run and the estimate share -------------------------------------------------

def test_make_recipe_builds_each_recipe():
    cfg = TrainConfig(dataset="digits", lr=0.2, device="cpu").resolved(TINY)
    device = torch.device("cpu")
    book = make_recipe(make_model(TINY, device), TINY, cfg, device, total_steps=10)
    assert type(book.optimizer) is torch.optim.SGD and book.scheduler is None
    assert book.optimizer.defaults["momentum"] == 0 and book.label_smoothing == 0.0
    fast_cfg = TrainConfig(dataset="digits", lr=0.2, recipe="fast", device="cpu").resolved(TINY)
    fast = make_recipe(make_model(TINY, device), TINY, fast_cfg, device, total_steps=10)
    defaults = fast.optimizer.defaults
    assert (defaults["momentum"], defaults["nesterov"], defaults["weight_decay"]) == \
        (0.9, True, 5e-4)
    assert isinstance(fast.scheduler, torch.optim.lr_scheduler.OneCycleLR)
    assert fast.scheduler.total_steps == 10 and fast.label_smoothing == 0.1
    out = torch.tensor([[4.0, 0.0, 0.0]])
    labels = torch.tensor([0])
    assert float(fast.loss(out, labels)) > float(book.loss(out, labels))  # smoothing costs
    # one step trains: the weights move, the schedule advances
    before = [p.detach().clone() for p in fast.model.parameters()]
    images = torch.randint(0, 256, (8, 1, 8, 8), dtype=torch.uint8)
    logits, loss = fast.step(images, torch.randint(0, 10, (8,)))
    assert logits.shape == (8, 10) and not loss.requires_grad
    assert fast.scheduler.last_epoch == 1
    assert any(not torch.equal(a, b) for a, b in zip(before, fast.model.parameters()))


@pytest.mark.parametrize("recipe", ["book", "fast"])
def test_the_estimate_times_the_runs_own_recipe(digits, monkeypatch, recipe):
    built = []
    real = engine.make_recipe

    def spy(*args, **kwargs):
        built.append(real(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(engine, "make_recipe", spy)
    cfg = TrainConfig(dataset="digits", epochs=1, batch_size=64, lr=0.1, recipe=recipe,
                      device="cpu")
    estimate_seconds(TINY, cfg, steps=2)
    run = run_to_end(TINY, cfg, digits)
    assert run.state == "finished", run.message
    estimated, trained = built

    def described(r):
        return (type(r.optimizer), r.optimizer.defaults, type(r.scheduler), r.label_smoothing,
                r.prep, r.augment)

    assert described(estimated) == described(trained)
    if recipe == "fast":
        assert estimated.label_smoothing == 0.1 and estimated.optimizer.defaults["nesterov"]
        assert isinstance(estimated.scheduler, torch.optim.lr_scheduler.OneCycleLR)
    else:
        assert estimated.label_smoothing == 0.0 and estimated.scheduler is None


def test_plan_batches_never_leaves_a_batch_of_one():
    assert plan_batches(1437, 64) == BatchPlan(64, False, 23)
    assert plan_batches(129, 64) == BatchPlan(64, True, 2)
    assert plan_batches(100, 256) == BatchPlan(100, False, 1)


# -- callbacks ---------------------------------------------------------------------------------

class Recorder(Callback):
    def __init__(self):
        self.points, self.ends = [], []

    def on_metrics(self, run, point):
        self.points.append(point)

    def on_end(self, run, result):
        self.ends.append((run.state, run.message, result, run.done))


def test_callbacks_hear_every_point_and_the_end(digits):
    recorder = Recorder()
    run = TrainingRun(TINY, TrainConfig(dataset="digits", epochs=2, batch_size=64, lr=0.1,
                                        device="cpu"), dataset=digits, callbacks=[recorder])
    run.start()
    assert run.join(120) and run.state == "finished"
    assert recorder.points == run.points() and len(recorder.points) >= 2 * 4
    assert all(type(p.train_loss) is float and type(p.train_acc) is float
               for p in recorder.points)
    [(state, message, result, done)] = recorder.ends
    assert (state, message) == ("finished", "done") and result is run.result
    assert not done and run.done  # done only once every callback heard the end


def test_a_callback_reads_the_model_at_metric_points(digits):
    """A recorder of BatchNorm's running statistics at each point, one read per point."""
    class BatchNormStats(Callback):
        def __init__(self):
            self.variances = []

        def on_metrics(self, run, point):
            bn = next(m for m in run.model.modules() if isinstance(m, torch.nn.BatchNorm2d))
            self.variances.append(float(bn.running_var.mean()))

    stats = BatchNormStats()
    run = TrainingRun(TINY, TrainConfig(dataset="digits", epochs=1, batch_size=64, lr=0.1,
                                        device="cpu"), dataset=digits, callbacks=[stats]).start()
    assert run.join(120) and run.state == "finished"
    assert len(stats.variances) == len(run.points())
    assert len(set(stats.variances)) > 1 and stats.variances[0] != 1.0  # they moved


def test_callbacks_hear_the_end_of_a_stopped_run(digits):
    recorder = Recorder()
    run = TrainingRun(TINY, TrainConfig(dataset="digits", epochs=10_000, batch_size=16,
                                        lr=0.1, device="cpu"), dataset=digits,
                      callbacks=[recorder]).start()
    wait_for(lambda: run.points(), "the run's first point")
    run.stop()
    assert run.join(30)
    [(state, _, result, _)] = recorder.ends
    assert state == "stopped" and result is run.result and result is not None
    assert recorder.points == run.points()


def test_callbacks_hear_the_end_of_a_failing_run(digits):
    recorder = Recorder()
    run = TrainingRun(TINY, TrainConfig(dataset="digits", epochs=3, batch_size=32, lr=90,
                                        device="cpu"), dataset=digits,
                      callbacks=[recorder]).start()
    assert run.join(120)
    [(state, message, result, _)] = recorder.ends
    assert state == "failed" and message.startswith("diverged") and result is None
    assert recorder.points == run.points()  # the diverged point never joined the curve


def test_callbacks_hear_the_end_of_a_run_stopped_in_the_queue(digits):
    queue = DeviceQueue()
    holder = threading.Event()
    queue.acquire("cpu", holder, threading.Event())
    recorder = Recorder()
    run = TrainingRun(TINY, TrainConfig(dataset="digits", device="cpu"), dataset=digits,
                      queue=queue, callbacks=[recorder]).start()
    wait_for(lambda: run.queue_position() == 1, "the run waits in the queue")
    assert not run.done
    run.stop()
    assert run.join(10)
    queue.release("cpu", holder)
    assert recorder.ends == [("stopped", "stopped while waiting in the queue", None, False)]
    assert recorder.points == []


def test_a_failing_callback_fails_the_run_and_still_hears_the_end(digits):
    class Broken(Recorder):
        def on_metrics(self, run, point):
            raise ValueError("no room for more points")

    def one_epoch(callbacks) -> TrainingRun:
        return TrainingRun(TINY, TrainConfig(dataset="digits", epochs=1, batch_size=64, lr=0.1,
                                             device="cpu"), dataset=digits,
                           callbacks=callbacks).start()

    broken = Broken()
    run = one_epoch([broken])
    assert run.join(60) and run.state == "failed"
    assert run.message == "Broken.on_metrics failed (ValueError: no room for more points)"
    assert [end[0] for end in broken.ends] == ["failed"]

    class BrokenEnd(Callback):
        def on_end(self, run, result):
            raise RuntimeError("disk full")

    recorder = Recorder()
    run = one_epoch([BrokenEnd(), recorder])
    assert run.join(60) and run.state == "failed"
    assert run.message == "BrokenEnd.on_end failed (RuntimeError: disk full)"
    assert len(recorder.ends) == 1


# -- the job the Train page holds --------------------------------------------------------------

def test_the_job_imports_no_streamlit():
    code = ("import sys, cnnviz.training.job; "
            "assert 'streamlit' not in sys.modules, 'streamlit was imported'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_a_job_hands_its_callbacks_to_the_run():
    recorder = Recorder()
    job = TrainingJob(1, "tiny", TINY, TrainConfig(dataset="digits", epochs=1, batch_size=64,
                                                   lr=0.1, limit=300, device="cpu"),
                      callbacks=[recorder]).start()
    assert job.join(120) and job.done and job.state == "finished"
    assert recorder.points == job.points() and len(recorder.ends) == 1
    with pytest.raises(DataError, match="Unknown data set"):
        TrainingJob(2, "nope", TINY, TrainConfig(dataset="nope"))


def test_a_watched_job_trains_once_its_page_is_drawn(monkeypatch):
    monkeypatch.setattr(job_module, "BROWSER_SECONDS", 0.0)
    config = TrainConfig(dataset="digits", epochs=1, batch_size=64, lr=0.1, limit=300,
                         device="cpu")
    watched = TrainingJob(1, "tiny", TINY, config, watched=True).start()
    wait_for(lambda: watched.data_fraction == 1.0, "the digits are loaded")
    # Loaded, and the page has not said it is drawn: no run yet.
    holds_for(lambda: watched.run is None and not watched.done, "no run before the page is "
              "drawn", 0.5)
    watched.page_drawn()
    assert watched.join(120) and watched.state == "finished"
    # a page that never says so (it failed) holds the run back PAGE_WAIT seconds at most
    monkeypatch.setattr(job_module, "PAGE_WAIT", 0.2)
    forgotten = TrainingJob(2, "tiny", TINY, config, watched=True).start()
    assert forgotten.join(120) and forgotten.state == "finished"
    # a stop while it waits ends it before training, saying so
    monkeypatch.setattr(job_module, "PAGE_WAIT", 5.0)
    stopped = TrainingJob(3, "tiny", TINY, config, watched=True).start()
    wait_for(lambda: stopped.data_fraction == 1.0, "the digits are loaded")  # now it waits
    stopped.stop()
    stopped.page_drawn()
    assert stopped.join(120) and stopped.state == "stopped" and stopped.run is None
    assert stopped.message == "stopped before training began"


# -- the book's settings -----------------------------------------------------------------------

@pytest.mark.parametrize("preset, lr, batch_size", [
    ("lenet", 0.9, 256), ("lenet-bn", 1.0, 256), ("alexnet", 0.01, 128), ("vgg", 0.05, 128),
    ("nin", 0.1, 128), ("googlenet", 0.1, 128), ("resnet18", 0.05, 256),
    ("densenet", 0.1, 256)])
def test_the_books_learning_rate_and_batch_size(preset, lr, batch_size):
    spec = PRESETS[preset].spec
    assert (book_lr(spec), book_batch_size(spec)) == (lr, batch_size)
    assert TrainConfig().resolved(spec).batch_size == batch_size
    assert TrainConfig().resolved(spec).lr == lr
    assert book_help(spec, "batch_size").startswith(f"the book uses {batch_size} ")
    assert book_help(spec, "lr").startswith(f"the book uses {lr:g} ")


def test_every_family_has_settings_and_the_help_lists_them():
    assert set(BOOK) == set(SPEC_CLASSES)
    assert book_defaults_text("batch_size") == (
        "LeNet 256, LeNet+BatchNorm 256, AlexNet 128, VGG 128, NiN 128, GoogLeNet 128, "
        "ResNet 256, DenseNet 256; Custom network 128")
    assert book_defaults_text("lr") == (
        "LeNet 0.9, LeNet+BatchNorm 1, AlexNet 0.01, VGG 0.05, NiN 0.1, GoogLeNet 0.1, "
        "ResNet 0.05, DenseNet 0.1; Custom network 0.05")
    custom = PRESETS["notes-nin"].spec
    assert book_help(custom, "batch_size") == \
        "a custom network starts at 128 (the book has no setting for it)"


def test_cli_train_prints_one_json_line_per_epoch(capsys):
    code = main(["train", "lenet-bn", "--dataset", "digits", "--epochs", "2", "--batch-size",
                 "64", "--lr", "0.5", "--limit", "300", "--device", "cpu", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [list(line) for line in lines[:2]] == [
        ["epoch", "train_loss", "train_acc", "test_acc", "examples_per_sec", "seconds",
         "train_seconds"]] * 2
    assert [line["epoch"] for line in lines[:2]] == [1.0, 2.0]
    assert all(0 < line["train_seconds"] <= line["seconds"] for line in lines[:2])
    assert lines[-1]["final"] is True and lines[-1]["device"] == "cpu"


def test_cli_train_failures_are_one_line(capsys, tmp_path):
    code = main(["train", "lenet", "--dataset", "digits", "--lr", "90", "--epochs", "2",
                 "--limit", "200"])
    _, err = capsys.readouterr()
    assert code == 2 and err.startswith("cnnviz: error: diverged") and err.count("\n") == 1
    code = main(["train", "lenet", "--dataset", "nope"])
    _, err = capsys.readouterr()
    assert code == 2 and "nope" in err and err.count("\n") == 1


# --- issue 8: a stop is tested, speed is training speed, augmentation per data set --------

def test_a_stopped_run_tests_what_it_learned_when_it_stops(digits):
    run = TrainingRun(TINY, TrainConfig(dataset="digits", epochs=10_000, batch_size=16,
                                        lr=0.1, device="cpu"), dataset=digits).start()
    wait_for(lambda: run.points(), "the run's first point")  # stop mid-epoch
    run.stop()
    assert run.join(30) and run.state == "stopped"
    last = run.points()[-1]
    # The last point is a test of the weights at the stop, not a stale earlier one.
    assert last.test_acc is not None
    assert int(run.result.confusion.sum()) == 360
    assert int(run.result.confusion.trace()) == round(last.test_acc * 360)
    assert run.message == f"stopped at epoch {last.epoch:.2f}".rstrip("0").rstrip(".")
    assert "stopped" not in run.message[len("stopped"):]


def test_training_speed_is_a_window_over_training_time():
    speed = engine.TrainingSpeed(window=5.0)
    # Points a step apart and points many steps apart alternate, at 1,000 examples/s.
    marks, out = [(0.01, 10), (1.0, 1000), (1.02, 1020), (2.0, 2000), (2.01, 2010),
                  (7.0, 7000), (7.05, 7050), (12.0, 12000)], []
    for seconds, examples in marks:
        out.append(speed.add(seconds, examples))
    assert out == pytest.approx([1000.0] * len(marks))
    # A slow stretch shows, and leaves the window once it is 5 s of training behind.
    assert speed.add(13.0, 12500) == pytest.approx((12500 - 7050) / (13.0 - 7.05))
    assert speed.add(19.0, 18500) == pytest.approx(1000.0)


def test_test_evaluations_are_not_training_time(digits, monkeypatch):
    evaluate = engine.evaluate

    def slow_evaluate(*args, **kwargs):
        time.sleep(0.4)
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(engine, "evaluate", slow_evaluate)
    run = run_to_end(TINY, TrainConfig(dataset="digits", epochs=3, batch_size=64, lr=0.1,
                                       device="cpu"), digits)
    points = run.points()
    last = points[-1]
    assert last.seconds - last.train_seconds >= 3 * 0.4
    # Every point's speed counts training time only (the run is shorter than the window).
    for p in points:
        examples = round(p.epoch * len(digits.train_labels))
        assert p.examples_per_sec == pytest.approx(examples / p.train_seconds, rel=0.05)
    assert last.examples_per_sec > 1.2 * round(last.epoch * 1437) / last.seconds


def test_the_registry_says_which_sets_a_flip_keeps_their_labels():
    from cnnviz.training.datasets import DATASETS, augmentation_help, augmentation_text
    assert {n for n, info in DATASETS.items() if info.flips} == {"fashion-mnist", "cifar10"}
    assert "no flip" in DATASETS["digits"].augmentation
    assert "horizontal flip" in DATASETS["cifar10"].augmentation
    assert augmentation_help("digits").split("\n\n")[1].startswith("- **Digits**: random "
                                                                   "crop, no flip")
    assert "Fashion-MNIST, CIFAR-10 (not MNIST, Digits)" in augmentation_text()


def rows_increase(x: torch.Tensor) -> torch.Tensor:
    """Per example: whether every row's non-zero (not padding) pixels increase to the right."""
    ok = []
    for image in x[:, 0]:
        ok.append(all(bool((row[row > 0].diff() > 0).all()) for row in image))
    return torch.tensor(ok)


def test_augmentation_flips_only_when_asked():
    # Each row counts up from left to right: a mirrored row counts down.
    images = (torch.arange(1, 9, dtype=torch.uint8) * 20).expand(64, 1, 8, 8).contiguous()
    kept = prepare(images, channels=1, size=8, augment=True, flip=False,
                   generator=torch.Generator().manual_seed(0))
    assert bool(rows_increase(kept).all())
    flipped = prepare(images, channels=1, size=8, augment=True, flip=True,
                      generator=torch.Generator().manual_seed(0))
    assert not bool(rows_increase(flipped).all())


@pytest.mark.parametrize("name, flips", [("digits", False), ("fashion-mnist", True)])
def test_a_run_flips_only_data_sets_whose_labels_survive_it(name, flips, monkeypatch):
    from cnnviz.training import recipe as recipe_module
    from cnnviz.training.data import Dataset
    from cnnviz.training.datasets import dataset_info
    info = dataset_info(name)
    images = torch.randint(0, 256, (40, 1, info.size, info.size), dtype=torch.uint8)
    labels = torch.randint(0, 10, (40,))
    data = Dataset(info, images, labels, images[:8], labels[:8])
    asked = []
    real = recipe_module.prepare

    def spy(images, **kwargs):
        asked.append((kwargs.get("augment"), kwargs.get("flip")))
        return real(images, **kwargs)

    monkeypatch.setattr(recipe_module, "prepare", spy)
    spec = LENET_BN
    run = run_to_end(spec, TrainConfig(dataset=name, epochs=1, batch_size=20, lr=0.1,
                                       augment=True, device="cpu"), data)
    assert run.state == "finished", run.message
    assert asked and set(asked) == {(True, flips)}


def test_advice_near_chance_is_computed_from_the_run():
    from cnnviz.training.advice import chance_advice, steps_taken
    lenet = PRESETS["lenet"].spec
    book = TrainConfig(dataset="digits", epochs=10).resolved(lenet)
    assert steps_taken(book, 10.0) == 60  # 1,437 images in batches of 256: 6 steps an epoch
    advice = chance_advice(lenet, book, 10.0, 2.305, 0.10)
    assert "**Test accuracy 10.0% is about chance** (guessing among 10 classes gives 10.0%)" in advice
    assert "only **60 optimizer steps** (10 epochs of 6 batches of up to 256 from 1,437" in advice
    assert "still about ln 10 = 2.30" in advice and "sigmoid" in advice
    assert "**lenet-bn** preset" in advice and "**fast** recipe" in advice
    # a run that learned gets no advice; 15 % is still near chance for ten classes
    assert chance_advice(lenet, book, 10.0, 0.4, 0.9) is None
    assert chance_advice(lenet, book, 10.0, 0.4, 0.16) is None
    assert chance_advice(lenet, book, 10.0, 2.3, 0.15) is not None
    # with BatchNorm and the fast recipe, neither is suggested again
    fast = TrainConfig(dataset="digits", epochs=3, recipe="fast", batch_size=32,
                       limit=320).resolved(LENET_BN)
    advice = chance_advice(LENET_BN, fast, 1.5, 4.0, 0.12)
    assert "only **15 optimizer steps** (1.5 epochs of 10 batches" in advice
    assert "BatchNorm" not in advice and "fast" not in advice.split("Try:")[1]
    assert "sigmoid" not in advice and "ln 10" not in advice
    assert f"another **learning rate** than {fast.lr:g}" in advice


# -- the end of a stopped run (issue 8, item 4; review) -----------------------------------------

def _digits_run(digits, callbacks, epochs: int = 3) -> TrainingRun:
    return TrainingRun(TINY, TrainConfig(dataset="digits", epochs=epochs, batch_size=64, lr=0.1,
                                         device="cpu"), dataset=digits, callbacks=callbacks)


def test_a_second_stop_skips_the_test_of_the_stop(digits):
    class StopTwice(Callback):
        def on_metrics(self, run, point):
            run.stop()
            run.stop()  # the learner clicks Stop again: do not wait for the test

    run = _digits_run(digits, [StopTwice()]).start()
    assert run.join(60) and run.state == "stopped"
    assert run.points()[-1].test_acc is None
    assert "the test was skipped" in run.message


def test_a_stop_before_the_first_step_keeps_no_model(digits):
    run = _digits_run(digits, [])
    run.stop()
    run.start()
    assert run.join(60) and run.state == "stopped"
    assert run.result is None and run.points() == []
    assert run.message == "stopped before its first step"


def test_a_stop_during_the_last_test_still_finishes(digits):
    class StopAtTheLastTest(Callback):
        def on_metrics(self, run, point):
            if point.test_acc is not None and point.epoch >= 2:
                run.stop()  # every step is done: nothing is cut short

    run = _digits_run(digits, [StopAtTheLastTest()], epochs=2).start()
    assert run.join(60) and run.state == "finished" and run.message == "done"
    assert run.result is not None
