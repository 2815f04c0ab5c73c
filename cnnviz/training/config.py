"""What a training run is asked to do, with the book's defaults per family."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from cnnviz.errors import CnnvizError


class TrainingError(CnnvizError):
    pass


# The learning rates d2l trains each network with (chapter 7, Fashion-MNIST).
BOOK_LR = {"lenet": 0.9, "alexnet": 0.01, "vgg": 0.05, "nin": 0.1, "googlenet": 0.1,
           "resnet": 0.05, "densenet": 0.1, "custom": 0.05}
RECIPES = ("book", "fast")
DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")


def book_lr(spec) -> float:
    if spec.family == "lenet" and spec.batch_norm:
        return 1.0  # the book's LeNet with BatchNorm (7.5)
    return BOOK_LR[spec.family]


def book_batch_size(spec) -> int:
    return 256 if spec.family == "lenet" else 128


@dataclass(frozen=True)
class TrainConfig:
    dataset: str = "fashion-mnist"
    epochs: int = 10
    batch_size: int | None = None     # None: the book's (256 for LeNet, 128 otherwise)
    lr: float | None = None           # None: the book's learning rate for the family
    size: int | None = None           # input side; None: the network's input size
    device: str = "auto"              # auto: CUDA, then MPS, then CPU
    recipe: str = "book"              # book: Xavier + plain SGD; fast: Nesterov, one-cycle, LS
    time_budget: float | None = None  # seconds; the run stops cleanly when it is spent
    augment: bool = False             # random crop with padding and horizontal flip
    limit: int | None = None          # use only the first N train and test examples
    seed: int = 0
    points_per_epoch: int = 4         # metric points on the curves per epoch
    data_root: str | None = None

    def resolved(self, spec) -> "TrainConfig":
        """The same config with every default filled in for ``spec``; checks the numbers."""
        cfg = dataclasses.replace(
            self, batch_size=self.batch_size or book_batch_size(spec),
            lr=self.lr if self.lr is not None else book_lr(spec),
            size=self.size or spec.input_size)
        problems = []
        if cfg.epochs < 1:
            problems.append(f"epochs must be ≥ 1, got {cfg.epochs}")
        if not 1 <= cfg.batch_size <= 65_536:
            problems.append(f"batch size must be between 1 and 65,536, got {cfg.batch_size}")
        if not 0 < cfg.lr <= 100:
            problems.append(f"learning rate must be in (0, 100], got {cfg.lr}")
        if not 1 <= cfg.size <= 1024:
            problems.append(f"input size must be between 1 and 1024, got {cfg.size}")
        if cfg.recipe not in RECIPES:
            problems.append(f"recipe must be one of {', '.join(RECIPES)}, got {cfg.recipe!r}")
        if cfg.device not in DEVICE_CHOICES:
            problems.append(f"device must be one of {', '.join(DEVICE_CHOICES)}, "
                            f"got {cfg.device!r}")
        if cfg.time_budget is not None and cfg.time_budget <= 0:
            problems.append(f"time budget must be positive, got {cfg.time_budget}")
        if problems:
            raise TrainingError("; ".join(problems))
        return cfg


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA, then Apple's MPS, then the CPU; a named device must exist."""
    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if cuda else "mps" if mps else "cpu")
    if name == "cuda" and not cuda:
        raise TrainingError("device cuda was asked for, but no CUDA GPU is available here; "
                            "use auto or cpu")
    if name == "mps" and not mps:
        raise TrainingError("device mps was asked for, but Apple's MPS is not available here; "
                            "use auto or cpu")
    return torch.device(name)
