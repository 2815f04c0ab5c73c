"""The server restarted while a browser had the app open (issue 12, faults).

Streamlit keeps a session's state, its runs among them, in the server's memory: a restart loses
them. The browser reconnects to the new server with the URL it had, so the network (in the
link) comes back, and the run count the URL carried (``&runs=N``, cnnviz.ui.state) lets the
new session say what was lost instead of silently showing an empty run history.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from cnnviz.presets import PRESETS
from cnnviz.specs.url import spec_from_token, spec_to_token
from cnnviz.workbench import analyse
from tests.browser import _free_port, expect, no_exception, settle, streamlit_server
from tests.test_browser_train import main, set_number

# Where the screenshot of the message goes for the report (not a docs image).
SHOT = Path("/tmp/i12/restart.png")


def sidebar(page):
    return page.locator('[data-testid="stSidebar"]')


def token_in(url: str) -> str:
    return url.split("net=", 1)[1].split("&", 1)[0]


def lost_notice(page):
    return sidebar(page).locator('[data-testid="stAlert"]').filter(
        has_text="earlier session is gone")


def lost_text(runs: int) -> str:
    return ("This page's earlier session is gone — the server restarted, the session expired or "
            f"the page was reloaded — and with it its {runs} run{'s' if runs > 1 else ''} "
            "(curves, results and weights). The network is kept because it is in the link; "
            "download a run's weights to keep them.")


def test_a_restart_keeps_the_linked_network_and_says_the_runs_are_gone(page, tmp_path):
    edited = dataclasses.replace(PRESETS["lenet-bn"].spec, dense=(100, 84))
    params = analyse(edited).summary.total_params
    port = _free_port()
    env = {"CNNVIZ_DATA": str(tmp_path / "data")}  # no Fashion-MNIST: the digits, offline
    with streamlit_server(env=env, port=port) as url:
        page.goto(f"{url}/train?net={spec_to_token(edited)}")
        main(page).locator("h1").first.wait_for()
        settle(page)
        set_number(page, "Epochs", 1)
        page.get_by_role("button", name="Start").click()
        expect(main(page)).to_contain_text("Run #1 finished", timeout=90_000)
        settle(page)
        no_exception(page)
        assert "runs=1" in page.url and spec_from_token(token_in(page.url)) == edited
        expect(lost_notice(page)).to_have_count(0)

    # The server is gone, then back on the same port. The page reconnects by itself but
    # shows what it had until it runs again (nothing polls a page whose run has ended):
    # reloaded (or at the next click) it runs in a new session, which finds runs=1 and none.
    with streamlit_server(env=env, port=port):
        page.wait_for_function("() => document.querySelector('[data-testid=\"stApp\"]')"
                               ".dataset.testConnectionState === 'CONNECTED'", timeout=60_000)
        page.reload()
        main(page).locator("h1").first.wait_for()
        settle(page)
        no_exception(page)
        expect(lost_notice(page)).to_have_text(lost_text(1))
        # The linked network, not the default one, and no run history.
        expect(sidebar(page)).to_contain_text("edited network")
        expect(sidebar(page)).to_contain_text(f"params {params:,}")
        expect(main(page)).to_contain_text("Short training runs of edited lenet")
        expect(main(page)).not_to_contain_text("Run history")
        assert "runs=" not in page.url and spec_from_token(token_in(page.url)) == edited
        SHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SHOT, animations="disabled", caret="hide")

        # A run that is training when the server goes: its page polls, so it recovers alone.
        set_number(page, "Epochs", 90)
        page.get_by_role("button", name="Start").click()
        expect(main(page)).to_contain_text("running on cpu", timeout=60_000)
        assert "runs=1" in page.url
    with streamlit_server(env=env, port=port):
        expect(lost_notice(page)).to_have_text(lost_text(1), timeout=90_000)
        settle(page)
        no_exception(page)
        expect(main(page)).not_to_contain_text("running on cpu")
        expect(sidebar(page)).to_contain_text("edited network")
        assert "runs=" not in page.url and spec_from_token(token_in(page.url)) == edited
