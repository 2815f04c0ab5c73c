"""Connections in a real browser (issue 10): ResNet-18 folded by stage, a stage and a block
opened from the picker, a node clicked for its numbers, and on to Feature maps at that layer.
The test also refreshes ``docs/img/graph.png``."""
from __future__ import annotations

from tests.browser import expect, no_exception, screenshot, settle


def main(page):
    return page.locator('[data-testid="stMain"]')


def counts(page):
    return main(page).get_by_text("nodes and").first


def node_points(page):
    """The markers of the figure's node trace (the last scatter trace)."""
    return main(page).locator("g.scatterlayer g.trace").last.locator("path.point")


def open_group(page, name: str) -> None:
    box = main(page).get_by_role("combobox", name="Open", exact=True)
    box.click()
    box.fill(name)
    page.get_by_role("option", name=name, exact=True).click()
    page.keyboard.press("Escape")
    settle(page)
    no_exception(page)


def test_resnet18_folds_opens_and_selects_a_node(page, visit):
    visit("/graph?preset=resnet18")
    expect(main(page).locator("h1").first).to_have_text("Connections")
    expect(counts(page)).to_contain_text("8 additions (3 through a 1×1 projection)")
    expect(counts(page)).to_contain_text("8 nodes and 11 edges shown")
    for name in ("main path", "residual shortcut (identity)", "residual shortcut (1×1 projection)"):
        expect(main(page).locator("g.legend text", has_text=name).first).to_be_visible()
    expect(main(page).get_by_text("b3 · 2 × Residual").first).to_be_visible()

    open_group(page, "b3")
    expect(main(page).get_by_text("b3.0 · Residual (1×1 projection)").first).to_be_visible()
    open_group(page, "b3.0")
    expect(counts(page)).to_contain_text("16 nodes and 20 edges shown")
    expect(main(page).get_by_text("Conv2d 1×1 s2 · 128").first).to_be_visible()
    expect(main(page)).to_contain_text("x is 64×24×24 and F(x) is 128×12×12")

    before = node_points(page).count()
    assert before > 15
    # the node right after b2 on the main path: b3.0's first convolution
    labels = main(page).locator("g.scatterlayer g.trace").last.locator("text")
    index = next(i for i in range(labels.count())
                 if labels.nth(i).text_content() == "Conv2d 3×3 s2 · 128")
    node_points(page).nth(index).click(force=True)
    heading = main(page).get_by_role("heading", name="b3.0.body.conv1")
    expect(heading).to_be_visible()
    settle(page)
    expect(main(page)).to_contain_text("input 64×24×24 → output 128×12×12")
    page.mouse.move(5, 5)
    screenshot(page, "graph")

    main(page).get_by_role("button", name="Open in Feature maps").click()
    expect(main(page).locator("h1").first).to_have_text("Feature maps")
    settle(page)
    no_exception(page)
    expect(main(page).get_by_role("combobox", name="Layer (as in the layer table, grouped by "
                                  "block)", exact=True)).to_have_value(
        "b3 › b3.0.body.conv1 · Conv2d · 128×12×12")
