"""The Feature maps page's worst case: a 64-map page of the widest layer of DenseNet-121.

Builds ``densenet121-imagenet`` (random weights) at its input size 224, runs one random image
through it with forward hooks on every module, and takes the layer with the most channels
(1024: the first layers of 14×14 and of 7×7, dense blocks' outputs) and the first 56×56
layer with 256 channels. For each, and for the "per map"
and "per layer" scopes, it prints the median time of ``channel_grid`` over a 64-channel page
(5 runs, after one warm-up), the time of ``fig.to_json()`` and the size of that JSON, which is
what Streamlit sends to the browser. Targets: the figure built in ≤ 1 s, its JSON ≤ 3 MB.
Printed, never asserted. Run from the repository root:

    .venv/bin/python benchmarks/bench_maps_figures.py
"""
from __future__ import annotations

import datetime
import os
import platform
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # repo root

import torch  # noqa: E402

from machine import cpu_model  # noqa: E402  (benchmarks/machine.py)
from cnnviz.figures_maps import MAX_GRID, channel_grid  # noqa: E402
from cnnviz.models import build  # noqa: E402
from cnnviz.presets import PRESETS  # noqa: E402

PRESET = "densenet121-imagenet"
FIGURE_MS, JSON_MB = 1000.0, 3.0  # the targets
REPEATS = 5


def capture(model: torch.nn.Module, image: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every module's output for one image, as (C, H, W) float32 on the CPU."""
    outputs: dict[str, torch.Tensor] = {}

    def keep(name):
        def hook(_module, _inputs, output):
            if isinstance(output, torch.Tensor) and output.dim() == 4:
                outputs[name] = output[0].detach().float().cpu()
        return hook

    handles = [m.register_forward_hook(keep(name)) for name, m in model.named_modules() if name]
    with torch.no_grad():
        model(image)
    for handle in handles:
        handle.remove()
    return outputs


def measure(act: torch.Tensor, scope: str) -> dict:
    channels = range(min(MAX_GRID, act.shape[0]))
    channel_grid(act, channels, scope).to_json()  # warm-up, the JSON encoder's import too
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        fig = channel_grid(act, channels, scope, title="benchmark")
        times.append((time.perf_counter() - start) * 1000)
    start = time.perf_counter()
    text = fig.to_json()
    return {"ms": statistics.median(times), "json_ms": (time.perf_counter() - start) * 1000,
            "mb": len(text) / 1e6}


def main() -> int:
    spec = PRESETS[PRESET].spec
    torch.manual_seed(0)
    model = build(spec).eval()
    image = torch.rand(1, spec.in_channels, spec.input_size, spec.input_size)
    outputs = capture(model, image)
    most = max(a.shape[0] for a in outputs.values())
    layers: dict[tuple, str] = {}  # the first layer of each shape: a dense block's output
    for name, act in outputs.items():
        widest = act.shape[0] == most and act.shape[1] > 1
        if widest or (act.shape[0] == 256 and act.shape[1] == 56):
            layers.setdefault(tuple(act.shape), name)

    print(f"date: {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}")
    print(f"machine: {cpu_model()} ({platform.machine()}), {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, torch {torch.__version__}")
    print("command: python benchmarks/bench_maps_figures.py")
    print(f"network: {PRESET} at {spec.input_size}, one random image, random weights\n")
    print("| layer | activation | scope | maps shown | figure (ms, median of 5) "
          "| to_json (ms) | JSON (MB) |")
    print("|---|---|---|---:|---:|---:|---:|")
    misses = []
    for name in layers.values():
        act = outputs[name]
        for scope in ("per map", "per layer"):
            r = measure(act, scope)
            shape = "×".join(map(str, act.shape))
            print(f"| {name} | {shape} | {scope} | {min(MAX_GRID, act.shape[0])} "
                  f"| {r['ms']:.0f} | {r['json_ms']:.0f} | {r['mb']:.2f} |")
            if r["ms"] > FIGURE_MS:
                misses.append(f"{name} {scope}: {r['ms']:.0f} ms > {FIGURE_MS:.0f}")
            if r["mb"] > JSON_MB:
                misses.append(f"{name} {scope}: {r['mb']:.2f} MB > {JSON_MB:.0f}")
    print(f"\ntargets (figure ≤ {FIGURE_MS:.0f} ms, JSON ≤ {JSON_MB:.0f} MB): "
          + ("all hold" if not misses else "MISSED: " + "; ".join(misses)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
