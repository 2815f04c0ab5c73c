"""The browser harness: ``streamlit run`` on localhost, driven by Debian's Chromium.

Playwright's own browser downloads are never used: Chromium comes from apt (``.ci/run``
installs it). Without Chromium or the playwright package the browser tests skip on a
developer's machine and fail in CI (``CI`` set), so CI cannot pass by not running them.

The fixtures (``app_url``, ``browser``, ``page``, ``visit``) reach every test module through
``tests/conftest.py``; the helpers (``settle``, ``metric``, ``screenshot``…) are imported from
here. Each test module gets its own server (``app_url`` is module-scoped);
``streamlit_process`` starts one with its own environment and gives its process (memory, log).
``Session`` drives one tab among many at once with Playwright's async API, timing each action
and checking each page it settles on (tests/test_browser_load.py, benchmarks/bench_load.py).
"""
from __future__ import annotations

import fcntl
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

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


@dataclass
class Server:
    """A running ``streamlit run``: its URL, its process and what it printed."""

    url: str
    process: subprocess.Popen
    _log: IO[bytes]

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss_mb(self) -> float:
        """The server's resident memory (VmRSS of /proc/PID/status), in MB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise ServerError(f"no VmRSS for process {self.pid}")

    def cpu_seconds(self) -> float:
        """CPU time the server has used so far, all its threads (runs included), user + system
        (/proc/PID/stat)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def log(self) -> str:
        """Everything the server has printed so far (stdout and stderr)."""
        self._log.flush()
        self._log.seek(0)
        return self._log.read().decode(errors="replace")


@contextmanager
def streamlit_process(script: str = "streamlit_app.py", cwd: str | Path = ROOT,
                      env: dict[str, str] | None = None, port: int | None = None):
    """``streamlit run script`` on ``port`` (a free one unless given) of 127.0.0.1, with
    ``env`` added to the environment (a teacher's caps, say); yields a :class:`Server` once
    healthy."""
    port = port or _free_port()
    url = f"http://127.0.0.1:{port}"
    log = tempfile.TemporaryFile()
    # The server and Server.log share this file's offset: appending, the server's writes
    # never land where a read has just moved it.
    flags = fcntl.fcntl(log.fileno(), fcntl.F_GETFL)
    fcntl.fcntl(log.fileno(), fcntl.F_SETFL, flags | os.O_APPEND)
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", script, "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true"],
        cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false", **(env or {})})
    server = Server(url, proc, log)
    try:
        deadline = time.monotonic() + SERVER_START_S
        while not _healthy(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                why = "exited" if proc.poll() is not None else f"not healthy in {SERVER_START_S} s"
                raise ServerError(f"streamlit run {script} {why}:\n{server.log()[-3000:]}")
            time.sleep(0.2)
        yield server
    finally:
        _stop(proc)
        log.close()


@contextmanager
def streamlit_server(script: str = "streamlit_app.py", cwd: str | Path = ROOT,
                     env: dict[str, str] | None = None, port: int | None = None):
    """As :func:`streamlit_process`, yielding only the server's URL."""
    with streamlit_process(script, cwd, env, port) as server:
        yield server.url


@pytest.fixture(scope="module")
def app_url():
    """A fresh ``streamlit run streamlit_app.py`` (so this checkout's library is imported)."""
    try:
        with streamlit_server() as url:
            yield url
    except ServerError as exc:
        pytest.fail(str(exc), pytrace=False)


def require_browser() -> None:
    """Skip the calling test on a developer's machine without Chromium or Playwright; fail it
    in CI, so CI cannot pass by not running the browser tests."""
    missing = _missing_browser()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"browser tests must run in CI: {missing}", pytrace=False)
        pytest.skip(missing)


@pytest.fixture(scope="module")
def browser():
    require_browser()
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


# Streamlit's status, as its app element carries it: connected, no script running, nothing
# stale or still a skeleton.
SETTLED = """() => {
    const app = document.querySelector('[data-testid="stApp"]');
    return app && app.dataset.testConnectionState === 'CONNECTED'
        && app.dataset.testScriptState === 'notRunning'
        && !document.querySelector('[data-stale="true"]')
        && !document.querySelector('[data-testid="stSkeleton"]');
}"""
LAYOUT_MS = 150  # a last layout pass (charts, fonts) after the page settled


def settle(page) -> None:
    """Wait until Streamlit has finished the current run and drawn everything it sent."""
    page.wait_for_function(SETTLED)
    page.wait_for_timeout(LAYOUT_MS)


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


# --- Many sessions at once ----------------------------------------------------------------
# Playwright's async API drives many browser contexts (each its own Streamlit session) at the
# same time from one thread, as a class of students would: tests/test_browser_load.py and
# benchmarks/bench_load.py.

PAGE_TITLES = ("Home", "Build", "Input size", "Train", "Feature maps", "Connections",
               "BatchNorm")
HEADINGS = {"Home": "cnnviz"}  # a page's h1 where it is not its title in the navigation


@asynccontextmanager
async def async_chromium():
    from playwright.async_api import async_playwright
    async with async_playwright() as p:
        chromium = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            await chromium.close()


class Session:
    """One student's tab: a browser context of its own, so a Streamlit session of its own.

    Each action is timed from the moment it is taken until the page shows what it should and
    has settled (``timings``: (kind, seconds) pairs); each settled page is checked for
    Streamlit's exception boxes and its "Connection error" dialog, and JavaScript errors are
    caught (``problems``, one line each, naming the session and its URL).
    """

    def __init__(self, name: str, url: str, context, page):
        self.name, self.url, self.context, self.page = name, url, context, page
        self.timings: list[tuple[str, float]] = []
        self.problems: list[str] = []
        self.closed = False
        page.on("pageerror", lambda exc: self.problems.append(
            f"{self.name}: JavaScript error on {page.url}: {exc}"))

    @classmethod
    async def open(cls, browser, url: str, name: str, timeout_ms: float = 120_000) -> "Session":
        context = await browser.new_context(viewport=VIEWPORT)
        context.set_default_timeout(timeout_ms)
        return cls(name, url, context, await context.new_page())

    @property
    def main(self):
        return self.page.locator('[data-testid="stMain"]')

    @property
    def sidebar(self):
        return self.page.locator('[data-testid="stSidebar"]')

    def heading(self, title: str):
        return self.main.locator("h1").filter(has_text=HEADINGS.get(title, title)).first

    async def shown_text(self) -> str:
        """What the student can read in the main area: its text, and the values its inputs
        show (a selectbox shows its choice in an input, not as text)."""
        return await self.page.evaluate("""() => {
            const main = document.querySelector('[data-testid="stMain"]') || document.body;
            return [main.innerText, ...[...main.querySelectorAll('input')].map(i => i.value)]
                .join('\\n');
        }""")

    async def settle(self) -> None:
        await self.page.wait_for_function(SETTLED)
        await self.page.wait_for_timeout(LAYOUT_MS)
        await self.check()

    async def check(self) -> None:
        boxes = self.page.locator('[data-testid="stException"]')
        if count := await boxes.count():
            text = (await boxes.first.inner_text())[:500]
            self.problems.append(f"{self.name}: {count} exception(s) on {self.page.url}: {text}")
        if await self.page.get_by_text("Connection error").count():
            self.problems.append(f"{self.name}: Connection error on {self.page.url}")

    async def timed(self, kind: str, action, shown) -> float:
        """``await action()``, then ``await shown()``, then settle; the seconds it took."""
        start = time.perf_counter()
        await action()
        await shown()
        await self.settle()
        seconds = time.perf_counter() - start
        self.timings.append((kind, seconds))
        return seconds

    async def visit(self, path: str, title: str) -> float:
        """A fresh load of ``path`` (the session's first, or a reload)."""
        return await self.timed("load", lambda: self.page.goto(self.url + path),
                                lambda: self.heading(title).wait_for())

    async def go(self, title: str) -> float:
        """Switch to a page with the navigation's link, as a student does."""
        link = self.page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=title)
        return await self.timed("page", link.click, lambda: self.heading(title).wait_for())

    async def close(self) -> None:
        self.closed = True
        await self.context.close()
