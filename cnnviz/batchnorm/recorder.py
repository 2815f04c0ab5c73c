"""BatchNorm's running statistics, γ and β, recorded per channel at every metric point.

:class:`BatchNormRecorder` is an engine callback (``TrainingRun(..., callbacks=[recorder])``,
see :mod:`cnnviz.training.engine`). At each metric point it reads, for every BatchNorm layer of
``run.model``, the per-channel running_mean, running_var, γ (``weight``) and β (``bias``), with
one copy to the host for all layers together: a sync per point, never one per batch. The vectors
are small (C values a layer), so they are kept whole, as CPU float32 tensors.

A page reads :func:`history` while the run goes, from another thread: the recorder appends under
a lock and hands out copies of its lists (the entries themselves are frozen).

``examples`` counts the training examples seen, from the layers' own ``num_batches_tracked`` (an
exact count of training batches) and the run's batch plan, so it is exact also when the point
falls mid-epoch.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import torch
from torch import nn

from cnnviz.training.datasets import dataset_info
from cnnviz.training.engine import Callback, Point, Result, TrainingRun
from cnnviz.training.recipe import plan_batches
from cnnviz.batchnorm.stats import NORMS


@dataclass(frozen=True)
class Entry:
    """One BatchNorm layer at one metric point; each tensor has the layer's C values (None
    where the layer keeps no running statistics or has no affine γ and β)."""

    epoch: float                       # the point's epoch (fractional)
    examples: int                      # training examples seen by then
    running_mean: torch.Tensor | None
    running_var: torch.Tensor | None
    gamma: torch.Tensor | None         # γ: the layer's weight
    beta: torch.Tensor | None          # β: the layer's bias


def batch_norm_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every BatchNorm layer with its module path, in the model's order."""
    return [(path, m) for path, m in model.named_modules()
            if isinstance(m, NORMS)]


class BatchNormRecorder(Callback):
    """Records every BatchNorm layer of a run at every metric point (see the module); one
    recorder per run."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, list[Entry]] = {}
        self._layers: list[tuple[str, nn.Module]] | None = None
        self._plan: tuple[int, int, int] | None = None  # steps, batch size, examples an epoch
        self.ended = False

    def on_metrics(self, run: TrainingRun, point: Point) -> None:
        if self._layers is None:
            self._layers = batch_norm_layers(run.model)
            self._plan = _batch_plan(run)
        if not self._layers:
            return
        tensors: list[torch.Tensor | None] = []
        for _, m in self._layers:
            tensors += [m.running_mean, m.running_var, m.weight, m.bias]
        batches = self._layers[0][1].num_batches_tracked
        present = [t.detach().reshape(-1).double() for t in tensors if t is not None]
        if batches is not None:
            present.append(batches.detach().reshape(1).double())
        flat = torch.cat(present).cpu()  # the one host sync of this point
        values = iter(flat.split([t.numel() for t in present]))
        read = [None if t is None else next(values).float() for t in tensors]
        examples = _examples(int(next(values)), self._plan) \
            if batches is not None else 0
        with self._lock:
            for i, (path, _) in enumerate(self._layers):
                mean, var, gamma, beta = read[4 * i:4 * i + 4]
                self._entries.setdefault(path, []).append(
                    Entry(point.epoch, examples, mean, var, gamma, beta))

    def on_end(self, run: TrainingRun, result: Result | None) -> None:
        self.ended = True

    def history(self) -> dict[str, list[Entry]]:
        with self._lock:
            return {path: list(entries) for path, entries in self._entries.items()}


def history(recorder: BatchNormRecorder) -> dict[str, list[Entry]]:
    """Per BatchNorm layer path, its entries in the order of the run's points (a copy: safe
    to read while the run goes on). Empty for a network without BatchNorm."""
    return recorder.history()


def _batch_plan(run: TrainingRun) -> tuple[int, int, int]:
    """(steps per epoch, batch size, examples per epoch) as the engine plans them."""
    dataset = getattr(run, "_dataset", None)  # the run's own data when it was handed one
    if dataset is not None:
        train = len(dataset.train_labels)
    else:
        train = dataset_info(run.config.dataset).split_sizes(run.config.limit)[0]
    plan = plan_batches(train, run.config.batch_size)
    return plan.steps, plan.batch_size, train - train % plan.batch_size if plan.drop_last \
        else train


def _examples(batches: int, plan: tuple[int, int, int]) -> int:
    steps, batch, per_epoch = plan
    epochs, rest = divmod(batches, steps)
    return epochs * per_epoch + rest * batch  # only an epoch's last batch can be short
