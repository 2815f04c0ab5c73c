"""Downloads from a real HTTP server: torchvision's mirrors point at ``http.server`` in a thread
on 127.0.0.1, so every byte goes through a socket, ``http.client`` and torchvision's own
download, checksum and unpacking code, as it does for a learner.

The mirror serves small, valid gzipped IDX files (Fashion-MNIST's four) or a small CIFAR-10
archive, and can make one file go wrong: it arrives corrupt (not gzip, or gzip of garbage),
fails torchvision's checksum, is answered with an HTTP error, or is cut off mid-file (the
server promises the whole file and closes the connection early). Each failure ends in one
line saying which file went wrong and what to do, leaves only whole files in the data folder
(those finished before the failure), and the next attempt downloads what is missing and loads.
"""
from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import pickle
import tarfile
import threading
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torchvision

from cnnviz.training.data import is_downloaded, load_dataset
from cnnviz.training.datasets import DATASETS, DataError
from cnnviz.training.idx import random_idx_dataset, raw_folder

FASHION = torchvision.datasets.FashionMNIST
CIFAR = torchvision.datasets.CIFAR10
N_TRAIN, N_TEST = 120, 30
# torchvision's order of Fashion-MNIST's files: "file 1 of 4" … "file 4 of 4".
TRAIN_IMAGES, TRAIN_LABELS, T10K_IMAGES, T10K_LABELS = (
    "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
FILES = [TRAIN_IMAGES, TRAIN_LABELS, T10K_IMAGES, T10K_LABELS]
CUT = 10_000  # bytes a cut-off response sends of the file it promised
RETRY = "Start again to retry, or use the offline Digits data set ('digits')."
# gzip of garbage: the first four bytes, read as the IDX magic number, are b"not " =
# 0x6e 0x6f 0x74 0x20 = ((110 * 256 + 111) * 256 + 116) * 256 + 32 = 1852797984.
GARBAGE = b"not an IDX file " * 64
GARBAGE_MAGIC = 1852797984


# -- the mirror -------------------------------------------------------------------------------

class Mirror(http.server.ThreadingHTTPServer):
    """A mirror on 127.0.0.1 (a free port) serving ``files`` by name; ``faults`` makes one go
    wrong: 404 or 500 (an HTTP error) or "cut" (Content-Length of the whole file, ``CUT``
    bytes sent, then the connection closed). ``requests`` lists the names asked for."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.files: dict[str, bytes] = {}
        self.faults: dict[str, int | str] = {}
        self.requests: list[str] = []
        self.thread = threading.Thread(target=self.serve_forever, args=(0.05,),
                                       name="mirror", daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"

    def handle_error(self, request, client_address) -> None:
        pass  # a client that hung up before the body (torchvision's redirect check does)

    def close(self) -> None:
        self.shutdown()
        self.server_close()
        self.thread.join(10)
        assert not self.thread.is_alive(), "the mirror's thread did not stop within 10 s"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: Mirror

    def do_GET(self) -> None:
        name = self.path.rsplit("/", 1)[-1]
        self.server.requests.append(name)
        fault = self.server.faults.get(name)
        body = self.server.files.get(name)
        if body is None or fault in (404, 500):
            self.send_error(fault if fault in (404, 500) else 404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[:CUT] if fault == "cut" else body)
        self.close_connection = True  # HTTP/1.0: the end of what was sent is the end

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def mirror(monkeypatch):
    server = Mirror()
    # Straight to 127.0.0.1, whatever proxy the environment names (urlopen's opener is global).
    monkeypatch.setattr(urllib.request, "_opener",
                        urllib.request.build_opener(urllib.request.ProxyHandler({})))
    yield server
    server.close()


def listing(root: Path) -> list[str]:
    """Every file (and link) under ``root``, relative to it."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                  if p.is_file() or p.is_symlink())


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


# -- Fashion-MNIST ----------------------------------------------------------------------------

class Fashion:
    """Fashion-MNIST's four files, written as torchvision's layout and gzipped, on the mirror
    with their checksums in torchvision's ``resources``."""

    def __init__(self, mirror: Mirror, monkeypatch, source: Path):
        random_idx_dataset(source, "fashion-mnist", n_train=N_TRAIN, n_test=N_TEST)
        raw = raw_folder(source, "fashion-mnist")
        self.raw = {name: (raw / name.removesuffix(".gz")).read_bytes() for name in FILES}
        self.gz = {name: gzip.compress(data, mtime=0) for name, data in self.raw.items()}
        self.mirror, self.monkeypatch = mirror, monkeypatch
        monkeypatch.setattr(FASHION, "mirrors", [mirror.url])
        self.repair()

    def serve(self, name: str, payload: bytes, checksum: str | None = None) -> None:
        """Serve ``payload`` as ``name``; torchvision's checksum for it: ``checksum``, else
        the payload's own (the mirror's file and its checksum agree, yet the file is bad)."""
        self.mirror.files[name] = payload
        self._resources({name: checksum or md5(payload)})

    def repair(self) -> None:
        """The mirror serves the right files again, each with its checksum; no faults."""
        self.mirror.files = dict(self.gz)
        self.mirror.faults.clear()
        self.mirror.requests.clear()
        self._resources({})

    def _resources(self, checksums: dict[str, str]) -> None:
        self.monkeypatch.setattr(FASHION, "resources", [
            (name, checksums.get(name, md5(self.gz[name]))) for name in FILES])

    def images(self, name: str) -> np.ndarray:
        """An images file's pixels by IDX's layout: a 16-byte header, then N × 28 × 28."""
        return np.frombuffer(self.raw[name], np.uint8, offset=16).reshape(-1, 1, 28, 28)

    def labels(self, name: str) -> np.ndarray:
        """A labels file's labels: an 8-byte header, then one byte each."""
        return np.frombuffer(self.raw[name], np.uint8, offset=8).astype(np.int64)

    def check_loaded(self, root: Path, progress=None) -> None:
        data = load_dataset("fashion-mnist", root, progress=progress)
        assert data.train_images.shape == (N_TRAIN, 1, 28, 28)
        assert data.test_images.shape == (N_TEST, 1, 28, 28)
        assert len(data.train_labels) == N_TRAIN and len(data.test_labels) == N_TEST
        assert np.array_equal(data.train_images.numpy(), self.images(TRAIN_IMAGES))
        assert np.array_equal(data.train_labels.numpy(), self.labels(TRAIN_LABELS))
        assert np.array_equal(data.test_images.numpy(), self.images(T10K_IMAGES))
        assert np.array_equal(data.test_labels.numpy(), self.labels(T10K_LABELS))
        assert is_downloaded("fashion-mnist", root)
        assert listing(root) == folder_of(FILES)


def folder_of(names) -> list[str]:
    """The data folder once the files ``names`` arrived whole: each archive and the IDX file
    torchvision unpacks from it, in ``FashionMNIST/raw``."""
    return sorted(f"FashionMNIST/raw/{name}{suffix}"
                  for name in (n.removesuffix(".gz") for n in names) for suffix in ("", ".gz"))


@pytest.fixture
def fashion(mirror, monkeypatch, tmp_path) -> Fashion:
    served = Fashion(mirror, monkeypatch, tmp_path / "source")
    # Sizes the messages below are written for: the cut file is longer than what is sent.
    assert CUT < len(served.gz[T10K_IMAGES]) < 100_000
    return served


def test_a_download_from_the_mirror_arrives_whole_and_loads(fashion, mirror, tmp_path):
    """A download that goes through: the page hears of each file, both splits load with the
    mirror's pixels and labels, the data set counts as downloaded, and the folder holds
    exactly torchvision's files."""
    root = tmp_path / "data"
    assert not is_downloaded("fashion-mnist", root)
    heard = []
    fashion.check_loaded(root, lambda message, fraction: heard.append((message, fraction)))
    assert set(mirror.requests) == set(FILES)
    fractions = [fraction for _, fraction in heard]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    for n in range(1, 5):
        assert any(f"Downloading Fashion-MNIST… file {n} of 4" in m for m, _ in heard), heard


def _not_gzip(fashion: Fashion) -> None:
    fashion.serve(TRAIN_LABELS, fashion.raw[TRAIN_LABELS])  # the IDX file, uncompressed


def _garbage(name: str):
    def serve(fashion: Fashion) -> None:
        fashion.serve(name, gzip.compress(GARBAGE, mtime=0))
    return serve


def _bytes_flipped(fashion: Fashion) -> None:
    # One pixel changed: still a valid gzip of a valid IDX file, but not torchvision's file.
    data = bytearray(fashion.raw[TRAIN_IMAGES])
    data[16 + 400] ^= 0xFF
    fashion.serve(TRAIN_IMAGES, gzip.compress(bytes(data), mtime=0),
                  checksum=md5(fashion.gz[TRAIN_IMAGES]))


def _fault(name: str, fault):
    def serve(fashion: Fashion) -> None:
        fashion.mirror.faults[name] = fault
    return serve


def _kb(count: int) -> str:
    return f"{round(count / 1000)} KB"


# fault: (how the mirror goes wrong, the message, the files that arrived whole before it)
FAILURES = {
    "not-gzip": (_not_gzip, "Could not download Fashion-MNIST (train-labels-idx1-ubyte.gz "
                            "arrived damaged: it is not a gzip file). " + RETRY,
                 [TRAIN_IMAGES]),
    "garbage-read-by-torchvision": (
        _garbage(TRAIN_IMAGES),
        "Could not download Fashion-MNIST (train-images-idx3-ubyte.gz arrived damaged: it "
        "unpacks to train-images-idx3-ubyte, which is not an IDX file of images: its magic "
        f"number is {GARBAGE_MAGIC}, not 2051). " + RETRY,
        [TRAIN_LABELS, T10K_IMAGES, T10K_LABELS]),
    "garbage-in-a-test-file": (
        _garbage(T10K_IMAGES),
        "Could not download Fashion-MNIST (t10k-images-idx3-ubyte.gz arrived damaged: it "
        "unpacks to t10k-images-idx3-ubyte, which is not an IDX file of images: its magic "
        f"number is {GARBAGE_MAGIC}, not 2051). " + RETRY,
        [TRAIN_IMAGES, TRAIN_LABELS, T10K_LABELS]),
    "checksum": (_bytes_flipped, "Could not download Fashion-MNIST (train-images-idx3-ubyte.gz "
                                 "arrived damaged: its checksum is not torchvision's). " + RETRY,
                 []),
    "404": (_fault(TRAIN_LABELS, 404),
            "Could not download Fashion-MNIST (the server answered 404 Not Found for "
            "train-labels-idx1-ubyte.gz, file 2 of 4). Choose the offline 'digits' data set, "
            "or place the files under {root}.", [TRAIN_IMAGES]),
    "500": (_fault(T10K_LABELS, 500),
            "Could not download Fashion-MNIST (the server answered 500 Internal Server Error "
            "for t10k-labels-idx1-ubyte.gz, file 4 of 4). Choose the offline 'digits' data "
            "set, or place the files under {root}.", [TRAIN_IMAGES, TRAIN_LABELS, T10K_IMAGES]),
    "cut-mid-file": (_fault(T10K_IMAGES, "cut"),
                     "The download of Fashion-MNIST stopped after {cut} of {size} "
                     "(t10k-images-idx3-ubyte.gz, file 3 of 4: the server closed the "
                     "connection before the end of the file). " + RETRY,
                     [TRAIN_IMAGES, TRAIN_LABELS]),
}


@pytest.mark.parametrize("fault", FAILURES)
def test_a_failed_download_says_which_file_keeps_only_whole_files_and_the_next_one_loads(
        fashion, mirror, tmp_path, fault):
    """Each way a download goes wrong: one line naming the file and what to do, nothing
    half-written in the data folder (only the files that arrived whole before), not counted
    as downloaded; then, the mirror repaired, the next attempt fetches only what is missing
    and loads both splits."""
    break_mirror, expected, arrived = FAILURES[fault]
    root = tmp_path / "data"
    break_mirror(fashion)
    with pytest.raises(DataError) as caught:
        load_dataset("fashion-mnist", root)
    assert str(caught.value) == expected.format(
        root=root, cut=_kb(CUT), size=_kb(len(fashion.gz[T10K_IMAGES])))
    assert listing(root) == folder_of(arrived)
    raw = raw_folder(root, "fashion-mnist")
    for name in arrived:  # byte for byte what was served, and its IDX file unpacked
        assert (raw / name).read_bytes() == fashion.gz[name]
        assert (raw / name.removesuffix(".gz")).read_bytes() == fashion.raw[name]
    assert not is_downloaded("fashion-mnist", root)

    fashion.repair()
    fashion.check_loaded(root)
    assert set(mirror.requests) == set(FILES) - set(arrived)


# -- CIFAR-10: one archive of pickled batches -------------------------------------------------

class Cifar:
    """A small CIFAR-10 (5 training batches of 2 images, a test batch of 3) as torchvision's
    archive on the mirror, with every checksum torchvision checks."""

    def __init__(self, mirror: Mirror, monkeypatch):
        rng = np.random.default_rng(0)
        self.batches: dict[str, dict] = {}
        files = {}
        for name, count in [(f"data_batch_{i}", 2) for i in range(1, 6)] + [("test_batch", 3)]:
            batch = {"data": rng.integers(0, 256, size=(count, 3 * 32 * 32), dtype=np.uint8),
                     "labels": rng.integers(0, 10, size=count).tolist()}
            self.batches[name] = batch
            files[name] = pickle.dumps(batch)
        files["batches.meta"] = pickle.dumps({"label_names": list(DATASETS["cifar10"].classes)})
        self.archive = _tar_gz({f"{CIFAR.base_folder}/{n}": data for n, data in files.items()})
        self.mirror = mirror
        mirror.files = {CIFAR.filename: self.archive}
        monkeypatch.setattr(CIFAR, "url", mirror.url + CIFAR.filename)
        monkeypatch.setattr(CIFAR, "tgz_md5", md5(self.archive))
        monkeypatch.setattr(CIFAR, "train_list", [[f"data_batch_{i}", md5(files[f"data_batch_{i}"])]
                                                  for i in range(1, 6)])
        monkeypatch.setattr(CIFAR, "test_list", [["test_batch", md5(files["test_batch"])]])
        monkeypatch.setattr(CIFAR, "meta", {**CIFAR.meta, "md5": md5(files["batches.meta"])})
        self.folder = sorted([CIFAR.filename] + [f"{CIFAR.base_folder}/{n}" for n in files])

    def check_loaded(self, root: Path) -> None:
        data = load_dataset("cifar10", root)
        # torchvision's rows are 3072 bytes, channel by channel: (N, 3, 32, 32) as they lie.
        train = np.concatenate([self.batches[f"data_batch_{i}"]["data"] for i in range(1, 6)])
        assert np.array_equal(data.train_images.numpy(), train.reshape(-1, 3, 32, 32))
        assert data.test_images.shape == (3, 3, 32, 32)
        assert data.test_labels.tolist() == self.batches["test_batch"]["labels"]
        assert is_downloaded("cifar10", root) and listing(root) == self.folder


def _tar_gz(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture
def cifar(mirror, monkeypatch) -> Cifar:
    served = Cifar(mirror, monkeypatch)
    assert CUT < len(served.archive) < 100_000
    return served


def test_cifar10_from_the_mirror_loads(cifar, tmp_path):
    """CIFAR-10's archive downloads, unpacks and loads channels-first, as served."""
    cifar.check_loaded(tmp_path / "data")


CIFAR_FAILURES = {
    "cut-mid-file": ("cut", "The download of CIFAR-10 stopped after {cut} of {size} "
                            "(cifar-10-python.tar.gz: the server closed the connection before "
                            "the end of the file). " + RETRY),
    "garbage": (gzip.compress(GARBAGE, mtime=0),
                        "Could not download CIFAR-10 (cifar-10-python.tar.gz arrived damaged: "
                        "it is not a tar archive). " + RETRY),
    "404": (404, "Could not download CIFAR-10 (the server answered 404 Not Found for "
                 "cifar-10-python.tar.gz). Choose the offline 'digits' data set, or place the "
                 "files under {root}."),
}


@pytest.mark.parametrize("fault", CIFAR_FAILURES)
def test_a_failed_cifar10_download_leaves_nothing_and_the_next_one_loads(cifar, monkeypatch,
                                                                         tmp_path, fault):
    """CIFAR-10's archive cut off, arriving as gzip of garbage (its checksum agreeing), or
    answered 404: one line, an empty data folder, and the next attempt loads."""
    how, expected = CIFAR_FAILURES[fault]
    root = tmp_path / "data"
    if isinstance(how, bytes):
        cifar.mirror.files[CIFAR.filename] = how
        monkeypatch.setattr(CIFAR, "tgz_md5", md5(how))
    else:
        cifar.mirror.faults[CIFAR.filename] = how
    with pytest.raises(DataError) as caught:
        load_dataset("cifar10", root)
    assert str(caught.value) == expected.format(root=root, cut=_kb(CUT),
                                                size=_kb(len(cifar.archive)))
    assert listing(root) == [] and not is_downloaded("cifar10", root)

    cifar.mirror.faults.clear()
    cifar.mirror.files[CIFAR.filename] = cifar.archive
    monkeypatch.setattr(CIFAR, "tgz_md5", md5(cifar.archive))
    cifar.check_loaded(root)


def test_a_download_interrupted_mid_file_leaves_only_whole_files(fashion, tmp_path):
    """A KeyboardInterrupt (or SystemExit) while a file arrives passes through unchanged,
    and the half-written file goes: only the whole first file stays."""
    root = tmp_path / "data"

    def interrupt_in_the_second_file(message, fraction):
        if "file 2 of 4" in message:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        load_dataset("fashion-mnist", root, download=True, progress=interrupt_in_the_second_file)
    assert listing(root) == folder_of([TRAIN_IMAGES])
