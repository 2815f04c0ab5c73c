"""One training loop for every spec, run in a worker thread that never touches Streamlit.

A :class:`TrainingRun` is the handle a page (or the command line) holds: it reports state,
progress and metric points while the thread trains, stops within one batch when asked, and
keeps the final model, the confusion matrix and some misclassified test images. Metrics are
summed on the device and read back only at metric points, so there is no host sync per batch.
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from cnnviz.errors import CnnvizError
from cnnviz.models import build
from cnnviz.training.batches import DeviceImages, prepare
from cnnviz.training.config import TrainConfig, TrainingError, resolve_device
from cnnviz.training.data import Dataset, load_dataset
from cnnviz.training.queue import DEVICES, DeviceQueue

POINT_SECONDS = 2.0  # also emit a point at least this often
FIRST_POINT_SECONDS = 0.5  # and the first one this soon: the curve starts right after Start
MISTAKES = 16


@dataclass(frozen=True)
class Point:
    epoch: float              # epochs done, fractional (1.25 = a quarter into epoch 2)
    train_loss: float         # mean over the epoch so far
    train_acc: float
    test_acc: float | None    # at the end of each epoch
    examples_per_sec: float
    seconds: float            # since training started


@dataclass
class Result:
    model: nn.Module                       # on the CPU, eval mode
    confusion: torch.Tensor                # (classes, classes): rows true, columns predicted
    mistakes: list[tuple[torch.Tensor, int, int]] = field(default_factory=list)


class TrainingRun:
    """Start with :meth:`start`; poll :attr:`state`, :meth:`points`, :attr:`progress`."""

    def __init__(self, spec, config: TrainConfig = TrainConfig(),
                 dataset: Dataset | None = None, queue: DeviceQueue = DEVICES):
        self.spec = spec
        self.config = config.resolved(spec)
        self._dataset = dataset
        self._queue = queue
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._points: list[Point] = []
        self._thread: threading.Thread | None = None
        self.state = "created"   # queued, loading, running, finished, stopped, failed
        self.message = ""
        self.progress = 0.0
        self.device = ""
        self.result: Result | None = None
        self.started_at: float | None = None

    # -- the handle -------------------------------------------------------------------------
    def start(self) -> "TrainingRun":
        self._thread = threading.Thread(target=self._work, name="cnnviz-training", daemon=True)
        self.state = "queued"
        self._thread.start()
        return self

    def stop(self) -> None:
        """Ask the run to stop; it does so before the next batch."""
        self._stop.set()

    def join(self, timeout: float | None = None) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
        return self.done

    @property
    def done(self) -> bool:
        return self.state in ("finished", "stopped", "failed")

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
        try:
            device = resolve_device(self.config.device)
            self.device = str(device)
            acquired = self._queue.acquire(self.device, self, self._stop)
            if not acquired:
                self.state, self.message = "stopped", "stopped while waiting in the queue"
                return
            self.state = "loading"
            data = self._dataset or load_dataset(self.config.dataset, self.config.data_root,
                                                 limit=self.config.limit)
            self.state = "running"
            self._train(device, data)
        except torch.OutOfMemoryError:
            self._free(device)
            half = max(1, self.config.batch_size // 2)
            self.state = "failed"
            self.message = (f"out of memory at batch size {self.config.batch_size} on "
                            f"{self.device}; try batch size {half} or a smaller input size")
        except CnnvizError as exc:
            self.state, self.message = "failed", str(exc)
        except Exception as exc:  # noqa: BLE001 - a failed run reports, it never crashes a page
            self.state, self.message = "failed", f"{type(exc).__name__}: {exc}"
        finally:
            if acquired:
                self._queue.release(self.device, self)

    @staticmethod
    def _free(device) -> None:
        if str(device).startswith("cuda"):
            torch.cuda.empty_cache()

    def _train(self, device: torch.device, data: Dataset) -> None:
        cfg, spec = self.config, self.spec
        cuda = device.type == "cuda"
        if cuda:  # fixed shapes every step: let cuDNN pick its fastest kernels once
            torch.backends.cudnn.benchmark = True
        torch.manual_seed(cfg.seed)
        generator = torch.Generator().manual_seed(cfg.seed)
        model = build(spec).to(device)
        if cuda:
            model = model.to(memory_format=torch.channels_last)
        train = DeviceImages(data.train_images, data.train_labels, device)
        test = DeviceImages(data.test_images, data.test_labels, device)
        if len(train) == 0:
            raise TrainingError("the data set has no training examples")
        batch = min(cfg.batch_size, len(train))
        # A last batch of one example would break BatchNorm in training mode: drop it.
        drop_last = len(train) % batch == 1
        steps = len(train) // batch + (0 if drop_last or len(train) % batch == 0 else 1)
        if cfg.recipe == "fast":
            optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9,
                                        nesterov=True, weight_decay=5e-4)
            schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr,
                                                           total_steps=steps * cfg.epochs)
            smoothing = 0.1
        else:
            optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr)
            schedule, smoothing = None, 0.0
        prep = {"channels": spec.in_channels, "size": cfg.size, "channels_last": cuda}
        autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda)
        marks = {max(1, round(steps * k / cfg.points_per_epoch))
                 for k in range(1, cfg.points_per_epoch)}
        self.started_at = start = time.monotonic()
        budget_end = start + cfg.time_budget if cfg.time_budget else math.inf
        total_steps, done_steps = steps * cfg.epochs, 0
        last_time, last_seen, examples = start, 0, 0
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
                x = prepare(images, augment=cfg.augment, generator=generator, **prep)
                with autocast:
                    out = model(x)
                loss = F.cross_entropy(out.float(), labels, label_smoothing=smoothing)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if schedule is not None:
                    schedule.step()
                loss = loss.detach()
                loss_sum += loss * labels.shape[0]
                correct += (out.argmax(1) == labels).sum()
                bad |= ~torch.isfinite(loss)
                seen += labels.shape[0]
                examples += labels.shape[0]
                done_steps += 1
                # The run ends at the last step or when the budget is spent, whichever first.
                self.progress = min(1.0, max(done_steps / total_steps,
                                             (time.monotonic() - start) / cfg.time_budget
                                             if cfg.time_budget else 0.0))
                now = time.monotonic()
                due = FIRST_POINT_SECONDS if not self._points else POINT_SECONDS
                if step in marks or now - last_time >= due:
                    # The only host sync: reading the sums back, a few times per epoch.
                    self._point(epoch + step / steps, loss_sum, correct, bad, seen, None,
                                (examples - last_seen) / max(now - last_time, 1e-9),
                                now - start)
                    last_time, last_seen = time.monotonic(), examples
            if seen == 0 or self._stop.is_set():  # a stop takes effect now, not after a test
                break
            trained = time.monotonic()  # the speed is training speed: measured before the test
            accuracy, predictions = evaluate(model, test, batch, prep, autocast)
            self._point(epoch + min(seen / len(train), 1.0), loss_sum, correct, bad, seen,
                        accuracy, (examples - last_seen) / max(trained - last_time, 1e-9),
                        time.monotonic() - start)
            last_time, last_seen = time.monotonic(), examples
            if time.monotonic() >= budget_end:
                break
        self.result = _result(model, test, data, predictions)
        self.progress = 1.0 if not self._stop.is_set() else self.progress
        if self._stop.is_set():
            self.state, self.message = "stopped", "stopped"
        elif time.monotonic() >= budget_end:
            self.state, self.message = "finished", "the time budget is spent"
        else:
            self.state, self.message = "finished", "done"

    def _point(self, epoch: float, loss_sum, correct, bad, seen: int, test_acc,
               speed: float, seconds: float) -> None:
        loss = float(loss_sum) / seen
        # Chance level is ln(classes); a mean loss fifty times that has left the rails too.
        if bool(bad) or loss > 50 * math.log(max(self.spec.num_classes, 2)):
            raise TrainingError(f"diverged — lower the learning rate (the loss became "
                                f"{'NaN or infinite' if bool(bad) else f'{loss:.3g}'} at "
                                f"epoch {epoch:.2f} with learning rate {self.config.lr:g})")
        point = Point(round(epoch, 4), loss, int(correct) / seen, test_acc, speed, seconds)
        with self._lock:
            self._points.append(point)


@torch.no_grad()
def evaluate(model: nn.Module, test: DeviceImages, batch: int, prep: dict, autocast
             ) -> tuple[float | None, torch.Tensor]:
    """Test accuracy and every test prediction (on the device)."""
    if len(test) == 0:
        return None, torch.empty(0, dtype=torch.long)
    model.eval()
    predictions = []
    for images, _ in test.batches(max(batch, 256), shuffle=False):
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


def estimate_seconds(spec, config: TrainConfig, train_examples: int, test_examples: int,
                     steps: int = 5, *, native_size: int | None = None,
                     native_channels: int | None = None) -> float:
    """The run time from a few timed steps on random data of the data set's native shape
    (resized on the device each step, as in the run)."""
    cfg = config.resolved(spec)
    device = resolve_device(cfg.device)
    model = build(spec).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr)
    batch = min(cfg.batch_size, max(train_examples, 2))
    side, channels = native_size or cfg.size, native_channels or spec.in_channels
    # A small pool served through the same batching and bookkeeping as the real loop.
    pool = DeviceImages(torch.randint(0, 256, (batch * 2, channels, side, side),
                                      dtype=torch.uint8),
                        torch.randint(0, spec.num_classes, (batch * 2,)), device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)

    def step(images: torch.Tensor, labels: torch.Tensor) -> None:
        nonlocal loss_sum, correct
        with autocast:
            out = model(prepare(images, channels=spec.in_channels, size=cfg.size,
                                augment=cfg.augment))
        loss = F.cross_entropy(out.float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum = loss_sum + loss.detach() * labels.shape[0]
        correct = correct + (out.argmax(1) == labels).sum()

    def steps_of(count: int) -> None:
        done = 0
        while done < count:
            for images, labels in pool.batches(batch, shuffle=True):
                step(images, labels)
                done += 1
                if done == count:
                    break
        float(loss_sum)  # wait for the device

    steps_of(2)  # warm-up: first-call costs are not the run's speed
    start = time.perf_counter()
    steps_of(steps)
    per_step = (time.perf_counter() - start) / steps
    train_steps = math.ceil(train_examples / batch) * cfg.epochs
    test_steps = math.ceil(test_examples / max(batch, 256)) * cfg.epochs
    # An evaluation step is a forward pass only, about a third of a training step.
    total = per_step * (train_steps + test_steps * max(batch, 256) / batch / 3)
    return min(total, cfg.time_budget) if cfg.time_budget else total
