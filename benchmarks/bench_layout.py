"""Memory layout of a CPU training step: NCHW (torch's default) against channels-last (NHWC).

For each book preset at its book input size, one ``Recipe.step`` (the engine's own step: the
book recipe, images prepared by ``cnnviz.training.batches.prepare``) is timed in both layouts
in the same process, the model and the images converted alike, after two warm-up steps; the
best of two rounds of timed steps is printed. The ratio NHWC / NCHW below 1 means channels-last
is faster. ``cnnviz.training.recipe.CPU_CHANNELS_LAST_FROM`` is set from this table. Printed,
never asserted; take numbers on an idle machine. Run from the repository root:

    .venv/bin/python benchmarks/bench_layout.py
"""
from __future__ import annotations

import datetime
import os
import platform
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

from cnnviz.presets import PRESETS  # noqa: E402
from cnnviz.training.config import TrainConfig  # noqa: E402
from cnnviz.models import build  # noqa: E402
from cnnviz.training.recipe import make_recipe  # noqa: E402
from machine import cpu_model  # noqa: E402

PRESET_NAMES = ["lenet", "lenet-bn", "alexnet", "vgg", "nin", "googlenet", "resnet18", "densenet"]


def step_seconds(spec, batch: int, last: bool) -> float:
    cpu = torch.device("cpu")
    cfg = TrainConfig(dataset="digits", epochs=1, size=spec.input_size,
                      device="cpu").resolved(spec)
    torch.manual_seed(0)
    model = build(spec)
    if last:
        model = model.to(memory_format=torch.channels_last)
    recipe = make_recipe(model, spec, cfg, cpu, total_steps=10)
    recipe.prep["channels_last"] = last
    images = torch.randint(0, 256, (batch, 1, 8, 8), dtype=torch.uint8)
    labels = torch.randint(0, spec.num_classes, (batch,))
    for _ in range(2):
        recipe.step(images, labels)
    steps = 6 if batch >= 128 else 3
    start = time.perf_counter()
    for _ in range(steps):
        _, loss = recipe.step(images, labels)
    float(loss)
    return (time.perf_counter() - start) / steps


def main() -> None:
    print(f"{datetime.date.today()} · {cpu_model()} · {os.cpu_count()} CPUs · "
          f"Python {platform.python_version()} · torch {torch.__version__} · "
          f"{torch.get_num_threads()} threads · `{' '.join(sys.argv)}`\n")
    print("| preset | size | batch | NCHW ms/step | NHWC ms/step | NHWC / NCHW |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in PRESET_NAMES:
        spec = PRESETS[name].spec
        batch = 256 if spec.input_size <= 32 else 16
        times = {last: min(step_seconds(spec, batch, last) for _ in range(2))
                 for last in (False, True)}
        print(f"| {name} | {spec.input_size} | {batch} | {times[False] * 1000:.1f} | "
              f"{times[True] * 1000:.1f} | {times[True] / times[False]:.2f} |", flush=True)


if __name__ == "__main__":
    main()
