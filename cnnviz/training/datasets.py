"""The data-set registry: what cnnviz knows about each data set without loading it.

Split sizes, image shape, classes and download size are written here and nowhere else; the
loaders (:mod:`cnnviz.training.data`), the run-time estimate, the Train page and the command
line read them. This module imports neither torch nor torchvision, so anything may read it.
"""
from __future__ import annotations

from dataclasses import dataclass

from cnnviz.errors import CnnvizError


class DataError(CnnvizError):
    """A data set cannot be loaded; the message is one line saying why and what to do."""


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about a data set, known without loading it."""

    name: str
    title: str
    channels: int
    size: int
    classes: tuple[str, ...]
    offline: bool
    train_size: int              # examples in the full training split
    test_size: int               # and in the full test split
    download_mb: int | None      # about how much the first load downloads; None: offline
    # What the augmentation toggle does to this set: a random crop always, and a horizontal
    # flip only where a mirrored image keeps its label (a coat, a truck; not a 2 or a 7).
    flips: bool = False

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def augmentation(self) -> str:
        """What augmentation means for this data set, in words."""
        return ("random crop and horizontal flip" if self.flips else
                "random crop, no flip (a mirrored digit is not the same digit)")

    def split_sizes(self, limit: int | None = None) -> tuple[int, int]:
        """(training, test) examples a run sees, with ``limit`` as :func:`load_dataset`
        applies it: known without loading the data set."""
        if limit is None:
            return self.train_size, self.test_size
        return min(self.train_size, limit), min(self.test_size, limit)


_DIGITS = tuple(str(d) for d in range(10))
# scikit-learn's digits: 1,797 images, split once (stratified) into train and test.
DIGITS_TEST_SIZE = 360

DATASETS: dict[str, DatasetInfo] = {info.name: info for info in (
    DatasetInfo("fashion-mnist", "Fashion-MNIST", 1, 28,
                ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                 "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"), offline=False,
                train_size=60_000, test_size=10_000, download_mb=30, flips=True),
    DatasetInfo("mnist", "MNIST", 1, 28, _DIGITS, offline=False,
                train_size=60_000, test_size=10_000, download_mb=12),
    DatasetInfo("cifar10", "CIFAR-10", 3, 32,
                ("airplane", "automobile", "bird", "cat", "deer",
                 "dog", "frog", "horse", "ship", "truck"), offline=False,
                train_size=50_000, test_size=10_000, download_mb=170, flips=True),
    DatasetInfo("digits", "Digits", 1, 8, _DIGITS, offline=True,
                train_size=1_797 - DIGITS_TEST_SIZE, test_size=DIGITS_TEST_SIZE,
                download_mb=None),
)}


# The crop's zero padding, as a share of the image side (see batches.random_crop_flip).
CROP_PADDING = "1/8"


def augmentation_text() -> str:
    """What the augmentation option does, in one line (the command line's help)."""
    flipped = [info.title for info in DATASETS.values() if info.flips]
    kept = [info.title for info in DATASETS.values() if not info.flips]
    return (f"random crop after zero padding ({CROP_PADDING} of the side); a horizontal flip "
            f"only where it keeps the label: {', '.join(flipped)} (not {', '.join(kept)})")


def augmentation_help(name: str | None = None) -> str:
    """The Train page's help for the augmentation toggle: what each data set gets, ``name``
    (the chosen one) first."""
    order = sorted(DATASETS.values(), key=lambda info: info.name != name)
    lines = [f"- **{info.title}**: {info.augmentation}" for info in order]
    return (f"Training batches only, drawn per example on the device: a random crop after "
            f"zero padding ({CROP_PADDING} of the side), and a horizontal flip only where a "
            f"mirrored image keeps its label.\n\n" + "\n".join(lines))


def dataset_info(name: str) -> DatasetInfo:
    """The registry's facts about data set ``name``; :class:`DataError` for an unknown one."""
    try:
        return DATASETS[name]
    except (KeyError, TypeError):
        raise DataError(f"Unknown data set {name!r}; choose one of: "
                        f"{', '.join(DATASETS)}.") from None
