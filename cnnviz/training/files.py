"""A downloaded data set's files on disk: which files torchvision reads, whether each is whole,
and the archives torchvision downloads them in (each with its checksum).

A cache can be damaged: a download or its extraction cut short, a disk that filled up, a file
copied by hand from somewhere else. torchvision only checks that the MNIST family's files exist,
so a damaged one used to pass for "downloaded" and fail later, deep in its reader. Here each
file is checked before it counts: the MNIST family's IDX headers (magic number, dimensions, the
byte count they promise, images and labels of a split agreeing), CIFAR-10's checksums.

The checks read a few bytes per IDX file (a CIFAR-10 checksum reads its file once); their
answers are kept per file state (size and modification time), so the Train page can ask on
every rerun. This module imports neither the loaders nor Streamlit.
"""
from __future__ import annotations

import os
import struct
import threading
from dataclasses import dataclass
from pathlib import Path

from cnnviz.training.datasets import DatasetInfo

# IDX magic numbers: 0x08 (unsigned bytes) in the third byte, the number of dimensions in the
# fourth.
IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049


@dataclass(frozen=True)
class FileProblem:
    """One file of a data set that is not there or not whole."""

    path: Path
    problem: str   # a sentence naming the file: "train-images-idx3-ubyte is cut short: …"
    missing: bool  # absent, as opposed to present but damaged


def torchvision_class(info: DatasetInfo):
    from torchvision import datasets

    return {"fashion-mnist": datasets.FashionMNIST, "mnist": datasets.MNIST,
            "cifar10": datasets.CIFAR10}[info.name]


def expected_files(info: DatasetInfo, root: Path) -> list[Path]:
    """The files torchvision reads, by its own class attributes so they stay in step."""
    cls = torchvision_class(info)
    if _idx_family(cls):  # gunzipped IDX files in <Class>/raw
        raw = root / cls.__name__ / "raw"
        return [raw / os.path.splitext(os.path.basename(url))[0] for url, _ in cls.resources]
    folder = root / cls.base_folder
    return [folder / entry[0] for entry in (*cls.train_list, *cls.test_list)] + \
        [folder / cls.meta["filename"]]


@dataclass(frozen=True)
class Archive:
    """A file torchvision downloads (and keeps), with its checksum and what it unpacks to."""

    path: Path
    md5: str | None
    unpacks_to: tuple[Path, ...]


def archives(info: DatasetInfo, root: Path) -> list[Archive]:
    """The archives torchvision downloads for ``info`` into ``root``, in its order: the MNIST
    family's four gzipped IDX files, CIFAR-10's one tar.gz."""
    cls = torchvision_class(info)
    if _idx_family(cls):
        raw = root / cls.__name__ / "raw"
        return [Archive(raw / os.path.basename(url), md5,
                        (raw / os.path.splitext(os.path.basename(url))[0],))
                for url, md5 in cls.resources]
    return [Archive(root / cls.filename, cls.tgz_md5, tuple(expected_files(info, root)))]


def archive_intact(archive: Archive) -> bool:
    """Whether ``archive`` is there and has torchvision's checksum (any file, without one)."""
    if not archive.path.is_file():
        return False
    return archive.md5 is None or _checksum_matches(archive.path, archive.md5)


def problems(info: DatasetInfo, root: Path) -> list[FileProblem]:
    """Every file of ``info``'s data set under ``root`` that is missing or damaged (empty when
    the cache is whole)."""
    cls = torchvision_class(info)
    paths = expected_files(info, root)
    found = [FileProblem(path, f"{path.name} is missing", True)
             for path in paths if not path.is_file()]
    present = [path for path in paths if path.is_file()]
    if _idx_family(cls):
        found += _idx_problems(present, info.size)
    else:
        checksums = {entry[0]: entry[1] for entry in (*cls.train_list, *cls.test_list)}
        checksums[cls.meta["filename"]] = cls.meta["md5"]
        found += [FileProblem(path, f"{path.name} is damaged (its checksum is not "
                                    f"torchvision's)", False)
                  for path in present if not _checksum_matches(path, checksums[path.name])]
    return found


def _idx_family(cls) -> bool:
    return hasattr(cls, "resources")


# -- IDX headers ------------------------------------------------------------------------------

def _idx_problems(present: list[Path], side: int) -> list[FileProblem]:
    """The headers' problems, then whether each split's images and labels agree in number."""
    found, counts = [], {}
    for path in present:
        images = "-images-" in path.name
        count, problem = _idx_header(path, IMAGES_MAGIC if images else LABELS_MAGIC, side)
        if problem:
            found.append(FileProblem(path, f"{path.name} {problem}", False))
        else:
            counts[path] = count
    for images in [p for p in counts if "-images-" in p.name]:
        labels = images.with_name(images.name.replace("-images-idx3-", "-labels-idx1-"))
        if labels in counts and counts[labels] != counts[images]:
            found.append(FileProblem(images, f"{images.name} holds {counts[images]:,} images "
                                             f"but {labels.name} {counts[labels]:,} labels",
                                     False))
    return found


_checked: dict[tuple, tuple[int, str | None]] = {}  # (path, size, mtime, ...) → answer
_checked_lock = threading.Lock()


def _state(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


def _idx_header(path: Path, magic: int, side: int) -> tuple[int, str | None]:
    """(the number of items, None) for a whole IDX file, else (0, what is wrong with it)."""
    try:
        key = (str(path), *_state(path), magic, side)
    except OSError as error:
        return 0, f"cannot be read ({error.strerror or type(error).__name__})"
    with _checked_lock:
        if key in _checked:
            return _checked[key]
    answer = _read_idx_header(path, key[1], magic, side)
    with _checked_lock:
        _checked[key] = answer
    return answer


def _read_idx_header(path: Path, size: int, magic: int, side: int) -> tuple[int, str | None]:
    dims = 3 if magic == IMAGES_MAGIC else 1
    kind = "images" if magic == IMAGES_MAGIC else "labels"
    header_size = 4 * (1 + dims)
    if size == 0:
        return 0, "is empty"
    try:
        with open(path, "rb") as file:
            header = file.read(header_size)
    except OSError as error:
        return 0, f"cannot be read ({error.strerror or type(error).__name__})"
    if len(header) >= 4 and struct.unpack(">I", header[:4])[0] != magic:
        found = struct.unpack(">I", header[:4])[0]
        zeros = " (it starts with zeros)" if found == 0 else ""
        return 0, f"is not an IDX file of {kind}: its magic number is {found}, not {magic}" \
                  f"{zeros}"
    if len(header) < header_size:
        return 0, f"is cut short: {size:,} bytes, less than its {header_size}-byte header"
    shape = struct.unpack(f">{dims}I", header[4:])
    if dims == 3 and shape[1:] != (side, side):
        return 0, f"holds {shape[1]}×{shape[2]} images, not {side}×{side}"
    expected = header_size + shape[0] * (side * side if dims == 3 else 1)
    if size < expected:
        return 0, f"is cut short: {size:,} of {expected:,} bytes"
    if size > expected:
        return 0, f"is longer than its header says: {size:,} bytes, not {expected:,}"
    return shape[0], None


# -- CIFAR-10's checksums ---------------------------------------------------------------------

def _checksum_matches(path: Path, md5: str) -> bool:
    from torchvision.datasets.utils import check_integrity

    try:
        key = (str(path), *_state(path), md5)
    except OSError:
        return False
    with _checked_lock:
        if key in _checked:
            return _checked[key][1] is None
    matches = check_integrity(str(path), md5)
    with _checked_lock:
        _checked[key] = (0, None if matches else "damaged")
    return matches
