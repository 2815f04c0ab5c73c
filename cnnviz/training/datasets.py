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

    @property
    def num_classes(self) -> int:
        return len(self.classes)

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
                train_size=60_000, test_size=10_000, download_mb=30),
    DatasetInfo("mnist", "MNIST", 1, 28, _DIGITS, offline=False,
                train_size=60_000, test_size=10_000, download_mb=12),
    DatasetInfo("cifar10", "CIFAR-10", 3, 32,
                ("airplane", "automobile", "bird", "cat", "deer",
                 "dog", "frog", "horse", "ship", "truck"), offline=False,
                train_size=50_000, test_size=10_000, download_mb=170),
    DatasetInfo("digits", "Digits", 1, 8, _DIGITS, offline=True,
                train_size=1_797 - DIGITS_TEST_SIZE, test_size=DIGITS_TEST_SIZE,
                download_mb=None),
)}


def dataset_info(name: str) -> DatasetInfo:
    """The registry's facts about data set ``name``; :class:`DataError` for an unknown one."""
    try:
        return DATASETS[name]
    except (KeyError, TypeError):
        raise DataError(f"Unknown data set {name!r}; choose one of: "
                        f"{', '.join(DATASETS)}.") from None
