"""How long the app takes to rerun after a knob moves, for every book preset.

For each preset, the Build page (and the Input size page) is opened with Streamlit's AppTest;
then the "classes" knob is set to a new value each time, so every rerun sees a new spec (no cache
hit for the analysis) as a slider move does. Printed: the median rerun time, and the same
for a one-line Streamlit page as the baseline measured in the same process (the ratio shows
what cnnviz adds on top of Streamlit itself). Target (issue 3): every rerun ≤ 300 ms.
Run from the repository root:

    .venv/bin/python benchmarks/bench_app.py [--repeats 7]
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # repo root

from streamlit.testing.v1 import AppTest  # noqa: E402

from cnnviz.presets import BOOK_PRESETS  # noqa: E402

APP = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                   "streamlit_app.py")
TARGET_MS = 300.0


def median_ms(run, repeats: int) -> float:
    times = []
    for i in range(repeats):
        start = time.perf_counter()
        run(i)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def baseline(repeats: int) -> float:
    at = AppTest.from_string("import streamlit as st\nn = st.number_input('n', value=1)\n"
                             "st.write(n)", default_timeout=60)
    at.run()
    return median_ms(lambda i: at.number_input[0].set_value(i + 2).run(), repeats)


def page_rerun(preset: str, page: str, repeats: int, tab: str | None = None) -> float:
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["preset"] = preset
    at.run()
    at.switch_page(page).run()
    if tab:
        at.session_state["build.tab"] = tab
        at.run()

    def move_knob(i: int) -> None:
        classes = next(w for w in at.number_input if w.label == "classes") \
            if page.endswith("build.py") else None
        if classes is not None:
            classes.set_value(11 + i)  # a new spec every time: no cache hit
        at.run()
        assert not at.exception, at.exception

    return median_ms(move_knob, repeats)


def start(description: str) -> tuple[int, float]:
    """Parse ``--repeats``, print the date, machine and command, measure and print the
    baseline: (repeats, baseline ms). Shared by the page-rerun benchmarks."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    base = baseline(args.repeats)
    print(f"date: {datetime.date.today()}  machine: {platform.machine()}, "
          f"{os.cpu_count()} cores  python: {platform.python_version()}")
    print(f"command: {' '.join([os.path.basename(sys.executable), *sys.argv])}")
    print(f"baseline (one-widget Streamlit page): {base:.0f} ms\n")
    return args.repeats, base


def main() -> int:
    repeats, base = start(__doc__.splitlines()[0])
    print("| preset | Build, Layers tab (ms) | × baseline | Build, Shape flow tab (ms) "
          "| × baseline | Input size (ms) | × baseline |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    worst = 0.0
    for preset in BOOK_PRESETS:
        build = page_rerun(preset, "pages/build.py", repeats)
        flow = page_rerun(preset, "pages/build.py", repeats, tab="Shape flow")
        sizes = page_rerun(preset, "pages/sizes.py", repeats)
        worst = max(worst, build, flow, sizes)
        print(f"| {preset} | {build:.0f} | {build / base:.1f} | {flow:.0f} | {flow / base:.1f} "
              f"| {sizes:.0f} | {sizes / base:.1f} |", flush=True)
    print(f"\nslowest rerun: {worst:.0f} ms (target ≤ {TARGET_MS:.0f} ms): "
          f"{'holds' if worst <= TARGET_MS else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
