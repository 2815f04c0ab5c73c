"""What recording BatchNorm costs a training run: the engine's examples/s with and without
:class:`cnnviz.batchnorm.recorder.BatchNormRecorder`, side by side in one process (CPU).

Cases: ``lenet-bn`` on scikit-learn's digits at 28 (batch 256, 10 epochs: 1,437 training
images) and ``resnet18`` at 96 (the first 512 digits, batch 64, 1 epoch). Each case runs
``--tries`` times with the recorder and as often without it, interleaved (without, with,
without, with, …) after one untimed warm-up run, every run from the same seed on the same data.
A run's speed is its training examples (epochs × the examples the batch plan uses an epoch)
over the last metric point's ``train_seconds`` (the engine's training clock, test evaluations
excluded); the table gives the medians and their ratio. That ratio carries the machine's noise
(a few % on a busy machine: more than the recorder costs), so the table also gives the
recorder's own time at the metric points (``on_metrics``, timed inside the run) as a share of
the run's training time. Target (issue 11): the recorder costs at most 5 % (ratio ≥ 0.95).
Printed, never asserted. Run from the repository root:

    .venv/bin/python benchmarks/bench_batchnorm.py [--tries 3]     # about 40 s on 2 cores
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # repo root
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # benchmarks/

from machine import cpu_model  # noqa: E402
from cnnviz.batchnorm.recorder import BatchNormRecorder, history  # noqa: E402
from cnnviz.presets import PRESETS  # noqa: E402
from cnnviz.training.config import TrainConfig  # noqa: E402
from cnnviz.training.data import load_dataset  # noqa: E402
from cnnviz.training.engine import TrainingRun  # noqa: E402
from cnnviz.training.recipe import plan_batches  # noqa: E402

TARGET = 0.95
CASES = [  # (preset, size, batch size, epochs, limit)
    ("lenet-bn", 28, 256, 10, None),
    ("resnet18", 96, 64, 1, 512),
]


class TimedRecorder(BatchNormRecorder):
    """The recorder, with the time it spends at the metric points summed."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds = 0.0

    def on_metrics(self, run, point) -> None:
        start = time.perf_counter()
        super().on_metrics(run, point)
        self.seconds += time.perf_counter() - start


def examples_per_sec(preset: str, size: int, batch: int, epochs: int, limit: int | None,
                     record: bool) -> tuple[float, int, float]:
    """The run's training examples/s, how many metric points it recorded, and the share of
    its training time the recorder took."""
    data = load_dataset("digits", limit=limit)
    recorder = TimedRecorder()
    run = TrainingRun(PRESETS[preset].spec,
                      TrainConfig(dataset="digits", epochs=epochs, batch_size=batch, size=size,
                                  device="cpu", limit=limit),
                      dataset=data, callbacks=[recorder] if record else ()).start()
    run.join()
    assert run.state == "finished", run.message
    train = len(data.train_labels)
    plan = plan_batches(train, batch)
    per_epoch = train - train % plan.batch_size if plan.drop_last else train
    last = run.points()[-1]
    recorded = len(next(iter(history(recorder).values()), []))
    assert not record or recorded == len(run.points())
    return epochs * per_epoch / last.train_seconds, recorded, recorder.seconds / \
        last.train_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tries", type=int, default=3)
    args = parser.parse_args()
    print(f"{cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), Python {platform.python_version()}\n")
    print("| network | input | batch | epochs | examples | points | without (ex/s) | "
          "with recorder (ex/s) | with / without | recorder's share of training time |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    tries = []
    for preset, size, batch, epochs, limit in CASES:
        without, with_, shares = [], [], []
        points = 0
        examples_per_sec(preset, size, batch, epochs, limit, True)  # warm-up, not timed
        for _ in range(args.tries):
            without.append(examples_per_sec(preset, size, batch, epochs, limit, False)[0])
            speed, points, share = examples_per_sec(preset, size, batch, epochs, limit, True)
            with_.append(speed)
            shares.append(share)
        a, b = statistics.median(without), statistics.median(with_)
        examples = limit or len(load_dataset("digits").train_labels)
        print(f"| {preset} | {size} | {batch} | {epochs} | {examples:,} | {points} | {a:,.0f} | "
              f"{b:,.0f} | {b / a:.3f} {'✓' if b / a >= TARGET else '✗'} | "
              f"{statistics.median(shares):.2%} |", flush=True)
        tries.append(f"{preset}: without {', '.join(f'{x:,.0f}' for x in without)}; "
                     f"with {', '.join(f'{x:,.0f}' for x in with_)}")
    print(f"\nmedians of {args.tries} interleaved tries each, after one untimed warm-up run; "
          f"target: with / without ≥ {TARGET}. The tries (examples/s):\n")
    print("\n".join(f"- {line}" for line in tries))


if __name__ == "__main__":
    main()
