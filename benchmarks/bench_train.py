"""Training speed: the book's pipeline against cnnviz's engine, side by side in one process.

For each case the same network (``cnnviz.models.build(spec)``, same seed), the same data (IDX
files written by ``random_idx_dataset`` in torchvision's Fashion-MNIST layout), the same batch
size and the same optimizer (plain SGD at the book's learning rate) are trained through

(a) *book*: a faithful re-implementation of d2l's pipeline — ``torchvision.datasets.FashionMNIST``
    with ``transforms.Compose([Resize(size), ToTensor()])`` (``Resize`` only when the size is not
    28, as ``load_data_fashion_mnist`` does), ``DataLoader(num_workers=4)`` shuffled for train and
    not for test, and ``train_ch6``: Xavier init, ``net.train()``, per batch forward,
    cross-entropy, backward, step and a host sync (``metric.add(l * X.shape[0],
    accuracy(y_hat, y), X.shape[0])``), test accuracy each epoch with ``evaluate_accuracy_gpu``;
(b) *engine*: ``cnnviz.training.engine.TrainingRun`` with ``TrainConfig(dataset="fashion-mnist",
    data_root=<the same files>, ...)``.

Both run one warm-up epoch and then ``--epochs`` timed epochs; the timed wall time counts whole
epochs — data loading, training and the test evaluation. examples/s = training examples of the
timed epochs / that wall time. The engine's epoch ends are read from its metric points (the
end-of-epoch point is recorded after the test evaluation).

On the CPU (default) the cases are ``lenet-bn`` at 28 (target ≥ 2×) and a small ResNet at 64
(``ResNetSpec(stages=((1, 32), (1, 64)), stem_channels=32, input_size=64)``, target ≥ 1.5×); also
measured: seconds from ``TrainingRun.start()`` to the first metric point for ``lenet-bn`` on the
full 60,000-image synthetic set (target ≤ 3 s), and time-to-accuracy (≥ 95 % test accuracy) of
``lenet-bn`` on scikit-learn's bundled digits (real data) for a few settings.

With ``--device cuda`` the case is ``alexnet`` at 224 (target ≥ 5×), with the engine's MFU
against ``--peak-tflops`` (the card's dense bf16 peak; training FLOPs per example = 3 × 2 ×
forward mult-adds from ``summarize(spec).mult_adds``, evaluation 2 × mult-adds per test example).
Timings are printed, never asserted. Run from the repository root:

    .venv/bin/python benchmarks/bench_train.py                 # CPU: 2 to 4 minutes on 2 cores
    .venv/bin/python benchmarks/bench_train.py --repeats 2     # interleaved repeats, best kept
    .venv/bin/python benchmarks/bench_train.py --device cuda --peak-tflops 989
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import shlex
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils import data as tud

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # repo root

import torchvision  # noqa: E402
from torchvision import transforms  # noqa: E402

from machine import cpu_model  # noqa: E402  (benchmarks/machine.py)
from cnnviz.models import build  # noqa: E402
from cnnviz.presets import PRESETS  # noqa: E402
from cnnviz.shapes.summary import summarize  # noqa: E402
from cnnviz.specs import ResNetSpec  # noqa: E402
from cnnviz.training.config import TrainConfig, book_batch_size, book_lr  # noqa: E402
from cnnviz.training.data import clear_cache  # noqa: E402
from cnnviz.training.engine import TrainingRun  # noqa: E402
from cnnviz.training.idx import random_idx_dataset  # noqa: E402

BOOK_WORKERS = 4  # d2l.get_dataloader_workers()
# The book asks for 4 workers whatever the machine; PyTorch warns about it on 2 cores.
warnings.filterwarnings("ignore", message="This DataLoader will create")
FIRST_POINT_S = 3.0
TTA_TARGET = 0.95


# -- (a) the book's pipeline, as d2l writes it ------------------------------------------------

def load_data_fashion_mnist(root: str, batch_size: int, resize: int | None):
    """d2l.load_data_fashion_mnist, reading the local files (``download=False``)."""
    trans = [transforms.ToTensor()]
    if resize:
        trans.insert(0, transforms.Resize(resize))
    trans = transforms.Compose(trans)
    mnist_train = torchvision.datasets.FashionMNIST(root=root, train=True, transform=trans,
                                                    download=False)
    mnist_test = torchvision.datasets.FashionMNIST(root=root, train=False, transform=trans,
                                                   download=False)
    return (tud.DataLoader(mnist_train, batch_size, shuffle=True, num_workers=BOOK_WORKERS),
            tud.DataLoader(mnist_test, batch_size, shuffle=False, num_workers=BOOK_WORKERS))


class Accumulator:
    """d2l.Accumulator: sums kept as Python floats (``float(b)`` syncs with the device)."""

    def __init__(self, n: int):
        self.data = [0.0] * n

    def add(self, *args) -> None:
        self.data = [a + float(b) for a, b in zip(self.data, args)]

    def __getitem__(self, idx: int) -> float:
        return self.data[idx]


def accuracy(y_hat: torch.Tensor, y: torch.Tensor) -> float:
    """d2l.accuracy: the number of correct predictions."""
    if len(y_hat.shape) > 1 and y_hat.shape[1] > 1:
        y_hat = y_hat.argmax(axis=1)
    cmp = y_hat.type(y.dtype) == y
    return float(cmp.type(y.dtype).sum())


def evaluate_accuracy_gpu(net: nn.Module, data_iter, device=None) -> float:
    """d2l.evaluate_accuracy_gpu."""
    if isinstance(net, nn.Module):
        net.eval()
        if not device:
            device = next(iter(net.parameters())).device
    metric = Accumulator(2)
    with torch.no_grad():
        for X, y in data_iter:
            X = X.to(device)
            y = y.to(device)
            metric.add(accuracy(net(X), y), y.numel())
    return metric[0] / metric[1]


def train_ch6(net: nn.Module, train_iter, test_iter, num_epochs: int, lr: float,
              device: torch.device) -> tuple[list[float], float]:
    """d2l.train_ch6 without the animator; returns each epoch's wall time (training and the
    test evaluation, data loading included) and the last test accuracy."""
    def init_weights(m):
        if type(m) == nn.Linear or type(m) == nn.Conv2d:  # noqa: E721 - as the book writes it
            nn.init.xavier_uniform_(m.weight)
    net.apply(init_weights)
    net.to(device)
    optimizer = torch.optim.SGD(net.parameters(), lr=lr)
    loss = nn.CrossEntropyLoss()
    epoch_seconds, test_acc = [], 0.0
    for _epoch in range(num_epochs):
        start = time.perf_counter()
        metric = Accumulator(3)
        net.train()
        for X, y in train_iter:
            optimizer.zero_grad()
            X, y = X.to(device), y.to(device)
            y_hat = net(X)
            l = loss(y_hat, y)  # noqa: E741 - the book's name
            l.backward()
            optimizer.step()
            with torch.no_grad():
                metric.add(l * X.shape[0], accuracy(y_hat, y), X.shape[0])
            train_l = metric[0] / metric[2]  # noqa: F841 - the book computes these per batch
            train_acc = metric[1] / metric[2]  # noqa: F841
        test_acc = evaluate_accuracy_gpu(net, test_iter)
        epoch_seconds.append(time.perf_counter() - start)
    return epoch_seconds, test_acc


# -- the measurements -------------------------------------------------------------------------

@dataclass
class Case:
    name: str
    spec: object
    size: int
    target: float
    n_train: int
    n_test: int


@dataclass
class Speed:
    examples_per_s: float
    timed_s: float
    warmup_s: float
    test_acc: float
    engine_train_eps: float | None = None  # the engine's own mid-epoch examples/s (median)


def book_speed(case: Case, root: str, n_train: int, epochs: int, device: torch.device) -> Speed:
    spec = case.spec
    train_iter, test_iter = load_data_fashion_mnist(
        root, book_batch_size(spec), case.size if case.size != 28 else None)
    torch.manual_seed(0)
    net = build(spec)
    seconds, test_acc = train_ch6(net, train_iter, test_iter, 1 + epochs, book_lr(spec), device)
    timed = sum(seconds[1:])
    return Speed(n_train * epochs / timed, timed, seconds[0], test_acc)


def engine_speed(case: Case, root: str, n_train: int, epochs: int, device: str) -> Speed:
    spec = case.spec
    cfg = TrainConfig(dataset="fashion-mnist", data_root=root, epochs=1 + epochs,
                      batch_size=book_batch_size(spec), lr=book_lr(spec), size=case.size,
                      device=device, recipe="book", seed=0)
    run = TrainingRun(spec, cfg).start()
    run.join()
    if run.state != "finished":
        raise SystemExit(f"bench_train.py: the engine run of {case.name} ended "
                         f"{run.state}: {run.message}")
    points = run.points()
    ends = [p for p in points if p.test_acc is not None]
    if len(ends) != 1 + epochs:
        raise SystemExit(f"bench_train.py: expected {1 + epochs} epoch ends, got {len(ends)}")
    timed = ends[-1].seconds - ends[0].seconds
    inner = sorted(p.examples_per_sec for p in points if p.test_acc is None and p.epoch > 1)
    return Speed(n_train * epochs / timed, timed, ends[0].seconds, ends[-1].test_acc,
                 inner[len(inner) // 2] if inner else None)


def throughput(cases: list[Case], args, device: torch.device) -> list[dict]:
    rows = []
    for case in cases:
        with tempfile.TemporaryDirectory(prefix="bench_train_") as root:
            random_idx_dataset(root, "fashion-mnist", case.n_train, case.n_test, seed=0)
            books, engines = [], []
            for repeat in range(args.repeats):
                # Interleaved, so that a burst of load from elsewhere hits both sides alike.
                books.append(book_speed(case, root, case.n_train, args.epochs, device))
                engines.append(engine_speed(case, root, case.n_train, args.epochs, device.type))
                print(f"  {case.name} repeat {repeat + 1}: book "
                      f"{books[-1].examples_per_s:,.0f} ex/s, engine "
                      f"{engines[-1].examples_per_s:,.0f} ex/s", flush=True)
            book = max(books, key=lambda s: s.examples_per_s)
            engine = max(engines, key=lambda s: s.examples_per_s)
            row = {"case": case, "book": book, "engine": engine,
                   "ratio": engine.examples_per_s / book.examples_per_s,
                   "all": [(b.examples_per_s, e.examples_per_s) for b, e in zip(books, engines)]}
            if device.type == "cuda":
                madds = summarize(case.spec, case.size).mult_adds
                flops = (6 * madds * case.n_train + 2 * madds * case.n_test) * args.epochs
                row["mfu"] = flops / engine.timed_s / (args.peak_tflops * 1e12)
                if engine.engine_train_eps:
                    row["mfu_train"] = (6 * madds * engine.engine_train_eps
                                        / (args.peak_tflops * 1e12))
                row["mult_adds"] = madds
            rows.append(row)
            print_row(row, args, flush=True)
    return rows


def print_row(row: dict, args, flush: bool = False) -> None:
    case, book, engine = row["case"], row["book"], row["engine"]
    verdict = "holds" if row["ratio"] >= case.target else "MISSED"
    print(f"{case.name} at {case.size}, {case.n_train:,} train / {case.n_test:,} test: "
          f"book {book.examples_per_s:,.0f} ex/s "
          f"({book.timed_s:.1f} s for {args.epochs} epochs, warm-up {book.warmup_s:.1f} s, "
          f"test acc {book.test_acc:.3f}); engine {engine.examples_per_s:,.0f} ex/s "
          f"({engine.timed_s:.1f} s, warm-up {engine.warmup_s:.1f} s, test acc "
          f"{engine.test_acc:.3f}); ratio {row['ratio']:.2f}x (target >= {case.target:g}x: "
          f"{verdict})", flush=flush)
    if "mfu" in row:
        print(f"  MFU vs {args.peak_tflops:g} TFLOP/s: {row['mfu']:.1%} over whole epochs "
              f"(evaluation included)" + (f", {row['mfu_train']:.1%} over training steps"
                                          if "mfu_train" in row else ""), flush=flush)


def first_point(n_train: int, n_test: int) -> dict:
    """Seconds from TrainingRun.start() to the first metric point, lenet-bn on the CPU,
    cold (the data set read from its IDX files) and warm (already in memory)."""
    spec = PRESETS["lenet-bn"].spec
    out = {}
    with tempfile.TemporaryDirectory(prefix="bench_train_") as root:
        random_idx_dataset(root, "fashion-mnist", n_train, n_test, seed=1)
        clear_cache()
        for label in ("cold", "warm"):
            run = TrainingRun(spec, TrainConfig(dataset="fashion-mnist", data_root=root,
                                                epochs=1, device="cpu"))
            start = time.perf_counter()
            run.start()
            while not run.points() and not run.done:
                time.sleep(0.002)
            seconds = time.perf_counter() - start
            points = run.points()
            run.stop()
            run.join()
            if not points:
                raise SystemExit(f"bench_train.py: no metric point: {run.state} {run.message}")
            out[label] = (seconds, points[0])
            print(f"first point ({label} data): {seconds:.2f} s after start() (training "
                  f"started {seconds - points[0].seconds:.2f} s after start(); point at epoch "
                  f"{points[0].epoch:.3f}, {points[0].examples_per_sec:,.0f} ex/s)", flush=True)
    clear_cache()
    return out


# Settings tried for time-to-accuracy on the digits: (label, batch, lr, recipe, epochs).
TTA_SETTINGS = (
    ("book defaults (batch 256, lr 1.0), book", 256, None, "book", 30),
    ("batch 64, lr 0.5, book", 64, 0.5, "book", 30),
    ("batch 32, lr 0.1, book", 32, 0.1, "book", 30),
    ("batch 64, lr 0.1, fast", 64, 0.1, "fast", 30),
)


def time_to_accuracy() -> list[dict]:
    spec = PRESETS["lenet-bn"].spec
    rows = []
    for label, batch, lr, recipe, epochs in TTA_SETTINGS:
        cfg = TrainConfig(dataset="digits", epochs=epochs, batch_size=batch, lr=lr,
                          recipe=recipe, device="cpu", seed=0)
        run = TrainingRun(spec, cfg)
        start = time.perf_counter()
        run.start()
        hit, wall = None, None
        while not run.done:
            hit = next((p for p in run.points()
                        if p.test_acc is not None and p.test_acc >= TTA_TARGET), None)
            if hit is not None:
                wall = time.perf_counter() - start
                run.stop()
                break
            time.sleep(0.002)
        run.join()
        if hit is None:  # finished (or failed) between polls: look once more
            hit = next((p for p in run.points()
                        if p.test_acc is not None and p.test_acc >= TTA_TARGET), None)
            wall = time.perf_counter() - start if hit else None
        best = max((p.test_acc for p in run.points() if p.test_acc is not None), default=None)
        row = {"label": label, "hit": hit, "wall": wall, "best": best,
               "state": run.state, "message": run.message, "epochs": epochs}
        rows.append(row)
        if hit:
            print(f"digits, {label}: test acc {hit.test_acc:.3f} >= {TTA_TARGET:.0%} after "
                  f"epoch {round(hit.epoch)}, {hit.seconds:.2f} s of training "
                  f"({wall:.2f} s after start(), loading included)", flush=True)
        else:
            print(f"digits, {label}: never reached {TTA_TARGET:.0%} in {epochs} epochs (best "
                  f"{best}; {run.state}: {run.message})", flush=True)
    return rows


def load_average() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--n-train", type=int, default=None,
                        help="training examples for every case (default: lenet-bn 6,000, "
                             "resnet-small 3,000, alexnet 20,000)")
    parser.add_argument("--n-test", type=int, default=None,
                        help="test examples for every case (default: lenet-bn 1,000, "
                             "resnet-small 500, alexnet 2,000)")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs after the warm-up")
    parser.add_argument("--repeats", type=int, default=1,
                        help="interleaved book/engine repeats per case; the best of each kept")
    parser.add_argument("--peak-tflops", type=float, default=989.0,
                        help="the GPU's dense bf16 peak for MFU (default: H100/H200 SXM, 989)")
    parser.add_argument("--skip-extras", action="store_true",
                        help="only the throughput cases (no first-point, no time-to-accuracy)")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("bench_train.py: --device cuda needs a CUDA GPU, but torch.cuda.is_available() "
                 "is False on this machine; run without --device for the CPU cases")
    cuda = args.device == "cuda"
    device = torch.device(args.device)

    started = time.perf_counter()
    print(f"# {datetime.date.today()}  {cpu_model()}, {os.cpu_count()} cores"
          + (f", {torch.cuda.get_device_name()}" if cuda else ", no GPU used")
          + f"; Python {platform.python_version()}, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), torchvision {torchvision.__version__}")
    print(f"# command: {shlex.join([os.path.relpath(sys.executable), *sys.argv])}")
    print(f"# data: synthetic Fashion-MNIST IDX; 1 warm-up + {args.epochs} timed epochs; "
          f"repeats {args.repeats}; load average {load_average()}", flush=True)
    if cuda:
        cases = [Case("alexnet", PRESETS["alexnet"].spec, 224, 5.0, 20_000, 2_000)]
    else:
        cases = [Case("lenet-bn", PRESETS["lenet-bn"].spec, 28, 2.0, 6_000, 1_000),
                 Case("resnet-small", ResNetSpec(stages=((1, 32), (1, 64)), stem_channels=32,
                                                 input_size=64), 64, 1.5, 3_000, 500)]
    for case in cases:
        case.n_train = args.n_train or case.n_train
        case.n_test = args.n_test or case.n_test
    rows = throughput(cases, args, device)
    extras = not cuda and not args.skip_extras
    firsts = first_point(60_000, 10_000) if extras else {}
    ttas = time_to_accuracy() if extras else []

    print(f"\n# summary ({time.perf_counter() - started:.0f} s in all; load average now "
          f"{load_average()})")
    print("| case | size | train/test | batch | lr | book ex/s | engine ex/s | ratio | target "
          "| holds |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|:---:|")
    for row in rows:
        case = row["case"]
        print(f"| {case.name} | {case.size} | {case.n_train:,}/{case.n_test:,} | "
              f"{book_batch_size(case.spec)} | "
              f"{book_lr(case.spec):g} | {row['book'].examples_per_s:,.0f} | "
              f"{row['engine'].examples_per_s:,.0f} | {row['ratio']:.2f}× | "
              f"≥ {case.target:g}× | {'yes' if row['ratio'] >= case.target else 'no'} |")
    for label, (seconds, _point) in firsts.items():
        verdict = "holds" if seconds <= FIRST_POINT_S else "MISSED"
        print(f"first metric point, lenet-bn, 60,000 images, {label}: {seconds:.2f} s "
              f"(target ≤ {FIRST_POINT_S:g} s: {verdict})")
    for row in ttas:
        hit = row["hit"]
        print(f"digits ≥ 95 %, {row['label']}: " + (
            f"epoch {round(hit.epoch)}, {hit.seconds:.2f} s training, {row['wall']:.2f} s wall"
            if hit else f"not reached (best {row['best']})"))


if __name__ == "__main__":
    main()
