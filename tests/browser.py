"""The browser harness: ``streamlit run`` on localhost, driven by Debian's Chromium.

Playwright's own browser downloads are never used: Chromium comes from apt (``.ci/run``
installs it). Without Chromium or the playwright package the browser tests skip on a
developer's machine and fail in CI (``CI`` set), so CI cannot pass by not running them.

The fixtures (``app_url``, ``browser``, ``page``, ``visit``) reach every test module through
``tests/conftest.py``; the helpers (``settle``, ``metric``, ``screenshot``…) are imported from
here. Each test module gets its own server (``app_url`` is module-scoped).
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

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


class ServerError(RuntimeError):
    """``streamlit run`` exited or never answered its health check."""


@contextmanager
def streamlit_server(script: str = "streamlit_app.py", cwd: str | Path = ROOT,
                     env: dict[str, str] | None = None, port: int | None = None):
    """``streamlit run script`` on ``port`` (a free one unless given) of 127.0.0.1, with
    ``env`` added to the environment (a teacher's caps, say); yields its URL once healthy."""
    port = port or _free_port()
    url = f"http://127.0.0.1:{port}"
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", script, "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true"],
        cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false", **(env or {})})
    try:
        deadline = time.monotonic() + SERVER_START_S
        while not _healthy(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                why = "exited" if proc.poll() is not None else f"not healthy in {SERVER_START_S} s"
                log.seek(0)
                raise ServerError(f"streamlit run {script} {why}:\n"
                                  f"{log.read().decode(errors='replace')[-3000:]}")
            time.sleep(0.2)
        yield url
    finally:
        _stop(proc)
        log.close()


@pytest.fixture(scope="module")
def app_url():
    """A fresh ``streamlit run streamlit_app.py`` (so this checkout's library is imported)."""
    try:
        with streamlit_server() as url:
            yield url
    except ServerError as exc:
        pytest.fail(str(exc), pytrace=False)


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
