"""The app in a real browser: ``streamlit run`` on localhost, driven by Debian's Chromium
(see ``tests/browser.py``). The tests also refresh the screenshots under ``docs/img/`` that
the README shows.
"""
from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

from cnnviz.presets import PRESETS
from cnnviz.specs import spec_to_json
from cnnviz.specs.url import spec_to_token
from cnnviz.workbench import analyse
from tests.browser import (expect, metric, no_exception, press_slider, screenshot, settle,
                           slider, table_cells)


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
    page.get_by_text("time budget", exact=True).click()  # a run that outlasts the checks
    settle(page)
    budget = page.get_by_role("spinbutton", name="Time budget (seconds)")
    budget.fill("300")
    budget.press("Enter")
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
    screenshot(page, "train")
