"""One training loop for every spec, run in a worker thread that never touches Streamlit.

A :class:`TrainingRun` is the handle a page (or the command line) holds: it reports state,
progress and metric points while the thread trains, stops within one batch when asked (at
once while it still prepares: see :meth:`TrainingRun._unless_stopped`), and keeps the final
model, the confusion matrix and some misclassified test images. Metrics are summed on the
device and read back only at metric points, so there is no host sync per batch.
The model, loss, optimizer, schedule and step come from :mod:`cnnviz.training.recipe`, shared
with :func:`estimate_seconds`.

Callbacks
---------
``TrainingRun(..., callbacks=[...])`` takes objects with two methods (subclass
:class:`Callback` to implement only one):

``on_metrics(run, point)``
    At every metric point, a few times per epoch and at each epoch's end, right after
    ``point`` (a :class:`Point`) joined ``run.points()``. Its numbers are already Python
    floats: the run synced the device once to make them. ``run.model`` is the network being
    trained, on the training device; reading its tensors here (BatchNorm's running
    statistics, say) costs a sync per point, never one per batch. An exception fails the run.
``on_end(run, result)``
    Exactly once per started run, after it ended however it ended: finished, stopped (also
    while queued), diverged or failed. ``run.state`` and ``run.message`` say how it ended
    (only a later callback's own failure can still change them); ``result`` is
    ``run.result``: a :class:`Result`, or None when training failed or stopped before it
    began. ``run.model`` is None after a failure (its memory goes back to the device).
    ``run.done`` turns true only after every ``on_end`` returned. An exception marks the run
    failed (the other callbacks still hear the end).

Both are called in the training thread, never in a page's: they must not call Streamlit, and
what they do delays training, so they should be quick.
"""
from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from torch import nn

from cnnviz.errors import CnnvizError
from cnnviz.training.batches import DeviceImages, prepare
from cnnviz.training.config import TrainConfig, TrainingError, resolve_device
from cnnviz.training.data import Dataset, load_dataset
from cnnviz.training.datasets import dataset_info
from cnnviz.training.faults import explain, out_of_memory, remember_if_lost, where
from cnnviz.training.queue import DEVICES, DeviceQueue
from cnnviz.training.recipe import make_model, make_recipe, plan_batches

POINT_SECONDS = 2.0  # also emit a point at least this often
FIRST_POINT_SECONDS = 0.5  # and the first one this soon: the curve starts right after Start
MISTAKES = 16
# examples/s is the mean over this much training time (test evaluations excluded): a point
# a step or two after the previous one would make the curve zigzag.
SPEED_WINDOW_SECONDS = 5.0
# How often a run waiting for its preparation looks at a stop (see TrainingRun._unless_stopped).
STOP_POLL_SECONDS = 0.01


@dataclass(frozen=True)
class Point:
    epoch: float              # epochs done, fractional (1.25 = a quarter into epoch 2)
    train_loss: float         # mean over the epoch so far
    train_acc: float
    test_acc: float | None    # at the end of each epoch, and when a stopped run ends
    examples_per_sec: float   # training only, over the last SPEED_WINDOW_SECONDS of training
    seconds: float            # since training started, test evaluations included
    train_seconds: float | None = None  # of those, the ones spent training (tests excluded)


@dataclass
class Result:
    model: nn.Module | None                # on the CPU, eval mode; None once let go
    confusion: torch.Tensor                # (classes, classes): rows true, columns predicted
    mistakes: list[tuple[torch.Tensor, int, int]] = field(default_factory=list)


class TrainingSpeed:
    """Examples per second of training over a trailing window of training time.

    ``add(train_seconds, examples)`` takes the run's training clock (test evaluations not
    counted) and its examples so far, and returns the speed since the latest mark at least
    ``window`` seconds of training ago (since the start while the run is younger).
    """

    def __init__(self, window: float = SPEED_WINDOW_SECONDS):
        self.window = window
        self._marks: deque[tuple[float, int]] = deque([(0.0, 0)])

    def add(self, train_seconds: float, examples: int) -> float:
        self._marks.append((train_seconds, examples))
        while len(self._marks) > 2 and self._marks[1][0] <= train_seconds - self.window:
            self._marks.popleft()
        since, before = self._marks[0]
        return (examples - before) / max(train_seconds - since, 1e-9)


class Callback:
    """Hooks into a run (see the module's docstring); both do nothing here."""

    def on_metrics(self, run: "TrainingRun", point: Point) -> None:
        pass

    def on_end(self, run: "TrainingRun", result: Result | None) -> None:
        pass


class TrainingRun:
    """Start with :meth:`start`; poll :attr:`state`, :meth:`points`, :attr:`progress`."""

    def __init__(self, spec, config: TrainConfig = TrainConfig(),
                 dataset: Dataset | None = None, queue: DeviceQueue = DEVICES,
                 callbacks: Iterable[Callback] = (), threads: int | None = None):
        self.spec = spec
        # torch's intra-op threads for this run (None: torch's default). The setting is
        # process-wide; it is made in the training thread, where the OpenMP pool is used.
        self.threads = threads
        self.config = config.resolved(spec)
        self.callbacks = tuple(callbacks)
        self._dataset = dataset
        self._queue = queue
        self._stop = threading.Event()
        self._cut_test = threading.Event()  # a second Stop while the stop is tested
        self._ended = threading.Event()
        self._lock = threading.Lock()
        self._points: list[Point] = []
        self._thread: threading.Thread | None = None
        self.state = "created"   # queued, loading, running, finished, stopped, failed
        self.message = ""
        self.progress = 0.0
        self.device = ""
        self.result: Result | None = None
        self.model: nn.Module | None = None  # the network being trained, once it is built
        self.started_at: float | None = None
        # Where the run is, for the message of a run that breaks: epochs done after the latest
        # training step (None before the first) and whether it is testing what it learned.
        self._epochs_done: float | None = None
        self._testing = False

    # -- the handle -------------------------------------------------------------------------
    def start(self) -> "TrainingRun":
        self._thread = threading.Thread(target=self._work, name="cnnviz-training", daemon=True)
        self.state = "queued"
        self._thread.start()
        return self

    def stop(self) -> None:
        """Ask the run to stop: training ends before the next batch, then the run tests what
        it learned. Asked again while it tests, it cuts the test short (the figures then
        stay those of the last full test)."""
        if self._stop.is_set():
            self._cut_test.set()
        self._stop.set()

    def join(self, timeout: float | None = None) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
        return self.done

    @property
    def done(self) -> bool:
        """True once the run ended and every callback heard it."""
        return self._ended.is_set()

    def points(self) -> list[Point]:
        with self._lock:
            return list(self._points)

    def queue_position(self) -> int:
        return self._queue.position(self.device, self) if self.device else -1

    def eta_seconds(self) -> float | None:
        if self.started_at is None or self.progress <= 0:
            return None
        elapsed = time.monotonic() - self.started_at
        return elapsed * (1 - self.progress) / self.progress

    # -- the worker -------------------------------------------------------------------------
    def _work(self) -> None:
        acquired = False
        device = None
        try:
            if self.threads:
                torch.set_num_threads(self.threads)
            device = resolve_device(self.config.device)
            self.device = str(device)
            acquired = self._queue.acquire(self.device, self, self._stop)
            if not acquired:
                self.state, self.message = "stopped", "stopped while waiting in the queue"
                return
            self.state = "loading"
            data = self._dataset or self._unless_stopped(
                load_dataset, self.config.dataset, self.config.data_root,
                limit=self.config.limit)
            if data is None:
                self.state, self.message = "stopped", "stopped before its first step"
                return
            self.state = "running"
            self._train(device, data)
        except CnnvizError as exc:
            self.state, self.message, self.model = "failed", str(exc), None
        except BaseException as exc:  # noqa: BLE001 - a failed run reports, it never crashes
            # a page; KeyboardInterrupt and SystemExit too: raised in this thread they would
            # print a traceback and leave the run looking as if it still ran (see faults.py).
            self.model = None  # the device may have its memory back (or be gone)
            self.state = "failed"
            if out_of_memory(exc):  # torch.OutOfMemoryError, or CUDA's own "out of memory"
                if device is not None:
                    self._free(device)
                half = max(1, self.config.batch_size // 2)
                self.message = (f"out of memory at batch size {self.config.batch_size} on "
                                f"{self.device}; try batch size {half} or a smaller input "
                                "size")
            else:
                remember_if_lost(exc, self.device)
                self.message = explain(exc, where(self._epochs_done, self.config.epochs,
                                                  self._testing),
                                       self.device, kept=bool(self._points))
        finally:
            if acquired:
                self._queue.release(self.device, self)
            self._end()

    def _end(self) -> None:
        try:
            for callback in self.callbacks:
                try:
                    callback.on_end(self, self.result)
                except BaseException as exc:  # noqa: BLE001 - reported as the run's failure
                    self.state = "failed"
                    self.message = (f"{type(callback).__name__}.on_end failed "
                                    f"({type(exc).__name__}: {exc})")
        finally:
            self._ended.set()  # whatever a callback did, the run is done: pollers stop

    @staticmethod
    def _free(device) -> None:
        if str(device).startswith("cuda"):
            torch.cuda.empty_cache()

    def _unless_stopped(self, make, *args, **kwargs):
        """``make(*args, **kwargs)``, or None as soon as the run is asked to stop.

        A run's preparation (the data set's load, the network's weights, the data on the
        device, the optimizer) runs before any step can look at a stop. Its first time in a
        process is mostly one-off costs that no loop of ours can break into: the first
        optimizer imports ``torch._dynamo`` (1.2–3.7 s on 2 busy cores), the first copy to a
        GPU starts CUDA. It runs in a helper thread, so a stop pressed meanwhile ends the run
        at once; the helper finishes by itself and what it made is let go (a data set it
        loads still lands in the cache). Its errors are raised here, in the run's thread.
        The helper is not a daemon: a process that exits while it works waits for it, as a
        daemon killed inside torch's C++ code aborts the process ("terminate called without
        an active exception").
        """
        if self._stop.is_set():
            return None
        made: dict = {}
        finished = threading.Event()

        def work() -> None:
            try:
                made["value"] = make(*args, **kwargs)
            except BaseException as exc:  # noqa: BLE001 - raised again in the run's thread
                made["error"] = exc
            finally:
                finished.set()

        threading.Thread(target=work, name="cnnviz-training-setup", daemon=False).start()
        while not finished.wait(STOP_POLL_SECONDS):
            if self._stop.is_set():
                return None
        if "error" in made:
            raise made["error"]
        return made["value"]

    def _prepare(self, device: torch.device, data: Dataset):
        """The network, both splits on the device, the batch plan and the recipe."""
        cfg, spec = self.config, self.spec
        model = make_model(spec, device, cfg.size, seed=cfg.seed)
        train = DeviceImages(data.train_images, data.train_labels, device)
        test = DeviceImages(data.test_images, data.test_labels, device)
        if len(train) == 0:
            raise TrainingError("the data set has no training examples")
        plan = plan_batches(len(train), cfg.batch_size)
        recipe = make_recipe(model, spec, cfg, device, total_steps=plan.steps * cfg.epochs)
        recipe.prep["flip"] = dataset_info(cfg.dataset).flips  # only where labels survive it
        return model, train, test, plan, recipe

    def _train(self, device: torch.device, data: Dataset) -> None:
        cfg = self.config
        generator = torch.Generator().manual_seed(cfg.seed)  # the run's own: see make_model
        prepared = self._unless_stopped(self._prepare, device, data)
        if prepared is None:
            self.state, self.message = "stopped", "stopped before its first step"
            return
        model, train, test, plan, recipe = prepared
        self.model = model
        batch, drop_last, steps = plan.batch_size, plan.drop_last, plan.steps
        marks = {max(1, round(steps * k / cfg.points_per_epoch))
                 for k in range(1, cfg.points_per_epoch)}
        self.started_at = start = time.monotonic()
        budget_end = start + cfg.time_budget if cfg.time_budget else math.inf
        total_steps, done_steps = steps * cfg.epochs, 0
        last_time, examples = start, 0
        testing = 0.0  # seconds spent on test evaluations: not training time
        speed = TrainingSpeed()
        predictions = None  # of the last evaluation: the confusion matrix and mistakes
        for epoch in range(cfg.epochs):
            model.train()
            loss_sum = torch.zeros((), device=device)
            correct = torch.zeros((), device=device, dtype=torch.long)
            bad = torch.zeros((), device=device, dtype=torch.bool)
            seen = 0
            for step, (images, labels) in enumerate(
                    train.batches(batch, shuffle=True, generator=generator,
                                  drop_last=drop_last), 1):
                if self._stop.is_set() or time.monotonic() >= budget_end:
                    break
                out, loss = recipe.step(images, labels, generator)
                loss_sum += loss * labels.shape[0]
                correct += (out.argmax(1) == labels).sum()
                bad |= ~torch.isfinite(loss)
                seen += labels.shape[0]
                examples += labels.shape[0]
                done_steps += 1
                self._epochs_done = epoch + step / steps
                # The run ends at the last step or when the budget is spent, whichever first.
                self.progress = min(1.0, max(done_steps / total_steps,
                                             (time.monotonic() - start) / cfg.time_budget
                                             if cfg.time_budget else 0.0))
                now = time.monotonic()
                due = FIRST_POINT_SECONDS if not self._points else POINT_SECONDS
                if step in marks or now - last_time >= due:
                    # The only host sync: reading the sums back, a few times per epoch.
                    trained = now - start - testing
                    self._point(epoch + step / steps, loss_sum, correct, bad, seen, None,
                                speed.add(trained, examples), now - start, trained)
                    last_time = time.monotonic()
            if seen == 0:  # stopped before this epoch's first step: the last test still holds
                break
            if self._stop.is_set():  # stop training now; test what it learned until the stop
                self.state, self.message = "stopping", "testing what it learned so far " \
                                                       "(Stop again to skip the test)"
            tested_at = time.monotonic()
            trained = tested_at - start - testing
            self._testing = True
            accuracy, tested = evaluate(model, test, batch, recipe.prep, recipe.autocast,
                                        cancel=self._cut_test)
            self._testing = False
            predictions = tested if tested is not None else predictions
            testing += time.monotonic() - tested_at
            self._point(epoch + min(seen / len(train), 1.0), loss_sum, correct, bad, seen,
                        accuracy, speed.add(trained, examples), time.monotonic() - start,
                        trained)
            last_time = time.monotonic()
            if self._stop.is_set() or time.monotonic() >= budget_end:
                break
        # Stopped only if the stop cut the run short (not a click during the last test).
        stopped = self._stop.is_set() and done_steps < total_steps
        self.result = _result(model, test, data, predictions) if done_steps else None
        self.progress = self.progress if stopped else 1.0
        if stopped and not done_steps:
            self.state, self.message = "stopped", "stopped before its first step"
        elif stopped:
            at = self._points[-1].epoch
            self.state, self.message = "stopped", f"stopped at epoch {at:.2f}".rstrip("0") \
                .rstrip(".")
            if self._points[-1].test_acc is None:
                tested = [p.epoch for p in self._points if p.test_acc is not None]
                self.message += ("; the test was skipped, the test figures are from epoch "
                                 f"{tested[-1]:g}" if tested else "; the test was skipped")
        elif time.monotonic() >= budget_end:
            self.state, self.message = "finished", "the time budget is spent"
        else:
            self.state, self.message = "finished", "done"

    def _point(self, epoch: float, loss_sum, correct, bad, seen: int, test_acc,
               speed: float, seconds: float, train_seconds: float) -> None:
        loss = float(loss_sum) / seen
        # Chance level is ln(classes); a mean loss fifty times that has left the rails too.
        if bool(bad) or loss > 50 * math.log(max(self.spec.num_classes, 2)):
            raise TrainingError(f"diverged — lower the learning rate (the loss became "
                                f"{'NaN or infinite' if bool(bad) else f'{loss:.3g}'} at "
                                f"epoch {epoch:.2f} with learning rate {self.config.lr:g})")
        point = Point(round(epoch, 4), loss, int(correct) / seen, test_acc, speed, seconds,
                      train_seconds)
        with self._lock:
            self._points.append(point)
        for callback in self.callbacks:
            try:
                callback.on_metrics(self, point)
            except Exception as exc:
                raise TrainingError(f"{type(callback).__name__}.on_metrics failed "
                                    f"({type(exc).__name__}: {exc})") from exc


@torch.no_grad()
def evaluate(model: nn.Module, test: DeviceImages, batch: int, prep: dict, autocast,
             cancel: threading.Event | None = None) -> tuple[float | None, torch.Tensor | None]:
    """Test accuracy and every test prediction (on the device); (None, None) when ``cancel``
    is set before the test is through."""
    if len(test) == 0:
        return None, torch.empty(0, dtype=torch.long)
    model.eval()
    predictions = []
    for images, _ in test.batches(max(batch, 256), shuffle=False):
        if cancel is not None and cancel.is_set():
            return None, None
        with autocast:
            predictions.append(model(prepare(images, **prep)).argmax(1))
    predicted = torch.cat(predictions)
    return float((predicted == test.labels).float().mean()), predicted


def _result(model: nn.Module, test: DeviceImages, data: Dataset, predictions) -> Result:
    classes = len(data.info.classes)
    labels = test.labels
    if predictions is None or predictions.numel() == 0:
        confusion = torch.zeros(classes, classes, dtype=torch.long)
        wrong = torch.empty(0, dtype=torch.long)
    else:
        confusion = torch.bincount(labels * classes + predictions,
                                   minlength=classes * classes).reshape(classes, classes).cpu()
        wrong = (predictions != labels).nonzero().flatten()[:MISTAKES].cpu()
        predictions = predictions.cpu()
    mistakes = [(data.test_images[i], int(data.test_labels[i]), int(predictions[i]))
                for i in wrong.tolist()]
    return Result(model.to("cpu").eval(), confusion, mistakes)


def estimate_seconds(spec, config: TrainConfig, steps: int = 5,
                     threads: int | None = None) -> float:
    """The run time from a few timed steps on random data of the data set's native shape
    (resized on the device each step, as in the run), through the run's own recipe.

    The split sizes and the image shape come from the data set registry, so nothing is
    loaded or downloaded. ``threads``: torch's intra-op threads, as the run will have them.
    """
    previous = torch.get_num_threads()  # process-wide: give the caller's setting back
    if threads:
        torch.set_num_threads(threads)
    try:
        return _estimate(spec, config, steps)
    finally:
        torch.set_num_threads(previous)


def _estimate(spec, config: TrainConfig, steps: int) -> float:
    cfg = config.resolved(spec)
    info = dataset_info(cfg.dataset)
    train_examples, test_examples = info.split_sizes(cfg.limit)
    device = resolve_device(cfg.device)
    model = make_model(spec, device, cfg.size)
    plan = plan_batches(train_examples, cfg.batch_size)
    batch = max(plan.batch_size, 2)  # timing a batch of one would break BatchNorm
    warm_up = 2
    # The schedule must span the timed steps even when the real run is shorter.
    recipe = make_recipe(model, spec, cfg, device,
                         total_steps=max(plan.steps * cfg.epochs, warm_up + steps))
    recipe.prep["flip"] = info.flips  # as in the run
    generator = torch.Generator().manual_seed(cfg.seed)
    # A small pool served through the same batching and bookkeeping as the real loop.
    pool = DeviceImages(torch.randint(0, 256, (batch * 2, info.channels, info.size, info.size),
                                      dtype=torch.uint8),
                        torch.randint(0, spec.num_classes, (batch * 2,)), device)
    model.train()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)

    def steps_of(count: int) -> None:
        nonlocal loss_sum, correct
        done = 0
        while done < count:
            for images, labels in pool.batches(batch, shuffle=True, generator=generator):
                out, loss = recipe.step(images, labels, generator)
                loss_sum = loss_sum + loss * labels.shape[0]
                correct = correct + (out.argmax(1) == labels).sum()
                done += 1
                if done == count:
                    break
        float(loss_sum)  # wait for the device

    steps_of(warm_up)  # first-call costs are not the run's speed
    start = time.perf_counter()
    steps_of(steps)
    per_step = (time.perf_counter() - start) / steps
    train_steps = plan.steps * cfg.epochs
    # Evaluating an example is a forward pass only, about a third of training on it; counted
    # per example (a short last test batch costs less than a full one).
    total = per_step * (train_steps + test_examples * cfg.epochs / batch / 3)
    return min(total, cfg.time_budget) if cfg.time_budget else total
