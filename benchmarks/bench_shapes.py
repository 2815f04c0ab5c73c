"""Benchmark the layer summary and the valid-size search against exhaustive forward passes.

For every preset at its default input size this measures:

* summary warm: median time of ``summarize(spec)`` with the meta-device model already cached
  (the summary itself is recomputed on every call);
* summary cold: one ``summarize(spec)`` right after ``build_meta.cache_clear()``, so it
  includes building the model on the meta device;
* size search: median time of ``valid_sizes(spec, N)`` (model cached);
* the baseline: ``sweep_forward`` — one meta-device forward pass at every size 1..N, timed once;

and checks that the search and the sweep give the same valid sizes (exit status 1 if not).
Timings are printed, never asserted. Run from the repository root:

    .venv/bin/python benchmarks/bench_shapes.py            # N = 1024, several minutes
    .venv/bin/python benchmarks/bench_shapes.py --max 256  # quicker
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import shlex
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # repo root

from machine import cpu_model  # noqa: E402  (benchmarks/machine.py)
from cnnviz.models import build
from cnnviz.models.registry import build_meta
from cnnviz.presets import PRESETS
from cnnviz.shapes.sizes import sweep_forward, valid_sizes
from cnnviz.shapes.summary import summarize

SUMMARY_MS, SEARCH_MS, SPEEDUP = 50.0, 200.0, 10.0  # the targets


def timed(fn) -> float:
    """Milliseconds one call of ``fn`` takes."""
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1000


def median_ms(fn, repeats: int) -> float:
    return statistics.median(timed(fn) for _ in range(repeats))


def measure(spec, max_size: int, repeats: int, search_repeats: int) -> dict:
    build_meta.cache_clear()
    cold = timed(lambda: summarize(spec))        # builds the meta model, then summarizes
    summarize(spec)                              # warm-up
    warm = median_ms(lambda: summarize(spec), repeats)
    report = valid_sizes(spec, max_size)         # warm-up (model cached)
    search = median_ms(lambda: valid_sizes(spec, max_size), search_repeats)
    model = build(spec, device="meta")
    swept: list = []
    sweep = timed(lambda: swept.extend(sweep_forward(model, spec.in_channels, max_size)))
    return {"warm": warm, "cold": cold, "search": search, "sweep": sweep,
            "speedup": sweep / search, "identical": report.valid == swept,
            "valid": report.valid, "swept": swept}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max", type=int, default=1024, help="largest size to check")
    parser.add_argument("--repeats", type=int, default=20, help="warm summary calls")
    parser.add_argument("--search-repeats", type=int, default=7, help="warm search calls")
    parser.add_argument("--only", nargs="*", help="preset names (default: all)")
    args = parser.parse_args(argv)

    names = args.only or list(PRESETS)
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    print(f"date: {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}")
    print(f"machine: {cpu_model()} ({platform.processor() or platform.machine()}), "
          f"{os.cpu_count()} cores, Python {platform.python_version()}, torch {torch.__version__}")
    print(f"torch threads: {torch.get_num_threads()}")
    print(f"command: {command}")
    print(f"sizes checked: 1..{args.max}\n")

    summarize(PRESETS["lenet"].spec)  # process warm-up: first-call overheads in torch
    total_start = time.perf_counter()
    results = {}
    for name in names:
        results[name] = r = measure(PRESETS[name].spec, args.max, args.repeats,
                                    args.search_repeats)
        print(f"  {name}: done ({r['sweep'] / 1000:.1f} s sweep)", file=sys.stderr, flush=True)

    print("| preset | summary warm (ms) | summary cold (ms) | size search (ms) "
          "| exhaustive forward sweep (ms) | speed-up (sweep/search) | identical |")
    print("|---|---:|---:|---:|---:|---:|:---:|")
    for name, r in results.items():
        print(f"| {name} | {r['warm']:.2f} | {r['cold']:.1f} | {r['search']:.2f} "
              f"| {r['sweep']:.0f} | {r['speedup']:.0f}× | {'yes' if r['identical'] else 'no'} |")
    print(f"\ntotal: {time.perf_counter() - total_start:.0f} s")

    for name, r in results.items():
        if not r["identical"]:
            print(f"MISMATCH {name}: search {r['valid']} vs sweep {r['swept']}")
    misses = [f"{name} summary {r['warm']:.1f} ms > {SUMMARY_MS:.0f}"
              for name, r in results.items() if r["warm"] > SUMMARY_MS]
    misses += [f"{name} search {r['search']:.1f} ms > {SEARCH_MS:.0f}"
               for name, r in results.items() if r["search"] > SEARCH_MS]
    misses += [f"{name} speed-up {r['speedup']:.1f}× < {SPEEDUP:.0f}×"
               for name, r in results.items() if r["speedup"] < SPEEDUP]
    print(f"targets (summary ≤ {SUMMARY_MS:.0f} ms warm, search ≤ {SEARCH_MS:.0f} ms, "
          f"speed-up ≥ {SPEEDUP:.0f}×): "
          + ("all hold" if not misses else "MISSED: " + "; ".join(misses)))
    return 0 if all(r["identical"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
