"""The app in a real browser (issue 8, items 16 and 17): fresh loads, training speed, estimates.

Each measurement starts its own ``streamlit run`` servers on free ports and drives Debian's
Chromium (``/usr/bin/chromium``, see ``tests/browser.py``) with Playwright. Printed: Markdown
tables with medians and ratios against a baseline measured in the same run on the same
machine; nothing is asserted. Take final numbers on an otherwise idle machine. Run from the
repository root, all sections in one command:

    .venv/bin/python benchmarks/bench_browser.py                # all: load, train, estimate
    .venv/bin/python benchmarks/bench_browser.py load --tries 5
    .venv/bin/python benchmarks/bench_browser.py train --tries 3
    .venv/bin/python benchmarks/bench_browser.py estimate

Sections:

``load``
    A fresh load of the Home page: a new browser context (a new Streamlit session) opens
    ``/`` and the clock stops when the main area's first ``h1`` is drawn. The first try on a
    newly started server (imports, first analyses) is shown apart from the later ones.
    Baseline: a one-line page (``st.title("x")`` in a temporary file) served the same way.
    Target: Home ≤ 1.5× the baseline.
``train``
    ``lenet-bn`` on the digits, batch size 256, size 28, book recipe, 10 epochs (the issue's
    run) and 40: watched in the browser against ``python -m cnnviz train lenet-bn --dataset
    digits --epochs N --batch-size 256 --json``. Compared: the engine's own training seconds
    (tests excluded) of each run, from the CLI's JSON and from the page's metrics CSV
    download, so the ratio is the browser's share of the CLI's training examples/s. Also
    printed: each run's whole time (in the browser, Start click → "finished" drawn), and the
    page's estimate for the run against the watched run's first step → last test.
    Target: ≥ 80 %; the estimate within ±30 %. ``--epochs 10`` runs only the issue's run.
``estimate``
    ``cnnviz.training.engine.estimate_seconds`` against the seconds the run took
    (``TrainingRun``, in this process), both with the app's thread setting
    (``cnnviz.training.job.app_threads``): ``lenet`` and ``lenet-bn`` on the digits at 28,
    10 epochs, in full; the large presets at their book sizes for one epoch of the first
    few hundred examples (two to four steps; ``--limit-scale`` scales them). Target: within
    ±30 %.
"""
from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # repo root
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # benchmarks/

from machine import cpu_model  # noqa: E402
from tests.browser import (CHROMIUM, CHROMIUM_ARGS, VIEWPORT, settle,  # noqa: E402
                           streamlit_server)

PYTHON = sys.executable
BASELINE_PAGE = 'import streamlit as st\n\nst.title("x")\n'
EPOCHS = (10, 40)  # the run, and one long enough that fixed costs fade


def train_args(epochs: int) -> list[str]:
    return ["lenet-bn", "--dataset", "digits", "--epochs", str(epochs), "--batch-size", "256"]


@contextmanager
def chromium():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def fresh_load_seconds(browser, url: str) -> float:
    """A new session opens ``url``; seconds until the main area's first h1 is drawn."""
    context = browser.new_context(viewport=VIEWPORT)
    try:
        page = context.new_page()
        start = time.perf_counter()
        page.goto(url, wait_until="commit")
        page.locator('[data-testid="stMain"] h1').first.wait_for(timeout=120_000)
        return time.perf_counter() - start
    finally:
        context.close()


def load_times(browser, script: str, tries: int, cwd: str = ROOT) -> tuple[float, list[float]]:
    with streamlit_server(script, cwd) as url:
        first = fresh_load_seconds(browser, url + "/")
        return first, [fresh_load_seconds(browser, url + "/") for _ in range(tries)]


def bench_load(tries: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, chromium() as browser:
        with open(os.path.join(tmp, "one_line.py"), "w") as f:
            f.write(BASELINE_PAGE)
        base_first, base = load_times(browser, "one_line.py", tries, cwd=tmp)
        home_first, home = load_times(browser, "streamlit_app.py", tries)
    print(f"\n### Fresh load (new browser context → first h1), {tries} tries, medians\n")
    print("| page | first load after server start | later fresh loads | × one-line page |")
    print("|---|---:|---:|---:|")
    print(f"| one-line page (`st.title`) | {base_first:.2f} s | {statistics.median(base):.2f} s "
          f"| 1.00× |")
    print(f"| Home | {home_first:.2f} s | {statistics.median(home):.2f} s | "
          f"{statistics.median(home) / statistics.median(base):.2f}× (first: "
          f"{home_first / base_first:.2f}×) |")
    print("\nTarget (issue 8, item 16): later fresh loads ≤ 1.5× the one-line page.")


def cli_train_seconds(epochs: int) -> tuple[float, float]:
    """(training seconds, run seconds) of the CLI run: the engine's clock, tests excluded,
    and the run's whole time from its first step to its last test."""
    out = subprocess.run([PYTHON, "-m", "cnnviz", "train", *train_args(epochs), "--json"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    *epochs, final = [json.loads(line) for line in out.strip().splitlines()]
    assert final["state"] == "finished", final
    return float(epochs[-1]["train_seconds"]), float(final["seconds"])


def browser_train_seconds(browser, url: str, epochs: int) -> tuple[float, float, float]:
    """(training seconds, Start → "finished" wall seconds, first step → last test seconds) of
    the same run as ``train_args``
    on the Train page. The training seconds are the engine's own clock in the server (tests
    excluded), read from the page's metrics CSV download: the same clock the CLI reports."""
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    try:
        page = context.new_page()
        page.goto(url + "/train?preset=lenet-bn")
        page.locator('[data-testid="stMain"] h1').first.wait_for(timeout=120_000)
        settle(page)
        page.locator('[data-testid="stMain"] [data-testid="stSelectbox"]').filter(
            has_text="Data set").first.click()
        page.get_by_role("option", name=re.compile("^Digits")).click()
        settle(page)
        for label, value in (("Epochs", str(epochs)), ("Batch size", "256"), ("Input size", "28")):
            box = page.get_by_role("spinbutton", name=label)
            box.fill(value)
            box.press("Enter")
            settle(page)
        page.get_by_role("radio", name="book").check()
        settle(page)
        start = time.perf_counter()
        page.get_by_role("button", name="Start").click()
        page.get_by_text(re.compile(r"finished")).first.wait_for(timeout=600_000)
        wall = time.perf_counter() - start
        settle(page)
        with page.expect_download() as download:
            page.get_by_role("button", name="Download the metrics (CSV)").click()
        rows = list(csv.DictReader(open(download.value.path())))
        latest = max(int(r["run"]) for r in rows)
        last = [r for r in rows if int(r["run"]) == latest][-1]
        return float(last["train_seconds"]), wall, float(last["seconds"])
    finally:
        context.close()


def app_estimate(epochs: int) -> float:
    """The Train page's estimate for the run of ``train_args``, with the app's threads."""
    from cnnviz.presets import PRESETS
    from cnnviz.training.config import TrainConfig
    from cnnviz.training.engine import estimate_seconds
    from cnnviz.training.job import app_threads
    config = TrainConfig(dataset="digits", epochs=epochs, batch_size=256, size=28,
                         recipe="book", device="cpu")
    return estimate_seconds(PRESETS["lenet-bn"].spec, config, threads=app_threads())


def bench_train(tries: int, runs: tuple[int, ...] = EPOCHS) -> None:
    with chromium() as browser, streamlit_server("streamlit_app.py") as url:
        browser_train_seconds(browser, url, runs[0])  # warm-up: imports, the first load
        for epochs in runs:
            cli, web = [], []
            for _ in range(tries):  # interleaved, so both see the same machine
                cli.append(cli_train_seconds(epochs))
                web.append(browser_train_seconds(browser, url, epochs))
            _train_table(epochs, tries, cli, web)
    print("\nTarget (issue 8, item 17): the browser ≥ 80 % of the CLI's examples/s. The whole-run "
          "column adds, in the browser, the click's rerun, the data set's load, the last "
          "poll and drawing the results.")


def _train_table(epochs: int, tries: int, cli: list, web: list) -> None:
    from cnnviz.training.datasets import dataset_info
    examples = dataset_info("digits").split_sizes(None)[0] * epochs
    c_train = statistics.median(t for t, _ in cli)
    c_run = statistics.median(r for _, r in cli)
    w_train = statistics.median(t for t, _, _ in web)
    w_wall = statistics.median(w for _, w, _ in web)
    w_run = statistics.median(r for _, _, r in web)
    print(f"\n### Training in the browser against the CLI, {tries} tries, medians\n")
    print("`" + " ".join(train_args(epochs)) + "`\n")
    print("| where | training s (tests excluded) | training examples/s | share of the CLI "
          "| whole run s |")
    print("|---|---:|---:|---:|---:|")
    print(f"| CLI (`python -m cnnviz train --json`) | {c_train:.2f} | "
          f"{examples / c_train:,.0f} | 100 % | {c_run:.2f} (first step → last test) |")
    print(f"| browser, watched (metrics CSV of the run) | {w_train:.2f} | "
          f"{examples / w_train:,.0f} | {c_train / w_train * 100:.0f} % | {w_wall:.2f} "
          "(Start click → \"finished\" drawn) |")
    estimate = app_estimate(epochs)
    print(f"\nThe page's estimate for this run: {estimate:.2f} s; the run watched in the browser "
          f"took {w_run:.2f} s from its first step to its last test: estimate / actual "
          f"{estimate / w_run:.2f}.")


# (preset, data set, epochs, limit): book sizes; two or more steps each, so that a one-step run's
# first-call costs do not decide the ratio
ESTIMATE_CASES = [
    ("lenet", "digits", 10, None),
    ("lenet-bn", "digits", 10, None),
    ("alexnet", "digits", 1, 512),
    ("vgg", "digits", 1, 256),
    ("nin", "digits", 1, 512),
    ("googlenet", "digits", 1, 512),
    ("resnet18", "digits", 1, 512),
    ("densenet", "digits", 1, 512),
]


def bench_estimate(presets: list[str] | None, limit_scale: float) -> None:
    from cnnviz.presets import PRESETS
    from cnnviz.training.config import TrainConfig
    from cnnviz.training.data import load_dataset
    from cnnviz.training.engine import TrainingRun, estimate_seconds
    from cnnviz.training.job import app_threads

    threads = app_threads()
    print(f"\n### Estimate against the run, torch threads {threads} (the app's setting)\n")
    print("| preset | size | data | epochs | estimate | actual | estimate / actual |")
    print("|---|---:|---|---:|---:|---:|---:|")
    for name, dataset, epochs, limit in ESTIMATE_CASES:
        if presets and name not in presets:
            continue
        spec = PRESETS[name].spec
        limit = max(2, int(limit * limit_scale)) if limit else None
        config = TrainConfig(dataset=dataset, epochs=epochs, size=spec.input_size,
                             limit=limit, device="cpu")
        estimate = estimate_seconds(spec, config, threads=threads)
        data = load_dataset(dataset, config.data_root, limit=limit)
        run = TrainingRun(spec, config, dataset=data, threads=threads).start()
        run.join()
        actual = run.points()[-1].seconds if run.points() else float("nan")
        what = f"first {limit}" if limit else "all"
        print(f"| {name} | {spec.input_size} | {dataset} ({what}) | {epochs} | {estimate:.1f} s "
              f"| {actual:.1f} s | {estimate / actual:.2f} |", flush=True)
    print("\nTarget (issue 8, item 17): estimate / actual within 0.70–1.30.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("section", nargs="?", choices=["all", "load", "train", "estimate"],
                        default="all")
    parser.add_argument("--tries", type=int, default=5)
    parser.add_argument("--presets", nargs="*", help="estimate: only these presets")
    parser.add_argument("--limit-scale", type=float, default=1.0,
                        help="estimate: scale the large presets' example limits")
    parser.add_argument("--epochs", type=int, nargs="*", default=list(EPOCHS),
                        help=f"train: the runs' epochs (default {' and '.join(map(str, EPOCHS))})")
    args = parser.parse_args()
    print(f"{datetime.date.today()} · {cpu_model()} · {os.cpu_count()} CPUs · "
          f"Python {platform.python_version()} · `{' '.join(sys.argv)}`")
    if args.section in ("all", "load"):
        bench_load(args.tries)
    if args.section in ("all", "train"):
        bench_train(max(1, args.tries // 2), tuple(args.epochs))
    if args.section in ("all", "estimate"):
        bench_estimate(args.presets, args.limit_scale)


if __name__ == "__main__":
    main()
