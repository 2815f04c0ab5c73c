"""How a network is trained, one step at a time: the one place that builds the model on its
device, the loss, the optimizer, the learning-rate schedule and the training step.

The engine's real loop (:class:`cnnviz.training.engine.TrainingRun`) and the run-time estimate
(:func:`cnnviz.training.engine.estimate_seconds`) both train through :func:`make_recipe`, so
the estimate times exactly the step the run takes — the fast recipe's Nesterov momentum,
one-cycle schedule and label smoothing included.

The recipes:

- ``book``: plain SGD at the configured learning rate, plain cross-entropy, no schedule
  (d2l's ``train_ch6``);
- ``fast``: SGD with Nesterov momentum 0.9 and weight decay 5e-4, a one-cycle schedule that
  peaks at the configured learning rate, and cross-entropy with label smoothing 0.1.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from cnnviz.models import build
from cnnviz.training.batches import prepare
from cnnviz.training.config import TrainConfig

FAST_MOMENTUM = 0.9
FAST_WEIGHT_DECAY = 5e-4
FAST_LABEL_SMOOTHING = 0.1


@dataclass(frozen=True)
class BatchPlan:
    """How one epoch is cut into batches."""

    batch_size: int   # the configured size, or the whole split when that is smaller
    drop_last: bool   # a last batch of one example would break BatchNorm in training mode
    steps: int        # optimizer steps per epoch


def plan_batches(examples: int, batch_size: int) -> BatchPlan:
    batch = max(1, min(batch_size, examples))
    drop_last = examples % batch == 1
    steps = examples // batch + (0 if drop_last or examples % batch == 0 else 1)
    return BatchPlan(batch, drop_last, steps)


# Channels-last (NHWC) is CUDA's tensor-core layout. On a CPU (2 threads) a training step of the
# book networks at 96–224 px was 6–25 % faster in it and LeNet-BN's at 28 px 43 % slower
# (docs/benchmarks.md), so CPU runs use it from this input size up.
CPU_CHANNELS_LAST_FROM = 64


def channels_last(device: torch.device, size: int) -> bool:
    """Whether a run at input ``size`` on ``device`` keeps images and weights channels-last.
    Decided here, never by the strides a data set's images happen to have."""
    return device.type == "cuda" or size >= CPU_CHANNELS_LAST_FROM


# cuDNN's autotuning (``cudnn.benchmark``) times every algorithm for every new input shape of
# every convolution. A run here has four shapes per layer (the training batch, the last smaller
# one, the test batches): on an H200 the tuning took most of a short run (GoogLeNet at 96, one
# epoch of the digits: 13.3 s), so runs keep cuDNN's own choice (docs/benchmarks.md).
# cuDNN's flags are process-wide in PyTorch: they are set once, here, when the training package
# is imported, and no run writes them from its thread (a run would change every other's).
CUDNN_BENCHMARK = False
torch.backends.cudnn.benchmark = CUDNN_BENCHMARK


def make_model(spec, device: torch.device, size: int | None = None,
               seed: int | None = None) -> nn.Module:
    """The spec's network on ``device`` in the layout :func:`channels_last` picks for input
    ``size`` (the spec's own unless given).

    ``seed``: the weights' seed (see :func:`cnnviz.models.build`).
    """
    model = build(spec, seed=seed).to(device)
    if channels_last(device, size or spec.input_size):
        model = model.to(memory_format=torch.channels_last)
    return model


@dataclass
class Recipe:
    """Everything one training step needs, built by :func:`make_recipe`."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    label_smoothing: float
    prep: dict          # keyword arguments of batches.prepare for this network and device
    autocast: torch.autocast
    augment: bool

    def loss(self, out: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(out.float(), labels, label_smoothing=self.label_smoothing)

    def step(self, images: torch.Tensor, labels: torch.Tensor,
             generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step on a batch of uint8 images: (the logits, the loss, detached).

        Both stay on the device: nothing here waits for it.
        """
        x = prepare(images, augment=self.augment, generator=generator, **self.prep)
        with self.autocast:
            out = self.model(x)
        loss = self.loss(out, labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        return out, loss.detach()


def make_recipe(model: nn.Module, spec, config: TrainConfig, device: torch.device,
                total_steps: int) -> Recipe:
    """The loss, optimizer, schedule and step of ``config.recipe`` for ``model``.

    ``config`` must be resolved (``config.resolved(spec)``); ``total_steps`` is the number of
    optimizer steps the schedule spans (the one-cycle schedule refuses a step beyond it).
    """
    if config.recipe == "fast":
        optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=FAST_MOMENTUM,
                                    nesterov=True, weight_decay=FAST_WEIGHT_DECAY)
        # One cycle of the learning rate only: PyTorch's OneCycleLR also cycles momentum
        # (0.95 → 0.85 → 0.95) by default, overwriting the recipe's 0.9 from the first step.
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr,
                                                        total_steps=max(total_steps, 1),
                                                        cycle_momentum=False)
        smoothing = FAST_LABEL_SMOOTHING
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=config.lr)
        scheduler, smoothing = None, 0.0
    cuda = device.type == "cuda"
    prep = {"channels": spec.in_channels, "size": config.size,
            "channels_last": channels_last(device, config.size)}
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda)
    return Recipe(model, optimizer, scheduler, smoothing, prep, autocast, config.augment)
