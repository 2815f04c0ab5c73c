"""Benchmark the command line as a learner meets it: whole-process wall time of
``python -m cnnviz presets|summary|sizes`` against the floor, ``python -c "import torch"``.

Each command and the floor run in turn, ``--repeats`` rounds (interleaved, so a busy moment
hits all of them alike); the medians and each command's excess over the floor are printed as
a Markdown table. The target: every command within 0.7 s of the floor. Timings are printed,
never asserted. Run from the repository root (optionally against another checkout):

    .venv/bin/python benchmarks/bench_cli.py
    .venv/bin/python benchmarks/bench_cli.py --repo /tmp/before   # the same, another tree
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import cpu_model  # noqa: E402  (benchmarks/machine.py)

FLOOR = ["-c", "import torch"]
COMMANDS = {
    "presets": ["-m", "cnnviz", "presets"],
    "summary resnet18": ["-m", "cnnviz", "summary", "resnet18"],
    "sizes alexnet": ["-m", "cnnviz", "sizes", "alexnet"],
    "summary densenet121-imagenet --json": ["-m", "cnnviz", "summary", "densenet121-imagenet",
                                            "--json"],
}
TARGET_S = 0.7


def wall(args: list[str], repo: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, *args], cwd=repo, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--repo", default=os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))), help="the checkout whose cnnviz runs")
    args = parser.parse_args()
    times: dict[str, list[float]] = {"import torch (floor)": []} | {c: [] for c in COMMANDS}
    for name, argv in COMMANDS.items():  # warm the file cache once
        wall(argv, args.repo)
    for _ in range(args.repeats):
        times["import torch (floor)"].append(wall(FLOOR, args.repo))
        for name, argv in COMMANDS.items():
            times[name].append(wall(argv, args.repo))
    floor = statistics.median(times["import torch (floor)"])
    print(f"{cpu_model()}, {os.cpu_count()} cores; Python {sys.version.split()[0]}; "
          f"{args.repeats} rounds; repo {args.repo}\n")
    print("| command | median (s) | min (s) | over the floor (s) | within 0.7 s |")
    print("|---|---:|---:|---:|:---:|")
    for name, values in times.items():
        median = statistics.median(values)
        over = median - floor
        ok = "—" if name.startswith("import") else ("yes" if over <= TARGET_S else "no")
        print(f"| `{name}` | {median:.2f} | {min(values):.2f} | {over:+.2f} | {ok} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
