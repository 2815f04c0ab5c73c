"""With BatchNorm vs without, in one click: the runs to make, how to start them, and when each
reached an accuracy.

:func:`plan` pairs a network with its BatchNorm twin (:func:`cnnviz.batchnorm.twins.twin`), each
at the book's learning rate for it (LeNet 0.9, LeNet-BN 1.0) and, with ``shared_lr``, both
again at one shared rate, so the comparison is not only one of learning rates. Every run has
the same data set, limit, seed, epochs and batch size (the book's for the BatchNorm network
unless one is given). ResNet and DenseNet cannot go without BatchNorm: :func:`plan` raises a
:class:`~cnnviz.errors.CnnvizError` with the twin's sentence.

:func:`start_jobs` starts the runs as :class:`~cnnviz.training.job.TrainingJob` s, in order;
like any run they wait in the device queue (:mod:`cnnviz.training.queue`), so they train one
after another, and a page polls them. A run of a network with BatchNorm gets a
:class:`~cnnviz.batchnorm.recorder.BatchNormRecorder`; :func:`recorded` reads it back from a
job or a :class:`~cnnviz.training.job.FinishedRun`.

:func:`examples_to_reach` says how many training examples a run had seen when its test
accuracy first reached a level (test accuracy is known at epoch ends), and
:func:`examples_per_epoch` how many one epoch is.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cnnviz.batchnorm.recorder import BatchNormRecorder, Entry
from cnnviz.batchnorm.twins import has_batch_norm, twin
from cnnviz.errors import CnnvizError
from cnnviz.presets import PRESETS
from cnnviz.specs import Spec
from cnnviz.training.config import TrainConfig, book_batch_size, book_lr
from cnnviz.training.datasets import dataset_info
from cnnviz.training.engine import Point
from cnnviz.training.job import TrainingJob
from cnnviz.training.recipe import plan_batches


@dataclass(frozen=True)
class ComparisonRun:
    label: str           # e.g. "lenet (no BatchNorm) · lr 0.9 (book)"
    spec: Spec
    config: TrainConfig  # resolved: every number filled in
    batch_norm: bool     # whether the network has BatchNorm


def plan(spec: Spec, dataset: str = "digits", epochs: int = 10, limit: int | None = None,
         seed: int = 0, shared_lr: float | None = None, batch_size: int | None = None,
         device: str = "auto") -> list[ComparisonRun]:
    """The runs comparing ``spec`` with its BatchNorm twin: ``spec`` then its twin at the
    book's learning rate each, then (with ``shared_lr``) both at ``shared_lr``."""
    other = twin(spec)
    if other.spec is None:
        raise CnnvizError(f"No comparison with and without BatchNorm: {other.what}")
    with_bn = spec if has_batch_norm(spec) else other.spec
    batch = batch_size or book_batch_size(with_bn)
    # a twin that is no preset is named after the network it came from ("vgg (with BatchNorm)")
    names = {id(spec): _name(spec), id(other.spec): _preset_name(other.spec) or _name(spec)}
    same = names[id(spec)] == names[id(other.spec)]

    def label(s: Spec, lr: float, how: str) -> str:
        name = names[id(s)]
        if s is not with_bn:
            name += " (no BatchNorm)"
        elif same:
            name += " (with BatchNorm)"
        return f"{name} · lr {float(lr)} ({how})"

    def run(s: Spec, lr: float, how: str) -> ComparisonRun:
        config = TrainConfig(dataset=dataset, epochs=epochs, batch_size=batch, lr=lr,
                             limit=limit, seed=seed, device=device).resolved(s)
        return ComparisonRun(label(s, lr, how), s, config, s is with_bn)

    runs = [run(s, book_lr(s), "book") for s in (spec, other.spec)]
    if shared_lr is not None:
        runs += [run(s, shared_lr, "shared") for s in (spec, other.spec)]
    return runs


def start_jobs(plan_runs: Sequence[ComparisonRun], first_number: int = 1,
               record: bool = True, alive=None) -> list[TrainingJob]:
    """A started :class:`TrainingJob` per run, numbered from ``first_number`` in the plan's
    order (which is the device queue's order too). ``record``: a run with BatchNorm gets a
    :class:`BatchNormRecorder` (see :func:`recorded`). ``alive``: as for a TrainingJob (the
    page's session is still connected), so a closed tab's comparison frees the device too."""
    jobs = [TrainingJob(first_number + i, r.label, r.spec, r.config, alive=alive,
                        callbacks=[BatchNormRecorder()] if record and r.batch_norm else ())
            for i, r in enumerate(plan_runs)]  # all made first: a bad config starts none
    return [job.start() for job in jobs]


def recorded(run) -> dict[str, list[Entry]] | None:
    """The BatchNorm history of a :class:`TrainingJob` or a FinishedRun (from its
    ``callbacks``); None if the run had no :class:`BatchNormRecorder`."""
    recorder = next((c for c in getattr(run, "callbacks", ())
                     if isinstance(c, BatchNormRecorder)), None)
    return None if recorder is None else recorder.history()


def examples_per_epoch(config: TrainConfig) -> int:
    """Training examples a run of ``config`` (resolved) sees in one epoch, as the engine plans
    its batches (a last batch of one example is dropped)."""
    train = dataset_info(config.dataset).split_sizes(config.limit)[0]
    batches = plan_batches(train, config.batch_size)
    return train - train % batches.batch_size if batches.drop_last else train


def examples_to_reach(points: Iterable[Point], accuracy: float,
                      examples_per_epoch: int) -> int | None:
    """Training examples seen when the test accuracy first reached ``accuracy`` (a point's
    epoch × ``examples_per_epoch``; test accuracy is known at epoch ends and when a stopped
    run ends); None if it never did."""
    for point in points:
        if point.test_acc is not None and point.test_acc >= accuracy:
            return round(point.epoch * examples_per_epoch)
    return None


def _preset_name(spec: Spec) -> str | None:
    return next((name for name, p in PRESETS.items() if p.spec == spec), None)


def _name(spec: Spec) -> str:
    """The network's preset name, or ``edited <family>`` (as the pages name it)."""
    return _preset_name(spec) or f"edited {spec.family}"
