"""How long the Feature maps page takes to rerun when the learner picks another layer or
channel, for every book preset at its book input size (warm, CPU), and the first (cold) run.

Each preset's page is opened with Streamlit's AppTest (the network, fresh, on the first digits
test image); the first open runs the network once and fills the caches. Then, timed: picking
the next layer of the layer list (cycling through the spatial layers) and picking another
channel to see large. Baseline: a one-widget Streamlit page rerun in the same process (the
ratio is what the page adds on top of Streamlit). Target (issue 9): every warm rerun ≤ 300 ms.
Printed, never asserted. Run from the repository root:

    .venv/bin/python benchmarks/bench_maps.py [--repeats 7]
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


def open_page(preset: str) -> tuple[AppTest, float]:
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["preset"] = preset
    at.run()
    start = time.perf_counter()
    at.switch_page("pages/maps.py").run()
    cold = (time.perf_counter() - start) * 1000
    assert not at.exception, at.exception
    return at, cold


def timed(at: AppTest, change, repeats: int) -> float:
    times = []
    for i in range(repeats):
        change(i)
        start = time.perf_counter()
        at.run()
        times.append((time.perf_counter() - start) * 1000)
        assert not at.exception, at.exception
    return statistics.median(times)


def layer_and_channel(preset: str, repeats: int) -> tuple[float, float, float]:
    at, cold = open_page(preset)
    spatial = [o for o in at.selectbox(key="maps.layer").options if o.count("×") == 2]
    layer = timed(at, lambda i: at.selectbox(key="maps.layer").select(
        spatial[(i + 1) % len(spatial)]), repeats)

    def pick_channel(i: int) -> None:
        box = next(s for s in at.selectbox if s.key and s.key.startswith("maps.channel."))
        box.select(box.options[(i + 1) % len(box.options)])

    channel = timed(at, pick_channel, repeats)
    return cold, layer, channel


def main() -> int:
    repeats, base = start(__doc__.splitlines()[0])
    print("| preset | first open (ms, runs the network) | another layer (ms) | × baseline "
          "| another channel (ms) | × baseline |")
    print("|---|---:|---:|---:|---:|---:|")
    worst = 0.0
    for preset in BOOK_PRESETS:
        cold, layer, channel = layer_and_channel(preset, repeats)
        worst = max(worst, layer, channel)
        print(f"| {preset} | {cold:.0f} | {layer:.0f} | {layer / base:.1f} | {channel:.0f} | "
              f"{channel / base:.1f} |", flush=True)
    print(f"\nslowest warm rerun: {worst:.0f} ms (target ≤ {TARGET_MS:.0f} ms): "
          f"{'holds' if worst <= TARGET_MS else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
