"""Fashion-MNIST and MNIST files in torchvision's raw IDX layout, written from arrays.

No data set can be downloaded where tests and benchmarks run, so they write IDX files where
torchvision looks for them (``root/FashionMNIST/raw/train-images-idx3-ubyte`` and so on) and
load them with ``download=False``: the same code path, and the same files, as the real data.

IDX: a big-endian header — magic number (0x0803 = 2051 for 3-d unsigned-byte images,
0x0801 = 2049 for 1-d unsigned-byte labels), then each dimension as a 32-bit count — followed by
the bytes in row-major order.
"""
from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import torch

from cnnviz.training.data import clear_cache
from cnnviz.training.datasets import DATASETS
from cnnviz.training.files import IMAGES_MAGIC, LABELS_MAGIC

SIDE = 28

_FOLDERS = {"fashion-mnist": "FashionMNIST", "mnist": "MNIST"}


def raw_folder(root: Path | str, name: str) -> Path:
    """Where torchvision reads data set ``name``'s IDX files: ``root/<Class>/raw``."""
    try:
        return Path(root) / _FOLDERS[name] / "raw"
    except KeyError:
        raise ValueError(f"IDX files exist only for {', '.join(_FOLDERS)}, not {name!r}") from None


def write_idx_dataset(root: Path | str, name: str, train_images, train_labels,
                      test_images, test_labels) -> None:
    """Write both splits as torchvision's ``MNIST``/``FashionMNIST`` expects them.

    Images: uint8-valued (N, 28, 28) or (N, 1, 28, 28), numpy or torch; labels: 0..9, (N,).
    A data set already loaded from ``root`` is forgotten, so the next load reads these files.
    """
    folder = raw_folder(root, name)
    classes = DATASETS[name].num_classes
    folder.mkdir(parents=True, exist_ok=True)
    for split, images, labels in (("train", train_images, train_labels),
                                  ("t10k", test_images, test_labels)):
        pixels = _images(images, f"{split} images")
        targets = _labels(labels, len(pixels), classes, f"{split} labels")
        _write(folder / f"{split}-images-idx3-ubyte", IMAGES_MAGIC, pixels)
        _write(folder / f"{split}-labels-idx1-ubyte", LABELS_MAGIC, targets)
    clear_cache(name, root)


def random_idx_dataset(root: Path | str, name: str = "fashion-mnist", n_train: int = 600,
                       n_test: int = 100, seed: int = 0) -> None:
    """Write a synthetic but learnable data set: each class is its own blurred blob pattern,
    shown shifted by up to three pixels, at a random brightness, under uniform noise.

    Classes are balanced (label ``i % 10`` in shuffled order); the same seed gives the same files.
    """
    rng = np.random.default_rng(seed)
    templates = _class_templates(rng, DATASETS[name].num_classes)
    write_idx_dataset(root, name, *_samples(rng, templates, n_train),
                      *_samples(rng, templates, n_test))


# -- writing ----------------------------------------------------------------------------------

def _write(path: Path, magic: int, array: np.ndarray) -> None:
    header = struct.pack(f">{1 + array.ndim}I", magic, *array.shape)
    partial = path.with_name(path.name + ".part")
    partial.write_bytes(header + array.tobytes())
    os.replace(partial, path)  # a reader never sees half a file


def _as_numpy(values) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().numpy()
    return np.asarray(values)


def _images(values, what: str) -> np.ndarray:
    array = _as_numpy(values)
    if array.ndim == 4 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 3 or array.shape[1:] != (SIDE, SIDE):
        raise ValueError(f"{what} must be (N, {SIDE}, {SIDE}), got {array.shape}")
    return np.ascontiguousarray(_to_uint8(array, what))


def _labels(values, count: int, classes: int, what: str) -> np.ndarray:
    array = _as_numpy(values)
    if array.ndim != 1 or len(array) != count:
        raise ValueError(f"{what} must be ({count},), got {array.shape}")
    array = _to_uint8(array, what)
    if count and array.max() >= classes:
        raise ValueError(f"{what} must lie in 0..{classes - 1}")
    return np.ascontiguousarray(array)


def _to_uint8(array: np.ndarray, what: str) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    if array.size and (not np.array_equal(array, np.round(array))
                       or array.min() < 0 or array.max() > 255):
        raise ValueError(f"{what} must be whole numbers in 0..255")
    return array.astype(np.uint8)


# -- synthetic patterns -----------------------------------------------------------------------

_SHIFT = 3  # pixels each way
_NOISE = 0.35  # share of each pixel that is uniform noise


def _class_templates(rng: np.random.Generator, classes: int) -> np.ndarray:
    """One smooth pattern per class, on a canvas padded by the largest shift, values 0..1."""
    side = SIDE + 2 * _SHIFT
    offsets = np.arange(side)
    distance = np.minimum(offsets, side - offsets)
    row = np.exp(-0.5 * (distance / 2.0) ** 2)
    # Circular Gaussian blur (sigma 2 px) as two matrix products: blur = K @ noise @ K.T
    blur = np.stack([np.roll(row, shift) for shift in range(side)])
    blur /= blur.sum(axis=1, keepdims=True)
    smooth = blur @ rng.standard_normal((classes, side, side)) @ blur.T
    low = smooth.min(axis=(1, 2), keepdims=True)
    high = smooth.max(axis=(1, 2), keepdims=True)
    scaled = (smooth - low) / (high - low)
    # Stretch the contrast so each class reads as bright blobs on a dark background.
    return np.clip((scaled - 0.45) * 2.5, 0.0, 1.0).astype(np.float32)


def _samples(rng: np.random.Generator, templates: np.ndarray,
             count: int) -> tuple[np.ndarray, np.ndarray]:
    classes = len(templates)
    labels = rng.permutation(np.arange(count) % classes).astype(np.uint8)
    images = np.empty((count, SIDE, SIDE), np.uint8)
    steps = np.arange(SIDE)
    for start in range(0, count, 8192):  # bounded memory for full-size (60,000) sets
        chunk = labels[start:start + 8192]
        n = len(chunk)
        top, left = rng.integers(0, 2 * _SHIFT + 1, size=(2, n))
        rows = (top[:, None] + steps)[:, :, None]
        cols = (left[:, None] + steps)[:, None, :]
        pattern = templates[chunk[:, None, None], rows, cols]
        brightness = rng.uniform(0.6, 1.0, size=(n, 1, 1)).astype(np.float32)
        noise = rng.random((n, SIDE, SIDE), dtype=np.float32)
        pixels = 255.0 * ((1 - _NOISE) * brightness * pattern + _NOISE * noise)
        images[start:start + n] = np.clip(np.rint(pixels), 0, 255).astype(np.uint8)
    return images, labels
