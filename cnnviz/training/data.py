"""The data sets a run trains on, as uint8 tensors at their native size.

Fashion-MNIST, MNIST and CIFAR-10 come through torchvision, downloaded once into a cache folder;
scikit-learn's bundled digits need no network at all. Images are taken in bulk from the
datasets' ``.data``/``.targets`` — never through a per-sample transform — and stay uint8 at
native size: resizing and grey/RGB adaptation happen per batch on the training device.

A loaded data set is kept in memory for the life of the process (see :func:`clear_cache`), so a
second run, or a second browser session, does not read the files again. Its tensors are shared
between callers and read-only by convention.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cnnviz.training.datasets import DIGITS_TEST_SIZE, DataError, DatasetInfo, dataset_info
from cnnviz.training.download import DOWNLOAD_SHARE, Progress, short_reason
from cnnviz.training.download import download as download_files
from cnnviz.training.files import FileProblem, expected_files, problems, torchvision_class


@dataclass(frozen=True, eq=False)
class Dataset:
    """Both splits of a data set: images uint8 (N, C, H, W), labels int64 (N,), on the CPU."""

    info: DatasetInfo
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor

    def __repr__(self) -> str:
        _, c, h, w = self.train_images.shape
        return (f"Dataset({self.info.name!r}, train={len(self.train_labels)}, "
                f"test={len(self.test_labels)}, image={c}x{h}x{w})")


def default_root() -> Path:
    """Where downloaded data sets live: ``$CNNVIZ_DATA`` if set, else ``~/.cache/cnnviz/data``."""
    configured = os.environ.get("CNNVIZ_DATA")
    if configured:
        return Path(configured).expanduser()
    return Path.home() / ".cache" / "cnnviz" / "data"


def is_downloaded(name: str, root: Path | str | None = None) -> bool:
    """Whether the data set's files are all under ``root`` and whole (always true for offline
    sets): a file cut short or damaged does not count (see :mod:`cnnviz.training.files`)."""
    return not cache_problems(name, root)


def cache_problems(name: str, root: Path | str | None = None) -> list[FileProblem]:
    """The data set's files under ``root`` that are missing or damaged (none for offline
    sets), each with a sentence that names it."""
    info = dataset_info(name)
    return [] if info.offline else problems(info, _root(root))


def remove_damaged(name: str, root: Path | str | None = None) -> list[Path]:
    """Delete the data set's damaged files (present but not whole) so that the next load
    downloads them again; returns them.

    Only the files :func:`cache_problems` names as damaged are touched: the very names
    torchvision reads, under ``root`` (cnnviz's data folder unless given), plain files only —
    never a folder, a link, a healthy file or anything else that lives there.
    """
    folder = _root(root).resolve()
    removed = []
    for problem in cache_problems(name, root):
        path = problem.path
        if problem.missing or path.is_symlink() or not path.is_file() or \
                not path.resolve().is_relative_to(folder):
            continue
        path.unlink()
        removed.append(path)
    clear_cache(name, root)
    return removed


def load_dataset(name: str, root: Path | str | None = None, *, download: bool = True,
                 progress: Progress | None = None, limit: int | None = None) -> Dataset:
    """Both splits of data set ``name``, downloading it into ``root`` first if needed.

    ``progress(message, fraction)`` hears about the download and the loading, from 0.0 to 1.0.
    ``limit`` keeps only the first ``limit`` training and test examples. Raises
    :class:`DataError` for an unknown name, a failed download, missing files with
    ``download=False``, or files that cannot be read.
    """
    info = dataset_info(name)
    if limit is not None and limit < 1:
        raise DataError(f"limit must be at least 1, got {limit}")
    report = progress or _ignore
    folder = None if info.offline else _root(root)
    full = _full_dataset(info, folder, download, report)
    data = full if limit is None else _first(full, limit, folder)
    report(f"{info.title} ready: {len(data.train_labels):,} training and "
           f"{len(data.test_labels):,} test images", 1.0)
    return data


def clear_cache(name: str | None = None, root: Path | str | None = None) -> None:
    """Forget loaded data sets (all of them, or those of ``name`` and/or ``root``) so the next
    load reads the files again."""
    folder = None if root is None else _key_root(_root(root))
    with _cache_lock:
        for key in list(_cache):
            if (name is None or key[0] == name) and (folder is None or key[1] == folder):
                del _cache[key]


# -- the in-memory cache ----------------------------------------------------------------------
# Keyed by (name, resolved root or None, limit). One lock per (name, root) so that two sessions
# asking for the same set at once download it once, while other sets load meanwhile.

_cache: dict[tuple[str, str | None, int | None], Dataset] = {}
_cache_lock = threading.Lock()
_load_locks: dict[tuple[str, str | None], threading.Lock] = {}


def _full_dataset(info: DatasetInfo, root: Path | None, download: bool,
                  report: Progress) -> Dataset:
    key = (info.name, None if root is None else _key_root(root))
    cached = _cache.get((*key, None))
    if cached is None:
        with _cache_lock:
            lock = _load_locks.setdefault(key, threading.Lock())
        with lock:
            cached = _cache.get((*key, None))
            if cached is None:
                cached = (_load_digits(info, report) if root is None
                          else _load_torchvision(info, root, download, report))
                with _cache_lock:
                    _cache[(*key, None)] = cached
                return cached
    report(f"Loading {info.title}…", 0.0)
    return cached


def _first(full: Dataset, limit: int, root: Path | None) -> Dataset:
    key = (full.info.name, None if root is None else _key_root(root), limit)
    with _cache_lock:
        if key not in _cache:
            # Slicing the leading dimension of a contiguous tensor is a contiguous view: no copy.
            _cache[key] = Dataset(full.info, full.train_images[:limit], full.train_labels[:limit],
                                  full.test_images[:limit], full.test_labels[:limit])
        return _cache[key]


# -- torchvision data sets --------------------------------------------------------------------

def _load_torchvision(info: DatasetInfo, root: Path, may_download: bool,
                      report: Progress) -> Dataset:
    cls = torchvision_class(info)
    train_set = None
    start = 0.0
    before = problems(info, root)
    damaged = [p for p in before if not p.missing]
    if damaged:  # torchvision would not download over them: say which and what to do
        raise _unreadable(info, damaged[0].path.parent, damaged[0].problem +
                          (f" (and {len(damaged) - 1} more)" if len(damaged) > 1 else ""))
    if before:
        if not may_download:
            raise DataError(_not_there(info, root, before))
        train_set = download_files(info, root, report, before)
        start = DOWNLOAD_SHARE
    report(f"Loading {info.title}…", start)
    try:
        train_set = train_set or cls(str(root), train=True, download=False)
        test_set = cls(str(root), train=False, download=False)
        data = Dataset(info, *_images_and_labels(train_set, info),
                       *_images_and_labels(test_set, info))
    except Exception as error:  # files whole but not as expected: labels, shapes, pickles
        damaged = [p for p in problems(info, root) if not p.missing]
        folder = (damaged[0].path if damaged else expected_files(info, root)[0]).parent
        raise _unreadable(info, folder, damaged[0].problem if damaged
                          else short_reason(error)) from error
    return data


def _unreadable(info: DatasetInfo, folder: Path, why: str) -> DataError:
    return DataError(f"Could not read {info.title} from {folder} ({why}). Delete that folder "
                     f"to download it again, or choose the offline 'digits' data set.")


def _not_there(info: DatasetInfo, root: Path, missing: list[FileProblem]) -> str:
    if len(missing) < len(expected_files(info, root)):  # some are there: name what is not
        return (f"{info.title} is incomplete under {missing[0].path.parent}: "
                f"{missing[0].problem}. Download it again with a network connection, place "
                f"the files there, or choose the offline 'digits' data set.")
    return (f"{info.title} is not downloaded yet (looked under {root}). Download it once with "
            f"a network connection, place the files there, or choose the offline 'digits' "
            f"data set.")


def _images_and_labels(split, info: DatasetInfo) -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.as_tensor(split.data)
    # MNIST's .data is a tensor (N, H, W); CIFAR's is a numpy array (N, H, W, C).
    images = images.unsqueeze(1) if images.ndim == 3 else images.permute(0, 3, 1, 2)
    images = images.to(torch.uint8).contiguous()
    labels = torch.as_tensor(split.targets, dtype=torch.int64).contiguous()
    expected = (info.channels, info.size, info.size)
    if tuple(images.shape[1:]) != expected:
        raise ValueError(f"images are {tuple(images.shape[1:])}, expected {expected}")
    if len(labels) != len(images):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    if len(labels) and not 0 <= int(labels.min()) <= int(labels.max()) < info.num_classes:
        raise ValueError(f"labels outside 0..{info.num_classes - 1}")
    return images, labels


# -- scikit-learn's digits --------------------------------------------------------------------


def _load_digits(info: DatasetInfo, report: Progress) -> Dataset:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    report(f"Loading {info.title}…", 0.0)
    bunch = load_digits()
    values = bunch.images.astype(np.int64)  # whole numbers 0..16
    # round(v * 255 / 16) in integers: exact, and the one tie (v = 8 -> 127.5) goes up to 128.
    images = ((values * 255 + 8) // 16).astype(np.uint8)[:, None]
    labels = bunch.target.astype(np.int64)
    train, test = train_test_split(np.arange(len(labels)), test_size=DIGITS_TEST_SIZE,
                                   random_state=0, stratify=labels)
    return Dataset(info,
                   torch.from_numpy(np.ascontiguousarray(images[train])),
                   torch.from_numpy(labels[train].copy()),
                   torch.from_numpy(np.ascontiguousarray(images[test])),
                   torch.from_numpy(labels[test].copy()))


# -- helpers ----------------------------------------------------------------------------------

def _root(root: Path | str | None) -> Path:
    return default_root() if root is None else Path(root).expanduser()


def _key_root(root: Path) -> str:
    return str(root.resolve())


def _ignore(message: str, fraction: float) -> None:
    pass
