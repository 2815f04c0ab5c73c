"""The Connections page's graph: trace, layout and figure, for every book preset at stage level
and for the two largest networks fully unfolded.

For every book preset folded at depth 1 (stages b1…b5 and the head as groups), and for
``densenet121-imagenet`` and ``resnet18-imagenet`` fully unfolded (every leaf layer, every
``add`` and ``cat``), it times separately ``connections()`` (the traced graph, folded; warm:
its cache of the full traced graph already filled, as on a page rerun), ``layout()`` (igraph's
Sugiyama layout and its post-passes) and ``graph_figure()``, the median of 5 runs after one
warm-up, and prints the node and edge counts, the three times, their sum, and the figure's
JSON size (what Streamlit sends to the browser). The first, cold ``connections()`` call (the
torch.fx trace and the meta-device shape pass) is printed too. Targets: ≤ 150 ms for the
three together for each book preset at stage level, ≤ 1 s for DenseNet-121 fully unfolded.
Printed, never asserted. Run from the repository root:

    .venv/bin/python benchmarks/bench_graph.py
"""
from __future__ import annotations

import datetime
import os
import platform
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # repo root

import igraph  # noqa: E402
import torch  # noqa: E402

from machine import cpu_model  # noqa: E402  (benchmarks/machine.py)
from cnnviz.figures_graph import graph_figure  # noqa: E402
from cnnviz.graph.connections import connections  # noqa: E402
from cnnviz.graph.layout import layout  # noqa: E402
from cnnviz.presets import PRESETS  # noqa: E402

BOOK = ["lenet", "lenet-bn", "alexnet", "vgg", "nin", "googlenet", "resnet18", "densenet"]
UNFOLDED = ["densenet121-imagenet", "resnet18-imagenet"]
STAGES_MS, UNFOLDED_MS = 150.0, 1000.0  # the targets, trace + layout + figure
REPEATS = 5


def median_ms(work) -> tuple[float, object]:
    result = work()  # warm-up
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        result = work()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), result


def measure(name: str, depth: int | None) -> dict:
    spec = PRESETS[name].spec
    start = time.perf_counter()
    connections(spec, depth=depth)
    cold = (time.perf_counter() - start) * 1000
    trace_ms, graph = median_ms(lambda: connections(spec, depth=depth))
    layout_ms, lay = median_ms(lambda: layout(graph))
    figure_ms, fig = median_ms(lambda: graph_figure(graph, lay))
    return {"nodes": len(graph.nodes), "edges": len(graph.edges), "layers": lay.layers,
            "cold": cold, "trace": trace_ms, "layout": layout_ms, "figure": figure_ms,
            "total": trace_ms + layout_ms + figure_ms, "kb": len(fig.to_json()) / 1e3}


def main() -> int:
    print(f"date: {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}")
    print(f"machine: {cpu_model()} ({platform.machine()}), {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, torch {torch.__version__}, "
          f"igraph {igraph.__version__}")
    print("command: python benchmarks/bench_graph.py\n")
    print("| network | depth | nodes | edges | layers | connections() cold (ms) "
          "| connections() (ms) | layout (ms) | figure (ms) | total (ms) | JSON (kB) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    misses = []
    for name, depth in [(n, 1) for n in BOOK] + [(n, None) for n in UNFOLDED]:
        r = measure(name, depth)
        print(f"| {name} | {'stages' if depth == 1 else 'unfolded'} | {r['nodes']} "
              f"| {r['edges']} | {r['layers']} | {r['cold']:.0f} | {r['trace']:.1f} "
              f"| {r['layout']:.1f} | {r['figure']:.1f} | {r['total']:.1f} | {r['kb']:.0f} |")
        target = STAGES_MS if depth == 1 else UNFOLDED_MS if name == UNFOLDED[0] else None
        if target is not None and r["total"] > target:
            misses.append(f"{name}: {r['total']:.0f} ms > {target:.0f}")
    print(f"\ntargets (book presets at stage level ≤ {STAGES_MS:.0f} ms, {UNFOLDED[0]} "
          f"unfolded ≤ {UNFOLDED_MS:.0f} ms, warm): "
          + ("all hold" if not misses else "MISSED: " + "; ".join(misses)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
