"""Feature maps in a real browser (issue 9): ResNet-18 on a digit and on a photo — another
layer redraws the channel grid, a channel opens large, the residual block shows x, F(x) and
x + F(x), the receptive field is written out. The test also refreshes ``docs/img/maps.png``.
"""
from __future__ import annotations

import re

import pytest

from tests.browser import expect, no_exception, screenshot, settle

LAYER = "Layer (as in the layer table, grouped by block)"
B5_OUT = "b5 › b5.1.act · ReLU · 512×3×3"  # a residual block's output, 512 channels
B2_OUT = "b2 › b2.1.act · ReLU · 64×24×24"  # maps large enough to see something in them


def main(page):
    return page.locator('[data-testid="stMain"]')


def chart_titled(page, title: str):
    """The Plotly chart whose title (SVG text) contains ``title``."""
    return main(page).locator('[data-testid="stPlotlyChart"]').filter(
        has=page.locator("text.gtitle", has_text=title))


def drawn(page, sign) -> None:
    """Wait for ``sign`` of the rerun an action started, then for the rest of that run:
    ``settle`` alone may look before the rerun has begun."""
    expect(sign).to_be_visible()
    settle(page)
    no_exception(page)


def choose_photo(page) -> None:
    main(page).locator('[data-testid="stRadio"] label').filter(
        has_text=re.compile(r"^Photo$")).click()
    drawn(page, chart_titled(page, "photo china.jpg"))


def pick(page, label: str, typed: str, option, sign) -> None:
    """Type into the selectbox ``label``, click the option named ``option``, wait for ``sign``."""
    box = main(page).get_by_role("combobox", name=label, exact=True)
    box.click()
    box.fill(typed)
    page.get_by_role("option", name=option, exact=True).click()
    box.blur()  # no focus ring in the screenshot
    drawn(page, sign)


def test_resnet18_layers_channels_blocks_and_fields(page, visit):
    visit("/maps?preset=resnet18")
    expect(main(page).locator("h1").first).to_have_text("Feature maps")
    expect(main(page)).to_contain_text("What every layer of resnet18 computes on one picture")
    # The first convolution by default, on a digit of the test set, with its kernels.
    expect(chart_titled(page, "b1.0: 64 channels of 48×48")).to_be_visible()
    expect(chart_titled(page, "First convolution: 64 kernels of 7×7")).to_be_visible()

    pick(page, LAYER, "b5.1.act", B5_OUT, chart_titled(page, "b5.1.act: 512 channels of 3×3"))
    expect(main(page).get_by_role("combobox", name=LAYER, exact=True)).to_have_value(B5_OUT)
    expect(chart_titled(page, "b1.0: 64 channels")).to_have_count(0)
    expect(main(page)).to_contain_text("Page (of 8, 64 channels each)")
    expect(chart_titled(page, "First convolution")).to_have_count(0)  # only under b1.0

    expect(chart_titled(page, "b5.1.act, channel 0")).to_be_visible()
    pick(page, "Channel to see large", "c7 ", re.compile(r"^c7 \(mean "),
         chart_titled(page, "b5.1.act, channel 7"))
    expect(chart_titled(page, "b5.1.act, channel 0")).to_have_count(0)

    page.get_by_role("tab", name="Inside the blocks").click()
    inside = main(page).get_by_role("tabpanel", name="Inside the blocks")
    pick(page, "Block", "b5.1", "b5.1 (residual)", inside.locator("text.annotation-text").first)
    expect(inside).to_contain_text("A residual block learns only what to add to its input")
    titles = inside.locator('[data-testid="stPlotlyChart"] text.annotation-text')
    for title in ("x (the shortcut)", "F(x) (the body)", "x + F(x)",
                  "ReLU(x + F(x)) (the output)"):
        expect(titles.filter(has_text=title).first).to_be_visible()

    page.get_by_role("tab", name="Receptive field").click()
    field = main(page).get_by_role("tabpanel", name="Receptive field")
    expect(field).to_contain_text(re.compile(
        r"Receptive field of one position of b5\.1\.act: \d+×\d+ input pixels, jump 32 "))
    expect(field).to_contain_text("r_out = r_in + (k − 1)·j_in")
    expect(field.locator("text.gtitle", has_text="what b5.1.act[1, 1] can see")).to_be_visible()
    no_exception(page)

    # The README's picture: the digit through a layer whose 24×24 maps still show the 7.
    page.get_by_role("tab", name="Channels").click()
    pick(page, LAYER, "b2.1.act", B2_OUT, chart_titled(page, "b2.1.act: 64 channels of 24×24"))
    main(page).evaluate("el => el.scrollTo(0, 0)")  # picking scrolled the layer into view
    page.mouse.move(0, 0)  # no chart under the pointer: no Plotly toolbar in the picture
    screenshot(page, "maps")

    # A photo instead of the digit: the network runs again on it, the layer stays.
    choose_photo(page)
    expect(main(page).get_by_role("combobox", name="Photo (bundled with scikit-learn)")) \
        .to_have_value("china.jpg")
    expect(chart_titled(page, "b2.1.act: 64 channels of 24×24")).to_be_visible()
    expect(chart_titled(page, "as the network receives it: 1×96×96")).to_be_visible()
    expect(chart_titled(page, "Digits test image")).to_have_count(0)
    expect(main(page).locator('[data-testid="stAlertContentError"]')).to_have_count(0)


def test_another_layer_after_switching_to_a_photo(page, visit):
    visit("/maps?preset=resnet18")
    choose_photo(page)
    pick(page, LAYER, "b5.1.act", B5_OUT, chart_titled(page, "b5.1.act: 512 channels of 3×3"))
