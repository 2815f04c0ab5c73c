"""The app in a real browser: ``streamlit run`` on localhost, driven by Debian's Chromium.

Playwright's own browser downloads are never used: Chromium comes from apt (``.ci/run``
installs it). Without Chromium or the playwright package these tests skip on a developer's
machine and fail in CI (``CI`` set), so CI cannot pass by not running them.

The tests also refresh the screenshots under ``docs/img/`` that the README shows.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from cnnviz.presets import PRESETS
from cnnviz.specs import spec_to_json
from cnnviz.specs.url import spec_to_token
from cnnviz.workbench import analyse

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # reported by the ``browser`` fixture: skip locally, fail in CI
    sync_playwright = expect = None

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "docs" / "img"
CHROMIUM = os.environ.get("CNNVIZ_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
VIEWPORT = {"width": 1400, "height": 1000}
SERVER_START_S = 60
# A screenshot taller than this is cut off, so the committed PNGs stay small (< 400 KB).
MAX_SCREENSHOT_HEIGHT = 2400


def _missing_browser() -> str | None:
    if sync_playwright is None:
        return "the playwright Python package is not installed (requirements-dev.txt)"
    if not (os.access(CHROMIUM, os.X_OK) or shutil.which(CHROMIUM)):
        return f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
            return r.read().decode().strip() == "ok"
    except OSError:
        return False


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    """A fresh ``streamlit run streamlit_app.py`` (so this checkout's library is imported)."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path_factory.mktemp("streamlit") / "server.log"
    env = {**os.environ, "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "streamlit_app.py",
             "--server.port", str(port), "--server.address", "127.0.0.1",
             "--server.headless", "true"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + SERVER_START_S
        while not _healthy(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                why = "exited" if proc.poll() is not None else f"not healthy in {SERVER_START_S} s"
                pytest.fail(f"streamlit run {why}:\n{log_path.read_text()[-3000:]}",
                            pytrace=False)
            time.sleep(0.25)
        yield url
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def browser():
    missing = _missing_browser()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"browser tests must run in CI: {missing}", pytrace=False)
        pytest.skip(missing)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    """A new browser session (its own Streamlit session and session state)."""
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    context.set_default_timeout(30_000)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    yield pg
    context.close()
    assert not errors, f"JavaScript errors in the page: {errors}"


@pytest.fixture
def visit(page, app_url):
    """``visit(path)``: load a page of the app, wait until it is drawn, check no exception."""
    def load(path: str) -> None:
        page.goto(app_url + path)
        page.locator('[data-testid="stMain"] h1').first.wait_for()
        settle(page)
        no_exception(page)
    return load


def settle(page) -> None:
    """Wait until Streamlit has finished the current run and drawn everything it sent."""
    page.wait_for_function(
        """() => {
            const app = document.querySelector('[data-testid="stApp"]');
            return app && app.dataset.testConnectionState === 'CONNECTED'
                && app.dataset.testScriptState === 'notRunning'
                && !document.querySelector('[data-stale="true"]')
                && !document.querySelector('[data-testid="stSkeleton"]');
        }""")
    page.wait_for_timeout(150)  # a last layout pass (charts, fonts)


def no_exception(page) -> None:
    expect(page.locator('[data-testid="stException"]')).to_have_count(0)


def metric(page, label: str):
    """The value of the ``st.metric`` with this label (in the main area)."""
    box = page.locator('[data-testid="stMain"] [data-testid="stMetric"]').filter(
        has=page.locator('[data-testid="stMetricLabel"]', has_text=label))
    return box.first.locator('[data-testid="stMetricValue"]')


def table_cells(page, index: int = 0) -> list[str]:
    """The visible cells of a dataframe: glide-data-grid draws on a canvas but keeps an
    accessible table of the rows on screen."""
    frame = page.locator('[data-testid="stMain"] [data-testid="stDataFrame"]').nth(index)
    return frame.locator("td").all_inner_texts()


def slider(page, label: str, nth: int = 0):
    """The ``nth`` slider labelled ``label`` (its accessible name repeats the label)."""
    thumbs = page.locator(f'[data-testid="stMain"] input[type="range"][aria-label="{label}"]')
    return thumbs.nth(nth)


def press_slider(page, label: str, key: str, nth: int = 0) -> None:
    thumb = slider(page, label, nth)
    thumb.focus()
    thumb.press(key)


def screenshot(page, name: str, max_height: int = MAX_SCREENSHOT_HEIGHT) -> Path:
    """The whole page, not just the viewport: Streamlit scrolls inside ``stMain``, so the
    viewport grows to the content's height (up to ``max_height``) for the shot."""
    height = page.evaluate(
        "() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
    height = min(max(VIEWPORT["height"], height), max_height)
    page.set_viewport_size({"width": VIEWPORT["width"], "height": height})
    try:
        settle(page)
        page.wait_for_timeout(300)  # plotly redraws at the new size
        IMAGES.mkdir(parents=True, exist_ok=True)
        path = IMAGES / f"{name}.png"
        page.screenshot(path=path, full_page=False, animations="disabled", caret="hide")
    finally:
        page.set_viewport_size(VIEWPORT)
    return path


# --- Home ---------------------------------------------------------------------------------

def test_home_shows_the_zoo(page, visit):
    visit("/")
    main = page.locator('[data-testid="stMain"]')
    expect(main.get_by_role("heading", level=1)).to_contain_text("cnnviz")
    book = ["lenet", "lenet-bn", "alexnet", "vgg", "nin", "googlenet", "resnet18", "densenet"]
    for name in book:
        expect(main.get_by_role("heading", name=name, exact=True)).to_be_visible()
    expect(main.get_by_role("button", name="Open in the workbench")).to_have_count(len(book))
    expect(main.get_by_text("193–224").first).to_be_visible()  # alexnet's band
    screenshot(page, "home")

    card = main.locator('[data-testid="stVerticalBlock"]').filter(
        has=page.get_by_role("heading", name="resnet18", exact=True)).filter(
        has=page.get_by_role("button", name="Open in the workbench")).last
    card.get_by_role("button", name="Open in the workbench").click()
    expect(page.get_by_role("heading", name="Build", exact=True)).to_be_visible()
    page.wait_for_url(re.compile(r"/build\?preset=resnet18$"))
    expect(metric(page, "parameters")).to_have_text("11.2 M")


def test_sidebar_link_opens_build_and_a_slider_updates_the_layers(page, visit):
    visit("/?preset=vgg")
    page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name="Build").click()
    expect(page.get_by_role("heading", name="Build", exact=True)).to_be_visible()
    expect(slider(page, "num convs")).to_be_visible()
    settle(page)
    mult_adds = metric(page, "mult-adds").inner_text()
    cells = table_cells(page)
    assert cells[:2] == ["b1", "VGGBlock"], cells[:7]
    b1_params = cells[3]

    press_slider(page, "num convs", "ArrowRight")  # VGG block 1: one conv -> two

    page.wait_for_url(re.compile(r"[?&]net="))  # the edited network travels in the link
    expect(metric(page, "mult-adds")).not_to_have_text(mult_adds)
    expect(slider(page, "num convs")).to_have_value("2")
    b1_row = page.locator('[data-testid="stMain"] [data-testid="stDataFrame"]').first.locator("td")
    expect(b1_row.nth(3)).not_to_have_text(b1_params)  # b1's parameters, in the layer table
    settle(page)
    no_exception(page)
    after = table_cells(page)
    assert after[:2] == ["b1", "VGGBlock"], (cells[:7], after[:7])


# --- Input size ---------------------------------------------------------------------------

def test_input_size_shows_the_band_of_notes_alexnet(page, visit):
    visit("/sizes?preset=notes-alexnet")
    expect(metric(page, "smallest size")).to_have_text("193")
    expect(metric(page, "largest size")).to_have_text("224")
    expect(metric(page, "valid sizes")).to_have_text("193–224")
    chart = page.locator('[data-testid="stPlotlyChart"]').first
    expect(chart).to_contain_text("193")
    expect(chart).to_contain_text("224")
    expect(page.get_by_text("Below 193")).to_be_visible()
    expect(page.get_by_text("Above 224")).to_be_visible()
    screenshot(page, "sizes")


# --- Build: export ------------------------------------------------------------------------

def test_export_downloads_the_spec_and_runnable_code(page, visit, tmp_path):
    name = "notes-alexnet"
    visit(f"/build?preset={name}")
    page.get_by_role("tab", name="Export").click()

    with page.expect_download() as download:
        page.get_by_role("button", name="Download the spec (JSON)").click()
    assert download.value.suggested_filename == f"{name}.json"
    text = Path(download.value.path()).read_text()
    expected = spec_to_json(PRESETS[name].spec)
    assert json.loads(text) == json.loads(expected)
    assert text == expected

    with page.expect_download() as download:
        page.get_by_role("button", name="Download PyTorch code (.py)").click()
    assert download.value.suggested_filename == f"{name}.py"
    code = tmp_path / f"{name}.py"
    download.value.save_as(code)
    run = subprocess.run([sys.executable, str(code)], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "output shape: (1, 10)" in run.stdout, run.stdout

    page.get_by_role("tab", name="Conv arithmetic").click()
    expect(page.get_by_text("6400 ?= 5·5·256")).to_be_visible()
    settle(page)
    screenshot(page, "build-custom", max_height=1600)  # the first layers of a long list


def test_build_shape_flow_of_resnet18(page, visit):
    visit("/build?preset=resnet18")
    expect(metric(page, "output")).to_have_text("10")
    page.get_by_role("tab", name="Shape flow").click()
    chart = page.locator('[data-testid="stPlotlyChart"]').first
    expect(chart.locator(".main-svg").first).to_be_visible()
    expect(chart).to_contain_text("b5")
    screenshot(page, "build")


# --- Build: a size that does not run --------------------------------------------------------

def type_failing_size(page, n: int):
    """Type ``n`` into Build's input size; the diagnosis alert that must appear."""
    size = page.get_by_role("spinbutton", name="input size", exact=True)
    size.fill(str(n))
    size.press("Enter")
    alert = page.locator('[data-testid="stAlert"]').filter(has_text=f"Does not run at {n}×{n}")
    expect(alert).to_be_visible()
    return size, alert


def test_a_failing_size_typed_in_shows_the_diagnosis(page, visit):
    visit("/build?preset=nin")
    _, alert = type_failing_size(page, 20)
    expect(alert).to_contain_text("MaxPool2d")
    expect(alert).to_contain_text("Nearest sizes that work")
    settle(page)
    no_exception(page)
    # the rest of the page stays usable: the sidebar and the other tabs still answer
    expect(page.locator('[data-testid="stSidebar"]').get_by_text("Network", exact=True)).to_be_visible()
    page.get_by_role("tab", name="Export").click()
    expect(page.get_by_role("button", name="Download the spec (JSON)")).to_be_visible()


def test_a_link_to_notes_alexnet_at_100_shows_the_diagnosis(page, visit):
    spec = dataclasses.replace(PRESETS["notes-alexnet"].spec, input_size=100)
    visit(f"/build?net={spec_to_token(spec)}")
    alert = page.locator('[data-testid="stAlert"]').filter(has_text="Does not run at 100×100")
    expect(alert).to_be_visible()
    expect(alert).to_contain_text("Linear")
    expect(alert).to_contain_text("193")  # the nearest size that works
    expect(page.get_by_role("spinbutton", name="input size", exact=True)).to_have_value("100")


# --- Edits stick: each of these once lost an edit to the sidebar's preset box ------------

def test_notes_alexnet_size_typed_in_shows_the_diagnosis(page, visit):
    visit("/build?preset=notes-alexnet")
    size, alert = type_failing_size(page, 100)
    expect(alert).to_contain_text("Linear")
    assert "net=" in page.url
    settle(page)
    # the diagnosis offers the nearest size that works, one click away
    page.get_by_role("button", name="Use input size 193").click()
    expect(alert).to_have_count(0)
    expect(size).to_have_value("193")
    expect(metric(page, "output")).to_have_text("10")


def test_two_edits_in_a_row_both_stay(page, visit):
    visit("/build?preset=vgg")
    press_slider(page, "num convs", "ArrowRight")
    page.wait_for_url(re.compile(r"[?&]net="))
    settle(page)
    first_edit = page.url
    press_slider(page, "dropout", "ArrowLeft")
    page.wait_for_url(lambda url: url != first_edit)  # the server has seen the second edit
    settle(page)
    expect(slider(page, "dropout")).to_have_value(re.compile(r"^0\.4"))
    expect(slider(page, "num convs")).to_have_value("2")


def test_sidebar_follows_an_edit(page, visit):
    visit("/build?preset=vgg")
    vgg = PRESETS["vgg"].spec
    edited = dataclasses.replace(vgg, arch=((2, vgg.arch[0][1]), *vgg.arch[1:]))
    sidebar = page.locator('[data-testid="stSidebar"]')
    expect(sidebar).to_contain_text(f"{analyse(vgg).summary.total_params:,}")
    press_slider(page, "num convs", "ArrowRight")  # VGG block 1: one conv -> two
    page.wait_for_url(re.compile(r"[?&]net="))
    settle(page)
    expect(sidebar).to_contain_text(f"{analyse(edited).summary.total_params:,}")
    expect(sidebar).to_contain_text("edited network")


# --- Train --------------------------------------------------------------------------------

def test_a_training_run_draws_its_curve_and_stops(page, visit):
    """Start lenet-bn on the offline digits, watch the curve grow, stop it."""
    visit("/train?preset=lenet-bn")
    page.locator('[data-testid="stMain"] [data-testid="stSelectbox"]').filter(
        has_text="Data set").first.click()
    page.get_by_role("option", name="Digits (offline)").click()
    settle(page)
    epochs = page.get_by_role("spinbutton", name="Epochs")
    epochs.fill("500")
    epochs.press("Enter")
    settle(page)
    page.get_by_role("button", name="Start").click()
    # The live chart: count the plotted points of the train loss line as they come in.
    points = page.locator('[data-testid="stMain"] .js-plotly-plot .scatterlayer .trace '
                          '.points path')
    expect(points.first).to_be_visible(timeout=60_000)
    first = points.count()
    page.wait_for_function(
        f"""() => document.querySelectorAll(
            '[data-testid="stMain"] .js-plotly-plot .scatterlayer .trace .points path'
        ).length > {first}""", timeout=60_000)
    page.get_by_role("button", name="Stop").click()
    expect(page.locator('[data-testid="stMain"]')).to_contain_text("stopped", timeout=60_000)
    settle(page)
    no_exception(page)
    expect(page.get_by_role("button", name="Start")).to_be_enabled()
