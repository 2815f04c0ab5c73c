"""How long the BatchNorm page takes to rerun after a slider move (γ, the channel), for the book
networks with BatchNorm and one shown through its twin (warm, CPU).

Each page is opened with Streamlit's AppTest (fresh weights, a batch of 64 digits); the first
open runs the batch through the network and fills the caches. Timed: moving the γ slider of
the "γ and β" tab, and picking another channel. Baseline: a one-widget Streamlit page rerun in
the same process. Target (issue 11): ≤ 300 ms after a slider move. Printed, never asserted.
Run from the repository root:

    .venv/bin/python benchmarks/bench_batchnorm_page.py [--repeats 7]
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

APP = os.path.join(ROOT, "streamlit_app.py")
PRESETS = ["lenet-bn", "resnet18", "densenet", "lenet"]  # lenet: through its twin
TARGET_MS = 300.0


def timed(at: AppTest, change, repeats: int) -> float:
    times = []
    for i in range(repeats):
        change(i)
        begin = time.perf_counter()
        at.run()
        times.append((time.perf_counter() - begin) * 1000)
        assert not at.exception, at.exception
    return statistics.median(times)


def page(preset: str, repeats: int) -> tuple[float, float, float]:
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["preset"] = preset
    at.run()
    begin = time.perf_counter()
    at.switch_page("pages/batchnorm.py").run()
    cold = (time.perf_counter() - begin) * 1000
    assert not at.exception, at.exception
    gamma = next(s for s in at.slider if s.key and s.key.startswith("bn.gamma."))
    slide = timed(at, lambda i: at.slider(key=gamma.key).set_value(0.5 + 0.1 * i), repeats)
    channel = next(n for n in at.number_input if n.key and n.key.startswith("bn.channel."))
    pick = timed(at, lambda i: at.number_input(key=channel.key).set_value(
        (i + 1) % int(channel.max + 1)), repeats)
    return cold, slide, pick


def main() -> int:
    repeats, base = start(__doc__.splitlines()[0])
    print("| network | first open (ms) | γ slider (ms) | × baseline | another channel (ms) "
          "| × baseline |")
    print("|---|---:|---:|---:|---:|---:|")
    worst = 0.0
    for preset in PRESETS:
        cold, slide, pick = page(preset, repeats)
        worst = max(worst, slide, pick)
        print(f"| {preset} | {cold:.0f} | {slide:.0f} | {slide / base:.1f} | {pick:.0f} | "
              f"{pick / base:.1f} |", flush=True)
    print(f"\nslowest rerun after a slider move: {worst:.0f} ms (target ≤ {TARGET_MS:.0f} ms): "
          f"{'holds' if worst <= TARGET_MS else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
