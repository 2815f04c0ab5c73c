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
    ``lenet-bn`` on the digits, 10 epochs, batch size 256, size 28, book recipe: in the
    browser from clicking Start until the page says the run finished (data loading and the
    last poll included), against ``python -m cnnviz train lenet-bn --dataset digits --epochs
    10 --batch-size 256 --json`` (its training seconds). Both train the same examples, so the
    ratio CLI seconds / browser seconds is the browser's share of the CLI's examples/s.
    Target: ≥ 80 %.
``estimate``
    ``cnnviz.training.engine.estimate_seconds`` against the seconds the run took
    (``TrainingRun``, in this process), both with the app's thread setting
    (``cnnviz.training.job.app_threads``): ``lenet`` and ``lenet-bn`` on the digits at 28,
    10 epochs, in full; the large presets at their book sizes for one epoch of the first
    ``--limit`` examples. Target: within ±30 %.
"""
from __future__ import annotations

import argparse
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
from tests.browser import (CHROMIUM, CHROMIUM_ARGS, VIEWPORT, _free_port, _healthy,  # noqa: E402
                           _stop, settle)

PYTHON = sys.executable
BASELINE_PAGE = 'import streamlit as st\n\nst.title("x")\n'
TRAIN_ARGS = ["lenet-bn", "--dataset", "digits", "--epochs", "10", "--batch-size", "256"]


@contextmanager
def server(script: str, cwd: str = ROOT):
    """``streamlit run script`` on a free port; yields its URL once healthy."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen([PYTHON, "-m", "streamlit", "run", script, "--server.port", str(port),
                             "--server.address", "127.0.0.1", "--server.headless", "true"],
                            cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"})
    try:
        deadline = time.monotonic() + 120
        while not _healthy(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                raise RuntimeError(f"streamlit run {script} did not start:\n"
                                   f"{log.read().decode()[-2000:]}")
            time.sleep(0.1)
        yield url
    finally:
        _stop(proc)


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
    with server(script, cwd) as url:
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


def cli_train_seconds() -> float:
    out = subprocess.run([PYTHON, "-m", "cnnviz", "train", *TRAIN_ARGS, "--json"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    final = json.loads(out.strip().splitlines()[-1])
    assert final["state"] == "finished", final
    return float(final["seconds"])


def browser_train_seconds(browser, url: str) -> float:
    """Start → "finished" on the Train page, for the same run as ``TRAIN_ARGS``."""
    context = browser.new_context(viewport=VIEWPORT)
    try:
        page = context.new_page()
        page.goto(url + "/train?preset=lenet-bn")
        page.locator('[data-testid="stMain"] h1').first.wait_for(timeout=120_000)
        settle(page)
        page.locator('[data-testid="stMain"] [data-testid="stSelectbox"]').filter(
            has_text="Data set").first.click()
        page.get_by_role("option", name=re.compile("^Digits")).click()
        settle(page)
        for label, value in (("Epochs", "10"), ("Batch size", "256"), ("Input size", "28")):
            box = page.get_by_role("spinbutton", name=label)
            box.fill(value)
            box.press("Enter")
            settle(page)
        page.get_by_role("radio", name="book").check()
        settle(page)
        start = time.perf_counter()
        page.get_by_role("button", name="Start").click()
        page.get_by_text(re.compile(r"finished")).first.wait_for(timeout=600_000)
        return time.perf_counter() - start
    finally:
        context.close()


def bench_train(tries: int) -> None:
    cli, web = [], []
    with chromium() as browser, server("streamlit_app.py") as url:
        browser_train_seconds(browser, url)  # warm-up: imports, the data set's first load
        for _ in range(tries):  # interleaved, so both see the same machine
            cli.append(cli_train_seconds())
            web.append(browser_train_seconds(browser, url))
    from cnnviz.training.datasets import dataset_info
    examples = dataset_info("digits").split_sizes(None)[0] * 10
    c, w = statistics.median(cli), statistics.median(web)
    print(f"\n### Training in the browser against the CLI, {tries} tries, medians\n")
    print("`" + " ".join(TRAIN_ARGS) + "`\n")
    print("| where | seconds | examples/s | share of the CLI |")
    print("|---|---:|---:|---:|")
    print(f"| CLI (`python -m cnnviz train`, training seconds) | {c:.2f} | {examples / c:,.0f} "
          f"| 100 % |")
    print(f"| browser (Start → finished) | {w:.2f} | {examples / w:,.0f} "
          f"| {c / w * 100:.0f} % |")
    print("\nTarget (issue 8, item 17): the browser ≥ 80 % of the CLI's examples/s.")


ESTIMATE_CASES = [  # (preset, data set, epochs, limit): book sizes
    ("lenet", "digits", 10, None),
    ("lenet-bn", "digits", 10, None),
    ("alexnet", "digits", 1, 256),
    ("vgg", "digits", 1, 128),
    ("nin", "digits", 1, 256),
    ("googlenet", "digits", 1, 256),
    ("resnet18", "digits", 1, 256),
    ("densenet", "digits", 1, 256),
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
    args = parser.parse_args()
    print(f"{datetime.date.today()} · {cpu_model()} · {os.cpu_count()} CPUs · "
          f"Python {platform.python_version()} · `{' '.join(sys.argv)}`")
    if args.section in ("all", "load"):
        bench_load(args.tries)
    if args.section in ("all", "train"):
        bench_train(max(1, args.tries // 2))
    if args.section in ("all", "estimate"):
        bench_estimate(args.presets, args.limit_scale)


if __name__ == "__main__":
    main()
