"""What a training run is asked to do, with the book's defaults per family."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from cnnviz.errors import CnnvizError
from cnnviz.specs import SPEC_CLASSES


class TrainingError(CnnvizError):
    pass


@dataclass(frozen=True)
class BookSettings:
    """How d2l trains a network on Fashion-MNIST: learning rate, batch size, and where."""

    lr: float
    batch_size: int
    section: str | None  # the book's section (2nd edition numbering); None: not in the book


# The settings d2l trains each family with (sections 6.6 and 7.1–7.7). The one place these
# numbers live: defaults, help texts and the command line's help read them from here.
BOOK: dict[str, BookSettings] = {
    "lenet": BookSettings(0.9, 256, "6.6"),
    "alexnet": BookSettings(0.01, 128, "7.1"),
    "vgg": BookSettings(0.05, 128, "7.2"),
    "nin": BookSettings(0.1, 128, "7.3"),
    "googlenet": BookSettings(0.1, 128, "7.4"),
    "resnet": BookSettings(0.05, 256, "7.6"),
    "densenet": BookSettings(0.1, 256, "7.7"),
    "custom": BookSettings(0.05, 128, None),  # not the book's: a middle-of-the-road start
}
BOOK_LENET_BATCH_NORM = BookSettings(1.0, 256, "7.5")  # LeNet with BatchNorm
RECIPES = ("book", "fast")
DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
# What a run accepts (TrainConfig.resolved checks them; the Train page's inputs stop there).
MAX_BATCH_SIZE = 65_536
MAX_LR = 100.0
MAX_SIZE = 1024

def book_settings(spec) -> BookSettings:
    if spec.family == "lenet" and getattr(spec, "batch_norm", False):
        return BOOK_LENET_BATCH_NORM
    return BOOK[spec.family]


def book_lr(spec) -> float:
    return book_settings(spec).lr


def book_batch_size(spec) -> int:
    return book_settings(spec).batch_size


def book_defaults_text(setting: str) -> str:
    """The book's ``"lr"`` or ``"batch_size"`` for every family in one line, for help texts:
    ``"LeNet 256, LeNet+BatchNorm 256, AlexNet 128, …; custom 128"``."""
    def value(settings: BookSettings) -> str:
        return f"{getattr(settings, setting):g}"

    parts = []
    for family, settings in BOOK.items():
        if settings.section is None:
            continue
        parts.append(f"{SPEC_CLASSES[family].title} {value(settings)}")
        if family == "lenet":
            parts.append(f"LeNet+BatchNorm {value(BOOK_LENET_BATCH_NORM)}")
    others = [f"{SPEC_CLASSES[f].title} {value(s)}" for f, s in BOOK.items() if s.section is None]
    return ", ".join(parts) + (f"; {', '.join(others)}" if others else "")


def book_help(spec, setting: str) -> str:
    """A help text for the default ``"lr"`` or ``"batch_size"`` of ``spec``."""
    settings = book_settings(spec)
    value = f"{getattr(settings, setting):g}"
    if settings.section is None:
        return f"a custom network starts at {value} (the book has no setting for it)"
    return f"the book uses {value} for this network (section {settings.section})"


@dataclass(frozen=True)
class TrainConfig:
    dataset: str = "fashion-mnist"
    epochs: int = 10
    batch_size: int | None = None     # None: the book's for the family (book_batch_size)
    lr: float | None = None           # None: the book's learning rate for the family
    size: int | None = None           # input side; None: the network's input size
    device: str = "auto"              # auto: CUDA, then MPS, then CPU
    recipe: str = "book"              # book: Xavier + plain SGD; fast: Nesterov, one-cycle, LS
    time_budget: float | None = None  # seconds; the run stops cleanly when it is spent
    augment: bool = False             # random crop with padding; a flip where the data set allows
    limit: int | None = None          # use only the first N train and test examples
    seed: int = 0
    points_per_epoch: int = 4         # metric points on the curves per epoch
    data_root: str | None = None

    def resolved(self, spec) -> "TrainConfig":
        """The same config with every default filled in for ``spec``; checks the numbers."""
        cfg = dataclasses.replace(
            self,
            batch_size=self.batch_size if self.batch_size is not None else book_batch_size(spec),
            lr=self.lr if self.lr is not None else book_lr(spec),
            size=self.size if self.size is not None else spec.input_size)
        problems = []
        if cfg.epochs < 1:
            problems.append(f"epochs must be ≥ 1, got {cfg.epochs}")
        if not 1 <= cfg.batch_size <= MAX_BATCH_SIZE:
            problems.append(f"batch size must be between 1 and {MAX_BATCH_SIZE:,}, "
                            f"got {cfg.batch_size}")
        if not 0 < cfg.lr <= MAX_LR:
            problems.append(f"learning rate must be in (0, {MAX_LR:g}], got {cfg.lr}")
        if not 1 <= cfg.size <= MAX_SIZE:
            problems.append(f"input size must be between 1 and {MAX_SIZE}, got {cfg.size}")
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


# Devices a run of this process found gone (filled by faults.remember_if_lost): after a CUDA
# error CUDA's context is unusable until the server restarts, whatever
# torch.cuda.is_available() still says, so ``auto`` passes it over and naming it is refused.
LOST_DEVICES: dict[str, str] = {}


def lost_devices() -> dict[str, str]:
    """Device → the error with which it stopped responding, for every device a run of this
    process lost ("cuda:1" is noted as "cuda" too: the device choice a page offers)."""
    return dict(LOST_DEVICES)


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA, then Apple's MPS, then the CPU; a named device must exist and must
    not have been lost by an earlier run (see :data:`LOST_DEVICES`)."""
    if name in LOST_DEVICES:
        raise TrainingError(f"device {name} stopped responding during an earlier run and stays "
                            f"unusable until the server restarts; use auto or cpu")
    cuda = torch.cuda.is_available() and "cuda" not in LOST_DEVICES
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
