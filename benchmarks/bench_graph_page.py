"""How long the Connections page takes to rerun when the learner opens a stage, for every book
preset (warm, CPU), and when DenseNet-121 is unfolded all at once.

Each preset's page is opened with Streamlit's AppTest; then, timed: opening its stages one at a
time in the "Open" picker and closing them again (each a new set of opened groups: a new graph,
layout and figure), and for ``densenet121-imagenet`` switching "Unfold everything" on (warm:
after one round). Baseline: a one-widget Streamlit page rerun in the same process. Target
(issue 10): opening a stage reruns the page in ≤ 300 ms. Printed, never asserted. Run from
the repository root:

    .venv/bin/python benchmarks/bench_graph_page.py [--repeats 7]
"""
from __future__ import annotations

import os
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # benchmarks/

from streamlit.testing.v1 import AppTest  # noqa: E402

from bench_app import start  # noqa: E402
from cnnviz.presets import BOOK_PRESETS  # noqa: E402

APP = os.path.join(ROOT, "streamlit_app.py")
TARGET_MS = 300.0


def open_page(preset: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["preset"] = preset
    at.run()
    at.switch_page("pages/graph.py").run()
    assert not at.exception, at.exception
    return at


def rerun_ms(at: AppTest) -> float:
    start_time = time.perf_counter()
    at.run()
    assert not at.exception, at.exception
    return (time.perf_counter() - start_time) * 1000


def open_stages(preset: str, repeats: int) -> tuple[float, int]:
    at = open_page(preset)
    picker = next(m for m in at.multiselect if m.key and m.key.startswith("graph.open."))
    stages = [o for o in picker.options if "." not in o] or picker.options
    times = []
    for i in range(repeats):
        stage = stages[i % len(stages)]
        at.multiselect(key=picker.key).set_value([stage])
        times.append(rerun_ms(at))
        at.multiselect(key=picker.key).set_value([])
        times.append(rerun_ms(at))
    return statistics.median(times), len(stages)


def unfold_everything(preset: str, repeats: int) -> float:
    at = open_page(preset)
    times = []
    for i in range(repeats + 1):
        at.toggle(key="graph.all").set_value(True)
        ms = rerun_ms(at)
        if i:
            times.append(ms)  # the first one traces and lays out: cold
        at.toggle(key="graph.all").set_value(False)
        rerun_ms(at)
    return statistics.median(times)


def main() -> int:
    repeats, base = start(__doc__.splitlines()[0])
    print("| preset | stages | open or close a stage (ms) | × baseline |")
    print("|---|---:|---:|---:|")
    worst = 0.0
    for preset in BOOK_PRESETS:
        ms, stages = open_stages(preset, repeats)
        worst = max(worst, ms)
        print(f"| {preset} | {stages} | {ms:.0f} | {ms / base:.1f} |", flush=True)
    dense = unfold_everything("densenet121-imagenet", repeats)
    print(f"\ndensenet121-imagenet, 'Unfold everything' (warm): {dense:.0f} ms")
    print(f"slowest stage rerun: {worst:.0f} ms (target ≤ {TARGET_MS:.0f} ms): "
          f"{'holds' if worst <= TARGET_MS else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
