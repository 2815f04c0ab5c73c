"""The Train page in a real browser (issue 8): the default data set is one that is here, a
run that ends near chance says why, a stopped run is tested when it stops, the speed curve
says what it counts, and no message promises a page that does not exist.

The server of this module gets an empty data folder, so Fashion-MNIST is not downloaded
whatever this machine has cached, and no test needs the network.
"""
from __future__ import annotations

import re

import pytest

from tests.browser import expect, metric, no_exception, settle


@pytest.fixture(scope="module", autouse=True)
def empty_data_folder(tmp_path_factory):
    """Set before the module's server starts (autouse fixtures come first in their scope)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CNNVIZ_DATA", str(tmp_path_factory.mktemp("data")))
        yield


def main(page):
    return page.locator('[data-testid="stMain"]')


def set_number(page, label: str, value: int) -> None:
    box = page.get_by_role("spinbutton", name=label)
    box.fill(str(value))
    box.press("Enter")
    settle(page)


def test_plain_lenet_on_the_default_data_explains_a_run_near_chance(page, visit):
    visit("/train?preset=lenet")
    # The default is the offline digits; the book's Fashion-MNIST is one click away.
    expect(main(page).get_by_role("combobox", name="Data set")) \
        .to_have_value("Digits (offline)")
    expect(page.get_by_role("button", name="Use Fashion-MNIST (30 MB)")) \
        .to_be_visible()
    set_number(page, "Epochs", 2)
    page.get_by_role("button", name="Start").click()
    expect(main(page)).to_contain_text("Run #1 finished", timeout=90_000)
    settle(page)
    no_exception(page)
    advice = main(page).locator('[data-testid="stAlert"]').filter(has_text="about chance")
    expect(advice).to_be_visible()
    expect(advice).to_contain_text("12 optimizer steps")
    expect(advice).to_contain_text("lenet-bn")
    expect(main(page)).to_contain_text("training examples / s (tests excluded)")
    expect(main(page)).not_to_contain_text("other page")
    expect(metric(page, "epochs")).to_have_text("2")
    expect(main(page)).to_contain_text("#1 lenet · digits · 28px · 2 ep · bs 256")


def test_start_trains_with_the_value_typed_just_before_the_click(page, visit):
    """The typed epochs reach the server with the click itself, after Start was drawn."""
    visit("/train?preset=lenet-bn")
    page.get_by_role("spinbutton", name="Epochs").fill("3")  # no Enter, no blur
    page.get_by_role("button", name="Start").click()
    expect(main(page)).to_contain_text("Run #1 finished", timeout=90_000)
    settle(page)
    expect(main(page)).to_contain_text("#1 lenet-bn · digits · 28px · 3 ep · bs 256")
    expect(metric(page, "epochs")).to_have_text("3")


def test_a_stopped_run_shows_the_test_of_what_it_learned(page, visit):
    visit("/train?preset=lenet-bn")
    set_number(page, "Epochs", 100)  # the default cap (CNNVIZ_MAX_EPOCHS): ~7 s of digits
    page.get_by_role("button", name="Start").click()
    points = main(page).locator('.js-plotly-plot .scatterlayer .trace .points path')
    expect(points.first).to_be_visible(timeout=60_000)
    page.get_by_role("button", name="Stop").click()
    stopped = main(page).locator('[data-testid="stAlert"]').filter(has_text="was stopped")
    expect(stopped).to_contain_text(re.compile(r"Run #1 was stopped at epoch \d+(\.\d{1,2})?;"),
                                    timeout=60_000)
    settle(page)
    no_exception(page)
    expect(stopped).not_to_contain_text("(stopped)")
    expect(metric(page, "epochs")).to_have_text(re.compile(r"^\d+(\.\d{1,2})?$"))
    expect(metric(page, "test accuracy")).to_have_text(re.compile(r"^\d+\.\d%$"))
