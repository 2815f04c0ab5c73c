"""The server's memory after many runs: 50 training runs from 5 sessions in one process.

Each session is Streamlit's AppTest of ``streamlit_app.py`` (the same script, session state and
run threads as ``streamlit run``, without the websocket) on the Train page; the sessions take
turns, each starting a short run (1 epoch of 300 digits) and polling it to the end, as a
browser would. The network is LeNet with two Linear(4096) layers (18.4 M parameters, 74 MB of
weights) so a run's weights dominate what it leaves behind. The process's resident memory is
printed after every 10 runs, for the default cap (CNNVIZ_KEEP_WEIGHTS=3) and, as the
baseline, with the cap lifted (every run keeps its weights); each in its own process.
Run from the repository root:

    .venv/bin/python benchmarks/bench_memory.py [--runs 50] [--sessions 5]
"""
from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
APP = os.path.join(ROOT, "streamlit_app.py")
MODEL_MB = 18_407_306 * 4 / 2**20  # the network's float32 weights


def rss_mb() -> float:
    gc.collect()
    with open("/proc/self/status") as status:
        kb = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    return kb / 1024


def open_session(token: str):
    from streamlit.testing.v1 import AppTest
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["net"] = token
    at.run()
    at.switch_page("pages/train.py").run()
    at.selectbox(key="train.dataset").select("digits")
    at.number_input(key="train.epochs").set_value(1)
    at.number_input(key="train.batch").set_value(64)
    at.number_input(key="train.limit").set_value(300)
    at.run()
    return at


def one_run(at) -> None:
    at.button(key="train.start").click().run()
    while at.session_state["train.active"] is not None:
        time.sleep(0.2)
        at.run()
    assert not at.exception, [e.message for e in at.exception]


def measure(runs: int, sessions: int) -> dict:
    from cnnviz.presets import PRESETS
    from cnnviz.specs.url import spec_to_token
    spec = dataclasses.replace(PRESETS["lenet"].spec, dense=(4096, 4096))
    token = spec_to_token(spec)
    points = [(0, rss_mb())]
    ats = [open_session(token) for _ in range(sessions)]
    points.append((0, rss_mb()))  # the sessions open, no run yet
    started = time.perf_counter()
    for n in range(1, runs + 1):
        one_run(ats[(n - 1) % sessions])
        if n % 10 == 0 or n == runs:
            points.append((n, rss_mb()))
    kept = sum(r.weights is not None for at in ats for r in at.session_state["train.history"])
    return {"keep": os.environ.get("CNNVIZ_KEEP_WEIGHTS"), "rss_mb": points,
            "models_kept": kept, "seconds": round(time.perf_counter() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--sessions", type=int, default=5)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.runs, args.sessions)))
        return
    results = []
    for keep in ("3", "1000"):
        out = subprocess.run([sys.executable, __file__, "--child", "--runs", str(args.runs),
                              "--sessions", str(args.sessions)], capture_output=True,
                             text=True, env={**os.environ, "CNNVIZ_KEEP_WEIGHTS": keep},
                             cwd=ROOT, check=True)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"{args.runs} runs from {args.sessions} sessions, one process; weights "
          f"{MODEL_MB:.0f} MB a run; resident memory (MB):")
    header = ["runs"] + [f"keep {r['keep']}" for r in results]
    print(" | ".join(header))
    for i, (n, _) in enumerate(results[0]["rss_mb"]):
        label = "before" if i == 0 else "sessions open" if i == 1 else str(n)
        print(" | ".join([label] + [f"{r['rss_mb'][i][1]:.0f}" for r in results]))
    for r in results:
        grown = r["rss_mb"][-1][1] - r["rss_mb"][1][1]
        print(f"keep {r['keep']}: {r['models_kept']} models kept, grew {grown:.0f} MB after "
              f"the sessions opened ({grown / MODEL_MB:.1f} models' worth), {r['seconds']} s")


if __name__ == "__main__":
    main()
