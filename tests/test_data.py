"""Data sets: facts, the offline digits, IDX files read by torchvision, downloads, errors.

Nothing here touches the network: downloads go through a patched ``urllib.request.urlopen``
that either fails or serves files from memory.
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import io
import pickle
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch
import torchvision
from torchvision.datasets import utils as tv_utils

from cnnviz.errors import CnnvizError
from cnnviz.training.data import (Dataset, clear_cache, default_root, is_downloaded,
                                  load_dataset)
from cnnviz.training.datasets import DATASETS, DataError, dataset_info
from cnnviz.training.idx import random_idx_dataset, raw_folder, write_idx_dataset

TORCHVISION = {"fashion-mnist": torchvision.datasets.FashionMNIST,
               "mnist": torchvision.datasets.MNIST}


def _random_split(rng, n):
    return (rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8),
            rng.integers(0, 10, size=n).astype(np.uint8))


def _write_random(root, name="fashion-mnist", n_train=40, n_test=15, seed=0):
    rng = np.random.default_rng(seed)
    splits = (*_random_split(rng, n_train), *_random_split(rng, n_test))
    write_idx_dataset(root, name, *splits)
    return splits


class _Recorder:
    def __init__(self):
        self.calls: list[tuple[str, float]] = []

    def __call__(self, message, fraction):
        self.calls.append((message, fraction))


# -- facts ------------------------------------------------------------------------------------

def test_dataset_facts():
    assert list(DATASETS) == ["fashion-mnist", "mnist", "cifar10", "digits"]
    assert all(name == info.name for name, info in DATASETS.items())
    fashion = DATASETS["fashion-mnist"]
    assert (fashion.title, fashion.channels, fashion.size) == ("Fashion-MNIST", 1, 28)
    assert fashion.classes == tuple(torchvision.datasets.FashionMNIST.classes)
    assert (DATASETS["mnist"].channels, DATASETS["mnist"].size) == (1, 28)
    assert (DATASETS["cifar10"].channels, DATASETS["cifar10"].size) == (3, 32)
    assert DATASETS["cifar10"].classes[:2] == ("airplane", "automobile")
    assert (DATASETS["digits"].channels, DATASETS["digits"].size) == (1, 8)
    assert DATASETS["digits"].classes == tuple("0123456789")
    assert [info.offline for info in DATASETS.values()] == [False, False, False, True]
    assert all(len(info.classes) == info.num_classes == 10 for info in DATASETS.values())
    assert issubclass(DataError, CnnvizError)


def test_split_and_download_sizes_are_registry_facts():
    sizes = {name: (info.train_size, info.test_size, info.download_mb)
             for name, info in DATASETS.items()}
    assert sizes == {"fashion-mnist": (60_000, 10_000, 30), "mnist": (60_000, 10_000, 12),
                     "cifar10": (50_000, 10_000, 170), "digits": (1_437, 360, None)}
    assert all((info.download_mb is None) == info.offline for info in DATASETS.values())
    fashion = dataset_info("fashion-mnist")
    assert fashion is DATASETS["fashion-mnist"]
    assert fashion.split_sizes() == (60_000, 10_000)
    assert fashion.split_sizes(20_000) == (20_000, 10_000)
    assert fashion.split_sizes(500) == (500, 500)
    with pytest.raises(DataError, match="Unknown data set 'imagenet'; choose one of"):
        dataset_info("imagenet")


@pytest.mark.parametrize("limit", [None, 5, 400, 5000])
def test_split_sizes_are_what_a_load_gives(limit):
    data = load_dataset("digits", limit=limit)
    assert DATASETS["digits"].split_sizes(limit) == (len(data.train_labels),
                                                    len(data.test_labels))


def test_no_other_module_repeats_the_registrys_sizes():
    """Split and download sizes live in the registry only (cnnviz/training/datasets.py)."""
    import re
    from pathlib import Path

    package = Path(__file__).resolve().parents[1] / "cnnviz"
    sizes = re.compile(r"\b(60_?000|50_?000|1_?437|DOWNLOAD_MB|SPLIT_SIZES)\b")
    repeated = [f"{path.relative_to(package)}:{number}"
                for path in package.rglob("*.py") if path.name != "datasets.py"
                for number, line in enumerate(path.read_text().splitlines(), 1)
                if sizes.search(line)]
    assert repeated == []


def test_default_root(monkeypatch, tmp_path):
    monkeypatch.setenv("CNNVIZ_DATA", str(tmp_path / "data"))
    assert default_root() == tmp_path / "data"
    monkeypatch.delenv("CNNVIZ_DATA")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_root() == tmp_path / ".cache" / "cnnviz" / "data"


# -- digits (offline, real) -------------------------------------------------------------------

def test_digits_load_offline_with_a_stratified_split():
    from sklearn.datasets import load_digits

    progress = _Recorder()
    data = load_dataset("digits", progress=progress)
    assert isinstance(data, Dataset) and data.info is DATASETS["digits"]
    assert data.train_images.shape == (1437, 1, 8, 8)
    assert data.test_images.shape == (360, 1, 8, 8)
    for images, labels in ((data.train_images, data.train_labels),
                           (data.test_images, data.test_labels)):
        assert images.dtype == torch.uint8 and labels.dtype == torch.int64
        assert images.is_contiguous() and labels.is_contiguous()
        assert images.device.type == "cpu"
    assert int(data.train_images.min()) == 0 and int(data.train_images.max()) == 255
    assert progress.calls[0][1] == 0.0 and progress.calls[-1][1] == 1.0

    # The two splits together are exactly sklearn's images scaled by round(v * 255 / 16).
    bunch = load_digits()
    scaled = np.round(bunch.images * 255 / 16).astype(np.uint8)
    expected = sorted(img.tobytes() + bytes([label]) for img, label in zip(scaled, bunch.target))
    images = torch.cat([data.train_images, data.test_images])[:, 0].numpy()
    labels = torch.cat([data.train_labels, data.test_labels]).numpy()
    assert sorted(img.tobytes() + bytes([label]) for img, label in zip(images, labels)) == expected

    # Stratified: every class's share of the test split matches its share of the whole set.
    whole = np.bincount(bunch.target, minlength=10)
    test = np.bincount(data.test_labels.numpy(), minlength=10)
    assert np.all(np.abs(test - whole * 360 / len(bunch.target)) <= 1)

    # Deterministic: reading it afresh gives the same split.
    clear_cache("digits")
    again = load_dataset("digits")
    assert again is not data
    assert torch.equal(again.train_images, data.train_images)
    assert torch.equal(again.test_labels, data.test_labels)


# -- IDX files read by torchvision ------------------------------------------------------------

@pytest.mark.parametrize("name", ["fashion-mnist", "mnist"])
def test_idx_round_trip(tmp_path, name):
    assert not is_downloaded(name, tmp_path)
    train_images, train_labels, test_images, test_labels = _write_random(tmp_path, name)
    assert is_downloaded(name, tmp_path)
    assert (raw_folder(tmp_path, name) / "train-images-idx3-ubyte").is_file()

    data = load_dataset(name, root=tmp_path, download=False)
    assert data.train_images.shape == (40, 1, 28, 28) and data.test_images.shape == (15, 1, 28, 28)
    assert data.train_images.dtype == torch.uint8 and data.train_labels.dtype == torch.int64
    assert data.train_images.is_contiguous() and data.test_images.is_contiguous()
    assert np.array_equal(data.train_images[:, 0].numpy(), train_images)
    assert np.array_equal(data.train_labels.numpy(), train_labels)
    assert np.array_equal(data.test_images[:, 0].numpy(), test_images)
    assert np.array_equal(data.test_labels.numpy(), test_labels)

    for train, images, labels in ((True, train_images, train_labels),
                                  (False, test_images, test_labels)):
        plain = TORCHVISION[name](tmp_path, train=train, download=False)
        assert np.array_equal(plain.data.numpy(), images)
        assert np.array_equal(plain.targets.numpy(), labels)


def test_write_idx_accepts_torch_and_a_channel_axis(tmp_path):
    images = torch.randint(0, 256, (6, 1, 28, 28), dtype=torch.uint8)
    labels = torch.arange(6)
    write_idx_dataset(tmp_path, "mnist", images, labels, images[:2], labels[:2])
    data = load_dataset("mnist", tmp_path, download=False)
    assert torch.equal(data.train_images, images) and torch.equal(data.train_labels, labels)
    with pytest.raises(ValueError):
        write_idx_dataset(tmp_path, "mnist", images[:, :, :27], labels, images, labels)
    with pytest.raises(ValueError):
        write_idx_dataset(tmp_path, "mnist", images, labels + 5, images, labels)
    with pytest.raises(ValueError):
        write_idx_dataset(tmp_path, "cifar10", images, labels, images, labels)


def test_rewriting_files_is_seen_by_the_next_load(tmp_path):
    _write_random(tmp_path, seed=1)
    first = load_dataset("fashion-mnist", tmp_path, download=False)
    _write_random(tmp_path, seed=2)
    second = load_dataset("fashion-mnist", tmp_path, download=False)
    assert not torch.equal(first.train_images, second.train_images)


def test_random_idx_dataset_is_balanced_deterministic_and_learnable(tmp_path):
    random_idx_dataset(tmp_path / "a", seed=3)
    random_idx_dataset(tmp_path / "b", seed=3)
    random_idx_dataset(tmp_path / "c", "mnist", n_train=50, n_test=20, seed=4)
    a = load_dataset("fashion-mnist", tmp_path / "a", download=False)
    b = load_dataset("fashion-mnist", tmp_path / "b", download=False)
    c = load_dataset("mnist", tmp_path / "c", download=False)
    assert a.train_images.shape == (600, 1, 28, 28) and a.test_images.shape == (100, 1, 28, 28)
    assert c.train_images.shape == (50, 1, 28, 28) and c.test_images.shape == (20, 1, 28, 28)
    assert torch.equal(a.train_images, b.train_images)
    assert torch.equal(a.test_labels, b.test_labels)
    assert torch.bincount(a.train_labels).tolist() == [60] * 10
    assert torch.bincount(a.test_labels).tolist() == [10] * 10
    # Learnable: even a nearest-class-mean classifier gets most test images right.
    x = a.train_images.flatten(1).float()
    means = torch.stack([x[a.train_labels == k].mean(0) for k in range(10)])
    guess = torch.cdist(a.test_images.flatten(1).float(), means).argmin(1)
    assert (guess == a.test_labels).float().mean() > 0.8


# -- loading: cache, limit, errors ------------------------------------------------------------

def test_second_load_comes_from_memory(tmp_path, monkeypatch):
    _write_random(tmp_path)
    first = load_dataset("fashion-mnist", tmp_path, download=False)

    def no_reading(*args, **kwargs):
        raise AssertionError("read the files again")

    monkeypatch.setattr(torchvision.datasets.FashionMNIST, "__init__", no_reading)
    progress = _Recorder()
    assert load_dataset("fashion-mnist", tmp_path, download=False, progress=progress) is first
    assert progress.calls[0][1] == 0.0 and progress.calls[-1][1] == 1.0
    monkeypatch.undo()
    clear_cache("fashion-mnist", tmp_path)
    assert load_dataset("fashion-mnist", tmp_path, download=False) is not first


def test_limit_keeps_the_first_examples(tmp_path):
    _write_random(tmp_path, n_train=40, n_test=15)
    full = load_dataset("fashion-mnist", tmp_path, download=False)
    few = load_dataset("fashion-mnist", tmp_path, download=False, limit=10)
    assert len(few.train_labels) == 10 and len(few.test_labels) == 10
    assert torch.equal(few.train_images, full.train_images[:10])
    assert torch.equal(few.test_labels, full.test_labels[:10])
    assert few.train_images.is_contiguous()
    assert load_dataset("fashion-mnist", tmp_path, download=False, limit=10) is few
    more = load_dataset("fashion-mnist", tmp_path, download=False, limit=1000)
    assert len(more.train_labels) == 40 and len(more.test_labels) == 15
    assert len(load_dataset("digits", limit=5).test_images) == 5
    with pytest.raises(DataError, match="limit"):
        load_dataset("digits", limit=0)


def test_unknown_name_lists_the_choices(tmp_path):
    with pytest.raises(DataError, match="fashion-mnist, mnist, cifar10, digits"):
        load_dataset("imagenet", tmp_path)
    with pytest.raises(DataError, match="Unknown data set 'imagenet'"):
        is_downloaded("imagenet", tmp_path)


@pytest.mark.parametrize("name", ["fashion-mnist", "mnist", "cifar10"])
def test_missing_files_without_download(tmp_path, name):
    assert not is_downloaded(name, tmp_path)
    with pytest.raises(DataError) as caught:
        load_dataset(name, tmp_path, download=False)
    message = str(caught.value)
    assert f"{DATASETS[name].title} is not downloaded yet" in message
    assert str(tmp_path) in message and "'digits'" in message and "\n" not in message


def test_digits_are_always_there(tmp_path):
    assert is_downloaded("digits", tmp_path)


@pytest.mark.parametrize("name", ["fashion-mnist", "mnist", "cifar10"])
def test_failed_download_gives_one_clear_line(tmp_path, monkeypatch, name):
    def offline(request, *args, **kwargs):
        raise urllib.error.URLError(OSError(-3, "Temporary failure in name resolution"))

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    progress = _Recorder()
    real_tqdm = tv_utils.tqdm
    with pytest.raises(DataError) as caught:
        load_dataset(name, tmp_path / "cache", progress=progress)
    message = str(caught.value)
    title = DATASETS[name].title
    assert message.startswith(f"Could not download {title} (no network connection: "
                              f"Temporary failure in name resolution). ")
    assert "offline 'digits' data set" in message and str(tmp_path / "cache") in message
    assert "\n" not in message
    assert isinstance(caught.value.__cause__, (urllib.error.URLError, RuntimeError))
    assert progress.calls == [(f"Downloading {title}…", 0.0)]
    assert tv_utils.tqdm is real_tqdm  # the progress hook is taken out again
    assert not is_downloaded(name, tmp_path / "cache")


def test_corrupt_files_give_one_clear_line(tmp_path):
    _write_random(tmp_path)
    images = raw_folder(tmp_path, "fashion-mnist") / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:1000])
    with pytest.raises(DataError) as caught:
        load_dataset("fashion-mnist", tmp_path, download=False)
    message = str(caught.value)
    assert message.startswith(f"Could not read Fashion-MNIST from {images.parent} (")
    assert "Delete that folder" in message and "\n" not in message


# -- a download that works, served from memory ------------------------------------------------

class _Response(io.BytesIO):
    def __init__(self, url, payload):
        super().__init__(payload)
        self.url = url
        self.length = len(payload)


def test_download_reports_progress_and_lands_in_torchvision_layout(tmp_path, monkeypatch):
    source = tmp_path / "source"
    train_images, train_labels, test_images, test_labels = _write_random(source, n_train=300)
    files = {}
    for path in sorted(raw_folder(source, "fashion-mnist").iterdir()):
        files[path.name + ".gz"] = gzip.compress(path.read_bytes())
    resources = [(name, hashlib.md5(data).hexdigest()) for name, data in files.items()]
    monkeypatch.setattr(torchvision.datasets.FashionMNIST, "mirrors", ["http://mirror.test/"])
    monkeypatch.setattr(torchvision.datasets.FashionMNIST, "resources", resources)
    served = []

    def serve(request, *args, **kwargs):
        url = request.full_url
        served.append(url)
        return _Response(url, files[url.rsplit("/", 1)[1]])

    monkeypatch.setattr(urllib.request, "urlopen", serve)
    # Small chunks, so one file reports several times on its way down.
    monkeypatch.setattr(tv_utils, "_urlretrieve",
                        functools.partial(tv_utils._urlretrieve, chunk_size=4096))
    real_tqdm = tv_utils.tqdm
    progress = _Recorder()
    root = tmp_path / "cache"
    data = load_dataset("fashion-mnist", root, progress=progress)

    assert is_downloaded("fashion-mnist", root)
    assert np.array_equal(data.train_images[:, 0].numpy(), train_images)
    assert np.array_equal(data.test_labels.numpy(), test_labels)
    assert tv_utils.tqdm is real_tqdm
    messages = [message for message, _ in progress.calls]
    fractions = [fraction for _, fraction in progress.calls]
    assert messages[0] == "Downloading Fashion-MNIST…" and fractions[0] == 0.0
    assert fractions[-1] == 1.0 and fractions == sorted(fractions)
    during = [(m, f) for m, f in progress.calls if "MB" in m]
    assert len(during) > 4 and all(0.0 < f <= 0.9 for _, f in during)
    assert any("file 4 of 4" in m for m, _ in during)
    assert "Loading Fashion-MNIST…" in messages

    # Downloaded once: another process (a fresh cache) reads the files, fetching nothing.
    served.clear()
    clear_cache()
    assert torch.equal(load_dataset("fashion-mnist", root).train_labels, data.train_labels)
    assert served == []


def test_a_failing_progress_callback_is_not_reported_as_a_download_failure(tmp_path, monkeypatch):
    payload = gzip.compress(b"\0" * 100)
    monkeypatch.setattr(torchvision.datasets.FashionMNIST, "mirrors", ["http://mirror.test/"])
    monkeypatch.setattr(urllib.request, "urlopen",
                        lambda request, *a, **k: _Response(request.full_url, payload))

    def cancel(message, fraction):
        if "MB" in message:
            raise KeyError("stop")

    with pytest.raises(KeyError, match="stop"):
        load_dataset("fashion-mnist", tmp_path, progress=cancel)


# -- CIFAR-10, written in torchvision's pickle layout -----------------------------------------

def test_cifar10_is_converted_to_channels_first(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    batches = {}
    for name, count in [(f"data_batch_{i}", 4) for i in range(1, 6)] + [("test_batch", 3)]:
        rows = rng.integers(0, 256, size=(count, 3 * 32 * 32), dtype=np.uint8)
        labels = rng.integers(0, 10, size=count).tolist()
        (folder / name).write_bytes(pickle.dumps({"data": rows, "labels": labels}))
        batches[name] = (rows, labels)
    (folder / "batches.meta").write_bytes(
        pickle.dumps({"label_names": list(DATASETS["cifar10"].classes)}))
    md5 = {path.name: tv_utils.calculate_md5(path) for path in folder.iterdir()}
    cifar = torchvision.datasets.CIFAR10
    monkeypatch.setattr(cifar, "train_list", [[f"data_batch_{i}", md5[f"data_batch_{i}"]]
                                              for i in range(1, 6)])
    monkeypatch.setattr(cifar, "test_list", [["test_batch", md5["test_batch"]]])
    monkeypatch.setattr(cifar, "meta", {**cifar.meta, "md5": md5["batches.meta"]})

    assert is_downloaded("cifar10", tmp_path)
    data = load_dataset("cifar10", tmp_path, download=False)
    assert data.train_images.shape == (20, 3, 32, 32) and data.test_images.shape == (3, 3, 32, 32)
    assert data.train_images.dtype == torch.uint8 and data.train_images.is_contiguous()
    assert data.test_labels.dtype == torch.int64
    rows, labels = batches["test_batch"]
    assert np.array_equal(data.test_images.numpy(), rows.reshape(3, 3, 32, 32))
    assert data.test_labels.tolist() == labels
    assert np.array_equal(data.train_images[:4].numpy(),
                          batches["data_batch_1"][0].reshape(4, 3, 32, 32))
