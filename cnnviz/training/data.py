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
import re
import threading
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.error import URLError

import numpy as np
import torch

from cnnviz.training.datasets import DIGITS_TEST_SIZE, DataError, DatasetInfo, dataset_info

Progress = Callable[[str, float], None]

# Share of the progress bar the download takes; reading the files takes the rest.
_DOWNLOAD_SHARE = 0.9


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
    """Whether the data set's files are present under ``root`` (always true for offline sets).

    Only checks that the files exist: reading them is what finds a corrupt file.
    """
    info = dataset_info(name)
    if info.offline:
        return True
    return all(path.is_file() for path in _expected_files(info, _root(root)))


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

def _torchvision_class(info: DatasetInfo):
    from torchvision import datasets

    return {"fashion-mnist": datasets.FashionMNIST, "mnist": datasets.MNIST,
            "cifar10": datasets.CIFAR10}[info.name]


def _expected_files(info: DatasetInfo, root: Path) -> list[Path]:
    """The files torchvision reads, by its own class attributes so they stay in step."""
    cls = _torchvision_class(info)
    if hasattr(cls, "resources"):  # the MNIST family: gunzipped IDX files in <Class>/raw
        raw = root / cls.__name__ / "raw"
        return [raw / os.path.splitext(os.path.basename(url))[0] for url, _ in cls.resources]
    folder = root / cls.base_folder
    return [folder / entry[0] for entry in (*cls.train_list, *cls.test_list)] + \
        [folder / cls.meta["filename"]]


def _download_count(info: DatasetInfo) -> int:
    cls = _torchvision_class(info)
    return len(cls.resources) if hasattr(cls, "resources") else 1


def _load_torchvision(info: DatasetInfo, root: Path, download: bool,
                      report: Progress) -> Dataset:
    cls = _torchvision_class(info)
    train_set = None
    start = 0.0
    if not is_downloaded(info.name, root):
        if not download:
            raise DataError(f"{info.title} is not downloaded yet (looked under {root}). Download "
                            f"it once with a network connection, place the files there, or "
                            f"choose the offline 'digits' data set.")
        report(f"Downloading {info.title}…", 0.0)
        try:
            with _downloads_reported_to(_DownloadProgress(info.title, _download_count(info),
                                                          report)):
                # Downloads both splits, then reads the training split.
                train_set = cls(str(root), train=True, download=True)
        except _ProgressFailed as failed:
            raise failed.__cause__ from None
        except Exception as error:  # torchvision raises URLError, OSError, RuntimeError, ...
            if not is_downloaded(info.name, root):
                raise DataError(f"Could not download {info.title} ({_short_reason(error)}). "
                                f"Choose the offline 'digits' data set, or place the files "
                                f"under {root}.") from error
            # The files arrived but do not read: reported as such below.
        start = _DOWNLOAD_SHARE
    report(f"Loading {info.title}…", start)
    try:
        train_set = train_set or cls(str(root), train=True, download=False)
        test_set = cls(str(root), train=False, download=False)
        data = Dataset(info, *_images_and_labels(train_set, info),
                       *_images_and_labels(test_set, info))
    except Exception as error:  # truncated or corrupt files: assertion, shape, pickle errors
        folder = _expected_files(info, root)[0].parent
        raise DataError(f"Could not read {info.title} from {folder} ({_short_reason(error)}). "
                        f"Delete that folder to download it again, or choose the offline "
                        f"'digits' data set.") from error
    return data


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


def _short_reason(error: BaseException) -> str:
    """One short line from an exception whose text may span many lines (torchvision lists
    every mirror it tried)."""
    text = str(error.reason if isinstance(error, URLError) else error)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    reason = lines[-1] if lines else type(error).__name__
    reason = re.sub(r"^<urlopen error (.*)>$", r"\1", reason)
    reason = re.sub(r"^\[Errno [-\w]+\]\s*", "", reason)
    if re.search(r"name resolution|not known|nodename|getaddrinfo|unreachable|no route to host",
                 reason, re.IGNORECASE):
        reason = f"no network connection: {reason}"
    return reason if len(reason) <= 160 else reason[:157] + "..."


# -- download progress ------------------------------------------------------------------------
# torchvision draws a tqdm bar per downloaded file through ``torchvision.datasets.utils.tqdm``.
# While a download with a progress callback runs, that name points at a dispatcher that hands
# the calling thread's bar to its callback and every other thread's to the real tqdm.

class _ProgressFailed(Exception):
    """Carries an exception raised by the caller's progress callback through torchvision."""


class _DownloadProgress:
    """Stands in for torchvision's tqdm bar, one file after another."""

    def __init__(self, title: str, files: int, report: Progress):
        self.title, self.files, self.report = title, files, report
        self.index = 0
        self.done = 0
        self.total: int | None = None
        self.reported = 0.0

    def start_file(self, total: int | None) -> _DownloadProgress:
        self.index += 1
        self.done, self.total = 0, total
        return self

    def __enter__(self) -> _DownloadProgress:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:  # a failed file is reported by the exception, not as finished
            self.close()

    def update(self, n: int = 1) -> None:
        self.done += n
        self._send(final=False)

    def close(self) -> None:
        self._send(final=True)

    def _send(self, final: bool) -> None:
        within = 1.0 if final else (min(self.done / self.total, 1.0) if self.total else 0.0)
        fraction = _DOWNLOAD_SHARE * (min(self.index, self.files) - 1 + within) / self.files
        if fraction < self.reported + 0.005 and not final:
            return
        self.reported = max(self.reported, fraction)
        size = f"{self.done / 1e6:.1f}" + (f" of {self.total / 1e6:.1f}" if self.total else "")
        try:
            self.report(f"Downloading {self.title}… file {min(self.index, self.files)} of "
                        f"{self.files}, {size} MB", self.reported)
        except Exception as error:
            raise _ProgressFailed() from error


_hook_lock = threading.Lock()
_hook_users = 0
_real_tqdm = None
_thread_progress = threading.local()


def _tqdm_or_progress(*args, **kwargs):
    progress = getattr(_thread_progress, "current", None)
    if progress is None:
        return _real_tqdm(*args, **kwargs)
    return progress.start_file(kwargs.get("total"))


@contextmanager
def _downloads_reported_to(progress: _DownloadProgress):
    global _hook_users, _real_tqdm
    from torchvision.datasets import utils as tv_utils

    if not hasattr(tv_utils, "tqdm"):  # a torchvision that draws its bar differently: no detail
        yield
        return
    with _hook_lock:
        if _hook_users == 0:
            _real_tqdm, tv_utils.tqdm = tv_utils.tqdm, _tqdm_or_progress
        _hook_users += 1
    _thread_progress.current = progress
    try:
        yield
    finally:
        _thread_progress.current = None
        with _hook_lock:
            _hook_users -= 1
            if _hook_users == 0:
                tv_utils.tqdm = _real_tqdm


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
