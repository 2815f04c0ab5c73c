"""The app's shell in a real browser (issue 8): the navigation on the very first visit after
the server starts (item 16) and the URL of the current network while the Train page polls a
run (item 6). See ``tests/browser.py`` for the harness."""
from __future__ import annotations

import re
import time

import pytest

from tests.browser import VIEWPORT, expect, no_exception, settle, streamlit_server

NAV = '[data-testid="stSidebarNav"]'


@pytest.fixture
def fresh_server():
    """A server no browser has visited yet (the module's ``app_url`` may have been used)."""
    with streamlit_server() as url:
        yield url


def test_the_first_visit_after_a_server_start_never_shows_the_old_page_list(
        browser, fresh_server):
    page = browser.new_context(viewport=VIEWPORT).new_page()
    page.goto(fresh_server + "/train?preset=lenet-bn", wait_until="commit")
    seen = set()
    deadline = time.monotonic() + 120
    while not page.locator('[data-testid="stMain"] h1').count():
        assert time.monotonic() < deadline, "the Train page was not drawn in 120 s"
        nav = page.locator(NAV)
        if nav.count():
            seen.add(nav.first.inner_text())
        page.wait_for_timeout(30)
    # Streamlit's page list of the pages/ folder names the files ("streamlit app", "build").
    assert not [t for t in seen if "streamlit app" in t.lower()], seen
    expect(page.get_by_role("heading", name="Train", exact=True)).to_be_visible()
    nav = page.locator(NAV)
    for name in ("Home", "Build", "Input size", "Train"):
        expect(nav.get_by_role("link", name=name)).to_be_visible()
    expect(nav).not_to_contain_text("streamlit app")
    page.wait_for_url(re.compile(r"/train\?preset=lenet-bn$"))
    settle(page)
    no_exception(page)
    page.context.close()


def _network_shown(page) -> str:
    return page.locator('[data-testid="stSidebar"] [data-testid="stMarkdownContainer"] strong'
                        ).first.inner_text()


def test_the_url_keeps_the_network_while_the_train_page_polls_a_run(page, visit):
    visit("/train?preset=lenet")
    page.locator('[data-testid="stMain"] [data-testid="stSelectbox"]').filter(
        has_text="Data set").first.click()
    page.get_by_role("option", name=re.compile("^Digits")).click()
    settle(page)
    page.get_by_text("time budget", exact=True).click()  # a run that outlasts the checks
    settle(page)
    budget = page.get_by_role("spinbutton", name="Time budget (seconds)")
    budget.fill("300")
    budget.press("Enter")
    settle(page)
    page.locator('[data-testid="stSidebar"] [data-testid="stSelectbox"]').first.click()
    page.get_by_role("option", name=re.compile(r"^lenet-bn ")).click()
    page.wait_for_url(re.compile(r"/train\?preset=lenet-bn$"))
    expect(page.locator('[data-testid="stSidebar"]')).to_contain_text("lenet-bn")
    settle(page)
    page.get_by_role("button", name="Start").click()
    expect(page.get_by_role("button", name="Stop")).to_be_enabled(timeout=60_000)
    try:
        # The browser's URL loses the network (as it did after a poll or a page switch that
        # carried an old query): while only the run's poll reruns, the URL must come back.
        for lost in ("/train", "/train?preset=lenet"):
            page.evaluate("url => window.history.replaceState({}, '', url)", lost)
            # the session's run count follows the network (&runs=1: cnnviz.ui.state)
            page.wait_for_url(re.compile(r"/train\?preset=lenet-bn&runs=1$"), timeout=10_000)
            assert _network_shown(page) == "lenet-bn"
    finally:
        page.get_by_role("button", name="Stop").click()
    expect(page.locator('[data-testid="stMain"]')).to_contain_text("stopped", timeout=60_000)
    settle(page)
    no_exception(page)
    # the run is kept (and counted in the URL) only if it trained a step before the Stop
    page.wait_for_url(re.compile(r"/train\?preset=lenet-bn(&runs=1)?$"))
    assert _network_shown(page) == "lenet-bn"
