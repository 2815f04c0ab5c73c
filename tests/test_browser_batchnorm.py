"""BatchNorm in a real browser (issue 11): lenet-bn's statistics and histograms, γ and β undone,
and lenet trained with and without BatchNorm, overlaid. The test also refreshes
``docs/img/batchnorm.png``."""
from __future__ import annotations

from tests.browser import expect, no_exception, screenshot, settle


def main(page):
    return page.locator('[data-testid="stMain"]')


def chart_titled(page, title: str):
    return main(page).locator('[data-testid="stPlotlyChart"]').filter(
        has=page.locator("text.gtitle", has_text=title))


def open_tab(page, name: str) -> None:
    main(page).get_by_role("tab", name=name).click()
    settle(page)
    no_exception(page)


def test_lenet_bn_statistics_affine_and_with_without(page, visit):
    visit("/batchnorm?preset=lenet-bn")
    expect(main(page).locator("h1").first).to_have_text("BatchNorm")
    expect(chart_titled(page, "b1.1 (BatchNorm2d, 6 channels) on this batch")).to_be_visible()
    expect(chart_titled(page, "Channel 0: 36864 values, step by step").first).to_be_visible()
    expect(main(page)).to_contain_text("training normalises with this one")
    page.mouse.move(5, 5)
    screenshot(page, "batchnorm")

    open_tab(page, "γ and β")
    main(page).get_by_role("button", name="Undo the normalisation").click()
    expect(main(page).get_by_text("the layer gives its input back")).to_be_visible()

    open_tab(page, "Train vs eval")
    expect(main(page).get_by_text("predictions change").first).to_be_visible()

    open_tab(page, "With vs without")
    box = main(page).get_by_role("spinbutton", name="Epochs")
    box.fill("3")
    box.press("Enter")
    settle(page)
    main(page).get_by_role("button", name="Train with and without BatchNorm").click()
    figure = chart_titled(page, "With and without BatchNorm, against examples seen")
    expect(figure).to_be_visible(timeout=120_000)
    settle(page)
    no_exception(page)
    for run in ("lenet-bn · lr 1.0 (book)", "lenet (no BatchNorm) · lr 0.9 (book)"):
        expect(figure.locator("g.legend text", has_text=run)).to_be_visible()
    expect(main(page).get_by_text("examples to reach 90%").first).to_be_visible(timeout=30_000)
    expect(main(page).get_by_text("not reached").first).to_be_visible()  # LeNet stays at 10 %
