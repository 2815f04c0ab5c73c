"""A training run as the Train page holds it: load the data set (with download progress), then
train. Pure Python and threads, no Streamlit (a test keeps it so): the page polls it from a
fragment. Also the session's history of finished runs and their metrics as CSV.

The engine loads a data set itself, but silently; here the download is reported, so the first
run on Fashion-MNIST shows "Downloading… file 2 of 4, 12.3 MB" instead of a frozen bar.
"""
from __future__ import annotations

import csv
import io
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

import torch

from cnnviz.limits import limit
from cnnviz.training.config import TrainConfig
from cnnviz.training.data import load_dataset
from cnnviz.training.datasets import DataError, dataset_info
from cnnviz.training.engine import Callback, Point, Result, TrainingRun

TERMINAL = ("finished", "stopped", "failed")
TORCH_THREADS = torch.get_num_threads()  # torch's default, read before any run changes it


def app_threads(cpus: int | None = None, default: int = TORCH_THREADS) -> int:
    """torch's intra-op threads for a run started from the app: with more than two cores, one
    fewer than the machine has (at most torch's default); with one or two, torch's default.

    A run watched in the browser shares the machine with the Streamlit server, which draws
    every poll, and usually with the browser itself. Where cores are plenty, leaving one to
    them keeps torch's threads from waiting on a busy core. On 2 cores one thread is too few:
    with the Train page polling once a second, lenet-bn trained at 88 % of the command line's
    speed with 2 threads and at 74 % with 1 (docs/benchmarks.md). The command line keeps
    torch's default.
    """
    cpus = cpus if cpus is not None else (len(os.sched_getaffinity(0))
                                          if hasattr(os, "sched_getaffinity")
                                          else os.cpu_count() or 1)
    return max(1, min(default, cpus - 1 if cpus > 2 else cpus))


def import_loaders() -> None:
    """Import what loading any data set needs, in the caller's (the page's) thread.

    A module half-imported by the worker thread is already in ``sys.modules`` for every other
    thread: while the worker imported scikit-learn (and with it pandas), Plotly on the page
    found a partial pandas and the live chart failed. Done when the Train page opens, these
    imports (about 2 s) do not delay the first point after Start either.
    """
    import pandas  # noqa: F401 - Plotly and scikit-learn both look for it
    import sklearn.datasets  # noqa: F401
    import sklearn.model_selection  # noqa: F401
    import torchvision.datasets  # noqa: F401


# A watched job trains once its page has been drawn in the server (PAGE_WAIT at most) and
# BROWSER_SECONDS later, when the browser has drawn it too: on 2 cores, training beside the
# browser's drawing made a 10-epoch LeNet's first steps ten times slower (docs/benchmarks.md).
PAGE_WAIT = 5.0
BROWSER_SECONDS = 0.2


class TrainingJob:
    """Handle for one run: ``start``, ``stop``, ``state``, ``points()``, ``progress``...

    ``callbacks`` go to the :class:`~cnnviz.training.engine.TrainingRun` (see the engine's
    callback protocol); a job whose data set does not load makes no run and calls none.
    ``threads``: torch's intra-op threads for the run, :func:`app_threads` unless given.
    ``watched``: a page draws itself after starting the job; training (not the data's load)
    waits until it calls :meth:`page_drawn`, so the page's drawing does not take the first
    second of a short run's cores (at most ``PAGE_WAIT`` seconds).
    ``alive``: whether whoever started the job is still there (the app passes "is this browser
    session still connected"); once it has said no for ``limits.limit("abandon_seconds")``
    seconds on end, the :data:`WATCHDOG` stops the run, skips its test and frees its device.
    """

    def __init__(self, number: int, label: str, spec, config: TrainConfig,
                 callbacks: Iterable[Callback] = (), threads: int | None = None,
                 watched: bool = False, alive: Callable[[], bool] | None = None):
        self.threads = threads or app_threads()
        self.number, self.label, self.spec = number, label, spec
        config = config.resolved(spec)  # raises TrainingError before any thread starts
        # No run trains longer than the server's cap: a run of epochs gets it as its budget.
        most = limit("run_seconds")
        self.capped = config.time_budget is None or config.time_budget > most
        self.config = replace(config, time_budget=most) if self.capped else config
        self.classes = dataset_info(config.dataset).classes  # DataError for an unknown name
        self.callbacks = tuple(callbacks)
        self.run: TrainingRun | None = None
        self.data_message = ""
        self.data_fraction = 0.0
        self._state = "created"
        self._message = ""
        self._stop = threading.Event()
        self.watched = watched
        self._drawn = threading.Event()
        if not watched:
            self._drawn.set()
        self._thread: threading.Thread | None = None
        self.created_at = time.monotonic()
        self.alive = alive
        self.abandoned = ""  # why the watchdog stopped the run, once it has

    def start(self) -> "TrainingJob":
        import_loaders()  # a no-op once the Train page has done it
        self._state = "loading data"
        self._thread = threading.Thread(target=self._work, name="cnnviz-train-job", daemon=True)
        self._thread.start()
        if self.alive is not None:
            WATCHDOG.watch(self)
        return self

    def stop(self) -> None:
        self._stop.set()
        run = self.run
        if run is not None:
            run.stop()

    def abandon(self, seconds: float) -> None:
        """Nobody watches the run any more: stop it at once, test nothing, free the device."""
        self.abandoned = (f"its browser tab was closed for {seconds:.0f} s, so the server "
                          f"stopped it and freed {self.device or 'its device'} "
                          f"(CNNVIZ_ABANDON_SECONDS)")
        self.stop()
        self.stop()  # the second stop skips the test of what it learned: nobody would see it

    def page_drawn(self) -> None:
        """The page that started the job has drawn itself: training may take the cores."""
        self._drawn.set()

    def join(self, timeout: float | None = None) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
        if self.run is not None:
            self.run.join(timeout)
        return self.done

    def _work(self) -> None:
        cfg = self.config
        try:
            data = load_dataset(cfg.dataset, cfg.data_root, progress=self._progress,
                                limit=cfg.limit)
        except DataError as exc:
            self._state, self._message = "failed", str(exc)
            return
        except BaseException as exc:  # noqa: BLE001 - reported on the page, never a traceback;
            # KeyboardInterrupt or SystemExit raised here would leave the job loading forever
            self._state = "failed"
            self._message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            return
        if self._stop.is_set():
            self._state, self._message = "stopped", "stopped while loading the data"
            return
        if self.watched and self._drawn.wait(PAGE_WAIT):
            time.sleep(BROWSER_SECONDS)
        if self._stop.is_set():
            self._state, self._message = "stopped", "stopped before training began"
            return
        run = TrainingRun(self.spec, cfg, dataset=data, callbacks=self.callbacks,
                          threads=self.threads)
        self.run = run.start()
        if self._stop.is_set():  # a stop that came while the run was being made
            run.stop()

    def _progress(self, message: str, fraction: float) -> None:
        self.data_message, self.data_fraction = message, fraction

    # -- what the page shows --------------------------------------------------------------
    @property
    def state(self) -> str:
        """created, loading data, queued, running, finished, stopped or failed."""
        run = self.run
        if run is None:
            return self._state
        return {"loading": "loading data", "created": "queued"}.get(run.state, run.state)

    @property
    def done(self) -> bool:
        """True once the run ended (and its callbacks heard it), or the data did not load."""
        run = self.run
        return run.done if run is not None else self._state in TERMINAL

    @property
    def message(self) -> str:
        message = self.run.message if self.run is not None else self._message
        if self.capped and message == "the time budget is spent":
            message = (f"stopped at this server's cap of {self.config.time_budget:,.0f} s per "
                       f"run (CNNVIZ_MAX_RUN_SECONDS; see docs/teaching.md)")
        if self.abandoned and self.done:
            return f"{message}: {self.abandoned}" if message else self.abandoned
        return message

    @property
    def result(self) -> Result | None:
        return self.run.result if self.run is not None else None

    @property
    def device(self) -> str:
        return self.run.device if self.run is not None else ""

    def points(self) -> list[Point]:
        return self.run.points() if self.run is not None else []

    def queue_position(self) -> int:
        return self.run.queue_position() if self.run is not None else -1

    def elapsed(self) -> float | None:
        """Seconds since training started (after loading and queueing)."""
        started = self.run.started_at if self.run is not None else None
        return None if started is None else time.monotonic() - started

    @property
    def progress(self) -> float:
        """0..1 of the run: steps done, or the share of the time budget spent."""
        if self.run is None:
            return 0.0
        fraction = self.run.progress
        budget, elapsed = self.config.time_budget, self.elapsed()
        if budget and elapsed is not None and self.state == "running":
            fraction = max(fraction, elapsed / budget)
        return min(fraction, 1.0)

    def eta_seconds(self) -> float | None:
        elapsed = self.elapsed()
        if elapsed is None or self.state != "running":
            return None
        eta = self.run.eta_seconds()
        if self.config.time_budget:
            left = max(self.config.time_budget - elapsed, 0.0)
            eta = left if eta is None else min(eta, left)
        return eta

    def status(self) -> str:
        """One line for the progress bar."""
        state = self.state
        if state == "loading data":
            stopping = " (stopping once it is loaded)" if self._stop.is_set() else ""
            return (self.data_message or "loading data…") + stopping
        if state == "queued":
            position = self.queue_position()
            ahead = f" (position {position})" if position > 0 else ""
            return f"queued{ahead}: another run is using {self.device or 'the device'}"
        if state == "running":
            eta = self.eta_seconds()
            done = f"{self.progress:.0%}"
            return f"running on {self.device}: {done}" + (
                f", about {format_seconds(eta)} left" if eta is not None else "")
        return f"{state}: {self.message}" if self.message else state


class Watchdog:
    """Stops the runs nobody watches any more (see ``TrainingJob(alive=...)``).

    One daemon thread for the process, started with the first watched job and ended when no
    job is left to watch; it asks each job's ``alive`` every ``every`` seconds.
    """

    def __init__(self, every: float = 1.0):
        self.every = every
        self._jobs: dict[TrainingJob, float | None] = {}  # job → since when it has been gone
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def watch(self, job: TrainingJob) -> None:
        with self._lock:
            self._jobs[job] = None
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="cnnviz-watchdog",
                                                daemon=True)
                self._thread.start()

    def watched(self) -> int:
        with self._lock:
            return len(self._jobs)

    def check(self, now: float | None = None) -> None:
        """One round: forget ended jobs, stop those gone for too long."""
        now = time.monotonic() if now is None else now
        patience = limit("abandon_seconds")
        with self._lock:
            jobs = list(self._jobs.items())
        for job, gone_since in jobs:
            if job.done:
                with self._lock:
                    self._jobs.pop(job, None)
                continue
            try:
                alive = job.alive()
            except Exception:  # noqa: BLE001 - a broken check must not kill the watchdog
                alive = True
            if alive:
                gone_since = None
            elif gone_since is None:
                gone_since = now
            elif now - gone_since >= patience and not job.abandoned:
                job.abandon(now - gone_since)
            with self._lock:
                if job in self._jobs:
                    self._jobs[job] = gone_since

    def _loop(self) -> None:
        while True:
            time.sleep(self.every)
            self.check()
            with self._lock:
                if not self._jobs:
                    self._thread = None
                    return


WATCHDOG = Watchdog()


@dataclass(frozen=True)
class FinishedRun:
    """A run in the session's history: what it was and what it gave."""

    number: int
    label: str
    spec: object
    config: TrainConfig
    classes: tuple[str, ...]
    state: str
    message: str
    device: str
    points: tuple[Point, ...]
    result: Result | None
    # The job's engine callbacks, ended: what they recorded stays readable from the history.
    # Kept as they are, not read here, so training never imports what records (the BatchNorm
    # recorder is read with cnnviz.batchnorm.compare.recorded).
    callbacks: tuple[Callback, ...] = ()

    @classmethod
    def of(cls, job: TrainingJob) -> "FinishedRun":
        if job.result is not None and job.result.model is not None:
            # The history keeps the weights, not the last step's gradients (as large again).
            job.result.model.zero_grad(set_to_none=True)
        return cls(job.number, job.label, job.spec, job.config, tuple(job.classes), job.state,
                   job.message, job.device, tuple(job.points()), job.result,
                   tuple(job.callbacks))

    @property
    def title(self) -> str:
        return f"#{self.number} {self.label}"

    @property
    def weights(self):
        """The trained model, or None: the run failed, stopped before training, or its weights
        were let go (:meth:`without_weights`)."""
        return self.result.model if self.result is not None else None

    @property
    def weights_dropped(self) -> bool:
        return self.result is not None and self.result.model is None

    def without_weights(self) -> "FinishedRun":
        """The same run with its model let go: metrics, curves, confusion matrix and
        misclassified images stay (a few KB), the weights (up to hundreds of MB) do not."""
        if self.result is None or self.result.model is None:
            return self
        return replace(self, result=replace(self.result, model=None))


def keep_weights(history: list[FinishedRun], keep: int | None = None) -> list[FinishedRun]:
    """``history`` with the weights of only its last ``keep`` runs that have weights
    (``limits.limit("kept_weights")`` unless given); older runs keep everything else."""
    keep = limit("kept_weights") if keep is None else keep
    with_weights = [i for i, run in enumerate(history) if run.weights is not None]
    drop = set(with_weights[:max(len(with_weights) - keep, 0)])
    return [run.without_weights() if i in drop else run for i, run in enumerate(history)]


CSV_COLUMNS = ("run", "label", "network", "dataset", "state", "epoch", "train_loss",
               "train_acc", "test_acc", "examples_per_sec", "seconds", "train_seconds")


def metrics_csv(runs: list[FinishedRun], network_name) -> str:
    """One row per metric point per run."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for run in runs:
        for p in run.points:
            writer.writerow([run.number, run.label, network_name(run.spec), run.config.dataset,
                             run.state, p.epoch, f"{p.train_loss:.6g}", f"{p.train_acc:.6g}",
                             "" if p.test_acc is None else f"{p.test_acc:.6g}",
                             f"{p.examples_per_sec:.6g}", f"{p.seconds:.4g}",
                             "" if p.train_seconds is None else f"{p.train_seconds:.4g}"])
    return out.getvalue()


def format_seconds(seconds: float) -> str:
    if seconds < 1:
        return "under a second"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
